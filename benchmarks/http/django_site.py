"""What the Django rows share: settings configured in code, a WSGI app, a SQLite file.

Each Django row is a process of its own (gunicorn, or ``prepare``), so each configures
Django once, at import, with :func:`configure`. No row writes to a database per request;
the one that reads one (simplejwt's blacklist) gets a SQLite file named after the run
(:func:`sqlite_path`), so ``prepare`` and the server, two processes, find the same file,
in the run's scratch directory (``BENCH_WORK``, which the runner removes at the end).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, JsonResponse
from django.urls import path

from benchmarks.http.common import LIFETIME, env, user_id

__all__ = [
    "CREDENTIAL_COOKIE",
    "configure",
    "login_sessions",
    "read_session",
    "session_me",
    "sessions_site",
    "simplejwt_site",
    "sqlite_path",
]

# The sessions rows' credential: Django's session cookie (see the apps' CREDENTIAL).
CREDENTIAL_COOKIE = ("Cookie", "sessionid=")
_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]


class _URLs:
    """The URLconf (Django takes any hashable object with ``urlpatterns``)."""

    def __init__(self) -> None:
        self.urlpatterns: list[Any] = []


def sqlite_path(redis_url: str, secret: str) -> Path:
    """The run's SQLite file: one per (Redis URL, secret), so one per run."""
    digest = hashlib.sha256(f"{redis_url}\n{secret}".encode()).hexdigest()[:16]
    work = os.environ.get("BENCH_WORK") or tempfile.gettempdir()
    return Path(work) / f"django-{digest}.sqlite3"


def configure(
    view: Callable[[], Callable[..., Any]],
    *,
    apps: Sequence[str] = (),
    middleware: Sequence[str] = (),
    **extra: Any,
) -> WSGIHandler:
    """Django set up with ``GET /me`` answered by ``view()``; the WSGI application.

    ``view`` makes the view once Django is set up (DRF cannot be imported before).
    """
    redis_url, secret = env()
    urls = _URLs()
    settings.configure(
        DEBUG=False,
        SECRET_KEY=secret,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=urls,
        INSTALLED_APPS=[*_APPS, *apps],
        MIDDLEWARE=list(middleware),
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(sqlite_path(redis_url, secret)),
            }
        },
        USE_TZ=True,
        APPEND_SLASH=False,
        **extra,
    )
    django.setup()
    urls.urlpatterns.append(path("me", view()))
    return WSGIHandler()


def session_me() -> Callable[[HttpRequest], JsonResponse]:
    """The sessions rows' view (see :func:`read_session`)."""
    return read_session


def read_session(request: HttpRequest) -> JsonResponse:
    """The sessions rows' ``GET /me``: the logged-in user of ``request.session``, else 401."""
    user = request.session.get("_auth_user_id")
    if user is None:
        return JsonResponse({"error": "not logged in"}, status=401)
    return JsonResponse({"user": user})


def login_sessions(n: int) -> list[str]:
    """``n`` sessions of the configured ``SESSION_ENGINE``, each left as
    ``django.contrib.auth.login`` leaves one (one user each); their session keys."""
    from django.contrib.sessions.backends.base import SessionBase
    from django.utils.module_loading import import_string

    engine: type[SessionBase] = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
    keys = []
    for i in range(n):
        session = engine()
        session.cycle_key()  # as login() does
        session["_auth_user_id"] = user_id(i)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = "bench"
        session.save()
        assert session.session_key is not None
        keys.append(session.session_key)
    return keys


def _user_pk() -> Callable[..., Any]:
    from rest_framework.decorators import api_view
    from rest_framework.request import Request
    from rest_framework.response import Response

    @api_view(["GET"])
    def me(request: Request) -> Response:
        return Response({"user": str(request.user.pk)})

    return me


def simplejwt_site(*, apps: Sequence[str] = (), **simple_jwt: Any) -> WSGIHandler:
    """The simplejwt rows' site: DRF with ``JWTStatelessUserAuthentication`` (the user built
    from the token, no user SELECT) and ``IsAuthenticated``, ``SIMPLE_JWT`` signed with the
    run's secret plus ``simple_jwt``."""
    _, secret = env()
    return configure(
        _user_pk,
        apps=["rest_framework", "rest_framework_simplejwt", *apps],
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": [
                "rest_framework_simplejwt.authentication.JWTStatelessUserAuthentication"
            ],
            "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
            "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        },
        SIMPLE_JWT={"SIGNING_KEY": secret, **simple_jwt},
    )


def sessions_site(middleware: str, engine: str, **extra: Any) -> WSGIHandler:
    """The sessions rows' site: ``middleware`` and ``SESSION_ENGINE = engine``, sessions
    living as long as a run, ``GET /me`` reading ``request.session``."""
    return configure(
        session_me,
        middleware=[middleware],
        SESSION_ENGINE=engine,
        SESSION_COOKIE_AGE=LIFETIME,
        **extra,
    )
