"""The fast paths of validation return exactly what the plain paths would.

Guards, against real servers: the direct I/O path (hand-packed RESP on the client's own
connections; the async batcher's pipelining on one held connection) and who takes it,
per-caller outcomes in one batch, a connection lost mid-batch (degraded answers, then
recovery), an idle connection the server closed, the HMGET read and its follow-ups (a
touch that is due, blobs larger than its slots), the caches' doorkeeper, threads sharing
the sync store, and the token gate's JSON fast path. NOSCRIPT after SCRIPT FLUSH:
tests/test_noscript.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import pytest
import redis
import redis.asyncio
import redis.cluster
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from forge import segment
from observe import cache_serves, session_keys
from sessionstore import (
    AsyncSessionStore,
    Config,
    Device,
    InvalidSignature,
    Keyring,
    MalformedToken,
    ScriptError,
    SessionExpired,
    SessionRevoked,
    SessionStore,
    events,
)
from sessionstore._jose import strict as _strict
from sessionstore._nearcache.cache import TokenCache
from sessionstore._redis.batch import WRITE_AT
from sessionstore.keys import user_keys
from sessionstore.testing import Engine, LocalServer
from support import StoreApi, StoreFactory, internals, single_node, wrong_type_session

PHONE = Device(id="phone-1", name="Pixel", user_agent="Mozilla/5.0 (Linux; Android 14)", ip="::1")
# Blobs past the HMGET's slots (8 meta chunks, 4 data chunks of 64 bytes): the whole hash
# is read in a second step.
BIG = Device(id="big-1", name="Big", user_agent="M" * 1000, ip="10.0.0.1")
BIG_DATA: dict[str, Any] = {"cart": list(range(200))}


def commands(client: redis.Redis, name: str) -> int:
    """How many times the server (every primary) ran command ``name`` so far."""
    stats = client.info("commandstats")
    if isinstance(client, redis.cluster.RedisCluster) and not any(
        str(k).startswith("cmdstat_") for k in stats
    ):
        return sum(int(node.get(f"cmdstat_{name}", {}).get("calls", 0)) for node in stats.values())
    entry = stats.get(f"cmdstat_{name}", {})
    return int(entry.get("calls", 0)) if isinstance(entry, dict) else 0


async def validate_all(store: StoreApi, tokens: list[str]) -> list[Any]:
    """Every token validated concurrently (one batch in async mode), outcomes in order."""
    return await asyncio.gather(*(store.validate(t) for t in tokens), return_exceptions=True)


# --- who takes the direct path ------------------------------------------------------------


async def test_stores_from_url_take_the_direct_path_on_one_server(
    store: StoreApi, engine: Engine
) -> None:
    assert internals(store).takes_direct_path() == (engine.cluster is None)
    pair = await store.login("user-1", device=PHONE)
    assert (await store.validate(pair.access_token)).session_id == pair.session_id


@pytest.mark.parametrize(
    ("options", "direct"),
    [
        ({}, True),
        ({"retry": 2}, False),  # the user's retries apply (a Retry of each client's kind)
        ({"retry_on_timeout": True}, False),
        ({"protocol": 3}, False),  # RESP3 interleaves pushes with replies
        ({"single_connection_client": True}, False),
    ],
    ids=["plain", "retries", "retry_on_timeout", "resp3", "single_connection"],
)
async def test_user_clients_take_the_direct_path_only_when_plain(
    redis_url: str, engine: Engine, keyring: Keyring, options: dict[str, Any], direct: bool
) -> None:
    single_node(engine)
    sync_options, async_options = dict(options), dict(options)
    if "retry" in options:  # redis-py 8 warns when an asyncio client is given a sync Retry
        sync_options["retry"] = Retry(NoBackoff(), options["retry"])
        async_options["retry"] = AsyncRetry(NoBackoff(), options["retry"])
    sync_client = redis.Redis.from_url(redis_url, **sync_options)
    async_client = redis.asyncio.Redis.from_url(redis_url, **async_options)
    try:
        sync_store = SessionStore(sync_client, keyring=keyring)
        async_store = AsyncSessionStore(async_client, keyring=keyring)
        assert internals(sync_store).takes_direct_path() is direct
        assert internals(async_store).takes_direct_path() is direct
        pair = sync_store.login("user-1", device=PHONE)
        for _ in range(2):  # first sighting, then through the caches' admission
            assert sync_store.validate(pair.access_token).session_id == pair.session_id
            assert (await async_store.validate(pair.access_token)).session_id == pair.session_id
        await async_store.revoke("user-1", pair.session_id)
        with pytest.raises(SessionRevoked):
            sync_store.validate(pair.access_token)
        with pytest.raises(SessionRevoked):
            await async_store.validate(pair.access_token)
        sync_store.close()
        await async_store.close()
    finally:
        sync_client.close()
        await async_client.aclose()


async def test_a_bounded_pool_stays_on_redis_py(
    redis_url: str, engine: Engine, keyring: Keyring
) -> None:
    """Connections held out of a BlockingConnectionPool would count against its bound."""
    single_node(engine)
    sync_pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=2)
    async_pool = redis.asyncio.BlockingConnectionPool.from_url(redis_url, max_connections=2)
    sync_store = SessionStore(redis.Redis(connection_pool=sync_pool), keyring=keyring)
    async_store = AsyncSessionStore(
        redis.asyncio.Redis(connection_pool=async_pool), keyring=keyring
    )
    try:
        assert (
            not internals(sync_store).takes_direct_path()
            and not internals(async_store).takes_direct_path()
        )
        pair = sync_store.login("user-1", device=PHONE)
        assert (await async_store.validate(pair.access_token)).session_id == pair.session_id
    finally:
        sync_store.close()
        await async_store.close()
        sync_pool.disconnect()
        await async_pool.disconnect()


def test_a_subclassed_client_stays_on_redis_py(redis_url: str, engine: Engine) -> None:
    single_node(engine)

    class Instrumented(redis.Redis):
        pass

    client = Instrumented.from_url(redis_url)
    try:
        store = SessionStore(client, keyring=Keyring.generate("HS256"))
        assert not internals(store).takes_direct_path()
        pair = store.login("user-1", device=PHONE)
        assert store.validate(pair.access_token).session_id == pair.session_id
        store.close()
    finally:
        client.close()


# --- one batch, every outcome ---------------------------------------------------------------


async def test_each_caller_gets_its_own_outcome(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    store = make_store(config=Config(touch_interval=3600))
    good = [await store.login(f"user-{n % 30}", device=PHONE) for n in range(120)]
    big = await store.login("user-big", device=BIG, data=BIG_DATA)
    revoked = await store.login("user-r", device=PHONE)
    await store.revoke("user-r", revoked.session_id)
    broken = await wrong_type_session(store, redis_client)
    forged = good[0].access_token[:-4] + ("AAAA" if good[0].access_token[-4:] != "AAAA" else "BBBB")
    tokens = [p.access_token for p in good]
    tokens += [big.access_token, revoked.access_token, broken.access_token, "x.y", forged]
    for _ in range(2):  # first sighting, then with the token cache admitting them
        results = await validate_all(store, tokens)
        for pair, result in zip(good, results, strict=False):
            assert not isinstance(result, BaseException), result
            assert result.session_id == pair.session_id and not result.degraded
            assert result.session is not None and result.session.device == PHONE
        whole = results[120]
        assert not isinstance(whole, BaseException), whole
        assert whole.session is not None and whole.session.device == BIG
        assert whole.session.data == BIG_DATA
        assert isinstance(results[121], SessionRevoked)
        assert isinstance(results[122], ScriptError)  # WRONGTYPE: never the fallback
        assert isinstance(results[123], MalformedToken)
        assert isinstance(results[124], InvalidSignature)


async def test_one_batch_per_loop_turn(redis_url: str, keyring: Keyring, engine: Engine) -> None:
    async with AsyncSessionStore.from_url(redis_url, keyring=keyring) as store:
        pairs = [await store.login(f"user-{n}", device=PHONE) for n in range(50)]
        batcher = internals(store).batcher
        flushes = batcher.flushes
        results = await validate_all(store, [p.access_token for p in pairs])
        assert batcher.flushes == flushes + 1
        assert [r.session_id for r in results] == [p.session_id for p in pairs]
        assert batcher.direct == (engine.cluster is None)


async def test_a_long_turn_is_written_in_slices(
    redis_url: str, keyring: Keyring, engine: Engine
) -> None:
    # On the direct path a turn that queues WRITE_AT calls writes them at once (Redis works
    # while the turn goes on); a cluster's pipeline waits for the end of the turn.
    async with AsyncSessionStore.from_url(redis_url, keyring=keyring) as store:
        count = 2 * WRITE_AT + 7
        pairs = [await store.login(f"user-{n % 40}", device=PHONE) for n in range(count)]
        await store.validate(pairs[0].access_token)  # the connection is open from now on
        batcher = internals(store).batcher
        flushes = batcher.flushes
        results = await validate_all(store, [p.access_token for p in pairs])
        assert [r.session_id for r in results] == [p.session_id for p in pairs]
        assert batcher.flushes == flushes + (3 if engine.cluster is None else 1)


def test_a_store_left_by_a_loop_that_stopped_mid_turn_serves_the_next_loop(
    redis_url: str, keyring: Keyring
) -> None:
    # A validation queued in a loop that stopped before its flush ran (a test's loop torn
    # down, a request cut off at shutdown) must not leave the store waiting for that flush:
    # the next loop's validations go out. (Nothing else touched Redis in the first loop:
    # redis-py's asyncio connections belong to the loop that opened them.)
    with SessionStore.from_url(redis_url, keyring=keyring) as sync_store:
        pair = sync_store.login("user-1", device=PHONE)
    store = AsyncSessionStore.from_url(redis_url, keyring=keyring)
    first = asyncio.new_event_loop()
    tasks: list[asyncio.Task[Any]] = []

    async def start_then_stop() -> None:
        tasks.append(first.create_task(store.validate(pair.access_token)))
        await asyncio.sleep(0)  # the task queues its call and schedules the flush...
        first.stop()  # ...which this turn ends before

    tasks.append(first.create_task(start_then_stop()))
    first.run_forever()
    first.close()
    assert not tasks[1].done()  # the validation: stranded in the stopped loop, as intended
    second = asyncio.new_event_loop()
    try:
        principal = second.run_until_complete(
            asyncio.wait_for(store.validate(pair.access_token), timeout=5)
        )
        assert principal.session_id == pair.session_id and not principal.degraded
        second.run_until_complete(store.close())
    finally:
        second.close()


# --- follow-ups of the HMGET read -----------------------------------------------------------


async def test_sessions_larger_than_the_read_slots_are_read_whole(
    store: StoreApi, redis_client: redis.Redis
) -> None:
    # Meta of exactly 8 chunks fills the last slot: whether a 9th exists is unknown.
    edge = Device(id="edge-1", name="E", user_agent="u" * 470, ip="")
    cases: list[tuple[Device, dict[str, Any]]] = [
        (PHONE, {"a": 1}),
        (BIG, {}),
        (PHONE, BIG_DATA),
        (edge, {}),
        (BIG, BIG_DATA),
    ]
    for device, data in cases:
        pair = await store.login("user-1", device=device, data=data)
        for _ in range(2):
            before = commands(redis_client, "hgetall")
            principal = await store.validate(pair.access_token)
            assert principal.session is not None
            assert principal.session.device == device and principal.session.data == data
            followed = commands(redis_client, "hgetall") > before
            assert followed == (device is not PHONE or data is BIG_DATA), (device.id, data)


async def test_a_due_touch_or_a_gone_session_runs_the_check_script(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    store = make_store(config=Config(idle_ttl=30, touch_interval=1))
    pairs = [await store.login(f"user-{n}", device=PHONE) for n in range(5)]
    expiring = await store.login("user-1", device=PHONE, idle_ttl=1)
    revoked = await store.login("user-1", device=PHONE)
    await store.revoke("user-1", revoked.session_id)
    first = await validate_all(store, [p.access_token for p in pairs])
    time.sleep(1.1)
    before = commands(redis_client, "evalsha") + commands(redis_client, "eval")
    tokens = [p.access_token for p in pairs] + [expiring.access_token, revoked.access_token]
    again = await validate_all(store, tokens)
    # 5 touches and 1 expiry; the revoked session is refused here (revoked by this store).
    assert commands(redis_client, "evalsha") + commands(redis_client, "eval") >= before + 6
    for old, new in zip(first, again, strict=False):
        assert new.session.last_seen_at > old.session.last_seen_at  # touched
        assert new.session.idle_expires_at > old.session.idle_expires_at
    assert isinstance(again[5], SessionExpired)
    assert isinstance(again[6], SessionRevoked) and not isinstance(again[6], SessionExpired)


async def test_a_session_due_a_touch_when_last_read_slides_in_one_round_trip(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    # A user back after the touch interval (10,000 users, one request every 2 minutes):
    # the check script alone reads and slides; an HMGET first would find the touch due and
    # cost a second round trip on every such request. (No marker check in the counts.)
    store = make_store(config=Config(idle_ttl=30, touch_interval=2, marker_interval=3600))
    pair = await store.login("user-1", device=PHONE)
    for _ in range(2):  # seen twice: its token is cached, with when its session is due
        await store.validate(pair.access_token)

    def sent() -> tuple[int, int]:
        scripts = commands(redis_client, "evalsha") + commands(redis_client, "eval")
        return commands(redis_client, "hmget"), scripts

    time.sleep(2.1)
    before = await store.validate(pair.access_token)
    hmget, scripts = sent()
    time.sleep(2.1)
    after = await store.validate(pair.access_token)
    # One round trip: the script (INFO commandstats counts its own HMGET inside too);
    # before, an HMGET found the touch due, then the script ran: (hmget + 2, scripts + 1).
    assert sent() == (hmget + 1, scripts + 1)
    assert after.session is not None and before.session is not None
    assert after.session.last_seen_at > before.session.last_seen_at  # slid
    assert after.session.idle_expires_at > before.session.idle_expires_at
    # Slid just now: the next validation reads (and may cache) instead of running the script.
    hmget, scripts = sent()
    await store.validate(pair.access_token)
    assert sent() == (hmget + 1, scripts)


@pytest.mark.parametrize("end", ["revoked", "expired"])
async def test_a_session_gone_while_due_a_touch_is_refused_by_the_script(
    make_store: StoreFactory, redis_client: redis.Redis, end: str
) -> None:
    # No near cache, so no listener: the store hears of no revocation and the check script
    # itself must refuse (and never slide the session back into existence).
    config = Config(idle_ttl=30, touch_interval=1, marker_interval=3600, near_cache_size=0)
    store = make_store(config=config)
    pair = await store.login("user-1", device=PHONE, idle_ttl=2 if end == "expired" else None)
    for _ in range(2):
        await store.validate(pair.access_token)
    if end == "revoked":
        time.sleep(1.1)
        redis_client.delete(user_keys("ss", "user-1").session(pair.session_id))
    else:
        time.sleep(2.2)  # past its idle ttl of 2 s (due a touch after 1 s)
    scripts = commands(redis_client, "evalsha") + commands(redis_client, "eval")
    with pytest.raises(SessionExpired if end == "expired" else SessionRevoked) as refused:
        await store.validate(pair.access_token)
    assert "announced" not in str(refused.value)
    # The script ran (EVALSHA, and EVAL too when another test flushed the scripts).
    assert commands(redis_client, "evalsha") + commands(redis_client, "eval") > scripts
    assert not [k for k in session_keys(redis_client) if pair.session_id.encode() in k]


# --- connections lost -----------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["killed", "stalled"])
async def test_connection_lost_mid_batch_degrades_every_caller(
    make_store: StoreFactory, fault_server: LocalServer, loss: str
) -> None:
    config = Config(socket_timeout=0.25, breaker_failures=1, breaker_reset=0.2)
    store = make_store(url=fault_server.url, config=config)
    pairs = [await store.login(f"user-{n}", device=PHONE) for n in range(40)]
    tokens = [p.access_token for p in pairs]
    assert not any(p.degraded for p in await validate_all(store, tokens))
    fault_server.pause()  # the batch is written, its replies never come...
    killer = threading.Timer(0.1, fault_server.kill) if loss == "killed" else None
    if killer is not None:
        killer.start()  # ...and the server dies while the callers wait
    start = time.perf_counter()
    try:
        results = await validate_all(store, tokens)
    finally:
        if killer is not None:
            killer.join()
    elapsed = time.perf_counter() - start
    for result in results:
        assert not isinstance(result, BaseException), result
        assert result.degraded and result.session is None
    assert elapsed < 4 * config.socket_timeout  # one timeout at most, for the whole batch
    if loss == "stalled":
        fault_server.resume()
    else:
        fault_server.restart()
    time.sleep(config.breaker_reset + 0.1)
    if loss == "stalled":
        probe = await store.validate(tokens[0])  # the breaker's probe closes it...
        assert not probe.degraded
        back = await validate_all(store, tokens)  # ...and the held connection is replaced
        assert all(not r.degraded and r.session is not None for r in back)
    else:
        with pytest.raises(SessionRevoked):  # back, but empty
            await store.validate(tokens[0])
        fresh = await store.login("user-1", device=PHONE)
        assert not (await store.validate(fresh.access_token)).degraded


async def test_an_idle_connection_the_server_closed_is_replaced(
    make_store: StoreFactory, redis_client: redis.Redis, engine: Engine
) -> None:
    single_node(engine)
    existing = {client["id"] for client in redis_client.client_list()}
    seen: list[events.Event] = []
    store = make_store(config=Config(near_cache_size=0), on_event=seen.append)
    pair = await store.login("user-1", device=PHONE)
    await store.validate(pair.access_token)
    mine = [c["id"] for c in redis_client.client_list() if c["id"] not in existing]
    assert mine  # the store's own connections (a server's timeout, a proxy, CLIENT KILL)
    for client_id in mine:
        redis_client.client_kill_filter(_id=client_id)
    await asyncio.sleep(0.05)  # the event loop sees the connection closed
    for _ in range(3):
        principal = await store.validate(pair.access_token)
        assert not principal.degraded and principal.session is not None
    assert not [e for e in seen if isinstance(e, events.DegradedEntered)]


# --- caches: the doorkeeper -----------------------------------------------------------------


async def test_a_token_is_cached_from_its_second_sighting(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    store = make_store()
    view = internals(store)  # what the caches hold: a hit is public, an insert is not
    pair = await store.login("user-1", device=PHONE)
    await store.validate(pair.access_token)
    tokens = view.engine.tokens
    assert tokens is not None
    assert len(tokens) == 0 and view.cached() == 0  # a one-off request pays no insert
    await store.validate(pair.access_token)
    assert len(tokens) == 1
    deadline = time.monotonic() + 5
    while view.cached() == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)  # the listener may not be subscribed yet
        await store.validate(pair.access_token)
    assert view.cached() == 1
    assert (await store.validate(pair.access_token)).session is not None
    assert await cache_serves(store, pair.access_token, redis_client)


async def test_without_a_token_cache_the_first_sighting_is_cached(
    make_store: StoreFactory,
) -> None:
    store = make_store(config=Config(token_cache_size=0))
    view = internals(store)
    pair = await store.login("user-1", device=PHONE)
    deadline = time.monotonic() + 5
    await store.validate(pair.access_token)
    while view.cached() == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        await store.validate(pair.access_token)
    assert view.cached() == 1


def test_doorkeeper_admits_the_second_sighting() -> None:
    cache: TokenCache[str] = TokenCache(8, leeway=0)
    tokens = [f"token-{n}" for n in range(100)]
    assert not any(cache.admit(t) for t in tokens[:1])
    assert cache.admit(tokens[0]) and cache.admit(tokens[0])
    # Evicted from its slot by other tokens: admitted late, never wrongly refused forever.
    for t in tokens:
        cache.admit(t)
    assert cache.admit(tokens[-1])


def test_doorkeeper_admits_every_token_on_its_second_sighting() -> None:
    # Including the token whose mark fills the eighth and clears the filter (once kept no
    # mark: offered twice in a row, it was refused twice; which token that is depends on
    # the process' string hashing, so one fixed token failed in some runs only).
    cache: TokenCache[str] = TokenCache(8, leeway=0)
    for n in range(2_000):
        cache.admit(f"token-{n}")
        assert cache.admit(f"token-{n}"), n


def _sharing_a_slot(slots: int) -> tuple[str, str]:
    """Two tokens whose hashes agree in their low bits (this process' string hashing)."""
    seen: dict[int, str] = {}
    for n in range(100_000):
        token = f"token-{n}"
        other = seen.setdefault(hash(token) & (slots - 1), token)
        if other != token:
            return other, token
    raise AssertionError("no two tokens share a slot")


def test_doorkeeper_admits_tokens_offered_in_turn() -> None:
    # Two tokens in one slot of a doorkeeper that kept one hash per slot (16 of them for a
    # cache of 8) erased each other's mark on every sighting and were never admitted. (The
    # marks are bits in 128 slots now: the two tokens rarely share one, and both are kept.)
    a, b = _sharing_a_slot(16)
    cache: TokenCache[str] = TokenCache(8, leeway=0)
    for _ in range(2):
        cache.admit(a)
        cache.admit(b)
    assert cache.admit(a) and cache.admit(b)


def test_doorkeeper_admits_a_rotation_of_a_full_cache_from_its_second_round() -> None:
    # As many distinct tokens as the cache holds, each coming back in a fixed order (the
    # 10,000-sessions regime of benchmarks/http).
    cache: TokenCache[str] = TokenCache(1000, leeway=0)
    tokens = [f"token-{n}" for n in range(1000)]
    for t in tokens:
        cache.admit(t)
    assert all(cache.admit(t) for t in tokens)


def test_doorkeeper_admits_a_rotation_whatever_came_before() -> None:
    # A doorkeeper that cleared all its marks at once forgot tokens marked just before the
    # clearing: after a warm-up of one-off tokens, most of a rotation of the cache's size
    # was refused again on its second round (659 of 1,000 after 1,500 one-offs).
    for warm in (0, 500, 1_500, 2_047, 5_000):
        cache: TokenCache[str] = TokenCache(1000, leeway=0)
        for n in range(warm):
            cache.admit(f"once-{n}")
        tokens = [f"token-{n}" for n in range(1000)]
        for t in tokens:
            cache.admit(t)
        assert all(cache.admit(t) for t in tokens), warm


def test_doorkeeper_keeps_most_one_off_tokens_out() -> None:
    cache: TokenCache[str] = TokenCache(1000, leeway=0)
    early = sum(cache.admit(f"once-{n}") for n in range(50_000))
    assert early < 50_000 / 4  # marks cover at most an eighth of the slots


# --- threads on the sync store --------------------------------------------------------------


def test_threads_share_the_sync_store(redis_url: str, keyring: Keyring) -> None:
    with SessionStore.from_url(redis_url, keyring=keyring) as store:
        pairs = [store.login(f"user-{n}", device=PHONE) for n in range(40)]

        def work(offset: int) -> list[bool]:
            picked = [pairs[(offset + n) % len(pairs)] for n in range(120)]
            return [store.validate(p.access_token).session_id == p.session_id for p in picked]

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(work, range(8)))
        assert all(all(row) for row in outcomes)


