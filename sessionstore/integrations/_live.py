"""Live connections (WebSockets, streamed responses) that end when their session ends.

``LiveConnections`` (one per ``SessionAuth``) keeps the open connections of authenticated
sessions, per event loop, and ends one (its ``end(Ending)``, called on its own loop):

- revoked, by any process (revoke, device, user, logout, an eviction, refresh-token
  reuse): the store's invalidation listener hears the revoking script's announcement and
  the store's ``Watchers`` tell this loop's hub (``loop.call_soon_threadsafe``) — the
  revocation's own push, no call to Redis;
- expired: one timer per connection at its session's deadline (its idle deadline, never
  past the absolute one), then one ``PTTL`` of the session (``_engine.liveness``): gone
  ends it, alive (other requests slid it) sets the timer to the new deadline. An open
  connection does not itself keep its session alive;
- while Redis cannot be reached, once validations would deny (``Config.fallback="deny"``:
  at once; else ``max_degraded_seconds`` after Redis last answered): the listeners'
  link going down starts one check of every connection of the loop (one batched round
  trip), then a wait until that moment and one more check; the link back up ends the wait.
  After any link loss every connection is checked again, since announcements may have
  been missed (a restart that lost the data ends them all).

An idle connection costs no call to Redis: only a timer and a dictionary entry. Checks of
one loop turn go to Redis as one round trip (the store's batcher). A forked child starts
with no connections; its store follows its own listeners on the first watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from sessionstore._engine.forks import AfterFork
from sessionstore._nearcache.watch import Watch, Watchers
from sessionstore.aio import AsyncSessionStore
from sessionstore.errors import StoreUnavailable
from sessionstore.keys import encode_user_id
from sessionstore.models import Principal

__all__ = ["EXPIRED", "FAILED", "REVOKED", "UNAVAILABLE", "Ending", "LiveConnections"]

logger = logging.getLogger("sessionstore")


@dataclass(frozen=True)
class Ending:
    """Why a live connection ends: the WebSocket close code and reason it gets."""

    code: int
    reason: str


# 4401: the private-use range of RFC 6455 (4000-4999), after HTTP's 401. 1013 (Try Again
# Later) and 1011 (Internal Error) are the codes the exception handlers close with too. A
# session a check finds gone before its deadline was revoked (or lost with the data set,
# which logs out the same way); at or after it, it expired.
REVOKED = Ending(4401, "Session revoked")
EXPIRED = Ending(4401, "Session expired")
UNAVAILABLE = Ending(1013, "Session store unavailable")
FAILED = Ending(1011, "Session check failed")

# After a deadline the check waits this much longer: the hash expires on the server's
# clock, and PTTL's milliseconds round down.
_SLACK = 0.005


class Live(Watch):
    """One open connection of a session, watched on its event loop's hub."""

    __slots__ = ("deadline", "end", "timer", "user_id")

    def __init__(self, hub: _Hub, principal: Principal, end: Callable[[Ending], None]) -> None:
        super().__init__(hub, encode_user_id(principal.user_id), principal.session_id)
        self.user_id = principal.user_id
        self.end = end
        self.timer: asyncio.TimerHandle | None = None
        session = principal.session  # None when degraded: no deadline known
        self.deadline = (
            math.inf
            if session is None
            else min(session.idle_expires_at, session.absolute_expires_at)
        )


class LiveConnections:
    """The open live connections of one store's sessions, each ended with its session."""

    def __init__(self, store: AsyncSessionStore) -> None:
        self._store = store
        self._hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Hub] = (
            weakref.WeakKeyDictionary()
        )
        self._warned = False
        _LIVE.add(self)

    def open(self, principal: Principal, end: Callable[[Ending], None]) -> Live:
        """Watch a connection of ``principal``'s session, opened on the running loop;
        ``end`` is called (on that loop) once, when the session ends. ``close`` it after."""
        loop = asyncio.get_running_loop()
        watchers = self._store._watchers()
        if watchers is None and not self._warned:
            self._warned = True
            logger.warning(
                "sessionstore: the store's servers cannot be followed (an unknown client):"
                " live connections end at expiry, not on revocation"
            )
        hub = self._hubs.get(loop)
        if hub is None or hub.watchers is not watchers:
            hub = self._hubs[loop] = _Hub(self._store, loop, watchers)
        live = Live(hub, principal, end)
        hub.add(live)
        if self._store._revoked_here(principal.user_id, principal.session_id):
            hub.end(live, REVOKED)  # announced before the watch began
        elif principal.session is not None and (watchers is None or watchers.linked):
            hub.arm(live, live.deadline - time.time())
        else:
            # Degraded (no deadline known), or the link is not up: what was announced
            # meanwhile was not heard. Checked now, and again when the link is up.
            hub.check([live])
            if watchers is not None and not watchers.linked:
                hub.down()
        return live

    def close(self, live: Live) -> None:
        """The connection is over: stop watching it (again: no-op)."""
        hub = live.hub
        assert isinstance(hub, _Hub)
        hub.remove(live)

    def __len__(self) -> int:
        """How many connections are watched in this process."""
        return sum(len(hub.lives) for hub in list(self._hubs.values()))

    def _forked(self) -> None:
        self._hubs = weakref.WeakKeyDictionary()  # the parent's loops and connections


