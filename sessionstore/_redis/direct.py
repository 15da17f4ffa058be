"""Direct I/O on a plain client's own connections: hand-packed RESP, replies read by hiredis.

redis-py's client layer costs more per command than a loopback round trip (connection pool
bookkeeping, the retry wrapper, observability hooks, response callbacks, a poll of the
socket on every checkout). For a client that is redis-py's plain single-server one (its
own pool and connection classes, RESP2, no driver retries, no client-side cache), the
shells skip that layer: the sync store keeps a few connections checked out of the client's
pool (one per thread validating at once) and talks on them with ``send_packed_command`` /
``read_response``; the async batcher holds one connection, writes each batch on it as one
buffer without awaiting, and one reader task parses the replies with one hiredis reader
(auto-pipelining). Idle connections the server closed are replaced before use, as the pool
does at checkout. Error replies become the exceptions redis-py's own parser makes
(``NoScriptError``, ``BusyLoadingError``, ...), socket failures its ``ConnectionError`` and
``TimeoutError``, so the shells' error mapping (``driver``) is unchanged. Anything else (a
cluster, Sentinel, RESP3, a client with retries) stays on redis-py's path.
"""

from __future__ import annotations

import asyncio
import select
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

import hiredis
import redis
import redis.asyncio
import redis.asyncio.connection as aconn
import redis.connection as sconn
from redis import exceptions as rx

from sessionstore._engine.call import Call
from sessionstore._engine.forks import AfterFork
from sessionstore._redis import redispy, runner

__all__ = ["AsyncDirect", "SyncDirect", "async_direct", "pack", "pack_again", "sync_direct"]

# Not BlockingConnectionPool: whoever bounds a pool's connections would find some held here.
_SYNC_POOLS = (sconn.ConnectionPool,)
_SYNC_CONNECTIONS = (sconn.Connection, sconn.SSLConnection, sconn.UnixDomainSocketConnection)
_ASYNC_POOLS = (aconn.ConnectionPool,)
_ASYNC_CONNECTIONS = (aconn.Connection, aconn.SSLConnection, aconn.UnixDomainSocketConnection)
_READ_SIZE = 1 << 16
Settle = Callable[[Call[Any], "asyncio.Future[Any]", Any], None]
"""settle(call, future, reply or error): resolve one caller."""


def _plain_pool(
    client: Any, client_type: type, pools: tuple[type, ...], conns: tuple[type, ...]
) -> Any:
    """The client's pool when the direct path may use it, else None."""
    # Exact types only: a subclass may have overridden execute_command for a reason.
    if type(client) is not client_type or not redispy.internals():
        return None
    if getattr(client, "single_connection_client", False) or getattr(client, "connection", None):
        return None  # a single-connection client serialises commands itself
    pool: Any = getattr(client, "connection_pool", None)
    if type(pool) not in pools or pool.connection_class not in conns:
        return None
    if getattr(pool, "cache", None) is not None:
        return None  # client-side caching answers some reads from memory
    kwargs = pool.connection_kwargs
    if kwargs.get("protocol") not in (None, 2, "2"):
        return None  # RESP3 interleaves pushes with replies
    # The user's retry settings apply: redis-py's path honours them. (A connection retries
    # when given a Retry that does, or retry_on_timeout / retry_on_error without one.)
    retry = kwargs.get("retry")
    if retry is not None:
        retries = redispy.retries(retry)
    else:
        retries = bool(kwargs.get("retry_on_timeout") or kwargs.get("retry_on_error"))
    return None if retries else pool


def sync_direct(client: Any) -> SyncDirect | None:
    """A ``SyncDirect`` on ``client``'s pool, or None when the client does not qualify."""
    pool = _plain_pool(client, redis.Redis, _SYNC_POOLS, _SYNC_CONNECTIONS)
    return None if pool is None else SyncDirect(pool)


