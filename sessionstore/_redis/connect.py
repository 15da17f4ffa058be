"""URL forms to Redis clients: one pure description, built as a sync or an asyncio client.

The forms ``from_url`` accepts:

- ``redis://``, ``rediss://``, ``unix://``: one server, parsed by redis-py as always. With
  ``cluster=True`` a ``redis(s)://`` URL names one startup node of a Redis Cluster.
- ``redis+cluster://[user:pass@]h1:p1,h2:p2[/0][?opts]`` (``rediss+cluster://`` for TLS):
  Redis Cluster from its startup nodes; database 0 only (a cluster has no other).
- ``redis+sentinel://[user:pass@]h1:p1,h2:p2/service[?db=N&opts]`` (``rediss+sentinel://``):
  the primary the sentinels name for ``service``. User and password are the data nodes';
  the sentinels' own credentials go in the ``sentinel_kwargs=`` option. TLS applies to both.

``opts`` are redis-py's URL options (``socket_timeout``, ``ssl_cert_reqs``, …); anything else
is refused here, before any connection. Clients the store creates have bounded timeouts
(``Config.socket_timeout``) and no driver retries: an unreachable server is reported at
once and the store's fallback policy decides. Redirections (MOVED, ASK, TRYAGAIN) are the
cluster protocol, not retries: the cluster client follows them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, cast
from urllib.parse import parse_qs, unquote

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.connection import URL_QUERY_ARGUMENT_PARSERS
from redis.retry import Retry

from sessionstore._engine.call import fail_closed
from sessionstore._redis.driver import DRIVER_ERRORS, client_options, is_unreachable
from sessionstore.errors import InvalidInput
from sessionstore.models import Config

__all__ = ["Kind", "Target", "async_client", "is_cluster", "parse", "sync_client"]

Kind = Literal["single", "cluster", "sentinel"]

_FORMS = (
    "url must be redis://, rediss://, unix://, redis+cluster://, rediss+cluster://, "
    "redis+sentinel:// or rediss+sentinel://"
)
_MULTI = {
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
}
_DEFAULT_PORT = {"cluster": 6379, "sentinel": 26379}
# URL options with a string value that redis-py's own URL parser passes through as is.
_STRING_OPTIONS = ("client_name", "password", "username", "ssl_")  # str as given


@dataclass(frozen=True)
class Target:
    """What a URL describes: the kind of deployment, its addresses and connection options."""

    kind: Kind
    url: str = field(repr=False)  # as given (it may hold a password)
    nodes: tuple[tuple[str, int], ...] = ()  # cluster startup nodes, or the sentinels
    service: str = ""  # sentinel: the name of the primary group
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def tls_options(self) -> dict[str, Any]:
        """The TLS settings (``ssl`` and ``ssl_*``), shared with the sentinels."""
        return {k: v for k, v in self.options.items() if k == "ssl" or k.startswith("ssl_")}


def parse(url: object, *, cluster: object = False) -> Target:
    """Describe ``url`` (see the module docstring); ``InvalidInput`` names what is wrong."""
    if not isinstance(url, str):
        raise InvalidInput(f"url must be a str, got {type(url).__name__}")
    if not isinstance(cluster, bool):
        raise InvalidInput(f"cluster must be True or False, got {cluster!r}")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise InvalidInput(_FORMS)
    if scheme in ("redis", "rediss", "unix"):
        if not cluster:
            # redis-py would pass an unknown option on to the connection, which raises a
            # TypeError on the first command: refuse it now (see also _known_options).
            _query_options(rest.partition("?")[2])
            return Target("single", url)
        if scheme == "unix":
            raise InvalidInput("Redis Cluster has no unix:// form: use redis+cluster://h:p,…")
        scheme += "+cluster"
    elif cluster and not scheme.endswith("+cluster"):
        raise InvalidInput("cluster=True goes with a redis://, rediss:// or cluster URL")
    if scheme not in _MULTI:
        raise InvalidInput(_FORMS)
    kind, tls = _MULTI[scheme]
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    options: dict[str, Any] = {**_query_options(query), **_credentials(userinfo)}
    if tls:
        options["ssl"] = True
    nodes = tuple(_node(text, _DEFAULT_PORT[kind]) for text in hosts.split(","))
    db = options.pop("db", None)
    if kind == "cluster":
        if path.strip("/") not in ("", "0") or db not in (None, 0):
            raise InvalidInput("Redis Cluster has database 0 only: use …/0 or no path")
        return Target("cluster", url, nodes, "", options)
    service = unquote(path)
    if not slash or not service or "/" in service:
        raise InvalidInput("a sentinel URL names its service: redis+sentinel://h:p,…/service")
    if db is not None and (db < 0):
        raise InvalidInput(f"db must be >= 0, got {db}")
    options["db"] = db or 0
    return Target("sentinel", url, nodes, service, options)


def _credentials(userinfo: str) -> dict[str, str]:
    if not userinfo:
        return {}
    user, colon, password = userinfo.partition(":")
    found = {"username": unquote(user)} if user else {}
    if colon:
        found["password"] = unquote(password)
    return found


def _node(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):  # an IPv6 literal: [::1]:7000
        host, _, port_text = text[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon:
            host, port_text = text, ""
    if not host:
        raise InvalidInput(f"bad host in URL: {text!r} (want host:port, comma separated)")
    if not port_text:
        return unquote(host), default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InvalidInput(f"bad port in URL: {text!r}")
    return unquote(host), int(port_text)


def _query_options(query: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, values in parse_qs(query, keep_blank_values=True, strict_parsing=False).items():
        value = values[-1]
        parser = cast("Callable[[str], Any] | None", URL_QUERY_ARGUMENT_PARSERS.get(name))
        if parser is not None:
            try:
                options[name] = parser(value)
            except (TypeError, ValueError) as err:
                raise InvalidInput(f"bad value for URL option {name}: {value!r}") from err
        elif name.startswith(_STRING_OPTIONS):
            options[name] = value
        else:
            raise InvalidInput(f"unknown URL option {name!r}")
    return options


def _known_options(pool: Any) -> None:
    """Refuse options the pool's connections would not take (an ``ssl_*`` one on a plain
    ``redis://`` URL, a keyword misspelt in code, ``timeout`` of a blocking pool).

    A connection object is built and dropped: it opens no socket until its first command.
    """
    try:
        pool.connection_class(**pool.connection_kwargs)
    except TypeError as err:
        found = re.search(r"argument '([^']+)'", str(err))
        name = found.group(1) if found else str(err)
        raise InvalidInput(f"unknown option {name!r} for this URL") from err


class _Flavor(NamedTuple):
    """The redis-py classes of one API (sync or asyncio); the build steps are shared."""

    redis: Any
    cluster: Any
    node: Any
    sentinel: Any
    primary: Any
    retry: Any
    cluster_options: Mapping[str, Any]


# The clients of the sentinels as built. Not ``Sentinel.sentinels``: redis-py reorders that
# list after each lookup, and concurrent lookups (threads, tasks) can drop a client from it
# (a stale index in the swap), which ``Sentinel.close()`` then never closes.


class _SentinelPrimary(redis.Redis):
    """The primary's client; closing it also closes the sentinels' clients."""

    sentinel: Any = None
    sentinel_clients: tuple[Any, ...] = ()

    def close(self) -> None:
        """Close the primary's connections, then the sentinels'."""
        try:
            super().close()
        finally:
            for client in self.sentinel_clients:
                client.close()


class _AsyncSentinelPrimary(redis.asyncio.Redis):
    """The primary's asyncio client; closing it also closes the sentinels' clients."""

    sentinel: Any = None
    sentinel_clients: tuple[Any, ...] = ()

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Close the primary's connections, then the sentinels'."""
        try:
            await super().aclose(close_connection_pool)
        finally:
            for client in self.sentinel_clients:
                await client.aclose()


