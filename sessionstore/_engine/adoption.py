"""Adoption from stateless JWTs: a legacy token, seen first, becomes a sessionstore session.

Tried only after a token failed as one of ours, and only for the failures that say "not
ours" (malformed, foreign header, bad signature: ``maybe_legacy``), so the hot path of
``validate`` never runs any of it. Every check is local (``LegacyTokens.verify``); a
refused legacy token costs no Redis call. An accepted one is one ``create`` script with
the token's marker: the script answers the session adopted earlier, writing nothing, or
creates the session and sets the marker in the same step, so each legacy token mints at
most one session however many requests race. A repeat sighting reads its session (a
revoked one stays revoked: the marker outlives it).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from sessionstore import events
from sessionstore._engine.call import Call
from sessionstore._engine.feed import Feed, fed
from sessionstore.errors import (
    InvalidHeader,
    InvalidInput,
    InvalidSignature,
    InvalidToken,
    LegacyTokenRefused,
    MalformedToken,
    SessionRevoked,
    TokenTooLarge,
)
from sessionstore.keys import legacy_marker_key
from sessionstore.legacy import LegacyClaims, LegacyTokens
from sessionstore.models import Config, Device, Principal, Session, TokenPair

__all__ = ["Adopter", "adopt", "maybe_legacy"]

_UA_CHARS = 1024  # codec's limit on a device's user agent


class Adopter(Protocol):
    """What adoption calls of the engine (``Engine`` is one)."""

    config: Config
    legacy: LegacyTokens | None

    def emit(self, event: events.Event) -> None: ...

    def feed(self, user_id: str, reason: events.RevokeReason) -> Feed | None: ...

    def signed_in(
        self,
        user_id: str,
        *,
        device: Device,
        claims: dict[str, Any] | None = None,
        at_limit: str | None = None,
        feed: Feed | None = None,
        marker: tuple[str, int] | None = None,
    ) -> Call[tuple[Session, TokenPair]]: ...

    def check(self, user_id: str, session_id: str, interval_ms: int) -> Call[Session | None]: ...


def maybe_legacy(err: InvalidToken) -> bool:
    """Whether ``err`` (our own check's) leaves room for a legacy token: not one of ours."""
    return isinstance(err, MalformedToken | InvalidHeader | InvalidSignature) and not isinstance(
        err, TokenTooLarge
    )


def adopt(
    engine: Adopter,
    token: object,
    error: InvalidToken,
    ip: str | None,
    user_agent: str | None,
) -> Call[Principal]:
    """The adoption of legacy ``token`` refused as ours with ``error``; else raise."""
    legacy = engine.legacy
    if legacy is None or not maybe_legacy(error):
        raise error  # reported where it was raised
    now = time.time()
    try:
        found = legacy.verify(token, now=now, max_bytes=engine.config.max_token_bytes)
    except LegacyTokenRefused as err:
        engine.emit(events.ValidationFailed(reason=type(err).__name__))
        raise
    if found is None:
        engine.emit(events.ValidationFailed(reason=type(error).__name__))
        raise error
    device = Device(id=legacy.device_id, user_agent=(user_agent or "")[:_UA_CHARS], ip=_ip(ip))
    marker = legacy_marker_key(engine.config.namespace, found.user_id, found.digest)
    feed = engine.feed(found.user_id, "evicted")  # sessions an adoption at the cap evicts
    try:
        inner = engine.signed_in(
            found.user_id,
            device=device,
            claims=found.claims,
            at_limit="evict",  # a legacy user moves over whatever the policy
            feed=feed,
            marker=(marker, legacy.marker_ms(found, now)),
        )
    except InvalidInput as err:
        engine.emit(events.ValidationFailed(reason=LegacyTokenRefused.__name__))
        raise LegacyTokenRefused(f"legacy token cannot be adopted: {err}", "claims") from err
    interval_ms = engine.config.touch_interval * 1000

    def then(reply: Any) -> Call[Principal] | None:
        if not isinstance(reply, bytes | str):
            return None  # created: parse
        session_id = reply.decode() if isinstance(reply, bytes) else reply
        seen = engine.check(found.user_id, session_id, interval_ms)
        return Call(seen.script, seen.keys, seen.args, lambda r: _again(found, seen.parse(r)))

    def parse(reply: Any) -> Principal:
        session, pair = inner.parse(reply)
        engine.emit(
            events.Adopted(
                user_id=found.user_id,
                session_id=session.session_id,
                device_id=device.id,
                issued_at=found.issued_at,
                expires_at=found.expires_at,
            )
        )
        return _principal(found, session, pair)

    return fed(Call(inner.script, inner.keys, inner.args, parse, then=then), feed)


def _again(found: LegacyClaims, session: Session | None) -> Principal:
    """A repeat sighting: the adopted session's principal, unless it is gone."""
    if session is None:
        raise SessionRevoked("the session adopted for this legacy token is revoked")
    return _principal(found, session, None)


def _principal(found: LegacyClaims, session: Session, pair: TokenPair | None) -> Principal:
    return Principal(
        user_id=found.user_id,
        session_id=session.session_id,
        claims=session.claims,
        session=session,
        degraded=False,
        issued_at=found.issued_at,
        expires_at=found.expires_at,
        adopted=pair,
    )


def _ip(ip: str | None) -> str:
    """The request's IP as a device field (a longer text is no address: dropped)."""
    return ip if ip is not None and len(ip) <= 64 and "\x00" not in ip else ""
