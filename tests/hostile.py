"""Hostile tokens, part one: the JOSE header and the signature (alg, key confusion,
signature, kid, header members), each case an input, the exact error it must raise and
the API it is sent to. Run by ``test_hostile_tokens.py``; the forger is ``forge.Forge``."""

from __future__ import annotations

from forge import (
    ED,
    HS,
    P256_ORDER,
    RS,
    Case,
    alter,
    b64,
    ec_public_jwk_json,
    ed_public_raw,
    es_der,
    es_raw,
    header,
    noncanonical,
    raw_json,
    rsa_public_der,
    segment,
    with_signature,
)
from sessionstore.errors import (
    DisallowedAlgorithm,
    InvalidHeader,
    InvalidSignature,
    MalformedToken,
    UnknownKey,
)

__all__ = ["HEADER_CASES"]


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
        lambda f: with_signature(f.valid(), f.hs(body=f.claims(sub="admin")).rsplit(".", 1)[1]),
        InvalidSignature,
    ),
    Case(
        "payload swapped under a genuine signature",
        lambda f: f"{segment(HS)}.{segment(f.claims(sub='admin'))}.{f.valid().rsplit('.', 1)[1]}",
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
HEADER_CASES = ALG + CONFUSION + SIGNATURE + KID + HEADERS
