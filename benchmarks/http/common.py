"""What the bench apps share: their environment, the sessionstore keyring and config.

Every app module reads ``BENCH_REDIS_URL`` and ``BENCH_SECRET`` at import (the runner sets
both for the server process and for the process that calls ``prepare``).
"""

from __future__ import annotations

import base64
import hashlib
import os

from sessionstore import Config, Device, Keyring, SessionStore

__all__ = [
    "BEARER",
    "CONFIG",
    "DEVICE",
    "LIFETIME",
    "env",
    "jwks",
    "keyring",
    "login_tokens",
    "user_id",
]

# Longer than a full run, so no row's tokens expire mid-run (sessionstore's default is 900 s).
LIFETIME = 3600
CONFIG = Config(access_ttl=LIFETIME)
# How a row's token rides in a request (header, prefix), unless its module says otherwise.
BEARER = ("Authorization", "Bearer ")
DEVICE = Device(id="bench", name="wrk", user_agent="wrk", ip="127.0.0.1")


def env() -> tuple[str, str]:
    """(Redis URL, shared secret) from ``BENCH_REDIS_URL`` and ``BENCH_SECRET``."""
    return os.environ["BENCH_REDIS_URL"], os.environ["BENCH_SECRET"]


def jwks(secret: str) -> dict[str, list[dict[str, str]]]:
    """The HS256 JWK Set every sessionstore row derives from ``secret`` (the same in each
    process, so tokens minted by ``prepare`` verify in the server)."""
    key = base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()).rstrip(b"=")
    return {"keys": [{"kty": "oct", "kid": "bench", "alg": "HS256", "k": key.decode()}]}


def keyring(secret: str) -> Keyring:
    """The keyring of :func:`jwks`."""
    return Keyring.from_jwks(jwks(secret))


def user_id(number: int) -> str:
    """The user of session ``number``: one session per user."""
    return f"user-{number}"


def login_tokens(redis_url: str, secret: str, n: int) -> list[str]:
    """The sessionstore rows' ``prepare``: ``n`` sessions, one per user; their access tokens."""
    with SessionStore.from_url(redis_url, keyring=keyring(secret), config=CONFIG) as store:
        return [store.login(user_id(i), device=DEVICE).access_token for i in range(n)]
