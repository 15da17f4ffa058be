"""Tokens: stateful access JWTs (RFC 9068) and opaque refresh tokens, under a ``Keyring``
(``sessionstore._jose.keyring``, re-exported here).

Pure code: no I/O. ``verify_access_token`` is the pre-decode gate of hybrid validation:
size, shape, header allowlist, pinned algorithm, signature, then strict claims, so a forged
token is refused before anything costs a Redis call.
"""

from __future__ import annotations

import hmac
import math
import re
import secrets
from collections.abc import Mapping
from typing import Any, Final

import jwt
import msgspec

from sessionstore._engine import binding
from sessionstore._jose import strict
from sessionstore._jose.jws import KeyEntry
from sessionstore._jose.keyring import SAFE_INT_MAX, Keyring, seconds
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
from sessionstore.models import Config, Device

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "DEVICE_CLAIM",
    "MAX_ACR",
    "MAX_AMR",
    "REFRESH_PREFIX",
    "RESERVED_CLAIMS",
    "SECURITY_EVENT_TYPE",
    "SESSION_REVOKED",
    "AccessClaims",
    "Keyring",
    "RefreshClaims",
    "check_acr",
    "check_method",
    "issue_access_token",
    "issue_refresh_token",
    "issue_security_event",
    "parse_refresh_token",
    "verify_access_token",
]

ACCESS_TOKEN_TYPE: Final = "at+jwt"
# A Security Event Token (RFC 8417) and the CAEP event type of a revoked session.
SECURITY_EVENT_TYPE: Final = "secevent+jwt"
SESSION_REVOKED: Final = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
# Who started a revocation, as CAEP says it, where the reason tells (else left out).
_INITIATOR: Final = {"logout": "user", "evicted": "policy", "reuse": "policy"}
REFRESH_PREFIX: Final = "rt1."
# The keyed digests of the session's device (see binding.digest): {"ip": ..., "ua": ...}.
DEVICE_CLAIM: Final = "ss_dev"
RESERVED_CLAIMS: Final = frozenset(
    {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "typ", DEVICE_CLAIM}
    | {"auth_time", "amr", "acr"}
)
# The last proof of identity (OpenID Connect's auth_time, amr, acr): a method is an RFC 8176
# value ("pwd", "otp", "webauthn", ...) or one of the same shape; a session keeps at most
# MAX_AMR of them (lua/step_up.lua drops the oldest); a level is 1..MAX_ACR (0: none).
MAX_ACR: Final = 9
MAX_AMR: Final = 8
_METHOD: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
_ACR_VALUES: Final = {str(n): n for n in range(1, MAX_ACR + 1)}
_JWS_CHARS: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
_COMPACT: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_SID: Final = re.compile(r"[A-Za-z0-9_-]{22}")
_DIGEST: Final = re.compile(r"[A-Za-z0-9_-]{22}")
_REFRESH: Final = re.compile(
    r"rt1\.([A-Za-z0-9_-]{2,342})\.([A-Za-z0-9_-]{22})\.([1-9][0-9]{0,15})"
    r"\.([A-Za-z0-9_-]{2,1366})\.([A-Za-z0-9_-]{43})"
)


# --- access tokens ----------------------------------------------------------------------------


