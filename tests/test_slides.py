"""Slides behind the answer: a cached session due a touch is answered from the near cache
while the check script slides it on the invalidation connection.

What must hold, on real servers (Valkey and Redis 7, a cluster), sync and async stores:

- a session in steady use through the near cache slides (its idle deadline moves) and no
  validation waits for Redis: the store's own connections stay idle (``CLIENT LIST``);
- a change made elsewhere after a slide is heard at once: claims changed in place are the
  next validation's, a revocation is the next validation's refusal. A slide's own write
  is pushed like any other and drops the entry; the read sent after that push (on the same
  connection, in order with the pushes) brings it back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis

from load import PHONE
from sessionstore import Config, SessionRevoked
from sessionstore.keys import user_keys
from sessionstore.testing import LocalCluster, LocalServer, redis_binary, valkey_binary
from support import StoreApi, StoreFactory

# A touch is due every second; no marker check (a housekeeping call) during the test.
CONFIG = Config(touch_interval=1, marker_interval=3600, socket_timeout=10.0)
STEADY = 3.6  # seconds of steady use: three slides or more


@pytest.fixture(params=["valkey", "redis7"])
def server(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    """A private server of the engine (idle connections are counted on it)."""
    binary = valkey_binary() if request.param == "valkey" else redis_binary()
    if binary is None:
        pytest.fail(f"no {request.param} binary installed")
    with LocalServer(binary, name=f"slides-{request.param}") as server:
        yield server


def least_idle(url: str) -> int:
    """Seconds since the busiest client connection to ``url`` last sent a command, other
    than the invalidation connections (named) and the one asking: the stores' own."""
    with redis.Redis.from_url(url, socket_timeout=5) as admin:
        me = admin.client_id()
        idle = [
            int(c["idle"])
            for c in admin.client_list()
            if c.get("name") != "sessionstore-invalidations"
            and int(c["id"]) != me
            and "S" not in c["flags"]  # a replica's link
        ]
    assert idle, "the store opened no connection"
    return min(idle)


async def steady_use(store: StoreApi, user: str, token: str) -> None:
    """Validate ``token`` every 20 ms for ``STEADY`` seconds, after it is cached."""
    for _ in range(3):  # cached from its second sighting
        await store.validate(token)
    deadline = time.monotonic() + STEADY
    while time.monotonic() < deadline:
        principal = await store.validate(token)
        assert principal.user_id == user and principal.session is not None
        assert not principal.degraded
        await asyncio.sleep(0.02)


async def slides_behind(store: StoreApi, url: str, user: str) -> None:
    pair = await store.login(user, device=PHONE)
    start = await store.get(user, pair.session_id)  # (the check script is loaded now)
    assert start is not None
    await steady_use(store, user, pair.access_token)
    # Nothing went out on the store's connections for three seconds: every validation was
    # answered from the cache (before: each slide was a round trip, then a read).
    assert least_idle(url) >= 3
    after = await store.get(user, pair.session_id)
    assert after is not None
    assert after.last_seen_at >= start.last_seen_at + 2  # slid, behind the answers
    assert after.idle_expires_at >= start.idle_expires_at + 2


async def test_a_cached_session_slides_behind_the_answer(
    server: LocalServer, open_store: StoreFactory
) -> None:
    await slides_behind(open_store(server.url, config=CONFIG), server.url, "user-1")


async def test_a_cached_session_slides_behind_the_answer_on_a_cluster(
    fault_cluster: LocalCluster, open_store: StoreFactory
) -> None:
    with fault_cluster.client() as admin:
        admin.flushall()
    owner = fault_cluster.owner(user_keys("ss", "user-1").index)
    await slides_behind(open_store(fault_cluster.url, config=CONFIG), owner.url, "user-1")


async def test_changes_after_slides_are_heard_at_once(
    server: LocalServer, open_store: StoreFactory
) -> None:
    store = open_store(server.url, config=CONFIG)
    # Another spelling of the address: its own listener and cache, so what ours knows of
    # its writes comes from the server's pushes only.
    writer = open_store(server.url.replace("127.0.0.1", "localhost"), config=CONFIG)
    pair = await store.login("user-1", device=PHONE)
    for _ in range(3):
        await store.validate(pair.access_token)
    deadline, changes = time.monotonic() + STEADY, 0
    while time.monotonic() < deadline:
        changes += 1
        assert await writer.update("user-1", pair.session_id, claims={"n": changes})
        for _ in range(4):  # a read, then hits, and slides whenever one is due
            principal = await store.validate(pair.access_token)
            assert principal.claims.get("n") == changes
            await asyncio.sleep(0.005)
    assert await writer.revoke("user-1", pair.session_id)
    with pytest.raises(SessionRevoked):
        await store.validate(pair.access_token)
