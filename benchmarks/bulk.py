"""Untimed setup at pipeline speed: thousands of logins or creates, 1000 per round trip.

Rows such as cold validation need fresh sessions every round, and the memory row needs
100,000 of them; one ``login()`` per round trip would spend most of the run on setup. The
calls here are built by the store's own core (``store._engine``: the same ``Call`` that
``login()``/``create()`` send, the same script, KEYS and ARGV), so Redis ends up holding
exactly what those methods would store; only the round trips are batched. Never timed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import redis

from benchmarks.context import DATA, device
from benchmarks.server import BenchError
from sessionstore import SessionStore, TokenPair
from sessionstore._engine.call import Call
from sessionstore._redis import runner

__all__ = ["BATCH", "create_many", "lifecycle_many", "login_many"]

BATCH = 1000
T = TypeVar("T")

Owner = tuple[str, int]
"""(user id, device number) of one session to make."""


def _setup_client(store: SessionStore) -> redis.Redis:
    """A client on the store's server and database with a 30 s socket timeout: a batch of
    a thousand logins (each scanning its user's history) outlasts the store's 0.25 s on a
    busy machine, and nothing here is timed."""
    pool = store.client.connection_pool
    kwargs = {**pool.connection_kwargs, "socket_timeout": 30.0}
    return redis.Redis(connection_pool=redis.ConnectionPool(pool.connection_class, **kwargs))


def _execute(store: SessionStore, calls: Sequence[Call[T]]) -> list[T]:
    with _setup_client(store) as client:
        return _executed(client, calls)


def _executed(client: Any, calls: Sequence[Call[T]]) -> list[T]:
    results: list[T] = []
    # EVALSHA in a pipeline has no NOSCRIPT fallback: load what it runs first (a new server).
    for script in {call.script.name: call.script for call in calls}.values():
        client.script_load(script.source)
    for start in range(0, len(calls), BATCH):
        chunk = calls[start : start + BATCH]
        pipe = client.pipeline(transaction=False)
        for call in chunk:
            pipe.execute_command(*runner.command(call))
        replies: list[Any] = pipe.execute(raise_on_error=False)
        for call, reply in zip(chunk, replies, strict=True):
            if isinstance(reply, Exception):
                raise BenchError(f"bulk {call.script.name} failed: {reply}")
            results.append(call.parse(reply))
    return results


def login_many(store: SessionStore, owners: Sequence[Owner]) -> list[TokenPair]:
    """``store.login(user, device=device(n), data=DATA)`` for every owner, pipelined."""
    core = store._engine
    return _execute(store, [core.login(u, device=device(n), data=DATA) for u, n in owners])


def create_many(store: SessionStore, owners: Sequence[Owner]) -> int:
    """``store.create(user, device=device(n), data=DATA)`` for every owner; how many."""
    core = store._engine
    return len(_execute(store, [core.create(u, device=device(n), data=DATA) for u, n in owners]))


def lifecycle_many(store: SessionStore, owners: Sequence[Owner]) -> int:
    """For every owner: ``login``, three ``refresh``es, one ``step_up`` (method "otp",
    level 2), each step pipelined over all owners; how many sessions."""
    core = store._engine
    pairs = login_many(store, owners)
    for _ in range(3):
        pairs = _execute(store, [core.refresh(pair.refresh_token) for pair in pairs])
    steps = [
        core.step_up(u, p.session_id, "otp", 2) for (u, _), p in zip(owners, pairs, strict=True)
    ]
    return len(_execute(store, steps))
