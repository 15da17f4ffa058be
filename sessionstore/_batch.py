"""Async auto-batching: concurrent ``validate`` calls of one event loop share one pipeline.

Calls queued during a loop turn are sent together (EVALSHA each, one round trip) when the
loop next runs its ready callbacks, like ioredis' auto-pipelining. Each caller gets its own
result or its own error: one failing call never fails the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import NoScriptError

from sessionstore._core import Call
from sessionstore._io import DRIVER_ERRORS, eval_args, failed

__all__ = ["Batcher"]

T = TypeVar("T")
Runner = Callable[[Call[Any]], Awaitable[Any]]


async def _settle(future: asyncio.Future[Any], call: Call[Any], reply: Any, runner: Runner) -> None:
    """Resolve ``future`` with what ``call`` makes of ``reply`` (an error reply included)."""
    if future.done():
        return  # the caller was cancelled
    try:
        if isinstance(reply, Exception):
            result = failed(call, reply)
        else:
            follow = None if call.then is None else call.then(reply)
            result = call.parse(reply) if follow is None else await runner(follow)
    except Exception as err:  # handed to exactly that caller
        if not future.done():
            future.set_exception(err)
        return
    if not future.done():
        future.set_result(result)


class Batcher:
    """Queues script calls and flushes them as one pipeline per loop turn."""

    def __init__(self, client: Any, runner: Runner) -> None:
        self._client = client
        self._runner = runner
        self._queue: list[tuple[Call[Any], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.flushes = 0  # pipelines sent: what batching saves is visible

    async def run(self, call: Call[T]) -> T:
        """Send ``call`` with the others of this loop turn; its own result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((call, future))
        return await future

    def _flush(self) -> None:
        self.flushes += 1
        batch, self._queue = self._queue, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[Call[Any], asyncio.Future[Any]]]) -> None:
        try:
            replies = await self._execute([call for call, _ in batch])
        except DRIVER_ERRORS as err:
            replies = [err] * len(batch)
        except BaseException as err:
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            raise
        follow_ups = []
        for (call, future), reply in zip(batch, replies, strict=True):
            if call.then is None or isinstance(reply, Exception):
                await _settle(future, call, reply, self._runner)
            else:
                follow_ups.append(_settle(future, call, reply, self._runner))
        if follow_ups:
            await asyncio.gather(*follow_ups)

    async def _execute(self, calls: list[Call[Any]]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for call in calls:
            if call.command is not None:
                pipe.execute_command(call.command, *call.keys)
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
        """Wait for pipelines in flight."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
