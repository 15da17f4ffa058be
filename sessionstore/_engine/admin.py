"""Admin listing across all users (pure): one walk over the user indexes, each user once.

The shells walk every primary with ``SCAN MATCH <ns>:{*}:idx TYPE zset`` (redis-py's
cluster client runs SCAN on each primary in turn; one server is one primary), never
KEYS, then list each user's sessions with the usual one-slot script, which also prunes.
SCAN may return a key twice (a rehash, a slot moving mid-walk): a walk remembers the
users it has yielded, so each comes once (memory grows with the number of users).
The pattern and the reading of a key are ``keys.index_pattern`` and ``keys.user_of_index``.
"""

from __future__ import annotations

from sessionstore.errors import InvalidInput
from sessionstore.keys import index_pattern, user_of_index

__all__ = ["Walk"]


class Walk:
    """One walk over every user's index: the SCAN pattern, and each user once."""

    def __init__(self, namespace: str, count: int) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100_000:
            raise InvalidInput(f"count must be an integer in 1..100000, got {count!r}")
        self.count = count
        self._namespace = namespace
        self.pattern = index_pattern(namespace)
        self._seen: set[str] = set()

    def user(self, key: bytes | str) -> str | None:
        """The user whose index ``key`` is, unless already yielded or not one of ours."""
        text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        user_id = user_of_index(self._namespace, text)
        if user_id is None or user_id in self._seen:
            return None
        self._seen.add(user_id)
        return user_id
