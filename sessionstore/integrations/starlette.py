"""Starlette and FastAPI integration (extra ``[asgi]``): middleware, dependencies, cookies.

::

    auth = SessionAuth(store)                       # an AsyncSessionStore
    app = FastAPI(middleware=[Middleware(SessionAuthMiddleware, auth=auth)])

    @app.get("/me")
    async def me(principal: Principal = Depends(auth.require_principal)) -> dict: ...

The middleware validates the request's token once (Bearer header first, else the access
cookie) with the client's IP and User-Agent, and sets ``request.user`` (a ``SessionUser``)
and ``request.auth`` (scopes ``authenticated``, plus ``live`` unless degraded; ``fresh``
is its deprecated name), so
Starlette's ``@requires("authenticated")`` works too. It never refuses a request by itself,
except one: an unsafe request (POST, PUT, PATCH, DELETE) authenticated by the cookie must
carry the CSRF token in the ``X-CSRF-Token`` header or a ``csrf_token`` form field, or it
gets 403. ``require_principal`` answers 401 with ``WWW-Authenticate: Bearer
error="invalid_token"`` and an ``error_description`` telling expired, revoked and invalid
apart (503 when the store is unreachable and the fallback denies); ``require_live``
also refuses a degraded principal (503; ``require_fresh`` is its deprecated alias).
``Depends(auth.require(max_age=300, level=2))`` asks for a recent and/or strong enough
sign-in (``step_up``): 401 with the RFC 9470 challenge otherwise. All work without the
middleware as well.

Refusals have one shape in every framework (the Flask integration's): a JSON body
``{"error", "error_description", "reason"}`` and, on 401, the RFC 6750 challenge. Pass
``exception_handlers=auth.exception_handlers`` to ``FastAPI``/``Starlette`` so that
``AuthRefused`` is answered in that shape (not ``{"detail": ...}`` or text/plain) and a
``StoreUnavailable`` escaping a route (a login while Redis is down) is 503 with
``Retry-After``; the middleware turns such a ``StoreUnavailable`` into that 503 as well.

A WebSocket handshake authenticated by the cookie must come from the same origin as its
``Host`` (or one of ``allowed_origins``): a browser sends cookies on cross-site
handshakes and no CSRF token can ride along. A foreign or missing ``Origin`` closes the
socket with code 1008 (policy violation) before the app sees it; servers answer the
handshake 403. A Bearer handshake (``Authorization`` header) needs no Origin.

Live connections: an authenticated WebSocket, or a response that streams its body (an
event stream, a ``StreamingResponse`` without ``Content-Length``), ends when its session
ends, whichever process ended it: revoked (any kind) or expired, the WebSocket is closed
with code 4401 ("Session revoked" / "Session expired"), the stream's body ended; once
Redis has been unreachable for as long as validations allow (``Config.fallback``,
``max_degraded_seconds``), with 1013. Idle connections cost no call to Redis (see
``sessionstore.integrations._live``); ``SessionAuth(..., close_live=False)`` turns it off,
and ``len(auth.live)`` counts them.

``auth.jwks_route()`` serves the keyring's public JWK Set (``_jwks``). With
``Config.legacy_tokens``, the middleware hands a legacy token's new pair back on the same
response: cookies for a cookie request, else ``Sessionstore-*`` headers (``_adoption``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.authentication import AuthCredentials, BaseUser, UnauthenticatedUser
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.status import WS_1008_POLICY_VIOLATION, WS_1013_TRY_AGAIN_LATER
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketClose

from sessionstore.errors import StoreUnavailable
from sessionstore.integrations import _adoption, _asgi, _http
from sessionstore.integrations._http import (
    Reply,
    set_cookies,
)
from sessionstore.integrations._jwks import DEFAULT_MAX_AGE, DEFAULT_PATH, JwksRoute
from sessionstore.models import Principal

__all__ = ["AuthRefused", "SessionAuth", "SessionAuthMiddleware", "SessionUser", "principal_of"]

_STATE = "sessionstore.auth"
_LIVE = _http.Guard(live=True)


class SessionUser(BaseUser):
    """``request.user`` of an authenticated request: the ``Principal`` and its user id."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    @property
    def is_authenticated(self) -> bool:
        """Always True."""
        return True

    @property
    def display_name(self) -> str:
        """The user id."""
        return self.principal.user_id

    @property
    def identity(self) -> str:
        """The user id."""
        return self.principal.user_id


