"""A background thread that a stop request wakes at once, with its fork-safe teardown.

Both watchers of this package (the invalidation ``Listener`` and the topology
``Followers``) sleep in ``select()`` on their sockets plus ``wake_r``; ``stop`` writes to
the other end so the sleep ends now instead of at its timeout.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

__all__ = ["Worker"]


class Worker:
    """One daemon thread, its stop flag and the socket pair that wakes it."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self.stopping = threading.Event()
        self.wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=target, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Ask the thread to stop, wake it, and wait up to ``timeout`` seconds for it."""
        self.stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)

    def close(self) -> None:
        """Close the wake-up pair (after ``stop``)."""
        self.wake_r.close()
        self._wake_w.close()

    def abandon(self) -> None:
        """In a forked child: stop for good and close this process' copies of the pair.

        The thread did not survive the fork; closing a copy of a descriptor leaves the
        parent's open, and nothing is written to it.
        """
        self.stopping = threading.Event()
        self.stopping.set()
        for each in (self.wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                each.close()
