"""Settings of the test project; ``SESSIONSTORE`` is set per test (``override_settings``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

SECRET_KEY = "django-site-for-tests-only-0123456789abcdef0123456789"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "sessionstore.integrations.django",
]
MIDDLEWARE = [
    "sessionstore.integrations.django.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "sessionstore.integrations.django.middleware.SessionStoreMiddleware",
]
ROOT_URLCONF = "django_site.urls"
# A file, not ":memory:": sync views under the async client run on another thread.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(Path(tempfile.mkdtemp(prefix="sessionstore-django-")) / "db.sqlite3"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
SESSION_ENGINE = "sessionstore.integrations.django.sessions"
SESSIONSTORE: dict[str, object] = {}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "sessionstore.integrations.django.drf.SessionStoreAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["sessionstore.integrations.django.drf.HasPrincipal"],
    "UNAUTHENTICATED_USER": None,
}
LOGGING_CONFIG = None
