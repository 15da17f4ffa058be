"""The Django app of the integration: list it in ``INSTALLED_APPS`` for its commands."""

from __future__ import annotations

from django.apps import AppConfig


class SessionStoreConfig(AppConfig):
    """``"sessionstore.integrations.django"`` in ``INSTALLED_APPS``: ``manage.py sessionstore``."""

    name = "sessionstore.integrations.django"
    label = "sessionstore"
    verbose_name = "sessionstore"
