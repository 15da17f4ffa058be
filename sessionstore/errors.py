"""One exception tree for sessionstore, shared by the sync and async APIs.

Data travels on attributes, causes are chained with ``raise ... from err``, and
messages say what failed without echoing secrets (never a token or a key).
"""

from __future__ import annotations

__all__ = [
    "DeviceBindingError",
    "DisallowedAlgorithm",
    "InvalidClaim",
    "InvalidHeader",
    "InvalidInput",
    "InvalidSignature",
    "InvalidToken",
    "LegacyTokenExpired",
    "LegacyTokenRefused",
    "LegacyTokenTooOld",
    "LegacyWindowClosed",
    "MalformedToken",
    "RefreshReuseDetected",
    "ScriptError",
    "SessionExpired",
    "SessionLimitReached",
    "SessionRevoked",
    "SessionStoreError",
    "StoreBusy",
    "StoreUnavailable",
    "TokenExpired",
    "TokenTooLarge",
    "UnknownKey",
    "WrongTokenType",
]


class SessionStoreError(Exception):
    """Base class of every error sessionstore raises."""


class InvalidInput(SessionStoreError, ValueError):
    """An argument was refused before any Redis call (type, length, charset, size)."""


class InvalidToken(SessionStoreError):
    """A token was refused: the caller is not authenticated."""


class MalformedToken(InvalidToken):
    """The token is not a well-formed compact JWS or refresh token."""


class TokenTooLarge(MalformedToken):
    """The token is longer than ``Config.max_token_bytes``."""


class InvalidHeader(InvalidToken):
    """The JOSE header carries a forbidden, missing or ill-typed member."""


class DisallowedAlgorithm(InvalidHeader):
    """The header's ``alg`` is not the one pinned for its key."""


class UnknownKey(InvalidHeader):
    """The header's ``kid`` names no key of the keyring."""


class InvalidSignature(InvalidToken):
    """The signature does not verify."""


class InvalidClaim(InvalidToken):
    """A claim is missing, ill-typed or outside its allowed range."""

    def __init__(self, message: str, claim: str | None = None) -> None:
        super().__init__(message)
        self.claim = claim


class WrongTokenType(InvalidToken):
    """A refresh token was presented as an access token, or the reverse."""


class TokenExpired(InvalidToken):
    """The token, or the session it names, is past its deadline."""


class SessionRevoked(InvalidToken):
    """The session the token names was revoked, evicted or lost."""


class SessionExpired(SessionRevoked, TokenExpired):
    """The session passed its idle or absolute deadline (both a revoked and an expired case)."""


class DeviceBindingError(InvalidToken):
    """The request's device does not match the session's (``device_binding="enforce"``)."""


class RefreshReuseDetected(InvalidToken):
    """An already rotated refresh token was presented again: the session was revoked."""


class LegacyTokenRefused(InvalidToken):
    """A legacy token (``Config.legacy_tokens``) was refused; ``reason`` says why.

    Reasons: ``algorithm``, ``issuer``, ``audience``, ``claims``, ``user``, and those of the
    subclasses (``expired``, ``too_old``, ``window_closed``).
    """

    reason = "refused"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class LegacyTokenExpired(LegacyTokenRefused, TokenExpired):
    """A legacy token is past its own ``exp``."""

    reason = "expired"


class LegacyTokenTooOld(LegacyTokenRefused):
    """A legacy token was issued (``iat``) before the adoption window's start."""

    reason = "too_old"


class LegacyWindowClosed(LegacyTokenRefused):
    """The adoption window has ended: no legacy token is accepted any more."""

    reason = "window_closed"


class SessionLimitReached(SessionStoreError):
    """A login was refused: the user has ``limit`` live sessions (``session_limit="refuse"``).

    Nothing was written. ``session_ids`` are the user's live sessions, the one nearest its
    idle deadline first: sign one out (``store.revoke``) and log in again, or show them
    (``store.sessions``) as "sign out one of your devices to continue".
    """

    def __init__(self, user_id: str, limit: int, session_ids: tuple[str, ...]) -> None:
        super().__init__(f"the user has {limit} live sessions, the limit: login refused")
        self.user_id = user_id
        self.limit = limit
        self.session_ids = session_ids


class StoreUnavailable(SessionStoreError):
    """Redis could not be reached (connection error or timeout)."""


class StoreBusy(StoreUnavailable):
    """This process had more store calls at once than its connection pool allows.

    Not an outage: Redis was not asked, so no validation falls back to the token's claims
    and the circuit breaker stays closed. Integrations answer 503 with ``Retry-After`` as
    for any ``StoreUnavailable``; a process that meets it often needs a larger pool
    (``?max_connections=N`` in the URL, or your client's pool) or fewer threads.
    """


class ScriptError(SessionStoreError):
    """Redis answered with an error (a script or server fault); never a fallback trigger."""
