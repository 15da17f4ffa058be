"""One run: a private Valkey, every row's server (one worker each), interleaved wrk rounds.

Each row's server starts once, on a free loopback port, and serves both regimes; rounds
interleave the rows (round 1: every row of regime hot, then of regime many; round 2: ...),
so rows share the same minutes and the same noise. Every process started here is stopped
by its pid, errors included.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import RowResult, progress
from benchmarks.http.rows import Row
from benchmarks.http.wrk import Load, WrkRun, run_wrk
from benchmarks.server import BenchError

__all__ = ["Measured", "Plan", "measure"]

ROOT = Path(__file__).resolve().parents[2]
REGIMES = ("hot", "many")
WARM_CYCLES = 2.2  # visits of every "many" session before the rounds (see _warm_up)


@dataclass(frozen=True)
class Plan:
    """What a run measures and how long."""

    rows: Sequence[Row]
    regimes: Sequence[str] = REGIMES
    rounds: int = 3
    warmup_seconds: float = 2.0
    hot_tokens: int = 8
    sessions: int = 10_000
    load: Load = field(default_factory=Load)
    wsgi_threads: int = 4


@dataclass
class Measured:
    """The rounds of one row in one regime: rates (as a ``RowResult``) and p99s."""

    row: Row
    regime: str
    result: RowResult
    p99_ms: list[float] = field(default_factory=list)
    non_2xx: int = 0
    socket_errors: int = 0

    def add(self, run: WrkRun) -> None:
        self.result.ops.append(run.requests)
        self.result.ns.append(run.ns)
        self.p99_ms.append(run.p99_ms)
        self.non_2xx += run.non_2xx
        self.socket_errors += run.socket_errors


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _environment(redis_url: str, secret: str, work: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "PYTHONPATH": path,
        "BENCH_REDIS_URL": redis_url,
        "BENCH_SECRET": secret,
        "BENCH_WORK": str(work),  # scratch files of the apps (a SQLite database)
    }


def _command(kind: str, module: str, port: int, threads: int) -> list[str]:
    app = f"{module}:APP"
    if kind == "asgi":
        return [
            *(sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)),
            *("--log-level", "warning", "--no-access-log"),
        ]
    if kind == "wsgi":
        return [
            *(sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "gthread"),
            *("--threads", str(threads), "--bind", f"127.0.0.1:{port}", "--log-level", "warning"),
            app,
        ]
    raise BenchError(f"{module}: KIND must be 'asgi' or 'wsgi', not {kind!r}")


def _get(port: int, credential: tuple[str, str] | None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/me", headers=dict([credential]) if credential else {})
        return conn.getresponse().status
    finally:
        conn.close()


@dataclass
class _Server:
    row: Row
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    tokens: dict[str, Path]
    credential: tuple[str, str]  # (header, prefix) the row's token rides in

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(OSError):
                _get(self.port, None)
                return
            time.sleep(0.2)
        tail = self.log.read_text(errors="replace")[-2000:]
        raise BenchError(f"{self.row.key}: the server did not answer:\n{tail}")

    def check(self) -> None:
        """A token of the row is accepted; a forged one is refused (floors accept all).

        Refused: any 4xx (flask-jwt-extended answers a malformed token 422).
        """
        token = self.tokens["many"].read_text().split("\n", 1)[0]
        header, prefix = self.credential
        ok = _get(self.port, (header, prefix + token))
        refused = _get(self.port, (header, prefix + "forged.token.x"))
        if ok != 200 or (not self.row.floor and not 400 <= refused < 500):
            raise BenchError(
                f"{self.row.key}: /me answered {ok} to a token, {refused} to a forgery"
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)


def _prepare(
    row: Row, plan: Plan, env: dict[str, str], work: Path
) -> tuple[str, tuple[str, str], dict[str, Path]]:
    """The row's KIND, credential and token files (many: every session; hot: the first few)."""
    many = work / f"{row.key}.many.txt"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.http.prepare",
            row.module,
            str(plan.sessions),
            str(many),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise BenchError(f"{row.key}: prepare failed:\n{done.stderr[-2000:]}")
    hot = work / f"{row.key}.hot.txt"
    hot.write_text("".join(many.read_text().splitlines(keepends=True)[: plan.hot_tokens]))
    said = json.loads(done.stdout.strip().splitlines()[-1])
    header, prefix = said["credential"]
    return said["kind"], (header, prefix), {"hot": hot, "many": many}


@contextlib.contextmanager
def _servers(plan: Plan, redis_url: str, work: Path) -> Iterator[list[_Server]]:
    env = _environment(redis_url, secrets.token_urlsafe(32), work)
    started: list[_Server] = []
    try:
        for row in plan.rows:
            kind, credential, tokens = _prepare(row, plan, env, work)
            port = _free_port()
            log = work / f"{row.key}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    _command(kind, row.module, port, plan.wsgi_threads),
                    env=env,
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            server = _Server(row, port, process, log, tokens, credential)
            started.append(server)
            server.wait_ready()
            server.check()
            progress(f"http: {row.key} ({kind}) serving on port {port}")
        yield started
    finally:
        for server in started:
            server.stop()


def _warm_up(server: _Server, plan: Plan, limit: float = 90.0) -> None:
    """The hot tokens for ``plan.warmup_seconds``; then, for "many", every session twice.

    Twice: "many" is the steady state of 10,000 live sessions, not their first sights, and
    sessionstore caches a token from its second sighting on (``TokenCache.admit``). The
    runs go on until wrk has sent ``WARM_CYCLES`` times the sessions (at most ``limit`` s).
    """
    url = f"http://127.0.0.1:{server.port}/me"
    warm = run_wrk(url, server.tokens["hot"], plan.load, plan.warmup_seconds, server.credential)
    if "many" not in plan.regimes:
        return
    sent, rate, spent = 0, warm.rate, 0.0
    while sent < WARM_CYCLES * plan.sessions and spent < limit:
        seconds = max(1.0, min(limit - spent, (WARM_CYCLES * plan.sessions - sent) / rate))
        run = run_wrk(url, server.tokens["many"], plan.load, seconds, server.credential)
        sent, rate, spent = sent + run.requests, max(run.rate, 1.0), spent + seconds


def measure(plan: Plan, redis_url: str, work: Path) -> list[Measured]:
    """Every row in every regime, ``plan.rounds`` interleaved rounds."""
    with _servers(plan, redis_url, work) as servers:
        measured = {
            (s.row.key, regime): Measured(s.row, regime, RowResult(s.row.name, regime))
            for regime in plan.regimes
            for s in servers
        }
        for server in servers:
            _warm_up(server, plan)
        progress("http: warmed up every row")
        for number in range(1, plan.rounds + 1):
            for regime in plan.regimes:
                for server in servers:
                    url = f"http://127.0.0.1:{server.port}/me"
                    run = run_wrk(url, server.tokens[regime], plan.load, None, server.credential)
                    measured[server.row.key, regime].add(run)
            progress(f"http: round {number}/{plan.rounds}")
        return list(measured.values())
