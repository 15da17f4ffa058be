"""Views of the test project: plain Django, DRF, and Django's own session login."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import authenticate, get_user_model, login, logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sessionstore import Principal
from sessionstore.integrations._http import Refused
from sessionstore.integrations.django.drf import NotDegraded, require
from sessionstore.integrations.django.middleware import principal_required
from sessionstore.integrations.django.requests import reply_response
from sessionstore.integrations.django.tokens import rotate_tokens, sign_out_other_sessions


def _principal_body(request: HttpRequest) -> dict[str, Any]:
    principal = request.principal  # type: ignore[attr-defined]
    return {"user": principal.user_id, "degraded": principal.degraded}


@principal_required
def me(request: HttpRequest) -> HttpResponse:
    return JsonResponse(_principal_body(request) | {"username": request.user.get_username()})


@principal_required
def session(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"session": request.principal.session_id})  # type: ignore[attr-defined]


class ApiSession(APIView):
    def get(self, request: Request) -> Response:
        return Response({"session": _principal(request).session_id})


@principal_required
async def ame(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    return JsonResponse(_principal_body(request) | {"username": user.get_username()})


@principal_required(live=True)
def transfer(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"done": True})


def _user(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"user": request.principal.user_id})  # type: ignore[attr-defined]


recent = principal_required(max_age=300)(_user)
strong = principal_required(level=2)(_user)
both = principal_required(max_age=300, level=2, live=True)(_user)


@principal_required(max_age=300, level=2)
async def aboth(request: HttpRequest) -> HttpResponse:
    return _user(request)


def _principal(request: Request) -> Principal:
    assert isinstance(request.auth, Principal)
    return request.auth


class ApiMe(APIView):
    def get(self, request: Request) -> Response:
        user = request.user
        assert user is not None
        return Response({"user": _principal(request).user_id, "username": user.get_username()})


class ApiTransfer(APIView):
    permission_classes = (NotDegraded,)

    def post(self, request: Request) -> Response:
        return Response({"done": True, "degraded": _principal(request).degraded})


class _ApiUser(APIView):
    def get(self, request: Request) -> Response:
        return Response({"user": _principal(request).user_id})


class ApiRecent(_ApiUser):
    permission_classes = (require(max_age=300),)


class ApiStrong(_ApiUser):
    permission_classes = (require(level=2),)


class ApiBoth(_ApiUser):
    permission_classes = (require(max_age=300, level=2, live=True),)


def site_login(request: HttpRequest) -> HttpResponse:
    body = json.loads(request.body or b"{}")
    user = authenticate(request, username=body.get("username"), password=body.get("password"))
    if user is None:
        return JsonResponse({"ok": False}, status=400)
    login(request, user)
    return JsonResponse({"ok": True})


def site_logout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return JsonResponse({"ok": True})


def whoami(request: HttpRequest) -> HttpResponse:
    user = request.user
    return JsonResponse(
        {
            "user": user.get_username() if user.is_authenticated else None,
            "key": request.session.session_key,
            "visits": request.session.get("visits", 0),
        }
    )


def remember(request: HttpRequest) -> HttpResponse:
    body = json.loads(request.body or b"{}")
    request.session.update(body)
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JsonResponse({"key": request.session.session_key})


def change_password(request: HttpRequest) -> HttpResponse:
    user = get_user_model().objects.get(pk=request.user.pk)
    user.set_password(json.loads(request.body)["password"])
    user.save()
    ended = sign_out_other_sessions(request, user)
    return JsonResponse({"ended": ended})


def rotate(request: HttpRequest) -> HttpResponse:
    """A privilege change: the request's token session moves to a new id, new roles."""
    response = JsonResponse({})
    try:
        pair = rotate_tokens(request, response, claims={"roles": ["admin"]})
    except Refused as refused:
        answer: HttpResponse = reply_response(refused.reply)
        return answer
    response.content = json.dumps({"session_id": pair.session_id}).encode()
    return response
