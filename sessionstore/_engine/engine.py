"""Pure token logic on top of the store core: login, validate, refresh, logout.

Token checks run here before any I/O; the Redis side is one ``Call`` each, and the
fallback policy decides what an unreachable Redis means for validation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from sessionstore import events
from sessionstore._engine import binding as _binding
from sessionstore._engine import codec
from sessionstore._engine import marker as _marker
from sessionstore._engine.call import Call, announced
from sessionstore._engine.fallback import Breaker
from sessionstore._engine.schema import GENERATION, KEY_ID, Reply
from sessionstore._engine.sessions import Sessions, checked_ttl
from sessionstore._engine.validation import Check, Verified, principal_of
from sessionstore._nearcache.cache import NearCache, TokenCache
from sessionstore.errors import (
    DeviceBindingError,
    InvalidInput,
    InvalidToken,
    RefreshReuseDetected,
    SessionRevoked,
    StoreUnavailable,
)
from sessionstore.keys import UserKeys, decode_user_id, new_session_id, user_keys
from sessionstore.models import Config, Device, Principal, Session, TokenPair
from sessionstore.scripts import SCRIPTS
from sessionstore.tokens import (
    RESERVED_CLAIMS,
    AccessClaims,
    Keyring,
    issue_access_token,
    issue_refresh_token,
    parse_refresh_token,
    verify_access_token,
)

__all__ = ["Engine"]

_KEYS_MEMO = 4096
_GONE = (Reply.EXPIRED, Reply.REVOKED)


class Engine(Sessions):
    """The ``Call`` builders of the token operations, plus the fallback state."""

    def __init__(
        self, config: Config, keyring: Keyring | None, on_event: events.EventHook | None = None
    ) -> None:
        super().__init__(config, on_event)
        if keyring is not None and not isinstance(keyring, Keyring):
            raise InvalidInput(f"keyring must be a Keyring, got {type(keyring).__name__}")
        self._keyring = keyring
        self.breaker = Breaker(config.breaker_failures, config.breaker_reset)
        self.marker = _marker.Marker(config.namespace, config.marker_interval)
        size = config.token_cache_size
        self.tokens: TokenCache[Verified] | None = TokenCache(size, config.leeway) if size else None
        self._binding = config.device_binding != "off"
        self.touch_us = config.touch_interval * 1_000_000  # read on every validation
        # A session whose idle ttl (ms) is below this touches every half idle ttl instead;
        # an idle ttl with more digits is above it, no parse needed (see Check.then).
        self.idle_cap_ms = 2 * config.touch_interval * 1000
        self.idle_cap_digits = len(str(self.idle_cap_ms))
        # user id -> its keys: a user's tokens come back (new sessions, refreshed tokens)
        # long after any one token has left the token cache. Bounded by clearing.
        self._keys: dict[str, UserKeys] = {}
        self.reader: Callable[[str], tuple[str, int]] | None = None

    def attach(
        self,
        near: NearCache,
        fresh: Callable[[], bool],
        reader: Callable[[str], tuple[str, int]] | None = None,
    ) -> None:
        """Serve hot validations from ``near`` when ``fresh()`` has applied every push of
        Redis that reached the process (and says so); ``reader(key)`` names the node a key
        is read from (a cluster), see ``NearCache``."""
        self.near, self.fresh, self.reader = near, fresh, reader

    def forked(self) -> None:
        """In a forked child: every lock anew (a parent thread may have held one)."""
        super().forked()
        self.breaker.forked()
        self.marker.forked()
        if self.tokens is not None:
            self.tokens.forked()
        if self._keyring is not None:
            self._keyring._forked()

    def published(self, encoded_user_id: str, session_ids: list[str]) -> None:
        """A revocation announced by a script (any process): remember it for degraded mode."""
        try:
            user_id = decode_user_id(encoded_user_id)
        except InvalidInput:
            return
        now = time.time()
        for session_id in session_ids:
            self.revoked.add(user_id, session_id, now)

    def housekeeping(self) -> Call[None] | None:
        """The marker check when it is due (never while the breaker is open), else None."""
        if self.breaker.is_open or not self.marker.due(time.monotonic()):
            return None

        def parse(reply: list[Any]) -> None:
            self.breaker.last_reached = time.monotonic()
            event = self.marker.parse(reply)
            if event is not None:
                self.emit(event)

        def fail(err: Exception, unreachable: bool) -> None:
            # The operation that follows meets the same outage and reports it properly.
            if not unreachable:
                _marker.logger.warning("sessionstore marker check failed: %s", err)

        key, *args = self.marker.args()
        return Call(_marker.SCRIPT, (key,), tuple(args), parse, fail)

    @property
    def keyring(self) -> Keyring:
        """The keyring; token operations need one."""
        if self._keyring is None:
            raise InvalidInput("this store has no keyring: pass keyring=Keyring.generate(...)")
        return self._keyring

    def _signing_kid(self) -> str:
        kid = self.keyring.current_kid
        if kid is None:
            raise InvalidInput("the keyring holds public keys only: it cannot sign")
        return kid

    def _pair(
        self,
        user_id: str,
        session_id: str,
        claims: Mapping[str, Any],
        generation: int,
        kid: str,
        absolute_deadline: float,
        device: Device,
        *,
        now: float | None = None,
    ) -> TokenPair:
        now = int(time.time() if now is None else now)
        access, issued = issue_access_token(
            self.keyring,
            user_id=user_id,
            session_id=session_id,
            claims=claims,
            config=self.config,
            now=now,
            expires_at=int(absolute_deadline),
            # Binding on: the token carries its device's digests, for degraded mode.
            device=device if self._binding else None,
        )
        refresh = issue_refresh_token(
            self.keyring, user_id=user_id, session_id=session_id, generation=generation, kid=kid
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            session_id=session_id,
            expires_in=issued.expires_at - now,
        )

    def login(
        self,
        user_id: str,
        *,
        device: Device,
        claims: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        idle_ttl: int | None = None,
        absolute_ttl: int | None = None,
    ) -> Call[TokenPair]:
        """Create a session and hand out its first token pair.

        Every check runs before the script: the tokens are signed first (with a session id
        drawn here), so a refused login writes nothing and evicts no other session.
        """
        kid = self._signing_kid()
        cfg = self.config
        checked = codec.check_claims(claims, RESERVED_CLAIMS, cfg.max_claims_bytes)
        session_id = new_session_id()
        inner = self.create(
            user_id,
            device=device,
            data=data,
            idle_ttl=idle_ttl,
            absolute_ttl=absolute_ttl,
            claims=checked,
            extra=(GENERATION, 1, KEY_ID, kid),
            session_id=session_id,
        )
        # The session's absolute deadline is set by the server's clock; the local one stands
        # in for it, and the rare token whose exp it would cap is signed again (same size).
        now = time.time()
        absolute = checked_ttl(absolute_ttl, cfg.absolute_ttl, "absolute_ttl")
        pair = self._pair(user_id, session_id, checked, 1, kid, now + absolute, device, now=now)
        if len(pair.refresh_token) > cfg.max_token_bytes:
            raise InvalidInput("the refresh token would exceed max_token_bytes (user id too long)")
        expires = min(math.floor(now) + cfg.access_ttl, math.floor(now + absolute))

        def parse(reply: Any) -> TokenPair:
            session = inner.parse(reply)
            if math.floor(session.absolute_expires_at) >= expires:
                return pair
            return self._pair(
                user_id, session_id, checked, 1, kid, session.absolute_expires_at, device
            )

        return Call(inner.script, inner.keys, inner.args, parse)

    def refresh(self, refresh_token: object) -> Call[TokenPair]:
        """Rotate a refresh token: one script, reuse of an old one revokes the session."""
        found = parse_refresh_token(
            self.keyring, refresh_token, max_bytes=self.config.max_token_bytes
        )
        user_id, session_id = found.user_id, found.session_id
        keys = user_keys(self.config.namespace, user_id)
        grace_ms = self.config.refresh_grace * 1000
        args = (session_id, found.generation, grace_ms, self._signing_kid())

        def parse(reply: list[Any]) -> TokenPair:
            status = int(reply[0])
            if status == Reply.NO_REFRESH:
                raise InvalidToken("session has no refresh token")
            if status == Reply.REUSED:
                self._forget(user_id, [session_id], "reuse")
                self.emit(events.ReuseDetected(user_id=user_id, session_id=session_id))
                raise RefreshReuseDetected("refresh token reused: session revoked")
            if status in _GONE:
                raise self.gone(user_id, session_id, status)
            session = codec.parse_session(user_id, session_id, codec.parse_fields(reply[3:]))
            generation, kid = int(reply[1]), reply[2].decode()
            self.emit(
                events.Refreshed(
                    user_id=user_id,
                    session_id=session_id,
                    generation=generation,
                    grace=status == Reply.GRACE,
                )
            )
            return self._pair(
                user_id,
                session_id,
                session.claims,
                generation,
                kid,
                session.absolute_expires_at,
                session.device,
            )

        key_pair = (keys.index, keys.session(session_id))
        call = Call(SCRIPTS["refresh"], key_pair, args, parse, durable=True)
        return announced(call, lambda reply: int(reply[0]) == Reply.REUSED)  # revoked it

    def verify(self, access_token: object) -> AccessClaims:
        """Check an access token locally (no I/O): gate, signature, claims."""
        return verify_access_token(self.keyring, access_token, config=self.config, now=time.time())

    def logout(self, access_token: object) -> Call[bool]:
        """Revoke the session an access token names."""
        claims = self.verify(access_token)
        return self.revoke(claims.user_id, claims.session_id, "logout")

    def _user_keys(self, user_id: str) -> UserKeys:
        keys = user_keys(self.config.namespace, user_id)
        if len(self._keys) >= _KEYS_MEMO:
            self._keys.clear()
        self._keys[user_id] = keys
        return keys

    def _verified(self, access_token: object, now: float) -> Verified:
        cache, keyring = self.tokens, self.keyring
        snapshot: object = None
        if cache is not None and type(access_token) is str:
            snapshot = keyring._live()
            hit = cache.get(access_token, now, snapshot)
            if hit is not None:
                return hit
        try:
            claims = verify_access_token(keyring, access_token, config=self.config, now=now)
        except InvalidToken as err:
            self.emit(events.ValidationFailed(reason=type(err).__name__))
            raise
        keys = self._keys.get(claims.user_id)
        if keys is None:
            keys = self._user_keys(claims.user_id)
        key = keys.session(claims.session_id)
        verified = Verified(claims, key, keys.index, (key,))
        if cache is None:
            verified.repeat = True  # no doorkeeper: every session is worth caching
        elif type(access_token) is str and cache.admit(access_token):
            # Seen before (the doorkeeper remembers): worth keeping from now on.
            verified.repeat = True
            cache.put(access_token, verified, claims.expires_at, snapshot)
        return verified

    def validate(
        self, access_token: object, *, ip: str | None = None, user_agent: str | None = None
    ) -> Principal | Call[Principal]:
        """A ``Principal`` decided without Redis (cached or degraded), or the one-trip check.

        ``ip`` and ``user_agent`` describe the request, for ``Config.device_binding``.
        """
        now, mono = time.time(), time.monotonic()
        verified = self._verified(access_token, now)
        claims = verified.claims
        if self.revoked.is_revoked(claims.user_id, claims.session_id, now):
            # Heard of (pushed, or revoked here) before any cache answers: a revocation
            # announced on one server may reach us before the push that drops the entry
            # (another node's, after a failover). Sessions are never recreated, so refuse.
            err = SessionRevoked("session was revoked (announced)")
            self._failed(claims, err)
            raise err
        near = self.near
        if near is not None and near.get(verified.key, mono) is not None and self.fresh():
            # A hit, and every push that has arrived is applied: look again. Not fresh
            # (the listener thread kept the connection past a short wait): Redis answers.
            session = near.get(verified.key, time.monotonic())
            if session is not None:
                if self._binding:
                    self._bind(claims, session, ip, user_agent)
                memo = verified.memo
                if memo is None or memo[0] is not session:
                    verified.memo = memo = (session, principal_of(claims, session=session))
                return memo[1]
        if not self.breaker.allow(mono):
            return self._degraded(claims, None, ip, user_agent)
        # A token seen for the first time stays out of both caches (see TokenCache.admit):
        # its session is cached from the second sighting on.
        return Check(self, verified, near if verified.repeat else None, ip, user_agent)

    def _reachable(self) -> None:
        breaker = self.breaker
        breaker.last_reached = now = time.monotonic()  # degraded mode is bounded from here
        if breaker.quiet:
            return  # the common case: no lock
        ended = breaker.success(now)
        if ended is not None:
            self.marker.expedite()  # a server that came back may have come back empty
            self.emit(events.DegradedLeft(seconds=ended))

    def _failed(self, claims: AccessClaims, err: Exception) -> None:
        self.emit(
            events.ValidationFailed(
                reason=type(err).__name__, user_id=claims.user_id, session_id=claims.session_id
            )
        )

    def _bind(
        self, claims: AccessClaims, session: Session, ip: str | None, user_agent: str | None
    ) -> None:
        policy = self.config.device_binding
        if policy == "off":
            return
        device = session.device
        field = _binding.mismatch(device.ip, device.user_agent, ip, user_agent)
        if field is not None:
            self._mismatched(claims, field)

    def _mismatched(self, claims: AccessClaims, field: _binding.Field) -> None:
        enforced = self.config.device_binding == "enforce"
        self.emit(
            events.DeviceMismatch(
                user_id=claims.user_id,
                session_id=claims.session_id,
                field=field,
                enforced=enforced,
            )
        )
        if enforced:
            err = DeviceBindingError(f"request {field} does not match the session's device")
            self._failed(claims, err)
            raise err

    def _degraded(
        self,
        claims: AccessClaims,
        err: BaseException | None,
        ip: str | None,
        user_agent: str | None,
    ) -> Principal:
        config = self.config
        # With the breaker open no call was made: the outage's latest driver error is the cause.
        cause = err if err is not None else self.breaker.last_error
        if config.fallback == "deny":
            raise StoreUnavailable("Redis is unreachable and fallback is 'deny'") from cause
        # Bounded from the last reply, not from when this process noticed the outage: a
        # process (re)started mid-outage, or idle when it began, cannot extend the window.
        # One that never reached Redis has heard of no revocation at all: it denies.
        unreached = self.breaker.unreached_seconds(time.monotonic())
        if unreached is None:
            raise StoreUnavailable(
                "Redis is unreachable and this process never reached it: "
                "it cannot know which sessions were revoked"
            ) from cause
        if unreached > config.max_degraded_seconds:
            raise StoreUnavailable(
                "Redis has been unreachable past max_degraded_seconds (counted from its last reply)"
            ) from cause
        if self.revoked.is_revoked(claims.user_id, claims.session_id, time.time()):
            error = SessionRevoked("session was revoked (known to this process)")
            self._failed(claims, error)
            raise error
        if self._binding:
            self._bind_token(claims, ip, user_agent, err)
        return principal_of(claims, session=None)

    def _bind_token(
        self,
        claims: AccessClaims,
        ip: str | None,
        user_agent: str | None,
        err: BaseException | None,
    ) -> None:
        """Device binding without Redis: against the keyed digests the token carries."""
        key = None
        if claims.device is not None:
            try:
                key = self.keyring._entry(claims.kid).binding_key
            except InvalidToken:
                key = None  # retired since the token was verified: nothing to check with
        if key is None or claims.device is None:
            # A token issued without binding, or a verify-only keyring: the device cannot
            # be checked here, so enforcement refuses rather than skip the check.
            if self.config.device_binding == "enforce":
                raise StoreUnavailable(
                    "Redis is unreachable and the token's device cannot be checked without it"
                ) from err
            return
        field = _binding.token_mismatch(key, claims.session_id, claims.device, ip, user_agent)
        if field is not None:
            self._mismatched(claims, field)
