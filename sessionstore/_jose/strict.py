"""Strict encodings of the JOSE layer: canonical base64url and duplicate-free JSON.

Private module, no I/O, no keys. A token's segments are decoded here only after the
caller has checked their charset (and, for a payload, the signature over their text).
"""

from __future__ import annotations

import binascii
import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from sessionstore.errors import InvalidInput, MalformedToken

__all__ = [
    "b64u_bytes",
    "b64u_decode",
    "b64u_decode_checked",
    "b64u_encode",
    "json_claims",
    "json_object",
    "strict_loads",
]

# --- strict base64url -----------------------------------------------------------------------

_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_VALUE: Final = bytes(_ALPHABET.find(byte) & 0x3F for byte in range(256))  # byte -> 6 bits
_B64U: Final = re.compile(r"[A-Za-z0-9_-]*")
_TO_URL: Final = bytes.maketrans(b"+/", b"-_")
_FROM_URL: Final = bytes.maketrans(b"-_", b"+/")
_PAD: Final = (b"", b"", b"==", b"=")
# Bits of the last character that fall outside the data when len % 4 is 2 or 3: they must be
# zero, otherwise several strings decode to the same bytes (a malleable encoding).
_TAIL_MASK: Final = (0, 0, 0x0F, 0x03)


def b64u_bytes(data: bytes) -> bytes:
    """Unpadded base64url of ``data``, as ASCII bytes."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_TO_URL)


def b64u_encode(data: bytes) -> str:
    """Unpadded base64url of ``data``."""
    return b64u_bytes(data).decode("ascii")


# msgspec decodes a JSON string as base64 (the standard alphabet, padded) into bytes, at
# about twice the speed of binascii.a2b_base64: every token's payload passes through here.
_BASE64: Final = msgspec.json.Decoder(bytes)


def b64u_decode_checked(segment: bytes) -> bytes:
    """Decode unpadded base64url whose charset the caller has already checked.

    Raise ``ValueError`` unless ``segment`` is the canonical encoding of its bytes.
    """
    rem = len(segment) % 4
    if rem == 1:
        raise ValueError("base64url length is 1 more than a multiple of 4")
    if rem and _VALUE[segment[-1]] & _TAIL_MASK[rem]:
        raise ValueError("base64url has non-zero padding bits")
    # The charset is checked, so the quoted text is a JSON string without escapes.
    try:
        return _BASE64.decode(b'"%s%s"' % (segment.translate(_FROM_URL), _PAD[rem]))
    except msgspec.DecodeError as err:  # unreachable for a checked charset
        raise ValueError("invalid base64url") from err


def b64u_decode(value: object) -> bytes:
    """Decode canonical unpadded base64url text; raise ``ValueError`` on anything else."""
    if not isinstance(value, str) or not _B64U.fullmatch(value):
        raise ValueError("not an unpadded base64url string")
    return b64u_decode_checked(value.encode("ascii"))


# --- strict JSON ------------------------------------------------------------------------------


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of duplicate names silently; two parsers that disagree on which
    # duplicate wins is how claims get smuggled past a check, so refuse them outright.
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member name")
    return members


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_JSON_SPACE: Final = " \t\n\r"
_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_unique_members, parse_float=_finite_float, parse_constant=_no_constant
)


def strict_loads(text: str) -> Any:
    """Parse RFC 8259 JSON: no duplicate names, NaN, Infinity or overflowing numbers.

    Raise ``ValueError`` (or ``RecursionError`` for absurd nesting) on refusal.
    """
    # raw_decode skips JSONDecoder.decode's two whitespace regex scans (this runs per request).
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    value, end = _DECODER.raw_decode(text, start)
    if end != len(text) and text[end:].strip(_JSON_SPACE):
        raise ValueError("extra data after the JSON value")
    return value


_JSON_SCALARS: Final = (str, int, bool, type(None))
_MAX_DEPTH: Final = 64


def _json_values(values: Any, depth: int) -> None:
    """Refuse anything but JSON's own types, exactly (no bytes, datetime, UUID, set, NaN,
    non-str keys): ``json.dumps`` would turn some of those into other values silently."""
    if depth > _MAX_DEPTH:
        raise InvalidInput(f"claims must not nest deeper than {_MAX_DEPTH} levels")
    for value in values:
        kind = type(value)
        if kind in _JSON_SCALARS:
            continue
        if kind is float:
            if not math.isfinite(value):
                raise InvalidInput(f"claims must be JSON: {value!r} is not a JSON number")
        elif kind is list or kind is tuple:
            _json_values(value, depth + 1)
        elif kind is dict:
            if not all(type(name) is str for name in value):
                raise InvalidInput("claims must be JSON: object member names must be str")
            _json_values(value.values(), depth + 1)
        else:
            raise InvalidInput(f"claims must be JSON: a {kind.__name__} is not a JSON value")


def json_claims(claims: object, reserved: frozenset[str]) -> dict[str, Any]:
    """Check caller claims for signing; return them as the verifier will parse them."""
    if not isinstance(claims, Mapping):
        raise InvalidInput("claims must be a mapping")
    if not all(isinstance(name, str) for name in claims):
        raise InvalidInput("claim names must be strings")
    clash = sorted(name for name in claims if name in reserved)
    if clash:
        raise InvalidInput(f"claims may not use registered names: {', '.join(clash)}")
    _json_values(claims.values(), 0)
    try:
        # Round-trip through the verifier's parser: what we sign is exactly what verifies.
        decoded: dict[str, Any] = strict_loads(json.dumps(dict(claims), allow_nan=False))
    except (TypeError, ValueError, RecursionError) as err:
        raise InvalidInput("claims must be JSON (no NaN, no duplicate names)") from err
    return decoded


_FAST_DECODER: Final = msgspec.json.Decoder()
_FAST_ENCODER: Final = msgspec.json.Encoder()


def json_object(segment: bytes, what: str) -> dict[str, Any]:
    """Decode one JWS segment (charset already matched) as a strict JSON object."""
    try:
        raw = b64u_decode_checked(segment)
    except ValueError as err:
        raise MalformedToken(f"{what} is not valid base64url JSON") from err
    # Fast path (msgspec is ~5x faster than json here): the text is taken as msgspec parsed
    # it only when it is byte for byte msgspec's own encoding of the result. An encoded dict
    # never repeats a name, so such a text has no duplicate member at any depth, nor
    # anything else the strict parser refuses. Any other text (escapes written differently,
    # whitespace, 1E5, a duplicate) gets the strict parser and its verdict.
    try:
        value: Any = _FAST_DECODER.decode(raw)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        value = None
    if type(value) is not dict or _FAST_ENCODER.encode(value) != raw:
        try:
            value = strict_loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as err:
            raise MalformedToken(f"{what} is not valid base64url JSON") from err
    if type(value) is not dict:
        raise MalformedToken(f"{what} is not a JSON object")
    return value
