"""The stdout table and the JSON report."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.cap import CapResult
from benchmarks.footprint import FootprintResult
from benchmarks.harness import Bound, Ratio, RowResult
from benchmarks.live import LiveResult
from benchmarks.memory import LIFECYCLE, HistoryMemory, MemoryResult
from benchmarks.propagation import PropagationResult

__all__ = [
    "Line",
    "Target",
    "cap_lines",
    "footprint_lines",
    "format_table",
    "format_targets",
    "history_lines",
    "memory_lines",
    "propagation_lines",
    "row_lines",
    "write_json",
]

SCHEMA = "sessionstore-bench/2"

Target = Ratio | Bound
"""A target of the issue: a throughput ratio with a floor, or a figure with a ceiling."""


@dataclass(frozen=True)
class Line:
    """One table row: a measured rate, or a figure stated in the notes (memory)."""

    name: str
    rate: float | None
    us: float | None
    spread: float | None
    note: str


def _short(name: str) -> str:
    """A row name without its parenthesised detail, for ratio notes."""
    return name.split(" (")[0]


def row_lines(rows: Sequence[RowResult], ratios: Sequence[Ratio]) -> list[Line]:
    """Table lines of timed rows; a row that is a ratio's numerator shows that ratio."""
    notes: dict[str, list[str]] = {}
    for ratio in ratios:
        text = (
            f"{ratio.of_medians:.2f}x {_short(ratio.denominator.name)}"
            f" (pairs {ratio.median_of_pairs:.2f}x)"
        )
        notes.setdefault(ratio.numerator.name, []).append(text)
    return [
        Line(
            row.name,
            row.median_rate,
            row.median_us,
            row.spread,
            "; ".join([*notes.get(row.name, []), row.note]),
        )
        for row in rows
    ]


def memory_lines(memory: MemoryResult) -> list[Line]:
    """Two lines: MEMORY USAGE over the namespace, and the used_memory delta."""
    per = memory.sessions
    usage = (
        f"{memory.usage_per_session:.0f} B/session = hash {memory.hash_bytes / per:.0f}"
        f" + index {memory.index_bytes / per:.0f} + other {memory.other_bytes / per:.1f};"
        f" OBJECT ENCODING hash {memory.hash_encoding}, index {memory.index_encoding}"
    )
    baseline = "from FLUSHALL" if memory.flushed else "NOT flushed: approximate"
    delta = (
        f"{memory.delta_per_session:.0f} B/session ({per:,} sessions of {memory.users:,} users,"
        f" {per / memory.users:.1f}/user; UUID user ids; UA 120 B; {baseline})"
    )
    return [
        Line("memory per session (MEMORY USAGE)", None, None, None, usage),
        Line("memory per session (used_memory)", None, None, None, delta),
    ]


def history_lines(result: HistoryMemory) -> list[Line]:
    """One line: what the history costs per session, beside the same sessions without it."""
    on, off = result.with_history, result.without
    note = (
        f"+{result.extra_per_session:.0f} B/session (target <= 150) for {LIFECYCLE}:"
        f" used_memory {on.delta_per_session:.0f} on vs {off.delta_per_session:.0f} off,"
        f" MEMORY USAGE {on.usage_per_session:.0f} vs {off.usage_per_session:.0f}"
        f" (history keys {on.history_bytes / on.sessions:.0f}; {on.sessions:,} sessions)"
    )
    return [Line("memory: history cost per session", None, None, None, note)]


def propagation_lines(result: PropagationResult) -> list[Line]:
    """p50 and p99 of the cross-process revocation latency (µs column)."""
    note = (
        f"{result.trials} trials; revoke() call start -> rejection in another process;"
        f" revoke() itself p50 {result.percentile(50, result.revoke_ns):.0f} µs;"
        f" the refusing validate() p50 {result.percentile(50, result.refusing_call_ns):.0f} µs"
    )
    if result.cold_trials:
        note += f"; {result.cold_trials} trials began without a near-cache hit"
    if result.spinning:
        returned = result.from_return_ns
        note = (
            f"{result.trials} trials; revoke() return -> rejection in another process whose"
            " validator spins 0-300 ms (across heartbeats) before the revoke; negative:"
            " refused before revoke() returned"
        )
        call = (
            f"from the revoke() call: p50 {result.percentile(50):.0f},"
            f" p99 {result.percentile(99):.0f}, max {max(result.from_call_ns) / 1e3:.0f} µs;"
            f" revoke() itself p50 {result.percentile(50, result.revoke_ns):.0f} µs"
        )
        if result.cold_trials:
            call += f"; {result.cold_trials} trials began without a near-cache hit"
        return [
            Line(
                "propagation, validator spinning p50",
                None,
                result.percentile(50, returned),
                None,
                note,
            ),
            Line(
                "propagation, validator spinning p99",
                None,
                result.percentile(99, returned),
                None,
                call,
            ),
            Line("propagation, validator spinning max", None, max(returned) / 1e3, None, ""),
        ]
    floor = "floor: raw PUBLISH -> a raw subscriber spinning on select() in the validator process"
    return [
        Line("revocation propagation p50", None, result.percentile(50), None, note),
        Line("revocation propagation p99", None, result.percentile(99), None, "near cache on"),
        Line("  floor (PUBLISH) p50", None, result.percentile(50, result.floor_ns), None, floor),
        Line("  floor (PUBLISH) p99", None, result.percentile(99, result.floor_ns), None, ""),
    ]


