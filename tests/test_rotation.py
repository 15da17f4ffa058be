"""Session-id rotation against real engines, sync and async (one body each): ``rotate``
moves a session to a new id with everything it holds, and leaves nothing of the old id
that a token, a cookie or another process could still use."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
import redis

from observe import script_calls
from sessionstore import (
    Config,
    Device,
    InvalidInput,
    InvalidToken,
    RefreshReuseDetected,
    SessionRevoked,
    events,
)
from sessionstore.keys import user_keys
from support import StoreApi, StoreFactory, warm

PHONE = Device(id="phone-1", name="Pixel 8", user_agent="Mozilla/5.0 (Linux)", ip="10.0.0.7")
USER = {"roles": ["user"]}
ADMIN = {"roles": ["admin"]}
# Refresh state: rotation starts it again under the new id.
REFRESH_FIELDS = {b"g", b"k", b"t"}


def payload(token: str) -> dict[str, Any]:
    """The claims of a token we issued (its signature is checked elsewhere)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def everything(client: redis.Redis) -> dict[bytes, Any]:
    """Every key of the default namespace with its content (the keyspace, as a reader)."""
    found: dict[bytes, Any] = {}
    for key in client.scan_iter(match="ss:*"):
        kind = client.type(key)
        if kind == b"hash":
            found[key] = client.hgetall(key)
        elif kind == b"zset":
            found[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"string":
            found[key] = client.get(key)
        elif kind == b"list":  # the user's history: an audit trail keeps the old id's entries
            continue
        else:  # the revocation feed (a stream): its entries
            found[key] = client.xrange(key)
    return found


def absolute_deadline_ms(client: redis.Redis, key: str) -> int:
    """A live session hash's absolute deadline (server ms)."""
    value: Any = client.hget(key, "a")
    return int(value)


def mentions(state: dict[bytes, Any], text: str) -> list[bytes]:
    """The keys whose name or content spells ``text``."""
    needle = text.encode()
    return [key for key, value in state.items() if needle in key or needle in repr(value).encode()]


async def test_rotation_moves_everything_to_a_new_id(
    store: StoreApi, make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    seen: list[events.Event] = []
    store = make_store(on_event=seen.append)
    pair = await store.login(
        "user-1",
        device=PHONE,
        claims=USER,
        data={"cart": [1, 2]},
        methods="pwd",
        level=1,
        persistent=False,
        idle_ttl=1200,
    )
    await store.step_up("user-1", pair.session_id, method="otp", level=2)
    neighbour = await store.login("user-1", device=PHONE)
    before = await store.get("user-1", pair.session_id)
    assert before is not None
    keys = user_keys("ss", "user-1")
    old_hash = redis_client.hgetall(keys.session(pair.session_id))
    old_score = redis_client.zscore(keys.index, pair.session_id)
    other = make_store()  # another process' store, serving the old token from its cache
    await warm(other, pair.access_token)

    rotated = await store.rotate("user-1", pair.session_id)
    assert rotated.session_id != pair.session_id and not rotated.persistent
    # The old id is refused at once everywhere: this store, the warm one, a cold one (its
    # refresh token is reuse: test_a_refresh_token_of_the_old_id_revokes_the_moved_session).
    for validator in (store, other, make_store()):
        with pytest.raises(SessionRevoked):
            await validator.validate(pair.access_token)

    # No key names or holds the old id but the revocation feed, which says it was rotated,
    # and what makes its refresh tokens reuse of the family: its moved key (naming the new
    # id) and the moved session's ORIGIN field (the family's first id).
    state = everything(redis_client)
    feed = [key for key in state if key.endswith(b"{!revocations}")]
    assert {k for k in mentions(state, pair.session_id) if k not in feed} == {
        keys.moved(pair.session_id).encode(),
        keys.session(rotated.session_id).encode(),
    }
    assert state[keys.moved(pair.session_id).encode()] == rotated.session_id.encode()
    assert set(redis_client.zrange(keys.index, 0, -1)) == {
        rotated.session_id.encode(),
        neighbour.session_id.encode(),
    }
    (entry,) = [e for e in store_revocations(redis_client, feed) if pair.session_id in e]
    assert "rotated" in entry
    # The history records it: the old id revoked, reason "rotated" (its sign-in stays).
    newest, *older = await store.history("user-1")
    assert (newest.kind, newest.reason) == ("revoked", "rotated")
    assert newest.session_ref == pair.session_id[:4]
    assert any(e.kind == "login" and e.session_id == pair.session_id for e in older)

    # The new hash is the old one, but its refresh state; same TTL, same index score.
    new_hash = redis_client.hgetall(keys.session(rotated.session_id))
    assert new_hash.pop(b"o") == pair.session_id.encode()
    assert {k: v for k, v in new_hash.items() if k not in REFRESH_FIELDS} == {
        k: v for k, v in old_hash.items() if k not in REFRESH_FIELDS
    }
    assert new_hash[b"g"] == b"1" and b"t" not in new_hash
    assert redis_client.zscore(keys.index, rotated.session_id) == old_score
    assert redis_client.pttl(keys.session(rotated.session_id)) > 0

    # The new pair speaks for the same session: device, data, claims, auth, lifetimes.
    principal = await other.validate(rotated.access_token)
    session = principal.session
    assert session is not None and principal.session_id == rotated.session_id
    assert principal.claims == USER and payload(rotated.access_token)["roles"] == ["user"]
    assert (principal.auth_time, principal.amr, principal.acr) == (
        before.auth_time,
        ("pwd", "otp"),
        2,
    )
    for name in ("device", "data", "claims", "created_at", "persistent", "absolute_expires_at"):
        assert getattr(session, name) == getattr(before, name), name
    assert session.idle_expires_at == before.idle_expires_at
    claims = payload(rotated.access_token)
    assert (claims["amr"], claims["acr"], claims["auth_time"]) == (
        ["pwd", "otp"],
        "2",
        before.auth_time,
    )
    # Its refresh token works (and rotates on), the neighbour is untouched.
    again = await store.refresh(rotated.refresh_token)
    assert (await store.validate(again.access_token)).session_id == rotated.session_id
    assert (await store.validate(neighbour.access_token)).session_id == neighbour.session_id
    # Newest first: the rotated session keeps its creation time, older than the neighbour.
    listed = [s.session_id for s in await store.sessions("user-1")]
    assert listed == [neighbour.session_id, rotated.session_id]

    moved = [e for e in seen if isinstance(e, events.Rotated)]
    assert moved == [
        events.Rotated(
            user_id="user-1",
            session_id=rotated.session_id,
            previous_session_id=pair.session_id,
            at=moved[0].at,
        )
    ]
    revoked = [e for e in seen if isinstance(e, events.Revoked)]
    assert [(e.session_ids, e.reason) for e in revoked] == [((pair.session_id,), "rotated")]
    # No event carries a token.
    assert all(pair.access_token not in repr(e) for e in seen)


def store_revocations(client: redis.Redis, feed: list[bytes]) -> list[str]:
    """The revocation feed's entries as text (session ids and reason)."""
    return [repr(fields) for key in feed for _, fields in client.xrange(key) or []]


async def test_a_planted_session_is_worthless_after_the_rotation(
    store: StoreApi, make_store: StoreFactory
) -> None:
    # Fixation: an attacker gets a session and plants its id (a cookie) in a victim's
    # browser; the victim signs in on it, and the app rotates on the privilege change.
    planted = await store.login("user-1", device=PHONE, claims=USER)
    attacker = make_store()
    await warm(attacker, planted.access_token)
    mine = await store.rotate("user-1", planted.session_id, claims=ADMIN)
    assert (await store.validate(mine.access_token)).claims == ADMIN
    with pytest.raises(SessionRevoked):
        await attacker.validate(planted.access_token)
    with pytest.raises(SessionRevoked):
        await attacker.rotate("user-1", planted.session_id)
    with pytest.raises(SessionRevoked):
        await attacker.update("user-1", planted.session_id, claims=ADMIN)
    # What the attacker knows names nothing live: the victim's session stands.
    assert (await attacker.validate(mine.access_token)).claims == ADMIN
    assert [s.session_id for s in await store.sessions("user-1")] == [mine.session_id]
    # The planted refresh token never reaches the victim's session: it is reuse of the
    # family, which is revoked (the victim signs in again; the attacker gets nothing).
    with pytest.raises(RefreshReuseDetected):
        await attacker.refresh(planted.refresh_token)
    with pytest.raises(SessionRevoked):
        await attacker.validate(mine.access_token)
    assert await store.sessions("user-1") == []


async def test_rotation_can_change_the_claims_in_the_same_step(
    store: StoreApi, redis_client: redis.Redis
) -> None:
    pair = await store.login("user-1", device=PHONE, claims=USER, data={"a": 1})
    rotated = await store.rotate("user-1", pair.session_id, claims=ADMIN)
    assert payload(rotated.access_token)["roles"] == ["admin"]
    principal = await store.validate(rotated.access_token)
    assert principal.claims == ADMIN
    assert principal.session is not None and principal.session.data == {"a": 1}
    twice = await store.rotate("user-1", rotated.session_id)
    assert payload(twice.access_token)["roles"] == ["admin"]
    assert len(list(redis_client.scan_iter(match="ss:*:s:*"))) == 1


async def test_gone_sessions_are_refused_and_nothing_is_written(
    store: StoreApi, redis_client: redis.Redis
) -> None:
    pair = await store.login("user-1", device=PHONE)
    await store.revoke("user-1", pair.session_id)
    before = everything(redis_client)
    with pytest.raises(SessionRevoked):
        await store.rotate("user-1", pair.session_id)
    with pytest.raises(SessionRevoked):
        await store.rotate("user-2", "A" * 22)
    assert everything(redis_client) == before


@pytest.mark.parametrize(
    ("user_id", "session_id", "claims"),
    [
        ("user-1", "not a session id!", None),
        ("", "A" * 22, None),
        ("user-1", "A" * 22, {"sid": "x"}),
        ("user-1", "A" * 22, {"blob": "x" * 2000}),
        ("user-1", "A" * 22, "roles"),
    ],
)
async def test_bad_input_is_refused_before_redis(
    store: StoreApi,
    open_store: StoreFactory,
    redis_client: redis.Redis,
    user_id: str,
    session_id: str,
    claims: Any,
) -> None:
    pair = await store.login("user-1", device=PHONE)
    if session_id == "A" * 22:
        session_id = pair.session_id
    before, calls = everything(redis_client), script_calls(redis_client)
    with pytest.raises(InvalidInput):
        await store.rotate(user_id, session_id, claims=claims)
    assert script_calls(redis_client) == calls and everything(redis_client) == before
    # Nothing listens on port 1: the refusal is made before any connection.
    dead = open_store("redis://127.0.0.1:1/0")
    with pytest.raises(InvalidInput):
        await dead.rotate(user_id, session_id, claims=claims)


async def test_a_verify_only_keyring_cannot_rotate(
    store: StoreApi, open_store: StoreFactory, redis_url: str
) -> None:
    from sessionstore import Keyring

    signer = Keyring.generate("ES256")
    verifier = open_store(redis_url, keyring=Keyring.from_jwks(signer.to_jwks()))
    with pytest.raises(InvalidInput):
        await verifier.rotate("user-1", "A" * 22)


async def test_a_token_of_the_old_id_never_comes_back(make_store: StoreFactory) -> None:
    # The feed off, the token cache on: the old token is refused from memory and Redis.
    store = make_store(config=Config(revocation_feed_retention=0))
    pair = await store.login("user-1", device=PHONE)
    await store.validate(pair.access_token)
    await store.validate(pair.access_token)
    await store.rotate("user-1", pair.session_id)
    for _ in range(3):
        with pytest.raises(InvalidToken):
            await store.validate(pair.access_token)


async def test_a_refresh_token_of_the_old_id_revokes_the_moved_session(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    # README's /become-admin: a leaked access token alone rotates the session, and the
    # rotation hands its caller a new refresh token. The real user's refresh token (of the
    # old id) coming back is reuse of the family: the session it moved to is revoked, as
    # for a spent generation, and the rotation's caller keeps nothing.
    seen: list[events.Event] = []
    store = make_store(on_event=seen.append)
    pair = await store.login("user-1", device=PHONE, claims=USER)
    stolen = await store.rotate("user-1", pair.session_id, claims=ADMIN)
    keys = user_keys("ss", "user-1")
    moved_key = keys.moved(pair.session_id)
    deadline_ms = absolute_deadline_ms(redis_client, keys.session(stolen.session_id))
    other = make_store()  # another process, serving the new session from its near cache
    await warm(other, stolen.access_token)
    seen.clear()

    with pytest.raises(RefreshReuseDetected):
        await store.refresh(pair.refresh_token)  # a genuine token, of the old id

    for validator in (store, other, make_store()):
        with pytest.raises(SessionRevoked):
            await validator.validate(stolen.access_token)
    with pytest.raises(SessionRevoked):
        await store.refresh(stolen.refresh_token)
    assert await store.sessions("user-1") == []
    assert redis_client.exists(keys.session(stolen.session_id)) == 0
    reuse = [e for e in seen if isinstance(e, events.ReuseDetected)]
    assert [(e.session_id, e.previous_session_id) for e in reuse] == [
        (stolen.session_id, pair.session_id)
    ]
    revoked = [e for e in seen if isinstance(e, events.Revoked)]
    assert [(e.session_ids, e.reason) for e in revoked] == [((stolen.session_id,), "reuse")]
    # The feed and the history record it as a generation's reuse, naming the revoked id.
    state = everything(redis_client)
    feed = [key for key in state if key.endswith(b"{!revocations}")]
    (entry,) = [e for e in store_revocations(redis_client, feed) if stolen.session_id in e]
    assert "reuse" in entry
    newest, second, *_ = await store.history("user-1")
    assert (newest.kind, newest.reason, newest.session_ref) == (
        "revoked",
        "reuse",
        stolen.session_id[:4],
    )
    assert (second.kind, second.session_ref) == ("reuse", stolen.session_id[:4])
    # Once the family is gone, the old token is refused as any token of a gone session.
    with pytest.raises(SessionRevoked):
        await store.refresh(pair.refresh_token)
    # The moved key expires at the session's absolute deadline, never later.
    assert 0 < redis_client.pexpiretime(moved_key) <= deadline_ms


async def test_the_first_id_still_reaches_the_newest_session(
    store: StoreApi, redis_client: redis.Redis
) -> None:
    pair = await store.login("user-1", device=PHONE)
    current = await store.refresh(pair.refresh_token)  # generation 2 of the first id
    second = await store.rotate("user-1", pair.session_id)
    third = await store.rotate("user-1", second.session_id)
    newest = await store.rotate("user-1", third.session_id, claims=ADMIN)
    keys = user_keys("ss", "user-1")
    # Every old id is at most two reads from the newest: the first id names it, the
    # others name the first id; all expire with the session's absolute deadline.
    deadline_ms = absolute_deadline_ms(redis_client, keys.session(newest.session_id))
    for old in (pair, second, third):
        assert 0 < redis_client.pexpiretime(keys.moved(old.session_id)) <= deadline_ms
    assert redis_client.get(keys.moved(pair.session_id)) == newest.session_id.encode()
    assert redis_client.get(keys.moved(third.session_id)) == pair.session_id.encode()

    with pytest.raises(RefreshReuseDetected):
        await store.refresh(current.refresh_token)  # the first id's, any generation
    with pytest.raises(SessionRevoked):
        await store.validate(newest.access_token)
    assert await store.sessions("user-1") == []

    # The same from a middle id: its moved key leads through the first id.
    again = await store.login("user-1", device=PHONE)
    moved = await store.rotate("user-1", again.session_id)
    last = await store.rotate("user-1", moved.session_id)
    with pytest.raises(RefreshReuseDetected):
        await store.refresh(moved.refresh_token)
    with pytest.raises(SessionRevoked):
        await store.validate(last.access_token)


async def test_a_plain_revoked_session_keeps_its_answer(
    store: StoreApi, redis_client: redis.Redis
) -> None:
    # No rotation, no moved key: a refresh token of a revoked session is SessionRevoked,
    # and revokes nothing else; nor does a session rotated without refresh tokens leave a
    # moved key (nothing of its old id could be presented).
    pair = await store.login("user-1", device=PHONE)
    neighbour = await store.login("user-1", device=PHONE)
    await store.revoke("user-1", pair.session_id)
    keys = user_keys("ss", "user-1")
    assert redis_client.exists(keys.moved(pair.session_id)) == 0
    with pytest.raises(SessionRevoked):
        await store.refresh(pair.refresh_token)
    assert (await store.validate(neighbour.access_token)).session_id == neighbour.session_id
    made = await store.create("user-1", device=PHONE)
    moved = await store.rotate_session("user-1", made.session_id)
    assert redis_client.exists(keys.moved(made.session_id)) == 0
    assert b"o" not in redis_client.hgetall(keys.session(moved.session_id))


async def test_the_old_refresh_token_has_no_grace_after_a_rotation(
    make_store: StoreFactory,
) -> None:
    # A client that lost the rotation's answer presents its refresh token at once: no
    # grace (unlike a refresh's previous generation), or whoever rotated with a leaked
    # access token would share the session with it. The session is revoked.
    store = make_store(config=Config(refresh_grace=3600))
    pair = await store.login("user-1", device=PHONE)
    newer = await store.refresh(pair.refresh_token)
    rotated = await store.rotate("user-1", pair.session_id)
    with pytest.raises(RefreshReuseDetected):
        await store.refresh(newer.refresh_token)  # the old id's current token, at once
    with pytest.raises(SessionRevoked):
        await store.validate(rotated.access_token)
    with pytest.raises(SessionRevoked):  # the family is gone: nothing left to revoke
        await store.refresh(pair.refresh_token)


async def test_signing_out_with_the_old_ids_tokens_ends_the_rotated_session(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    """A victim whose session was rotated by whoever held a leaked access token signs out
    with the tokens they still have: the session ends, not only its old id."""
    seen: list[events.Event] = []
    store = make_store(on_event=seen.append)
    other = make_store()
    pair = await store.login("user-1", device=PHONE)
    neighbour = await store.login("user-1", device=PHONE)
    rotated = await store.rotate("user-1", pair.session_id)
    await warm(other, rotated.access_token)
    await store.logout(pair.access_token)
    for validator in (store, other, make_store()):
        with pytest.raises(SessionRevoked):
            await validator.validate(rotated.access_token)
    [revoked] = [e for e in seen if isinstance(e, events.Revoked) and e.reason == "logout"]
    assert revoked.session_ids == (rotated.session_id,)
    newest = (await store.history("user-1"))[0]
    assert (newest.kind, newest.reason, newest.session_id) == ("revoked", "logout", None)
    assert newest.session_ref == rotated.session_id[:4]
    # An admin revoking the old id (say, from a log line) ends the session just the same.
    again = await store.rotate("user-1", neighbour.session_id)
    assert await store.revoke("user-1", neighbour.session_id) is True
    with pytest.raises(SessionRevoked):
        await store.validate(again.access_token)
    assert await store.revoke("user-1", neighbour.session_id) is False  # nothing left
    assert redis_client.zcard(user_keys("ss", "user-1").index) == 0
