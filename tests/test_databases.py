"""Issue 14 (2, 3): the near cache never mixes databases, and never trusts a cached
"valid" across an operation that changes a database without a push for its keys
(SWAPDB, FLUSHDB/FLUSHALL, a restart from an older snapshot)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from observe import cache_serves, wait_for
from sessionstore import Device, SessionRevoked
from sessionstore._nearcache.cache import NearCache
from sessionstore._nearcache.listener import Listener
from sessionstore._nearcache.topology import topology_of
from sessionstore._redis.resp import ConnSpec
from sessionstore.keys import db_watch_key, user_keys
from sessionstore.testing import (
    Engine,
    LocalSentinel,
    LocalServer,
    redis_binary,
    valkey_binary,
)
from support import StoreApi, StoreFactory

PHONE = Device(id="phone-1", name="Pixel")


def single_server(engine: Engine) -> None:
    """Skip engines without several databases (a cluster has one; an external URL is
    not ours to swap)."""
    if engine.cluster is not None or engine.server is None:
        pytest.skip("needs a standalone server of our own (several databases, SWAPDB)")


def db_url(url: str, db: int) -> str:
    """``url`` with its database number replaced."""
    base, _, _ = url.rpartition("/")
    return f"{base}/{db}"


async def rejected_within(store: StoreApi, token: str, seconds: float = 5.0) -> bool:
    """Whether ``token`` is refused (SessionRevoked) within ``seconds``, polled.

    A cached entry may still answer for up to one heartbeat after the operation (the
    trust window at most; docs/hardening.md), and a restart answers degraded meanwhile.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            await store.validate(token)
        except SessionRevoked:
            return True
        time.sleep(0.01)
    return False


async def test_stores_on_two_databases_never_share_a_cached_session(
    make_store: StoreFactory, redis_url: str, engine: Engine
) -> None:
    single_server(engine)
    on_db0 = make_store(url=db_url(redis_url, 0))
    on_db1 = make_store(url=db_url(redis_url, 1))  # same keyring, same namespace
    pair = await on_db0.login("user-1", device=PHONE)
    with redis.Redis.from_url(db_url(redis_url, 0)) as admin:
        assert await cache_serves(on_db0, pair.access_token, admin)
    # The session exists in db 0 only: db 1's store must never accept it, however hot.
    for _ in range(50):
        with pytest.raises(SessionRevoked):
            await on_db1.validate(pair.access_token)
    assert not (await on_db0.validate(pair.access_token)).degraded


def copy_database(admin: redis.Redis, target: int) -> int:
    """Copy every key of ``admin``'s database into ``target`` (a backup of it, loaded
    into a spare database): the watch key comes along, same name, same value."""
    copied = 0
    for key in admin.scan_iter(count=1000):
        copied += int(admin.copy(key, key, destination_db=str(target), replace=True))
    return copied


async def test_swapdb_to_a_restored_backup_drops_cached_sessions(
    make_store: StoreFactory, redis_url: str, engine: Engine
) -> None:
    single_server(engine)
    store = make_store()
    kept = await store.login("user-1", device=PHONE)
    with redis.Redis.from_url(redis_url) as admin:
        copy_database(admin, 1)  # the backup: taken before user-2 logged in
        with redis.Redis.from_url(db_url(redis_url, 1)) as spare:
            # The backup holds the watch key too: no key or value tells the swap apart.
            assert spare.get(db_watch_key("ss")) == admin.get(db_watch_key("ss")) is not None
        lost = await store.login("user-2", device=PHONE)
        assert await cache_serves(store, lost.access_token, admin)
        admin.swapdb(0, 1)  # the restore: no push for any key
    assert await rejected_within(store, lost.access_token)
    assert not (await store.validate(kept.access_token)).degraded


def test_a_swap_that_deletes_the_watch_key_is_seen_like_a_revocation(
    redis_url: str, engine: Engine
) -> None:
    single_server(engine)
    assert engine.server is not None
    cache = NearCache(100, 60.0, trust_window=60.0)
    # A heartbeat every 60 s: only the push for the watch key can flush the cache below.
    listener = Listener(
        ConnSpec(port=engine.server.port),
        "ss",
        cache,
        revoked=lambda user, sids: None,
        up=lambda: None,
        heartbeat=60.0,
    )
    listener.start()
    try:
        assert wait_for(lambda: listener.alive)
        assert cache.put("ss:{u}:s:1", "valid", cache.begin(), 0.0, 60.0)
        with redis.Redis.from_url(redis_url) as admin:
            pipe = admin.pipeline(transaction=True)  # the documented restore: one transaction
            pipe.delete(db_watch_key("ss"))  # it exists in db 0: the push is certain
            pipe.swapdb(0, 2)
            assert pipe.execute() == [1, True]
        assert wait_for(lambda: not len(cache))
    finally:
        listener.stop()


