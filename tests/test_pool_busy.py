"""A saturated connection pool is not an outage: ``StoreBusy``, never the fallback.

More threads than the client's ``max_connections`` make redis-py raise a ``ConnectionError``
subclass without asking Redis. Read as "unreachable", it counted toward the circuit breaker,
which opened: while Redis answered, 1,320 of this test's 1,440 validations failed with
``StoreUnavailable`` (the breaker failing the whole process), and a store whose fallback
answers from the token's claims would have entered degraded mode. Now only the calls that
found no connection fail, with ``StoreBusy``; the breaker stays closed.
(The asyncio shell batches concurrent calls onto its connections: 96 validations at once
on a pool of 2 never ran out of connections, so only the thread test can saturate one.)
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import redis

from sessionstore import Device, Keyring, SessionStore, events
from sessionstore.errors import SessionRevoked, StoreBusy, StoreUnavailable
from sessionstore.models import Config
from web_support import server_fixtures

server, url = server_fixtures("pool-busy")

KEYRING = Keyring.generate("HS256")
# Caches off: every validation asks Redis, so every one needs a pooled connection.
UNCACHED = Config(token_cache_size=0, near_cache_size=0, socket_timeout=10.0)
THREADS = 24
ROUNDS = 60


def outcome(validate: object) -> str:
    """What one validation answered: "live", "degraded", or the error's class name."""
    try:
        principal = validate()  # type: ignore[operator]
    except (SessionRevoked, StoreUnavailable) as err:
        return type(err).__name__
    return "degraded" if principal.degraded else "live"


def client_of(url: str, pool: str) -> redis.Redis:
    """A client whose pool holds two connections: redis-py's default pool, which raises
    at once, or a ``BlockingConnectionPool``, which raises once its ``timeout`` passed."""
    if pool == "blocking":
        blocking = redis.BlockingConnectionPool.from_url(url, max_connections=2, timeout=0.001)
        return redis.Redis(connection_pool=blocking)
    return redis.Redis.from_url(url, max_connections=2)


@pytest.mark.parametrize("pool", ["plain", "blocking"])
def test_threads_past_the_pool_get_store_busy_never_a_fallback(url: str, pool: str) -> None:
    seen: list[events.Event] = []
    with SessionStore.from_url(url, keyring=KEYRING) as other:
        pair = other.login("alice", device=Device(id="phone"))
        revoked = other.login("alice", device=Device(id="laptop"))
        other.revoke("alice", revoked.session_id)  # by another store: not remembered here
    client = client_of(url, pool)
    store = SessionStore(client, keyring=KEYRING, config=UNCACHED, on_event=seen.append)
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def work(n: int) -> None:
        start.wait()
        for i in range(ROUNDS):
            token = (pair if (n + i) % 2 else revoked).access_token
            answer = outcome(lambda token=token: store.validate(token))
            with lock:
                counts[f"{answer}:{'ok' if token == pair.access_token else 'revoked'}"] += 1

    try:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        store.close()
        client.close()
    assert counts["StoreBusy:ok"] + counts["StoreBusy:revoked"] > 0, counts  # it saturated
    assert counts["degraded:ok"] == counts["degraded:revoked"] == 0, counts
    assert counts["live:revoked"] == 0 and counts["StoreUnavailable:ok"] == 0, counts
    assert counts["StoreUnavailable:revoked"] == 0, counts
    assert not any(isinstance(e, events.DegradedEntered) for e in seen)


def test_store_busy_is_a_store_unavailable() -> None:
    """Integrations answer it as they answer every ``StoreUnavailable``: 503."""
    assert issubclass(StoreBusy, StoreUnavailable)
    with pytest.raises(StoreUnavailable):
        raise StoreBusy("no free connection")
