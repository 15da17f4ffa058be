"""Session-id rotation: a live session moved to a new id, the old id revoked, one script.

A privilege change (a sign-in on a session planted before it, new roles) rotates the
session id, so that whatever knew the old id (a fixated cookie, a leaked token) is refused
everywhere. ``lua/rotate.lua`` renames the hash (its TTL, device, data, claims, auth facts
and deadlines go with it), swaps the index entry and announces the old id as revoked; the
revocation reaches the feed (reason ``"rotated"``), the revocation memory and every near
cache as any revoke does, and the user's history records it (a revocation, reason
``"rotated"``; the session's sign-in entry keeps its first id).

The old id's access tokens are refused (``SessionRevoked``), but its refresh tokens are
not merely refused: whoever holds one of a session that has since moved (a leaked access
token alone is enough to call an app's rotating endpoint) is a second holder of the
family, so a refresh with it is reuse, as for a spent generation. The script leaves a
moved key per old id (``keys.UserKeys.moved``, expiring at the absolute deadline), and
``lua/refresh.lua`` follows it to the session's current id and revokes that
(``RefreshReuseDetected``, reason ``"reuse"``). There is no grace: a client that lost the
rotation's answer signs in again, rather than an attacker racing it keeping the session.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sessionstore import events
from sessionstore._engine import codec, history
from sessionstore._engine.call import Arg, Call, announced
from sessionstore._engine.feed import fed
from sessionstore._engine.sessions import Sessions
from sessionstore.keys import check_session_id, new_session_id, user_keys
from sessionstore.models import Session
from sessionstore.scripts import SCRIPTS

__all__ = ["rotate"]

T = TypeVar("T")

_SCRIPT = SCRIPTS["rotate"]


def rotate(
    sessions: Sessions,
    user_id: str,
    session_id: str,
    claims: Mapping[str, Any] | None,
    kid: str,
    finish: Callable[[Session], T],
) -> Call[T]:
    """Move a live session to a new id (``claims``: new ones in the same step, None: kept)
    and revoke the old id; ``finish(moved session)`` is the result. ``kid`` signs the new
    id's refresh generations, which start again (``""``: no refresh state). Gone:
    ``SessionRevoked`` (or ``SessionExpired``)."""
    keys = user_keys(sessions.config.namespace, user_id)
    check_session_id(session_id)
    blob = sessions.claims_blob(claims)
    new_id = new_session_id()
    feed = sessions.feed(user_id, "rotated")

    def parse(reply: Any) -> T:
        if not isinstance(reply, list):
            raise sessions.gone(user_id, session_id, reply)
        session = codec.parse_session(user_id, new_id, codec.parse_fields(reply))
        sessions._forget(user_id, [session_id], "rotated", feed)
        sessions.emit(
            events.Rotated(user_id=user_id, session_id=new_id, previous_session_id=session_id)
        )
        return finish(session)

    keyed = (
        keys.index,
        keys.session(session_id),
        keys.session(new_id),
        keys.moved(session_id),
        *sessions.history_keys(user_id),
    )
    why = history.REASONS["rotated"]
    args: tuple[Arg, ...] = (session_id, new_id, kid, blob, codec.CHUNK, sessions.history_spec, why)
    call = Call(_SCRIPT, keyed, args, parse, durable=True)
    return fed(announced(call, lambda reply: isinstance(reply, list)), feed)
