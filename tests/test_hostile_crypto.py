"""Hostile tokens past the table: a token far over the size cap costs one length check, an
ECDSA signature's malleated twin of a revoked token stays revoked, and the forgers sign
correctly (so the table's refusals are real)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from forge import CONFIG, ED, HS, P256_ORDER, SID, Forge, b64, noncanonical_header
from sessionstore import Config, Device, Keyring, SessionRevoked
from sessionstore.errors import TokenTooLarge
from sessionstore.testing import LocalServer
from sessionstore.tokens import verify_access_token
from support import StoreFactory

PHONE = Device(id="phone-1", name="Pixel")


class Tripwire(str):
    """A str that fails the test if anything past its length is looked at."""

    def _touched(self, *args: object, **kwargs: object) -> Any:
        raise AssertionError("the token was read past its length check")

    encode = split = startswith = isascii = translate = _touched
    __getitem__ = __iter__ = __contains__ = __eq__ = __hash__ = _touched


@pytest.mark.parametrize("size", [CONFIG.max_token_bytes + 1, 1_000_000, 16_000_000])
def test_oversized_token_costs_one_length_check(forge: Forge, size: int) -> None:
    """Nothing but ``len`` runs on an oversized token: no scan, no split, no base64 decode."""
    with pytest.raises(TokenTooLarge):
        verify_access_token(forge.keyring, Tripwire("a" * size), config=CONFIG, now=forge.now)


@pytest.mark.parametrize("engine", ["valkey"], indirect=True)  # it runs on a private server
async def test_ecdsa_high_s_twin_of_a_revoked_token_stays_revoked(
    make_store: StoreFactory, fault_server: LocalServer
) -> None:
    """ECDSA is malleable ((r, s) and (r, n - s) both verify), so a revoked token has a
    twin with other text. Revocation is keyed on the session, never on the token text: the
    twin is refused by Redis and, with Redis down, by this process's revocation memory."""
    forge = Forge()
    ring = Keyring.from_jwks(
        {
            "keys": [
                {
                    **jwt.algorithms.ECAlgorithm.to_jwk(forge.ec, as_dict=True),
                    "kid": "es1",
                    "alg": "ES256",
                }
            ]
        }
    )
    config = Config(issuer=CONFIG.issuer, audience=CONFIG.audience, breaker_failures=1)
    store = make_store(url=fault_server.url, keyring=ring, config=config)
    pair = await store.login("user-1", device=PHONE)
    head, body, signature = pair.access_token.split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    s = int.from_bytes(raw[32:], "big")
    twin = f"{head}.{body}.{b64(raw[:32] + (P256_ORDER - s).to_bytes(32, 'big'))}"
    assert twin != pair.access_token
    # The twin verifies at the crypto layer: the malleability is real, not hypothetical.
    assert verify_access_token(ring, twin, config=config, now=time.time()).session_id == (
        pair.session_id
    )
    assert await store.logout(pair.access_token)
    with pytest.raises(SessionRevoked):
        await store.validate(twin)
    fault_server.kill()
    with pytest.raises(SessionRevoked):
        await store.validate(twin)
    with pytest.raises(SessionRevoked):
        await store.validate(pair.access_token)


def test_forge_helpers_make_valid_tokens(forge: Forge) -> None:
    """The forgers sign correctly: their unaltered output verifies (so refusals are real)."""
    for token in [forge.valid(), forge.es(), forge.rs(), forge.es(high_s=True)]:
        assert (
            verify_access_token(forge.keyring, token, config=CONFIG, now=forge.now).user_id
            == "user-1"
        )
    signing = forge.signing_input(ED, None)
    ed_token = f"{signing}.{b64(forge.ed.sign(signing.encode()))}"
    assert (
        verify_access_token(forge.keyring, ed_token, config=CONFIG, now=forge.now).session_id == SID
    )
    # ...and the canonical twin of the non-canonical header verifies too.
    head, rest = noncanonical_header(forge).split(".", 1)
    fixed = forge.hs(json.dumps(HS, separators=(",", ":")) + " ")
    assert fixed.split(".", 1)[1] == rest and fixed.split(".")[0] != head
    assert (
        verify_access_token(forge.keyring, fixed, config=CONFIG, now=forge.now).user_id == "user-1"
    )
