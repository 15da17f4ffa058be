"""FastAPI: sessionstore's dependency (``SessionAuth.require_principal``), the README's way."""

# No `from __future__ import annotations`: FastAPI evaluates the routes' annotations, which
# name locals of _app().
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI

from benchmarks.http.common import CONFIG, env, keyring
from benchmarks.http.common import login_tokens as prepare
from sessionstore import AsyncSessionStore, Principal
from sessionstore.integrations.starlette import SessionAuth

__all__ = ["APP", "KIND", "prepare"]

KIND = "asgi"


def _app() -> FastAPI:
    url, secret = env()
    store = AsyncSessionStore.from_url(url, keyring=keyring(secret), config=CONFIG)
    auth = SessionAuth(store)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await store.close()  # in the loop that opened its connections

    app = FastAPI(exception_handlers=auth.exception_handlers, lifespan=lifespan)

    @app.get("/me")
    async def me(
        principal: Annotated[Principal, Depends(auth.require_principal)],
    ) -> dict[str, str]:
        return {"user": principal.user_id}

    return app


APP = _app()
