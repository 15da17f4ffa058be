"""The rows of ``make bench-http`` and what is compared with what.

A row is an app module (see the contract in ``benchmarks/http/__init__.py``). Add a
framework by appending its rows to ``ROWS`` (one ``floor`` row per framework: the route
with a trivial dependency) and its comparisons to ``COMPARISONS``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["COMPARISONS", "ROWS", "Compare", "Row", "app"]

_APPS = "benchmarks.http.apps."


@dataclass(frozen=True)
class Row:
    """One authenticated ``GET /me`` served by one framework."""

    key: str
    name: str
    module: str
    framework: str
    floor: bool = False  # the framework's floor: nothing is checked


@dataclass(frozen=True)
class Compare:
    """``numerator`` over ``denominator`` req/s, in each regime; a target when ``threshold``."""

    numerator: str
    denominator: str
    threshold: float | None = None


def app(key: str, name: str, framework: str, *, floor: bool = False) -> Row:
    """A row whose app is ``benchmarks/http/apps/<key with _ for ->.py``."""
    return Row(key, name, _APPS + key.replace("-", "_"), framework, floor)


ROWS: list[Row] = [
    app("fastapi-sessionstore", "sessionstore dependency", "FastAPI"),
    app("fastapi-users-redis", "fastapi-users, Redis strategy", "FastAPI"),
    app("fastapi-pyjwt", "PyJWT alone (stateless)", "FastAPI"),
    app("fastapi-floor", "trivial dependency (floor)", "FastAPI", floor=True),
    app("flask-sessionstore", "sessionstore extension", "Flask"),
    app("flask-jwt-redis", "flask-jwt-extended + Redis blocklist", "Flask"),
    app("flask-floor", "no check (floor)", "Flask", floor=True),
    app("django-drf-sessionstore", "sessionstore SessionStoreAuthentication", "DRF"),
    app("django-simplejwt", "simplejwt, stateless", "DRF"),
    app("django-simplejwt-blacklist", "simplejwt sliding + blacklist (SQLite)", "DRF"),
    app("django-drf-floor", "trivial authentication (floor)", "DRF", floor=True),
    app("django-sessions-sessionstore", "sessionstore session engine", "Django sessions"),
    app("django-sessions-redis", "cache engine on django-redis", "Django sessions"),
    app("django-floor", "plain view (floor)", "Django sessions", floor=True),
]

# The targets of issue 17: >= 1.8x the per-request-Redis peer, >= 1.0x the stateless one.
COMPARISONS: list[Compare] = [
    Compare("fastapi-sessionstore", "fastapi-users-redis", 1.8),
    Compare("fastapi-sessionstore", "fastapi-pyjwt", 1.0),
    Compare("flask-sessionstore", "flask-jwt-redis", 1.8),
    # simplejwt's per-request check is a SQL query (its blacklist has no Redis form).
    Compare("django-drf-sessionstore", "django-simplejwt-blacklist", 1.8),
    Compare("django-drf-sessionstore", "django-simplejwt", 1.0),
    # Both engines read Redis once per request: context, no issue target.
    Compare("django-sessions-sessionstore", "django-sessions-redis"),
]
