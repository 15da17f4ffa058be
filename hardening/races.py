"""Barrier-started races against a real server, with threads or with processes.

A crew (``hardening.crew``) is N workers, threads or spawned processes, that wait on a
barrier before every round so their operations start together. The coordinator prepares each round
(fresh sessions), hands one task to each worker, then checks the outcome against what the
design promises, straight from Redis. Every broken promise is one wrong outcome.

Races: revoke||touch, revoke||refresh, refresh||refresh, a login flood past the cap, and
rotate keys||validate.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from hardening.crew import PHONE, ROTATIONS, Crew, Task, attempt, crew
from sessionstore import Config, Keyring, SessionRevoked, SessionStore
from sessionstore.keys import user_keys

__all__ = ["CAP", "RACES", "ROTATIONS", "RaceResult", "race_config", "run_races"]

CAP = 5


def race_config() -> Config:
    """The crews' config: a small cap, and timeouts a loaded machine never hits."""
    return Config(max_sessions_per_user=CAP, socket_timeout=5.0, refresh_grace=3600)


@dataclass
class RaceResult:
    """What one race did: rounds, racing operations, and the wrong outcomes seen."""

    race: str
    mode: str
    rounds: int = 0
    operations: int = 0
    wrong: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    # Which interleavings happened (e.g. "touch first" / "revoke first"): proof of a race.
    orders: Counter[str] = field(default_factory=Counter)

    def fail(self, note: str) -> None:
        """Count one wrong outcome (the first few are kept for the report)."""
        self.wrong += 1
        if len(self.notes) < 5:
            self.notes.append(note)


# --- checks ---------------------------------------------------------------------------------


class Checker:
    """Reads the truth straight from Redis, and prepares sessions for a round."""

    def __init__(self, url: str, keyring: Keyring, config: Config) -> None:
        self.store = SessionStore.from_url(url, keyring=keyring, config=config)
        self.admin = redis.Redis.from_url(url, socket_timeout=10)
        self.config = config
        self._users = itertools.count()

    def close(self) -> None:
        """Close the checker's store and client."""
        self.store.close()
        self.admin.close()

    def new_user(self, race: str) -> str:
        """A user id no earlier round used."""
        return f"{race}-{time.time_ns()}-{next(self._users)}"

    def live_ids(self, user: str) -> tuple[set[str], set[str]]:
        """(index members, existing session hashes) of ``user``."""
        keys = user_keys(self.config.namespace, user)
        members: list[Any] = self.admin.zrange(keys.index, 0, -1)
        index = {bytes(m).decode() for m in members}
        hashes = {
            bytes(k).decode()[len(keys.prefix) :]
            for k in self.admin.scan_iter(match=keys.prefix + "*", count=1000)
        }
        return index, hashes

    def untimed_keys(self, user: str) -> list[str]:
        """Keys of ``user`` without a TTL (must be none)."""
        keys = user_keys(self.config.namespace, user)
        pattern = keys.index[: -len("idx")] + "*"
        found = list(self.admin.scan_iter(match=pattern, count=1000))
        return [bytes(k).decode() for k in found if self.admin.pttl(k) == -1]

    def gone(self, result: RaceResult, user: str, sid: str, tokens: list[str]) -> None:
        """The session must have no key left, and none of ``tokens`` may validate."""
        index, hashes = self.live_ids(user)
        if sid in index or sid in hashes:
            result.fail(f"resurrected: index={sid in index} hash={sid in hashes}")
        for key in self.untimed_keys(user):
            result.fail(f"key without TTL: {key}")
        for token in tokens:
            outcome = attempt(lambda t=token: self.store.validate(t))  # type: ignore[misc]
            if outcome[0] not in ("SessionRevoked", "SessionExpired"):
                result.fail(f"a token of the revoked session validated: {outcome[0]}")


# --- the races ------------------------------------------------------------------------------


def revoke_touch(c: Crew, check: Checker, result: RaceResult) -> None:
    """One revoke and N-1 touches of the same session: it must end revoked, keyless."""
    user = check.new_user("rt")
    pair = check.store.login(user, device=PHONE)
    tasks: list[Task] = [("revoke", user, pair.session_id)]
    tasks += [("touch", user, pair.session_id)] * (c.size - 1)
    outcomes = c.round(tasks)
    result.operations += len(tasks)
    if outcomes[0] != ("ok", True):
        result.fail(f"revoke of a live session answered {outcomes[0]}")
    for outcome in outcomes[1:]:
        if outcome[0] != "ok" or not isinstance(outcome[1], bool):
            result.fail(f"touch answered {outcome}")
        else:
            result.orders["touch first" if outcome[1] else "revoke first"] += 1
    check.gone(result, user, pair.session_id, [pair.access_token])


