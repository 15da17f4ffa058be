"""The demo web app: sign in, see your sessions per device, sign devices out.

A small server-rendered Starlette app on an ``AsyncSessionStore``: a login page with
seeded demo users behind the login rate limiter, a dashboard of the user's sessions grouped
by device ("this device" marked) with sign-out buttons that name the device, ask first
(a GET confirm page, or a ``<dialog>`` with JavaScript) and report the result on the next
page, and a protected JSON API at ``/api/me``. "Keep me signed in" chooses a persistent or
a browser-session login; signing out every other device asks for the password again
(a step-up) unless the user proved it within ``confirm_after`` seconds. Sessions ride in
the integration's cookies (HttpOnly access and refresh cookies, CSRF token on every form).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from html import escape
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sessionstore import events
from sessionstore._engine.binding import ua_family
from sessionstore.aio import AsyncSessionStore
from sessionstore.demo_app import pages
from sessionstore.errors import InvalidInput, StoreUnavailable
from sessionstore.integrations._http import AuthState, CookieSettings
from sessionstore.integrations.starlette import AuthRefused, SessionAuth, SessionAuthMiddleware
from sessionstore.metrics import event_labels
from sessionstore.models import Config, Device, DeviceSessions, Principal
from sessionstore.ratelimit import AsyncLoginRateLimiter
from sessionstore.tokens import Keyring

__all__ = ["DEMO_USERS", "DEVICE_COOKIE", "NEW_DEVICE", "NOTICE_COOKIE", "create_app"]

DEMO_USERS: Mapping[str, str] = {"alice": "wonderland", "bob": "builder"}
"""The seeded demo accounts: user name -> password."""
DEVICE_COOKIE = "ss_device"
"""A long-lived random id naming this browser (not a secret): sessions group by it."""
NOTICE_COOKIE = "ss_notice"
"""A one-shot result message ("Signed out Chrome on Android") for the page after a redirect."""
NEW_DEVICE = pages.NEW_DEVICE
"""The session data key marking a sign-in from a device the user's history had not seen."""
_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{16}")
_DEVICE_COOKIE_AGE = 400 * 86400


