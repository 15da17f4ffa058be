"""URL forms, client options, error classes and the pure cluster helpers (no server needed)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio.cluster
from redis import exceptions as rx
from redis.sentinel import SentinelManagedSSLConnection

from sessionstore import AsyncSessionStore, Config, InvalidInput, SessionStore
from sessionstore._engine.admin import Walk
from sessionstore._engine.sessions import Sessions
from sessionstore._redis.connect import async_client, parse, sync_client
from sessionstore._redis.driver import is_unreachable
from sessionstore._redis.durable import Hop, commands, settle
from sessionstore._redis.redispy import retries
from sessionstore.keys import encode_user_id, glob_escape
from sessionstore.testing import free_port

CONFIG = Config(socket_timeout=0.3)


@pytest.mark.parametrize(
    "url",
    ["redis://localhost:6379/0", "rediss://u:p@h:1/2?ssl_cert_reqs=none", "unix:///tmp/r.sock"],
)
def test_single_server_urls_pass_through(url: str) -> None:
    target = parse(url)
    assert (target.kind, target.url, target.nodes) == ("single", url, ())


def test_cluster_url() -> None:
    target = parse("redis+cluster://app:s%40cret@10.0.0.1:7000,node-b:7001,[::1]:7002,node-c/0")
    assert target.kind == "cluster"
    assert target.nodes == (("10.0.0.1", 7000), ("node-b", 7001), ("::1", 7002), ("node-c", 6379))
    assert dict(target.options) == {"username": "app", "password": "s@cret"}
    assert "s@cret" not in repr(target) and "cret" not in repr(target)


def test_cluster_tls_and_query_options() -> None:
    target = parse(
        "rediss+cluster://h1:1,h2:2?ssl_cert_reqs=none&ssl_ca_certs=/ca.pem&socket_keepalive=yes"
    )
    assert dict(target.options) == {
        "ssl": True,
        "ssl_cert_reqs": "none",
        "ssl_ca_certs": "/ca.pem",
        "socket_keepalive": True,
    }
    assert target.tls_options == {"ssl": True, "ssl_cert_reqs": "none", "ssl_ca_certs": "/ca.pem"}


def test_cluster_flag_on_a_single_server_url() -> None:
    target = parse("rediss://:pw@h:7000/0", cluster=True)
    assert (target.kind, target.nodes) == ("cluster", (("h", 7000),))
    assert dict(target.options) == {"password": "pw", "ssl": True}
    assert parse("redis+cluster://h:1", cluster=True).kind == "cluster"


def test_sentinel_url() -> None:
    target = parse("rediss+sentinel://app:pw@s1:26380,s2/my%20primary?db=3&ssl_cert_reqs=none")
    assert (target.kind, target.service) == ("sentinel", "my primary")
    assert target.nodes == (("s1", 26380), ("s2", 26379))
    assert dict(target.options) == {
        "username": "app",
        "password": "pw",
        "ssl": True,
        "ssl_cert_reqs": "none",
        "db": 3,
    }
    assert parse("redis+sentinel://s1/primary").options["db"] == 0


@pytest.mark.parametrize(
    ("url", "cluster", "message"),
    [
        (b"redis://h", False, "must be a str"),
        (None, False, "must be a str"),
        ("http://h:1", False, "url must be"),
        ("localhost:6379", False, "url must be"),
        ("redis+proxy://h:1", False, "url must be"),
        ("unix:///tmp/s", True, "no unix:// form"),
        ("redis+sentinel://h:1/p", True, "cluster=True goes with"),
        ("redis://h:1", "yes", "cluster must be True or False"),
        ("redis+cluster://h:1/1", False, "database 0 only"),
        ("redis+cluster://h:1?db=2", False, "database 0 only"),
        ("redis+cluster://h:1,:2", False, "bad host"),
        ("redis+cluster://h:99999", False, "bad port"),
        ("redis+cluster://h:x1", False, "bad port"),
        ("redis+cluster://h:1?socket_timeout=soon", False, "bad value for URL option"),
        ("redis+cluster://h:1?evil=1", False, "unknown URL option 'evil'"),
        ("redis+sentinel://s:1", False, "names its service"),
        ("redis+sentinel://s:1/", False, "names its service"),
        ("redis+sentinel://s:1/a/b", False, "names its service"),
    ],
)
def test_bad_urls_are_refused_locally(url: Any, cluster: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse(url, cluster=cluster)


def test_from_url_refuses_bad_urls_before_any_connection() -> None:
    for make in (SessionStore.from_url, AsyncSessionStore.from_url):
        with pytest.raises(InvalidInput, match="unknown URL option"):
            make("redis+cluster://127.0.0.1:1?nope=1")
        with pytest.raises(InvalidInput, match="url must be"):
            make("memcached://127.0.0.1:1")


def test_sentinel_clients_carry_tls_acl_and_no_retries() -> None:
    # Building a Sentinel-managed client makes no connection: nothing listens on these ports.
    url = f"rediss+sentinel://app:pw@127.0.0.1:{free_port()}/main?db=2&ssl_cert_reqs=none"
    client = sync_client(url, CONFIG, {})
    try:
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
        assert pool.connection_class is SentinelManagedSSLConnection
        assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("app", "pw", 2)
        assert kwargs["ssl_cert_reqs"] == "none"
        assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.3
        assert retries(kwargs["retry"]) == 0 and kwargs["decode_responses"] is False
        (sentinel,) = client.sentinel.sentinels
        skw = sentinel.connection_pool.connection_kwargs
        assert skw["socket_timeout"] == 0.3 and retries(skw["retry"]) == 0
        assert skw["ssl_cert_reqs"] == "none" and skw["password"] is None
    finally:
        client.close()


def test_sentinel_credentials_of_their_own() -> None:
    url = f"redis+sentinel://127.0.0.1:{free_port()}/main"
    client = sync_client(url, CONFIG, {"sentinel_kwargs": {"password": "sentinel-pw"}})
    try:
        (sentinel,) = client.sentinel.sentinels
        assert sentinel.connection_pool.connection_kwargs["password"] == "sentinel-pw"
    finally:
        client.close()


async def test_async_cluster_client_options_and_lazy_connection() -> None:
    port = free_port()
    url = f"rediss+cluster://app:pw@127.0.0.1:{port}?ssl_cert_reqs=none"
    client = async_client(url, CONFIG, {"socket_keepalive": False})
    try:
        assert isinstance(client, redis.asyncio.cluster.RedisCluster)
        assert retries(client.retry) == 0
        (node,) = client.nodes_manager.startup_nodes.values()
        assert (node.host, node.port) == ("127.0.0.1", port)
        kwargs = client.nodes_manager.connection_kwargs
        assert (kwargs["username"], kwargs["password"], kwargs["ssl_cert_reqs"]) == (
            "app",
            "pw",
            "none",
        )
        assert kwargs["socket_timeout"] == 0.3 and kwargs["socket_keepalive"] is False
    finally:
        await client.aclose()


def test_sync_cluster_that_nobody_answers_is_store_unavailable() -> None:
    from sessionstore import StoreUnavailable

    with pytest.raises(StoreUnavailable) as caught:
        SessionStore.from_url(f"redis+cluster://127.0.0.1:{free_port()}", config=CONFIG)
    assert is_unreachable(caught.value.__cause__)  # type: ignore[arg-type]


def test_single_server_client_has_no_retries() -> None:
    client = sync_client("redis://127.0.0.1:1/0", CONFIG, {"client_name": "x"})
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert retries(kwargs["retry"]) == 0 and kwargs["client_name"] == "x"
    finally:
        client.close()


def _chained(outer: Exception, cause: Exception) -> Exception:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("err", "unreachable"),
    [
        (rx.ConnectionError("refused"), True),
        (rx.TimeoutError("slow"), True),
        (rx.ClusterDownError("CLUSTERDOWN The cluster is down"), True),
        (rx.MasterDownError("MASTERDOWN Link with MASTER is down"), True),
        (rx.TryAgainError("TRYAGAIN"), True),
        (rx.SlotNotCoveredError("slot 7 is not covered"), True),
        (rx.ClusterError("TTL exhausted."), True),
        (_chained(rx.RedisClusterException("cannot be connected"), rx.ConnectionError()), True),
        (rx.RedisClusterException("Cluster mode is not enabled on this node"), False),
        (_chained(rx.RedisClusterException("no"), rx.AuthenticationError("bad pw")), False),
        (rx.MovedError("3999 127.0.0.1:6381"), False),
        (rx.ResponseError("WRONGTYPE"), False),
        (rx.ReadOnlyError("READONLY"), False),
        (rx.AuthenticationError("WRONGPASS"), False),
    ],
    ids=repr,
)
def test_what_counts_as_unreachable(err: Exception, unreachable: bool) -> None:
    assert is_unreachable(err) is unreachable


def test_admin_walk_pattern_and_users() -> None:
    walk = Walk("ss", 100)
    assert walk.pattern == "ss:{*}:idx"
    assert Walk("a*b?[c]\\", 1).pattern == "a\\*b\\?\\[c\\]\\\\:{*}:idx"
    assert glob_escape("plain") == "plain"
    tag = encode_user_id("user-1")
    assert walk.user(f"ss:{{{tag}}}:idx".encode()) == "user-1"
    assert walk.user(f"ss:{{{tag}}}:idx") is None  # each user once per walk
    assert walk.user(b"ss:{!!}:idx") is None  # matches the pattern, not one of ours
    assert walk.user(b"other:{dXNlci0y}:idx") is None
    for bad in (0, 100_001, True, 1.5):
        with pytest.raises(InvalidInput, match="count"):
            Walk("ss", bad)  # type: ignore[arg-type]


def test_durable_commands_and_redirect_decisions() -> None:
    call = Sessions(Config()).revoke("user-1", "A" * 22)
    sent = commands(call, (1, 100), None)
    assert [c[0] for c in sent] == ["EVAL", "WAIT"] and sent[-1] == ("WAIT", 1, 100)
    assert sent[0][2:6] == (3, *call.keys)  # index, session, history
    moved = rx.MovedError("3999 127.0.0.1:6381")
    ask = rx.AskError("3999 127.0.0.1:6382")
    assert settle([b"ok", 1], None) is None
    assert settle([moved, 0], None) == Hop(moved=moved)
    assert settle([ask, 0], None) == Hop(ask=ask)
    assert [c[0] for c in commands(call, (1, 100), Hop(ask=ask))] == ["ASKING", "EVAL", "WAIT"]
    # TRYAGAIN on the importing node: ask again there after a pause.
    again = settle([b"OK", rx.TryAgainError("TRYAGAIN"), 0], Hop(ask=ask))
    assert again is not None and again.ask is ask and again.pause > 0
    with pytest.raises(rx.ResponseError, match="WRONGTYPE"):
        settle([rx.ResponseError("WRONGTYPE"), 0], None)


def test_asyncio_twin_is_not_built_at_import() -> None:
    # The asyncio builder needs no running loop: a client made outside one stays unused.
    client = async_client(f"redis+cluster://127.0.0.1:{free_port()}", CONFIG, {})
    asyncio.run(client.aclose())
