"""Async validation, 1000 concurrent requests per ``asyncio.gather``: naive vs ``validate``.

The naive row is the fastapi-users pattern: ``jwt.decode`` then ``await redis.get(...)`` on
a ``redis.asyncio`` client made from a URL. Its default pool (redis-py 8: at most 100
connections) raises ``MaxConnectionsError`` at 1000 concurrent requests, so the row uses
the same 100 connections in a ``BlockingConnectionPool``, where a request waits for a free
connection instead (faster here than a pool of 1000, one connection per request).

The ``validate`` row awaits ``AsyncSessionStore.validate`` (Config() defaults) on tokens
never validated before (fresh sessions logged in, untimed, before each round), so its
auto-batching is what helps, not its caches. Both rows share one event loop, created for
the group and closed after it.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from time import perf_counter_ns
from typing import Any

import redis.asyncio

from benchmarks import bulk
from benchmarks.context import Context
from benchmarks.harness import Case, Ratio, RowResult, Runner
from benchmarks.server import BenchError
from benchmarks.validate import pyjwt_decoder, token_pool
from sessionstore import AsyncSessionStore, Principal

__all__ = ["COLD_ASYNC", "CONCURRENCY", "NAIVE_ASYNC", "async_cases", "ratios"]

NAIVE_ASYNC = "naive async (pyjwt.decode + await GET)"
COLD_ASYNC = "validate cold (async, first-time tokens)"
CONCURRENCY = 1000
POOL = 100


def _gathering(
    loop: asyncio.AbstractEventLoop,
    tokens: Callable[[int], list[str]],
    check: Callable[[str], Awaitable[Any]],
) -> Runner:
    """``n`` checks as ``n / 1000`` gathers of 1000 concurrent calls; tokens picked untimed."""

    async def timed(batch: list[str]) -> tuple[int, Any]:
        last: Any = None
        start = perf_counter_ns()
        for at in range(0, len(batch), CONCURRENCY):
            results = await asyncio.gather(*(check(t) for t in batch[at : at + CONCURRENCY]))
            last = results[-1]
        return perf_counter_ns() - start, last

    def run(n: int) -> int:
        elapsed, last = loop.run_until_complete(timed(tokens(n)))
        if isinstance(last, Principal) and last.degraded:
            raise BenchError("async validate answered degraded: the server is not reachable")
        return int(elapsed)

    return run


@contextmanager
def async_cases(ctx: Context, sessions: int = 2000) -> Iterator[list[Case]]:
    """The naive async recipe and first-time async ``validate``; closes its loop after."""
    loop = asyncio.new_event_loop()
    pool_tokens = token_pool(ctx, sessions)
    decode = pyjwt_decoder(ctx)
    blocklist = f"{ctx.namespace}:revoked:"
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        ctx.server.url, max_connections=POOL, decode_responses=True
    )
    plain = redis.asyncio.Redis.from_pool(pool)
    store = AsyncSessionStore.from_url(ctx.server.url, keyring=ctx.keyring, config=ctx.store.config)

    async def naive(token: str) -> dict[str, Any]:
        payload = decode(token)
        if await plain.get(blocklist + payload["jti"]) is not None:
            raise BenchError("token revoked")
        return payload

    cycle = itertools.cycle(pool_tokens)

    def cycled(n: int) -> list[str]:
        return list(itertools.islice(cycle, n))

    def fresh(n: int) -> list[str]:
        pairs = bulk.login_many(ctx.store, ctx.owners("cold-async", n))
        return [pair.access_token for pair in pairs]

    try:
        for _ in range(10):
            token = secrets.token_urlsafe(12)
            loop.run_until_complete(plain.set(blocklist + token, "1", ex=900))
        loop.run_until_complete(naive(pool_tokens[0]))
        note = f"{CONCURRENCY} concurrent per gather"
        yield [
            Case(
                NAIVE_ASYNC,
                _gathering(loop, cycled, naive),
                note=f"{note}; BlockingConnectionPool({POOL})",
                unit=CONCURRENCY,
            ),
            Case(
                COLD_ASYNC,
                _gathering(loop, fresh, store.validate),
                note=f"{note}; Config() defaults; fresh sessions each round",
                unit=CONCURRENCY,
            ),
        ]
    finally:
        loop.run_until_complete(store.close())
        loop.run_until_complete(plain.aclose())
        loop.close()


def ratios(rows: Sequence[RowResult]) -> list[Ratio]:
    """The target: cold async validate over the naive async recipe."""
    by = {row.name: row for row in rows}
    return [Ratio("cold async validate >= 5x naive async", by[COLD_ASYNC], by[NAIVE_ASYNC], 5.0)]
