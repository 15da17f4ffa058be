"""What the suites observe from outside a store: the server's own accounts (the keyspace,
``INFO commandstats``) and the store's answers over time (served from its caches, answered
by the server, refused within a bound).

Polls are bounded (``wait_for`` and the ``seconds`` arguments): a loaded machine makes them
slower, never wrong.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis
from redis.cluster import RedisCluster

from sessionstore import SessionRevoked

if TYPE_CHECKING:
    from support import StoreApi

__all__ = [
    "cache_serves",
    "command_stats",
    "reaches_server",
    "refused_soon",
    "refused_within",
    "script_calls",
    "session_keys",
    "wait_for",
]


def session_keys(client: redis.Redis, *, history: bool = False) -> list[bytes]:
    """Every key of the default namespace that belongs to a user (the store's own keys,
    the marker and the near cache's database watch key, excluded: their tags hold a '!').

    A user's history list outlives the sessions (``Config.history_ttl``): left out unless
    ``history``."""
    found = (k for k in client.scan_iter(match="ss:*") if b":{!" not in k)
    return sorted(k for k in found if history or not k.endswith(b"}:h"))


# Commands no request of ours sent: INFO itself, replicas' REPLCONF ACK (every second), and
# what a client sends when it connects or maps a cluster (HELLO, CLIENT SETINFO, COMMAND,
# CLUSTER SLOTS: a sync RedisCluster does that on construction).
# The near cache's invalidation connection adds its handshake (HELLO, CLIENT SETNAME,
# CLIENT TRACKING, SUBSCRIBE, and outside a cluster SELECT, SET NX and WATCH of its watch
# key) and a heartbeat every 0.25 s (HELLO, then outside a cluster MULTI EXISTS EXEC WATCH):
# none is a request of ours (the store itself never sends a plain SET, EXISTS or MULTI).
_BACKGROUND = {
    "cmdstat_info",
    "cmdstat_replconf",
    "cmdstat_hello",
    "cmdstat_client|setinfo",
    "cmdstat_client|setname",
    "cmdstat_client|tracking",
    "cmdstat_subscribe",
    "cmdstat_ping",
    "cmdstat_select",
    "cmdstat_set",
    "cmdstat_multi",
    "cmdstat_exists",
    "cmdstat_exec",
    "cmdstat_watch",
}
_BACKGROUND_PREFIXES = ("cmdstat_command", "cmdstat_cluster|")


def _counted(name: str) -> bool:
    return name not in _BACKGROUND and not name.startswith(_BACKGROUND_PREFIXES)


def command_stats(client: redis.Redis) -> list[dict[str, Any]]:
    """``INFO commandstats`` of the server, one per primary of a cluster."""
    if isinstance(client, RedisCluster):
        found = client.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
        # Per node, unless the client sums INFO itself (LocalCluster.client() does).
        merged = any(str(key).startswith("cmdstat_") for key in found)
        return [found] if merged else list(found.values())
    return [client.info("commandstats")]


def script_calls(client: redis.Redis) -> int:
    """How many commands the server (every primary of a cluster) has run for clients so far."""
    nodes = command_stats(client)
    return sum(int(v["calls"]) for stats in nodes for k, v in stats.items() if _counted(k))


def wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


async def cache_serves(store: StoreApi, token: str, admin: Any, seconds: float = 5.0) -> bool:
    """Whether 20 validations in a row are answered without a command reaching Redis.

    Retried for a few seconds: on a loaded machine a heartbeat reply can come later than
    the trust window, and then the store rightly asks Redis instead.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = script_calls(admin)
        for _ in range(20):
            await store.validate(token)
        if script_calls(admin) == before:
            return True
        await asyncio.sleep(0.05)
    return False


async def reaches_server(store: StoreApi, token: str, admin: Any, seconds: float = 5.0) -> bool:
    """Whether a validation of ``token`` is answered by the server (not from the store's
    caches) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        before = script_calls(admin)
        await store.validate(token)
        if script_calls(admin) > before:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)


async def refused_within(store: StoreApi, token: str, seconds: float) -> float | None:
    """Validate until ``SessionRevoked``: seconds it took, or None if still accepted."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            await store.validate(token)
        except SessionRevoked:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    return None


async def refused_soon(store: StoreApi, token: str, seconds: float = 5.0) -> bool:
    """Whether ``store`` refuses ``token`` as revoked within ``seconds`` (a push it has to
    hear first: until then its near cache may rightly still serve the session)."""
    return await refused_within(store, token, seconds) is not None
