"""One invalidation connection behind the near cache: Redis pushes, we listen.

A RESP3 connection to one server: ``CLIENT TRACKING ON BCAST PREFIX <ns>:`` makes Redis
push the name of every key of the namespace that changes, from any client; the same
connection subscribes to the channel the revocation scripts publish on, so revocations
also reach the degraded-mode memory. A thread sends a heartbeat every ``heartbeat``
seconds; it starts with ``HELLO 3``, whose reply names the server's role (unlike ``ROLE``
it is allowed to a user confined to ``@connection``): a server that answers as a replica
(a demoted primary: a cluster failover, a Sentinel switchover), or is one when we connect,
counts as a lost connection; so does one silent past the cache's trust window (a stall).
A hot path asks ``fresh()`` before it serves the cache: it applies what has reached the
socket itself (one ``poll`` system call, skipped within 10 µs of the last: see
``_FRESH_FOR``), so a push that has arrived is not outrun by a cache hit. When the thread
holds the connection, it may be mid-drain and waiting for the GIL the caller holds (for up
to ``sys.getswitchinterval()``): the caller waits on the lock, which releases the GIL, for
at most ``_WAIT`` (1 ms; an event loop may block that long), then sends the validation to
Redis instead of serving the cache. The connection is one ``Link`` of the cache: any socket
error drops the whole cache until a new connection is subscribed. Which servers get a
listener (one, every cluster primary, the sentinels' primary) is ``follow``'s business.

Some operations change a database without a push for any key: ``SWAPDB`` sends none,
and a database swapped in may hold the very keys (same names, same values) of a backup.
So, outside a cluster (where there is one database and no ``SWAPDB``), the connection
selects the store's database and ``WATCH``es a key that lives there (``db_watch_key``);
each heartbeat is ``MULTI EXISTS EXEC WATCH``. ``SWAPDB``, ``FLUSHDB``/``FLUSHALL``, a
reload and any write to that key dirty the watch, whatever the database swapped in
holds, and then ``EXEC`` answers null. Only an ``EXEC`` that answers "the key exists,
untouched" confirms the link, as of the moment that heartbeat was sent; anything else
drops the cache and trusts nothing until the next confirmation. A cached entry is thus
never served later than the trust window (1 s) after such an operation, and usually
one heartbeat after it. A push naming the watch key flushes the whole cache, so a
restore run as ``MULTI, DEL <watch key>, SWAPDB 0 1, EXEC`` is seen as fast as a
revocation (BCAST pushes leave after the transaction, and the key exists in the live db).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import hiredis

from sessionstore._nearcache.cache import NearCache
from sessionstore._nearcache.worker import Worker
from sessionstore._redis import resp
from sessionstore._redis.resp import ConnSpec, command
from sessionstore.keys import MARKER_TTL_MS, db_watch_key, revoked_channel, tracking_prefix

__all__ = ["Listener"]

logger = logging.getLogger("sessionstore")

# How long a hot path waits for the listener thread to finish with the connection.
_WAIT = 0.001
# How long a poll that found the socket drained vouches for it. Less than any round trip
# of the revoking client (two wake-ups and a reply parsed in Python: tens of µs on
# loopback): the pushes land before the server reads ``revoke()``'s last command (see
# ``_engine.call.announced``), so a validation that starts after ``revoke()`` returned, anywhere,
# polls after they landed. A validation loop faster than this polls every few calls
# instead of every call: the poll costs about a microsecond, a cached validation 1.5.
_FRESH_FOR = 0.00001


_HEARTBEAT = command("HELLO", "3")


def _is_primary(reply: Any) -> bool:
    """False for a HELLO reply naming a replica (pushes and other replies pass)."""
    return not (isinstance(reply, dict) and reply.get(b"role") in (b"replica", b"slave"))


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
        watch: bool = True,
    ) -> None:
        self.cache = cache
        self._link = cache.link((spec.host, spec.port))
        self._spec = spec
        self._namespace = namespace
        self._heartbeat = heartbeat
        self._io = threading.Lock()
        self._sock: socket.socket | None = None
        self._reader = hiredis.Reader()
        # Whether heartbeats check the database's watch key (not in a cluster), whether
        # the next one must create it again first, and what each pending reply is: the
        # send time of a heartbeat's confirming reply, None for replies that confirm nothing.
        self._watch = watch
        self._watch_key = db_watch_key(namespace)
        self._repair = False
        self._pending: deque[float | None] = deque()
        self._armed_at = 0.0  # when the last handshake was sent: the link is up as of then
        self._poll: Callable[[int], list[tuple[int, int]]] | None = None
        self._polled = 0.0  # time.perf_counter() of the last poll that left nothing unread
        # revoked(encoded user id, session ids) on every published revocation; up() each
        # time the connection is (re)established.
        self._revoked = revoked
        self._up = up
        # stop() wakes the thread's select() at once instead of at its timeout.
        self._worker = Worker(self._run, "sessionstore-invalidations")

    @property
    def alive(self) -> bool:
        """Whether the connection is subscribed (pushes can be heard)."""
        return self._link.alive

    def start(self) -> None:
        """Start the background thread (connects and reconnects on its own)."""
        self._worker.start()

    def stop(self) -> None:
        """Stop the thread and close the connection."""
        self._worker.stop(timeout=2)
        with self._io:  # a hot path may be inside fresh() on this very socket
            self._close()
        self._link.close()
        self._worker.close()

    def abandon(self) -> None:
        """In a forked child: close this process' copies of the parent's sockets.

        Nothing is sent and no lock taken: the connection, the wake-up pair and the thread
        are the parent's (the thread did not survive the fork). Closing a copy of a
        descriptor leaves the parent's open; ``stop`` stays safe to call afterwards.
        """
        self._worker.abandon()
        self._io = threading.Lock()
        sock, self._sock, self._poll = self._sock, None, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

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
        except Exception:  # any failure: the pushes it held are lost
            # A push that could not be applied (garbled, a key that is not UTF-8, a socket
            # closed under us) must not leave the link up: drop everything, ask Redis.
            self._close()
            return False
        finally:
            self._io.release()

    def _connect(self) -> socket.socket:
        sock = resp.open_socket(self._spec, max(1.0, 4 * self._heartbeat))
        try:
            self._handshake(sock)
        except BaseException:
            sock.close()
            raise
        return sock

    def _handshake(self, sock: socket.socket) -> None:
        prefix = tracking_prefix(self._namespace)
        spec = self._spec
        # The watch is armed before tracking starts: the link is up only once both are.
        choose = command("SELECT", str(spec.db)) if spec.db else b""
        watch = self._watch_commands() + command("WATCH", self._watch_key) if self._watch else b""
        self._armed_at = time.monotonic()
        sock.sendall(
            resp.hello(spec)
            + command("CLIENT", "SETNAME", "sessionstore-invalidations")
            + choose
            + watch
            + command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", prefix)
            + command("SUBSCRIBE", revoked_channel(self._namespace))
        )
        reader = hiredis.Reader()
        # SET NX answers null when the key exists: count replies, not just non-null ones.
        # A full server (noeviction) refuses even a SET NX that would write nothing: the
        # subscription still matters (revocations reach degraded mode's memory), and the
        # heartbeat's EXISTS keeps the cache untrusted while the key is missing.
        count = 4 + bool(choose) + 2 * self._watch
        tolerate = (2 + bool(choose),) if self._watch else ()
        greeting = resp.read_replies(sock, reader, count, tolerate)[0]
        if not _is_primary(greeting):
            raise ConnectionError("the server is not a primary")
        sock.settimeout(None)
        self._reader = reader
        self._pending.clear()
        self._repair = False

    def _watch_commands(self) -> bytes:
        """Create the database's watch key unless it exists (never rewrite it: that would
        dirty every process's watch)."""
        ttl = str(MARKER_TTL_MS)
        token = secrets.token_urlsafe(12)
        return command("SET", self._watch_key, token, "NX", "PX", ttl)

    def _heartbeat_now(self, sock: socket.socket, now: float) -> None:
        """Send one heartbeat; its reply confirms the link as of ``now`` (see the module)."""
        if not self._watch:
            sock.sendall(_HEARTBEAT)
            self._pending.append(now)
            return
        key = self._watch_key
        repair = self._watch_commands() if self._repair else b""
        sock.sendall(
            repair
            + _HEARTBEAT
            + command("MULTI")
            + command("EXISTS", key)
            + command("EXEC")
            + command("WATCH", key)
        )
        self._pending.extend([None] * (bool(repair) + 3) + [now, None])
        self._repair = False

    def _replied(self, reply: Any) -> None:
        """A reply (not a push) to a heartbeat: confirm the link, or drop the cache."""
        if not _is_primary(reply):
            # A demoted primary: its keys are now changed by a server we do not hear, so
            # this is a lost link (everything cached is dropped).
            raise ConnectionError("the server was demoted to a replica")
        if not self._pending:
            return  # nothing asked: confirms nothing
        sent = self._pending.popleft()
        if sent is None:
            return
        if isinstance(reply, dict) or (isinstance(reply, list) and reply == [1]):
            if self._link.alive:
                self._link.heard(sent)
            else:
                self._link.up(sent)
            return
        # Null: the watch was dirtied (SWAPDB, FLUSHDB, FLUSHALL, a reload, a write to
        # the key); [0]: the key is gone; an error: nothing is known. The data may have
        # changed without a push, so forget it all until a heartbeat confirms again.
        if isinstance(reply, hiredis.ReplyError):
            logger.warning("sessionstore: near cache database check refused: %s", reply)
        self._repair = True
        self._link.down()

    def _run(self) -> None:
        # What a server that does not speak RESP (an HTTP or TLS port, a proxy) makes the
        # handshake, the reader or our decoding raise: a misconfiguration, so it is logged
        # once at warning level (then at debug level) and retried like a refused connection;
        # the thread never dies of it.
        protocol = (hiredis.HiredisError, ValueError, TypeError, IndexError, AttributeError)
        backoff = 0.05
        warned = False
        while not self._worker.stopping.is_set():
            try:
                sock = self._connect()
            except (ssl.SSLError, *protocol) as err:
                level = logging.DEBUG if warned else logging.WARNING
                logger.log(level, "sessionstore invalidation connection refused: %r", err)
                warned = True
                select.select([self._worker.wake_r], [], [], backoff)
                backoff = min(1.0, backoff * 2)
                continue
            except (OSError, ConnectionError) as err:
                logger.debug("sessionstore invalidation connection failed: %s", err)
                select.select([self._worker.wake_r], [], [], backoff)
                backoff = min(1.0, backoff * 2)
                continue
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            with self._io:
                self._sock, self._poll = sock, poller.poll
                self._link.up(self._armed_at)
            self._up()
            try:
                self._serve(sock)
            except protocol as err:
                level = logging.DEBUG if warned else logging.WARNING
                logger.log(level, "sessionstore invalidation connection dropped: %r", err)
                warned = True
                select.select([self._worker.wake_r], [], [], backoff)
                backoff = min(1.0, backoff * 2)
                continue  # (finally closes) the backoff keeps growing: no tight reconnect loop
            except (OSError, ConnectionError) as err:
                logger.debug("sessionstore invalidation connection lost: %s", err)
            finally:
                # Under the lock: a hot path draining this socket must not confirm (up) the
                # link after it went down.
                with self._io:
                    self._close()
            backoff, warned = 0.05, False

    def _serve(self, sock: socket.socket) -> None:
        next_ping = 0.0
        while not self._worker.stopping.is_set():
            now = time.monotonic()
            if now >= next_ping:
                with self._io:
                    self._heartbeat_now(sock, now)
                next_ping = now + self._heartbeat
            if now - self._link.last_heard > max(3.0, 8 * self._heartbeat):
                raise ConnectionError("no heartbeat reply")
            readable, _, _ = select.select([sock, self._worker.wake_r], [], [], self._heartbeat)
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
        if time.monotonic() - self._link.last_heard > self.cache.trust_window:
            # Silent past the trust window (a stalled server, a partition): it may have lost
            # its role meanwhile and not know it yet, so what it sends is not enough now.
            raise ConnectionError("the server was silent past the trust window")
        self._reader.feed(data)
        while (message := self._reader.gets()) is not False:
            self._handle(message)

    def _handle(self, message: Any) -> None:
        if not isinstance(message, list) or not message or not isinstance(message[0], bytes):
            self._replied(message)  # pushes are lists that start with their kind
            return
        kind = message[0]
        if kind == b"invalidate":
            # A foreign key that is not UTF-8 must not poison the push (it names no entry).
            keys = message[1]
            names = None if keys is None else [k.decode(errors="surrogateescape") for k in keys]
            # A write to the watch key (in any database: pushes name keys, not databases)
            # may come with a swap in the same transaction: forget everything at once.
            whole = names is None or self._watch_key in names
            self.cache.invalidate(None if whole else names)
        elif kind == b"message" and len(message) == 3:
            words = message[2].decode(errors="replace").split()
            if len(words) >= 2:
                self._revoked(words[0], words[1:])

    def _close(self) -> None:
        sock, self._sock, self._poll = self._sock, None, None
        self._link.down()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
