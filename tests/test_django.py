"""Django and DRF integration through Django's test client and DRF's ``APIClient``,
against a real server: token login/refresh/logout, 401 shapes, CSRF with cookies,
degraded answers, ASGI, and the lazily created store in a forked worker."""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

import pytest

pytest.importorskip("django")
pytest.importorskip("rest_framework")

import django_site

django_site.setup()  # before the imports below: DRF reads its settings at import

from django.test import AsyncClient, Client, override_settings  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from django_support import PASSWORD, django_fixtures, options  # noqa: E402
from forks import fork, outcome  # noqa: E402
from sessionstore import (  # noqa: E402
    Config,
    Keyring,
    RefreshReuseDetected,
    SessionStore,
)
from sessionstore.integrations.django import conf  # noqa: E402
from sessionstore.testing import LocalServer  # noqa: E402
from sessionstore.tokens import issue_access_token  # noqa: E402

server, url, site, alice = django_fixtures("django")

CHALLENGE = 'Bearer realm="api", error="invalid_token", error_description="{}"'


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client: Client, path: str = "/api/auth/login") -> Any:
    answer = client.post(
        path,
        json.dumps({"username": "alice", "password": PASSWORD}),
        content_type="application/json",
    )
    assert answer.status_code == 200, answer.content
    return answer.json()


def test_drf_login_refresh_logout(alice: Any) -> None:
    client = APIClient()
    pair = login(client)
    assert pair["token_type"] == "Bearer" and pair["expires_in"] > 0
    me = client.get("/api/me", headers=bearer(pair["access_token"]))
    assert me.json() == {"user": str(alice.pk), "username": "alice"}
    plain = client.get("/me", headers=bearer(pair["access_token"]))
    assert plain.json() == {"user": str(alice.pk), "degraded": False, "username": "alice"}

    rotated = client.post("/api/auth/refresh", {"refresh_token": pair["refresh_token"]})
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["session_id"] == pair["session_id"] and new["access_token"] != pair["access_token"]

    out = client.post("/api/auth/logout", headers=bearer(new["access_token"]))
    assert out.json() == {"revoked": True}
    gone = client.get("/api/me", headers=bearer(new["access_token"]))
    assert gone.status_code == 401
    assert gone.headers["WWW-Authenticate"] == CHALLENGE.format("The session was revoked")
    assert gone.json() == {
        "error": "invalid_token",
        "error_description": "The session was revoked",
        "reason": "revoked",
    }
    reused = client.post("/api/auth/refresh", {"refresh_token": new["refresh_token"]})
    assert reused.status_code == 401 and reused.json()["reason"] == "revoked"


def test_wrong_password_is_invalid_grant(alice: Any) -> None:
    answer = APIClient().post("/api/auth/login", {"username": "alice", "password": "nope"})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("path", ["/api/me", "/me"])
def test_401_shapes(path: str, alice: Any, keyring: Keyring) -> None:
    client = Client()
    missing = client.get(path)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert missing.json() == {
        "error": "invalid_request",
        "error_description": "Authentication required",
        "reason": "missing",
    }
    invalid = client.get(path, headers=bearer("abc.def.ghi"))
    assert invalid.status_code == 401
    assert invalid.headers["WWW-Authenticate"] == CHALLENGE.format("The access token is invalid")
    assert invalid.json()["reason"] == "invalid"
    session = conf.get_store().create(str(alice.pk), device=_device())
    old, _ = issue_access_token(
        keyring,
        user_id=str(alice.pk),
        session_id=session.session_id,
        claims={},
        config=Config(),
        now=time.time() - 3600,
    )
    expired = client.get(path, headers=bearer(old))
    assert expired.status_code == 401 and expired.json()["reason"] == "expired"
    assert expired.headers["WWW-Authenticate"] == CHALLENGE.format("The access token expired")
    malformed = client.get(path, headers={"Authorization": "Bearer a b"})
    assert malformed.status_code == 400
    assert 'error="invalid_request"' in malformed.headers["WWW-Authenticate"]


def _device() -> Any:
    from sessionstore import Device

    return Device(id="test-device")


