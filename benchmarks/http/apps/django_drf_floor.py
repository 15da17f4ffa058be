"""Django REST framework: the floor, an authentication class that checks nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.http.common import user_id
from benchmarks.http.django_site import configure

KIND = "wsgi"


def _view() -> Callable[..., Any]:
    from rest_framework.authentication import BaseAuthentication
    from rest_framework.decorators import api_view, authentication_classes, permission_classes
    from rest_framework.request import Request
    from rest_framework.response import Response

    class Anyone(BaseAuthentication):
        """Every request is user 0's."""

        def authenticate(self, request: Request) -> tuple[str, None]:
            return user_id(0), None

    @api_view(["GET"])
    @authentication_classes([Anyone])
    @permission_classes([])
    def me(request: Request) -> Response:
        return Response({"user": request.user})

    return me


APP: Any = configure(
    _view,
    apps=["rest_framework"],
    REST_FRAMEWORK={"DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]},
)


def prepare(redis_url: str, secret: str, n: int) -> list[str]:
    """``n`` opaque strings (nothing checks them)."""
    return [f"floor{i}" for i in range(n)]
