"""Degraded mode after a restart and under device binding (issue 14, points 4 and 5).

Each test runs on a private Valkey 8 and a private Redis 7 server that it crashes (SIGKILL,
by pid): the bound of degraded mode is measured from the last reply of Redis, a process
that never reached Redis denies, and device binding holds while Redis is unreachable.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sessionstore import (
    Config,
    Device,
    DeviceBindingError,
    InvalidInput,
    Keyring,
    SessionRevoked,
    SessionStore,
    StoreUnavailable,
    events,
)
from sessionstore.testing import LocalServer, redis_binary, valkey_binary
from sessionstore.tokens import DEVICE_CLAIM
from support import StoreFactory

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
CHROME_NEXT = CHROME.replace("Chrome/120.0", "Chrome/121.0")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
LAPTOP = Device(id="laptop-1", name="ThinkPad", user_agent=CHROME, ip="10.0.0.7")
# A long bound: only the rule under test decides, never how long a loaded box takes.
OUTAGE = Config(socket_timeout=0.25, breaker_failures=2, breaker_reset=0.3)
ENFORCE = Config(
    socket_timeout=0.25, breaker_failures=2, breaker_reset=0.3, device_binding="enforce"
)
ROOT = Path(__file__).resolve().parents[1]


def payload(token: str) -> dict[str, Any]:
    """The JSON payload of a compact JWS, undecoded by any of our code."""
    body = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return decoded


@pytest.fixture(params=["valkey", "redis7"])
def server(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    """A private server of each engine, to crash."""
    binary = valkey_binary() if request.param == "valkey" else redis_binary()
    if binary is None:
        pytest.skip(f"no {request.param} binary")
    with LocalServer(binary, name=f"degraded-{request.param}") as started:
        yield started


# --- point 4: the bound runs from the last reply; a process that never had one denies -------


async def test_a_process_started_mid_outage_denies(
    open_store: StoreFactory, server: LocalServer
) -> None:
    old = open_store(server.url, config=OUTAGE)
    alive = await old.login("user-1", device=LAPTOP)
    revoked = await old.login("user-1", device=LAPTOP)
    assert await old.revoke("user-1", revoked.session_id)
    assert not (await old.validate(alive.access_token)).degraded
    server.kill()

    # A process (re)started by its supervisor now never heard of the revocation above.
    new = open_store(server.url, config=OUTAGE)
    for token in (revoked.access_token, alive.access_token):
        for _ in range(3):  # before and after its breaker opens
            with pytest.raises(StoreUnavailable, match="never reached"):
                await new.validate(token)
    # The process that saw Redis a moment ago stays within its bound, and knows better.
    assert (await old.validate(alive.access_token)).degraded
    with pytest.raises(SessionRevoked):
        await old.validate(revoked.access_token)


_CHILD = """
import sys
from sessionstore import Config, Keyring, SessionStore
config = Config(socket_timeout=0.25, breaker_failures=2, breaker_reset=0.3)
store = SessionStore.from_url(sys.argv[1], keyring=Keyring.from_env(), config=config)
for token in sys.argv[2:]:
    try:
        principal = store.validate(token)
        print("degraded" if principal.degraded else "valid")
    except Exception as err:
        print(type(err).__name__)