async def test_swapdb_with_an_empty_database_drops_cached_sessions(
    make_store: StoreFactory, redis_url: str, engine: Engine
) -> None:
    single_server(engine)
    store = make_store()
    pair = await store.login("user-1", device=PHONE)
    with redis.Redis.from_url(redis_url) as admin:
        assert await cache_serves(store, pair.access_token, admin)
        admin.swapdb(0, 2)
    assert await rejected_within(store, pair.access_token)


@pytest.mark.parametrize("operation", ["FLUSHDB", "FLUSHALL"])
async def test_a_flush_drops_cached_sessions(
    make_store: StoreFactory, redis_url: str, engine: Engine, operation: str
) -> None:
    store = make_store()
    pair = await store.login("user-1", device=PHONE)
    admin = redis.Redis.from_url(redis_url) if engine.cluster is None else engine.cluster.client()
    try:
        assert await cache_serves(store, pair.access_token, admin)
        if engine.cluster is None:
            admin.execute_command(operation)  # type: ignore[no-untyped-call]
        else:
            admin.execute_command(operation, target_nodes="primaries")  # type: ignore[no-untyped-call]
    finally:
        admin.close()
    assert await rejected_within(store, pair.access_token)
    again = await store.login("user-1", device=PHONE)  # and the cache works again
    assert not (await store.validate(again.access_token)).degraded


@pytest.mark.parametrize("find", [valkey_binary, redis_binary], ids=["valkey", "redis7"])
async def test_a_restart_from_an_older_snapshot_drops_cached_sessions(
    find: Callable[[], str | None], open_store: StoreFactory, tmp_path: Path
) -> None:
    binary = find()
    if binary is None:
        pytest.skip("engine not installed")
    # The snapshot lives outside the server's per-run temp dir, so a restart loads it.
    args = ("--dir", str(tmp_path), "--dbfilename", "backup.rdb")
    with LocalServer(binary, name="snapshot", extra_args=args) as server:
        store = open_store(server.url)
        kept = await store.login("user-1", device=PHONE)
        with redis.Redis.from_url(server.url) as admin:
            admin.save()  # the older snapshot: user-2 is not in it
            lost = await store.login("user-2", device=PHONE)
            assert await cache_serves(store, lost.access_token, admin)
        server.kill()
        server.start()
        assert await rejected_within(store, lost.access_token, 15.0)
        assert not (await store.validate(kept.access_token)).degraded


async def test_sentinel_stores_keep_databases_apart_and_see_swapdb(
    sentinel_group: LocalSentinel, open_store: StoreFactory
) -> None:
    group = sentinel_group
    on_db0 = open_store(group.url)
    on_db1 = open_store(f"{group.url}?db=1")
    pair = await on_db0.login("user-1", device=PHONE)
    with redis.Redis(port=group.primary().port) as admin:
        assert await cache_serves(on_db0, pair.access_token, admin)
        for _ in range(50):
            with pytest.raises(SessionRevoked):
                await on_db1.validate(pair.access_token)
        admin.swapdb(0, 1)
    assert await rejected_within(on_db0, pair.access_token)


async def test_a_failover_to_a_replica_that_missed_writes_drops_cached_sessions(
    sentinel_group: LocalSentinel, open_store: StoreFactory
) -> None:
    group = sentinel_group
    store = open_store(group.url)
    old = group.primary()
    replica = next(server for server in group.servers if server is not old)
    kept = await store.login("user-1", device=PHONE)
    with redis.Redis(port=old.port) as admin:
        assert admin.wait(1, 5000) == 1  # user-1 reached the replica
        replica.pause()
        try:
            # A stopped replica still takes the stream into its socket buffers: fill them,
            # so that what follows stays in the primary's output buffer and dies with it.
            for i in range(32):
                admin.set(f"junk:{i}", b"x" * (1 << 20))
            lost = await store.login("user-2", device=PHONE)  # never replicated
            assert await cache_serves(store, lost.access_token, admin)
            old.kill()
        finally:
            replica.resume()
    assert group.wait_promoted(old) is replica
    with redis.Redis(port=replica.port) as new:  # the write the new primary missed
        assert not new.exists(user_keys("ss", "user-2").session(lost.session_id))
    assert await rejected_within(store, lost.access_token, 20.0)
    deadline = time.monotonic() + 20
    while (await store.validate(kept.access_token)).degraded:
        assert time.monotonic() < deadline, "user-1 never validated on the new primary"
        time.sleep(0.05)


def test_the_topology_key_holds_the_database() -> None:
    one, two = redis.Redis(port=1, db=0), redis.Redis(port=1, db=1)
    assert topology_of(one) != topology_of(two)
    assert topology_of(one) == topology_of(redis.Redis(port=1))
