"""The JWKS route every integration serves: the keyring's public JWK Set, cached sensibly.

Pure (no framework): ``JwksRoute.reply`` turns a request's ``If-None-Match`` into a status,
headers and body the framework's response carries as they are.

The body is exactly ``keyring.to_jwks()`` as JSON: public keys only, never a private or
symmetric one (an HMAC-only keyring publishes ``{"keys": []}``, an empty set rather than a
404, so that a verifier pointed at it gets a well-formed set that verifies nothing).

Caching, and rotation. ``Keyring.rotate(new, grace=g)`` signs with the new key at once and
keeps the old one live for ``g`` seconds. A verifier caching our set for ``max-age`` seconds
then meets two edges:

* the new kid: tokens signed by it reach the verifier at once; a verifier that re-fetches on
  an unknown kid (``jose``'s ``createRemoteJWKSet`` does, at most once per 30 s) sees it on
  the first such token, any other within ``max-age``. Keep ``max-age`` small relative to
  the grace (the default 300 s is a twelfth of ``rotate``'s default hour) so a verifier
  never lags a rotation by more than a sliver of it;
* the old kid: ``max-age`` is capped at the time left before the earliest pending
  retirement, so no cache that honours the header keeps a retired key past its grace.

An ``ETag`` (a digest of the body) lets verifiers re-fetch cheaply: a matching
``If-None-Match`` is answered 304 with no body.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from sessionstore.errors import InvalidInput
from sessionstore.tokens import Keyring

__all__ = ["CONTENT_TYPE", "DEFAULT_MAX_AGE", "DEFAULT_PATH", "JwksReply", "JwksRoute"]

DEFAULT_PATH = "/.well-known/jwks.json"
DEFAULT_MAX_AGE = 300
CONTENT_TYPE = "application/jwk-set+json"  # RFC 7517 section 8.5
_MAX_MAX_AGE = 86_400


@dataclass(frozen=True)
class JwksReply:
    """One answer of the route: 200 with the set, or 304 when the client's copy is current."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class JwksRoute:
    """The keyring's public JWK Set at ``path``, with ``Cache-Control`` and an ``ETag``.

    ``keyring`` is read on every request (a rotation shows at once); ``max_age`` (seconds,
    0..86400) is the most a verifier may cache it, lowered to the time left before a key's
    retirement.
    """

    def __init__(
        self,
        keyring: Callable[[], Keyring],
        *,
        path: str = DEFAULT_PATH,
        max_age: int = DEFAULT_MAX_AGE,
    ) -> None:
        if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in " ?#"):
            raise InvalidInput(
                f"the JWKS path must start with / and hold no space, ? or #: {path!r}"
            )
        if isinstance(max_age, bool) or not isinstance(max_age, int):
            raise InvalidInput(f"max_age must be an integer, got {type(max_age).__name__}")
        if not 0 <= max_age <= _MAX_MAX_AGE:
            raise InvalidInput(f"max_age must be in 0..{_MAX_MAX_AGE} seconds, got {max_age}")
        self._keyring = keyring
        self.path = path
        self.max_age = max_age

    def body(self) -> bytes:
        """``keyring.to_jwks()`` as compact JSON."""
        jwks = self._keyring().to_jwks()
        return json.dumps(jwks, separators=(",", ":")).encode()

    def cache_seconds(self, now: float | None = None) -> int:
        """``max_age``, lowered to the whole seconds left before the earliest retirement."""
        state = self._keyring()._live()
        if not state.retire:
            return self.max_age
        left = min(state.retire.values()) - (time.time() if now is None else now)
        return max(0, min(self.max_age, math.floor(left)))

    def reply(self, if_none_match: str | None) -> JwksReply:
        """The answer to a GET (or HEAD) carrying ``If-None-Match`` (or None)."""
        body = self.body()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = (
            ("Cache-Control", f"public, max-age={self.cache_seconds()}"),
            ("ETag", etag),
            ("X-Content-Type-Options", "nosniff"),
        )
        if if_none_match is not None and _matches(if_none_match, etag):
            return JwksReply(304, headers, b"")
        return JwksReply(200, (("Content-Type", CONTENT_TYPE), *headers), body)


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 section 13.1.2: ``*`` or any listed tag, weak ones compared weakly."""
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)
