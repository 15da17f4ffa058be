"""Flask: sessionstore's extension (``SessionAuth``, ``@auth.required``)."""

from __future__ import annotations

from flask import Flask

from benchmarks.http.common import CONFIG, DEVICE, env, keyring, user_id
from sessionstore import SessionStore
from sessionstore.integrations.flask import SessionAuth

KIND = "wsgi"


def _app() -> Flask:
    url, secret = env()
    store = SessionStore.from_url(url, keyring=keyring(secret), config=CONFIG)
    app = Flask(__name__)
    auth = SessionAuth(app, store=store)

    @app.get("/me")
    @auth.required
    def me() -> dict[str, str]:
        principal = auth.principal
        assert principal is not None
        return {"user": principal.user_id}

    return app


APP = _app()


def prepare(redis_url: str, secret: str, n: int) -> list[str]:
    """``n`` sessions, one per user; their access tokens."""
    with SessionStore.from_url(redis_url, keyring=keyring(secret), config=CONFIG) as store:
        return [store.login(user_id(i), device=DEVICE).access_token for i in range(n)]
