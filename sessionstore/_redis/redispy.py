"""The redis-py internals the store leans on, in one place and behind one version gate.

The direct path (``direct``) writes and reads a pooled connection's socket or streams
itself and parses replies with redis-py's error mapping; the durable writes (``durable``)
move a slot in a cluster client's map after a MOVED reply; an asyncio store awaited from a
new event loop closes the connections a closed loop left behind (redis-py cannot); the near
cache reads a cluster client's node map and a Sentinel pool's primary. Those are redis-py
internals: they are touched only here, and only on the redis-py releases this
project tests (``TESTED``, the range ``pyproject.toml`` declares and ``make compat`` runs).
On any other release the store takes redis-py's public path (slower, same answers) and
logs one warning.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.asyncio.cluster import PipelineCommand

__all__ = [
    "TESTED",
    "abandon",
    "abandon_closed_loops",
    "cluster_nodes",
    "cluster_options",
    "cluster_seeds",
    "internals",
    "loop_closed",
    "move_slot",
    "node_pipeline",
    "pool_connections",
    "pool_exhausted",
    "primary_address",
    "reply_error",
    "retries",
    "sentinels_of",
    "slot_owner",
    "sock_of",
    "streams_of",
    "supported",
]

logger = logging.getLogger("sessionstore")

TESTED = ((5, 3, 1), (9,))
"""The lowest redis-py tested, and the first release not known (the next major)."""


# What redis-py's pools raise, as a plain ConnectionError, when they have no connection to
# give: ConnectionPool on 5.x (6 and later: MaxConnectionsError), BlockingConnectionPool
# (sync and asyncio, every release tested) once its ``timeout`` passed.
_POOL_EXHAUSTED = ("Too many connections", "No connection available.")


def pool_exhausted(err: BaseException) -> bool:
    """Whether a connection pool had no connection to give (``max_connections`` reached).

    Every form subclasses ``ConnectionError``: without this test a saturated pool would
    read as an unreachable Redis, and open the breaker and the fallback.
    """
    if isinstance(err, redis.exceptions.MaxConnectionsError):
        return True
    return type(err) is redis.exceptions.ConnectionError and str(err) in _POOL_EXHAUSTED


def supported(version: str) -> bool:
    """Whether ``version`` (e.g. ``"8.2.0"``) lies in the tested range."""
    parts: list[int] = []
    for piece in version.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            return False
        parts.append(int(digits))
    return TESTED[0] <= tuple(parts) < TESTED[1]


try:  # the reply-error mapping the direct path's hiredis reader uses, as redis-py does
    from redis._parsers import BaseParser as _BaseParser

    _reply_error: Callable[[str], Exception] | None = _BaseParser.parse_error
except ImportError:  # pragma: no cover - a redis-py that moved its parsers
    _reply_error = None

_KNOWN = supported(redis.__version__) and _reply_error is not None
_warned = threading.Event()


def internals() -> bool:
    """Whether this redis-py's internals may be used; the first refusal logs a warning."""
    if not _KNOWN and not _warned.is_set():
        _warned.set()
        logger.warning(
            "sessionstore: redis-py %s is outside the tested range %s..<%s: using "
            "redis-py's public path (correct, slower)",
            redis.__version__,
            ".".join(map(str, TESTED[0])),
            ".".join(map(str, TESTED[1])),
        )
    return _KNOWN


def retries(retry: Any) -> int:
    """How many times a redis-py ``Retry`` retries (``get_retries`` is new in 6.x)."""
    getter = getattr(retry, "get_retries", None)
    return int(getter() if getter is not None else retry._retries)


def reply_error() -> Callable[[str], Exception]:
    """redis-py's mapping of an error reply to its exception class (``internals()`` only)."""
    assert _reply_error is not None
    return _reply_error


def sock_of(conn: Any) -> socket.socket | None:
    """A sync connection's socket, or None while it is not connected."""
    return getattr(conn, "_sock", None)


def streams_of(conn: Any) -> tuple[Any, Any]:
    """An asyncio connection's (StreamReader, StreamWriter); (None, None) when closed."""
    return getattr(conn, "_reader", None), getattr(conn, "_writer", None)


