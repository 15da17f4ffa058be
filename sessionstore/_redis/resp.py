"""Plain RESP over a socket, for the connections redis-py cannot give us.

The invalidation listener needs a RESP3 connection it owns (pushes, no pool), and the
topology watcher asks single questions (``CLUSTER SLOTS``, ``SENTINEL
GET-MASTER-ADDR-BY-NAME``) from a background thread, where an asyncio client cannot be
used. Both open their sockets here, from a ``ConnSpec``.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

import hiredis

__all__ = ["ConnSpec", "command", "open_socket", "request"]


@dataclass(frozen=True)
class ConnSpec:
    """Where and how to open a connection to one server (or one sentinel), and which of
    its databases (``db``): part of what selects the data, so part of every cache key."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_verify: bool = True
    ca_certs: str | None = None
    db: int = 0


def command(*args: str) -> bytes:
    """One command in RESP."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        raw = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


def open_socket(spec: ConnSpec, timeout: float) -> socket.socket:
    """A connected (TLS-wrapped where asked) socket with ``timeout`` set."""
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


def hello(spec: ConnSpec) -> bytes:
    """``HELLO 3`` with the spec's credentials."""
    args = ["HELLO", "3"]
    if spec.password is not None:
        args += ["AUTH", spec.username or "default", spec.password]
    return command(*args)


def read_replies(
    sock: socket.socket, reader: hiredis.Reader, count: int, tolerate: Container[int] = ()
) -> list[Any]:
    """Read ``count`` replies; an error reply raises ``ConnectionError``, except at the
    positions in ``tolerate`` (it is returned). What follows them stays in ``reader``."""
    replies: list[Any] = []
    while len(replies) < count:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed before the reply")
        reader.feed(data)
        while len(replies) < count and (reply := reader.gets()) is not False:
            if isinstance(reply, hiredis.ReplyError) and len(replies) not in tolerate:
                raise ConnectionError(f"refused: {reply}")
            replies.append(reply)
    return replies


def request(spec: ConnSpec, *args: str, timeout: float = 1.0) -> Any:
    """Send one command on a fresh RESP3 connection and return its reply."""
    with open_socket(spec, timeout) as sock:
        sock.sendall(hello(spec) + command(*args))
        return read_replies(sock, hiredis.Reader(), 2)[1]
