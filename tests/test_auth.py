"""Login, validate, refresh and logout against real engines, sync and async (one body each)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import msgspec
import pytest
import redis

from observe import script_calls
from sessionstore import (
    Config,
    Device,
    InvalidInput,
    InvalidSignature,
    InvalidToken,
    Keyring,
    Principal,
    RefreshReuseDetected,
    Session,
    SessionRevoked,
    SessionStore,
    TokenPair,
    UnknownKey,
    WrongTokenType,
)
from sessionstore.tokens import issue_refresh_token, parse_refresh_token
from support import StoreApi, StoreFactory, shell_of

DEVICES = [
    Device(id="phone-1", name="Pixel", user_agent="Mozilla/5.0 (Linux; Android 14)", ip="10.0.0.7"),
    Device(id="laptop-1", name="ThinkPad", user_agent="Mozilla/5.0 (X11; Linux)", ip="10.0.0.8"),
    Device(id="tablet-1", name="iPad", user_agent="Mozilla/5.0 (iPad)", ip="10.0.0.9"),
]


async def test_round_trip_three_devices(store: StoreApi) -> None:
    pairs = [
        await store.login("user-1", device=d, claims={"role": "admin"}, data={"mfa": False})
        for d in DEVICES
    ]
    for pair, device in zip(pairs, DEVICES, strict=True):
        principal = await store.validate(pair.access_token)
        assert isinstance(principal, Principal)
        assert principal.user_id == "user-1" and principal.session_id == pair.session_id
        assert principal.claims == {"role": "admin"} and not principal.degraded
        assert principal.session is not None and principal.session.device == device
        assert principal.session.data == {"mfa": False}
    assert len(await store.devices("user-1")) == 3
    assert await store.revoke_device("user-1", "phone-1") == 1
    with pytest.raises(SessionRevoked):
        await store.validate(pairs[0].access_token)
    current = pairs[1]
    assert await store.revoke_user("user-1", keep=current.session_id) == 1
    with pytest.raises(SessionRevoked):
        await store.validate(pairs[2].access_token)
    assert (await store.validate(current.access_token)).session_id == current.session_id
    assert await store.logout(current.access_token) is True
    with pytest.raises(SessionRevoked):
        await store.validate(current.access_token)
    assert await store.sessions("user-1") == []


async def test_refresh_rotates_twenty_times_then_detects_reuse(store: StoreApi) -> None:
    pair = await store.login("user-1", device=DEVICES[0], claims={"role": "admin"})
    history = [pair]
    for _ in range(20):
        pair = await store.refresh(pair.refresh_token)
        assert pair.session_id == history[0].session_id
        assert (await store.validate(pair.access_token)).claims == {"role": "admin"}
        history.append(pair)
    assert len({p.refresh_token for p in history}) == 21
    with pytest.raises(RefreshReuseDetected):
        await store.refresh(history[-3].refresh_token)  # pre-previous: reuse
    for token in (history[-1].access_token, history[0].access_token):
        with pytest.raises(SessionRevoked):
            await store.validate(token)
    with pytest.raises(SessionRevoked):
        await store.refresh(history[-1].refresh_token)


async def test_refresh_grace_retry_and_after_grace(make_store: StoreFactory) -> None:
    store = make_store(config=Config(refresh_grace=1))
    first = await store.login("user-1", device=DEVICES[0])
    second = await store.refresh(first.refresh_token)
    retried = await store.refresh(first.refresh_token)  # a client retry within the grace
    assert retried.refresh_token == second.refresh_token
    third = await store.refresh(retried.refresh_token)
    await asyncio.sleep(1.2)
    with pytest.raises(RefreshReuseDetected):
        await store.refresh(retried.refresh_token)  # the previous one, after the grace
    with pytest.raises(SessionRevoked):
        await store.refresh(third.refresh_token)


async def test_concurrent_refreshes_all_win(store: StoreApi) -> None:
    first = await store.login("user-1", device=DEVICES[0])
    n = 10
    shell = shell_of(store)
    if isinstance(shell, SessionStore):
        barrier = threading.Barrier(n)
        results: list[TokenPair] = []

        def worker() -> None:
            barrier.wait()
            results.append(shell.refresh(first.refresh_token))

        threads = [threading.Thread(target=worker) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        results = list(
            await asyncio.gather(*(store.refresh(first.refresh_token) for _ in range(n)))
        )
    assert len(results) == n
    assert len({r.refresh_token for r in results}) == 1  # everyone holds the current token
    for r in results:
        assert (await store.validate(r.access_token)).session_id == first.session_id
    following = await store.refresh(results[0].refresh_token)
    assert (await store.validate(following.access_token)).session_id == first.session_id


async def test_forged_refresh_revokes_nothing(
    store: StoreApi, keyring: Keyring, redis_client: redis.Redis
) -> None:
    pair = await store.login("user-1", device=DEVICES[0])
    genuine = parse_refresh_token(keyring, pair.refresh_token, max_bytes=8192)
    forged = pair.refresh_token.rsplit(".", 1)[0] + "." + "A" * 43
    other = Keyring.generate("HS256", kid=genuine.kid)
    foreign = issue_refresh_token(
        other, user_id="user-1", session_id=pair.session_id, generation=1, kid=genuine.kid
    )
    before = script_calls(redis_client)
    for token in (forged, foreign):
        with pytest.raises(InvalidSignature):
            await store.refresh(token)
    with pytest.raises(WrongTokenType):
        await store.refresh(pair.access_token)
    with pytest.raises(WrongTokenType):
        await store.validate(pair.refresh_token)
    assert script_calls(redis_client) == before
    assert (await store.validate(pair.access_token)).session_id == pair.session_id
    assert (await store.refresh(pair.refresh_token)).session_id == pair.session_id


async def test_idle_and_absolute_deadlines(store: StoreApi) -> None:
    idle = await store.login("user-1", device=DEVICES[0], idle_ttl=1, absolute_ttl=30)
    absolute = await store.login("user-2", device=DEVICES[0], idle_ttl=1, absolute_ttl=2)
    for _ in range(4):
        await asyncio.sleep(0.6)
        await store.touch("user-2", absolute.session_id)
    # user-2 was kept active but hit its absolute deadline; user-1 idled out.
    for pair in (idle, absolute):
        with pytest.raises(SessionRevoked):
            await store.validate(pair.access_token)
        with pytest.raises(SessionRevoked):
            await store.refresh(pair.refresh_token)


async def test_refresh_never_extends_past_absolute(store: StoreApi) -> None:
    pair = await store.login("user-1", device=DEVICES[0], idle_ttl=2, absolute_ttl=2)
    fresh = await store.refresh(pair.refresh_token)
    principal = await store.validate(fresh.access_token)
    assert principal.session is not None
    assert principal.expires_at <= principal.session.absolute_expires_at
    assert principal.session.idle_expires_at <= principal.session.absolute_expires_at


async def test_login_overrides_are_capped(store: StoreApi) -> None:
    with pytest.raises(InvalidInput):
        await store.login("user-1", device=DEVICES[0], idle_ttl=1801)
    with pytest.raises(InvalidInput):
        await store.login("user-1", device=DEVICES[0], absolute_ttl=604801)
    with pytest.raises(InvalidInput, match="registered"):
        await store.login("user-1", device=DEVICES[0], claims={"sub": "someone-else"})
    pair = await store.login("user-1", device=DEVICES[0], idle_ttl=60, absolute_ttl=120)
    session = (await store.validate(pair.access_token)).session
    assert session is not None
    assert session.absolute_expires_at - session.created_at == pytest.approx(120, abs=0.01)


async def test_key_rotation(make_store: StoreFactory, redis_client: redis.Redis) -> None:
    keyring = Keyring.generate("HS256")
    store = make_store(keyring=keyring)
    old = await store.login("user-1", device=DEVICES[0])
    keyring.rotate(Keyring.generate("ES256"), grace=3600)
    new = await store.login("user-1", device=DEVICES[1])
    assert (await store.validate(old.access_token)).session_id == old.session_id
    assert (await store.validate(new.access_token)).session_id == new.session_id
    old_kid = next(k for k in keyring.kids if k != keyring.current_kid)
    keyring.retire(old_kid)
    before = script_calls(redis_client)
    with pytest.raises(UnknownKey):
        await store.validate(old.access_token)
    stranger = make_store(keyring=Keyring.generate("HS256"))
    with pytest.raises(UnknownKey):
        await stranger.validate(new.access_token)
    assert script_calls(redis_client) == before
    assert (await store.validate(new.access_token)).session_id == new.session_id


async def test_store_without_keyring_refuses_token_operations(
    make_store: StoreFactory,
) -> None:
    store = make_store(keyring=None)
    await store.create("user-1", device=DEVICES[0])
    with pytest.raises(InvalidInput, match="keyring"):
        await store.login("user-1", device=DEVICES[0])


def test_records_are_structs() -> None:
    for cls in (Principal, TokenPair, Session):
        assert issubclass(cls, msgspec.Struct)
    pair = TokenPair(access_token="secret-a", refresh_token="secret-r", session_id="s")
    assert "secret" not in repr(pair) and "secret" not in str(pair)


async def test_invalid_tokens_make_no_redis_calls(
    store: StoreApi, redis_client: redis.Redis
) -> None:
    pair = await store.login("user-1", device=DEVICES[0])
    before = script_calls(redis_client)
    bads: list[Any] = ["", "a.b.c", pair.access_token + "x", pair.access_token[:-2], "x" * 9000, 42]
    for bad in bads:
        with pytest.raises(InvalidToken):
            await store.validate(bad)
        with pytest.raises(InvalidToken):
            await store.logout(bad)
    assert script_calls(redis_client) == before
