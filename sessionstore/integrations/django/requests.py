"""One Django request against the store: its credentials, its ``AuthState``, its answers.

Shared by the middleware, the view decorators and the DRF classes; the decisions
themselves (which credentials win, which refusal says what) are ``HttpAuth``'s, the same
as the Starlette and Flask integrations'.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from sessionstore.errors import InvalidInput, InvalidToken, StoreUnavailable
from sessionstore.integrations._http import AuthState, Credentials, Refused, Reply
from sessionstore.integrations.django import conf
from sessionstore.models import Device, Principal

__all__ = [
    "PrincipalUser",
    "aauthenticate",
    "authenticate",
    "client_ip",
    "device_of",
    "principal_of",
    "reply_response",
    "state_of",
    "user_for",
]

_ATTR = "sessionstore_state"
_ERRORS = (InvalidToken, InvalidInput, StoreUnavailable)


class PrincipalUser:
    """``request.user`` when no ``USER_LOADER`` is set: the principal's user id, authenticated."""

    is_authenticated = True
    is_anonymous = False
    is_active = True

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.pk = self.id = self.username = principal.user_id

    def get_username(self) -> str:
        """The user id (Django's ``User.get_username``)."""
        return self.principal.user_id

    def __str__(self) -> str:
        return self.principal.user_id


def reply_response(reply: Reply) -> HttpResponse:
    """``reply`` as a Django response: its status, headers and the one JSON body."""
    response = JsonResponse(reply.body(), status=reply.status)
    for name, value in reply.headers:
        response[name] = value
    return response


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as the server saw it (``REMOTE_ADDR``; no proxy header trusted)."""
    address = request.META.get("REMOTE_ADDR")
    return address if isinstance(address, str) and address else None


def device_of(request: HttpRequest, device_id: str) -> Device:
    """A ``Device`` describing ``request``'s client (texts cut to the store's limits)."""
    agent = request.META.get("HTTP_USER_AGENT", "")
    return Device(
        id=device_id,
        user_agent=agent.replace("\x00", "")[:1024] if isinstance(agent, str) else "",
        ip=(client_ip(request) or "")[:64],
    )


class _Step:
    """One authentication in progress: the request's credentials, then their outcome."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.state = AuthState()
        self.found: Credentials | None = None
        http = conf.get_http()
        try:
            self.found = http.credentials(
                request.META.get("HTTP_AUTHORIZATION"),  # not request.headers: built per request
                lambda: request.COOKIES.get(http.cookies.access),
            )
        except Refused as refused:
            self.state = AuthState(refusal=refused.reply)
        self.binding: dict[str, str | None] = {}
        if http.client_facts:  # else validation does not read them
            self.binding = {
                "ip": client_ip(request),
                "user_agent": request.META.get("HTTP_USER_AGENT"),
            }

    @property
    def token(self) -> str | None:
        """The token to validate (None: nothing to validate)."""
        return None if self.found is None else self.found.token

    @contextlib.contextmanager
    def validating(self) -> Iterator[None]:
        """Around the store's ``validate``: a refused token becomes the state's refusal."""
        assert self.found is not None
        try:
            yield
        except _ERRORS as err:
            self.state = AuthState(
                refusal=conf.get_http().refusal(err), from_cookie=self.found.from_cookie
            )

    def validated(self, principal: Principal) -> None:
        """The token is good: ``principal`` speaks for the request."""
        assert self.found is not None
        self.state = AuthState(principal=principal, from_cookie=self.found.from_cookie)

    def finish(self) -> AuthState:
        """The outcome, kept on the request (and its principal as ``request.principal``)."""
        setattr(self.request, _ATTR, self.state)
        self.request.principal = self.state.principal  # type: ignore[attr-defined]
        return self.state


def authenticate(request: HttpRequest) -> AuthState:
    """Validate the request's token (if any) with the sync store; kept on the request."""
    step = _Step(request)
    if step.token is not None:
        with step.validating():
            step.validated(conf.get_store().validate(step.token, **step.binding))
    return step.finish()


async def aauthenticate(request: HttpRequest) -> AuthState:
    """``authenticate`` with the async store (under ASGI)."""
    step = _Step(request)
    if step.token is not None:
        with step.validating():
            step.validated(await conf.get_async_store().validate(step.token, **step.binding))
    return step.finish()


def state_of(request: HttpRequest) -> AuthState | None:
    """What authentication made of ``request`` (None when it did not run)."""
    state = getattr(request, _ATTR, None)
    return state if isinstance(state, AuthState) else None


def principal_of(request: HttpRequest) -> Principal | None:
    """The request's principal (None when anonymous or refused)."""
    state = state_of(request)
    return None if state is None else state.principal


def user_for(principal: Principal) -> Any:
    """``request.user`` for ``principal``: the ``USER_LOADER``'s answer, else a
    ``PrincipalUser``; a loader answering None (a deleted account) gives AnonymousUser."""
    loader = conf.options().user_loader
    if loader is None:
        return PrincipalUser(principal)
    user = loader(principal)
    if user is None:
        # Imported here: django.contrib.auth.models needs the app registry, which is not
        # ready when Django imports the session engine (and with it this module).
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser()
    return user
