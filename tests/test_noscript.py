"""A server that forgot its scripts (SCRIPT FLUSH, a restart): every path loads them again.

Scripts run by EVALSHA; NOSCRIPT is answered by EVAL of the full source, which runs the
call and loads the script again. Each test flushes the scripts before every call, on
every engine row (one server: the direct path of plain clients; a cluster, or a client
with retries: redis-py's path and its pipeline), in sync and async mode. The batched
validations of the async store after a flush: tests/test_fastpath.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from sessionstore import AsyncSessionStore, Config, Device, Keyring, SessionStore
from sessionstore.ratelimit import AsyncLoginRateLimiter, LoginRateLimiter
from sessionstore.testing import Engine
from support import SyncAdapter

PHONE = Device(id="phone-1", name="Pixel", user_agent="Mozilla/5.0 (Linux; Android 14)")


def evals(client: redis.Redis) -> int:
    """How many EVALs the server has run so far (a cluster's admin client sums INFO over
    its primaries)."""
    entry = client.info("commandstats").get("cmdstat_eval", {})
    return int(entry.get("calls", 0))


async def flushed(client: redis.Redis, call: Awaitable[Any]) -> Any:
    """``call``'s result, awaited just after SCRIPT FLUSH; it had to load its script again."""
    client.script_flush()
    before = evals(client)
    result = await call
    assert evals(client) > before, "NOSCRIPT was not answered with EVAL"
    return result


@pytest.fixture(params=["from_url", "retries"])
async def stores(
    request: pytest.FixtureRequest, mode: str, redis_url: str, engine: Engine
) -> AsyncIterator[Callable[..., Any]]:
    """Stores of the test's mode: from a URL (one server: the direct path), or on a client
    with driver retries of the test's own (redis-py's path, its pipeline for batches)."""
    if request.param == "retries" and engine.cluster is not None:
        pytest.skip("a cluster takes redis-py's path from a URL already")
    async with contextlib.AsyncExitStack() as stack:

        def make(config: Config) -> Any:
            keyring = Keyring.generate("HS256")
            if mode == "sync":
                if request.param == "from_url":
                    store = SessionStore.from_url(redis_url, keyring=keyring, config=config)
                else:
                    client = redis.Redis.from_url(redis_url, retry=Retry(NoBackoff(), 1))
                    stack.callback(client.close)
                    store = SessionStore(client, keyring=keyring, config=config)
                stack.callback(store.close)
                return SyncAdapter(store)
            if request.param == "from_url":
                astore = AsyncSessionStore.from_url(redis_url, keyring=keyring, config=config)
            else:
                aclient = redis.asyncio.Redis.from_url(redis_url, retry=AsyncRetry(NoBackoff(), 1))
                stack.push_async_callback(aclient.aclose)
                astore = AsyncSessionStore(aclient, keyring=keyring, config=config)
            stack.push_async_callback(astore.close)
            return astore

        yield make


async def test_every_operation_loads_its_script_again(
    stores: Callable[..., Any], redis_client: redis.Redis
) -> None:
    # touch_interval=0: every validation runs the check script after its read.
    store = stores(Config(touch_interval=0))
    pair = await flushed(redis_client, store.login("user-1", device=PHONE))
    principal = await flushed(redis_client, store.validate(pair.access_token))
    assert principal.session_id == pair.session_id and not principal.degraded
    pair = await flushed(redis_client, store.refresh(pair.refresh_token))
    session = await flushed(redis_client, store.update("user-1", pair.session_id, data={"a": 1}))
    assert session.data == {"a": 1}
    assert await flushed(redis_client, store.touch("user-1", pair.session_id))
    other = await flushed(redis_client, store.login("user-1", device=PHONE))
    listed = await flushed(redis_client, store.sessions("user-1"))
    assert {s.session_id for s in listed} == {pair.session_id, other.session_id}
    assert await flushed(redis_client, store.revoke("user-1", other.session_id))
    assert await flushed(redis_client, store.logout(pair.access_token))
    assert await flushed(redis_client, store.sessions("user-1")) == []


async def test_concurrent_callers_each_load_the_script_again(
    stores: Callable[..., Any], redis_client: redis.Redis
) -> None:
    """One batch of calls that all meet NOSCRIPT (the async store sends them together)."""
    store = stores(Config(touch_interval=0))
    pairs = [await store.login(f"user-{n}", device=PHONE) for n in range(20)]
    for _ in range(2):
        calls = asyncio.gather(*(store.validate(p.access_token) for p in pairs))
        results = await flushed(redis_client, calls)
        assert [r.session_id for r in results] == [p.session_id for p in pairs]
        assert not any(r.degraded for r in results)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_the_rate_limiter_loads_its_script_again(
    mode: str, redis_url: str, redis_client: redis.Redis
) -> None:
    def limit(store: Any) -> Callable[..., Awaitable[Any]]:
        if mode == "async":
            return AsyncLoginRateLimiter.for_store(store).hit
        limiter = LoginRateLimiter.for_store(store)

        async def hit(account: str, ip: str | None = None) -> Any:
            return limiter.hit(account, ip)

        return hit

    store_type = SessionStore if mode == "sync" else AsyncSessionStore
    store = store_type.from_url(redis_url)
    try:
        hit = limit(store)
        # Two steps per attempt (the IP's budget, then the account's): the first reloads.
        for n in range(5):
            decision = await flushed(redis_client, hit("alice", ip="10.0.0.7"))
            assert decision.allowed and not decision.unavailable
            assert decision.remaining == 4 - n
        decision = await flushed(redis_client, hit("alice", ip="10.0.0.7"))
        assert not decision.allowed and decision.limited_by == "account"
        assert not decision.unavailable
    finally:
        if isinstance(store, AsyncSessionStore):
            await store.close()
        else:
            store.close()
