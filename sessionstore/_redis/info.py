"""What a server says of itself in INFO: its name and release (for the doctor and the tests)."""

from __future__ import annotations

import redis

__all__ = ["server_version"]


def server_version(client: redis.Redis) -> tuple[str, str]:
    """Return ``(server_name, version)`` from INFO, e.g. ``("valkey", "8.1.8")``.

    Redis answers ``("redis", "7.0.15")``. Valkey also reports a ``redis_version`` (the
    Redis release it is compatible with); its own release is ``valkey_version``.
    """
    info = client.info("server")
    name = str(info.get("server_name") or "redis")
    version = info.get("valkey_version") if name == "valkey" else None
    return name, str(version or info["redis_version"])
