"""Degraded validation: Redis killed, the circuit breaker open, ``validate`` vs ``jwt.decode``.

A private server (the same binary as the run's, its own port) backs a store with Config()
defaults and the run's keyring. 2,000 sessions log in and validate once while it is up;
then the server is killed (SIGKILL, by the pid we started), and ``validate`` is called until
the breaker is open. Both rows then cycle over the same 2,000 tokens: ``validate`` answers
``Principal(degraded=True)`` from the token (its verified-token cache warm), and lets one
probe through per ``breaker_reset`` second, as in production. The whole group stays far
inside ``max_degraded_seconds`` (300 s), after which validate would deny.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks import bulk
from benchmarks.context import Context
from benchmarks.harness import Case, Ratio, RowResult
from benchmarks.server import BenchError
from benchmarks.validate import PYJWT, cycling, pyjwt_decoder
from sessionstore import Config, SessionStore, events
from sessionstore.testing import LocalServer, valkey_binary

__all__ = ["DEGRADED", "PYJWT_BESIDE", "degraded_cases", "ratios"]

DEGRADED = "validate degraded (Redis killed, breaker open)"
PYJWT_BESIDE = f"{PYJWT} (degraded group)"
_OPEN_WITHIN = 5.0


@contextmanager
def degraded_cases(ctx: Context, sessions: int = 2000) -> Iterator[list[Case]]:
    """PyJWT alone and degraded ``validate`` on the same tokens; the server is stopped after."""
    binary = ctx.server.binary or valkey_binary()
    if binary is None:
        raise BenchError("no server binary for the degraded group")
    server = LocalServer(binary, name="bench-degraded")
    seen: list[events.Event] = []
    store: SessionStore | None = None
    try:
        server.start()
        config = Config(namespace=ctx.namespace)
        store = SessionStore.from_url(
            server.url, keyring=ctx.keyring, config=config, on_event=seen.append
        )
        pairs = bulk.login_many(store, ctx.owners("degraded", sessions))
        tokens = [pair.access_token for pair in pairs]
        for token in tokens:
            store.validate(token)
        server.kill()
        _open_breaker(store, tokens[0], seen)
        note = f"{len(tokens)} tokens"
        # A timed call past max_degraded_seconds would raise StoreUnavailable, not time it.
        yield [
            Case(PYJWT_BESIDE, cycling(tokens, pyjwt_decoder(ctx)), note=note),
            Case(DEGRADED, cycling(tokens, store.validate), note=f"{note}; token cache warm"),
        ]
        if not all(store.validate(token).degraded for token in tokens[:100]):
            raise BenchError("validate answered from Redis after the kill")
    finally:
        if store is not None:
            store.close()
        server.stop()


def _open_breaker(store: SessionStore, token: str, seen: list[events.Event]) -> None:
    """Validate until the breaker is open (Config.breaker_failures unreachable calls)."""
    deadline = time.monotonic() + _OPEN_WITHIN
    breaker = store._engine.breaker  # read-only: proof of the precondition the row names
    while not breaker.is_open:
        if time.monotonic() > deadline:
            raise BenchError("the circuit breaker did not open after the kill")
        if not store.validate(token).degraded:
            raise BenchError("validate answered from a killed server")
    if not any(isinstance(event, events.DegradedEntered) for event in seen):
        raise BenchError("no DegradedEntered event after the kill")


def ratios(rows: list[RowResult]) -> list[Ratio]:
    """The target: degraded validate over PyJWT alone."""
    by = {row.name: row for row in rows}
    return [
        Ratio("degraded validate >= 1.0x pyjwt.decode alone", by[DEGRADED], by[PYJWT_BESIDE], 1.0)
    ]
