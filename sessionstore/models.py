"""Typed records of sessionstore: frozen, keyword-only msgspec Structs.

The records every validation returns (``Principal``, its ``Session`` and ``Device``) are
not tracked by Python's garbage collector (msgspec's ``gc=False``): under load thousands
are alive at once, and tracked ones would be traversed again by every full collection.
They are freed by reference counting like any object; the one thing to avoid is a
reference cycle through them (storing a Principal inside its own ``claims`` or
``session.data`` dict), which the collector could then never free.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from sessionstore.errors import InvalidInput
from sessionstore.legacy import LegacyTokens

__all__ = [
    "Config",
    "Device",
    "DeviceSessions",
    "HistoryEntry",
    "Principal",
    "Session",
    "TokenPair",
]

_NAMESPACE = re.compile(r"[A-Za-z0-9_.-]{1,32}")

MAX_SESSIONS_PER_USER = 1000
"""The largest ``Config.max_sessions_per_user``. A login at the cap looks at every session of
the user (to evict the least recently active) in one script: at 1,000 that script takes about
a millisecond; at 100,000 it blocked Redis for most of a second. Listing and revoking walk
the index in short steps whatever its size."""


MAX_HISTORY_ENTRIES = 1000
"""The largest ``Config.history_max_entries``: a login reads the whole history (new-device
detection) in its script."""

SESSION_LIMITS = ("evict", "refuse")
"""What a login at the user's session limit does (``Config.session_limit``)."""


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """Lifetimes, limits and policies of a store (seconds unless said).

    ``socket_timeout`` applies to clients the store creates with ``from_url``;
    a client you pass in keeps its own settings. The circuit breaker opens after
    ``breaker_failures`` consecutive unreachable errors and lets one probe through
    every ``breaker_reset`` seconds until Redis answers again. ``device_binding``
    compares a request's IP and user agent with the session's device ("report" emits
    an event, "enforce" also refuses). ``revoke_wait_replicas`` > 0 makes every
    revocation wait (``WAIT``, up to ``revoke_wait_timeout`` seconds) until that many
    replicas acknowledged it, narrowing what a failover can lose. Every
    ``marker_interval`` seconds a store checks a marker key that reveals data loss.
    ``token_cache_size`` verified tokens are remembered (0: off); ``near_cache_size``
    sessions are cached between Redis' invalidation pushes (0: off; on a cluster, one
    invalidation connection per primary; no entry outlives ``touch_interval``).
    Every revocation is appended to the namespace's revocation feed (a Redis Stream other
    services read, ``store.revocations()``), kept ``revocation_feed_retention`` seconds
    (0: no feed); with ``revocation_feed_sets`` each entry also carries one signed Security
    Event Token (RFC 8417, CAEP ``session-revoked``) per session, signed by the keyring.
    A login past ``max_sessions_per_user`` live sessions evicts the user's least recently
    active one (``session_limit="evict"``) or is refused with ``SessionLimitReached``
    (``"refuse"``); ``login(max_sessions=..., at_limit=...)`` overrides both per login.
    With ``history`` on, the scripts that change sessions append to a per-user history
    (``store.history()``): its newest ``history_max_entries`` entries are kept, and it
    expires ``history_ttl`` seconds after its last entry; off, nothing is written and
    ``TokenPair.new_device`` is always False.
    """

    access_ttl: int = 900
    idle_ttl: int = 1800
    absolute_ttl: int = 604800
    refresh_grace: int = 30
    touch_interval: int = 60
    max_sessions_per_user: int = 50
    session_limit: Literal["evict", "refuse"] = "evict"
    issuer: str = "sessionstore"
    audience: str = "sessionstore"
    namespace: str = "ss"
    leeway: int = 30
    max_token_bytes: int = 8192
    fallback: Literal["stateless", "deny"] = "stateless"
    max_degraded_seconds: int = 300
    socket_timeout: float = 0.25
    max_data_bytes: int = 4096
    max_claims_bytes: int = 1024
    breaker_failures: int = 3
    breaker_reset: float = 1.0
    revoked_memory: int = 100_000
    device_binding: Literal["off", "report", "enforce"] = "off"
    revoke_wait_replicas: int = 0
    revoke_wait_timeout: float = 0.1
    marker_interval: float = 5.0
    token_cache_size: int = 10_000
    near_cache_size: int = 10_000
    revocation_feed_retention: int = 86400
    revocation_feed_sets: bool = False
    history: bool = True
    history_max_entries: int = 100
    history_ttl: int = 30 * 86400
    # Adoption from stateless JWTs (``sessionstore.legacy``): None, the default, is off.
    legacy_tokens: LegacyTokens | None = None

    def __post_init__(self) -> None:
        # Checked once, here: every later use (each validate) trusts these values.
        for name, (low, high) in _INT_RANGES.items():
            _require_int(name, getattr(self, name), low, high)
        for name, limit in _SECONDS.items():
            _require_seconds(name, getattr(self, name), limit)
        if self.idle_ttl > self.absolute_ttl:
            raise InvalidInput(
                f"Config.idle_ttl must not exceed Config.absolute_ttl "
                f"({self.absolute_ttl}), got {self.idle_ttl}"
            )
        if self.max_claims_bytes > self.max_token_bytes:
            raise InvalidInput(
                f"Config.max_claims_bytes must not exceed Config.max_token_bytes "
                f"({self.max_token_bytes}), got {self.max_claims_bytes}"
            )
        if self.fallback not in ("stateless", "deny"):
            raise InvalidInput(
                f"Config.fallback must be 'stateless' or 'deny', got {self.fallback!r}"
            )
        if self.session_limit not in SESSION_LIMITS:
            raise InvalidInput(
                f"Config.session_limit must be 'evict' or 'refuse', got {self.session_limit!r}"
            )
        if self.device_binding not in ("off", "report", "enforce"):
            raise InvalidInput(
                "Config.device_binding must be 'off', 'report' or 'enforce', "
                f"got {self.device_binding!r}"
            )
        if not isinstance(self.history, bool):
            raise InvalidInput(f"Config.history must be a bool, got {self.history!r}")
        if not isinstance(self.revocation_feed_sets, bool):
            raise InvalidInput(
                f"Config.revocation_feed_sets must be a bool, got {self.revocation_feed_sets!r}"
            )
        if not isinstance(self.namespace, str) or not _NAMESPACE.fullmatch(self.namespace):
            raise InvalidInput(
                f"Config.namespace must be 1..32 chars of [A-Za-z0-9_.-], got {self.namespace!r}"
            )
        for name in ("issuer", "audience"):
            value = getattr(self, name)
            if not isinstance(value, str) or not 1 <= len(value) <= 256:
                raise InvalidInput(f"Config.{name} must be a string of 1..256 chars")
        if self.legacy_tokens is not None and not isinstance(self.legacy_tokens, LegacyTokens):
            raise InvalidInput("Config.legacy_tokens must be a LegacyTokens or None")


