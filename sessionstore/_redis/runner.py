"""The script runner: a ``Call`` sent through redis-py, EVALSHA first, EVAL after NOSCRIPT.

A server forgets its scripts on a restart or SCRIPT FLUSH and answers EVALSHA with
NOSCRIPT; EVAL of the full source then runs the call and loads the script again in one
round trip. (redis-py's ``Script`` would send SCRIPT LOAD, then EVALSHA again, and in a
pipeline it asks SCRIPT EXISTS before every batch.) What to send and when to send it
again is decided here once, without I/O (``command``, ``evaluate``, ``reload``,
``reloads``): the sync and asyncio drivers below only send, and the direct path
(``direct``), which packs its own RESP, asks the same questions; durable writes
(``durable``) send ``evaluate``'s EVAL from the start. Each reply moves a call on by
``_engine.call.step``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from redis.exceptions import NoScriptError

from sessionstore._engine.call import Call, step
from sessionstore._redis.driver import DRIVER_ERRORS, eval_args, failed

__all__ = [
    "acomplete",
    "apipeline",
    "asend",
    "command",
    "complete",
    "evaluate",
    "reload",
    "reloads",
    "send",
]

T = TypeVar("T")


def command(call: Call[Any]) -> tuple[Any, ...]:
    """What to send first for ``call``: its read command, or EVALSHA of its script."""
    if call.command is not None:
        return (call.command, *call.keys, *call.args)
    return ("EVALSHA", call.script.sha, *eval_args(call))


def evaluate(call: Call[Any]) -> tuple[Any, ...]:
    """EVAL of ``call``'s script: runs it and loads it again on the server."""
    return ("EVAL", call.script.source, *eval_args(call))


def reload(call: Call[Any], reply: Any) -> tuple[Any, ...] | None:
    """What to send again when ``reply`` (a reply, or the error met instead) is NOSCRIPT
    for ``call``'s script: EVAL of it; else None (``reply`` stands)."""
    if isinstance(reply, NoScriptError) and call.command is None:
        return evaluate(call)
    return None


def reloads(calls: list[Call[Any]], replies: list[Any]) -> list[tuple[int, tuple[Any, ...]]]:
    """For a batch sent in order: where each NOSCRIPT reply stands and what to send again."""
    lines = map(reload, calls, replies)
    return [(n, line) for n, line in enumerate(lines) if line is not None]


def send(client: Any, call: Call[Any]) -> Any:
    """The reply to ``call`` on a sync redis-py client (driver errors raise)."""
    try:
        return client.execute_command(*command(call))
    except NoScriptError:
        return client.execute_command(*evaluate(call))


async def asend(client: Any, call: Call[Any]) -> Any:
    """The reply to ``call`` on an asyncio redis-py client (driver errors raise)."""
    try:
        return await client.execute_command(*command(call))
    except NoScriptError:
        return await client.execute_command(*evaluate(call))


def complete(client: Any, start: Call[T] | T) -> T:
    """The result of ``start`` (a call, or already a result): the call and each follow-up
    run on a sync client, a driver error settled by the call's ``fail``."""
    out = start
    while isinstance(out, Call):
        call = out
        try:
            out = step(call, send(client, call))
        except DRIVER_ERRORS as err:
            out = failed(call, err)
    return out


async def acomplete(client: Any, start: Call[T] | T) -> T:
    """``complete`` on an asyncio client."""
    out = start
    while isinstance(out, Call):
        call = out
        try:
            out = step(call, await asend(client, call))
        except DRIVER_ERRORS as err:
            out = failed(call, err)
    return out


async def apipeline(client: Any, calls: list[Call[Any]]) -> list[Any]:
    """The replies to ``calls`` in one pipeline (an error reply in its caller's place),
    the NOSCRIPT ones sent again as EVAL in a second."""
    replies = await _apipe(client, [command(call) for call in calls])
    again = reloads(calls, replies)
    if again:
        reloaded = await _apipe(client, [line for _, line in again])
        for (n, _), reply in zip(again, reloaded, strict=True):
            replies[n] = reply
    return replies


async def _apipe(client: Any, lines: list[tuple[Any, ...]]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for line in lines:
        # The raw command: redis-py's cluster pipelines refuse pipe.evalsha().
        pipe.execute_command(*line)
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    return replies
