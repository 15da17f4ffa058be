"""Access tokens: what issuing writes is what verification returns, and the per-header
HMAC cache learns only from tokens that verified. Pure code, no Redis."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from typing import Any

import pytest

from forge import (
    CONFIG,
    HEADER,
    NOW,
    SID,
    Ctx,
    b64,
    issue,
    oct_jwk,
    rs256,
    segment,
    verify,
)
from sessionstore.errors import (
    InvalidInput,
    InvalidSignature,
)
from sessionstore.tokens import (
    RESERVED_CLAIMS,
    Keyring,
    issue_access_token,
)


def test_issue_caps_exp_and_floors_times() -> None:
    keyring = Keyring.generate()
    token, issued = issue(keyring, now=NOW + 0.9, expires_at=NOW + 100.7)
    assert (issued.issued_at, issued.expires_at) == (NOW, NOW + 100)
    assert verify(keyring, token) == issued
    _, uncapped = issue(keyring, expires_at=NOW + 10**6)
    assert uncapped.expires_at == NOW + CONFIG.access_ttl


def test_issued_claims_are_what_verification_returns() -> None:
    keyring = Keyring.generate()
    claims = {"roles": ("a", "b"), "nested": {"n": 1.5, "ok": True, "none": None}}
    token, issued = issue(keyring, claims=claims)
    assert issued.claims == {"roles": ["a", "b"], "nested": {"n": 1.5, "ok": True, "none": None}}
    assert verify(keyring, token) == issued
    token_ids = {issue(keyring)[1].token_id for _ in range(20)}
    assert len(token_ids) == 20 and all(len(jti) == 16 for jti in token_ids)


@pytest.mark.parametrize(
    "changes",
    [{"claims": {name: "x"}} for name in sorted(RESERVED_CLAIMS)]
    + [
        {"claims": {"n": float("nan")}},
        {"claims": {"n": float("inf")}},
        {"claims": {"o": object()}},
        {"claims": {1: "non-str name"}},
        {"claims": ["not", "a", "mapping"]},
        {"user_id": ""},
        {"user_id": "a\x00b"},
        {"user_id": 5},
        {"session_id": "short"},
        {"now": "now"},
        {"now": -1},
        {"now": True},
        {"expires_at": float("inf")},
        {"expires_at": float("nan")},
        {"now": 10**400},
        {"claims": {"big": "x" * 10_000}},  # the token would exceed max_token_bytes
    ],
)
def test_issue_refuses(changes: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "user_id": "user-1",
        "session_id": SID,
        "claims": {},
        "config": CONFIG,
        "now": NOW,
        **changes,
    }
    with pytest.raises(InvalidInput):
        issue_access_token(Keyring.generate(), **arguments)


def test_header_cache_learns_only_from_verified_tokens(ctx: Ctx) -> None:
    secret = secrets.token_bytes(32)
    keyring = Keyring.from_jwks({"keys": [oct_jwk(secret, kid="hs1")]})
    local = Ctx(keyring, secret, ctx.rsa_public_pem, ctx.rsa_private)
    variants = [json.dumps(HEADER, separators=(",", ":")) + " " * n for n in range(70)]
    for header in variants:  # forgeries cannot fill the cache
        head, body, _ = local.hs(header).split(".")
        with pytest.raises(InvalidSignature):
            verify(keyring, f"{head}.{body}.{b64(secrets.token_bytes(32))}")
    assert not keyring._state.headers
    for header in variants:  # past the cache bound, genuine headers still verify
        assert verify(keyring, local.hs(header)).user_id == "user-1"
    assert 0 < len(keyring._state.headers) <= 64


def test_rs256_token_verifies_in_a_mixed_keyring(ctx: Ctx) -> None:
    assert verify(ctx.keyring, rs256(ctx)).user_id == "user-1"


def test_a_forged_header_variant_is_never_cached() -> None:
    # The HMAC state after a header is kept per header text, but only once a token with
    # that header verified: a forger's variants (same key, other whitespace) never fill it.
    keyring = Keyring.generate("HS256", kid="hs-cache")
    token, _ = issue(keyring)
    key = keyring._state.keys["hs-cache"]
    verify(keyring, token)
    head, body, _ = token.split(".")
    assert list(key._prefixed) == [head.encode()]
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    variant = segment(json.dumps(header, separators=(", ", ": ")))
    forged = f"{variant}.{body}.{b64(secrets.token_bytes(32))}"
    with pytest.raises(InvalidSignature):
        verify(keyring, forged)
    assert list(key._prefixed) == [head.encode()]
    assert key.secret is not None
    mac = hmac.digest(key.secret, f"{variant}.{body}".encode("ascii"), "sha256")
    verify(keyring, f"{variant}.{body}.{b64(mac)}")  # the key holder's own variant
    assert list(key._prefixed) == [head.encode(), variant.encode()]