def move_slot(client: Any, moved: Any) -> Any:
    """Record a MOVED reply in a cluster client's slot map (awaitable for asyncio).

    Where redis-py has no ``move_slot`` (before 6.x) or is outside the tested range, the
    client re-reads the whole map instead (``initialize``, a public method).
    """
    nodes = cluster_nodes(client)
    mover = getattr(nodes, "move_slot", None)
    if _KNOWN and mover is not None:
        return mover(moved)
    return nodes.initialize()


async def node_pipeline(node: Any, batch: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Run ``batch`` on one asyncio cluster node's own pipeline (one of its connections);
    each command's reply or error, in order."""
    sent = [PipelineCommand(n, *command) for n, command in enumerate(batch)]
    await node.execute_pipeline(sent)
    return [command.result for command in sent]


def pool_connections(pool: Any) -> list[Any]:
    """Every connection a redis-py pool holds, idle or checked out."""
    return [
        *getattr(pool, "_available_connections", ()),
        *getattr(pool, "_in_use_connections", ()),
    ]


def _connections(client: Any) -> list[Any]:
    """Every connection an asyncio client holds: its pool's (a Sentinel-managed pool's
    sentinels' too) or, for a cluster, each node's."""
    pools = []
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        pools.append(pool)
        pools += [s.connection_pool for s in getattr(sentinels_of(pool), "sentinels", ())]
    found = [conn for each in pools for conn in pool_connections(each)]
    nodes = cluster_nodes(client)
    for table in ("nodes_cache", "startup_nodes"):  # the seeds are nodes of their own
        for node in getattr(nodes, table, {}).values():
            found += list(getattr(node, "_connections", ()))
    return found


def loop_closed(conn: Any) -> bool:
    """Whether an asyncio connection is open on an event loop that has been closed."""
    writer = streams_of(conn)[1]
    loop = getattr(writer, "_loop", None)
    return loop is not None and loop.is_closed()


def abandon(conn: Any) -> None:
    """Close the socket of a connection whose event loop is gone (it cannot be closed the
    usual way, through that loop) and mark it disconnected: it reconnects on next use."""
    writer = streams_of(conn)[1]
    transport = getattr(writer, "transport", None)
    if transport is not None:
        with contextlib.suppress(RuntimeError):  # marks it closing, then needs the loop
            transport.abort()
        sock = getattr(transport, "_sock", None)
        if sock is not None:
            sock.close()
            transport._sock = None  # else its finalizer warns and closes it again
    parser = getattr(conn, "_parser", None)
    if parser is not None:
        parser.on_disconnect()
    conn._reader = conn._writer = None


def abandon_closed_loops(client: Any) -> int:
    """``abandon`` every connection of ``client`` left open by a closed event loop (a
    previous ``asyncio.run``); how many. Only on the tested redis-py range."""
    if not _KNOWN:
        return 0
    stale = [conn for conn in _connections(client) if loop_closed(conn)]
    for conn in stale:
        abandon(conn)
    return len(stale)


def cluster_nodes(client: Any) -> Any:
    """A cluster client's node map (``nodes_manager``, sync or asyncio); None otherwise."""
    return getattr(client, "nodes_manager", None)


def cluster_options(client: Any) -> dict[str, Any]:
    """The connection options a cluster client gives each node."""
    nodes = cluster_nodes(client)
    return dict(getattr(nodes, "connection_kwargs", None) or client.connection_kwargs)


def cluster_seeds(client: Any) -> list[tuple[str, int]]:
    """The addresses a cluster client maps the cluster from (it rewrites them once mapped)."""
    nodes = cluster_nodes(client)
    return [(str(seed.host), int(seed.port)) for seed in nodes.startup_nodes.values()]


def slot_owner(client: Any, slot: int) -> tuple[str, int]:
    """The node a cluster client sends a slot's reads to now (no I/O: its slot map)."""
    node = cluster_nodes(client).get_node_from_slot(slot)
    return (str(node.host), int(node.port))


def sentinels_of(pool: Any) -> Any:
    """The Sentinel manager behind a Sentinel-managed pool; None for any other pool."""
    return getattr(pool, "sentinel_manager", None)


def primary_address(pool: Any) -> tuple[str, int] | None:
    """Where a Sentinel-managed pool connects now (no I/O); None before it asked."""
    known = getattr(pool, "master_address", None)
    return None if known is None else (str(known[0]), int(known[1]))
