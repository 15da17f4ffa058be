"""Fault scenarios under a bounded load loop, each on a private server of its own.

The load is one thread calling a ``SessionStore`` (default ``Config``: caches, breaker and
stateless fallback on) as fast as it can: mostly ``validate`` of live, revoked and forged
tokens, with a login, a refresh or a revocation every few calls. An injector thread breaks
the server in the middle of the run. Every answer is classified:

* wrong accept: a forged token, a session this process revoked, or (out of degraded mode) a
  session revoked elsewhere or lost with the data set, accepted. Must be 0.
* unhandled: an exception outside ``SessionStoreError``. Must be 0.
* degraded: a ``Principal(degraded=True)``, or a typed refusal to decide
  (``StoreUnavailable``, ``ScriptError``) of a call that would otherwise have succeeded.
* stale accept: a degraded accept of a session revoked by another store object: the
  documented trade of ``fallback="stateless"`` (see SECURITY.md), reported, not hidden.
* time to recover: from the end of the fault to the first non-degraded success.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sessionstore import (
    Config,
    Device,
    InvalidToken,
    Keyring,
    Principal,
    ScriptError,
    SessionRevoked,
    SessionStore,
    SessionStoreError,
    StoreUnavailable,
    events,
)
from sessionstore.testing import LocalServer, local_binary
from sessionstore.tokens import issue_access_token

__all__ = ["SCENARIOS", "FaultResult", "Timeline", "run_fault"]

PHONE = Device(id="phone-1", name="Pixel")
# The deployment SECURITY.md asks for: nothing is ever evicted to make room.
SERVER_ARGS = ("--maxmemory-policy", "noeviction")


@dataclass(frozen=True)
class Timeline:
    """When the fault starts and ends, and when the run stops (seconds from the start)."""

    total: float
    start: float
    length: float

    @property
    def end(self) -> float:
        return self.start + self.length


@dataclass
class FaultResult:
    """The figures of one scenario."""

    scenario: str
    seconds: float = 0.0
    validations: int = 0
    writes: int = 0
    ok: int = 0
    refused: int = 0
    wrong_accepts: int = 0
    unhandled: int = 0
    degraded: int = 0
    stale_accepts: int = 0
    false_rejects: int = 0
    write_errors: int = 0
    recover_seconds: float | None = None
    data_lost_events: int = 0
    data_lost_after: float | None = None
    degraded_entered: int = 0
    notes: list[str] = field(default_factory=list)
    fault_window: tuple[float, float] = (0.0, 0.0)

    @property
    def calls(self) -> int:
        return self.validations + self.writes

    def note(self, text: str) -> None:
        if len(self.notes) < 8 and text not in self.notes:
            self.notes.append(text)


@dataclass
class Token:
    """A token in the load's pool and what the truth about its session is."""

    access: str
    refresh: str
    user: str
    sid: str
    epoch: int  # the data set it lives in (bumped when the server restarts empty)
    state: str = "live"  # live | revoked-here | revoked-elsewhere


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
        return redis.Redis.from_url(self.server.url, socket_timeout=5, retry=Retry(NoBackoff(), 0))

    def start(self, started: float) -> None:
        self.started = started
        self._thread.start()

    def join(self) -> None:
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


def forged_tokens(keyring: Keyring) -> list[str]:
    """Tokens that must never be accepted: a foreign key, alg none, a cut signature."""
    other = Keyring.generate("HS256", kid=keyring.current_kid)
    config = Config()
    forged = []
    for sid in ("A" * 22, "B" * 22):
        token, _ = issue_access_token(
            other, user_id="victim", session_id=sid, claims={}, config=config, now=time.time()
        )
        forged.append(token)
        head, body, signature = token.split(".")
        forged.append(f"eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.{body}.{signature}")
        forged.append(f"{head}.{body}.{signature[:-3]}")
    return forged


