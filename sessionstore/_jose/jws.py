"""JOSE layer under ``tokens``: the JWS header gate, keys and JWKs (encodings: ``strict``).

Private module, no I/O. Key material never reaches a repr, a log line or an exception
message: errors name the ``kid`` and ``alg``, never the key.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Any, Final, TypeAlias

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from jwt.algorithms import Algorithm

from sessionstore._jose.strict import (
    b64u_bytes,
    b64u_decode,
    b64u_decode_checked,
    b64u_encode,
    json_object,
)
from sessionstore._jose.weakkeys import looks_like_key, roca_weak
from sessionstore.errors import (
    DisallowedAlgorithm,
    InvalidHeader,
    InvalidInput,
    UnknownKey,
)

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

HMAC_SIZES: Final[Mapping[str, int]] = {"HS256": 32, "HS384": 48, "HS512": 64}
_HMAC_DIGESTS: Final[Mapping[str, str]] = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}
_KTY: Final[Mapping[str, str]] = {
    **dict.fromkeys(HMAC_SIZES, "oct"),
    **{"ES256": "EC", "EdDSA": "OKP", "RS256": "RSA", "PS256": "RSA"},
}
SUPPORTED_ALGS: Final = frozenset(_KTY)
MIN_RSA_BITS: Final = 2048
MAX_KID_CHARS: Final = 256
_REFRESH_LABEL: Final = b"sessionstore/refresh/v1"
_BINDING_LABEL: Final = b"sessionstore/device-binding/v1"
# What PyJWT and cryptography raise on a malformed JWK (binascii.Error is a ValueError).
_JWK_ERRORS: Final = (jwt.PyJWTError, ValueError, TypeError, KeyError, UnsupportedAlgorithm)
ACCESS_TYPES: Final = frozenset({"at+jwt", "application/at+jwt"})
_HEADER_MEMBERS: Final = frozenset({"alg", "kid", "typ"})
_HEADER_CACHE_SIZE: Final = 64

# --- key set snapshot and JWS header gate -----------------------------------------------------


class KeySet:
    """One immutable view of a keyring: writers build a new one and swap the reference."""

    __slots__ = ("current", "headers", "keys", "retire")

    def __init__(
        self, keys: dict[str, KeyEntry], retire: dict[str, float], current: str | None
    ) -> None:
        self.keys = keys
        self.retire = retire  # kid -> time.time() at which the key is dropped
        self.current = current
        # Header segment -> key: every token one key signs carries the same header text, so
        # the strict header parse runs once per key and snapshot, not once per request.
        self.headers: dict[bytes, KeyEntry] = {}

    def without_expired(self, now: float) -> KeySet:
        """This set, or a new one without the keys whose retirement time has passed."""
        gone = {kid for kid, at in self.retire.items() if at <= now}
        if not gone:
            return self
        keys = {kid: key for kid, key in self.keys.items() if kid not in gone}
        retire = {kid: at for kid, at in self.retire.items() if kid not in gone}
        return KeySet(keys, retire, None if self.current in gone else self.current)

    def header_key(self, segment: bytes) -> KeyEntry:
        """The key a JWS header segment names, once the header passes the allowlist."""
        header = json_object(segment, "header")
        if not header.keys() <= _HEADER_MEMBERS:
            raise InvalidHeader("header has a member other than alg, kid and typ")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise DisallowedAlgorithm("alg is missing or not allowed")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ not in ACCESS_TYPES:
            raise InvalidHeader("typ must be at+jwt")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidHeader("kid must be a string")
        key = self.keys.get(kid)
        if key is None:
            raise UnknownKey("unknown kid")
        if alg != key.alg:
            raise DisallowedAlgorithm("alg is not the one pinned for this kid")
        return key

    def remember(self, segment: bytes, key: KeyEntry) -> None:
        """Cache a header segment whose token's signature verified (so never a forger's)."""
        if len(self.headers) < _HEADER_CACHE_SIZE:
            self.headers[segment] = key


# --- keys -------------------------------------------------------------------------------------


class KeyEntry:
    """One key of a keyring: its kid, pinned alg and material prepared once for every use."""

    __slots__ = (
        "_algorithm",
        "_mac",
        "_prefixed",
        "alg",
        "binding_key",
        "kid",
        "private",
        "public",
        "refresh_key",
        "secret",
        "sig_len",
    )

    def __init__(
        self,
        kid: str,
        alg: str,
        *,
        secret: bytes | None = None,
        private: PrivateKey | None = None,
        public: PublicKey | None = None,
    ) -> None:
        self.kid = kid
        self.alg = alg
        self.secret = secret
        self.private = private
        self.public = public if private is None else private.public_key()
        # Keyed once: copying a keyed HMAC skips re-deriving the pads on every verify.
        self._mac = None if secret is None else _keyed_mac(secret, _HMAC_DIGESTS[alg])
        # Header segment + "." -> the keyed HMAC that has absorbed it: every token of this
        # key starts with the same header, so a verify only hashes the payload and MAC.
        self._prefixed: dict[bytes, Any] = {}
        self._algorithm: Algorithm = jwt.get_algorithm_by_name(alg)
        if secret is not None:
            self.sig_len = HMAC_SIZES[alg]
        elif isinstance(self.public, rsa.RSAPublicKey):
            self.sig_len = (self.public.key_size + 7) // 8
        else:
            self.sig_len = 64  # ES256 raw r||s and Ed25519 are both 64 bytes
        material = _refresh_material(secret, private)
        # The refresh secret is derived, never stored: tokens of every generation are MACs
        # under a key that exists only as long as the signing key does.
        self.refresh_key = (
            None if material is None else hmac.digest(material, _REFRESH_LABEL, "sha256")
        )
        # Device binding digests (see _engine.binding.digest) use a key of their own, derived the
        # same way: a process that can sign (or refresh) can check a token's device alone.
        self.binding_key = (
            None if material is None else hmac.digest(material, _BINDING_LABEL, "sha256")
        )

    @property
    def can_sign(self) -> bool:
        """Whether this entry holds private material (HMAC secret or private key)."""
        return self.secret is not None or self.private is not None

    @property
    def signing_key(self) -> bytes | PrivateKey:
        """The key PyJWT signs with; ``ValueError`` for a verify-only entry."""
        key = self.secret if self.secret is not None else self.private
        if key is None:
            raise ValueError("verify-only key")
        return key

    def verify_jws(self, head: bytes, body: bytes, signature: bytes) -> bool:
        """``verify`` of the compact JWS ``head.body.signature`` (charset already checked)."""
        if self._mac is None:
            return self.verify(b"%s.%s" % (head, body), signature)
        prefixed = self._prefixed.get(head)
        known = prefixed is not None
        if prefixed is None:
            prefixed = self._mac.copy()
            prefixed.update(head + b".")
        mac = prefixed.copy()
        mac.update(body)
        valid = hmac.compare_digest(b64u_bytes(mac.digest()), signature)
        # Kept only for a header whose token verified (like KeySet.remember): a forger's
        # header variants never fill the cache.
        if valid and not known and len(self._prefixed) < _HEADER_CACHE_SIZE:
            self._prefixed[head] = prefixed
        return valid

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        """Check ``signature`` (base64url, charset already checked) over ``signing_input``."""
        if self._mac is not None:
            mac = self._mac.copy()
            mac.update(signing_input)
            # Comparing the canonical encoding refuses a non-canonical or wrong-length
            # signature in the same constant-time comparison.
            return hmac.compare_digest(b64u_bytes(mac.digest()), signature)
        try:
            raw = b64u_decode_checked(signature)
        except ValueError:
            return False
        if len(raw) != self.sig_len:
            return False
        return bool(self._algorithm.verify(signing_input, self.public, raw))

    def to_jwk(self, *, private: bool) -> dict[str, Any]:
        """This key as a JWK; private material only when ``private`` is true."""
        body: dict[str, Any]
        if self.secret is not None:
            if not private:
                raise ValueError("an HMAC key has no public form")
            body = {"kty": "oct", "k": b64u_encode(self.secret)}
        else:
            key = self.private if private and self.private is not None else self.public
            body = dict(self._algorithm.to_jwk(key, as_dict=True))
        return {"kid": self.kid, "alg": self.alg, "use": "sig", **body}

    def __repr__(self) -> str:
        return f"KeyEntry(kid={self.kid!r}, alg={self.alg!r}, private={self.can_sign})"


def _keyed_mac(secret: bytes, digest: str) -> Any:
    """A keyed HMAC whose copy/update/digest are C calls (OpenSSL's, where CPython has it).

    ``hmac.HMAC.copy`` is Python code around the same object: a third of the cost of a
    verify on a short token.
    """
    try:
        import _hashlib

        return _hashlib.hmac_new(secret, digestmod=digest)
    except (ImportError, AttributeError, ValueError):
        return hmac.new(secret, digestmod=digest)


def _refresh_material(secret: bytes | None, private: PrivateKey | None) -> bytes | None:
    if secret is not None:
        return secret
    if isinstance(private, ec.EllipticCurvePrivateKey):
        size = (private.curve.key_size + 7) // 8
        return private.private_numbers().private_value.to_bytes(size, "big")
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    if isinstance(private, rsa.RSAPrivateKey):
        d = private.private_numbers().d
        return d.to_bytes((d.bit_length() + 7) // 8, "big")
    return None


def check_alg(alg: object) -> str:
    """Return ``alg`` if it is a supported algorithm name, else raise ``InvalidInput``."""
    if isinstance(alg, str) and alg.lower() == "none":
        raise InvalidInput("alg 'none' can never be configured")
    if not isinstance(alg, str) or alg not in SUPPORTED_ALGS:
        raise InvalidInput(f"alg must be one of {', '.join(sorted(SUPPORTED_ALGS))}")
    return alg


def check_kid(kid: object) -> str:
    """Return ``kid`` if it is a usable key id (1..256 chars, valid Unicode), else raise."""
    if not isinstance(kid, str) or not 1 <= len(kid) <= MAX_KID_CHARS:
        raise InvalidInput(f"kid must be a string of 1..{MAX_KID_CHARS} chars")
    try:
        kid.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidInput("kid must be valid Unicode (no lone surrogates)") from err
    return kid


def check_hmac_secret(secret: bytes, alg: str) -> bytes:
    """Return ``secret`` if it is long and varied enough for ``alg``, else ``InvalidInput``."""
    size = HMAC_SIZES[alg]
    if len(secret) < size:
        raise InvalidInput(f"{alg} secret must be at least {size} bytes, got {len(secret)}")
    if len(set(secret)) < 8:
        raise InvalidInput(f"{alg} secret is weak: fewer than 8 distinct byte values")
    for period in range(1, len(secret) // 2 + 1):
        if secret[period:] == secret[:-period]:
            raise InvalidInput(f"{alg} secret is weak: a {period}-byte pattern repeated")
    looks = looks_like_key(secret)
    if looks is not None:
        # Algorithm confusion: a public key used as an HMAC secret lets anyone who has it
        # sign. Our own test, whatever PyJWT's version checks.
        raise InvalidInput(f"{alg} secret looks like {looks}, not a random secret")
    try:
        # PyJWT refuses secrets that look like PEM/DER/JWK keys (algorithm confusion); it
        # would do so at every encode, so find out now.
        jwt.get_algorithm_by_name(alg).prepare_key(secret)
    except jwt.InvalidKeyError as err:
        raise InvalidInput(f"{alg} secret looks like an asymmetric key or a JWK") from err
    return secret


def _check_public(alg: str, public: PublicKey, where: str) -> None:
    if alg == "ES256":
        if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
            public.curve, ec.SECP256R1
        ):
            raise InvalidInput(f"{where}: ES256 needs a P-256 key")
    elif alg == "EdDSA":
        if not isinstance(public, ed25519.Ed25519PublicKey):
            raise InvalidInput(f"{where}: EdDSA needs an Ed25519 key")
    elif not isinstance(public, rsa.RSAPublicKey):
        raise InvalidInput(f"{where}: {alg} needs an RSA key")
    elif public.key_size < MIN_RSA_BITS:
        raise InvalidInput(f"{where}: RSA keys must be >= {MIN_RSA_BITS} bits")
    elif roca_weak(public.public_numbers().n):
        raise InvalidInput(f"{where}: RSA key has the ROCA weakness (CVE-2017-15361)")


def generate_entry(alg: object, kid: object = None) -> KeyEntry:
    """A fresh random key for ``alg`` (HMAC secret of the hash size, P-256, Ed25519, RSA 2048)."""
    alg = check_alg(alg)
    kid = secrets.token_urlsafe(12) if kid is None else check_kid(kid)
    if alg in HMAC_SIZES:
        while True:  # a random secret fails the weakness test with negligible probability
            secret = secrets.token_bytes(HMAC_SIZES[alg])
            try:
                return KeyEntry(kid, alg, secret=check_hmac_secret(secret, alg))
            except InvalidInput:
                continue
    private: PrivateKey
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
    return KeyEntry(kid, alg, private=private)


def entry_from_jwk(jwk: object) -> KeyEntry:
    """Import one JWK (RFC 7517) that names its ``kid`` and ``alg``; refuse weak keys."""
    if not isinstance(jwk, Mapping):
        raise InvalidInput("each JWK must be a JSON object")
    kid = check_kid(jwk.get("kid"))
    where = f"JWK {kid!r}"
    try:
        alg = check_alg(jwk.get("alg"))
    except InvalidInput as err:
        raise InvalidInput(f"{where}: {err}") from err
    if jwk.get("kty") != _KTY[alg]:
        raise InvalidInput(f"{where}: kty must be {_KTY[alg]!r} for {alg}")
    if jwk.get("use", "sig") != "sig":
        raise InvalidInput(f"{where}: use must be 'sig'")
    if alg in HMAC_SIZES:
        try:
            secret = b64u_decode(jwk.get("k"))
        except ValueError as err:
            raise InvalidInput(f"{where}: k must be unpadded base64url") from err
        try:
            return KeyEntry(kid, alg, secret=check_hmac_secret(secret, alg))
        except InvalidInput as err:
            raise InvalidInput(f"{where}: {err}") from err
    try:
        key = jwt.get_algorithm_by_name(alg).from_jwk(dict(jwk))
    except _JWK_ERRORS as err:
        raise InvalidInput(f"{where}: not a valid {alg} key ({type(err).__name__})") from err
    if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        _check_public(alg, key.public_key(), where)
        return KeyEntry(kid, alg, private=key)
    if isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        _check_public(alg, key, where)
        return KeyEntry(kid, alg, public=key)
    raise InvalidInput(f"{where}: not a valid {alg} key")
