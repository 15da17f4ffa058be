"""Keyring, access tokens and refresh tokens: pure code, no Redis.

Hostile tokens are built by hand (base64url of crafted JSON, HMAC under the real key where
the signature must be valid) so that each case reaches exactly the check it targets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa

from forge import SID, b64, claim_set, segment
from sessionstore.errors import (
    DisallowedAlgorithm,
    InvalidClaim,
    InvalidHeader,
    InvalidInput,
    InvalidSignature,
    InvalidToken,
    MalformedToken,
    TokenExpired,
    TokenTooLarge,
    UnknownKey,
    WrongTokenType,
)
from sessionstore.models import Config
from sessionstore.tokens import (
    RESERVED_CLAIMS,
    AccessClaims,
    Keyring,
    RefreshClaims,
    issue_access_token,
    issue_refresh_token,
    parse_refresh_token,
    verify_access_token,
)

ALGS = ["HS256", "HS384", "HS512", "ES256", "EdDSA", "RS256", "PS256"]
ASYMMETRIC = ["ES256", "EdDSA", "RS256", "PS256"]
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}
CONFIG = Config(issuer="https://auth.example", audience="api.example")
NOW = 1_700_000_000
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
    return verify_access_token(keyring, token, config=CONFIG, now=now)


def issue(keyring: Keyring, **extra: Any) -> tuple[str, AccessClaims]:
    return issue_access_token(
        keyring,
        user_id="user-1",
        session_id=SID,
        claims=extra.pop("claims", {"role": "admin"}),
        config=extra.pop("config", CONFIG),
        now=extra.pop("now", NOW),
        **extra,
    )


# --- Keyring ----------------------------------------------------------------------------------


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


def _oct(secret: bytes, **changes: object) -> dict[str, object]:
    return {"kty": "oct", "kid": "k", "alg": "HS256", "k": b64(secret), **changes}


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
    ("duplicate kid", lambda: {"keys": [_oct(GOOD), _oct(secrets.token_bytes(32))]}),
    ("missing kid", lambda: {"keys": [_oct(GOOD, kid=None)]}),
    ("non-str kid", lambda: {"keys": [_oct(GOOD, kid=7)]}),
    ("missing alg", lambda: {"keys": [_oct(GOOD, alg=None)]}),
    ("alg none", lambda: {"keys": [_oct(GOOD, alg="none")]}),
    ("alg nOnE", lambda: {"keys": [_oct(GOOD, alg="nOnE")]}),
    ("unsupported alg", lambda: {"keys": [_oct(GOOD, alg="HS1024")]}),
    ("kty does not fit alg", lambda: {"keys": [_oct(GOOD, alg="RS256")]}),
    ("use enc", lambda: {"keys": [_oct(GOOD, use="enc")]}),
    ("k not base64url", lambda: {"keys": [_oct(GOOD, k="not base64!")]}),
    ("k padded", lambda: {"keys": [_oct(GOOD, k=b64(GOOD) + "=")]}),
    ("HS256 secret too short", lambda: {"keys": [_oct(secrets.token_bytes(31))]}),
    ("HS512 secret too short", lambda: {"keys": [_oct(secrets.token_bytes(63), alg="HS512")]}),
    ("all one byte", lambda: {"keys": [_oct(b"\x00" * 32)]}),
    ("all one letter", lambda: {"keys": [_oct(b"a" * 64)]}),
    ("pattern ab", lambda: {"keys": [_oct(b"ab" * 16)]}),
    ("pattern of 8 bytes", lambda: {"keys": [_oct(bytes(range(8)) * 4)]}),
    ("pattern of 16 bytes", lambda: {"keys": [_oct(b"0123456789abcdef" * 2)]}),
    ("PEM as secret", lambda: {"keys": [_oct(_pem())]}),
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
        Keyring.from_jwks({"keys": [_oct(secret)]})
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


# --- issuing access tokens ----------------------------------------------------------------------


def test_issue_caps_exp_and_floors_times() -> None:
    keyring = Keyring.generate()
    token, issued = issue(keyring, now=NOW + 0.9, expires_at=NOW + 100.7)
    assert (issued.issued_at, issued.expires_at) == (NOW, NOW + 100)
    assert verify(keyring, token) == issued
    _, uncapped = issue(keyring, expires_at=NOW + 10**6)
    assert uncapped.expires_at == NOW + CONFIG.access_ttl


def test_issued_claims_are_what_verification_returns() -> None:
    keyring = Keyring.generate()
    claims = {"roles": ("a", "b"), "nested": {"n": 1.5, "ok": True, "none": None}}
    token, issued = issue(keyring, claims=claims)
    assert issued.claims == {"roles": ["a", "b"], "nested": {"n": 1.5, "ok": True, "none": None}}
    assert verify(keyring, token) == issued
    token_ids = {issue(keyring)[1].token_id for _ in range(20)}
    assert len(token_ids) == 20 and all(len(jti) == 16 for jti in token_ids)


@pytest.mark.parametrize(
    "changes",
    [{"claims": {name: "x"}} for name in sorted(RESERVED_CLAIMS)]
    + [
        {"claims": {"n": float("nan")}},
        {"claims": {"n": float("inf")}},
        {"claims": {"o": object()}},
        {"claims": {1: "non-str name"}},
        {"claims": ["not", "a", "mapping"]},
        {"user_id": ""},
        {"user_id": "a\x00b"},
        {"user_id": 5},
        {"session_id": "short"},
        {"now": "now"},
        {"now": -1},
        {"now": True},
        {"expires_at": float("inf")},
        {"expires_at": float("nan")},
        {"now": 10**400},
        {"claims": {"big": "x" * 10_000}},  # the token would exceed max_token_bytes
    ],
)
def test_issue_refuses(changes: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "user_id": "user-1",
        "session_id": SID,
        "claims": {},
        "config": CONFIG,
        "now": NOW,
        **changes,
    }
    with pytest.raises(InvalidInput):
        issue_access_token(Keyring.generate(), **arguments)


# --- the pre-decode gate ----------------------------------------------------------------------

Case = tuple[str, Callable[[Ctx], object], type[InvalidToken]]


def _noncanonical(text: str) -> str:
    """``text`` with the unused low bits of its last base64url character set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(text) % 4 in (2, 3)
    return text[:-1] + alphabet[alphabet.index(text[-1]) | 1]


