"""Login rate limiting: GCRA in one Lua script, per account and per IP, with a retry-after."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis

from observe import script_calls
from sessionstore import AsyncSessionStore, Config, InvalidInput, ScriptError, SessionStore
from sessionstore._engine.fallback import Breaker
from sessionstore.ratelimit import (
    AsyncLoginRateLimiter,
    Decision,
    LocalLimiter,
    LoginRateLimiter,
    Rate,
    gcra,
    normalize_account,
)
from sessionstore.testing import LocalServer

Hit = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
async def limiter_factory(
    request: pytest.FixtureRequest, redis_url: str
) -> AsyncIterator[Callable[..., Hit]]:
    """Builds limiters of one mode on a store's client (a cluster client on the cluster
    engine); ``hit`` is always awaitable."""
    stores: list[Any] = []

    def make(**options: Any) -> Hit:
        if request.param == "sync":
            store = SessionStore.from_url(redis_url)
            stores.append(store)
            limiter = LoginRateLimiter.for_store(store, **options)

            async def hit(account: str, ip: str | None = None) -> Decision:
                return limiter.hit(account, ip)

            return hit
        async_store = AsyncSessionStore.from_url(redis_url)
        stores.append(async_store)
        return AsyncLoginRateLimiter.for_store(async_store, **options).hit

    yield make
    for store in stores:
        if isinstance(store, AsyncSessionStore):
            await store.close()
        else:
            store.close()


async def test_the_sixth_attempt_in_a_minute_is_refused_with_a_retry_after(
    limiter_factory: Callable[..., Hit],
    redis_client: redis.Redis,
    keyspace_audit: Callable[..., None],
) -> None:
    hit = limiter_factory()  # the defaults: 5 per minute per account, 30 per IP
    decisions = [await hit("alice", "203.0.113.7") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    refused = decisions[5]
    assert refused.limited_by == "account" and not refused.local
    assert 0 < refused.retry_after <= 12  # GCRA: one more attempt every 60 s / 5
    assert refused.retry_after_header in {str(n) for n in range(1, 13)}
    assert (await hit("bob", "203.0.113.7")).allowed  # another account has its own budget
    keyspace_audit(redis_client, "ss")  # namespaced keys, each with a TTL
    ttls = [redis_client.pttl(k) for k in redis_client.scan_iter("ss:*:rl:login")]
    assert len(ttls) == 3 and all(0 < ttl <= 60_000 for ttl in ttls)


async def test_counters_expire(
    limiter_factory: Callable[..., Hit], redis_client: redis.Redis
) -> None:
    hit = limiter_factory(per_account=Rate(3, 0.3), per_ip=None)
    assert [(await hit("carol")).allowed for _ in range(4)] == [True, True, True, False]
    (key,) = list(redis_client.scan_iter("ss:*:rl:login"))
    assert 0 < redis_client.pttl(key) <= 300
    deadline = time.monotonic() + 5
    while redis_client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not redis_client.exists(key), "the counter outlived its period"
    again = await hit("carol")
    assert again.allowed and again.remaining == 2  # a full budget again


async def test_an_ip_is_limited_across_accounts_and_spends_no_account_budget(
    limiter_factory: Callable[..., Hit], redis_client: redis.Redis
) -> None:
    hit = limiter_factory(per_ip=Rate(3, 60))
    assert all([(await hit(f"user-{n}", "198.51.100.1")).allowed for n in range(3)])
    refused = await hit("dave", "198.51.100.1")
    assert not refused.allowed and refused.limited_by == "ip"
    accounts = [k for k in redis_client.scan_iter("ss:*:rl:login") if b"{ip." not in k]
    assert len(accounts) == 3  # dave's budget was never touched
    assert (await hit("dave", "198.51.100.2")).allowed  # another address is fine


async def test_ipv6_counts_per_64(limiter_factory: Callable[..., Hit]) -> None:
    hit = limiter_factory(per_ip=Rate(2, 60), per_account=None)
    assert (await hit("a", "2001:db8:1:2::1")).allowed
    assert (await hit("b", "2001:db8:1:2:ffff::9")).allowed
    assert not (await hit("c", "2001:db8:1:2::77")).allowed  # the same /64
    assert (await hit("d", "2001:db8:1:3::1")).allowed  # the next /64


def test_bad_input_is_refused_before_any_redis_call(fault_server: LocalServer) -> None:
    redis_client = redis.Redis.from_url(fault_server.url)
    limiter = LoginRateLimiter(redis_client)
    before = script_calls(redis_client)
    for account, ip in (("", None), ("x" * 257, None), ("ok", ""), ("ok", "1" * 65)):
        with pytest.raises(InvalidInput):
            limiter.hit(account, ip)
    assert script_calls(redis_client) == before
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidInput):
            Rate(bad, 60)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        Rate(5, 0)
    with pytest.raises(InvalidInput):
        LoginRateLimiter(redis_client, fallback="open")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        LoginRateLimiter(redis_client, namespace="a:b")
    with pytest.raises(InvalidInput):
        LoginRateLimiter(redis_client, normalize="lower")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        LoginRateLimiter(redis_client, breaker_failures=0)
    with pytest.raises(InvalidInput):
        limiter.hit("\u200b")  # invisible only: empty once normalized
    assert script_calls(redis_client) == before
    redis_client.close()


@pytest.fixture
def dead_client(fault_server: LocalServer) -> Iterator[redis.Redis]:
    """A client whose server has crashed."""
    client = redis.Redis.from_url(fault_server.url, socket_timeout=0.5)
    fault_server.kill()
    try:
        yield client
    finally:
        client.close()


def test_unreachable_redis_falls_back_to_an_in_process_limiter(dead_client: redis.Redis) -> None:
    limiter = LoginRateLimiter(dead_client)
    decisions = [limiter.hit("erin", "192.0.2.5") for _ in range(6)]
    assert all(d.local and d.unavailable for d in decisions)
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert 0 < decisions[-1].retry_after <= 12


def test_unreachable_redis_fails_closed_when_asked(dead_client: redis.Redis) -> None:
    decision = LoginRateLimiter(dead_client, fallback="closed").hit("erin")
    assert not decision.allowed and decision.unavailable and not decision.local


def test_a_redis_error_reply_is_a_script_error(fault_server: LocalServer) -> None:
    client = redis.Redis.from_url(fault_server.url)
    try:
        client.lpush("ss:{ip.MTkyLjAuMi41}:rl:login", "x")
        client.expire("ss:{ip.MTkyLjAuMi41}:rl:login", 60)
        with pytest.raises(ScriptError):
            LoginRateLimiter(client).hit("erin", "192.0.2.5")  # GET on a list: WRONGTYPE
    finally:
        client.close()


def test_the_python_mirror_agrees_with_the_script() -> None:
    rate = Rate(5, 60)
    local = LocalLimiter()
    answers = [local.hit("k", rate, now_ms=1000.0) for _ in range(6)]
    assert [a[0] for a in answers] == [True] * 5 + [False]
    assert answers[-1][2] == 12_000  # exactly one emission interval
    assert local.hit("k", rate, now_ms=13_000.0)[0]  # 12 s later, one more
    allowed, tat, remaining, retry = gcra(None, 0.0, rate)
    assert (allowed, tat, remaining, retry) == (True, 12_000.0, 4, 0.0)


SPELLINGS = (
    "alice",
    "Alice",
    "ALICE",
    "\uff41\uff4c\uff49\uff43\uff45",  # full-width
    " alice ",
    "alice\u3000",  # ideographic space
    "al\u200bice",  # zero-width space
    "\ufeffalice",  # BOM
    "ali\u200dce",  # zero-width joiner
    "AL\u00adICE",  # soft hyphen
)


def test_normalize_account() -> None:
    assert {normalize_account(s) for s in SPELLINGS} == {"alice"}
    assert normalize_account("Straße") == "strasse"
    assert normalize_account("ﬁnn") == "finn"  # the fi ligature


async def test_spellings_of_one_account_share_one_budget(
    limiter_factory: Callable[..., Hit], redis_client: redis.Redis
) -> None:
    hit = limiter_factory(per_ip=None)
    decisions = [await hit(spelling) for spelling in SPELLINGS]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * (len(SPELLINGS) - 5)
    assert len(list(redis_client.scan_iter("ss:*:rl:login"))) == 1
    with pytest.raises(InvalidInput):
        await hit("\u200b \u200c")  # nothing left once normalized: refused, no Redis call


async def test_normalize_can_be_replaced_or_turned_off(
    limiter_factory: Callable[..., Hit],
) -> None:
    exact = limiter_factory(per_ip=None, normalize=None, name="exact")
    assert all([(await exact(spelling)).allowed for spelling in SPELLINGS])
    folded = limiter_factory(per_ip=None, normalize=str.lower, name="lower")
    assert [(await folded(s)).allowed for s in ("Bob", "BOB", "bob", "bOb", "boB", "BoB")] == [
        True
    ] * 5 + [False]


class CountingRedis(redis.Redis):
    """A plain redis-py client (its default retries and backoff) that counts its commands."""

    sent = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent += 1
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


def test_with_redis_down_the_breaker_answers_without_waiting_on_the_client(
    fault_server: LocalServer,
) -> None:
    """Once Redis is known down, attempts skip the client (and its retries and backoff) and
    the local budget holds: 5 of 8 quick attempts, not one per retry cycle."""
    client = CountingRedis(host=fault_server.host, port=fault_server.port)
    fault_server.kill()
    try:
        limiter = LoginRateLimiter(client, per_account=Rate(5, 600), breaker_failures=1)
        limiter.breaker = Breaker(1, 3600)  # no probe during the test
        decisions = [limiter.hit("erin", "192.0.2.5") for _ in range(8)]
        assert client.sent == 1  # the first attempt found Redis down; the rest never asked
        assert all(d.local and d.unavailable for d in decisions)
        assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
    finally:
        client.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_the_limiter_breaker_probes_and_finds_redis_again(
    fault_server: LocalServer, mode: str
) -> None:
    options: dict[str, Any] = {"breaker_failures": 1, "breaker_reset": 0.05}
    if mode == "sync":
        store: Any = SessionStore.from_url(fault_server.url)
        limiter: Any = LoginRateLimiter.for_store(store, **options)
    else:
        store = AsyncSessionStore.from_url(fault_server.url)
        limiter = AsyncLoginRateLimiter.for_store(store, **options)

    async def hit(account: str) -> Decision:
        answer = limiter.hit(account)
        return await answer if mode == "async" else answer  # type: ignore[no-any-return]

    try:
        assert not (await hit("frank")).local
        fault_server.kill()
        assert (await hit("frank")).local
        assert limiter.breaker.is_open
        fault_server.restart()
        deadline = time.monotonic() + 10
        while (await hit("grace")).local:
            assert time.monotonic() < deadline, "the limiter never went back to Redis"
            time.sleep(0.06)
        assert not limiter.breaker.is_open
    finally:
        if mode == "async":
            await store.close()
        else:
            store.close()


async def test_a_cancelled_probe_does_not_keep_the_limiter_on_its_fallback(
    fault_server: LocalServer,
) -> None:
    """A login request cancelled while its hit was the breaker's probe (a client that went
    away): another hit probes later, and Redis is found again once it answers."""
    store = AsyncSessionStore.from_url(fault_server.url, config=Config(socket_timeout=0.5))
    limiter = AsyncLoginRateLimiter.for_store(store, breaker_failures=1, breaker_reset=0.05)
    try:
        fault_server.pause()  # stalled: every call waits out its socket timeout
        assert (await limiter.hit("henry")).local
        assert limiter.breaker.is_open
        time.sleep(0.06)  # the next hit is the probe
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(limiter.hit("henry"), timeout=0.1)
        fault_server.resume()
        deadline = time.monotonic() + 10
        while (await limiter.hit("irene")).local:
            assert time.monotonic() < deadline, "no probe after the cancelled one"
            await asyncio.sleep(0.06)
    finally:
        fault_server.resume()
        await store.close()
