"""Hostile tokens against a real store: each is refused with its own error and no Redis call.

Every case goes through the public API (``validate``, ``refresh`` or ``logout``) of a store on
a real server, in both modes; the server's command counters (INFO commandstats) must not move.
Tokens are forged by hand: base64url of crafted JSON, signed with the real keys where the
signature must verify, so that each case reaches exactly the check it targets.
"""

from __future__ import annotations

import time

import pytest
import redis

from forge import CONFIG, Case, Forge
from hostile import HEADER_CASES
from hostile_body import BODY_CASES
from sessionstore import Device
from sessionstore.errors import InvalidToken
from support import StoreFactory

PHONE = Device(id="phone-1", name="Pixel")
CASES = HEADER_CASES + BODY_CASES


@pytest.fixture(scope="module")
def tokens(forge: Forge) -> dict[str, object]:
    # Built when the module's first test runs, not at collection: the time claims stay
    # fresh however long the tests before this module take.
    forge.now = int(time.time())
    return {case.name: case.make(forge) for case in CASES}


def test_the_table_is_large_and_distinct(tokens: dict[str, object]) -> None:
    assert len(CASES) >= 50
    assert len({case.name for case in CASES}) == len(CASES)
    sent = [(case.via, repr(tokens[case.name])) for case in CASES]
    assert len(set(sent)) == len(sent), "two cases send the same input to the same method"


# Commands no request sent. support.script_calls already leaves out INFO, replication
# acks and connection set-up (HELLO, CLIENT SETINFO); the near cache's invalidation
# connection adds its own handshake and a heartbeat (HELLO, then MULTI EXISTS EXEC WATCH)
# every 0.25 s, at any moment.
HOUSEKEEPING = {
    "cmdstat_info",
    "cmdstat_replconf",
    "cmdstat_hello",
    "cmdstat_client|setinfo",
    "cmdstat_ping",
    "cmdstat_subscribe",
    "cmdstat_client|setname",
    "cmdstat_client|tracking",
    # The database watch (SWAPDB/FLUSHDB detection): SET NX and WATCH at the handshake,
    # MULTI EXISTS EXEC WATCH as the heartbeat.
    "cmdstat_set",
    "cmdstat_multi",
    "cmdstat_exists",
    "cmdstat_exec",
    "cmdstat_watch",
}


def request_calls(client: redis.Redis) -> int:
    """Commands the server has run for requests so far (one INFO commandstats snapshot)."""
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k not in HOUSEKEEPING)


# The gate runs before any I/O whatever the server: one engine is enough for the table.
@pytest.mark.parametrize("engine", ["valkey"], indirect=True)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_hostile_input_is_refused_without_a_redis_call(
    case: Case,
    forge: Forge,
    tokens: dict[str, object],
    make_store: StoreFactory,
    redis_client: redis.Redis,
) -> None:
    store = make_store(keyring=forge.keyring, config=CONFIG)
    before = request_calls(redis_client)
    with pytest.raises(InvalidToken) as caught:
        await getattr(store, case.via)(tokens[case.name])
    assert type(caught.value) is case.expected, caught.value
    assert request_calls(redis_client) == before
    text = str(caught.value)
    token = tokens[case.name]
    if isinstance(token, str) and len(token) > 12:
        assert token[:40] not in text  # refusals never echo the token


@pytest.mark.parametrize("engine", ["valkey"], indirect=True)
async def test_the_counter_sees_genuine_calls(
    forge: Forge, make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    """The zero-call assertions can fail: a genuine token does cost Redis calls."""
    store = make_store(keyring=forge.keyring, config=CONFIG)
    pair = await store.login("user-1", device=PHONE)
    before = request_calls(redis_client)
    assert (await store.validate(pair.access_token)).session is not None
    assert request_calls(redis_client) > before
    before = request_calls(redis_client)
    await store.refresh(pair.refresh_token)
    assert request_calls(redis_client) > before
