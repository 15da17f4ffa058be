"""Step-up authentication against real engines, sync and async (one body each): the
session's last proof of identity (auth time, methods, level), ``step_up``, and the
tokens and principals that carry it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest
import redis

from observe import script_calls
from sessionstore import (
    Device,
    InvalidInput,
    SessionExpired,
    SessionRevoked,
)
from sessionstore._engine.validation import principal_of
from sessionstore.keys import user_keys
from sessionstore.tokens import verify_access_token
from support import StoreApi

PHONE = Device(id="phone-1", name="Pixel 8", user_agent="Mozilla/5.0 (Linux)", ip="10.0.0.7")
AUTH_FIELDS = {b"au", b"am", b"al"}


def payload(token: str) -> dict[str, Any]:
    """The claims of a token we issued (its signature is checked elsewhere)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def server_seconds(client: redis.Redis) -> int:
    """The server's clock, whole seconds (a cluster: the first primary's)."""
    found: Any = client.time()
    if isinstance(found, dict):  # a cluster: one answer per node
        found = next(iter(found.values()))
    return int(found[0])


def snapshot(client: redis.Redis, user_id: str, session_id: str) -> dict[str, Any]:
    """Everything of a session in Redis: its hash, its TTL and its index entry."""
    keys = user_keys("ss", user_id)
    key = keys.session(session_id)
    return {
        "hash": client.hgetall(key),
        "pttl": client.pttl(key),
        "score": client.zscore(keys.index, session_id),
        "index_pttl": client.pttl(keys.index),
    }


async def test_login_records_the_sign_in(store: StoreApi, redis_client: redis.Redis) -> None:
    before = server_seconds(redis_client)
    plain = await store.login("user-1", device=PHONE)
    claims = payload(plain.access_token)
    assert "amr" not in claims and "acr" not in claims
    assert before - 1 <= claims["auth_time"] <= server_seconds(redis_client) + 1
    principal = await store.validate(plain.access_token)
    assert principal.session is not None
    assert principal.auth_time == int(principal.session.created_at)
    assert (principal.amr, principal.acr) == ((), 0)
    # The defaults cost no field: a plain login's hash holds none of the three.
    stored = snapshot(redis_client, "user-1", plain.session_id)["hash"]
    assert AUTH_FIELDS.isdisjoint(stored)

    pair = await store.login("user-1", device=PHONE, methods=["pwd", "otp", "pwd"], level=2)
    claims = payload(pair.access_token)
    assert (claims["amr"], claims["acr"]) == (["pwd", "otp"], "2")
    principal = await store.validate(pair.access_token)
    assert (principal.amr, principal.acr) == (("pwd", "otp"), 2)
    assert principal.auth_time == claims["auth_time"]
    stored = snapshot(redis_client, "user-1", pair.session_id)["hash"]
    assert (stored[b"am"], stored[b"al"]) == (b"pwd otp", b"2") and b"au" not in stored
    session = await store.get("user-1", pair.session_id)
    assert session is not None and (session.amr, session.acr) == (("pwd", "otp"), 2)


