"""A local Sentinel group for tests: one primary, its replicas and a quorum of sentinels.

Every process is a ``LocalServer`` (loopback, a temp dir each, stopped by its pid); the
sentinels' config files live in a temp dir of their own. Exported by ``sessionstore.testing``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, cast

from sessionstore.testing.cluster import (
    _ADMIN_ERRORS,
    _FAST_SYNC,
    _HOST,
    _READY_TIMEOUT,
    _admin,
    _ask,
    _info,
    _until,
)

# The process helpers are the cluster module's (one implementation of each).
from sessionstore.testing.process import Started
from sessionstore.testing.server import LocalServer

__all__ = ["LocalSentinel"]


class LocalSentinel(Started):
    """One primary, ``replicas`` replicas and ``sentinels`` sentinels watching it.

    ``url`` is the ``redis+sentinel://…/<service>`` form ``SessionStore.from_url`` takes.
    A failover starts ``down_after_ms`` after the primary stops answering.
    """

    def __init__(
        self,
        binary: str,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        service: str = "mymaster",
        down_after_ms: int = 500,
        failover_timeout_ms: int = 3000,
        name: str = "sentinel",
    ) -> None:
        self.binary = binary
        self.name = name
        self.service = service
        self.replica_count = replicas
        self.sentinel_count = sentinels
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.servers: list[LocalServer] = []  # primary first, then replicas
        self.sentinels: list[LocalServer] = []
        self._conf_dir: str | None = None

    @property
    def url(self) -> str:
        """``redis+sentinel://`` naming every sentinel and the service."""
        hosts = ",".join(f"{_HOST}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    def start(self) -> LocalSentinel:
        """Spawn the data nodes and the sentinels; return once every sentinel sees all."""
        if self.servers:
            return self
        try:
            primary = LocalServer(self.binary, name=f"{self.name}-primary", extra_args=_FAST_SYNC)
            self.servers.append(primary)
            primary.start()
            for n in range(self.replica_count):
                replica = LocalServer(
                    self.binary,
                    name=f"{self.name}-replica-{n}",
                    extra_args=["--replicaof", _HOST, str(primary.port), *_FAST_SYNC],
                )
                self.servers.append(replica)
                replica.start()
            self._conf_dir = tempfile.mkdtemp(prefix=f"sessionstore-{self.name}-")
            quorum = self.sentinel_count // 2 + 1
            for n in range(self.sentinel_count):
                conf = Path(self._conf_dir) / f"sentinel-{n}.conf"
                conf.write_text(
                    f"sentinel monitor {self.service} {_HOST} {primary.port} {quorum}\n"
                    f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}\n"
                    f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}\n"
                    f"sentinel parallel-syncs {self.service} 1\n"
                )
                sentinel = LocalServer(
                    self.binary,
                    name=f"{self.name}-{n}",
                    config_file=str(conf),
                    extra_args=["--sentinel"],
                )
                self.sentinels.append(sentinel)
                sentinel.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self) -> None:
        """Until replicas are in sync and every sentinel knows the others and the replicas."""

        def ready() -> bool:
            for sentinel in self.sentinels:
                state = _admin(sentinel, 1.0)
                try:
                    master = cast("dict[str, Any]", state.sentinel_master(self.service))
                finally:
                    state.close()
                if master["num-other-sentinels"] != self.sentinel_count - 1:
                    return False
                if master["num-slaves"] != self.replica_count:
                    return False
            primary = self.primary()
            return all(
                _info(s, "replication").get("master_link_status") == "up"
                for s in self.servers
                if s is not primary and s.pid is not None
            )

        _until("the sentinels to see the whole group", ready)

    def primary(self) -> LocalServer:
        """The data node the first answering sentinel names as primary."""
        for sentinel in self.sentinels:
            try:
                _, port = _ask(sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
            except _ADMIN_ERRORS:
                continue
            return next(s for s in self.servers if s.port == int(port))
        raise LookupError("no sentinel answers")

    def wait_promoted(self, old: LocalServer, timeout: float = _READY_TIMEOUT) -> LocalServer:
        """Until the sentinels name a primary other than ``old`` and it answers as one."""

        def promoted() -> bool:
            now = self.primary()
            return now is not old and _info(now, "replication")["role"] == "master"

        _until("a replica to be promoted", promoted, timeout)
        return self.primary()

    def stop(self) -> None:
        """Stop every process by its pid and remove the sentinels' config dir."""
        for server in [*self.sentinels, *self.servers]:
            server.stop()
        if self._conf_dir is not None:
            shutil.rmtree(self._conf_dir, ignore_errors=True)
            self._conf_dir = None
