"""A user at the largest allowed cap never makes one script block Redis for long.

The server's own account is read: INFO commandstats (on a private server) counts the
script runs each operation made. At 100,000 sessions of one user (a cap the store used to
accept) a login at the cap, a listing or a revocation each blocked Redis for 0.4-0.7 s,
longer than the default ``socket_timeout``. The cap is now bounded, and listings and
revocations walk the index in ZSCAN steps (``COUNT`` 100). These tests count the steps;
how long the longest one takes is measured by ``python -m benchmarks --only cap`` (no
timing is asserted here).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from conftest import needed
from sessionstore import (
    AsyncSessionStore,
    Config,
    Device,
    InvalidInput,
    Keyring,
    SessionStore,
    events,
)
from sessionstore._redis.driver import eval_args
from sessionstore.keys import user_keys
from sessionstore.models import MAX_SESSIONS_PER_USER
from sessionstore.testing import LocalServer, redis_binary, valkey_binary
from support import internals

# The largest step size (ZSCAN COUNT) the walking scripts accept (list.lua, revoke_many.lua).
MAX_STEP = 1000
ISSUE_CAP = 100_000  # the issue's case
USER = "crowded"
DEVICES = 10


def largest_cap() -> int:
    """The largest ``max_sessions_per_user`` Config accepts, up to the issue's 100,000."""
    low, high = 1, ISSUE_CAP
    while low < high:
        mid = (low + high + 1) // 2
        try:
            Config(max_sessions_per_user=mid)
        except InvalidInput:
            high = mid - 1
        else:
            low = mid
    return low


