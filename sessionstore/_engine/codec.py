"""Encoding of session fields: input checks, chunked blobs, and parsing of script replies.

Blobs (device meta + claims, and ``data``) are msgpack, stored as 64-byte chunks so that
a session hash stays listpack-encoded under Redis' default ``hash-max-listpack-value``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, cast

import msgspec

from sessionstore._engine.call import Arg
from sessionstore._engine.schema import (
    ACR,
    AMR,
    AUTH_TIME,
    BROWSER_SESSION,
    DATA,
    DATA_CHUNKS,
    DATA_SLOTS,
    META,
    META_SLOTS,
    ROW_ABSOLUTE_DEADLINE,
    ROW_ACR,
    ROW_AMR,
    ROW_AUTH_TIME,
    ROW_BROWSER_SESSION,
    ROW_CREATED,
    ROW_DATA,
    ROW_DATA_CHUNKS,
    ROW_DEVICE,
    ROW_HEAD,
    ROW_IDLE_DEADLINE,
    ROW_META,
    ROW_SEEN,
    UNTOUCHED,
)
from sessionstore.errors import InvalidInput
from sessionstore.keys import check_device_id
from sessionstore.models import Device, Session
from sessionstore.tokens import MAX_AMR, check_acr, check_method

__all__ = [
    "CHUNK",
    "auth_fields",
    "check_auth",
    "check_claims",
    "check_device",
    "check_persistent",
    "chunk_fields",
    "encode_claims",
    "encode_data",
    "encode_meta",
    "parse_fields",
    "parse_row",
    "parse_session",
    "row_fits",
    "touch_due_us",
    "untouched",
]

CHUNK = 64
_MAX_DEVICE_TEXT = {"name": 256, "user_agent": 1024, "ip": 64}
_encoder = msgspec.msgpack.Encoder()
_json_encoder = msgspec.json.Encoder()
_meta_decoder = msgspec.msgpack.Decoder(tuple[str, str, str, dict[str, Any]])
_data_decoder = msgspec.msgpack.Decoder(dict[str, Any])


def check_device(device: object) -> Device:
    """Return ``device`` if it is a ``Device`` with sane field sizes, else raise."""
    if not isinstance(device, Device):
        raise InvalidInput(f"device must be a Device, got {type(device).__name__}")
    check_device_id(device.id)
    for name, limit in _MAX_DEVICE_TEXT.items():
        value = getattr(device, name)
        if not isinstance(value, str) or len(value) > limit or "\x00" in value:
            raise InvalidInput(f"device.{name} must be a str of at most {limit} chars")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise InvalidInput(f"device.{name} must be valid Unicode") from err
    return device


def _encode(value: object, what: str, limit: int) -> bytes:
    try:
        raw = _encoder.encode(value)
        # msgpack accepts lone surrogates' UTF-8 errors late; JSON-round-trippable is our rule.
        _json_encoder.encode(value)
    except (TypeError, ValueError, UnicodeEncodeError, OverflowError) as err:
        raise InvalidInput(f"{what} must be JSON-like data (str keys): {err}") from err
    if len(raw) > limit:
        raise InvalidInput(f"{what} is {len(raw)} bytes encoded, over the {limit} byte limit")
    return raw


def _check_mapping(value: object, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidInput(f"{what} must be a dict with str keys")
    return value


def encode_data(data: object, limit: int) -> tuple[dict[str, Any], bytes]:
    """Check and encode a session's ``data`` (None: empty), refusing it over ``limit`` bytes."""
    mapping = dict(_check_mapping(data, "data"))
    return mapping, _encode(mapping, "data", limit)


def check_claims(claims: object, reserved: frozenset[str], limit: int) -> dict[str, Any]:
    """Return the caller's claims as a dict, refusing registered names and oversize."""
    mapping = dict(_check_mapping(claims, "claims"))
    clash = sorted(reserved.intersection(mapping))
    if clash:
        raise InvalidInput(f"claims must not set registered claims: {', '.join(clash)}")
    _encode(mapping, "claims", limit)
    return mapping


