"""What the suites that adopt legacy tokens share: the legacy PyJWT setup and its tokens."""

from __future__ import annotations

import time
from typing import Any

import jwt

from sessionstore import LegacyTokens

SECRET = b"legacy-app-secret-of-32-bytes-at-least!"
ISSUER, AUDIENCE = "https://legacy.example", "legacy-api"


def legacy(**changes: Any) -> LegacyTokens:
    """The legacy setup: HS256 with SECRET, its issuer and audience, a window around now."""
    now = time.time()
    options: dict[str, Any] = {
        "key": SECRET,
        "algorithms": ["HS256"],
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "window_start": now - 3600,
        "window_end": now + 3600,
        "copy_claims": ["role"],
    }
    options.update(changes)
    return LegacyTokens(**options)


def legacy_token(
    user: str = "user-1", *, key: bytes = SECRET, alg: str = "HS256", **claims: Any
) -> str:
    """A token as the legacy PyJWT setup issues them (``claims`` override or add)."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": user,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now - 60,
        "exp": now + 600,
        "role": "admin",
    }
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm=alg)