@pytest.fixture(params=["valkey", "redis7"])
def server(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    """A private server: SLOWLOG logs every command on it."""
    find = valkey_binary if request.param == "valkey" else redis_binary
    binary = needed(find(), f"no {request.param} binary installed")
    with LocalServer(binary, name=f"bounded-{request.param}") as started:
        yield started


def test_cap_above_the_bound_is_refused() -> None:
    for cap in (1001, 10_000, ISSUE_CAP):
        with pytest.raises(InvalidInput, match="max_sessions_per_user"):
            Config(max_sessions_per_user=cap)
    assert Config(max_sessions_per_user=1000).max_sessions_per_user == 1000


def fill(store: SessionStore, client: redis.Redis, count: int) -> list[str]:
    """``count`` sessions of USER, pipelined (the calls ``create`` sends); their ids, oldest
    first (they are seen in that order)."""
    engine = internals(store).engine  # the calls only, sent in bulk: 1000s of sessions fast
    calls = [engine.create(USER, device=Device(id=f"d{n % DEVICES}")) for n in range(count)]
    client.script_load(calls[0].script.source)
    made: list[str] = []
    for start in range(0, count, 1000):
        pipe = client.pipeline(transaction=False)
        for call in calls[start : start + 1000]:
            pipe.evalsha(call.script.sha, *eval_args(call))
        for call, reply in zip(calls[start : start + 1000], pipe.execute(), strict=True):
            made.append(call.parse(reply).session_id)
    return made


def script_runs(client: redis.Redis) -> int:
    """How many scripts the server ran since its statistics were last reset.

    Exact whatever the walk's length (a SLOWLOG of every command keeps only its newest
    entries: a 120,000-session walk logs ~400 per step and kept the last ~25 steps of 1,200).
    """
    stats = client.info("commandstats")
    calls = (stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("eval", "evalsha"))
    return sum(int(n) for n in calls)


def test_every_walk_at_the_largest_cap_takes_short_steps(server: LocalServer) -> None:
    cap = largest_cap()
    seen: list[events.Event] = []
    config = Config(max_sessions_per_user=cap, socket_timeout=60.0)
    client = redis.Redis.from_url(server.url, socket_timeout=60.0)
    store = SessionStore.from_url(
        server.url, keyring=Keyring.generate("HS256"), config=config, on_event=seen.append
    )
    try:
        made = fill(store, client, cap)
        runs: dict[str, int] = {}

        def measure(name: str, op: Any) -> Any:
            client.config_resetstat()
            result = op()
            runs[name] = script_runs(client)
            return result

        # A login at the cap evicts exactly the least recently active session.
        seen.clear()
        pair = measure("login at the cap", lambda: store.login(USER, device=Device(id="new")))
        evicted = [e for e in seen if isinstance(e, events.Revoked) and e.reason == "evicted"]
        assert [e.session_ids for e in evicted] == [(made[0],)]
        listed = measure("sessions", lambda: store.sessions(USER))
        assert len(listed) == cap == len({s.session_id for s in listed})
        assert listed[0].session_id == pair.session_id  # newest first
        grouped = measure("devices", lambda: store.devices(USER))
        assert sum(len(g.sessions) for g in grouped) == cap
        on_d1 = {made[n] for n in range(1, cap) if n % DEVICES == 1}
        assert measure("revoke_device", lambda: store.revoke_device(USER, "d1")) == len(on_d1)
        left = cap - len(on_d1)
        revoked = measure("revoke_user", lambda: store.revoke_user(USER, keep=pair.session_id))
        assert revoked == left - 1  # everything but keep=
        assert [s.session_id for s in store.sessions(USER)] == [pair.session_id]
        assert client.zcard(user_keys("ss", USER).index) == 1  # the index pruned
    finally:
        store.close()
        client.close()
    # A login at the cap is one script over at most ``cap`` entries (Config bounds it);
    # listing and revoking a full user take several short scripts, not one long one.
    assert cap <= MAX_STEP
    # Steps of ZSCAN COUNT 100 stay near 100 entries each (at least one run per 200).
    walked = {"sessions": cap, "devices": cap, "revoke_device": cap, "revoke_user": left}
    for name, entries in walked.items():
        assert runs[name] >= entries // 200, (name, runs)


def test_revoke_in_steps_spares_sessions_created_after_it_began(server: LocalServer) -> None:
    """A revocation in steps revokes what existed at its first step, as one script would."""
    client = redis.Redis.from_url(server.url)
    config = Config(max_sessions_per_user=1000)
    store = SessionStore.from_url(server.url, keyring=Keyring.generate("HS256"), config=config)
    try:
        made = fill(store, client, 300)  # well past a listpack: several ZSCAN steps
        call = internals(store).engine.revoke_user(USER)
        client.script_load(call.script.source)
        reply = client.evalsha(call.script.sha, *eval_args(call))
        assert reply[0] != b"0", "expected more steps"
        assert call.then is not None
        later = store.create(USER, device=Device(id="later"))  # between two steps
        follow = call.then(reply)
        assert follow is not None
        assert internals(store).run(follow) == len(made)  # every step's count, the first included
        assert [s.session_id for s in store.sessions(USER)] == [later.session_id]
    finally:
        store.close()
        client.close()


async def test_async_store_walks_in_steps_too(server: LocalServer) -> None:
    """The follow-up calls run through the async shell (its batcher) the same way."""
    client = redis.Redis.from_url(server.url)
    config = Config(max_sessions_per_user=1000)
    keyring = Keyring.generate("HS256")
    store = SessionStore.from_url(server.url, keyring=keyring, config=config)
    async_store = AsyncSessionStore.from_url(server.url, keyring=keyring, config=config)
    try:
        made = fill(store, client, 300)
        client.config_resetstat()
        listed = await async_store.sessions(USER)
        assert {s.session_id for s in listed} == set(made)
        assert script_runs(client) > 1  # several steps
        grouped = await async_store.devices(USER)
        assert sum(len(g.sessions) for g in grouped) == len(made)
        assert await async_store.revoke_device(USER, "d3") == len(made) // DEVICES
        assert await async_store.revoke_user(USER) == len(made) - len(made) // DEVICES
        assert await async_store.sessions(USER) == []
        assert client.zcard(user_keys("ss", USER).index) == 0
    finally:
        await async_store.close()
        store.close()
        client.close()


def test_a_user_past_the_cap_from_before_the_bound(server: LocalServer) -> None:
    """An index an older version let grow past today's bound (a cap of 120,000 then) is
    listed within the largest cap and revoked in full, in short steps, with no deep recursion."""
    legacy = 120_000  # over 1,000 steps: deeper than the recursion limit
    client = redis.Redis.from_url(server.url, socket_timeout=60.0)
    config = Config(socket_timeout=60.0)  # counts are asserted here, never durations
    store = SessionStore.from_url(server.url, keyring=Keyring.generate("HS256"), config=config)
    engine = internals(store).engine  # the calls only, sent in bulk (as ``fill`` does)
    try:
        calls = [
            dataclasses.replace(call, args=(*call.args[:3], legacy, *call.args[4:]))
            for call in (engine.create(USER, device=Device(id="d0")) for _ in range(legacy))
        ]
        client.script_load(calls[0].script.source)
        for start in range(0, legacy, 1000):
            pipe = client.pipeline(transaction=False)
            for call in calls[start : start + 1000]:
                pipe.evalsha(call.script.sha, *eval_args(call))
            pipe.execute()
        client.config_resetstat()
        # Within the largest cap: a login may raise its user's limit up to it.
        assert len(store.sessions(USER)) == MAX_SESSIONS_PER_USER
        assert script_runs(client) >= legacy // 200  # steps of about 100 (1,200 here)
        client.config_resetstat()
        assert store.revoke_user(USER) == legacy
        assert script_runs(client) >= legacy // 200
        assert client.zcard(user_keys("ss", USER).index) == 0
    finally:
        store.close()
        client.close()
