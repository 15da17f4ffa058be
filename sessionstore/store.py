"""``SessionStore``: the synchronous shell. Every decision lives in the engine (``_engine``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar

from sessionstore._engine import admin, feed
from sessionstore._engine.call import Call, fail_closed
from sessionstore._redis import connect, direct, durable, runner
from sessionstore._redis.driver import DRIVER_ERRORS, failed, is_unreachable, typed
from sessionstore._shell import StoreBase
from sessionstore.errors import InvalidToken
from sessionstore.events import RevocationEntry
from sessionstore.models import (
    Config,
    Device,
    DeviceSessions,
    HistoryEntry,
    Principal,
    Session,
    TokenPair,
)

__all__ = ["SessionStore"]

T = TypeVar("T")


class SessionStore(StoreBase):
    """Sessions and stateful JWTs on Redis, for synchronous code (thread-safe)."""

    def _start(self, client: Any) -> None:
        # A plain single-server client: commands go straight onto its connections.
        self._direct = direct.sync_direct(client)

    @staticmethod
    def _new_client(url: str, config: Config, options: dict[str, Any]) -> Any:
        return connect.sync_client(url, config, options)

    def _run(self, call: Call[T]) -> T:
        # A loop, not recursion: a walk over a user's index may take many follow-up calls.
        while True:
            chore = self._chores()
            if chore is not None:
                self._run(chore)
            wait = self._engine.wait_for(call)
            try:
                if wait is None and self._direct is not None:
                    reply = self._direct.execute(call)
                elif wait is None:
                    reply = runner.send(self._client, call)
                else:
                    # EVAL then WAIT on one connection to the primary owning the keys' slot.
                    reply, acked = durable.run(self._client, call, wait)
                    self._engine.replicated(acked)
            except DRIVER_ERRORS as err:
                out = failed(call, err)
            else:
                out = self._after(call, reply)
            if not isinstance(out, Call):
                return out
            call = out

    def create(
        self,
        user_id: str,
        *,
        device: Device,
        data: Mapping[str, Any] | None = None,
        idle_ttl: int | None = None,
        absolute_ttl: int | None = None,
    ) -> Session:
        """Create a session without tokens (``login`` also issues a token pair)."""
        return self._run(
            self._engine.create(
                user_id, device=device, data=data, idle_ttl=idle_ttl, absolute_ttl=absolute_ttl
            )
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
        at_limit: Literal["evict", "refuse"] | None = None,
    ) -> TokenPair:
        """Create a session and return its access and refresh tokens.

        ``methods`` (e.g. ``"pwd"`` or ``["pwd", "otp"]``) and ``level`` (0..9) say how the
        user signed in: the tokens' ``amr`` and ``acr``; the auth time is the login's.
        ``idle_ttl``/``absolute_ttl`` shorten this login's lifetimes (at most the
        ``Config``'s); ``persistent=False`` makes it a browser-session login: the
        integrations set its cookies without Max-Age, so they end with the browser.
        ``max_sessions`` (1..1000) and ``at_limit`` override ``Config.max_sessions_per_user``
        and ``Config.session_limit`` for this login (say, by role); a refused login raises
        ``SessionLimitReached`` and writes nothing.
        """
        return self._run(
            self._engine.login(
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
            )
        )

    def validate(
        self, access_token: str, *, ip: str | None = None, user_agent: str | None = None
    ) -> Principal:
        """Check an access token and its session (one round trip, or degraded).

        ``ip`` and ``user_agent`` describe the request, for ``Config.device_binding``.
        With ``Config.legacy_tokens``, a legacy token is adopted (``Principal.adopted``).
        """
        try:
            step = self._engine.validate(access_token, ip=ip, user_agent=user_agent)
        except InvalidToken as err:
            # Not one of ours: perhaps a legacy token (else ``adopt`` raises ``err``).
            return self._run(self._engine.adopt(access_token, err, ip=ip, user_agent=user_agent))
        return step if isinstance(step, Principal) else self._run(step)

    def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate a refresh token into a new pair."""
        return self._run(self._engine.refresh(refresh_token))

    def logout(self, access_token: str) -> bool:
        """Revoke the session of an access token."""
        return self._run(self._engine.logout(access_token))

    def get(self, user_id: str, session_id: str) -> Session | None:
        """One live session, or None."""
        return self._run(self._engine.get(user_id, session_id))

    def touch(self, user_id: str, session_id: str) -> bool:
        """Slide a session's idle deadline; False when it is gone."""
        return self._run(self._engine.touch(user_id, session_id))

    def update(
        self,
        user_id: str,
        session_id: str,
        *,
        data: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> Session:
        """Replace a session's data and/or claims (None: kept); ``SessionRevoked`` when it
        is gone. New claims are what the next validation (any process) and refresh see."""
        return self._run(self._engine.update(user_id, session_id, data, claims))

    def rotate(
        self, user_id: str, session_id: str, *, claims: Mapping[str, Any] | None = None
    ) -> TokenPair:
        """Move a session to a new id and revoke the old one; the new id's token pair.
        Everything else stays (``claims``: new ones in the same step)."""
        return self._run(self._engine.rotate(user_id, session_id, claims))

    def rotate_session(
        self, user_id: str, session_id: str, *, claims: Mapping[str, Any] | None = None
    ) -> Session:
        """``rotate`` for a session without tokens (made by ``create``): the moved session,
        under its new id. Needs no keyring."""
        return self._run(self._engine.rotate_session(user_id, session_id, claims))

    def step_up(self, user_id: str, session_id: str, *, method: str, level: int) -> str:
        """Record that the user just proved who they are again (``method``, e.g. ``"otp"``,
        at ``level`` 1..9) and return a new access token carrying it (``auth_time``,
        ``amr``, ``acr``). Nothing else of the session changes; the refresh token stays
        valid and later refreshes carry the new values. ``SessionRevoked`` when gone."""
        return self._run(self._engine.step_up(user_id, session_id, method, level))

    def revoke(self, user_id: str, session_id: str) -> bool:
        """Revoke one session; True when it was live."""
        return self._run(self._engine.revoke(user_id, session_id))

    def revoke_device(self, user_id: str, device_id: str) -> int:
        """Revoke every session of one device; how many."""
        return self._run(self._engine.revoke_device(user_id, device_id))

    def revoke_user(
        self,
        user_id: str,
        *,
        keep: str | None = None,
        reason: Literal["user", "password"] = "user",
    ) -> int:
        """Revoke every session of a user except ``keep``; how many. ``reason`` is recorded
        (history, events, revocation feed): ``"password"`` after a password change."""
        return self._run(self._engine.revoke_user(user_id, keep, reason))

    def history(self, user_id: str, *, limit: int = 100) -> list[HistoryEntry]:
        """The newest ``limit`` (1..1000) entries of a user's history, newest first:
        sign-ins, refreshes, step-ups, revocations and why (``Config.history``)."""
        return self._run(self._engine.history(user_id, limit))

    def sessions(self, user_id: str) -> list[Session]:
        """A user's active sessions, newest first."""
        return self._run(self._engine.sessions(user_id))

    def devices(self, user_id: str) -> list[DeviceSessions]:
        """A user's active sessions grouped per device."""
        return self._run(self._engine.devices(user_id))

    def close(self) -> None:
        """Close the client if this store created it."""
        if self._direct is not None:
            self._direct.close()
        self._detach()
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def revocations(
        self, *, since: str | float | None = None, count: int = 500
    ) -> Iterator[RevocationEntry]:
        """The revocation feed's entries after ``since``, oldest first, to the tail: then
        the iterator ends (it never blocks; call again from the last ``id`` for more).

        ``since`` is an entry's ``id`` (the entries after it: resume where you stopped), a
        Unix time (those appended in its millisecond or later), or None (every entry still
        retained). Reads ``count`` entries per round trip (XRANGE). Bad arguments raise here.
        """
        return self._pages(feed.first_page(self.config, since, count), count)

    def _pages(
        self, call: Call[list[RevocationEntry]] | None, count: int
    ) -> Iterator[RevocationEntry]:
        while call is not None:
            entries = self._run(call)
            yield from entries
            call = feed.next_page(self.config, entries, count)

    def iter_users(self, *, count: int = 500) -> Iterator[str]:
        """Every user with sessions, each once: SCAN on each primary (never KEYS).

        ``count`` is SCAN's batch hint. For admin tools: a walk costs a SCAN per batch.
        """
        walk = admin.Walk(self.config.namespace, count)
        try:
            for key in self._client.scan_iter(match=walk.pattern, count=count, _type="zset"):
                user_id = walk.user(key)
                if user_id is not None:
                    yield user_id
        except DRIVER_ERRORS as err:
            fail_closed(typed(err), is_unreachable(err))

    def iter_sessions(self, *, count: int = 500) -> Iterator[Session]:
        """Every live session of every user, user by user (see ``iter_users``)."""
        for user_id in self.iter_users(count=count):
            yield from self.sessions(user_id)
