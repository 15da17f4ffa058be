"""Key layout and id checks: the only place Redis keys, channels and patterns are built.

Every key of one user shares the hash tag ``{<enc uid>}``, so each script touches
one slot and runs unchanged on Redis Cluster. The encoded user id is base64url
without padding: it can never hold ``{ } : * ?`` or whitespace. ::

    <ns>:{<enc uid>}:s:<sid>       HASH    one session (its fields: ``_engine/schema.py``)
    <ns>:{<enc uid>}:idx           ZSET    the user's sessions: session id -> idle deadline
    <ns>:{<enc uid>}:h             LIST    the user's history (``_engine/history.py``): capped,
                                           expiring with ``Config.history_ttl``
    <ns>:{<enc uid>}:mv:<sid>      STRING  where a rotated-away session id's family lives now
                                           (``lua/rotate.lua``): the id it moved to, or the
                                           family's first id; until the absolute deadline
    <ns>:{<enc uid>}:rl:<name>     STRING  an account's rate limit (``ratelimit.py``)
    <ns>:{<enc uid>}:lg:<digest>   STRING  the session adopted for one legacy token (its
                                           SHA-256, never the token), until the token's exp
    <ns>:{ip.<b64 ip>}:rl:<name>   STRING  a client IP's rate limit
    <ns>:{!marker}                 STRING  the liveness marker (``_engine/marker.py``)
    <ns>:{!db}                     STRING  the near cache's database watch key
    <ns>:{!revoked}                channel revocations, ``<enc uid> <sid>...`` per message
    <ns>:{!revocations}            STREAM  the revocation feed for other services: one entry per
                                           revocation (fields: ``_engine/feed.py``), trimmed by
                                           age, expiring with ``Config.revocation_feed_retention``

The scripts get every key in KEYS, but build a user's session keys (found through the
index) and the revocations channel themselves: ``lua/_prelude.lua`` holds the parts below
under the same names (``tests/test_wire.py`` compares them).
"""

from __future__ import annotations

import re
import secrets

import msgspec

from sessionstore._jose.strict import b64u_decode_checked, b64u_encode
from sessionstore.errors import InvalidInput

__all__ = [
    "HISTORY_PART",
    "INDEX_PART",
    "MARKER_TTL_MS",
    "MAX_DEVICE_ID_BYTES",
    "MAX_USER_ID_CHARS",
    "MOVED_PART",
    "REVOKED_CHANNEL_PART",
    "SESSION_PART",
    "UserKeys",
    "account_limit_key",
    "check_device_id",
    "check_session_id",
    "check_user_id",
    "db_watch_key",
    "decode_user_id",
    "encode_user_id",
    "glob_escape",
    "index_pattern",
    "ip_limit_key",
    "legacy_marker_key",
    "marker_key",
    "new_session_id",
    "revocations_key",
    "revoked_channel",
    "tracking_prefix",
    "user_keys",
    "user_of_index",
]

# After a user's hash tag ``<ns>:{<enc uid>}:``: a session (+ its id), the index.
SESSION_PART = "s:"
INDEX_PART = "idx"
HISTORY_PART = "h"
MOVED_PART = "mv:"
# After the namespace: the channel the revoking scripts publish on.
REVOKED_CHANNEL_PART = ":{!revoked}"

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

    @property
    def history(self) -> str:
        """The key of the user's history list, beside the index."""
        return self.index[: -len(INDEX_PART)] + HISTORY_PART

    def moved(self, session_id: str) -> str:
        """The key that says where the family of a rotated-away session id lives now
        (``_engine/rotation.py``): read by a refresh with a token of that id."""
        return self.index[: -len(INDEX_PART)] + MOVED_PART + session_id


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
    tag = _tagged(namespace, encode_user_id(user_id))
    return UserKeys(prefix=tag + SESSION_PART, index=tag + INDEX_PART)


def _tagged(namespace: str, tag: str) -> str:
    """The start of every key hashed on ``tag``: ``<ns>:{<tag>}:``."""
    return f"{namespace}:{{{tag}}}:"


def tracking_prefix(namespace: str) -> str:
    """The prefix every key of ``namespace`` starts with (the near cache tracks it)."""
    return namespace + ":"


def revoked_channel(namespace: str) -> str:
    """The channel the revoking scripts publish ``<enc uid> <sid>...`` on (not a key: it
    names no slot, and a PUBLISH reaches every node of a cluster)."""
    return namespace + REVOKED_CHANNEL_PART


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis glob pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def index_pattern(namespace: str) -> str:
    """The SCAN pattern of every user's index under ``namespace``."""
    return glob_escape(f"{namespace}:{{") + "*" + _INDEX_SUFFIX


_INDEX_SUFFIX = "}:" + INDEX_PART


def user_of_index(namespace: str, key: str) -> str | None:
    """The user whose index ``key`` is, or None for a key that is not a user's index."""
    start = f"{namespace}:{{"
    if not (key.startswith(start) and key.endswith(_INDEX_SUFFIX)):
        return None
    try:
        return decode_user_id(key[len(start) : -len(_INDEX_SUFFIX)])
    except InvalidInput:
        return None  # a foreign key that happens to match the pattern


def account_limit_key(namespace: str, name: str, account: str) -> str:
    """An account's rate limit key ``name``: in the slot of the account's sessions."""
    return _tagged(namespace, encode_user_id(account)) + f"rl:{name}"


def legacy_marker_key(namespace: str, user_id: str, digest: str) -> str:
    """The adoption marker of one legacy token (``digest``: its base64url SHA-256), in the
    slot of the user's sessions: the script that creates the session sets it."""
    if not isinstance(digest, str) or not re.fullmatch(r"[A-Za-z0-9_-]{43}", digest):
        raise InvalidInput("a legacy marker digest is 43 chars of base64url")
    return _tagged(namespace, encode_user_id(user_id)) + f"lg:{digest}"


def ip_limit_key(namespace: str, name: str, bucket: str) -> str:
    """A client IP's (or IPv6 /64's: ``bucket``) rate limit key ``name``."""
    return _tagged(namespace, "ip." + b64u_encode(bucket.encode())) + f"rl:{name}"


def new_session_id() -> str:
    """A fresh random session id: 22 chars of base64url, never beginning with '-'.

    An id that began with '-' would read as an option to a command line (``sessionstore
    sessions revoke USER SID``, ``manage.py``, any shell tool); drawing again costs 1/64 of
    the first character's choices, about 0.02 bits of the 128.
    """
    while (session_id := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return session_id


MARKER_TTL_MS = 30 * 86_400_000


def marker_key(namespace: str) -> str:
    """The marker's key: its hash tag holds a '!', so no encoded user id can share it."""
    return f"{namespace}:{{!marker}}"


def revocations_key(namespace: str) -> str:
    """The revocation feed's stream: one key (one slot) per namespace, never a user's.

    On a cluster it lives on whichever node owns its slot, so the revoking scripts (on the
    user's slot) cannot write it: the store appends right after them (``_engine/feed.py``).
    """
    return f"{namespace}:{{!revocations}}"


def db_watch_key(namespace: str) -> str:
    """The key the near cache's listener WATCHes in its database (``_nearcache.listener``).

    Set once (NX), never renewed: any write to it, like a SWAPDB or a flush, dirties the
    watch of every listening process. A '!' in its hash tag keeps user keys off it.
    """
    return f"{namespace}:{{!db}}"
