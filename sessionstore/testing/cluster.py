"""A local Redis Cluster for tests, spawned from one server binary (``LocalSentinel``, its
Sentinel counterpart, is in ``sentinel.py`` and shares the process helpers here; both are
built from ``server.LocalServer``).

``LocalCluster`` builds primaries with replicas itself (CLUSTER ADDSLOTSRANGE, MEET,
REPLICATE: no redis-cli needed) and drives failovers and slot migrations. Every process is
a ``LocalServer``: loopback only, a temp dir each, stopped by the pid it was started with.
Exported by ``sessionstore.testing``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.retry import Retry

from sessionstore.testing.process import Started
from sessionstore.testing.server import LocalServer, LocalServerError, free_port

__all__ = ["LocalCluster"]

_HOST = "127.0.0.1"
_SLOTS = 16384
_READY_TIMEOUT = 30.0
_ADMIN_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.ResponseError)
# A replica's first sync starts at once (the default waits 5 s for more replicas).
_FAST_SYNC = ("--repl-diskless-sync-delay", "0")


def _admin(server: LocalServer, timeout: float = 5.0) -> redis.Redis:
    """A plain client on one process, without retries (a fault shows as one error)."""
    return redis.Redis(
        host=_HOST,
        port=server.port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def _ask(server: LocalServer, *command: Any, timeout: float = 5.0) -> Any:
    client: Any = _admin(server, timeout)
    try:
        return client.execute_command(*command)
    finally:
        client.close()


def _until(what: str, check: Callable[[], bool], timeout: float = _READY_TIMEOUT) -> None:
    """Poll ``check`` (errors count as "not yet") until true; raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except _ADMIN_ERRORS:
            pass
        if time.monotonic() > deadline:
            raise LocalServerError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _info(server: LocalServer, section: str) -> dict[str, Any]:
    client = _admin(server, 1.0)
    try:
        return client.info(section)
    finally:
        client.close()


