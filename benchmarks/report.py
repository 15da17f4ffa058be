"""The stdout table and the JSON report."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import Ratio, RowResult
from benchmarks.memory import MemoryResult

__all__ = ["Line", "format_table", "format_targets", "memory_lines", "row_lines", "write_json"]

SCHEMA = "sessionstore-bench/1"


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
        f" + index {memory.index_bytes / per:.0f}; OBJECT ENCODING hash {memory.hash_encoding},"
        f" index {memory.index_encoding}"
    )
    baseline = "from FLUSHALL" if memory.flushed else "NOT flushed: approximate"
    delta = f"{memory.delta_per_session:.0f} B/session ({per} sessions, {baseline})"
    return [
        Line("memory per session (MEMORY USAGE)", None, None, None, usage),
        Line("memory per session (used_memory)", None, None, None, delta),
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


def format_targets(ratios: Sequence[Ratio]) -> str:
    """Targets (met or missed) and context ratios, one per line."""
    out = ["Targets (ratio of medians of interleaved rounds; pairs = median of per-pair ratios):"]
    for ratio in ratios:
        figure = (
            f"{ratio.of_medians:.3f}x (pairs {ratio.median_of_pairs:.3f}x,"
            f" {len(ratio.pair_ratios)} pairs)"
        )
        if ratio.met is None:
            out.append(f"  (context) {ratio.name}: {figure}")
        else:
            out.append(f"  {ratio.name}: {figure} -> {'MET' if ratio.met else 'MISSED'}")
    return "\n".join(out)


def write_json(
    path: Path,
    *,
    command: str,
    machine: Mapping[str, object],
    settings: Mapping[str, object],
    rows: Sequence[RowResult],
    memory: MemoryResult | None,
    ratios: Sequence[Ratio],
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
        "targets": [ratio.to_json() for ratio in ratios if ratio.threshold is not None],
        "ratios": [ratio.to_json() for ratio in ratios if ratio.threshold is None],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
