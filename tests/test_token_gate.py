"""The pre-decode gate of access tokens: every malformed, oversized, mis-headed, forged or
mis-claimed token is refused with its own error before any work it could make expensive;
the genuine variants pass. Hostile tokens are built by hand (base64url of crafted JSON,
HMAC under the real key where the signature must be valid) so that each case reaches
exactly the check it targets. Pure code, no Redis."""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable

import pytest

from forge import (
    CONFIG,
    HEADER,
    NOW,
    SID,
    Ctx,
    b64,
    noncanonical,
    payload,
    rs256,
    segment,
    verify,
)
from sessionstore.errors import (
    DisallowedAlgorithm,
    InvalidClaim,
    InvalidHeader,
    InvalidSignature,
    InvalidToken,
    MalformedToken,
    TokenExpired,
    TokenTooLarge,
    UnknownKey,
    WrongTokenType,
)
from sessionstore.tokens import issue_refresh_token

Case = tuple[str, Callable[[Ctx], object], type[InvalidToken]]


def _noncanonical_header(c: Ctx) -> str:
    # 43 bytes of JSON (a trailing space is legal) leave 4 unused bits in the last character.
    token = c.hs(header=json.dumps(HEADER, separators=(",", ":")) + " ")
    verify(c.keyring, token)  # the canonical form is fine
    head, rest = token.split(".", 1)
    return f"{noncanonical(head)}.{rest}"


def _noncanonical_signature(c: Ctx) -> str:
    signing, signature = c.valid().rsplit(".", 1)
    return f"{signing}.{noncanonical(signature)}"


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
    ("RS256 truncated signature", lambda c: rs256(c, cut=4), InvalidSignature),
    ("RS256 signature of another token", lambda c: rs256(c)[:-10] + "A" * 10, InvalidSignature),
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


def test_refusals_never_echo_the_token(ctx: Ctx) -> None:
    for make, _ in [case[1:] for case in SHAPE + HEADERS + SIGNATURES + PAYLOADS]:
        token = make(ctx)
        with pytest.raises(InvalidToken) as caught:
            verify(ctx.keyring, token)
        if isinstance(token, str) and len(token) > 8:
            assert token[:40] not in str(caught.value)
