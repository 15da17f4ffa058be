"""EVAL then WAIT on one connection, for revocations under ``Config.revoke_wait_replicas``.

WAIT counts the writes of its own connection, so the script and WAIT travel together on
one connection to the primary that owns the call's keys: the client's own connection for
one server or a Sentinel-managed primary, the slot owner's on a cluster. On a cluster the
slot may move meanwhile: MOVED names the new owner, ASK the node importing the slot (sent
ASKING first), TRYAGAIN asks for a short pause while a slot's keys are split between two
nodes. None of these ran the script, so sending it again is safe. The decisions are pure
(``commands``, ``settle``); the sync and asyncio drivers only send.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, NamedTuple

from redis.exceptions import AskError, MovedError, TryAgainError

from sessionstore._engine.call import Call
from sessionstore._redis import redispy, runner
from sessionstore._redis.connect import is_cluster

__all__ = ["Hop", "arun", "commands", "run", "settle"]

# As many redirections as redis-py itself follows for one command.
_HOPS = 16
# TRYAGAIN: a migration moves a slot's keys in batches; give the next batch a moment.
_PAUSE = 0.05


class Hop(NamedTuple):
    """Where the next attempt goes after a redirection (None: the slot owner we know)."""

    moved: MovedError | None = None
    ask: AskError | None = None
    pause: float = 0.0


def commands(call: Call[Any], wait: tuple[int, int], hop: Hop | None) -> list[tuple[Any, ...]]:
    """The commands for one connection: [ASKING,] EVAL, WAIT."""
    first: list[tuple[Any, ...]] = [("ASKING",)] if hop is not None and hop.ask else []
    return [*first, runner.evaluate(call), ("WAIT", *wait)]


def settle(results: list[Any], hop: Hop | None) -> Hop | None:
    """None when the script ran; the next hop after a redirection; else raise its error."""
    reply = results[-2]
    if isinstance(reply, MovedError):  # before AskError: MovedError subclasses it
        return Hop(moved=reply)
    if isinstance(reply, AskError):
        return Hop(ask=reply)
    if isinstance(reply, TryAgainError):
        return Hop(ask=hop.ask if hop else None, pause=_PAUSE)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return None


def _gave_up(hop: Hop | None) -> Exception:
    if hop is not None and hop.moved is not None:
        return hop.moved
    if hop is not None and hop.ask is not None:
        return hop.ask
    return TryAgainError("TRYAGAIN the slot kept moving")


def _asked(client: Any, ask: AskError) -> Any:
    """The node an ASK names (known: it imports the slot from a node we know)."""
    node = client.get_node(ask.host, ask.port)
    if node is None:
        raise ask
    return node


def run(client: Any, call: Call[Any], wait: tuple[int, int]) -> tuple[Any, int]:
    """Send ``call`` then WAIT on one connection (sync client); (reply, replicas acked)."""
    hop: Hop | None = None
    for _ in range(_HOPS):
        if hop is not None and hop.pause:
            time.sleep(hop.pause)
        if not is_cluster(client):
            target = client
        elif hop is not None and hop.ask is not None:
            target = client.get_redis_connection(_asked(client, hop.ask))
        else:
            if hop is not None and hop.moved is not None:
                redispy.move_slot(client, hop.moved)
            target = client.get_redis_connection(client.get_node_from_key(call.keys[0]))
        pipe = target.pipeline(transaction=False)
        for command in commands(call, wait, hop):
            pipe.execute_command(*command)
        results = pipe.execute(raise_on_error=False)
        hop = settle(results, hop)
        if hop is None:
            return results[-2], int(results[-1])
    raise _gave_up(hop)


async def arun(client: Any, call: Call[Any], wait: tuple[int, int]) -> tuple[Any, int]:
    """The asyncio driver of :func:`run` (same decisions)."""
    hop: Hop | None = None
    for _ in range(_HOPS):
        if hop is not None and hop.pause:
            await asyncio.sleep(hop.pause)
        batch = commands(call, wait, hop)
        if not is_cluster(client):
            pipe = client.pipeline(transaction=False)
            for command in batch:
                pipe.execute_command(*command)
            results = await pipe.execute(raise_on_error=False)
        else:
            if hop is not None and hop.ask is not None:
                node = _asked(client, hop.ask)
            else:
                if hop is not None and hop.moved is not None:
                    await redispy.move_slot(client, hop.moved)
                node = client.get_node_from_key(call.keys[0])
            results = await redispy.node_pipeline(node, batch)
        hop = settle(results, hop)
        if hop is None:
            return results[-2], int(results[-1])
    raise _gave_up(hop)
