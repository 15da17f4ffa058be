"""Django REST framework: djangorestframework-simplejwt, stateless.

``JWTStatelessUserAuthentication`` (alias ``JWTTokenUserAuthentication``) on its default
``AccessToken``: signature and claims only, the user built from the token (simplejwt's
``JWTAuthentication`` would also SELECT the user from the database on every request; the
sessionstore row loads no user either). Nothing is revocable before it expires.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from benchmarks.http.common import LIFETIME, env, user_id
from benchmarks.http.django_site import configure

KIND = "wsgi"


def _view() -> Callable[..., Any]:
    from rest_framework.decorators import api_view
    from rest_framework.request import Request
    from rest_framework.response import Response

    @api_view(["GET"])
    def me(request: Request) -> Response:
        return Response({"user": str(request.user.pk)})

    return me


def _app() -> Any:
    _, secret = env()
    return configure(
        _view,
        apps=["rest_framework", "rest_framework_simplejwt"],
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": [
                "rest_framework_simplejwt.authentication.JWTStatelessUserAuthentication"
            ],
            "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
            "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        },
        SIMPLE_JWT={"SIGNING_KEY": secret, "ACCESS_TOKEN_LIFETIME": timedelta(seconds=LIFETIME)},
    )


APP = _app()


def prepare(redis_url: str, secret: str, n: int) -> list[str]:
    """``n`` access tokens, one per user (no database, no Redis)."""
    from rest_framework_simplejwt.tokens import AccessToken

    tokens = []
    for i in range(n):
        token = AccessToken()
        token["user_id"] = user_id(i)
        tokens.append(str(token))
    return tokens
