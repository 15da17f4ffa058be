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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hardening.inject import SCENARIOS, Injector, Timeline
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
        """Every store call the load made."""
        return self.validations + self.writes

    def note(self, text: str) -> None:
        """Keep the first few distinct messages for the report."""
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
        """Close both stores."""
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
        """Log a new user in; the session joins the pool."""
        self.users += 1
        user = f"load-{self.users}"
        # The data set the session lands in: the one before the call (a kill during the
        # call loses a session written just before it).
        epoch = self.injector.epoch
        pair = self._write(lambda: self.store.login(user, device=PHONE, claims={"n": 1}))
        if pair is not None:
            self.pool.append(
                Token(pair.access_token, pair.refresh_token, user, pair.session_id, epoch)
            )

    def revoke(self, here: bool) -> None:
        """Revoke a live session, through this store or the other one."""
        live = [t for t in self.pool if t.state == "live" and t.epoch == self.injector.epoch]
        if len(live) < 20:  # keep live sessions to validate (after a restart, too)
            return
        victim = self.rng.choice(live)
        store = self.store if here else self.other
        done = self._write(lambda: store.revoke(victim.user, victim.sid))
        if done is not None:
            victim.state = "revoked-here" if here else "revoked-elsewhere"

    def refresh(self) -> None:
        """Rotate a live session's refresh token."""
        live = [t for t in self.pool if t.state == "live" and t.epoch == self.injector.epoch]
        if live:
            token = self.rng.choice(live)
            pair = self._write(lambda: self.store.refresh(token.refresh))
            if pair is not None:
                token.access, token.refresh = pair.access_token, pair.refresh_token

    # --- validations -----------------------------------------------------------------------

    def validate(self, token: str, truth: Token | None) -> None:
        """Validate ``token`` and classify the answer against ``truth`` (None: forged)."""
        result = self.result
        result.validations += 1
        now = time.perf_counter()
        # A kill during the call may or may not be seen by it: judge by the data set that
        # existed when the call began.
        epoch = self.injector.epoch
        try:
            principal: Principal = self.store.validate(token)
        except (StoreUnavailable, ScriptError) as err:
            self.last_failure = now
            if truth is None:
                result.note(f"forged token met {type(err).__name__}")
            result.degraded += 1
            return
        except InvalidToken as err:
            if truth is not None and truth.state == "live" and truth.epoch == epoch:
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
        self._accepted(principal, truth, now, epoch)

    def _accepted(self, principal: Principal, truth: Token | None, now: float, epoch: int) -> None:
        result = self.result
        if truth is None:
            result.wrong_accepts += 1
            result.note("WRONG: a forged token was accepted")
            return
        lost = truth.epoch != epoch
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
        """The ``i``-th call of the load."""
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
