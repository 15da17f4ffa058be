"""Key layout and id validation: the only place Redis key strings are built.

Every key of one user shares the hash tag ``{<enc uid>}``, so each script touches
one slot and runs unchanged on Redis Cluster. The encoded user id is base64url
without padding: it can never hold ``{ } : * ?`` or whitespace.
"""

from __future__ import annotations

import re
import secrets

import msgspec

from sessionstore._jose.strict import b64u_decode_checked, b64u_encode
from sessionstore.errors import InvalidInput

__all__ = [
    "MAX_DEVICE_ID_BYTES",
    "MAX_USER_ID_CHARS",
    "UserKeys",
    "check_device_id",
    "check_session_id",
    "check_user_id",
    "decode_user_id",
    "encode_user_id",
    "new_session_id",
    "user_keys",
]

MAX_USER_ID_CHARS = 256
# 64 bytes keeps the device field inside a listpack-encoded hash (hash-max-listpack-value).
MAX_DEVICE_ID_BYTES = 64
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{22}")
_ENCODED = re.compile(r"[A-Za-z0-9_-]{2,342}")


class UserKeys(msgspec.Struct, frozen=True, gc=False):
    """The keys of one user: session prefix (``<prefix><sid>``) and index."""

    prefix: str
    index: str

    def session(self, session_id: str) -> str:
        """The key of one session hash."""
        return self.prefix + session_id


def check_user_id(user_id: object) -> str:
    """Return ``user_id`` if it is a usable id, else raise ``InvalidInput``."""
    if not isinstance(user_id, str):
        raise InvalidInput(f"user_id must be str, got {type(user_id).__name__}")
    if not 1 <= len(user_id) <= MAX_USER_ID_CHARS:
        raise InvalidInput(f"user_id must be 1..{MAX_USER_ID_CHARS} chars, got {len(user_id)}")
    if "\x00" in user_id:
        raise InvalidInput("user_id must not contain NUL")
    try:
        user_id.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidInput("user_id must be valid Unicode (no lone surrogates)") from err
    return user_id


def check_session_id(session_id: object) -> str:
    """Return ``session_id`` if it has the shape this library issues, else raise."""
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
        raise InvalidInput("session_id must be 22 chars of base64url")
    return session_id


def check_device_id(device_id: object) -> str:
    """Return ``device_id`` if it is 1..64 UTF-8 bytes without NUL, else raise."""
    if not isinstance(device_id, str):
        raise InvalidInput(f"device id must be str, got {type(device_id).__name__}")
    try:
        size = len(device_id.encode("utf-8"))
    except UnicodeEncodeError as err:
        raise InvalidInput("device id must be valid Unicode (no lone surrogates)") from err
    if not 1 <= size <= MAX_DEVICE_ID_BYTES or "\x00" in device_id:
        raise InvalidInput(f"device id must be 1..{MAX_DEVICE_ID_BYTES} bytes without NUL")
    return device_id


def encode_user_id(user_id: str) -> str:
    """The base64url (unpadded) form of a checked user id."""
    return b64u_encode(check_user_id(user_id).encode("utf-8"))


def decode_user_id(encoded: str) -> str:
    """Invert ``encode_user_id``; raise ``InvalidInput`` on anything else."""
    if not isinstance(encoded, str) or not _ENCODED.fullmatch(encoded):
        raise InvalidInput("encoded user id is not base64url")
    try:
        # The strict decoder refuses a non-canonical encoding (padding bits, length).
        user_id = b64u_decode_checked(encoded.encode("ascii")).decode("utf-8")
    except ValueError as err:  # UnicodeDecodeError included
        raise InvalidInput("encoded user id is not canonical base64url UTF-8") from err
    return check_user_id(user_id)


def user_keys(namespace: str, user_id: str) -> UserKeys:
    """The keys of ``user_id`` under ``namespace`` (validates the id)."""
    tag = f"{namespace}:{{{encode_user_id(user_id)}}}:"
    return UserKeys(prefix=tag + "s:", index=tag + "idx")


def new_session_id() -> str:
    """A fresh 128-bit random session id (22 chars of base64url)."""
    return secrets.token_urlsafe(16)


MARKER_TTL_MS = 30 * 86_400_000


def marker_key(namespace: str) -> str:
    """The marker's key: its hash tag holds a '!', so no encoded user id can share it."""
    return f"{namespace}:{{!marker}}"


def db_watch_key(namespace: str) -> str:
    """The key the near cache's listener WATCHes in its database (``_nearcache.listener``).

    Set once (NX), never renewed: any write to it, like a SWAPDB or a flush, dirties the
    watch of every listening process. A '!' in its hash tag keeps user keys off it.
    """
    return f"{namespace}:{{!db}}"
