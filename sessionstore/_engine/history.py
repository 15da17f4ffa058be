"""The per-user history (``Config.history``): what the scripts append, and reading it back.

One LIST per user (``UserKeys.history``), newest first, written only by the scripts that
change sessions (``history_add`` in ``lua/_prelude.lua``), in the same script as the change.
An entry's first byte holds its kind; the newest entry then holds its Unix seconds (4
bytes), any other its gap in seconds to the newer entry before it (3 bits of the first
byte, then a base-128 varint of the rest when it is 8 s or more: one byte more for gaps
under 17 minutes, two under 36 hours). Then a body:

- a sign-in (``H_LOGIN``, ``H_ADOPTED``): the session id's 16 bytes, a UA family code (one
  char: browser and OS, ``useragent`` tables), the IP (a tag: ``0`` none, ``4``/``6`` then
  its 4/16 bytes, ``t`` then a length byte and the text), the device id, NUL, device name;
- any other: the first ``SESSION_REF`` chars of the session id (as the 3 bytes they
  encode), then a step-up's level and method, a revocation's reason (one char, ``REASONS``).

No token, refresh secret or key is written. Compact by design (issue 18: at most 150 B per
session at five entries each; ``benchmarks/memory.py`` measures 123): a Redis Stream per
user cost about 1,800 B per session there, a LIST of readable text entries about 280.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from typing import Any

from sessionstore._engine import schema
from sessionstore._engine.binding import ip_address
from sessionstore._engine.call import Call
from sessionstore._engine.useragent import BROWSERS, SYSTEMS, first
from sessionstore._jose.strict import b64u_decode_checked, b64u_encode
from sessionstore.errors import InvalidInput
from sessionstore.events import RevokeReason
from sessionstore.keys import user_keys
from sessionstore.models import MAX_HISTORY_ENTRIES, Config, Device, HistoryEntry, HistoryKind
from sessionstore.scripts import SCRIPTS

__all__ = ["REASONS", "checked_limit", "read", "signin_body", "spec"]

REASONS: dict[RevokeReason, str] = {
    "revoke": "r",
    "device": "d",
    "user": "u",
    "logout": "l",
    "evicted": schema.WHY_EVICTED.decode(),
    "reuse": schema.WHY_REUSE.decode(),
    "password": "p",
    "rotated": "o",
}
_REASON_NAMES = {code: name for name, code in REASONS.items()}
_KINDS: dict[int, HistoryKind] = {
    schema.H_LOGIN: "login",
    schema.H_ADOPTED: "adopted",
    schema.H_REFRESH: "refresh",
    schema.H_STEP_UP: "step_up",
    schema.H_REVOKED: "revoked",
    schema.H_REUSE: "reuse",
}
_BROWSERS = (*(name for name, _ in BROWSERS), "other")
_SYSTEMS = (*(name for name, _ in SYSTEMS), "other")
_UA_BASE = ord("0")
_REF_BYTES = schema.SESSION_REF * 6 // 8  # the bytes the ref's base64url chars encode


def spec(config: Config) -> str:
    """The history's settings as the scripts take them: ``'<cap> <ttl ms>'``, '' when off."""
    if not config.history:
        return ""
    return f"{config.history_max_entries} {config.history_ttl * 1000}"


def _ua_code(user_agent: str) -> int:
    browser, system = first(BROWSERS, user_agent), first(SYSTEMS, user_agent)
    b = _BROWSERS.index(browser[0]) if browser else len(BROWSERS)
    s = _SYSTEMS.index(system[0]) if system else len(SYSTEMS)
    return _UA_BASE + b * 8 + s


def _ip_field(ip: str) -> bytes:
    if not ip:
        return b"0"
    address = ip_address(ip)
    if isinstance(address, ipaddress.IPv4Address):
        return schema.IP_V4 + address.packed
    if isinstance(address, ipaddress.IPv6Address):
        return schema.IP_V6 + address.packed
    # Not an address: kept as given (at most 64 chars), cut to the length byte's 255 bytes
    # at a character's end (64 four-byte characters are 256).
    text = ip.encode()[:255].decode(errors="ignore").encode()
    return schema.IP_TEXT + bytes([len(text)]) + text