def async_direct(client: Any, settle: Settle) -> AsyncDirect | None:
    """An ``AsyncDirect`` on ``client``'s pool, or None when the client does not qualify."""
    pool = _plain_pool(client, redis.asyncio.Redis, _ASYNC_POOLS, _ASYNC_CONNECTIONS)
    return None if pool is None else AsyncDirect(pool, settle)


# hiredis' C packer: what redis-py itself packs with when hiredis is installed.
_pack: Callable[[tuple[Any, ...]], bytes] = hiredis.pack_command


def pack(call: Call[Any]) -> bytes:
    """The RESP of ``call``'s first command (``runner.command``): its read, or EVALSHA."""
    command = call.command
    if command is None:
        return _pack(runner.command(call))
    keys, args = call.keys, call.args
    frame = _FRAMES.get(id(args))
    if frame is None or frame[0] is not args or frame[1] != command or frame[2] != len(keys):
        frame = _frame(command, len(keys), args)
    if len(keys) == 1:
        return frame[3] + _bulk(keys[0]) + frame[4]
    return b"".join([frame[3], *[_bulk(key) for key in keys], frame[4]])


# A read differs from one request to the next only in its keys (the HMGET of a validation
# names the same fields every time): the RESP before and after the keys is packed once per
# arguments tuple, found by identity (they are constants), bounded by clearing.
_Frame = tuple[tuple[Any, ...], str, int, bytes, bytes]
_FRAMES: dict[int, _Frame] = {}


def _frame(command: str, nkeys: int, args: tuple[Any, ...]) -> _Frame:
    if len(_FRAMES) >= 16:
        _FRAMES.clear()
    head = b"*%d\r\n%s" % (1 + nkeys + len(args), _bulk(command))
    frame = _FRAMES[id(args)] = (args, command, nkeys, head, b"".join(map(_bulk, args)))
    return frame


def _bulk(value: str | bytes | int) -> bytes:
    """One RESP bulk string, as ``pack_command`` writes it (text as UTF-8, ints in decimal)."""
    if type(value) is str:
        data = value.encode()
    elif type(value) is bytes:
        data = value
    elif type(value) is int:
        data = b"%d" % value
    else:  # a float, a subclass: hiredis' own rules (and its TypeError)
        return _pack((value,))[4:]  # without the "*1\r\n" header
    return b"$%d\r\n%s\r\n" % (len(data), data)


def pack_again(call: Call[Any], reply: Any) -> bytes | None:
    """The RESP to send again when ``reply`` is NOSCRIPT for ``call`` (``runner.reload``:
    EVAL, which loads the script again), else None."""
    line = runner.reload(call, reply)
    return None if line is None else _pack(line)


class SyncDirect:
    """Runs one call at a time per thread on connections checked out of the client's pool.

    Idle connections wait in a LIFO list (``pop``/``append`` are atomic), so threads never
    share one; a thread finding none checks another out. ``close`` hands them back.
    """

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._idle: list[Any] = []
        self._held: list[Any] = []
        _LIVE.add(self)

    def execute(self, call: Call[Any]) -> Any:
        """The reply to ``call`` (an error reply raises, as redis-py does)."""
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._checkout()
        else:
            _refresh(conn)
        try:
            conn.send_packed_command((pack(call),))
            try:
                reply = conn.read_response()
            except rx.NoScriptError as err:
                again = pack_again(call, err)
                if again is None:
                    raise
                conn.send_packed_command((again,))
                reply = conn.read_response()
        finally:
            # A connection that failed was disconnected by redis-py: it reconnects on use.
            self._idle.append(conn)
        return reply

    def _checkout(self) -> Any:
        conn = self._pool.get_connection()  # connected and checked, like any checkout
        self._held.append(conn)
        return conn

    def close(self) -> None:
        """Give every connection back to the pool."""
        held, self._held, self._idle = self._held, [], []
        for conn in held:
            self._pool.release(conn)

    def _forget(self) -> None:
        # In a forked child: the parent's sockets are not ours to use or to close.
        self._held, self._idle = [], []


