"""The framework-neutral half of the integrations: credentials, RFC 6750 answers, cookies, CSRF.

Pure code (no framework, no I/O), shared by the Starlette/FastAPI and Flask integrations,
so both answer the same request the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import parse_qs

from sessionstore.errors import (
    DeviceBindingError,
    InvalidInput,
    InvalidToken,
    RefreshReuseDetected,
    SessionExpired,
    SessionRevoked,
    SessionStoreError,
    StoreUnavailable,
    TokenExpired,
)
from sessionstore.integrations._origin import OriginPolicy
from sessionstore.models import Config, Principal, TokenPair
from sessionstore.tokens import Keyring, parse_refresh_token

__all__ = [
    "SAFE_METHODS",
    "AuthState",
    "Cookie",
    "CookieMethods",
    "CookieSettings",
    "Credentials",
    "Guard",
    "HttpAuth",
    "Refused",
    "Reply",
    "bearer_token",
    "form_field",
    "guard",
]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# error_description may hold %x20-21 / %x23-5B / %x5D-7E only: no quote, no backslash.
_DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
_REALM = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")
Reason = Literal[
    "missing", "malformed", "expired", "revoked", "invalid", "device", "unavailable", "degraded",
    "csrf", "origin", "step_up",
]  # fmt: skip
# RFC 9470 section 3: the error and the descriptions of its examples.
STEP_UP_ERROR = "insufficient_user_authentication"
_OLD = "More recent authentication is required"
_LOW = "A different authentication level is required"
_BOTH = "More recent authentication at a different level is required"


@dataclass(frozen=True)
class CookieSettings:
    """Cookie names and flags; the defaults are the safe ones.

    Every cookie is ``Secure`` and ``SameSite=Strict``; the access and refresh cookies are
    ``HttpOnly``; the refresh cookie is only ever sent to ``refresh_path``. The CSRF cookie
    is readable by scripts (double submit: they echo it in the ``X-CSRF-Token`` header).
    Set ``secure=False`` only to serve plain HTTP during development.
    """

    access: str = "ss_access"
    refresh: str = "ss_refresh"
    csrf: str = "ss_csrf"
    path: str = "/"
    refresh_path: str = "/auth/refresh"
    domain: str | None = None
    secure: bool = True
    samesite: Literal["strict", "lax"] = "strict"

    def __post_init__(self) -> None:
        for name in (self.access, self.refresh, self.csrf):
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
                raise InvalidInput(f"cookie name {name!r} must be 1..64 chars of [A-Za-z0-9_.-]")
        for path in (self.path, self.refresh_path):
            if not path.startswith("/") or not re.fullmatch(r"[\x21-\x3a\x3c-\x7e]+", path):
                raise InvalidInput(f"cookie path {path!r} must start with / and hold no ; or space")
        if self.samesite not in ("strict", "lax"):
            raise InvalidInput("samesite must be 'strict' or 'lax' (never 'none' for tokens)")


@dataclass(frozen=True)
class Cookie:
    """One Set-Cookie to send (``max_age=0`` deletes it; None: a browser-session cookie)."""

    name: str
    value: str
    max_age: int | None
    path: str
    domain: str | None
    secure: bool
    http_only: bool
    samesite: Literal["strict", "lax"]


@dataclass(frozen=True)
class Reply:
    """A refusal, ready to become a response: status, headers and a small JSON body."""

    status: int
    reason: Reason
    error: str
    description: str
    headers: tuple[tuple[str, str], ...] = ()

    def body(self) -> dict[str, str]:
        """The JSON body: RFC 6750 names plus our ``reason``."""
        return {"error": self.error, "error_description": self.description, "reason": self.reason}


class Refused(Exception):
    """Raised inside the integrations to answer with ``reply`` (never escapes them)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.description)
        self.reply = reply


@dataclass(frozen=True)
class Credentials:
    """An access token found on a request, and where: a Bearer header or the cookie."""

    token: str = field(repr=False)
    from_cookie: bool


@dataclass(frozen=True)
class AuthState:
    """What authentication made of one request (kept on the request by the integrations)."""

    principal: Principal | None = None
    refusal: Reply | None = None
    from_cookie: bool = False