class _Passwords:
    """Salted PBKDF2 hashes of the demo passwords, checked in constant time."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._salt = secrets.token_bytes(16)
        self._hashes = {name: self._hash(password) for name, password in users.items()}
        self._decoy = self._hash(secrets.token_urlsafe(16))
        self.users = dict(users)

    def _hash(self, password: str) -> bytes:
        return hashlib.pbkdf2_hmac("sha256", password.encode(), self._salt, 20_000)

    def check(self, name: str, password: str) -> bool:
        # Unknown users cost the same hash as known ones: no user enumeration by timing.
        expected = self._hashes.get(name, self._decoy)
        return hmac.compare_digest(self._hash(password), expected) and name in self._hashes


def _describe(event: events.Event) -> tuple[float, str]:
    kind, reason = event_labels(event)
    who = getattr(event, "user_id", None)
    what = {"created": "session created", "revoked": "sessions revoked"}.get(kind, kind)
    parts = [what.replace("_", " ")]
    if reason:
        parts.append(f"({reason})")
    if who:
        parts.append(f"for {who}")
    text = " ".join(parts)
    return event.at, text[:1].upper() + text[1:]


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def _notice(request: Request) -> str:
    try:
        value = request.cookies.get(NOTICE_COOKIE, "")
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()[:300]
    except (binascii.Error, ValueError):
        return ""  # not ours: show nothing


def _sessions(count: int) -> str:
    return f"{count} session{'' if count == 1 else 's'}"


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _cookie_warning(request: Request) -> str:
    """Why sign-in would loop: browsers drop Secure cookies on plain HTTP but to loopback."""
    host = request.url.hostname or ""
    if request.url.scheme != "http" or _is_loopback(host):
        return ""
    return (
        "<b>Signing in will bring you back here.</b> This page came over plain HTTP at "
        f"{escape(host)}, where browsers drop the demo's Secure cookies. Use HTTPS, open it at "
        "localhost on the machine that runs it, or restart it with <code>--insecure-cookies</code>."
    )


def create_app(
    redis_url: str,
    *,
    keyring: Keyring | None = None,
    config: Config | None = None,
    users: Mapping[str, str] = DEMO_USERS,
    secure_cookies: bool = True,
    confirm_after: int = 300,
) -> Starlette:
    """The demo app on the server at ``redis_url`` (its store is closed on shutdown).

    Signing out every other device asks for the password when the user last proved it
    more than ``confirm_after`` seconds ago (0: always).
    """
    recent: deque[tuple[float, str]] = deque(maxlen=8)
    hooks: list[Any] = [lambda event: recent.appendleft(_describe(event))]
    metrics = None
    with contextlib.suppress(ImportError):
        from prometheus_client import CollectorRegistry

        from sessionstore.metrics.prometheus import PrometheusMetrics

        registry = CollectorRegistry()
        metrics = PrometheusMetrics(registry)
        hooks.append(metrics)
    store = AsyncSessionStore.from_url(
        redis_url,
        keyring=keyring or Keyring.generate("HS256"),
        config=config or Config(device_binding="report"),
        on_event=events.fanout(*hooks),
    )
    if metrics is not None:
        metrics.instrument(store)
    auth = SessionAuth(store, cookies=CookieSettings(secure=secure_cookies))
    limiter = AsyncLoginRateLimiter.for_store(store)
    passwords = _Passwords(users)

    def login_page(
        request: Request,
        error: str = "",
        username: str = "",
        status: int = 200,
        retry_after: int = 0,
    ) -> HTMLResponse:
        warning = _cookie_warning(request) if secure_cookies else ""
        html = pages.login(
            passwords.users.items(),
            error,
            username,
            notice=_notice(request),
            warning=warning,
            retry_after=retry_after,
        )
        response = HTMLResponse(html, status)
        if NOTICE_COOKIE in request.cookies:
            response.delete_cookie(NOTICE_COOKIE, path="/")
        return response

    def with_notice(response: Response, text: str) -> Response:
        """Carry a result message to the page the redirect lands on (shown once)."""
        # Unpadded base64url: a cookie value that needs no quoting.
        value = base64.urlsafe_b64encode(text[:200].encode()).decode().rstrip("=")
        response.set_cookie(
            NOTICE_COOKIE,
            value,
            max_age=60,
            httponly=True,
            secure=secure_cookies,
            samesite="strict",
        )
        return response

    def to_login(state: AuthState | None) -> Response:
        if state is not None and state.refusal is not None and state.refusal.reason == "expired":
            return RedirectResponse("/auth/refresh?next=/dashboard", 303)
        response = RedirectResponse("/login", 303)
        if state is not None and state.refusal is not None:
            auth.clear_cookies(response)  # a dead session's cookies are of no more use
        return response

    def signed_in(request: Request) -> Principal | None:
        state = auth.state(request)
        return state.principal if state is not None else None

    async def home(request: Request) -> Response:
        return RedirectResponse("/dashboard" if signed_in(request) else "/login", 303)

    async def login_form(request: Request) -> Response:
        if signed_in(request):
            return RedirectResponse("/dashboard", 303)
        return login_page(request)

    async def login_submit(request: Request) -> Response:
        form = await request.form()
        username = str(form.get("username") or "").strip()
        password = str(form.get("password") or "")
        try:
            decision = await limiter.hit(username, _client_ip(request) or None)
        except InvalidInput:
            return login_page(request, "Enter a user name (1 to 256 characters).", status=400)
        if not decision.allowed:
            what = "this account" if decision.limited_by != "ip" else "your address"
            wait = int(decision.retry_after_header)
            refused = login_page(
                request, f"Too many sign-in attempts for {what}.", username, 429, wait
            )
            refused.headers["Retry-After"] = decision.retry_after_header
            return refused
        if not passwords.check(username, password):
            return login_page(request, "Wrong user name or password.", username, status=400)
        device_id = request.cookies.get(DEVICE_COOKIE, "")
        if not _DEVICE_ID.fullmatch(device_id):
            device_id = secrets.token_urlsafe(12)
        user_agent = request.headers.get("user-agent", "")[:1024]
        browser, system = ua_family(user_agent)
        device = Device(
            id=device_id,
            name=f"{browser} on {system}",
            user_agent=user_agent,
            ip=_client_ip(request)[:64],
        )
        pair = await store.login(
            username,
            device=device,
            claims={"name": username},
            methods="pwd",
            level=1,
            persistent=form.get("remember") == "on",
        )
        response = RedirectResponse("/dashboard", 303)
        auth.set_login_cookies(response, pair)
        if pair.new_device:  # where a real app sends its "new sign-in" mail
            with_notice(response, f"New sign-in: {device.name} is a new device for {username}.")
            await store.update(username, pair.session_id, data={NEW_DEVICE: True})
        response.set_cookie(
            DEVICE_COOKIE,
            device_id,
            max_age=_DEVICE_COOKIE_AGE,
            httponly=True,
            secure=secure_cookies,
            samesite="strict",
        )
        return response

    async def dashboard(request: Request) -> Response:
        principal = signed_in(request)
        if principal is None:
            return to_login(auth.state(request))
        try:
            groups = await store.devices(principal.user_id)
            history = await store.history(principal.user_id, limit=12)
        except StoreUnavailable:
            groups, history = [], []
        csrf = auth.csrf_token(principal)
        notice = _notice(request)
        html = pages.dashboard(
            principal,
            groups,
            my_device(request, principal),
            csrf,
            list(recent),
            notice,
            ask=must_confirm(principal),
            history=history,
        )
        response = HTMLResponse(html)
        if NOTICE_COOKIE in request.cookies:
            response.delete_cookie(NOTICE_COOKIE, path="/")
        return response

    def my_device(request: Request, principal: Principal) -> str | None:
        mine = principal.session.device.id if principal.session else None
        return mine or request.cookies.get(DEVICE_COOKIE)

    async def find_device(principal: Principal, device_id: str) -> DeviceSessions | None:
        groups = await store.devices(principal.user_id)
        return next((g for g in groups if g.device.id == device_id), None)

    async def confirm_sign_out(request: Request) -> Response:
        # The confirm step for browsers without JavaScript (the dashboard opens a <dialog>).
        principal = signed_in(request)
        if principal is None:
            return to_login(auth.state(request))
        group = await find_device(principal, request.query_params.get("device_id", ""))
        if group is None:
            return with_notice(RedirectResponse("/dashboard", 303), "That device is signed out.")
        mine = group.device.id == my_device(request, principal)
        html = pages.confirm_page(principal, auth.csrf_token(principal), group, mine)
        return HTMLResponse(html)

    async def confirm_sign_out_others(request: Request) -> Response:
        principal = signed_in(request)
        if principal is None:
            return to_login(auth.state(request))
        mine = my_device(request, principal)
        others = sum(1 for g in await store.devices(principal.user_id) if g.device.id != mine)
        if not others:
            return with_notice(RedirectResponse("/dashboard", 303), "No other device is signed in.")
        csrf = auth.csrf_token(principal)
        ask = must_confirm(principal)
        return HTMLResponse(pages.confirm_page(principal, csrf, others=others, ask=ask))

    async def sign_out_device(request: Request) -> Response:
        principal = signed_in(request)
        if principal is None:
            return to_login(auth.state(request))
        device_id = str((await request.form()).get("device_id") or "")
        mine = my_device(request, principal)
        group = await find_device(principal, device_id)
        name = group.device.name or device_id if group is not None else "That device"
        try:
            count = await store.revoke_device(principal.user_id, device_id)
        except InvalidInput:
            return RedirectResponse("/dashboard", 303)
        if device_id != mine:
            done = (
                f"Signed out {name} ({_sessions(count)})." if count else f"{name} was signed out."
            )
            return with_notice(RedirectResponse("/dashboard", 303), done)
        response = RedirectResponse("/login", 303)
        auth.clear_cookies(response)
        return with_notice(response, f"You signed out this device ({name}).")

    def must_confirm(principal: Principal) -> bool:
        """Whether signing out the other devices asks for the password first."""
        proved = principal.auth_time or 0
        return confirm_after <= 0 or time.time() - proved > confirm_after

    async def sign_out_others(request: Request) -> Response:
        principal = signed_in(request)
        if principal is None:
            return to_login(auth.state(request))
        if must_confirm(principal):
            password = str((await request.form()).get("password") or "")
            # The login's limits: a stolen session must not guess the password freely.
            decision = await limiter.hit(principal.user_id, _client_ip(request) or None)
            if not decision.allowed or not passwords.check(principal.user_id, password):
                mine = my_device(request, principal)
                groups = await store.devices(principal.user_id)
                others = sum(1 for g in groups if g.device.id != mine)
                csrf = auth.csrf_token(principal)
                error = "Wrong password."
                if not decision.allowed:
                    error = f"Too many attempts: try again in {decision.retry_after_header} s."
                page = pages.confirm_page(principal, csrf, others=others, ask=True, error=error)
                refused = HTMLResponse(page, 400 if decision.allowed else 429)
                if not decision.allowed:
                    refused.headers["Retry-After"] = decision.retry_after_header
                return refused
            # The step-up: this session records the proof (auth_time, amr "pwd").
            await store.step_up(principal.user_id, principal.session_id, method="pwd", level=1)
        count = await store.revoke_user(principal.user_id, keep=principal.session_id)
        done = "No other device was signed in."
        if count:
            done = f"Signed out every other device ({_sessions(count)})."
        return with_notice(RedirectResponse("/dashboard", 303), done)

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", 303)
        await auth.sign_out(request, response)  # revokes the session, then clears the cookies
        return with_notice(response, "You are signed out.")

    async def api_me(request: Request) -> Response:
        principal = await auth.require_principal(request)
        session = principal.session
        return JSONResponse(
            {
                "user_id": principal.user_id,
                "session_id": principal.session_id,
                "claims": principal.claims,
                "degraded": principal.degraded,
                "device": None if session is None else session.device.name,
                "expires_at": principal.expires_at,
            }
        )

    async def refresh(request: Request) -> Response:
        target = request.query_params.get("next", "/dashboard")
        if not target.startswith("/") or target.startswith("//"):
            target = "/dashboard"
        response = RedirectResponse(target, 303)
        try:
            await auth.refresh(request, response)
        except AuthRefused:
            response = RedirectResponse("/login", 303)
            auth.clear_cookies(response)
        return response

    async def metrics_page(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def unavailable(request: Request, exc: Exception) -> Response:
        return HTMLResponse("<p>The session store is unreachable; try again shortly.</p>", 503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.close()

    routes = [
        Route("/", home),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Route("/dashboard", dashboard),
        Route("/devices/signout", confirm_sign_out, methods=["GET"]),
        Route("/devices/signout", sign_out_device, methods=["POST"]),
        Route("/devices/signout-others", confirm_sign_out_others, methods=["GET"]),
        Route("/devices/signout-others", sign_out_others, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/me", api_me),
        Route(auth.cookies.refresh_path, refresh),
    ]
    if metrics is not None:
        routes.append(Route("/metrics", metrics_page))
    return Starlette(
        routes=routes,
        middleware=[Middleware(SessionAuthMiddleware, auth=auth)],
        # The integration's JSON refusals (/api/me); an HTML page for the store being down.
        exception_handlers={**auth.exception_handlers, StoreUnavailable: unavailable},
        lifespan=lifespan,
    )
