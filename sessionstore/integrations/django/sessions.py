"""Django's sessions stored as sessionstore sessions: a ``SESSION_ENGINE``.

``SESSION_ENGINE = "sessionstore.integrations.django.sessions"``.

Every Django session is a sessionstore session (its dict is the session's ``data``), so a
cookie-session site gets the per-user index: list a user's devices, sign one out, sign
out everywhere, with no JWT at all. The session key (the cookie) names both halves of
the store's address, ``<session id>.<base64url user id>``; the session id is 128 random
bits, so the key is as unguessable as Django's own.

Whose session it is follows ``_auth_user_id`` (what ``django.contrib.auth.login`` writes):
before a login the session belongs to an anonymous id of its own (``anonymous:…``), and a
save that finds another owner in the data re-creates the session under that user and
revokes the old one, so the key changes (Django's ``cycle_key`` has already changed it
once at login, moving the session to a new id in one script: no fixation either way). A
change of the expiry (``set_expiry``) re-creates it too: a session's lifetimes are fixed
when it is made.

Lifetimes: a session ends ``get_expiry_age()`` seconds after its last save (Django's
rule; a save slides it), at most ``Config.idle_ttl``, and never later than
``Config.absolute_ttl`` after it was made: set both in ``SESSIONSTORE["CONFIG"]`` to at
least ``SESSION_COOKIE_AGE`` for Django's defaults. ``SESSION_EXPIRE_AT_BROWSER_CLOSE``
only drops the cookie's ``Max-Age``, as with every engine. Data above
``Config.max_data_bytes`` (encoded) raises ``SessionDataError`` at save.

Put ``sessionstore.integrations.django.middleware.SessionMiddleware`` in place of
Django's to record each session's device (User-Agent, client address).
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.http import HttpRequest

from sessionstore.errors import InvalidInput, SessionRevoked
from sessionstore.integrations.django import conf
from sessionstore.integrations.django.requests import device_of
from sessionstore.keys import check_session_id, decode_user_id, encode_user_id
from sessionstore.models import Device, Session

__all__ = ["ANONYMOUS", "SessionDataError", "SessionStore", "address_of", "session_key_of"]

ANONYMOUS = "anonymous:"
"""The prefix of the user id of a session nobody has logged into."""
_EXPIRY = "_session_expiry"  # where SessionBase.set_expiry keeps its value


class SessionDataError(InvalidInput):
    """The session's data cannot be stored: too large, or not JSON-like."""


def session_key_of(user_id: str, session_id: str) -> str:
    """The Django session key (cookie value) of a store session."""
    return f"{session_id}.{encode_user_id(user_id)}"


def address_of(session_key: object) -> tuple[str, str] | None:
    """(user id, session id) a session key names; None for anything else."""
    if not isinstance(session_key, str):
        return None
    session_id, dot, user = session_key.partition(".")
    try:
        return (decode_user_id(user), check_session_id(session_id)) if dot else None
    except InvalidInput:
        return None


