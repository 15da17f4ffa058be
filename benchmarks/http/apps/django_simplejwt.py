"""Django REST framework: djangorestframework-simplejwt, stateless.

``JWTStatelessUserAuthentication`` (alias ``JWTTokenUserAuthentication``) on its default
``AccessToken``: signature and claims only, the user built from the token (simplejwt's
``JWTAuthentication`` would also SELECT the user from the database on every request; the
sessionstore row loads no user either). Nothing is revocable before it expires.
"""

from __future__ import annotations

from datetime import timedelta

from benchmarks.http.common import LIFETIME, user_id
from benchmarks.http.django_site import simplejwt_site

KIND = "wsgi"


APP = simplejwt_site(ACCESS_TOKEN_LIFETIME=timedelta(seconds=LIFETIME))


def prepare(redis_url: str, secret: str, n: int) -> list[str]:
    """``n`` access tokens, one per user (no database, no Redis)."""
    from rest_framework_simplejwt.tokens import AccessToken

    tokens = []
    for i in range(n):
        token = AccessToken()
        token["user_id"] = user_id(i)
        tokens.append(str(token))
    return tokens
