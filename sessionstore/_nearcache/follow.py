"""Which servers the near cache must hear from, and one listener on each.

A near cache is trusted only while every server that can change its keys is heard from:

- one server: that server;
- Redis Cluster: every primary (tracking is per node). The primaries are read with
  ``CLUSTER SLOTS`` from a background thread, and re-read every ``refresh`` seconds and
  at once while a link is down, so a failover or a new primary is followed;
- Sentinel: the primary the sentinels name (``SENTINEL GET-MASTER-ADDR-BY-NAME``), re-read
  the same way, and at once when a sentinel announces a switchover (``+switch-master``).

Revocations the listeners hear are handed to the subscribers (``subscribe``), then to the
``watchers`` (``watch.Watchers``): code waiting on given sessions (open WebSockets) hears of
their end, and of the cache's link going down and up, without asking Redis.

When the set changes, listeners for new servers are added before old ones are dropped,
and every addition or removal flushes the cache (``NearCache.link``/``Link.close``), so
no entry survives a change of who can write. A server that is down leaves its link down,
and a down link means nothing is served from the cache. One ``Followers`` per
(topology, namespace) and process, shared by every store object on it; a topology holds
the database number, ACL user and TLS settings, so stores that could see different data
never share one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import select
import socket
import threading
from collections.abc import Callable

import hiredis

from sessionstore._nearcache.cache import NearCache
from sessionstore._nearcache.listener import Listener
from sessionstore._nearcache.topology import Address, Topology, cluster_primaries
from sessionstore._nearcache.watch import Watchers
from sessionstore._nearcache.worker import Worker
from sessionstore._redis import resp
from sessionstore._redis.resp import command

__all__ = ["Followers", "acquire", "release"]

logger = logging.getLogger("sessionstore")


class Followers:
    """One ``Listener`` per server of a topology, all feeding one ``NearCache``."""

    def __init__(
        self,
        topology: Topology,
        namespace: str,
        cache: NearCache,
        *,
        heartbeat: float = 0.25,
        refresh: float = 1.0,
    ) -> None:
        self.cache = cache
        self.users = 0
        self.watchers = Watchers()
        cache.observe(self.watchers.health)
        self._topology = topology
        self._namespace = namespace
        self._heartbeat = heartbeat
        self._refresh = refresh
        self._listeners: dict[Address, Listener] = {}  # the watcher thread's own
        self._followed: tuple[Address, ...] = ()
        self._fresh: tuple[Callable[[], bool], ...] = ()
        self._on_revoked: list[Callable[[str, list[str]], None]] = []
        self._on_up: list[Callable[[], None]] = []
        self._on_switch: list[Callable[[Address], None]] = []
        # A sentinel's +switch-master channel; stop() wakes the watcher's wait on it.
        self._announcer: socket.socket | None = None
        self._worker = Worker(self._watch, "sessionstore-topology")

    def subscribe(
        self,
        revoked: Callable[[str, list[str]], None],
        up: Callable[[], None],
        primary: Callable[[Address], None] | None = None,
    ) -> None:
        """Call ``revoked(encoded user id, session ids)`` on every published revocation,
        ``up()`` whenever a connection is (re)established (a server answers), and
        ``primary(address)`` with the primary the sentinels name, on every look (about
        once a second), before it is followed."""
        self._on_revoked.append(revoked)
        self._on_up.append(up)
        if primary is not None:
            self._on_switch.append(primary)

    def unsubscribe(
        self,
        revoked: Callable[[str, list[str]], None],
        up: Callable[[], None],
        primary: Callable[[Address], None] | None = None,
    ) -> None:
        """Stop calling ``revoked``, ``up`` and ``primary``."""
        for callbacks, callback in (
            (self._on_revoked, revoked),
            (self._on_up, up),
            (self._on_switch, primary),
        ):
            with contextlib.suppress(ValueError):
                callbacks.remove(callback)  # type: ignore[arg-type]

    def fresh(self) -> bool:
        """Apply the pushes that have already arrived, on every connection; False when
        one of them cannot tell now (``Listener.fresh``): then do not serve the cache."""
        # A plain loop: all() over a generator costs a frame per call on the hot path.
        for fresh in self._fresh:  # noqa: SIM110
            if not fresh():
                return False
        return True

    @property
    def servers(self) -> list[Address]:
        """The servers followed now."""
        return list(self._followed)

    def start(self) -> None:
        """Follow the servers (one at once; a cluster or sentinel from a watcher thread)."""
        if self._topology.kind == "single":
            node = self._topology.node
            self._follow({(node.host, node.port)})
        else:
            self._worker.start()

    def stop(self) -> None:
        """Stop watching and close every connection."""
        self._worker.stop(timeout=5)
        self._follow(set())
        self._quiet()
        self._worker.close()

    def abandon(self) -> None:
        """In a forked child: let go of the parent's listeners without touching them.

        Every listener closes its copies of the parent's sockets, the near cache is
        emptied and never trusted again, nobody is called back any more. The parent's
        threads did not survive the fork; its connections go on serving the parent.
        """
        listeners, self._listeners = self._listeners, {}
        self._fresh, self._followed = (), ()
        self._on_revoked, self._on_up, self._on_switch = [], [], []
        self._worker.abandon()
        self.watchers.abandon()
        for listener in listeners.values():
            listener.abandon()
        # This process' copy of the sentinels' announcements: closing it leaves the
        # parent's open.
        self._quiet()
        self.cache.abandon()

    def _revoked(self, encoded_user_id: str, session_ids: list[str]) -> None:
        # The stores first (their revocation memory), then the watchers: one that starts
        # watching a session after this has passed finds it in a store's memory.
        for callback in list(self._on_revoked):
            callback(encoded_user_id, session_ids)
        self.watchers.revoked(encoded_user_id, session_ids)

    def _up(self) -> None:
        for callback in list(self._on_up):
            callback()

    def _follow(self, servers: set[Address]) -> None:
        """Listen to exactly ``servers``: new listeners first, then the old ones go."""
        current = self._listeners
        for address in sorted(servers - current.keys()):
            if self._worker.stopping.is_set() and servers:
                return
            host, port = address
            spec = dataclasses.replace(self._topology.node, host=host, port=port)
            listener = Listener(
                spec,
                self._namespace,
                self.cache,
                revoked=self._revoked,
                up=self._up,
                heartbeat=self._heartbeat,
                # A cluster has one database and no SWAPDB; a watch key would live on
                # one primary only.
                watch=self._topology.kind != "cluster",
            )
            listener.start()
            current[address] = listener
        for address in sorted(current.keys() - servers):
            current.pop(address).stop()
        self._fresh = tuple(listener.fresh for listener in current.values())
        self._followed = tuple(sorted(current))

    def _watch(self) -> None:
        warned = False
        while not self._worker.stopping.is_set():
            try:
                self._look()
            except Exception as err:  # a seed that is no Redis (a TLS port, a proxy), a bug
                # The thread must not die: an unfollowed topology leaves the cache off for
                # good. Said once at warning level, then retried like an unreachable seed.
                (logger.debug if warned else logger.warning)(
                    "sessionstore: following the servers failed: %r", err
                )
                warned = True
                self._quiet()
                self._worker.stopping.wait(min(self._refresh, 0.5))

    def _look(self) -> None:
        """Resolve the servers once, follow them, and wait for the next look."""
        servers = self._resolve()
        if servers and not self._worker.stopping.is_set():
            if self._topology.kind == "sentinel":
                # After a switchover the old primary may stay a writable primary for
                # seconds (until the sentinels reconfigure it): the stores let go of
                # their connections to it before the new one is followed (a flush).
                for callback in list(self._on_switch):
                    callback(next(iter(servers)))
            self._follow(servers)
        settled = servers and all(lis.alive for lis in self._listeners.values())
        self._pause(self._refresh if settled else min(self._refresh, 0.1))

    def _pause(self, seconds: float) -> None:
        """Wait until the next look; for Sentinel, a switchover announcement ends it."""
        announcer = self._announcer if self._topology.kind == "sentinel" else None
        if announcer is None and self._topology.kind == "sentinel":
            announcer = self._announcer = self._listen_for_switches()
        if announcer is None:
            self._worker.stopping.wait(seconds)
            return
        readable = select.select([announcer, self._worker.wake_r], [], [], seconds)[0]
        if announcer in readable:
            # What was announced does not matter: the next look asks GET-MASTER-ADDR.
            try:
                if not announcer.recv(1 << 16):
                    self._quiet()
            except OSError:
                self._quiet()

    def _listen_for_switches(self) -> socket.socket | None:
        """A connection subscribed to +switch-master on the first sentinel that answers."""
        for sentinel in self._topology.seeds:
            try:
                sock = resp.open_socket(sentinel, 1.0)
            except (OSError, ConnectionError):
                continue
            try:
                sock.sendall(resp.hello(sentinel) + command("SUBSCRIBE", "+switch-master"))
                resp.read_replies(sock, hiredis.Reader(), 2)
                sock.setblocking(False)
                return sock
            except (OSError, ConnectionError) as err:
                logger.debug("sessionstore: +switch-master on %s: %s", sentinel.host, err)
                sock.close()
        return None

    def _quiet(self) -> None:
        sock, self._announcer = self._announcer, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _resolve(self) -> set[Address] | None:
        """The servers to follow now, from the first seed or known node that answers."""
        topology = self._topology
        if topology.kind == "sentinel":
            for sentinel in topology.seeds:
                try:
                    reply = resp.request(
                        sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", topology.service
                    )
                except (OSError, ConnectionError) as err:
                    logger.debug(
                        "sessionstore: sentinel %s:%s: %s", sentinel.host, sentinel.port, err
                    )
                    continue
                if isinstance(reply, list) and len(reply) == 2:
                    host, port = reply  # the primary's address (none: an empty reply)
                    return {(host.decode(), int(port))}
            return None
        # Nodes we hear from first: one that was silent (stalled) may not know yet that
        # it was replaced, and would name itself.
        listeners = sorted(self._listeners.items(), key=lambda item: not item[1].alive)
        known = [
            dataclasses.replace(topology.node, host=host, port=port)
            for (host, port), _ in listeners
        ]
        for node in known + list(topology.seeds):
            try:
                return cluster_primaries(resp.request(node, "CLUSTER", "SLOTS"), node)
            except (OSError, ConnectionError, IndexError, TypeError, ValueError) as err:
                logger.debug("sessionstore: CLUSTER SLOTS on %s:%s: %s", node.host, node.port, err)
        return None


_registry: dict[tuple[Topology, str], Followers] = {}
_registry_lock = threading.Lock()


def _find(topology: Topology, namespace: str) -> Followers | None:
    """Followers already on this topology: for a cluster, any sharing a node with it
    (redis-py rewrites a client's startup nodes once it has mapped the cluster)."""
    found = _registry.get((topology, namespace))
    if found is not None or topology.kind != "cluster":
        return found
    seeds = {(seed.host, seed.port) for seed in topology.seeds}
    for (other, space), followers in _registry.items():
        if other.kind == "cluster" and space == namespace and other.node == topology.node:
            known = {(seed.host, seed.port) for seed in other.seeds}
            if seeds & (known | set(followers.servers)):
                return followers
    return None


def acquire(topology: Topology, namespace: str, size: int, max_age: float) -> Followers:
    """The process-wide followers (and near cache) of a topology and namespace."""
    with _registry_lock:
        followers = _find(topology, namespace)
        if followers is None:
            cache = NearCache(size, max_age, trust_window=1.0)
            followers = Followers(topology, namespace, cache)
            followers.start()
            _registry[(topology, namespace)] = followers
        followers.users += 1
        return followers


def release(followers: Followers) -> None:
    """Give back followers; the last user stops them."""
    with _registry_lock:
        followers.users -= 1
        if followers.users > 0:
            return
        for key, value in list(_registry.items()):
            if value is followers:
                del _registry[key]
    followers.stop()


def _after_fork_in_child() -> None:
    """The parent's followers are not this process': abandon them, start afresh.

    Stores made in the child then acquire followers of their own; stores made before the
    fork let go of theirs and acquire anew on first use (``StoreBase``).
    """
    global _registry_lock
    _registry_lock = threading.Lock()  # a parent thread may have held it at the fork
    inherited = list(_registry.values())
    _registry.clear()
    for followers in inherited:
        followers.abandon()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
