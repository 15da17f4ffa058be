"""The store operations against real engines, in sync and async form (one body each)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import redis

from observe import script_calls, session_keys
from sessionstore import (
    Config,
    Device,
    InvalidInput,
    Session,
    SessionRevoked,
    SessionStore,
    StoreUnavailable,
)
from support import StoreApi, StoreFactory, shell_of

PHONE = Device(
    id="phone-1", name="Pixel 8", user_agent="Mozilla/5.0 (Linux; Android 14)", ip="10.0.0.7"
)
LAPTOP = Device(
    id="laptop-1", name="ThinkPad", user_agent="Mozilla/5.0 (X11; Linux x86_64)", ip="10.0.0.8"
)


def index_and_hashes(client: redis.Redis, user_tag: str) -> tuple[set[str], set[str]]:
    """The session ids in a user's index, and those that have a hash."""
    members: list[bytes] = client.zrange(f"ss:{{{user_tag}}}:idx", 0, -1)  # type: ignore[assignment]
    index = {m.decode() for m in members}
    prefix = f"ss:{{{user_tag}}}:s:"
    hashes = {k.decode()[len(prefix) :] for k in client.scan_iter(match=prefix + "*")}
    return index, hashes


async def test_create_get_list_and_devices(store: StoreApi) -> None:
    a = await store.create("user-1", device=PHONE, data={"mfa": False})
    b = await store.create("user-1", device=LAPTOP)
    c = await store.create("user-1", device=PHONE, data={"cart": [1, 2]})
    assert isinstance(a, Session) and a.device == PHONE and a.data == {"mfa": False}
    got = await store.get("user-1", a.session_id)
    assert got is not None and got.data == {"mfa": False} and got.device == PHONE
    assert got.idle_expires_at == pytest.approx(got.created_at + 1800, abs=0.01)
    assert got.absolute_expires_at == pytest.approx(got.created_at + 604800, abs=0.01)
    listed = await store.sessions("user-1")
    assert [s.session_id for s in listed] == [c.session_id, b.session_id, a.session_id]
    devices = await store.devices("user-1")
    assert {d.device.id: len(d.sessions) for d in devices} == {"phone-1": 2, "laptop-1": 1}
    phone = next(d for d in devices if d.device.id == "phone-1")
    assert [s.session_id for s in phone.sessions] == [c.session_id, a.session_id]
    assert phone.last_seen_at == max(s.last_seen_at for s in phone.sessions)
    assert await store.sessions("nobody") == [] and await store.devices("nobody") == []


async def test_touch_slides_idle_deadline_never_past_absolute(store: StoreApi) -> None:
    s = await store.create("user-1", device=PHONE, idle_ttl=2, absolute_ttl=3)
    await asyncio.sleep(0.3)
    assert await store.touch("user-1", s.session_id) is True
    after = await store.get("user-1", s.session_id)
    assert after is not None and after.last_seen_at > s.last_seen_at
    assert after.idle_expires_at > s.idle_expires_at
    await asyncio.sleep(1.0)
    assert await store.touch("user-1", s.session_id) is True
    capped = await store.get("user-1", s.session_id)
    assert capped is not None and capped.idle_expires_at == capped.absolute_expires_at


async def test_idle_deadline_expires_session(store: StoreApi, redis_client: redis.Redis) -> None:
    s = await store.create("user-1", device=PHONE, idle_ttl=1, absolute_ttl=60)
    await asyncio.sleep(1.2)
    assert await store.get("user-1", s.session_id) is None
    assert await store.touch("user-1", s.session_id) is False
    with pytest.raises(SessionRevoked):
        await store.update("user-1", s.session_id, data={"x": 1})
    assert session_keys(redis_client) == []


async def test_update_replaces_data_in_place(store: StoreApi) -> None:
    s = await store.create("user-1", device=PHONE, data={"big": "y" * 600})
    updated = await store.update("user-1", s.session_id, data={"mfa": True})
    assert updated.data == {"mfa": True}
    fetched = await store.get("user-1", s.session_id)
    assert fetched is not None and fetched.data == {"mfa": True}
    assert fetched.idle_expires_at == s.idle_expires_at  # an update is not activity
    assert (await store.update("user-1", s.session_id, data={})).data == {}


async def test_gone_sessions_are_never_recreated(
    store: StoreApi, redis_client: redis.Redis
) -> None:
    s = await store.create("user-1", device=PHONE)
    assert await store.revoke("user-1", s.session_id) is True
    assert await store.revoke("user-1", s.session_id) is False
    assert await store.get("user-1", s.session_id) is None
    assert await store.touch("user-1", s.session_id) is False
    with pytest.raises(SessionRevoked):
        await store.update("user-1", s.session_id, data={"mfa": True})
    assert session_keys(redis_client) == []


