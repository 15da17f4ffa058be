"""The ASGI half shared by the Starlette and Litestar integrations (no framework imported).

``AsgiAuth``: what both ``SessionAuth`` classes do on a request, duck-typed on the
framework's connection (``headers``, ``cookies``, ``client``, ``scope``, ``form()`` agree in
both); reading the CSRF token of a cookie-authenticated unsafe request from its header
or urlencoded form body in a middleware (the body is then replayed to the app); and
``LiveGuard``, which ends an authenticated WebSocket or streamed response when its session
ends (``_live``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from sessionstore.aio import AsyncSessionStore
from sessionstore.errors import InvalidInput, InvalidToken, StoreUnavailable
from sessionstore.integrations._http import (
    AuthState,
    CookieMethods,
    CookieSettings,
    Guard,
    HttpAuth,
    Refused,
    Reply,
    form_field,
)
from sessionstore.integrations._live import Ending, Live, LiveConnections
from sessionstore.models import Principal, TokenPair

_ANY = Guard()

__all__ = [
    "FORM",
    "MAX_FORM_BYTES",
    "AsgiAuth",
    "LiveGuard",
    "SessionEnded",
    "authenticate",
    "read_body",
    "replay",
    "submitted_csrf",
]

# Any: Starlette's and Litestar's ``Receive`` types differ only in how they type the messages.
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
App = Callable[[Any, Receive, Send], Awaitable[None]]

FORM = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 64 * 1024


async def authenticate(
    store: AsyncSessionStore,
    http: HttpAuth,
    *,
    authorization: str | None,
    cookie: str | Callable[[], str | None] | None,
    ip: str | None,
    user_agent: str | None,
) -> AuthState:
    """Validate the request's token (Bearer header first, else ``cookie``), if any."""
    try:
        found = http.credentials(authorization, cookie)
    except Refused as refused:
        return AuthState(refusal=refused.reply)
    if found is None:
        return AuthState()
    try:
        principal = await store.validate(found.token, ip=ip, user_agent=user_agent)
    except (InvalidToken, InvalidInput, StoreUnavailable) as err:
        return AuthState(refusal=http.refusal(err), from_cookie=found.from_cookie)
    return AuthState(principal=principal, from_cookie=found.from_cookie)


