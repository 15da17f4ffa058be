"""Async auto-batching: concurrent ``validate`` calls of one event loop share one round trip.

Calls queued during a loop turn are sent together when the loop next runs its ready
callbacks, like ioredis' auto-pipelining. On a plain single-server client the batch is
written as one buffer on one connection of the client's pool and its replies parsed by one
hiredis reader (``_direct``); on any other client (a cluster, Sentinel, RESP3, retries) it
is one redis-py pipeline. Each caller gets its own result or its own error: one failing
call never fails the others. A reply that asks for a follow-up call (a touch that is due)
joins the next batch instead of costing a task of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from redis.exceptions import NoScriptError

from sessionstore import _direct
from sessionstore._core import Call
from sessionstore._io import DRIVER_ERRORS, command_args, eval_args, failed

__all__ = ["Batcher"]

T = TypeVar("T")
Entry = tuple[Call[Any], "asyncio.Future[Any]"]


class Batcher:
    """Queues calls and flushes them as one round trip per loop turn."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._direct = _direct.async_direct(client, self._settle)
        self._queue: list[Entry] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.flushes = 0  # round trips sent: what batching saves is visible

    @property
    def direct(self) -> bool:
        """Whether batches bypass redis-py's pipeline (a plain single-server client)."""
        return self._direct is not None

    def submit(self, call: Call[T]) -> asyncio.Future[T]:
        """Queue ``call`` with the others of this loop turn; await the future for its result."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._enqueue(call, future)
        return future

    def _enqueue(self, call: Call[Any], future: asyncio.Future[Any]) -> None:
        if not self._queue:
            asyncio.get_running_loop().call_soon(self._flush)
        self._queue.append((call, future))

    def _flush(self) -> None:
        self.flushes += 1
        batch, self._queue = self._queue, []
        direct = self._direct
        if direct is not None and direct.ready():
            direct.write(batch)
            return
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[Entry]) -> None:
        direct = self._direct
        if direct is not None:
            # First use, or the connection was lost: take one (no await after it: the
            # batch is written before anything else can break it again).
            try:
                await direct.open()
            except DRIVER_ERRORS as err:
                for call, future in batch:
                    self._settle(call, future, err)
                return
            except BaseException as err:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                raise
            direct.write(batch)
            return
        try:
            replies = await self._execute([call for call, _ in batch])
        except DRIVER_ERRORS as err:
            replies = [err] * len(batch)
        except BaseException as err:
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            raise
        for (call, future), reply in zip(batch, replies, strict=True):
            self._settle(call, future, reply)

    def _settle(self, call: Call[Any], future: asyncio.Future[Any], reply: Any) -> None:
        """Resolve ``future`` with what ``call`` makes of ``reply`` (an error reply included)."""
        if future.done():
            return  # the caller was cancelled
        try:
            if isinstance(reply, Exception):
                result = failed(call, reply)
            else:
                follow = None if call.then is None else call.then(reply)
                if follow is not None:
                    self._enqueue(follow, future)  # its result is the caller's result
                    return
                result = call.parse(reply)
        except Exception as err:  # handed to exactly that caller
            future.set_exception(err)
            return
        future.set_result(result)

    async def _execute(self, calls: list[Call[Any]]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for call in calls:
            if call.command is not None:
                pipe.execute_command(*command_args(call))
            else:
                # The raw command: redis-py's cluster pipelines refuse pipe.evalsha().
                pipe.execute_command("EVALSHA", call.script.sha, *eval_args(call))
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        missing = [n for n, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # After a restart or SCRIPT FLUSH: EVAL loads the scripts again.
            pipe = self._client.pipeline(transaction=False)
            for n in missing:
                pipe.execute_command("EVAL", calls[n].script.source, *eval_args(calls[n]))
            for n, reply in zip(missing, await pipe.execute(raise_on_error=False), strict=True):
                replies[n] = reply
        return replies

    async def close(self) -> None:
        """Wait for batches in flight (and the follow-ups they queue), then let go."""
        direct = self._direct
        while True:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            elif direct is not None and direct.reading is not None:
                await asyncio.gather(direct.reading, return_exceptions=True)
            elif self._queue:
                await asyncio.sleep(0)  # a flush is scheduled for this loop turn
            else:
                break
        if direct is not None:
            await direct.close()