store.close()
"""


def test_a_restarted_process_denies(server: LocalServer) -> None:
    keyring = Keyring.generate("HS256")
    with SessionStore.from_url(server.url, keyring=keyring, config=OUTAGE) as old:
        alive = old.login("user-1", device=LAPTOP)
        revoked = old.login("user-1", device=LAPTOP)
        assert old.revoke("user-1", revoked.session_id)
        assert not old.validate(alive.access_token).degraded
        server.kill()
        env = {
            **os.environ,
            "SESSIONSTORE_JWKS": json.dumps(keyring.to_private_jwks()),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, server.url, revoked.access_token, alive.access_token],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert child.stdout.split() == ["StoreUnavailable", "StoreUnavailable"], child.stderr
        assert old.validate(alive.access_token).degraded
        with pytest.raises(SessionRevoked):
            old.validate(revoked.access_token)


async def test_the_bound_runs_from_the_last_reply(
    open_store: StoreFactory, server: LocalServer
) -> None:
    config = Config(socket_timeout=0.25, breaker_reset=0.3, max_degraded_seconds=1)
    store = open_store(server.url, config=config)
    pair = await store.login("user-1", device=LAPTOP)
    assert not (await store.validate(pair.access_token)).degraded
    server.kill()
    # Idle past the bound: noticing the outage only now must not start a fresh window.
    time.sleep(config.max_degraded_seconds + 0.5)
    for _ in range(3):
        with pytest.raises(StoreUnavailable, match="max_degraded_seconds"):
            await store.validate(pair.access_token)


async def test_deny_still_denies(open_store: StoreFactory, server: LocalServer) -> None:
    store = open_store(server.url, config=Config(socket_timeout=0.25, fallback="deny"))
    pair = await store.login("user-1", device=LAPTOP)
    server.kill()
    with pytest.raises(StoreUnavailable, match="fallback is 'deny'"):
        await store.validate(pair.access_token)


# --- point 5: device binding -----------------------------------------------------------------


async def test_binding_holds_while_degraded(open_store: StoreFactory, server: LocalServer) -> None:
    seen: list[events.Event] = []
    store = open_store(server.url, config=ENFORCE, on_event=seen.append)
    pair = await store.login("user-1", device=LAPTOP)
    token = pair.access_token
    assert not (await store.validate(token, ip="10.0.0.7", user_agent=CHROME)).degraded
    server.kill()

    # The same device: its /24, its mapped form, a newer version of its browser.
    for ip, agent in (("10.0.0.7", CHROME), ("::ffff:10.0.0.8", CHROME_NEXT), (None, CHROME)):
        assert (await store.validate(token, ip=ip, user_agent=agent)).degraded
    # Another device: refused as it is while Redis is up.
    refused: dict[str, list[tuple[str, str | None]]] = {
        "user_agent": [("10.0.0.7", FIREFOX), ("10.0.0.7", None), ("10.0.0.7", "")],
        "ip": [("10.0.1.7", CHROME), ("::ffff:10.9.0.7", CHROME), ("fd00::7", CHROME)],
    }
    for field, requests in refused.items():
        for other_ip, other_agent in requests:
            with pytest.raises(DeviceBindingError, match=field):
                await store.validate(token, ip=other_ip, user_agent=other_agent)
    mismatches = [e for e in seen if isinstance(e, events.DeviceMismatch)]
    assert [e.field for e in mismatches] == ["user_agent"] * 3 + ["ip"] * 3
    assert all(e.enforced for e in mismatches)


async def test_binding_report_mode_while_degraded(
    open_store: StoreFactory, server: LocalServer
) -> None:
    seen: list[events.Event] = []
    config = Config(socket_timeout=0.25, breaker_reset=0.3, device_binding="report")
    store = open_store(server.url, config=config, on_event=seen.append)
    pair = await store.login("user-1", device=LAPTOP)
    assert not (await store.validate(pair.access_token, ip="10.0.0.7", user_agent=CHROME)).degraded
    server.kill()
    assert (await store.validate(pair.access_token, ip="10.0.0.7", user_agent=FIREFOX)).degraded
    mismatch = [e for e in seen if isinstance(e, events.DeviceMismatch)]
    assert [(e.field, e.enforced) for e in mismatch] == [("user_agent", False)]


async def test_a_token_without_device_digests_is_refused_while_degraded(
    open_store: StoreFactory, server: LocalServer
) -> None:
    # A verify-only keyring (a resource server holding the public JWKS) cannot check the
    # digests, nor can anyone check a token issued while binding was off: enforce denies.
    keyring = Keyring.generate("ES256")
    issuer = open_store(server.url, config=ENFORCE, keyring=keyring)
    unbound = open_store(server.url, config=OUTAGE, keyring=keyring)
    verifier = open_store(server.url, config=ENFORCE, keyring=Keyring.from_jwks(keyring.to_jwks()))
    bound = await issuer.login("user-1", device=LAPTOP)
    plain = await unbound.login("user-1", device=LAPTOP)
    for token in (bound.access_token, plain.access_token):
        for store in (issuer, verifier):
            assert not (await store.validate(token, ip="10.0.0.7", user_agent=CHROME)).degraded
    server.kill()
    assert (await issuer.validate(bound.access_token, ip="10.0.0.7", user_agent=CHROME)).degraded
    for store, pair in ((verifier, bound), (issuer, plain), (verifier, plain)):
        with pytest.raises(StoreUnavailable, match="device cannot be checked"):
            await store.validate(pair.access_token, ip="10.0.0.7", user_agent=CHROME)


async def test_a_missing_user_agent_is_a_mismatch(
    open_store: StoreFactory, server: LocalServer
) -> None:
    store = open_store(server.url, config=ENFORCE)
    pair = await store.login("user-1", device=LAPTOP)
    for agent in (None, ""):
        with pytest.raises(DeviceBindingError, match="user_agent"):
            await store.validate(pair.access_token, ip="10.0.0.7", user_agent=agent)
    # A session created without a user agent binds none.
    bare = await store.login("user-1", device=Device(id="api", ip="10.0.0.7"))
    assert not (await store.validate(bare.access_token, ip="10.0.0.7")).degraded


async def test_an_ipv4_mapped_address_is_its_ipv4(
    open_store: StoreFactory, server: LocalServer
) -> None:
    store = open_store(server.url, config=ENFORCE)
    pair = await store.login("user-1", device=LAPTOP)
    for ip in ("::ffff:10.0.0.7", "::FFFF:10.0.0.200", "10.0.0.9"):
        principal = await store.validate(pair.access_token, ip=ip, user_agent=CHROME)
        assert not principal.degraded
    mapped = await store.login(
        "user-1", device=msgspec.structs.replace(LAPTOP, ip="::ffff:10.0.0.7")
    )
    assert not (
        await store.validate(mapped.access_token, ip="10.0.0.7", user_agent=CHROME)
    ).degraded
    with pytest.raises(DeviceBindingError, match="ip"):
        await store.validate(pair.access_token, ip="::ffff:10.0.1.7", user_agent=CHROME)


async def test_the_token_carries_digests_never_the_device(
    open_store: StoreFactory, server: LocalServer
) -> None:
    store = open_store(server.url, config=ENFORCE)
    pair = await store.login("user-1", device=LAPTOP, claims={"role": "admin"})
    first = payload(pair.access_token)
    assert set(first[DEVICE_CLAIM]) == {"ip", "ua"}
    text = json.dumps(first)
    for raw in ("10.0.0", "Chrome", "Windows", "Mozilla", "laptop-1"):
        assert raw not in text
    principal = await store.validate(pair.access_token, ip="10.0.0.7", user_agent=CHROME)
    assert principal.claims == {"role": "admin"}  # the digests are not the caller's claims
    refreshed = await store.refresh(pair.refresh_token)
    again = payload(refreshed.access_token)
    assert again[DEVICE_CLAIM] == first[DEVICE_CLAIM]  # same session, same digests
    other = await store.login("user-1", device=LAPTOP)
    other_payload = payload(other.access_token)
    assert other_payload[DEVICE_CLAIM]["ua"] != first[DEVICE_CLAIM]["ua"]  # not linkable
    with pytest.raises(InvalidInput, match=DEVICE_CLAIM):
        await store.login("user-1", device=LAPTOP, claims={DEVICE_CLAIM: {}})
    # Binding off: tokens stay as they were.
    plain = open_store(server.url, config=OUTAGE)
    unbound = await plain.login("user-1", device=LAPTOP)
    assert DEVICE_CLAIM not in payload(unbound.access_token)