async def submitted_csrf(
    http: HttpAuth, header: str | None, content_type: str | None, receive: Receive
) -> tuple[str | None, Receive]:
    """The token from the header, else from a urlencoded form body (then replayed)."""
    if header is not None or not (content_type or "").startswith(FORM):
        return header, receive
    body = await read_body(receive, MAX_FORM_BYTES)
    if body is None:
        return None, receive
    return form_field(body, http.csrf_field), replay(body, receive)


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past ``limit`` bytes or on a disconnect."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message: dict[str, Any] = await receive()
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then defers to the real one."""
    pending = [body]

    async def replayed() -> Any:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replayed


C = TypeVar("C")  # the framework's connection (Starlette's HTTPConnection, Litestar's)
R = TypeVar("R")  # the framework's response


class AsgiAuth(CookieMethods[R], Generic[C, R]):
    """The request-level half of a ``SessionAuth`` on an ``AsyncSessionStore``.

    A framework's subclass says how a refusal is raised (``refused``) and where the outcome
    is kept on the connection (``state_key``, ``keep``). ``live`` holds the authenticated
    WebSockets and streamed responses the middleware serves (None with ``close_live=False``):
    each is ended when its session ends (see ``LiveGuard``).
    """

    state_key = "sessionstore.auth"

    def __init__(
        self,
        store: AsyncSessionStore,
        *,
        cookies: CookieSettings | None = None,
        realm: str = "api",
        csrf_secret: bytes | None = None,
        allowed_origins: Iterable[str] = (),
        close_live: bool = True,
    ) -> None:
        if not isinstance(store, AsyncSessionStore):
            raise InvalidInput("SessionAuth needs an AsyncSessionStore")
        self.store = store
        self.live = LiveConnections(store) if close_live else None
        self.http = HttpAuth(
            store.config,
            cookies=cookies,
            realm=realm,
            csrf_secret=csrf_secret,
            allowed_origins=allowed_origins,
        )

    @property
    def cookies(self) -> CookieSettings:
        """The cookie settings."""
        return self.http.cookies

    def refused(self, reply: Reply) -> Exception:
        """The framework's exception answering ``reply``."""
        raise NotImplementedError

    async def serve(
        self, app: App, scope: Any, receive: Receive, send: Send, principal: Principal | None
    ) -> None:
        """Run ``app`` (the middleware's inner app); a WebSocket or streamed response of
        ``principal`` is ended when its session ends (``LiveGuard``)."""
        live = self.live
        if principal is None or live is None:
            await app(scope, receive, send)
            return
        await LiveGuard(live, principal, scope, receive, send).run(app, scope)

    def keep(self, conn: C, state: AuthState) -> None:
        """Keep ``state`` on the connection, where ``state`` finds it."""
        c: Any = conn
        c.scope[self.state_key] = state

    async def authenticate(self, conn: C) -> AuthState:
        """Validate the request's token (if any) with its client IP and User-Agent."""
        c: Any = conn
        facts = self.http.client_facts  # else validation does not read them
        return await authenticate(
            self.store,
            self.http,
            authorization=c.headers.get("authorization"),
            cookie=lambda: c.cookies.get(self.cookies.access),
            ip=c.client.host if facts and c.client else None,
            user_agent=c.headers.get("user-agent") if facts else None,
        )

    def state(self, conn: C) -> AuthState | None:
        """What the middleware made of this request (None without the middleware)."""
        state = getattr(conn, "scope", {}).get(self.state_key)
        return state if isinstance(state, AuthState) else None

    async def _state(self, request: C) -> AuthState:
        state = self.state(request)
        if state is not None:
            return state  # the middleware has checked CSRF already
        state = await self.authenticate(request)
        r: Any = request
        if r.scope["type"] == "http" and self.http.csrf_required(r.scope["method"], state):
            submitted = r.headers.get(self.http.csrf_header)
            if submitted is None and r.headers.get("content-type", "").startswith(FORM):
                value = (await r.form()).get(self.http.csrf_field)
                submitted = value if isinstance(value, str) else None
            if not self.http.csrf_valid(state, submitted, r.cookies.get(self.cookies.csrf)):
                raise self.refused(self.http.csrf_failed())
        self.keep(request, state)
        return state

    async def principal(self, request: C) -> Principal | None:
        """The request's principal, or None (never raises for a bad token)."""
        return (await self._state(request)).principal

    async def _require(self, request: C, *, fresh: bool = False, need: Guard = _ANY) -> Principal:
        """The principal if it meets ``need`` (``fresh``: not degraded), or the refusal
        raised."""
        try:
            return self.http.require(await self._state(request), need, fresh=fresh)
        except Refused as refused:
            raise self.refused(refused.reply) from None

    async def refresh(self, request: C, response: R, token: str | None = None) -> TokenPair:
        """Rotate the refresh cookie (or ``token``) and set the new cookies; 401 on failure."""
        r: Any = request
        token = token or r.cookies.get(self.cookies.refresh)
        if not token:
            raise self.refused(self.http.missing())
        try:
            pair = await self.store.refresh(token)
        except (InvalidToken, InvalidInput, StoreUnavailable) as err:
            raise self.refused(self.http.refusal(err)) from None
        self.set_login_cookies(response, pair)
        return pair

    async def rotate(
        self, request: C, response: R, *, claims: Mapping[str, Any] | None = None
    ) -> TokenPair:
        """Move the request's session to a new id and set its cookies (on a privilege
        change: a sign-in on an existing session, new roles in ``claims``); the old id's
        tokens and cookies are refused from now on. 401 without a session, 503 degraded.

        The request's principal still names the old id: use the returned pair's.
        """
        try:
            found = self.http.session_to_rotate(await self._state(request))
            pair = await self.store.rotate(*found, claims=claims)
        except Refused as refused:
            raise self.refused(refused.reply) from None
        except (InvalidToken, StoreUnavailable) as err:
            raise self.refused(self.http.refusal(err)) from None
        self.set_login_cookies(response, pair)
        return pair

    async def sign_out(self, request: C, response: R) -> bool:
        """Sign out: revoke the request's session, then delete the three cookies.

        The session is the request's principal (cookie or Bearer), else that of the refresh
        cookie when the route lies under its path. True when a live session was revoked.
        ``StoreUnavailable`` propagates, cookies untouched (a 503 with the handlers): a
        sign-out that cannot reach the store must not look done.
        """
        state = await self._state(request)
        r: Any = request
        refresh = r.cookies.get(self.cookies.refresh)
        found = self.http.session_to_end(state, refresh, self.store.keyring)
        revoked = await self.store.revoke(*found) if found is not None else False
        self.clear_cookies(response)
        return revoked


class SessionEnded(OSError):
    """A send on a live connection ended because its session ended.

    An ``OSError``, as ASGI servers raise on a send to a closed connection: Starlette
    turns it into ``WebSocketDisconnect`` (and ``ClientDisconnect`` for a stream).
    """


