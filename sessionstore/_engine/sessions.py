"""The session operations the shells run: argument packing, reply parsing, per-user walks.

Each operation returns a ``Call``: the script, its KEYS and ARGV, and how to turn the
reply (or an unreachable Redis) into the result. The shells only execute calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from sessionstore import events
from sessionstore._engine import codec, history
from sessionstore._engine.call import Arg, Call, announced, confirmed
from sessionstore._engine.fallback import RevocationMemory
from sessionstore._engine.feed import Feed, Signer, fed
from sessionstore._engine.schema import (
    DATA,
    DATA_CHUNKS,
    META,
    NEVER_TOUCH_MS,
    TOUCH_NOW_MS,
    Reply,
)
from sessionstore._nearcache.cache import NearCache
from sessionstore.errors import (
    InvalidInput,
    ScriptError,
    SessionExpired,
    SessionLimitReached,
    SessionRevoked,
)
from sessionstore.keys import check_device_id, check_session_id, new_session_id, user_keys
from sessionstore.models import (
    MAX_SESSIONS_PER_USER,
    SESSION_LIMITS,
    Config,
    Device,
    DeviceSessions,
    HistoryEntry,
    Session,
)
from sessionstore.scripts import SCRIPTS
from sessionstore.tokens import RESERVED_CLAIMS

__all__ = ["Sessions", "checked_ttl", "group", "is_new_device"]

T = TypeVar("T")

CHUNK = 100
"""Index entries one listing or revocation script looks at (about: ZSCAN's COUNT hint).

The walk over a user's sessions runs as a series of such steps, each a short script, so
that no single script blocks Redis for long however many sessions a user has.
"""


def _fresh() -> bool:
    return True  # no listener, no near cache: nothing to wait for


def checked_limit(cfg: Config, limit: object, at_limit: object) -> tuple[int, bool]:
    """A login's session limit and whether it refuses there (True) or evicts: ``limit``
    in 1..``MAX_SESSIONS_PER_USER`` and ``at_limit`` ``"evict"``/``"refuse"``, each
    defaulting to the ``Config``'s."""
    if limit is None:
        limit = cfg.max_sessions_per_user
    elif isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidInput(f"max_sessions must be an integer, got {type(limit).__name__}")
    if not 1 <= limit <= MAX_SESSIONS_PER_USER:
        raise InvalidInput(f"max_sessions must be in 1..{MAX_SESSIONS_PER_USER}, got {limit}")
    policy = cfg.session_limit if at_limit is None else at_limit
    if policy not in SESSION_LIMITS:
        raise InvalidInput(f"at_limit must be 'evict' or 'refuse', got {policy!r}")
    return limit, policy == "refuse"


def checked_ttl(value: int | None, default: int, name: str) -> int:
    """A per-login lifetime: ``default`` when None, else an integer in 1..``default``."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= default:
        raise InvalidInput(f"{name} must be an integer in 1..{default}, got {value!r}")
    return value


class Sessions:
    """The session operations as ``Call``s (create, check, revoke, list) for one ``Config``."""

    def __init__(self, config: Config, on_event: events.EventHook | None = None) -> None:
        if not isinstance(config, Config):
            raise InvalidInput(f"config must be a Config, got {type(config).__name__}")
        if on_event is not None and not callable(on_event):
            raise InvalidInput("on_event must be callable")
        self.config = config
        self.on_event = on_event
        # A revoked session matters to degraded mode for as long as its tokens can live.
        self.revoked = RevocationMemory(config.revoked_memory, config.access_ttl + config.leeway)
        # Set by the shells when Redis' invalidation pushes feed a near cache.
        self.near: NearCache | None = None
        self.fresh: Callable[[], bool] = _fresh
        # Config.revocation_feed_sets: signs each revoked session's SET (the engine's keyring).
        self.signer: Signer | None = None
        self.history_spec = history.spec(config)

    def history_keys(self, user_id: str) -> tuple[str, ...]:
        """The user's history key when the history is on (the scripts' last KEYS), else ()."""
        return (user_keys(self.config.namespace, user_id).history,) if self.history_spec else ()

    def history(self, user_id: str, limit: int = 100) -> Call[list[HistoryEntry]]:
        """The newest ``limit`` entries of a user's history, newest first."""
        return history.read(self.config, user_id, limit)

    def forked(self) -> None:
        """In a forked child: no near cache (it was fed by the parent's connections) and
        new locks; the revocations the parent knew of are kept (still true)."""
        self.near = None
        self.fresh = _fresh
        self.revoked.forked()

    def emit(self, event: events.Event) -> None:
        """Report ``event`` to the hook, if any."""
        events.emit(self.on_event, event)

    def feed(self, user_id: str, reason: events.RevokeReason) -> Feed | None:
        """The revocation feed's entry of one revocation, or None when the feed is off."""
        if not self.config.revocation_feed_retention:
            return None
        return Feed(self.config, user_id, reason, self.signer)

    def _forget(
        self,
        user_id: str,
        session_ids: list[str],
        reason: events.RevokeReason | None = None,
        feed: Feed | None = None,
    ) -> None:
        if feed is not None and reason is not None:
            feed.add(session_ids)
        now = time.time()
        near = self.near
        prefix = user_keys(self.config.namespace, user_id).prefix if near is not None else ""
        for session_id in session_ids:
            self.revoked.add(user_id, session_id, now)
            if near is not None:
                near.drop(prefix + session_id)
        if reason is not None and session_ids:
            self.emit(
                events.Revoked(user_id=user_id, session_ids=tuple(session_ids), reason=reason)
            )

    def wait_for(self, call: Call[Any]) -> tuple[int, int] | None:
        """(replicas, timeout ms) to WAIT for after ``call``, or None."""
        wanted = self.config.revoke_wait_replicas
        if not (call.durable and wanted):
            return None
        return wanted, max(1, int(self.config.revoke_wait_timeout * 1000))

    def replicated(self, acked: int) -> None:
        """Report a revocation that fewer replicas than asked acknowledged."""
        wanted = self.config.revoke_wait_replicas
        if int(acked) < wanted:
            self.emit(events.ReplicationLag(wanted=wanted, acked=int(acked)))

    def gone(self, user_id: str, session_id: str, code: int) -> SessionRevoked:
        """The error for a session a script found gone (``Reply.EXPIRED``, else revoked)."""
        self._forget(user_id, [session_id])
        if int(code) == Reply.EXPIRED:
            self.emit(events.Expired(user_id=user_id, session_id=session_id))
            return SessionExpired("session expired")
        return SessionRevoked("session is revoked")

    def create(
        self,
        user_id: str,
        *,
        device: Device,
        data: Mapping[str, Any] | None = None,
        idle_ttl: int | None = None,
        absolute_ttl: int | None = None,
        claims: Mapping[str, Any] | None = None,
        extra: Sequence[Arg] = (),
        session_id: str | None = None,
        auth: tuple[tuple[str, ...], int] = ((), 0),
        persistent: bool = True,
        limit: int | None = None,
        at_limit: str | None = None,
        feed: Feed | None = None,
        marker: tuple[str, int] | None = None,
    ) -> Call[Session]:
        """Create a session (``extra``: more field/value pairs, e.g. refresh state).

        ``session_id`` is a fresh one from ``new_session_id`` (default: drawn here);
        ``auth`` the sign-in's methods and level, checked (``codec.check_auth``);
        ``persistent`` False for a browser-session login (``check_persistent``);
        ``limit`` and ``at_limit`` this login's session limit and what it does there
        (default: the ``Config``'s; ``SessionLimitReached`` when refused). The
        sessions a login at the cap evicts go to ``feed`` (login's own), or to the revocation
        feed after the script (a plain create). ``marker`` (key, ttl ms): an adoption marker
        the script sets with the session, or whose session id it answers with, creating
        nothing, when it is set already.
        """
        own = feed is None
        if own:
            feed = self.feed(user_id, "evicted")
        cfg = self.config
        keys = user_keys(cfg.namespace, user_id)
        codec.check_device(device)
        codec.check_persistent(persistent)
        cap, refuse = checked_limit(cfg, limit, at_limit)
        idle = checked_ttl(idle_ttl, cfg.idle_ttl, "idle_ttl")
        absolute = checked_ttl(absolute_ttl, cfg.absolute_ttl, "absolute_ttl")
        if idle > absolute:
            raise InvalidInput("idle_ttl must not exceed absolute_ttl")
        data, blob = codec.encode_data(data, cfg.max_data_bytes)
        fields: list[Arg] = [*extra, *codec.auth_fields(*auth, persistent)]
        fields += codec.chunk_fields(META, codec.encode_meta(device, claims or {}))
        if data:
            chunks = codec.data_chunks(blob)
            fields += [*codec.chunk_fields(DATA, blob), DATA_CHUNKS, len(chunks)]
        session_id = new_session_id() if session_id is None else check_session_id(session_id)
        keyed = (keys.index, keys.session(session_id), *self.history_keys(user_id))
        marked: tuple[Arg, ...] = ()
        if marker is not None:
            keyed, marked = (*keyed, marker[0]), (marker[1],)
        body = history.signin_body(session_id, device) if self.history_spec else b""
        args: tuple[Arg, ...] = (
            session_id,
            idle * 1000,
            absolute * 1000,
            -cap if refuse else cap,
            device.id,
            self.history_spec,
            body,
            *marked,
            *fields,
        )

        def parse(reply: list[Any]) -> Session:
            if reply[0] == Reply.LIMIT:  # a created reply starts with a time in µs
                live = tuple(x.decode() for x in reply[1:])
                self.emit(events.LoginRefused(user_id=user_id, limit=cap, session_ids=live))
                raise SessionLimitReached(user_id, cap, live)
            created_us, idle_ms, absolute_ms, _, *evicted = reply  # lua/create.lua
            created, idle_deadline, absolute_deadline = map(int, (created_us, idle_ms, absolute_ms))
            new_device = is_new_device(reply)
            self._forget(user_id, [x.decode() for x in evicted], "evicted", feed)
            self.emit(
                events.Created(
                    user_id=user_id,
                    session_id=session_id,
                    device_id=device.id,
                    new_device=new_device,
                )
            )
            return Session(
                user_id=user_id,
                session_id=session_id,
                device=device,
                created_at=created / 1e6,
                last_seen_at=created / 1e6,
                idle_expires_at=idle_deadline / 1000,
                absolute_expires_at=absolute_deadline / 1000,
                data=data,
                claims=dict(claims or {}),
                auth_time=created // 1_000_000,
                amr=auth[0],
                acr=auth[1],
                persistent=persistent,
            )

        call = Call(SCRIPTS["create"], keyed, args, parse)
        return fed(call, feed) if own else call

    def check(self, user_id: str, session_id: str, interval_ms: int) -> Call[Session | None]:
        """Read a live session, touching it when ``interval_ms`` has elapsed (or never)."""
        keys = user_keys(self.config.namespace, user_id)
        check_session_id(session_id)

        def parse(reply: Any) -> Session | None:
            if not isinstance(reply, list):
                self.gone(user_id, session_id, reply)
                return None
            fields, refused = codec.untouched(reply)
            if refused is not None:  # touch() only: the touch was the point
                self.emit(
                    events.TouchFailed(user_id=user_id, session_id=session_id, reason=refused)
                )
                raise ScriptError(f"Redis refused the touch: {refused}")
            return codec.parse_session(user_id, session_id, codec.parse_fields(fields))

        args = (session_id, interval_ms)
        return Call(SCRIPTS["check"], (keys.index, keys.session(session_id)), args, parse)

    def get(self, user_id: str, session_id: str) -> Call[Session | None]:
        """Read one live session (None when gone); never extends it."""
        return self.check(user_id, session_id, NEVER_TOUCH_MS)

    def touch(self, user_id: str, session_id: str) -> Call[bool]:
        """Slide the idle deadline now; False (and nothing written) when gone."""
        inner = self.check(user_id, session_id, TOUCH_NOW_MS)
        return Call(inner.script, inner.keys, inner.args, lambda r: inner.parse(r) is not None)

    def update(
        self,
        user_id: str,
        session_id: str,
        data: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> Call[Session]:
        """Replace a live session's data and/or claims (None: kept; one at least);
        ``SessionRevoked`` when gone (never recreated).

        New claims are announced like a revocation: once it returns, the next validation
        in any process reads the session again (its cached copies were dropped), and the
        next refresh signs them.
        """
        keys = user_keys(self.config.namespace, user_id)
        check_session_id(session_id)
        if data is None and claims is None:
            raise InvalidInput("update needs data= or claims=")
        blob = self.claims_blob(claims)
        chunks: list[bytes] | None = None
        if data is not None:
            checked, encoded = codec.encode_data(data, self.config.max_data_bytes)
            chunks = codec.data_chunks(encoded) if checked else []
        key = keys.session(session_id)

        def parse(reply: Any) -> Session:
            if not isinstance(reply, list):
                raise self.gone(user_id, session_id, reply)
            if blob and self.near is not None:
                self.near.drop(key)
            return codec.parse_session(user_id, session_id, codec.parse_fields(reply))

        args: tuple[Arg, ...] = (session_id, blob, codec.CHUNK)
        args += (-1,) if chunks is None else (len(chunks), *chunks)
        call = Call(SCRIPTS["update"], (keys.index, key), args, parse)
        return announced(call, lambda reply: isinstance(reply, list)) if blob else call

    def claims_blob(self, claims: Mapping[str, Any] | None) -> bytes:
        """New claims, checked as login's are and encoded for a script (None: b"", kept)."""
        if claims is None:
            return b""
        cfg = self.config
        return codec.encode_claims(
            codec.check_claims(claims, RESERVED_CLAIMS, cfg.max_claims_bytes)
        )

    def revoke(
        self, user_id: str, session_id: str, reason: events.RevokeReason = "revoke"
    ) -> Call[bool]:
        """Delete one session; True when it was live."""
        keys = user_keys(self.config.namespace, user_id)
        check_session_id(session_id)
        feed = self.feed(user_id, reason)

        def parse(reply: int | bytes) -> bool:
            # bytes: the id was rotated away, and the session its family moved to went.
            revoked = reply.decode() if isinstance(reply, bytes) else session_id
            self._forget(user_id, [revoked], reason if reply else None, feed)
            if revoked != session_id:
                self._forget(user_id, [session_id])  # remembered too: announced long ago
            return bool(reply)

        keyed = (keys.index, keys.session(session_id), *self.history_keys(user_id))
        args = (session_id, self.history_spec, history.REASONS[reason])
        call = Call(SCRIPTS["revoke"], keyed, args, parse, durable=True)
        return fed(announced(call), feed)

    def _revoke_many(
        self,
        user_id: str,
        mode: Literal["device", "user"],
        arg: str,
        step: tuple[bytes, bytes] = (b"0", b""),
        done: int = 0,
        feed: Feed | None = None,
        reason: events.RevokeReason | None = None,
    ) -> Call[int]:
        """One bounded step (``CHUNK`` index entries) of a revocation; the reply asks for
        the next step until the walk is done. ``step`` is (ZSCAN cursor, cutoff µs).

        The walk's revoked sessions make one feed entry, appended when it is done.
        """
        keys = user_keys(self.config.namespace, user_id)
        why: events.RevokeReason = mode if reason is None else reason
        first = feed is None
        if first:
            feed = self.feed(user_id, why)

        def then(reply: list[bytes]) -> Call[int] | None:
            # Each step's deletions are remembered (and announced) as soon as they are made.
            cursor, cutoff, *deleted = reply  # lua/revoke_many.lua
            self._forget(user_id, [x.decode() for x in deleted], why, feed)
            total = done + len(deleted)
            if cursor != b"0":
                return self._revoke_many(user_id, mode, arg, (cursor, cutoff), total, feed, why)
            # The walk is done: one keyed read answered after every step's pushes (see
            # ``announced``); a walk that revoked nothing has nothing to announce.
            return confirmed(SCRIPTS["revoke_many"], keys.index, total) if total else None

        args = (mode, arg, step[0], CHUNK, step[1], self.history_spec, history.REASONS[why])
        call = Call(
            SCRIPTS["revoke_many"],
            (keys.index, *self.history_keys(user_id)),
            args,
            lambda reply: done + len(reply) - 2,
            durable=True,
            then=then,
        )
        return fed(call, feed) if first else call

    def revoke_device(self, user_id: str, device_id: str) -> Call[int]:
        """Delete every session of one device; the number deleted."""
        return self._revoke_many(user_id, "device", check_device_id(device_id))

    def revoke_user(
        self, user_id: str, keep: str | None = None, reason: object = "user"
    ) -> Call[int]:
        """Delete every session of a user but ``keep``; the number deleted. ``reason``:
        ``"user"`` (sign out everywhere) or ``"password"`` (after a password change)."""
        if reason not in ("user", "password"):
            raise InvalidInput(f"reason must be 'user' or 'password', got {reason!r}")
        kept = "" if keep is None else check_session_id(keep)
        why: events.RevokeReason = "password" if reason == "password" else "user"
        return self._revoke_many(user_id, "user", kept, reason=why)

    def sessions(self, user_id: str) -> Call[list[Session]]:
        """A user's live sessions, newest first (at most ``MAX_SESSIONS_PER_USER``)."""
        return self._listing(user_id, lambda found: found)

    def devices(self, user_id: str) -> Call[list[DeviceSessions]]:
        """A user's live sessions grouped per device, most recently seen device first."""
        return self._listing(user_id, group)

    def _listing(self, user_id: str, finish: Callable[[list[Session]], T]) -> Call[T]:
        keys = user_keys(self.config.namespace, user_id)
        cap = MAX_SESSIONS_PER_USER  # a login may raise its user's limit up to it
        rows: dict[str, list[bytes]] = {}  # one per session id: a walk may meet one twice

        def sessions() -> list[Session]:
            found = [
                codec.parse_session(user_id, sid, codec.parse_fields(fields))
                for sid, fields in rows.items()
            ]
            found.sort(key=lambda s: (s.created_at, s.session_id), reverse=True)
            return found[:cap]  # logins during the walk may have passed the cap

        def step(cursor: bytes) -> Call[T]:
            def then(reply: list[Any]) -> Call[T] | None:
                cursor, *found = reply  # lua/list.lua
                for session_id, *fields in found:
                    rows[session_id.decode()] = fields
                return None if cursor == b"0" else step(cursor)

            args = (cursor, CHUNK)
            return Call(
                SCRIPTS["list"], (keys.index,), args, lambda _: finish(sessions()), then=then
            )

        return step(b"0")


def is_new_device(reply: list[Any]) -> bool:
    """Whether a create script's reply for a made session (lua/create.lua) says no sign-in
    in the user's history showed its device."""
    _, _, _, fresh, *_ = reply
    return int(fresh) == 1


def group(sessions: list[Session]) -> list[DeviceSessions]:
    """Group sessions (newest first) per device id; the device shown is the newest one's."""
    by_device: dict[str, list[Session]] = {}
    for session in sessions:
        by_device.setdefault(session.device.id, []).append(session)
    groups = [
        DeviceSessions(
            device=members[0].device,
            sessions=members,
            last_seen_at=max(s.last_seen_at for s in members),
        )
        for members in by_device.values()
    ]
    groups.sort(key=lambda g: g.last_seen_at, reverse=True)
    return groups
