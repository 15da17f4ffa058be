"""Hand-made JOSE pieces for the token suites: segments and claim sets to forge tokens from."""

from __future__ import annotations

import base64
import json

from sessionstore import Config

__all__ = ["SID", "b64", "claim_set", "segment"]

SID = "S" * 21 + "A"
"""A well-formed session id."""


def b64(data: bytes) -> str:
    """Unpadded base64url of ``data``."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(part: object) -> str:
    """A JOSE segment: bytes and str are encoded as given, anything else as compact JSON."""
    if isinstance(part, bytes):
        return b64(part)
    if isinstance(part, str):
        return b64(part.encode("utf-8"))
    return b64(json.dumps(part, separators=(",", ":")).encode("utf-8"))


def claim_set(config: Config, now: int, /, **changes: object) -> dict[str, object]:
    """Valid access-token claims at ``now``; a change to ``None`` removes the claim."""
    body: dict[str, object] = {
        "iss": config.issuer,
        "sub": "user-1",
        "aud": config.audience,
        "iat": now,
        "exp": now + config.access_ttl,
        "jti": "jti-1",
        "sid": SID,
    }
    body.update(changes)
    return {name: value for name, value in body.items() if value is not None}
