"""The new token pair of an adopted legacy token, handed to the client with the response.

Pure (no framework). ``Config.legacy_tokens`` makes ``validate`` adopt a legacy token on
first sight (``Principal.adopted``); the integrations put that pair in the response of the
same request: as the login cookies (access, refresh, CSRF) when the legacy token came in
the access cookie, else in three response headers, ``Sessionstore-Access-Token``,
``Sessionstore-Refresh-Token`` and ``Sessionstore-Expires-In`` (seconds), for a client that
sent it as a Bearer token. Either way ``Cache-Control: no-store`` (RFC 6749 section 5.1:
a response carrying tokens must not be cached). A browser script reading the headers across
origins needs them in your CORS ``Access-Control-Expose-Headers``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sessionstore.integrations._http import AuthState, Cookie, HttpAuth

__all__ = ["ACCESS_HEADER", "EXPIRES_HEADER", "REFRESH_HEADER", "Handoff", "handoff"]

ACCESS_HEADER = "Sessionstore-Access-Token"
REFRESH_HEADER = "Sessionstore-Refresh-Token"
EXPIRES_HEADER = "Sessionstore-Expires-In"
_NO_STORE = ("Cache-Control", "no-store")


@dataclass(frozen=True)
class Handoff:
    """What the response must carry: cookies to set, headers to add."""

    cookies: tuple[Cookie, ...]
    headers: tuple[tuple[str, str], ...]


def handoff(http: HttpAuth, state: AuthState | None) -> Handoff | None:
    """The pair of a legacy token this request's validation adopted, or None (the usual)."""
    principal = state.principal if state is not None else None
    if principal is None or principal.adopted is None:
        return None
    pair = principal.adopted
    assert state is not None
    if state.from_cookie:
        return Handoff(tuple(http.login_cookies(pair)), (_NO_STORE,))
    headers = (
        (ACCESS_HEADER, pair.access_token),
        (REFRESH_HEADER, pair.refresh_token),
        (EXPIRES_HEADER, str(pair.expires_in)),
        _NO_STORE,
    )
    return Handoff((), headers)
