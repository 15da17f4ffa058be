"""End to end: the test project under gunicorn ``--preload`` with two sync (WSGI) workers.

The WSGI module touches the store at import, in gunicorn's master, before the fork: each
worker must make a store of its own on first use (``conf`` keys them by process id), serve
tokens with it, and refuse a token once it is revoked elsewhere.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("django")
pytest.importorskip("rest_framework")
pytest.importorskip("gunicorn")

from sessionstore import Device, Keyring, SessionStore
from sessionstore.testing import free_port
from web_support import gunicorn_master, server_fixtures

server, url = server_fixtures("django-gunicorn")
WORKERS = 2

WSGI = '''
"""The test project as a WSGI app; the store is made at import (in gunicorn's master)."""
import os

import django_site

django_site.setup()

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import JsonResponse
from django.urls import path

from sessionstore.integrations.django import conf

settings.SESSIONSTORE = {"URL_ENV": "FORK_TEST_URL", "JWKS_ENV": "SESSIONSTORE_JWKS"}
# A 500's traceback goes to gunicorn's log (the test shows the log when a request fails).
settings.LOGGING = {
    "version": 1,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
}
from django.utils.log import configure_logging
configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
PRELOADED = conf.get_store()


def me(request):
    principal = request.principal  # set by SessionStoreMiddleware (None: refused)
    own = conf.get_store() is not PRELOADED
    user = None if principal is None else principal.user_id
    return JsonResponse({"pid": os.getpid(), "user": user, "own": own})


urlpatterns = [path("me", me)]
settings.ROOT_URLCONF = __name__
application = get_wsgi_application()
'''


def get(port: int, path: str, token: str) -> tuple[int, Any]:
    """One request on a new connection (any worker may take it): status and JSON body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        raw = response.read()
        # A non-JSON answer (Django's 500 page) comes back as text, for the assertion.
        return response.status, json.loads(raw or b"null") if response.status == 200 else raw
    finally:
        conn.close()


@pytest.fixture
def gunicorn(url: str, tmp_path: Path) -> Iterator[tuple[int, Keyring]]:
    """gunicorn --preload -w 2 (sync workers) on a free loopback port."""
    keyring = Keyring.generate("HS256")
    (tmp_path / "djangowsgi.py").write_text(WSGI)
    port = free_port()
    here = Path(__file__).resolve().parent
    env = {
        **os.environ,
        # The caller's PYTHONPATH first (the sessionstore under test), then tests/ for
        # django_site.
        "PYTHONPATH": os.pathsep.join(
            [
                str(tmp_path),
                *filter(None, [os.environ.get("PYTHONPATH")]),
                str(here.parent),
                str(here),
            ]
        ),
        "FORK_TEST_URL": url,
        "SESSIONSTORE_JWKS": json.dumps(keyring.to_private_jwks()),
        "PYTHONWARNINGS": "ignore",
    }
    command = [sys.executable, "-m", "gunicorn", "--preload", "-w", str(WORKERS)]
    command += ["-b", f"127.0.0.1:{port}", "--graceful-timeout", "5", "djangowsgi:application"]
    with gunicorn_master(command, tmp_path, env, lambda: get(port, "/me", "")[0] == 200):
        yield port, keyring


@pytest.mark.slow
def test_preforked_workers_make_their_own_store(
    gunicorn: tuple[int, Keyring], url: str, tmp_path: Path
) -> None:
    port, keyring = gunicorn
    log = tmp_path / "gunicorn.log"
    with SessionStore.from_url(url, keyring=keyring) as store:
        pair = store.login("user-7", device=Device(id="phone-1"))
        seen: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + 30
        while len(seen) < WORKERS and time.monotonic() < deadline:
            status, body = get(port, "/me", pair.access_token)
            assert status == 200, (body, log.read_text())
            seen[body["pid"]] = body
        assert len(seen) == WORKERS, f"only workers {sorted(seen)} answered"
        assert all(
            body == {"pid": pid, "user": "user-7", "own": True} for pid, body in seen.items()
        )

        store.revoke("user-7", pair.session_id)
        # Ask until every worker has refused the token (it answers user None) at least once.
        refused: set[int] = set()
        deadline = time.monotonic() + 30
        while len(refused) < WORKERS and time.monotonic() < deadline:
            status, body = get(port, "/me", pair.access_token)
            assert status == 200 and body["own"], (body, log.read_text())
            if body["user"] is None:
                refused.add(body["pid"])
        assert refused == set(seen), f"workers {sorted(set(seen) - refused)} never refused"
