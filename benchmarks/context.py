"""What every benchmark module shares: the store, an admin client, and the test data."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from benchmarks.server import BenchError, BenchServer
from sessionstore import Config, Device, Keyring, SessionStore
from sessionstore.scripts import SCRIPTS

__all__ = ["DATA", "DEVICES", "PER_USER", "USER_AGENT", "Context", "device"]

USER_AGENT = (
    "Mozilla/5.0 (Linux; Android 9; Pixel 3) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/127.0.6533.99 Mobile Safari/537.36"
)
"""A realistic user agent of exactly 120 bytes."""

DATA = {"mfa": False}
"""The session data every benchmark stores."""

PER_USER = 10
"""Sessions per user where a row spreads new sessions over users (below the cap of 50)."""
DEVICES = 5
"""Device ids a user's sessions cycle over."""

if len(USER_AGENT.encode("utf-8")) != 120:  # guards an edit of the constant above
    raise BenchError("USER_AGENT must be 120 bytes")


def device(number: int) -> Device:
    """Device ``device-<number>`` with the 120-byte user agent."""
    return Device(id=f"device-{number}", name="Pixel 3", user_agent=USER_AGENT, ip="192.0.2.10")


@dataclass
class Context:
    """The store under test (default Config), its keyring and an admin client for resets."""

    server: BenchServer
    namespace: str
    keyring: Keyring
    store: SessionStore
    admin: redis.Redis
    _serial: Iterator[int] = field(default_factory=itertools.count)
    _clients: list[redis.Redis] = field(default_factory=list)
    _stores: list[SessionStore] = field(default_factory=list)

    @classmethod
    def open(cls, server: BenchServer, namespace: str) -> Context:
        """A store from ``SessionStore.from_url`` with a fresh HS256 keyring."""
        keyring = Keyring.generate("HS256")
        config = Config(namespace=namespace)
        store = SessionStore.from_url(server.url, keyring=keyring, config=config)
        admin = redis.Redis.from_url(server.url, socket_timeout=30)
        return cls(server, namespace, keyring, store, admin)

    def reset(self) -> None:
        """Start a group from an empty namespace, with every script loaded."""
        self.server.reset(self.admin, self.namespace)
        self.load_scripts()

    def load_scripts(self) -> None:
        """SCRIPT LOAD every script, so no timed call pays for a NOSCRIPT reload."""
        for script in SCRIPTS.values():
            sha = self.admin.script_load(script.source)
            if sha != script.sha:
                raise BenchError(f"script {script.name}: server SHA {sha} != {script.sha}")

    def new_user(self, prefix: str) -> str:
        """A user id ``<prefix>-<n>`` never used before in this run."""
        return f"{prefix}-{next(self._serial)}"

    def owners(self, prefix: str, n: int, per_user: int = PER_USER) -> list[tuple[str, int]]:
        """(user id, device number) of ``n`` new sessions, ``per_user`` to a fresh user."""
        users = [self.new_user(prefix) for _ in range(math.ceil(n / per_user))]
        return [(users[i // per_user], (i % per_user) % DEVICES) for i in range(n)]

    def open_store(self, **config: Any) -> SessionStore:
        """Another store on the same server, namespace and keyring, with these Config fields."""
        store = SessionStore.from_url(
            self.server.url,
            keyring=self.keyring,
            config=Config(namespace=self.namespace, **config),
        )
        self._stores.append(store)
        return store

    def own_client_store(self, **config: Any) -> SessionStore:
        """A store on ``redis.Redis.from_url(url)`` the app owns: redis-py's defaults
        (3 retries on redis-py 8, so the store keeps redis-py's own path)."""
        client = redis.Redis.from_url(self.server.url)
        self._clients.append(client)
        store = SessionStore(
            client, keyring=self.keyring, config=Config(namespace=self.namespace, **config)
        )
        self._stores.append(store)
        return store

    def plain_client(self) -> redis.Redis:
        """A plain ``redis.Redis`` to the same server, as an application would make it."""
        client = redis.Redis.from_url(self.server.url, decode_responses=True)
        self._clients.append(client)
        return client

    def close(self) -> None:
        """Close every client this context made."""
        for store in (self.store, *self._stores):
            store.close()
        for client in (self.admin, *self._clients):
            client.close()
