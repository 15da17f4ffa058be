"""Sync token validation: the stateless limits, the naive recipe, and ``validate`` hot/cold.

Two groups. ``hot``: HMAC-SHA256 + msgspec (the floor of any JWT check), ``jwt.decode``
alone and ``validate`` on the same 8 tokens with both caches warm. ``cold``: the naive
stateful recipe (flask-jwt-extended's documented blocklist: ``jwt.decode`` then one ``GET``
of ``revoked:<jti>`` on a plain client), ``validate`` on tokens it has never seen (fresh
sessions logged in, untimed, before each round: the caches are on but cannot help), and
``validate`` with both caches off (the one-round-trip check of issue "Stateful JWTs").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import secrets
from collections.abc import Callable, Sequence
from time import perf_counter_ns
from typing import Any

import jwt
import msgspec

from benchmarks import bulk
from benchmarks.context import Context
from benchmarks.harness import Case, Ratio, RowResult, Runner
from benchmarks.server import BenchError
from sessionstore import Principal, SessionStore

__all__ = [
    "COLD",
    "HOT",
    "NAIVE",
    "NO_CACHE",
    "OWN_CLIENT",
    "PYJWT",
    "RAW",
    "cold_cases",
    "cold_ratios",
    "cycling",
    "hmac_secret",
    "hot_cases",
    "hot_ratios",
    "pyjwt_decoder",
    "token_pool",
]

RAW = "HMAC-SHA256 + msgspec decode (limit)"
PYJWT = "pyjwt.decode alone"
HOT = "validate hot (sync, caches warm)"
NAIVE = "naive sync (pyjwt.decode + GET)"
COLD = "validate cold (sync, first-time tokens)"
NO_CACHE = "validate, caches off (sync)"
OWN_CLIENT = "validate, caches off, own redis.Redis() (sync)"
HOT_TOKENS = 8
_REVOKED_ENTRIES = 100
_payload = msgspec.json.Decoder(dict[str, Any])


def hmac_secret(ctx: Context) -> bytes:
    """The raw HS256 secret of the current key, from ``to_private_jwks()`` ("oct", "k")."""
    kid = ctx.keyring.current_kid
    for jwk in ctx.keyring.to_private_jwks()["keys"]:
        if jwk["kid"] == kid and jwk["kty"] == "oct":
            return _b64(str(jwk["k"]))
    raise BenchError("the keyring has no current HS256 key")


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pyjwt_decoder(ctx: Context) -> Callable[[str], dict[str, Any]]:
    """``jwt.decode`` with the store's key, algorithm, audience and issuer."""
    secret, config = hmac_secret(ctx), ctx.store.config
    audience, issuer = config.audience, config.issuer

    def decode(token: str) -> dict[str, Any]:
        return jwt.decode(token, secret, algorithms=["HS256"], audience=audience, issuer=issuer)

    return decode


def raw_verifier(ctx: Context) -> Callable[[str], dict[str, Any]]:
    """The least a stateless HS256 check can do: one HMAC, one compare, one JSON decode."""
    secret = hmac_secret(ctx)

    def verify(token: str) -> dict[str, Any]:
        cut = token.rindex(".")
        expected = hmac.digest(secret, token[:cut].encode(), hashlib.sha256)
        if not hmac.compare_digest(expected, _b64(token[cut + 1 :])):
            raise BenchError("signature does not verify")
        return _payload.decode(_b64(token[token.index(".") + 1 : cut]))

    return verify


def token_pool(ctx: Context, sessions: int) -> list[str]:
    """Access tokens of ``sessions`` new sessions (10 per user)."""
    pairs = bulk.login_many(ctx.store, ctx.owners("pool", sessions))
    return [pair.access_token for pair in pairs]


def cycling(tokens: Sequence[str], check: Callable[[str], Any]) -> Runner:
    """The same loop for every row: tokens picked before the clock starts, one call each."""
    cycle = itertools.cycle(tokens)

    def run(n: int) -> int:
        batch = list(itertools.islice(cycle, n))
        start = perf_counter_ns()
        for token in batch:
            check(token)
        return perf_counter_ns() - start

    return run


def _evalsha_calls(ctx: Context) -> int:
    stats = ctx.admin.info("commandstats")
    entry = stats.get("cmdstat_evalsha", {})
    return int(entry.get("calls", 0)) if isinstance(entry, dict) else 0


def _served(principal: Principal) -> Principal:
    if principal.degraded or principal.session is None:
        raise BenchError("validate answered degraded: the server is not reachable")
    return principal


