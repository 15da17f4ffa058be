"""Topology changes never leave a revoked session accepted (issue 14, point 9).

Against real servers: a revocation this process has heard of beats every cache; a cached
entry is served only while the node it was read from is followed, up and a primary; a
Sentinel switchover is a link loss, and the store's own connections leave the old primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from load import on_primary
from observe import cache_serves, refused_within, wait_for
from sessionstore import Device, Keyring, SessionRevoked, SessionStore, StoreUnavailable
from sessionstore.keys import encode_user_id, revoked_channel, user_keys
from sessionstore.testing import LocalCluster, LocalSentinel, LocalServer, local_binary
from support import StoreApi, StoreFactory, acl_user_url, internals, warm

PHONE = Device(id="phone-1", name="Pixel")


async def test_announced_revocation_beats_the_near_cache(
    store: StoreApi, redis_client: redis.Redis
) -> None:
    """A revocation published on the channel (the key untouched, so no invalidation push)
    is refused at once, though the near cache still holds the session."""
    pair = await store.login("user-1", device=PHONE)
    await warm(store, pair.access_token)
    assert await cache_serves(store, pair.access_token, redis_client)
    view = internals(store)  # the announcement heard, the cache untouched: only inside
    message = f"{encode_user_id('user-1')} {pair.session_id}"
    redis_client.publish(revoked_channel("ss"), message)
    assert wait_for(lambda: view.engine.revoked.is_revoked("user-1", pair.session_id, time.time()))
    assert view.cached() == 1  # still cached: only the announcement was heard
    with pytest.raises(SessionRevoked):
        await store.validate(pair.access_token)


@pytest.fixture
def growing_cluster() -> Iterator[LocalCluster]:
    """A private 2-primary cluster, to gain a primary (add_node)."""
    binary = local_binary()
    if binary is None:
        pytest.skip("needs valkey-server or redis-server")
    with LocalCluster(binary, primaries=2, replicas=0, name="growing-cluster") as cluster:
        yield cluster


def slow_watch(store: StoreApi) -> None:
    """Make the store's topology watcher re-read CLUSTER SLOTS once a minute, not every
    second: the window in which it does not follow a new primary yet (one refresh) is
    then wide enough for a test not to race it."""
    internals(store).watch_topology_every(60.0)
    time.sleep(1.5)  # the wait already under way (1 s) ends first


async def test_a_slot_moved_to_a_new_primary_is_not_cached_before_it_is_followed(
    growing_cluster: LocalCluster, open_store: StoreFactory
) -> None:
    cluster = growing_cluster
    store = open_store(cluster.url)
    pair = await store.login("mover", device=PHONE)
    assert wait_for(
        lambda: internals(store).followed_ports() == {p.port for p in cluster.primaries()}
    )
    await warm(store, pair.access_token)
    slow_watch(store)
    new = cluster.add_node()
    slot = key_slot(user_keys("ss", "mover").index.encode())
    assert cluster.migrate_slot(slot, new) >= 2
    cluster.wait_ready()
    for _ in range(10):  # the client follows MOVED to the new primary and reads there
        await store.validate(pair.access_token)
    assert (
        new.port not in internals(store).followed_ports()
    )  # not followed yet: its pushes are not heard
    with redis.Redis(port=new.port) as admin:
        assert admin.delete(user_keys("ss", "mover").session(pair.session_id)) == 1
    with pytest.raises(SessionRevoked):
        await store.validate(pair.access_token)


@pytest.fixture
def pair_cluster() -> Iterator[LocalCluster]:
    """A private cluster of one primary and its replica, for a failover."""
    binary = local_binary()
    if binary is None:
        pytest.skip("needs valkey-server or redis-server")
    with LocalCluster(binary, primaries=1, replicas=1, name="pair-cluster") as cluster:
        yield cluster


async def test_a_demoted_cluster_primary_is_a_lost_link(
    pair_cluster: LocalCluster, open_store: StoreFactory
) -> None:
    """Its link drops at once (the heartbeat's HELLO reply names the role), not at the next
    topology refresh: nothing read from it is served once a server we do not hear yet
    takes its writes."""
    cluster = pair_cluster
    store = open_store(cluster.url)
    pair = await store.login("user-1", device=PHONE)
    [primary] = cluster.primaries()
    assert wait_for(lambda: internals(store).followed_ports() == {primary.port})
    await warm(store, pair.access_token)
    slow_watch(store)
    replica = cluster.replicas_of(primary)[0]
    cluster.failover(replica)  # graceful: the old primary becomes its replica
    near = internals(store).near
    assert wait_for(lambda: not near.trusted(time.monotonic()), 10)
    assert internals(store).followed_ports() == {primary.port}  # the watcher has not looked again
    with redis.Redis(port=replica.port) as admin:
        assert admin.delete(user_keys("ss", "user-1").session(pair.session_id)) == 1
    with pytest.raises(SessionRevoked):
        await store.validate(pair.access_token)


async def test_a_sentinel_switchover_leaves_the_old_primary(
    sentinel_group: LocalSentinel, open_store: StoreFactory
) -> None:
    """SENTINEL FAILOVER leaves the old primary a writable primary for seconds: the store
    drops its connections to it (and its cached entries) once the sentinels name another,
    so a revocation on the new primary is refused long before the old one is demoted."""
    group = sentinel_group
    store, old, pair = await on_primary(group, open_store)
    with redis.Redis(port=group.sentinels[0].port, socket_timeout=5) as sentinel:
        sentinel.execute_command("SENTINEL", "FAILOVER", group.service)
    new = group.wait_promoted(old)
    with redis.Redis(port=new.port) as admin:
        assert admin.delete(user_keys("ss", "user-1").session(pair.session_id)) == 1
    took = await refused_within(store, pair.access_token, 4.0)
    with redis.Redis(port=old.port) as admin:
        role = admin.execute_command("ROLE")[0]
    assert took is not None, f"accepted for 4 s after the revocation (old primary: {role!r})"


async def test_a_takeover_after_a_stall_serves_no_revoked_session(
    fault_cluster: LocalCluster, open_store: StoreFactory
) -> None:
    """A primary stalls (SIGSTOP), its replica takes over, the old one comes back: a
    revocation acknowledged by the new primary is refused from then on, never served from
    the near cache."""
    cluster = fault_cluster
    with cluster.client() as admin:
        admin.flushall()
    store = open_store(cluster.url)
    primary = cluster.owner(user_keys("ss", "user-0").index)
    users = [
        u
        for u in (f"user-{n}" for n in range(200))
        if cluster.owner(user_keys("ss", u).index) is primary
    ][:4]
    replica = cluster.replicas_of(primary)[0]
    pairs = [await store.login(user, device=PHONE) for user in users]
    assert wait_for(lambda: primary.port in internals(store).followed_ports())
    for pair in pairs:
        await warm(store, pair.access_token)
    primary.pause()
    try:
        assert wait_for(lambda: cluster.role(replica) == "master", 20)
    finally:
        primary.resume()
    accepted = []
    with redis.Redis(port=replica.port) as admin:
        for user, pair in zip(users, pairs, strict=True):
            with contextlib.suppress(StoreUnavailable):  # writes fail until redirected
                await store.validate(pair.access_token)  # served before the revocation
            assert admin.delete(user_keys("ss", user).session(pair.session_id)) == 1
            try:
                await store.validate(pair.access_token)
                accepted.append(user)
            except SessionRevoked:
                pass
    cluster.wait_ready()
    assert not accepted, f"revoked sessions accepted: {accepted}"


async def test_a_revocation_after_a_switchover_reaches_the_new_primary(
    sentinel_group: LocalSentinel, open_store: StoreFactory
) -> None:
    """Once the store follows the new primary, a revocation acknowledged to the caller is
    not one the old primary took (still a writable primary, soon a replica that discards
    it): the store's connections leave it, and a write that still reached it is reported."""
    group = sentinel_group
    store = open_store(group.url)
    old = group.primary()
    pair = await store.login("user-1", device=PHONE)
    await warm(store, pair.access_token)  # pooled connections to the old primary
    with redis.Redis(port=group.sentinels[0].port, socket_timeout=5) as sentinel:
        sentinel.execute_command("SENTINEL", "FAILOVER", group.service)
    new = group.wait_promoted(old)
    assert wait_for(lambda: internals(store).followed_ports() == {new.port}, 10)
    with redis.Redis(port=old.port) as admin:
        assert admin.execute_command("ROLE")[0] == b"master"  # not reconfigured yet
    for _ in range(50):  # a write the store cannot confirm is reported, then retried
        try:
            await store.revoke("user-1", pair.session_id)
            break
        except StoreUnavailable:
            await asyncio.sleep(0.1)
    with redis.Redis(port=new.port) as admin:
        assert not admin.exists(user_keys("ss", "user-1").session(pair.session_id))


def test_the_heartbeat_is_allowed_to_the_recommended_acl_user() -> None:
    """The role check rides on a command the ACL line of SECURITY.md allows (HELLO, not
    ROLE, which is @dangerous): no refusal is logged and the near cache is trusted."""
    binary = local_binary()
    if binary is None:
        pytest.skip("needs valkey-server or redis-server")
    with LocalServer(binary, name="acl-heartbeat") as server:
        admin = redis.Redis.from_url(server.url)
        url = acl_user_url(server.url, admin)
        with SessionStore.from_url(url, keyring=Keyring.generate("HS256")) as store:
            pair = store.login("user-1", device=PHONE)
            near = internals(store).near
            assert wait_for(lambda: near.trusted(time.monotonic()))
            time.sleep(0.6)  # a few heartbeats
            store.validate(pair.access_token)
            assert admin.execute_command("ACL", "LOG") == []  # type: ignore[no-untyped-call]
        admin.close()
