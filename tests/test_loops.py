"""An ``AsyncSessionStore`` awaited from one event loop after another (a second
``asyncio.run``, a loop per test, Flask's async views) works in each, and leaves no
connection behind in the loops that closed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio

from sessionstore import AsyncSessionStore, Device, Keyring, SessionRevoked, TokenPair
from sessionstore.testing import Engine

PHONE = Device(id="phone-1", name="Pixel")
LOOPS = 4


def _connections(client: redis.Redis) -> int:
    return len(client.client_list())


@pytest.mark.parametrize("owned", [True, False], ids=["from_url", "own_client"])
def test_an_async_store_works_in_each_event_loop(
    redis_url: str, engine: Engine, keyring: Keyring, owned: bool
) -> None:
    if engine.cluster is not None and not owned:
        pytest.skip("the app's own client is built for one server here")
    client: Any = None
    if owned:
        store = AsyncSessionStore.from_url(redis_url, keyring=keyring)
    else:
        client = redis.asyncio.Redis.from_url(redis_url)
        store = AsyncSessionStore(client, keyring=keyring)

    async def login() -> TokenPair:
        pair = await store.login("user-1", device=PHONE)
        for _ in range(2):  # first sighting, then through the caches' admission
            assert (await store.validate(pair.access_token)).session_id == pair.session_id
        return pair

    async def use(pair: TokenPair) -> None:
        principals = await asyncio.gather(*(store.validate(pair.access_token) for _ in range(50)))
        assert {p.session_id for p in principals} == {pair.session_id}
        assert [s.session_id for s in await store.sessions("user-1")] == [pair.session_id]

    async def revoke(pair: TokenPair) -> None:
        assert await store.revoke("user-1", pair.session_id)
        with pytest.raises(SessionRevoked):
            await store.validate(pair.access_token)

    pair = asyncio.run(login())
    counts = []
    with redis.Redis.from_url(engine.url) as admin:
        for _ in range(LOOPS):
            asyncio.run(use(pair))
            counts.append(_connections(admin))
    asyncio.run(revoke(pair))
    asyncio.run(store.close())
    if client is not None:
        asyncio.run(client.aclose())
    if engine.cluster is None:
        # Each loop's connections replace the closed loop's, never add to them.
        assert counts[-1] <= counts[0], counts