_LIVE: AfterFork[LiveConnections] = AfterFork(lambda live: live._forked())


class _Hub:
    """The connections of one event loop (and one ``Watchers``): what the listener threads
    report is handed to the loop; timers, checks and endings run on it."""

    def __init__(
        self, store: AsyncSessionStore, loop: asyncio.AbstractEventLoop, watchers: Watchers | None
    ) -> None:
        self.store = store
        self.loop = loop
        self.watchers = watchers
        self.lives: set[Live] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._outage: asyncio.Task[None] | None = None
        self._linked = asyncio.Event()  # set while the link is up (the outage's wait)
        if watchers is not None and watchers.linked:
            self._linked.set()

    # Called from any thread (``watch.Hub``).

    def revoked(self, watches: list[Watch]) -> None:
        """Sessions of these connections were revoked: end them on the loop."""
        self._soon(self._revoked, watches)

    def link(self, up: bool) -> None:
        """The listeners' link is up (check everything) or down (an outage may begin)."""
        self._soon(self._link, up)

    def _soon(self, callback: Callable[[object], None], arg: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing is left on it
            self.loop.call_soon_threadsafe(callback, arg)

    # Called on the loop.

    def add(self, live: Live) -> None:
        self.lives.add(live)
        if self.watchers is not None:
            self.watchers.add(live)

    def remove(self, live: Live) -> None:
        if live.timer is not None:
            live.timer.cancel()
            live.timer = None
        self.lives.discard(live)
        if self.watchers is not None:
            self.watchers.discard(live)

    def end(self, live: Live, ending: Ending) -> None:
        """End one connection (once: a connection no longer watched is left alone)."""
        if live not in self.lives:
            return
        self.remove(live)
        try:
            live.end(ending)
        except Exception:
            logger.exception("sessionstore: ending a live connection failed")

    def arm(self, live: Live, seconds: float) -> None:
        """Check ``live``'s session once, ``seconds`` from now (its deadline)."""
        if live.timer is not None:
            live.timer.cancel()
        live.timer = self.loop.call_later(max(0.0, seconds) + _SLACK, self._due, live)

    def _due(self, live: Live) -> None:
        live.timer = None
        self.check([live])

    def _revoked(self, watches: object) -> None:
        assert isinstance(watches, list)
        for live in watches:
            self.end(live, REVOKED)

    def _link(self, up: object) -> None:
        if up:
            self._linked.set()
            # Announcements made while the link was down were not heard: check them all.
            self.check(list(self.lives))
        else:
            self.down()

    def down(self) -> None:
        """The link is down: Redis may be unreachable (an outage may begin)."""
        self._linked.clear()
        if self._outage is None and self.lives:
            self._outage = self._spawn(self._wait_out())

    def check(self, lives: Iterable[Live]) -> None:
        """Check these connections' sessions (one round trip); end the gone ones."""
        lives = list(lives)
        if lives:
            self._spawn(self._checked(lives))

    async def _checked(self, lives: list[Live]) -> None:
        await self._check(lives)

    async def _check(self, lives: list[Live]) -> tuple[list[Live], bool]:
        """Check ``lives``; those Redis could not be asked about, and whether any was."""
        store = self.store
        results = await asyncio.gather(
            *(store._remaining(live.user_id, live.session_id) for live in lives),
            return_exceptions=True,
        )
        unreached: list[Live] = []
        answered = False
        for live, result in zip(lives, results, strict=True):
            if isinstance(result, StoreUnavailable):
                unreached.append(live)
            elif isinstance(result, BaseException):
                answered = True
                logger.warning("sessionstore: checking a live connection failed: %r", result)
                self.end(live, FAILED)
            elif result is None:
                answered = True
                self.end(live, EXPIRED if time.time() >= live.deadline else REVOKED)
            else:
                answered = True
                if live in self.lives and not math.isinf(result):
                    live.deadline = time.time() + result
                    self.arm(live, result)
        if unreached and self._outage is None:
            self._outage = self._spawn(self._wait_out())
        return unreached, answered

    async def _wait_out(self) -> None:
        """An outage may have begun: end every connection once validations would deny."""
        try:
            while self.lives and not self._linked.is_set():
                unreached, answered = await self._check(list(self.lives))
                if not unreached:
                    return
                if answered:
                    continue  # Redis answered one: the breaker lets the rest through
                wait = self.store._denied_in()
                if wait <= 0:
                    for live in unreached:
                        self.end(live, UNAVAILABLE)
                    return
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._linked.wait(), wait + _SLACK)
        finally:
            self._outage = None

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self.loop.create_task(work)
        self._tasks.add(task)  # a reference until it is done
        task.add_done_callback(self._tasks.discard)
        return task