# Upper bounds keep every derived figure sane: deadlines in ms stay exact in Lua's doubles,
# caches stay allocatable, and a session's chunked blobs stay within what one script call
# can unpack (Lua refuses to unpack ~8000 values).
_YEAR = 366 * 86400
_INT_RANGES: dict[str, tuple[int, int]] = {
    "access_ttl": (1, 10 * _YEAR),
    "idle_ttl": (1, 100 * _YEAR),
    "absolute_ttl": (1, 100 * _YEAR),
    "refresh_grace": (0, _YEAR),
    "touch_interval": (0, _YEAR),
    # A login at the cap reads every session (exact least-recently-active eviction), so
    # the cap bounds the longest script: ~2 ms at 1,000 (make bench, group "cap").
    "max_sessions_per_user": (1, MAX_SESSIONS_PER_USER),
    "leeway": (0, 86400),
    "max_token_bytes": (512, 1 << 20),
    "max_degraded_seconds": (0, 100 * _YEAR),
    "max_data_bytes": (1, 1 << 17),
    "max_claims_bytes": (1, 1 << 16),
    "breaker_failures": (1, 1_000_000),
    "revoked_memory": (1, 100_000_000),
    "revoke_wait_replicas": (0, 1000),
    "token_cache_size": (0, 100_000_000),
    "near_cache_size": (0, 100_000_000),
    "revocation_feed_retention": (0, 30 * 86400),
    "history_max_entries": (1, MAX_HISTORY_ENTRIES),
    "history_ttl": (1, _YEAR),
}
_SECONDS: dict[str, float] = {
    "socket_timeout": 3600.0,
    "breaker_reset": 86400.0,
    "revoke_wait_timeout": 3600.0,
    "marker_interval": 86400.0,
}