_SYNC = _Flavor(
    redis.Redis,
    redis.cluster.RedisCluster,
    redis.cluster.ClusterNode,
    redis.sentinel.Sentinel,
    _SentinelPrimary,
    Retry,
    {},
)
_ASYNC = _Flavor(
    redis.asyncio.Redis,
    redis.asyncio.cluster.RedisCluster,
    redis.asyncio.cluster.ClusterNode,
    redis.asyncio.sentinel.Sentinel,
    _AsyncSentinelPrimary,
    AsyncRetry,
    # redis-py's asyncio cluster client closes every connection, in-flight commands
    # included, to re-read the slot map after a few MOVED replies; patching the one slot
    # each MOVED names (what 0 means) keeps concurrent requests alive through a reshard.
    {"reinitialize_steps": 0},
)


def sync_client(url: str, config: Config, options: Mapping[str, Any]) -> Any:
    """A ``redis.Redis``, ``RedisCluster`` or Sentinel-managed client for ``url``."""
    return _build(_SYNC, url, config, options)


def async_client(url: str, config: Config, options: Mapping[str, Any]) -> Any:
    """The asyncio twin of :func:`sync_client` (same description, asyncio classes)."""
    return _build(_ASYNC, url, config, options)


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is a redis-py cluster client (sync or asyncio)."""
    return isinstance(client, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster))


def _build(flavor: _Flavor, url: str, config: Config, options: Mapping[str, Any]) -> Any:
    extra = dict(options)
    target = parse(url, cluster=extra.pop("cluster", False))
    # The caller's options win over the store's defaults, as with a single server.
    base = {**client_options(config), "retry": flavor.retry(NoBackoff(), 0)}
    if target.kind == "single":
        client = flavor.redis.from_url(url, **{**base, **extra})
        _known_options(client.connection_pool)
        return client
    kwargs = {**base, **target.options, **extra}
    if target.kind == "cluster":
        kwargs = {**flavor.cluster_options, **kwargs}
        nodes = [flavor.node(host, port) for host, port in target.nodes]
        try:
            # The sync client reads the slot map now; the asyncio one on first use.
            return flavor.cluster(startup_nodes=nodes, **kwargs)
        except DRIVER_ERRORS as err:
            if is_unreachable(err):
                fail_closed(err, True)
            raise InvalidInput(f"cannot use this cluster: {err}") from err
    sentinel_kwargs = {
        "socket_timeout": config.socket_timeout,
        "socket_connect_timeout": config.socket_timeout,
        "retry": flavor.retry(NoBackoff(), 0),
        **target.tls_options,
        **kwargs.pop("sentinel_kwargs", {}),
    }
    sentinel = flavor.sentinel(list(target.nodes), sentinel_kwargs=sentinel_kwargs)
    client = sentinel.master_for(target.service, redis_class=flavor.primary, **kwargs)
    client.sentinel = sentinel
    client.sentinel_clients = tuple(sentinel.sentinels)
    return client
