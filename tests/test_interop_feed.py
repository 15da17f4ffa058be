"""Interop with another stack: a Node service reads the revocation feed with ``ioredis``
(npm, pinned in interop/feed/package.json), knowing only the documented wire format.

Revocations made through Python (every reason) come back from the Node consumer
(interop/feed/feed-reader.mjs: XREAD BLOCK from an id, as a gateway follows the stream)
with the same ids, users, sessions, reasons and times as ``store.revocations()`` gives,
on every engine row (a cluster through ``ioredis``' cluster client). A consumer that
resumes from an id sees exactly the entries after it.

Needs ``node`` and ``npm``; the first run installs the locked packages with ``npm ci``.
Without node the tests skip, except under ``CI=true`` where that is a failure.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from interop import node_tool
from sessionstore import Config, Device, RefreshReuseDetected
from sessionstore.testing import Engine
from support import StoreFactory, shell_of

FOLDER = Path(__file__).resolve().parents[1] / "interop" / "feed"
Reader = Callable[[dict[str, Any]], list[dict[str, Any]]]


@pytest.fixture(scope="session")
def reader() -> Reader:
    """Run interop/feed/feed-reader.mjs on one job (see its header)."""
    node = node_tool(FOLDER, "ioredis", "feed")

    def run(job: dict[str, Any]) -> list[dict[str, Any]]:
        done = subprocess.run(
            [node, str(FOLDER / "feed-reader.mjs")],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        entries: list[dict[str, Any]] = json.loads(done.stdout)
        return entries

    return run


def _job(engine: Engine, since: str = "0") -> dict[str, Any]:
    """Where the Node reader connects: the engine's server, or its cluster's nodes."""
    if engine.cluster is not None:
        nodes = [urlsplit(node.url) for node in engine.cluster.nodes]
    else:
        nodes = [urlsplit(engine.store_url)]
    return {
        "nodes": [{"host": n.hostname, "port": n.port} for n in nodes],
        "cluster": engine.cluster is not None,
        "namespace": "ss",
        "since": since,
        "idleMs": 300,
        "password": urlsplit(engine.store_url).password,
    }


async def test_node_reads_what_python_revoked(
    make_store: StoreFactory, engine: Engine, reader: Reader
) -> None:
    if engine.name not in ("valkey", "redis7", "cluster"):
        pytest.skip("the Node reader connects to the local engine rows")
    store = make_store(config=Config(max_sessions_per_user=2))
    phone, laptop = Device(id="phone"), Device(id="laptop")
    a = await store.login("alice", device=phone)
    b = await store.login("alice", device=laptop)
    await store.login("alice", device=laptop)  # evicts a
    assert await store.revoke("alice", b.session_id)
    assert await store.revoke_device("alice", "laptop") == 1
    c = await store.login("bob ✓", device=phone)  # any user id, as UTF-8
    c2 = await store.refresh(c.refresh_token)
    await store.refresh(c2.refresh_token)
    with pytest.raises(RefreshReuseDetected):
        await store.refresh(c.refresh_token)
    d = await store.login("carol", device=phone)
    await store.login("carol", device=laptop)
    assert await store.logout(d.access_token)
    assert await store.revoke_user("carol") == 1

    shell = shell_of(store)
    if hasattr(store, "inner"):
        python = list(shell.revocations())  # type: ignore[arg-type]
    else:
        python = [e async for e in shell.revocations()]  # type: ignore[union-attr]
    assert [e.reason for e in python] == ["evicted", "revoke", "device", "reuse", "logout", "user"]
    assert a.session_id in python[0].session_ids

    node = reader(_job(engine))
    assert [
        (n["id"], n["userId"], tuple(n["sessionIds"]), n["reason"], n["at"] / 1000) for n in node
    ] == [(e.id, e.user_id, e.session_ids, e.reason, e.at) for e in python]
    assert all(sorted(n["fields"]) == ["at", "reason", "sessions", "user"] for n in node)
    # A Node consumer restarted with the third entry's id reads exactly the ones after it.
    resumed = reader(_job(engine, since=node[2]["id"]))
    assert [n["id"] for n in resumed] == [n["id"] for n in node[3:]]
