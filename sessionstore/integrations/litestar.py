"""Litestar integration (extra ``[litestar]``): middleware, guards, cookies.

::

    auth = SessionAuth(store)                       # an AsyncSessionStore
    app = Litestar([me], on_app_init=[auth.on_app_init])

    @get("/me", guards=[auth.require_principal])
    async def me(request: Request[Principal, AuthState, Any]) -> dict[str, str]: ...

``auth.on_app_init`` adds the authentication middleware (a Litestar
``AbstractAuthenticationMiddleware``: ``exclude`` paths and the ``exclude_from_auth`` route
option work as usual) and the exception handlers, like Litestar's own ``JWTAuth``. The
middleware validates the request's token once (Bearer header first, else the access cookie)
with the client's IP and User-Agent, and sets ``request.user`` (the ``Principal``, or None)
and ``request.auth`` (the ``AuthState``). It never refuses a request by itself, except one:
an unsafe request (POST, PUT, PATCH, DELETE) authenticated by the cookie must carry the CSRF
token in the ``X-CSRF-Token`` header or a ``csrf_token`` form field, or it gets 403.

The guards decide: ``auth.require_principal`` answers 401 with ``WWW-Authenticate: Bearer
error="invalid_token"`` and an ``error_description`` telling expired, revoked and invalid
apart (503 when the store is unreachable and the fallback denies); ``auth.require_live``
also refuses a degraded principal (503; ``require_fresh`` is its deprecated alias);
``auth.require(max_age=300, level=2)`` asks for a recent and/or strong enough sign-in
(``step_up``): 401 with the RFC 9470 challenge otherwise. All work without the middleware.
Refusals have the one JSON body of every integration, ``{"error", "error_description",
"reason"}``; a ``StoreUnavailable`` escaping a handler (a login while Redis is down) is 503
with ``Retry-After``. A cookie-authenticated WebSocket handshake must come from the origin
of its ``Host`` (or one of ``allowed_origins``), or it is closed with code 1008. As in
the Starlette integration, an authenticated WebSocket or streamed response served through
the middleware ends when its session ends (4401 when revoked or expired, 1013 when Redis
has been unreachable too long; ``close_live=False`` turns it off).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Response, get
from litestar.config.app import AppConfig
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, WebSocketException
from litestar.handlers.base import BaseRouteHandler
from litestar.handlers.http_handlers import HTTPRouteHandler
from litestar.middleware import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
    DefineMiddleware,
)
from litestar.types import ASGIApp, Receive, Scope, Send

from sessionstore.aio import AsyncSessionStore
from sessionstore.errors import StoreUnavailable
from sessionstore.integrations import _adoption, _asgi, _http
from sessionstore.integrations._http import AuthState, Reply
from sessionstore.integrations._jwks import CONTENT_TYPE, DEFAULT_MAX_AGE, DEFAULT_PATH, JwksRoute
from sessionstore.models import Principal

__all__ = ["AuthRefused", "SessionAuth", "SessionAuthMiddleware", "principal_of"]

_LIVE = _http.Guard(live=True)
_WS_POLICY_VIOLATION = 1008  # RFC 6455: the code Starlette's integration closes with too
Connection = ASGIConnection[Any, Any, Any, Any]


class AuthRefused(HTTPException):
    """The HTTP answer to a refused request (an ``HTTPException`` carrying the ``Reply``)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(
            detail=reply.description, status_code=reply.status, headers=dict(reply.headers)
        )
        self.reply = reply


def _response(reply: Reply) -> Response[dict[str, str]]:
    return Response(reply.body(), status_code=reply.status, headers=dict(reply.headers))


