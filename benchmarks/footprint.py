"""What a validation leaves for the garbage collector: objects counted, not timed.

With a thousand concurrent validations, every object that lives across the round trip
survives into the collector's older generations, and each one there is paid for again in
every full collection. Two figures, on the async store, with the collector paused (and run
by hand before each count, so what an earlier step left in cycles is not counted) so the
counts are exact:

(a) in flight: ``CALLS`` concurrent validations, counted at the batch's flush (every caller
gated and queued, none answered yet), minus what asyncio itself keeps per awaiting task
(the same number of tasks, each awaiting a future of its own); the ``Check`` objects among
them (one per validation: its ``Check`` is also its ``Call``). Counting at the flush takes a
look inside the batcher: this measures the implementation, it is not a contract.

(b) afterwards: whether the records a validation returns (``Principal``, ``Session``,
``Device``) are tracked by the collector at all, whether anything besides the caller holds
them (no cache, batch or cycle: reference counts), and the ``Check``/``Future``/``Task``
objects left once the batch's callbacks have run.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from benchmarks.context import Context, device
from sessionstore import AsyncSessionStore, Config

__all__ = ["CALLS", "FootprintResult", "measure"]

CALLS = 300
"""Concurrent validations in the batch counted."""


@dataclass
class FootprintResult:
    """Both counts, with what they were computed from."""

    calls: int
    asyncio_share: float = 0.0
    """Objects asyncio keeps per awaiting task (a task awaiting a future)."""
    in_flight: dict[str, int] = field(default_factory=dict)
    """Objects tracked at the flush beyond before it, per type name."""
    untracked: dict[str, bool] = field(default_factory=dict)
    """Per returned record type: True when the collector does not track it."""
    refcounts: dict[str, int] = field(default_factory=dict)
    """``sys.getrefcount`` of the returned Principal and Session (2: only the caller)."""
    left: dict[str, int] = field(default_factory=dict)
    """Check, Future and Task objects left after the validation."""

    @property
    def per_validation(self) -> float:
        """Objects a validation in flight keeps beyond asyncio's own share."""
        return sum(self.in_flight.values()) / self.calls - self.asyncio_share

    def to_json(self) -> dict[str, object]:
        """Every figure."""
        return {
            "calls": self.calls,
            "objects_per_validation_beyond_asyncio": round(self.per_validation, 3),
            "asyncio_share_per_task": round(self.asyncio_share, 3),
            "in_flight_by_type": dict(self.in_flight),
            "records_untracked": dict(self.untracked),
            "refcounts": dict(self.refcounts),
            "left_after": dict(self.left),
        }


def _tracked() -> Counter[str]:
    """Objects the collector tracks now, per type name."""
    return Counter(type(obj).__name__ for obj in gc.get_objects())


@contextmanager
def _collector_paused() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    gc.collect()
    try:
        yield
    finally:
        if was:
            gc.enable()


async def _asyncio_share(calls: int) -> float:
    """Objects per task of ``calls`` tasks each awaiting a future of its own."""
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[None]] = []
    seen: dict[str, Counter[str]] = {}

    async def wait() -> None:
        future = loop.create_future()
        futures.append(future)
        await future

    async def release() -> None:
        await asyncio.sleep(0)
        seen["peak"] = _tracked()
        for future in futures:
            future.set_result(None)

    gc.collect()  # what earlier steps left in cycles would hide what this one makes
    seen["before"] = _tracked()
    await asyncio.gather(release(), *(wait() for _ in range(calls)))
    for _ in range(3):
        await asyncio.sleep(0)  # the loop lets go of the finished tasks (its callbacks ran)
    return (seen["peak"] - seen["before"]).total() / calls


async def _in_flight(store: AsyncSessionStore, result: FootprintResult) -> None:
    pairs = [await store.login(f"user-{n}", device=device(n % 5)) for n in range(result.calls)]
    await store.validate((await store.login("warm", device=device(0))).access_token)
    result.asyncio_share = await _asyncio_share(result.calls)
    seen: dict[str, Counter[str]] = {}
    batcher = store._batcher
    flush = batcher._flush

    def counting_flush() -> None:
        seen.setdefault("peak", _tracked())
        flush()

    batcher._flush = counting_flush  # type: ignore[method-assign]
    gc.collect()
    seen["before"] = _tracked()
    done = await asyncio.gather(*(store.validate(p.access_token) for p in pairs))
    if [p.session_id for p in done] != [p.session_id for p in pairs]:
        raise AssertionError("a validation answered another caller's session")
    grown = seen["peak"] - seen["before"]
    result.in_flight = dict(grown.most_common())


async def _afterwards(store: AsyncSessionStore, result: FootprintResult) -> None:
    pair = await store.login("user-x", device=device(1), claims={"role": "admin"})
    gc.collect()
    before = _tracked()
    principal = await store.validate(pair.access_token)  # first sighting: not cached
    session = principal.session
    if session is None:
        raise AssertionError("the validation returned no session")
    for record in (principal, session, session.device):
        result.untracked[type(record).__name__] = not gc.is_tracked(record)
    for _ in range(3):
        await asyncio.sleep(0)  # the loop's callbacks of the batch have all run
    # getrefcount counts its own argument: 2 is this frame's name alone.
    result.refcounts["Principal"] = sys.getrefcount(principal)
    del principal
    result.refcounts["Session"] = sys.getrefcount(session)
    leftover = _tracked() - before
    result.left = {name: leftover[name] for name in ("Check", "Future", "Task")}


async def _measure(ctx: Context, calls: int) -> FootprintResult:
    result = FootprintResult(calls)
    config = Config(namespace=ctx.namespace)
    async with AsyncSessionStore.from_url(ctx.server.url, keyring=ctx.keyring, config=config) as s:
        with _collector_paused():
            await _in_flight(s, result)
            await _afterwards(s, result)
    return result


def measure(ctx: Context, calls: int = CALLS) -> FootprintResult:
    """Count both figures on a fresh async store of the context's server."""
    return asyncio.run(_measure(ctx, calls))