def _noncanonical_header(c: Ctx) -> str:
    # 43 bytes of JSON (a trailing space is legal) leave 4 unused bits in the last character.
    token = c.hs(header=json.dumps(HEADER, separators=(",", ":")) + " ")
    verify(c.keyring, token)  # the canonical form is fine
    head, rest = token.split(".", 1)
    return f"{_noncanonical(head)}.{rest}"


def _noncanonical_signature(c: Ctx) -> str:
    signing, signature = c.valid().rsplit(".", 1)
    return f"{signing}.{_noncanonical(signature)}"


def _extra(members: str) -> str:
    """The valid payload's JSON with ``members`` spliced in before its closing brace."""
    return json.dumps(payload())[:-1] + members


def _member(name: str) -> Callable[[Ctx], object]:
    return lambda c: c.hs(_hs_header(**{name: "x"}))


def _hs_header(**changes: object) -> dict[str, object]:
    header: dict[str, object] = {**HEADER, **changes}
    return {name: value for name, value in header.items() if value is not None}


def _confused(c: Ctx) -> str:
    """HS256 over the RSA key's public PEM: the classic algorithm-confusion forgery."""
    signing = f"{segment({'alg': 'HS256', 'kid': 'rs1', 'typ': 'at+jwt'})}.{segment(payload())}"
    return f"{signing}.{b64(hmac.digest(c.rsa_public_pem, signing.encode(), 'sha256'))}"


def _rs256(c: Ctx, cut: int = 0) -> str:
    token = jwt.encode(
        payload(), c.rsa_private, algorithm="RS256", headers={"kid": "rs1", "typ": "at+jwt"}
    )
    return token[: len(token) - cut] if cut else token


def _tampered(c: Ctx) -> str:
    head, _, sig = c.valid().split(".")
    return f"{head}.{segment(payload(sub='admin'))}.{sig}"


