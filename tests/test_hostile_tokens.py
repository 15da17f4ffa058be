"""Hostile tokens against a real store: each is refused with its own error and no Redis call.

Every case goes through the public API (``validate``, ``refresh`` or ``logout``) of a store on
a real server, in both modes; the server's command counters (INFO commandstats) must not move.
Tokens are forged by hand: base64url of crafted JSON, signed with the real keys where the
signature must verify, so that each case reaches exactly the check it targets.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import redis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from forge import SID, b64, claim_set, segment
from sessionstore import Config, Device, Keyring, SessionRevoked
from sessionstore.errors import (
    DisallowedAlgorithm,
    InvalidClaim,
    InvalidHeader,
    InvalidSignature,
    InvalidToken,
    MalformedToken,
    TokenExpired,
    TokenTooLarge,
    UnknownKey,
    WrongTokenType,
)
from sessionstore.testing import LocalServer
from sessionstore.tokens import issue_refresh_token, verify_access_token

CONFIG = Config(issuer="https://auth.example", audience="api.example")
NOW = int(time.time())
HS: dict[str, object] = {"alg": "HS256", "kid": "hs1", "typ": "at+jwt"}
ES: dict[str, object] = {"alg": "ES256", "kid": "es1", "typ": "at+jwt"}
ED: dict[str, object] = {"alg": "EdDSA", "kid": "ed1", "typ": "at+jwt"}
RS: dict[str, object] = {"alg": "RS256", "kid": "rs1", "typ": "at+jwt"}
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
PHONE = Device(id="phone-1", name="Pixel")


def claims(**changes: object) -> dict[str, object]:
    """Valid claims at NOW; a change to ``None`` removes the claim."""
    return claim_set(CONFIG, NOW, **changes)


def header(base: dict[str, object], **changes: object) -> dict[str, object]:
    merged = {**base, **changes}
    return {name: value for name, value in merged.items() if value is not None}


def raw_json(base: dict[str, object], extra: str) -> str:
    """``base`` as JSON with ``extra`` members spliced in before the closing brace."""
    return json.dumps(base, separators=(",", ":"))[:-1] + extra + "}"


class Forge:
    """The keys of the store under attack (hs1 signs; es1, ed1, rs1 verify) and forgers."""

    def __init__(self) -> None:
        self.secret = secrets.token_bytes(32)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.ed = ed25519.Ed25519PrivateKey.generate()
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwks = {
            "keys": [
                {**jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa, as_dict=True), "kid": "rs1"},
                {**jwt.algorithms.ECAlgorithm.to_jwk(self.ec, as_dict=True), "kid": "es1"},
                {**jwt.algorithms.OKPAlgorithm.to_jwk(self.ed, as_dict=True), "kid": "ed1"},
                {"kty": "oct", "kid": "hs1", "k": b64(self.secret)},
            ]
        }
        for jwk, alg in zip(jwks["keys"], ["RS256", "ES256", "EdDSA", "HS256"], strict=True):
            jwk["alg"] = alg
        self.keyring = Keyring.from_jwks(jwks)
        assert self.keyring.current_kid == "hs1"

    @staticmethod
    def signing_input(head: object, body: object) -> str:
        return f"{segment(head)}.{segment(claims() if body is None else body)}"

    def hs(
        self,
        head: object = HS,
        body: object = None,
        *,
        key: bytes | None = None,
        digest: str = "sha256",
    ) -> str:
        """HMAC-signed (by default with the real hs1 secret)."""
        signing = self.signing_input(head, body)
        mac = hmac.digest(self.secret if key is None else key, signing.encode(), digest)
        return f"{signing}.{b64(mac)}"

    def es(self, head: object = ES, body: object = None, *, high_s: bool = False) -> str:
        """ES256-signed with es1 (raw r||s); ``high_s`` gives the malleated twin (n - s)."""
        signing = self.signing_input(head, body)
        r, s = decode_dss_signature(self.ec.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
        if (s > P256_ORDER // 2) != high_s:
            s = P256_ORDER - s
        return f"{signing}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def rs(self, head: object = RS, body: object = None, *, pss: bool = False) -> str:
        signing = self.signing_input(head, body).encode()
        pad: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            if pss
            else padding.PKCS1v15()
        )
        return f"{signing.decode()}.{b64(self.rsa.sign(signing, pad, hashes.SHA256()))}"

    def public_pem(self, key: Any) -> bytes:
        return bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def valid(self) -> str:
        return self.hs()

    def refresh(self, **changes: Any) -> str:
        args: dict[str, Any] = {"user_id": "user-1", "session_id": SID, "generation": 1}
        args.update(changes)
        return issue_refresh_token(self.keyring, **args)


def with_signature(token: str, signature: str) -> str:
    return token.rsplit(".", 1)[0] + "." + signature


def alter(text: str) -> str:
    """``text`` with its tenth-last character changed to another base64url character.

    (Not the last one: changing only its unused low bits is the non-canonical case.)
    """
    return text[:-10] + ("A" if text[-10] != "A" else "B") + text[-9:]


def noncanonical(text: str) -> str:
    """Set the unused low bits of the last base64url character (same bytes, other text)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(text) % 4 in (2, 3)
    return text[:-1] + alphabet[alphabet.index(text[-1]) | 1]


