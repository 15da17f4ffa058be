"""One invalidation connection behind the near cache: Redis pushes, we listen.

A RESP3 connection to one server: ``CLIENT TRACKING ON BCAST PREFIX <ns>:`` makes Redis
push the name of every key of the namespace that changes, from any client; the same
connection subscribes to the channel the revocation scripts publish on, so revocations
also reach the degraded-mode memory. A thread sends a heartbeat PING every ``heartbeat``
seconds and applies what arrives. A hot path asks ``fresh()`` before it serves the cache:
it applies what has reached the socket itself (one ``poll`` system call, skipped within
10 µs of the last: see ``_FRESH_FOR``), so a push that has arrived is not outrun by a
cache hit. When the thread holds the connection, it may be mid-drain and waiting for the
GIL the caller holds (for up to ``sys.getswitchinterval()``): the caller waits on the
lock, which releases the GIL, for at most ``_WAIT`` (1 ms; an event loop may block that
long), then sends the validation to Redis instead of serving the cache. The connection
is one ``Link`` of the cache: any socket error drops the whole cache until a new
connection is subscribed. Which servers get a listener (one, every cluster primary, the
sentinels' primary) is ``_follow``'s business.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import hiredis

from sessionstore import _wire
from sessionstore._cache import NearCache
from sessionstore._wire import ConnSpec, command

__all__ = ["Listener", "revoked_channel"]

logger = logging.getLogger("sessionstore")

# How long a hot path waits for the listener thread to finish with the connection.
_WAIT = 0.001
# How long a poll that found the socket drained vouches for it. Less than any round trip
# of the revoking client (two wake-ups and a reply parsed in Python: tens of µs on
# loopback): the pushes land before the server reads ``revoke()``'s last command (see
# ``_core.announced``), so a validation that starts after ``revoke()`` returned, anywhere,
# polls after they landed. A validation loop faster than this polls every few calls
# instead of every call: the poll costs about a microsecond, a cached validation 1.5.
_FRESH_FOR = 0.00001


def revoked_channel(namespace: str) -> str:
    """The channel the revocation scripts publish ``<enc uid> <sid>...`` on."""
    return f"{namespace}:{{!revoked}}"


class Listener:
    """Owns the invalidation connection and keeps ``cache`` in step with the server."""

    def __init__(
        self,
        spec: ConnSpec,
        namespace: str,
        cache: NearCache,
        *,
        revoked: Callable[[str, list[str]], None],
        up: Callable[[], None],
        heartbeat: float = 0.25,
    ) -> None:
        self.cache = cache
        self._link = cache.link()
        self._spec = spec
        self._namespace = namespace
        self._heartbeat = heartbeat
        self._io = threading.Lock()
        self._sock: socket.socket | None = None
        self._reader = hiredis.Reader()
        self._stop = threading.Event()
        # Written to by stop(), so the thread's select() wakes at once instead of timing out.
        self._wake_r, self._wake_w = socket.socketpair()
        self._poll: Callable[[int], list[tuple[int, int]]] | None = None
        self._polled = 0.0  # time.perf_counter() of the last poll that left nothing unread
        # revoked(encoded user id, session ids) on every published revocation; up() each
        # time the connection is (re)established.
        self._revoked = revoked
        self._up = up
        self._thread = threading.Thread(target=self._run, name="sessionstore-invalidations")
        self._thread.daemon = True

    @property
    def alive(self) -> bool:
        """Whether the connection is subscribed (pushes can be heard)."""
        return self._link.alive

    def start(self) -> None:
        """Start the background thread (connects and reconnects on its own)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the connection."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self._close()
        self._link.close()
        self._wake_r.close()
        self._wake_w.close()

    def fresh(self) -> bool:
        """Apply whatever pushes have already arrived; False when that cannot be done now
        (the thread kept the connection past ``_WAIT``, or there is none): then do not
        serve the cache."""
        now = time.perf_counter()
        if now - self._polled < _FRESH_FOR:
            return True
        # Held: the thread is mid-drain (or sending a heartbeat), maybe waiting for the GIL
        # this thread holds. A blocking acquire releases it, so the thread finishes within
        # microseconds; a bounded wait, then Redis answers instead.
        if not self._io.acquire(blocking=False) and not self._io.acquire(timeout=_WAIT):
            return False
        try:
            poll, sock = self._poll, self._sock
            if poll is None or sock is None:
                return False
            for _ in range(8):  # one read takes 64 KiB: a revoke_user may push more
                if not poll(0):
                    self._polled = now
                    return True
                self._drain(sock)
            return False  # still more: let Redis answer this one
        except (OSError, ConnectionError):
            self._close()
            return False
        finally:
            self._io.release()

    def _connect(self) -> socket.socket:
        sock = _wire.open_socket(self._spec, max(1.0, 4 * self._heartbeat))
        try:
            self._handshake(sock)
        except BaseException:
            sock.close()
            raise
        return sock

    def _handshake(self, sock: socket.socket) -> None:
        prefix = f"{self._namespace}:"
        sock.sendall(
            _wire.hello(self._spec)
            + command("CLIENT", "SETNAME", "sessionstore-invalidations")
            + command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", prefix)
            + command("SUBSCRIBE", revoked_channel(self._namespace))
        )
        reader = hiredis.Reader()
        _wire.read_replies(sock, reader, 4)
        sock.settimeout(None)
        self._reader = reader

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            try:
                sock = self._connect()
            except (OSError, ConnectionError) as err:
                logger.debug("sessionstore invalidation connection failed: %s", err)
                select.select([self._wake_r], [], [], backoff)
                backoff = min(1.0, backoff * 2)
                continue
            backoff = 0.05
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            with self._io:
                self._sock, self._poll = sock, poller.poll
                self._link.up(time.monotonic())
            self._up()
            try:
                self._serve(sock)
            except (OSError, ConnectionError) as err:
                logger.debug("sessionstore invalidation connection lost: %s", err)
            finally:
                self._close()

    def _serve(self, sock: socket.socket) -> None:
        next_ping = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_ping:
                with self._io:
                    sock.sendall(command("PING"))
                next_ping = now + self._heartbeat
            if now - self._link.last_heard > max(3.0, 8 * self._heartbeat):
                raise ConnectionError("no heartbeat reply")
            readable, _, _ = select.select([sock, self._wake_r], [], [], self._heartbeat)
            if sock in readable:
                with self._io:
                    if self._sock is not sock:
                        return
                    # Non-blocking: a hot path may have drained what select() saw, and a
                    # recv blocked while holding the lock would stall every hot path.
                    self._drain(sock)

    def _drain(self, sock: socket.socket) -> None:
        """Apply what has arrived on ``sock``, without waiting for more."""
        if not select.select([sock], [], [], 0)[0]:
            return
        try:
            data = sock.recv(1 << 16)
        except (BlockingIOError, ssl.SSLWantReadError):
            return
        if not data:
            raise ConnectionError("invalidation connection closed")
        self._reader.feed(data)
        self._link.heard(time.monotonic())
        while (message := self._reader.gets()) is not False:
            self._handle(message)

    def _handle(self, message: Any) -> None:
        if not isinstance(message, list) or not message:
            return  # PONG and other plain replies only prove the link is alive
        kind = message[0]
        if kind == b"invalidate":
            keys = message[1]
            self.cache.invalidate(None if keys is None else [k.decode() for k in keys])
        elif kind == b"message" and len(message) == 3:
            words = message[2].decode().split()
            if len(words) >= 2:
                self._revoked(words[0], words[1:])

    def _close(self) -> None:
        sock, self._sock, self._poll = self._sock, None, None
        self._link.down()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