@dataclass(frozen=True)
class Guard:
    """What a route needs beyond a valid token.

    ``live``: a principal checked against the store, not a degraded one (503 otherwise);
    ``max_age``: the user proved who they are at most that many seconds ago (``auth_time``);
    ``level``: an assurance level (``acr``) of at least this. A principal short of
    ``max_age`` or ``level`` gets 401 with the RFC 9470 challenge
    (``error="insufficient_user_authentication"``, ``max_age``, ``acr_values``).
    """

    live: bool = False
    max_age: int | None = None
    level: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.live, bool):
            raise InvalidInput(f"live must be a bool, got {self.live!r}")
        age = self.max_age
        if age is not None and (type(age) is not int or not 0 <= age <= 10 * 366 * 86400):
            raise InvalidInput(f"max_age must be a whole number of seconds >= 0, got {age!r}")
        if self.level is not None and (type(self.level) is not int or not 1 <= self.level <= 9):
            raise InvalidInput(f"level must be an integer in 1..9, got {self.level!r}")


def guard(
    *,
    live: bool = False,
    fresh: bool | None = None,
    max_age: int | None = None,
    level: int | None = None,
    stacklevel: int = 3,
) -> Guard:
    """A ``Guard`` from an integration's keywords; ``fresh`` is the deprecated ``live``."""
    if fresh is not None:
        warnings.warn(
            "fresh= is deprecated (it meant 'not degraded'): use live=",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        live = live or bool(fresh)
    return Guard(live=live, max_age=max_age, level=level)


def deprecated(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that the integration's ``old`` is now ``new`` (it still works)."""
    warnings.warn(
        f"{old} is deprecated (it means 'not degraded'): use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


_ANY = Guard()
_LIVE = Guard(live=True)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None for no header or another scheme.

    Raises ``Refused`` (400 invalid_request) for a Bearer header that is not one b64token.
    """
    if not authorization:
        return None
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = rest.strip()
    if not _B64TOKEN.fullmatch(token):
        raise Refused(
            Reply(400, "malformed", "invalid_request", "The Authorization header is malformed")
        )
    return token


class HttpAuth:
    """Framework-neutral decisions of an integration for one store configuration."""

    def __init__(
        self,
        config: Config,
        *,
        cookies: CookieSettings | None = None,
        realm: str = "api",
        csrf_secret: bytes | None = None,
        csrf_header: str = "X-CSRF-Token",
        csrf_field: str = "csrf_token",
        allowed_origins: Iterable[str] = (),
    ) -> None:
        if not isinstance(realm, str) or not _REALM.fullmatch(realm):
            raise InvalidInput("realm must be 1..64 printable chars without quote or backslash")
        if csrf_secret is not None and (
            not isinstance(csrf_secret, bytes) or len(csrf_secret) < 32
        ):
            raise InvalidInput("csrf_secret must be at least 32 random bytes")
        self.config = config
        self.cookies = CookieSettings() if cookies is None else cookies
        self.realm = realm
        self.csrf_header = csrf_header
        self.csrf_field = csrf_field
        # A per-process secret breaks forms across processes: pass one shared secret there.
        self._csrf_key = csrf_secret if csrf_secret is not None else secrets.token_bytes(32)
        self.origins = OriginPolicy(allowed_origins)
        # Validation reads the client's IP and User-Agent only to check a device binding or
        # to record the device of an adopted legacy token: otherwise the integrations skip
        # looking them up (a framework's request attributes cost more than the validation).
        self.client_facts = config.device_binding != "off" or config.legacy_tokens is not None

    # -- credentials and refusals -------------------------------------------------------

    def credentials(
        self, authorization: str | None, cookie: str | Callable[[], str | None] | None
    ) -> Credentials | None:
        """The request's access token: the Bearer header wins over the cookie.

        ``cookie`` may be a function returning it, called only when there is no Bearer
        token: parsing a request's cookies costs more than the rest of a cached validation.
        """
        try:
            token = bearer_token(authorization)
        except Refused as refused:
            reply = refused.reply
            raise Refused(
                self._challenge(reply.reason, reply.description, "invalid_request", 400)
            ) from None
        if token is not None:
            return Credentials(token, from_cookie=False)
        if callable(cookie):
            cookie = cookie()
        if cookie:
            return Credentials(cookie, from_cookie=True)
        return None

    def _challenge(
        self, reason: Reason, description: str, error: str = "invalid_token", status: int = 401
    ) -> Reply:
        assert _DESCRIPTION.fullmatch(description)
        header = f'Bearer realm="{self.realm}", error="{error}", error_description="{description}"'
        return Reply(status, reason, error, description, (("WWW-Authenticate", header),))

    def missing(self) -> Reply:
        """No credentials at all: 401 with a bare challenge (RFC 6750 section 3.1)."""
        header = f'Bearer realm="{self.realm}"'
        return Reply(
            401,
            "missing",
            "invalid_request",
            "Authentication required",
            (("WWW-Authenticate", header),),
        )

    def refusal(self, err: SessionStoreError) -> Reply:
        """The answer to an error of ``validate``/``refresh``: expired, revoked or invalid."""
        if isinstance(err, StoreUnavailable):
            return Reply(
                503,
                "unavailable",
                "temporarily_unavailable",
                "The session store is unreachable",
                (("Retry-After", "1"),),
            )
        if isinstance(err, RefreshReuseDetected):
            return self._challenge("revoked", "The refresh token was reused: session revoked")
        if isinstance(err, SessionExpired):
            return self._challenge("expired", "The session expired")
        if isinstance(err, TokenExpired):
            return self._challenge("expired", "The access token expired")
        if isinstance(err, SessionRevoked):
            return self._challenge("revoked", "The session was revoked")
        if isinstance(err, DeviceBindingError):
            return self._challenge("device", "The request does not match the session's device")
        if isinstance(err, InvalidToken | InvalidInput):
            return self._challenge("invalid", "The access token is invalid")
        raise err  # a ScriptError is a server fault, not the client's: let it be a 500

    def degraded(self) -> Reply:
        """A route that needs a store-checked session, while only the token could be checked."""
        return Reply(
            503,
            "degraded",
            "temporarily_unavailable",
            "This route needs the session store, which is unreachable",
            (("Retry-After", "1"),),
        )

    def csrf_failed(self) -> Reply:
        """A cookie-authenticated unsafe request without the matching CSRF token."""
        return Reply(403, "csrf", "csrf_failed", "Missing or wrong CSRF token")

    def origin_refused(self) -> Reply:
        """A cookie-authenticated WebSocket handshake from a foreign or missing Origin."""
        return Reply(403, "origin", "origin_refused", "Cross-origin WebSocket refused")

    def origin_required(self, state: AuthState) -> bool:
        """Whether a WebSocket handshake must pass the Origin check: cookie-authenticated."""
        return state.from_cookie and state.principal is not None

    def session_to_end(
        self, state: AuthState, refresh_cookie: str | None, keyring: Keyring
    ) -> tuple[str, str] | None:
        """(user id, session id) a sign-out must revoke: the request's principal, else the
        session of a genuine refresh cookie (it reaches routes under its path only)."""
        if state.principal is not None:
            return state.principal.user_id, state.principal.session_id
        if state.refusal is not None and state.refusal.reason == "unavailable":
            # The credentials could not be checked: whatever they name cannot be ended now.
            raise StoreUnavailable("the store is unreachable: the session cannot be ended now")
        if not refresh_cookie:
            return None
        try:
            found = parse_refresh_token(
                keyring, refresh_cookie, max_bytes=self.config.max_token_bytes
            )
        except (InvalidToken, InvalidInput):
            return None  # a forged or stale-key cookie names nothing we may revoke
        return found.user_id, found.session_id

    def require(
        self, state: AuthState | None, need: Guard = _ANY, *, fresh: bool = False
    ) -> Principal:
        """The principal of ``state`` if it meets ``need`` (``fresh``: the old spelling of
        ``need.live``), or ``Refused`` with the right answer."""
        if state is None or (state.principal is None and state.refusal is None):
            raise Refused(self.missing())
        principal = state.principal
        if principal is None:
            assert state.refusal is not None
            raise Refused(state.refusal)
        if (fresh or need.live) and principal.degraded:
            raise Refused(self.degraded())
        if need.max_age is not None or need.level is not None:
            reply = self.insufficient(principal, need)
            if reply is not None:
                raise Refused(reply)
        return principal

    def session_to_rotate(self, state: AuthState | None) -> tuple[str, str]:
        """(user id, session id) a rotation moves: the request's live principal's, or
        ``Refused`` (401 without one, 503 when degraded: a rotation needs the store)."""
        principal = self.require(state, _LIVE)
        return principal.user_id, principal.session_id

    def insufficient(
        self, principal: Principal, need: Guard, now: float | None = None
    ) -> Reply | None:
        """The RFC 9470 challenge when ``principal``'s last proof of identity is older than
        ``need.max_age`` or below ``need.level``, else None.

        The challenge names what the route needs (``max_age``, ``acr_values``), so a client
        knows how to authenticate again: ``WWW-Authenticate: Bearer realm="api",
        error="insufficient_user_authentication", error_description="...",
        max_age="300", acr_values="2"``.
        """
        now = time.time() if now is None else now
        auth_time = principal.auth_time
        old = need.max_age is not None and (auth_time is None or now - auth_time > need.max_age)
        low = need.level is not None and principal.acr < need.level
        if not (old or low):
            return None
        description = _BOTH if old and low else _OLD if old else _LOW
        header = (
            f'Bearer realm="{self.realm}", error="{STEP_UP_ERROR}", '
            f'error_description="{description}"'
        )
        if need.max_age is not None:
            header += f', max_age="{need.max_age}"'
        if need.level is not None:
            header += f', acr_values="{need.level}"'
        return Reply(401, "step_up", STEP_UP_ERROR, description, (("WWW-Authenticate", header),))

    # -- CSRF (signed double submit) ----------------------------------------------------

    def csrf_token(self, session_id: str) -> str:
        """The session's CSRF token: an HMAC of its id, so a planted cookie cannot match."""
        mac = hmac.new(self._csrf_key, b"csrf:" + session_id.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()

    def csrf_required(self, method: str, state: AuthState) -> bool:
        """Whether this request must carry a CSRF token: unsafe and cookie-authenticated."""
        return state.from_cookie and state.principal is not None and method not in SAFE_METHODS

    def csrf_valid(self, state: AuthState, submitted: str | None, cookie: str | None) -> bool:
        """Double submit: the header/form token equals the cookie and the session's token."""
        if state.principal is None or not submitted or not cookie:
            return False
        expected = self.csrf_token(state.principal.session_id).encode()
        return hmac.compare_digest(submitted.encode(), cookie.encode()) and hmac.compare_digest(
            submitted.encode(), expected
        )

    # -- cookies ------------------------------------------------------------------------

    def _cookie(
        self, name: str, value: str, max_age: int | None, *, path: str, http_only: bool
    ) -> Cookie:
        c = self.cookies
        return Cookie(name, value, max_age, path, c.domain, c.secure, http_only, c.samesite)

    def login_cookies(self, pair: TokenPair) -> list[Cookie]:
        """The cookies of a fresh token pair: access, refresh (its path only), CSRF.

        A browser-session pair's (``TokenPair.persistent`` False) have no Max-Age: the
        browser drops them when it closes (the tokens still expire on their own).
        """
        c = self.cookies
        lifetime: int | None = self.config.absolute_ttl
        access_age: int | None = pair.expires_in or self.config.access_ttl
        if not pair.persistent:
            lifetime = access_age = None
        return [
            self._cookie(c.access, pair.access_token, access_age, path=c.path, http_only=True),
            self._cookie(
                c.refresh, pair.refresh_token, lifetime, path=c.refresh_path, http_only=True
            ),
            # Scripts must read it to echo it back: the one cookie that is not HttpOnly.
            self._cookie(
                c.csrf, self.csrf_token(pair.session_id), lifetime, path=c.path, http_only=False
            ),
        ]

    def logout_cookies(self) -> list[Cookie]:
        """Cookies that delete all three (``Max-Age=0``)."""
        c = self.cookies
        return [
            self._cookie(c.access, "", 0, path=c.path, http_only=True),
            self._cookie(c.refresh, "", 0, path=c.refresh_path, http_only=True),
            self._cookie(c.csrf, "", 0, path=c.path, http_only=False),
        ]


def set_cookies(response: Any, cookies: Iterable[Cookie]) -> None:
    """Set ``cookies`` on a Starlette or Flask response (their ``set_cookie`` agree)."""
    for c in cookies:
        response.set_cookie(
            c.name,
            c.value,
            max_age=c.max_age,
            path=c.path,
            domain=c.domain,
            secure=c.secure,
            httponly=c.http_only,
            samesite=c.samesite,
        )


def delete_cookies(response: Any, cookies: Iterable[Cookie]) -> None:
    """Delete ``cookies`` on a Starlette or Flask response (their ``delete_cookie`` agree)."""
    for c in cookies:
        response.delete_cookie(
            c.name,
            path=c.path,
            domain=c.domain,
            secure=c.secure,
            httponly=c.http_only,
            samesite=c.samesite,
        )


def form_field(body: bytes, name: str) -> str | None:
    """The first value of ``name`` in an ``application/x-www-form-urlencoded`` body."""
    try:
        values = parse_qs(body.decode("utf-8"), max_num_fields=1000).get(name)
    except (UnicodeDecodeError, ValueError):
        return None
    return values[0] if values else None


R = TypeVar("R")


class CookieMethods(Generic[R]):
    """The cookie methods of both integrations, on their framework's response type ``R``."""

    http: HttpAuth

    def csrf_token(self, principal: Principal) -> str:
        """The CSRF token to put in the forms of ``principal``'s pages."""
        return self.http.csrf_token(principal.session_id)

    def set_login_cookies(self, response: R, pair: TokenPair) -> None:
        """Set the access, refresh and CSRF cookies of ``pair`` on ``response``."""
        set_cookies(response, self.http.login_cookies(pair))

    def clear_cookies(self, response: R) -> None:
        """Delete the three cookies on ``response`` (the session stays live: see ``sign_out``)."""
        delete_cookies(response, self.http.logout_cookies())