def live_lines(result: LiveResult) -> list[Line]:
    """p50 and p99 from the acknowledged revoke to the WebSocket close seen (µs column)."""
    note = (
        f"{result.trials} trials; revoke() return -> close (4401) seen by a websockets client"
        " of uvicorn in another process; from the revoke() call:"
        f" p50 {result.percentile(50, result.from_call_ns):.0f} µs"
    )
    return [
        Line("live WebSocket closed p50", None, result.percentile(50), None, note),
        Line("live WebSocket closed p99", None, result.percentile(99), None, ""),
        Line("live WebSocket closed max", None, max(result.from_return_ns) / 1e3, None, ""),
    ]


def cap_lines(result: CapResult) -> list[Line]:
    """One line per operation: its longest script (µs column), from SLOWLOG."""
    return [
        Line(
            f"longest script: {name}",
            None,
            us,
            None,
            f"SLOWLOG at {result.cap:,} sessions (the largest allowed cap);"
            f" median script (of those > 100 µs) {result.median_us(name):,.0f} µs;"
            f" script runs per call {'/'.join(map(str, result.runs[name]))}",
        )
        for name, us in result.worst_us.items()
    ]


def footprint_lines(result: FootprintResult) -> list[Line]:
    """Two lines: objects a validation keeps in flight, and what it leaves afterwards."""
    checks = result.in_flight.get("Check", 0)
    untracked = ", ".join(
        f"{name} {'no' if free else 'YES'}" for name, free in result.untracked.items()
    )
    left = ", ".join(f"{name} {count}" for name, count in result.left.items())
    refs = ", ".join(f"{name} {count}" for name, count in result.refcounts.items())
    return [
        Line(
            "footprint: objects per validation in flight",
            None,
            None,
            None,
            f"{result.per_validation:.2f} beyond asyncio's {result.asyncio_share:.2f} per task;"
            f" Check objects {checks}/{result.calls}; {result.calls} concurrent, gc paused",
        ),
        Line(
            "footprint: left by a validation",
            None,
            None,
            None,
            f"records tracked by gc: {untracked}; refcounts {refs} (2: the caller's only);"
            f" left: {left}",
        ),
    ]


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(lines: Sequence[Line]) -> str:
    """A fixed-width table: row, median ops/s, median µs/op, notes.

    IQR is the interquartile range of the per-round rates relative to their median: how
    much the rounds disagree, not an error bar.
    """
    header = ("row", "ops/s (median)", "µs/op", "IQR", "notes")
    cells = [
        (
            line.name,
            _cell(line.rate, ",.0f"),
            _cell(line.us, ",.1f"),
            "-" if line.spread is None else f"{line.spread * 100:.1f}%",
            line.note,
        )
        for line in lines
    ]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(4)]

    def render(row: tuple[str, ...]) -> str:
        name, rate, us, spread, note = row
        return (
            f"{name:<{widths[0]}}  {rate:>{widths[1]}}  {us:>{widths[2]}}"
            f"  {spread:>{widths[3]}}  {note}"
        ).rstrip()

    rule = "-" * (sum(widths) + 8 + max(len(c[4]) for c in [header, *cells]))
    return "\n".join([render(header), rule, *(render(row) for row in cells)])


def _figure(target: Target) -> str:
    if isinstance(target, Bound):
        return f"{target.value:,.3f} {target.unit} (limit {target.limit:g}; {target.detail})"
    return (
        f"{target.of_medians:.3f}x (pairs {target.median_of_pairs:.3f}x,"
        f" {len(target.pair_ratios)} pairs)"
    )


def format_targets(targets: Sequence[Target], context: Sequence[Ratio]) -> str:
    """Targets (met or missed), then context ratios, one per line."""
    out = ["Targets (ratios of medians of interleaved rounds; pairs = median of per-pair ratios):"]
    for target in targets:
        out.append(f"  {target.name}: {_figure(target)} -> {'MET' if target.met else 'MISSED'}")
    if context:
        out.append("Context ratios:")
        out += [f"  {ratio.name}: {_figure(ratio)}" for ratio in context]
    return "\n".join(out)


def write_json(
    path: Path,
    *,
    command: str,
    machine: Mapping[str, object],
    settings: Mapping[str, object],
    rows: Sequence[RowResult],
    memory: MemoryResult | None,
    propagation: PropagationResult | None,
    history: HistoryMemory | None = None,
    cap: CapResult | None = None,
    footprint: FootprintResult | None = None,
    targets: Sequence[Target],
    spinning: PropagationResult | None = None,
    live: LiveResult | None = None,
    context: Sequence[Ratio],
) -> None:
    """Write the full report (every per-round value) to ``path``."""
    memory_rows: list[dict[str, object]] = []
    if memory is not None:
        memory_rows = [
            {
                "name": line.name,
                "group": "memory",
                "bytes_per_session": round(value, 1),
                "note": line.note,
            }
            for line, value in zip(
                memory_lines(memory),
                (memory.usage_per_session, memory.delta_per_session),
                strict=True,
            )
        ]
    report = {
        "schema": SCHEMA,
        "command": command,
        "machine": dict(machine),
        "settings": dict(settings),
        "rows": [row.to_json() for row in rows] + memory_rows,
        "memory": None if memory is None else memory.to_json(),
        "memory_history": None if history is None else history.to_json(),
        "propagation": None if propagation is None else propagation.to_json(),
        "propagation_spinning": None if spinning is None else spinning.to_json(),
        "live": None if live is None else live.to_json(),
        "cap": None if cap is None else cap.to_json(),
        "footprint": None if footprint is None else footprint.to_json(),
        "targets": [target.to_json() for target in targets],
        "ratios": [ratio.to_json() for ratio in context],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
