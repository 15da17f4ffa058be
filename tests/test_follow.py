"""The near cache hears every server that can change its keys: each primary of a cluster
(through failover and resharding), the primary the sentinels name, and nothing else.

A cached entry is served only while every followed connection is up and heard from; a
follower added or dropped flushes the cache.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from redis.crc import key_slot

from load import on_primary, promote
from observe import cache_serves, refused_soon, wait_for
from sessionstore import Device, StoreUnavailable, TokenPair
from sessionstore._nearcache.cache import NearCache
from sessionstore._nearcache.topology import cluster_primaries
from sessionstore._redis.resp import ConnSpec
from sessionstore.keys import user_keys
from sessionstore.testing import Engine, LocalCluster, LocalSentinel
from support import StoreApi, StoreFactory, internals, warm

PHONE = Device(id="phone-1", name="Pixel")
only_cluster = pytest.mark.parametrize("engine", ["cluster"], indirect=True)


def test_any_link_down_flushes_and_untrusts() -> None:
    cache = NearCache(size=10, max_age=60, trust_window=1.0)
    first, second = cache.link(), cache.link()
    first.up(0.0)
    assert not cache.trusted(0.0)  # one of two links is still down
    second.up(0.0)
    assert cache.trusted(0.0)
    assert cache.put("k", "v", cache.begin(), 0.0, 50.0) and cache.get("k", 0.1) == "v"
    first.heard(0.9)
    assert cache.get("k", 1.05) is None  # the second link was last heard 1.05 s ago
    second.heard(1.0)
    assert cache.get("k", 1.05) == "v"
    second.down()
    assert len(cache) == 0 and not cache.trusted(1.05)
    assert not cache.put("k", "v", cache.begin(), 1.1, 50.0)  # nothing stored while down
    second.up(2.0)
    first.heard(2.0)
    assert cache.put("k", "v", cache.begin(), 2.0, 50.0)
    third = cache.link()  # a new server: it may have changed anything, unheard
    assert len(cache) == 0 and not cache.trusted(2.0)
    third.close()
    assert cache.trusted(2.0)
    ticket = cache.begin()
    second.close()  # dropping a server flushes too, and a read begun before is refused
    assert len(cache) == 0 and not cache.put("k", "v", ticket, 2.0, 50.0)


def test_cluster_slots_reply_names_the_primaries() -> None:
    asked = ConnSpec(host="10.0.0.9", port=7000)
    reply = [
        [0, 5460, [b"10.0.0.1", 7001, b"id1"], [b"10.0.0.4", 7004, b"id4"]],
        [5461, 5470, [b"", 7000, b"id0"]],  # an empty host: the node we asked
        [5471, 10922, [b"10.0.0.1", 7001, b"id1"]],
        [10923, 16383, [b"?", 7002, b"id2"]],  # address not known yet: skipped
    ]
    assert cluster_primaries(reply, asked) == {("10.0.0.1", 7001), ("10.0.0.9", 7000)}


@only_cluster
async def test_cluster_store_follows_every_primary(store: StoreApi, engine: Engine) -> None:
    assert engine.cluster is not None
    primaries = {server.port for server in engine.cluster.primaries()}
    await store.login("user-1", device=PHONE)
    assert wait_for(lambda: internals(store).followed_ports() == primaries), (
        internals(store).followed_ports(),
        primaries,
    )
    replicas = {server.port for server in engine.cluster.nodes} - primaries
    assert replicas and not internals(store).followed_ports() & replicas


async def revoked_behind_our_back(
    store: StoreApi, cluster: LocalCluster, token: str, user_id: str, session_id: str
) -> None:
    """Delete the session with a plain client: only the owner's push can tell the store."""
    await warm(store, token)
    with cluster.client() as admin:
        assert await cache_serves(store, token, admin)
        assert admin.delete(user_keys("ss", user_id).session(session_id)) == 1
    assert await refused_soon(store, token)


async def warm_store(
    cluster: LocalCluster, open_store: StoreFactory, user_id: str
) -> tuple[StoreApi, TokenPair]:
    """A store on the emptied cluster, and a session of ``user_id`` in its near cache."""
    with cluster.client() as admin:
        admin.flushall()
    store = open_store(cluster.url)
    pair = await store.login(user_id, device=PHONE)
    await warm(store, pair.access_token)
    return store, pair


@pytest.mark.parametrize("kind", ["graceful", "takeover"])
async def test_near_cache_follows_a_cluster_failover(
    fault_cluster: LocalCluster, open_store: StoreFactory, kind: str
) -> None:
    cluster = fault_cluster
    store, _ = await warm_store(cluster, open_store, "user-1")
    primary = cluster.owner(user_keys("ss", "user-1").index)
    replica = cluster.replicas_of(primary)[0]
    assert wait_for(
        lambda: internals(store).followed_ports() == {p.port for p in cluster.primaries()}
    )
    promote(cluster, replica, kind)
    cluster.wait_ready()
    new_primaries = {p.port for p in cluster.primaries()}
    assert replica.port in new_primaries and primary.port not in new_primaries
    assert wait_for(lambda: internals(store).followed_ports() == new_primaries, 10), (
        internals(store).followed_ports(),
        new_primaries,
    )
    # The promoted replica's pushes are heard: a revocation there reaches the cache.
    second = await store.login("user-1", device=PHONE)
    await revoked_behind_our_back(store, cluster, second.access_token, "user-1", second.session_id)


async def test_near_cache_follows_a_resharded_slot(
    fault_cluster: LocalCluster, open_store: StoreFactory
) -> None:
    cluster = fault_cluster
    store, pair = await warm_store(cluster, open_store, "mover")
    slot = key_slot(user_keys("ss", "mover").index.encode())
    source = cluster.slot_owner(slot)
    target = next(p for p in cluster.primaries() if p is not source)
    # MIGRATE deletes the keys on the source: its push drops the entry.
    assert cluster.migrate_slot(slot, target) >= 2
    cluster.wait_ready()
    assert wait_for(lambda: internals(store).cached() == 0)
    # Writes on the new owner are heard from it.
    await revoked_behind_our_back(store, cluster, pair.access_token, "mover", pair.session_id)


async def login_again(store: StoreApi, user_id: str, seconds: float = 10.0) -> TokenPair:
    """Log in once the client has let go of the dead primary (pooled connections to it
    fail once each: a write is not retried, so the caller sees StoreUnavailable)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await store.login(user_id, device=PHONE)
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_near_cache_follows_the_sentinel_primary(
    sentinel_group: LocalSentinel,
    open_store: StoreFactory,
) -> None:
    group = sentinel_group
    store, old, _ = await on_primary(group, open_store)
    old.kill()
    new = group.wait_promoted(old)
    assert wait_for(lambda: internals(store).followed_ports() == {new.port}, 15), (
        internals(store).followed_ports(),
        new.port,
    )
    second = await login_again(store, "user-2")
    await warm(store, second.access_token)
    with redis.Redis(port=new.port) as admin:
        assert await cache_serves(store, second.access_token, admin)
        assert admin.delete(user_keys("ss", "user-2").session(second.session_id)) == 1
    assert await refused_soon(store, second.access_token)