async def test_step_up_changes_only_the_proof(store: StoreApi, redis_client: redis.Redis) -> None:
    pair = await store.login("user-1", device=PHONE, methods="pwd", level=1, data={"cart": [1]})
    await store.login("user-1", device=PHONE)  # a neighbour, untouched
    before = snapshot(redis_client, "user-1", pair.session_id)
    await asyncio.sleep(0.05)
    started = server_seconds(redis_client)
    token = await store.step_up("user-1", pair.session_id, method="otp", level=2)
    after = snapshot(redis_client, "user-1", pair.session_id)

    def rest(state: dict[str, Any]) -> dict[bytes, bytes]:
        return {k: v for k, v in state["hash"].items() if k not in AUTH_FIELDS}

    assert rest(after) == rest(before)  # no slide, no other field
    assert after["score"] == before["score"]  # the index entry (idle deadline) as it was
    assert 0 < after["pttl"] <= before["pttl"]  # the TTL not extended
    assert after["hash"][b"am"] == b"pwd otp" and after["hash"][b"al"] == b"2"
    assert started <= int(after["hash"][b"au"]) <= server_seconds(redis_client)

    claims = payload(token)
    assert claims["sid"] == pair.session_id and claims["sub"] == "user-1"
    assert (claims["amr"], claims["acr"]) == (["pwd", "otp"], "2")
    assert claims["auth_time"] == int(after["hash"][b"au"])
    principal = await store.validate(token)
    assert (principal.auth_time, principal.amr, principal.acr) == (
        claims["auth_time"],
        ("pwd", "otp"),
        2,
    )
    # The old token's principal reads the session: the step-up shows there too.
    old = await store.validate(pair.access_token)
    assert (old.amr, old.acr) == (("pwd", "otp"), 2)

    # The same method again moves it last; the level is set (here: lowered) as given.
    await store.step_up("user-1", pair.session_id, method="pwd", level=1)
    stored = snapshot(redis_client, "user-1", pair.session_id)["hash"]
    assert (stored[b"am"], stored[b"al"]) == (b"otp pwd", b"1")


async def test_step_up_keeps_at_most_eight_methods(
    store: StoreApi, redis_client: redis.Redis
) -> None:
    pair = await store.login("user-1", device=PHONE)
    for n in range(10):
        await store.step_up("user-1", pair.session_id, method=f"m{n}", level=1)
    stored = snapshot(redis_client, "user-1", pair.session_id)["hash"]
    assert stored[b"am"] == b" ".join(b"m%d" % n for n in range(2, 10))
    principal = await store.validate(pair.access_token)
    assert principal.amr == tuple(f"m{n}" for n in range(2, 10))


async def test_step_up_survives_refresh(store: StoreApi) -> None:
    pair = await store.login("user-1", device=PHONE, methods="pwd", level=1)
    token = await store.step_up("user-1", pair.session_id, method="webauthn", level=3)
    stepped = payload(token)
    refreshed = await store.refresh(pair.refresh_token)  # the refresh token is unchanged
    claims = payload(refreshed.access_token)
    assert (claims["auth_time"], claims["amr"], claims["acr"]) == (
        stepped["auth_time"],
        ["pwd", "webauthn"],
        "3",
    )
    again = await store.refresh(refreshed.refresh_token)
    principal = await store.validate(again.access_token)
    assert (principal.amr, principal.acr) == (("pwd", "webauthn"), 3)
    assert principal.auth_time == stepped["auth_time"]


