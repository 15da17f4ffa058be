"""The Django session engine (``sessionstore.integrations.django.sessions``) through
``django.contrib.auth`` login/logout and Django's test client, against a real server:
no fixation, flush, expiry, the size limit, the per-user index, and signing out the
other sessions on a password change."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("django")
pytest.importorskip("rest_framework")

import django_site

django_site.setup()

from django.contrib.sessions.backends.base import UpdateError  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from django_support import PASSWORD, django_fixtures, options  # noqa: E402
from sessionstore import Device, Keyring  # noqa: E402
from sessionstore.integrations.django import conf  # noqa: E402
from sessionstore.integrations.django.sessions import (  # noqa: E402
    ANONYMOUS,
    SessionDataError,
    SessionStore,
    address_of,
)
from sessionstore.testing import LocalServer  # noqa: E402
from web_support import LAPTOP_UA, PHONE_UA  # noqa: E402

server, url, site, alice = django_fixtures("django-sessions")


def post(client: Client, path: str, body: dict[str, Any]) -> Any:
    answer = client.post(path, json.dumps(body), content_type="application/json")
    assert answer.status_code == 200, answer.content
    return answer.json()


def signed_in(user_agent: str = LAPTOP_UA) -> Client:
    client = Client(HTTP_USER_AGENT=user_agent)
    post(client, "/site/login", {"username": "alice", "password": PASSWORD})
    return client


def test_login_cycles_the_key_and_links_the_user(alice: Any) -> None:
    client = Client(HTTP_USER_AGENT=LAPTOP_UA)
    post(client, "/site/remember", {"cart": [1, 2]})
    before = client.cookies["sessionid"].value
    anonymous = address_of(before)
    assert anonymous is not None and anonymous[0].startswith(ANONYMOUS)

    post(client, "/site/login", {"username": "alice", "password": PASSWORD})
    after = client.cookies["sessionid"].value
    assert after != before  # no fixation: the planted key is dead
    assert not SessionStore().exists(before)
    assert address_of(after) == (str(alice.pk), address_of(after)[1])  # type: ignore[index]
    me = client.get("/site/whoami").json()
    assert me == {"user": "alice", "key": after, "visits": 1}  # the data came along

    store = conf.get_store()
    (session,) = store.sessions(str(alice.pk))
    assert session.data["cart"] == [1, 2] and session.data["_auth_user_id"] == str(alice.pk)
    assert session.device.user_agent == LAPTOP_UA  # recorded by our SessionMiddleware
    assert store.sessions(anonymous[0]) == []


def test_logout_revokes_and_sign_out_that_device(alice: Any) -> None:
    laptop, phone = signed_in(LAPTOP_UA), signed_in(PHONE_UA)
    store = conf.get_store()
    devices = store.devices(str(alice.pk))
    assert sorted(d.device.user_agent for d in devices) == sorted([LAPTOP_UA, PHONE_UA])

    phone_device = next(d.device for d in devices if d.device.user_agent == PHONE_UA)
    assert store.revoke_device(str(alice.pk), phone_device.id) == 1  # "sign out that device"
    assert phone.get("/site/whoami").json()["user"] is None
    assert laptop.get("/site/whoami").json()["user"] == "alice"

    key = laptop.cookies["sessionid"].value
    post(laptop, "/site/logout", {})
    assert not SessionStore().exists(key)
    assert store.sessions(str(alice.pk)) == []
    assert laptop.get("/site/whoami").json()["user"] is None


def test_password_change_signs_out_the_other_sessions(alice: Any) -> None:
    mine, other = signed_in(LAPTOP_UA), signed_in(PHONE_UA)
    token = conf.get_store().login(str(alice.pk), device=Device(id="cli"))
    key = mine.cookies["sessionid"].value
    assert post(mine, "/site/password", {"password": "new-password"}) == {"ended": 2}
    assert mine.cookies["sessionid"].value != key  # update_session_auth_hash cycled it
    assert mine.get("/site/whoami").json()["user"] == "alice"
    assert other.get("/site/whoami").json()["user"] is None
    gone = Client().get("/me", headers={"Authorization": f"Bearer {token.access_token}"})
    assert gone.status_code == 401 and gone.json()["reason"] == "revoked"
    assert len(conf.get_store().sessions(str(alice.pk))) == 1


def test_the_session_contract(site: None) -> None:
    session = SessionStore()
    assert session.session_key is None and session.load() == {}
    session["a"] = 1
    session.save()
    key = session.session_key
    assert key is not None and session.exists(key)
    assert SessionStore(key).load() == {"a": 1}

    session.cycle_key()
    assert session.session_key != key and not session.exists(key)
    assert SessionStore(session.session_key).load() == {"a": 1}

    session.flush()
    assert session.session_key is None and session.load() == {}
    assert SessionStore("not-a-key").load() == {}
    assert not SessionStore().exists("abc.def")

    made = SessionStore()
    made.create()
    assert made.session_key is not None and made.exists(made.session_key)
    made.delete()
    assert not made.exists(made.session_key)
    made["late"] = True
    with pytest.raises(UpdateError):  # a session revoked meanwhile is not recreated
        made.save()
    SessionStore.clear_expired()


def test_expiry(site: None) -> None:
    session = SessionStore()
    session["x"] = 1
    session.save()
    assert session.get_expiry_age() == 1_209_600  # SESSION_COOKIE_AGE
    record = conf.get_store().get(*session.address)  # type: ignore[misc]
    assert record is not None
    assert round(record.idle_expires_at - record.last_seen_at) == 1_209_600

    key = session.session_key
    session.set_expiry(60)
    session.save()  # a new lifetime: a new session (the old key ends)
    assert session.session_key != key and not session.exists(key)  # type: ignore[arg-type]
    record = conf.get_store().get(*session.address)  # type: ignore[misc]
    assert record is not None and round(record.idle_expires_at - record.last_seen_at) == 60
    assert SessionStore(session.session_key).get_expiry_age() == 60


def test_expire_at_browser_close(alice: Any) -> None:
    with override_settings(SESSION_EXPIRE_AT_BROWSER_CLOSE=True):
        client = signed_in()
        cookie = client.cookies["sessionid"]
        assert cookie["max-age"] == "" and cookie["expires"] == ""
        session = SessionStore(cookie.value)
        assert session.get_expire_at_browser_close()
        assert session.get_expiry_age() == 1_209_600  # the server side still ends
    assert "max-age" in str(signed_in().cookies["sessionid"]).lower()


def test_data_over_the_limit_is_a_clear_error(alice: Any) -> None:
    client = signed_in()
    with pytest.raises(SessionDataError, match="byte limit"):
        client.post(
            "/site/remember", json.dumps({"blob": "x" * 5000}), content_type="application/json"
        )
    session = SessionStore()
    session["when"] = object()
    with pytest.raises(SessionDataError, match="JSON-like"):
        session.save()


def test_an_unreachable_store_is_503_and_keeps_the_cookie(
    alice: Any, fault_server: LocalServer, keyring: Keyring
) -> None:
    fast = {"socket_timeout": 0.25, "breaker_failures": 1, "breaker_reset": 30.0}
    with override_settings(SESSIONSTORE=options(fault_server.url, keyring, **fast)):
        client = signed_in()
        key = client.cookies["sessionid"].value
        fault_server.stop()
        answer = client.get("/site/whoami")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.json()["reason"] == "unavailable"
    assert "sessionid" not in answer.cookies  # not deleted: the session is still there
    assert client.cookies["sessionid"].value == key


def test_password_change_over_a_token_keeps_that_token(alice: Any) -> None:
    browser = signed_in()
    store = conf.get_store()
    mine, other = (store.login(str(alice.pk), device=Device(id=f"app-{n}")) for n in range(2))
    api = Client()
    auth = {"Authorization": f"Bearer {mine.access_token}"}
    answer = api.post(
        "/site/password",
        json.dumps({"password": "new-password"}),
        content_type="application/json",
        headers=auth,
    )
    assert answer.json() == {"ended": 2}
    assert api.get("/me", headers=auth).status_code == 200
    assert store.sessions(str(alice.pk))[0].session_id == mine.session_id
    assert browser.get("/site/whoami").json()["user"] is None
    gone = api.get("/me", headers={"Authorization": f"Bearer {other.access_token}"})
    assert gone.status_code == 401


def test_cycle_key_moves_the_session_in_one_step(alice: Any) -> None:
    # A password change cycles the key: the session moves to a new id with its device,
    # creation time and deadlines (one script), and the old key is dead at once.
    mine = signed_in(LAPTOP_UA)
    key = mine.cookies["sessionid"].value
    store = conf.get_store()
    (before,) = store.sessions(str(alice.pk))
    post(mine, "/site/password", {"password": "new-password"})
    after = mine.cookies["sessionid"].value
    assert after != key and not SessionStore().exists(key)
    (moved,) = store.sessions(str(alice.pk))
    assert address_of(after) == (str(alice.pk), moved.session_id)
    assert (moved.created_at, moved.device, moved.absolute_expires_at) == (
        before.created_at,
        before.device,
        before.absolute_expires_at,
    )
    assert mine.get("/site/whoami").json()["user"] == "alice"