def revoke_refresh(c: Crew, check: Checker, result: RaceResult) -> None:
    """One revoke and N-1 refreshes: refreshes win or see SessionRevoked; all end revoked."""
    user = check.new_user("rr")
    pair = check.store.login(user, device=PHONE)
    tasks: list[Task] = [("revoke", user, pair.session_id)]
    tasks += [("refresh", pair.refresh_token)] * (c.size - 1)
    outcomes = c.round(tasks)
    result.operations += len(tasks)
    if outcomes[0] != ("ok", True):
        result.fail(f"revoke of a live session answered {outcomes[0]}")
    tokens = [pair.access_token]
    for kind, value in outcomes[1:]:
        result.orders["refresh first" if kind == "ok" else "revoke first"] += 1
        if kind == "ok":
            tokens.append(value[1])
            late = attempt(lambda v=value: check.store.refresh(v[0]))  # type: ignore[misc]
            if late[0] != SessionRevoked.__name__:
                result.fail(f"a refresh token of the revoked session answered {late[0]}")
        elif kind != SessionRevoked.__name__:
            result.fail(f"refresh answered {kind}")
    check.gone(result, user, pair.session_id, tokens)


def refresh_refresh(c: Crew, check: Checker, result: RaceResult) -> None:
    """N refreshes of one token: all succeed and all end up holding the same working token."""
    user = check.new_user("ff")
    pair = check.store.login(user, device=PHONE)
    outcomes = c.round([("refresh", pair.refresh_token)] * c.size)
    result.operations += c.size
    if any(kind != "ok" for kind, _ in outcomes):
        kinds = sorted({kind for kind, _ in outcomes})
        result.fail(f"a concurrent refresh failed: {kinds}")
        return
    held = {value[0] for _, value in outcomes}
    result.orders["rounds all holding one token"] += len(held) == 1
    if len(held) != 1:
        result.fail(f"racers hold {len(held)} different refresh tokens")
    for _, (_, access) in outcomes:
        outcome = attempt(lambda t=access: check.store.validate(t))  # type: ignore[misc]
        if outcome[0] != "ok":
            result.fail(f"a racer's access token answered {outcome[0]}")
    nxt = attempt(lambda: check.store.refresh(next(iter(held))))
    if nxt[0] != "ok":
        result.fail(f"the shared refresh token does not refresh: {nxt[0]}")
    index, hashes = check.live_ids(user)
    if index != {pair.session_id} or hashes != {pair.session_id}:
        result.fail("refresh created or lost sessions")


def login_flood(c: Crew, check: Checker, result: RaceResult) -> None:
    """Every worker logs in CAP times for one user: exactly CAP sessions survive."""
    user = check.new_user("lf")
    outcomes = c.round([("login_many", user, CAP)] * c.size)
    result.operations += c.size * CAP
    tokens: list[str] = []
    for kind, value in outcomes:
        if kind != "ok":
            result.fail(f"login answered {kind}")
        else:
            tokens += value
    index, hashes = check.live_ids(user)
    if not (len(index) == len(hashes) == CAP and index == hashes):
        result.fail(f"after the flood: {len(index)} indexed, {len(hashes)} hashes, cap {CAP}")
    alive = 0
    result.orders["evictions"] += max(0, len(tokens) - CAP)
    for token in tokens:
        outcome = attempt(lambda t=token: check.store.validate(t))  # type: ignore[misc]
        if outcome[0] == "ok":
            alive += 1
        elif outcome[0] != SessionRevoked.__name__:
            result.fail(f"an evicted token answered {outcome[0]}")
    if alive != min(CAP, len(tokens)):
        result.fail(f"{alive} tokens validate after the flood, cap {CAP}")
    for key in check.untimed_keys(user):
        result.fail(f"key without TTL: {key}")


def rotate_validate(c: Crew, check: Checker, result: RaceResult) -> None:
    """Keys rotate while old tokens validate: no genuine token is refused meanwhile."""
    user = check.new_user("kv")
    tokens = [check.store.login(user, device=PHONE).access_token for _ in range(3)]
    outcomes = c.round([("rotate_and_validate", tokens, user)] * c.size)
    for kind, value in outcomes:
        if kind != "ok":
            result.fail(f"rotate_and_validate answered {kind}")
            continue
        count, failures = value
        result.operations += count
        result.orders["rotations"] += ROTATIONS
        for failure in failures:
            result.fail(failure)


ROTATE = "rotate keys || validate"
RACES: dict[str, Callable[[Crew, Checker, RaceResult], None]] = {
    "revoke || touch": revoke_touch,
    "revoke || refresh": revoke_refresh,
    "refresh || refresh": refresh_refresh,
    "login flood past the cap": login_flood,
    ROTATE: rotate_validate,
}


def run_races(
    url: str,
    *,
    mode: str,
    rounds: int,
    workers: int = 4,
    keyring: Keyring | None = None,
    races: list[str] | None = None,
) -> list[RaceResult]:
    """Run each race ``rounds`` times with one crew; rotation runs last (it changes keys)."""
    ring = keyring if keyring is not None else Keyring.generate("ES256")
    config = race_config()
    check = Checker(url, ring, config)
    results: list[RaceResult] = []
    try:
        with crew(mode, workers, url, ring, config) as c:
            for name in races or list(RACES):
                result = RaceResult(race=name, mode=mode)
                started = time.perf_counter()
                # A rotation round is long (the validators spin until the keys settle).
                for _ in range(max(1, rounds // 10) if name == ROTATE else rounds):
                    RACES[name](c, check, result)
                    result.rounds += 1
                result.seconds = time.perf_counter() - started
                results.append(result)
    finally:
        check.close()
    return results
