"""Memory per session, measured two ways on 100,000 sessions whose user agent is 120 bytes.

Sessions per user follow a fixed pattern of 20 users (``SPREAD``): 9 users with 1 session,
5 with 2, 3 with 3, 2 with 5 and 1 with 10, i.e. 2.4 sessions per user on average, as on a
consumer service where most people use one or two devices. Fewer sessions per user cost more
per session (one index ZSET per user), so this is less flattering than 10 per user. User ids
are UUIDs (36 chars, 48 once base64url-encoded into every key of the user), as many services
use; short numeric ids would make every key, and so every session, some 40 bytes smaller.

(a) MEMORY USAGE (SAMPLES 0) of every key of the namespace, found by SCAN, split into the
session hashes, the per-user indexes and anything else (the data-loss marker); (b) the INFO
``used_memory`` delta from an empty server (FLUSHALL SYNC) to the same server holding the
sessions, which also counts the keyspace's own tables (main dict, expires dict). Client
buffers (``mem_clients_normal``: the BCAST invalidation pushes of the near cache) are left to
drain before each reading and are reported; both figures are divided by the session count.
The server runs with its default settings (``hash-max-listpack-value`` 64 and so on).

The plain figure is measured with ``Config(history=False)`` (comparable with the figures
before the history existed). ``measure_history`` adds the history's cost: the same users
signing in (``login``), refreshing three times and stepping up once (five history
entries per session, ``LIFECYCLE``), measured with the history off and on; the difference
per session is what the history costs (target: at most 150 B). The five actions of a
session run within seconds, so their gaps take one byte each; gaps of minutes to hours
take two (a few bytes more per session).
"""

from __future__ import annotations

import collections
import itertools
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

from benchmarks import bulk
from benchmarks.context import DEVICES, Context
from benchmarks.harness import Bound
from benchmarks.server import BenchError

__all__ = [
    "HISTORY_TARGET",
    "LIFECYCLE",
    "SPREAD",
    "HistoryMemory",
    "MemoryResult",
    "measure",
    "measure_history",
    "owners",
]

_BATCH = 1000
SPREAD = (1,) * 9 + (2,) * 5 + (3,) * 3 + (5,) * 2 + (10,)
"""Sessions of 20 consecutive users (48 sessions): the pattern repeats until the total."""
_SETTLE_SECONDS = 10.0
LIFECYCLE = "login, 3 refreshes, 1 step-up"
"""What each session does in ``measure_history``: five history entries."""
HISTORY_TARGET = 150.0
"""Bytes per session the history may cost at five entries per session (issue 18)."""


@dataclass
class MemoryResult:
    """Both measurements, with everything needed to recompute them."""

    sessions: int
    users: int
    flushed: bool
    hash_bytes: int = 0
    index_bytes: int = 0
    other_bytes: int = 0
    history_bytes: int = 0
    key_counts: dict[str, int] = field(default_factory=dict)
    used_memory_before: int = 0
    used_memory_after: int = 0
    clients_before: int = 0
    clients_after: int = 0
    hash_encodings: dict[str, int] = field(default_factory=dict)
    index_encodings: dict[str, int] = field(default_factory=dict)

    @property
    def usage_per_session(self) -> float:
        """(a): sum of MEMORY USAGE over the namespace, per session."""
        total = self.hash_bytes + self.index_bytes + self.other_bytes + self.history_bytes
        return total / self.sessions

    @property
    def delta_per_session(self) -> float:
        """(b): used_memory after minus before, per session."""
        return (self.used_memory_after - self.used_memory_before) / self.sessions

    def bound(self, limit: float = 600.0) -> Bound:
        """The target: the larger of both figures, per session, under ``limit`` bytes."""
        return Bound(
            f"memory <= {limit:g} B/session at {self.sessions:,} sessions (UA 120 B)",
            max(self.usage_per_session, self.delta_per_session),
            limit,
            "B/session",
            f"the larger of MEMORY USAGE {self.usage_per_session:.0f}"
            f" and used_memory {self.delta_per_session:.0f}",
        )

    @property
    def hash_encoding(self) -> str:
        """The OBJECT ENCODING of the session hashes ("mixed: ..." when they differ)."""
        return _one_name(self.hash_encodings)

    @property
    def index_encoding(self) -> str:
        """The OBJECT ENCODING of the per-user index ZSETs."""
        return _one_name(self.index_encodings)

    def to_json(self) -> dict[str, object]:
        """Raw figures and both per-session results."""
        return {
            "sessions": self.sessions,
            "users": self.users,
            "server_flushed_before": self.flushed,
            "memory_usage": {
                "hash_bytes": self.hash_bytes,
                "index_bytes": self.index_bytes,
                "other_bytes": self.other_bytes,
                "history_bytes": self.history_bytes,
                "key_counts": self.key_counts,
                "per_session": round(self.usage_per_session, 1),
                "hash_per_session": round(self.hash_bytes / self.sessions, 1),
                "index_per_session": round(self.index_bytes / self.sessions, 1),
            },
            "used_memory": {
                "before": self.used_memory_before,
                "after": self.used_memory_after,
                "mem_clients_normal_before": self.clients_before,
                "mem_clients_normal_after": self.clients_after,
                "per_session": round(self.delta_per_session, 1),
            },
            "spread": {
                "pattern_sessions_per_user": list(SPREAD),
                "mean_sessions_per_user": round(self.sessions / self.users, 3),
                "devices_per_user": f"session k of a user on device k % {DEVICES}",
                "user_ids": "UUID v4 strings (36 chars)",
            },
            "object_encoding": {"hash": self.hash_encodings, "index": self.index_encodings},
        }


