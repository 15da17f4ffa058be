"""Django REST framework: authentication, permissions and the login/refresh/logout views.

::

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "sessionstore.integrations.django.drf.SessionStoreAuthentication",
        ],
        "DEFAULT_PERMISSION_CLASSES": ["sessionstore.integrations.django.drf.HasPrincipal"],
    }
    urlpatterns = [
        path("auth/login", LoginView.as_view()),      # username + password -> tokens
        path("auth/refresh", RefreshView.as_view()),  # refresh_token (or cookie) -> tokens
        path("auth/logout", LogoutView.as_view()),    # revoke the session, clear cookies
    ]

``SessionStoreAuthentication`` gives ``request.user`` (the ``USER_LOADER``'s user) and
``request.auth`` (the ``Principal``), and answers like the other integrations: 401 with the
RFC 6750 challenge (its ``authenticate_header``) and the one JSON body ``{"error",
"error_description", "reason"}``, 503 with ``Retry-After`` when the store is unreachable.
A cookie-authenticated request passes Django's CSRF check, as with DRF's
``SessionAuthentication``. ``NotDegraded`` refuses a principal validated from its token
alone while Redis is unreachable (503). ``as_view(use_cookies=True)`` makes the login and
refresh views set the cookies instead of returning the tokens in the body.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate as check_password
from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sessionstore.errors import StoreUnavailable
from sessionstore.integrations._http import AuthState, Refused, Reply
from sessionstore.integrations.django import conf
from sessionstore.integrations.django.requests import authenticate, state_of, user_for
from sessionstore.integrations.django.tokens import (
    issue_tokens,
    refresh_tokens,
    set_login_cookies,
    sign_out,
)
from sessionstore.models import Principal, TokenPair

__all__ = [
    "HasPrincipal",
    "LoginView",
    "LogoutView",
    "NotDegraded",
    "RefreshView",
    "SessionStoreAuthentication",
    "refused",
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
    """Requests authenticated by ``SessionStoreAuthentication`` only (401 otherwise)."""

    fresh = False

    def has_permission(self, request: Request, view: Any) -> bool:
        try:
            conf.get_http().require(_state(request), fresh=self.fresh)
        except Refused as refusal:
            raise refused(request, refusal.reply) from None
        return True


class NotDegraded(HasPrincipal):
    """As ``HasPrincipal``, and 503 for a principal validated while Redis is unreachable."""

    fresh = True


class _TokenView(APIView):
    """Answers a token pair in the body, or (``use_cookies``) as cookies."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    use_cookies = False

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, Refused):
            exc = refused(self.request, exc.reply)
        elif isinstance(exc, StoreUnavailable):
            exc = refused(self.request, conf.get_http().refusal(exc))
        return super().handle_exception(exc)

    def answer(self, request: Request, pair: TokenPair) -> Response:
        body: dict[str, Any] = {
            "token_type": pair.token_type,
            "expires_in": pair.expires_in,
            "session_id": pair.session_id,
        }
        if self.use_cookies:
            response = Response(body)
            set_login_cookies(request._request, response, pair)
            return response
        return Response(body | {"access_token": pair.access_token, "refresh_token": pair.refresh_token})


class LoginView(_TokenView):
    """POST ``username`` and ``password``: a new session's tokens (400 ``invalid_grant``)."""

    def post(self, request: Request) -> Response:
        data: Any = request.data
        user = check_password(
            request._request, username=data.get("username"), password=data.get("password")
        )
        if user is None:
            body = {"error": "invalid_grant", "error_description": "Wrong username or password"}
            return Response(body, status=400)
        return self.answer(request, issue_tokens(request._request, user))


class RefreshView(_TokenView):
    """POST ``refresh_token`` (or send the refresh cookie): the rotated pair."""

    def post(self, request: Request) -> Response:
        data: Any = request.data
        token = data.get("refresh_token") if hasattr(data, "get") else None
        return self.answer(request, refresh_tokens(request._request, token or None))


class LogoutView(_TokenView):
    """POST: revoke the request's session and clear the cookies; ``{"revoked": bool}``."""

    authentication_classes = [SessionStoreAuthentication]

    def post(self, request: Request) -> Response:
        response = Response()
        response.data = {"revoked": sign_out(request._request, response)}
        return response