def check_auth(methods: object, level: object) -> tuple[tuple[str, ...], int]:
    """A login's methods and level, checked: (amr, acr).

    ``methods``: a method name or a list/tuple of them (duplicates dropped, order kept, at
    most ``MAX_AMR``); ``level``: 0..``MAX_ACR`` (0: none asserted).
    """
    if isinstance(methods, str):
        methods = (methods,)
    if not isinstance(methods, list | tuple):
        raise InvalidInput(f"methods must be a method name or a list of them, got {methods!r}")
    amr = tuple(dict.fromkeys(check_method(m) for m in methods))
    if len(amr) > MAX_AMR:
        raise InvalidInput(f"methods must name at most {MAX_AMR} methods, got {len(amr)}")
    return amr, check_acr(level, low=0)


def check_persistent(value: object) -> bool:
    """``login``'s ``persistent``: a bool (False: a browser-session login)."""
    if not isinstance(value, bool):
        raise InvalidInput(f"persistent must be True or False, got {type(value).__name__}")
    return value


def auth_fields(amr: tuple[str, ...], acr: int, persistent: bool = True) -> list[Arg]:
    """The ``AMR``/``ACR``/``BROWSER_SESSION`` field/value pairs a login stores (none for
    the defaults)."""
    fields: list[Arg] = [] if persistent else [BROWSER_SESSION, 1]
    if amr:
        fields += [AMR, " ".join(amr)]
    if acr:
        fields += [ACR, acr]
    return fields


def encode_meta(device: Device, claims: Mapping[str, Any]) -> bytes:
    """Encode a session's meta blob: device texts (immutable) and the caller's claims."""
    return _encoder.encode((device.name, device.user_agent, device.ip, dict(claims)))


def encode_claims(claims: Mapping[str, Any]) -> bytes:
    """Encode claims as the tail of a meta blob (``encode_meta`` is the device texts, then
    this): what ``update`` and ``rotate`` send for a script to put after the device texts."""
    return _encoder.encode(dict(claims))


def chunk_fields(prefix: bytes, blob: bytes) -> list[bytes]:
    """Field/value pairs ``prefix0, chunk0, prefix1, chunk1, ...`` for one blob."""
    pairs: list[bytes] = []
    for n, start in enumerate(range(0, len(blob), CHUNK)):
        pairs += [b"%s%d" % (prefix, n), blob[start : start + CHUNK]]
    return pairs


def data_chunks(blob: bytes) -> list[bytes]:
    """The chunks of a data blob, in order (``update`` stores them as ``DATA`` 0, 1, ...)."""
    return [blob[start : start + CHUNK] for start in range(0, len(blob), CHUNK)]


def untouched(reply: list[Any]) -> tuple[list[Any], str | None]:
    """A check script's fields, and the server's refusal of its due touch (None: none;
    see lua/check.lua: ``UNTOUCHED`` and the error follow the fields)."""
    if len(reply) >= 2 and reply[-2] in _UNTOUCHED:
        refused = reply[-1]
        text = refused.decode(errors="replace") if isinstance(refused, bytes) else str(refused)
        return reply[:-2], text
    return reply, None


_UNTOUCHED = (UNTOUCHED, UNTOUCHED.decode())


