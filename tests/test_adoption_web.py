"""Adoption through the integrations: the new pair rides on the response of the first request.

FastAPI/Starlette (middleware), Flask (``after_request``), Litestar and Django: a legacy
Bearer token gets the pair in the ``Sessionstore-*`` headers, a legacy access cookie gets
the login cookies; later requests, legacy or new, land on the same session. And the
migration: N active users with legacy tokens, page loads of parallel requests, counted
until every user holds a sessionstore pair.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import jwt
import pytest

from sessionstore import Config, Keyring, SessionStore
from sessionstore.integrations._adoption import ACCESS_HEADER, EXPIRES_HEADER, REFRESH_HEADER
from sessionstore.legacy import LegacyTokens
from web_support import BASE, admin_fixture, fastapi_app, server_fixtures, web_client

server, url = server_fixtures("adoption")
SECRET = b"the-legacy-flask-jwt-secret-0123456789"


def legacy() -> LegacyTokens:
    now = time.time()
    return LegacyTokens(
        key=SECRET,
        algorithms=["HS256"],
        issuer="legacy",
        window_start=now - 86_400,
        window_end=now + 86_400,
    )


def legacy_token(user: str) -> str:
    now = int(time.time())
    claims = {"sub": user, "iss": "legacy", "iat": now - 10, "exp": now + 900}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def config() -> Config:
    # Sixty adoptions at once on a loaded CI box: the default 0.25 s socket timeout timed a
    # pipeline of create scripts out (503) in one CI run; counts are asserted, not times.
    return Config(legacy_tokens=legacy(), socket_timeout=10.0)


admin = admin_fixture()
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"


@pytest.mark.parametrize("name", ["fastapi", "flask", "litestar"])
def test_a_bearer_legacy_token_gets_its_pair_in_the_headers(
    name: str, url: str, keyring: Keyring, admin: SessionStore
) -> None:
    token = legacy_token("alice")
    with web_client(name, url, keyring, config()) as get:
        status, headers, body, _ = get({"Authorization": f"Bearer {token}", "User-Agent": UA})
        assert status == 200 and body["user"] == "alice"
        # The minted session records the request's browser (device binding is off here).
        minted = admin.get("alice", body["session"])
        assert minted is not None and minted.device.user_agent == UA
        access, refresh = headers[ACCESS_HEADER.lower()], headers[REFRESH_HEADER.lower()]
        assert int(headers[EXPIRES_HEADER.lower()]) > 0
        assert "no-store" in headers["cache-control"]
        principal = admin.validate(access)
        assert principal.session_id == body["session"]
        assert admin.refresh(refresh).session_id == body["session"]
        # The new token, and the legacy one again: the same session, no second pair.
        for bearer in (access, token):
            status, headers, again, _ = get({"Authorization": f"Bearer {bearer}"})
            assert (status, again) == (200, body)
            assert ACCESS_HEADER.lower() not in headers
    assert [s.session_id for s in admin.sessions("alice")] == [body["session"]]


@pytest.mark.parametrize("name", ["fastapi", "flask", "litestar"])
def test_a_cookie_legacy_token_gets_the_login_cookies(
    name: str, url: str, keyring: Keyring, admin: SessionStore
) -> None:
    token = legacy_token("bob")
    with web_client(name, url, keyring, config()) as get:
        status, headers, body, cookies = get({"Cookie": f"ss_access={token}"})
        assert status == 200 and body["user"] == "bob"
        assert {"ss_access", "ss_refresh", "ss_csrf"} <= set(cookies)
        assert ACCESS_HEADER.lower() not in headers  # cookies in, cookies out
        assert admin.validate(cookies["ss_access"]).session_id == body["session"]
        status, _, again, more = get({"Cookie": f"ss_access={cookies['ss_access']}"})
        assert (status, again, more) == (200, body, {})
    assert len(admin.sessions("bob")) == 1


def test_django_hands_the_pair_over(url: str, keyring: Keyring, admin: SessionStore) -> None:
    pytest.importorskip("django")
    import django_site

    django_site.setup()
    from django.test import Client, override_settings

    from django_support import options

    token = legacy_token("101")  # the test project's users have integer ids
    settings = options(url, keyring)
    settings["CONFIG"] = {**settings["CONFIG"], "legacy_tokens": legacy()}
    with override_settings(SESSIONSTORE=settings):
        client = Client()
        answer = client.get("/me", headers={"Authorization": f"Bearer {token}"})
        access = answer.headers[ACCESS_HEADER]
        assert admin.validate(access).user_id == "101"
        client.cookies["ss_access"] = legacy_token("102")
        answer = client.get("/me")
        assert "ss_access" in answer.cookies and "ss_csrf" not in answer.cookies
    assert len(admin.sessions("101")) == 1 and len(admin.sessions("102")) == 1


async def test_every_active_user_moves_on_their_first_page_load(
    url: str, keyring: Keyring, admin: SessionStore, measured: Callable[[str], None]
) -> None:
    """N users on legacy tokens, page loads of 3 parallel API calls, 20 users at a time:
    the requests it takes until every user holds a sessionstore pair."""
    users, per_page, batch = 200, 3, 20
    app, store = fastapi_app(url, keyring, config())
    held: dict[str, str] = {}  # user -> the access token the client now sends
    tokens = {f"user-{n}": legacy_token(f"user-{n}") for n in range(users)}
    requests = 0

    async def page_load(client: httpx.AsyncClient, user: str) -> None:
        nonlocal requests
        bearer = held.get(user, tokens[user])
        answers = await asyncio.gather(
            *(
                client.get("/me", headers={"Authorization": f"Bearer {bearer}"})
                for _ in range(per_page)
            )
        )
        requests += per_page
        for answer in answers:
            assert answer.status_code == 200 and answer.json()["user"] == user
            if ACCESS_HEADER in answer.headers:
                assert user not in held, "a second pair for one user"
                held[user] = answer.headers[ACCESS_HEADER]

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        order = list(tokens)
        while len(held) < users:
            waiting = [u for u in order if u not in held][:batch]
            await asyncio.gather(*(page_load(client, u) for u in waiting))
    await store.close()
    assert requests == users * per_page  # each user moved by its first page load
    for user in tokens:
        assert len(admin.sessions(user)) == 1
    measured(
        f"adoption: {users} active users on legacy tokens, page loads of {per_page} parallel "
        f"requests ({batch} users at once): 100% moved after {requests} requests "
        f"({requests // users} per user), {users} sessions"
    )
