"""Helpers of the integration, CLI, rate limiter and metrics tests: one private server.

These suites do not depend on engine differences, so they run against one server of their
own (valkey preferred, else redis-server), started per module and stopped by its pid.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from conftest import needed
from sessionstore.testing import LocalServer, local_binary

__all__ = ["LAPTOP_UA", "PHONE_UA", "flushed", "private_server", "server_fixtures"]

# The demo suites' two devices (HTTP client and real browser alike).
LAPTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Mobile Safari/537.36"
)


@contextlib.contextmanager
def private_server(name: str) -> Iterator[LocalServer]:
    """A LocalServer of our own; a missing binary skips (fails under CI=true)."""
    binary = needed(local_binary(), "neither valkey-server nor redis-server is installed")
    with LocalServer(binary, name=name) as server:
        yield server


def flushed(server: LocalServer) -> str:
    """``server``'s URL after FLUSHALL."""
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    try:
        client.flushall()
    finally:
        client.close()
    return server.url


def server_fixtures(name: str) -> tuple[Any, Any]:
    """A suite's ``server`` (its private server, per module) and ``url`` (flushed per test)
    fixtures: ``server, url = server_fixtures("name")`` at the top of the module."""

    @pytest.fixture(scope="module")
    def server() -> Iterator[LocalServer]:
        with private_server(name) as srv:
            yield srv

    @pytest.fixture
    def url(server: LocalServer) -> str:
        return flushed(server)

    return server, url
