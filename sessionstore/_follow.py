"""Which servers the near cache must hear from, and one listener on each.

A near cache is trusted only while every server that can change its keys is heard from:

- one server: that server;
- Redis Cluster: every primary (tracking is per node). The primaries are read with
  ``CLUSTER SLOTS`` from a background thread, and re-read every ``refresh`` seconds and
  at once while a link is down, so a failover or a new primary is followed;
- Sentinel: the primary the sentinels name (``SENTINEL GET-MASTER-ADDR-BY-NAME``), re-read
  the same way.

When the set changes, listeners for new servers are added before old ones are dropped,
and every addition or removal flushes the cache (``NearCache.link``/``Link.close``), so
no entry survives a change of who can write. A server that is down leaves its link down,
and a down link means nothing is served from the cache. One ``Followers`` per
(topology, namespace) and process, shared by every store object on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sessionstore import _wire
from sessionstore._cache import NearCache
from sessionstore._listener import Listener
from sessionstore._wire import ConnSpec

__all__ = ["Followers", "Topology", "acquire", "release", "topology_of"]

logger = logging.getLogger("sessionstore")

Address = tuple[str, int]


@dataclass(frozen=True)
class Topology:
    """How to find the servers to follow: ``node`` carries the data nodes' credentials
    (and, for one server, its address); ``seeds`` are cluster nodes or the sentinels."""

    kind: Literal["single", "cluster", "sentinel"]
    node: ConnSpec
    seeds: tuple[ConnSpec, ...] = ()
    service: str = ""


def _spec(kwargs: dict[str, Any], tls: bool) -> ConnSpec:
    return ConnSpec(
        host=str(kwargs.get("host", "127.0.0.1")),
        port=int(kwargs.get("port", 6379)),
        path=kwargs.get("path"),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        tls=tls,
        tls_verify=kwargs.get("ssl_cert_reqs", "required") not in ("none", ssl.CERT_NONE),
        ca_certs=kwargs.get("ssl_ca_certs"),
    )


def _is_tls(kwargs: dict[str, Any], pool: Any = None) -> bool:
    classes = (kwargs.get("connection_class"), getattr(pool, "connection_class", None))
    return bool(kwargs.get("ssl")) or any("SSL" in getattr(c, "__name__", "") for c in classes)


def topology_of(client: Any) -> Topology | None:
    """What a redis-py client talks to; None where it cannot be told (then no near cache)."""
    nodes = getattr(client, "nodes_manager", None)
    if nodes is not None:  # RedisCluster, sync or asyncio
        kwargs = dict(getattr(nodes, "connection_kwargs", None) or client.connection_kwargs)
        # The address of ``node`` means nothing for a cluster: the seeds name the nodes.
        node = dataclasses.replace(_spec(kwargs, _is_tls(kwargs)), host="", port=0)
        seeds = tuple(
            dataclasses.replace(node, host=str(seed.host), port=int(seed.port))
            for seed in nodes.startup_nodes.values()
        )
        return Topology("cluster", node, seeds) if seeds else None
    pool = getattr(client, "connection_pool", None)
    if pool is None or getattr(pool, "connection_kwargs", None) is None:
        return None
    kwargs = pool.connection_kwargs
    manager = getattr(pool, "sentinel_manager", None)
    if manager is not None:  # a Sentinel-managed primary
        if not getattr(pool, "is_master", True):
            return None
        sentinels = tuple(
            _spec(s.connection_pool.connection_kwargs, _is_tls({}, s.connection_pool))
            for s in manager.sentinels
        )
        node = _spec(kwargs, _is_tls(kwargs, pool))
        return Topology("sentinel", node, sentinels, str(pool.service_name))
    return Topology("single", _spec(kwargs, _is_tls(kwargs, pool)))


def cluster_primaries(reply: Any, asked: ConnSpec) -> set[Address]:
    """The primaries in a ``CLUSTER SLOTS`` reply (an empty host means the node asked)."""
    found: set[Address] = set()
    for entry in reply:
        host, port = entry[2][0], entry[2][1]
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        if name == "?":
            continue  # the node does not know its own address yet
        found.add((name or asked.host, int(port)))
    return found


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
        self._topology = topology
        self._namespace = namespace
        self._heartbeat = heartbeat
        self._refresh = refresh
        self._listeners: dict[Address, Listener] = {}  # the watcher thread's own
        self._followed: tuple[Address, ...] = ()
        self._fresh: tuple[Callable[[], bool], ...] = ()
        self._on_revoked: list[Callable[[str, list[str]], None]] = []
        self._on_up: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="sessionstore-topology")
        self._thread.daemon = True

    def subscribe(self, revoked: Callable[[str, list[str]], None], up: Callable[[], None]) -> None:
        """Call ``revoked(encoded user id, session ids)`` on every published revocation,
        and ``up()`` whenever a connection is (re)established (a server answers)."""
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
            self._thread.start()

    def stop(self) -> None:
        """Stop watching and close every connection."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._follow(set())

    def _revoked(self, encoded_user_id: str, session_ids: list[str]) -> None:
        for callback in list(self._on_revoked):
            callback(encoded_user_id, session_ids)

    def _up(self) -> None:
        for callback in list(self._on_up):
            callback()

    def _follow(self, servers: set[Address]) -> None:
        """Listen to exactly ``servers``: new listeners first, then the old ones go."""
        current = self._listeners
        for address in sorted(servers - current.keys()):
            if self._stop.is_set() and servers:
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
            )
            listener.start()
            current[address] = listener
        for address in sorted(current.keys() - servers):
            current.pop(address).stop()
        self._fresh = tuple(listener.fresh for listener in current.values())
        self._followed = tuple(sorted(current))

    def _watch(self) -> None:
        while not self._stop.is_set():
            servers = self._resolve()
            if servers and not self._stop.is_set():
                self._follow(servers)
            settled = servers and all(lis.alive for lis in self._listeners.values())
            self._stop.wait(self._refresh if settled else min(self._refresh, 0.1))

    def _resolve(self) -> set[Address] | None:
        """The servers to follow now, from the first seed or known node that answers."""
        topology = self._topology
        if topology.kind == "sentinel":
            for sentinel in topology.seeds:
                try:
                    reply = _wire.request(
                        sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", topology.service
                    )
                except (OSError, ConnectionError) as err:
                    logger.debug(
                        "sessionstore: sentinel %s:%s: %s", sentinel.host, sentinel.port, err
                    )
                    continue
                if reply:
                    return {(reply[0].decode(), int(reply[1]))}
            return None
        known = [
            dataclasses.replace(topology.node, host=host, port=port)
            for host, port in self._listeners
        ]
        for node in known + list(topology.seeds):
            try:
                return cluster_primaries(_wire.request(node, "CLUSTER", "SLOTS"), node)
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
