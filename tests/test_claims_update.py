"""Claims changed in place against real engines, sync and async (one body each):
``update(claims=...)`` is what the next validation (hot or cold, this store or another)
and the next refresh carry, and bad input is refused before Redis."""

from __future__ import annotations

import asyncio
import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

import jwt
import pytest
import redis

from observe import script_calls
from sessionstore import (
    Config,
    Device,
    InvalidInput,
    Keyring,
    SessionExpired,
    SessionRevoked,
    SessionStore,
)
from sessionstore.keys import user_keys
from support import StoreApi, StoreFactory, served_from_cache, warm

PHONE = Device(id="phone-1", name="Pixel 8", user_agent="Mozilla/5.0 (Linux)", ip="10.0.0.7")
USER = {"roles": ["user"], "tenant": "acme"}
ADMIN = {"roles": ["admin"], "tenant": "acme"}


def payload(token: str) -> dict[str, Any]:
    """The claims of a token we issued (its signature is checked elsewhere)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def stored(client: redis.Redis, user_id: str, session_id: str) -> dict[str, Any]:
    """A session's hash, TTL and index entry as Redis holds them."""
    keys = user_keys("ss", user_id)
    key = keys.session(session_id)
    return {
        "hash": client.hgetall(key),
        "pttl": client.pttl(key) // 1000,
        "score": client.zscore(keys.index, session_id),
    }


async def test_new_claims_reach_every_validation_and_the_next_refresh(
    store: StoreApi, make_store: StoreFactory
) -> None:
    pair = await store.login("user-1", device=PHONE, claims=USER, data={"cart": [1]})
    other = make_store()  # another process' store: its own near cache and listener
    await warm(store, pair.access_token)
    await warm(other, pair.access_token)
    assert (await other.validate(pair.access_token)).claims == USER

    session = await store.update("user-1", pair.session_id, claims=ADMIN)
    assert session.claims == ADMIN and session.data == {"cart": [1]}
    # At once, as a revocation would be: the hot path of both stores, and a cold store.
    assert (await store.validate(pair.access_token)).claims == ADMIN
    assert (await other.validate(pair.access_token)).claims == ADMIN
    cold = make_store()
    assert (await cold.validate(pair.access_token)).claims == ADMIN
    # The token itself still says what it was signed with; the next refresh signs the new.
    assert payload(pair.access_token)["roles"] == ["user"]
    fresh = await store.refresh(pair.refresh_token)
    assert payload(fresh.access_token)["roles"] == ["admin"]
    assert (await other.validate(fresh.access_token)).claims == ADMIN
    got = await store.get("user-1", pair.session_id)
    assert got is not None and got.claims == ADMIN and got.device == PHONE


async def test_claims_and_data_change_apart_or_together(
    store: StoreApi, redis_client: redis.Redis
) -> None:
    pair = await store.login("user-1", device=PHONE, claims=USER, data={"a": 1})
    before = stored(redis_client, "user-1", pair.session_id)
    # Claims only: the data and every other field stay, the deadlines are not slid.
    await store.update("user-1", pair.session_id, claims=ADMIN)
    after = stored(redis_client, "user-1", pair.session_id)
    meta = {k for k in after["hash"] if k.startswith(b"m")}
    rest = {k: v for k, v in after["hash"].items() if k not in meta}
    assert rest == {k: v for k, v in before["hash"].items() if not k.startswith(b"m")}
    assert after["score"] == before["score"] and after["pttl"] <= before["pttl"]
    # Data only: the claims stay.
    session = await store.update("user-1", pair.session_id, data={"b": 2})
    assert (session.claims, session.data) == (ADMIN, {"b": 2})
    # Both, and claims that need more meta chunks than before, then fewer again.
    big = {"roles": [f"r{n}" for n in range(60)]}
    session = await store.update("user-1", pair.session_id, data={}, claims=big)
    assert (session.claims, session.data) == (big, {})
    assert (await store.validate(pair.access_token)).claims == big
    session = await store.update("user-1", pair.session_id, claims={})
    assert session.claims == {} and session.device == PHONE
    fields: dict[bytes, bytes] = stored(redis_client, "user-1", pair.session_id)["hash"]
    assert {k for k in fields if k.startswith(b"m")} == {b"m0"}
    assert (await store.validate(pair.access_token)).claims == {}


