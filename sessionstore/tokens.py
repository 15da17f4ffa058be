"""Keyring and tokens: stateful access JWTs (RFC 9068) and opaque refresh tokens.

Pure code: no I/O. ``verify_access_token`` is the pre-decode gate of hybrid validation:
size, shape, header allowlist, pinned algorithm, signature, then strict claims, so a forged
token is refused before anything costs a Redis call.
"""

from __future__ import annotations

import hmac
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

import jwt
import msgspec

from sessionstore import _jose, _strict
from sessionstore._jose import KeyEntry, KeySet
from sessionstore.errors import (
    InvalidClaim,
    InvalidInput,
    InvalidSignature,
    MalformedToken,
    TokenExpired,
    TokenTooLarge,
    UnknownKey,
    WrongTokenType,
)
from sessionstore.keys import check_session_id, check_user_id, decode_user_id, encode_user_id
from sessionstore.models import Config

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "REFRESH_PREFIX",
    "RESERVED_CLAIMS",
    "AccessClaims",
    "Keyring",
    "RefreshClaims",
    "issue_access_token",
    "issue_refresh_token",
    "parse_refresh_token",
    "verify_access_token",
]

ACCESS_TOKEN_TYPE: Final = "at+jwt"
REFRESH_PREFIX: Final = "rt1."
RESERVED_CLAIMS: Final = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "typ"})
_MAX: Final = 2**53  # integers up to here survive any JSON parser (IEEE doubles)
_JWS_CHARS: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
_COMPACT: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_SID: Final = re.compile(r"[A-Za-z0-9_-]{22}")
_REFRESH: Final = re.compile(
    r"rt1\.([A-Za-z0-9_-]{2,342})\.([A-Za-z0-9_-]{22})\.([1-9][0-9]{0,15})"
    r"\.([A-Za-z0-9_-]{2,1366})\.([A-Za-z0-9_-]{43})"
)


