"""Adoption from stateless JWTs (``Config.legacy_tokens``) on the real engine rows, both APIs.

A legacy PyJWT token is accepted and exchanged for a sessionstore session on first sight,
once: replays (also 50 racing first sightings) map to that one session; expired,
out-of-window, wrong-issuer/audience and wrong-algorithm tokens are refused with typed
errors before any Redis command (``INFO commandstats`` says no write ran); the marker holds
a digest, never the token; and with adoption off nothing changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
import pytest
import redis

from legacy_support import AUDIENCE, ISSUER, SECRET, legacy, legacy_token
from observe import command_stats
from sessionstore import (
    Config,
    InvalidInput,
    InvalidToken,
    LegacyTokenExpired,
    LegacyTokenRefused,
    LegacyTokenTooOld,
    LegacyWindowClosed,
    SessionRevoked,
    SessionStore,
    TokenExpired,
    events,
)
from sessionstore.errors import InvalidHeader
from sessionstore.keys import legacy_marker_key
from sessionstore.tokens import issue_access_token
from support import PHONE, StoreFactory, shell_of

# Every command that writes, as a script or on its own (scripts' commands count too).
WRITES = {
    "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "set", "hset", "zadd", "del",
    "unlink", "expire", "pexpire", "pexpireat", "zrem", "publish", "hdel", "incrby",
}  # fmt: skip


def writes(client: redis.Redis) -> int:
    """Write commands (every primary of a cluster) run so far, from INFO commandstats."""
    return sum(
        int(stats["calls"])
        for node in command_stats(client)
        for name, stats in node.items()
        if name.removeprefix("cmdstat_") in WRITES
    )


def recorder() -> tuple[list[events.Event], Any]:
    seen: list[events.Event] = []
    return seen, seen.append


async def test_a_legacy_token_is_adopted_once_and_exchanged(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    seen, hook = recorder()
    store = make_store(config=Config(legacy_tokens=legacy()), on_event=hook)
    token = legacy_token()
    first = await store.validate(token, ip="10.0.0.9", user_agent="LegacyApp/1.0")
    assert first.adopted is not None and not first.degraded
    assert (first.user_id, first.session_id) == ("user-1", first.adopted.session_id)
    assert first.claims == {"role": "admin"}  # copy_claims carried over
    assert first.session is not None and first.session.device.id == "legacy"
    assert first.session.device.user_agent == "LegacyApp/1.0"
    assert first.expires_at == jwt.decode(token, options={"verify_signature": False})["exp"]
    # The new pair is a sessionstore pair like a login's.
    ours = await store.validate(first.adopted.access_token)
    assert (ours.session_id, ours.claims, ours.adopted) == (
        first.session_id,
        {"role": "admin"},
        None,
    )
    refreshed = await store.refresh(first.adopted.refresh_token)
    assert refreshed.session_id == first.session_id
    # The legacy token keeps working, on the same session, with no second pair.
    for _ in range(3):
        again = await store.validate(token)
        assert (again.session_id, again.adopted) == (first.session_id, None)
        assert again.session is not None
    assert [s.session_id for s in await store.sessions("user-1")] == [first.session_id]
    adopted = [e for e in seen if isinstance(e, events.Adopted)]
    assert len(adopted) == 1 and adopted[0].session_id == first.session_id
    assert not any(isinstance(e, events.ValidationFailed) for e in seen)
    # The marker names the session under the token's digest; the token is nowhere.
    digest = jwt.utils.base64url_encode(hashlib.sha256(token.encode()).digest())
    marker = legacy_marker_key("ss", "user-1", digest.decode())
    assert redis_client.get(marker) == first.session_id.encode()
    ttl = redis_client.pttl(marker)
    assert 0 < ttl <= (600 + 30 + 1) * 1000  # until the token's exp (and leeway)
    for key in redis_client.scan_iter(count=1000):
        assert token.encode() not in key
        if redis_client.type(key) == b"hash":
            assert not any(token.encode() in v for v in redis_client.hvals(key))
        elif redis_client.type(key) == b"string":
            assert token.encode() not in (redis_client.get(key) or b"")


async def test_an_adoption_at_the_cap_feeds_the_session_it_evicts(
    make_store: StoreFactory,
) -> None:
    store = make_store(config=Config(legacy_tokens=legacy(), max_sessions_per_user=1))
    old = await store.login("user-1", device=PHONE)
    adopted = await store.validate(legacy_token())
    assert adopted.adopted is not None
    with pytest.raises(SessionRevoked):
        await store.validate(old.access_token)
    shell = shell_of(store)
    if hasattr(store, "inner"):
        entries = list(shell.revocations())  # type: ignore[arg-type]
    else:
        entries = [e async for e in shell.revocations()]  # type: ignore[union-attr]
    assert [(e.reason, e.user_id, e.session_ids) for e in entries] == [
        ("evicted", "user-1", (old.session_id,))
    ]


async def test_fifty_racing_first_sightings_mint_one_session(make_store: StoreFactory) -> None:
    # Fifty at once on a loaded CI box: a generous socket timeout (the default 0.25 s timed
    # a connect out in one CI run); what is asserted is counts, never times.
    store = make_store(config=Config(legacy_tokens=legacy(), socket_timeout=10.0))
    token = legacy_token("racer")
    shell = shell_of(store)
    if isinstance(shell, SessionStore):
        sync = shell
        with ThreadPoolExecutor(max_workers=25) as pool:
            found = list(pool.map(lambda _: sync.validate(token), range(50)))
    else:
        found = await asyncio.gather(*(store.validate(token) for _ in range(50)))
    assert len({p.session_id for p in found}) == 1
    assert sum(p.adopted is not None for p in found) == 1  # one pair, to one request
    assert [s.session_id for s in await store.sessions("racer")] == [found[0].session_id]


def refused_cases() -> list[tuple[str, Any, type[InvalidToken], str]]:
    """(case, token maker taking `now`, error, reason)."""
    refused, old, expired = LegacyTokenRefused, LegacyTokenTooOld, LegacyTokenExpired
    none = jwt.encode({"sub": "u"}, "", algorithm="none")
    return [
        ("expired", lambda n: legacy_token(iat=n - 900, exp=n - 300), expired, "expired"),
        ("before the window", lambda n: legacy_token(iat=n - 7200), old, "too_old"),
        ("issuer", lambda n: legacy_token(iss="https://evil.example"), refused, "issuer"),
        ("audience", lambda n: legacy_token(aud="other-api"), refused, "audience"),
        ("no audience", lambda n: legacy_token(aud=None), refused, "claims"),
        ("algorithm", lambda n: legacy_token(key=SECRET * 2, alg="HS512"), refused, "algorithm"),
        ("alg none", lambda n: none, refused, "algorithm"),
        ("no user", lambda n: legacy_token(sub=None), refused, "claims"),
        ("no iat", lambda n: legacy_token(iat=None), refused, "claims"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "make", "error", "reason"), refused_cases(), ids=[c[0] for c in refused_cases()]
)
async def test_refused_legacy_tokens_are_typed_and_write_nothing(
    make_store: StoreFactory,
    redis_client: redis.Redis,
    case: str,
    make: Any,
    error: type[InvalidToken],
    reason: str,
) -> None:
    seen, hook = recorder()
    # No near cache: its listener sets its watch key once, whenever its thread gets to it.
    config = Config(legacy_tokens=legacy(), near_cache_size=0)
    store = make_store(config=config, on_event=hook)
    await store.login("warm-up", device=PHONE)  # connections and scripts: set up
    before, keys = writes(redis_client), redis_client.dbsize()
    token = make(int(time.time()))
    for _ in range(3):
        with pytest.raises(InvalidToken) as caught:
            await store.validate(token)
        assert type(caught.value) is error and getattr(caught.value, "reason", None) == reason
    assert writes(redis_client) == before, case
    assert redis_client.dbsize() == keys
    assert await store.sessions("user-1") == []
    failed = [e for e in seen if isinstance(e, events.ValidationFailed)]
    assert [e.reason for e in failed] == [error.__name__] * 3


async def test_the_window_closes_for_every_legacy_token(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    now = time.time()
    closed = legacy(window_start=now - 7200, window_end=now - 60)
    store = make_store(config=Config(legacy_tokens=closed, near_cache_size=0))
    await store.login("warm-up", device=PHONE)
    before = writes(redis_client)
    with pytest.raises(LegacyWindowClosed):
        await store.validate(legacy_token(iat=int(now) - 3600))
    assert writes(redis_client) == before


async def test_foreign_and_our_own_tokens_are_not_tried_as_legacy(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    store = make_store(config=Config(legacy_tokens=legacy(), near_cache_size=0))
    await store.login("warm-up", device=PHONE)
    before = writes(redis_client)
    with pytest.raises(InvalidToken) as caught:  # another app's key: not a legacy token
        await store.validate(legacy_token(key=b"x" * 40))
    assert not isinstance(caught.value, LegacyTokenRefused)
    assert isinstance(caught.value, InvalidHeader)  # our own gate's verdict stands
    now = int(time.time())
    ours, _ = issue_access_token(
        store.keyring,
        user_id="user-1",
        session_id="S" * 22,
        claims={},
        config=store.config,
        now=now - 3600,
    )
    with pytest.raises(TokenExpired) as expired:  # ours, expired: never a legacy token
        await store.validate(ours)
    assert not isinstance(expired.value, LegacyTokenRefused)
    assert writes(redis_client) == before


async def test_a_revoked_adopted_session_is_never_minted_again(make_store: StoreFactory) -> None:
    store = make_store(config=Config(legacy_tokens=legacy()))
    token = legacy_token("leaver")
    first = await store.validate(token)
    assert first.adopted is not None
    assert await store.revoke_user("leaver") == 1  # "sign out everywhere"
    with pytest.raises(SessionRevoked):
        await store.validate(token)
    assert await store.sessions("leaver") == []


async def test_adoption_is_off_unless_configured(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    store = make_store(config=Config(near_cache_size=0))
    await store.login("warm-up", device=PHONE)
    before = writes(redis_client)
    with pytest.raises(InvalidToken) as caught:
        await store.validate(legacy_token())
    assert not isinstance(caught.value, LegacyTokenRefused)
    assert writes(redis_client) == before
    assert await store.sessions("user-1") == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"algorithms": ["none"]}, "never 'none'"),
        ({"algorithms": []}, "non-empty"),
        ({"algorithms": "HS256"}, "non-empty"),
        ({"algorithms": ["HS256", "RS256"]}, "mix"),
        ({"key": b"short-secret"}, "at least 32 bytes"),
        ({"key": b"k" * 40, "algorithms": ["HS512"]}, "too short for HS512"),
        ({"window_end": 0.0, "window_start": 10.0}, "after window_start"),
        ({"window_start": float("nan")}, "finite"),
        ({"window_start": "yesterday"}, "Unix seconds"),
        ({"issuer": ""}, "issuer"),
        ({"leeway": -1}, "leeway"),
        ({"user_claim": ""}, "user_claim"),
        ({"copy_claims": "role"}, "copy_claims"),
        ({"device_id": ""}, "device id"),
    ],
)
def test_a_bad_legacy_setup_is_refused_at_construction(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        legacy(**changes)


def test_the_setup_hides_its_key() -> None:
    setup = legacy()
    assert SECRET.decode() not in repr(setup) and "HS256" in repr(setup)
    assert SECRET.decode() not in repr(Config(legacy_tokens=setup))
    with pytest.raises(InvalidInput, match="legacy_tokens"):
        Config(legacy_tokens="yes")  # type: ignore[arg-type]


def test_a_public_key_setup_verifies_asymmetric_legacy_tokens() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    setup = legacy(key=private.public_key(), algorithms=["ES256"])
    now = time.time()
    token = jwt.encode(
        {"sub": "u-9", "iss": ISSUER, "aud": AUDIENCE, "iat": int(now), "exp": int(now) + 60},
        private,
        algorithm="ES256",
    )
    found = setup.verify(token, now=now, max_bytes=8192)
    assert found is not None and found.user_id == "u-9"
    with pytest.raises(LegacyTokenRefused) as caught:
        setup.verify(legacy_token(), now=now, max_bytes=8192)  # HS256: not pinned here
    assert caught.value.reason == "algorithm"


def test_the_create_script_sets_the_marker_or_answers_its_session(
    redis_client: redis.Redis,
) -> None:
    from sessionstore.keys import user_keys
    from sessionstore.scripts import SCRIPTS

    keys = user_keys("ss", "wire-user")
    marker = legacy_marker_key("ss", "wire-user", "D" * 43)
    first, second = "A" * 22, "B" * 22

    def create(session_id: str, ttl_ms: int) -> Any:
        session = keys.session(session_id)
        args = (session_id, 60_000, 120_000, 10, "legacy", "", "", ttl_ms, "f", "v")
        return redis_client.eval(SCRIPTS["create"].source, 3, keys.index, session, marker, *args)

    with pytest.raises(redis.ResponseError, match="bad create arguments"):
        create(first, 0)  # a marker needs a TTL: refused before any write
    assert redis_client.exists(marker, keys.session(first), keys.index) == 0
    created_us, idle_ms, absolute_ms, _ = create(first, 5_000)  # lua/create.lua's reply
    assert int(absolute_ms) >= int(idle_ms) > int(created_us) // 1000
    assert redis_client.get(marker) == first.encode()
    assert 0 < redis_client.pttl(marker) <= 5_000
    assert create(second, 5_000) == first.encode()  # set already: its session, no write
    assert redis_client.exists(keys.session(second)) == 0
    assert redis_client.zrange(keys.index, 0, -1) == [first.encode()]
    redis_client.delete(marker, keys.session(first), keys.index)
