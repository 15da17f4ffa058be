"""Refresh tokens: round trips under every algorithm, one MAC per generation and session,
forgeries and malformed tokens refused, issuing refused on bad input. Pure code, no Redis."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from forge import (
    ALGS,
    SID,
    Ctx,
    b64,
    noncanonical,
    rs256,
)
from sessionstore.errors import (
    InvalidInput,
    InvalidSignature,
    MalformedToken,
    TokenTooLarge,
    UnknownKey,
    WrongTokenType,
)
from sessionstore.tokens import (
    Keyring,
    RefreshClaims,
    issue_refresh_token,
    parse_refresh_token,
)


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
        parse_refresh_token(ctx.keyring, rs256(ctx), max_bytes=8192)


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
    ("user not canonical", lambda c: _join(_refresh(c), 1, noncanonical(b64(b"user")))),
    ("user not UTF-8", lambda c: _join(_refresh(c), 1, b64(b"\xff\xfe"))),
    ("user empty", lambda c: _join(_refresh(c), 1, "")),
    ("kid not canonical", lambda c: _join(_refresh(c), 4, noncanonical(b64(b"hs")))),
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
