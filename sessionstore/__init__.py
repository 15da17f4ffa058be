"""sessionstore: Redis-native sessions and stateful JWTs with instant revocation.

Sessions live in Redis hashes changed only by atomic Lua scripts; access tokens are
minimal JWTs naming a session; validation degrades to the token's own claims, under
a bounded policy, while Redis is unreachable.
"""

from sessionstore.aio import AsyncSessionStore
from sessionstore.errors import (
    DeviceBindingError,
    DisallowedAlgorithm,
    InvalidClaim,
    InvalidHeader,
    InvalidInput,
    InvalidSignature,
    InvalidToken,
    LegacyTokenExpired,
    LegacyTokenRefused,
    LegacyTokenTooOld,
    LegacyWindowClosed,
    MalformedToken,
    RefreshReuseDetected,
    ScriptError,
    SessionExpired,
    SessionLimitReached,
    SessionRevoked,
    SessionStoreError,
    StoreBusy,
    StoreUnavailable,
    TokenExpired,
    TokenTooLarge,
    UnknownKey,
    WrongTokenType,
)
from sessionstore.legacy import LegacyTokens
from sessionstore.models import (
    Config,
    Device,
    DeviceSessions,
    HistoryEntry,
    Principal,
    Session,
    TokenPair,
)
from sessionstore.store import SessionStore
from sessionstore.tokens import Keyring

__version__ = "0.1.0"

__all__ = [
    "AsyncSessionStore",
    "Config",
    "Device",
    "DeviceBindingError",
    "DeviceSessions",
    "DisallowedAlgorithm",
    "HistoryEntry",
    "InvalidClaim",
    "InvalidHeader",
    "InvalidInput",
    "InvalidSignature",
    "InvalidToken",
    "Keyring",
    "LegacyTokenExpired",
    "LegacyTokenRefused",
    "LegacyTokenTooOld",
    "LegacyTokens",
    "LegacyWindowClosed",
    "MalformedToken",
    "Principal",
    "RefreshReuseDetected",
    "ScriptError",
    "Session",
    "SessionExpired",
    "SessionLimitReached",
    "SessionRevoked",
    "SessionStore",
    "SessionStoreError",
    "StoreBusy",
    "StoreUnavailable",
    "TokenExpired",
    "TokenPair",
    "TokenTooLarge",
    "UnknownKey",
    "WrongTokenType",
]
