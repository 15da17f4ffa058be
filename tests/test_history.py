"""The per-user history and new-device detection on the real engine rows, sync and async
(one body each): each action's entry, newest first, the cap, the TTL, no secret stored,
the switch, new-device flags, bad input, the CLI command."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from typing import Any

import jwt
import pytest
import redis

from legacy_support import legacy, legacy_token
from observe import script_calls, session_keys
from sessionstore import (
    Config,
    Device,
    HistoryEntry,
    InvalidInput,
    Keyring,
    RefreshReuseDetected,
    events,
)
from sessionstore.keys import user_keys
from support import StoreApi, StoreFactory

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"
LAPTOP = Device(id="laptop-1", name="Work laptop", user_agent=CHROME, ip="203.0.113.7")
PHONE = Device(id="phone-1", name="Pixel 8", user_agent=FIREFOX, ip="2001:db8:1:2::9")
SECRET = secrets.token_bytes(32)


@pytest.fixture
def keyring() -> Keyring:
    """An HS256 keyring whose secret this module knows (to look for it in Redis)."""
    k = base64.urlsafe_b64encode(SECRET).rstrip(b"=").decode()
    return Keyring.from_jwks({"keys": [{"kty": "oct", "kid": "h1", "alg": "HS256", "k": k}]})


def kinds(entries: list[HistoryEntry]) -> list[str]:
    return [e.kind if e.kind != "revoked" else f"revoked:{e.reason}" for e in entries]


def history_bytes(client: redis.Redis, user_id: str) -> bytes:
    """Every byte stored in a user's history key: each element, joined."""
    key = user_keys("ss", user_id).history
    elements: list[bytes] = client.lrange(key, 0, -1)  # type: ignore[assignment]
    return b"".join(elements)


async def test_each_action_records_its_entry_newest_first(store: StoreApi) -> None:
    first = await store.login("user-1", device=LAPTOP)
    [signin] = await store.history("user-1")
    assert signin == HistoryEntry(
        kind="login",
        at=signin.at,
        session_ref=first.session_id[:4],
        session_id=first.session_id,
        device_id="laptop-1",
        device_name="Work laptop",
        ip="203.0.113.7",
        browser="Chrome",
        os="Linux",
    )
    assert abs(signin.at - time.time()) < 60
    pair = await store.refresh(first.refresh_token)
    await store.step_up("user-1", pair.session_id, method="otp", level=2)
    await store.logout(pair.access_token)
    second = await store.login("user-1", device=PHONE)
    await store.revoke("user-1", second.session_id)
    made = await store.create("user-1", device=PHONE)
    await store.revoke_device("user-1", "phone-1")
    await store.login("user-1", device=LAPTOP)
    await store.revoke_user("user-1")
    fourth = await store.login("user-1", device=LAPTOP)
    await store.revoke_user("user-1", reason="password")
    entries = await store.history("user-1")
    assert kinds(entries) == [
        "revoked:password",
        "login",
        "revoked:user",
        "login",
        "revoked:device",
        "login",
        "revoked:revoke",
        "login",
        "revoked:logout",
        "step_up",
        "refresh",
        "login",
    ]
    step_up = entries[-3]
    assert (step_up.method, step_up.level, step_up.session_id) == ("otp", 2, first.session_id)
    assert entries[-2].session_id == first.session_id  # the refresh, named by its sign-in
    assert entries[0].session_id == fourth.session_id
    assert entries[5].session_id == made.session_id
    assert entries[7].ip == "2001:db8:1:2::9" and entries[7].browser == "Firefox"
    assert [e.at for e in entries] == sorted((e.at for e in entries), reverse=True)
    assert kinds(await store.history("user-1", limit=2)) == ["revoked:password", "login"]


