"""Issue 14.8: with memory full under noeviction, validations keep answering.

A validation that is due a touch runs the check script, whose touch is a write. A full
server refuses a script's first write that may grow memory: the read must answer all the
same (never ``ScriptError``, never the degraded fallback), the session must not be
extended, and a ``TouchFailed`` event says so. Private servers (maxmemory is
server-wide), one per engine; the sync store on its direct path and on redis-py's, the
async store through its batcher.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.exceptions import OutOfMemoryError

from observe import wait_for
from sessionstore import (
    AsyncSessionStore,
    Config,
    Device,
    Keyring,
    ScriptError,
    SessionRevoked,
    SessionStore,
    events,
)
from sessionstore.keys import revoked_channel
from sessionstore.testing import LocalServer, redis_binary, valkey_binary

PHONE = Device(id="phone-1", name="Pixel", user_agent="Mozilla/5.0 (Linux; Android 14)")
# A touch is due one second after the last one; no near cache, so every call reads Redis.
CONFIG = Config(touch_interval=1, near_cache_size=0)
SESSIONS = 6


class PlainRedis(redis.Redis):
    """A subclass: the sync store then talks through redis-py, not its direct path."""


@pytest.fixture(params=["valkey", "redis7"])
def full_server(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    """A private server of the engine, under noeviction."""
    binary = valkey_binary() if request.param == "valkey" else redis_binary()
    if binary is None:
        pytest.skip(f"no {request.param} binary installed")
    with LocalServer(binary, name=f"memfull-{request.param}") as server:
        yield server


def fill(admin: redis.Redis) -> None:
    """Set maxmemory a little above what is used, write until the server refuses, then
    lower the limit under what is used (freed buffers must not let a write through)."""
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", used + 1_000_000)
    blob = b"x" * 65536
    for n in range(1000):
        try:
            admin.set(f"filler:{n}", blob)
        except OutOfMemoryError:
            full = int(admin.info("memory")["used_memory"])
            admin.config_set("maxmemory", full - 2_000_000)
            return
    raise AssertionError("the server never said its memory was full")


def deadlines(admin: redis.Redis) -> list[list[Any]]:
    """Every session hash's last-seen and idle deadline fields."""
    keys = sorted(admin.scan_iter(match="ss:*:s:*"))
    assert len(keys) == SESSIONS
    return [admin.hmget(key, "s", "e") for key in keys]


@pytest.mark.parametrize("mode", ["sync", "sync-redis-py", "async"])
async def test_validation_answers_when_its_touch_cannot_be_written(
    full_server: LocalServer, mode: str
) -> None:
    keyring = Keyring.generate("HS256")
    seen: list[events.Event] = []
    admin = redis.Redis.from_url(full_server.url)
    store: Any
    if mode == "async":
        store = AsyncSessionStore.from_url(
            full_server.url, keyring=keyring, config=CONFIG, on_event=seen.append
        )
    elif mode == "sync":
        store = SessionStore.from_url(
            full_server.url, keyring=keyring, config=CONFIG, on_event=seen.append
        )
    else:
        client = PlainRedis.from_url(full_server.url)
        store = SessionStore(client, keyring=keyring, config=CONFIG, on_event=seen.append)

    async def run(method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(store, method)(*args, **kwargs)
        return await result if mode == "async" else result

    try:
        pairs = [await run("login", f"user-{n}", device=PHONE) for n in range(SESSIONS)]
        await asyncio.sleep(1.1)  # every session is now due a touch
        fill(admin)
        before = deadlines(admin)
        tokens = [pair.access_token for pair in pairs]
        if mode == "async":  # concurrent: one batch of scripts
            principals = await asyncio.gather(*(store.validate(t) for t in tokens))
        else:
            principals = [store.validate(t) for t in tokens]
        for pair, principal in zip(pairs, principals, strict=True):
            assert principal.session_id == pair.session_id
            assert principal.session is not None and not principal.degraded
        assert deadlines(admin) == before, "a refused touch extended a session"
        failed = [e for e in seen if isinstance(e, events.TouchFailed)]
        assert {e.session_id for e in failed} == {pair.session_id for pair in pairs}
        assert all("OOM" in e.reason for e in failed)
        # touch() itself is the write: it fails loudly, and writes nothing either.
        with pytest.raises(ScriptError):
            await run("touch", "user-0", pairs[0].session_id)
        assert deadlines(admin) == before
        # Room again: the next validation touches as usual.
        admin.config_set("maxmemory", 0)
        principal = await run("validate", tokens[0])
        assert principal.session is not None
        assert deadlines(admin) != before
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
        if mode == "async":
            await store.close()
        else:
            store.close()


def subscribers(admin: redis.Redis, channel: str) -> int:
    """How many connections the server counts as subscribed to ``channel``."""
    return int(admin.pubsub_numsub(channel)[0][1])


def test_a_store_started_on_a_full_server_still_hears_revocations(
    full_server: LocalServer,
) -> None:
    """A full server refuses even the listener's SET NX of its watch key: the listener
    must connect all the same, so revocations reach the store's memory for degraded mode."""
    keyring = Keyring.generate("HS256")
    admin = redis.Redis.from_url(full_server.url)
    revoker = SessionStore.from_url(full_server.url, keyring=keyring)
    try:
        revoked = revoker.login("user-1", device=PHONE)
        live = revoker.login("user-2", device=PHONE)
        fill(admin)
        # Another spelling of the address: a listener of its own, not the revoker's.
        url = full_server.url.replace("127.0.0.1", "localhost")
        assert url != full_server.url
        channel = revoked_channel(Config().namespace)
        # The revoker's own listener subscribes in the background too: counted first, so
        # the count below can only grow by the new store's.
        assert wait_for(lambda: subscribers(admin, channel) >= 1), "the revoker never subscribed"
        before = subscribers(admin, channel)
        listener = SessionStore.from_url(url, keyring=keyring)
        try:
            assert not listener.validate(live.access_token).degraded  # it reached Redis
            # Its listener subscribes in the background: a revocation published before
            # that is not one it can hear (nor is it meant to), so wait for the server to
            # count the subscription. A listener that cannot connect on a full server fails here.
            assert wait_for(lambda: subscribers(admin, channel) > before), "never subscribed"
            assert revoker.revoke("user-1", revoked.session_id)  # a delete: allowed when full
            full_server.kill()
            deadline = time.monotonic() + 3
            while True:
                try:
                    principal = listener.validate(revoked.access_token)
                except SessionRevoked:
                    break  # heard on its subscription, refused while degraded
                assert principal.degraded
                assert time.monotonic() < deadline, "the revocation never reached the store"
                time.sleep(0.05)
        finally:
            listener.close()
    finally:
        revoker.close()
        admin.close()
