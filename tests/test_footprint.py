"""What a validation leaves for the garbage collector: few objects in flight, none after.

With a thousand concurrent validations, every object that lives across the round trip
survives into the collector's older generations, and each one there is paid for again in
every full collection. So: a validation in flight keeps one object of its own (its
``Check``, which is also its ``Call``) beyond what asyncio itself keeps per awaiting task,
and the records it returns (``Principal``, ``Session``, ``Device``) are not tracked by the
collector at all. Counted with the collector paused, so the counts are exact.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections import Counter
from collections.abc import Iterator

import pytest

from sessionstore import AsyncSessionStore, Device, Keyring
from sessionstore._redis.batch import Batcher
from sessionstore.testing import Engine
from test_fastpath import single_node

PHONE = Device(id="phone-1", name="Pixel", user_agent="Mozilla/5.0 (Linux; Android 14)", ip="::1")
CALLS = 300


@pytest.fixture
def collector_paused() -> Iterator[None]:
    """The garbage collector off for the test (restored after), so counts are exact."""
    was = gc.isenabled()
    gc.disable()
    gc.collect()
    try:
        yield
    finally:
        if was:
            gc.enable()


def tracked() -> Counter[str]:
    """Objects the collector tracks now, per type name."""
    return Counter(type(obj).__name__ for obj in gc.get_objects())


async def test_a_validation_in_flight_keeps_one_object_of_its_own(
    redis_url: str, keyring: Keyring, engine: Engine, collector_paused: None
) -> None:
    single_node(engine)  # a cluster client goes through redis-py's pipeline
    async with AsyncSessionStore.from_url(redis_url, keyring=keyring) as store:
        pairs = [await store.login(f"user-{n}", device=PHONE) for n in range(CALLS)]
        await store.validate((await store.login("warm", device=PHONE)).access_token)
        loop = asyncio.get_running_loop()

        # asyncio's own share: CALLS tasks, each awaiting a future of its own.
        futures: list[asyncio.Future[None]] = []

        async def wait() -> None:
            future = loop.create_future()
            futures.append(future)
            await future

        async def release() -> None:
            await asyncio.sleep(0)
            base["peak"] = tracked()
            for future in futures:
                future.set_result(None)

        base: dict[str, Counter[str]] = {"before": tracked()}
        await asyncio.gather(release(), *(wait() for _ in range(CALLS)))
        asyncio_share = (base["peak"] - base["before"]).total() / CALLS

        # The store's: the same tasks, each awaiting its validation (counted at the flush,
        # when every one of them has been gated and queued, and none has an answer yet).
        seen: dict[str, Counter[str]] = {}
        batcher: Batcher = store._batcher
        flush = batcher._flush

        def counting_flush() -> None:
            seen.setdefault("peak", tracked())
            flush()

        batcher._flush = counting_flush  # type: ignore[method-assign]
        seen["before"] = tracked()
        results = await asyncio.gather(*(store.validate(p.access_token) for p in pairs))
        grown = seen["peak"] - seen["before"]
        ours = grown.total() / CALLS - asyncio_share
        assert grown["Check"] == CALLS
        # The Check, and the one-tuple of its key (a tuple of strings: the collector
        # untracks it at its first pass, long before the reply).
        assert ours <= 2.05, f"{ours:.2f} objects per validation beyond asyncio's: {grown}"
        assert [r.session_id for r in results] == [p.session_id for p in pairs]


async def test_returned_records_are_not_tracked_and_nothing_else_holds_them(
    redis_url: str, keyring: Keyring, engine: Engine, collector_paused: None
) -> None:
    async with AsyncSessionStore.from_url(redis_url, keyring=keyring) as store:
        pair = await store.login("user-1", device=PHONE, claims={"role": "admin"})
        before = tracked()
        principal = await store.validate(pair.access_token)  # first sighting: not cached
        assert principal.session is not None
        for record in (principal, principal.session, principal.session.device):
            assert not gc.is_tracked(record)
        for _ in range(3):
            await asyncio.sleep(0)  # the loop's callbacks of the batch have all run
        # Only this frame refers to it (getrefcount adds its own argument): no cache, no
        # batch, no cycle keeps it.
        assert sys.getrefcount(principal) == 2
        session = principal.session
        del principal
        assert sys.getrefcount(session) == 2
        leftover = tracked() - before
        assert leftover["Check"] == 0 and leftover["Future"] == 0 and leftover["Task"] == 0
