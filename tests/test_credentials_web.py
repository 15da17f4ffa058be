"""Which credentials a request authenticates with, in every integration.

The Bearer header wins over the access cookie; a header of another scheme (``Basic``)
leaves the cookie to speak; a malformed Bearer header is a 400 even beside a good cookie.
The integrations read the cookies only when there is no Bearer token, and the client's
IP and User-Agent only when validation uses them (device binding, adoption): these cases
pin what must not change with that.
"""

from __future__ import annotations

from typing import Any

import pytest

from sessionstore import Config, Device, Keyring, SessionStore
from web_support import admin_fixture, server_fixtures, web_client

server, url = server_fixtures("credentials")
admin = admin_fixture()
FRAMEWORKS = ["fastapi", "flask", "litestar"]
CONFIG = Config(socket_timeout=10.0)


def pairs(admin: SessionStore) -> tuple[Any, Any]:
    """Two sessions of two users: one for the header, one for the cookie."""
    device = Device(id="laptop", user_agent="Mozilla/5.0 (X11; Linux x86_64)")
    return admin.login("header-user", device=device), admin.login("cookie-user", device=device)


# (what the request carries, the status, whose session answers or the refusal's reason)
CASES = {
    "the Bearer header wins over the cookie": ("bearer", "cookie", 200, "header-user"),
    "another scheme leaves the cookie to speak": ("basic", "cookie", 200, "cookie-user"),
    "another scheme alone is no credential": ("basic", None, 401, "missing"),
    "a malformed Bearer header is refused beside a good cookie": (
        "bad",
        "cookie",
        400,
        "malformed",
    ),
}
SCHEMES = {"basic": "Basic dXNlcjpwYXNz", "bad": "Bearer not one token"}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", FRAMEWORKS)
def test_which_credentials_speak(
    name: str, case: str, url: str, keyring: Keyring, admin: SessionStore
) -> None:
    scheme, cookie_of, status, answer = CASES[case]
    header, cookie = pairs(admin)
    sent = {"Authorization": SCHEMES.get(scheme, f"Bearer {header.access_token}")}
    if cookie_of is not None:
        sent["Cookie"] = f"ss_access={cookie.access_token}"
    with web_client(name, url, keyring, CONFIG) as get:  # a fresh cookie jar each time
        got, _, body, _ = get(sent)
    assert got == status
    if status == 200:
        session = header if answer == "header-user" else cookie
        assert body == {"user": answer, "session": session.session_id}
    else:
        assert body["reason"] == answer
