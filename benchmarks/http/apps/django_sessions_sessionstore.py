"""Django sessions: sessionstore's engine (``sessionstore.integrations.django.sessions``)
behind its ``SessionMiddleware``, the README's way; ``GET /me`` reads ``request.session``.

The credential is Django's session cookie (``CREDENTIAL``). ``prepare`` logs in the way
``django.contrib.auth.login`` leaves a session (``_auth_user_id`` and the backend in it),
one session per user, without a user table: the view reads the session, loads no user.
"""

from __future__ import annotations

from benchmarks.http.common import LIFETIME, env
from benchmarks.http.django_site import CREDENTIAL_COOKIE as CREDENTIAL
from benchmarks.http.django_site import login_sessions, sessions_site

__all__ = ["APP", "CREDENTIAL", "KIND", "prepare"]

KIND = "wsgi"


APP = sessions_site(
    "sessionstore.integrations.django.middleware.SessionMiddleware",
    "sessionstore.integrations.django.sessions",
    SESSIONSTORE={"URL": env()[0], "CONFIG": {"idle_ttl": LIFETIME, "absolute_ttl": LIFETIME}},
)


def prepare(redis_url: str, secret: str, n: int) -> list[str]:
    """``n`` logged-in sessions, one per user; their session keys."""
    return login_sessions(n)
