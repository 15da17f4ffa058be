"""Fallback policy for an unreachable Redis: circuit breaker and revocation memory.

Pure and clock-injected (``now`` is ``time.monotonic()`` seconds for the breaker and
Unix seconds for revocations); thread-safe, so the sync store can share it across threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["Breaker", "RevocationMemory"]


class Breaker:
    """A circuit breaker that stops paying a socket timeout per request while Redis is down.

    After ``failures`` consecutive unreachable errors it opens; while open, one probe
    is let through every ``reset`` seconds. ``outage_started`` is the time of the
    first failure of the current streak (what ``DegradedLeft`` reports); ``last_error`` the
    driver error of the latest failure, chained as the cause of errors raised while open.
    Degraded mode is bounded from ``last_reached`` instead: the last reply from Redis, set
    by the caller.
    """

    def __init__(self, failures: int, reset: float) -> None:
        self._threshold = failures
        self._reset = reset
        self._lock = threading.Lock()
        self._streak = 0
        self._outage_started: float | None = None
        self._next_probe = 0.0
        self._probing = False
        self.last_error: BaseException | None = None
        # Monotonic seconds of the last reply from Redis; None until the first one. A plain
        # attribute: every successful validation sets it, so no lock and no method call.
        # CLOCK_MONOTONIC is system-wide on Linux, so a forked child inherits a valid value.
        self.last_reached: float | None = None

    @property
    def outage_started(self) -> float | None:
        """When the current run of failures began (monotonic seconds), or None."""
        return self._outage_started

    @property
    def quiet(self) -> bool:
        """No failure since the last success: ``success`` would change nothing."""
        return not (self._streak or self._probing)

    @property
    def is_open(self) -> bool:
        """True while calls are being short-circuited."""
        return self._streak >= self._threshold

    def allow(self, now: float) -> bool:
        """Whether a call may go to Redis now (closed, or this caller is the probe)."""
        if self._streak < self._threshold:
            return True
        with self._lock:
            if self._probing or now < self._next_probe:
                return False
            self._probing = True
            return True

    def success(self, now: float) -> float | None:
        """Redis answered: close the breaker; the outage's length if this ended one."""
        if not (self._streak or self._probing):
            return None
        with self._lock:
            started, self._outage_started = self._outage_started, None
            self._streak = 0
            self._probing = False
            self.last_error = None
        return None if started is None else now - started

    def abandon(self) -> None:
        """A call ended with neither answer nor failure (e.g. cancelled): if it was the
        probe, let another caller probe, rather than waiting forever for its verdict."""
        if self._probing:
            with self._lock:
                self._probing = False

    def expedite(self) -> None:
        """Let the next call probe at once (e.g. the invalidation connection is back)."""
        self._next_probe = 0.0

    def failure(self, now: float, err: BaseException | None = None) -> bool:
        """Redis was unreachable for one call (``err``, the driver's error); True when this
        began an outage."""
        with self._lock:
            if err is not None:
                self.last_error = err
            self._streak += 1
            self._probing = False
            began = self._outage_started is None
            if began:
                self._outage_started = now
            if self._streak >= self._threshold:
                self._next_probe = now + self._reset
            return began

    def forked(self) -> None:
        """In a forked child: a new lock (a parent thread may have held the old one)."""
        self._lock = threading.Lock()
        self._probing = False  # a probe in flight at the fork was the parent's

    def outage_seconds(self, now: float) -> float:
        """How long the current outage has lasted (0 when there is none)."""
        started = self._outage_started
        return 0.0 if started is None else now - started

    def unreached_seconds(self, now: float) -> float | None:
        """Seconds since Redis last answered; None if it never did (in this process)."""
        reached = self.last_reached
        return None if reached is None else now - reached


class RevocationMemory:
    """Sessions this process knows are revoked, consulted only in degraded mode.

    Bounded by ``capacity`` (oldest forgotten first); an entry is kept for ``horizon``
    seconds, as long as an access token naming that session can still be valid.
    Revoking many sessions records each one: the scripts report exactly which died.
    """

    def __init__(self, capacity: int, horizon: float) -> None:
        self._capacity = capacity
        self._horizon = horizon
        self._lock = threading.Lock()
        self._until: OrderedDict[tuple[str, str], float] = OrderedDict()

    def add(self, user_id: str, session_id: str, now: float) -> None:
        """Remember that one session was revoked (or found gone)."""
        with self._lock:
            self._until[(user_id, session_id)] = now + self._horizon
            self._until.move_to_end((user_id, session_id))
            while len(self._until) > self._capacity:
                self._until.popitem(last=False)

    def forked(self) -> None:
        """In a forked child: a new lock; what the parent knew stays true here."""
        self._lock = threading.Lock()

    def is_revoked(self, user_id: str, session_id: str, now: float) -> bool:
        """Whether this session is known dead."""
        if not self._until:
            return False
        until = self._until.get((user_id, session_id))
        return until is not None and until >= now
