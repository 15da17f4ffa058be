"""Events reported to the ``on_event`` hook, expiry vs revocation, and device binding."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from sessionstore import (
    Config,
    Device,
    DeviceBindingError,
    InvalidToken,
    RefreshReuseDetected,
    SessionExpired,
    SessionRevoked,
    TokenExpired,
    events,
)
from support import StoreFactory

PHONE = Device(
    id="phone-1",
    name="Pixel",
    user_agent="Mozilla/5.0 (Linux; Android 14) Chrome/120.0",
    ip="10.0.0.7",
)


def recorder() -> tuple[list[events.Event], Callable[[events.Event], None]]:
    """A hook that records what it receives."""
    seen: list[events.Event] = []
    return seen, seen.append


async def test_lifecycle_events(make_store: StoreFactory) -> None:
    seen, hook = recorder()
    store = make_store(on_event=hook, config=Config(max_sessions_per_user=2))
    first = await store.login("user-1", device=PHONE)
    await store.login("user-1", device=PHONE)
    await store.login("user-1", device=PHONE)  # evicts the first
    # The script evicts before it creates, and the events say so in that order.
    assert [type(e) for e in seen] == [events.Created] * 2 + [events.Revoked, events.Created]
    evicted = seen[2]
    assert isinstance(evicted, events.Revoked) and evicted.reason == "evicted"
    assert evicted.session_ids == (first.session_id,)
    seen.clear()
    pair = await store.login("user-2", device=PHONE)
    newer = await store.refresh(pair.refresh_token)
    await store.refresh(pair.refresh_token)  # grace retry
    with pytest.raises(SessionRevoked):
        await store.validate(first.access_token)
    await store.logout(newer.access_token)
    kinds = [type(e).__name__ for e in seen]
    assert kinds == ["Created", "Refreshed", "Refreshed", "ValidationFailed", "Revoked"]
    assert [e.grace for e in seen if isinstance(e, events.Refreshed)] == [False, True]
    assert isinstance(seen[-1], events.Revoked) and seen[-1].reason == "logout"
    seen.clear()
    again = await store.login("user-3", device=PHONE)
    newer = await store.refresh(again.refresh_token)
    await store.refresh(newer.refresh_token)
    with pytest.raises(RefreshReuseDetected):
        await store.refresh(again.refresh_token)
    assert isinstance(seen[-1], events.ReuseDetected)
    with pytest.raises(InvalidToken):
        await store.validate("not-a-token")
    assert isinstance(seen[-1], events.ValidationFailed)


async def test_a_failing_hook_never_breaks_the_operation(
    make_store: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: events.Event) -> None:
        raise RuntimeError("hook bug")

    store = make_store(on_event=broken)
    pair = await store.login("user-1", device=PHONE)
    assert (await store.validate(pair.access_token)).user_id == "user-1"
    assert "event hook failed on Created" in caplog.text


async def test_expired_sessions_are_told_apart_from_revoked(make_store: StoreFactory) -> None:
    seen, hook = recorder()
    store = make_store(on_event=hook)
    pair = await store.login("user-1", device=PHONE, idle_ttl=1, absolute_ttl=60)
    await asyncio.sleep(1.2)
    with pytest.raises(SessionExpired) as caught:
        await store.validate(pair.access_token)
    assert isinstance(caught.value, SessionRevoked) and isinstance(caught.value, TokenExpired)
    assert any(isinstance(e, events.Expired) for e in seen)
    other = await store.login("user-1", device=PHONE)
    await store.revoke("user-1", other.session_id)
    with pytest.raises(SessionRevoked) as revoked:
        await store.validate(other.access_token)
    assert not isinstance(revoked.value, SessionExpired)


@pytest.mark.parametrize("policy", ["report", "enforce"])
async def test_device_binding(make_store: StoreFactory, policy: str) -> None:
    seen, hook = recorder()
    store = make_store(on_event=hook, config=Config(device_binding=policy))  # type: ignore[arg-type]
    pair = await store.login("user-1", device=PHONE)
    same = await store.validate(
        pair.access_token, ip="10.0.0.99", user_agent="Mozilla/5.0 (Linux; Android 15) Chrome/121.0"
    )
    assert same.user_id == "user-1"
    assert not any(isinstance(e, events.DeviceMismatch) for e in seen)
    moved = {"ip": "203.0.113.5", "user_agent": PHONE.user_agent}
    if policy == "enforce":
        with pytest.raises(DeviceBindingError):
            await store.validate(pair.access_token, **moved)
    else:
        assert (await store.validate(pair.access_token, **moved)).user_id == "user-1"
    mismatch = [e for e in seen if isinstance(e, events.DeviceMismatch)]
    assert len(mismatch) == 1 and mismatch[0].field == "ip"
    assert mismatch[0].enforced is (policy == "enforce")
    other_browser = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
    )
    if policy == "enforce":
        with pytest.raises(DeviceBindingError):
            await store.validate(pair.access_token, ip=PHONE.ip, user_agent=other_browser)
    assert store.config.device_binding == policy
