"""Adoption from stateless JWTs: which legacy tokens a store accepts for a while, and their check.

``Config(legacy_tokens=LegacyTokens(...))`` describes an existing PyJWT setup (its key, its
pinned algorithms, issuer, audience and the claim naming the user) and the adoption window.
A token that fails as one of ours is then tried here (``verify``); one that passes mints a
sessionstore session on first sight (``sessionstore._engine.adoption``). Everything here is
local: a refused legacy token costs no Redis call.

Checked, in order: the token is a JWT whose header is not ours (``typ: at+jwt``), its
``alg`` one of the pinned algorithms (never ``none``), its signature (PyJWT, with the key
prepared once), ``exp``/``iat``/the user claim present, ``exp`` with ``leeway``, issuer and
audience when set; then the window: now before ``window_end``, ``iat`` at or after
``window_start``. A token whose signature does not verify is not a legacy token at all:
the caller's original error stands.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import jwt
import msgspec
from jwt.algorithms import get_default_algorithms

from sessionstore._jose.strict import b64u_encode
from sessionstore.errors import (
    InvalidInput,
    LegacyTokenExpired,
    LegacyTokenRefused,
    LegacyTokenTooOld,
    LegacyWindowClosed,
)
from sessionstore.keys import check_device_id, check_user_id

__all__ = ["LegacyClaims", "LegacyTokens"]

_ALGORITHMS = frozenset(
    {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    | {"ES256", "ES384", "ES512", "EdDSA"}
)
_MIN_HMAC_BYTES = 32
_OURS = "at+jwt"  # the typ our access tokens carry: never tried as legacy


class LegacyClaims(msgspec.Struct, frozen=True, kw_only=True):
    """A legacy token that passed every check: whom it names, its times, its digest."""

    user_id: str
    issued_at: int
    expires_at: int
    digest: str  # base64url SHA-256 of the token: the marker's name, never the token
    claims: dict[str, Any]  # the claims ``copy_claims`` names, as the token holds them


class LegacyTokens:
    """The legacy tokens a store accepts, and for how long (off unless configured).

    ``key`` is the legacy setup's verification key: the HMAC secret (bytes or str, at least
    32 bytes and at least the hash's size) or a public key (PEM, or a ``cryptography``
    key). ``algorithms`` pins what the tokens may use: one key family, never ``none``.
    ``issuer``/``audience``, when set, must match exactly. ``user_claim`` names the user
    (``sub`` by default). Tokens issued before ``window_start`` or seen after
    ``window_end`` (Unix seconds) are refused. ``copy_claims`` are copied from the legacy
    token into the new session's claims; the adopted session's device id is
    ``device_id``.
    """

    __slots__ = (
        "_key",
        "algorithms",
        "audience",
        "copy_claims",
        "device_id",
        "issuer",
        "leeway",
        "user_claim",
        "window_end",
        "window_start",
    )

    def __init__(
        self,
        *,
        key: str | bytes | Any,
        algorithms: Sequence[str],
        window_start: float,
        window_end: float,
        issuer: str | None = None,
        audience: str | None = None,
        user_claim: str = "sub",
        leeway: int = 30,
        copy_claims: Sequence[str] = (),
        device_id: str = "legacy",
    ) -> None:
        if isinstance(algorithms, str) or not isinstance(algorithms, Sequence) or not algorithms:
            raise InvalidInput("legacy algorithms must be a non-empty list, e.g. ['HS256']")
        pinned = tuple(algorithms)
        for alg in pinned:
            if not isinstance(alg, str) or alg not in _ALGORITHMS:
                raise InvalidInput(
                    f"legacy algorithm {alg!r} is not allowed (never 'none'): "
                    f"one of {', '.join(sorted(_ALGORITHMS))}"
                )
        hmac = {alg.startswith("HS") for alg in pinned}
        if len(hmac) != 1:
            raise InvalidInput("legacy algorithms must not mix HMAC and public-key algorithms")
        self._key = _prepared(key, pinned)
        for name, value in (("window_start", window_start), ("window_end", window_end)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"legacy {name} must be Unix seconds, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise InvalidInput(f"legacy {name} must be finite Unix seconds, got {value!r}")
        if window_end <= window_start:
            raise InvalidInput("legacy window_end must come after window_start")
        for name, text in (("issuer", issuer), ("audience", audience)):
            if text is not None and (not isinstance(text, str) or not 1 <= len(text) <= 256):
                raise InvalidInput(f"legacy {name} must be None or a string of 1..256 chars")
        if not isinstance(user_claim, str) or not 1 <= len(user_claim) <= 64:
            raise InvalidInput("legacy user_claim must be a claim name of 1..64 chars")
        if isinstance(leeway, bool) or not isinstance(leeway, int) or not 0 <= leeway <= 300:
            raise InvalidInput(f"legacy leeway must be an integer in 0..300, got {leeway!r}")
        if isinstance(copy_claims, str) or not all(isinstance(c, str) for c in copy_claims):
            raise InvalidInput("legacy copy_claims must be a list of claim names")
        self.algorithms = pinned
        self.window_start = float(window_start)
        self.window_end = float(window_end)
        self.issuer = issuer
        self.audience = audience
        self.user_claim = user_claim
        self.leeway = leeway
        self.copy_claims = tuple(copy_claims)
        self.device_id = check_device_id(device_id)

    def __repr__(self) -> str:
        return (
            f"LegacyTokens(algorithms={list(self.algorithms)!r}, issuer={self.issuer!r}, "
            f"audience={self.audience!r}, user_claim={self.user_claim!r}, "
            f"window_start={self.window_start!r}, window_end={self.window_end!r})"
        )

    def verify(self, token: object, *, now: float, max_bytes: int) -> LegacyClaims | None:
        """The claims of a legacy token we accept, None for a token that is not one (not a
        JWT, ours, or a signature this key does not make), or ``LegacyTokenRefused``."""
        if not isinstance(token, str) or len(token) > max_bytes:
            return None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            return None
        if header.get("typ") == _OURS:
            return None
        if header.get("alg") not in self.algorithms:
            raise LegacyTokenRefused("legacy token algorithm is not allowed", "algorithm")
        required = ["exp", "iat", self.user_claim]
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=list(self.algorithms),
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": required, "verify_aud": True, "verify_iss": True},
            )
        except (jwt.InvalidSignatureError, jwt.DecodeError):
            return None  # signed by someone else, or not a JWT after all
        except jwt.ExpiredSignatureError as err:
            raise LegacyTokenExpired("legacy token expired") from err
        except jwt.InvalidIssuerError as err:
            raise LegacyTokenRefused("legacy token issuer does not match", "issuer") from err
        except jwt.InvalidAudienceError as err:
            raise LegacyTokenRefused("legacy token audience does not match", "audience") from err
        except jwt.InvalidTokenError as err:
            raise LegacyTokenRefused(f"legacy token claims refused: {err}", "claims") from err
        if now > self.window_end:
            raise LegacyWindowClosed("the legacy token adoption window has ended")
        issued, expires = payload["iat"], payload["exp"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (issued, expires)):
            raise LegacyTokenRefused("legacy token iat and exp must be integers", "claims")
        if issued < self.window_start:
            raise LegacyTokenTooOld("legacy token was issued before the adoption window")
        try:
            user_id = check_user_id(payload[self.user_claim])
        except InvalidInput as err:
            raise LegacyTokenRefused(f"legacy token user claim refused: {err}", "user") from err
        return LegacyClaims(
            user_id=user_id,
            issued_at=issued,
            expires_at=expires,
            digest=b64u_encode(hashlib.sha256(token.encode()).digest()),
            claims={name: payload[name] for name in self.copy_claims if name in payload},
        )

    def marker_ms(self, claims: LegacyClaims, now: float) -> int:
        """How long (ms) the token's adoption marker must live: while it can be accepted."""
        until = min(claims.expires_at + self.leeway, self.window_end)
        return max(1, math.ceil((until - now) * 1000))


def _prepared(key: object, algorithms: tuple[str, ...]) -> Any:
    """``key`` prepared once for every pinned algorithm (``InvalidInput`` if unfit)."""
    if isinstance(key, str):
        key = key.encode("utf-8")
    if algorithms[0].startswith("HS") and (
        not isinstance(key, bytes) or len(key) < _MIN_HMAC_BYTES
    ):
        raise InvalidInput(f"a legacy HMAC key must be at least {_MIN_HMAC_BYTES} bytes")
    table = get_default_algorithms()
    prepared: Any = None
    for alg in algorithms:
        algorithm = table[alg]
        try:
            prepared = algorithm.prepare_key(key)
        except (jwt.InvalidKeyError, ValueError, TypeError) as err:
            raise InvalidInput(f"the legacy key does not fit {alg}") from err
        check = getattr(algorithm, "check_key_length", None)  # PyJWT 2.10+
        if check is not None and check(prepared):
            raise InvalidInput(f"the legacy key is too short for {alg}")
    return prepared
