"""URLs of the integration: ``path("", include("sessionstore.integrations.django.urls"))``.

Serves the public JWK Set at ``.well-known/jwks.json``; ``jwks_path`` routes it elsewhere.
"""

from __future__ import annotations

from django.urls import URLPattern, path

from sessionstore.integrations._jwks import DEFAULT_MAX_AGE, DEFAULT_PATH
from sessionstore.integrations.django.views import jwks_view

__all__ = ["jwks_path", "urlpatterns"]


def jwks_path(route: str = DEFAULT_PATH, *, max_age: int = DEFAULT_MAX_AGE) -> URLPattern:
    """The JWK Set's URL pattern at ``route`` (a path from the site root, e.g. ``/keys``)."""
    view = jwks_view(path=route, max_age=max_age)
    return path(route.removeprefix("/"), view, name="sessionstore-jwks")


urlpatterns = [jwks_path()]
