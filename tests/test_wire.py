"""The wire format: what the store leaves in Redis, and the names both sides give it.

The golden tests spell keys, fields, channel and replies out as literals, so a change to
the format fails here even when both sides of it change together. The agreement tests
parse the Lua scripts and compare their named constants with ``keys`` and ``schema``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from observe import session_keys
from sessionstore import Device, Keyring, SessionStore
from sessionstore._engine import schema
from sessionstore._engine.codec import parse_fields
from sessionstore._jose.strict import b64u_decode_checked
from sessionstore.keys import (
    HISTORY_PART,
    INDEX_PART,
    MOVED_PART,
    REVOKED_CHANNEL_PART,
    SESSION_PART,
    account_limit_key,
    db_watch_key,
    index_pattern,
    ip_limit_key,
    marker_key,
    revoked_channel,
    tracking_prefix,
    user_keys,
    user_of_index,
)
from sessionstore.scripts import SCRIPT_SOURCE_DIR, SCRIPTS

PHONE = Device(id="phone-1", name="Pixel", user_agent="UA", ip="10.0.0.7")
TAG = "ss:{dXNlci0x}:"  # user-1, base64url
SID = "A" * 22
META = b"\x94\xa5Pixel\xa2UA\xa810.0.0.7\x80"  # a meta blob: (name, user agent, ip, claims)

_CONSTANT = re.compile(r"local ([A-Z][A-Z0-9_]*) = ('[^']*'|-?\d+)\s*(?:--.*)?")


def _lua_files() -> list[Path]:
    return sorted(Path(SCRIPT_SOURCE_DIR).glob("*.lua"))


def _lua_constants() -> dict[str, str | int]:
    found: dict[str, str | int] = {}
    for path in _lua_files():
        for line in path.read_text("utf-8").splitlines():
            match = _CONSTANT.fullmatch(line)
            if match:
                name, value = match[1], match[2]
                assert name not in found, f"{path.name}: {name} named twice"
                found[name] = value[1:-1] if value.startswith("'") else int(value)
    return found


def _python_constants() -> dict[str, str | int]:
    """Every name Python gives the wire: key parts, field names and markers, reply codes."""
    expected: dict[str, str | int] = {
        "SESSION_PART": SESSION_PART,
        "INDEX_PART": INDEX_PART,
        "REVOKED_CHANNEL_PART": REVOKED_CHANNEL_PART,
        "HISTORY_PART": HISTORY_PART,
        "MOVED_PART": MOVED_PART,
        "SESSION_REF": schema.SESSION_REF,
        "HISTORY_HEAD": schema.HISTORY_HEAD,
        **{name: getattr(schema, name) for name in dir(schema) if name.startswith("H_")},
    }
    names = vars(schema).items()
    expected.update({k: v.decode() for k, v in names if k.isupper() and isinstance(v, bytes)})
    expected.update({reply.name: int(reply) for reply in schema.Reply})
    return expected


def test_lua_names_the_wire_format_as_python_does() -> None:
    assert _lua_constants() == _python_constants()


def test_lua_spells_no_field_name_outside_its_constant() -> None:
    names = {v for k, v in _python_constants().items() if isinstance(v, str)}
    literal = re.compile(r"'([^']*)'")
    for path in _lua_files():
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            code = line.split("--", 1)[0]
            if _CONSTANT.fullmatch(line) or not code.strip():
                continue
            spelled = names.intersection(literal.findall(code))
            assert not spelled, f"{path.name}:{number} spells {spelled} out: {line.strip()}"


def test_every_script_starts_with_the_names() -> None:
    for script in SCRIPTS.values():
        assert "local CREATED = 'c'" in script.source.split("local function", 1)[0]


def test_every_script_carries_the_prelude_functions_it_calls_and_no_other() -> None:
    prelude = (Path(SCRIPT_SOURCE_DIR) / "_prelude.lua").read_text("utf-8")
    helpers = set(re.findall(r"^local function (\w+)", prelude, re.MULTILINE))
    for script in SCRIPTS.values():
        defined = set(re.findall(r"^local function (\w+)", script.source, re.MULTILINE))
        code = "\n".join(line.split("--", 1)[0] for line in script.source.splitlines())
        called = {name for name in helpers if re.search(rf"\b{name}\(", code)}
        assert called <= defined, f"{script.name} calls {called - defined} undefined"
        # What is defined there is called there (only by name: a function is never passed).
        unused = {name for name in defined & helpers if len(re.findall(rf"\b{name}\b", code)) < 2}
        assert not unused, f"{script.name} carries {unused} it never calls"
    # The one run on every cold validation carries only what reading and sliding need.
    assert "local function history_add" not in SCRIPTS["check"].source


def test_the_row_holds_each_field_at_its_slot() -> None:
    row = schema.ROW_FIELDS
    assert row[: schema.ROW_META] == (
        *(b"c", b"s", b"e", b"a", b"v", b"dn", b"i"),
        *(b"au", b"am", b"al", b"bs"),
    )
    assert row[schema.ROW_META :] == (*(b"m%d" % n for n in range(8)), b"d0", b"d1", b"d2", b"d3")
    slots = {name: getattr(schema, name) for name in schema.__all__ if name.startswith("ROW_")}
    for name, slot in slots.items():
        if name not in ("ROW_FIELDS", "ROW_HEAD", "ROW_META", "ROW_DATA"):
            assert row[slot] == getattr(schema, name[4:])
    assert row[schema.ROW_DATA] == b"d0"
    assert row[: len(schema.ROW_HEAD)] == schema.ROW_HEAD


def test_key_and_channel_names() -> None:
    keys = user_keys("ss", "user-1")
    assert (keys.prefix, keys.index) == (TAG + "s:", TAG + "idx")
    assert keys.session(SID) == TAG + "s:" + SID
    assert (keys.history, keys.moved(SID)) == (TAG + "h", TAG + "mv:" + SID)
    assert revoked_channel("ss") == "ss:{!revoked}"
    assert marker_key("ss") == "ss:{!marker}"
    assert db_watch_key("ss") == "ss:{!db}"
    assert tracking_prefix("ss") == "ss:"
    assert index_pattern("ss") == "ss:{*}:idx"
    assert user_of_index("ss", TAG + "idx") == "user-1"
    assert account_limit_key("ss", "login", "user-1") == TAG + "rl:login"
    assert ip_limit_key("ss", "login", "10.0.0.7") == "ss:{ip.MTAuMC4wLjc}:rl:login"


def test_a_session_is_stored_as_it_always_was(redis_url: str, redis_client: redis.Redis) -> None:
    with SessionStore.from_url(redis_url, keyring=Keyring.generate("HS256")) as store:
        pair = store.login("user-1", device=PHONE, claims={"role": "admin"}, data={"mfa": 1})
        sid = store.validate(pair.access_token).session_id
        key = f"{TAG}s:{sid}"
        assert session_keys(redis_client, history=True) == [
            f"{TAG}h".encode(),
            f"{TAG}idx".encode(),
            key.encode(),
        ]
        stored: list[bytes] = redis_client.lrange(f"{TAG}h", 0, -1)  # type: ignore[assignment]
        [signin] = stored
        # A login, newest: its kind (0) with the newest mark (8), its Unix seconds, the
        # session id's bytes, UA family code ("UA": other/other), IPv4 tag and bytes,
        # device id, NUL, device name.
        assert signin[:1] == b"\x08"
        assert abs(int.from_bytes(signin[1:5], "big") - time.time()) < 60
        raw_sid = b64u_decode_checked(sid.encode())
        assert signin[5:] == raw_sid + b"e4\x0a\x00\x00\x07phone-1\x00Pixel"
        everything = set(redis_client.scan_iter(match="*"))
        assert everything - set(session_keys(redis_client, history=True)) <= {
            b"ss:{!marker}",
            b"ss:{!db}",
        }
        fields: dict[bytes, bytes] = redis_client.hgetall(key)  # type: ignore[assignment]
        fixed = [b"c", b"s", b"i", b"a", b"e", b"v", b"g", b"k", b"m0", b"d0", b"dn"]
        assert list(fields) == fixed
        assert (fields[b"v"], fields[b"g"], fields[b"dn"]) == (b"phone-1", b"1", b"1")
        assert fields[b"m0"] == b"\x94\xa5Pixel\xa2UA\xa810.0.0.7\x81\xa4role\xa5admin"
        assert redis_client.zrange(f"{TAG}idx", 0, -1) == [sid.encode()]
        store.refresh(pair.refresh_token)
        refreshed, signin_then = redis_client.lrange(f"{TAG}h", 0, -1)
        # The refresh is newest now; the login, older, holds its gap (0 s here) instead.
        assert refreshed[:1] == b"\x0a" and refreshed[5:] == b64u_decode_checked(sid[:4].encode())
        assert signin_then[1:] == signin[5:] and signin_then[:1] in (b"\x00", b"\x10")
        fields = redis_client.hgetall(key)  # type: ignore[assignment]
        assert list(fields) == [*fixed, b"t"]
        assert fields[b"g"] == b"2"
        store.update("user-1", sid, data={"blob": "x" * 100})
        fields = redis_client.hgetall(key)  # type: ignore[assignment]
        assert [f for f in fields if f[:1] == b"d"] == [b"d0", b"dn", b"d1"]
        assert fields[b"dn"] == b"2"


def test_revocations_are_published_on_the_channel(
    redis_url: str, redis_client: redis.Redis
) -> None:
    listener = redis_client.pubsub()
    listener.subscribe(b"ss:{!revoked}")
    try:
        assert listener.get_message(timeout=5)["type"] == "subscribe"
        with SessionStore.from_url(redis_url, keyring=Keyring.generate("HS256")) as store:
            session = store.create("user-1", device=PHONE)
            assert store.revoke("user-1", session.session_id)
        message = listener.get_message(timeout=5)
        assert message is not None
        assert (message["channel"], message["data"]) == (
            b"ss:{!revoked}",
            b"dXNlci0x " + session.session_id.encode(),
        )
    finally:
        listener.close()


def test_script_replies_keep_their_codes(redis_client: redis.Redis) -> None:
    index, key, moved_key = TAG + "idx", TAG + "s:" + SID, TAG + "mv:" + SID
    pair = (index, key)

    def run(name: str, keys: tuple[str, ...], *args: Any) -> Any:
        return redis_client.eval(SCRIPTS[name].source, len(keys), *keys, *args)

    assert run("check", pair, SID, -1) == 0  # never existed: revoked
    assert run("refresh", pair, SID, 1, 0, "kid") == [0]
    assert len(run("create", pair, SID, 60_000, 120_000, 10, "phone-1", "", "", "m0", META)) == 4
    assert run("refresh", pair, SID, 1, 0, "kid") == [4]  # no refresh state
    assert run("check", pair, SID, -1)[::2] == [b"c", b"s", b"i", b"a", b"e", b"v", b"m0"]
    assert run("update", pair, SID, "", 64, 1, b"x")[-4:] == [b"d0", b"x", b"dn", b"1"]
    # New claims: the meta blob's tail after the device texts, re-chunked.
    assert run("update", pair, SID, b"\x81\xa1r\xa1a", 64, -1)[-6:-4] == [
        b"m0",
        META[:-1] + b"\x81\xa1r\xa1a",
    ]
    assert run("revoke", pair, SID) == 1
    assert run("revoke", pair, SID) == 0
    run(
        "create",
        pair,
        SID,
        60_000,
        120_000,
        10,
        "phone-1",
        "",
        "",
        "g",
        1,
        "k",
        "kid-1",
        "m0",
        META,
    )
    assert run("refresh", pair, SID, 1, 10_000, "kid-2")[:3] == [1, 2, b"kid-2"]
    assert run("refresh", pair, SID, 1, 10_000, "kid-3")[:3] == [2, 2, b"kid-2"]
    assert run("refresh", pair, SID, 0, 10_000, "kid-4") == [
        3,
        SID.encode(),
    ]  # reuse: deleted
    assert run("check", pair, SID, -1) == 0
    listed = run("list", (index,), "0", 10)
    assert listed == [b"0"]
    run("create", pair, SID, 1, 1, 10, "phone-1", "", "", "m0", META)  # idle and absolute ttl: 1 ms
    time.sleep(0.01)
    assert run("check", pair, SID, -1) == -1  # past its deadline: expired
    assert run("update", pair, SID, "", 64, 1, b"x") == 0  # the expired one is gone now
    run("create", pair, SID, 60_000, 120_000, 10, "phone-1", "", "", "m0", META)
    assert run("list", (index,), "0", 10)[1][0] == SID.encode()
    cleared = run("revoke_many", (index,), "user", "", "0", 10, "")
    assert (cleared[0], cleared[2:]) == (b"0", [SID.encode()])
    # rotate: the hash moves to the new id with a new refresh state; the old id is gone.
    new_sid, new_key = "B" * 22, TAG + "s:" + "B" * 22
    moved = (index, key, new_key, moved_key)
    assert run("rotate", moved, SID, new_sid, "kid-1", "", 64) == 0  # gone: revoked
    refreshable = ("g", 4, "k", "kid-1", "m0", META)
    run("create", pair, SID, 60_000, 120_000, 10, "phone-1", "", "", *refreshable)
    fields = parse_fields(run("rotate", moved, SID, new_sid, "kid-2", "", 64))
    assert (fields[b"g"], fields[b"k"], fields[b"m0"]) == (b"1", b"kid-2", META)
    assert redis_client.exists(key) == 0 and redis_client.zscore(index, SID) is None
    assert redis_client.zscore(index, new_sid) == int(fields[b"e"])
    # It had refresh tokens: the old id's moved key names the new id until the absolute
    # deadline, and the moved session names its family's first id (ORIGIN).
    assert fields[b"o"] == SID.encode() and redis_client.get(moved_key) == new_sid.encode()
    assert redis_client.pexpiretime(moved_key) == int(fields[b"a"])
    # A refresh token of the old id: reuse of the family, the new id is deleted.
    assert run("refresh", pair, SID, 1, 10_000, "kid-3") == [3, new_sid.encode()]
    assert redis_client.exists(new_key) == 0 and redis_client.zscore(index, new_sid) is None
    assert run("refresh", pair, SID, 1, 10_000, "kid-3") == [0]  # nothing live left
    with pytest.raises(redis.ResponseError, match="bad rotate arguments"):
        run("rotate", moved[:3], SID, new_sid, "kid-2", "", 64)
