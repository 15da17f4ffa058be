"""Async auto-batching: concurrent ``validate`` calls of one event loop share one round trip.

Calls queued during a loop turn are sent together when the loop next runs its ready
callbacks, like ioredis' auto-pipelining (on the direct path, a long turn also writes
every ``WRITE_AT`` calls, so that Redis works while the turn goes on). On a plain
single-server client the batch is written as one buffer on one connection of the client's
pool and its replies parsed by one hiredis reader (``direct``); on any other client (a
cluster, Sentinel, RESP3, retries) it is one redis-py pipeline. Each caller gets its own
result or its own error: one failing call never fails the others. A reply that asks for a
follow-up call (a touch that is due) joins the next batch instead of costing a task of its
own, and so does the store's housekeeping when it is due (asked once per batch, not once
per call).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sessionstore._engine.call import Call, step
from sessionstore._redis import direct as _direct
from sessionstore._redis import runner
from sessionstore._redis.driver import DRIVER_ERRORS, failed

__all__ = ["Batcher"]

logger = logging.getLogger("sessionstore")

# On the direct path, a loop turn that queues this many calls writes them at once, without
# waiting for the end of the turn: Redis answers them while the loop gates the rest (a
# turn that starts a thousand validations spends ~10 ms gating them). Fewer wait for the
# end of the turn, as one batch.
WRITE_AT = 128

T = TypeVar("T")


class Batcher:
    """Queues calls and flushes them as one round trip per loop turn."""

    def __init__(self, client: Any, chores: Callable[[], Call[None] | None]) -> None:
        self._client = client
        self._chores = chores  # the store's housekeeping call when one is due, else None
        self._direct = _direct.async_direct(client, self._settle)
        # The calls of this loop turn and their callers' futures, side by side (no tuple
        # per call: a thousand in flight are a thousand fewer objects for the collector).
        self._calls: list[Call[Any]] = []
        self._futures: list[asyncio.Future[Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # The loop whose next turn flushes the queue, while a flush is scheduled.
        self._scheduled: asyncio.AbstractEventLoop | None = None
        self.flushes = 0  # round trips sent: what batching saves is visible

    @property
    def direct(self) -> bool:
        """Whether batches bypass redis-py's pipeline (a plain single-server client)."""
        return self._direct is not None

    def forked(self) -> None:
        """In a forked child: forget the parent's queue, tasks and held connection."""
        self._calls, self._futures = [], []
        self._tasks = set()
        self._scheduled = None
        if self._direct is not None:
            self._direct.forked()

    def submit(self, call: Call[T]) -> asyncio.Future[T]:
        """Queue ``call`` with the others of this loop turn; await the future for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._enqueue(loop, call, future)
        return future

    def _enqueue(
        self, loop: asyncio.AbstractEventLoop, call: Call[Any], future: asyncio.Future[Any]
    ) -> None:
        if self._scheduled is not loop:
            if self._scheduled is not None:
                # Queued in another loop that stopped before its flush ran: those callers
                # can only be answered there, and it is gone.
                self._calls, self._futures = [], []
            self._scheduled = loop
            loop.call_soon(self._flush)
        calls, futures = self._calls, self._futures
        calls.append(call)
        futures.append(future)
        if len(calls) >= WRITE_AT and self._direct is not None and self._direct.ready():
            self.flushes += 1
            self._calls, self._futures = [], []
            self._write(self._direct, calls, futures)

    def _write(
        self, direct: _direct.AsyncDirect, calls: list[Call[Any]], futures: list[Any]
    ) -> None:
        try:
            direct.write(calls, futures)
        except Exception as err:  # nothing was sent (a call that cannot be packed)
            for future in futures:
                if not future.done():
                    future.set_exception(err)

    def _flush(self) -> None:
        if self._scheduled is not asyncio.get_running_loop():
            return  # a stale callback of a loop this batcher has left
        self._scheduled = None
        calls, futures = self._calls, self._futures
        self._calls, self._futures = [], []
        chore = self._chores()
        if chore is not None:
            # Nobody awaits it: its outcome is its own business (events, a log line).
            done = asyncio.get_running_loop().create_future()
            done.add_done_callback(_discard)
            calls.append(chore)
            futures.append(done)
        if not calls:
            return  # all written already (see WRITE_AT)
        self.flushes += 1
        direct = self._direct
        if direct is not None and direct.ready():
            self._write(direct, calls, futures)
            return
        task = asyncio.get_running_loop().create_task(self._send(calls, futures))
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _send(self, calls: list[Call[Any]], futures: list[asyncio.Future[Any]]) -> None:
        direct = self._direct
        try:
            if direct is not None:
                # First use, or the connection was lost: take one (no await after it: the
                # batch is written before anything else can break it again).
                await direct.open()
                self._write(direct, calls, futures)
                return
            replies = await runner.apipeline(self._client, calls)
        except DRIVER_ERRORS as err:
            replies = [err] * len(calls)
        except BaseException as err:
            for future in futures:
                if not future.done():
                    future.set_exception(err)
            raise
        for call, future, reply in zip(calls, futures, replies, strict=True):
            self._settle(call, future, reply)

    def _settle(self, call: Call[Any], future: asyncio.Future[Any], reply: Any) -> None:
        """Resolve ``future`` with what ``call`` makes of ``reply`` (an error reply included)."""
        if future.done():
            return  # the caller was cancelled
        try:
            result = failed(call, reply) if isinstance(reply, Exception) else step(call, reply)
            if isinstance(result, Call):
                # A follow-up: its result is the caller's result.
                self._enqueue(future.get_loop(), result, future)
                return
        except Exception as err:  # handed to exactly that caller
            future.set_exception(err)
            return
        future.set_result(result)

    async def close(self) -> None:
        """Wait for batches in flight (and the follow-ups they queue), then let go."""
        direct = self._direct
        loop = asyncio.get_running_loop()
        # Tasks of a loop that has gone can never be awaited here, nor finish. (In place:
        # each task's done callback discards it from this very set.)
        for task in [task for task in self._tasks if task.get_loop() is not loop]:
            self._tasks.discard(task)
        while True:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            elif direct is not None and direct.reading is not None:
                await asyncio.gather(direct.reading, return_exceptions=True)
            elif self._calls or self._scheduled is asyncio.get_running_loop():
                await asyncio.sleep(0)  # a flush is scheduled for this loop turn
            else:
                break
        if direct is not None:
            await direct.close()


def _discard(future: asyncio.Future[Any]) -> None:
    """Log what a housekeeping call raised (its expected failures it reports itself)."""
    err = None if future.cancelled() else future.exception()
    if err is not None:
        logger.warning("sessionstore housekeeping failed: %r", err)