async def test_revoke_device_and_user(store: StoreApi) -> None:
    a = await store.create("user-1", device=PHONE)
    await store.create("user-1", device=PHONE)
    c = await store.create("user-1", device=LAPTOP)
    other = await store.create("user-2", device=PHONE)
    assert await store.revoke_device("user-1", "phone-1") == 2
    assert [s.session_id for s in await store.sessions("user-1")] == [c.session_id]
    d = await store.create("user-1", device=PHONE)
    assert await store.revoke_user("user-1", keep=d.session_id) == 1
    assert [s.session_id for s in await store.sessions("user-1")] == [d.session_id]
    assert await store.revoke_user("user-1") == 1
    assert await store.sessions("user-1") == []
    assert await store.get("user-1", a.session_id) is None
    assert [s.session_id for s in await store.sessions("user-2")] == [other.session_id]


async def test_cap_evicts_least_recently_active(
    make_store: StoreFactory, redis_client: redis.Redis, keyspace_audit: Any
) -> None:
    cap = 6
    store = make_store(config=Config(max_sessions_per_user=cap))
    made = [await store.create("user-1", device=PHONE) for _ in range(cap)]
    # Activity reorders recency: the two oldest become the most recently active.
    for s in made[:2]:
        assert await store.touch("user-1", s.session_id)
    extra = [await store.create("user-1", device=LAPTOP) for _ in range(cap - 2)]
    left = {s.session_id for s in await store.sessions("user-1")}
    assert left == {s.session_id for s in made[:2] + extra}  # made[2:] were evicted
    # Past the cap again: now made[0] is the least recently active.
    extra += [await store.create("user-1", device=LAPTOP)]
    left = {s.session_id for s in await store.sessions("user-1")}
    assert left == {s.session_id for s in made[1:2] + extra}
    # cap + 5 creations in all left exactly the cap, index and hashes agreeing.
    assert len(made) + len(extra) == cap + 5 and len(left) == cap
    index, hashes = index_and_hashes(redis_client, "dXNlci0x")
    assert index == hashes == left
    keyspace_audit(redis_client, "ss")


async def test_listing_prunes_dead_index_entries(
    store: StoreApi, redis_client: redis.Redis
) -> None:
    keep = await store.create("user-1", device=PHONE)
    lost = await store.create("user-1", device=PHONE)
    # A hash lost behind the store's back (eviction, data loss) must not linger in the index.
    redis_client.delete(f"ss:{{dXNlci0x}}:s:{lost.session_id}")
    assert [s.session_id for s in await store.sessions("user-1")] == [keep.session_id]
    index, hashes = index_and_hashes(redis_client, "dXNlci0x")
    assert index == hashes == {keep.session_id}


ODD_BUT_VALID = ["a}b", "{x}", "u:1", "*", "a", "a b", "ü-ñ-✓", "x" * 256, "?{}:*"]
HOSTILE = ["", "x" * 257, "x" * 10_000, "a\x00b", "\ud800", "ok\udfffok", 7, None, b"bytes", ["u"]]


async def test_odd_user_ids_are_isolated(store: StoreApi, redis_client: redis.Redis) -> None:
    made = {uid: await store.create(uid, device=PHONE) for uid in ODD_BUT_VALID}
    for uid, session in made.items():
        assert [s.session_id for s in await store.sessions(uid)] == [session.session_id]
        assert [s.user_id for s in await store.sessions(uid)] == [uid]
    for key in redis_client.scan_iter():
        tag = key.decode().split("{", 1)[1].split("}", 1)[0]
        assert all(ch not in tag for ch in "{}:*? \t")
    assert await store.revoke_user("a}b") == 1
    assert len(await store.sessions("a")) == 1


