"""Token sign-in, refresh and sign-out for Django views (the DRF views are built on them).

::

    pair = issue_tokens(request, user)          # after checking the password
    set_login_cookies(request, response, pair)  # or hand the pair to a non-browser client
    pair = refresh_tokens(request)              # the refresh cookie (or pass token=...)
    pair = rotate_tokens(request, response)     # a privilege change: a new session id
    sign_out(request, response)                 # revoke the request's session, clear cookies
    sign_out_other_sessions(request, user)      # where Django calls update_session_auth_hash

Cookies are the other integrations' (HttpOnly access and refresh cookies, the refresh one
sent to its path only), except their CSRF cookie: Django's ``csrftoken`` protects cookie
requests here, and a login rotates it as ``django.contrib.auth.login`` does.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from django.contrib.auth import update_session_auth_hash
from django.http import HttpRequest, HttpResponseBase
from django.middleware.csrf import rotate_token

from sessionstore.errors import InvalidInput, InvalidToken, StoreUnavailable
from sessionstore.integrations._http import Refused, set_cookies
from sessionstore.integrations.django import conf
from sessionstore.integrations.django.requests import authenticate, device_of, state_of
from sessionstore.integrations.django.sessions import SessionStore as DjangoSessionStore
from sessionstore.models import Device, TokenPair

__all__ = [
    "clear_cookies",
    "issue_tokens",
    "refresh_tokens",
    "rotate_tokens",
    "set_login_cookies",
    "sign_out",
    "sign_out_other_sessions",
]


def issue_tokens(request: HttpRequest, user: Any, *, device: Device | None = None) -> TokenPair:
    """A new session of ``user`` (its ``pk`` is the user id) and its token pair.

    ``device`` defaults to the request's client (User-Agent, address) under a new id.
    """
    if device is None:
        device = device_of(request, secrets.token_urlsafe(12))
    return conf.get_store().login(str(user.pk), device=device)


def set_login_cookies(
    request: HttpRequest, response: HttpResponseBase, pair: TokenPair, *, login: bool = True
) -> None:
    """Set the access and refresh cookies of ``pair``; at a login (not a refresh), rotate
    Django's CSRF token as ``django.contrib.auth.login`` does."""
    http = conf.get_http()
    set_cookies(response, [c for c in http.login_cookies(pair) if c.name != http.cookies.csrf])
    if login:
        rotate_token(request)


def clear_cookies(response: HttpResponseBase) -> None:
    """Expire the access and refresh cookies (the session stays live: see ``sign_out``)."""
    set_cookies(response, conf.get_http().logout_cookies())


def refresh_tokens(request: HttpRequest, token: str | None = None) -> TokenPair:
    """Rotate the refresh cookie (or ``token``); ``Refused`` with the answer on failure."""
    http = conf.get_http()
    token = token or request.COOKIES.get(http.cookies.refresh)
    if not token:
        raise Refused(http.missing())
    try:
        return conf.get_store().refresh(token)
    except (InvalidToken, InvalidInput, StoreUnavailable) as err:
        raise Refused(http.refusal(err)) from None


def rotate_tokens(
    request: HttpRequest,
    response: HttpResponseBase | None = None,
    *,
    claims: Mapping[str, Any] | None = None,
) -> TokenPair:
    """Move the request's token session to a new id (on a privilege change: new roles in
    ``claims``) and, given ``response``, set its cookies and rotate Django's CSRF token as
    a login does. The old id's tokens are refused from now on; ``Refused`` with the answer
    without a live session (401, or 503 degraded)."""
    http = conf.get_http()
    try:
        found = http.session_to_rotate(state_of(request) or authenticate(request))
        pair = conf.get_store().rotate(*found, claims=claims)
    except (InvalidToken, StoreUnavailable) as err:
        raise Refused(http.refusal(err)) from None
    if response is not None:
        set_login_cookies(request, response, pair)
    return pair


def sign_out(request: HttpRequest, response: HttpResponseBase | None = None) -> bool:
    """Revoke the request's session (its token, else its refresh cookie), then clear cookies.

    True when a live session was revoked. ``StoreUnavailable`` propagates, cookies kept
    (503 through the middleware): a sign-out that cannot reach the store must not look done.
    """
    http = conf.get_http()
    store = conf.get_store()
    state = state_of(request) or authenticate(request)
    refresh = request.COOKIES.get(http.cookies.refresh)
    found = http.session_to_end(state, refresh, store.keyring)
    revoked = store.revoke(*found) if found is not None else False
    if response is not None:
        clear_cookies(response)
    return revoked


def sign_out_other_sessions(request: HttpRequest, user: Any) -> int:
    """After a password change: keep this request's session, end every other of ``user``.

    A token request keeps its token's session. A cookie-session request goes through
    Django's ``update_session_auth_hash`` (its session gets a new key) and keeps that
    session. Every other session of the user ends, cookie sessions and token sessions
    alike. How many.
    """
    principal = getattr(request, "principal", None)
    keep = principal.session_id if principal is not None else None
    if keep is None:
        update_session_auth_hash(request, user)
        session = getattr(request, "session", None)
        address = session.address if isinstance(session, DjangoSessionStore) else None
        keep = None if address is None else address[1]
    return conf.get_store().revoke_user(str(user.pk), keep=keep)
