"""Session limits as a policy: evict the least recently active, or refuse the login.

On the real engine rows (cluster included), both APIs: ``Config.session_limit="refuse"``
refuses a login at the limit with ``SessionLimitReached`` naming the live sessions and
writes nothing; ``login(max_sessions=..., at_limit=...)`` overrides both per login; bad
values are refused before any Redis call; a flood of 200 concurrent logins released by a
barrier never leaves more sessions than the limit, and every refusal is typed.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from sessionstore import (
    Config,
    Device,
    InvalidInput,
    SessionLimitReached,
    SessionStore,
    TokenPair,
    events,
)
from sessionstore.keys import user_keys
from support import StoreApi, StoreFactory, shell_of

PHONE, LAPTOP = Device(id="phone"), Device(id="laptop")
REFUSE = Config(max_sessions_per_user=3, session_limit="refuse")


def user_state(client: Any, user_id: str) -> dict[bytes, Any]:
    """Every key of the user's and what it holds (hashes whole, the index with scores)."""
    found: dict[bytes, Any] = {}
    for key in client.scan_iter(match=f"*{user_id}*", count=1000):
        kind = client.type(key)
        found[key] = (
            client.hgetall(key) if kind == b"hash" else client.zrange(key, 0, -1, withscores=True)
        )
    return found


def index_size(client: redis.Redis, user_id: str) -> int:
    return int(client.zcard(user_keys("ss", user_id).index))


