"""Validation while Redis is stalled (SIGSTOP) or crashed (SIGKILL), on a private server."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from sessionstore import Config, Device, SessionRevoked, StoreUnavailable, events
from sessionstore.testing import LocalServer
from support import StoreApi, StoreFactory

PHONE = Device(id="phone-1", name="Pixel")
FAST = Config(socket_timeout=0.25, breaker_failures=2, breaker_reset=0.3)


def outage(server: LocalServer, kind: str) -> None:
    """Make the server unreachable: a stall (SIGSTOP) or a crash (SIGKILL)."""
    if kind == "stall":
        server.pause()
    else:
        server.kill()


def recover(server: LocalServer, kind: str) -> None:
    """End the outage: resume the stalled server, or restart the crashed one empty."""
    if kind == "stall":
        server.resume()
    else:
        server.restart()


async def timed(coro: Any) -> tuple[Any, float]:
    """Await ``coro`` and return its result with the seconds it took."""
    start = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - start


@pytest.mark.parametrize("kind", ["stall", "crash"])
async def test_degraded_validation_and_recovery(
    make_store: StoreFactory, fault_server: LocalServer, kind: str
) -> None:
    seen: list[events.Event] = []
    store = make_store(url=fault_server.url, config=FAST, on_event=seen.append)
    alive = await store.login("user-1", device=PHONE, claims={"role": "admin"})
    revoked = await store.login("user-1", device=PHONE)
    assert await store.revoke("user-1", revoked.session_id)
    outage(fault_server, kind)

    first, first_seconds = await timed(store.validate(alive.access_token))
    assert first.degraded and first.session is None and first.claims == {"role": "admin"}
    # One socket timeout at most (generous bound: a retrying driver would take several).
    assert first_seconds < 4 * FAST.socket_timeout
    with pytest.raises(SessionRevoked):  # known here: refused without asking Redis
        await store.validate(revoked.access_token)
    assert (await store.validate(alive.access_token)).degraded  # 2nd failure: breaker opens
    # The breaker is open now: answers no longer wait on the network at all.
    start = time.perf_counter()
    for _ in range(40):
        assert (await store.validate(alive.access_token)).degraded
    assert time.perf_counter() - start < FAST.socket_timeout  # 40 timeouts would take 10 s
    with pytest.raises(SessionRevoked):
        await store.validate(revoked.access_token)
    ops: list[Callable[[], Awaitable[Any]]] = [
        lambda: store.login("user-1", device=PHONE),
        lambda: store.refresh(alive.refresh_token),
        lambda: store.logout(alive.access_token),
        lambda: store.revoke("user-1", alive.session_id),
        lambda: store.update("user-1", alive.session_id, data={}),
    ]
    for op in ops:
        with pytest.raises(StoreUnavailable):
            await op()

    recover(fault_server, kind)
    time.sleep(FAST.breaker_reset + 0.1)
    if kind == "stall":
        back = await store.validate(alive.access_token)
        assert not back.degraded and back.session is not None
    else:
        # The server came back empty: its lost sessions are revoked, new logins work,
        # and the loss itself is reported, never silently treated as healthy.
        with pytest.raises(SessionRevoked):
            await store.validate(alive.access_token)
        fresh = await store.login("user-1", device=PHONE)
        assert not (await store.validate(fresh.access_token)).degraded
        assert [e for e in seen if isinstance(e, events.DataLost)]
    kinds = [type(e) for e in seen]
    assert events.DegradedEntered in kinds and events.DegradedLeft in kinds


async def test_fallback_deny(make_store: StoreFactory, fault_server: LocalServer) -> None:
    config = Config(socket_timeout=0.25, fallback="deny", breaker_failures=1, breaker_reset=0.3)
    store = make_store(url=fault_server.url, config=config)
    pair = await store.login("user-1", device=PHONE)
    fault_server.kill()
    for _ in range(3):  # the first asks Redis; then the breaker is open
        with pytest.raises(StoreUnavailable) as refused:
            await store.validate(pair.access_token)
        # The driver's error stays the cause once the breaker is open (never `from None`).
        assert isinstance(refused.value.__cause__, redis.ConnectionError)


async def test_degraded_mode_is_bounded(
    make_store: StoreFactory, fault_server: LocalServer
) -> None:
    config = Config(socket_timeout=0.25, max_degraded_seconds=1, breaker_reset=0.2)
    store = make_store(url=fault_server.url, config=config)
    pair = await store.login("user-1", device=PHONE)
    fault_server.kill()
    assert (await store.validate(pair.access_token)).degraded
    time.sleep(1.2)
    with pytest.raises(StoreUnavailable):
        await store.validate(pair.access_token)
    fault_server.restart()
    time.sleep(0.3)
    with pytest.raises(SessionRevoked):  # back, but empty
        await store.validate(pair.access_token)


async def test_server_errors_never_open_the_fallback(
    make_store: StoreFactory, fault_server: LocalServer
) -> None:
    import redis

    from sessionstore import ScriptError

    store = make_store(url=fault_server.url, config=FAST)
    pair = await store.login("user-1", device=PHONE)
    admin = redis.Redis.from_url(fault_server.url)
    # A wrong-type key where the session hash should be: Redis answers WRONGTYPE.
    key = next(k for k in admin.scan_iter(match="ss:*:s:*"))
    admin.delete(key)
    admin.set(key, "not a hash", px=60_000)
    with pytest.raises(ScriptError):
        await store.validate(pair.access_token)
    admin.close()


async def _listing(store: StoreApi, token: str) -> None:
    assert await store.sessions("user-1") == []


async def _validating(store: StoreApi, token: str) -> None:
    # A service that only validates (the async store asks for its housekeeping once per
    # batch of validations, not per call) hears of the loss too.
    for _ in range(2):  # the check may share the batch of the first of these
        with pytest.raises(SessionRevoked):
            await store.validate(token)


@pytest.mark.parametrize("use", [_listing, _validating], ids=["listing", "validating"])
async def test_data_loss_is_reported(
    make_store: StoreFactory,
    fault_server: LocalServer,
    use: Callable[[Any, str], Awaitable[None]],
) -> None:
    seen: list[events.Event] = []
    # A generous socket timeout: a loaded CI box must not turn this into an outage test.
    config = Config(marker_interval=0.1, socket_timeout=2.0)
    store = make_store(url=fault_server.url, config=config, on_event=seen.append)
    pair = await store.login("user-1", device=PHONE)
    assert not (await store.validate(pair.access_token)).degraded
    assert await store.sessions("user-1") != []
    assert not [e for e in seen if isinstance(e, events.DataLost)]
    admin = redis.Redis.from_url(fault_server.url)
    admin.flushall()  # as a restart without persistence would
    admin.close()
    time.sleep(0.15)
    await use(store, pair.access_token)
    lost = [e for e in seen if isinstance(e, events.DataLost)]
    assert len(lost) == 1 and "vanished" in lost[0].detail
