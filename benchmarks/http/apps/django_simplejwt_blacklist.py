"""Django REST framework: djangorestframework-simplejwt with its ``token_blacklist`` app,
checked on every request.

simplejwt's blacklist checks only the token classes that carry its ``BlacklistMixin``:
refresh and sliding tokens, never its ``AccessToken``. The way its documentation gives to
check the blacklist per request is sliding tokens: ``AUTH_TOKEN_CLASSES = (SlidingToken,)``,
so each request runs ``BlacklistedToken.objects.filter(token__jti=jti).exists()`` (one
SELECT joining the outstanding and blacklisted tables, here on SQLite) before the token's
signature and claims are checked. Authentication is ``JWTStatelessUserAuthentication``
(the user built from the token, no user SELECT), as in the stateless row. ``prepare``
migrates the database and records every token as outstanding (as ``for_user`` does) and
one other as blacklisted.
"""

from __future__ import annotations

from datetime import timedelta

from benchmarks.http.common import LIFETIME, user_id
from benchmarks.http.django_site import simplejwt_site

KIND = "wsgi"


APP = simplejwt_site(
    apps=["rest_framework_simplejwt.token_blacklist"],
    AUTH_TOKEN_CLASSES=("rest_framework_simplejwt.tokens.SlidingToken",),
    SLIDING_TOKEN_LIFETIME=timedelta(seconds=LIFETIME),
)


def prepare(redis_url: str, secret: str, n: int) -> list[str]:
    """``n`` sliding tokens, one per user, each outstanding; one more blacklisted."""
    from django.core.management import call_command
    from django.utils import timezone
    from rest_framework_simplejwt.token_blacklist.models import (
        BlacklistedToken,
        OutstandingToken,
    )
    from rest_framework_simplejwt.tokens import SlidingToken

    call_command("migrate", verbosity=0, interactive=False)
    tokens = [SlidingToken() for _ in range(n + 1)]
    for i, token in enumerate(tokens):
        token["user_id"] = user_id(i)
    expires = timezone.now() + timedelta(seconds=LIFETIME)
    outstanding = OutstandingToken.objects.bulk_create(
        OutstandingToken(jti=t["jti"], token=str(t), expires_at=expires) for t in tokens
    )
    BlacklistedToken.objects.create(token=outstanding[-1])
    return [str(t) for t in tokens[:n]]
