"""The fault injector: breaks a private server on a timeline, in a thread of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sessionstore.testing import LocalServer

__all__ = ["SCENARIOS", "Injector", "Timeline"]


@dataclass(frozen=True)
class Timeline:
    """When the fault starts and ends, and when the run stops (seconds from the start)."""

    total: float
    start: float
    length: float

    @property
    def end(self) -> float:
        """When the fault ends."""
        return self.start + self.length


class Injector:
    """Breaks the server on the timeline, in its own thread; records when it recovered."""

    def __init__(self, server: LocalServer, kind: str, timeline: Timeline) -> None:
        self.server, self.kind, self.timeline = server, kind, timeline
        self.started = 0.0
        self.fault_started: float | None = None
        self.fault_ended: float | None = None
        self.epoch = 0
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"inject-{kind}", daemon=True)

    def admin(self) -> redis.Redis:
        """A client of our own for the injections (no retries)."""
        return redis.Redis.from_url(self.server.url, socket_timeout=5, retry=Retry(NoBackoff(), 0))

    def start(self, started: float) -> None:
        """Start the timeline, ``started`` being the load's ``perf_counter`` origin."""
        self.started = started
        self._thread.start()

    def join(self) -> None:
        """Wait for the injector to finish (bounded)."""
        self._thread.join(self.timeline.total + 30)

    def _sleep_until(self, offset: float) -> None:
        time.sleep(max(0.0, self.started + offset - time.perf_counter()))

    def _run(self) -> None:
        try:
            self._sleep_until(self.timeline.start)
            self.fault_started = time.perf_counter()
            getattr(self, f"_{self.kind}")()
            self.fault_ended = time.perf_counter()
        except Exception as err:  # the report shows it; the load loop goes on
            self.error = f"{type(err).__name__}: {err}"

    def _kill_restart(self) -> None:
        self.server.kill()
        self.epoch += 1  # from here on, every session of the old data set is lost
        self._sleep_until(self.timeline.end)
        self.server.restart()

    def _sigstop(self) -> None:
        self.server.pause()
        try:
            self._sleep_until(self.timeline.end)
        finally:
            self.server.resume()

    def _repeat(self, action: Callable[[redis.Redis], Any], every: float) -> None:
        admin = self.admin()
        try:
            while time.perf_counter() < self.started + self.timeline.end:
                action(admin)
                time.sleep(every)
        finally:
            admin.close()

    def _script_flush(self) -> None:
        self._repeat(lambda admin: admin.script_flush(), 0.2)

    def _client_kill(self) -> None:
        def kill_all(admin: redis.Redis) -> None:
            for kind in ("normal", "pubsub"):
                admin.execute_command(  # type: ignore[no-untyped-call]
                    "CLIENT", "KILL", "TYPE", kind, "SKIPME", "yes"
                )

        self._repeat(kill_all, 0.5)

    def _maxmemory(self) -> None:
        admin = self.admin()
        try:
            used = int(admin.info("memory")["used_memory"])
            # A little headroom, filled within moments by the load's logins.
            admin.config_set("maxmemory", used + 16 * 1024)
            self._sleep_until(self.timeline.end)
            admin.config_set("maxmemory", 0)
        finally:
            admin.close()


SCENARIOS: dict[str, str] = {
    "kill -9, restart empty": "kill_restart",
    "SIGSTOP": "sigstop",
    "SCRIPT FLUSH": "script_flush",
    "CLIENT KILL every connection": "client_kill",
    "maxmemory under noeviction": "maxmemory",
}