DEEP = '{"alg":' + "[" * 2000 + "]" * 2000 + "}"
SHAPE: list[Case] = [
    ("bytes", lambda c: c.valid().encode(), MalformedToken),
    ("None", lambda c: None, MalformedToken),
    ("int", lambda c: 42, MalformedToken),
    ("empty", lambda c: "", MalformedToken),
    ("1 MB", lambda c: "a" * 1_000_000, TokenTooLarge),
    ("1 MB of dots", lambda c: "." * 1_000_000, TokenTooLarge),
    ("one over the cap", lambda c: "a." * 4096 + "a", TokenTooLarge),
    ("two segments", lambda c: c.valid().rsplit(".", 1)[0], MalformedToken),
    ("four segments", lambda c: c.valid() + ".AAAA", MalformedToken),
    ("empty signature", lambda c: c.valid().rsplit(".", 1)[0] + ".", MalformedToken),
    ("empty header", lambda c: "." + c.valid().split(".", 1)[1], MalformedToken),
    ("empty payload", lambda c: "{0}..{2}".format(*c.valid().split(".")), MalformedToken),
    ("trailing dot", lambda c: c.valid() + ".", MalformedToken),
    ("padding", lambda c: c.valid() + "=", MalformedToken),
    ("leading space", lambda c: " " + c.valid(), MalformedToken),
    ("trailing newline", lambda c: c.valid() + "\n", MalformedToken),
    ("standard base64 chars", lambda c: "+/" + c.valid(), MalformedToken),
    ("non-ASCII", lambda c: "\u00e9" + c.valid(), MalformedToken),
    (
        "JSON serialisation",
        lambda c: json.dumps({"payload": "e30", "signature": "x"}),
        MalformedToken,
    ),
    ("Bearer prefix", lambda c: "Bearer " + c.valid(), MalformedToken),
    (
        "refresh token",
        lambda c: issue_refresh_token(c.keyring, user_id="u", session_id=SID, generation=1),
        WrongTokenType,
    ),
]
HEADERS: list[Case] = [
    ("header not JSON", lambda c: c.hs(header="alg=HS256"), MalformedToken),
    ("header is an array", lambda c: c.hs(header=["alg", "HS256"]), MalformedToken),
    ("header with BOM", lambda c: c.hs(header="\ufeff" + json.dumps(HEADER)), MalformedToken),
    ("header not UTF-8", lambda c: c.hs(header=b'{"alg":"\xff"}'), MalformedToken),
    (
        "header duplicate member",
        lambda c: c.hs(header='{"alg":"HS256","kid":"hs1","typ":"at+jwt","kid":"hs1"}'),
        MalformedToken,
    ),
    (
        "header NaN",
        lambda c: c.hs(header='{"alg":"HS256","kid":"hs1","typ":"at+jwt","x":NaN}'),
        MalformedToken,
    ),
    ("header deeply nested", lambda c: c.hs(header=DEEP), MalformedToken),
    ("header bad base64 length", lambda c: "A" + c.valid(), MalformedToken),
    ("header non-canonical base64", _noncanonical_header, MalformedToken),
    ("typ missing", lambda c: c.hs(_hs_header(typ=None)), InvalidHeader),
    ("typ JWT", lambda c: c.hs(_hs_header(typ="JWT")), InvalidHeader),
    ("typ AT+JWT", lambda c: c.hs(_hs_header(typ="AT+JWT")), InvalidHeader),
    ("typ not a string", lambda c: c.hs(_hs_header(typ=["at+jwt"])), InvalidHeader),
    ("kid missing", lambda c: c.hs(_hs_header(kid=None)), InvalidHeader),
    ("kid not a string", lambda c: c.hs(_hs_header(kid=1)), InvalidHeader),
    ("kid unknown", lambda c: c.hs(_hs_header(kid="nope")), UnknownKey),
    ("alg none", lambda c: c.hs(_hs_header(alg="none")), DisallowedAlgorithm),
    ("alg None", lambda c: c.hs(_hs_header(alg="None")), DisallowedAlgorithm),
    ("alg nOnE", lambda c: c.hs(_hs_header(alg="nOnE")), DisallowedAlgorithm),
    ("alg none, no kid", lambda c: c.hs({"alg": "none", "typ": "at+jwt"}), DisallowedAlgorithm),
    ("alg missing", lambda c: c.hs(_hs_header(alg=None)), DisallowedAlgorithm),
    ("alg not a string", lambda c: c.hs(_hs_header(alg=256)), DisallowedAlgorithm),
    ("alg lower case", lambda c: c.hs(_hs_header(alg="hs256")), DisallowedAlgorithm),
    ("alg padded", lambda c: c.hs(_hs_header(alg="HS256 ")), DisallowedAlgorithm),
    (
        "alg HS512 on HS256 key",
        lambda c: c.hs(_hs_header(alg="HS512"), digest="sha512"),
        DisallowedAlgorithm,
    ),
    ("alg RS256 on HS256 key", lambda c: c.hs(_hs_header(alg="RS256")), DisallowedAlgorithm),
    ("HS256 signed with RSA public PEM", _confused, DisallowedAlgorithm),
]
FORBIDDEN_MEMBERS = ["crit", "zip", "jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "b64", "cty"]
HEADERS += [(f"header {name}", _member(name), InvalidHeader) for name in FORBIDDEN_MEMBERS]
SIGNATURES: list[Case] = [
    (
        "random signature",
        lambda c: c.valid()[:-43] + b64(secrets.token_bytes(32)),
        InvalidSignature,
    ),
    ("short signature", lambda c: c.valid().rsplit(".", 1)[0] + ".AAAA", InvalidSignature),
    ("long signature", lambda c: c.valid() + "AAAA", InvalidSignature),
    ("non-canonical signature", _noncanonical_signature, InvalidSignature),
    ("tampered payload", _tampered, InvalidSignature),
    ("RS256 truncated signature", lambda c: _rs256(c, cut=4), InvalidSignature),
    ("RS256 signature of another token", lambda c: _rs256(c)[:-10] + "A" * 10, InvalidSignature),
]
PAYLOADS: list[Case] = [
    ("payload not JSON", lambda c: c.hs(body="sub=admin"), MalformedToken),
    ("payload array", lambda c: c.hs(body=[payload()]), MalformedToken),
    ("payload string", lambda c: c.hs(body='"x"'), MalformedToken),
    ("payload BOM", lambda c: c.hs(body="\ufeff" + json.dumps(payload())), MalformedToken),
    ("payload invalid UTF-8", lambda c: c.hs(body=b'{"sub":"\xc3"}'), MalformedToken),
    ("payload trailing data", lambda c: c.hs(body=json.dumps(payload()) + "{}"), MalformedToken),
    ("payload duplicate sub", lambda c: c.hs(body=_extra(',"sub":"admin"}')), MalformedToken),
    (
        "payload nested duplicate",
        lambda c: c.hs(body=_extra(',"x":{"a":1,"a":2}}')),
        MalformedToken,
    ),
    ("payload NaN", lambda c: c.hs(body=_extra(',"x":NaN}')), MalformedToken),
    ("payload -Infinity", lambda c: c.hs(body=_extra(',"x":-Infinity}')), MalformedToken),
    ("payload 1e400", lambda c: c.hs(body=_extra(',"x":1e400}')), MalformedToken),
    (
        "payload huge integer",
        lambda c: c.hs(body=_extra(',"x":' + "9" * 5000 + "}")),
        MalformedToken,
    ),
    ("expired", lambda c: c.hs(body=payload(iat=NOW - 1000, exp=NOW - 31)), TokenExpired),
]


@pytest.mark.parametrize(
    ("make", "expected"),
    [case[1:] for case in SHAPE + HEADERS + SIGNATURES + PAYLOADS],
    ids=[case[0] for case in SHAPE + HEADERS + SIGNATURES + PAYLOADS],
)
def test_gate_refuses(
    ctx: Ctx, make: Callable[[Ctx], object], expected: type[InvalidToken]
) -> None:
    with pytest.raises(expected) as caught:
        verify(ctx.keyring, make(ctx))
    assert type(caught.value) is expected or expected is InvalidToken


CLAIMS: list[tuple[str, dict[str, object], str]] = [
    ("sub missing", payload(sub=None), "sub"),
    ("sub empty", payload(sub=""), "sub"),
    ("sub too long", payload(sub="u" * 257), "sub"),
    ("sub not a string", payload(sub=1), "sub"),
    ("sid missing", payload(sid=None), "sid"),
    ("sid wrong shape", payload(sid="short"), "sid"),
    ("sid not a string", payload(sid=["x" * 22]), "sid"),
    ("jti missing", payload(jti=None), "jti"),
    ("jti too long", payload(jti="j" * 65), "jti"),
    ("iat missing", payload(iat=None), "iat"),
    ("iat string", payload(iat=str(NOW)), "iat"),
    ("exp missing", payload(exp=None), "exp"),
    ("exp string", payload(exp=str(NOW + 900)), "exp"),
    ("exp bool", payload(exp=True), "exp"),
    ("exp float", payload(exp=NOW + 900.0), "exp"),
    ("exp negative", payload(exp=-1), "exp"),
    ("exp huge", payload(exp=10**30), "exp"),
    ("nbf float", payload(nbf=NOW - 1.5), "nbf"),
    ("nbf null", payload() | {"nbf": None}, "nbf"),
    ("iss missing", payload(iss=None), "iss"),
    ("iss substring", payload(iss=CONFIG.issuer[:-1]), "iss"),
    ("iss superstring", payload(iss=CONFIG.issuer + "/"), "iss"),
    ("iss list", payload(iss=[CONFIG.issuer]), "iss"),
    ("aud missing", payload(aud=None), "aud"),
    ("aud list", payload(aud=[CONFIG.audience]), "aud"),
    ("aud substring", payload(aud=CONFIG.audience[:3]), "aud"),
    ("iat in the future", payload(iat=NOW + 31, exp=NOW + 100), "iat"),
    ("nbf in the future", payload(nbf=NOW + 31), "nbf"),
    ("lifetime too long", payload(exp=NOW + CONFIG.access_ttl + CONFIG.leeway + 1), "exp"),
]


@pytest.mark.parametrize(
    ("body", "claim"), [case[1:] for case in CLAIMS], ids=[case[0] for case in CLAIMS]
)
def test_claims_refused(ctx: Ctx, body: dict[str, object], claim: str) -> None:
    with pytest.raises(InvalidClaim) as caught:
        verify(ctx.keyring, ctx.hs(body=body))
    assert type(caught.value) is InvalidClaim
    assert caught.value.claim == claim


@pytest.mark.parametrize(
    ("header", "body", "now"),
    [
        (HEADER, payload(), NOW),
        (_hs_header(typ="application/at+jwt"), payload(), NOW),
        ('{ "alg" : "HS256", "kid" : "hs1", "typ" : "at+jwt" }', payload(), NOW),
        (HEADER, payload(iat=NOW + 30, nbf=NOW + 30, exp=NOW + 100), NOW),  # within leeway
        (HEADER, payload(), NOW + CONFIG.access_ttl + CONFIG.leeway),  # expired by the leeway
        (HEADER, payload(exp=NOW + CONFIG.access_ttl + CONFIG.leeway), NOW),
    ],
)
def test_gate_accepts(ctx: Ctx, header: object, body: dict[str, object], now: int) -> None:
    claims = verify(ctx.keyring, ctx.hs(header, body), now=now)
    assert claims.claims == {"role": "admin"}
    assert (claims.user_id, claims.session_id, claims.token_id) == ("user-1", SID, "jti-1")


def test_header_cache_learns_only_from_verified_tokens(ctx: Ctx) -> None:
    secret = secrets.token_bytes(32)
    keyring = Keyring.from_jwks({"keys": [_oct(secret, kid="hs1")]})
    local = Ctx(keyring, secret, ctx.rsa_public_pem, ctx.rsa_private)
    variants = [json.dumps(HEADER, separators=(",", ":")) + " " * n for n in range(70)]
    for header in variants:  # forgeries cannot fill the cache
        head, body, _ = local.hs(header).split(".")
        with pytest.raises(InvalidSignature):
            verify(keyring, f"{head}.{body}.{b64(secrets.token_bytes(32))}")
    assert not keyring._state.headers
    for header in variants:  # past the cache bound, genuine headers still verify
        assert verify(keyring, local.hs(header)).user_id == "user-1"
    assert 0 < len(keyring._state.headers) <= 64


def test_rs256_token_verifies_in_a_mixed_keyring(ctx: Ctx) -> None:
    assert verify(ctx.keyring, _rs256(ctx)).user_id == "user-1"


def test_refusals_never_echo_the_token(ctx: Ctx) -> None:
    for make, _ in [case[1:] for case in SHAPE + HEADERS + SIGNATURES + PAYLOADS]:
        token = make(ctx)
        with pytest.raises(InvalidToken) as caught:
            verify(ctx.keyring, token)
        if isinstance(token, str) and len(token) > 8:
            assert token[:40] not in str(caught.value)


# --- refresh tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_refresh_round_trip(alg: str) -> None:
    keyring = Keyring.generate(alg, kid=f"kid/{alg}")
    for user, generation in [("user-1", 1), ("\u00fcser \U0001f600", 42), ("u" * 256, 2**53)]:
        token = issue_refresh_token(keyring, user_id=user, session_id=SID, generation=generation)
        assert token.startswith("rt1.")
        mac = token.rsplit(".", 1)[1]
        assert len(mac) == 43
        parsed = parse_refresh_token(keyring, token, max_bytes=8192)
        assert parsed == RefreshClaims(
            user_id=user, session_id=SID, generation=generation, kid=f"kid/{alg}"
        )


def test_refresh_tokens_differ_per_generation_and_session() -> None:
    keyring = Keyring.generate()
    tokens = {
        issue_refresh_token(keyring, user_id="u", session_id=sid, generation=gen)
        for sid in (SID, "B" * 22)
        for gen in (1, 2, 3)
    }
    assert len({token.rsplit(".", 1)[1] for token in tokens}) == 6


def test_refresh_token_under_a_named_kid(ctx: Ctx) -> None:
    token = issue_refresh_token(ctx.keyring, user_id="u", session_id=SID, generation=1, kid="rs1")
    assert parse_refresh_token(ctx.keyring, token, max_bytes=8192).kid == "rs1"


def test_access_token_as_refresh_token_is_the_wrong_type(ctx: Ctx) -> None:
    with pytest.raises(WrongTokenType):
        parse_refresh_token(ctx.keyring, ctx.valid(), max_bytes=8192)
    with pytest.raises(WrongTokenType):
        parse_refresh_token(ctx.keyring, _rs256(ctx), max_bytes=8192)


def test_forged_refresh_token_fails_its_mac(ctx: Ctx) -> None:
    genuine = issue_refresh_token(ctx.keyring, user_id="u", session_id=SID, generation=3)
    locator = genuine.rsplit(".", 1)[0]
    for mac in (b64(secrets.token_bytes(32)), b64(hashlib.sha256(locator.encode()).digest())):
        with pytest.raises(InvalidSignature):
            parse_refresh_token(ctx.keyring, f"{locator}.{mac}", max_bytes=8192)
    # The same locator under another keyring's key of the same kid: also a forgery.
    other = Keyring.generate("HS256", kid="hs1")
    forged = issue_refresh_token(other, user_id="u", session_id=SID, generation=3)
    with pytest.raises(InvalidSignature):
        parse_refresh_token(ctx.keyring, forged, max_bytes=8192)
    # A genuine token with its generation bumped.
    bumped = genuine.replace(f".{SID}.3.", f".{SID}.4.")
    with pytest.raises(InvalidSignature):
        parse_refresh_token(ctx.keyring, bumped, max_bytes=8192)


def _refresh(c: Ctx) -> list[str]:
    token = issue_refresh_token(c.keyring, user_id="user", session_id=SID, generation=5)
    return token.split(".")


def _join(parts: list[str], index: int, value: str) -> str:
    return ".".join([*parts[:index], value, *parts[index + 1 :]])


REFRESH_MALFORMED: list[tuple[str, Callable[[Ctx], object]]] = [
    ("bytes", lambda c: ".".join(_refresh(c)).encode()),
    ("None", lambda c: None),
    ("empty", lambda c: ""),
    ("prefix only", lambda c: "rt1."),
    ("prefix rt2", lambda c: _join(_refresh(c), 0, "rt2")),
    ("prefix RT1", lambda c: _join(_refresh(c), 0, "RT1")),
    ("segment missing", lambda c: ".".join(_refresh(c)[:-1])),
    ("segment extra", lambda c: ".".join([*_refresh(c), "x"])),
    ("generation 0", lambda c: _join(_refresh(c), 3, "0")),
    ("generation leading zero", lambda c: _join(_refresh(c), 3, "05")),
    ("generation sign", lambda c: _join(_refresh(c), 3, "+5")),
    ("generation negative", lambda c: _join(_refresh(c), 3, "-5")),
    ("generation exponent", lambda c: _join(_refresh(c), 3, "5e0")),
    ("generation beyond 2**53", lambda c: _join(_refresh(c), 3, str(2**53 + 1))),
    ("generation non-ASCII digit", lambda c: _join(_refresh(c), 3, "\u0665")),
    ("session id short", lambda c: _join(_refresh(c), 2, "A" * 21)),
    ("user not canonical", lambda c: _join(_refresh(c), 1, _noncanonical(b64(b"user")))),
    ("user not UTF-8", lambda c: _join(_refresh(c), 1, b64(b"\xff\xfe"))),
    ("user empty", lambda c: _join(_refresh(c), 1, "")),
    ("kid not canonical", lambda c: _join(_refresh(c), 4, _noncanonical(b64(b"hs")))),
    ("kid not UTF-8", lambda c: _join(_refresh(c), 4, b64(b"\xff\xfe"))),
    ("mac short", lambda c: _join(_refresh(c), 5, "A" * 42)),
    ("mac padded", lambda c: ".".join(_refresh(c)) + "="),
    ("whitespace", lambda c: ".".join(_refresh(c)) + "\n"),
]


@pytest.mark.parametrize(
    "make", [case[1] for case in REFRESH_MALFORMED], ids=[c[0] for c in REFRESH_MALFORMED]
)
def test_refresh_malformed(ctx: Ctx, make: Callable[[Ctx], object]) -> None:
    with pytest.raises(MalformedToken) as caught:
        parse_refresh_token(ctx.keyring, make(ctx), max_bytes=8192)
    assert type(caught.value) is MalformedToken


def test_refresh_size_is_checked_first(ctx: Ctx) -> None:
    with pytest.raises(TokenTooLarge):
        parse_refresh_token(ctx.keyring, "rt1." + "a" * 1_000_000, max_bytes=8192)
    genuine = issue_refresh_token(ctx.keyring, user_id="u", session_id=SID, generation=1)
    with pytest.raises(TokenTooLarge):
        parse_refresh_token(ctx.keyring, genuine, max_bytes=len(genuine) - 1)


def test_refresh_unknown_or_retired_kid(ctx: Ctx) -> None:
    parts = _refresh(ctx)
    with pytest.raises(UnknownKey):
        parse_refresh_token(ctx.keyring, _join(parts, 4, b64(b"nope")), max_bytes=8192)
    keyring = Keyring.generate("HS256", kid="gone")
    token = issue_refresh_token(keyring, user_id="u", session_id=SID, generation=1)
    keyring.rotate(Keyring.generate("HS256"), grace=0)
    with pytest.raises(UnknownKey):
        parse_refresh_token(keyring, token, max_bytes=8192)


@pytest.mark.parametrize(
    "changes",
    [
        {"generation": 0},
        {"generation": -1},
        {"generation": 2**53 + 1},
        {"generation": True},
        {"generation": "1"},
        {"user_id": ""},
        {"user_id": "\ud800"},
        {"session_id": "x"},
        {"kid": "unknown"},
    ],
)
def test_issue_refresh_refuses(ctx: Ctx, changes: Mapping[str, Any]) -> None:
    arguments: dict[str, Any] = {"user_id": "u", "session_id": SID, "generation": 1, **changes}
    with pytest.raises(InvalidInput):
        issue_refresh_token(ctx.keyring, **arguments)


def test_a_forged_header_variant_is_never_cached() -> None:
    # The HMAC state after a header is kept per header text, but only once a token with
    # that header verified: a forger's variants (same key, other whitespace) never fill it.
    keyring = Keyring.generate("HS256", kid="hs-cache")
    token, _ = issue(keyring)
    key = keyring._state.keys["hs-cache"]
    verify(keyring, token)
    head, body, _ = token.split(".")
    assert list(key._prefixed) == [head.encode()]
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    variant = segment(json.dumps(header, separators=(", ", ": ")))
    forged = f"{variant}.{body}.{b64(secrets.token_bytes(32))}"
    with pytest.raises(InvalidSignature):
        verify(keyring, forged)
    assert list(key._prefixed) == [head.encode()]
    assert key.secret is not None
    mac = hmac.digest(key.secret, f"{variant}.{body}".encode("ascii"), "sha256")
    verify(keyring, f"{variant}.{body}.{b64(mac)}")  # the key holder's own variant
    assert list(key._prefixed) == [head.encode(), variant.encode()]
