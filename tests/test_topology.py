"""Topology changes never leave a revoked session accepted (issue 14, point 9).

Against real servers: a revocation this process has heard of beats every cache; a cached
entry is served only while the node it was read from is followed, up and a primary; a
Sentinel switchover is a link loss, and the store's own connections leave the old primary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from sessionstore import Device, SessionRevoked
from sessionstore._listener import revoked_channel
from sessionstore.keys import encode_user_id, user_keys
from sessionstore.testing import LocalCluster, local_binary
from support import cache_serves
from test_caches import validator_core, wait_for, warm
from test_follow import followers, ports

PHONE = Device(id="phone-1", name="Pixel")


async def test_announced_revocation_beats_the_near_cache(
    store: Any, redis_client: redis.Redis
) -> None:
    """A revocation published on the channel (the key untouched, so no invalidation push)
    is refused at once, though the near cache still holds the session."""
    pair = await store.login("user-1", device=PHONE)
    await warm(store, pair.access_token)
    assert await cache_serves(store, pair.access_token, redis_client)
    core = validator_core(store)
    message = f"{encode_user_id('user-1')} {pair.session_id}"
    redis_client.publish(revoked_channel("ss"), message)
    assert wait_for(lambda: core.revoked.is_revoked("user-1", pair.session_id, time.time()))
    assert len(core.near) == 1  # still cached: only the announcement was heard
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


def slow_watch(store: Any) -> None:
    """Make the store's topology watcher re-read CLUSTER SLOTS once a minute, not every
    second: the window in which it does not follow a new primary yet (one refresh) is
    then wide enough for a test not to race it."""
    watcher = followers(store)
    watcher._refresh = 60.0
    time.sleep(1.5)  # the wait already under way (1 s) ends first


async def test_a_slot_moved_to_a_new_primary_is_not_cached_before_it_is_followed(
    growing_cluster: LocalCluster, open_store: Callable[..., Any]
) -> None:
    cluster = growing_cluster
    store = open_store(cluster.url)
    pair = await store.login("mover", device=PHONE)
    assert wait_for(lambda: ports(store) == {p.port for p in cluster.primaries()})
    await warm(store, pair.access_token)
    slow_watch(store)
    new = cluster.add_node()
    slot = key_slot(user_keys("ss", "mover").index.encode())
    assert cluster.migrate_slot(slot, new) >= 2
    cluster.wait_ready()
    for _ in range(10):  # the client follows MOVED to the new primary and reads there
        await store.validate(pair.access_token)
    assert new.port not in ports(store)  # not followed yet: its pushes are not heard
    with redis.Redis(port=new.port) as admin:
        assert admin.delete(user_keys("ss", "mover").session(pair.session_id)) == 1
    with pytest.raises(SessionRevoked):
        await store.validate(pair.access_token)
