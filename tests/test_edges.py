"""Edge cases of issue 15: refused input leaves nothing behind, configurations that could
never work are refused up front, a session in use never dies of idleness, a misconfigured
URL or server is reported properly, and weak or confusable keys are refused.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import math
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from forge import b64 as b64u
from observe import session_keys
from sessionstore import (
    AsyncSessionStore,
    Config,
    Device,
    InvalidInput,
    Keyring,
    SessionRevoked,
    SessionStore,
)
from support import StoreFactory

PHONE = Device(id="phone-1", name="Pixel")
LAPTOP = Device(id="laptop-1", name="ThinkPad")
TABLET = Device(id="tablet-1", name="iPad")


# --- point 4: Config refuses what could never work ------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("socket_timeout", math.nan),
        ("socket_timeout", math.inf),
        ("socket_timeout", -0.5),
        ("breaker_reset", math.inf),
        ("breaker_reset", math.nan),
        ("breaker_reset", 0),
        ("revoke_wait_timeout", math.nan),
        ("marker_interval", math.inf),
        ("access_ttl", 10**15),
        ("idle_ttl", -1),
        ("leeway", -30),
        ("touch_interval", -1),
        ("max_token_bytes", 10),
        ("token_cache_size", 10**12),
        ("max_data_bytes", 10**9),
        ("refresh_grace", 1.5),
        ("breaker_failures", True),
    ],
)
def test_config_refuses_out_of_range_values_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(InvalidInput, match=rf"^Config\.{field} must be"):
        Config(**{field: value})  # type: ignore[arg-type]


def test_config_refuses_incoherent_combinations() -> None:
    with pytest.raises(InvalidInput, match=r"Config\.idle_ttl must not exceed"):
        Config(idle_ttl=600, absolute_ttl=60)
    with pytest.raises(InvalidInput, match=r"Config\.max_claims_bytes must not exceed"):
        Config(max_token_bytes=1024, max_claims_bytes=2048)
    Config(idle_ttl=60, absolute_ttl=60, max_token_bytes=1024, max_claims_bytes=1024)


# --- point 9: URL options, and a server that does not speak RESP ----------------------------


@pytest.mark.parametrize("api", [SessionStore, AsyncSessionStore])
@pytest.mark.parametrize(
    "query",
    ["bogus=1", "socket_timeout=soon", "timeout=3", "ssl_certfile=/tmp/x.pem", "ssl_bogus=1"],
)
def test_from_url_refuses_unknown_options(api: Any, query: str) -> None:
    # Nothing listens on port 1: a refusal here was made before any connection.
    with pytest.raises(InvalidInput):
        api.from_url(f"redis://127.0.0.1:1/0?{query}", keyring=Keyring.generate())


def test_from_url_refuses_an_unknown_keyword() -> None:
    with pytest.raises(InvalidInput, match="bogus"):
        SessionStore.from_url("redis://127.0.0.1:1/0", keyring=Keyring.generate(), bogus=1)


class _ForeignPort:
    """A loopback server answering every connection with ``reply``, counting them."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.settimeout(1.0)
                try:
                    conn.recv(4096)
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


FOREIGN_REPLIES = {
    "http": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    "tls alert": b"\x15\x03\x03\x00\x02\x02\x46",  # what some TLS servers send to plain text
}


@pytest.fixture(params=list(FOREIGN_REPLIES))
def foreign_port(request: pytest.FixtureRequest) -> Iterator[_ForeignPort]:
    server = _ForeignPort(FOREIGN_REPLIES[request.param])
    try:
        yield server
    finally:
        server.close()


def test_listener_survives_a_server_that_does_not_speak_resp(
    foreign_port: _ForeignPort, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sessionstore")
    store = SessionStore.from_url(
        f"redis://127.0.0.1:{foreign_port.port}/0", keyring=Keyring.generate()
    )
    try:
        # Retries (with backoff) prove the invalidation thread lives on.
        deadline = time.monotonic() + 20
        while foreign_port.accepted < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert foreign_port.accepted >= 4
    finally:
        store.close()
    warnings = [
        r
        for r in caplog.records
        if r.name == "sessionstore" and r.levelno >= logging.WARNING and "invalidation" in r.msg
    ]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]


# --- point 12: keys that must never be used ---------------------------------------------------

# Wycheproof (C2SP/wycheproof, testvectors_v1/json_web_key_test.json, group "jws_rsa_roca_key",
# tcId 7 "rejectsKeyWithRocaVulnerability"): the public half of an Infineon key.
ROCA_JWK = {
    "alg": "RS256",
    "use": "sig",
    "kty": "RSA",
    "kid": "kid-rsa-roca-sign",
    "e": "AQAB",
    "n": (
        "AanFpofbj7KjD4Lf-N2hVMKR7yewSyXhhbirIMTGpfYEhZ_lnt5UoK98DnKIgArXGTu3MaW_HhFw16HGaTDUHqPr"
        "Id7fe4r11CqRw09yBFuW79V8sYIwHdzCaWflUI6auImYbVfoN9_nD5n8N8SY9DwXw7mwZM9wREPXoDPgOoIWl6q_"
        "MPsp7n0zs3Z5ZaiQWOOzl1S9OhwAfSiiOwz6efnXEaxuTEtPd7BjSx7NaFka8Dx9U7YqXy2RFj1O9PjyaDGuRh7Y"
        "XsX3iMUSP_wSyHQg_c_qHRtKUsNSGCT7OZg0hzm2KphtjnayKJvC64vAbROBR4Ubg6Bxg9IQVZ-QYyE"
    ),
}


