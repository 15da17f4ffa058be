"""The revocation feed (``<ns>:{!revocations}``): every revocation, in order, trimmed by
age, expiring when idle, never holding a secret, resumable from an id by a new store.

Every test runs on each engine row (a cluster included: there the stream's slot is not
the user's, and the append follows the revoking script) and in both modes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import math
import time
from typing import Any

import jwt
import pytest
import redis

from sessionstore import (
    Config,
    Device,
    InvalidInput,
    Keyring,
    RefreshReuseDetected,
    SessionStore,
    TokenPair,
)
from sessionstore.events import RevocationEntry
from sessionstore.keys import revocations_key, user_keys
from sessionstore.tokens import SECURITY_EVENT_TYPE, SESSION_REVOKED
from support import StoreApi, StoreFactory, shell_of

STREAM = revocations_key("ss")
PHONE, LAPTOP = Device(id="phone"), Device(id="laptop")
FIELDS = {b"at", b"user", b"sessions", b"reason"}


async def read(store: StoreApi, **kw: Any) -> list[RevocationEntry]:
    """Every entry ``store.revocations(**kw)`` yields (either mode)."""
    shell = shell_of(store)
    if hasattr(store, "inner"):
        return list(shell.revocations(**kw))  # type: ignore[arg-type]
    return [entry async for entry in shell.revocations(**kw)]  # type: ignore[union-attr]


def raw(client: redis.Redis) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The stream as the server holds it (XRANGE through the admin client)."""
    return client.xrange(STREAM)  # type: ignore[return-value]


async def one_of_each(store: StoreApi) -> tuple[list[tuple[str, set[str]]], list[TokenPair]]:
    """A revocation of every reason, in this order; what each revoked and every pair issued
    (store: ``max_sessions_per_user=2``)."""
    pairs, expected = [], []
    a = await store.login("alice", device=PHONE)
    b = await store.login("alice", device=LAPTOP)
    c = await store.login("alice", device=LAPTOP)  # the cap: a (least recently active) goes
    pairs += [a, b, c]
    expected.append(("evicted", {a.session_id}))
    assert await store.revoke("alice", b.session_id)
    expected.append(("revoke", {b.session_id}))
    d = await store.login("alice", device=LAPTOP)
    pairs.append(d)
    assert await store.revoke_device("alice", "laptop") == 2
    expected.append(("device", {c.session_id, d.session_id}))
    e = await store.login("bob", device=PHONE)
    f = await store.login("bob", device=LAPTOP)
    pairs += [e, f]
    assert await store.revoke_user("bob") == 2
    expected.append(("user", {e.session_id, f.session_id}))
    g = await store.login("carol", device=PHONE)
    pairs.append(g)
    assert await store.logout(g.access_token)
    expected.append(("logout", {g.session_id}))
    h = await store.login("dave", device=PHONE)
    h2 = await store.refresh(h.refresh_token)
    h3 = await store.refresh(h2.refresh_token)
    pairs += [h, h2, h3]
    with pytest.raises(RefreshReuseDetected):
        await store.refresh(h.refresh_token)  # two generations old: reuse revokes it
    expected.append(("reuse", {h.session_id}))
    # Nothing revoked, nothing appended: a revoke of a gone session, an empty walk.
    assert not await store.revoke("alice", b.session_id)
    assert await store.revoke_user("nobody") == 0
    return expected, pairs


FEED_CONFIG = Config(max_sessions_per_user=2)