async def test_reuse_and_eviction_are_recorded(make_store: StoreFactory) -> None:
    store = make_store(config=Config(max_sessions_per_user=1))
    pair = await store.login("user-1", device=LAPTOP)
    later = await store.refresh(pair.refresh_token)
    await store.refresh(later.refresh_token)  # the first token is two generations behind
    with pytest.raises(RefreshReuseDetected):
        await store.refresh(pair.refresh_token)
    one = await store.login("user-1", device=LAPTOP)
    await store.login("user-1", device=PHONE)  # at the limit: evicts the first
    entries = await store.history("user-1")
    assert kinds(entries) == [
        "login",
        "revoked:evicted",
        "login",
        "revoked:reuse",
        "reuse",
        "refresh",
        "refresh",
        "login",
    ]
    assert entries[1].session_id == one.session_id  # its sign-in is in the history
    assert entries[4].session_id == pair.session_id and entries[4].reason == "reuse"


async def test_an_adoption_is_a_sign_in(make_store: StoreFactory) -> None:
    seen: list[events.Event] = []
    store = make_store(config=Config(legacy_tokens=legacy()), on_event=seen.append)
    principal = await store.validate(legacy_token(), ip="198.51.100.4", user_agent=CHROME)
    assert principal.adopted is not None and principal.adopted.new_device
    [entry] = await store.history("user-1")
    assert (entry.kind, entry.session_id, entry.ip) == (
        "adopted",
        principal.session_id,
        "198.51.100.4",
    )
    [created] = [e for e in seen if isinstance(e, events.Created)]
    assert created.new_device


async def test_a_stolen_legacy_token_from_elsewhere_is_a_new_device(
    make_store: StoreFactory,
) -> None:
    """Every adopted session has the same device id (``LegacyTokens.device_id``): it must
    not make a second adoption, from another browser and network, look like a known device."""
    store = make_store(config=Config(legacy_tokens=legacy()))
    mine = await store.validate(legacy_token(), ip="198.51.100.4", user_agent=CHROME)
    assert mine.adopted is not None and mine.adopted.new_device
    stolen = legacy_token(jti="another-token")
    theirs = await store.validate(stolen, ip="203.0.113.50", user_agent=FIREFOX)
    assert theirs.adopted is not None and theirs.adopted.new_device
    again = await store.validate(legacy_token(jti="a-third"), ip="198.51.100.9", user_agent=CHROME)
    assert again.adopted is not None and not again.adopted.new_device  # same family and /24


async def test_an_ip_that_is_no_address_is_kept_within_its_length_byte(store: StoreApi) -> None:
    """64 four-byte characters are 256 bytes: more than a text IP's length byte holds."""
    odd = Device(id="odd-1", user_agent=CHROME, ip="\U0001f600" * 64)
    assert (await store.login("user-1", device=odd)).new_device
    [entry] = await store.history("user-1")
    assert entry.ip == "\U0001f600" * 63  # cut at a character's end, within 255 bytes
    assert not (
        await store.login("user-1", device=Device(id="odd-2", user_agent=CHROME, ip=odd.ip))
    ).new_device


