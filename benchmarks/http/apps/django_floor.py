"""Django: the framework's floor, a plain view that checks nothing (no middleware)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse

from benchmarks.http.common import user_id
from benchmarks.http.django_site import configure

KIND = "wsgi"


def me(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"user": user_id(0)})


APP: Any = configure(lambda: me)


def prepare(redis_url: str, secret: str, n: int) -> list[str]:
    """``n`` opaque strings (nothing checks them)."""
    return [f"floor{i}" for i in range(n)]
