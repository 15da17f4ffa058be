"""Pure token logic on top of the store core: login, validate, refresh, logout.

Token checks run here before any I/O; the Redis side is one ``Call`` each, and the
fallback policy decides what an unreachable Redis means for validation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from sessionstore import _binding, _codec, _marker, events
from sessionstore._cache import NearCache, TokenCache
from sessionstore._check import Check, Verified, principal_of
from sessionstore._core import Call, Core, announced
from sessionstore._policy import Breaker
from sessionstore.errors import (
    DeviceBindingError,
    InvalidInput,
    InvalidToken,
    RefreshReuseDetected,
    SessionRevoked,
    StoreUnavailable,
)
from sessionstore.keys import UserKeys, decode_user_id, user_keys
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

__all__ = ["Auth"]

_KEYS_MEMO = 4096


class Auth(Core):
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
        # user id -> its keys: a user's tokens come back (new sessions, refreshed tokens)
        # long after any one token has left the token cache. Bounded by clearing.
        self._keys: dict[str, UserKeys] = {}

    def attach(self, near: NearCache, fresh: Callable[[], bool]) -> None:
        """Serve hot validations from ``near`` when ``fresh()`` has applied every push of
        Redis that reached the process (and says so)."""
        self.near, self.fresh = near, fresh

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
    ) -> TokenPair:
        now = int(time.time())
        access, issued = issue_access_token(
            self.keyring,
            user_id=user_id,
            session_id=session_id,
            claims=claims,
            config=self.config,
            now=now,
            expires_at=int(absolute_deadline),
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
        """Create a session and hand out its first token pair."""
        kid = self._signing_kid()
        checked = _codec.check_claims(claims, RESERVED_CLAIMS, self.config.max_claims_bytes)
        inner = self.create(
            user_id,
            device=device,
            data=data,
            idle_ttl=idle_ttl,
            absolute_ttl=absolute_ttl,
            claims=checked,
            extra=("g", 1, "k", kid),
        )

        def parse(reply: Any) -> TokenPair:
            session = inner.parse(reply)
            return self._pair(
                user_id, session.session_id, checked, 1, kid, session.absolute_expires_at
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
            if status == 4:
                raise InvalidToken("session has no refresh token")
            if status == 3:
                self._forget(user_id, [session_id], "reuse")
                self.emit(events.ReuseDetected(user_id=user_id, session_id=session_id))
                raise RefreshReuseDetected("refresh token reused: session revoked")
            if status <= 0:
                raise self.gone(user_id, session_id, status)
            session = _codec.parse_session(user_id, session_id, _codec.parse_fields(reply[3:]))
            generation, kid = int(reply[1]), reply[2].decode()
            self.emit(
                events.Refreshed(
                    user_id=user_id,
                    session_id=session_id,
                    generation=generation,
                    grace=status == 2,
                )
            )
            return self._pair(
                user_id, session_id, session.claims, generation, kid, session.absolute_expires_at
            )

        key_pair = (keys.index, keys.session(session_id))
        call = Call(SCRIPTS["refresh"], key_pair, args, parse, durable=True)
        return announced(call, lambda reply: int(reply[0]) == 3)  # reuse revoked it

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
        if self.revoked.is_revoked(claims.user_id, claims.session_id, now):
            # Heard of (pushed, or revoked here): sessions are never recreated, so refuse.
            err = SessionRevoked("session was revoked (announced)")
            self._failed(claims, err)
            raise err
        if not self.breaker.allow(mono):
            return self._degraded(claims, None)
        # A token seen for the first time stays out of both caches (see TokenCache.admit):
        # its session is cached from the second sighting on.
        return Check(self, verified, near if verified.repeat else None, ip, user_agent)

    def _reachable(self) -> None:
        if self.breaker.quiet:
            return  # the common case: no clock read, no lock
        ended = self.breaker.success(time.monotonic())
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
        if field is None:
            return
        enforced = policy == "enforce"
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

    def _degraded(self, claims: AccessClaims, err: Exception | None) -> Principal:
        if self.config.fallback == "deny":
            raise StoreUnavailable("Redis is unreachable and fallback is 'deny'") from err
        if self.breaker.outage_seconds(time.monotonic()) > self.config.max_degraded_seconds:
            raise StoreUnavailable("Redis has been unreachable past max_degraded_seconds") from err
        if self.revoked.is_revoked(claims.user_id, claims.session_id, time.time()):
            error = SessionRevoked("session was revoked (known to this process)")
            self._failed(claims, error)
            raise error
        return principal_of(claims, session=None)
