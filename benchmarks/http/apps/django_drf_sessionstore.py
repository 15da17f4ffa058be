"""Django REST framework: sessionstore's ``SessionStoreAuthentication`` and ``HasPrincipal``,
configured from ``settings.SESSIONSTORE`` as the README says (no ``USER_LOADER``: no user
is loaded, as in every other sessionstore row)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.http.common import CONFIG, env, jwks
from benchmarks.http.common import login_tokens as prepare
from benchmarks.http.django_site import configure
from sessionstore import Principal

__all__ = ["APP", "KIND", "prepare"]

KIND = "wsgi"


def _view() -> Callable[..., Any]:
    from rest_framework.decorators import api_view
    from rest_framework.request import Request
    from rest_framework.response import Response

    @api_view(["GET"])
    def me(request: Request) -> Response:
        principal = request.auth
        assert isinstance(principal, Principal)  # SessionStoreAuthentication's request.auth
        return Response({"user": principal.user_id})

    return me


def _app() -> Any:
    url, secret = env()
    return configure(
        _view,
        apps=["rest_framework"],
        SESSIONSTORE={
            "URL": url,
            "JWKS": jwks(secret),
            "CONFIG": {"access_ttl": CONFIG.access_ttl},
        },
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": [
                "sessionstore.integrations.django.drf.SessionStoreAuthentication"
            ],
            "DEFAULT_PERMISSION_CLASSES": ["sessionstore.integrations.django.drf.HasPrincipal"],
            "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        },
    )


APP = _app()
