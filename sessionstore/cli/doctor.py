"""``sessionstore doctor``: is this server fit to hold sessions?

Checks the server's version, its eviction policy (any ``allkeys-*`` or ``volatile-*``
policy may evict live sessions: users logged out at random, or refresh state lost),
persistence, cluster mode, that every script loads, and the round-trip latency.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import redis

from sessionstore._redis.connect import parse, sync_client
from sessionstore._redis.info import server_version
from sessionstore.cli.redact import mask_url
from sessionstore.models import Config
from sessionstore.scripts import SCRIPTS

__all__ = ["Check", "diagnose", "redact"]

Status = Literal["ok", "note", "warn", "fail"]
_PINGS = 20
_MIN_REDIS = (6, 2)  # ZRANGE ... BYSCORE, used by the scripts, came with Redis 6.2


@dataclass(frozen=True)
class Check:
    """One finding: ``warn`` and ``fail`` make ``doctor`` exit 1; ``note`` is information."""

    name: str
    status: Status
    detail: str
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def redact(url: str) -> str:
    """``url`` without its passwords (see ``redact.mask_url``)."""
    return mask_url(url)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split(".")[:2] if x.isdigit())


def _version(client: redis.Redis) -> Check:
    name, version = server_version(client)
    detail = f"{name} {version}"
    if name == "redis" and _version_tuple(version) < _MIN_REDIS:
        return Check("server", "fail", f"{detail}: sessionstore needs Redis 6.2+", detail)
    return Check("server", "ok", detail, detail)


def _eviction(client: redis.Redis) -> Check:
    # INFO memory works where CONFIG is disabled (managed services).
    policy = str(client.info("memory").get("maxmemory_policy", "unknown"))
    if policy.startswith(("allkeys-", "volatile-")):
        return Check(
            "maxmemory-policy",
            "warn",
            f"{policy} may evict live sessions under memory pressure: use noeviction",
            policy,
        )
    if policy == "noeviction":
        return Check("maxmemory-policy", "ok", "noeviction: sessions are never evicted", policy)
    return Check("maxmemory-policy", "warn", f"{policy}: not a known safe policy", policy)


def _persistence(client: redis.Redis) -> Check:
    aof = int(client.info("persistence").get("aof_enabled", 0)) == 1
    try:
        save = str(client.config_get("save").get("save", ""))
    except redis.ResponseError:
        save = "unknown"  # CONFIG is disabled: RDB settings cannot be read
    rdb = save not in ("", "unknown")
    if aof or rdb:
        kinds = ", ".join(k for k, on in (("AOF", aof), (f"RDB ({save})", rdb)) if on)
        return Check("persistence", "ok", kinds, {"aof": aof, "save": save})
    value = {"aof": aof, "save": save}
    if save == "unknown":  # CONFIG is disabled (managed services): say what is not known
        return Check("persistence", "note", "RDB settings unreadable, no AOF: check them", value)
    # SECURITY.md lists persistence as a requirement: without it a restart logs every user out.
    return Check("persistence", "warn", "none: a restart logs every user out", value)


def _cluster(client: redis.Redis, cluster_url: bool) -> Check:
    enabled = int(client.info("cluster").get("cluster_enabled", 0)) == 1
    if cluster_url:
        detail = "cluster mode" if enabled else "not in cluster mode: use a redis:// URL"
        return Check("cluster", "ok" if enabled else "fail", detail, enabled)
    detail = "cluster mode: use a redis+cluster:// URL" if enabled else "standalone"
    return Check("cluster", "note" if enabled else "ok", detail, enabled)


def _scripts(client: redis.Redis) -> Check:
    bad = [s.name for s in SCRIPTS.values() if client.script_load(s.source) != s.sha]
    if bad:
        return Check("scripts", "fail", f"SHA mismatch for {', '.join(bad)}", len(SCRIPTS))
    return Check("scripts", "ok", f"all {len(SCRIPTS)} scripts load", len(SCRIPTS))


def _latency(client: redis.Redis, timeout: float) -> Check:
    samples = []
    for _ in range(_PINGS):
        started = time.perf_counter()
        client.ping()
        samples.append((time.perf_counter() - started) * 1000)
    median, worst = statistics.median(samples), max(samples)
    detail = f"median {median:.2f} ms, max {worst:.2f} ms over {_PINGS} PINGs"
    value = {"median_ms": round(median, 3), "max_ms": round(worst, 3)}
    if median > timeout * 1000 / 2:
        return Check("latency", "warn", f"{detail}: close to socket_timeout {timeout} s", value)
    return Check("latency", "ok", detail, value)


def _checks(client: redis.Redis, cluster_url: bool) -> list[Check]:
    client.ping()
    checks = [_version(client), _eviction(client), _persistence(client)]
    checks += [_cluster(client, cluster_url), _scripts(client)]
    checks.append(_latency(client, Config().socket_timeout))
    return checks


def diagnose(url: str, *, timeout: float = 2.0) -> list[Check]:
    """Run every check against ``url`` (any form ``from_url`` takes; on a cluster, against
    each primary, named ``check host:port``). ``InvalidInput`` for a bad URL; driver errors
    (``redis.ConnectionError``, ``AuthenticationError``, ...) propagate."""
    kind = parse(url).kind
    client = sync_client(url, Config(socket_timeout=timeout), {})
    try:
        if kind != "cluster":
            return _checks(client, cluster_url=False)
        checks = []
        for node in client.get_primaries():
            where = f"{node.host}:{node.port}"
            found = _checks(node.redis_connection, cluster_url=True)
            checks += [replace(c, name=f"{c.name} {where}") for c in found]
        return checks
    finally:
        client.close()