class SessionAuth(_asgi.AsgiAuth[Connection, Response[Any]]):
    """Authentication of Litestar requests against an ``AsyncSessionStore``.

    ``csrf_secret`` (>= 32 bytes) must be the same in every process serving the same
    cookies; without one, a random per-process secret is used. The other options are the
    Starlette integration's: ``cookies``, ``realm``, ``allowed_origins``. ``exclude`` (path
    patterns) is passed to the middleware: those routes are not authenticated by it (their
    guards still authenticate on their own).
    """

    state_key = "auth"  # request.auth

    def __init__(
        self, store: AsyncSessionStore, *, exclude: str | list[str] | None = None, **options: Any
    ) -> None:
        # options: cookies, realm, csrf_secret, allowed_origins (as in the Starlette one).
        super().__init__(store, **options)
        self.exclude = exclude

    @property
    def middleware(self) -> DefineMiddleware:
        """The middleware, for ``Litestar(middleware=[auth.middleware])``."""
        return DefineMiddleware(SessionAuthMiddleware, auth=self, exclude=self.exclude)

    @property
    def exception_handlers(self) -> dict[Any, Any]:
        """Handlers for ``Litestar(exception_handlers=...)``: ``AuthRefused`` as the
        integration's JSON body (and challenge), ``StoreUnavailable`` as 503."""

        def refused(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
            assert isinstance(exc, AuthRefused)
            return _response(exc.reply)

        def unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
            assert isinstance(exc, StoreUnavailable)
            return _response(self.http.refusal(exc))

        return {AuthRefused: refused, StoreUnavailable: unavailable}

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """``Litestar(on_app_init=[auth.on_app_init])``: add the middleware (outermost of the
        app's) and the exception handlers (the app's own, if any, win)."""
        app_config.middleware.insert(0, self.middleware)
        app_config.exception_handlers = {**self.exception_handlers, **app_config.exception_handlers}
        return app_config

    def refused(self, reply: Reply) -> Exception:
        """``AuthRefused`` carrying ``reply``."""
        return AuthRefused(reply)

    def keep(self, conn: Connection, state: AuthState) -> None:
        """``request.user`` (the principal) and ``request.auth`` (the ``AuthState``)."""
        conn.scope["user"], conn.scope["auth"] = state.principal, state

    async def require_principal(self, conn: Connection, _: BaseRouteHandler | None = None) -> None:
        """Guard: an authenticated request, or 401/503 (``AuthRefused``)."""
        await self._require(conn)

    async def require_live(self, conn: Connection, _: BaseRouteHandler | None = None) -> None:
        """Guard: a principal checked against the store (not degraded), or 401/503."""
        await self._require(conn, need=_LIVE)

    async def require_fresh(self, conn: Connection, _: BaseRouteHandler | None = None) -> None:
        """Deprecated alias of ``require_live`` (it never meant "recently authenticated")."""
        _http.deprecated("SessionAuth.require_fresh", "require_live")
        await self._require(conn, need=_LIVE)

    def require(
        self, *, max_age: int | None = None, level: int | None = None, live: bool = False
    ) -> Callable[[Connection, BaseRouteHandler | None], Awaitable[None]]:
        """A guard: a principal that proved who they are at most ``max_age`` seconds ago
        and/or at ``level`` or above (``live``: not degraded either), else 401 with the
        RFC 9470 challenge: ``guards=[auth.require(max_age=300)]``."""
        need = _http.Guard(live=live, max_age=max_age, level=level)

        async def guard(conn: Connection, _: BaseRouteHandler | None = None) -> None:
            await self._require(conn, need=need)

        return guard

    def jwks_route(
        self, path: str = DEFAULT_PATH, *, max_age: int = DEFAULT_MAX_AGE
    ) -> HTTPRouteHandler:
        """The handler serving the keyring's public JWK Set (GET/HEAD), for
        ``Litestar(route_handlers=[...])``; the middleware skips it. See ``_jwks``."""
        jwks = JwksRoute(lambda: self.store.keyring, path=path, max_age=max_age)

        @get(path, name="sessionstore_jwks", sync_to_thread=False, exclude_from_auth=True)
        def handler(request: Request[Any, Any, Any]) -> Response[bytes]:
            answer = jwks.reply(request.headers.get("if-none-match"))
            headers = dict(answer.headers)
            media_type = headers.pop("Content-Type", CONTENT_TYPE)
            return Response(
                answer.body, status_code=answer.status, headers=headers, media_type=media_type
            )

        return handler

    def clear_cookies(self, response: Response[Any]) -> None:
        """Delete the three cookies on ``response`` (the session stays live: see ``sign_out``)."""
        # Litestar's delete_cookie takes no flags: send the Max-Age=0 cookies with them.
        _http.set_cookies(response, self.http.logout_cookies())


class SessionAuthMiddleware(AbstractAuthenticationMiddleware):
    """Authenticates every request once; enforces CSRF (cookie auth) and the WebSocket Origin.

    Takes Litestar's ``exclude``, ``exclude_from_auth_key``, ``exclude_http_methods`` and
    ``scopes`` options; an excluded request reaches the app untouched.
    """

    def __init__(self, app: ASGIApp, auth: SessionAuth, **options: Any) -> None:
        # The base class authenticates, then calls ``self.app``: our checks run there.
        super().__init__(self._checked, **options)
        self.inner = app
        self.auth = auth

    async def authenticate_request(self, connection: Connection) -> AuthenticationResult:
        """The request's ``AuthState`` (``request.auth``) and principal (``request.user``)."""
        state = await self.auth.authenticate(connection)
        return AuthenticationResult(user=state.principal, auth=state)

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("auth")
        if not isinstance(state, AuthState):  # excluded from authentication
            await self.inner(scope, receive, send)
            return
        http = self.auth.http
        conn: Connection = ASGIConnection(scope)
        handoff = _adoption.handoff(http, state)
        if handoff is not None and scope["type"] == ScopeType.HTTP:
            send = _handing(send, handoff)  # an adopted legacy token: its new pair
        if scope["type"] == ScopeType.WEBSOCKET:
            if http.origin_required(state) and not http.origins.allows(
                conn.headers.get("origin"),
                conn.headers.get("host"),
                secure=scope.get("scheme") == "wss",
            ):
                reply = http.origin_refused()
                raise WebSocketException(detail=reply.description, code=_WS_POLICY_VIOLATION)
        elif scope["type"] == ScopeType.HTTP and http.csrf_required(scope["method"], state):
            submitted, receive = await _asgi.submitted_csrf(
                http,
                conn.headers.get(http.csrf_header),
                conn.headers.get("content-type"),
                receive,
            )
            if not http.csrf_valid(state, submitted, conn.cookies.get(http.cookies.csrf)):
                raise AuthRefused(http.csrf_failed())
        await self.auth.serve(self.inner, scope, receive, send, state.principal)


def _handing(send: Send, handoff: _adoption.Handoff) -> Send:
    """``send``, adding the handoff's cookies and headers to the response's start."""
    carrier: Response[None] = Response(None)
    _http.set_cookies(carrier, handoff.cookies)
    extra = [(b"set-cookie", c.to_header(header="").encode("latin-1")) for c in carrier.cookies]
    extra += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in handoff.headers]

    async def handed(message: Any) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return handed


def principal_of(conn: Connection) -> Principal | None:
    """The principal the middleware (or a guard) attached to ``conn`` (None when anonymous)."""
    user = conn.scope.get("user")
    return user if isinstance(user, Principal) else None
