"""Who waits on which session: told by the invalidation listeners, never by polling.

A ``Watch`` names one session (encoded user id, session id: the words of a revocation
announcement, see ``lua/_prelude.lua`` ``announce``) and the ``Hub`` to tell when a
revocation of it is published, by any process. A hub (the integrations keep one per event
loop) also hears whether the listeners are linked: ``link(False)`` when any invalidation
connection is lost, the database's watch key dirtied (``SWAPDB``, ``FLUSHDB``, a restore) or
a server added to the followed set, ``link(True)`` once every one is confirmed again;
announcements published in between were not heard. A hub is told of the link only while
it has watches.

One ``Watchers`` per ``Followers`` (topology and namespace, per process): it is called from
the listener threads, and from a hot path that drains pushes itself (``Listener.fresh``), so
a hub must only hand the news over (e.g. ``loop.call_soon_threadsafe``), never block or call
back in. Pure and thread-safe; a watch costs nothing until its session is named.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

__all__ = ["Hub", "Watch", "Watchers"]

logger = logging.getLogger("sessionstore")

T = TypeVar("T")


class Hub(Protocol):
    """Hears of the sessions its watches name, and of the listeners' link (any thread)."""

    def revoked(self, watches: list[Watch]) -> None:
        """These watches' sessions were revoked (published by the revoking script)."""

    def link(self, up: bool) -> None:
        """Every listener is linked and confirmed (True), or one is not (False)."""


class Watch:
    """One session waited on by ``hub``; subclasses carry what the hub needs to act."""

    __slots__ = ("hub", "session_id", "user")

    def __init__(self, hub: Hub, user: str, session_id: str) -> None:
        self.hub = hub
        self.user = user  # the encoded user id (``keys.encode_user_id``)
        self.session_id = session_id


class Watchers:
    """The watches of one process on one followed topology and namespace."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, str], list[Watch]] = {}
        self._hubs: dict[Hub, int] = {}  # hubs with watches, and how many each has
        self._linked = False

    @property
    def linked(self) -> bool:
        """Whether every listener is linked and confirmed now."""
        return self._linked

    def add(self, watch: Watch) -> None:
        """Tell ``watch.hub`` when ``watch``'s session is revoked (until ``discard``)."""
        with self._lock:
            self._sessions.setdefault((watch.user, watch.session_id), []).append(watch)
            self._hubs[watch.hub] = self._hubs.get(watch.hub, 0) + 1

    def discard(self, watch: Watch) -> None:
        """Stop watching (a watch not added, or discarded already, is ignored)."""
        key = (watch.user, watch.session_id)
        with self._lock:
            found = self._sessions.get(key)
            if found is None or watch not in found:
                return
            found.remove(watch)
            if not found:
                del self._sessions[key]
            left = self._hubs[watch.hub] - 1
            if left:
                self._hubs[watch.hub] = left
            else:
                del self._hubs[watch.hub]

    def __len__(self) -> int:
        return sum(self._hubs.values())

    def revoked(self, user: str, session_ids: list[str]) -> None:
        """A revocation was published: tell the hubs of the sessions named (one call each)."""
        with self._lock:
            if not self._sessions:
                return
            found = [w for sid in session_ids for w in self._sessions.get((user, sid), ())]
        by_hub: dict[Hub, list[Watch]] = {}
        for watch in found:
            by_hub.setdefault(watch.hub, []).append(watch)
        for hub, watches in by_hub.items():
            _tell(hub.revoked, watches)

    def health(self, up: bool) -> None:
        """The listeners' link changed (``NearCache.observe``): tell every hub."""
        self._linked = up
        with self._lock:
            hubs = list(self._hubs)
        for hub in hubs:
            _tell(hub.link, up)

    def abandon(self) -> None:
        """In a forked child: the watches were the parent's. No lock is taken (a parent
        thread may have held it at the fork)."""
        self._lock = threading.Lock()
        self._sessions, self._hubs, self._linked = {}, {}, False


def _tell(callback: Callable[[T], None], arg: T) -> None:
    """Call a hub; what it raises is logged (a listener thread must not die of it)."""
    try:
        callback(arg)
    except Exception:
        logger.exception("sessionstore: a session watcher failed")