def refresh_parts(f: Forge) -> list[str]:
    return f.refresh().split(".")


def refresh_swap(f: Forge, index: int, value: str) -> str:
    parts = refresh_parts(f)
    parts[index] = value
    return ".".join(parts)


def noncanonical_header(f: Forge) -> str:
    # 43 bytes of header JSON (a trailing space is legal) leave 4 unused bits at the end.
    head, rest = f.hs(json.dumps(HS, separators=(",", ":")) + " ").split(".", 1)
    return f"{noncanonical(head)}.{rest}"


def es_raw(f: Forge, signature: bytes) -> str:
    return f"{f.signing_input(ES, None)}.{b64(signature)}"


def es_der(f: Forge) -> str:
    signing = f.signing_input(ES, None)
    return f"{signing}.{b64(f.ec.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))}"


def ed_public_raw(f: Forge) -> bytes:
    return f.ed.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def ec_public_jwk_json(f: Forge) -> bytes:
    return jwt.algorithms.ECAlgorithm.to_jwk(f.ec.public_key()).encode()


def rsa_public_der(f: Forge) -> bytes:
    return f.rsa.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


DEEP_HEADER = '{"alg":"HS256","kid":"hs1","typ":"at+jwt","x":' + "[" * 1500 + "]" * 1500 + "}"
DEEP_BODY = raw_json(claims(), ',"x":' + "{" * 1000 + '"a":1' + "}" * 1000)


@dataclass(frozen=True)
class Case:
    """One hostile input, the exact error it must raise, and the API it is sent to."""

    name: str
    make: Callable[[Forge], object]
    expected: type[InvalidToken]
    via: str = "validate"


def none_alg(casing: str) -> Case:
    return Case(f"alg {casing!r}", lambda f: f.hs(header(HS, alg=casing)), DisallowedAlgorithm)


