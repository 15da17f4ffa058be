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


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_the_bearer_header_wins_over_the_cookie(
    name: str, url: str, keyring: Keyring, admin: SessionStore
) -> None:
    header, cookie = pairs(admin)
    with web_client(name, url, keyring, CONFIG) as get:
        status, _, body, _ = get(
            {
                "Authorization": f"Bearer {header.access_token}",
                "Cookie": f"ss_access={cookie.access_token}",
            }
        )
    assert status == 200
    assert body == {"user": "header-user", "session": header.session_id}


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_another_scheme_leaves_the_cookie_to_speak(
    name: str, url: str, keyring: Keyring, admin: SessionStore
) -> None:
    _, cookie = pairs(admin)
    with web_client(name, url, keyring, CONFIG) as get:
        status, _, body, _ = get(
            {"Authorization": "Basic dXNlcjpwYXNz", "Cookie": f"ss_access={cookie.access_token}"}
        )
    assert status == 200
    assert body == {"user": "cookie-user", "session": cookie.session_id}
    with web_client(name, url, keyring, CONFIG) as get:  # a fresh cookie jar
        status, _, body, _ = get({"Authorization": "Basic dXNlcjpwYXNz"})
    assert status == 401 and body["reason"] == "missing"


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_a_malformed_bearer_header_is_refused_beside_a_good_cookie(
    name: str, url: str, keyring: Keyring, admin: SessionStore
) -> None:
    _, cookie = pairs(admin)
    with web_client(name, url, keyring, CONFIG) as get:
        status, _, body, _ = get(
            {"Authorization": "Bearer not one token", "Cookie": f"ss_access={cookie.access_token}"}
        )
    assert status == 400
    assert body["reason"] == "malformed"
