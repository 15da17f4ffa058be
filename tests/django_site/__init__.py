"""A small Django project for the Django integration's tests (settings, URLs, views).

``setup()`` configures Django once per process from ``django_site.settings`` (no
``DJANGO_SETTINGS_MODULE`` left in the environment for other suites' subprocesses) and
creates the tables of ``django.contrib.auth`` in a SQLite file of its own.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_done = False


def setup() -> None:
    """Configure and set up Django, and migrate, once per process."""
    global _done
    with _lock:
        if _done:
            return
        import django
        from django.conf import settings
        from django.core.management import call_command

        from django_site import settings as site

        if not settings.configured:
            settings.configure(**{k: v for k, v in vars(site).items() if k.isupper()})
        django.setup()
        call_command("migrate", run_syncdb=True, verbosity=0)
        # A preforking server may fork next: no SQLite connection crosses into a worker.
        from django.db import connections

        connections.close_all()
        _done = True
