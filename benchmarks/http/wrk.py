"""Driving Debian's ``wrk``: one timed run against one URL, its output parsed."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchmarks.server import BenchError

__all__ = ["LUA", "Load", "WrkRun", "run_wrk", "wrk_binary"]

LUA = Path(__file__).with_name("rotate.lua")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class Load:
    """How wrk loads a server: threads, open connections, seconds per run."""

    threads: int = 1
    connections: int = 16
    seconds: float = 5.0


@dataclass(frozen=True)
class WrkRun:
    """One wrk run: requests, how long, p99 latency, refused and failed requests."""

    requests: int
    rate: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def ns(self) -> int:
        """The run's duration as wrk's own rate implies it (requests / rate)."""
        return max(1, round(self.requests / self.rate * 1e9)) if self.rate else 1


def wrk_binary() -> str:
    """The ``wrk`` on PATH (``make bench-http`` installs Debian's)."""
    found = shutil.which("wrk")
    if found is None:
        raise BenchError("no wrk on PATH: apt-get install wrk (make bench-http does)")
    return found


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse(output: str) -> WrkRun:
    """The figures of wrk's ``--latency`` report."""
    done = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, flags=re.MULTILINE)
    if done is None or rate is None or p99 is None:
        raise BenchError(f"unexpected wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkRun(
        requests=int(done.group(1)),
        rate=float(rate.group(1)),
        p99_ms=_ms(p99.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(map(int, errors.groups())) if errors else 0,
    )


def run_wrk(
    url: str,
    tokens: Path,
    load: Load,
    seconds: float | None = None,
    credential: tuple[str, str] = ("Authorization", "Bearer "),
) -> WrkRun:
    """``wrk --latency`` on ``url`` for ``seconds`` (default ``load.seconds``), tokens rotated,
    each sent as ``credential`` (header, prefix)."""
    duration = load.seconds if seconds is None else seconds
    command = [
        wrk_binary(),
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA),
        url,
        "--",
        str(tokens),
        *credential,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse(done.stdout)
