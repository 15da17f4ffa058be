"""Coverage-guided fuzzing (atheris/libFuzzer) of the token gate and the refresh-token parser.

Each input drives one of four harnesses:

0. arbitrary text to ``verify_access_token``;
1. a genuine access token (HS256, ES256, EdDSA, RS256) with fuzzed edits;
2. a header and claims near the valid ones, every member's presence, type and value fuzzed,
   *signed with the real HS256 key*, so the checks behind the signature are fuzzed too;
3. a genuine or arbitrary refresh token, with fuzzed edits, to ``parse_refresh_token``.

A crash is any exception other than ``InvalidToken``, or a broken promise: an edited token
that still verifies (a forgery), or an accepted token whose claims break the rules.

    make fuzz                                                # a bounded pass (60 s)
    .venv/bin/python fuzz/fuzz_tokens.py -max_total_time=600 # longer; libFuzzer flags
"""

from __future__ import annotations

import base64
import hmac
import json
import sys

import atheris  # type: ignore[import-untyped]

with atheris.instrument_imports(include=["sessionstore"]):
    from sessionstore import Config, Keyring
    from sessionstore.errors import InvalidToken
    from sessionstore.tokens import (
        RESERVED_CLAIMS,
        AccessClaims,
        issue_access_token,
        issue_refresh_token,
        parse_refresh_token,
        verify_access_token,
    )

CONFIG = Config(issuer="https://auth.example", audience="api.example")
NOW = 1_700_000_000
SID = "S" * 21 + "A"
RINGS = {alg: Keyring.generate(alg, kid=f"k-{alg}") for alg in ("HS256", "ES256", "EdDSA", "RS256")}
KEYRING = Keyring.from_jwks(
    {"keys": [key for ring in RINGS.values() for key in ring.to_private_jwks()["keys"]]}
)
SECRET = base64.urlsafe_b64decode(
    next(k["k"] for k in KEYRING.to_private_jwks()["keys"] if k["kty"] == "oct") + "=="
)
ACCESS = [
    issue_access_token(
        ring, user_id="user-1", session_id=SID, claims={"role": "x"}, config=CONFIG, now=NOW
    )[0]
    for ring in RINGS.values()
]
REFRESH = [
    issue_refresh_token(KEYRING, user_id=user, session_id=SID, generation=generation)
    for user, generation in (("user-1", 1), ("ü\u4e16", 2**40))
]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def edit(fdp: atheris.FuzzedDataProvider, token: str) -> str:
    """Apply a few fuzz-chosen edits (replace, insert, delete, truncate) to ``token``."""
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        if not token:
            break
        where = fdp.ConsumeIntInRange(0, len(token) - 1)
        kind = fdp.ConsumeIntInRange(0, 3)
        piece = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 8))
        if kind == 0:
            token = token[:where] + piece + token[where + 1 :]
        elif kind == 1:
            token = token[:where] + piece + token[where:]
        elif kind == 2:
            token = token[:where] + token[where + fdp.ConsumeIntInRange(1, 8) :]
        else:
            token = token[:where]
    return token


HEADER_NAMES = ["alg", "kid", "typ", "crit", "jku", "jwk", "x5u", "x5c", "b64", "zip", "cty"]
CLAIM_NAMES = ["iss", "aud", "sub", "sid", "jti", "iat", "exp", "nbf", "typ", "role", "x"]
VALUES: list[object] = [
    "HS256", "hs256", "none", "k-HS256", "k-ES256", "at+jwt", "JWT", CONFIG.issuer,
    CONFIG.audience, SID, "user-1", "", "\x00", True, False, None, 0, -1, 2**53, 2**53 + 1,
    2**64, 1e400, float("nan"), NOW, NOW + 60, NOW + CONFIG.access_ttl + CONFIG.leeway + 1,
    [CONFIG.audience], {"a": 1},
]  # fmt: skip


def value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> object:
    """A JSON-ish value: a known-interesting one, or a fuzzed one of any type."""
    kind = fdp.ConsumeIntInRange(0, 7)
    if kind == 0:
        return VALUES[fdp.ConsumeIntInRange(0, len(VALUES) - 1)]
    if kind == 1:
        return NOW + fdp.ConsumeIntInRange(-2000, 2000)
    if kind == 2:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 10))
    if kind == 3:
        return fdp.ConsumeFloat()
    if kind == 4:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 24))
    if kind == 5 and depth < 3:
        return [value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    if kind == 6 and depth < 3:
        return {
            fdp.ConsumeUnicode(4): value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))
        }
    return fdp.ConsumeBool()