ALG = [
    *(none_alg(casing) for casing in ["none", "None", "NONE", "nOnE", "NoNe", "nonE"]),
    Case(
        "alg none, empty signature",
        lambda f: f.signing_input({"alg": "none", "typ": "at+jwt"}, None) + ".",
        MalformedToken,
    ),
    Case(
        "alg none, no kid, signed",
        lambda f: f.hs({"alg": "none", "typ": "at+jwt"}),
        DisallowedAlgorithm,
    ),
    Case("alg lower case", lambda f: f.hs(header(HS, alg="hs256")), DisallowedAlgorithm),
    Case("alg trailing space", lambda f: f.hs(header(HS, alg="HS256 ")), DisallowedAlgorithm),
    Case("alg leading space", lambda f: f.hs(header(HS, alg=" HS256")), DisallowedAlgorithm),
    Case("alg trailing NUL", lambda f: f.hs(header(HS, alg="HS256\x00")), DisallowedAlgorithm),
    Case("alg missing", lambda f: f.hs(header(HS, alg=None)), DisallowedAlgorithm),
    Case("alg null", lambda f: f.hs(raw_json({"kid": "hs1"}, ',"alg":null')), DisallowedAlgorithm),
    Case("alg array", lambda f: f.hs(header(HS, alg=["HS256"])), DisallowedAlgorithm),
    Case("alg object", lambda f: f.hs(header(HS, alg={"HS256": 1})), DisallowedAlgorithm),
    Case("alg number", lambda f: f.hs(header(HS, alg=256)), DisallowedAlgorithm),
    Case(
        "alg HS512 on the HS256 key",
        lambda f: f.hs(header(HS, alg="HS512"), digest="sha512"),
        DisallowedAlgorithm,
    ),
    Case(
        "alg ES256 on the HS256 key", lambda f: f.hs(header(HS, alg="ES256")), DisallowedAlgorithm
    ),
    Case(
        "alg PS256 on the RS256 key",
        lambda f: f.rs(header(RS, alg="PS256"), pss=True),
        DisallowedAlgorithm,
    ),
    Case(
        "alg Ed25519 on the EdDSA key",
        lambda f: f.hs(header(ED, alg="Ed25519")),
        DisallowedAlgorithm,
    ),
]
CONFUSION = [
    Case(
        "HS256 keyed with the RSA public PEM",
        lambda f: f.hs(header(HS, kid="rs1"), key=f.public_pem(f.rsa)),
        DisallowedAlgorithm,
    ),
    Case(
        "HS256 keyed with the RSA public DER",
        lambda f: f.hs(header(HS, kid="rs1"), key=rsa_public_der(f)),
        DisallowedAlgorithm,
    ),
    Case(
        "HS256 keyed with the EC public PEM",
        lambda f: f.hs(header(HS, kid="es1"), key=f.public_pem(f.ec)),
        DisallowedAlgorithm,
    ),
    Case(
        "HS256 keyed with the EC public JWK",
        lambda f: f.hs(header(HS, kid="es1"), key=ec_public_jwk_json(f)),
        DisallowedAlgorithm,
    ),
    Case(
        "HS256 keyed with the raw Ed25519 public key",
        lambda f: f.hs(header(HS, kid="ed1"), key=ed_public_raw(f)),
        DisallowedAlgorithm,
    ),
    Case(
        "RS256 header on the HMAC key", lambda f: f.hs(header(HS, alg="RS256")), DisallowedAlgorithm
    ),
]
SIGNATURE = [
    Case("empty signature", lambda f: with_signature(f.valid(), ""), MalformedToken),
    Case("truncated signature", lambda f: f.valid()[:-4], InvalidSignature),
    Case("altered signature", lambda f: alter(f.valid()), InvalidSignature),
    Case("signature too long", lambda f: f.valid() + "AAAA", InvalidSignature),
    Case(
        "non-canonical signature",
        lambda f: with_signature(f.valid(), noncanonical(f.valid().rsplit(".", 1)[1])),
        InvalidSignature,
    ),
    Case(
        "signature of another token",
        lambda f: with_signature(f.valid(), f.hs(body=claims(sub="admin")).rsplit(".", 1)[1]),
        InvalidSignature,
    ),
    Case(
        "payload swapped under a genuine signature",
        lambda f: f"{segment(HS)}.{segment(claims(sub='admin'))}.{f.valid().rsplit('.', 1)[1]}",
        InvalidSignature,
    ),
    Case("ECDSA psychic signature r=s=0", lambda f: es_raw(f, bytes(64)), InvalidSignature),
    Case(
        "ECDSA r=s=n (the group order)",
        lambda f: es_raw(f, P256_ORDER.to_bytes(32, "big") * 2),
        InvalidSignature,
    ),
    Case("ECDSA DER-encoded signature", es_der, InvalidSignature),
    Case(
        "EdDSA all-zero signature",
        lambda f: f"{f.signing_input(ED, None)}.{b64(bytes(64))}",
        InvalidSignature,
    ),
    Case("RS256 signature cut short", lambda f: f.rs()[:-6], InvalidSignature),
]
KID = [
    Case("kid unknown", lambda f: f.hs(header(HS, kid="nope")), UnknownKey),
    Case(
        "kid path traversal", lambda f: f.hs(header(HS, kid="../../../../etc/passwd")), UnknownKey
    ),
    Case("kid SQL injection", lambda f: f.hs(header(HS, kid="x' OR '1'='1")), UnknownKey),
    Case("kid Redis glob", lambda f: f.hs(header(HS, kid="ss:{*}:*")), UnknownKey),
    Case("kid URL", lambda f: f.hs(header(HS, kid="https://evil.example/jwks.json")), UnknownKey),
    Case("kid with trailing NUL", lambda f: f.hs(header(HS, kid="hs1\x00")), UnknownKey),
    Case("kid other case", lambda f: f.hs(header(HS, kid="HS1")), UnknownKey),
    Case("kid 5000 chars", lambda f: f.hs(header(HS, kid="k" * 5000)), UnknownKey),
    Case("kid missing", lambda f: f.hs(header(HS, kid=None)), InvalidHeader),
    Case("kid number", lambda f: f.hs(header(HS, kid=1)), InvalidHeader),
    Case(
        "kid null",
        lambda f: f.hs(raw_json({"alg": "HS256", "typ": "at+jwt"}, ',"kid":null')),
        InvalidHeader,
    ),
    Case("kid array", lambda f: f.hs(header(HS, kid=["hs1"])), InvalidHeader),
]
MEMBER_VALUES: dict[str, object] = {
    "jwk": {"kty": "oct", "k": "AAAA"},
    "jku": "https://evil.example/jwks.json",
    "x5u": "https://evil.example/cert.pem",
    "x5c": ["MIIB"],
    "x5t": "AAAA",
    "crit": ["exp"],
    "zip": "DEF",
    "b64": False,
    "cty": "JWT",
    "enc": "A256GCM",
}


