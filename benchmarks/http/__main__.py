"""``python -m benchmarks.http`` (``make bench-http``): the table, then the JSON report.

Figures are medians of interleaved rounds on one shared machine: indicative, and only the
ratios between rows of one run are meant to be compared.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

from benchmarks.http.report import ratios, table, write_json
from benchmarks.http.rows import COMPARISONS, ROWS
from benchmarks.http.run import REGIMES, Plan, measure
from benchmarks.http.wrk import Load, wrk_binary
from benchmarks.server import BenchError, machine_info, open_server

_PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "fastapi-users",
    "flask",
    "flask-jwt-extended",
    "gunicorn",
    "django",
    "djangorestframework",
    "djangorestframework-simplejwt",
    "django-redis",
    "litestar",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per wrk run (5)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per row (2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--sessions", type=int, default=10_000, help="sessions of 'many'")
    parser.add_argument("--only", default="", help="comma-separated substrings of row keys")
    parser.add_argument("--regimes", default=",".join(REGIMES), help="hot,many")
    parser.add_argument(
        "--json", type=Path, default=Path("benchmarks/results/http-latest.json"), help="report"
    )
    return parser


def _versions() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    wrk = subprocess.run([wrk_binary(), "--version"], capture_output=True, text=True)
    found["wrk"] = (wrk.stdout or wrk.stderr).split("[")[0].strip()
    return found


def _uvicorn_stack() -> str:
    """What uvicorn's ``auto`` picks: uvloop and httptools when installed."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{loop}, {'httptools' if importlib.util.find_spec('httptools') else 'h11'}"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    wanted = [w for w in args.only.split(",") if w]
    rows = [row for row in ROWS if not wanted or any(w in row.key for w in wanted)]
    regimes = [r for r in args.regimes.split(",") if r]
    if not rows or not set(regimes) <= set(REGIMES):
        raise BenchError(f"no rows selected, or regimes not among {REGIMES}")
    load = Load(args.threads, args.connections, args.seconds)
    plan = Plan(rows, regimes, args.rounds, args.warmup, sessions=args.sessions, load=load)
    with open_server("valkey", None, True) as server, tempfile.TemporaryDirectory() as work:
        client = redis.Redis.from_url(server.url)
        try:
            machine = {**machine_info(server, client), "packages": _versions()}
        finally:
            client.close()
        title = f"{server.name} {server.version}"
        start_load = os.getloadavg()[0]
        measured = measure(plan, server.url, Path(work))
        end_load = os.getloadavg()[0]
    targets, context = ratios(measured, COMPARISONS)
    settings = {
        "rounds": plan.rounds,
        "seconds_per_run": load.seconds,
        "warmup_seconds": plan.warmup_seconds,
        "wrk_threads": load.threads,
        "wrk_connections": load.connections,
        "hot_tokens": plan.hot_tokens,
        "sessions": plan.sessions,
        "wsgi": f"gunicorn, 1 worker, gthread, {plan.wsgi_threads} threads",
        "asgi": f"uvicorn, 1 worker ({_uvicorn_stack()})",
    }
    print(
        f"sessionstore HTTP benchmarks: {title}, Python {machine['python']},"
        f" {machine['cpu_count']} CPUs, {machine['date']}\n"
        f"{settings['asgi']}; {settings['wsgi']}; wrk -t{load.threads} -c{load.connections};"
        f" {plan.rounds} interleaved rounds of {load.seconds:g} s per row and regime; medians"
        f" of the rounds; load average (1 min) {start_load:.2f} at start, {end_load:.2f} at end"
        "\nA shared machine: the figures are indicative; compare rows of one run only."
    )
    print(table(measured, targets, context))
    write_json(
        args.json,
        machine=machine,
        settings=settings,
        measured=measured,
        targets=targets,
        context=context,
    )
    print(f"\nfull report: {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
