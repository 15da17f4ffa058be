"""Django sessions: ``django.contrib.sessions.backends.cache`` on django-redis
(``django_redis.cache.RedisCache``), Django's documented cache-backed sessions behind
Django's ``SessionMiddleware``; ``GET /me`` reads ``request.session`` (one GET).

The credential is Django's session cookie (``CREDENTIAL``); ``prepare`` logs in as the
sessionstore row does.
"""

from __future__ import annotations

from benchmarks.http.common import env
from benchmarks.http.django_site import CREDENTIAL_COOKIE as CREDENTIAL
from benchmarks.http.django_site import login_sessions, sessions_site

__all__ = ["APP", "CREDENTIAL", "KIND", "prepare"]

KIND = "wsgi"


APP = sessions_site(
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.sessions.backends.cache",
    CACHES={"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": env()[0]}},
)


def prepare(redis_url: str, secret: str, n: int) -> list[str]:
    """``n`` logged-in sessions, one per user; their session keys."""
    return login_sessions(n)
