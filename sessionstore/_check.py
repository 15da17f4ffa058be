"""The read behind a validation: one HMGET of the session, a follow-up only when needed.

``Check`` holds one validation's state for the shells (parse, fail, then); ``Verified`` is
what the token cache keeps for a verified token. Pure: the shells do the I/O.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sessionstore import _codec, events
from sessionstore._cache import NearCache
from sessionstore._core import Call, fail_closed
from sessionstore.errors import SessionRevoked
from sessionstore.models import Principal, Session
from sessionstore.scripts import SCRIPTS
from sessionstore.tokens import AccessClaims

if TYPE_CHECKING:
    from sessionstore._auth import Auth

__all__ = ["READ_FIELDS", "Check", "Verified", "principal_of"]

_CHECK = SCRIPTS["check"]
READ_FIELDS = _codec.ROW_FIELDS


class Verified:
    """A verified token, its keys, and the last Principal built from a cached session."""

    __slots__ = ("claims", "key", "keys", "memo", "read", "repeat")

    def __init__(self, claims: AccessClaims, index: str, key: str) -> None:
        self.claims = claims
        self.key = key
        self.read = (key,)  # the KEYS of the plain reads
        self.keys = (index, key)  # the KEYS of the check script
        self.memo: tuple[Session, Principal] | None = None
        self.repeat = False  # seen before: cached, and its session may be


class Check:
    """One validation's trip to Redis: a plain HMGET, the check script only if needed.

    The hash's TTL is its idle/absolute deadline on the server's clock, so a reply proves
    the session live. The check script runs only when a touch is due, or to tell an
    expired session from a revoked one; a plain HGETALL follows for a session whose blobs
    outgrow the HMGET's slots. (A class, not closures: one is built per request.)
    """

    __slots__ = ("auth", "ip", "near", "ticket", "user_agent", "verified")

    def __init__(
        self,
        auth: Auth,
        verified: Verified,
        near: NearCache | None,
        ip: str | None,
        user_agent: str | None,
    ) -> None:
        self.auth = auth
        self.verified = verified
        self.near = near
        self.ticket = 0 if near is None else near.begin()
        self.ip = ip
        self.user_agent = user_agent

    def read(self) -> Call[Principal]:
        """The HMGET of the session's fixed fields and first blob chunks (``READ_FIELDS``)."""
        keys, parse, then = self.verified.read, self.principal, self.then
        return Call(_CHECK, keys, READ_FIELDS, parse, self.fail, command="HMGET", then=then)

    def then(self, row: list[bytes | None]) -> Call[Principal] | None:
        """The follow-up an HMGET reply needs (gone, touch due, blobs too big), or None."""
        seen = row[1]
        if seen is None:
            return self._script(-1000)  # gone: the script says whether expired or revoked
        interval_us = self.auth.config.touch_interval * 1_000_000
        if time.time() * 1_000_000 - int(seen) >= interval_us:
            return self._script(interval_us)  # touch due (the script re-checks on its clock)
        if not _codec.row_fits(row):
            read = self.verified.read
            return Call(
                _CHECK, read, (), self.principal_all, self.fail, command="HGETALL", then=self._all
            )
        return None

    def _all(self, fields: Mapping[bytes, bytes]) -> Call[Principal] | None:
        return self._script(-1000) if not fields else None  # gone since the HMGET

    def _script(self, interval_us: int) -> Call[Principal]:
        verified = self.verified
        args = (verified.claims.session_id, interval_us // 1000)
        return Call(_CHECK, verified.keys, args, self.checked, self.fail)

    def principal(self, row: list[bytes | None]) -> Principal:
        """The Principal of a live session's HMGET row (see ``then``)."""
        claims = self.verified.claims
        return self._built(_codec.parse_row(claims.user_id, claims.session_id, row))

    def principal_all(self, fields: Mapping[bytes, bytes]) -> Principal:
        """The Principal of a live session's whole hash."""
        claims = self.verified.claims
        return self._built(_codec.parse_session(claims.user_id, claims.session_id, fields))

    def _built(self, session: Session) -> Principal:
        auth, verified = self.auth, self.verified
        claims = verified.claims
        auth._reachable()
        if auth._binding:
            auth._bind(claims, session, self.ip, self.user_agent)
        near = self.near
        if near is not None:
            now, mono = time.time(), time.monotonic()
            deadline = min(session.idle_expires_at, session.absolute_expires_at)
            near.put(verified.key, session, self.ticket, mono, mono + deadline - now)
        return principal_of(claims, session=session)

    def checked(self, reply: Any) -> Principal:
        """The check script's reply: the session's fields, or why it is gone."""
        if isinstance(reply, list):
            return self.principal_all(_codec.parse_fields(reply))
        raise self._gone(reply)

    def _gone(self, code: int) -> SessionRevoked:
        auth, claims = self.auth, self.verified.claims
        auth._reachable()
        err = auth.gone(claims.user_id, claims.session_id, code)
        auth._failed(claims, err)
        return err

    def fail(self, err: Exception, unreachable: bool) -> Principal:
        """Redis failed: degraded when unreachable, a typed error otherwise."""
        auth = self.auth
        if not unreachable:
            auth._reachable()
            return fail_closed(err, unreachable)  # type: ignore[no-any-return]
        if auth.breaker.failure(time.monotonic()):
            auth.emit(events.DegradedEntered())
        return auth._degraded(self.verified.claims, err)


def principal_of(claims: AccessClaims, *, session: Any) -> Principal:
    return Principal(
        user_id=claims.user_id,
        session_id=claims.session_id,
        claims=claims.claims,
        session=session,
        degraded=session is None,
        issued_at=claims.issued_at,
        expires_at=claims.expires_at,
    )