async def test_a_login_at_the_limit_is_refused_and_writes_nothing(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    seen: list[events.Event] = []
    store = make_store(config=REFUSE, on_event=seen.append)
    pairs = [await store.login("alice", device=PHONE) for _ in range(3)]
    before = user_state(redis_client, "alice")
    with pytest.raises(SessionLimitReached) as refused:
        await store.login("alice", device=LAPTOP)
    assert user_state(redis_client, "alice") == before  # nothing written
    assert (refused.value.user_id, refused.value.limit) == ("alice", 3)
    assert set(refused.value.session_ids) == {p.session_id for p in pairs}
    assert [type(e) for e in seen if isinstance(e, events.LoginRefused)] == [events.LoginRefused]
    assert sorted(s.session_id for s in await store.sessions("alice")) == sorted(
        p.session_id for p in pairs
    )
    for pair in pairs:  # nobody was signed out
        assert (await store.validate(pair.access_token)).session_id == pair.session_id
    # "Sign out one of your devices to continue": then the login goes through.
    assert await store.revoke("alice", refused.value.session_ids[0])
    made = await store.login("alice", device=LAPTOP)
    assert len(await store.sessions("alice")) == 3
    assert made.session_id in {s.session_id for s in await store.sessions("alice")}


async def test_evict_stays_the_default(make_store: StoreFactory) -> None:
    store = make_store(config=Config(max_sessions_per_user=2))
    first = await store.login("bob", device=PHONE)
    await store.login("bob", device=PHONE)
    await store.login("bob", device=LAPTOP)
    left = {s.session_id for s in await store.sessions("bob")}
    assert len(left) == 2 and first.session_id not in left


async def test_a_login_overrides_the_limit_and_the_policy(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    store = make_store(config=Config(max_sessions_per_user=2))  # evict at 2
    admin = [await store.login("root", device=PHONE, max_sessions=4) for _ in range(4)]
    listed = await store.sessions("root")  # past the Config's 2: the listing shows them all
    assert {s.session_id for s in listed} == {p.session_id for p in admin}
    with pytest.raises(SessionLimitReached) as refused:
        await store.login("root", device=LAPTOP, max_sessions=4, at_limit="refuse")
    assert refused.value.limit == 4 and len(refused.value.session_ids) == 4
    assert index_size(redis_client, "root") == 4
    await store.login("root", device=LAPTOP, max_sessions=4)  # evicts one
    assert len(await store.sessions("root")) == 4
    await store.login("root", device=LAPTOP)  # the Config's 2 again: evicts down to 2
    assert len(await store.sessions("root")) == 2
    # A refusing Config, overridden to evict for one login.
    strict = make_store(config=REFUSE)
    for _ in range(3):
        await strict.login("carol", device=PHONE)
    await strict.login("carol", device=LAPTOP, at_limit="evict")
    assert len(await strict.sessions("carol")) == 3


BAD: list[dict[str, Any]] = [
    {"max_sessions": 0},
    {"max_sessions": 1001},
    {"max_sessions": True},
    {"max_sessions": "3"},
    {"max_sessions": 2.0},
    {"at_limit": "drop"},
    {"at_limit": ""},
    {"at_limit": 1},
]


@pytest.mark.parametrize("bad", BAD)
async def test_bad_limits_are_refused_before_any_write(
    make_store: StoreFactory, redis_client: redis.Redis, bad: dict[str, Any]
) -> None:
    store = make_store()
    with pytest.raises(InvalidInput):
        await store.login("dave", device=PHONE, **bad)
    assert user_state(redis_client, "dave") == {}
    # Refused locally: a store whose server is gone gives the same error, not an outage.
    nowhere = SessionStore.from_url("redis://127.0.0.1:9/0", keyring=store.keyring)
    with nowhere, pytest.raises(InvalidInput):
        nowhere.login("dave", device=PHONE, **bad)


def test_the_config_policy_is_checked() -> None:
    with pytest.raises(InvalidInput, match="session_limit"):
        Config(session_limit="drop")  # type: ignore[arg-type]
    assert Config().session_limit == "evict"


async def test_a_lost_session_does_not_count(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    store = make_store(config=REFUSE)
    pairs = [await store.login("erin", device=PHONE) for _ in range(3)]
    # Its hash lost (an eviction by memory pressure, a partial restore), its index entry left.
    redis_client.delete(user_keys("ss", "erin").session(pairs[0].session_id))
    await store.login("erin", device=LAPTOP)
    assert len(await store.sessions("erin")) == 3
    assert index_size(redis_client, "erin") == 3  # the dangling entry was dropped


async def _flood(stores: list[StoreApi], user: str, count: int) -> list[Any]:
    """``count`` logins of ``user`` at once: threads released by a barrier, spread over the
    ``stores`` as over worker processes (a sync store's pool holds 100 connections), or one
    gather per async store (a pipeline per loop turn, run concurrently in Redis)."""
    shells = [shell_of(store) for store in stores]
    if isinstance(shells[0], SessionStore):
        barrier = threading.Barrier(count)

        def one(n: int) -> Any:
            shell = shells[n % len(shells)]
            assert isinstance(shell, SessionStore)
            barrier.wait()
            try:
                return shell.login(user, device=PHONE)
            except SessionLimitReached as err:
                return err

        with ThreadPoolExecutor(count) as pool:
            return list(pool.map(one, range(count)))
    logins = (stores[n % len(stores)].login(user, device=PHONE) for n in range(count))
    return list(await asyncio.gather(*logins, return_exceptions=True))


@pytest.mark.parametrize("policy", ["refuse", "evict"])
async def test_a_login_flood_never_passes_the_limit(
    make_store: StoreFactory, redis_client: redis.Redis, policy: str
) -> None:
    # 200 logins at once on a loaded CI box: a generous socket timeout (the default 0.25 s
    # timed a pipeline of them out under load).
    config = Config(max_sessions_per_user=5, session_limit=policy, socket_timeout=10.0)  # type: ignore[arg-type]
    stores = [make_store(config=config) for _ in range(4)]
    store = stores[0]
    results = await _flood(stores, "flood", 200)
    made = [r for r in results if isinstance(r, TokenPair)]
    refused = [r for r in results if isinstance(r, SessionLimitReached)]
    assert len(made) + len(refused) == 200, [r for r in results if not isinstance(r, TokenPair)]
    live = {s.session_id for s in await store.sessions("flood")}
    assert len(live) == 5 and index_size(redis_client, "flood") == 5
    if policy == "refuse":
        assert len(made) == 5 and len(refused) == 195
        assert live == {p.session_id for p in made}  # the first five stay
        assert all(len(err.session_ids) == 5 and err.limit == 5 for err in refused)
    else:
        assert len(made) == 200 and not refused
        assert live <= {p.session_id for p in made}