def json_object(
    fdp: atheris.FuzzedDataProvider, base: dict[str, object], names: list[str]
) -> bytes:
    """``base`` with fuzzed members changed, added or removed; sometimes raw text spliced in."""
    members = dict(base)
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        pick = fdp.ConsumeIntInRange(0, len(names))
        name = names[pick] if pick < len(names) else fdp.ConsumeUnicode(6)
        if fdp.ConsumeIntInRange(0, 4) == 0:
            members.pop(name, None)
        else:
            members[name] = value(fdp)
    try:
        text = json.dumps(members, separators=(",", ":"))
        if fdp.ConsumeIntInRange(0, 3) == 0:  # duplicates, junk, truncation
            text = text[:-1] + fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 16)) + "}"
        return text.encode("utf-8")
    except (UnicodeEncodeError, ValueError):
        return b"{}"


def structured(fdp: atheris.FuzzedDataProvider) -> tuple[bytes, bytes]:
    """A header and payload near the valid ones, for a token signed with the real key."""
    header = json_object(fdp, {"alg": "HS256", "kid": "k-HS256", "typ": "at+jwt"}, HEADER_NAMES)
    claims: dict[str, object] = {
        "iss": CONFIG.issuer, "aud": CONFIG.audience, "sub": "user-1", "sid": SID, "jti": "j",
        "iat": NOW, "exp": NOW + 60,
    }  # fmt: skip
    return header, json_object(fdp, claims, CLAIM_NAMES)


def check_accepted(claims: AccessClaims) -> None:
    """The promises an accepted token keeps, whatever its signed JSON said."""
    assert isinstance(claims.user_id, str) and 1 <= len(claims.user_id) <= 256
    assert "\x00" not in claims.user_id
    claims.user_id.encode("utf-8")  # no lone surrogates
    assert isinstance(claims.session_id, str) and len(claims.session_id) == 22
    for value in (claims.issued_at, claims.expires_at):
        assert type(value) is int and 0 <= value <= 2**53
    assert claims.expires_at + CONFIG.leeway >= NOW
    assert claims.issued_at - CONFIG.leeway <= NOW
    assert claims.expires_at - claims.issued_at <= CONFIG.access_ttl + CONFIG.leeway
    assert not RESERVED_CLAIMS & claims.claims.keys()


def verify(token: object) -> AccessClaims | None:
    try:
        return verify_access_token(KEYRING, token, config=CONFIG, now=NOW)
    except InvalidToken:
        return None


def one_input(data: bytes) -> None:
    """The libFuzzer entry point."""
    fdp = atheris.FuzzedDataProvider(data)
    harness = fdp.ConsumeIntInRange(0, 3)
    if harness == 0:
        claims = verify(fdp.ConsumeUnicode(fdp.remaining_bytes()))
        assert claims is None, "arbitrary text verified"
    elif harness == 1:
        seed = ACCESS[fdp.ConsumeIntInRange(0, len(ACCESS) - 1)]
        token = edit(fdp, seed)
        claims = verify(token)
        assert claims is None or token == seed, f"an edited token verified: {token!r}"
    elif harness == 2:
        header, body = structured(fdp)
        signing = f"{b64(header)}.{b64(body)}"
        mac = hmac.digest(SECRET, signing.encode("ascii"), "sha256")
        claims = verify(f"{signing}.{b64(mac)}")
        if claims is not None:
            check_accepted(claims)
    else:
        token = (
            edit(fdp, REFRESH[fdp.ConsumeIntInRange(0, len(REFRESH) - 1)])
            if fdp.ConsumeBool()
            else fdp.ConsumeUnicode(fdp.remaining_bytes())
        )
        try:
            found = parse_refresh_token(KEYRING, token, max_bytes=CONFIG.max_token_bytes)
        except InvalidToken:
            return
        assert token in REFRESH, f"an edited refresh token verified: {token!r}"
        assert found.session_id == SID


def main() -> None:
    """Run libFuzzer with the command line's flags (e.g. -runs=N, -max_total_time=S)."""
    # Sanity first: the seeds verify, so a refusal in the harness is a real refusal.
    for token in ACCESS:
        check_accepted(verify_access_token(KEYRING, token, config=CONFIG, now=NOW))
    for token in REFRESH:
        parse_refresh_token(KEYRING, token, max_bytes=CONFIG.max_token_bytes)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
