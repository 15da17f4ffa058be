"""Caches that let hot validations skip work, without ever outliving a revocation.

``TokenCache``: exact token string -> verified claims (bounded LRU). A hit still checks
``exp`` against the clock and that the keyring has not changed since the token verified.

``NearCache``: session key -> session state, trusted only while Redis' invalidation
pushes can be heard (see ``listener``): entries are dropped on a push for their key,
everything is dropped when a push connection (a ``Link``) is lost, added or removed,
nothing is served unless every link is up and was heard from within ``trust_window``
seconds (a cluster has one link per primary), and no entry outlives ``max_age``. An
observer (``observe``) hears each change of "every link is up". An entry
may name the node it was read from: it is stored and served only while that node has a
live link (a cluster client may read from a new primary before it is followed).
Pure and thread-safe; clocks are passed in.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

Address = tuple[str, int]

__all__ = ["Link", "NearCache", "TokenCache"]

V = TypeVar("V")


class TokenCache(Generic[V]):
    """A bounded LRU of verified tokens: token -> (value, expires_at, keyring snapshot)."""

    def __init__(self, size: int, leeway: int) -> None:
        self._size = size
        self._leeway = leeway
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[V, int, object]] = OrderedDict()
        # The doorkeeper of ``admit``: two generations of one bit per slot (a power of two
        # >= 16 * size slots: 4 * size bytes in all, a quarter of the hashes it once kept).
        slots = 1 << max(7, (16 * size - 1).bit_length())
        self._now = bytearray(slots >> 3)
        self._old = bytearray(slots >> 3)
        self._mask = slots - 1
        self._marks = 0
        self._limit = slots >> 4

    def admit(self, token: str) -> bool:
        """True when ``token`` was offered before; the first time, only note that it was.

        Most tokens validated once do not come back before they expire (one request per
        token, or a token per request): caching them on first sight would cost every such
        request an insert and evict entries that do get reused. Marks are bits, never
        overwritten: a collision (another token marked the same slot) at worst admits a
        token one sighting early (at most an eighth of the slots are marked in the two
        generations together), and a token that comes back is admitted whatever else was
        offered between its sightings, if at most ``size`` other first sightings came
        between (a slot that held one token's hash let two tokens offered in turn erase
        each other's mark forever). When a sixteenth of the slots are marked, the marks
        become the old generation and the older one is dropped: a mark lives through one
        such turn, and a token seen again is marked anew (a clearing of all marks at once
        forgot tokens marked just before it).
        """
        slot = hash(token) & self._mask
        byte, bit = slot >> 3, 1 << (slot & 7)
        now = self._now
        if now[byte] & bit:
            return True
        seen = self._old[byte] & bit != 0  # marked before the last turn: carried over
        # Racing threads may lose a mark or miscount by a few: a token is then admitted
        # one sighting late, or the turn comes early or late.
        now[byte] |= bit
        self._marks += 1
        if self._marks >= self._limit:
            self._old, self._now, self._marks = now, bytearray(len(now)), 0
        return seen

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

    def forked(self) -> None:
        """In a forked child: a new lock (a parent thread may have held the old one)."""
        self._lock = threading.Lock()


class NearCache:
    """Session state pushed out of date by Redis itself (CLIENT TRACKING invalidations)."""

    def __init__(self, size: int, max_age: float, trust_window: float) -> None:
        self._size = size
        self._max_age = max_age
        self._trust_window = trust_window
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[Any, float, Address | None]] = OrderedDict()
        # Invalidation sequence: a read that began before an invalidation of its key must
        # not be stored after it (it may hold the state the invalidation replaced).
        self._seq = 0
        self._key_seq: OrderedDict[str, int] = OrderedDict()
        self._floor = 0
        self._links: tuple[Link, ...] = ()
        self._healthy = False  # every link is up (and there is one)
        self._live: frozenset[Address] = frozenset()  # the addresses of the links up
        self._heard = float("-inf")  # the least recently heard link
        self._observer: Callable[[bool], None] | None = None
        self._telling = threading.Lock()
        self._told = False  # what the observer last heard

    def observe(self, observer: Callable[[bool], None] | None) -> None:
        """Call ``observer(healthy)`` each time "every link is up" turns true or false
        (outside the cache's lock, from whichever thread moved a link)."""
        self._observer = observer

    @property
    def trust_window(self) -> float:
        """How recently every link must have been heard from for entries to be served."""
        return self._trust_window

    def trusted(self, now: float) -> bool:
        """Whether entries may be served now (connection up and heard from recently)."""
        return self._healthy and now - self._heard <= self._trust_window

    def get(self, key: str, now: float) -> Any:
        """The cached value for ``key``, or None (missing, stale, or not trusted now)."""
        item = self._items.get(key)
        if item is None or not self.trusted(now):
            return None
        value, until, node = item
        if node is not None and node not in self._live:
            return None  # read from a node not (or no longer) followed
        if now >= until:
            with self._lock:
                self._items.pop(key, None)
            return None
        return value

    def begin(self) -> int:
        """A token to pass to ``put`` for a read that starts now."""
        return self._seq

    def put(
        self,
        key: str,
        value: Any,
        token: int,
        now: float,
        until: float,
        node: Address | None = None,
    ) -> bool:
        """Store ``value`` unless ``key`` was invalidated since ``token``; True if stored.

        ``node``: the server ``value`` was read from, when the reader can tell; the entry
        is refused unless that node has a live link (whose coming up, after ``token``,
        would have moved the floor past it), and served only while it keeps one.
        """
        with self._lock:
            last = self._key_seq.get(key, self._floor)
            if not self._healthy or last > token or token < self._floor:
                return False
            if node is not None and node not in self._live:
                return False
            self._items[key] = (value, min(until, now + self._max_age), node)
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

    def link(self, address: Address | None = None) -> Link:
        """A new push connection (to ``address``) to hear from; untrusted until it is ``up``.

        Adding one flushes the cache: its server may hold writes nobody has heard about.
        """
        link = Link(self, address)
        with self._lock:
            self._links += (link,)
            self._flush()
        self._tell()
        return link

    def _up(self, link: Link, now: float) -> None:
        with self._lock:
            link.alive, link.last_heard = True, now
            self._seq += 1
            self._floor = self._seq
            self._recount()
        self._tell()

    def _down(self, link: Link, *, remove: bool = False) -> None:
        with self._lock:
            link.alive = False
            if remove:
                self._links = tuple(other for other in self._links if other is not link)
            self._flush()
        self._tell()

    def _tell(self) -> None:
        """Tell the observer whether every link is up, if that changed since it was told.

        Under a lock of its own, reading the state afresh: two threads moving links at
        once tell the observer in order, and the last it hears is the state.
        """
        with self._telling:
            healthy, observer = self._healthy, self._observer
            if healthy != self._told and observer is not None:
                self._told = healthy
                observer(healthy)

    def _heard_from(self) -> None:
        # Unlocked: a stale minimum only makes the cache less trusted for a moment.
        links = self._links
        self._heard = min(link.last_heard for link in links) if links else float("-inf")

    def _flush(self) -> None:
        self._seq += 1
        self._floor = self._seq
        self._items.clear()
        self._key_seq.clear()
        self._recount()

    def _recount(self) -> None:
        links = self._links
        self._healthy = bool(links) and all(link.alive for link in links)
        self._live = frozenset(
            link.address for link in links if link.alive and link.address is not None
        )
        self._heard_from()

    def abandon(self) -> None:
        """In a forked child: forget everything and trust nothing, for good.

        The links report the parent's connections, which are not this process'. No lock
        is taken: a parent thread may have held it at the fork.
        """
        self._lock = threading.Lock()
        self._observer = None  # the parent's watchers
        self._telling, self._told = threading.Lock(), False
        self._links = ()
        self._flush()

    def __len__(self) -> int:
        return len(self._items)


class Link:
    """One push connection of a ``NearCache``: its state is reported here."""

    __slots__ = ("_cache", "address", "alive", "last_heard")

    def __init__(self, cache: NearCache, address: Address | None = None) -> None:
        self._cache = cache
        self.address = address
        self.alive = False
        self.last_heard = float("-inf")

    def up(self, now: float) -> None:
        """The connection is subscribed: entries may be stored again once all links are."""
        self._cache._up(self, now)

    def heard(self, now: float) -> None:
        """The connection answered (a push or a heartbeat reply)."""
        self.last_heard = now
        self._cache._heard_from()

    def down(self) -> None:
        """The connection is lost: forget everything, trust nothing."""
        self._cache._down(self)

    def close(self) -> None:
        """The server is no longer followed: forget everything, stop counting this link."""
        self._cache._down(self, remove=True)
