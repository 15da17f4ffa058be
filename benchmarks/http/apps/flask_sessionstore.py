"""Flask: sessionstore's extension (``SessionAuth``, ``@auth.required``)."""

from __future__ import annotations

from flask import Flask

from benchmarks.http.common import CONFIG, env, keyring
from benchmarks.http.common import login_tokens as prepare
from sessionstore import SessionStore
from sessionstore.integrations.flask import SessionAuth

__all__ = ["APP", "KIND", "prepare"]

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