class Load:
    """The bounded load loop and its bookkeeping."""

    def __init__(self, url: str, injector: Injector, result: FaultResult) -> None:
        self.injector, self.result = injector, result
        self.keyring = Keyring.generate("HS256")
        self.seen: list[tuple[float, events.Event]] = []
        self.store = SessionStore.from_url(url, keyring=self.keyring, on_event=self._event)
        # "Another process": revokes sessions this store only hears of through Redis.
        self.other = SessionStore.from_url(url, keyring=self.keyring)
        self.pool: list[Token] = []
        self.forged = forged_tokens(self.keyring)
        self.rng = random.Random(7)
        self.users = 0
        self.last_failure: float | None = None

    def _event(self, event: events.Event) -> None:
        self.seen.append((time.perf_counter(), event))

    def close(self) -> None:
        self.store.close()
        self.other.close()

    # --- writes ----------------------------------------------------------------------------

    def _write(self, action: Callable[[], Any]) -> Any:
        self.result.writes += 1
        try:
            return action()
        except (StoreUnavailable, ScriptError) as err:
            self.result.write_errors += 1
            self.result.note(f"write: {type(err).__name__}")
            self.last_failure = time.perf_counter()
        except SessionRevoked:
            self.result.refused += 1
        except SessionStoreError as err:
            self.result.write_errors += 1
            self.result.note(f"write: {type(err).__name__}: {err}")
        except Exception as err:
            self.result.unhandled += 1
            self.result.note(f"UNHANDLED in a write: {type(err).__name__}: {err}")
        return None

    def login(self) -> None:
        self.users += 1
        user = f"load-{self.users}"
        pair = self._write(lambda: self.store.login(user, device=PHONE, claims={"n": 1}))
        if pair is not None:
            epoch = self.injector.epoch
            self.pool.append(
                Token(pair.access_token, pair.refresh_token, user, pair.session_id, epoch)
            )

    def revoke(self, here: bool) -> None:
        live = [t for t in self.pool if t.state == "live" and t.epoch == self.injector.epoch]
        if len(live) < 20:  # keep live sessions to validate (after a restart, too)
            return
        victim = self.rng.choice(live)
        store = self.store if here else self.other
        done = self._write(lambda: store.revoke(victim.user, victim.sid))
        if done is not None:
            victim.state = "revoked-here" if here else "revoked-elsewhere"

    def refresh(self) -> None:
        live = [t for t in self.pool if t.state == "live" and t.epoch == self.injector.epoch]
        if live:
            token = self.rng.choice(live)
            pair = self._write(lambda: self.store.refresh(token.refresh))
            if pair is not None:
                token.access, token.refresh = pair.access_token, pair.refresh_token

    # --- validations -----------------------------------------------------------------------

    def validate(self, token: str, truth: Token | None) -> None:
        result = self.result
        result.validations += 1
        now = time.perf_counter()
        try:
            principal: Principal = self.store.validate(token)
        except (StoreUnavailable, ScriptError) as err:
            self.last_failure = now
            if truth is None:
                result.note(f"forged token met {type(err).__name__}")
            result.degraded += 1
            return
        except InvalidToken as err:
            if truth is not None and truth.state == "live" and truth.epoch == self.injector.epoch:
                result.false_rejects += 1
                result.note(f"false reject of a live session: {type(err).__name__}")
            else:
                result.refused += 1
            return
        except SessionStoreError as err:
            result.degraded += 1
            result.note(f"validate: {type(err).__name__}: {err}")
            return
        except Exception as err:
            result.unhandled += 1
            result.note(f"UNHANDLED in validate: {type(err).__name__}: {err}")
            return
        self._accepted(principal, truth, now)

    def _accepted(self, principal: Principal, truth: Token | None, now: float) -> None:
        result = self.result
        if truth is None:
            result.wrong_accepts += 1
            result.note("WRONG: a forged token was accepted")
            return
        lost = truth.epoch != self.injector.epoch
        if principal.degraded:
            self.last_failure = now
            if truth.state == "revoked-here":
                result.wrong_accepts += 1
                result.note("WRONG: a session revoked here was accepted (degraded)")
            elif truth.state == "revoked-elsewhere":
                result.stale_accepts += 1
            else:
                result.degraded += 1
            return
        if truth.state != "live" or lost:
            result.wrong_accepts += 1
            result.note(f"WRONG: accepted a {'lost' if lost else truth.state} session")
            return
        result.ok += 1
        ended = self.injector.fault_ended
        if ended is not None and result.recover_seconds is None and now >= ended:
            result.recover_seconds = now - ended  # the first clean answer after the fault

    def step(self, i: int) -> None:
        if i % 25 == 0:
            self.login()
        elif i % 100 == 1:
            self.revoke(here=True)
        elif i % 100 == 51:
            self.revoke(here=False)
        elif i % 100 == 13:
            self.refresh()
        elif self.rng.random() < 0.1:
            self.validate(self.rng.choice(self.forged), None)
        elif self.pool:
            truth = self.rng.choice(self.pool)
            self.validate(truth.access, truth)


def run_fault(name: str, timeline: Timeline, binary: str | None = None) -> FaultResult:
    """Run one scenario of ``SCENARIOS`` on a fresh private server; return its figures."""
    binary = binary or local_binary()
    if binary is None:
        raise RuntimeError("no valkey-server or redis-server to run the faults on")
    result = FaultResult(scenario=name)
    with LocalServer(binary, name="fault", extra_args=SERVER_ARGS) as server:
        injector = Injector(server, SCENARIOS[name], timeline)
        load = Load(server.url, injector, result)
        try:
            for _ in range(200):  # a warm pool before the clock starts
                load.login()
            started = time.perf_counter()
            injector.start(started)
            i = 0
            while time.perf_counter() - started < timeline.total:
                load.step(i)
                i += 1
            result.seconds = time.perf_counter() - started
            injector.join()
        finally:
            load.close()
        if injector.error is not None:
            result.note(f"injector: {injector.error}")
        if injector.fault_started is not None and injector.fault_ended is not None:
            result.fault_window = (
                injector.fault_started - started,
                injector.fault_ended - started,
            )
        for at, event in load.seen:
            if isinstance(event, events.DataLost):
                result.data_lost_events += 1
                if result.data_lost_after is None and injector.fault_ended is not None:
                    result.data_lost_after = at - injector.fault_ended
            elif isinstance(event, events.DegradedEntered):
                result.degraded_entered += 1
    return result
