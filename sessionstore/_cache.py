"""Caches that let hot validations skip work, without ever outliving a revocation.

``TokenCache``: exact token string -> verified claims (bounded LRU). A hit still checks
``exp`` against the clock and that the keyring has not changed since the token verified.

``NearCache``: session key -> session state, trusted only while Redis' invalidation
pushes can be heard (see ``_listener``): entries are dropped on a push for their key,
everything is dropped when the push connection is lost, nothing is served while it has
not been heard from for ``trust_window`` seconds, and no entry outlives ``max_age``.
Pure and thread-safe; clocks are passed in.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

__all__ = ["NearCache", "TokenCache"]

V = TypeVar("V")


class TokenCache(Generic[V]):
    """A bounded LRU of verified tokens: token -> (value, expires_at, keyring snapshot)."""

    def __init__(self, size: int, leeway: int) -> None:
        self._size = size
        self._leeway = leeway
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[V, int, object]] = OrderedDict()

    def get(self, token: str, now: float, snapshot: object) -> V | None:
        """The cached value if still fresh under the same keyring snapshot."""
        item = self._items.get(token)
        if item is None:
            return None
        value, expires_at, seen = item
        if seen is not snapshot or expires_at + self._leeway < now:
            with self._lock:
                self._items.pop(token, None)
            return None
        return value

    def put(self, token: str, value: V, expires_at: int, snapshot: object) -> None:
        """Remember a verified token."""
        with self._lock:
            self._items[token] = (value, expires_at, snapshot)
            if len(self._items) > self._size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class NearCache:
    """Session state pushed out of date by Redis itself (CLIENT TRACKING invalidations)."""

    def __init__(self, size: int, max_age: float, trust_window: float) -> None:
        self._size = size
        self._max_age = max_age
        self._trust_window = trust_window
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        # Invalidation sequence: a read that began before an invalidation of its key must
        # not be stored after it (it may hold the state the invalidation replaced).
        self._seq = 0
        self._key_seq: OrderedDict[str, int] = OrderedDict()
        self._floor = 0
        self._healthy = False
        self._heard = float("-inf")

    def trusted(self, now: float) -> bool:
        """Whether entries may be served now (connection up and heard from recently)."""
        return self._healthy and now - self._heard <= self._trust_window

    def get(self, key: str, now: float) -> Any:
        """The cached value for ``key``, or None (missing, stale, or not trusted now)."""
        item = self._items.get(key)
        if item is None or not self.trusted(now):
            return None
        value, until = item
        if now >= until:
            with self._lock:
                self._items.pop(key, None)
            return None
        return value

    def begin(self) -> int:
        """A token to pass to ``put`` for a read that starts now."""
        return self._seq

    def put(self, key: str, value: Any, token: int, now: float, until: float) -> bool:
        """Store ``value`` unless ``key`` was invalidated since ``token``; True if stored."""
        with self._lock:
            last = self._key_seq.get(key, self._floor)
            if not self._healthy or last > token or token < self._floor:
                return False
            self._items[key] = (value, min(until, now + self._max_age))
            self._items.move_to_end(key)
            if len(self._items) > self._size:
                self._items.popitem(last=False)
            return True

    def drop(self, key: str) -> None:
        """Forget one key now (a local write), as an invalidation would."""
        self.invalidate((key,))

    def invalidate(self, keys: Iterable[str] | None) -> None:
        """Drop the given keys (None: everything, e.g. after FLUSHALL)."""
        with self._lock:
            self._seq += 1
            if keys is None:
                self._items.clear()
                self._key_seq.clear()
                self._floor = self._seq
                return
            for key in keys:
                self._items.pop(key, None)
                self._key_seq[key] = self._seq
                self._key_seq.move_to_end(key)
            while len(self._key_seq) > 4 * self._size:
                _, seq = self._key_seq.popitem(last=False)
                self._floor = max(self._floor, seq)

    def heard(self, now: float) -> None:
        """The invalidation connection answered (a push or a heartbeat reply)."""
        self._heard = now

    def up(self, now: float) -> None:
        """The invalidation connection is subscribed: entries may be stored again."""
        with self._lock:
            self._seq += 1
            self._floor = self._seq
            self._healthy = True
            self._heard = now

    def down(self) -> None:
        """The invalidation connection is lost: forget everything, trust nothing."""
        with self._lock:
            self._healthy = False
            self._seq += 1
            self._floor = self._seq
            self._items.clear()
            self._key_seq.clear()

    def __len__(self) -> int:
        return len(self._items)