def test_cookie_login_and_csrf(alice: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    body = login(client, "/cookie/login")
    assert "access_token" not in body and "refresh_token" not in body
    access, refresh = client.cookies["ss_access"], client.cookies["ss_refresh"]
    assert access["httponly"] and access["samesite"].lower() == "strict"
    assert refresh["path"] == "/auth/refresh" and refresh["httponly"]
    assert "ss_csrf" not in client.cookies  # Django's csrftoken protects cookie requests
    csrf = client.cookies["csrftoken"].value
    assert client.get("/api/me").json()["username"] == "alice"  # safe: no token needed

    refused = client.post("/api/transfer")
    assert refused.status_code == 403 and refused.json()["reason"] == "csrf"
    assert client.post("/api/transfer", HTTP_X_CSRFTOKEN=csrf).json()["done"] is True
    assert client.post("/transfer").status_code == 403  # Django's CsrfViewMiddleware
    assert client.post("/transfer", HTTP_X_CSRFTOKEN=csrf).json() == {"done": True}

    rotated = client.post("/auth/refresh")
    assert rotated.status_code == 200 and client.cookies["ss_access"].value != access.value
    # A Bearer caller has no ambient credential: no CSRF token asked, in DRF or Django views.
    pair = conf.get_store().login(str(alice.pk), device=_device())
    api = Client(enforce_csrf_checks=True)
    assert api.post("/api/transfer", headers=bearer(pair.access_token)).json() == {
        "done": True,
        "degraded": False,
    }
    assert api.post("/transfer", headers=bearer(pair.access_token)).json() == {"done": True}
    assert api.post("/transfer", headers=bearer("abc.def.ghi")).status_code == 403

    out = client.post("/api/auth/logout", HTTP_X_CSRFTOKEN=csrf)
    assert out.json() == {"revoked": True}
    assert client.cookies["ss_access"].value == "" and client.cookies["ss_access"]["max-age"] == 0


def test_user_loader_gone_user_is_anonymous(alice: Any) -> None:
    pair = conf.get_store().login(str(alice.pk), device=_device())
    alice.delete()
    # The token is still good: the principal is set, the user is anonymous.
    answer = Client().get("/me", headers=bearer(pair.access_token))
    assert answer.json()["username"] == ""


async def test_asgi_path_uses_the_async_store(alice: Any) -> None:
    pair = await conf.get_async_store().login(str(alice.pk), device=_device())
    answer = await AsyncClient().get("/ame", headers=bearer(pair.access_token))
    assert answer.json() == {"user": str(alice.pk), "degraded": False, "username": "alice"}
    assert (await AsyncClient().get("/ame")).status_code == 401
    # A sync DRF view behind the async middleware: it reuses the middleware's validation.
    api = await AsyncClient().get("/api/me", headers=bearer(pair.access_token))
    assert api.json() == {"user": str(alice.pk), "username": "alice"}
    # The session engine under ASGI: django.contrib.auth's login, then the session's user.
    browser = AsyncClient()
    body = json.dumps({"username": "alice", "password": PASSWORD})
    signed = await browser.post("/site/login", body, content_type="application/json")
    assert signed.json() == {"ok": True}
    assert (await browser.get("/site/whoami")).json()["user"] == "alice"


FAST = {"socket_timeout": 0.25, "breaker_failures": 1, "breaker_reset": 30.0}


@pytest.mark.parametrize("fallback", ["stateless", "deny"])
def test_degraded_answers_when_redis_stops(
    fallback: str, alice: Any, fault_server: LocalServer, keyring: Keyring
) -> None:
    with override_settings(
        SESSIONSTORE=options(fault_server.url, keyring, fallback=fallback, **FAST)
    ):
        pair = conf.get_store().login(str(alice.pk), device=_device())
        fault_server.stop()
        client = APIClient()
        me = client.get("/api/me", headers=bearer(pair.access_token))
        transfer = client.post("/api/transfer", headers=bearer(pair.access_token))
        plain = client.post("/transfer", headers=bearer(pair.access_token))
        signin = client.post("/api/auth/login", {"username": "alice", "password": PASSWORD})
    assert signin.status_code == 503 and signin.headers["Retry-After"] == "1"
    assert signin.json()["reason"] == "unavailable"
    if fallback == "deny":
        for answer in (me, transfer, plain):
            assert answer.status_code == 503 and answer.json()["reason"] == "unavailable"
            assert answer.headers["Retry-After"] == "1"
        return
    assert me.json() == {"user": str(alice.pk), "username": "alice"}
    for answer in (transfer, plain):
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
        assert answer.json() == {
            "error": "temporarily_unavailable",
            "error_description": "This route needs the session store, which is unreachable",
            "reason": "degraded",
        }


def test_a_forked_worker_makes_its_own_store(alice: Any) -> None:
    parent = conf.get_store()
    pair = parent.login(str(alice.pk), device=_device())

    def child(_: Any) -> Any:
        mine = conf.get_store()
        assert mine is not parent and mine is conf.get_store()
        principal = mine.validate(pair.access_token)
        answer = Client().get("/me", headers=bearer(pair.access_token))
        return [os.getpid(), principal.user_id, answer.status_code]

    pid, pipe = fork(child)
    child_pid, user, status = outcome(pid, pipe)
    assert child_pid == pid and user == str(alice.pk) and status == 200
    assert conf.get_store() is parent
    assert parent.validate(pair.access_token).user_id == str(alice.pk)


def test_settings_are_checked(site: None) -> None:
    from django.core.exceptions import ImproperlyConfigured

    bogus = override_settings(SESSIONSTORE={"URL": "redis://x", "BOGUS": 1})
    with bogus, pytest.raises(ImproperlyConfigured, match="BOGUS"):
        conf.get_store()
    unset = override_settings(SESSIONSTORE={"URL_ENV": "SESSIONSTORE_NOT_SET_ANYWHERE"})
    with unset, pytest.raises(ImproperlyConfigured, match="SESSIONSTORE_NOT_SET_ANYWHERE"):
        conf.get_store()
    assert isinstance(conf.get_store(), SessionStore)


def test_management_commands_mirror_the_cli(alice: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from django.core.management import call_command

    pair = conf.get_store().login(str(alice.pk), device=_device())
    call_command("sessionstore", "sessions", "list", str(alice.pk), "--json")
    listed = json.loads(capsys.readouterr().out)
    assert [s["session_id"] for s in listed] == [pair.session_id]
    call_command("sessionstore", "sessions", "revoke", str(alice.pk), "--all")
    assert f"revoked 1 session(s) of '{alice.pk}'" in capsys.readouterr().out
    with pytest.raises(SystemExit) as nothing:  # the CLI's exit code: nothing to revoke
        call_command("sessionstore", "sessions", "revoke", str(alice.pk), "--all")
    assert nothing.value.code == 1
    assert capsys.readouterr().out == f"revoked 0 session(s) of '{alice.pk}'\n"
    call_command("sessionstore", "sessions", "history", str(alice.pk), "--limit", "1", "--json")
    [entry] = json.loads(capsys.readouterr().out)  # the newest: the revocation above
    assert (entry["kind"], entry["reason"], entry["session_id"]) == (
        "revoked",
        "user",
        pair.session_id,
    )
    with contextlib.suppress(SystemExit):  # 1: the test server keeps nothing on disk
        call_command("sessionstore", "doctor", "--json")
    report = json.loads(capsys.readouterr().out)
    assert {check["name"] for check in report["checks"]} >= {"server", "maxmemory-policy"}


def test_rotate_tokens_moves_the_session_and_its_cookies(alice: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    login(client, "/cookie/login")
    old_access, old_refresh = client.cookies["ss_access"].value, client.cookies["ss_refresh"].value
    old_csrf = client.cookies["csrftoken"].value
    store = conf.get_store()
    (before,) = store.sessions(str(alice.pk))
    assert client.post("/rotate").status_code == 403  # cookie auth: Django's CSRF check
    answer = client.post("/rotate", HTTP_X_CSRFTOKEN=old_csrf)
    assert answer.status_code == 200, answer.content
    new_sid = answer.json()["session_id"]
    assert new_sid != before.session_id
    access = client.cookies["ss_access"].value
    assert access != old_access and client.cookies["ss_refresh"].value != old_refresh
    assert client.cookies["csrftoken"].value != old_csrf  # rotated as at a login
    principal = store.validate(access)
    assert principal.session_id == new_sid and principal.claims == {"roles": ["admin"]}
    assert principal.session is not None and principal.session.created_at == before.created_at
    gone = Client().get("/me", headers=bearer(old_access))
    assert gone.status_code == 401 and gone.json()["reason"] == "revoked"
    with pytest.raises(RefreshReuseDetected):  # reuse of the family: the new id is revoked
        store.refresh(old_refresh)
    assert Client().get("/me", headers=bearer(access)).status_code == 401
    # A Bearer caller rotates too; without a token there is nothing to rotate.
    pair = store.login(str(alice.pk), device=_device())
    moved = Client().post("/rotate", headers=bearer(pair.access_token))
    assert moved.status_code == 200 and moved.json()["session_id"] != pair.session_id
    assert Client().post("/rotate").status_code == 401


@pytest.mark.parametrize("path", ["/api/session", "/session"])
def test_which_credentials_speak(path: str, alice: Any) -> None:
    """The Bearer header wins over the cookie; another scheme leaves the cookie to speak;
    a malformed Bearer header is a 400 even beside a good cookie."""
    store = conf.get_store()
    header = store.login(str(alice.pk), device=_device())
    cookie = store.login(str(alice.pk), device=_device())
    client = Client()
    client.cookies["ss_access"] = cookie.access_token
    both = client.get(path, headers=bearer(header.access_token))
    assert both.status_code == 200 and both.json()["session"] == header.session_id
    basic = client.get(path, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 200 and basic.json()["session"] == cookie.session_id
    malformed = client.get(path, headers={"Authorization": "Bearer a b"})
    assert malformed.status_code == 400 and malformed.json()["reason"] == "malformed"


@pytest.mark.parametrize("path", ["/api/session", "/session"])
def test_device_binding_gets_the_request_ip_and_user_agent(
    path: str, alice: Any, url: str, keyring: Keyring
) -> None:
    from sessionstore import Device

    with override_settings(SESSIONSTORE=options(url, keyring, device_binding="enforce")):
        device = Device(id="laptop", ip="10.0.0.8", user_agent="Mozilla/5.0 (X11; Linux x86_64)")
        pair = conf.get_store().login(str(alice.pk), device=device)
        client = Client(HTTP_USER_AGENT=device.user_agent)
        near = client.get(path, headers=bearer(pair.access_token), REMOTE_ADDR="10.0.0.99")
        far = client.get(path, headers=bearer(pair.access_token), REMOTE_ADDR="192.0.2.1")
        other = Client(HTTP_USER_AGENT="curl/8.0").get(
            path, headers=bearer(pair.access_token), REMOTE_ADDR="10.0.0.8"
        )
    assert near.status_code == 200  # the same /24, the same browser
    assert far.status_code == 401 and far.json()["reason"] == "device"
    assert other.status_code == 401 and other.json()["reason"] == "device"
