"""Helpers of the topology suites: continuous load (validations, revocations, logins and
touches while a failover or a slot migration happens, tallied per kind of outcome), a
failover of either kind (``promote``) and a store settled on a Sentinel primary
(``on_primary``).

One async body drives both APIs: the async store runs its workers as tasks, the sync
store (wrapped in ``support.SyncAdapter``) runs them in threads, each with its own loop.
Loops are bounded by a stop flag and a hard deadline; traffic goes to loopback only.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from observe import wait_for
from sessionstore import (
    Config,
    Device,
    Keyring,
    SessionRevoked,
    SessionStore,
    StoreUnavailable,
    TokenPair,
)
from sessionstore.testing import LocalCluster, LocalSentinel, LocalServer
from support import StoreApi, StoreFactory, internals, warm

__all__ = [
    "PHONE",
    "Pool",
    "Tally",
    "assert_state",
    "fresh_checker",
    "on_primary",
    "promote",
    "under_load",
]

T = TypeVar("T")
PHONE = Device(id="phone-1", name="Pixel")


@dataclass
class Tally:
    """What the workers saw. ``unexpected`` must stay empty in every scenario."""

    validations: int = 0
    degraded: int = 0
    degraded_first: float | None = None
    degraded_last: float | None = None
    revocations: int = 0
    # Writes refused with StoreUnavailable (they never fall back), per operation.
    refused: dict[str, int] = field(default_factory=dict)
    accepted_revoked: int = 0
    logins: int = 0  # attempts
    touches: int = 0  # attempts
    lost: set[str] = field(default_factory=set)  # acknowledged logins a failover lost
    unexpected: list[str] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)  # what made writes StoreUnavailable

    def refuse(self, name: str, err: StoreUnavailable) -> None:
        """Count one write refused with StoreUnavailable, keeping the driver's error."""
        self.refused[name] = self.refused.get(name, 0) + 1
        self.causes.append(repr(err.__cause__))

    @property
    def unavailable(self) -> int:
        """Writes refused with StoreUnavailable, all operations together."""
        return sum(self.refused.values())

    def degraded_seen(self, now: float) -> None:
        """Count one degraded answer at ``now`` (monotonic seconds)."""
        self.degraded += 1
        self.degraded_first = now if self.degraded_first is None else self.degraded_first
        self.degraded_last = now

    @property
    def degraded_window(self) -> float:
        """Seconds from the first degraded answer to the last (0 without any)."""
        if self.degraded_first is None or self.degraded_last is None:
            return 0.0
        return self.degraded_last - self.degraded_first

    def add(self, other: Tally) -> None:
        """Fold another worker's tally into this one."""
        for name in ("validations", "degraded", "revocations", "logins"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name, count in other.refused.items():
            self.refused[name] = self.refused.get(name, 0) + count
        self.accepted_revoked += other.accepted_revoked
        self.touches += other.touches
        self.lost |= other.lost
        self.unexpected += other.unexpected
        self.causes += other.causes
        firsts = [t for t in (self.degraded_first, other.degraded_first) if t is not None]
        lasts = [t for t in (self.degraded_last, other.degraded_last) if t is not None]
        self.degraded_first = min(firsts) if firsts else None
        self.degraded_last = max(lasts) if lasts else None

    def summary(self) -> str:
        """One line for the run's closing summary."""
        return (
            f"{self.degraded}/{self.validations} validations degraded over "
            f"{self.degraded_window:.2f} s; StoreUnavailable for "
            f"{self.refused.get('revoke', 0)}/{self.revocations} revocations, "
            f"{self.refused.get('login', 0)}/{self.logins} logins, "
            f"{self.refused.get('touch', 0)}/{self.touches} touches; "
            f"{len(self.lost)} acknowledged logins lost; "
            f"{self.accepted_revoked} revoked sessions accepted; "
            f"{len(self.unexpected)} unexpected errors"
        )


class Pool:
    """Sessions under test and what became of them (thread-safe)."""

    def __init__(self, pairs: list[tuple[str, TokenPair]], *, lossy_logins: bool = False) -> None:
        """``lossy_logins``: a failover may lose logins (never WAITed for): not an error."""
        self.lossy_logins = lossy_logins
        self.made: set[str] = set()  # sessions the load's logins made
        self.users = sorted({user_id for user_id, _ in pairs})  # logins pick one uniformly
        self.lock = threading.Lock()
        self.live = list(pairs)
        self.revoked: list[tuple[str, TokenPair]] = []  # revoke answered True
        self.taken: set[str] = set()  # a revoke was sent (its outcome may be unknown)
        self.unknown: set[str] = set()  # revoke refused with StoreUnavailable: may have applied

    def pick(self, rng: random.Random) -> tuple[str, TokenPair] | None:
        """A live session to validate or touch."""
        with self.lock:
            return rng.choice(self.live) if self.live else None

    def take(self, rng: random.Random) -> tuple[str, TokenPair] | None:
        """A live session to revoke (no longer live from now on)."""
        with self.lock:
            if len(self.live) < 2:
                return None
            item = self.live.pop(rng.randrange(len(self.live)))
            self.taken.add(item[1].session_id)
            return item

    def gone(self, rng: random.Random) -> tuple[str, TokenPair] | None:
        """A session whose revoke was acknowledged."""
        with self.lock:
            return rng.choice(self.revoked) if self.revoked else None


async def _validate(store: StoreApi, pool: Pool, tally: Tally, rng: random.Random) -> None:
    picked = pool.pick(rng)
    if picked is None:
        return
    _, pair = picked
    try:
        principal = await store.validate(pair.access_token)
    except SessionRevoked:
        if pair.session_id in pool.taken:  # a concurrent revoke won the race
            return
        if pool.lossy_logins and pair.session_id in pool.made:
            tally.lost.add(pair.session_id)
            return
        tally.unexpected.append(f"live session {pair.session_id} refused")
        return
    tally.validations += 1
    if principal.degraded:
        tally.degraded_seen(time.monotonic())


async def _validate_revoked(store: StoreApi, pool: Pool, tally: Tally, rng: random.Random) -> None:
    picked = pool.gone(rng)
    if picked is None:
        return
    _, pair = picked
    try:
        principal = await store.validate(pair.access_token)
    except SessionRevoked:
        return
    tally.accepted_revoked += 1
    tally.unexpected.append(f"revoked session accepted (degraded={principal.degraded})")


async def _revoke(store: StoreApi, pool: Pool, tally: Tally, rng: random.Random) -> None:
    picked = pool.take(rng)
    if picked is None:
        return
    user_id, pair = picked
    tally.revocations += 1
    try:
        done = await store.revoke(user_id, pair.session_id)
    except StoreUnavailable as err:
        tally.refuse("revoke", err)
        with pool.lock:
            pool.unknown.add(pair.session_id)
        return
    if not done:
        if pool.lossy_logins and pair.session_id in pool.made:
            tally.lost.add(pair.session_id)
        else:
            tally.unexpected.append(f"revoke of live session {pair.session_id} found nothing")
        return
    with pool.lock:
        pool.revoked.append(picked)


async def _login(store: StoreApi, pool: Pool, tally: Tally, rng: random.Random) -> None:
    user_id = rng.choice(pool.users)
    tally.logins += 1
    pair = await store.login(user_id, device=PHONE)
    with pool.lock:
        pool.made.add(pair.session_id)
        pool.live.append((user_id, pair))


async def _touch(store: StoreApi, pool: Pool, tally: Tally, rng: random.Random) -> None:
    picked = pool.pick(rng)
    if picked is None:
        return
    user_id, pair = picked
    tally.touches += 1
    alive = await store.touch(user_id, pair.session_id)
    if not alive and pair.session_id not in pool.taken:
        if pool.lossy_logins and pair.session_id in pool.made:
            tally.lost.add(pair.session_id)
        else:
            tally.unexpected.append(f"touch found live session {pair.session_id} gone")


OPS: dict[str, Callable[[Any, Pool, Tally, random.Random], Any]] = {
    "validate": _validate,
    "validate_revoked": _validate_revoked,
    "revoke": _revoke,
    "login": _login,
    "touch": _touch,
}


async def _work(
    store: StoreApi,
    pool: Pool,
    tally: Tally,
    stop: threading.Event,
    deadline: float,
    seed: int,
    plan: list[str],
    pace: float,
) -> None:
    rng = random.Random(seed)
    while not stop.is_set() and time.monotonic() < deadline:
        for name in plan:
            try:
                await OPS[name](store, pool, tally, rng)
            except StoreUnavailable as err:
                if name in ("login", "touch"):
                    tally.refuse(name, err)
                else:
                    tally.unexpected.append(f"{name}: {err!r}")
            except Exception as err:
                tally.unexpected.append(f"{name}: {err!r}")
            await asyncio.sleep(pace)


async def under_load(
    mode: str,
    store: StoreApi,
    pool: Pool,
    action: Callable[[], T],
    *,
    plan: list[str],
    workers: int = 4,
    warmup: float = 0.3,
    settle: float = 1.0,
    limit: float = 60.0,
    pace: float = 0.0,
) -> tuple[Tally, T]:
    """Run ``plan`` in a loop on ``workers`` while ``action`` runs; the merged tally.

    ``pace`` seconds pass between operations (0: as fast as the store answers).
    """
    stop = threading.Event()
    deadline = time.monotonic() + limit
    tallies = [Tally() for _ in range(workers)]
    runs = [_work(store, pool, t, stop, deadline, n, plan, pace) for n, t in enumerate(tallies)]
    if mode == "async":
        tasks = [asyncio.create_task(run) for run in runs]
        try:
            await asyncio.sleep(warmup)
            result = await asyncio.to_thread(action)
            await asyncio.sleep(settle)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    else:
        threads = [threading.Thread(target=asyncio.run, args=(run,)) for run in runs]
        for thread in threads:
            thread.start()
        try:
            time.sleep(warmup)
            result = action()
            time.sleep(settle)
        finally:
            stop.set()
            for thread in threads:
                thread.join(limit)
    total = Tally()
    for tally in tallies:
        total.add(tally)
    return total, result


def fresh_checker(url: str, keyring: Keyring) -> SessionStore:
    """A store with no memory of this test's revocations: it sees only what Redis holds."""
    return SessionStore.from_url(url, keyring=keyring, config=Config(socket_timeout=2))


def assert_state(url: str, keyring: Keyring, pool: Pool, live: set[str] | None = None) -> None:
    """Acknowledged revocations stayed revoked; untouched sessions (of ``live``) are live."""
    with fresh_checker(url, keyring) as checker:
        for _, pair in pool.revoked:
            with pytest.raises(SessionRevoked):
                checker.validate(pair.access_token)
        for _, pair in pool.live:
            if live is None or pair.session_id in live:
                principal = checker.validate(pair.access_token)
                assert principal.session is not None and not principal.degraded


def promote(cluster: LocalCluster, replica: LocalServer, kind: str) -> None:
    """Fail ``replica``'s primary over to it: ``graceful`` (CLUSTER FAILOVER) or
    ``takeover`` (the primary stalls, as under SIGSTOP, and its replica takes over without
    its consent; the old primary rejoins as a replica)."""
    if kind == "graceful":
        cluster.failover(replica)
        return
    primary = next(p for p in cluster.primaries() if replica in cluster.replicas_of(p))
    primary.pause()
    try:
        time.sleep(0.6)
        others = [n for n in cluster.nodes if n is not primary]
        cluster.failover(replica, option="TAKEOVER", wait_for=others)
    finally:
        primary.resume()


async def on_primary(
    group: LocalSentinel, open_store: StoreFactory
) -> tuple[StoreApi, LocalServer, TokenPair]:
    """A store on the Sentinel group, following its primary, with a session of ``user-1``
    in its near cache: (store, the primary, the session's token pair)."""
    store = open_store(group.url)
    old = group.primary()
    pair = await store.login("user-1", device=PHONE)
    assert wait_for(lambda: internals(store).followed_ports() == {old.port})
    await warm(store, pair.access_token)
    return store, old, pair