def _refresh(conn: Any) -> None:
    """Disconnect an idle connection that has something to read (the server closed it, or
    it is out of step), as the pool does at checkout; it reconnects when next used."""
    sock = redispy.sock_of(conn)
    if sock is None:
        return  # not connected: the next send connects
    try:
        readable = select.select([sock], [], [], 0)[0]
    except (OSError, ValueError):
        readable = [sock]
    if readable:
        conn.disconnect()


_LIVE: AfterFork[SyncDirect] = AfterFork(lambda direct: direct._forget())


class AsyncDirect:
    """Auto-pipelining on one connection held out of the client's pool.

    A batch is written the moment it is flushed (a plain write on the connection's
    transport, no await), so Redis works on it while the event loop goes on gating the
    next requests; one reader task reads the replies in order and hands each, with its
    call and future, to ``settle``. A failure of the connection (closed, timed out, out
    of step) settles every pending call with redis-py's exception, drops the connection
    and lets ``open`` take another. NOSCRIPT (after a restart or SCRIPT FLUSH) is answered
    by sending that call again as EVAL.
    """

    def __init__(self, pool: Any, settle: Settle) -> None:
        self._pool = pool
        self._settle = settle
        self._conn: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._ok = False  # the held connection is up and in step: writes may go out
        # Calls awaiting a reply, in order, and their callers' futures, side by side.
        self._calls: deque[Call[Any]] = deque()
        self._futures: deque[asyncio.Future[Any]] = deque()
        self._reloaded: set[asyncio.Future[Any]] = set()  # callers re-sent as EVAL once
        self._reading: asyncio.Task[None] | None = None

    def ready(self) -> bool:
        """Whether ``write`` may be called now (in this event loop, on a live connection)."""
        return self._ok and self._loop is asyncio.get_running_loop() and _alive(self._conn)

    def write(self, calls: list[Call[Any]], futures: list[asyncio.Future[Any]]) -> None:
        """Send ``calls`` now (``ready()`` must hold); each reply settles its future."""
        redispy.streams_of(self._conn)[1].write(b"".join([pack(call) for call in calls]))
        self._calls.extend(calls)
        self._futures.extend(futures)
        if self._reading is None:
            self._reading = asyncio.get_running_loop().create_task(self._read(self._conn))

    async def open(self) -> None:
        """Make ``ready()`` hold: check a connection out of the pool (raises driver errors)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # First use, or the store moved to another event loop: what was held belongs
            # to the old one.
            self._ok, self._loop, self._lock = False, loop, asyncio.Lock()
            self._forget()
            self._reading = None
            old, self._conn = self._conn, None
            if old is not None:
                await self._give_back(old)
        assert self._lock is not None
        async with self._lock:
            if self._ok and _alive(self._conn):
                return
            self._ok = False
            if self._reading is not None:
                # Replies are pending on a connection that died: the reader settles them
                # and drops it.
                await asyncio.gather(self._reading, return_exceptions=True)
            conn = self._conn
            if conn is None:
                self._conn = conn = await self._pool.get_connection()
            elif conn.is_connected:
                await conn.disconnect()  # closed by the server while idle
            if not conn.is_connected:
                await conn.connect()
            self._ok = True

    def forked(self) -> None:
        """In a forked child: let go of the parent's connections without touching them.

        The held connection and every connection in the pool (redis-py's asyncio pool
        does not check for a fork) are the parent's: the child must not write on them,
        and must not close them either (their transports are registered with an event
        loop whose selector the parent shares). They are kept, unused, for the life of
        the child; the next ``open`` checks a new connection out of the emptied pool.
        """
        inherited: list[object] = [self._conn, self._reading]
        pool = self._pool
        inherited += redispy.pool_connections(pool)
        pool.reset()
        _INHERITED.extend(item for item in inherited if item is not None)
        self._conn, self._ok, self._loop, self._lock, self._reading = None, False, None, None, None
        self._calls, self._futures, self._reloaded = deque(), deque(), set()

    @property
    def reading(self) -> asyncio.Task[None] | None:
        """The task reading replies in the running loop, while some are pending."""
        task = self._reading
        return task if task is not None and self._loop is asyncio.get_running_loop() else None

    async def close(self) -> None:
        """Give the connection back to the pool (call once nothing is pending)."""
        conn, self._conn, self._ok = self._conn, None, False
        if conn is not None:
            await self._give_back(conn)

    async def _give_back(self, conn: Any) -> None:
        """Release ``conn`` to the pool; first close it if its event loop has gone."""
        if redispy.loop_closed(conn):
            redispy.abandon(conn)
        await self._pool.release(conn)

    async def _read(self, conn: Any) -> None:
        calls, futures, reloaded = self._calls, self._futures, self._reloaded
        parser = hiredis.Reader(protocolError=rx.InvalidResponse, replyError=redispy.reply_error())
        reader, writer = redispy.streams_of(conn)
        timeout = conn.socket_timeout
        try:
            while calls:
                data = await _chunk(reader, timeout)
                if not data:
                    raise rx.ConnectionError("Connection closed by server.")
                parser.feed(data)
                while calls and (reply := parser.gets()) is not False:
                    call, future = calls.popleft(), futures.popleft()
                    # An error reply may be NOSCRIPT: sent again once, as EVAL.
                    if isinstance(reply, Exception) and future not in reloaded:
                        again = pack_again(call, reply)
                        if again is not None:
                            writer.write(again)
                            calls.append(call)
                            futures.append(future)
                            reloaded.add(future)
                            continue
                    if reloaded:
                        reloaded.discard(future)
                    self._settle(call, future, reply)
            if parser.has_data():
                raise rx.InvalidResponse("the server sent more replies than commands")
        except asyncio.TimeoutError as err:  # before OSError: a subclass of it since 3.11
            await self._drop(conn, _caused(rx.TimeoutError("Timeout reading from Redis"), err))
        except OSError as err:
            failure = rx.ConnectionError(f"Error while reading from Redis: {err}")
            await self._drop(conn, _caused(failure, err))
        except rx.RedisError as err:  # closed by the server, or a reply out of step
            await self._drop(conn, err)
        except BaseException:
            # Cancelled (the loop is shutting down): nobody will read these replies.
            self._ok, self._conn, self._reading = False, None, None
            for future in futures:
                future.cancel()
            self._forget()
            raise
        finally:
            if self._reading is asyncio.current_task():
                self._reading = None

    def _forget(self) -> None:
        """Forget every call in flight (their replies will never be read)."""
        self._calls.clear()
        self._futures.clear()
        self._reloaded.clear()

    async def _drop(self, conn: Any, err: Exception) -> None:
        """Settle everything in flight with ``err``; the connection goes back disconnected."""
        # All state changes first (no await in between): new batches wait for open().
        self._ok, self._conn, self._reading = False, None, None
        failed = list(zip(self._calls, self._futures, strict=True))
        self._forget()
        for call, future in failed:
            self._settle(call, future, err)
        try:
            await conn.disconnect(nowait=True)
        finally:
            await self._pool.release(conn)


# What a forked child inherited from its parent's event loop: never used, never closed.
_INHERITED: list[object] = []


def _alive(conn: Any) -> bool:
    """Whether the loop has not yet seen ``conn`` closed (EOF, an error, a closing writer)."""
    reader, writer = redispy.streams_of(conn)
    if reader is None or writer is None:
        return False
    return not (reader.at_eof() or reader.exception() is not None or writer.is_closing())


def _caused(err: Exception, cause: BaseException) -> Exception:
    err.__cause__ = cause
    return err


if sys.version_info >= (3, 11):

    async def _chunk(reader: asyncio.StreamReader, timeout: float | None) -> bytes:
        async with asyncio.timeout(timeout):
            return await reader.read(_READ_SIZE)

else:  # pragma: no cover - Python 3.10

    async def _chunk(reader: asyncio.StreamReader, timeout: float | None) -> bytes:
        return await asyncio.wait_for(reader.read(_READ_SIZE), timeout)
