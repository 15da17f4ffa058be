"""One invalidation connection behind the near cache: Redis pushes, we listen.

A RESP3 connection to one server: ``CLIENT TRACKING ON BCAST PREFIX <ns>:`` makes Redis
push the name of every key of the namespace that changes, from any client; the same
connection subscribes to the channel the revocation scripts publish on, so revocations
also reach the degraded-mode memory. A thread sends a heartbeat PING every ``heartbeat``
seconds and otherwise waits in ``recv_into`` on the socket. The connection is one ``Link``
of the cache: any socket error drops the whole cache until a new connection is subscribed.

A hot path serves from the cache only while the listener is ``quiet``: parked in its
``recv_into`` with nothing in its buffer. The kernel copies an arriving push into that
buffer before the thread needs the GIL back, so a validator that holds the GIL sees the
push at once (the buffer's first byte is no longer NUL) and goes to Redis instead of
serving the cache; the Redis round trip releases the GIL and the thread applies the push.
So a push that has reached the buffer is never outrun by a cache hit, however long the
GIL is held (``sys.getswitchinterval()``), and the check costs no system call. Which servers get a
listener (one, every cluster primary, the sentinels' primary) is ``_follow``'s business.
"""

from __future__ import annotations

import contextlib
import functools
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
        # The hot path's view of the thread (see ``quiet``): written by the thread only.
        self._buf = bytearray(1 << 16)
        self._reading = False
        self._until = 0.0  # time.monotonic() before which the parked recv cannot time out
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
        sock = self._sock
        if sock is not None:  # wakes the thread's receive at once
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self._close()
        self._link.close()
        self._wake_r.close()
        self._wake_w.close()

    def quiet(self, now: float) -> bool:
        """Whether every push that has reached this process is applied (no system call).

        True only while the thread is parked in ``recv_into`` (set just before the call,
        with no point in between where Python switches threads), its buffer still
        untouched (a push lands there before the thread needs the GIL), and ``now`` (from
        ``time.monotonic()``) is before the receive's timeout (past it, the thread may be
        back waiting for the GIL while new data queues in the socket).
        """
        return self._reading and not self._buf[0] and now < self._until

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
            with self._io:
                self._sock = sock
                self._link.up(time.monotonic())
            self._up()
            try:
                self._serve(sock)
            except (OSError, ConnectionError) as err:
                logger.debug("sessionstore invalidation connection lost: %s", err)
            finally:
                self._close()

    def _serve(self, sock: socket.socket) -> None:
        buf, reader, link = self._buf, self._reader, self._link
        receive = _receiver(sock, len(buf))
        self._apply(reader)  # replies the handshake read past
        next_ping = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_ping:
                with self._io:
                    sock.sendall(command("PING"))
                next_ping = now + self._heartbeat
            if now - link.last_heard > max(3.0, 8 * self._heartbeat):
                raise ConnectionError("no heartbeat reply")
            wait = max(0.001, next_ping - now)
            sock.settimeout(wait)
            # The receive times out no earlier than ``now + wait``; less a margin for
            # the clock read between here and the call.
            self._until = now + wait - 0.0005
            buf[0] = 0
            # Nothing between these two lines where CPython could switch threads (it does
            # so at the entry of Python functions, after calls and at loops): the hot
            # path reads ``_reading`` as "parked in the receive".
            self._reading = True
            try:
                size = receive(buf)
            except TimeoutError:
                continue
            finally:
                self._reading = False
            if not size:
                raise ConnectionError("invalidation connection closed")
            reader.feed(bytes(memoryview(buf)[:size]))
            link.heard(time.monotonic())
            self._apply(reader)

    def _apply(self, reader: Any) -> None:
        while (message := reader.gets()) is not False:
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
        sock, self._sock = self._sock, None
        self._link.down()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


def _receiver(sock: socket.socket, size: int) -> Callable[[bytearray], int]:
    """The C-level receive of ``sock``: no Python frame (a thread switch point) between
    the caller and the system call (``SSLSocket.recv_into`` is Python code)."""
    tls = getattr(sock, "_sslobj", None) if isinstance(sock, ssl.SSLSocket) else None
    if tls is None:
        return sock.recv_into
    return functools.partial(tls.read, size)
