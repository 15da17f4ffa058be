"""Flask: flask-jwt-extended with its Redis blocklist recipe (one GET of the jti per request).

The recipe of its documentation ("Blocklist and Token Revoking", Redis): a
``token_in_blocklist_loader`` that GETs the token's jti on a ``decode_responses`` client.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import redis
from flask import Flask
from flask_jwt_extended import JWTManager, create_access_token, get_jwt_identity, jwt_required

from benchmarks.http.common import LIFETIME, env, user_id

KIND = "wsgi"


def _app() -> Flask:
    url, secret = env()
    blocklist = redis.Redis.from_url(url, decode_responses=True)
    app = Flask(__name__)
    app.config["JWT_SECRET_KEY"] = secret
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(seconds=LIFETIME)
    jwt = JWTManager(app)

    @jwt.token_in_blocklist_loader
    def revoked(jwt_header: dict[str, Any], jwt_payload: dict[str, Any]) -> bool:
        return blocklist.get(jwt_payload["jti"]) is not None

    @app.get("/me")
    @jwt_required()  # type: ignore[untyped-decorator]
    def me() -> dict[str, str]:
        return {"user": str(get_jwt_identity())}

    return app


APP = _app()


def prepare(redis_url: str, secret: str, n: int) -> list[str]:
    """``n`` access tokens, one per user."""
    with APP.app_context():
        return [create_access_token(identity=user_id(i)) for i in range(n)]
