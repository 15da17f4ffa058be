"""``make bench-http``'s parts that can be checked without wrk or servers: every app module
keeps its contract (``KIND``, ``APP``, ``prepare``; ``GET /me`` accepts its tokens and
refuses a forged one) on a real Redis, through the frameworks' test clients (the Django
rows in a process each: Django is configured once per process); the parsing of wrk's
report; the ratios."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from flask import Flask
from starlette.testclient import TestClient

from benchmarks.harness import RowResult
from benchmarks.http.report import ratios
from benchmarks.http.rows import COMPARISONS, ROWS, Compare, Row
from benchmarks.http.run import Measured
from benchmarks.http.wrk import parse
from web_support import server_fixtures

server, url = server_fixtures("bench-http")
SECRET = "s" * 43

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:40001/me
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.01ms    1.20ms  30.22ms   90.00%
    Req/Sec     2.66k   120.00     2.90k    70.00%
  Latency Distribution
     50%    5.80ms
     75%    6.40ms
     90%    7.10ms
     99%    1.02s
  13301 requests in 5.00s, 2.01MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:   2660.20
Transfer/sec:    411.00KB
"""


def test_wrk_report_is_parsed() -> None:
    run = parse(WRK_OUTPUT)
    assert (run.requests, run.rate, run.p99_ms) == (13301, 2660.20, 1020.0)
    assert (run.non_2xx, run.socket_errors) == (7, 3)
    assert run.ns == pytest.approx(5.0e9, rel=1e-3)


@pytest.fixture
def load_app(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], ModuleType]]:
    """Import an app module afresh, its ``APP`` built on this test's server."""
    monkeypatch.setenv("BENCH_REDIS_URL", url)
    monkeypatch.setenv("BENCH_SECRET", SECRET)
    loaded: list[str] = []

    def load(name: str) -> ModuleType:
        sys.modules.pop(name, None)  # APP is built at import, from the environment
        loaded.append(name)
        return importlib.import_module(name)

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


ROOT = Path(__file__).resolve().parents[1]
DJANGO_ROWS = [row for row in ROWS if row.key.startswith("django-")]
OTHER_ROWS = [row for row in ROWS if row not in DJANGO_ROWS]


@pytest.mark.parametrize("row", DJANGO_ROWS, ids=[row.key for row in DJANGO_ROWS])
def test_every_django_app_keeps_the_contract(row: Row, url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
        "BENCH_REDIS_URL": url,
        "BENCH_SECRET": SECRET,
        "BENCH_WORK": str(tmp_path),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.http.check", row.module],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert (found["kind"], found["tokens"], found["accepted"]) == ("wsgi", 3, [200, 200, 200])
    assert row.floor or 400 <= found["forged"] < 500


@pytest.mark.parametrize("row", OTHER_ROWS, ids=[row.key for row in OTHER_ROWS])
def test_every_app_keeps_the_contract(
    row: Row, url: str, load_app: Callable[[str], ModuleType]
) -> None:
    module = load_app(row.module)
    assert module.KIND in ("asgi", "wsgi")
    tokens = module.prepare(url, SECRET, 3)
    assert len(tokens) == len(set(tokens)) == 3
    if module.KIND == "wsgi":
        assert isinstance(module.APP, Flask)
        client = module.APP.test_client()
        answers = [client.get("/me", headers={"Authorization": f"Bearer {t}"}) for t in tokens]
        forged = client.get("/me", headers={"Authorization": "Bearer forged.token.x"})
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert row.floor or 400 <= forged.status_code < 500
        return
    with TestClient(module.APP) as asgi:
        for token in tokens:
            assert asgi.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        refused = asgi.get("/me", headers={"Authorization": "Bearer forged.token.x"})
        assert row.floor or 400 <= refused.status_code < 500


def _measured(row: Row, regime: str, rates: list[int]) -> Measured:
    result = RowResult(row.name, regime, ops=rates, ns=[10**9] * len(rates))
    return Measured(row, regime, result, p99_ms=[1.0] * len(rates))


def test_ratios_pair_each_comparison_and_each_row_with_its_floor() -> None:
    ours, peer, floor = (row for row in ROWS if row.framework == "Flask")
    measured = [
        _measured(ours, "hot", [300, 310, 290]),
        _measured(peer, "hot", [100, 100, 100]),
        _measured(floor, "hot", [600, 600, 600]),
    ]
    targets, context = ratios(measured, [*COMPARISONS, Compare(peer.key, floor.key)])
    assert [t.name for t in targets] == [f"Flask hot: {ours.name} / {peer.name} >= 1.8x"]
    assert targets[0].of_medians == 3.0 and targets[0].met
    by_name = {r.name: r.of_medians for r in context}
    assert by_name[f"Flask hot: {ours.name} / floor"] == 0.5
    assert by_name[f"Flask hot: {peer.name} / floor"] == pytest.approx(1 / 6)


def test_rows_have_one_floor_per_framework_and_comparisons_name_rows() -> None:
    keys = {row.key for row in ROWS}
    frameworks = {row.framework for row in ROWS}
    floors = [row.framework for row in ROWS if row.floor]
    assert sorted(floors) == sorted(frameworks)
    for compare in COMPARISONS:
        assert {compare.numerator, compare.denominator} <= keys
