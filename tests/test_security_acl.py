"""The ACL user SECURITY.md recommends works for every operation and confines the app.

The ``ACL SETUSER`` line is read from SECURITY.md itself, so the document and this test
cannot drift apart. Each engine runs on a private server (users are server-wide state).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest
import redis

from sessionstore import Config, Device, Keyring, SessionStore, events
from sessionstore.testing import LocalServer, redis_binary, valkey_binary
from support import acl_user_url


@pytest.mark.parametrize("find", [valkey_binary, redis_binary], ids=["valkey", "redis7"])
def test_recommended_acl(find: Callable[[], str | None]) -> None:
    binary = find()
    if binary is None:
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail("CI=true: this engine must be installed (see .ci/run)", pytrace=False)
        pytest.skip("engine not installed")
    with LocalServer(binary, name="acl") as server:
        admin = redis.Redis.from_url(server.url)
        url = acl_user_url(server.url, admin)
        seen: list[events.Event] = []
        config = Config(revoke_wait_replicas=1, revoke_wait_timeout=0.01)
        store = SessionStore.from_url(
            url, keyring=Keyring.generate("HS256"), config=config, on_event=seen.append
        )
        try:
            pair = store.login("user-1", device=Device(id="phone"))
            time.sleep(0.3)  # the invalidation listener logs in with the same user
            pair = store.refresh(pair.refresh_token)
            assert not store.validate(pair.access_token).degraded
            assert [s.session_id for s in store.sessions("user-1")] == [pair.session_id]
            assert store.touch("user-1", pair.session_id)
            assert store.update("user-1", pair.session_id, data={"a": 1}).data == {"a": 1}
            assert store.revoke_device("user-1", "phone") == 1
            admin.script_flush()  # EVALSHA -> NOSCRIPT -> EVAL under the same user
            pair = store.login("user-1", device=Device(id="phone"))
            assert store.logout(pair.access_token)
            clients = admin.client_list()
            assert any(c["name"] == "sessionstore-invalidations" for c in clients)
            assert any(isinstance(e, events.ReplicationLag) for e in seen)  # WAIT ran
            assert not admin.execute_command("ACL", "LOG")  # type: ignore[no-untyped-call]
        finally:
            store.close()
        app = redis.Redis.from_url(url)
        for command in (
            ["FLUSHALL"],
            ["KEYS", "*"],
            ["CONFIG", "GET", "maxmemory"],
            ["SCRIPT", "FLUSH"],
            ["CLIENT", "KILL", "TYPE", "normal"],
            ["SET", "other:key", "1"],
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                app.execute_command(*command)  # type: ignore[no-untyped-call]
        app.close()
        admin.close()
