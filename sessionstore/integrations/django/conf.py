"""``settings.SESSIONSTORE``: what it holds, and the stores it makes (one per process).

::

    SESSIONSTORE = {
        "URL_ENV": "REDIS_URL",   # or "URL": "redis://…" (default: $SESSIONSTORE_REDIS_URL)
        "JWKS_ENV": "SESSIONSTORE_JWKS",    # or "JWKS": {...}; none: sessions only, no tokens
        "CONFIG": {"access_ttl": 600},      # any sessionstore.Config field
        "USER_LOADER": "accounts.auth.load_user",  # principal -> user, for request.user
        "COOKIES": {"secure": True},        # any CookieSettings field
        "REALM": "api",
    }

The stores are created lazily, on the first request that needs one, and are keyed by the
process id: a preforking server (gunicorn, uWSGI) that imported the project before forking
gets a store of its own in each worker, never one sharing the parent's sockets. WSGI code
uses ``get_store()`` (a ``SessionStore``), ASGI code ``get_async_store()``. A change of the
setting (``override_settings`` in tests) drops them.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from sessionstore.aio import AsyncSessionStore
from sessionstore.errors import InvalidInput
from sessionstore.integrations._http import CookieSettings, HttpAuth
from sessionstore.models import Config, Principal
from sessionstore.store import SessionStore
from sessionstore.tokens import Keyring

__all__ = [
    "Options",
    "close_stores",
    "get_async_store",
    "get_http",
    "get_store",
    "options",
]

_KNOWN = frozenset(
    {"URL", "URL_ENV", "JWKS", "JWKS_ENV", "CONFIG", "USER_LOADER", "COOKIES", "REALM"}
)
UserLoader = Callable[[Principal], Any]


@dataclass(frozen=True)
class Options:
    """``settings.SESSIONSTORE``, checked."""

    url: str
    keyring: Keyring | None
    config: Config
    cookies: CookieSettings
    realm: str
    user_loader: UserLoader | None


def _from_env(name: object, what: str) -> str:
    if not isinstance(name, str) or not os.environ.get(name):
        raise ImproperlyConfigured(
            f"SESSIONSTORE: the environment variable {name!r} ({what}) is empty"
        )
    return os.environ[name]


def _read(raw: Mapping[str, Any]) -> Options:
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise ImproperlyConfigured(f"SESSIONSTORE: unknown keys {unknown}")
    url = raw.get("URL") or _from_env(raw.get("URL_ENV", "SESSIONSTORE_REDIS_URL"), "URL")
    jwks = raw.get("JWKS")
    if jwks is None and "JWKS_ENV" in raw:
        jwks = _from_env(raw["JWKS_ENV"], "JWK Set")
    loader = raw.get("USER_LOADER")
    try:
        return Options(
            url=url,
            keyring=None if jwks is None else Keyring.from_jwks(jwks),
            config=Config(**raw.get("CONFIG", {})),
            cookies=CookieSettings(**raw.get("COOKIES", {})),
            realm=raw.get("REALM", "api"),
            user_loader=import_string(loader) if isinstance(loader, str) else loader,
        )
    except (InvalidInput, TypeError, ImportError) as err:
        raise ImproperlyConfigured(f"SESSIONSTORE: {err}") from err


S = TypeVar("S")
_lock = threading.Lock()
# name -> (pid that made it, object): an entry made by another pid is the parent's, pre-fork.
_made: dict[str, tuple[int, Any]] = {}
_closing: set[asyncio.Task[None]] = set()  # close() tasks, kept until done


def _per_process(name: str, make: Callable[[], S]) -> S:
    pid = os.getpid()
    found = _made.get(name)
    if found is not None and found[0] == pid:
        made: S = found[1]
        return made
    with _lock:
        found = _made.get(name)
        if found is None or found[0] != pid:
            # The parent's object is left alone, never closed: its sockets are the parent's.
            found = _made[name] = (pid, make())
        made = found[1]
        return made


def options() -> Options:
    """``settings.SESSIONSTORE``, read once per process (``ImproperlyConfigured`` if wrong)."""
    raw = getattr(settings, "SESSIONSTORE", None)
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured("settings.SESSIONSTORE must be a dict")
    return _per_process("options", lambda: _read(raw))


def get_store() -> SessionStore:
    """This process' ``SessionStore`` (made on first use)."""
    opts = options()
    return _per_process(
        "sync", lambda: SessionStore.from_url(opts.url, keyring=opts.keyring, config=opts.config)
    )


def get_async_store() -> AsyncSessionStore:
    """This process' ``AsyncSessionStore`` (made on first use)."""
    opts = options()
    return _per_process(
        "async",
        lambda: AsyncSessionStore.from_url(opts.url, keyring=opts.keyring, config=opts.config),
    )


def get_http() -> HttpAuth:
    """The framework-neutral decisions (challenges, cookies) for these settings."""
    opts = options()
    return _per_process(
        "http", lambda: HttpAuth(opts.config, cookies=opts.cookies, realm=opts.realm)
    )


def close_stores() -> None:
    """Close and forget this process' stores (the next use makes new ones)."""
    with _lock:
        made = {name: obj for name, (pid, obj) in _made.items() if pid == os.getpid()}
        _made.clear()
    if isinstance(made.get("sync"), SessionStore):
        made["sync"].close()
    astore = made.get("async")
    if isinstance(astore, AsyncSessionStore):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(astore.close())
        else:  # inside a loop (an async test's teardown): closed by that loop soon
            task = asyncio.get_running_loop().create_task(astore.close())
            _closing.add(task)
            task.add_done_callback(_closing.discard)


def _changed(*, setting: str, **_: object) -> None:
    if setting == "SESSIONSTORE":
        close_stores()


setting_changed.connect(_changed, dispatch_uid="sessionstore.integrations.django.conf")