def member_case(name: str, value: object) -> Case:
    return Case(f"header {name}", lambda f: f.hs(header(HS, **{name: value})), InvalidHeader)


HEADERS = [
    *(member_case(name, value) for name, value in MEMBER_VALUES.items()),
    Case("typ missing", lambda f: f.hs(header(HS, typ=None)), InvalidHeader),
    Case("typ JWT", lambda f: f.hs(header(HS, typ="JWT")), InvalidHeader),
    Case("typ upper case", lambda f: f.hs(header(HS, typ="AT+JWT")), InvalidHeader),
    Case("typ array", lambda f: f.hs(header(HS, typ=["at+jwt"])), InvalidHeader),
]
SHAPE = [
    Case(
        "JSON serialisation (general)",
        lambda f: json.dumps(
            {
                "payload": segment(claims()),
                "signatures": [
                    {"protected": segment(HS), "signature": f.valid().rsplit(".", 1)[1]}
                ],
            }
        ),
        MalformedToken,
    ),
    Case(
        "JSON serialisation (flattened)",
        lambda f: json.dumps(
            {
                "payload": segment(claims()),
                "protected": segment(HS),
                "signature": f.valid().rsplit(".", 1)[1],
            }
        ),
        MalformedToken,
    ),
    Case(
        "standard base64 characters",
        lambda f: f.valid().replace("-", "+").replace("_", "/") + "+/",
        MalformedToken,
    ),
    Case("base64 padding", lambda f: f.valid() + "==", MalformedToken),
    Case("inner space", lambda f: f.valid().replace(".", ". ", 1), MalformedToken),
    Case("leading whitespace", lambda f: " " + f.valid(), MalformedToken),
    Case("trailing newline", lambda f: f.valid() + "\n", MalformedToken),
    Case("tab inside", lambda f: f.valid().replace(".", "\t.", 1), MalformedToken),
    Case("two segments", lambda f: f.valid().rsplit(".", 1)[0], MalformedToken),
    Case("four segments", lambda f: f.valid() + ".AAAA", MalformedToken),
    Case(
        "five segments (JWE shape)", lambda f: "eyJhbGciOiJkaXIifQ..AAAA.AAAA.AAAA", MalformedToken
    ),
    Case("trailing dot", lambda f: f.valid() + ".", MalformedToken),
    Case("leading dot", lambda f: "." + f.valid(), MalformedToken),
    Case("empty header segment", lambda f: "." + f.valid().split(".", 1)[1], MalformedToken),
    Case("empty string", lambda f: "", MalformedToken),
    Case("non-ASCII character", lambda f: f.valid()[:-1] + "\u00e9", MalformedToken),
    Case("Bearer prefix", lambda f: "Bearer " + f.valid(), MalformedToken),
    Case("bytes, not str", lambda f: f.valid().encode(), MalformedToken),
    Case("None", lambda f: None, MalformedToken),
    Case("header length 1 mod 4", lambda f: "A" + f.valid(), MalformedToken),
    Case("header non-canonical base64", lambda f: noncanonical_header(f), MalformedToken),
]
SIZE = [
    Case("1 MB of base64url", lambda f: "a" * 1_000_000, TokenTooLarge),
    Case("1 MB of dots", lambda f: "." * 1_000_000, TokenTooLarge),
    Case("1 MB of non-ASCII", lambda f: "\u00e9" * 1_000_000, TokenTooLarge),
    Case(
        "1 MB genuinely signed token",
        lambda f: f.hs(body=claims(pad="x" * 1_000_000)),
        TokenTooLarge,
    ),
    Case("one byte over the cap", lambda f: "a" * (CONFIG.max_token_bytes + 1), TokenTooLarge),
]
JSON = [
    Case("header not JSON", lambda f: f.hs("alg=HS256"), MalformedToken),
    Case("header a JSON array", lambda f: f.hs(["HS256", "hs1"]), MalformedToken),
    Case("header deeply nested", lambda f: f.hs(DEEP_HEADER), MalformedToken),
    Case("header duplicate alg", lambda f: f.hs(raw_json(HS, ',"alg":"none"')), MalformedToken),
    Case("header duplicate kid", lambda f: f.hs(raw_json(HS, ',"kid":"rs1"')), MalformedToken),
    Case("header UTF-16", lambda f: f.hs(json.dumps(HS).encode("utf-16")), MalformedToken),
    Case("header UTF-8 BOM", lambda f: f.hs("\ufeff" + json.dumps(HS)), MalformedToken),
    Case("header invalid UTF-8", lambda f: f.hs(b'{"alg":"HS256\xff"}'), MalformedToken),
    Case("header NaN", lambda f: f.hs(raw_json(HS, ',"x":NaN')), MalformedToken),
    Case("payload deeply nested", lambda f: f.hs(body=DEEP_BODY), MalformedToken),
    Case(
        "payload duplicate sub",
        lambda f: f.hs(body=raw_json(claims(), ',"sub":"admin"')),
        MalformedToken,
    ),
    Case(
        "payload duplicate exp",
        lambda f: f.hs(body=raw_json(claims(), f',"exp":{NOW + 10**6}')),
        MalformedToken,
    ),
    Case(
        "payload nested duplicate",
        lambda f: f.hs(body=raw_json(claims(), ',"x":{"a":1,"a":2}')),
        MalformedToken,
    ),
    Case(
        "payload UTF-16 with BOM",
        lambda f: f.hs(body=json.dumps(claims()).encode("utf-16")),
        MalformedToken,
    ),
    Case(
        "payload UTF-16-LE",
        lambda f: f.hs(body=json.dumps(claims()).encode("utf-16-le")),
        MalformedToken,
    ),
    Case("payload UTF-8 BOM", lambda f: f.hs(body="\ufeff" + json.dumps(claims())), MalformedToken),
    Case("payload invalid UTF-8", lambda f: f.hs(body=b'{"sub":"\xc3\x28"}'), MalformedToken),
    Case("payload NaN", lambda f: f.hs(body=raw_json(claims(), ',"x":NaN')), MalformedToken),
    Case(
        "payload Infinity", lambda f: f.hs(body=raw_json(claims(), ',"x":Infinity')), MalformedToken
    ),
    Case(
        "payload -Infinity",
        lambda f: f.hs(body=raw_json(claims(), ',"x":-Infinity')),
        MalformedToken,
    ),
    Case("payload 1e400", lambda f: f.hs(body=raw_json(claims(), ',"x":1e400')), MalformedToken),
    Case(
        "exp 1e400", lambda f: f.hs(body=raw_json(claims(exp=None), ',"exp":1e400')), MalformedToken
    ),
    Case(
        "payload 5000-digit integer",
        lambda f: f.hs(body=raw_json(claims(), ',"x":' + "9" * 5000)),
        MalformedToken,
    ),
    Case("payload trailing data", lambda f: f.hs(body=json.dumps(claims()) + "{}"), MalformedToken),
    Case("payload a JSON string", lambda f: f.hs(body='"user-1"'), MalformedToken),
    Case("payload a JSON array", lambda f: f.hs(body=[claims()]), MalformedToken),
]
CLAIMS = [
    Case("exp string", lambda f: f.hs(body=claims(exp=str(NOW + 900))), InvalidClaim),
    Case("exp bool", lambda f: f.hs(body=claims(exp=True)), InvalidClaim),
    Case("exp float", lambda f: f.hs(body=claims(exp=NOW + 900.0)), InvalidClaim),
    Case("exp negative", lambda f: f.hs(body=claims(exp=-1)), InvalidClaim),
    Case("exp past 2**53", lambda f: f.hs(body=claims(exp=2**63)), InvalidClaim),
    Case("exp null", lambda f: f.hs(body=raw_json(claims(exp=None), ',"exp":null')), InvalidClaim),
    Case("exp missing", lambda f: f.hs(body=claims(exp=None)), InvalidClaim),
    Case("iat string", lambda f: f.hs(body=claims(iat=str(NOW))), InvalidClaim),
    Case("iat bool", lambda f: f.hs(body=claims(iat=False)), InvalidClaim),
    Case("iat float", lambda f: f.hs(body=claims(iat=NOW + 0.5)), InvalidClaim),
    Case("nbf string", lambda f: f.hs(body=claims(nbf=str(NOW))), InvalidClaim),
    Case("nbf float", lambda f: f.hs(body=claims(nbf=NOW - 1.5)), InvalidClaim),
    Case(
        "exp beyond absolute_ttl",
        lambda f: f.hs(body=claims(exp=NOW + CONFIG.absolute_ttl + 1)),
        InvalidClaim,
    ),
    Case(
        "lifetime one second past access_ttl + leeway",
        lambda f: f.hs(body=claims(exp=NOW + CONFIG.access_ttl + CONFIG.leeway + 1)),
        InvalidClaim,
    ),
    Case(
        "nbf in the future past the leeway",
        lambda f: f.hs(body=claims(nbf=NOW + CONFIG.leeway + 600)),
        InvalidClaim,
    ),
    Case(
        "iat in the future past the leeway",
        lambda f: f.hs(body=claims(iat=NOW + CONFIG.leeway + 600, exp=NOW + 1200)),
        InvalidClaim,
    ),
    Case("expired", lambda f: f.hs(body=claims(iat=NOW - 2000, exp=NOW - 1000)), TokenExpired),
    Case("iss substring", lambda f: f.hs(body=claims(iss=CONFIG.issuer[:-1])), InvalidClaim),
    Case("iss superstring", lambda f: f.hs(body=claims(iss=CONFIG.issuer + ".evil")), InvalidClaim),
    Case("iss other case", lambda f: f.hs(body=claims(iss=CONFIG.issuer.upper())), InvalidClaim),
    Case("iss list", lambda f: f.hs(body=claims(iss=[CONFIG.issuer])), InvalidClaim),
    Case("iss missing", lambda f: f.hs(body=claims(iss=None)), InvalidClaim),
    Case("aud list", lambda f: f.hs(body=claims(aud=[CONFIG.audience])), InvalidClaim),
    Case(
        "aud list with an extra audience",
        lambda f: f.hs(body=claims(aud=[CONFIG.audience, "other"])),
        InvalidClaim,
    ),
    Case("aud substring", lambda f: f.hs(body=claims(aud=CONFIG.audience[:3])), InvalidClaim),
    Case("aud object", lambda f: f.hs(body=claims(aud={CONFIG.audience: True})), InvalidClaim),
    Case("sub number", lambda f: f.hs(body=claims(sub=1)), InvalidClaim),
    Case("sub list", lambda f: f.hs(body=claims(sub=["user-1"])), InvalidClaim),
    Case("sub empty", lambda f: f.hs(body=claims(sub="")), InvalidClaim),
    Case("sub with NUL", lambda f: f.hs(body=claims(sub="user-1\x00admin")), InvalidClaim),
    Case(
        "sub lone surrogate",
        lambda f: f.hs(body=raw_json(claims(sub=None), ',"sub":"\\ud800"')),
        InvalidClaim,
    ),
    Case("sid number", lambda f: f.hs(body=claims(sid=12345)), InvalidClaim),
    Case("sid wrong shape", lambda f: f.hs(body=claims(sid="../" + SID)), InvalidClaim),
    Case("sid null", lambda f: f.hs(body=raw_json(claims(sid=None), ',"sid":null')), InvalidClaim),
    Case("jti number", lambda f: f.hs(body=claims(jti=7)), InvalidClaim),
    Case("jti missing", lambda f: f.hs(body=claims(jti=None)), InvalidClaim),
]
TYPES = [
    Case("refresh token as access token", lambda f: f.refresh(), WrongTokenType),
    Case("access token as refresh token", lambda f: f.valid(), WrongTokenType, "refresh"),
    Case("refresh token as logout token", lambda f: f.refresh(), WrongTokenType, "logout"),
    Case("forged token to logout", lambda f: alter(f.valid()), InvalidSignature, "logout"),
]
REFRESH = [
    Case("refresh MAC altered", lambda f: alter(f.refresh()), InvalidSignature, "refresh"),
    Case(
        "refresh locator of another user",
        lambda f: refresh_swap(f, 1, b64(b"admin")),
        InvalidSignature,
        "refresh",
    ),
    Case(
        "refresh generation bumped", lambda f: refresh_swap(f, 3, "2"), InvalidSignature, "refresh"
    ),
    Case("refresh generation 0", lambda f: refresh_swap(f, 3, "0"), MalformedToken, "refresh"),
    Case("refresh generation 01", lambda f: refresh_swap(f, 3, "01"), MalformedToken, "refresh"),
    Case("refresh unknown kid", lambda f: refresh_swap(f, 4, b64(b"nope")), UnknownKey, "refresh"),
    Case(
        "refresh kid not UTF-8",
        lambda f: refresh_swap(f, 4, b64(b"\xff\xfe")),
        MalformedToken,
        "refresh",
    ),
    Case("refresh 1 MB", lambda f: "rt1." + "a" * 1_000_000, TokenTooLarge, "refresh"),
    Case("refresh garbage", lambda f: "rt1.not-a-token", MalformedToken, "refresh"),
    Case("refresh trailing space", lambda f: f.refresh() + " ", MalformedToken, "refresh"),
    Case("refresh None", lambda f: None, MalformedToken, "refresh"),
]
CASES = ALG + CONFUSION + SIGNATURE + KID + HEADERS + SHAPE + SIZE + JSON + CLAIMS + TYPES + REFRESH


