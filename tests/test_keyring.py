"""Keyrings: generating, publishing and loading keys (JWKS, env), rotating and retiring them,
and never showing their secrets. Pure code, no Redis."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa

from forge import (
    ALGS,
    CONFIG,
    NOW,
    SID,
    Ctx,
    b64,
    issue,
    oct_jwk,
    verify,
)
from sessionstore.errors import (
    InvalidInput,
    UnknownKey,
)
from sessionstore.tokens import (
    Keyring,
    issue_refresh_token,
    parse_refresh_token,
)

ASYMMETRIC = ["ES256", "EdDSA", "RS256", "PS256"]
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


@pytest.mark.parametrize("alg", ALGS)
def test_generate_issue_verify_round_trip(alg: str) -> None:
    keyring = Keyring.generate(alg, kid=f"k-{alg}")
    token, issued = issue(keyring)
    assert jwt.get_unverified_header(token) == {"alg": alg, "kid": f"k-{alg}", "typ": "at+jwt"}
    claims = verify(keyring, token)
    assert claims == issued
    assert (claims.user_id, claims.session_id, claims.claims) == ("user-1", SID, {"role": "admin"})
    assert (claims.issued_at, claims.expires_at) == (NOW, NOW + CONFIG.access_ttl)
    assert keyring.current_kid == f"k-{alg}"
    assert keyring.kids == [f"k-{alg}"]


def test_generate_defaults_to_hs256_with_a_random_kid() -> None:
    keyring = Keyring.generate()
    kid = keyring.current_kid
    assert kid is not None and len(kid) == 16
    assert keyring.to_private_jwks()["keys"][0]["alg"] == "HS256"
    assert Keyring.generate().current_kid != kid


@pytest.mark.parametrize("alg", ["none", "None", "nOnE", "NONE", "HS1", "ES384", "RS512", "", 5])
def test_generate_refuses_unsupported_algs(alg: Any) -> None:
    with pytest.raises(InvalidInput):
        Keyring.generate(alg)


@pytest.mark.parametrize("kid", ["", 5, "x" * 257, "\ud800"])
def test_generate_refuses_bad_kids(kid: Any) -> None:
    with pytest.raises(InvalidInput):
        Keyring.generate("HS256", kid=kid)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_to_jwks_of_an_hmac_keyring_is_empty(alg: str) -> None:
    assert Keyring.generate(alg).to_jwks() == {"keys": []}


@pytest.mark.parametrize("alg", ASYMMETRIC)
def test_to_jwks_publishes_public_keys_that_verify(alg: str) -> None:
    keyring = Keyring.generate(alg, kid="pub")
    jwks = keyring.to_jwks()
    (key,) = jwks["keys"]
    assert (key["kid"], key["alg"], key["use"]) == ("pub", alg, "sig")
    assert not PRIVATE_MEMBERS & key.keys()
    json.dumps(jwks)  # publishable as is
    verifier = Keyring.from_jwks(jwks)
    assert verifier.current_kid is None
    token, issued = issue(keyring)
    assert verify(verifier, token) == issued
    with pytest.raises(InvalidInput):
        issue(verifier)
    with pytest.raises(InvalidInput):
        issue_refresh_token(verifier, user_id="u", session_id=SID, generation=1)
    refresh = issue_refresh_token(keyring, user_id="u", session_id=SID, generation=1)
    with pytest.raises(UnknownKey):  # a public key cannot check a refresh MAC
        parse_refresh_token(verifier, refresh, max_bytes=8192)


@pytest.mark.parametrize("alg", ALGS)
def test_private_jwks_round_trip(alg: str) -> None:
    keyring = Keyring.generate(alg)
    token, issued = issue(keyring)
    refresh = issue_refresh_token(keyring, user_id="user-1", session_id=SID, generation=7)
    exported = keyring.to_private_jwks()
    for source in (exported, json.dumps(exported), json.dumps(exported).encode("utf-8")):
        restored = Keyring.from_jwks(source)
        assert restored.current_kid == keyring.current_kid
        assert verify(restored, token) == issued
        assert parse_refresh_token(restored, refresh, max_bytes=8192).generation == 7
        token2, issued2 = issue(restored)
        assert verify(keyring, token2) == issued2


def test_from_jwks_signs_with_the_last_private_key(ctx: Ctx) -> None:
    assert ctx.keyring.kids == ["rs1", "hs1"]
    assert ctx.keyring.current_kid == "hs1"
    assert [key["kid"] for key in ctx.keyring.to_private_jwks()["keys"]] == ["rs1", "hs1"]
    assert [key["kid"] for key in ctx.keyring.to_jwks()["keys"]] == ["rs1"]


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    keyring = Keyring.generate("ES256")
    monkeypatch.setenv("SESSIONSTORE_JWKS", json.dumps(keyring.to_private_jwks()))
    assert Keyring.from_env().current_kid == keyring.current_kid
    monkeypatch.setenv("OTHER_JWKS", json.dumps(keyring.to_jwks()))
    assert Keyring.from_env("OTHER_JWKS").kids == keyring.kids
    monkeypatch.delenv("SESSIONSTORE_JWKS")
    with pytest.raises(InvalidInput, match="SESSIONSTORE_JWKS"):
        Keyring.from_env()
    monkeypatch.setenv("SESSIONSTORE_JWKS", "{not json")
    with pytest.raises(InvalidInput):
        Keyring.from_env()


def _jwk(key: Any, alg: str) -> dict[str, object]:
    return {**jwt.get_algorithm_by_name(alg).to_jwk(key, as_dict=True), "kid": "k", "alg": alg}


def _pem() -> bytes:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _jwk_off_curve() -> dict[str, object]:
    point = {"crv": "P-256", "x": b64(b"\x01" * 32), "y": b64(b"\x02" * 32)}
    return {"kty": "EC", "kid": "k", "alg": "ES256", **point}


GOOD = secrets.token_bytes(32)
BAD_JWKS: list[tuple[str, Callable[[], object]]] = [
    ("not an object", lambda: ["keys"]),
    ("no keys", lambda: {"keys": []}),
    ("keys not a list", lambda: {"keys": {"kid": "k"}}),
    ("key not an object", lambda: {"keys": ["k"]}),
    ("invalid JSON text", lambda: '{"keys": ['),
    ("duplicate member in JSON text", lambda: '{"keys": [], "keys": []}'),
    ("duplicate kid", lambda: {"keys": [oct_jwk(GOOD), oct_jwk(secrets.token_bytes(32))]}),
    ("missing kid", lambda: {"keys": [oct_jwk(GOOD, kid=None)]}),
    ("non-str kid", lambda: {"keys": [oct_jwk(GOOD, kid=7)]}),
    ("missing alg", lambda: {"keys": [oct_jwk(GOOD, alg=None)]}),
    ("alg none", lambda: {"keys": [oct_jwk(GOOD, alg="none")]}),
    ("alg nOnE", lambda: {"keys": [oct_jwk(GOOD, alg="nOnE")]}),
    ("unsupported alg", lambda: {"keys": [oct_jwk(GOOD, alg="HS1024")]}),
    ("kty does not fit alg", lambda: {"keys": [oct_jwk(GOOD, alg="RS256")]}),
    ("use enc", lambda: {"keys": [oct_jwk(GOOD, use="enc")]}),
    ("k not base64url", lambda: {"keys": [oct_jwk(GOOD, k="not base64!")]}),
    ("k padded", lambda: {"keys": [oct_jwk(GOOD, k=b64(GOOD) + "=")]}),
    ("HS256 secret too short", lambda: {"keys": [oct_jwk(secrets.token_bytes(31))]}),
    ("HS512 secret too short", lambda: {"keys": [oct_jwk(secrets.token_bytes(63), alg="HS512")]}),
    ("all one byte", lambda: {"keys": [oct_jwk(b"\x00" * 32)]}),
    ("all one letter", lambda: {"keys": [oct_jwk(b"a" * 64)]}),
    ("pattern ab", lambda: {"keys": [oct_jwk(b"ab" * 16)]}),
    ("pattern of 8 bytes", lambda: {"keys": [oct_jwk(bytes(range(8)) * 4)]}),
    ("pattern of 16 bytes", lambda: {"keys": [oct_jwk(b"0123456789abcdef" * 2)]}),
    ("PEM as secret", lambda: {"keys": [oct_jwk(_pem())]}),
    (
        "P-384 key as ES256",
        lambda: {"keys": [_jwk(ec.generate_private_key(ec.SECP384R1()), "ES256")]},
    ),
    ("RSA 1024", lambda: {"keys": [_jwk(rsa.generate_private_key(65537, 1024), "RS256")]}),
    ("RSA without n", lambda: {"keys": [{"kty": "RSA", "kid": "k", "alg": "RS256", "e": "AQAB"}]}),
    ("EC point off the curve", lambda: {"keys": [_jwk_off_curve()]}),
    ("Ed448 as EdDSA", lambda: {"keys": [_jwk(ed448.Ed448PrivateKey.generate(), "EdDSA")]}),
    ("OKP without x", lambda: {"keys": [{"kty": "OKP", "kid": "k", "alg": "EdDSA"}]}),
]


@pytest.mark.parametrize("make", [case[1] for case in BAD_JWKS], ids=[c[0] for c in BAD_JWKS])
def test_from_jwks_refuses(make: Callable[[], Any]) -> None:
    with pytest.raises(InvalidInput):
        Keyring.from_jwks(make())


@pytest.mark.parametrize("secret", [b"\x00" * 32, b"ab" * 16, bytes(range(8)) * 4, b"short"])
def test_weak_key_errors_do_not_echo_the_secret(secret: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        Keyring.from_jwks({"keys": [oct_jwk(secret)]})
    assert b64(secret) not in str(caught.value)
    assert secret.decode("latin-1") not in str(caught.value)


@pytest.mark.parametrize("alg", ALGS)
def test_repr_hides_key_material(alg: str) -> None:
    keyring = Keyring.generate(alg, kid="visible")
    (jwk,) = keyring.to_private_jwks()["keys"]
    secret = jwk["k"] if alg.startswith("HS") else jwk["d"]
    for text in (repr(keyring), str(keyring), f"{keyring}", repr(keyring._state.keys)):
        assert secret not in text
        assert "visible" in text
    assert repr(keyring) == "Keyring(kids=['visible'], current='visible')"


def test_rotate_keeps_old_keys_through_the_grace_then_drops_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keyring = Keyring.generate("HS256", kid="old")
    old_token, old_claims = issue(keyring)
    old_refresh = issue_refresh_token(keyring, user_id="u", session_id=SID, generation=1)
    keyring.rotate(Keyring.generate("ES256", kid="new"), grace=3600)
    assert keyring.current_kid == "new"
    assert keyring.kids == ["old", "new"]
    new_token, _ = issue(keyring)
    assert jwt.get_unverified_header(new_token)["kid"] == "new"
    assert verify(keyring, old_token) == old_claims
    assert parse_refresh_token(keyring, old_refresh, max_bytes=8192).kid == "old"
    later = time.time() + 3601
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(UnknownKey):
        verify(keyring, old_token)
    with pytest.raises(UnknownKey):
        parse_refresh_token(keyring, old_refresh, max_bytes=8192)
    assert keyring.kids == ["new"]
    assert "old" not in repr(keyring)
    verify(keyring, new_token)


def test_retire_drops_a_key_now_or_later() -> None:
    keyring = Keyring.generate("HS256", kid="a")
    token, _ = issue(keyring)
    keyring.rotate(Keyring.generate("HS256", kid="b"))
    keyring.retire("a", at=time.time() + 60)
    verify(keyring, token)
    keyring.retire("a")
    with pytest.raises(UnknownKey):
        verify(keyring, token)
    assert keyring.kids == ["b"]
    with pytest.raises(InvalidInput):
        keyring.retire("a")


def test_retiring_the_current_key_leaves_nothing_to_sign_with() -> None:
    keyring = Keyring.generate("HS256", kid="only")
    keyring.retire("only")
    assert keyring.current_kid is None
    with pytest.raises(InvalidInput):
        issue(keyring)


def test_rotate_with_zero_grace_drops_old_keys_at_once() -> None:
    keyring = Keyring.generate("EdDSA", kid="old")
    token, _ = issue(keyring)
    keyring.rotate(Keyring.generate("EdDSA", kid="new"), grace=0)
    with pytest.raises(UnknownKey):
        verify(keyring, token)


@pytest.mark.parametrize(
    ("make", "grace"),
    [
        (lambda: Keyring.generate("HS256", kid="a"), 1.0),  # kid already held
        (lambda: Keyring.from_jwks(Keyring.generate("ES256").to_jwks()), 1.0),  # cannot sign
        (lambda: Keyring.generate("HS256"), -1.0),
        (lambda: Keyring.generate("HS256"), float("nan")),
        (lambda: Keyring.generate("HS256"), True),
        (lambda: Keyring.generate("HS256"), 10**400),
    ],
)
def test_rotate_refuses(make: Callable[[], Keyring], grace: Any) -> None:
    keyring = Keyring.generate("HS256", kid="a")
    with pytest.raises(InvalidInput):
        keyring.rotate(make(), grace=grace)
    assert keyring.kids == ["a"]


def test_readers_never_see_a_half_rotated_keyring() -> None:
    keyring = Keyring.generate("HS256", kid="k0")
    token, issued = issue(keyring)
    failures: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                assert verify(keyring, token) == issued
            except BaseException as err:  # collected and re-raised in the main thread
                failures.append(err)
                return

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for n in range(1, 60):
        keyring.rotate(Keyring.generate("HS256", kid=f"k{n}"))
    stop.set()
    for thread in threads:
        thread.join()
    assert not failures
    assert keyring.current_kid == "k59"
