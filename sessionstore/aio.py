"""``AsyncSessionStore``: the asyncio shell. Every decision lives in the engine (``_engine``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal, TypeVar

from sessionstore._engine import admin, feed, liveness
from sessionstore._engine.call import Call, fail_closed
from sessionstore._redis import connect, durable, redispy, runner
from sessionstore._redis.batch import Batcher
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

__all__ = ["AsyncSessionStore"]

T = TypeVar("T")


class AsyncSessionStore(StoreBase):
    """Sessions and stateful JWTs on Redis, for asyncio code; ``async with`` closes it.

    Concurrent ``validate`` calls of one event loop are sent as one pipeline per loop turn.
    A store may be awaited from one event loop after another (a second ``asyncio.run``,
    a loop per test): what a closed loop left open is closed, and the new loop gets
    connections of its own.
    """

    _stale = False  # the sentinels named a new primary: connections to the old one go

    def _start(self, client: Any) -> None:
        self._batcher = Batcher(client, self._chores)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _after_fork(self) -> None:
        self._batcher.forked()

    def _here(self) -> None:
        """Before I/O: on a new event loop, close what closed loops left behind."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None:
                redispy.abandon_closed_loops(self._client)
            self._loop = loop

    def _let_go(self) -> None:
        # From the watcher thread: the loop's next call lets go of the connections.
        self._stale = True

    async def _disconnect(self) -> None:
        self._stale = False
        await self._client.connection_pool.disconnect()

    @staticmethod
    def _new_client(url: str, config: Config, options: dict[str, Any]) -> Any:
        return connect.async_client(url, config, options)

    async def _run(self, call: Call[T]) -> T:
        # A loop, not recursion: a walk over a user's index may take many follow-up calls.
        while True:
            self._here()
            if self._stale:
                await self._disconnect()
            chore = self._chores()
            if chore is not None:
                await self._run(chore)
            wait = self._engine.wait_for(call)
            try:
                if wait is None:
                    reply = await runner.asend(self._client, call)
                else:
                    # EVAL then WAIT on one connection to the primary owning the keys' slot.
                    reply, acked = await durable.arun(self._client, call, wait)
                    self._engine.replicated(acked)
            except DRIVER_ERRORS as err:
                out = failed(call, err)
            else:
                out = self._after(call, reply)
            if not isinstance(out, Call):
                return out
            call = out

    async def create(
        self,
        user_id: str,
        *,
        device: Device,
        data: Mapping[str, Any] | None = None,
        idle_ttl: int | None = None,
        absolute_ttl: int | None = None,
    ) -> Session:
        """Create a session without tokens (``login`` also issues a token pair)."""
        return await self._run(
            self._engine.create(
                user_id, device=device, data=data, idle_ttl=idle_ttl, absolute_ttl=absolute_ttl
            )
        )

    async def login(
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
        return await self._run(
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

    async def validate(
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
            call = self._engine.adopt(access_token, err, ip=ip, user_agent=user_agent)
            return await self._run(call)
        if isinstance(step, Principal):
            return step
        self._here()
        if self._stale:
            await self._disconnect()
        return await self._batcher.submit(step)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate a refresh token into a new pair."""
        return await self._run(self._engine.refresh(refresh_token))

    async def logout(self, access_token: str) -> bool:
        """Revoke the session of an access token."""
        return await self._run(self._engine.logout(access_token))

    async def get(self, user_id: str, session_id: str) -> Session | None:
        """One live session, or None."""
        return await self._run(self._engine.get(user_id, session_id))

    async def touch(self, user_id: str, session_id: str) -> bool:
        """Slide a session's idle deadline; False when it is gone."""
        return await self._run(self._engine.touch(user_id, session_id))

    async def update(
        self,
        user_id: str,
        session_id: str,
        *,
        data: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> Session:
        """Replace a session's data and/or claims (None: kept); ``SessionRevoked`` when it
        is gone. New claims are what the next validation (any process) and refresh see."""
        return await self._run(self._engine.update(user_id, session_id, data, claims))

    async def rotate(
        self, user_id: str, session_id: str, *, claims: Mapping[str, Any] | None = None
    ) -> TokenPair:
        """Move a session to a new id and revoke the old one; the new id's token pair.
        Everything else stays (``claims``: new ones in the same step)."""
        return await self._run(self._engine.rotate(user_id, session_id, claims))

    async def rotate_session(
        self, user_id: str, session_id: str, *, claims: Mapping[str, Any] | None = None
    ) -> Session:
        """``rotate`` for a session without tokens (made by ``create``): the moved session,
        under its new id. Needs no keyring."""
        return await self._run(self._engine.rotate_session(user_id, session_id, claims))

    async def step_up(self, user_id: str, session_id: str, *, method: str, level: int) -> str:
        """Record that the user just proved who they are again (``method``, e.g. ``"otp"``,
        at ``level`` 1..9) and return a new access token carrying it (``auth_time``,
        ``amr``, ``acr``). Nothing else of the session changes; the refresh token stays
        valid and later refreshes carry the new values. ``SessionRevoked`` when gone."""
        return await self._run(self._engine.step_up(user_id, session_id, method, level))

    async def revoke(self, user_id: str, session_id: str) -> bool:
        """Revoke one session; True when it was live."""
        return await self._run(self._engine.revoke(user_id, session_id))

    async def revoke_device(self, user_id: str, device_id: str) -> int:
        """Revoke every session of one device; how many."""
        return await self._run(self._engine.revoke_device(user_id, device_id))

    async def revoke_user(
        self,
        user_id: str,
        *,
        keep: str | None = None,
        reason: Literal["user", "password"] = "user",
    ) -> int:
        """Revoke every session of a user except ``keep``; how many. ``reason`` is recorded
        (history, events, revocation feed): ``"password"`` after a password change."""
        return await self._run(self._engine.revoke_user(user_id, keep, reason))

    async def history(self, user_id: str, *, limit: int = 100) -> list[HistoryEntry]:
        """The newest ``limit`` (1..1000) entries of a user's history, newest first:
        sign-ins, refreshes, step-ups, revocations and why (``Config.history``)."""
        return await self._run(self._engine.history(user_id, limit))

    async def sessions(self, user_id: str) -> list[Session]:
        """A user's active sessions, newest first."""
        return await self._run(self._engine.sessions(user_id))

    async def devices(self, user_id: str) -> list[DeviceSessions]:
        """A user's active sessions grouped per device."""
        return await self._run(self._engine.devices(user_id))

    async def _remaining(self, user_id: str, session_id: str) -> float | None:
        """Seconds a live connection's session has left (None: gone): one PTTL, batched
        with the other calls of this loop turn (``_engine.liveness``)."""
        step = liveness.remaining(self._engine, user_id, session_id)
        self._here()
        if self._stale:
            await self._disconnect()
        return await self._batcher.submit(step)

    def _denied_in(self) -> float:
        """Seconds until an unreachable Redis makes validations deny (0: now)."""
        return liveness.denied_in(self._engine, time.monotonic())

    async def close(self) -> None:
        """Close the client if this store created it."""
        self._here()
        await self._batcher.close()
        self._detach()
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> AsyncSessionStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def revocations(
        self, *, since: str | float | None = None, count: int = 500
    ) -> AsyncIterator[RevocationEntry]:
        """The revocation feed's entries after ``since``, oldest first, to the tail (see
        ``SessionStore.revocations``): ``async for entry in store.revocations(...)``."""
        return self._pages(feed.first_page(self.config, since, count), count)

    async def _pages(
        self, call: Call[list[RevocationEntry]] | None, count: int
    ) -> AsyncIterator[RevocationEntry]:
        while call is not None:
            entries = await self._run(call)
            for entry in entries:
                yield entry
            call = feed.next_page(self.config, entries, count)

    async def iter_users(self, *, count: int = 500) -> AsyncIterator[str]:
        """Every user with sessions, each once: SCAN on each primary (never KEYS).

        ``count`` is SCAN's batch hint. For admin tools: a walk costs a SCAN per batch.
        """
        walk = admin.Walk(self.config.namespace, count)
        self._here()
        try:
            async for key in self._client.scan_iter(match=walk.pattern, count=count, _type="zset"):
                user_id = walk.user(key)
                if user_id is not None:
                    yield user_id
        except DRIVER_ERRORS as err:
            fail_closed(typed(err), is_unreachable(err))

    async def iter_sessions(self, *, count: int = 500) -> AsyncIterator[Session]:
        """Every live session of every user, user by user (see ``iter_users``)."""
        async for user_id in self.iter_users(count=count):
            for session in await self.sessions(user_id):
                yield session
