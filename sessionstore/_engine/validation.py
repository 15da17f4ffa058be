"""The read behind a validation: one HMGET of the session, a follow-up only when needed.

``Check`` holds one validation's state for the shells (parse, fail, then); ``Verified`` is
what the token cache keeps for a verified token. Pure: the shells do the I/O.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from sessionstore import events
from sessionstore._engine import codec
from sessionstore._engine.call import Call, fail_closed
from sessionstore._engine.schema import (
    IDLE_TTL,
    NEVER_TOUCH_MS,
    ROW_FIELDS,
    ROW_IDLE_TTL,
    ROW_SEEN,
    SEEN,
)
from sessionstore._nearcache.cache import NearCache
from sessionstore.errors import SessionRevoked
from sessionstore.models import Principal, Session
from sessionstore.scripts import SCRIPTS
from sessionstore.tokens import AccessClaims

if TYPE_CHECKING:
    from sessionstore._engine.engine import Engine

__all__ = ["READ_FIELDS", "Check", "Verified", "principal_of"]

_CHECK = SCRIPTS["check"]
READ_FIELDS = ROW_FIELDS
# The check script's "never touch" (``_script`` takes µs): it only says how a session is gone.
_GONE_US = NEVER_TOUCH_MS * 1000


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

    @property
    def keys(self) -> tuple[str, str]:
        """The KEYS of the check script."""
        return (self.index, self.key)


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

    __slots__ = ("auth", "due", "ip", "near", "ticket", "user_agent", "verified")
    script = _CHECK
    args: tuple[bytes, ...] = READ_FIELDS
    durable = False
    command: str | None = "HMGET"

    def __init__(
        self,
        auth: Engine,
        verified: Verified,
        near: NearCache | None,
        ip: str | None,
        user_agent: str | None,
    ) -> None:
        self.keys = verified.read  # the one Call field that differs per request
        self.auth = auth
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
        auth = self.auth
        seen_us = int(seen)
        interval_us = auth.touch_us
        idle = row[ROW_IDLE_TTL]  # the session's idle ttl (ms): half of it bounds the interval
        if idle is not None and len(idle) <= auth.idle_cap_digits and int(idle) < auth.idle_cap_ms:
            interval_us = int(idle) * 500
        if time.time() * 1_000_000 - seen_us >= interval_us:
            # Touch due (the script re-checks on its clock, with the same per-session rule).
            return self._script(interval_us)
        if self.near is not None:
            self.due = (seen_us + interval_us) / 1e6
        if not codec.row_fits(row):
            read = self.verified.read
            return Call(
                _CHECK, read, (), self.principal_all, self.fail, command="HGETALL", then=self._all
            )
        return None

    def _all(self, fields: Mapping[bytes, bytes] | list[bytes]) -> Call[Principal] | None:
        return self._script(_GONE_US) if not fields else None  # gone since the HMGET

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
        auth, verified = self.auth, self.verified
        claims = verified.claims
        auth._reachable()
        if auth._binding:
            auth._bind(claims, session, self.ip, self.user_agent)
        near = self.near
        if near is not None:
            now, mono = time.time(), time.monotonic()
            deadline = min(session.idle_expires_at, session.absolute_expires_at, self.due)
            reader = auth.reader
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
                self.auth.emit(
                    events.TouchFailed(
                        user_id=claims.user_id, session_id=claims.session_id, reason=refused
                    )
                )
            fields = codec.parse_fields(flat)
            seen, idle = fields.get(SEEN), fields.get(IDLE_TTL)
            if seen is not None and idle is not None:
                self.due = codec.touch_due_us(seen, idle, self.auth.touch_us) / 1e6
            return self.principal_all(fields)
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
        if auth.breaker.failure(time.monotonic(), err):
            auth.emit(events.DegradedEntered(fallback=auth.config.fallback))
        return auth._degraded(self.verified.claims, err, self.ip, self.user_agent)


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
