"""Memory per session, measured two ways on 10,000 sessions (1,000 users x 10).

(a) MEMORY USAGE (SAMPLES 0) of every key of the namespace, found by SCAN, split into the
session hashes and the per-user indexes; (b) the INFO ``used_memory`` delta from an empty
server (FLUSHALL SYNC) to the same server holding the sessions, which also counts the
keyspace's own tables (main dict, expires dict). Both are divided by the session count.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

from benchmarks.context import DATA, Context, device

__all__ = ["MemoryResult", "measure"]

_BATCH = 1000


@dataclass
class MemoryResult:
    """Both measurements, with everything needed to recompute them."""

    sessions: int
    users: int
    flushed: bool
    hash_bytes: int = 0
    index_bytes: int = 0
    other_bytes: int = 0
    key_counts: dict[str, int] = field(default_factory=dict)
    used_memory_before: int = 0
    used_memory_after: int = 0
    hash_encodings: dict[str, int] = field(default_factory=dict)
    index_encodings: dict[str, int] = field(default_factory=dict)

    @property
    def usage_per_session(self) -> float:
        """(a): sum of MEMORY USAGE over the namespace, per session."""
        return (self.hash_bytes + self.index_bytes + self.other_bytes) / self.sessions

    @property
    def delta_per_session(self) -> float:
        """(b): used_memory after minus before, per session."""
        return (self.used_memory_after - self.used_memory_before) / self.sessions

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
                "key_counts": self.key_counts,
                "per_session": round(self.usage_per_session, 1),
                "hash_per_session": round(self.hash_bytes / self.sessions, 1),
                "index_per_session": round(self.index_bytes / self.sessions, 1),
            },
            "used_memory": {
                "before": self.used_memory_before,
                "after": self.used_memory_after,
                "per_session": round(self.delta_per_session, 1),
            },
            "object_encoding": {"hash": self.hash_encodings, "index": self.index_encodings},
        }


def _one_name(counts: dict[str, int]) -> str:
    if len(counts) == 1:
        return next(iter(counts))
    return "mixed: " + ", ".join(f"{name} x{n}" for name, n in sorted(counts.items()))


def _used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


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
    result.other_bytes = sizes["other"]
    result.key_counts = dict(counts)
    result.hash_encodings = dict(encodings["hash"])
    result.index_encodings = dict(encodings["index"])


def measure(ctx: Context, sessions: int = 10_000, per_user: int = 10) -> MemoryResult:
    """Create ``sessions`` sessions on an empty namespace and measure them both ways."""
    ctx.reset()
    users = sessions // per_user
    result = MemoryResult(sessions=users * per_user, users=users, flushed=ctx.server.flushable)
    # Open the store's connection first, so its buffers are in both used_memory readings.
    ctx.store.sessions(ctx.new_user("memory-warmup"))
    result.used_memory_before = _used_memory(ctx.admin)
    for _ in range(users):
        user_id = ctx.new_user("memory")
        for k in range(per_user):
            ctx.store.create(user_id, device=device(k % 5), data=DATA)
    result.used_memory_after = _used_memory(ctx.admin)
    _scan(ctx, result)
    return result