class AccessClaims(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The verified content of an access token: registered claims as attributes.

    ``kid`` names the key that signed it; ``device`` holds the keyed digests of the
    session's device (``DEVICE_CLAIM``), None when the token carries none.
    Untracked by the garbage collector (``gc=False``), like the records of ``models``.
    """

    user_id: str
    session_id: str
    token_id: str
    issued_at: int
    expires_at: int
    claims: dict[str, Any]
    kid: str = ""
    device: dict[str, str] | None = None
    auth_time: int | None = None
    amr: tuple[str, ...] = ()
    acr: int = 0


def check_method(method: object) -> str:
    """``method`` if it is an authentication method name (RFC 8176's shape), else raise."""
    if type(method) is not str or _METHOD.fullmatch(method) is None:
        raise InvalidInput(
            f"method must be 1..32 chars of [a-z0-9_.-] (e.g. 'pwd', 'otp'), got {method!r}"
        )
    return method


def check_acr(level: object, *, low: int = 1) -> int:
    """``level`` if it is an assurance level in ``low``..``MAX_ACR``, else raise."""
    if type(level) is not int or not low <= level <= MAX_ACR:
        raise InvalidInput(f"level must be an integer in {low}..{MAX_ACR}, got {level!r}")
    return level


def issue_access_token(
    keyring: Keyring,
    *,
    user_id: str,
    session_id: str,
    claims: Mapping[str, Any],
    config: Config,
    now: float,
    expires_at: float | None = None,
    device: Device | None = None,
    auth_time: int | None = None,
    amr: tuple[str, ...] = (),
    acr: int = 0,
) -> tuple[str, AccessClaims]:
    """Sign an RFC 9068 access token with the keyring's current key.

    ``auth_time``, ``amr`` and ``acr`` become the OpenID Connect claims of the same names
    (``acr`` as a string, ``"2"``), each only when set (None, empty, 0: absent).

    ``exp`` is ``now + access_ttl``, capped at ``expires_at`` (e.g. the session's absolute
    deadline); times are floored to whole seconds. With ``device``, the token carries keyed
    digests of its IP network and user agent family (``DEVICE_CLAIM``), so that device
    binding can be checked without Redis; never the raw values.
    """
    check_user_id(user_id)
    check_session_id(session_id)
    issued_at = math.floor(seconds("now", now))
    expires = issued_at + config.access_ttl
    if expires_at is not None:
        expires = min(expires, math.floor(seconds("expires_at", expires_at)))
    extra = strict.json_claims(claims, RESERVED_CLAIMS)
    key = keyring._signer(None)
    token_id = secrets.token_urlsafe(12)
    bound = None if device is None else _device_digests(key, session_id, device)
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
    if bound is not None:
        payload[DEVICE_CLAIM] = bound
    if auth_time is not None:
        payload["auth_time"] = auth_time
    if amr:
        payload["amr"] = list(amr)
    if acr:
        payload["acr"] = str(acr)
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
        kid=key.kid,
        device=bound,
        auth_time=auth_time,
        amr=amr,
        acr=acr,
    )
    return token, verified


def _device_digests(key: KeyEntry, session_id: str, device: Device) -> dict[str, str]:
    binding_key = key.binding_key
    if binding_key is None:  # unreachable: a key that can sign has binding material
        raise InvalidInput(f"key {key.kid!r} cannot bind devices")
    bound: dict[str, str] = {}
    if device.ip:
        bound["ip"] = binding.digest(binding_key, session_id, "ip", device.ip)
    if device.user_agent:
        bound["ua"] = binding.digest(binding_key, session_id, "user_agent", device.user_agent)
    return bound


def _device_claim(payload: dict[str, Any]) -> dict[str, str] | None:
    if DEVICE_CLAIM not in payload:
        return None
    bound = payload[DEVICE_CLAIM]
    if (
        type(bound) is not dict
        or not bound.keys() <= {"ip", "ua"}
        or not all(type(v) is str and _DIGEST.fullmatch(v) for v in bound.values())
    ):
        raise InvalidClaim(f"{DEVICE_CLAIM} claim must hold device digests", claim=DEVICE_CLAIM)
    return bound


def _auth_claims(payload: dict[str, Any]) -> tuple[int | None, tuple[str, ...], int, int]:
    """The token's (auth_time, amr, acr), and how many of the three it holds."""
    auth_time = _numeric(payload, "auth_time") if "auth_time" in payload else None
    held = int(auth_time is not None)
    amr: tuple[str, ...] = ()
    if "amr" in payload:
        value = payload["amr"]
        if (
            type(value) is not list
            or not 1 <= len(value) <= MAX_AMR
            or not all(type(m) is str and _METHOD.fullmatch(m) for m in value)
        ):
            raise InvalidClaim("amr claim must be a list of method names", claim="amr")
        amr, held = tuple(value), held + 1
    acr = 0
    if "acr" in payload:
        level = payload["acr"]
        if type(level) is not str or level not in _ACR_VALUES:
            raise InvalidClaim(f"acr claim must be a level of 1..{MAX_ACR}", claim="acr")
        acr, held = _ACR_VALUES[level], held + 1
    return auth_time, amr, acr, held


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
    if type(value) is not int or not 0 <= value <= SAFE_INT_MAX:
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
    payload = strict.json_object(body, "payload")

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
    if type(iat) is not int or not 0 <= iat <= SAFE_INT_MAX:
        raise _claim_error("iat", payload, "an integer NumericDate")
    exp = payload.get("exp")
    if type(exp) is not int or not 0 <= exp <= SAFE_INT_MAX:
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
    device = _device_claim(payload)
    auth_time, amr, acr, held = _auth_claims(payload)
    registered = 5 + ("iss" in payload) + ("aud" in payload) + (nbf is not None)
    registered += (device is not None) + held
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
        kid=key.kid,
        device=device,
        auth_time=auth_time,
        amr=amr,
        acr=acr,
    )


