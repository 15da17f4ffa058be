"""Django middleware (WSGI and ASGI) and view decorators of the Django integration.

``SessionStoreMiddleware`` validates the request's access token once (the Bearer header,
else the access cookie) with the sync store under WSGI and the async store under ASGI, and
sets ``request.principal`` (None when anonymous) and, for a valid token, ``request.user``
(the ``USER_LOADER``'s user, lazily; ``request.auser`` too). It refuses nothing by itself:
``principal_required`` / ``principal_required(live=True)`` do, with 401 and the RFC 6750
challenge (503 when the store is unreachable, or for a degraded principal on a live
route; ``fresh=True`` is the deprecated spelling of ``live=True``);
``principal_required(max_age=300, level=2)`` asks for a recent and/or strong enough
sign-in (``step_up``): 401 with the RFC 9470 challenge otherwise. A ``StoreUnavailable``
escaping a view is 503 with ``Retry-After``.

CSRF: when the token rides in the cookie, Django's own ``CsrfViewMiddleware`` protects
unsafe requests, exactly as it does for Django's session cookie (the ``csrftoken`` cookie
and ``X-CSRFToken`` header your templates and scripts already use); the middleware
refuses to start without it. DRF's views are CSRF-exempt: there the DRF authentication
class runs the same check for cookie-authenticated requests, as DRF's
``SessionAuthentication`` does. A request with a valid Bearer token is not checked (the
middleware exempts it, as the test client does): it carries no ambient credential.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase
from django.utils.functional import SimpleLazyObject

from sessionstore.errors import StoreUnavailable
from sessionstore.integrations import _adoption
from sessionstore.integrations._http import AuthState, Guard, Refused, guard, set_cookies
from sessionstore.integrations.django import conf
from sessionstore.integrations.django.requests import (
    aauthenticate,
    authenticate,
    reply_response,
    state_of,
    user_for,
)
from sessionstore.integrations.django.sessions import SessionStore as DjangoSessionStore

__all__ = ["SessionMiddleware", "SessionStoreMiddleware", "principal_required"]

_CSRF = "django.middleware.csrf.CsrfViewMiddleware"
Handler = Callable[[HttpRequest], Any]
V = TypeVar("V", bound=Callable[..., Any])


def _attach(request: HttpRequest, state: AuthState) -> None:
    principal = state.principal
    if principal is not None and not state.from_cookie:
        # A valid Bearer token is no ambient credential: a foreign page cannot make a
        # browser send it (CORS preflight), so Django's CSRF check has nothing to protect.
        request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
    if principal is not None:
        request.user = SimpleLazyObject(lambda: user_for(principal))  # type: ignore[assignment]
        request.auser = functools.partial(sync_to_async(user_for), principal)


def _handed(response: Any, state: AuthState) -> Any:
    """``response``, carrying the new pair of a legacy token this request adopted (Django's
    own CSRF cookie stands: ours is left out, as at a token login)."""
    handoff = _adoption.handoff(conf.get_http(), state)
    if handoff is not None:
        csrf = conf.get_http().cookies.csrf
        set_cookies(response, [c for c in handoff.cookies if c.name != csrf])
        for name, value in handoff.headers:
            response[name] = value
    return response


class SessionStoreMiddleware:
    """Authenticates every request once (see the module); sync and async capable."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Handler) -> None:
        if _CSRF not in settings.MIDDLEWARE:
            raise ImproperlyConfigured(
                f"SessionStoreMiddleware needs {_CSRF}: cookie-authenticated requests rely on it"
            )
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        state = authenticate(request)
        _attach(request, state)
        return _handed(self.get_response(request), state)

    async def __acall__(self, request: HttpRequest) -> Any:
        """The ASGI path: the async store, no thread hop."""
        state = await aauthenticate(request)
        _attach(request, state)
        return _handed(await self.get_response(request), state)

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponseBase | None:
        """A ``StoreUnavailable`` a view let escape is 503 with ``Retry-After``, not 500."""
        if isinstance(exception, StoreUnavailable):
            return reply_response(conf.get_http().refusal(exception))
        return None


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's ``SessionMiddleware``, telling the session engine the client's device."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        if isinstance(request.session, DjangoSessionStore):
            request.session.bind(request)


def _refusal(request: HttpRequest, state: AuthState | None, need: Guard) -> Any:
    """The answer refusing ``request``, or None when it may go on."""
    try:
        conf.get_http().require(state, need)
    except Refused as refused:
        return reply_response(refused.reply)
    return None


@overload
def principal_required(view: V) -> V: ...


@overload
def principal_required(
    *,
    live: bool = ...,
    fresh: bool | None = ...,
    max_age: int | None = ...,
    level: int | None = ...,
) -> Callable[[V], V]: ...


def principal_required(
    view: V | None = None,
    *,
    live: bool = False,
    fresh: bool | None = None,
    max_age: int | None = None,
    level: int | None = None,
) -> Any:
    """Decorator: the view runs for an authenticated request only (``live``: not degraded;
    ``max_age``/``level``: a recent and/or strong enough sign-in, else 401 with the RFC 9470
    challenge; ``fresh``: the deprecated name of ``live``).

    Works on sync and async views, with or without the middleware.
    """
    need = guard(live=live, fresh=fresh, max_age=max_age, level=level)

    def decorate(func: V) -> V:
        if iscoroutinefunction(func):

            async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                state = state_of(request) or await aauthenticate(request)
                refusal = _refusal(request, state, need)
                if refusal is not None:
                    return refusal
                return await func(request, *args, **kwargs)

            return functools.wraps(func)(async_view)  # type: ignore[return-value]

        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            refusal = _refusal(request, state_of(request) or authenticate(request), need)
            return refusal if refusal is not None else func(request, *args, **kwargs)

        return functools.wraps(func)(sync_view)  # type: ignore[return-value]

    return decorate(view) if view is not None else decorate