@pytest.mark.parametrize("user_id", HOSTILE, ids=repr)
async def test_hostile_user_ids_refused_before_redis(
    store: StoreApi, redis_client: redis.Redis, user_id: Any
) -> None:
    before = script_calls(redis_client)
    sid = "A" * 22
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: store.create(user_id, device=PHONE),
        lambda: store.get(user_id, sid),
        lambda: store.touch(user_id, sid),
        lambda: store.update(user_id, sid, data={}),
        lambda: store.revoke(user_id, sid),
        lambda: store.revoke_device(user_id, "phone-1"),
        lambda: store.revoke_user(user_id),
        lambda: store.sessions(user_id),
        lambda: store.devices(user_id),
    ]
    for make in calls:
        with pytest.raises(InvalidInput):
            await make()
    assert script_calls(redis_client) == before
    assert session_keys(redis_client) == []  # the near cache's watch key is no user's


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": {"blob": "x" * 5000}}, "over the 4096 byte limit"),
        ({"data": {1: "int key"}}, "str keys"),
        ({"data": {"obj": object()}}, "JSON-like"),
        ({"data": "not a dict"}, "dict"),
        ({"device": "phone"}, "Device"),
        ({"device": Device(id="")}, "device id"),
        ({"device": Device(id="x" * 65)}, "device id"),
        ({"device": Device(id="p", user_agent="u" * 2000)}, "user_agent"),
        ({"idle_ttl": 0}, "idle_ttl"),
        ({"idle_ttl": 10**9}, "idle_ttl"),
        ({"absolute_ttl": True}, "absolute_ttl"),
        ({"idle_ttl": 100, "absolute_ttl": 50}, "idle_ttl"),
    ],
)
async def test_bad_input_refused_before_redis(
    store: StoreApi, redis_client: redis.Redis, kwargs: dict[str, Any], message: str
) -> None:
    existing = await store.create("user-1", device=PHONE, data={"keep": 1})
    # The user's keys: the near cache's listener may create its watch key meanwhile.
    snapshot = {k: redis_client.dump(k) for k in session_keys(redis_client)}
    before = script_calls(redis_client)
    kwargs.setdefault("device", PHONE)
    with pytest.raises(InvalidInput, match=message):
        await store.create("user-1", **kwargs)
    if "data" in kwargs:
        with pytest.raises(InvalidInput):
            await store.update("user-1", existing.session_id, data=kwargs["data"])
    bad_sids: list[Any] = ["short", "A" * 21 + "!", 12, None]
    for bad_sid in bad_sids:
        with pytest.raises(InvalidInput):
            await store.get("user-1", bad_sid)
    assert script_calls(redis_client) == before
    assert {k: redis_client.dump(k) for k in session_keys(redis_client)} == snapshot


async def test_unreachable_server_is_store_unavailable(make_store: StoreFactory) -> None:
    from sessionstore.testing import free_port

    store = make_store(url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable) as caught:
        await store.create("user-1", device=PHONE)
    assert isinstance(caught.value.__cause__, (redis.ConnectionError, redis.TimeoutError))
    with pytest.raises(StoreUnavailable):
        await store.sessions("user-1")


async def test_no_resurrection_under_revoke_touch_race(
    make_store: StoreFactory, redis_client: redis.Redis, keyspace_audit: Any
) -> None:
    pairs = 200
    store = make_store()
    made = [await store.create(f"racer-{n % 20}", device=PHONE) for n in range(pairs)]
    inner = shell_of(store)
    if isinstance(inner, SessionStore):
        barrier = threading.Barrier(2)

        def run(fn: Callable[[], object]) -> None:
            barrier.wait()
            fn()

        for s in made:
            threads = [
                threading.Thread(
                    target=run, args=(partial(inner.revoke, s.user_id, s.session_id),)
                ),
                threading.Thread(target=run, args=(partial(inner.touch, s.user_id, s.session_id),)),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    else:
        for s in made:
            await asyncio.gather(
                store.revoke(s.user_id, s.session_id),
                store.touch(s.user_id, s.session_id),
                store.update(s.user_id, s.session_id, data={"x": 1}),
                return_exceptions=True,
            )
    assert session_keys(redis_client) == []
    for s in made[:10]:
        assert await store.get(s.user_id, s.session_id) is None
    keyspace_audit(redis_client, "ss")


def test_public_names() -> None:
    import types

    import sessionstore

    assert sessionstore.__all__ == sorted(sessionstore.__all__)
    public = {
        name
        for name, value in vars(sessionstore).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(sessionstore.__all__) == public


def test_user_owned_client_is_left_open(redis_client: redis.Redis) -> None:
    store = SessionStore(redis_client, config=Config())  # a RedisCluster on the cluster row
    session = store.create("user-1", device=PHONE)
    store.close()
    assert redis_client.ping() is True  # the store did not close a client it does not own
    assert redis_client.exists(f"ss:{{dXNlci0x}}:s:{session.session_id}") == 1
    with pytest.raises(InvalidInput, match="decode_responses"):
        SessionStore(redis.Redis(decode_responses=True))  # refused before it connects
    with pytest.raises(InvalidInput, match="url"):
        SessionStore.from_url("http://example.invalid")