def signin_body(session_id: str, device: Device) -> bytes:
    """A sign-in entry's body (after kind and gap) for a checked ``device``."""
    sid = b64u_decode_checked(session_id.encode())
    head = sid + bytes([_ua_code(device.user_agent)]) + _ip_field(device.ip)
    return head + device.id.encode() + b"\0" + device.name.encode()


def checked_limit(limit: object) -> int:
    """``history(limit=...)``: an integer in 1..``MAX_HISTORY_ENTRIES``."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidInput(f"limit must be an integer, got {type(limit).__name__}")
    if not 1 <= limit <= MAX_HISTORY_ENTRIES:
        raise InvalidInput(f"limit must be in 1..{MAX_HISTORY_ENTRIES}, got {limit}")
    return limit


def read(config: Config, user_id: str, limit: int) -> Call[list[HistoryEntry]]:
    """The newest ``limit`` entries of a user's history, newest first."""
    keys = user_keys(config.namespace, user_id)
    limit = checked_limit(limit)

    def parse(reply: list[Any]) -> list[HistoryEntry]:
        elements, live = reply  # lua/history.lua
        return decode(elements, [sid.decode() for sid in live])[:limit]

    return Call(SCRIPTS["history"], (keys.history, keys.index), (), parse)


def _varint(raw: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = raw[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def _entries(elements: list[bytes]) -> Iterator[tuple[HistoryKind, int, bytes]]:
    """(kind, Unix seconds, body) of each entry, newest first."""
    at = 0
    for raw in elements:
        first = raw[0]
        kind = _KINDS.get(first % schema.HISTORY_HEAD)
        if kind is None:
            continue
        if first & schema.HISTORY_HEAD:
            (at,) = struct.unpack(">I", raw[1:5])
            yield kind, at, raw[5:]
            continue
        gap, start = (first >> 4) & 7, 1
        if first & 0x80:
            rest, start = _varint(raw, 1)
            gap |= rest << 3
        at -= gap
        yield kind, at, raw[start:]


def _signin(kind: HistoryKind, at: int, body: bytes) -> HistoryEntry:
    session_id = b64u_encode(body[:16])
    code, tag = body[16] - _UA_BASE, body[17:18]
    rest = body[18:]
    ip = ""
    if tag == schema.IP_V4:
        ip, rest = str(ipaddress.IPv4Address(rest[:4])), rest[4:]
    elif tag == schema.IP_V6:
        ip, rest = str(ipaddress.IPv6Address(rest[:16])), rest[16:]
    elif tag == schema.IP_TEXT:
        ip, rest = rest[1 : 1 + rest[0]].decode(), rest[1 + rest[0] :]
    device_id, _, name = rest.partition(b"\0")
    return HistoryEntry(
        kind=kind,
        at=at,
        session_ref=session_id[: schema.SESSION_REF],
        session_id=session_id,
        device_id=device_id.decode(),
        device_name=name.decode(),
        ip=ip,
        browser=_BROWSERS[code // 8] if 0 <= code // 8 < len(_BROWSERS) else "other",
        os=_SYSTEMS[code % 8] if code % 8 < len(_SYSTEMS) else "other",
    )


def decode(elements: list[bytes], live: list[str]) -> list[HistoryEntry]:
    """A history LIST's elements as entries, newest first; ``live``: the user's live
    session ids, which name the sessions sign-ins no longer in the history made."""
    found = list(_entries(elements))
    known: dict[str, str] = {sid[: schema.SESSION_REF]: sid for sid in live}
    for kind, _, body in reversed(found):  # oldest first: a later sign-in wins a clash
        if kind in ("login", "adopted"):
            sid = b64u_encode(body[:16])
            known[sid[: schema.SESSION_REF]] = sid
    out = []
    for kind, at, body in found:
        if kind in ("login", "adopted"):
            out.append(_signin(kind, at, body))
            continue
        ref = b64u_encode(body[:_REF_BYTES])
        extra: dict[str, Any] = {}
        if kind == "step_up":
            extra = {"level": int(body[3:4]), "method": body[4:].decode()}
        elif kind == "revoked":
            extra = {"reason": _REASON_NAMES.get(body[3:4].decode(), "revoke")}
        elif kind == "reuse":
            extra = {"reason": "reuse"}
        out.append(
            HistoryEntry(kind=kind, at=at, session_ref=ref, session_id=known.get(ref), **extra)
        )
    return out