def parse_fields(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    """Turn an HGETALL reply (field, value, ...) into a dict."""
    it = iter(flat)
    return dict(zip(it, it, strict=True))


# Chunk field names, built once (b"m0", b"m1", ...): parsing runs on every validation.
_NAMES = {prefix: tuple(b"%s%d" % (prefix, n) for n in range(64)) for prefix in (META, DATA)}


def _join(fields: Mapping[bytes, bytes], prefix: bytes, count: int = -1) -> bytes:
    """Chunks ``prefix0, prefix1, ...`` joined: ``count`` of them, or up to the first gap."""
    names = _NAMES[prefix]
    parts = []
    n = 0
    while n != count:
        part = fields.get(names[n] if n < 64 else b"%s%d" % (prefix, n))
        if part is None:
            break
        parts.append(part)
        n += 1
    return parts[0] if n == 1 else b"".join(parts)


def parse_session(user_id: str, session_id: str, fields: Mapping[bytes, bytes]) -> Session:
    """Build a ``Session`` from its hash fields (times from ms to seconds)."""
    data_count = int(fields.get(DATA_CHUNKS) or 0)
    return _session(
        user_id,
        session_id,
        _head(fields),
        _join(fields, META),
        _join(fields, DATA, data_count) if data_count else b"",
        (fields.get(AUTH_TIME), fields.get(AMR), fields.get(ACR)),
        BROWSER_SESSION not in fields,
    )


# A whole hash's ``ROW_HEAD`` fields as a tuple: the start of a row, indexed like one.
_head = itemgetter(*ROW_HEAD)


def touch_due_us(seen_us: bytes | int, idle_ms: bytes | int, touch_us: int) -> int:
    """When (server µs) a session last seen at ``seen_us`` is due a touch: after
    ``touch_us``, or half its idle ttl when that is shorter, so that a session in continuous
    use is always touched well before its idle deadline."""
    return int(seen_us) + min(touch_us, int(idle_ms) * 500)


def row_fits(row: Sequence[bytes | None]) -> bool:
    """Whether an HMGET of ``ROW_FIELDS`` holds the whole session (its blobs fit the slots).

    A live session's row has every fixed field; a gone one has none (check ``ROW_SEEN``).
    """
    return row[_LAST_META] is None and int(row[ROW_DATA_CHUNKS] or 0) <= DATA_SLOTS


_LAST_META = ROW_META + META_SLOTS - 1


def parse_row(user_id: str, session_id: str, row: list[bytes | None]) -> Session:
    """Build a ``Session`` from an HMGET of ``ROW_FIELDS`` that ``row_fits``."""
    # A live session has every fixed field, and its chunks fill the first slots (the last
    # meta slot is empty), so none of the values used here is None.
    values = cast("list[bytes]", row)
    count = int(values[ROW_DATA_CHUNKS] or 0)
    data = values[ROW_DATA] if count == 1 else b"".join(values[ROW_DATA : ROW_DATA + count])
    meta = b"".join(values[ROW_META : row.index(None, ROW_META)])
    auth = (row[ROW_AUTH_TIME], row[ROW_AMR], row[ROW_ACR])
    return _session(user_id, session_id, values, meta, data, auth, row[ROW_BROWSER_SESSION] is None)


_NO_AUTH = (None, None, None)
_AMR_MEMO: dict[bytes, tuple[str, ...]] = {}


def _amr(value: bytes) -> tuple[str, ...]:
    """The methods of an ``AMR`` field (few distinct values: memoised, bounded)."""
    amr = _AMR_MEMO.get(value)
    if amr is None:
        if len(_AMR_MEMO) >= 1024:
            _AMR_MEMO.clear()
        amr = _AMR_MEMO[value] = tuple(value.decode().split())
    return amr


def _session(
    user_id: str,
    session_id: str,
    head: Sequence[bytes],
    meta: bytes,
    data: bytes,
    auth: tuple[bytes | None, bytes | None, bytes | None] = _NO_AUTH,
    persistent: bool = True,
) -> Session:
    """A ``Session`` from its ``ROW_HEAD`` fields (a whole row will do: no slice per call),
    its blobs, its ``AUTH_TIME``, ``AMR``, ``ACR`` fields (absent: None) and whether it
    has no ``BROWSER_SESSION`` field. Times go from server µs or ms to seconds; an absent
    auth time is the session's creation."""
    name, user_agent, ip, claims = _meta_decoder.decode(meta)
    created = int(head[ROW_CREATED])
    auth_time, amr, acr = auth
    return Session(
        user_id=user_id,
        session_id=session_id,
        device=Device(id=head[ROW_DEVICE].decode(), name=name, user_agent=user_agent, ip=ip),
        created_at=created / 1e6,
        last_seen_at=int(head[ROW_SEEN]) / 1e6,
        idle_expires_at=int(head[ROW_IDLE_DEADLINE]) / 1000,
        absolute_expires_at=int(head[ROW_ABSOLUTE_DEADLINE]) / 1000,
        data=_data_decoder.decode(data) if data else {},
        claims=claims,
        auth_time=created // 1_000_000 if auth_time is None else int(auth_time),
        amr=() if amr is None else _amr(amr),
        acr=0 if acr is None else int(acr),
        persistent=persistent,
    )
