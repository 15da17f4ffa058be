"""Keys that must never be used: HMAC secrets that are public keys in disguise, and RSA
moduli with the ROCA fingerprint. Pure, private to the JOSE layer.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Final

__all__ = ["looks_like_key", "roca_weak"]

_SSH_KEY_TYPES: Final = (
    b"ssh-rsa",
    b"ssh-dss",
    b"ssh-ed25519",
    b"ssh-ed448",
    b"ecdsa-sha2-",
    b"sk-ssh-",
    b"sk-ecdsa-",
)


def looks_like_key(secret: bytes) -> str | None:
    """What ``secret`` looks like when it is a key or certificate in text form, else None.

    Broader than PyJWT's test: a PEM block without its END line, an SSH key after
    whitespace, a JWK with bytes after it. A random secret matches none of these.
    """
    if b"-----BEGIN" in secret.upper():
        return "a PEM key or certificate"
    text = secret.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(_SSH_KEY_TYPES):
        return "an SSH public key"
    if b'"kty"' in secret:
        return "a JWK"
    if text[:1] in (b"{", b"["):
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if isinstance(parsed, dict | list):
            return "a JSON document (a JWK?)"
    return None


# ROCA (CVE-2017-15361): Infineon's RSA primes are 65537**a mod M plus a multiple of M, M the
# product of the first primes, so a modulus lies in the subgroup 65537 generates modulo
# each of them. For keys of 1984..4096 bits M covers every prime up to 701 at least (the
# smaller keys we refuse anyway), and a random modulus passes all 126 tests with
# probability about 2**-167.
_ROCA_PRIMES: Final = tuple(
    p for p in range(3, 702, 2) if all(p % d for d in range(3, math.isqrt(p) + 1, 2))
)


@functools.cache
def _roca_subgroups() -> tuple[tuple[int, frozenset[int]], ...]:
    groups = []
    for prime in _ROCA_PRIMES:
        seen, x = set(), 1
        while x not in seen:
            seen.add(x)
            x = x * 65537 % prime
        groups.append((prime, frozenset(seen)))
    return tuple(groups)


def roca_weak(modulus: int) -> bool:
    """Whether an RSA modulus carries the ROCA fingerprint (a factorable Infineon key)."""
    return all(modulus % prime in group for prime, group in _roca_subgroups())
