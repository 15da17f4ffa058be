"""Fixtures of the Django suites: the test project on a private server, and its user.

``server, url, site, alice = django_fixtures("name")`` at the top of a module: ``site``
points ``settings.SESSIONSTORE`` at the flushed server (with the suite's keyring) for one
test; ``alice`` is a Django user (password ``alice-password``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sessionstore import Keyring
from web_support import server_fixtures

PASSWORD = "alice-password"
# A Django session's lifetimes: Django's default SESSION_COOKIE_AGE (two weeks) fits.
LIFETIMES = {"idle_ttl": 1_209_600, "absolute_ttl": 1_209_600}


def options(url: str, keyring: Keyring, **config: Any) -> dict[str, Any]:
    """A ``SESSIONSTORE`` setting for ``url`` (plain-HTTP cookies: the test client)."""
    return {
        "URL": url,
        "JWKS": keyring.to_private_jwks(),
        "USER_LOADER": "django_site.users.load_user",
        "COOKIES": {"secure": False},
        "CONFIG": LIFETIMES | config,
    }


def django_fixtures(name: str) -> tuple[Any, Any, Any, Any]:
    """The suite's ``server``, ``url``, ``site`` and ``alice`` fixtures."""
    server, url = server_fixtures(name)

    @pytest.fixture
    def site(url: str, keyring: Keyring) -> Iterator[None]:
        from django_site import setup

        setup()
        from django.test import override_settings

        with override_settings(SESSIONSTORE=options(url, keyring)):
            yield

    @pytest.fixture
    def alice(site: None) -> Any:
        from django.contrib.auth.models import User

        User.objects.all().delete()
        return User.objects.create_user("alice", password=PASSWORD)

    return server, url, site, alice
