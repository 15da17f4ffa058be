"""The step-up guards of the Django integration (``principal_required(max_age=...,
level=...)``, DRF's ``require(...)`` permission classes) through Django's test client and
DRF's ``APIClient`` against a real server: the RFC 9470 challenge, exactly; and the
deprecated "fresh" spellings of the "not degraded" guard, which warn and work."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("django")
pytest.importorskip("rest_framework")

import django_site

django_site.setup()  # before the imports below: DRF reads its settings at import

from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.test import AsyncClient, Client, RequestFactory  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from django_support import django_fixtures  # noqa: E402
from sessionstore.integrations.django import conf  # noqa: E402
from sessionstore.integrations.django.drf import HasPrincipal  # noqa: E402
from sessionstore.integrations.django.middleware import principal_required  # noqa: E402
from step_up_support import BOTH_LOW, PHONE, check_answers, headers  # noqa: E402

server, url, site, alice = django_fixtures("stepup-django")


def test_principal_required_answers_the_rfc_9470_challenge(alice: Any) -> None:
    client = Client()
    store = conf.get_store()
    check_answers(lambda path, t: client.get(path, headers=headers(t)), store, str(alice.pk))


def test_drf_require_answers_the_rfc_9470_challenge(alice: Any) -> None:
    client = APIClient()
    store = conf.get_store()
    check_answers(
        lambda path, t: client.get("/api" + path, headers=headers(t)), store, str(alice.pk)
    )


def test_async_view_answers_the_rfc_9470_challenge(alice: Any) -> None:
    weak = conf.get_store().login(str(alice.pk), device=PHONE, level=1).access_token

    async def get() -> Any:
        return await AsyncClient().get("/async/both", headers=headers(weak))

    answer = asyncio.run(get())
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == BOTH_LOW


def test_fresh_spellings_warn_and_work(alice: Any) -> None:
    def view(request: HttpRequest) -> HttpResponse:
        return JsonResponse({"user": request.principal.user_id})  # type: ignore[attr-defined]

    with pytest.warns(DeprecationWarning, match="live="):
        legacy = principal_required(fresh=True)(view)
    token = conf.get_store().login(str(alice.pk), device=PHONE).access_token
    request = RequestFactory().get("/", headers=headers(token))
    answer = legacy(request)
    assert answer.status_code == 200
    anonymous = legacy(RequestFactory().get("/"))
    assert anonymous.status_code == 401

    with pytest.warns(DeprecationWarning, match="live="):

        class Legacy(HasPrincipal):
            fresh = True

    assert Legacy._need.live
