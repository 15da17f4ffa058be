"""Data-loss detection: a marker key whose disappearance means Redis lost its data set.

A restart without persistence (or a flush) empties Redis silently: every session reads as
revoked, which is safe, but operators must hear of it. Each store sets a marker once and
checks it every ``Config.marker_interval`` seconds and right after an outage ends; a marker
that vanished, or changed, is reported as ``events.DataLost``.
"""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Any

from sessionstore import events
from sessionstore.keys import MARKER_TTL_MS, marker_key
from sessionstore.scripts import SCRIPTS

__all__ = ["Marker"]

logger = logging.getLogger("sessionstore")


class Marker:
    """When the marker is due for a check, and what its replies mean."""

    def __init__(self, namespace: str, interval: float) -> None:
        self._key = marker_key(namespace)
        self._interval = interval
        self._lock = threading.Lock()
        self._due = 0.0
        self._seen: str | None = None

    def expedite(self) -> None:
        """Check at the next call (an outage just ended)."""
        self._due = 0.0

    def forked(self) -> None:
        """In a forked child: a new lock (a parent thread may have held the old one)."""
        self._lock = threading.Lock()

    def due(self, now: float) -> bool:
        """Whether this caller should run the check now (one caller per interval)."""
        if now < self._due:
            return False
        with self._lock:
            if now < self._due:
                return False
            self._due = now + self._interval
            return True

    def args(self) -> tuple[str, ...]:
        """KEYS then ARGV of the marker script (after the script name)."""
        return (self._key, secrets.token_urlsafe(12), str(MARKER_TTL_MS))

    def parse(self, reply: list[Any]) -> events.DataLost | None:
        """Remember the marker; the event to report when it vanished or changed."""
        flag, raw = reply  # lua/marker.lua
        existed, value = int(flag), raw.decode()
        previous, self._seen = self._seen, value
        if previous is None or (existed and value == previous):
            return None
        how = "was replaced" if existed else "vanished"
        logger.error("sessionstore: the Redis data set was lost (marker %s)", how)
        return events.DataLost(detail=f"marker key {how}: Redis lost its data set")


SCRIPT = SCRIPTS["marker"]
