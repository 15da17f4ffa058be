"""Views the integration serves itself: the keyring's public JWK Set (``jwks_view``).

``urls`` routes it at ``/.well-known/jwks.json``; ``jwks_view(max_age=...)`` makes one for
another path or cache lifetime. The keyring is ``settings.SESSIONSTORE``'s (``JWKS`` or
``JWKS_ENV``); without one (sessions only, no tokens) the route is a 404.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from sessionstore.integrations._jwks import DEFAULT_MAX_AGE, DEFAULT_PATH, JwksRoute
from sessionstore.integrations.django import conf
from sessionstore.tokens import Keyring

__all__ = ["jwks", "jwks_view"]


def _keyring() -> Keyring:
    keyring = conf.options().keyring
    if keyring is None:
        raise Http404("no keyring is configured")
    return keyring


def jwks_view(
    *, path: str = DEFAULT_PATH, max_age: int = DEFAULT_MAX_AGE
) -> Callable[[HttpRequest], HttpResponse]:
    """A view answering GET/HEAD with the public JWK Set (``path`` only checks the shape)."""
    route = JwksRoute(_keyring, path=path, max_age=max_age)

    @require_safe
    def view(request: HttpRequest) -> HttpResponse:
        answer = route.reply(request.headers.get("If-None-Match"))
        headers = dict(answer.headers)
        content_type = headers.pop("Content-Type", None)
        response = HttpResponse(answer.body, status=answer.status, content_type=content_type)
        for name, value in headers.items():
            response[name] = value
        return response

    return view


jwks = jwks_view()
