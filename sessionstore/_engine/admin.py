"""Admin listing across all users (pure): what to SCAN for and which user a key names.

The shells walk every primary with ``SCAN MATCH <ns>:{*}:idx TYPE zset`` (redis-py's
cluster client runs SCAN on each primary in turn; one server is one primary), never
KEYS, then list each user's sessions with the usual one-slot script, which also prunes.
SCAN may return a key twice (a rehash, a slot moving mid-walk): a walk remembers the
users it has yielded, so each comes once (memory grows with the number of users).
"""

from __future__ import annotations

from sessionstore.errors import InvalidInput
from sessionstore.keys import decode_user_id

__all__ = ["Walk", "glob_escape"]

_INDEX_SUFFIX = "}:idx"


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis glob pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class Walk:
    """One walk over every user's index: the SCAN pattern, and each user once."""

    def __init__(self, namespace: str, count: int) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100_000:
            raise InvalidInput(f"count must be an integer in 1..100000, got {count!r}")
        self.count = count
        self._prefix = f"{namespace}:{{"
        self.pattern = glob_escape(self._prefix) + "*" + _INDEX_SUFFIX
        self._seen: set[str] = set()

    def user(self, key: bytes | str) -> str | None:
        """The user whose index ``key`` is, unless already yielded or not one of ours."""
        text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        if not (text.startswith(self._prefix) and text.endswith(_INDEX_SUFFIX)):
            return None
        encoded = text[len(self._prefix) : -len(_INDEX_SUFFIX)]
        try:
            user_id = decode_user_id(encoded)
        except InvalidInput:
            return None  # a foreign key that happens to match the pattern
        if user_id in self._seen:
            return None
        self._seen.add(user_id)
        return user_id
