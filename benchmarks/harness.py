"""Timing core: warm-up and calibration, interleaved rounds, medians and ratios.

No Redis here. A ``Case`` is a function that runs ``n`` operations and returns how many
nanoseconds its timed part took (setup it does inside, such as re-creating sessions, stays
outside that figure). Every case of a group runs once per round, in a fixed order (A, B, A,
B, ...), so the rows of a group share the same server, the same minute and the same noise.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Bound",
    "Case",
    "Ratio",
    "RowResult",
    "Runner",
    "Settings",
    "progress",
    "run_group",
    "timed",
]

Runner = Callable[[int], int]
"""Runs ``n`` operations; returns the nanoseconds of the timed part (``perf_counter_ns``)."""


@dataclass(frozen=True)
class Settings:
    """How long and how often each case runs."""

    rounds: int
    round_seconds: float
    warmup_seconds: float
    min_ops: int = 20
    max_ops: int = 500_000


@dataclass(frozen=True)
class Case:
    """One row to measure; ``fixed_ops`` skips calibration (for cases with heavy setup).

    ``unit``: every op count is a multiple of it (1000 for rows that run 1000-call gathers).
    """

    name: str
    run: Runner
    fixed_ops: int | None = None
    note: str = ""
    unit: int = 1


@dataclass
class RowResult:
    """The rounds of one case: operations and timed nanoseconds per round."""

    name: str
    group: str
    note: str = ""
    ops: list[int] = field(default_factory=list)
    ns: list[int] = field(default_factory=list)

    @property
    def rates(self) -> list[float]:
        """Operations per second of each round."""
        return [ops * 1e9 / ns for ops, ns in zip(self.ops, self.ns, strict=True)]

    @property
    def median_rate(self) -> float:
        """Median of the per-round operations per second."""
        return statistics.median(self.rates)

    @property
    def median_us(self) -> float:
        """Median of the per-round microseconds per operation."""
        return statistics.median(ns / 1e3 / ops for ops, ns in zip(self.ops, self.ns, strict=True))

    @property
    def spread(self) -> float:
        """Interquartile range of the per-round rates, relative to their median."""
        rates = self.rates
        if len(rates) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(rates, n=4, method="inclusive")
        return (q3 - q1) / statistics.median(rates)

    def to_json(self) -> dict[str, object]:
        """Every per-round value plus the medians."""
        return {
            "name": self.name,
            "group": self.group,
            "note": self.note,
            "ops_per_s_median": round(self.median_rate, 1),
            "us_per_op_median": round(self.median_us, 3),
            "iqr_relative": round(self.spread, 4),
            "rounds": [
                {"ops": ops, "ns": ns, "ops_per_s": round(ops * 1e9 / ns, 1)}
                for ops, ns in zip(self.ops, self.ns, strict=True)
            ],
        }


@dataclass(frozen=True)
class Ratio:
    """``numerator`` over ``denominator`` throughput, from rounds that ran side by side."""

    name: str
    numerator: RowResult
    denominator: RowResult
    threshold: float | None = None

    @property
    def pair_ratios(self) -> list[float]:
        """Round i of the numerator over round i of the denominator."""
        return [a / b for a, b in zip(self.numerator.rates, self.denominator.rates, strict=True)]

    @property
    def of_medians(self) -> float:
        """Median throughput of the numerator over that of the denominator."""
        return self.numerator.median_rate / self.denominator.median_rate

    @property
    def median_of_pairs(self) -> float:
        """Median of the per-pair ratios."""
        return statistics.median(self.pair_ratios)

    @property
    def met(self) -> bool | None:
        """Whether the ratio of medians reaches the threshold (None: not a target)."""
        return None if self.threshold is None else self.of_medians >= self.threshold

    def to_json(self) -> dict[str, object]:
        """The ratio, its per-pair values and, for a target, whether it is met."""
        return {
            "name": self.name,
            "numerator": self.numerator.name,
            "denominator": self.denominator.name,
            "threshold": self.threshold,
            "ratio_of_medians": round(self.of_medians, 4),
            "median_of_pair_ratios": round(self.median_of_pairs, 4),
            "pair_ratios": [round(r, 4) for r in self.pair_ratios],
            "met": self.met,
        }


@dataclass(frozen=True)
class Bound:
    """A measured figure against an absolute ceiling (a latency, bytes per session)."""

    name: str
    value: float
    limit: float
    unit: str
    detail: str = ""

    @property
    def met(self) -> bool:
        """Whether the figure is at or under the ceiling."""
        return self.value <= self.limit

    def to_json(self) -> dict[str, object]:
        """The figure, its ceiling and whether it is met."""
        return {
            "name": self.name,
            "value": round(self.value, 4),
            "limit": self.limit,
            "unit": self.unit,
            "detail": self.detail,
            "met": self.met,
        }


def timed(run: Runner, n: int) -> int:
    """Run ``n`` operations with the garbage collector off; the timed nanoseconds (>= 1)."""
    gc.collect()
    gc.disable()
    try:
        return max(run(n), 1)
    finally:
        gc.enable()


def _calibrate(case: Case, settings: Settings) -> int:
    """Warm the case up and pick the op count of a round of ``round_seconds``."""
    unit = case.unit
    if case.fixed_ops is not None:
        timed(case.run, _units(max(2, case.fixed_ops // 4), unit))
        return _units(case.fixed_ops, unit)
    budget_ns = settings.warmup_seconds * 1e9
    spent_ns, n, rate, runs = 0, _units(8, unit), 0.0, 0
    # At least two runs: the rate comes from a warm one, never from the first (which may
    # open connections, e.g. a pool's 100 for a row of 1000-call gathers).
    while spent_ns < budget_ns or runs < 2:
        ns = timed(case.run, n)
        spent_ns += ns
        runs += 1
        rate = n / ns
        # Grow the batch, never past what the rest of the warm-up budget allows.
        n = _units(int(min(n * 2, max(8, rate * (budget_ns - spent_ns)), settings.max_ops)), unit)
    ops = int(rate * settings.round_seconds * 1e9)
    return _units(min(max(ops, settings.min_ops), settings.max_ops), unit)


def _units(n: int, unit: int) -> int:
    """``n`` rounded to the nearest multiple of ``unit`` (at least one unit)."""
    return max(unit, round(n / unit) * unit)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_group(group: str, cases: Sequence[Case], settings: Settings) -> list[RowResult]:
    """Warm up every case, then run them round-robin for ``settings.rounds`` rounds."""
    counts = []
    for case in cases:
        counts.append(_calibrate(case, settings))
        progress(f"{group}: warmed up {case.name!r}: {counts[-1]} ops per round")
    results = [RowResult(case.name, group, case.note) for case in cases]
    for number in range(1, settings.rounds + 1):
        for case, n, result in zip(cases, counts, results, strict=True):
            result.ns.append(timed(case.run, n))
            result.ops.append(n)
        progress(f"{group}: round {number}/{settings.rounds}")
    return results
