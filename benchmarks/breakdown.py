"""``python -m benchmarks.breakdown``: where the time of one cold ``validate`` goes.

A diagnostic beside ``make bench`` (not part of it): on a private server, the parts of a
first-time validation are timed as interleaved rows (the same harness, medians of rounds):
the token check alone (ours vs ``jwt.decode``), the Redis read alone (the command
``validate`` sends, through redis-py and on the store's direct path, vs the naive ``GET``),
the reply parsing alone, and whole calls; then the async path (a redis-py pipeline of 1000
reads, 1000 concurrent validations through the batcher, 1000 concurrent ``GET``, a gather
of no-ops, and a gather of coroutines that each await a future one callback resolves: the
floor of any auto-batching design in asyncio), each 1000 at a time like ``make bench``'s
async rows. The server's own time per command comes from ``INFO commandstats``. Private
names of the library (``store._engine``, ``store._direct``) are used read-only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter_ns
from typing import Any

import redis
import redis.asyncio

from benchmarks import bulk
from benchmarks.context import Context
from benchmarks.harness import Case, RowResult, Runner, Settings, run_group
from benchmarks.report import format_table, row_lines
from benchmarks.server import open_server
from benchmarks.validate import cycling, pyjwt_decoder
from sessionstore import AsyncSessionStore, Config, Principal
from sessionstore._engine.call import Call
from sessionstore._redis import runner
from sessionstore.tokens import verify_access_token

__all__ = ["main"]

_SESSIONS = 3000


def _calls(ctx: Context, tokens: Sequence[str]) -> list[Call[Principal]]:
    """The check-script calls ``validate`` would send for these tokens (caches off)."""
    core = ctx.open_store(token_cache_size=0, near_cache_size=0)._engine
    calls = [core.validate(token) for token in tokens]
    if not all(isinstance(call, Call) for call in calls):
        raise RuntimeError("validate answered without Redis")
    return calls  # type: ignore[return-value]


def _send(client: redis.Redis, call: Call[Any]) -> Any:
    """The command ``call`` stands for, as the sync shell sends it (no parse)."""
    return runner.send(client, call)


def _timed_each(items: Sequence[Any], work: Callable[[Any], Any]) -> Runner:
    cycle = itertools.cycle(items)

    def run(n: int) -> int:
        batch = list(itertools.islice(cycle, n))
        start = perf_counter_ns()
        for item in batch:
            work(item)
        return perf_counter_ns() - start

    return run


def sync_cases(ctx: Context, tokens: list[str]) -> list[Case]:
    """The parts of a sync validation, each alone, on the same tokens."""
    decode, config, keyring = pyjwt_decoder(ctx), ctx.store.config, ctx.keyring
    now = time.time()  # the tokens are minutes old at most: one clock reading will do
    calls = _calls(ctx, tokens)
    client: redis.Redis = ctx.store.client
    replies = [_send(client, c) for c in calls]
    first = replies[0]
    parts = list(first.items()) if isinstance(first, dict) else first
    flat = [b for part in parts for b in (part if isinstance(part, tuple) else (part,))]
    size = sum(len(b) for b in flat if b is not None)
    plain = ctx.plain_client()
    uncached = ctx.open_store(token_cache_size=0, near_cache_size=0)
    direct = uncached._direct
    if direct is None:
        raise RuntimeError("the store's client does not take the direct path")
    key = f"{ctx.namespace}:revoked:nothing"
    pairs = list(zip(calls, replies, strict=True))
    return [
        Case("jwt.decode", cycling(tokens, decode)),
        Case(
            "verify_access_token (our gate)",
            cycling(tokens, lambda t: verify_access_token(keyring, t, config=config, now=now)),
        ),
        Case("GET (plain client)", _timed_each([key], plain.get)),
        Case(
            f"{calls[0].command or 'EVALSHA check'} via redis-py, reply unparsed",
            _timed_each(calls, lambda c: _send(client, c)),
            note=f"reply {len(parts)} items, {size} B",
        ),
        Case(
            f"{calls[0].command or 'EVALSHA check'} on the direct path, unparsed",
            _timed_each(calls, direct.execute),
        ),
        Case("parse the reply", _timed_each(pairs, lambda p: p[0].parse(p[1]))),
        Case("core.validate: gate + Call, no I/O", cycling(tokens, uncached._engine.validate)),
        Case("store._run(call): send + parse", _timed_each(calls, uncached._run)),
        Case("validate, caches off", cycling(tokens, uncached.validate)),
        Case(
            "naive: jwt.decode + GET", cycling(tokens, lambda t: plain.get(key + decode(t)["jti"]))
        ),
    ]


def async_cases(
    ctx: Context,
    loop: asyncio.AbstractEventLoop,
    tokens: list[str],
    clients: list[redis.asyncio.Redis],
    stores: list[AsyncSessionStore],
) -> list[Case]:
    """Per-op cost of 1000-call batches: the pipeline alone, GETs alone, gathers alone,
    and whole async validations (caches off) through the batcher's direct path."""
    calls = _calls(ctx, tokens)
    store = AsyncSessionStore.from_url(
        ctx.server.url,
        keyring=ctx.keyring,
        config=Config(namespace=ctx.namespace, token_cache_size=0, near_cache_size=0),
    )
    stores.append(store)
    client = redis.asyncio.Redis.from_url(ctx.server.url)
    pool = redis.asyncio.BlockingConnectionPool.from_url(ctx.server.url, max_connections=100)
    plain = redis.asyncio.Redis.from_pool(pool)
    clients += [client, plain]
    key = f"{ctx.namespace}:revoked:nothing"

    async def pipeline(batch: list[Call[Principal]]) -> None:
        pipe = client.pipeline(transaction=False)
        for call in batch:
            pipe.execute_command(*runner.command(call))
        await pipe.execute()

    async def validations(batch: list[str]) -> None:
        await asyncio.gather(*(store.validate(token) for token in batch))

    async def gets(n: int) -> None:
        await asyncio.gather(*(plain.get(key) for _ in range(n)))

    async def nothing() -> None:
        return None

    async def noops(n: int) -> None:
        await asyncio.gather(*(nothing() for _ in range(n)))

    # The least an auto-batched request can cost in asyncio: its task, its future, and
    # one callback of the loop turn that resolves every future of the batch.
    queued: list[asyncio.Future[None]] = []

    def resolve() -> None:
        batch = queued[:]
        queued.clear()
        for future in batch:
            future.set_result(None)

    async def waiter() -> None:
        future = loop.create_future()
        if not queued:
            loop.call_soon(resolve)
        queued.append(future)
        await future

    async def waiters(n: int) -> None:
        await asyncio.gather(*(waiter() for _ in range(n)))

    def batched(work: Callable[[int], Awaitable[Any]]) -> Runner:
        """``n`` operations as ``work(1000)`` awaited ``n / 1000`` times in a row."""

        async def units(n: int) -> None:
            for _ in range(n // 1000):
                await work(1000)

        def run(n: int) -> int:
            start = perf_counter_ns()
            loop.run_until_complete(units(n))
            return perf_counter_ns() - start

        return run

    cycle = itertools.cycle(calls)
    token_cycle = itertools.cycle(tokens)
    return [
        Case(
            f"pipeline of 1000 {calls[0].command or 'EVALSHA'} (async)",
            batched(lambda n: pipeline(list(itertools.islice(cycle, n)))),
            unit=1000,
        ),
        Case(
            "1000 concurrent validate, caches off (async)",
            batched(lambda n: validations(list(itertools.islice(token_cycle, n)))),
            unit=1000,
        ),
        Case("1000 concurrent GET, pool of 100 (async)", batched(gets), unit=1000),
        Case(
            "gather of 1000 no-op coroutines",
            batched(noops),
            unit=1000,
        ),
        Case(
            "gather of 1000 awaiting a batch-resolved future",
            batched(waiters),
            note="the asyncio floor of auto-batching",
            unit=1000,
        ),
    ]


def _server_usec(client: redis.Redis) -> dict[str, float]:
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): float(entry["usec_per_call"])
        for name, entry in stats.items()
        if name in ("cmdstat_get", "cmdstat_evalsha", "cmdstat_hgetall", "cmdstat_hmget")
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print the breakdown tables."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.breakdown", description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    settings = Settings(rounds=args.rounds, round_seconds=0.3, warmup_seconds=0.2)
    with open_server("valkey", None, False) as server:
        ctx = Context.open(server, "breakdown")
        loop = asyncio.new_event_loop()
        clients: list[redis.asyncio.Redis] = []
        stores: list[AsyncSessionStore] = []
        try:
            ctx.load_scripts()
            pairs = bulk.login_many(ctx.store, ctx.owners("breakdown", _SESSIONS))
            tokens = [pair.access_token for pair in pairs]
            ctx.admin.config_resetstat()
            rows: list[RowResult] = run_group("sync parts", sync_cases(ctx, tokens), settings)
            usec = _server_usec(ctx.admin)
            cases = async_cases(ctx, loop, tokens, clients, stores)
            rows += run_group("async parts", cases, settings)
        finally:
            for store in stores:
                loop.run_until_complete(store.close())
            for client in clients:
                loop.run_until_complete(client.aclose())
            loop.close()
            ctx.close()
    print(format_table(row_lines(rows, [])))
    print("\nserver time per call (INFO commandstats, sync parts):", usec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
