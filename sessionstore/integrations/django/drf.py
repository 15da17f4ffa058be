"""Django REST framework: the authentication and permission classes.

::

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "sessionstore.integrations.django.drf.SessionStoreAuthentication",
        ],
        "DEFAULT_PERMISSION_CLASSES": ["sessionstore.integrations.django.drf.HasPrincipal"],
    }

``SessionStoreAuthentication`` gives ``request.user`` (the ``USER_LOADER``'s user) and
``request.auth`` (the ``Principal``), and answers like the other integrations: 401 with the
RFC 6750 challenge (its ``authenticate_header``) and the one JSON body ``{"error",
"error_description", "reason"}``, 503 with ``Retry-After`` when the store is unreachable.
A cookie-authenticated request passes Django's CSRF check, as with DRF's
``SessionAuthentication``. ``NotDegraded`` refuses a principal validated from its token
alone while Redis is unreachable (503); ``require(max_age=300, level=2)`` makes a
permission class asking for a recent and/or strong enough sign-in (``step_up``): 401 with
the RFC 9470 challenge otherwise. The views are in ``drf_views`` (DRF's rule: an
authentication class's module must not import ``rest_framework.views``).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from sessionstore.integrations._http import AuthState, Guard, Refused, Reply, guard
from sessionstore.integrations.django import conf
from sessionstore.integrations.django.requests import authenticate, state_of, user_for
from sessionstore.models import Principal

__all__ = [
    "HasPrincipal",
    "NotDegraded",
    "SessionStoreAuthentication",
    "refused",
    "require",
]

_REPLY = "sessionstore_reply"


class _Challenged(exceptions.AuthenticationFailed):
    """A refusal with an RFC 6750 challenge (DRF adds it through ``authenticate_header``)."""


def refused(request: Request | HttpRequest, reply: Reply) -> exceptions.APIException:
    """The DRF exception answering ``reply``: its status, headers and JSON body."""
    challenged = any(name == "WWW-Authenticate" for name, _ in reply.headers)
    exc = _Challenged(reply.body()) if challenged else exceptions.APIException(reply.body())
    exc.status_code = reply.status
    if any(name == "Retry-After" for name, _ in reply.headers):
        exc.wait = 1  # type: ignore[attr-defined]
    django_request = request._request if isinstance(request, Request) else request
    setattr(django_request, _REPLY, reply)
    return exc


def _state(request: Request) -> AuthState:
    return state_of(request._request) or authenticate(request._request)


class SessionStoreAuthentication(BaseAuthentication):
    """The request's access token (Bearer header, else cookie) checked against the store."""

    def authenticate(self, request: Request) -> tuple[Any, Principal] | None:
        state = _state(request)
        if state.refusal is not None:
            raise refused(request, state.refusal)
        if state.principal is None:
            return None
        if state.from_cookie:
            try:
                SessionAuthentication().enforce_csrf(request)
            except exceptions.PermissionDenied:
                raise refused(request, conf.get_http().csrf_failed()) from None
        return user_for(state.principal), state.principal

    def authenticate_header(self, request: Request) -> str:
        """The challenge of the refusal being answered (a bare one when none)."""
        reply = getattr(request._request, _REPLY, None)
        if isinstance(reply, Reply):
            for name, value in reply.headers:
                if name == "WWW-Authenticate":
                    return value
        return dict(conf.get_http().missing().headers)["WWW-Authenticate"]


class HasPrincipal(BasePermission):
    """Requests authenticated by ``SessionStoreAuthentication`` only (401 otherwise).

    Subclasses may ask for more: ``live = True`` (not degraded: 503), ``max_age`` and/or
    ``level`` (a recent and/or strong enough sign-in: 401 with the RFC 9470 challenge);
    ``require(...)`` builds one. ``fresh = True`` is the deprecated spelling of ``live``.
    """

    live: bool = False
    max_age: int | None = None
    level: int | None = None
    fresh: bool | None = None  # deprecated: live
    _need = Guard()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Checked once, when the class is made: a bad max_age fails at import, not per request.
        cls._need = guard(
            live=cls.live, fresh=cls.fresh, max_age=cls.max_age, level=cls.level, stacklevel=4
        )

    def has_permission(self, request: Request, view: Any) -> bool:
        try:
            conf.get_http().require(_state(request), self._need)
        except Refused as refusal:
            raise refused(request, refusal.reply) from None
        return True


class NotDegraded(HasPrincipal):
    """As ``HasPrincipal``, and 503 for a principal validated while Redis is unreachable."""

    live = True


def require(
    *, max_age: int | None = None, level: int | None = None, live: bool = False
) -> type[HasPrincipal]:
    """A permission class: a principal that proved who they are at most ``max_age`` seconds
    ago and/or at ``level`` or above (``live``: not degraded either), else 401 with the
    RFC 9470 challenge: ``permission_classes = [require(max_age=300)]``."""
    attrs = {"live": live, "max_age": max_age, "level": level, "__module__": __name__}
    return type("RecentAuthentication", (HasPrincipal,), attrs)
