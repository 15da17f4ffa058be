"""Free loopback ports for local servers, safe when several test processes pick at once.

``bind(("127.0.0.1", 0))`` returns a port that was free a moment ago, from the range the
OS also gives every outgoing connection: two pytest-xdist workers (or a worker and a client
socket) can get the same one before the server binds it, and a server stopped for a restart
can find its port taken. ``free_port`` instead hands out ports below the OS's ephemeral range,
from a share of its own for each pytest-xdist worker, never the same port twice in a process,
and only one that binds now. Re-exported by ``sessionstore.testing.server`` and the package.
"""

from __future__ import annotations

import os
import random
import re
import socket
import threading
from pathlib import Path

__all__ = ["free_port", "port_share"]

_HOST = "127.0.0.1"
# Below Linux's default ephemeral range (32768-60999), above the well-known services.
_SPAN = (16384, 32768)
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_MIN_SHARE = 64

_lock = threading.Lock()
_handed_out: set[int] = set()
_next: dict[range, int] = {}  # share -> the index to try next


def port_share() -> range:
    """This process's ports: one share per pytest-xdist worker, one for all other processes.

    A worker's subprocesses (a nested pytest, a demo) inherit its share; they start at a
    random point of it, and a port that does not bind is passed over.
    """
    low, high = _SPAN
    ephemeral = _ephemeral_low()
    if ephemeral is not None:
        high = min(high, ephemeral)
    # The first quarter for processes outside pytest-xdist (a serial run, scripts), the rest
    # split between the workers.
    rest = low + (high - low) // 4
    worker = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if worker is None or not count.isdigit():
        start, stop = low, rest
    else:
        slot, size = int(worker.group(1)), (high - rest) // max(int(count), 1)
        start, stop = rest + slot * size, rest + (slot + 1) * size
    if stop - start < _MIN_SHARE or stop > high:
        return range(0)
    return range(start, stop)


def _ephemeral_low() -> int | None:
    try:
        return int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _binds(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
        return True


def _os_pick() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that binds now and this process has not handed out.

    From this process's share (``port_share``); the OS's pick when the share is empty (an
    ephemeral range that starts low) or used up.
    """
    share = port_share()
    with _lock:
        if not share:
            return _os_pick()
        # A random start (from the OS's entropy, not the seeded global ``random``): two
        # processes in one share rarely walk the same ports.
        index = _next.get(share)
        if index is None:
            index = random.SystemRandom().randrange(len(share))
        for _ in range(len(share)):
            port = share[index]
            index = (index + 1) % len(share)
            if port not in _handed_out and _binds(port):
                _handed_out.add(port)
                _next[share] = index
                return port
        return _os_pick()
