"""The standard JOSE vectors: RFC 7515 appendix A, RFC 7519 section 3.1, RFC 8037 appendix A.

Typed in from the RFCs. Each signature verifies with the RFC's own key once that key is
imported into a ``Keyring`` (the crypto layer agrees with the standards), and each token is
refused by ``verify_access_token`` under our pinned profile (no ``kid``, no ``typ: at+jwt``,
an unsupported or ``none`` algorithm, a JSON serialisation), with a specific error.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from forge import b64
from sessionstore import Config, InvalidInput, Keyring
from sessionstore.errors import DisallowedAlgorithm, InvalidHeader, InvalidToken, MalformedToken
from sessionstore.tokens import verify_access_token

CONFIG = Config()
NOW = 1_300_819_000  # just before the RFC tokens' exp (1300819380)


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- RFC 7515 appendix A (and RFC 7519 section 3.1, the same JWT) ----------------------------

# {"typ":"JWT",\r\n "alg":"HS256"}
A1_HEADER = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
# {"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}
PAYLOAD = (
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
)
A1_KEY = {
    "kty": "oct",
    "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
}
A1_TOKEN = f"{A1_HEADER}.{PAYLOAD}.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC7519_3_1 = (
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)

A2_KEY = {
    "kty": "RSA",
    "n": (
        "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0"
        "Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSX"
        "ndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5"
        "IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
    ),
    "e": "AQAB",
}
A2_SIGNATURE = (
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2F"
    "p5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQB"
    "MHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeY"
    "I2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"
)
A2_TOKEN = f"eyJhbGciOiJSUzI1NiJ9.{PAYLOAD}.{A2_SIGNATURE}"

A3_KEY = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI",
}
A3_SIGNATURE = (
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
)
A3_TOKEN = f"eyJhbGciOiJFUzI1NiJ9.{PAYLOAD}.{A3_SIGNATURE}"

A4_KEY = {
    "kty": "EC",
    "crv": "P-521",
    "x": "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk",
    "y": "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2",
}
A4_TOKEN = (
    "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA.AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc"
    "-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnw"
    "NrmxYbSW9ERBXukOXolLzeO_Jn"
)
A5_TOKEN = f"eyJhbGciOiJub25lIn0.{PAYLOAD}."  # RFC 7515 A.5 = RFC 7519 6.1, unsecured
A6_GENERAL = {
    "payload": PAYLOAD,
    "signatures": [
        {
            "protected": "eyJhbGciOiJSUzI1NiJ9",
            "header": {"kid": "2010-12-29"},
            "signature": A2_SIGNATURE,
        },
        {
            "protected": "eyJhbGciOiJFUzI1NiJ9",
            "header": {"kid": "e9bc097a-ce51-4036-9562-d2ade882db0d"},
            "signature": A3_SIGNATURE,
        },
    ],
}
A7_FLATTENED = {
    "payload": PAYLOAD,
    "protected": "eyJhbGciOiJFUzI1NiJ9",
    "header": {"kid": "e9bc097a-ce51-4036-9562-d2ade882db0d"},
    "signature": A3_SIGNATURE,
}

# --- RFC 8037 appendix A (Ed25519) -----------------------------------------------------------

ED_KEY = {
    "kty": "OKP",
    "crv": "Ed25519",
    "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}
ED_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"  # A.3
# A.4: {"alg":"EdDSA"} over "Example of Ed25519 signing"
ED_TOKEN = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3"
    "AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)

VERIFYING = [
    pytest.param("HS256", A1_KEY, A1_TOKEN, id="RFC7515-A.1-HS256"),
    pytest.param("HS256", A1_KEY, RFC7519_3_1, id="RFC7519-3.1-HS256"),
    pytest.param("RS256", A2_KEY, A2_TOKEN, id="RFC7515-A.2-RS256"),
    pytest.param("ES256", A3_KEY, A3_TOKEN, id="RFC7515-A.3-ES256"),
    pytest.param("EdDSA", ED_KEY, ED_TOKEN, id="RFC8037-A.4-EdDSA"),
]


def ring(alg: str, jwk: dict[str, str], kid: str = "rfc") -> Keyring:
    return Keyring.from_jwks({"keys": [{**jwk, "kid": kid, "alg": alg}]})


def signature_verifies(keyring: Keyring, token: str, kid: str = "rfc") -> bool:
    """The keyring's own check (the one the gate runs) of a compact JWS's signature."""
    signing, signature = token.rsplit(".", 1)
    return keyring._state.keys[kid].verify(signing.encode(), signature.encode())


def tampered(token: str) -> str:
    head, body, signature = token.split(".")
    return f"{head}.{b64(b64d(body) + b' ')}.{signature}"


def test_the_vectors_decode_to_the_rfc_texts() -> None:
    assert RFC7519_3_1 == A1_TOKEN  # RFC 7519's example JWT is RFC 7515's A.1 JWS
    assert b64d(A1_HEADER) == b'{"typ":"JWT",\r\n "alg":"HS256"}'
    assert (
        b64d(PAYLOAD)
        == b'{"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}'
    )
    assert b64d(ED_TOKEN.split(".")[1]) == b"Example of Ed25519 signing"
    assert b64d(A4_TOKEN.split(".")[1]) == b"Payload"


@pytest.mark.parametrize(("alg", "jwk", "token"), VERIFYING)
def test_rfc_signature_verifies_with_the_rfc_key(alg: str, jwk: dict[str, str], token: str) -> None:
    keyring = ring(alg, jwk)
    assert signature_verifies(keyring, token)
    assert not signature_verifies(keyring, tampered(token))


@pytest.mark.parametrize(("alg", "jwk", "token"), VERIFYING)
def test_rfc_token_is_refused_by_our_profile(alg: str, jwk: dict[str, str], token: str) -> None:
    # Our profile needs "kid" and "typ": "at+jwt" (RFC 9068); the RFC examples carry neither.
    keyring = ring(alg, jwk)
    with pytest.raises(InvalidHeader) as caught:
        verify_access_token(keyring, token, config=CONFIG, now=NOW)
    assert type(caught.value) is InvalidHeader


def test_deterministic_signatures_are_reproduced() -> None:
    """HMAC and Ed25519 are deterministic: the imported keys sign the RFC bytes identically."""
    hs = ring("HS256", A1_KEY)._state.keys["rfc"]
    signing = A1_TOKEN.rsplit(".", 1)[0].encode()
    assert hs._algorithm.sign(signing, hs.signing_key) == b64d(A1_TOKEN.rsplit(".", 1)[1])
    ed = ring("EdDSA", ED_KEY)._state.keys["rfc"]
    signing = ED_TOKEN.rsplit(".", 1)[0].encode()
    assert ed._algorithm.sign(signing, ed.signing_key) == b64d(ED_TOKEN.rsplit(".", 1)[1])


def test_rfc8037_public_key_and_thumbprint() -> None:
    keyring = ring("EdDSA", ED_KEY)
    (public,) = keyring.to_jwks()["keys"]
    assert public["x"] == ED_KEY["x"] and "d" not in public
    members = {name: public[name] for name in ("crv", "kty", "x")}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    assert b64(hashlib.sha256(canonical).digest()) == ED_THUMBPRINT
    # The public key alone verifies (RFC 8037 A.5).
    verify_only = ring("EdDSA", {name: ED_KEY[name] for name in ("kty", "crv", "x")})
    assert verify_only.current_kid is None
    assert signature_verifies(verify_only, ED_TOKEN)


def test_rfc7515_a4_es512_verifies_but_is_not_a_supported_algorithm() -> None:
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64d(A4_KEY["x"]), "big"),
        int.from_bytes(b64d(A4_KEY["y"]), "big"),
        ec.SECP521R1(),
    )
    signing, signature = A4_TOKEN.rsplit(".", 1)
    raw = b64d(signature)
    der = encode_dss_signature(int.from_bytes(raw[:66], "big"), int.from_bytes(raw[66:], "big"))
    public = numbers.public_key()
    public.verify(der, signing.encode(), ec.ECDSA(hashes.SHA512()))  # the vector is sound
    with pytest.raises(CryptoInvalidSignature):
        public.verify(der, signing.encode() + b"x", ec.ECDSA(hashes.SHA512()))
    with pytest.raises(InvalidInput, match="alg must be one of"):
        ring("ES512", A4_KEY)
    with pytest.raises(InvalidHeader):
        verify_access_token(ring("ES256", A3_KEY), A4_TOKEN, config=CONFIG, now=NOW)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        pytest.param(A5_TOKEN, MalformedToken, id="RFC7515-A.5-unsecured"),
        pytest.param(A5_TOKEN + A3_SIGNATURE, DisallowedAlgorithm, id="A.5-with-a-signature"),
        pytest.param(json.dumps(A6_GENERAL), MalformedToken, id="RFC7515-A.6-general-JSON"),
        pytest.param(json.dumps(A7_FLATTENED), MalformedToken, id="RFC7515-A.7-flattened-JSON"),
    ],
)
def test_unsecured_and_json_serialisations_are_refused(
    token: str, expected: type[InvalidToken]
) -> None:
    keyring = Keyring.from_jwks(
        {
            "keys": [
                {**A2_KEY, "kid": "2010-12-29", "alg": "RS256"},
                {**A3_KEY, "kid": "e9bc097a-ce51-4036-9562-d2ade882db0d", "alg": "ES256"},
            ]
        }
    )
    with pytest.raises(InvalidToken) as caught:
        verify_access_token(keyring, token, config=CONFIG, now=NOW)
    assert type(caught.value) is expected


def test_rfc7515_a6_a7_signatures_verify_with_their_keys() -> None:
    """The JSON serialisations carry genuine signatures: refused for their shape only."""
    keyring = Keyring.from_jwks(
        {
            "keys": [
                {**A2_KEY, "kid": "2010-12-29", "alg": "RS256"},
                {**A3_KEY, "kid": "e9bc097a-ce51-4036-9562-d2ade882db0d", "alg": "ES256"},
            ]
        }
    )
    entries = [*A6_GENERAL["signatures"], A7_FLATTENED]
    for entry in entries:
        assert isinstance(entry, dict)
        compact = f"{entry['protected']}.{PAYLOAD}.{entry['signature']}"
        assert signature_verifies(keyring, compact, kid=entry["header"]["kid"])


def test_rfc7515_a3_private_key_signs_tokens_that_verify() -> None:
    """The A.3 private key is usable as a signing key of ours (ECDSA is randomised)."""
    keyring = ring("ES256", A3_KEY)
    entry = keyring._state.keys["rfc"]
    signing = b"eyJhbGciOiJFUzI1NiJ9." + PAYLOAD.encode()
    signature = entry._algorithm.sign(signing, entry.signing_key)
    assert signature != b64d(A3_SIGNATURE)
    assert entry.verify(signing, b64(signature).encode())
    assert entry.verify(signing, A3_SIGNATURE.encode())