def hot_cases(ctx: Context) -> list[Case]:
    """The two stateless limits and a hot ``validate`` (Config() defaults) on 8 tokens."""
    tokens = token_pool(ctx, HOT_TOKENS)
    raw, decode, validate = raw_verifier(ctx), pyjwt_decoder(ctx), ctx.store.validate
    for token in tokens:
        if (
            raw(token) != decode(token)
            or _served(validate(token)).session_id != decode(token)["sid"]
        ):
            raise BenchError("the limit rows and validate disagree on a token")
    # Proof that the hot row is what it claims: 1000 warm validations, (almost) no script call.
    before = _evalsha_calls(ctx)
    for token in itertools.islice(itertools.cycle(tokens), 1000):
        validate(token)
    calls = _evalsha_calls(ctx) - before
    if calls > 10:
        raise BenchError(f"hot validate made {calls} script calls per 1000: caches not serving")
    note = f"{HOT_TOKENS} tokens"
    return [
        Case(RAW, cycling(tokens, raw), note=f"{note}; hmac.digest + compare_digest"),
        Case(PYJWT, cycling(tokens, decode), note=f"{note}; HS256, aud, iss"),
        Case(HOT, cycling(tokens, validate), note=f"{note}; {calls} script calls/1000"),
    ]


def _cold(ctx: Context) -> Runner:
    validate = ctx.store.validate

    def run(n: int) -> int:
        tokens = [pair.access_token for pair in bulk.login_many(ctx.store, ctx.owners("cold", n))]
        last: Principal | None = None
        start = perf_counter_ns()
        for token in tokens:
            last = validate(token)
        elapsed = perf_counter_ns() - start
        if last is None or last.degraded:
            raise BenchError("cold validate answered degraded: the server is not reachable")
        return elapsed

    return run


def cold_cases(ctx: Context, sessions: int = 2000) -> list[Case]:
    """The naive recipe, first-time ``validate`` and ``validate`` with both caches off."""
    tokens = token_pool(ctx, sessions)
    decode = pyjwt_decoder(ctx)
    plain = ctx.plain_client()
    blocklist = f"{ctx.namespace}:revoked:"
    # A blocklist holds some revoked jtis; live tokens miss it, as most requests do.
    for _ in range(_REVOKED_ENTRIES):
        plain.set(blocklist + secrets.token_urlsafe(12), "1", ex=ctx.store.config.access_ttl)

    def naive(token: str) -> dict[str, Any]:
        payload = decode(token)
        if plain.get(blocklist + payload["jti"]) is not None:
            raise BenchError("token revoked")
        return payload

    uncached: SessionStore = ctx.open_store(token_cache_size=0, near_cache_size=0)
    # How most apps wire the store: one shared client of their own, redis-py's defaults.
    owned: SessionStore = ctx.own_client_store(token_cache_size=0, near_cache_size=0)
    for check in (naive, uncached.validate, owned.validate):
        check(tokens[0])
    _served(uncached.validate(tokens[-1]))
    return [
        Case(NAIVE, cycling(tokens, naive), note="GET revoked:<jti> per request"),
        Case(COLD, _cold(ctx), note="Config() defaults; fresh sessions each round"),
        Case(
            NO_CACHE,
            cycling(tokens, uncached.validate),
            note=f"token_cache_size=0, near_cache_size=0; {len(tokens)} tokens",
        ),
        Case(
            OWN_CLIENT,
            cycling(tokens, owned.validate),
            note="SessionStore(redis.Redis.from_url(url)): redis-py's path, its retries",
        ),
    ]


def hot_ratios(rows: Sequence[RowResult]) -> tuple[list[Ratio], list[Ratio]]:
    """(targets, context ratios) of the hot group."""
    by = {row.name: row for row in rows}
    targets = [Ratio("hot validate >= 20x pyjwt.decode alone (sync)", by[HOT], by[PYJWT], 20.0)]
    context = [
        Ratio("pyjwt.decode alone / HMAC+msgspec limit", by[PYJWT], by[RAW]),
        Ratio("hot validate / HMAC+msgspec limit", by[HOT], by[RAW]),
    ]
    return targets, context


def cold_ratios(rows: Sequence[RowResult]) -> tuple[list[Ratio], list[Ratio]]:
    """(targets, context ratios) of the cold group; issue 3's 0.9x target included."""
    by = {row.name: row for row in rows}
    targets = [
        Ratio("cold sync validate >= 1.15x naive sync", by[COLD], by[NAIVE], 1.15),
        Ratio("validate, caches off >= 0.9x naive sync (issue 3)", by[NO_CACHE], by[NAIVE], 0.9),
    ]
    return targets, [
        Ratio("cold validate / caches off", by[COLD], by[NO_CACHE]),
        Ratio("caches off: own redis.Redis() / from_url", by[OWN_CLIENT], by[NO_CACHE]),
        Ratio("caches off, own redis.Redis() / naive sync", by[OWN_CLIENT], by[NAIVE]),
    ]
