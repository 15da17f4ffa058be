"""FastAPI: PyJWT alone (stateless), the FastAPI tutorial's way: ``OAuth2PasswordBearer`` +
``jwt.decode``. Nothing is revocable before it expires."""

# No `from __future__ import annotations`: FastAPI evaluates the routes' annotations, which
# name locals of _app().
import time
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import OAuth2PasswordBearer

from benchmarks.http.common import LIFETIME, env, user_id

KIND = "asgi"


def _app() -> FastAPI:
    _, secret = env()
    scheme = OAuth2PasswordBearer(tokenUrl="token")
    app = FastAPI()

    async def current_user(token: Annotated[str, Depends(scheme)]) -> str:
        try:
            payload = jwt.decode(token, secret, algorithms=["HS256"])
        except jwt.InvalidTokenError:
            raise HTTPException(401, "Could not validate credentials") from None
        return str(payload["sub"])

    @app.get("/me")
    async def me(user: Annotated[str, Depends(current_user)]) -> dict[str, str]:
        return {"user": user}

    return app


APP = _app()


def prepare(redis_url: str, secret: str, n: int) -> list[str]:
    """``n`` signed tokens, one per user (no Redis)."""
    exp = int(time.time()) + LIFETIME
    return [jwt.encode({"sub": user_id(i), "exp": exp}, secret, "HS256") for i in range(n)]
