"""The session hash's field names, the row a validation reads, and the scripts' reply codes.

The Python half of the constants at the top of ``lua/_prelude.lua``: the same names with
the same values (``tests/test_wire.py`` parses the Lua and compares). Key and channel
names live in ``sessionstore/keys.py``. Field names are bytes: replies name fields in
bytes, and redis-py and the direct path send bytes arguments unchanged.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "ABSOLUTE_DEADLINE",
    "ACR",
    "AMR",
    "AUTH_TIME",
    "BROWSER_SESSION",
    "CREATED",
    "DATA",
    "DATA_CHUNKS",
    "DATA_SLOTS",
    "DEVICE",
    "FEED_AT",
    "GENERATION",
    "HISTORY_HEAD",
    "H_ADOPTED",
    "H_LOGIN",
    "H_REFRESH",
    "H_REUSE",
    "H_REVOKED",
    "H_STEP_UP",
    "IDLE_DEADLINE",
    "IDLE_TTL",
    "IP_TEXT",
    "IP_V4",
    "IP_V6",
    "KEY_ID",
    "META",
    "META_SLOTS",
    "NEVER_TOUCH_MS",
    "ORIGIN",
    "ROTATED_AT",
    "ROW_ABSOLUTE_DEADLINE",
    "ROW_ACR",
    "ROW_AMR",
    "ROW_AUTH_TIME",
    "ROW_BROWSER_SESSION",
    "ROW_CREATED",
    "ROW_DATA",
    "ROW_DATA_CHUNKS",
    "ROW_DEVICE",
    "ROW_FIELDS",
    "ROW_HEAD",
    "ROW_IDLE_DEADLINE",
    "ROW_IDLE_TTL",
    "ROW_META",
    "ROW_SEEN",
    "SEEN",
    "SESSION_REF",
    "TOUCH_NOW_MS",
    "UNTOUCHED",
    "WHY_EVICTED",
    "WHY_REUSE",
    "Reply",
]

# Session HASH fields. Times are the server's clock.
CREATED = b"c"  # µs
SEEN = b"s"  # last seen, µs (µs keep same-ms events in order)
IDLE_TTL = b"i"  # ms, per session
ABSOLUTE_DEADLINE = b"a"  # ms
IDLE_DEADLINE = b"e"  # ms, never past the absolute deadline
DEVICE = b"v"  # device id
GENERATION = b"g"  # refresh generation (sessions made by login only)
KEY_ID = b"k"  # the key id the current generation is signed with
ROTATED_AT = b"t"  # last rotation, ms
META = b"m"  # chunk prefix of the meta blob (device texts, claims): m0, m1, ...
DATA = b"d"  # chunk prefix of the data blob: d0, d1, ...
DATA_CHUNKS = b"dn"  # how many data chunks (absent: no data)
# The last proof of identity (OIDC auth_time, amr, acr). Each is written only when it
# differs from its default, so a login that names no method costs no memory.
AUTH_TIME = b"au"  # s (absent: the session's creation)
AMR = b"am"  # authentication methods, space-separated (absent: none)
ACR = b"al"  # assurance level 1..9 (absent: 0, none asserted)
# A browser-session login (``login(persistent=False)``): "1". Absent: persistent, so the
# default login costs no memory.
BROWSER_SESSION = b"bs"
# A session rotated while it had refresh tokens: the first id of its family (the id its
# moved keys lead to, see ``_engine/rotation.py``). Absent: never rotated with them.
ORIGIN = b"o"

# The revocation feed's one field the feed script writes itself (the rest: ``feed``).
FEED_AT = b"at"  # the append's time, ms (server clock)

# The history LIST (``_engine/history.py``): an entry's first byte holds its kind (bits
# 0-2) and HISTORY_HEAD on the newest entry; entries other than sign-ins keep SESSION_REF
# chars of their session id.
HISTORY_HEAD = 8
H_LOGIN = 0
H_ADOPTED = 1
H_REFRESH = 2
H_STEP_UP = 3
H_REVOKED = 4
H_REUSE = 5
IP_V4 = b"4"  # a sign-in's IP: 4 bytes follow
IP_V6 = b"6"  # 16 bytes follow
IP_TEXT = b"t"  # not an address: a length byte and the text follow
WHY_EVICTED = b"e"  # revocation reasons the scripts write themselves
WHY_REUSE = b"z"
SESSION_REF = 4

# The touch interval the check script takes (ms; any other value >= 0 is an interval).
NEVER_TOUCH_MS = -1  # a read only: says how a session is gone when it is
TOUCH_NOW_MS = 0

# After a check script's fields: its due touch was refused, and the server's error follows.
UNTOUCHED = b"!untouched"


class Reply(IntEnum):
    """A script's status: check and update reply a gone code bare, refresh in a list."""

    EXPIRED = -1  # past a deadline (deleted on the way)
    REVOKED = 0  # or never existed
    ROTATED = 1  # refresh: the next generation
    GRACE = 2  # refresh: the previous generation again, within the grace
    REUSED = 3  # refresh: an older generation, or a token of a rotated-away id (the
    # session, or the one it moved to, is deleted)
    NO_REFRESH = 4  # refresh: the session has no refresh token
    LIMIT = 5  # create: at the user's session limit, refused (nothing written)


# A validation reads a session with HMGET of these fields: fixed positions, no field names
# in the reply, no dict to build. Blobs longer than the slots need the whole hash.
META_SLOTS = 8
DATA_SLOTS = 4
# Every live session has these: a row starts with them (a ``Session`` is built from them).
ROW_HEAD = (CREATED, SEEN, IDLE_DEADLINE, ABSOLUTE_DEADLINE, DEVICE)
ROW_FIELDS: tuple[bytes, ...] = (
    *ROW_HEAD,
    *(DATA_CHUNKS, IDLE_TTL),
    *(AUTH_TIME, AMR, ACR, BROWSER_SESSION),
    *(b"%s%d" % (META, n) for n in range(META_SLOTS)),
    *(b"%s%d" % (DATA, n) for n in range(DATA_SLOTS)),
)
# Positions in a row, as plain ints: the hot path indexes rows with them.
ROW_CREATED = ROW_FIELDS.index(CREATED)
ROW_SEEN = ROW_FIELDS.index(SEEN)
ROW_IDLE_DEADLINE = ROW_FIELDS.index(IDLE_DEADLINE)
ROW_ABSOLUTE_DEADLINE = ROW_FIELDS.index(ABSOLUTE_DEADLINE)
ROW_DEVICE = ROW_FIELDS.index(DEVICE)
ROW_DATA_CHUNKS = ROW_FIELDS.index(DATA_CHUNKS)
ROW_IDLE_TTL = ROW_FIELDS.index(IDLE_TTL)
ROW_AUTH_TIME = ROW_FIELDS.index(AUTH_TIME)
ROW_AMR = ROW_FIELDS.index(AMR)
ROW_ACR = ROW_FIELDS.index(ACR)
ROW_BROWSER_SESSION = ROW_FIELDS.index(BROWSER_SESSION)
ROW_META = ROW_FIELDS.index(META + b"0")  # the first of META_SLOTS
ROW_DATA = ROW_FIELDS.index(DATA + b"0")  # the first of DATA_SLOTS
