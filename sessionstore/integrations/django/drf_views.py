"""Django REST framework views: token login, refresh and logout.

::

    urlpatterns = [
        path("auth/login", LoginView.as_view()),      # username + password -> tokens
        path("auth/refresh", RefreshView.as_view()),  # refresh_token (or cookie) -> tokens
        path("auth/logout", LogoutView.as_view()),    # revoke the session, clear cookies
    ]

``as_view(use_cookies=True)`` makes the login and refresh views set the cookies instead of
returning the tokens in the body. Failures answer as ``drf.SessionStoreAuthentication``
does (401 with the challenge, 503 with ``Retry-After``); a wrong password is 400
``invalid_grant``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate as check_password
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sessionstore.errors import StoreUnavailable
from sessionstore.integrations._http import Refused
from sessionstore.integrations.django import conf
from sessionstore.integrations.django.drf import SessionStoreAuthentication, refused
from sessionstore.integrations.django.tokens import (
    issue_tokens,
    refresh_tokens,
    set_login_cookies,
    sign_out,
)
from sessionstore.models import TokenPair

__all__ = ["LoginView", "LogoutView", "RefreshView"]


class _TokenView(APIView):
    """Answers a token pair in the body, or (``use_cookies``) as cookies."""

    authentication_classes: tuple[type[SessionStoreAuthentication], ...] = ()
    permission_classes = ()
    use_cookies = False

    def get_authenticate_header(self, request: Request) -> str:
        # Without authentication classes DRF would turn a 401 into a 403.
        return SessionStoreAuthentication().authenticate_header(request)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, Refused):
            exc = refused(self.request, exc.reply)
        elif isinstance(exc, StoreUnavailable):
            exc = refused(self.request, conf.get_http().refusal(exc))
        return super().handle_exception(exc)

    def answer(self, request: Request, pair: TokenPair, *, login: bool = False) -> Response:
        body: dict[str, Any] = {
            "token_type": pair.token_type,
            "expires_in": pair.expires_in,
            "session_id": pair.session_id,
        }
        if self.use_cookies:
            response = Response(body)
            set_login_cookies(request._request, response, pair, login=login)
            return response
        return Response(
            body | {"access_token": pair.access_token, "refresh_token": pair.refresh_token}
        )


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
        return self.answer(request, issue_tokens(request._request, user), login=True)


class RefreshView(_TokenView):
    """POST ``refresh_token`` (or send the refresh cookie): the rotated pair."""

    def post(self, request: Request) -> Response:
        data: Any = request.data
        token = data.get("refresh_token") if hasattr(data, "get") else None
        return self.answer(request, refresh_tokens(request._request, token or None))


class LogoutView(_TokenView):
    """POST: revoke the request's session and clear the cookies; ``{"revoked": bool}``."""

    authentication_classes = (SessionStoreAuthentication,)

    def post(self, request: Request) -> Response:
        response = Response()
        response.data = {"revoked": sign_out(request._request, response)}
        return response