async def test_step_up_refuses_gone_sessions_and_writes_nothing(
    store: StoreApi, redis_client: redis.Redis
) -> None:
    keys = user_keys("ss", "user-1")
    revoked = await store.login("user-1", device=PHONE)
    await store.revoke("user-1", revoked.session_id)
    with pytest.raises(SessionRevoked):
        await store.step_up("user-1", revoked.session_id, method="otp", level=2)
    assert redis_client.exists(keys.session(revoked.session_id)) == 0
    assert redis_client.zscore(keys.index, revoked.session_id) is None
    never = "A" * 22
    with pytest.raises(SessionRevoked):
        await store.step_up("user-1", never, method="otp", level=2)
    assert redis_client.exists(keys.session(never)) == 0

    expired = await store.login("user-1", device=PHONE, idle_ttl=1)
    deadline = time.monotonic() + 5
    while redis_client.exists(keys.session(expired.session_id)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    with pytest.raises(SessionRevoked) as caught:
        await store.step_up("user-1", expired.session_id, method="otp", level=2)
    assert isinstance(caught.value, SessionExpired)
    assert redis_client.exists(keys.session(expired.session_id)) == 0
    assert redis_client.zscore(keys.index, expired.session_id) is None
    with pytest.raises(SessionRevoked):
        await store.validate(revoked.access_token)


@pytest.mark.parametrize(
    ("user_id", "session_id", "method", "level"),
    [
        ("user-1", None, "OTP", 2),  # upper case: not RFC 8176's shape
        ("user-1", None, "", 2),
        ("user-1", None, "o t p", 2),
        ("user-1", None, "x" * 33, 2),
        ("user-1", None, 7, 2),
        ("user-1", None, "otp", 0),
        ("user-1", None, "otp", 10),
        ("user-1", None, "otp", True),
        ("user-1", None, "otp", "2"),
        ("user-1", "not-a-session-id", "otp", 2),
        ("", None, "otp", 2),
        ("a\x00b", None, "otp", 2),
    ],
)
async def test_step_up_refuses_bad_input_before_redis(
    store: StoreApi,
    redis_client: redis.Redis,
    user_id: str,
    session_id: str | None,
    method: Any,
    level: Any,
) -> None:
    pair = await store.login("user-1", device=PHONE)
    before = snapshot(redis_client, "user-1", pair.session_id)
    calls = script_calls(redis_client)
    with pytest.raises(InvalidInput):
        await store.step_up(user_id, session_id or pair.session_id, method=method, level=level)
    assert script_calls(redis_client) == calls
    assert snapshot(redis_client, "user-1", pair.session_id)["hash"] == before["hash"]


@pytest.mark.parametrize(
    ("methods", "level"),
    [("PWD", 0), (["pwd", ""], 0), ([f"m{n}" for n in range(9)], 0), ("pwd", 10), ((), -1)],
)
async def test_login_refuses_bad_methods_and_levels(
    store: StoreApi, redis_client: redis.Redis, methods: Any, level: Any
) -> None:
    calls = script_calls(redis_client)
    with pytest.raises(InvalidInput):
        await store.login("user-1", device=PHONE, methods=methods, level=level)
    assert script_calls(redis_client) == calls


async def test_degraded_principal_reads_the_token(store: StoreApi) -> None:
    pair = await store.login("user-1", device=PHONE, methods="pwd", level=1)
    token = await store.step_up("user-1", pair.session_id, method="otp", level=2)
    claims = verify_access_token(store.keyring, token, config=store.config, now=time.time())
    principal = principal_of(claims, session=None)
    assert principal.degraded
    assert (principal.auth_time, principal.amr, principal.acr) == (
        payload(token)["auth_time"],
        ("pwd", "otp"),
        2,
    )


def test_token_claims_are_checked() -> None:
    """A signed token with a malformed auth claim is refused (InvalidClaim), never trusted."""
    from sessionstore import Config, Keyring
    from sessionstore.errors import InvalidClaim

    keyring = Keyring.generate("HS256")
    config = Config()
    key = keyring._signer(None)
    now = int(time.time())
    base = {
        "iss": config.issuer,
        "aud": config.audience,
        "sub": "user-1",
        "sid": "A" * 22,
        "jti": "j",
        "iat": now,
        "exp": now + 60,
    }
    headers = {"kid": key.kid, "typ": "at+jwt"}
    bad: dict[str, Any]
    for bad in (
        {"auth_time": "1"},
        {"auth_time": -1},
        {"amr": "pwd"},
        {"amr": []},
        {"amr": ["PWD"]},
        {"amr": [f"m{n}" for n in range(9)]},
        {"acr": 2},
        {"acr": "0"},
        {"acr": "10"},
    ):
        token = jwt.encode(base | bad, key.signing_key, algorithm=key.alg, headers=headers)
        with pytest.raises(InvalidClaim):
            verify_access_token(keyring, token, config=config, now=now)
    good = base | {"auth_time": now, "amr": ["pwd"], "acr": "2", "role": "x"}
    token = jwt.encode(good, key.signing_key, algorithm=key.alg, headers=headers)
    claims = verify_access_token(keyring, token, config=config, now=now)
    assert (claims.auth_time, claims.amr, claims.acr, claims.claims) == (
        now,
        ("pwd",),
        2,
        {"role": "x"},
    )


async def test_login_refuses_the_auth_claims_as_its_own(store: StoreApi) -> None:
    for name in ("auth_time", "amr", "acr"):
        with pytest.raises(InvalidInput):
            await store.login("user-1", device=PHONE, claims={name: 1})