async def test_a_long_device_keeps_its_texts(store: StoreApi) -> None:
    # Device texts of every msgpack string size (fixstr, str8, str16) before the claims.
    device = Device(id="d", name="n" * 31, user_agent="u" * 1024, ip="1" * 40)
    pair = await store.login("user-1", device=device, claims=USER)
    session = await store.update("user-1", pair.session_id, claims=ADMIN)
    assert session.device == device and session.claims == ADMIN
    principal = await store.validate(pair.access_token)
    assert principal.session is not None and principal.session.device == device


async def test_gone_sessions_are_refused_and_nothing_is_written(
    store: StoreApi, redis_client: redis.Redis
) -> None:
    pair = await store.login("user-1", device=PHONE, claims=USER)
    await store.revoke("user-1", pair.session_id)
    keys_before = sorted(redis_client.scan_iter(match="ss:*"))
    with pytest.raises(SessionRevoked):
        await store.update("user-1", pair.session_id, claims=ADMIN)
    with pytest.raises(SessionRevoked):
        await store.update("user-1", "A" * 22, claims=ADMIN)
    assert sorted(redis_client.scan_iter(match="ss:*")) == keys_before


async def test_an_expired_session_is_refused(make_store: StoreFactory) -> None:
    store = make_store(config=Config(idle_ttl=1, absolute_ttl=1, access_ttl=1))
    pair = await store.login("user-1", device=PHONE)
    await asyncio.sleep(1.1)
    with pytest.raises((SessionExpired, SessionRevoked)):
        await store.update("user-1", pair.session_id, claims=ADMIN)


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "someone-else"},
        {"roles": ["admin"], "exp": 1},
        {"acr": "9"},
        {"blob": "x" * 2000},
        {1: "not a str key"},
        ["roles"],
    ],
)
async def test_bad_claims_are_refused_before_redis(
    store: StoreApi, open_store: StoreFactory, redis_client: redis.Redis, claims: Any
) -> None:
    pair = await store.login("user-1", device=PHONE, claims=USER)
    before = stored(redis_client, "user-1", pair.session_id)
    calls = script_calls(redis_client)
    with pytest.raises(InvalidInput):
        await store.update("user-1", pair.session_id, claims=claims)
    assert script_calls(redis_client) == calls
    assert stored(redis_client, "user-1", pair.session_id)["hash"] == before["hash"]
    # Nothing listens on port 1: the refusal is made before any connection.
    dead = open_store("redis://127.0.0.1:1/0")
    with pytest.raises(InvalidInput):
        await dead.update("user-1", pair.session_id, claims=claims)


async def test_an_update_needs_something_to_change(open_store: StoreFactory) -> None:
    dead = open_store("redis://127.0.0.1:1/0")
    with pytest.raises(InvalidInput, match="data= or claims="):
        await dead.update("user-1", "A" * 22)
    with pytest.raises(InvalidInput):
        await dead.update("user-1", "not a session id!", claims=ADMIN)


def validate_hot_then_again(url: str, jwks: dict[str, Any], token: str, conn: Connection) -> None:
    """Child process: validate ``token`` until the near cache serves it, report its claims,
    then, told to, validate once more and report them again."""
    with SessionStore.from_url(url, keyring=Keyring.from_jwks(jwks)) as store:
        if not served_from_cache(store, token):
            conn.send("cold")
            return
        conn.send(store.validate(token).claims)
        conn.recv()
        conn.send(store.validate(token).claims)


def test_another_process_sees_new_claims_at_once(redis_url: str) -> None:
    keyring = Keyring.generate("HS256")
    with SessionStore.from_url(redis_url, keyring=keyring) as store:
        pair = store.login("user-1", device=PHONE, claims=USER)
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=validate_hot_then_again,
            args=(redis_url, keyring.to_private_jwks(), pair.access_token, child),
        )
        process.start()
        try:
            assert parent.poll(30) and parent.recv() == USER  # served from its near cache
            store.update("user-1", pair.session_id, claims=ADMIN)
            parent.send("go")  # after update returned: the next validation there
            assert parent.poll(15) and parent.recv() == ADMIN
        finally:
            process.join(15)
            if process.is_alive():
                process.kill()
                process.join()