def _add_info(into: dict[str, Any], info: dict[str, Any]) -> None:
    for key, value in info.items():
        if isinstance(value, dict):
            _add_info(into.setdefault(key, {}), value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key in into:
            into[key] += value
        else:
            into.setdefault(key, value)


def _summed_info(command: str, replies: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """INFO of several nodes as one: numbers summed (counters, memory), the rest the first's."""
    merged: dict[str, Any] = {}
    for info in replies.values():
        _add_info(merged, info)
    return merged


class LocalCluster(Started):
    """A Redis Cluster on loopback: ``primaries`` primaries with ``replicas`` replicas each.

    ``url`` is the ``redis+cluster://`` form ``SessionStore.from_url`` takes; ``client()``
    an admin ``RedisCluster``. ``failover`` and ``migrate_slot`` drive topology changes.
    ``tls=(CA file, certificate, key)`` adds a TLS port to every node (``tls_url``) and runs
    the cluster bus and replication over TLS (needs a binary built with TLS).
    """

    def __init__(
        self,
        binary: str,
        *,
        primaries: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 1000,
        name: str = "cluster",
        extra_args: Sequence[str] = (),
        tls: tuple[str, str, str] | None = None,
    ) -> None:
        if primaries < 1 or replicas < 0:
            raise ValueError("a cluster needs >= 1 primary and >= 0 replicas per primary")
        self.binary = binary
        self.name = name
        self.primary_count = primaries
        self.replica_count = replicas
        self.node_timeout_ms = node_timeout_ms
        self.extra_args = tuple(extra_args)
        self.tls = tls
        self.nodes: list[LocalServer] = []
        self._bus: dict[int, int] = {}
        self._ids: dict[int, str] = {}
        self._tls_ports: dict[int, int] = {}  # plain port -> TLS port

    def __repr__(self) -> str:
        return f"<LocalCluster {self.name} ports={[n.port for n in self.nodes]}>"

    @property
    def url(self) -> str:
        """``redis+cluster://`` with every node as a startup node."""
        return "redis+cluster://" + ",".join(f"{_HOST}:{n.port}" for n in self.nodes) + "/0"

    @property
    def tls_url(self) -> str:
        """``rediss+cluster://`` on the nodes' TLS ports (a cluster started with ``tls``)."""
        ports = [self._tls_ports[n.port] for n in self.nodes]
        return "rediss+cluster://" + ",".join(f"{_HOST}:{p}" for p in ports) + "/0"

    def start(self) -> LocalCluster:
        """Spawn the nodes, assign slots, pair replicas; return once every node agrees."""
        if self.nodes:
            return self
        try:
            for n in range(self.primary_count * (1 + self.replica_count)):
                self._spawn(n)
            self._create()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, n: int) -> LocalServer:
        bus = free_port()
        tls_port, tls_args = self._tls_args()
        server = LocalServer(
            self.binary,
            name=f"{self.name}-{n}",
            extra_args=[
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--cluster-port", str(bus),
                # Tests pause primaries: their replicas may always take over.
                "--cluster-replica-validity-factor", "0",
                *_FAST_SYNC,
                *tls_args,
                *self.extra_args,
            ],
        )  # fmt: skip
        self.nodes.append(server)
        server.start()
        self._bus[server.port] = bus
        if tls_port:
            self._tls_ports[server.port] = tls_port
        self._ids[server.port] = _text(_ask(server, "CLUSTER", "MYID"))
        return server

    def add_node(self) -> LocalServer:
        """Start one more node and join it as a primary without slots (until one moves to it)."""
        node = self._spawn(len(self.nodes))
        _ask(self.nodes[0], "CLUSTER", "MEET", _HOST, node.port, self._bus[node.port])
        total = len(self.nodes)
        _until("the new node to be known", lambda: all(self._known(s) == total for s in self.nodes))
        self.wait_ready()  # the new node has the slot map (else it answers CLUSTERDOWN)
        return node

    def tls_port(self, server: LocalServer) -> int:
        """The TLS port of a node of a cluster started with ``tls``."""
        return self._tls_ports[server.port]

    def _tls_args(self) -> tuple[int, list[str]]:
        if self.tls is None:
            return 0, []
        ca, cert, key = self.tls
        port = free_port()
        # The plain port stays, for the admin helpers here; the bus and replication use TLS.
        return port, [
            "--tls-port", str(port),
            "--tls-cert-file", cert,
            "--tls-key-file", key,
            "--tls-ca-cert-file", ca,
            "--tls-auth-clients", "no",
            "--tls-replication", "yes",
            "--tls-cluster", "yes",
        ]  # fmt: skip

    def _create(self) -> None:
        primaries = self.nodes[: self.primary_count]
        share = _SLOTS // len(primaries)
        for n, server in enumerate(primaries):
            last = _SLOTS - 1 if n == len(primaries) - 1 else (n + 1) * share - 1
            _ask(server, "CLUSTER", "ADDSLOTSRANGE", n * share, last)
        # Distinct epochs up front, as redis-cli does: no collision to resolve later.
        for n, server in enumerate(self.nodes):
            _ask(server, "CLUSTER", "SET-CONFIG-EPOCH", n + 1)
        first = self.nodes[0]
        for server in self.nodes[1:]:
            _ask(first, "CLUSTER", "MEET", _HOST, server.port, self._bus[server.port])
        total = len(self.nodes)
        _until(
            "every node to know every other",
            lambda: all(self._known(s) == total for s in self.nodes),
        )
        for n, server in enumerate(self.nodes[self.primary_count :]):
            primary = primaries[n % len(primaries)]
            _ask(server, "CLUSTER", "REPLICATE", self._ids[primary.port])
        self.wait_ready()

    def _known(self, server: LocalServer) -> int:
        lines = _text(_ask(server, "CLUSTER", "NODES", timeout=1.0)).splitlines()
        return sum(1 for line in lines if "handshake" not in line and "noaddr" not in line)

    def running(self) -> list[LocalServer]:
        """The nodes whose process is alive (a paused one counts as alive)."""
        return [n for n in self.nodes if n.pid is not None]

    def role(self, server: LocalServer) -> str:
        """``"master"`` or ``"slave"``, as the node's INFO says."""
        return str(_info(server, "replication")["role"])

    def primaries(self) -> list[LocalServer]:
        """The nodes that serve slots now."""
        owners = {port for _, _, port in self.slot_map(self.running()[0])}
        return [n for n in self.nodes if n.port in owners]

    def replicas_of(self, primary: LocalServer) -> list[LocalServer]:
        """The nodes replicating ``primary`` now."""
        wanted = self._ids[primary.port]
        found = []
        for server in self.running():
            lines = _text(_ask(server, "CLUSTER", "NODES", timeout=1.0)).splitlines()
            mine = next(line for line in lines if "myself" in line)
            if mine.split()[3] == wanted:
                found.append(server)
        return found

    def slot_map(self, server: LocalServer) -> list[tuple[int, int, int]]:
        """``server``'s view: (first slot, last slot, primary port), sorted."""
        ranges = _ask(server, "CLUSTER", "SLOTS", timeout=1.0)
        # With tls-cluster, nodes report their TLS ports: map them back to the plain ones.
        plain = {tls: port for port, tls in self._tls_ports.items()}
        return sorted((int(r[0]), int(r[1]), plain.get(int(r[2][1]), int(r[2][1]))) for r in ranges)

    def owner(self, key: str | bytes) -> LocalServer:
        """The primary that serves ``key``'s slot now."""
        return self.slot_owner(key_slot(key.encode() if isinstance(key, str) else key))

    def slot_owner(self, slot: int) -> LocalServer:
        """The primary that serves ``slot`` now."""
        for first, last, port in self.slot_map(self.running()[0]):
            if first <= slot <= last:
                return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"slot {slot} is not served")

    def wait_ready(self, nodes: Iterable[LocalServer] | None = None) -> None:
        """Until ``nodes`` (default: all) are ok, agree on the slot map, replicas are in sync."""
        group = list(self.nodes if nodes is None else nodes)

        def ready() -> bool:
            maps = [self.slot_map(s) for s in group]
            if any(m != maps[0] for m in maps) or not maps[0]:
                return False
            for server in group:
                if "cluster_state:ok" not in _text(_ask(server, "CLUSTER", "INFO", timeout=1.0)):
                    return False
                info = _info(server, "replication")
                if info["role"] == "slave" and info.get("master_link_status") != "up":
                    return False
            return True

        _until("the cluster to be ready", ready)

    def failover(
        self, replica: LocalServer, *, option: str = "", wait_for: Iterable[LocalServer] = ()
    ) -> None:
        """``CLUSTER FAILOVER [FORCE|TAKEOVER]`` on ``replica``; return once it serves.

        ``wait_for`` (default: every node) must agree on the new slot map first.
        """
        _ask(replica, "CLUSTER", "FAILOVER", *([option] if option else []))
        _until(f"{replica.name} to become a primary", lambda: self.role(replica) == "master")
        self.wait_ready(list(wait_for) or None)

    def migrate_slot(self, slot: int, target: LocalServer, *, finish: bool = True) -> int:
        """Move ``slot``'s keys to ``target``, then the slot itself; the keys moved.

        The keys go in one MIGRATE (``valkey-cli --cluster reshard`` with a
        ``--cluster-pipeline`` larger than the slot's key count does the same), so a
        user's keys never live on two nodes at once; see the README on resharding.
        ``finish=False`` leaves the slot MIGRATING/IMPORTING (clients get ASK) until
        ``finish_slot``.
        """
        source = self.slot_owner(slot)
        if source is target:
            return 0
        src: Any = _admin(source)
        dst: Any = _admin(target)
        moved = 0
        try:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", self._ids[source.port])
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", self._ids[target.port])
            # Once MIGRATING, scripts cannot add keys to the slot here (TRYAGAIN): bounded.
            for _ in range(100):
                keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1_000_000)
                if not keys:
                    break
                src.execute_command("MIGRATE", _HOST, target.port, "", 0, 5000, "KEYS", *keys)
                moved += len(keys)
        finally:
            src.close()
            dst.close()
        if finish:
            self.finish_slot(slot, target, source)
        return moved

    def finish_slot(self, slot: int, target: LocalServer, source: LocalServer) -> None:
        """``CLUSTER SETSLOT <slot> NODE <target>`` on the target, the source, then the rest."""
        others = [p for p in self.primaries() if p not in (source, target)]
        for server in [target, source, *others]:
            _ask(server, "CLUSTER", "SETSLOT", slot, "NODE", self._ids[target.port])

    def client(self, **options: Any) -> RedisCluster:
        """An admin ``RedisCluster`` whose KEYS, DBSIZE and INFO cover every primary.

        INFO answers as one server would, its numbers summed over the primaries (command
        counts, memory), so code written for one server reads the whole cluster.
        """
        node: Any = ClusterNode  # untyped in redis-py
        startup = [node(_HOST, n.port) for n in self.running()]
        client = RedisCluster(startup_nodes=startup, socket_timeout=5, **options)
        # redis-py sends KEYS, DBSIZE and INFO to one node unless told otherwise.
        every = RedisCluster.PRIMARIES
        client.command_flags.update(KEYS=every, DBSIZE=every, INFO=every)
        client.result_callbacks["INFO"] = _summed_info
        return client

    def stop(self) -> None:
        """Stop every node by its pid (idempotent)."""
        for server in self.nodes:
            server.stop()
