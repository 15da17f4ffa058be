"""Hand-made JOSE pieces for the token suites: segments and claim sets to forge tokens from,
a fixed-time signing context (``Ctx``, fixture ``ctx``) for the token unit suites, and the
forger of the hostile-token table (``Forge``, fixture ``forge``; the table is in
``hostile.py``).

Registered as a pytest plugin (``conftest.py``), so its fixtures serve every token suite.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from sessionstore import Config, Keyring
from sessionstore.errors import InvalidToken
from sessionstore.tokens import (
    AccessClaims,
    issue_access_token,
    issue_refresh_token,
    verify_access_token,
)

__all__ = [
    "ALGS",
    "CONFIG",
    "ED",
    "ES",
    "HEADER",
    "HS",
    "NOW",
    "P256_ORDER",
    "RS",
    "SID",
    "Case",
    "Ctx",
    "Forge",
    "alter",
    "b64",
    "claim_set",
    "ctx",
    "ec_public_jwk_json",
    "ed_public_raw",
    "es_der",
    "es_raw",
    "forge",
    "header",
    "issue",
    "noncanonical",
    "noncanonical_header",
    "oct_jwk",
    "payload",
    "raw_json",
    "refresh_swap",
    "rs256",
    "rsa_public_der",
    "segment",
    "verify",
    "with_signature",
]

SID = "S" * 21 + "A"
"""A well-formed session id."""


def b64(data: bytes) -> str:
    """Unpadded base64url of ``data``."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(part: object) -> str:
    """A JOSE segment: bytes and str are encoded as given, anything else as compact JSON."""
    if isinstance(part, bytes):
        return b64(part)
    if isinstance(part, str):
        return b64(part.encode("utf-8"))
    return b64(json.dumps(part, separators=(",", ":")).encode("utf-8"))


def claim_set(config: Config, now: int, /, **changes: object) -> dict[str, object]:
    """Valid access-token claims at ``now``; a change to ``None`` removes the claim."""
    body: dict[str, object] = {
        "iss": config.issuer,
        "sub": "user-1",
        "aud": config.audience,
        "iat": now,
        "exp": now + config.access_ttl,
        "jti": "jti-1",
        "sid": SID,
    }
    body.update(changes)
    return {name: value for name, value in body.items() if value is not None}


# --- a fixed-time context: the token unit suites ---------------------------------------------

ALGS = ["HS256", "HS384", "HS512", "ES256", "EdDSA", "RS256", "PS256"]
CONFIG = Config(issuer="https://auth.example", audience="api.example")
NOW = 1_700_000_000
"""The unit suites' clock (the hostile table's is ``Forge.now``: real time)."""
HEADER = {"alg": "HS256", "kid": "hs1", "typ": "at+jwt"}


def payload(**changes: object) -> dict[str, object]:
    """Valid claims at NOW (with one claim of the caller's); ``None`` removes a claim."""
    return claim_set(CONFIG, NOW, **{"role": "admin", **changes})


@dataclass(frozen=True)
class Ctx:
    """An HS256 key (kid hs1) and an RS256 key (kid rs1) in one keyring."""

    keyring: Keyring
    secret: bytes
    rsa_public_pem: bytes
    rsa_private: rsa.RSAPrivateKey

    def hs(self, header: object = HEADER, body: object = None, digest: str = "sha256") -> str:
        """A token HMAC-signed with the real HS256 secret."""
        signing = f"{segment(header)}.{segment(payload() if body is None else body)}"
        mac = hmac.digest(self.secret, signing.encode("ascii"), digest)
        return f"{signing}.{b64(mac)}"

    def valid(self) -> str:
        return self.hs()


@pytest.fixture(scope="module")
def ctx() -> Ctx:
    """An HS256 key (hs1) and an RS256 key (rs1) in one keyring, for the module."""
    secret = secrets.token_bytes(32)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private, as_dict=True)
    jwks = {
        "keys": [
            {**rsa_jwk, "kid": "rs1", "alg": "RS256"},
            {"kty": "oct", "kid": "hs1", "alg": "HS256", "k": b64(secret)},
        ]
    }
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Ctx(Keyring.from_jwks(jwks), secret, pem, private)


def verify(keyring: Keyring, token: object, now: float = NOW) -> AccessClaims:
    """Verify an access token under CONFIG at ``now``."""
    return verify_access_token(keyring, token, config=CONFIG, now=now)


def issue(keyring: Keyring, **extra: Any) -> tuple[str, AccessClaims]:
    """An access token of user-1 (claims, config and time overridable)."""
    return issue_access_token(
        keyring,
        user_id="user-1",
        session_id=SID,
        claims=extra.pop("claims", {"role": "admin"}),
        config=extra.pop("config", CONFIG),
        now=extra.pop("now", NOW),
        **extra,
    )


def oct_jwk(secret: bytes, **changes: object) -> dict[str, object]:
    """An HS256 JWK of ``secret`` (kid ``k``), with ``changes``."""
    return {"kty": "oct", "kid": "k", "alg": "HS256", "k": b64(secret), **changes}


def rs256(c: Ctx, cut: int = 0) -> str:
    """A genuine RS256 access token of ``c``'s RSA key (``cut`` characters short)."""
    token = jwt.encode(
        payload(), c.rsa_private, algorithm="RS256", headers={"kid": "rs1", "typ": "at+jwt"}
    )
    return token[: len(token) - cut] if cut else token


# --- the forger of the hostile-token table (real time) ----------------------------------------

