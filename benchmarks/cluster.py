"""Redis Cluster against one server, same run: cold ``validate`` and ``login`` throughput.

The group starts a private 3-primary cluster (no replicas: like for like with the single
server, which has none) from the same binary as the run's server, on loopback, and stops
every node by its pid afterwards. Both stores are ``SessionStore.from_url`` with the same
``Config`` (the cluster one from a ``redis+cluster://`` URL); rows run interleaved, so a
ratio compares the two deployments under the same load of the machine. Cold validation
uses sessions made (untimed, pipelined) before each round and never validated before.
All four rows are one synchronous client: the figures show what routing by slot costs a
client, not the cluster's aggregate capacity (on a 2-core machine the client is the limit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from benchmarks.context import DATA, Context, device
from benchmarks.harness import Case, Ratio, RowResult, Runner
from benchmarks.server import BenchError
from sessionstore import Config, SessionStore, TokenPair
from sessionstore._redis import runner
from sessionstore.testing import LocalCluster, local_binary

__all__ = ["cluster_cases", "ratios"]

PRIMARIES = 3
VALIDATE_ONE = "validate cold (sync, 1 server)"
VALIDATE_CLUSTER = f"validate cold (sync, cluster {PRIMARIES} primaries)"
LOGIN_ONE = "login (sync, 1 server)"
LOGIN_CLUSTER = f"login (sync, cluster {PRIMARIES} primaries)"


def _login_many(store: SessionStore, owners: Sequence[tuple[str, int]]) -> list[TokenPair]:
    """Untimed setup: the store's own login calls, 1000 per pipeline (any deployment).

    ``execute_command("EVALSHA", …)`` rather than ``pipe.evalsha``: redis-py's cluster
    pipeline refuses the latter but routes the former by its first key.
    """
    core = store._engine
    calls = [core.login(u, device=device(n), data=DATA) for u, n in owners]
    for script in {call.script.name: call.script for call in calls}.values():
        store.client.script_load(script.source)
    pairs: list[TokenPair] = []
    for start in range(0, len(calls), 1000):
        chunk = calls[start : start + 1000]
        pipe = store.client.pipeline(transaction=False)
        for call in chunk:
            pipe.execute_command(*runner.command(call))
        for call, reply in zip(chunk, pipe.execute(raise_on_error=False), strict=True):
            if isinstance(reply, Exception):
                raise BenchError(f"bulk login failed: {reply}")
            pairs.append(call.parse(reply))
    return pairs


def _cold(ctx: Context, store: SessionStore, prefix: str) -> Runner:
    def run(n: int) -> int:
        tokens = [p.access_token for p in _login_many(store, ctx.owners(prefix, n))]
        last: Any = None
        start = perf_counter_ns()
        for token in tokens:
            last = store.validate(token)
        elapsed = perf_counter_ns() - start
        if last is None or last.degraded or last.session is None:
            raise BenchError(f"{prefix}: validate answered degraded: a server is not reachable")
        return elapsed

    return run


def _login(ctx: Context, store: SessionStore, prefix: str) -> Runner:
    login = store.login

    def run(n: int) -> int:
        owners = [(user_id, device(k)) for user_id, k in ctx.owners(prefix, n)]
        start = perf_counter_ns()
        for user_id, dev in owners:
            login(user_id, device=dev, data=DATA)
        return perf_counter_ns() - start

    return run


@contextmanager
def cluster_cases(ctx: Context) -> Iterator[list[Case]]:
    """The four rows; the cluster lives (and its stores stay open) for the group."""
    binary = ctx.server.binary or local_binary()
    if binary is None:
        raise BenchError("the cluster group needs valkey-server or redis-server locally")
    config = Config(namespace=ctx.namespace)
    with LocalCluster(binary, primaries=PRIMARIES, replicas=0, name="bench-cluster") as cluster:
        store = SessionStore.from_url(cluster.url, keyring=ctx.keyring, config=config)
        single = ctx.open_store()
        try:
            for check in (store, single):
                pair = check.login("warm-up", device=device(0))
                if check.validate(pair.access_token).degraded:
                    raise BenchError("validate answered degraded before the cluster rows")
            note = f"{PRIMARIES} primaries, no replicas, {Path(binary).name}"
            yield [
                Case(VALIDATE_ONE, _cold(ctx, single, "cold-one"), note="fresh sessions/round"),
                Case(VALIDATE_CLUSTER, _cold(ctx, store, "cold-cluster"), note=note),
                Case(LOGIN_ONE, _login(ctx, single, "login-one"), note="10/user"),
                Case(LOGIN_CLUSTER, _login(ctx, store, "login-cluster"), note=note),
            ]
        finally:
            store.close()


def ratios(rows: Sequence[RowResult]) -> list[Ratio]:
    """Context ratios: each cluster row over its single-server twin."""
    by = {row.name: row for row in rows}
    pairs: list[tuple[str, str, str]] = [
        ("cold validate: cluster / 1 server", VALIDATE_CLUSTER, VALIDATE_ONE),
        ("login: cluster / 1 server", LOGIN_CLUSTER, LOGIN_ONE),
    ]
    found: Callable[[str], RowResult] = by.__getitem__
    return [Ratio(name, found(a), found(b)) for name, a, b in pairs]
