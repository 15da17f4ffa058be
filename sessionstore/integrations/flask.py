"""Flask integration (extra ``[flask]``): the same behaviour as the Starlette one, sync.

::

    auth = SessionAuth(app, store=store)            # a SessionStore (or init_app later)

    @app.get("/me")
    @auth.required
    def me():
        return {"user": auth.principal.user_id}

A ``before_request`` hook validates the request's token once (Bearer header first, else
the access cookie) with the client's IP and User-Agent and keeps the outcome on ``flask.g``.
It refuses only one kind of request by itself: an unsafe one (POST, PUT, PATCH, DELETE)
authenticated by the cookie without the CSRF token (``X-CSRF-Token`` header or
``csrf_token`` form field) gets 403. ``@auth.required`` answers 401 with
``WWW-Authenticate: Bearer error="invalid_token"`` and an ``error_description`` telling
expired, revoked and invalid apart (503 when the store is unreachable and the fallback
denies); ``@auth.required(live=True)`` also refuses a degraded principal (503;
``fresh=True`` is its deprecated spelling), and ``@auth.required(max_age=300, level=2)``
asks for a recent and/or strong enough sign-in (``step_up``): 401 with the RFC 9470
challenge (``error="insufficient_user_authentication"``) otherwise.
``init_app`` also registers a handler turning a ``StoreUnavailable`` that escapes a view
(a login while Redis is down) into 503 with ``Retry-After``, unless the app has its own.
Every refusal has the JSON body ``{"error", "error_description", "reason"}``, the same as
the Starlette integration's. ``auth.add_jwks_route(app)`` serves the public JWK Set; with
``Config.legacy_tokens`` an ``after_request`` hook hands a legacy token's new pair back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from flask import Flask, Response, abort, g, jsonify, request

from sessionstore.errors import InvalidInput, InvalidToken, StoreUnavailable
from sessionstore.integrations import _adoption, _http
from sessionstore.integrations._http import AuthState, CookieSettings, HttpAuth, Refused, Reply
from sessionstore.integrations._jwks import DEFAULT_MAX_AGE, DEFAULT_PATH, JwksRoute
from sessionstore.models import Principal, TokenPair
from sessionstore.store import SessionStore

__all__ = ["SessionAuth"]

F = TypeVar("F", bound=Callable[..., Any])
_G_STATE = "sessionstore_auth"


def _response(reply: Reply) -> Response:
    response = jsonify(reply.body())
    response.status_code = reply.status
    for name, value in reply.headers:
        response.headers[name] = value
    return response


class SessionAuth(_http.CookieMethods[Response]):
    """A Flask extension authenticating requests against a ``SessionStore``.

    ``csrf_secret`` (>= 32 bytes) must be the same in every process serving the same
    cookies; without one, a random per-process secret is used.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        store: SessionStore,
        cookies: CookieSettings | None = None,
        realm: str = "api",
        csrf_secret: bytes | None = None,
    ) -> None:
        if not isinstance(store, SessionStore):
            raise InvalidInput("SessionAuth needs a SessionStore")
        self.store = store
        self.http = HttpAuth(store.config, cookies=cookies, realm=realm, csrf_secret=csrf_secret)
        if app is not None:
            self.init_app(app)

    @property
    def cookies(self) -> CookieSettings:
        """The cookie settings."""
        return self.http.cookies

    def init_app(self, app: Flask) -> None:
        """Register the ``before_request`` hook on ``app``."""
        app.extensions["sessionstore"] = self
        app.before_request(self._before_request)
        if self.store.config.legacy_tokens is not None:  # the only use of the hook
            app.after_request(self._after_request)
        if StoreUnavailable not in app.error_handler_spec.get(None, {}).get(None, {}):
            app.register_error_handler(StoreUnavailable, self._unavailable)

    def add_jwks_route(
        self, app: Flask, path: str = DEFAULT_PATH, *, max_age: int = DEFAULT_MAX_AGE
    ) -> None:
        """Serve the keyring's public JWK Set at ``path`` on ``app`` (GET/HEAD); see ``_jwks``."""
        jwks = JwksRoute(lambda: self.store.keyring, path=path, max_age=max_age)

        def view() -> Response:
            answer = jwks.reply(request.headers.get("If-None-Match"))
            return Response(answer.body, status=answer.status, headers=list(answer.headers))

        app.add_url_rule(path, endpoint="sessionstore_jwks", view_func=view, methods=["GET"])

    def _unavailable(self, err: StoreUnavailable) -> Response:
        return _response(self.http.refusal(err))

    def authenticate(self) -> AuthState:
        """Validate the current request's token (if any) with its client IP and User-Agent."""
        try:
            found = self.http.credentials(
                request.headers.get("Authorization"),
                lambda: request.cookies.get(self.cookies.access),
            )
        except Refused as refused:
            return AuthState(refusal=refused.reply)
        if found is None:
            return AuthState()
        ip = user_agent = None
        if self.http.client_facts:
            ip, user_agent = request.remote_addr, request.headers.get("User-Agent")
        try:
            principal = self.store.validate(found.token, ip=ip, user_agent=user_agent)
        except (InvalidToken, InvalidInput, StoreUnavailable) as err:
            return AuthState(refusal=self.http.refusal(err), from_cookie=found.from_cookie)
        return AuthState(principal=principal, from_cookie=found.from_cookie)

    def _before_request(self) -> Response | None:
        state = self.authenticate()
        setattr(g, _G_STATE, state)
        if self.http.csrf_required(request.method, state):
            submitted = request.headers.get(self.http.csrf_header)
            if submitted is None:
                submitted = request.form.get(self.http.csrf_field)
            if not self.http.csrf_valid(state, submitted, request.cookies.get(self.cookies.csrf)):
                return _response(self.http.csrf_failed())
        return None

    def _after_request(self, response: Response) -> Response:
        """An adopted legacy token: its new pair in the response (cookies or headers)."""
        state = g.get(_G_STATE)
        handoff = _adoption.handoff(self.http, state if isinstance(state, AuthState) else None)
        if handoff is not None:
            _http.set_cookies(response, handoff.cookies)
            for name, value in handoff.headers:
                response.headers[name] = value
        return response

    @property
    def state(self) -> AuthState:
        """What authentication made of the current request."""
        state = g.get(_G_STATE)
        if not isinstance(state, AuthState):
            state = self.authenticate()  # the hook did not run (e.g. outside init_app)
            setattr(g, _G_STATE, state)
        return state

    @property
    def principal(self) -> Principal | None:
        """The current request's principal, or None."""
        return self.state.principal

    def require_principal(
        self,
        *,
        live: bool = False,
        fresh: bool | None = None,
        max_age: int | None = None,
        level: int | None = None,
    ) -> Principal:
        """The current principal, or abort with 401/503 (and the RFC 6750 challenge).

        ``live``: not degraded (503); ``max_age``/``level``: proved who they are at most
        that many seconds ago / at that assurance level or above (401 with the RFC 9470
        challenge). ``fresh`` is the deprecated name of ``live``.
        """
        need = _http.guard(live=live, fresh=fresh, max_age=max_age, level=level)
        try:
            return self.http.require(self.state, need)
        except Refused as refused:
            abort(_response(refused.reply))

    @overload
    def required(self, view: F) -> F: ...

    @overload
    def required(
        self,
        *,
        live: bool = ...,
        fresh: bool | None = ...,
        max_age: int | None = ...,
        level: int | None = ...,
    ) -> Callable[[F], F]: ...

    def required(
        self,
        view: F | None = None,
        *,
        live: bool = False,
        fresh: bool | None = None,
        max_age: int | None = None,
        level: int | None = None,
    ) -> Any:
        """Decorator: the view runs only for an authenticated request (``live``: not
        degraded; ``max_age``/``level``: a recent and/or strong enough sign-in, else 401
        with the RFC 9470 challenge; ``fresh``: the deprecated name of ``live``)."""
        need = _http.guard(live=live, fresh=fresh, max_age=max_age, level=level)

        def decorate(func: F) -> F:
            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    self.http.require(self.state, need)
                except Refused as refused:
                    abort(_response(refused.reply))
                return func(*args, **kwargs)

            return wrapper  # type: ignore[return-value]

        return decorate(view) if view is not None else decorate

    def refresh(self, response: Response, token: str | None = None) -> TokenPair:
        """Rotate the refresh cookie (or ``token``) and set the new cookies; 401 on failure."""
        token = token or request.cookies.get(self.cookies.refresh)
        if not token:
            abort(_response(self.http.missing()))
        try:
            pair = self.store.refresh(token)
        except (InvalidToken, InvalidInput, StoreUnavailable) as err:
            abort(_response(self.http.refusal(err)))
        self.set_login_cookies(response, pair)
        return pair

    def rotate(self, response: Response, *, claims: Mapping[str, Any] | None = None) -> TokenPair:
        """Move the current request's session to a new id and set its cookies (on a
        privilege change: a sign-in on an existing session, new roles in ``claims``); the
        old id's tokens and cookies are refused from now on. 401 without a session, 503
        degraded. The request's principal still names the old id: use the returned pair's.
        """
        try:
            found = self.http.session_to_rotate(self.state)
            pair = self.store.rotate(*found, claims=claims)
        except Refused as refused:
            abort(_response(refused.reply))
        except (InvalidToken, StoreUnavailable) as err:
            abort(_response(self.http.refusal(err)))
        self.set_login_cookies(response, pair)
        return pair

    def sign_out(self, response: Response) -> bool:
        """Sign out: revoke the current request's session, then delete the three cookies.

        The session is the request's principal (cookie or Bearer), else that of the refresh
        cookie when the route lies under its path. True when a live session was revoked.
        ``StoreUnavailable`` propagates, cookies untouched (503 by the registered handler):
        a sign-out that cannot reach the store must not look done.
        """
        refresh = request.cookies.get(self.cookies.refresh)
        found = self.http.session_to_end(self.state, refresh, self.store.keyring)
        revoked = self.store.revoke(*found) if found is not None else False
        self.clear_cookies(response)
        return revoked
