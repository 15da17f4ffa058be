"""The ASGI half shared by the Starlette and Litestar integrations (no framework imported).

Validating a request's credentials against an ``AsyncSessionStore``, and reading the CSRF
token of a cookie-authenticated unsafe request from its header or urlencoded form body
(the body is then replayed to the app), both on plain ASGI values.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sessionstore.aio import AsyncSessionStore
from sessionstore.errors import InvalidInput, InvalidToken, StoreUnavailable
from sessionstore.integrations._http import AuthState, HttpAuth, Refused, form_field

__all__ = ["FORM", "MAX_FORM_BYTES", "authenticate", "read_body", "replay", "submitted_csrf"]

# Any: Starlette's and Litestar's ``Receive`` types differ only in how they type the messages.
Receive = Callable[[], Awaitable[Any]]

FORM = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 64 * 1024


async def authenticate(
    store: AsyncSessionStore,
    http: HttpAuth,
    *,
    authorization: str | None,
    cookie: str | None,
    ip: str | None,
    user_agent: str | None,
) -> AuthState:
    """Validate the request's token (Bearer header first, else ``cookie``), if any."""
    try:
        found = http.credentials(authorization, cookie)
    except Refused as refused:
        return AuthState(refusal=refused.reply)
    if found is None:
        return AuthState()
    try:
        principal = await store.validate(found.token, ip=ip, user_agent=user_agent)
    except (InvalidToken, InvalidInput, StoreUnavailable) as err:
        return AuthState(refusal=http.refusal(err), from_cookie=found.from_cookie)
    return AuthState(principal=principal, from_cookie=found.from_cookie)


async def submitted_csrf(
    http: HttpAuth, header: str | None, content_type: str | None, receive: Receive
) -> tuple[str | None, Receive]:
    """The token from the header, else from a urlencoded form body (then replayed)."""
    if header is not None or not (content_type or "").startswith(FORM):
        return header, receive
    body = await read_body(receive, MAX_FORM_BYTES)
    if body is None:
        return None, receive
    return form_field(body, http.csrf_field), replay(body, receive)


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past ``limit`` bytes or on a disconnect."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message: dict[str, Any] = await receive()
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then defers to the real one."""
    pending = [body]

    async def replayed() -> Any:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replayed
