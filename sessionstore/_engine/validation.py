"""Validation, top to bottom: the engine's entry, the trip to Redis, the degraded answer.

``validate`` (``Engine.validate``) checks the token, then answers from the near cache, or
degraded while the breaker is open, or hands the shells a ``Check``: one validation's state
across its round trip (an HMGET, a follow-up only when needed). A failed trip ends in
``degraded``. Pure: the shells do the I/O. The engine is reached only through ``Host``, what
validation reads and calls of it (``sessionstore._engine.engine.Engine`` is one).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import msgspec

from sessionstore import events
from sessionstore._engine import binding, codec
from sessionstore._engine.adoption import maybe_legacy
from sessionstore._engine.call import Call, answered, fail_closed
from sessionstore._engine.fallback import Breaker, RevocationMemory
from sessionstore._engine.marker import Marker
from sessionstore._engine.schema import (
    IDLE_TTL,
    NEVER_TOUCH_MS,
    ROW_FIELDS,
    ROW_IDLE_TTL,
    ROW_SEEN,
    SEEN,
)
from sessionstore._nearcache.cache import NearCache, TokenCache
from sessionstore.errors import DeviceBindingError, InvalidToken, SessionRevoked, StoreUnavailable
from sessionstore.keys import UserKeys, user_keys
from sessionstore.legacy import LegacyTokens
from sessionstore.models import Config, Principal, Session
from sessionstore.scripts import SCRIPTS
from sessionstore.tokens import AccessClaims, Keyring, verify_access_token

__all__ = [
    "READ_FIELDS",
    "Check",
    "Host",
    "TouchRule",
    "Verified",
    "principal_of",
    "reached",
    "validate",
]

_CHECK = SCRIPTS["check"]
READ_FIELDS = ROW_FIELDS
# The check script's "never touch" (``_script`` takes µs): it only says how a session is gone.
_GONE_US = NEVER_TOUCH_MS * 1000
_KEYS_MEMO = 4096


class TouchRule:
    """When a session is due a touch: ``touch_interval``, or half its idle ttl if shorter."""

    __slots__ = ("cap_digits", "cap_ms", "us")

    def __init__(self, config: Config) -> None:
        self.us = config.touch_interval * 1_000_000
        # A session whose idle ttl (ms) is below this touches every half idle ttl instead;
        # an idle ttl with more digits is above it, no parse needed (see Check.then).
        self.cap_ms = 2 * config.touch_interval * 1000
        self.cap_digits = len(str(self.cap_ms))


class Host(Protocol):
    """What validation reads and calls of the engine (``Engine`` is one)."""

    config: Config
    breaker: Breaker
    marker: Marker
    revoked: RevocationMemory
    tokens: TokenCache[Verified] | None  # verified tokens (None: no token cache)
    near: NearCache | None  # sessions, fed by Redis' invalidation pushes
    fresh: Callable[[], bool]  # every push that reached the process is applied
    reader: Callable[[str], tuple[str, int]] | None  # the node a key is read from
    binding: bool  # Config.device_binding is not "off"
    touch_rule: TouchRule
    keys_memo: dict[str, UserKeys]  # user id -> its keys, bounded by clearing
    legacy: LegacyTokens | None  # Config.legacy_tokens: adoption from stateless JWTs

    @property
    def keyring(self) -> Keyring: ...

    def emit(self, event: events.Event) -> None: ...

    def gone(self, user_id: str, session_id: str, code: int) -> SessionRevoked: ...


class Verified(msgspec.Struct, gc=False):
    """A verified token, its keys, and the last Principal built from a cached session.

    Not tracked by the garbage collector (``gc=False``): one is built per first-time
    validation and lives across its round trip, and nothing it holds refers back to it.
    """

    claims: AccessClaims
    key: str  # the session hash
    index: str  # the user's session index
    read: tuple[str]  # the KEYS of the plain reads
    memo: tuple[Session, Principal] | None = None
    repeat: bool = False  # seen before: cached, and its session may be
    # When (server clock, s) its session is due a touch, as last read here: kept only for
    # a token in the token cache (0: not read yet; -1: not kept, nothing to remember).
    due: float = -1.0

    @property
    def keys(self) -> tuple[str, str]:
        """The KEYS of the check script."""
        return (self.index, self.key)


def validate(
    engine: Host, access_token: object, *, ip: str | None = None, user_agent: str | None = None
) -> Principal | Call[Principal]:
    """A ``Principal`` decided without Redis (cached or degraded), or the one-trip check.

    ``ip`` and ``user_agent`` describe the request, for ``Config.device_binding``.
    """
    now, mono = time.time(), time.monotonic()
    verified = _verified(engine, access_token, now)
    claims = verified.claims
    if engine.revoked.is_revoked(claims.user_id, claims.session_id, now):
        # Heard of (pushed, or revoked here) before any cache answers: a revocation
        # announced on one server may reach us before the push that drops the entry
        # (another node's, after a failover). Sessions are never recreated, so refuse.
        err = SessionRevoked("session was revoked (announced)")
        _failed(engine, claims, err)
        raise err
    near = engine.near
    if near is not None and near.get(verified.key, mono) is not None and engine.fresh():
        # A hit, and every push that has arrived is applied: look again. Not fresh
        # (the listener thread kept the connection past a short wait): Redis answers.
        session = near.get(verified.key, time.monotonic())
        if session is not None:
            if engine.binding:
                _bind(engine, claims, session, ip, user_agent)
            memo = verified.memo
            if memo is None or memo[0] is not session:
                verified.memo = memo = (session, principal_of(claims, session=session))
            return memo[1]
    if not engine.breaker.allow(mono):
        return degraded(engine, claims, None, ip, user_agent)
    if 0.0 < verified.due <= now:
        # Its session was due a touch when last read: the check script reads and slides
        # in one trip (an HMGET would find the touch due and cost a second). Not cached:
        # the slide's own push would drop the entry; the next read caches it again.
        return Check(engine, verified, None, ip, user_agent).touching()
    # A token seen for the first time stays out of both caches (see TokenCache.admit):
    # its session is cached from the second sighting on.
    return Check(engine, verified, near if verified.repeat else None, ip, user_agent)


def _verified(engine: Host, access_token: object, now: float) -> Verified:
    """The token checked locally (gate, signature, claims), from the token cache if there."""
    cache, keyring = engine.tokens, engine.keyring
    snapshot: object = None
    if cache is not None and type(access_token) is str:
        snapshot = keyring._live()
        hit = cache.get(access_token, now, snapshot)
        if hit is not None:
            return hit
    try:
        claims = verify_access_token(keyring, access_token, config=engine.config, now=now)
    except InvalidToken as err:
        # With legacy tokens on, a token that may be one is reported by ``Engine.adopt``.
        if engine.legacy is None or not maybe_legacy(err):
            engine.emit(events.ValidationFailed(reason=type(err).__name__))
        raise
    # A user's tokens come back (new sessions, refreshed tokens) long after any one token
    # has left the token cache: their keys are remembered per user.
    memo = engine.keys_memo
    keys = memo.get(claims.user_id)
    if keys is None:
        if len(memo) >= _KEYS_MEMO:
            memo.clear()
        keys = memo[claims.user_id] = user_keys(engine.config.namespace, claims.user_id)
    key = keys.session(claims.session_id)
    verified = Verified(claims, key, keys.index, (key,))
    if cache is None:
        verified.repeat = True  # no doorkeeper: every session is worth caching
    elif type(access_token) is str and cache.admit(access_token):
        # Seen before (the doorkeeper remembers): worth keeping from now on.
        verified.repeat = True
        verified.due = 0.0
        cache.put(access_token, verified, claims.expires_at, snapshot)
    return verified


class Check(Call[Principal]):
    """One validation's trip to Redis, and its first call: a plain HMGET.

    The hash's TTL is its idle/absolute deadline on the server's clock, so a reply proves
    the session live. The check script runs only when a touch is due, or to tell an
    expired session from a revoked one; a plain HGETALL follows for a session whose blobs
    outgrow the HMGET's slots.

    A Check is its own ``Call`` (the HMGET of ``READ_FIELDS``): ``parse``, ``fail`` and
    ``then`` are its methods, and the fields every read shares are class attributes (both
    shadow ``Call``'s slots of the same names). One object per request then carries the
    whole validation across the round trip, instead of a Call, three bound methods and
    this state: with a thousand validations in flight, fewer live objects means less
    garbage collector work.
    """

    __slots__ = ("due", "engine", "ip", "near", "ticket", "user_agent", "verified")
    script = _CHECK
    args: tuple[bytes, ...] = READ_FIELDS
    durable = False
    command: str | None = "HMGET"

    def __init__(
        self,
        engine: Host,
        verified: Verified,
        near: NearCache | None,
        ip: str | None,
        user_agent: str | None,
    ) -> None:
        self.keys = verified.read  # the one Call field that differs per request
        self.engine = engine
        self.verified = verified
        self.near = near
        self.ticket = 0 if near is None else near.begin()
        self.ip = ip
        self.user_agent = user_agent
        # When (server clock, s) the session is due a touch: a cached copy must not be
        # served past it, or a session used only through the cache would never slide.
        self.due = math.inf

    def then(self, row: list[bytes | None]) -> Call[Principal] | None:
        """The follow-up an HMGET reply needs (gone, touch due, blobs too big), or None."""
        seen = row[ROW_SEEN]
        if seen is None:
            return self._script(_GONE_US)  # gone: the script says whether expired or revoked
        touch = self.engine.touch_rule
        seen_us = int(seen)
        interval_us = touch.us
        idle = row[ROW_IDLE_TTL]  # the session's idle ttl (ms): half of it bounds the interval
        if idle is not None and len(idle) <= touch.cap_digits and int(idle) < touch.cap_ms:
            interval_us = int(idle) * 500
        if time.time() * 1_000_000 - seen_us >= interval_us:
            # Touch due (the script re-checks on its clock, with the same per-session rule).
            return self._script(interval_us)
        if self.near is not None or self.verified.due >= 0.0:
            self._learned((seen_us + interval_us) / 1e6)
        if not codec.row_fits(row):
            read = self.verified.read
            return Call(
                _CHECK, read, (), self.principal_all, self.fail, command="HGETALL", then=self._all
            )
        return None

    def _all(self, fields: Mapping[bytes, bytes] | list[bytes]) -> Call[Principal] | None:
        return self._script(_GONE_US) if not fields else None  # gone since the HMGET

    def _learned(self, due: float) -> None:
        """When (server clock, s) the session is due a touch: bounds a near-cache entry,
        and is kept with a token in the token cache (see ``Verified.due``)."""
        self.due = due
        if self.verified.due >= 0.0:
            self.verified.due = due

    def touching(self) -> Call[Principal]:
        """The check script as the first call: read, and slide when due (``validate``)."""
        return self._script(self.engine.touch_rule.us)

    def _script(self, interval_us: int) -> Call[Principal]:
        verified = self.verified
        args = (verified.claims.session_id, interval_us // 1000)
        return Call(_CHECK, verified.keys, args, self.checked, self.fail)

    def parse(self, row: list[bytes | None]) -> Principal:
        """The Principal of a live session's HMGET row (see ``then``)."""
        claims = self.verified.claims
        return self._built(codec.parse_row(claims.user_id, claims.session_id, row))

    def principal_all(self, fields: Mapping[bytes, bytes] | list[bytes]) -> Principal:
        """The Principal of a live session's whole hash (HGETALL: redis-py makes it a dict,
        the direct path leaves it a flat list of names and values)."""
        claims = self.verified.claims
        if isinstance(fields, list):
            fields = codec.parse_fields(fields)
        return self._built(codec.parse_session(claims.user_id, claims.session_id, fields))

    def _built(self, session: Session) -> Principal:
        engine, verified = self.engine, self.verified
        claims = verified.claims
        reached(engine)
        if engine.binding:
            _bind(engine, claims, session, self.ip, self.user_agent)
        near = self.near
        if near is not None:
            now, mono = time.time(), time.monotonic()
            deadline = min(session.idle_expires_at, session.absolute_expires_at, self.due)
            reader = engine.reader
            node = None if reader is None else reader(verified.key)
            near.put(verified.key, session, self.ticket, mono, mono + deadline - now, node)
        return principal_of(claims, session=session)

    def checked(self, reply: Any) -> Principal:
        """The check script's reply: the session's fields, or why it is gone.

        A due touch the server refused (memory full under noeviction) leaves the session
        as it was: the read answers, an event says so. Never a ``ScriptError`` here, and
        never the degraded fallback (the server answered).
        """
        if isinstance(reply, list):
            flat, refused = codec.untouched(reply)
            if refused is not None:
                claims = self.verified.claims
                self.engine.emit(
                    events.TouchFailed(
                        user_id=claims.user_id, session_id=claims.session_id, reason=refused
                    )
                )
            fields = codec.parse_fields(flat)
            seen, idle = fields.get(SEEN), fields.get(IDLE_TTL)
            if seen is not None and idle is not None:
                self._learned(codec.touch_due_us(seen, idle, self.engine.touch_rule.us) / 1e6)
            return self.principal_all(fields)
        raise self._gone(reply)

    def _gone(self, code: int) -> SessionRevoked:
        engine, claims = self.engine, self.verified.claims
        reached(engine)
        err = engine.gone(claims.user_id, claims.session_id, code)
        _failed(engine, claims, err)
        return err

    def fail(self, err: Exception, unreachable: bool) -> Principal:
        """Redis failed: degraded when unreachable, a typed error otherwise."""
        engine = self.engine
        if not unreachable:
            if answered(err, unreachable):
                reached(engine)
            return fail_closed(err, unreachable)  # type: ignore[no-any-return]
        if engine.breaker.failure(time.monotonic(), err):
            engine.emit(events.DegradedEntered(fallback=engine.config.fallback))
        return degraded(engine, self.verified.claims, err, self.ip, self.user_agent)


def reached(engine: Host) -> None:
    """Redis answered: degraded mode is bounded from now, and an outage may have ended."""
    breaker = engine.breaker
    breaker.last_reached = now = time.monotonic()
    if breaker.quiet:
        return  # the common case: no lock
    ended = breaker.success(now)
    if ended is not None:
        engine.marker.expedite()  # a server that came back may have come back empty
        engine.emit(events.DegradedLeft(seconds=ended))


def _failed(engine: Host, claims: AccessClaims, err: Exception) -> None:
    engine.emit(
        events.ValidationFailed(
            reason=type(err).__name__, user_id=claims.user_id, session_id=claims.session_id
        )
    )


def _bind(
    engine: Host, claims: AccessClaims, session: Session, ip: str | None, user_agent: str | None
) -> None:
    """Device binding against the session's device (read from Redis or the near cache)."""
    device = session.device
    field = binding.mismatch(device.ip, device.user_agent, ip, user_agent)
    if field is not None:
        _mismatched(engine, claims, field)


def _mismatched(engine: Host, claims: AccessClaims, field: binding.Field) -> None:
    enforced = engine.config.device_binding == "enforce"
    engine.emit(
        events.DeviceMismatch(
            user_id=claims.user_id, session_id=claims.session_id, field=field, enforced=enforced
        )
    )
    if enforced:
        err = DeviceBindingError(f"request {field} does not match the session's device")
        _failed(engine, claims, err)
        raise err


def degraded(
    engine: Host,
    claims: AccessClaims,
    err: BaseException | None,
    ip: str | None,
    user_agent: str | None,
) -> Principal:
    """Redis is unreachable (``err``) or the breaker is open (None): the fallback's answer."""
    config = engine.config
    # With the breaker open no call was made: the outage's latest driver error is the cause.
    cause = err if err is not None else engine.breaker.last_error
    if config.fallback == "deny":
        raise StoreUnavailable("Redis is unreachable and fallback is 'deny'") from cause
    # Bounded from the last reply, not from when this process noticed the outage: a
    # process (re)started mid-outage, or idle when it began, cannot extend the window.
    # One that never reached Redis has heard of no revocation at all: it denies.
    unreached = engine.breaker.unreached_seconds(time.monotonic())
    if unreached is None:
        raise StoreUnavailable(
            "Redis is unreachable and this process never reached it: "
            "it cannot know which sessions were revoked"
        ) from cause
    if unreached > config.max_degraded_seconds:
        raise StoreUnavailable(
            "Redis has been unreachable past max_degraded_seconds (counted from its last reply)"
        ) from cause
    if engine.revoked.is_revoked(claims.user_id, claims.session_id, time.time()):
        error = SessionRevoked("session was revoked (known to this process)")
        _failed(engine, claims, error)
        raise error
    if engine.binding:
        _bind_token(engine, claims, ip, user_agent, err)
    return principal_of(claims, session=None)


def _bind_token(
    engine: Host,
    claims: AccessClaims,
    ip: str | None,
    user_agent: str | None,
    err: BaseException | None,
) -> None:
    """Device binding without Redis: against the keyed digests the token carries."""
    key = None
    if claims.device is not None:
        try:
            key = engine.keyring._entry(claims.kid).binding_key
        except InvalidToken:
            key = None  # retired since the token was verified: nothing to check with
    if key is None or claims.device is None:
        # A token issued without binding, or a verify-only keyring: the device cannot
        # be checked here, so enforcement refuses rather than skip the check.
        if engine.config.device_binding == "enforce":
            raise StoreUnavailable(
                "Redis is unreachable and the token's device cannot be checked without it"
            ) from err
        return
    field = binding.token_mismatch(key, claims.session_id, claims.device, ip, user_agent)
    if field is not None:
        _mismatched(engine, claims, field)


def principal_of(claims: AccessClaims, *, session: Session | None) -> Principal:
    """The Principal of verified ``claims``: with its live session, or degraded (None).

    The last proof of identity and the caller's claims are the session's when it was read
    (a step-up or a claims ``update`` since the token was signed counts), else the token's.
    """
    if session is None:
        auth_time, amr, acr = claims.auth_time, claims.amr, claims.acr
        caller = claims.claims
    else:
        auth_time, amr, acr = session.auth_time, session.amr, session.acr
        caller = session.claims
    return Principal(
        user_id=claims.user_id,
        session_id=claims.session_id,
        claims=caller,
        session=session,
        degraded=session is None,
        issued_at=claims.issued_at,
        expires_at=claims.expires_at,
        auth_time=auth_time,
        amr=amr,
        acr=acr,
    )