class Keyring:
    """kid -> key, with the algorithm pinned per kid.

    Build one with ``generate``, ``from_jwks`` or ``from_env``. Readers take one immutable
    snapshot per call; ``rotate`` and ``retire`` swap in a fresh one, so no reader ever sees
    a half-updated keyring. No method puts key material in a repr or an error message.
    """

    __slots__ = ("_lock", "_state")

    def __init__(self, entries: Iterable[KeyEntry] = (), *, current: str | None = None) -> None:
        keys: dict[str, KeyEntry] = {}
        for entry in entries:
            if entry.kid in keys:
                raise InvalidInput(f"duplicate kid {entry.kid!r}")
            keys[entry.kid] = entry
        if current is not None and (current not in keys or not keys[current].can_sign):
            raise InvalidInput("the current kid must name a key with private material")
        self._lock = threading.Lock()
        self._state = KeySet(keys, {}, current)

    @classmethod
    def generate(cls, alg: str = "HS256", *, kid: str | None = None) -> Keyring:
        """A keyring of one fresh random key: HS256/384/512, ES256, EdDSA, RS256 or PS256."""
        entry = _jose.generate_entry(alg, kid)
        return cls([entry], current=entry.kid)

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any] | str | bytes) -> Keyring:
        """Load an RFC 7517 JWK Set (a mapping or JSON text); every key needs "kid" and "alg".

        The last key with private material signs; a public-only set verifies only.
        """
        data: object = jwks
        if isinstance(jwks, str | bytes):
            try:
                text = jwks.decode("utf-8") if isinstance(jwks, bytes) else jwks
                data = _strict.strict_loads(text)
            except (ValueError, RecursionError) as err:
                raise InvalidInput("JWK Set is not valid JSON") from err
        keys = data.get("keys") if isinstance(data, Mapping) else None
        if not isinstance(keys, list | tuple) or not keys:
            raise InvalidInput('a JWK Set must be an object with a non-empty "keys" list')
        entries = [_jose.entry_from_jwk(jwk) for jwk in keys]
        signing = [entry.kid for entry in entries if entry.can_sign]
        return cls(entries, current=signing[-1] if signing else None)

    @classmethod
    def from_env(cls, name: str = "SESSIONSTORE_JWKS") -> Keyring:
        """Load the JWK Set held as JSON in the environment variable ``name``."""
        raw = os.environ.get(name)
        if not raw:
            raise InvalidInput(f"environment variable {name} is not set")
        return cls.from_jwks(raw)

    def to_jwks(self) -> dict[str, Any]:
        """The public JWK Set other services verify with (HMAC keys are never published)."""
        state = self._live()
        return {"keys": [k.to_jwk(private=False) for k in state.keys.values() if k.secret is None]}

    def to_private_jwks(self) -> dict[str, Any]:
        """The full JWK Set, SECRETS INCLUDED: store it like a password.

        The current signing key comes last, so ``from_jwks`` restores it as current.
        """
        state = self._live()
        entries = sorted(state.keys.values(), key=lambda entry: entry.kid == state.current)
        return {"keys": [entry.to_jwk(private=True) for entry in entries]}

    def rotate(self, new: Keyring, *, grace: float = 3600.0) -> None:
        """Add ``new``'s keys and sign with its current kid; retire every held key after ``grace``.

        Tokens signed by a retired key verify until ``time.time() + grace``, then fail with
        ``UnknownKey``.
        """
        if not isinstance(new, Keyring):
            raise InvalidInput("rotate needs a Keyring")
        deadline = time.time() + _seconds("grace", grace)
        with self._lock:
            now = time.time()
            old = self._state.without_expired(now)
            fresh = new._state.without_expired(now)
            if old.current is not None and fresh.current is None:
                raise InvalidInput("rotate needs a keyring with a signing key")
            clash = sorted(old.keys.keys() & fresh.keys.keys())
            if clash:
                raise InvalidInput(f"kids already held: {clash!r}")
            retire = {kid: min(old.retire.get(kid, deadline), deadline) for kid in old.keys}
            retire.update(fresh.retire)
            self._state = KeySet({**old.keys, **fresh.keys}, retire, fresh.current)

    def retire(self, kid: str, *, at: float | None = None) -> None:
        """Drop ``kid`` at time ``at`` (default: now); for tests and emergencies."""
        when = time.time() if at is None else _seconds("at", at)
        with self._lock:
            state = self._state
            if kid not in state.keys:
                raise InvalidInput(f"no key {kid!r} in this keyring")
            retire = {**state.retire, kid: min(state.retire.get(kid, when), when)}
            self._state = KeySet(state.keys, retire, state.current).without_expired(time.time())

    @property
    def current_kid(self) -> str | None:
        """The kid new tokens are signed with; None for a verify-only keyring."""
        return self._live().current

    @property
    def kids(self) -> list[str]:
        """The kids of every live key (retired keys still in their grace included)."""
        return list(self._live().keys)

    def __repr__(self) -> str:
        state = self._live()
        return f"Keyring(kids={list(state.keys)!r}, current={state.current!r})"

    def _live(self) -> KeySet:
        """The current snapshot, after dropping keys whose retirement time has passed."""
        state = self._state
        if state.retire and min(state.retire.values()) <= time.time():
            with self._lock:
                self._state = state = self._state.without_expired(time.time())
        return state

    def _entry(self, kid: str) -> KeyEntry:
        """The live key named ``kid``; ``UnknownKey`` if it is unknown or retired."""
        state = self._state
        entry = state.keys.get(kid)
        if entry is None:
            raise UnknownKey("unknown kid")
        at = state.retire.get(kid)
        if at is not None and at <= time.time():
            self._live()
            raise UnknownKey("key was retired")
        return entry

    def _signer(self, kid: str | None) -> KeyEntry:
        """The key to sign with (default: current); ``InvalidInput`` if it cannot sign."""
        if kid is None:
            kid = self._live().current
            if kid is None:
                raise InvalidInput("keyring has no signing key")
        try:
            entry = self._entry(kid)
        except UnknownKey as err:
            raise InvalidInput(f"no live key {kid!r} in this keyring") from err
        if not entry.can_sign:
            raise InvalidInput(f"key {kid!r} is verify-only")
        return entry


def _seconds(name: str, value: object) -> float:
    # One bound refuses negatives, NaN, infinities and ints too big for a float alike.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= _MAX:
        raise InvalidInput(f"{name} must be a number of seconds in 0..2**53")
    return float(value)


# --- access tokens ----------------------------------------------------------------------------