def _require_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"Config.{name} must be an integer in {low}..{high}, got {value!r}")


def _require_seconds(name: str, value: object, high: float) -> None:
    # One chained comparison refuses NaN (every comparison with it is false) and infinities.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
        raise InvalidInput(
            f"Config.{name} must be a finite number > 0 and <= {high:g}, got {value!r}"
        )


class Device(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The device a session was created on; ``id`` groups sessions per device."""

    id: str
    name: str = ""
    user_agent: str = ""
    ip: str = ""


class Session(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One active session as stored in Redis (times are Unix seconds, server clock).

    ``auth_time``, ``amr`` and ``acr`` say when and how the user last proved who they are
    (OpenID Connect's names): at login, or at the last ``step_up``. ``auth_time`` is whole
    seconds; ``amr`` the methods (RFC 8176 values such as ``"pwd"``, ``"otp"``), oldest
    first; ``acr`` the assurance level (0: none asserted). ``persistent`` is False for a
    browser-session login (``login(..., persistent=False)``: "this is a shared computer").
    """

    user_id: str
    session_id: str
    device: Device
    created_at: float
    last_seen_at: float
    idle_expires_at: float
    absolute_expires_at: float
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    claims: dict[str, Any] = msgspec.field(default_factory=dict)
    auth_time: int = 0
    amr: tuple[str, ...] = ()
    acr: int = 0
    persistent: bool = True


class DeviceSessions(msgspec.Struct, frozen=True, kw_only=True):
    """A user's active sessions on one device, newest first."""

    device: Device
    sessions: list[Session]
    last_seen_at: float


class TokenPair(msgspec.Struct, frozen=True, kw_only=True):
    """The tokens a login or refresh hands out; its repr hides both secrets.

    ``persistent`` is the session's (``login(..., persistent=False)``: False): the
    integrations set a False pair's cookies as browser-session cookies (no Max-Age).
    """

    access_token: str
    refresh_token: str
    session_id: str
    token_type: str = "Bearer"
    expires_in: int = 0
    persistent: bool = True
    # A login's (or adoption's): no sign-in in the user's history showed this device (by
    # id, nor by UA family and IP network). False from a refresh, or with the history off.
    new_device: bool = False

    def __repr__(self) -> str:
        return f"TokenPair(session_id={self.session_id!r}, access_token=***, refresh_token=***)"

    __str__ = __repr__


class Principal(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Who a validated access token speaks for.

    ``claims`` holds the caller's claims: the session's as Redis holds them (from login,
    or a later ``update(claims=...)``), or the token's when the answer was given from the
    token alone; ``session`` is then None (``degraded=True``, Redis unreachable).
    ``auth_time``, ``amr`` and ``acr`` (the last proof of identity, see ``Session``) come
    from the session when it was read, else from the token's claims (``auth_time`` None
    for a token that carries none).
    """

    user_id: str
    session_id: str
    claims: dict[str, Any]
    session: Session | None
    degraded: bool
    issued_at: int
    expires_at: int
    auth_time: int | None = None
    amr: tuple[str, ...] = ()
    acr: int = 0
    # Set on the first sighting of a legacy token (``Config.legacy_tokens``): the token pair
    # of the session just adopted for it, to hand the client. None otherwise.
    adopted: TokenPair | None = None


HistoryKind = Literal["login", "adopted", "refresh", "step_up", "revoked", "reuse"]


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a user's history (``store.history()``); never a token or a secret.

    ``kind``: ``"login"`` and ``"adopted"`` (sign-ins: ``device_id``, ``device_name``,
    ``ip``, ``browser``/``os`` families set), ``"refresh"``, ``"step_up"`` (``method``,
    ``level``), ``"revoked"`` (``reason``: an ``events.RevokeReason``), ``"reuse"`` (a
    spent refresh token came back; a ``"revoked"`` entry follows it). ``at``: Unix seconds,
    the server's clock. Entries other than sign-ins store the first chars of their session
    id (``session_ref``); ``session_id`` is the full id when a sign-in in the history or a
    live session has it, else None.
    """

    kind: HistoryKind
    at: int
    session_ref: str
    session_id: str | None = None
    device_id: str = ""
    device_name: str = ""
    ip: str = ""
    browser: str = ""
    os: str = ""
    reason: str = ""
    method: str = ""
    level: int = 0