@pytest.fixture(scope="module")
def forge() -> Forge:
    return Forge()


@pytest.fixture(scope="module")
def tokens(forge: Forge) -> dict[str, object]:
    # Built when the module's first test runs, not at collection: the time claims stay
    # fresh however long the tests before this module take.
    global NOW
    NOW = int(time.time())
    return {case.name: case.make(forge) for case in CASES}


def test_the_table_is_large_and_distinct(tokens: dict[str, object]) -> None:
    assert len(CASES) >= 50
    assert len({case.name for case in CASES}) == len(CASES)
    sent = [(case.via, repr(tokens[case.name])) for case in CASES]
    assert len(set(sent)) == len(sent), "two cases send the same input to the same method"


# Commands no request sent. support.script_calls already leaves out INFO, replication
# acks and connection set-up (HELLO, CLIENT SETINFO); the near cache's invalidation
# connection adds its own handshake and a heartbeat (HELLO, then MULTI EXISTS EXEC WATCH)
# every 0.25 s, at any moment.
HOUSEKEEPING = {
    "cmdstat_info",
    "cmdstat_replconf",
    "cmdstat_hello",
    "cmdstat_client|setinfo",
    "cmdstat_ping",
    "cmdstat_subscribe",
    "cmdstat_client|setname",
    "cmdstat_client|tracking",
    # The database watch (SWAPDB/FLUSHDB detection): SET NX and WATCH at the handshake,
    # MULTI EXISTS EXEC WATCH as the heartbeat.
    "cmdstat_set",
    "cmdstat_multi",
    "cmdstat_exists",
    "cmdstat_exec",
    "cmdstat_watch",
}


