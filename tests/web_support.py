"""Helpers of the integration, CLI, rate limiter and metrics tests: one private server.

These suites do not depend on engine differences, so they run against one server of their
own (valkey preferred, else redis-server), started per module and stopped by its pid.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from conftest import needed
from sessionstore import Keyring, SessionStore
from sessionstore.testing import LocalServer, local_binary

__all__ = [
    "LAPTOP_UA",
    "PHONE_UA",
    "admin_fixture",
    "flushed",
    "gunicorn_master",
    "private_server",
    "server_fixtures",
]

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


def admin_fixture() -> Any:
    """A suite's ``admin`` fixture: a sync store on its server (``url``) and keyring, the
    test's own hands (login, revoke): ``admin = admin_fixture()`` at the top of the module."""

    @pytest.fixture
    def admin(url: str, keyring: Keyring) -> Iterator[SessionStore]:
        with SessionStore.from_url(url, keyring=keyring) as store:
            yield store

    return admin


@contextlib.contextmanager
def gunicorn_master(
    command: list[str], cwd: Path, env: dict[str, str], answers: Callable[[], bool]
) -> Iterator[None]:
    """Run a gunicorn master (``command``) until the block ends: up once ``answers()``
    (OSError counts as not yet) within 30 s, then SIGTERM (the master stops its workers)."""
    log_path = cwd / "gunicorn.log"
    with log_path.open("wb") as log:
        master = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while True:
                assert master.poll() is None, log_path.read_text()
                with contextlib.suppress(OSError):
                    if answers():
                        break
                assert time.monotonic() < deadline, "gunicorn did not answer within 30 s"
                time.sleep(0.02)
            yield
        finally:
            master.send_signal(signal.SIGTERM)
            try:
                master.wait(timeout=15)
            except subprocess.TimeoutExpired:
                master.kill()
                master.wait(timeout=5)
