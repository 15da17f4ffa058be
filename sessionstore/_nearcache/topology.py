"""Where a client's data lives: its topology (one server, a cluster, Sentinel), and the
node a key is read from.

A ``Topology`` holds the database number, ACL user and TLS settings besides the addresses,
so two stores that could see different data never compare equal (and never share a
near cache: ``follow`` keys its followers by it).
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from redis.crc import key_slot
from redis.exceptions import RedisClusterException

from sessionstore._redis import redispy
from sessionstore._redis.resp import ConnSpec

__all__ = ["Address", "Topology", "cluster_primaries", "reader_of", "topology_of"]

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
        db=int(kwargs.get("db") or 0),
    )


def _is_tls(kwargs: dict[str, Any], pool: Any = None) -> bool:
    classes = (kwargs.get("connection_class"), getattr(pool, "connection_class", None))
    return bool(kwargs.get("ssl")) or any("SSL" in getattr(c, "__name__", "") for c in classes)


def topology_of(client: Any) -> Topology | None:
    """What a redis-py client talks to; None where it cannot be told (then no near cache)."""
    if redispy.cluster_nodes(client) is not None:  # RedisCluster, sync or asyncio
        kwargs = redispy.cluster_options(client)
        # The address of ``node`` means nothing for a cluster: the seeds name the nodes.
        node = dataclasses.replace(_spec(kwargs, _is_tls(kwargs)), host="", port=0)
        seeds = tuple(
            dataclasses.replace(node, host=host, port=port)
            for host, port in redispy.cluster_seeds(client)
        )
        return Topology("cluster", node, seeds) if seeds else None
    pool = getattr(client, "connection_pool", None)
    if pool is None or getattr(pool, "connection_kwargs", None) is None:
        return None
    kwargs = pool.connection_kwargs
    manager = redispy.sentinels_of(pool)
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


def reader_of(client: Any) -> Callable[[str], Address] | None:
    """key -> the node a cluster or Sentinel client sends that key's reads to now.

    A near-cache entry names that node and is kept only while it is followed (``NearCache``):
    a cluster client can learn of a new primary (MOVED) up to a topology refresh before we
    do, a Sentinel client can keep a connection to a replaced primary. No I/O: the client's
    slot map, the pool's primary address. None for one server (it is the one followed).
    """
    if redispy.cluster_nodes(client) is None:
        pool: Any = getattr(client, "connection_pool", None)
        if redispy.sentinels_of(pool) is None:
            return None

        def primary(key: str) -> Address:
            # Where the pool connects now (no I/O): entries read through a connection to a
            # primary the sentinels have already replaced are neither stored nor served.
            return redispy.primary_address(pool) or ("", 0)

        return primary

    def reader(key: str) -> Address:
        try:
            return redispy.slot_owner(client, key_slot(key.encode()))
        except (RedisClusterException, LookupError, AttributeError):
            return ("", 0)  # no owner known: never followed, so never cached

    return reader


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