class AuthRefused(HTTPException):
    """The HTTP answer to a refused request (an ``HTTPException`` carrying the ``Reply``)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status, detail=reply.description, headers=dict(reply.headers))
        self.reply = reply


def _response(reply: Reply) -> Response:
    return JSONResponse(reply.body(), status_code=reply.status, headers=dict(reply.headers))


async def _answer(conn: HTTPConnection, reply: Reply, close_code: int) -> Response:
    """``reply`` as a response; on a WebSocket, close it with ``close_code`` first."""
    if isinstance(conn, WebSocket):
        await conn.close(close_code, reply.description)
    return _response(reply)  # ignored by Starlette on a WebSocket


class SessionAuth(_asgi.AsgiAuth[HTTPConnection, Response]):
    """Authentication of Starlette/FastAPI requests against an ``AsyncSessionStore``.

    ``csrf_secret`` (>= 32 bytes) must be the same in every process serving the same
    cookies; without one, a random per-process secret is used.
    """

    state_key = _STATE

    @property
    def exception_handlers(self) -> dict[Any, Any]:
        """Handlers for ``FastAPI(exception_handlers=...)`` / ``Starlette(...)``.

        ``AuthRefused`` becomes the integration's JSON body (and challenge), a
        ``StoreUnavailable`` 503 with ``Retry-After``; on a WebSocket they close it (1008,
        1013).
        """

        async def refused(conn: HTTPConnection, exc: Exception) -> Response:
            assert isinstance(exc, AuthRefused)
            return await _answer(conn, exc.reply, WS_1008_POLICY_VIOLATION)

        async def unavailable(conn: HTTPConnection, exc: Exception) -> Response:
            assert isinstance(exc, StoreUnavailable)
            return await _answer(conn, self.http.refusal(exc), WS_1013_TRY_AGAIN_LATER)

        return {AuthRefused: refused, StoreUnavailable: unavailable}

    def refused(self, reply: Reply) -> Exception:
        """``AuthRefused`` carrying ``reply``."""
        return AuthRefused(reply)

    async def require_principal(self, request: Request) -> Principal:
        """FastAPI dependency: the principal, or 401/503 (``AuthRefused``)."""
        return await self._require(request)

    async def require_live(self, request: Request) -> Principal:
        """FastAPI dependency: a principal checked against the store (not degraded), or 401/503."""
        return await self._require(request, need=_LIVE)

    async def require_fresh(self, request: Request) -> Principal:
        """Deprecated alias of ``require_live`` (it never meant "recently authenticated")."""
        _http.deprecated("SessionAuth.require_fresh", "require_live")
        return await self._require(request, need=_LIVE)

    def require(
        self, *, max_age: int | None = None, level: int | None = None, live: bool = False
    ) -> Callable[[Request], Awaitable[Principal]]:
        """A FastAPI dependency: a principal that proved who they are at most ``max_age``
        seconds ago and/or at ``level`` or above (``live``: not degraded either), else 401
        with the RFC 9470 challenge (``error="insufficient_user_authentication"``,
        ``max_age``, ``acr_values``): ``Depends(auth.require(max_age=300))``."""
        need = _http.Guard(live=live, max_age=max_age, level=level)

        async def dependency(request: Request) -> Principal:
            return await self._require(request, need=need)

        return dependency

    def jwks_route(self, path: str = DEFAULT_PATH, *, max_age: int = DEFAULT_MAX_AGE) -> Route:
        """The route serving the keyring's public JWK Set (GET/HEAD), for ``routes=[...]``
        (FastAPI: ``app.router.routes.append(auth.jwks_route())``); see ``_jwks``."""
        jwks = JwksRoute(lambda: self.store.keyring, path=path, max_age=max_age)

        async def endpoint(request: Request) -> Response:
            answer = jwks.reply(request.headers.get("if-none-match"))
            return Response(answer.body, status_code=answer.status, headers=dict(answer.headers))

        return Route(path, endpoint, methods=["GET"], name="sessionstore_jwks")


class SessionAuthMiddleware:
    """ASGI middleware: authenticates every request once and enforces CSRF on cookie auth."""

    def __init__(self, app: ASGIApp, auth: SessionAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        state = await self.auth.authenticate(conn)
        scope[_STATE] = state
        handoff = _adoption.handoff(self.auth.http, state)
        if handoff is not None and scope["type"] == "http":
            send = _handing(
                send, handoff
            )  # an adopted legacy token: its new pair, whatever answers
        if state.principal is not None:
            live = ["authenticated", "live", "fresh"]  # "fresh": the deprecated name of "live"
            scopes = ["authenticated"] if state.principal.degraded else live
            scope["auth"], scope["user"] = AuthCredentials(scopes), SessionUser(state.principal)
        else:
            scope["auth"], scope["user"] = AuthCredentials(), UnauthenticatedUser()
        http = self.auth.http
        if scope["type"] == "websocket":
            if http.origin_required(state) and not http.origins.allows(
                conn.headers.get("origin"),
                conn.headers.get("host"),
                secure=scope.get("scheme") == "wss",
            ):
                reply = http.origin_refused()
                await WebSocketClose(WS_1008_POLICY_VIOLATION, reply.description)(
                    scope, receive, send
                )
                return
            await self.auth.serve(self.app, scope, receive, send, state.principal)
            return
        if http.csrf_required(scope["method"], state):
            submitted, receive = await _asgi.submitted_csrf(
                http, conn.headers.get(http.csrf_header), conn.headers.get("content-type"), receive
            )
            if not http.csrf_valid(state, submitted, conn.cookies.get(http.cookies.csrf)):
                await _response(http.csrf_failed())(scope, receive, send)
                return
        await self._serve(scope, receive, send, state.principal)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, principal: Principal | None
    ) -> None:
        """Run the app; a ``StoreUnavailable`` it lets escape is 503, not the server's 500."""
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.auth.serve(self.app, scope, receive, tracked, principal)
        except StoreUnavailable as err:
            if started:
                raise
            await _response(self.auth.http.refusal(err))(scope, receive, send)


def _handing(send: Send, handoff: _adoption.Handoff) -> Send:
    """``send``, adding the handoff's cookies and headers to the response's start."""
    carrier = Response()
    set_cookies(carrier, handoff.cookies)
    extra = [(k, v) for k, v in carrier.raw_headers if k == b"set-cookie"]
    extra += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in handoff.headers]

    async def handed(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return handed


def principal_of(request: HTTPConnection) -> Principal | None:
    """The principal the middleware attached to ``request`` (None when anonymous)."""
    user: Any = request.scope.get("user")
    return user.principal if isinstance(user, SessionUser) else None