class AccessClaims(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The verified content of an access token: registered claims as attributes.

    Untracked by the garbage collector (``gc=False``), like the records of ``models``.
    """

    user_id: str
    session_id: str
    token_id: str
    issued_at: int
    expires_at: int
    claims: dict[str, Any]


def issue_access_token(
    keyring: Keyring,
    *,
    user_id: str,
    session_id: str,
    claims: Mapping[str, Any],
    config: Config,
    now: float,
    expires_at: float | None = None,
) -> tuple[str, AccessClaims]:
    """Sign an RFC 9068 access token with the keyring's current key.

    ``exp`` is ``now + access_ttl``, capped at ``expires_at`` (e.g. the session's absolute
    deadline); times are floored to whole seconds.
    """
    check_user_id(user_id)
    check_session_id(session_id)
    issued_at = math.floor(_seconds("now", now))
    expires = issued_at + config.access_ttl
    if expires_at is not None:
        expires = min(expires, math.floor(_seconds("expires_at", expires_at)))
    extra = _strict.json_claims(claims, RESERVED_CLAIMS)
    key = keyring._signer(None)
    token_id = secrets.token_urlsafe(12)
    payload = {
        "iss": config.issuer,
        "sub": user_id,
        "aud": config.audience,
        "iat": issued_at,
        "exp": expires,
        "jti": token_id,
        "sid": session_id,
        **extra,
    }
    headers = {"alg": key.alg, "kid": key.kid, "typ": ACCESS_TOKEN_TYPE}
    token = jwt.encode(payload, key.signing_key, algorithm=key.alg, headers=headers)
    if len(token) > config.max_token_bytes:
        raise InvalidInput("the access token would exceed max_token_bytes")
    verified = AccessClaims(
        user_id=user_id,
        session_id=session_id,
        token_id=token_id,
        issued_at=issued_at,
        expires_at=expires,
        claims=extra,
    )
    return token, verified


def _claim_error(name: str, payload: dict[str, Any], expected: str) -> InvalidClaim:
    if name not in payload:
        return InvalidClaim(f"{name} claim is missing", claim=name)
    return InvalidClaim(f"{name} claim must be {expected}", claim=name)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _numeric(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if type(value) is not int or not 0 <= value <= _MAX:
        raise _claim_error(name, payload, "an integer NumericDate")
    return value


def verify_access_token(
    keyring: Keyring, token: object, *, config: Config, now: float
) -> AccessClaims:
    """Check an access token without I/O: shape, header, signature, then claims.

    Each refusal raises its own ``InvalidToken`` subclass; none echoes the token.
    """
    if not isinstance(token, str):
        raise MalformedToken("token must be a str")
    # First and alone: a huge token must cost one length check, not a regex or a decode.
    if len(token) > config.max_token_bytes:
        raise TokenTooLarge("token exceeds max_token_bytes")
    if token.startswith(REFRESH_PREFIX):
        raise WrongTokenType("a refresh token is not an access token")
    if not token.isascii():
        raise MalformedToken("token is not a compact JWS")
    raw = token.encode("ascii")
    segments = raw.split(b".")
    # translate() with a delete set leaves exactly the bytes outside base64url and '.'.
    if len(segments) != 3 or raw.translate(None, _JWS_CHARS) or b"" in segments:
        raise MalformedToken("token is not a compact JWS")
    head, body, signature = segments
    state = keyring._state
    key = state.headers.get(head)
    known = key is not None
    if key is None:
        key = state.header_key(head)
    if state.retire and key.kid in state.retire:
        keyring._entry(key.kid)
    # The signature is checked before the payload is decoded: unauthenticated bytes never
    # reach the JSON parser.
    if not key.verify_jws(head, body, signature):
        raise InvalidSignature("signature does not verify")
    if not known:
        state.remember(head, key)
    payload = _strict.json_object(body, "payload")

    sub = payload.get("sub")
    # The user id builds Redis keys next: refuse here what check_user_id would refuse there
    # (NUL, lone surrogates), so a signed oddity is an InvalidClaim, never an InvalidInput.
    if (
        type(sub) is not str
        or not 1 <= len(sub) <= 256
        or "\x00" in sub
        or not (sub.isascii() or _encodes(sub))
    ):
        raise _claim_error("sub", payload, "a user id of 1..256 chars")
    sid = payload.get("sid")
    if type(sid) is not str or _SID.fullmatch(sid) is None:
        raise _claim_error("sid", payload, "a session id")
    jti = payload.get("jti")
    if type(jti) is not str or not 1 <= len(jti) <= 64:
        raise _claim_error("jti", payload, "a string of 1..64 chars")
    iat = payload.get("iat")
    if type(iat) is not int or not 0 <= iat <= _MAX:
        raise _claim_error("iat", payload, "an integer NumericDate")
    exp = payload.get("exp")
    if type(exp) is not int or not 0 <= exp <= _MAX:
        raise _claim_error("exp", payload, "an integer NumericDate")
    nbf = _numeric(payload, "nbf") if "nbf" in payload else None
    # Only a str can equal a str, so one comparison checks both type and value.
    if payload.get("iss") != config.issuer:
        raise _claim_error("iss", payload, "this issuer")
    if payload.get("aud") != config.audience:
        raise _claim_error("aud", payload, "this audience (a string)")
    leeway = config.leeway
    if exp + leeway < now:
        raise TokenExpired("token has expired")
    if nbf is not None and nbf - leeway > now:
        raise InvalidClaim("token is not yet valid", claim="nbf")
    if iat - leeway > now:
        raise InvalidClaim("token was issued in the future", claim="iat")
    if exp - iat > config.access_ttl + leeway:
        raise InvalidClaim("token lifetime exceeds access_ttl", claim="exp")
    # sub, sid, jti, iat and exp are present (checked above): a payload of exactly those
    # and the other registered names it holds carries no claims of the caller's.
    registered = 5 + ("iss" in payload) + ("aud" in payload) + (nbf is not None)
    if len(payload) == registered + ("typ" in payload):
        claims: dict[str, Any] = {}
    else:
        claims = {name: value for name, value in payload.items() if name not in RESERVED_CLAIMS}
    return AccessClaims(
        user_id=sub,
        session_id=sid,
        token_id=jti,
        issued_at=iat,
        expires_at=exp,
        claims=claims,
    )


# --- refresh tokens ---------------------------------------------------------------------------


class RefreshClaims(msgspec.Struct, frozen=True, kw_only=True):
    """The locator a genuine refresh token carries (its MAC has been checked)."""

    user_id: str
    session_id: str
    generation: int
    kid: str


def _refresh_mac(refresh_key: bytes, body: str) -> str:
    return _strict.b64u_encode(hmac.digest(refresh_key, body.encode("utf-8"), "sha256"))


def issue_refresh_token(
    keyring: Keyring, *, user_id: str, session_id: str, generation: int, kid: str | None = None
) -> str:
    """The opaque refresh token of one session generation, MACed under ``kid`` (default current).

    Format: ``rt1.<b64u user>.<sid>.<generation>.<b64u kid>.<b64u mac>``.
    """
    check_session_id(session_id)
    if isinstance(generation, bool) or not isinstance(generation, int):
        raise InvalidInput("generation must be an integer")
    if not 1 <= generation <= _MAX:
        raise InvalidInput(f"generation must be 1..{_MAX}")
    key = keyring._signer(kid)
    if key.refresh_key is None:  # unreachable: a key that can sign has refresh material
        raise InvalidInput(f"key {key.kid!r} cannot issue refresh tokens")
    body = (
        f"{REFRESH_PREFIX}{encode_user_id(user_id)}.{session_id}.{generation}."
        f"{_strict.b64u_encode(key.kid.encode('utf-8'))}"
    )
    return f"{body}.{_refresh_mac(key.refresh_key, body)}"


def parse_refresh_token(keyring: Keyring, token: object, *, max_bytes: int) -> RefreshClaims:
    """Check a refresh token's shape and MAC (no I/O) and return its locator."""
    if not isinstance(token, str):
        raise MalformedToken("token must be a str")
    if len(token) > max_bytes:
        raise TokenTooLarge("token exceeds the size limit")
    if not token.startswith(REFRESH_PREFIX) and _COMPACT.fullmatch(token) is not None:
        raise WrongTokenType("an access token is not a refresh token")
    match = _REFRESH.fullmatch(token)
    if match is None:
        raise MalformedToken("token is not a refresh token")
    encoded_user, session_id, generation, encoded_kid, mac = match.groups()
    if int(generation) > _MAX:
        raise MalformedToken("refresh token generation is out of range")
    try:
        user_id = decode_user_id(encoded_user)
        check_session_id(session_id)
        kid = _strict.b64u_decode(encoded_kid).decode("utf-8")
    except (InvalidInput, ValueError) as err:
        raise MalformedToken("refresh token is malformed") from err
    key = keyring._entry(kid)
    if key.refresh_key is None:
        raise UnknownKey("kid has no refresh key in this keyring")
    if not hmac.compare_digest(_refresh_mac(key.refresh_key, token[: token.rindex(".")]), mac):
        raise InvalidSignature("refresh token MAC does not verify")
    return RefreshClaims(
        user_id=user_id, session_id=session_id, generation=int(generation), kid=kid
    )