HS: dict[str, object] = {"alg": "HS256", "kid": "hs1", "typ": "at+jwt"}
ES: dict[str, object] = {"alg": "ES256", "kid": "es1", "typ": "at+jwt"}
ED: dict[str, object] = {"alg": "EdDSA", "kid": "ed1", "typ": "at+jwt"}
RS: dict[str, object] = {"alg": "RS256", "kid": "rs1", "typ": "at+jwt"}
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def header(base: dict[str, object], **changes: object) -> dict[str, object]:
    merged = {**base, **changes}
    return {name: value for name, value in merged.items() if value is not None}


def raw_json(base: dict[str, object], extra: str) -> str:
    """``base`` as JSON with ``extra`` members spliced in before the closing brace."""
    return json.dumps(base, separators=(",", ":"))[:-1] + extra + "}"


class Forge:
    """The keys of the store under attack (hs1 signs; es1, ed1, rs1 verify) and forgers."""

    def __init__(self) -> None:
        self.secret = secrets.token_bytes(32)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.ed = ed25519.Ed25519PrivateKey.generate()
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwks = {
            "keys": [
                {**jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa, as_dict=True), "kid": "rs1"},
                {**jwt.algorithms.ECAlgorithm.to_jwk(self.ec, as_dict=True), "kid": "es1"},
                {**jwt.algorithms.OKPAlgorithm.to_jwk(self.ed, as_dict=True), "kid": "ed1"},
                {"kty": "oct", "kid": "hs1", "k": b64(self.secret)},
            ]
        }
        for jwk, alg in zip(jwks["keys"], ["RS256", "ES256", "EdDSA", "HS256"], strict=True):
            jwk["alg"] = alg
        self.keyring = Keyring.from_jwks(jwks)
        assert self.keyring.current_kid == "hs1"
        self.now = int(time.time())
        """The clock of the claims (reset when the table is built: its claims stay fresh)."""

    def claims(self, **changes: object) -> dict[str, object]:
        """Valid claims at ``now``; a change to ``None`` removes the claim."""
        return claim_set(CONFIG, self.now, **changes)

    def signing_input(self, head: object, body: object) -> str:
        return f"{segment(head)}.{segment(self.claims() if body is None else body)}"

    def hs(
        self,
        head: object = HS,
        body: object = None,
        *,
        key: bytes | None = None,
        digest: str = "sha256",
    ) -> str:
        """HMAC-signed (by default with the real hs1 secret)."""
        signing = self.signing_input(head, body)
        mac = hmac.digest(self.secret if key is None else key, signing.encode(), digest)
        return f"{signing}.{b64(mac)}"

    def es(self, head: object = ES, body: object = None, *, high_s: bool = False) -> str:
        """ES256-signed with es1 (raw r||s); ``high_s`` gives the malleated twin (n - s)."""
        signing = self.signing_input(head, body)
        r, s = decode_dss_signature(self.ec.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
        if (s > P256_ORDER // 2) != high_s:
            s = P256_ORDER - s
        return f"{signing}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def rs(self, head: object = RS, body: object = None, *, pss: bool = False) -> str:
        signing = self.signing_input(head, body).encode()
        pad: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            if pss
            else padding.PKCS1v15()
        )
        return f"{signing.decode()}.{b64(self.rsa.sign(signing, pad, hashes.SHA256()))}"

    def public_pem(self, key: Any) -> bytes:
        return bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def valid(self) -> str:
        return self.hs()

    def refresh(self, **changes: Any) -> str:
        args: dict[str, Any] = {"user_id": "user-1", "session_id": SID, "generation": 1}
        args.update(changes)
        return issue_refresh_token(self.keyring, **args)


def with_signature(token: str, signature: str) -> str:
    return token.rsplit(".", 1)[0] + "." + signature


def alter(text: str) -> str:
    """``text`` with its tenth-last character changed to another base64url character.

    (Not the last one: changing only its unused low bits is the non-canonical case.)
    """
    return text[:-10] + ("A" if text[-10] != "A" else "B") + text[-9:]


def noncanonical(text: str) -> str:
    """Set the unused low bits of the last base64url character (same bytes, other text)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(text) % 4 in (2, 3)
    return text[:-1] + alphabet[alphabet.index(text[-1]) | 1]


def refresh_parts(f: Forge) -> list[str]:
    return f.refresh().split(".")


def refresh_swap(f: Forge, index: int, value: str) -> str:
    parts = refresh_parts(f)
    parts[index] = value
    return ".".join(parts)


def noncanonical_header(f: Forge) -> str:
    # 43 bytes of header JSON (a trailing space is legal) leave 4 unused bits at the end.
    head, rest = f.hs(json.dumps(HS, separators=(",", ":")) + " ").split(".", 1)
    return f"{noncanonical(head)}.{rest}"


def es_raw(f: Forge, signature: bytes) -> str:
    return f"{f.signing_input(ES, None)}.{b64(signature)}"


def es_der(f: Forge) -> str:
    signing = f.signing_input(ES, None)
    return f"{signing}.{b64(f.ec.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))}"


def ed_public_raw(f: Forge) -> bytes:
    return f.ed.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def ec_public_jwk_json(f: Forge) -> bytes:
    return jwt.algorithms.ECAlgorithm.to_jwk(f.ec.public_key()).encode()


def rsa_public_der(f: Forge) -> bytes:
    return f.rsa.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def forge() -> Forge:
    """The keys under attack and their forgers, for the module."""
    return Forge()


@dataclass(frozen=True)
class Case:
    """One hostile input, the exact error it must raise, and the API it is sent to."""

    name: str
    make: Callable[[Forge], object]
    expected: type[InvalidToken]
    via: str = "validate"