async def test_the_history_is_capped_and_expires(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    store = make_store(config=Config(history_max_entries=3, history_ttl=2))
    pair = await store.login("user-1", device=LAPTOP)
    for _ in range(4):
        pair = await store.refresh(pair.refresh_token)
    key = user_keys("ss", "user-1").history
    assert redis_client.llen(key) == 3  # the newest three entries
    entries = await store.history("user-1")
    assert kinds(entries) == ["refresh"] * 3
    # The sign-in left the history: the live session still names the entries' session.
    assert {e.session_id for e in entries} == {pair.session_id}
    assert {e.session_ref for e in entries} == {pair.session_id[:4]}
    assert 0 < redis_client.pttl(key) <= 2000
    await asyncio.sleep(1.0)
    pair = await store.refresh(pair.refresh_token)
    assert redis_client.pttl(key) > 1200  # each append renews the TTL
    assert kinds(await store.history("user-1")) == ["refresh"] * 3
    other = await store.login("user-2", device=LAPTOP)
    for _ in range(3):
        other = await store.refresh(other.refresh_token)
    await store.logout(other.access_token)
    gone = await store.history("user-2")
    # Neither a sign-in in the history nor a live session knows the id any more.
    assert [(e.kind, e.session_id, e.session_ref) for e in gone] == [
        ("revoked", None, other.session_id[:4]),
        ("refresh", None, other.session_id[:4]),
        ("refresh", None, other.session_id[:4]),
    ]
    deadline = time.monotonic() + 10
    while redis_client.exists(key) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert redis_client.exists(key) == 0
    assert await store.history("user-1") == []


async def test_the_history_holds_no_token_or_secret(
    store: StoreApi, redis_client: redis.Redis
) -> None:
    secrets_seen: list[bytes] = [SECRET, base64.urlsafe_b64encode(SECRET).rstrip(b"=")]
    pair = await store.login("user-1", device=LAPTOP)
    tokens = [pair.access_token, pair.refresh_token]
    pair = await store.refresh(pair.refresh_token)
    tokens += [pair.access_token, pair.refresh_token]
    tokens.append(await store.step_up("user-1", pair.session_id, method="otp", level=2))
    other = await store.login("user-1", device=PHONE)
    tokens += [other.access_token, other.refresh_token]
    await store.revoke_user("user-1", keep=other.session_id)
    for token in tokens:
        secrets_seen.append(token.encode())
        secrets_seen += [part.encode() for part in token.split(".") if len(part) >= 8]
    for token in (t for t in tokens if t.count(".") == 2):  # the access tokens
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
        if "jti" in claims:
            secrets_seen.append(str(claims["jti"]).encode())
    stored = history_bytes(redis_client, "user-1")
    assert len(stored) > 60
    for secret in secrets_seen:
        assert secret not in stored
    # No key of the user's either (the history names sessions, never their keys).
    for key in session_keys(redis_client, history=True):
        assert key not in stored


async def test_history_off_writes_nothing(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    store = make_store(config=Config(history=False))
    pair = await store.login("user-1", device=LAPTOP)
    assert not pair.new_device  # nothing known: never flagged
    pair = await store.refresh(pair.refresh_token)
    await store.step_up("user-1", pair.session_id, method="otp", level=2)
    await store.revoke_user("user-1")
    assert not (await store.login("user-1", device=PHONE)).new_device
    assert not redis_client.exists(user_keys("ss", "user-1").history)
    assert not [k for k in session_keys(redis_client, history=True) if k.endswith(b":h")]
    assert await store.history("user-1") == []


async def test_new_device_on_first_sight_only(make_store: StoreFactory) -> None:
    seen: list[events.Event] = []
    store = make_store(on_event=seen.append)
    assert (await store.login("user-1", device=LAPTOP)).new_device
    assert not (await store.login("user-1", device=LAPTOP)).new_device  # the same device
    # Another device id, but the same UA family on the same /24: the same machine.
    same_net = Device(id="laptop-2", user_agent=CHROME, ip="203.0.113.99")
    assert not (await store.login("user-1", device=same_net)).new_device
    assert (await store.login("user-1", device=PHONE)).new_device  # new id, family, net
    # IPv6: the same /48 with the same family is known, another /48 is not.
    near = Device(id="phone-2", user_agent=FIREFOX, ip="2001:db8:1:ffff::1")
    assert not (await store.login("user-1", device=near)).new_device
    far = Device(id="phone-3", user_agent=FIREFOX, ip="2001:db8:2::1")
    assert (await store.login("user-1", device=far)).new_device
    # A known id from anywhere is not new; a refresh never is.
    moved = Device(id="laptop-1", user_agent=FIREFOX, ip="192.0.2.1")
    pair = await store.login("user-1", device=moved)
    assert not pair.new_device
    assert not (await store.refresh(pair.refresh_token)).new_device
    flags = [e.new_device for e in seen if isinstance(e, events.Created)]
    assert flags == [True, False, False, True, False, True, False]
    # Per user: another user's first sign-in on the same laptop is new to them.
    assert (await store.login("user-2", device=LAPTOP)).new_device


@pytest.mark.parametrize("limit", [0, 1001, -1, "5", 2.0, True, None])
async def test_bad_limits_are_refused_locally(
    store: StoreApi, redis_client: redis.Redis, limit: Any
) -> None:
    before = script_calls(redis_client)
    with pytest.raises(InvalidInput, match="limit"):
        await store.history("user-1", limit=limit)
    with pytest.raises(InvalidInput, match="user_id"):
        await store.history("", limit=5)
    with pytest.raises(InvalidInput, match="reason"):
        await store.revoke_user("user-1", reason="because")  # type: ignore[arg-type]
    assert script_calls(redis_client) - before <= 1  # INFO itself only


def test_history_config_fields_are_checked() -> None:
    cases: list[dict[str, Any]] = [
        {"history": 1},
        {"history_max_entries": 0},
        {"history_max_entries": 1001},
    ]
    for bad in cases:
        with pytest.raises(InvalidInput, match=r"Config\.history"):
            Config(**bad)
    for bad_ttl in (0, 367 * 86400, 1.5):
        with pytest.raises(InvalidInput, match=r"Config\.history_ttl"):
            Config(history_ttl=bad_ttl)  # type: ignore[arg-type]


def test_the_cli_shows_a_history(
    redis_url: str, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    from sessionstore import SessionStore
    from sessionstore.cli import main

    with SessionStore.from_url(redis_url, keyring=Keyring.generate("HS256")) as sync_store:
        pair = sync_store.login("user-1", device=LAPTOP)
        sync_store.refresh(pair.refresh_token)
    assert main(["sessions", "history", "user-1", "--redis-url", redis_url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["WHEN", "KIND", "SESSION"]
    assert [line.split()[2] for line in table[1:]] == ["refresh", "login"]
    assert "laptop-1" in table[2] and "203.0.113.7" in table[2]
    assert (
        main(["sessions", "history", "--json", "user-1", "--limit", "1", "--redis-url", redis_url])
        == 0
    )
    [entry] = json.loads(capsys.readouterr().out)
    assert (entry["kind"], entry["session_id"]) == ("refresh", pair.session_id)
    assert main(["sessions", "history", "user-1", "--limit", "0", "--redis-url", redis_url]) != 0


def test_the_scripts_refuse_a_history_without_its_key(redis_client: redis.Redis) -> None:
    from sessionstore.scripts import SCRIPTS

    keys = user_keys("ss", "wire-user")
    sid = "A" * 22

    def run(name: str, keyed: tuple[str, ...], *args: Any) -> Any:
        return redis_client.eval(SCRIPTS[name].source, len(keyed), *keyed, *args)

    pair = (keys.index, keys.session(sid))
    for name, args in (
        ("revoke", (sid, "100 60000", "r")),  # no history key in KEYS
        ("refresh", (sid, 1, 0, "kid", "100 60000")),
        ("step_up", (sid, "otp", 2, "100 60000")),
        ("create", (sid, 60_000, 120_000, 10, "d", "100 60000", "x" * 30, "m0", "v")),
        ("create", (sid, 60_000, 120_000, 10, "d", "oops", "", "m0", "v")),
    ):
        with pytest.raises(redis.ResponseError, match=r"bad .*arguments"):
            run(name, pair, *args)
    with pytest.raises(redis.ResponseError, match="bad revoke arguments"):
        run("revoke", (*pair, keys.history), sid, "100 60000", "")  # no reason
    with pytest.raises(redis.ResponseError, match="bad revoke arguments"):
        run("revoke_many", (keys.index,), "user", "", "0", 10, "", "100 60000", "u")
    assert redis_client.exists(keys.index, keys.session(sid), keys.history) == 0