def request_calls(client: redis.Redis) -> int:
    """Commands the server has run for requests so far (one INFO commandstats snapshot)."""
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k not in HOUSEKEEPING)


# The gate runs before any I/O whatever the server: one engine is enough for the table.
@pytest.mark.parametrize("engine", ["valkey"], indirect=True)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_hostile_input_is_refused_without_a_redis_call(
    case: Case,
    forge: Forge,
    tokens: dict[str, object],
    make_store: Callable[..., Any],
    redis_client: redis.Redis,
) -> None:
    store = make_store(keyring=forge.keyring, config=CONFIG)
    before = request_calls(redis_client)
    with pytest.raises(InvalidToken) as caught:
        await getattr(store, case.via)(tokens[case.name])
    assert type(caught.value) is case.expected, caught.value
    assert request_calls(redis_client) == before
    text = str(caught.value)
    token = tokens[case.name]
    if isinstance(token, str) and len(token) > 12:
        assert token[:40] not in text  # refusals never echo the token


@pytest.mark.parametrize("engine", ["valkey"], indirect=True)
async def test_the_counter_sees_genuine_calls(
    forge: Forge, make_store: Callable[..., Any], redis_client: redis.Redis
) -> None:
    """The zero-call assertions can fail: a genuine token does cost Redis calls."""
    store = make_store(keyring=forge.keyring, config=CONFIG)
    pair = await store.login("user-1", device=PHONE)
    before = request_calls(redis_client)
    assert (await store.validate(pair.access_token)).session is not None
    assert request_calls(redis_client) > before
    before = request_calls(redis_client)
    await store.refresh(pair.refresh_token)
    assert request_calls(redis_client) > before