class LiveGuard:
    """One authenticated WebSocket, or response that streams, ended with its session.

    It wraps the server's ``receive`` and ``send``. A WebSocket is watched from its
    handshake: a session that ends closes it (``Ending.code``, e.g. 4401; a handshake not
    yet accepted is refused instead), the app's pending and later ``receive`` get
    ``websocket.disconnect`` with that code, its later sends raise ``SessionEnded``. An
    HTTP response is watched from its first body message that asks for more, unless it
    declared a ``Content-Length`` (a download runs to its end): a session that ends
    ends the body (the client sees a complete chunked response, an event stream its end),
    the app's ``receive`` gets ``http.disconnect`` and its later sends are dropped (raise
    ``SessionEnded`` on an ASGI 2.4 server). Sends are serialized, so that an ending is
    never written in the middle of the app's own.
    """

    def __init__(
        self, live: LiveConnections, principal: Principal, scope: Any, receive: Receive, send: Send
    ) -> None:
        self._live = live
        self._principal = principal
        self._websocket = scope["type"] == "websocket"
        spec = scope.get("asgi", {}).get("spec_version", "2.0")
        self._raises = self._websocket or _version(spec) >= (2, 4)
        self._receive = receive
        self._send = send
        self._lock = asyncio.Lock()
        self._watch: Live | None = None
        self._open = False  # accepted (WebSocket) or streaming (HTTP), not yet finished
        self._over = False  # finished by the app, the server, or an ending
        self._sized = False  # the response declared a Content-Length
        self.ending: Ending | None = None
        self._task: asyncio.Task[None] | None = None

    async def run(self, app: App, scope: Any) -> None:
        """Run ``app`` on the guarded connection; stop watching when it returns."""
        if self._websocket:
            self._watch = self._live.open(self._principal, self._ended)
        try:
            await app(scope, self.receive, self.send)
        finally:
            self._stop()
            if self._task is not None:
                # An ending still to send goes out before the app counts as done (the
                # server would close with a code of its own).
                await asyncio.shield(self._task)

    async def receive(self) -> Any:
        """The server's next message; a disconnect once the session has ended."""
        message = await self._receive()
        ending = self.ending
        if ending is not None and message["type"] in _RECEIVED:
            if self._websocket:
                return {
                    "type": "websocket.disconnect",
                    "code": ending.code,
                    "reason": ending.reason,
                }
            return {"type": "http.disconnect"}
        return message

    async def send(self, message: Any) -> None:
        """Pass the app's message on, unless the session has ended."""
        async with self._lock:
            if self.ending is not None:
                await self._refuse(message)
                return
            kind = message["type"]
            if kind == "websocket.accept":
                self._open = True
            elif kind in ("websocket.close", "websocket.http.response.start"):
                self._finish()
            elif kind == "http.response.start":
                headers = message.get("headers") or ()
                self._sized = any(name.lower() == b"content-length" for name, _ in headers)
            elif kind == "http.response.body":
                if not message.get("more_body", False):
                    self._finish()
                elif self._watch is None and not self._sized and not self._over:
                    self._open = True
                    self._watch = self._live.open(self._principal, self._ended)
                    if self.ending is not None:  # announced before the watch began
                        await self._refuse(message)
                        return
            await self._send(message)

    async def _refuse(self, message: Any) -> None:
        """After an ending: close what is not closed yet (a handshake is refused); the app's
        own accept or close is then swallowed, the rest raise (or are dropped, see above)."""
        if not self._over:
            await self._close()
        if message["type"] in ("websocket.accept", "websocket.close") or not self._raises:
            return
        ending = self.ending
        raise SessionEnded(f"the session ended: {ending.reason if ending else ''}")

    def _ended(self, ending: Ending) -> None:
        """The session ended (on the connection's loop): close what is open."""
        self._watch = None
        self.ending = ending
        if self._open and not self._over:
            self._task = asyncio.get_running_loop().create_task(self._ending())

    async def _ending(self) -> None:
        async with self._lock:
            if not self._over:
                await self._close()

    async def _close(self) -> None:
        """Send the close (WebSocket) or the body's end (HTTP); the connection is over."""
        self._over = True
        ending = self.ending
        assert ending is not None
        if self._websocket:
            message = {"type": "websocket.close", "code": ending.code, "reason": ending.reason}
        else:
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        with contextlib.suppress(OSError):  # the client left meanwhile: closed all the same
            await self._send(message)

    def _finish(self) -> None:
        """The app ended the connection itself."""
        self._over = True
        self._stop()

    def _stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            self._live.close(watch)


_RECEIVED = frozenset({"websocket.receive", "websocket.disconnect", "http.request"})


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return (2, 0)
