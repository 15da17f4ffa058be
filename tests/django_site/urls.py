"""URLs of the test project."""

from __future__ import annotations

from django.urls import include, path

from django_site import views
from sessionstore.integrations.django.drf_views import LoginView, LogoutView, RefreshView
from sessionstore.integrations.django.urls import jwks_path

urlpatterns = [
    path("me", views.me),
    path("session", views.session),
    path("api/session", views.ApiSession.as_view()),
    path("ame", views.ame),
    path("transfer", views.transfer),
    path("recent", views.recent),
    path("strong", views.strong),
    path("both", views.both),
    path("async/both", views.aboth),
    path("api/recent", views.ApiRecent.as_view()),
    path("api/strong", views.ApiStrong.as_view()),
    path("api/both", views.ApiBoth.as_view()),
    path("api/me", views.ApiMe.as_view()),
    path("api/transfer", views.ApiTransfer.as_view()),
    path("api/auth/login", LoginView.as_view()),
    path("api/auth/refresh", RefreshView.as_view()),
    path("api/auth/logout", LogoutView.as_view()),
    path("cookie/login", LoginView.as_view(use_cookies=True)),
    path("auth/refresh", RefreshView.as_view(use_cookies=True)),
    path("site/login", views.site_login),
    path("site/logout", views.site_logout),
    path("site/whoami", views.whoami),
    path("site/remember", views.remember),
    path("site/password", views.change_password),
    path("rotate", views.rotate),
    path("", include("sessionstore.integrations.django.urls")),
    jwks_path("/keys/other.json", max_age=60),
]
