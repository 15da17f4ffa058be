"""The table and JSON report of ``make bench-http``."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks.harness import Ratio
from benchmarks.http.rows import Compare
from benchmarks.http.run import Measured
from benchmarks.report import format_targets

__all__ = ["ratios", "table", "write_json"]

SCHEMA = "sessionstore-bench-http/1"


def _floor(measured: Sequence[Measured], one: Measured) -> Measured | None:
    for other in measured:
        if other.row.floor and (other.row.framework, other.regime) == (
            one.row.framework,
            one.regime,
        ):
            return other
    return None


def ratios(
    measured: Sequence[Measured], comparisons: Sequence[Compare]
) -> tuple[list[Ratio], list[Ratio]]:
    """(targets, context): the comparisons in each regime, then every row against its floor."""
    found = {(m.row.key, m.regime): m for m in measured}
    targets: list[Ratio] = []
    context: list[Ratio] = []
    for regime in dict.fromkeys(m.regime for m in measured):
        for compare in comparisons:
            a, b = found.get((compare.numerator, regime)), found.get((compare.denominator, regime))
            if a is None or b is None:
                continue
            name = f"{a.row.framework} {regime}: {a.row.name} / {b.row.name}"
            if compare.threshold is not None:
                name += f" >= {compare.threshold:g}x"
            ratio = Ratio(name, a.result, b.result, compare.threshold)
            (targets if compare.threshold is not None else context).append(ratio)
        for one in measured:
            floor = _floor(measured, one)
            if one.regime == regime and floor is not None and not one.row.floor:
                name = f"{one.row.framework} {regime}: {one.row.name} / floor"
                context.append(Ratio(name, one.result, floor.result))
    return targets, context


def _vs_floor(measured: Sequence[Measured], one: Measured) -> str:
    floor = None if one.row.floor else _floor(measured, one)
    if floor is None:
        return "1.00x" if one.row.floor else "-"
    return f"{one.result.median_rate / floor.result.median_rate:.2f}x"


def table(measured: Sequence[Measured], targets: Sequence[Ratio], context: Sequence[Ratio]) -> str:
    """Rows by framework and regime: median req/s, IQR, median p99, ratio to the floor;
    then the targets and the context ratios."""
    header = ("framework", "regime", "row", "req/s", "IQR", "p99 ms", "vs floor")
    cells = [header]
    for m in sorted(measured, key=lambda m: (m.row.framework, m.regime)):
        cells.append(
            (
                m.row.framework,
                m.regime,
                m.row.name,
                f"{m.result.median_rate:,.0f}",
                f"{m.result.spread * 100:.1f}%",
                f"{statistics.median(m.p99_ms):.2f}",
                _vs_floor(measured, m),
            )
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def render(row: tuple[str, ...]) -> str:
        left = [f"{cell:<{width}}" for cell, width in zip(row[:3], widths, strict=False)]
        right = [f"{cell:>{width}}" for cell, width in zip(row[3:], widths[3:], strict=True)]
        return "  ".join(left + right)

    lines = [render(row) for row in cells]
    lines.insert(1, "-" * len(lines[0]))
    for m in measured:
        if m.non_2xx or m.socket_errors:
            lines.append(
                f"WARNING {m.row.key} {m.regime}: {m.non_2xx} non-2xx answers,"
                f" {m.socket_errors} socket errors"
            )
    return "\n".join(lines) + "\n\n" + format_targets(targets, context)


def write_json(
    path: Path,
    *,
    machine: Mapping[str, object],
    settings: Mapping[str, object],
    measured: Sequence[Measured],
    targets: Sequence[Ratio],
    context: Sequence[Ratio],
) -> None:
    """Every round of every row, the ratios and the targets."""
    rows = [
        {
            **m.result.to_json(),
            "key": m.row.key,
            "framework": m.row.framework,
            "module": m.row.module,
            "regime": m.regime,
            "p99_ms": m.p99_ms,
            "p99_ms_median": statistics.median(m.p99_ms),
            "non_2xx": m.non_2xx,
            "socket_errors": m.socket_errors,
        }
        for m in measured
    ]
    report = {
        "schema": SCHEMA,
        "machine": dict(machine),
        "settings": dict(settings),
        "rows": rows,
        "targets": [t.to_json() for t in targets],
        "ratios": [r.to_json() for r in context],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
