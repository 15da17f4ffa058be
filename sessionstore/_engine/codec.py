"""Encoding of session fields: input checks, chunked blobs, and parsing of script replies.

Blobs (device meta + claims, and ``data``) are msgpack, stored as 64-byte chunks so that
a session hash stays listpack-encoded under Redis' default ``hash-max-listpack-value``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, cast

import msgspec

from sessionstore._engine.schema import (
    DATA,
    DATA_CHUNKS,
    DATA_SLOTS,
    META,
    META_SLOTS,
    ROW_ABSOLUTE_DEADLINE,
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

__all__ = [
    "CHUNK",
    "check_claims",
    "check_device",
    "chunk_fields",
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


def encode_meta(device: Device, claims: Mapping[str, Any]) -> bytes:
    """Encode the immutable part of a session: device texts and the caller's claims."""
    return _encoder.encode((device.name, device.user_agent, device.ip, dict(claims)))


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
    return _session(user_id, session_id, values, meta, data)


def _session(
    user_id: str, session_id: str, head: Sequence[bytes], meta: bytes, data: bytes
) -> Session:
    """A ``Session`` from its ``ROW_HEAD`` fields (a whole row will do: no slice per call)
    and its blobs. Times go from server µs or ms to seconds."""
    name, user_agent, ip, claims = _meta_decoder.decode(meta)
    return Session(
        user_id=user_id,
        session_id=session_id,
        device=Device(id=head[ROW_DEVICE].decode(), name=name, user_agent=user_agent, ip=ip),
        created_at=int(head[ROW_CREATED]) / 1e6,
        last_seen_at=int(head[ROW_SEEN]) / 1e6,
        idle_expires_at=int(head[ROW_IDLE_DEADLINE]) / 1000,
        absolute_expires_at=int(head[ROW_ABSOLUTE_DEADLINE]) / 1000,
        data=_data_decoder.decode(data) if data else {},
        claims=claims,
    )
