"""Flask: the framework's floor, a route that checks nothing."""

from __future__ import annotations

from flask import Flask

from benchmarks.http.common import user_id

KIND = "wsgi"
APP = Flask(__name__)


@APP.get("/me")
def me() -> dict[str, str]:
    return {"user": user_id(0)}


def prepare(redis_url: str, secret: str, n: int) -> list[str]:
    """``n`` opaque strings (nothing checks them)."""
    return [f"floor{i}" for i in range(n)]
