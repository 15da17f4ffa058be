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
from sessionstore.testing import LocalCluster, LocalSentinel, local_binary
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