def test_from_jwks_refuses_the_wycheproof_roca_key() -> None:
    with pytest.raises(InvalidInput, match="ROCA"):
        Keyring.from_jwks({"keys": [ROCA_JWK]})


def test_from_jwks_still_takes_sound_rsa_keys() -> None:
    for _ in range(3):
        public = Keyring.generate("RS256").to_jwks()
        assert Keyring.from_jwks(public).kids == [public["keys"][0]["kid"]]


def _public_key_texts() -> dict[str, bytes]:
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import rsa

    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = public.public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
    ssh = public.public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH)
    jwk = json.dumps(Keyring.generate("ES256").to_jwks()["keys"][0]).encode()
    return {
        "pem": pem,
        "pem without its END line": pem.split(b"-----END")[0],
        "ssh": ssh,
        "ssh after whitespace": b"\n " + ssh,
        "jwk": jwk,
        "jwk followed by bytes": jwk + b"\x00\x01\x02",
        "json object": json.dumps({"n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmb", "e": "AQAB"}).encode(),
    }


@pytest.mark.parametrize("name", list(_public_key_texts()))
def test_from_jwks_refuses_hmac_secrets_that_look_like_keys(name: str) -> None:
    secret = _public_key_texts()[name]
    jwk = {"kid": "k", "alg": "HS256", "kty": "oct", "k": b64u(secret)}
    with pytest.raises(InvalidInput, match="looks like"):
        Keyring.from_jwks({"keys": [jwk]})


# --- point 3: a refused login writes nothing ------------------------------------------------

REFUSED_CLAIMS: dict[str, dict[str, Any]] = {
    "nan": {"score": math.nan},
    "infinity": {"score": math.inf},
    "bytes": {"blob": b"\x00\x01"},
    "datetime": {"at": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)},
    "uuid": {"id": uuid.UUID(int=7)},
    "set": {"roles": {"admin"}},
    "nested non-str key": {"map": {1: "one"}},
    # 1005 bytes encoded (under max_claims_bytes), but six JSON bytes per character: the
    # signed token would exceed max_token_bytes.
    "token too large": {"c": "\x01" * 1000},
}


@pytest.mark.parametrize("case", list(REFUSED_CLAIMS))
async def test_refused_login_writes_nothing_and_evicts_nobody(
    make_store: StoreFactory, redis_client: redis.Redis, case: str
) -> None:
    store = make_store(config=Config(max_sessions_per_user=2, socket_timeout=5.0))
    phone = await store.login("user-1", device=PHONE)
    laptop = await store.login("user-1", device=LAPTOP)
    keys = session_keys(redis_client)
    with pytest.raises(InvalidInput):
        await store.login("user-1", device=TABLET, claims=REFUSED_CLAIMS[case])
    assert session_keys(redis_client) == keys
    assert sorted(s.session_id for s in await store.sessions("user-1")) == sorted(
        [phone.session_id, laptop.session_id]
    )
    for pair in (phone, laptop):
        assert (await store.validate(pair.access_token)).session is not None


async def test_login_at_the_cap_still_evicts_and_signs_what_it_stores(
    make_store: StoreFactory,
) -> None:
    store = make_store(config=Config(max_sessions_per_user=1, socket_timeout=5.0))
    first = await store.login("user-1", device=PHONE)
    claims = {"role": "admin", "tags": ["a", "b"], "n": 1.5, "ok": True, "none": None}
    second = await store.login("user-1", device=LAPTOP, claims=claims, idle_ttl=30, absolute_ttl=60)
    assert [s.session_id for s in await store.sessions("user-1")] == [second.session_id]
    principal = await store.validate(second.access_token)
    assert principal.claims == claims
    assert principal.session is not None and principal.session.claims == claims
    assert principal.expires_at <= principal.session.absolute_expires_at
    with pytest.raises(SessionRevoked):
        await store.validate(first.access_token)
    refreshed = await store.refresh(second.refresh_token)
    assert (await store.validate(refreshed.access_token)).claims == claims


# --- point 5: a session in continuous use never dies of idleness ----------------------------


async def test_sessions_in_use_slide_even_when_idle_ttl_is_below_touch_interval(
    make_store: StoreFactory,
) -> None:
    # touch_interval (60 s) far above both idle ttls: the configured one, and a risky
    # login's shorter one. Used every 0.25 s for over twice the idle ttl, neither may die.
    # A generous socket timeout: on a loaded machine a slow reply must not turn into a
    # degraded (session-less) answer.
    short = make_store(config=Config(idle_ttl=3, absolute_ttl=600, socket_timeout=5.0))
    default = make_store(config=Config(socket_timeout=5.0))
    pairs = [
        (short, await short.login("user-1", device=PHONE)),
        (default, await default.login("user-2", device=PHONE, idle_ttl=3)),
    ]
    end = time.monotonic() + 7.0
    while time.monotonic() < end:
        for store, pair in pairs:
            principal = await store.validate(pair.access_token)  # SessionExpired if it died
            assert principal.session is not None
        await asyncio.sleep(0.25)
    for store, pair in pairs:
        session = (await store.validate(pair.access_token)).session
        assert session is not None and session.idle_expires_at > time.time()