async def test_every_revocation_is_an_entry_in_order(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    store = make_store(config=FEED_CONFIG)
    before = time.time()
    expected, _ = await one_of_each(store)
    after = time.time()
    entries = await read(store)
    users = ["alice", "alice", "alice", "bob", "carol", "dave"]
    assert [(e.reason, set(e.session_ids)) for e in entries] == expected
    assert [e.user_id for e in entries] == users
    # Stream ids grow strictly; each entry's time is the server's clock at the append (the
    # id's millisecond is taken from the same clock, a moment apart), within the test's span.
    ids = [tuple(map(int, e.id.split("-"))) for e in entries]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for entry, (ms, _) in zip(entries, ids, strict=True):
        assert abs(entry.at * 1000 - ms) <= 10
        assert before - 1 <= entry.at <= after + 1
    # What the server holds is exactly these entries, with exactly the documented fields.
    held = raw(redis_client)
    assert [entry_id.decode() for entry_id, _ in held] == [e.id for e in entries]
    assert all(set(fields) == FIELDS for _, fields in held)
    # The key expires with the retention (renewed on each append).
    assert 0 < redis_client.pttl(STREAM) <= 86_400_000


def _secrets(pairs: list[TokenPair], store: StoreApi) -> set[bytes]:
    """Every token, each of its parts, their SHA-256 (hex, base64url) and the keys."""
    found: set[str] = set()
    for pair in pairs:
        for token in (pair.access_token, pair.refresh_token):
            # Each part (JWS payload and signature, the refresh MAC), not its locator: the
            # session id is what an entry names.
            parts = [token, *(p for p in token.split(".") if len(p) >= 16)]
            parts = [p for p in parts if p != pair.session_id]
            found.update(parts)
            for part in parts:
                digest = hashlib.sha256(part.encode()).digest()
                found.add(digest.hex())
                found.add(base64.urlsafe_b64encode(digest).rstrip(b"=").decode())
    for key in store.keyring.to_private_jwks()["keys"]:
        found.update(str(v) for k, v in key.items() if k in ("k", "d"))
    return {s.encode() for s in found}


async def test_no_secret_in_any_entry(make_store: StoreFactory, redis_client: redis.Redis) -> None:
    store = make_store(config=FEED_CONFIG)
    _, pairs = await one_of_each(store)
    secrets = _secrets(pairs, store)
    held = raw(redis_client)
    assert len(held) == 6
    for _, fields in held:
        for name, value in fields.items():
            for secret in secrets:
                assert secret not in name and secret not in value, (name, value)


async def test_trimmed_by_age_and_gone_when_idle(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    store = make_store(config=Config(max_sessions_per_user=1, revocation_feed_retention=1))
    for _ in range(151):  # each login at the cap evicts the one before: 150 entries
        await store.login("alice", device=PHONE)
    held = raw(redis_client)
    assert len(held) == 150
    assert 0 < redis_client.pttl(STREAM) <= 1000
    await asyncio.sleep(1.2)
    pair = await store.login("alice", device=PHONE)  # one more entry, past the retention
    kept = raw(redis_client)
    # MINID ~ drops whole stream nodes (100 entries) older than the retention: the first
    # node went, the newest entry stands, and nothing newer than the cut was dropped.
    assert len(kept) < 100
    assert kept[-1][1][b"reason"] == b"evicted"
    cut = (time.time() - 1) * 1000
    assert all(int(i.split(b"-")[0]) < cut for i, _ in held[: 151 - len(kept)])
    assert await store.revoke("alice", pair.session_id)
    await asyncio.sleep(1.2)  # no append for a whole retention: the key has expired
    assert redis_client.exists(STREAM) == 0
    assert await read(store) == []


async def test_a_new_store_resumes_after_an_id(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    first = make_store()
    pairs = [await first.login(f"user-{n}", device=PHONE) for n in range(3)]
    for n, pair in enumerate(pairs):
        assert await first.revoke(f"user-{n}", pair.session_id)
    seen = await read(first)
    assert [e.session_ids for e in seen] == [(p.session_id,) for p in pairs]
    resume = seen[1].id  # the consumer stopped after the second entry
    await first.close()
    later = make_store()  # a restart: a new store, nothing kept but the id
    more = [await later.login("user-9", device=PHONE) for _ in range(2)]
    assert await later.revoke_user("user-9") == 2
    after = await read(later, since=resume)
    assert [e.id for e in after] == [seen[2].id, *(e.id for e in after[1:])]
    assert len(after) == 2 and after[0] == seen[2]
    assert set(after[1].session_ids) == {p.session_id for p in more}
    assert await read(later, since=after[-1].id) == []  # the tail: nothing after the last
    # Paged reads (one XRANGE per `count`) see the same entries; a time starts at or after.
    assert await read(later, count=1) == [*seen, after[1]]
    assert await read(later, since=math.floor(seen[0].at * 1000) / 1000) == [*seen, after[1]]
    assert await read(later, since=time.time() + 60) == []


@pytest.mark.parametrize(
    "kw",
    [
        {"since": "not-an-id"},
        {"since": "1-2-3"},
        {"since": -1},
        {"since": float("nan")},
        {"since": True},
        {"since": b"0-0"},
        {"count": 0},
        {"count": 10_001},
        {"count": 1.5},
    ],
)
async def test_bad_arguments_are_refused_before_any_io(
    make_store: StoreFactory, kw: dict[str, Any]
) -> None:
    store = make_store()
    shell = shell_of(store)
    with pytest.raises(InvalidInput):
        shell.revocations(**kw)  # refused when called, not when iterated


@pytest.mark.parametrize("value", [-1, 30 * 86400 + 1, 1.5, True, "3600"])
def test_the_retention_is_checked(value: Any) -> None:
    with pytest.raises(InvalidInput, match="revocation_feed_retention"):
        Config(revocation_feed_retention=value)


async def test_off_writes_no_stream(make_store: StoreFactory, redis_client: redis.Redis) -> None:
    store = make_store(config=Config(revocation_feed_retention=0, refresh_grace=0))
    pair = await store.login("alice", device=PHONE)
    assert await store.revoke("alice", pair.session_id)
    await store.login("alice", device=PHONE)
    assert await store.revoke_user("alice") == 1
    assert redis_client.exists(STREAM) == 0
    assert await read(store) == []


async def test_a_refused_append_never_fails_the_revocation(
    make_store: StoreFactory, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sessionstore")
    redis_client.set(STREAM, "not a stream", px=60_000)  # XADD answers WRONGTYPE
    store = make_store()
    pairs = [await store.login("alice", device=PHONE) for _ in range(3)]
    assert await store.revoke("alice", pairs[0].session_id)
    assert await store.revoke_user("alice") == 2  # the walk went on to its end
    assert await store.sessions("alice") == []
    lost = [r for r in caplog.records if "not appended" in r.getMessage()]
    assert len(lost) == 2
    assert all(p.refresh_token not in r.getMessage() for r in lost for p in pairs)


async def test_the_stream_has_its_own_slot(make_store: StoreFactory, redis_client: Any) -> None:
    """On a cluster the stream's slot is not the user's: the scripts could not write it."""
    store = make_store()
    pair = await store.login("alice", device=PHONE)
    assert await store.revoke("alice", pair.session_id)
    [entry] = await read(store)
    assert entry.session_ids == (pair.session_id,)
    index = user_keys("ss", "alice").index
    if hasattr(redis_client, "keyslot"):
        assert redis_client.keyslot(STREAM) != redis_client.keyslot(index)


async def test_security_event_tokens_when_asked(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    """``revocation_feed_sets``: one signed SET (RFC 8417, CAEP session-revoked) per session,
    verifiable with the keyring's public JWK Set alone."""
    keyring = Keyring.generate("ES256")
    store = make_store(config=Config(revocation_feed_sets=True), keyring=keyring)
    pairs = [await store.login("alice", device=PHONE) for _ in range(2)]
    assert await store.revoke_user("alice") == 2
    [entry] = await read(store)
    assert len(entry.security_events) == 2
    public = jwt.PyJWKSet.from_dict(keyring.to_jwks()).keys[0]
    jtis = set()
    for sid, token in zip(entry.session_ids, entry.security_events, strict=True):
        assert jwt.get_unverified_header(token)["typ"] == SECURITY_EVENT_TYPE
        claims = jwt.decode(token, public.key, algorithms=["ES256"], audience="sessionstore")
        assert claims["iss"] == "sessionstore"
        assert claims["sub_id"]["user"] == {"format": "opaque", "id": "alice"}
        assert claims["sub_id"]["session"] == {"format": "opaque", "id": sid}
        assert claims["events"][SESSION_REVOKED]["reason_admin"] == {"en": "user"}
        jtis.add(claims["jti"])
    assert len(jtis) == 2 and set(entry.session_ids) == {p.session_id for p in pairs}
    secrets = _secrets(pairs, store)
    for _, fields in raw(redis_client):
        assert not any(secret in value for secret in secrets for value in fields.values())


def test_security_event_tokens_need_a_signing_key() -> None:
    public = Keyring.from_jwks(Keyring.generate("ES256").to_jwks())
    with pytest.raises(InvalidInput, match="revocation_feed_sets"):
        SessionStore.from_url("redis://127.0.0.1:1/0", keyring=public, config=SETS)
    with pytest.raises(InvalidInput, match="revocation_feed_sets"):
        Config(revocation_feed_sets="yes")  # type: ignore[arg-type]


SETS = Config(revocation_feed_sets=True)
