"""Interop with another stack: Node's ``jose`` (npm, pinned in interop/jose/package.json).

Tokens ``jose`` signs with our keys pass our pre-decode gate and signature check (and a real
store's ``validate``) for every supported algorithm, and our access tokens verify in ``jose``
with its own checks (algorithm, ``typ: at+jwt``, issuer, audience, required claims).

Needs ``node`` and ``npm``; the first run installs the locked packages with ``npm ci``.
Without node the tests skip, except under ``CI=true`` where that is a failure.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from interop import node_tool
from sessionstore import Config, Device, Keyring
from sessionstore.errors import InvalidHeader, InvalidSignature, InvalidToken
from sessionstore.tokens import issue_access_token, verify_access_token
from support import StoreFactory

ALGS = ["HS256", "HS384", "HS512", "ES256", "EdDSA", "RS256", "PS256"]
CONFIG = Config(issuer="https://auth.example", audience="api.example")
SID = "S" * 21 + "A"
FOLDER = Path(__file__).resolve().parents[1] / "interop" / "jose"
Jose = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


@pytest.fixture(scope="session")
def jose() -> Jose:
    """Run a batch of sign/verify jobs through interop/jose/jose-tool.mjs."""
    node = node_tool(FOLDER, "jose", "jose")

    def run(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        done = subprocess.run(
            [node, str(FOLDER / "jose-tool.mjs")],
            input=json.dumps(jobs),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        results: list[dict[str, Any]] = json.loads(done.stdout)
        assert len(results) == len(jobs)
        return results

    return run


@pytest.fixture(scope="module")
def rings() -> dict[str, Keyring]:
    return {alg: Keyring.generate(alg, kid=f"interop-{alg}") for alg in ALGS}


def private_jwk(ring: Keyring) -> dict[str, Any]:
    jwk: dict[str, Any] = ring.to_private_jwks()["keys"][-1]
    return jwk


def verifying_jwk(ring: Keyring) -> dict[str, Any]:
    """What another service verifies with: the public JWK, or the shared secret for HMAC."""
    public = ring.to_jwks()["keys"]
    return dict(public[0]) if public else private_jwk(ring)


def our_claims(now: int, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": CONFIG.issuer,
        "aud": CONFIG.audience,
        "sub": "user-1",
        "sid": SID,
        "jti": "jose-1",
        "iat": now,
        "exp": now + 600,
        "role": "admin",
    }
    claims.update(changes)
    return claims


def sign_job(ring: Keyring, payload: dict[str, Any], **header: Any) -> dict[str, Any]:
    jwk = private_jwk(ring)
    head = {"alg": jwk["alg"], "kid": jwk["kid"], "typ": "at+jwt", **header}
    return {
        "op": "sign",
        "jwk": jwk,
        "header": {k: v for k, v in head.items() if v is not None},
        "payload": payload,
    }


def verify_job(ring: Keyring, token: str) -> dict[str, Any]:
    jwk = verifying_jwk(ring)
    return {
        "op": "verify",
        "jwk": jwk,
        "token": token,
        "alg": jwk["alg"],
        "issuer": CONFIG.issuer,
        "audience": CONFIG.audience,
        "typ": "at+jwt",
    }


@pytest.mark.parametrize("alg", ALGS)
def test_jose_tokens_pass_our_gate(jose: Jose, rings: dict[str, Keyring], alg: str) -> None:
    ring, now = rings[alg], int(time.time())
    stranger = Keyring.generate(alg, kid=f"interop-{alg}")  # same kid, other key
    genuine, typ_jwt, no_kid, forged = jose(
        [
            sign_job(ring, our_claims(now)),
            sign_job(ring, our_claims(now), typ="JWT"),
            sign_job(ring, our_claims(now), kid=None),
            sign_job(stranger, our_claims(now)),
        ]
    )
    claims = verify_access_token(ring, genuine["token"], config=CONFIG, now=time.time())
    assert (claims.user_id, claims.session_id, claims.token_id) == ("user-1", SID, "jose-1")
    assert (claims.issued_at, claims.expires_at, claims.claims) == (
        now,
        now + 600,
        {"role": "admin"},
    )
    refusals: list[tuple[str, type[InvalidToken]]] = [
        (typ_jwt["token"], InvalidHeader),
        (no_kid["token"], InvalidHeader),
        (forged["token"], InvalidSignature),
    ]
    for token, expected in refusals:
        with pytest.raises(InvalidToken) as caught:
            verify_access_token(ring, token, config=CONFIG, now=time.time())
        assert type(caught.value) is expected


@pytest.mark.parametrize("alg", ALGS)
def test_our_tokens_verify_in_jose(jose: Jose, rings: dict[str, Keyring], alg: str) -> None:
    ring, now = rings[alg], int(time.time())
    token, issued = issue_access_token(
        ring, user_id="user-1", session_id=SID, claims={"role": "admin"}, config=CONFIG, now=now
    )
    head, body, signature = token.split(".")
    altered = f"{head}.{body}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BA'}"
    ok, refused = jose([verify_job(ring, token), verify_job(ring, altered)])
    assert ok["ok"], ok
    assert ok["header"] == {"alg": alg, "kid": f"interop-{alg}", "typ": "at+jwt"}
    assert ok["payload"] == {
        "iss": CONFIG.issuer,
        "sub": "user-1",
        "aud": CONFIG.audience,
        "iat": issued.issued_at,
        "exp": issued.expires_at,
        "jti": issued.token_id,
        "sid": SID,
        "role": "admin",
    }
    assert not refused["ok"] and refused["code"] == "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"


@pytest.mark.parametrize("engine", ["valkey"], indirect=True)
@pytest.mark.parametrize("alg", ALGS)
async def test_a_store_validates_jose_tokens_and_jose_verifies_the_stores(
    jose: Jose, rings: dict[str, Keyring], make_store: StoreFactory, alg: str
) -> None:
    ring = rings[alg]
    store = make_store(keyring=ring, config=CONFIG)
    pair = await store.login("user-1", device=Device(id="phone-1"), claims={"role": "admin"})
    now = int(time.time())
    signed, verified = jose(
        [
            sign_job(ring, our_claims(now, sid=pair.session_id, jti="from-jose")),
            verify_job(ring, pair.access_token),
        ]
    )
    principal = await store.validate(signed["token"])
    assert not principal.degraded and principal.session is not None
    assert (principal.user_id, principal.session_id) == ("user-1", pair.session_id)
    assert principal.claims == {"role": "admin"}
    assert verified["ok"] and verified["payload"]["sid"] == pair.session_id
    assert await store.logout(signed["token"])  # a jose token names the session like ours
    with pytest.raises(InvalidToken):
        await store.validate(pair.access_token)


@contextlib.contextmanager
def uvicorn_serving(app: Any) -> Iterator[str]:
    """``app`` on a real uvicorn server (a thread) on a free loopback port: its base URL."""
    uvicorn = pytest.importorskip("uvicorn")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.mark.parametrize("engine", ["valkey"], indirect=True)
@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
async def test_jose_verifies_our_token_through_the_jwks_route(
    jose: Jose, make_store: StoreFactory, redis_url: str, alg: str
) -> None:
    from starlette.applications import Starlette

    from sessionstore import AsyncSessionStore
    from sessionstore.integrations.starlette import SessionAuth

    ring = Keyring.generate(alg, kid=f"route-{alg}")
    store = make_store(keyring=ring, config=CONFIG)
    pair = await store.login("user-1", device=Device(id="phone-1"), claims={"role": "admin"})
    served = AsyncSessionStore.from_url(redis_url, keyring=ring, config=CONFIG)
    app = Starlette(routes=[SessionAuth(served).jwks_route()])
    with uvicorn_serving(app) as base:
        job = {
            "op": "verify_remote",
            "url": base + "/.well-known/jwks.json",
            "token": pair.access_token,
            "alg": alg,
            "issuer": CONFIG.issuer,
            "audience": CONFIG.audience,
            "typ": "at+jwt",
        }
        stranger = Keyring.generate(alg, kid=f"route-{alg}")  # same kid, another key
        forged, _ = issue_access_token(
            stranger,
            user_id="user-1",
            session_id=SID,
            claims={},
            config=CONFIG,
            now=int(time.time()),
        )
        ok, refused = jose([job, {**job, "token": forged}])
    await served.close()
    assert ok["ok"], ok
    assert ok["header"]["kid"] == f"route-{alg}"
    assert ok["payload"]["sid"] == pair.session_id and ok["payload"]["role"] == "admin"
    assert not refused["ok"] and refused["code"] == "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"
