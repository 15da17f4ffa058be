"""FastAPI: fastapi-users with its Redis strategy and Bearer transport (one GET per request).

The user database is an in-memory stand-in that builds the user from its id with no I/O:
the row pays for fastapi-users' Redis lookup and its machinery, not for a SQL query (the
sessionstore row loads no user either).
"""

# No `from __future__ import annotations`: FastAPI evaluates the routes' annotations, which
# name locals of _app().
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import redis
import redis.asyncio
from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, RedisStrategy
from fastapi_users.db import BaseUserDatabase

from benchmarks.http.common import LIFETIME, env

KIND = "asgi"
_PREFIX = "fastapi_users_token:"


@dataclass
class User:
    """The fields fastapi-users' ``UserProtocol`` asks for."""

    id: uuid.UUID
    email: str
    hashed_password: str = ""
    is_active: bool = True
    is_superuser: bool = False
    is_verified: bool = True


class UserDatabase(BaseUserDatabase[User, uuid.UUID]):
    """Every id names a user (built on the spot, no I/O)."""

    async def get(self, id: uuid.UUID) -> User | None:
        return User(id=id, email=f"{id}@bench.invalid")


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    """fastapi-users' manager on the stand-in database."""


def _app() -> FastAPI:
    url, _ = env()
    client = redis.asyncio.from_url(url, decode_responses=True)  # as fastapi-users' docs
    manager = UserManager(UserDatabase())

    async def get_user_manager() -> Any:
        yield manager

    def get_strategy() -> RedisStrategy[User, uuid.UUID]:
        return RedisStrategy(client, lifetime_seconds=LIFETIME, key_prefix=_PREFIX)

    backend = AuthenticationBackend(
        name="redis",
        transport=BearerTransport(tokenUrl="auth/login"),
        get_strategy=get_strategy,
    )
    users = FastAPIUsers[User, uuid.UUID](get_user_manager, [backend])
    current_user = users.current_user(active=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/me")
    async def me(user: Annotated[User, Depends(current_user)]) -> dict[str, str]:
        return {"user": str(user.id)}

    return app


APP = _app()


def prepare(redis_url: str, secret: str, n: int) -> list[str]:
    """``n`` tokens, one per user, written the way ``RedisStrategy.write_token`` does."""
    tokens = [secrets.token_urlsafe() for _ in range(n)]
    client = redis.Redis.from_url(redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        for token in tokens:
            pipe.set(f"{_PREFIX}{token}", str(uuid.uuid4()), ex=LIFETIME)
        pipe.execute()
    finally:
        client.close()
    return tokens