# --- refresh tokens ---------------------------------------------------------------------------


class RefreshClaims(msgspec.Struct, frozen=True, kw_only=True):
    """The locator a genuine refresh token carries (its MAC has been checked)."""

    user_id: str
    session_id: str
    generation: int
    kid: str


def _refresh_mac(refresh_key: bytes, body: str) -> str:
    return strict.b64u_encode(hmac.digest(refresh_key, body.encode("utf-8"), "sha256"))


def issue_security_event(
    keyring: Keyring, *, config: Config, user_id: str, session_id: str, reason: str, now: float
) -> str:
    """A signed Security Event Token (RFC 8417) saying one session was revoked: the CAEP
    ``session-revoked`` event, its subject the user and session (RFC 9493 ``complex``)."""
    check_user_id(user_id)
    check_session_id(session_id)
    issued_at = math.floor(seconds("now", now))
    event: dict[str, Any] = {"event_timestamp": issued_at, "reason_admin": {"en": reason}}
    if reason in _INITIATOR:
        event["initiating_entity"] = _INITIATOR[reason]
    payload = {
        "iss": config.issuer,
        "aud": config.audience,
        "iat": issued_at,
        "jti": secrets.token_urlsafe(16),
        "sub_id": {
            "format": "complex",
            "user": {"format": "opaque", "id": user_id},
            "session": {"format": "opaque", "id": session_id},
        },
        "events": {SESSION_REVOKED: event},
    }
    key = keyring._signer(None)
    headers = {"alg": key.alg, "kid": key.kid, "typ": SECURITY_EVENT_TYPE}
    return jwt.encode(payload, key.signing_key, algorithm=key.alg, headers=headers)


def issue_refresh_token(
    keyring: Keyring, *, user_id: str, session_id: str, generation: int, kid: str | None = None
) -> str:
    """The opaque refresh token of one session generation, MACed under ``kid`` (default current).

    Format: ``rt1.<b64u user>.<sid>.<generation>.<b64u kid>.<b64u mac>``.
    """
    check_session_id(session_id)
    if isinstance(generation, bool) or not isinstance(generation, int):
        raise InvalidInput("generation must be an integer")
    if not 1 <= generation <= SAFE_INT_MAX:
        raise InvalidInput(f"generation must be 1..{SAFE_INT_MAX}")
    key = keyring._signer(kid)
    if key.refresh_key is None:  # unreachable: a key that can sign has refresh material
        raise InvalidInput(f"key {key.kid!r} cannot issue refresh tokens")
    body = (
        f"{REFRESH_PREFIX}{encode_user_id(user_id)}.{session_id}.{generation}."
        f"{strict.b64u_encode(key.kid.encode('utf-8'))}"
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
    if int(generation) > SAFE_INT_MAX:
        raise MalformedToken("refresh token generation is out of range")
    try:
        user_id = decode_user_id(encoded_user)
        check_session_id(session_id)
        kid = strict.b64u_decode(encoded_kid).decode("utf-8")
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
