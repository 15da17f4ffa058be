"""Issue 14.7: a revoke acknowledged in another process is seen by the very next validate,
even by a validator that never lets go of the GIL (a CPU-bound loop, no I/O between calls).

The validator runs in a child process with ``sys.setswitchinterval(0.05)``: a listener
thread that needs the GIL back before it can apply a push then waits up to 50 ms, which
made the old hot path serve the revoked session from the near cache. The parent tells the
child "revoked" through shared memory (a read of it is no system call, so the child's loop
never releases the GIL), after ``revoke`` returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from sessionstore import AsyncSessionStore, Device, Keyring, SessionRevoked, SessionStore
from sessionstore.testing import Engine

PHONE = Device(id="phone-1", name="Pixel", user_agent="Mozilla/5.0 (Linux; Android 14)")
TRIALS = 40
REPLY_SECONDS = 30.0


def _spin(validate: Callable[[], Any], revoked: Any) -> str:  # the async twin: _aspin
    """Validate until ``revoked`` is set, then once more: what that last call did."""
    while not revoked.value:
        # Refused before the parent's word: fine, the next call must refuse too.
        with contextlib.suppress(SessionRevoked):
            validate()
    try:
        validate()
    except SessionRevoked:
        return "refused"
    return "accepted"


def _warm(validate: Callable[[], Any]) -> bool:
    """Validate until two calls in a row give the same object (only a near-cache hit does)."""
    previous = validate()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        current = validate()
        if current is previous:
            return True
        previous = current
        time.sleep(0.001)
    return False


def validator(url: str, jwks: dict[str, Any], mode: str, revoked: Any, conn: Any) -> None:
    """Child process: per token, warm it, say "ready", spin, report the last call."""
    sys.setswitchinterval(0.05)
    keyring = Keyring.from_jwks(jwks)
    if mode == "sync":
        with SessionStore.from_url(url, keyring=keyring) as store:
            while (token := conn.recv()) is not None:
                conn.send(("ready", _warm(lambda: store.validate(token))))
                conn.send(_spin(lambda: store.validate(token), revoked))
        return

    async def run() -> None:
        async with AsyncSessionStore.from_url(url, keyring=keyring) as store:
            # A hot validate awaits nothing: the loop below holds the GIL, as a busy
            # event loop does.
            while (token := conn.recv()) is not None:
                conn.send(("ready", await _awarm(store, token)))
                conn.send(await _aspin(store, token, revoked))

    asyncio.run(run())


async def _awarm(store: AsyncSessionStore, token: str) -> bool:
    previous = await store.validate(token)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        current = await store.validate(token)
        if current is previous:
            return True
        previous = current
        await asyncio.sleep(0.001)
    return False


async def _aspin(store: AsyncSessionStore, token: str, revoked: Any) -> str:
    while not revoked.value:
        with contextlib.suppress(SessionRevoked):
            await store.validate(token)
    try:
        await store.validate(token)
    except SessionRevoked:
        return "refused"
    return "accepted"


def _recv(conn: Any) -> Any:
    assert conn.poll(REPLY_SECONDS), "the validator process did not answer"
    return conn.recv()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_next_validate_after_acknowledged_revoke_refuses(
    engine: Engine, redis_url: str, mode: str
) -> None:
    if engine.name not in ("valkey", "redis7"):
        pytest.skip("one server is enough: the listener is the same on every topology")
    keyring = Keyring.generate("HS256")
    context = multiprocessing.get_context("spawn")
    revoked = context.RawValue("b", 0)
    parent, child = context.Pipe()
    process = context.Process(
        target=validator, args=(redis_url, keyring.to_private_jwks(), mode, revoked, child)
    )
    process.start()
    rng = random.Random(14)
    accepted = cold = 0
    try:
        with SessionStore.from_url(redis_url, keyring=keyring) as store:
            for _ in range(TRIALS):
                pair = store.login("user-1", device=PHONE)
                revoked.value = 0
                parent.send(pair.access_token)
                kind, warm = _recv(parent)
                assert kind == "ready"
                cold += not warm
                # Anywhere in the heartbeat cycle (0.25 s): where the old window lay.
                time.sleep(rng.uniform(0.0, 0.3))
                assert store.revoke("user-1", pair.session_id)
                revoked.value = 1
                accepted += _recv(parent) == "accepted"
        parent.send(None)
    finally:
        process.join(15)
        if process.is_alive():
            process.kill()  # our own child, by its handle
            process.join()
    assert cold < TRIALS // 2, "the near cache seldom served the token: the test proves little"
    assert accepted == 0, f"{accepted} of {TRIALS} validations accepted a revoked session"