# --- the gate's JSON fast path --------------------------------------------------------------

_keys = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=12)
_values = st.recursive(
    _scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=12,
)
_objects = st.dictionaries(_keys, _values, max_size=6)


@settings(max_examples=300, deadline=None)
@given(_objects, st.sampled_from(["compact", "ascii", "spaced", "msgspec"]))
def test_json_fast_path_agrees_with_the_strict_parser(obj: dict[str, Any], style: str) -> None:
    text: str | bytes
    if style == "msgspec":
        text = msgspec.json.encode(obj)
    else:
        separators = (", ", ": ") if style == "spaced" else (",", ":")
        text = json.dumps(obj, separators=separators, ensure_ascii=style == "ascii")
    raw = text.decode("utf-8") if isinstance(text, bytes) else text
    assert _strict.json_object(segment(text).encode("ascii"), "payload") == _strict.strict_loads(
        raw
    )


@settings(max_examples=300, deadline=None)
@given(_objects.filter(bool), st.booleans(), st.booleans())
def test_json_fast_path_refuses_duplicates_at_any_depth(
    obj: dict[str, Any], nested: bool, compact: bool
) -> None:
    name = next(iter(obj))
    member = f"{json.dumps(name)}:{json.dumps(obj[name])}"
    body = msgspec.json.encode(obj).decode() if compact else json.dumps(obj)
    inner = f"{body[:-1]},{member}}}"
    body = f'{{"outer":{inner}}}' if nested else inner
    with pytest.raises(MalformedToken):
        _strict.json_object(segment(body).encode("ascii"), "payload")
