"""Session-id rotation: a live session moved to a new id, the old id revoked, one script.

A privilege change (a sign-in on a session planted before it, new roles) rotates the
session id, so that whatever knew the old id (a fixated cookie, a leaked token) is refused
everywhere. ``lua/rotate.lua`` renames the hash (its TTL, device, data, claims, auth facts
and deadlines go with it), swaps the index entry and announces the old id as revoked; the
revocation reaches the feed (reason ``"rotated"``), the revocation memory and every near
cache as any revoke does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from sessionstore import events
from sessionstore._engine import codec
from sessionstore._engine.call import Arg, Call, announced
from sessionstore._engine.feed import Feed, fed
from sessionstore.errors import SessionRevoked
from sessionstore.keys import check_session_id, new_session_id, user_keys
from sessionstore.models import Config, Session, TokenPair
from sessionstore.scripts import SCRIPTS

__all__ = ["Rotator", "rotate", "rotated"]

T = TypeVar("T")

_SCRIPT = SCRIPTS["rotate"]


class Rotator(Protocol):
    """What rotation calls of the engine (``Engine`` is one)."""

    config: Config

    def emit(self, event: events.Event) -> None: ...

    def feed(self, user_id: str, reason: events.RevokeReason) -> Feed | None: ...

    def gone(self, user_id: str, session_id: str, code: int) -> SessionRevoked: ...

    def claims_blob(self, claims: Mapping[str, Any] | None) -> bytes: ...

    def pair_of(self, session: Session, generation: int, kid: str) -> TokenPair: ...

    def _signing_kid(self) -> str: ...

    def _forget(
        self,
        user_id: str,
        session_ids: list[str],
        reason: events.RevokeReason | None = None,
        feed: Feed | None = None,
    ) -> None: ...


def rotate(
    engine: Rotator, user_id: str, session_id: str, claims: Mapping[str, Any] | None
) -> Call[TokenPair]:
    """Move a live session to a new id (``claims``: new ones in the same step, None: kept)
    and revoke the old id; the new id's first token pair (its refresh generation starts
    again). ``SessionRevoked`` (or ``SessionExpired``) when gone."""
    kid = engine._signing_kid()
    return _moved(engine, user_id, session_id, claims, kid, lambda s: engine.pair_of(s, 1, kid))


def rotated(
    engine: Rotator, user_id: str, session_id: str, claims: Mapping[str, Any] | None = None
) -> Call[Session]:
    """``rotate`` for a session without tokens (the Django session engine's): the new
    session, and no refresh state."""
    return _moved(engine, user_id, session_id, claims, "", lambda session: session)


def _moved(
    engine: Rotator,
    user_id: str,
    session_id: str,
    claims: Mapping[str, Any] | None,
    kid: str,
    finish: Callable[[Session], T],
) -> Call[T]:
    keys = user_keys(engine.config.namespace, user_id)
    check_session_id(session_id)
    blob = engine.claims_blob(claims)
    new_id = new_session_id()
    feed = engine.feed(user_id, "rotated")

    def parse(reply: Any) -> T:
        if not isinstance(reply, list):
            raise engine.gone(user_id, session_id, reply)
        session = codec.parse_session(user_id, new_id, codec.parse_fields(reply))
        engine._forget(user_id, [session_id], "rotated", feed)
        engine.emit(
            events.Rotated(user_id=user_id, session_id=new_id, previous_session_id=session_id)
        )
        return finish(session)

    keyed = (keys.index, keys.session(session_id), keys.session(new_id))
    args: tuple[Arg, ...] = (session_id, new_id, kid, blob, codec.CHUNK)
    call = Call(_SCRIPT, keyed, args, parse, durable=True)
    return fed(announced(call, lambda reply: isinstance(reply, list)), feed)
