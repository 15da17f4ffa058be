"""Token validation (issue "Stateful JWTs"): PyJWT alone, the naive recipe, ``validate``.

All three rows cycle over the same access tokens (``login`` on ~2,000 sessions of ~200
users) and run interleaved in one group. The naive row is flask-jwt-extended's documented
blocklist recipe: ``jwt.decode`` then one ``GET`` of ``revoked:<jti>`` on a plain client.
"""

from __future__ import annotations

import base64
import itertools
import secrets
from collections.abc import Callable, Sequence
from time import perf_counter_ns
from typing import Any

import jwt

from benchmarks.context import DATA, Context, device
from benchmarks.harness import Case, Ratio, RowResult, Runner
from benchmarks.server import BenchError

__all__ = ["NAIVE", "PYJWT", "VALIDATE", "ratios", "validation_cases"]

PYJWT = "pyjwt.decode alone"
NAIVE = "naive stateful (pyjwt.decode + GET)"
VALIDATE = "validate (sync, distinct sessions)"
TARGET = 0.9
_REVOKED_ENTRIES = 100


def hmac_secret(ctx: Context) -> bytes:
    """The raw HS256 secret of the current key, from ``to_private_jwks()`` ("oct", "k")."""
    kid = ctx.keyring.current_kid
    for jwk in ctx.keyring.to_private_jwks()["keys"]:
        if jwk["kid"] == kid and jwk["kty"] == "oct":
            encoded = str(jwk["k"])
            return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    raise BenchError("the keyring has no current HS256 key")


def _login_tokens(ctx: Context, sessions: int, users: int) -> list[str]:
    per_user = max(1, sessions // users)
    return [
        ctx.store.login(user_id, device=device(k % 5), data=DATA).access_token
        for user_id in (ctx.new_user("validate") for _ in range(users))
        for k in range(per_user)
    ]


def _cycling(tokens: Sequence[str], check: Callable[[str], Any]) -> Runner:
    """The same loop for every row: tokens picked before the clock starts, one call each."""
    cycle = itertools.cycle(tokens)

    def run(n: int) -> int:
        batch = list(itertools.islice(cycle, n))
        start = perf_counter_ns()
        for token in batch:
            check(token)
        return perf_counter_ns() - start

    return run


def validation_cases(ctx: Context, sessions: int = 2000, users: int = 200) -> list[Case]:
    """PyJWT alone, the naive stateful recipe and ``validate``, on the same tokens."""
    tokens = _login_tokens(ctx, sessions, users)
    secret, config = hmac_secret(ctx), ctx.store.config
    audience, issuer = config.audience, config.issuer
    plain = ctx.plain_client()
    blocklist = f"{ctx.namespace}:revoked:"
    # A blocklist holds some revoked jtis; live tokens miss it, as most requests do.
    for _ in range(_REVOKED_ENTRIES):
        plain.set(blocklist + secrets.token_urlsafe(12), "1", ex=config.access_ttl)

    def decode(token: str) -> dict[str, Any]:
        return jwt.decode(token, secret, algorithms=["HS256"], audience=audience, issuer=issuer)

    def naive(token: str) -> dict[str, Any]:
        payload = decode(token)
        if plain.get(blocklist + payload["jti"]) is not None:
            raise BenchError("token revoked")
        return payload

    # Each path must accept our tokens before anything is timed.
    for check in (decode, naive, ctx.store.validate):
        check(tokens[0])
    validated = ctx.store.validate(tokens[-1])
    if validated.degraded or validated.session is None:
        raise BenchError("validate answered degraded: the server is not reachable")
    note = f"{len(tokens)} tokens, {users} users"
    return [
        Case(PYJWT, _cycling(tokens, decode), note=note),
        Case(NAIVE, _cycling(tokens, naive), note="GET revoked:<jti> per request"),
        Case(VALIDATE, _cycling(tokens, ctx.store.validate), note="Config() defaults"),
    ]


def ratios(rows: Sequence[RowResult]) -> list[Ratio]:
    """The target (validate vs the naive recipe) and two ratios for context."""
    by_name = {row.name: row for row in rows}
    return [
        Ratio(f"validate >= {TARGET}x naive stateful", by_name[VALIDATE], by_name[NAIVE], TARGET),
        Ratio("validate / pyjwt.decode alone", by_name[VALIDATE], by_name[PYJWT]),
        Ratio("naive stateful / pyjwt.decode alone", by_name[NAIVE], by_name[PYJWT]),
    ]
