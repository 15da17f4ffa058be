"""``python -m benchmarks.breakdown``: where the time of one cold ``validate`` goes.

A diagnostic beside ``make bench`` (not part of it): on a private server, the parts of a
first-time validation are timed as interleaved rows (the same harness, medians of rounds):
the token check alone (ours vs ``jwt.decode``), the Redis call alone (the ``check`` script
as ``validate`` sends it vs the naive ``GET``), the reply parsing alone, and whole calls;
then the same for the async path (one pipeline of 1000 script calls vs 1000 concurrent
``GET``). The server's own time per command comes from ``INFO commandstats``. Private
names of the library (``store._core``) are used read-only, to build the exact calls.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from collections.abc import Callable, Sequence
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
from sessionstore import Principal
from sessionstore._core import Call
from sessionstore._io import eval_args
from sessionstore.tokens import verify_access_token

__all__ = ["main"]

_SESSIONS = 3000


def _calls(ctx: Context, tokens: Sequence[str]) -> list[Call[Principal]]:
    """The check-script calls ``validate`` would send for these tokens (caches off)."""
    core = ctx.open_store(token_cache_size=0, near_cache_size=0)._core
    calls = [core.validate(token) for token in tokens]
    if not all(isinstance(call, Call) for call in calls):
        raise RuntimeError("validate answered without Redis")
    return calls  # type: ignore[return-value]


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
    replies = [client.evalsha(c.script.sha, *eval_args(c)) for c in calls]
    size = sum(len(part) for part in replies[0] if isinstance(part, bytes))
    plain = ctx.plain_client()
    uncached = ctx.open_store(token_cache_size=0, near_cache_size=0)
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
            "EVALSHA check, reply unparsed",
            _timed_each(calls, lambda c: client.evalsha(c.script.sha, *eval_args(c))),
            note=f"reply {len(replies[0])} items, {size} B",
        ),
        Case("parse the check reply", _timed_each(pairs, lambda p: p[0].parse(p[1]))),
        Case("core.validate: gate + Call, no I/O", cycling(tokens, uncached._core.validate)),
        Case("store._run(call): EVALSHA + parse", _timed_each(calls, uncached._run)),
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
) -> list[Case]:
    """Per-op cost of 1000-call batches: the pipeline alone, GETs alone, gathers alone."""
    calls = _calls(ctx, tokens)
    client = redis.asyncio.Redis.from_url(ctx.server.url)
    pool = redis.asyncio.BlockingConnectionPool.from_url(ctx.server.url, max_connections=100)
    plain = redis.asyncio.Redis.from_pool(pool)
    clients += [client, plain]
    key = f"{ctx.namespace}:revoked:nothing"

    async def pipeline(batch: list[Call[Principal]]) -> None:
        pipe = client.pipeline(transaction=False)
        for call in batch:
            pipe.evalsha(call.script.sha, *eval_args(call))
        await pipe.execute()

    async def gets(n: int) -> None:
        await asyncio.gather(*(plain.get(key) for _ in range(n)))

    async def nothing() -> None:
        return None

    async def noops(n: int) -> None:
        await asyncio.gather(*(nothing() for _ in range(n)))

    def batched(work: Callable[[int], Any]) -> Runner:
        def run(n: int) -> int:
            start = perf_counter_ns()
            loop.run_until_complete(work(n))
            return perf_counter_ns() - start

        return run

    cycle = itertools.cycle(calls)
    return [
        Case(
            "pipeline of 1000 EVALSHA check (async)",
            batched(lambda n: pipeline(list(itertools.islice(cycle, n)))),
            unit=1000,
        ),
        Case("1000 concurrent GET, pool of 100 (async)", batched(gets), unit=1000),
        Case(
            "gather of 1000 no-op coroutines",
            batched(noops),
            unit=1000,
        ),
    ]


def _server_usec(client: redis.Redis) -> dict[str, float]:
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): float(entry["usec_per_call"])
        for name, entry in stats.items()
        if name in ("cmdstat_get", "cmdstat_evalsha")
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
        try:
            ctx.load_scripts()
            pairs = bulk.login_many(ctx.store, ctx.owners("breakdown", _SESSIONS))
            tokens = [pair.access_token for pair in pairs]
            ctx.admin.config_resetstat()
            rows: list[RowResult] = run_group("sync parts", sync_cases(ctx, tokens), settings)
            usec = _server_usec(ctx.admin)
            cases = async_cases(ctx, loop, tokens, clients)
            rows += run_group("async parts", cases, settings)
        finally:
            for client in clients:
                loop.run_until_complete(client.aclose())
            loop.close()
            ctx.close()
    print(format_table(row_lines(rows, [])))
    print("\nserver time per call (INFO commandstats, sync parts):", usec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