def _one_name(counts: dict[str, int]) -> str:
    if len(counts) == 1:
        return next(iter(counts))
    return "mixed: " + ", ".join(f"{name} x{n}" for name, n in sorted(counts.items()))


def _used_memory(client: redis.Redis) -> tuple[int, int]:
    """(used_memory, mem_clients_normal) once client buffers have drained (or 10 s passed)."""
    deadline = time.monotonic() + _SETTLE_SECONDS
    last = -1
    while True:
        info = client.info("memory")
        used, clients = int(info["used_memory"]), int(info.get("mem_clients_normal", 0))
        # Two equal readings 50 ms apart: nothing is queued for or from any client.
        if used == last or time.monotonic() > deadline:
            return used, clients
        last = used
        time.sleep(0.05)


def _batches(client: redis.Redis, pattern: str) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=_BATCH):
        batch.append(key)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _kind(key: bytes) -> str:
    if key.endswith(b":idx"):
        return "index"
    if key.endswith(b"}:h"):
        return "history"
    return "hash" if b":s:" in key else "other"


def _scan(ctx: Context, result: MemoryResult) -> None:
    """(a): MEMORY USAGE and OBJECT ENCODING of every key of the namespace."""
    sizes: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()
    encodings = {"hash": collections.Counter[str](), "index": collections.Counter[str]()}
    for batch in _batches(ctx.admin, f"{ctx.namespace}:*"):
        pipe = ctx.admin.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
            pipe.object("encoding", key)
        replies = pipe.execute()
        for key, usage, encoding in zip(batch, replies[::2], replies[1::2], strict=True):
            kind = _kind(key)
            sizes[kind] += int(usage or 0)
            counts[kind] += 1
            if kind in encodings and encoding is not None:
                name = encoding.decode() if isinstance(encoding, bytes) else str(encoding)
                encodings[kind][name] += 1
    result.hash_bytes, result.index_bytes = sizes["hash"], sizes["index"]
    result.other_bytes, result.history_bytes = sizes["other"], sizes["history"]
    result.key_counts = dict(counts)
    result.hash_encodings = dict(encodings["hash"])
    result.index_encodings = dict(encodings["index"])


def owners(ctx: Context, sessions: int) -> list[tuple[str, int]]:
    """(user id, device number) of ``sessions`` sessions spread over users as ``SPREAD``."""
    found: list[tuple[str, int]] = []
    rng = random.Random(sessions)  # the same ids every run, for comparable figures
    for count in itertools.cycle(SPREAD):
        user_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        found += [(user_id, k % DEVICES) for k in range(count)]
        if len(found) >= sessions:
            return found[:sessions]
    raise BenchError("unreachable: itertools.cycle never ends")


def measure(
    ctx: Context, sessions: int = 100_000, *, history: bool = False, lifecycle: bool = False
) -> MemoryResult:
    """Create ``sessions`` sessions on an empty namespace and measure them both ways:
    ``create()`` each, or with ``lifecycle`` the five actions of ``LIFECYCLE``; with the
    history (``Config.history``) off or on."""
    ctx.reset()
    # Setup only (nothing timed): a long socket timeout, as the pipelined batches are large.
    store = ctx.open_store(history=history, socket_timeout=30.0)
    planned = owners(ctx, sessions)
    users = len({user_id for user_id, _ in planned})
    result = MemoryResult(sessions=len(planned), users=users, flushed=ctx.server.flushable)
    # Open the store's connection first, so its buffers are in both used_memory readings.
    store.sessions(ctx.new_user("memory-warmup"))
    result.used_memory_before, result.clients_before = _used_memory(ctx.admin)
    # The same script calls as the store's methods, pipelined (see benchmarks.bulk).
    made = bulk.lifecycle_many(store, planned) if lifecycle else bulk.create_many(store, planned)
    if made != len(planned):
        raise BenchError("bulk setup made fewer sessions than planned")
    result.used_memory_after, result.clients_after = _used_memory(ctx.admin)
    _scan(ctx, result)
    return result


@dataclass
class HistoryMemory:
    """The same sessions (``LIFECYCLE``) measured with the history off and on."""

    without: MemoryResult
    with_history: MemoryResult

    @property
    def extra_per_session(self) -> float:
        """What the history costs per session: the larger difference of both measures."""
        usage = self.with_history.usage_per_session - self.without.usage_per_session
        delta = self.with_history.delta_per_session - self.without.delta_per_session
        return max(usage, delta)

    def bound(self) -> Bound:
        """The target: the history costs at most ``HISTORY_TARGET`` B per session."""
        return Bound(
            f"history <= {HISTORY_TARGET:g} B/session at 5 entries/session"
            f" ({self.with_history.sessions:,} sessions)",
            self.extra_per_session,
            HISTORY_TARGET,
            "B/session",
            f"{LIFECYCLE}: history on {self.with_history.delta_per_session:.0f},"
            f" off {self.without.delta_per_session:.0f} (used_memory)",
        )

    def to_json(self) -> dict[str, object]:
        """Both measurements and the difference."""
        return {
            "lifecycle": LIFECYCLE,
            "extra_per_session": round(self.extra_per_session, 1),
            "history_off": self.without.to_json(),
            "history_on": self.with_history.to_json(),
        }


def measure_history(ctx: Context, sessions: int = 100_000) -> HistoryMemory:
    """``LIFECYCLE`` for ``sessions`` sessions, with the history off, then on."""
    without = measure(ctx, sessions, lifecycle=True)
    return HistoryMemory(without, measure(ctx, sessions, history=True, lifecycle=True))