class Tripwire(str):
    """A str that fails the test if anything past its length is looked at."""

    def _touched(self, *args: object, **kwargs: object) -> Any:
        raise AssertionError("the token was read past its length check")

    encode = split = startswith = isascii = translate = _touched
    __getitem__ = __iter__ = __contains__ = __eq__ = __hash__ = _touched


@pytest.mark.parametrize("size", [CONFIG.max_token_bytes + 1, 1_000_000, 16_000_000])
def test_oversized_token_costs_one_length_check(forge: Forge, size: int) -> None:
    """Nothing but ``len`` runs on an oversized token: no scan, no split, no base64 decode."""
    with pytest.raises(TokenTooLarge):
        verify_access_token(forge.keyring, Tripwire("a" * size), config=CONFIG, now=NOW)


@pytest.mark.parametrize("engine", ["valkey"], indirect=True)  # it runs on a private server
async def test_ecdsa_high_s_twin_of_a_revoked_token_stays_revoked(
    make_store: Callable[..., Any], fault_server: LocalServer
) -> None:
    """ECDSA is malleable ((r, s) and (r, n - s) both verify), so a revoked token has a
    twin with other text. Revocation is keyed on the session, never on the token text: the
    twin is refused by Redis and, with Redis down, by this process's revocation memory."""
    forge = Forge()
    ring = Keyring.from_jwks(
        {
            "keys": [
                {
                    **jwt.algorithms.ECAlgorithm.to_jwk(forge.ec, as_dict=True),
                    "kid": "es1",
                    "alg": "ES256",
                }
            ]
        }
    )
    config = Config(issuer=CONFIG.issuer, audience=CONFIG.audience, breaker_failures=1)
    store = make_store(url=fault_server.url, keyring=ring, config=config)
    pair = await store.login("user-1", device=PHONE)
    head, body, signature = pair.access_token.split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    s = int.from_bytes(raw[32:], "big")
    twin = f"{head}.{body}.{b64(raw[:32] + (P256_ORDER - s).to_bytes(32, 'big'))}"
    assert twin != pair.access_token
    # The twin verifies at the crypto layer: the malleability is real, not hypothetical.
    assert verify_access_token(ring, twin, config=config, now=time.time()).session_id == (
        pair.session_id
    )
    assert await store.logout(pair.access_token)
    with pytest.raises(SessionRevoked):
        await store.validate(twin)
    fault_server.kill()
    with pytest.raises(SessionRevoked):
        await store.validate(twin)
    with pytest.raises(SessionRevoked):
        await store.validate(pair.access_token)


def test_forge_helpers_make_valid_tokens(forge: Forge) -> None:
    """The forgers sign correctly: their unaltered output verifies (so refusals are real)."""
    for token in [forge.valid(), forge.es(), forge.rs(), forge.es(high_s=True)]:
        assert verify_access_token(forge.keyring, token, config=CONFIG, now=NOW).user_id == "user-1"
    signing = forge.signing_input(ED, None)
    ed_token = f"{signing}.{b64(forge.ed.sign(signing.encode()))}"
    assert verify_access_token(forge.keyring, ed_token, config=CONFIG, now=NOW).session_id == SID
    # ...and the canonical twin of the non-canonical header verifies too.
    head, rest = noncanonical_header(forge).split(".", 1)
    fixed = forge.hs(json.dumps(HS, separators=(",", ":")) + " ")
    assert fixed.split(".", 1)[1] == rest and fixed.split(".")[0] != head
    assert verify_access_token(forge.keyring, fixed, config=CONFIG, now=NOW).user_id == "user-1"
