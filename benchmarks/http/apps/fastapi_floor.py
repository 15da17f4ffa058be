"""FastAPI: the framework's floor, a route whose dependency checks nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI

from benchmarks.http.common import user_id

KIND = "asgi"


async def _anyone() -> str:
    return user_id(0)


APP = FastAPI()


@APP.get("/me")
async def me(user: Annotated[str, Depends(_anyone)]) -> dict[str, str]:
    return {"user": user}


def prepare(redis_url: str, secret: str, n: int) -> list[str]:
    """``n`` opaque strings (nothing checks them)."""
    return [f"floor{i}" for i in range(n)]
