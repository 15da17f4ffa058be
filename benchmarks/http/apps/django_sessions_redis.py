"""Django sessions: ``django.contrib.sessions.backends.cache`` on django-redis
(``django_redis.cache.RedisCache``), Django's documented cache-backed sessions behind
Django's ``SessionMiddleware``; ``GET /me`` reads ``request.session`` (one GET).

The credential is Django's session cookie (``CREDENTIAL``); ``prepare`` logs in as the
sessionstore row does.
"""

from __future__ import annotations

from typing import Any

from benchmarks.http.common import LIFETIME, env
from benchmarks.http.django_site import CREDENTIAL_COOKIE as CREDENTIAL
from benchmarks.http.django_site import configure, login_sessions, session_me

__all__ = ["APP", "CREDENTIAL", "KIND", "prepare"]

KIND = "wsgi"


def _app() -> Any:
    url, _ = env()
    return configure(
        session_me,
        middleware=["django.contrib.sessions.middleware.SessionMiddleware"],
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        SESSION_COOKIE_AGE=LIFETIME,
        CACHES={"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url}},
    )


APP = _app()


def prepare(redis_url: str, secret: str, n: int) -> list[str]:
    """``n`` logged-in sessions, one per user; their session keys."""
    return login_sessions(n)
