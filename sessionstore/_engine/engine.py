"""The engine both shells hold: the session operations plus login, refresh, logout, validate.

Token checks run here before any I/O; the Redis side is one ``Call`` each. Validation, the
hot path, reads top to bottom in ``validation`` (``Engine.validate`` is its entry); this
module holds the engine's construction, its state and the other token operations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from sessionstore import events
from sessionstore._engine import adoption, codec, marker, rotation, validation
from sessionstore._engine.call import Call, announced
from sessionstore._engine.fallback import Breaker
from sessionstore._engine.feed import Feed, fed
from sessionstore._engine.schema import GENERATION, KEY_ID, Reply
from sessionstore._engine.sessions import Sessions, checked_ttl, is_new_device
from sessionstore._engine.validation import TouchRule, Verified
from sessionstore._nearcache.cache import NearCache, TokenCache
from sessionstore.errors import InvalidInput, InvalidToken, RefreshReuseDetected
from sessionstore.keys import (
    UserKeys,
    check_session_id,
    decode_user_id,
    new_session_id,
    user_keys,
)
from sessionstore.models import Config, Device, Principal, Session, TokenPair
from sessionstore.scripts import SCRIPTS
from sessionstore.tokens import (
    RESERVED_CLAIMS,
    AccessClaims,
    Keyring,
    check_acr,
    check_method,
    issue_access_token,
    issue_refresh_token,
    issue_security_event,
    parse_refresh_token,
    verify_access_token,
)

__all__ = ["Engine"]

_GONE = (Reply.EXPIRED, Reply.REVOKED)


class Engine(Sessions):
    """The ``Call`` builders of the token operations, plus the state validation reads."""

    def __init__(
        self, config: Config, keyring: Keyring | None, on_event: events.EventHook | None = None
    ) -> None:
        super().__init__(config, on_event)
        if keyring is not None and not isinstance(keyring, Keyring):
            raise InvalidInput(f"keyring must be a Keyring, got {type(keyring).__name__}")
        self._keyring = keyring
        if config.revocation_feed_sets:
            if keyring is None or keyring.current_kid is None:
                raise InvalidInput("Config.revocation_feed_sets needs a keyring that can sign")
            self.signer = self._security_event
        self.breaker = Breaker(config.breaker_failures, config.breaker_reset)
        self.marker = marker.Marker(config.namespace, config.marker_interval)
        # What validation reads (see validation.Host), set once here.
        size = config.token_cache_size
        self.tokens: TokenCache[Verified] | None = TokenCache(size, config.leeway) if size else None
        self.binding = config.device_binding != "off"
        self.touch_rule = TouchRule(config)
        self.keys_memo: dict[str, UserKeys] = {}
        self.reader: Callable[[str], tuple[str, int]] | None = None
        self.legacy = config.legacy_tokens

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
                marker.logger.warning("sessionstore marker check failed: %s", err)

        key, *args = self.marker.args()
        return Call(marker.SCRIPT, (key,), tuple(args), parse, fail)

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
        auth: tuple[int | None, tuple[str, ...], int],
        *,
        now: float | None = None,
        persistent: bool = True,
    ) -> TokenPair:
        now = int(time.time() if now is None else now)
        access, issued = self._access(
            user_id, session_id, claims, absolute_deadline, device, auth, now
        )
        refresh = issue_refresh_token(
            self.keyring, user_id=user_id, session_id=session_id, generation=generation, kid=kid
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            session_id=session_id,
            expires_in=issued.expires_at - now,
            persistent=persistent,
        )

    def pair_of(self, session: Session, generation: int, kid: str) -> TokenPair:
        """A token pair of a live ``session`` as Redis holds it (claims, deadline, device,
        last proof of identity), its refresh token at ``generation`` signed by ``kid``."""
        return self._pair(
            session.user_id,
            session.session_id,
            session.claims,
            generation,
            kid,
            session.absolute_expires_at,
            session.device,
            (session.auth_time, session.amr, session.acr),
            persistent=session.persistent,
        )

    def _access(
        self,
        user_id: str,
        session_id: str,
        claims: Mapping[str, Any],
        absolute_deadline: float,
        device: Device,
        auth: tuple[int | None, tuple[str, ...], int],
        now: int,
    ) -> tuple[str, AccessClaims]:
        """An access token of the session, carrying its last proof of identity ``auth``
        (auth time, methods, level)."""
        auth_time, amr, acr = auth
        return issue_access_token(
            self.keyring,
            user_id=user_id,
            session_id=session_id,
            claims=claims,
            config=self.config,
            now=now,
            expires_at=int(absolute_deadline),
            # Binding on: the token carries its device's digests, for degraded mode.
            device=device if self.binding else None,
            auth_time=auth_time,
            amr=amr,
            acr=acr,
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
        methods: str | Sequence[str] = (),
        level: int = 0,
        persistent: bool = True,
        max_sessions: int | None = None,
        at_limit: str | None = None,
    ) -> Call[TokenPair]:
        """Create a session and hand out its first token pair.

        ``methods`` and ``level`` say how the user signed in (``amr``, ``acr``; default:
        none, 0); the auth time is the session's creation. ``persistent=False``: a
        browser-session login (``TokenPair.persistent``). ``max_sessions`` and ``at_limit``
        override ``Config.max_sessions_per_user`` and ``Config.session_limit`` for this
        login. Every check runs before the
        script: the tokens are signed first (with a session id drawn here), so a refused
        login writes nothing and evicts no other session.
        """
        feed = self.feed(user_id, "evicted")
        inner = self.signed_in(
            user_id,
            device=device,
            claims=claims,
            data=data,
            idle_ttl=idle_ttl,
            absolute_ttl=absolute_ttl,
            methods=methods,
            level=level,
            persistent=persistent,
            max_sessions=max_sessions,
            at_limit=at_limit,
            feed=feed,
        )

        def parse(reply: Any) -> TokenPair:
            _, pair = inner.parse(reply)
            return pair

        return fed(Call(inner.script, inner.keys, inner.args, parse), feed)

    def signed_in(
        self,
        user_id: str,
        *,
        device: Device,
        claims: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        idle_ttl: int | None = None,
        absolute_ttl: int | None = None,
        methods: str | Sequence[str] = (),
        level: int = 0,
        persistent: bool = True,
        max_sessions: int | None = None,
        at_limit: str | None = None,
        feed: Feed | None = None,
        marker: tuple[str, int] | None = None,
    ) -> Call[tuple[Session, TokenPair]]:
        """``login``'s call, answering the new session as well (``feed``, ``marker``: see
        ``create``)."""
        kid = self._signing_kid()
        cfg = self.config
        checked = codec.check_claims(claims, RESERVED_CLAIMS, cfg.max_claims_bytes)
        amr, acr = codec.check_auth(methods, level)
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
            auth=(amr, acr),
            persistent=persistent,
            limit=max_sessions,
            at_limit=at_limit,
            feed=feed,
            marker=marker,
        )
        # The session's absolute deadline and auth time are set by the server's clock; the
        # local one stands in for it, and the rare token it would change (an exp to cap, an
        # auth time a second apart) is signed again (same size).
        now = time.time()
        absolute = checked_ttl(absolute_ttl, cfg.absolute_ttl, "absolute_ttl")
        auth = (math.floor(now), amr, acr)
        pair = self._pair(
            user_id,
            session_id,
            checked,
            1,
            kid,
            now + absolute,
            device,
            auth,
            now=now,
            persistent=persistent,
        )
        if len(pair.refresh_token) > cfg.max_token_bytes:
            raise InvalidInput("the refresh token would exceed max_token_bytes (user id too long)")
        expires = min(math.floor(now) + cfg.access_ttl, math.floor(now + absolute))

        def parse(reply: Any) -> tuple[Session, TokenPair]:
            session, signed = inner.parse(reply), pair
            if math.floor(session.absolute_expires_at) < expires or session.auth_time != auth[0]:
                signed = self._pair(
                    user_id,
                    session_id,
                    checked,
                    1,
                    kid,
                    session.absolute_expires_at,
                    device,
                    (session.auth_time, amr, acr),
                    persistent=persistent,
                )
            return session, msgspec.structs.replace(signed, new_device=is_new_device(reply))

        return Call(inner.script, inner.keys, inner.args, parse)

    def refresh(self, refresh_token: object) -> Call[TokenPair]:
        """Rotate a refresh token: one script, reuse of an old one revokes the session (a
        token of an id ``rotate`` moved away revokes the session it moved to)."""
        found = parse_refresh_token(
            self.keyring, refresh_token, max_bytes=self.config.max_token_bytes
        )
        user_id, session_id = found.user_id, found.session_id
        keys = user_keys(self.config.namespace, user_id)
        grace_ms = self.config.refresh_grace * 1000
        args = (session_id, found.generation, grace_ms, self._signing_kid(), self.history_spec)
        feed = self.feed(user_id, "reuse")

        def parse(reply: list[Any]) -> TokenPair:
            head, *rest = reply  # lua/refresh.lua: the status, then a live session's state
            status = int(head)
            if status == Reply.NO_REFRESH:
                raise InvalidToken("session has no refresh token")
            if status == Reply.REUSED:
                (revoked_,) = rest  # this session, or the one its family was rotated to
                revoked = revoked_.decode()
                moved = session_id if revoked != session_id else None
                self._forget(user_id, [revoked], "reuse", feed)
                self.emit(
                    events.ReuseDetected(
                        user_id=user_id, session_id=revoked, previous_session_id=moved
                    )
                )
                raise RefreshReuseDetected("refresh token reused: session revoked")
            if status in _GONE:
                raise self.gone(user_id, session_id, status)
            generation_, kid_, *fields = rest
            session = codec.parse_session(user_id, session_id, codec.parse_fields(fields))
            generation, kid = int(generation_), kid_.decode()
            self.emit(
                events.Refreshed(
                    user_id=user_id,
                    session_id=session_id,
                    generation=generation,
                    grace=status == Reply.GRACE,
                )
            )
            return self.pair_of(session, generation, kid)

        # Not the session's moved key (the script builds it): a declared key that almost
        # never exists would fail every refresh with TRYAGAIN while a cluster migrates.
        keyed = (keys.index, keys.session(session_id), *self.history_keys(user_id))
        call = Call(SCRIPTS["refresh"], keyed, args, parse, durable=True)
        return fed(announced(call, _reused), feed)  # reuse revoked the session

    def _security_event(self, user_id: str, session_id: str, reason: str) -> str:
        return issue_security_event(
            self.keyring,
            config=self.config,
            user_id=user_id,
            session_id=session_id,
            reason=reason,
            now=time.time(),
        )

    def step_up(self, user_id: str, session_id: str, method: str, level: int) -> Call[str]:
        """Record a new proof of identity on a live session and sign an access token that
        carries it: auth time now, ``method`` added to the methods, ``level`` set (one
        script; nothing else changes). ``SessionRevoked`` (or ``SessionExpired``) when gone.
        """
        self._signing_kid()
        keys = user_keys(self.config.namespace, user_id)
        check_session_id(session_id)
        args = (session_id, check_method(method), check_acr(level), self.history_spec)

        def parse(reply: Any) -> str:
            if not isinstance(reply, list):
                raise self.gone(user_id, session_id, reply)
            session = codec.parse_session(user_id, session_id, codec.parse_fields(reply))
            self.emit(
                events.SteppedUp(
                    user_id=user_id, session_id=session_id, method=method, level=session.acr
                )
            )
            token, _ = self._access(
                user_id,
                session_id,
                session.claims,
                session.absolute_expires_at,
                session.device,
                (session.auth_time, session.amr, session.acr),
                int(time.time()),
            )
            return token

        keyed = (keys.index, keys.session(session_id), *self.history_keys(user_id))
        return Call(SCRIPTS["step_up"], keyed, args, parse)

    def rotate(
        self, user_id: str, session_id: str, claims: Mapping[str, Any] | None = None
    ) -> Call[TokenPair]:
        """Move a live session to a new id and revoke the old one (one script); the new
        id's token pair (see ``rotation``)."""
        kid = self._signing_kid()
        pair = self.pair_of
        return rotation.rotate(self, user_id, session_id, claims, kid, lambda s: pair(s, 1, kid))

    def rotate_session(
        self, user_id: str, session_id: str, claims: Mapping[str, Any] | None = None
    ) -> Call[Session]:
        """``rotate`` without tokens (a session made by ``create``): the moved session."""
        return rotation.rotate(self, user_id, session_id, claims, "", lambda session: session)

    def verify(self, access_token: object) -> AccessClaims:
        """Check an access token locally (no I/O): gate, signature, claims."""
        return verify_access_token(self.keyring, access_token, config=self.config, now=time.time())

    def logout(self, access_token: object) -> Call[bool]:
        """Revoke the session an access token names."""
        claims = self.verify(access_token)
        return self.revoke(claims.user_id, claims.session_id, "logout")

    # The function itself, not a method calling it: no extra call on the hot path. It
    # reaches the engine only through ``validation.Host`` (mypy checks Engine is one).
    validate = validation.validate

    def adopt(
        self,
        access_token: object,
        error: InvalidToken,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> Call[Principal]:
        """After ``validate`` refused ``access_token`` with ``error``: the adoption of a
        legacy token (``Config.legacy_tokens``), else ``error`` (or the legacy refusal)."""
        return adoption.adopt(self, access_token, error, ip, user_agent)


def _reused(reply: list[Any]) -> bool:
    """Whether a refresh reply (lua/refresh.lua) says reuse was detected."""
    status, *_ = reply
    return int(status) == Reply.REUSED
