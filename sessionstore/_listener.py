"""The invalidation connection behind the near cache: Redis pushes, we listen.

One RESP3 connection per (server, namespace) and process, shared by every store object on
it: ``CLIENT TRACKING ON BCAST PREFIX <ns>:`` makes Redis push the name of every key of the
namespace that changes, from any client; the same connection subscribes to the channel the
revocation scripts publish on, so revocations also reach the degraded-mode memory. A thread
sends a heartbeat PING every ``heartbeat`` seconds; a hot path drains the socket before it
trusts the cache (``pump``), so a push that has arrived is never ignored. Any socket
error drops the whole cache until a new connection is subscribed.
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
from dataclasses import dataclass
from typing import Any

import hiredis

from sessionstore._cache import NearCache

__all__ = ["ConnSpec", "Listener", "acquire", "release", "revoked_channel", "spec_from_client"]

logger = logging.getLogger("sessionstore")


def revoked_channel(namespace: str) -> str:
    """The channel the revocation scripts publish ``<enc uid> <sid>...`` on."""
    return f"{namespace}:{{!revoked}}"


@dataclass(frozen=True)
class ConnSpec:
    """Where and how to open the invalidation connection."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_verify: bool = True
    ca_certs: str | None = None


def spec_from_client(client: Any) -> ConnSpec | None:
    """The server a redis-py client talks to; None where the near cache can't follow
    (a cluster client: tracking is per node, so the store validates without it)."""
    pool = getattr(client, "connection_pool", None)
    if pool is None or not hasattr(pool, "connection_kwargs"):
        return None
    kw = pool.connection_kwargs
    tls = "SSL" in getattr(pool.connection_class, "__name__", "")
    return ConnSpec(
        host=str(kw.get("host", "127.0.0.1")),
        port=int(kw.get("port", 6379)),
        path=kw.get("path"),
        username=kw.get("username"),
        password=kw.get("password"),
        tls=tls,
        tls_verify=kw.get("ssl_cert_reqs", "required") not in ("none", ssl.CERT_NONE),
        ca_certs=kw.get("ssl_ca_certs"),
    )


def _command(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        raw = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


class Listener:
    """Owns the invalidation connection and keeps ``cache`` in step with the server."""

    def __init__(
        self, spec: ConnSpec, namespace: str, cache: NearCache, heartbeat: float = 0.25
    ) -> None:
        self.cache = cache
        self._spec = spec
        self._namespace = namespace
        self._heartbeat = heartbeat
        self._io = threading.Lock()
        self._sock: socket.socket | None = None
        self._reader = hiredis.Reader()
        self._stop = threading.Event()
        # Written to by stop(), so the thread's select() wakes at once instead of timing out.
        self._wake_r, self._wake_w = socket.socketpair()
        self._last_pump = 0.0
        self._on_revoked: list[Callable[[str, list[str]], None]] = []
        self._on_up: list[Callable[[], None]] = []
        self._thread = threading.Thread(target=self._run, name="sessionstore-invalidations")
        self._thread.daemon = True
        self.users = 0

    def subscribe(self, revoked: Callable[[str, list[str]], None], up: Callable[[], None]) -> None:
        """Call ``revoked(encoded user id, session ids)`` on every published revocation,
        and ``up()`` whenever the connection is (re)established (the server answers)."""
        self._on_revoked.append(revoked)
        self._on_up.append(up)

    def unsubscribe(
        self, revoked: Callable[[str, list[str]], None], up: Callable[[], None]
    ) -> None:
        """Stop calling ``revoked`` and ``up``."""
        with contextlib.suppress(ValueError):
            self._on_revoked.remove(revoked)
        with contextlib.suppress(ValueError):
            self._on_up.remove(up)

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
        self._wake_r.close()
        self._wake_w.close()

    def pump(self) -> None:
        """Apply whatever pushes have already arrived (non-blocking, rate-limited to 20 kHz)."""
        now = time.perf_counter()
        if now - self._last_pump < 0.00005 or not self._io.acquire(blocking=False):
            return
        try:
            self._last_pump = now
            sock = self._sock
            if sock is not None:
                self._drain(sock, block=False)
        except OSError:
            self._close()
        finally:
            self._io.release()

    def _connect(self) -> socket.socket:
        sock = self._open()
        try:
            self._handshake(sock)
        except BaseException:
            sock.close()
            raise
        return sock

    def _open(self) -> socket.socket:
        spec = self._spec
        timeout = max(1.0, 4 * self._heartbeat)
        if spec.path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(spec.path)
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((spec.host, spec.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if spec.tls:
            context = ssl.create_default_context(cafile=spec.ca_certs)
            if not spec.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            try:
                sock = context.wrap_socket(sock, server_hostname=spec.host)
            except BaseException:
                sock.close()
                raise
        return sock

    def _handshake(self, sock: socket.socket) -> None:
        spec = self._spec
        hello = ["HELLO", "3"]
        if spec.password is not None:
            hello += ["AUTH", spec.username or "default", spec.password]
        prefix = f"{self._namespace}:"
        sock.sendall(
            _command(*hello)
            + _command("CLIENT", "SETNAME", "sessionstore-invalidations")
            + _command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", prefix)
            + _command("SUBSCRIBE", revoked_channel(self._namespace))
        )
        reader = hiredis.Reader()
        replies: list[Any] = []
        while len(replies) < 4:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed during handshake")
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                if isinstance(reply, hiredis.ReplyError):
                    raise ConnectionError(f"invalidation handshake refused: {reply}")
                replies.append(reply)
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
                self.cache.up(time.monotonic())
            for callback in list(self._on_up):
                callback()
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
                    sock.sendall(_command("PING"))
                next_ping = now + self._heartbeat
            if now - self._heard() > max(3.0, 8 * self._heartbeat):
                raise ConnectionError("no heartbeat reply")
            readable, _, _ = select.select([sock, self._wake_r], [], [], self._heartbeat)
            if sock in readable:
                with self._io:
                    if self._sock is not sock:
                        return
                    # Non-blocking: a pump may have drained what select() saw, and a recv
                    # blocked while holding the lock would stop every pump until more data.
                    self._drain(sock, block=False)

    def _heard(self) -> float:
        return self.cache._heard

    def _drain(self, sock: socket.socket, *, block: bool) -> None:
        if not block and not select.select([sock], [], [], 0)[0]:
            return
        try:
            data = sock.recv(1 << 16)
        except (BlockingIOError, ssl.SSLWantReadError):
            return
        if not data:
            raise ConnectionError("invalidation connection closed")
        self._reader.feed(data)
        self.cache.heard(time.monotonic())
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
                for callback in list(self._on_revoked):
                    callback(words[0], words[1:])

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        self.cache.down()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


_registry: dict[tuple[ConnSpec, str], Listener] = {}
_registry_lock = threading.Lock()


def acquire(spec: ConnSpec, namespace: str, size: int, max_age: float) -> Listener:
    """The process-wide listener (and near cache) for a server and namespace."""
    with _registry_lock:
        listener = _registry.get((spec, namespace))
        if listener is None:
            listener = Listener(spec, namespace, NearCache(size, max_age, trust_window=1.0))
            listener.start()
            _registry[(spec, namespace)] = listener
        listener.users += 1
        return listener


def release(listener: Listener) -> None:
    """Give back a listener; the last user stops it."""
    with _registry_lock:
        listener.users -= 1
        if listener.users > 0:
            return
        for key, value in list(_registry.items()):
            if value is listener:
                del _registry[key]
    listener.stop()