class SessionStore(SessionBase):
    """Django's session contract on the process' ``SessionStore`` (see the module)."""

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._expiry_loaded: object = None
        self._device: Device | None = None

    def bind(self, request: HttpRequest) -> None:
        """Describe new sessions with ``request``'s client (``SessionMiddleware`` calls it)."""
        self._device = device_of(request, secrets.token_urlsafe(12))

    def _validate_session_key(self, key: object) -> bool:
        return address_of(key) is not None

    def _current(self, *, no_load: bool = False) -> dict[str, Any]:
        """The session's dict (loaded on first use unless ``no_load``)."""
        data: dict[str, Any] = self._get_session(no_load=no_load)  # type: ignore[attr-defined]
        return data

    # -- lifetimes ------------------------------------------------------------------------

    def _lifetimes(self) -> tuple[int, int]:
        """(idle ttl, absolute ttl) of a session made now from the current data."""
        config = conf.get_store().config
        age = max(1, self.get_expiry_age())
        if isinstance(self._current().get(_EXPIRY), str):  # set_expiry(a datetime)
            return min(age, config.idle_ttl), min(age, config.absolute_ttl)
        return min(age, config.idle_ttl), config.absolute_ttl

    def _owner(self, data: dict[str, Any]) -> str:
        """Whose session the data says it is: the logged-in user, else anonymous."""
        user = data.get(SESSION_KEY)
        if isinstance(user, str | int):
            return str(user)
        found = address_of(self.session_key)
        if found is not None and found[0].startswith(ANONYMOUS):
            return found[0]
        return ANONYMOUS + secrets.token_urlsafe(16)

    # -- the SessionBase contract ---------------------------------------------------------

    def load(self) -> dict[str, Any]:
        found = address_of(self.session_key)
        record = conf.get_store().get(*found) if found is not None else None
        if record is None:
            self._session_key = None
            return {}
        self._device = record.device  # a session keeps its device through new keys
        data = dict(record.data)
        self._expiry_loaded = data.get(_EXPIRY)
        return data

    def exists(self, session_key: str) -> bool:
        found = address_of(session_key)
        return found is not None and conf.get_store().get(*found) is not None

    def _make(self, data: dict[str, Any]) -> Session:
        """A new store session holding ``data``; the key names it from now on."""
        device = self._device or Device(id=secrets.token_urlsafe(12))
        idle, absolute = self._lifetimes()
        try:
            made = conf.get_store().create(
                self._owner(data), device=device, data=data, idle_ttl=idle, absolute_ttl=absolute
            )
        except InvalidInput as err:
            raise SessionDataError(f"the Django session cannot be stored: {err}") from err
        self._session_key = session_key_of(made.user_id, made.session_id)
        self._expiry_loaded = data.get(_EXPIRY)
        return made

    def create(self) -> None:
        self._make(self._current(no_load=True))
        self.modified = True

    def save(self, must_create: bool = False) -> None:
        data = self._current(no_load=must_create)
        found = None if must_create else address_of(self.session_key)
        if found is None:
            self._make(data)
            return
        user_id, session_id = found
        store = conf.get_store()
        if self._owner(data) != user_id or data.get(_EXPIRY) != self._expiry_loaded:
            # Another owner (a login) or another lifetime: a new session, the old one ends.
            self._make(data)
            store.revoke(user_id, session_id)
            return
        try:
            store.update(user_id, session_id, data=data)
        except SessionRevoked:
            raise UpdateError from None  # signed out meanwhile: Django answers 400
        except InvalidInput as err:
            raise SessionDataError(f"the Django session cannot be stored: {err}") from err
        store.touch(user_id, session_id)  # Django's rule: the expiry counts from this save

    def cycle_key(self) -> None:
        """A new key for the same session (Django calls it at login and on a password
        change): a saved session of the same owner and lifetime moves to a new id in one
        script (``rotate_session``: its device and deadlines kept, the old key revoked at
        once); anything else is Django's create-then-delete."""
        found = address_of(self.session_key)
        data = self._current()
        if (
            found is None
            or self._owner(data) != found[0]
            or (data.get(_EXPIRY) != self._expiry_loaded)
        ):
            super().cycle_key()
            return
        try:
            moved = conf.get_store().rotate_session(*found)
        except SessionRevoked:
            super().cycle_key()  # signed out meanwhile: a new session, as Django would
            return
        self._session_key = session_key_of(moved.user_id, moved.session_id)
        self.modified = True  # the data in hand is saved under the new key

    def delete(self, session_key: str | None = None) -> None:
        found = address_of(self.session_key if session_key is None else session_key)
        if found is not None:
            conf.get_store().revoke(*found)

    @classmethod
    def clear_expired(cls) -> None:
        """Nothing to do: Redis expires sessions by itself."""

    # -- what the store adds --------------------------------------------------------------

    @property
    def address(self) -> tuple[str, str] | None:
        """(user id, session id) of this session in the store, None before it is saved."""
        return address_of(self.session_key)
