"""A store created before ``fork()`` works in the parent and in every child.

The tests fork real processes (``os.fork``, as gunicorn ``--preload``, Celery prefork and
``multiprocessing``'s ``fork`` start do): the child never reads or writes a socket of the
parent, builds its own on first use, and revocations are seen on both sides within the
propagation bound, degraded mode included.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest

from forks import expect, fork, outcome
from observe import wait_for
from sessionstore import (
    AsyncSessionStore,
    Config,
    Device,
    InvalidToken,
    Keyring,
    SessionStore,
    StoreUnavailable,
)
from sessionstore.keys import user_keys
from sessionstore.testing import LocalServer, redis_binary, valkey_binary
from support import internals

PHONE = Device(id="phone-1", name="Pixel")
ROWS = pytest.mark.parametrize("engine", ["valkey", "redis7"], indirect=True)
# How long a revocation may take to reach another process's near cache and memory: the
# push arrives within milliseconds; a loaded 2-core box gets seconds of slack.
PROPAGATION = 3.0


def refused(store: SessionStore, token: str) -> bool:
    """Whether ``store`` refuses ``token`` now."""
    try:
        store.validate(token)
    except InvalidToken:
        return True
    return False


def cached(store: SessionStore, user_id: str, session_id: str) -> bool:
    """Whether ``store``'s near cache serves this session now."""
    key = user_keys(store.config.namespace, user_id).session(session_id)
    return internals(store).holds(key)


def warm(store: SessionStore, user_id: str, session_id: str, token: str) -> bool:
    """Validate ``token`` until the near cache serves its session (bounded)."""

    def hot() -> bool:
        store.validate(token)
        return cached(store, user_id, session_id)

    return wait_for(hot, 10.0)


def knows_revoked(store: SessionStore, user_id: str, session_id: str) -> bool:
    """Whether ``store``'s degraded-mode memory holds this revocation."""
    return internals(store).engine.revoked.is_revoked(user_id, session_id, time.time())


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate("HS256")


def socket_inodes() -> set[int]:
    """The inodes of the sockets this process has open (Linux: /proc/self/fd)."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                found.add(os.stat(f"/proc/self/fd/{name}").st_ino)
    return found


def listener_inodes(store: SessionStore) -> set[int]:
    """The inodes of the invalidation sockets behind ``store``'s near cache."""
    return {os.fstat(sock.fileno()).st_ino for sock in internals(store).listener_sockets()}


def still_accepted(store: SessionStore, tokens: list[str]) -> list[str]:
    """The tokens ``store`` still accepts once the propagation bound has passed."""
    left = list(tokens)
    deadline = time.monotonic() + PROPAGATION
    while left and time.monotonic() < deadline:
        left = [token for token in left if not refused(store, token)]
        time.sleep(0.01)
    return left


@ROWS
def test_the_child_never_reads_the_parents_pushes(redis_url: str, keyring: Keyring) -> None:
    """Preloaded store, both sides validating hot and revoking: every revocation made in
    one process is refused by the other within the propagation bound.

    Before the fix the child drained the parent's inherited invalidation socket on its
    cache hits: the pushes it read never reached the parent, whose near cache went on
    serving the revoked sessions for the whole touch interval.
    """
    store = SessionStore.from_url(redis_url, keyring=keyring)
    try:
        users = [f"user-{n}" for n in range(24)]
        pairs = [store.login(user, device=PHONE) for user in users]
        mine, theirs = pairs[:16], pairs[16:]  # revoked by the child / by the parent
        for user, pair in zip(users, pairs, strict=True):
            assert warm(store, user, pair.session_id, pair.access_token)
        parents = listener_inodes(store)
        assert parents, "the parent's invalidation connection is not up"

        def child(pipe: Connection) -> dict[str, Any]:
            stop = threading.Event()
            errors: list[str] = []

            def hot() -> None:  # a busy worker: every cache hit pumps the invalidations
                while not stop.is_set():
                    for pair in pairs:
                        try:
                            store.validate(pair.access_token)
                        except InvalidToken:
                            pass
                        except Exception as err:  # reported, not swallowed
                            errors.append(repr(err))
                            return

            worker = threading.Thread(target=hot)
            worker.start()
            try:
                time.sleep(0.2)
                for user, pair in zip(users[:16], mine, strict=True):
                    assert store.revoke(user, pair.session_id)
                    time.sleep(0.02)
                pipe.send(("revoked", None))
                for user, pair in zip(users[16:], theirs, strict=True):
                    assert warm(store, user, pair.session_id, pair.access_token)
                pipe.send(("warm", None))
                expect(pipe, "revoked")
                late = still_accepted(store, [pair.access_token for pair in theirs])
            finally:
                stop.set()
                worker.join()
            # Not even open: the child cannot read what it has closed.
            inherited = len(socket_inodes() & parents)
            return {"late": len(late), "errors": errors, "inherited": inherited}

        pid, pipe = fork(child)
        expect(pipe, "revoked")
        late = still_accepted(store, [pair.access_token for pair in mine])
        expect(pipe, "warm")
        for user, pair in zip(users[16:], theirs, strict=True):
            assert store.revoke(user, pair.session_id)
        pipe.send(("revoked", None))
        seen = outcome(pid, pipe)
        assert not late, f"the parent still accepted {len(late)} of 16 sessions the child revoked"
        assert not seen["inherited"], "the child kept the parent's invalidation socket open"
        assert not seen["late"], f"the child still accepted {seen['late']} of 8"
        assert not seen["errors"], seen["errors"]
        # The parent's cache works on: a live session is served from it again.
        live = store.login("user-live", device=PHONE)
        assert warm(store, "user-live", live.session_id, live.access_token)
    finally:
        store.close()


@pytest.fixture(params=["valkey", "redis7"])
def private_server(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    """A server of each engine row that the test may kill."""
    binary = valkey_binary() if request.param == "valkey" else redis_binary()
    if binary is None:
        pytest.skip(f"no {request.param} server installed")
    with LocalServer(binary, name=f"fork-{request.param}") as server:
        yield server


def test_the_degraded_child_refuses_what_the_parent_knows_was_revoked(
    private_server: LocalServer, keyring: Keyring
) -> None:
    """A store made in the child after the fork, and the preloaded one, hear revocations
    in the child; when Redis goes down both refuse them, as the parent does.

    Before the fix a store made in the child reused the parent's follower, whose thread
    had not survived the fork: the child never heard a revocation and accepted it in
    degraded mode.
    """
    config = Config(fallback="stateless")
    store = SessionStore.from_url(private_server.url, keyring=keyring, config=config)
    try:
        before = store.login("user-1", device=PHONE)  # revoked before the fork
        after = store.login("user-2", device=PHONE)  # revoked by the parent after it
        live = store.login("user-3", device=PHONE)
        assert warm(store, "user-2", after.session_id, after.access_token)
        assert store.revoke("user-1", before.session_id)

        def child(pipe: Connection) -> dict[str, Any]:
            fresh = SessionStore.from_url(private_server.url, keyring=keyring, config=config)
            stores = {"preloaded": store, "made in the child": fresh}
            for each in stores.values():
                assert warm(each, "user-2", after.session_id, after.access_token)
            pipe.send(("ready", None))
            expect(pipe, "revoked")
            unheard = [
                name
                for name, each in stores.items()
                if not wait_for(
                    functools.partial(knows_revoked, each, "user-2", after.session_id), PROPAGATION
                )
            ]
            pipe.send(("heard", None))
            expect(pipe, "down")
            # The preloaded store inherited what the parent knew before the fork; the new
            # one knows what was revoked since it exists (as in a process started anew).
            checks = [("preloaded", before), ("preloaded", after), ("made in the child", after)]
            accepted = [
                f"{name}: {pair.session_id}"
                for name, pair in checks
                if not refused(stores[name], pair.access_token)
            ]
            degraded = [answer(each, live.access_token) for each in stores.values()]
            return {"unheard": unheard, "accepted": accepted, "degraded": degraded}

        pid, pipe = fork(child)
        expect(pipe, "ready")
        assert store.revoke("user-2", after.session_id)
        pipe.send(("revoked", None))
        expect(pipe, "heard")
        private_server.kill()
        pipe.send(("down", None))
        seen = outcome(pid, pipe)
        assert not seen["unheard"], f"never heard the revocation: {seen['unheard']}"
        assert not seen["accepted"], f"degraded child accepted revoked sessions: {seen}"
        # The preloaded store reached Redis before the outage: it answers from the token.
        # The one made in the child may have been served by the process' near cache only;
        # with no reply of its own it denies (the degraded bound's "never reached" rule).
        assert seen["degraded"][0] == "degraded"
        assert seen["degraded"][1] in ("degraded", "never reached")
        for pair in (before, after):
            assert refused(store, pair.access_token)
        assert store.validate(live.access_token).degraded
    finally:
        store.close()


def answer(store: SessionStore, token: str) -> str:
    """What a degraded store makes of a live token: "degraded", or "never reached"."""
    try:
        return "degraded" if store.validate(token).degraded else "valid"
    except StoreUnavailable as err:
        assert "never reached" in str(err), err
        return "never reached"


@ROWS
@pytest.mark.parametrize("shell", ["sync", "async"])
def test_the_child_talks_on_connections_of_its_own(
    redis_url: str, keyring: Keyring, shell: str
) -> None:
    """The direct path's held connections (and the pool's) stay the parent's: the child
    validates, logs in and revokes on new ones, and the parent's still work after.

    Before the fix the asyncio store in the child handed the parent's connection back
    to the pool and took it out again (redis-py's asyncio pool does not check for a fork).
    """
    loop = asyncio.new_event_loop()  # the parent's: it stays open (not running) at the fork
    if shell == "sync":
        store: Any = SessionStore.from_url(redis_url, keyring=keyring)

        def run(work: Callable[[Any], Any]) -> Any:
            return work(store)
    else:
        store = AsyncSessionStore.from_url(redis_url, keyring=keyring)

        def run(work: Callable[[Any], Any]) -> Any:
            return loop.run_until_complete(work(store))

    def sync_work(s: Any) -> Any:
        pair = s.login("user-1", device=PHONE)
        for _ in range(3):
            s.validate(pair.access_token)
        return pair

    async def async_work(s: Any) -> Any:
        pair = await s.login("user-1", device=PHONE)
        for _ in range(3):
            await asyncio.gather(*(s.validate(pair.access_token) for _ in range(5)))
        return pair

    work: Callable[[Any], Any] = sync_work if shell == "sync" else async_work
    try:
        run(work)
        parents = internals(store).socket_names()
        assert parents, "the parent holds no connection to check against"

        def child(pipe: Connection) -> dict[str, Any]:
            # The async child runs a loop of its own, as a worker does.
            pair = work(store) if shell == "sync" else asyncio.run(work(store))
            shared = internals(store).socket_names() & parents
            if shell == "sync":
                gone = store.revoke("user-1", pair.session_id)
            else:
                gone = asyncio.run(store.revoke("user-1", pair.session_id))
            return {"shared": sorted(map(list, shared)), "revoked": gone}

        pid, pipe = fork(child)
        seen = outcome(pid, pipe)
        assert not seen["shared"], f"the child used the parent's connections {seen['shared']}"
        assert seen["revoked"]
        run(work)  # the parent's connections still answer in step
    finally:
        if shell == "sync":
            store.close()
        else:
            loop.run_until_complete(store.close())
        loop.close()


@ROWS
def test_locks_a_parent_thread_held_at_the_fork_do_not_hang_the_child(
    redis_url: str, keyring: Keyring
) -> None:
    """A parent thread in the middle of a store's critical section when another forks
    (the registry of followers, the revocation memory, the marker, the token cache): the
    child gets locks of its own and works. Before the fix it waited forever."""
    store = SessionStore.from_url(redis_url, keyring=keyring)
    try:
        pair = store.login("user-1", device=PHONE)
        locks = internals(store).locks()
        held, release = threading.Event(), threading.Event()

        def holder() -> None:
            for lock in locks:
                lock.acquire()
            held.set()
            release.wait(30)
            for lock in reversed(locks):
                lock.release()

        thread = threading.Thread(target=holder)
        thread.start()
        assert held.wait(10)

        def child(pipe: Connection) -> dict[str, Any]:
            internals(store).engine.marker.expedite()  # the next call checks the marker: its lock
            for _ in range(3):  # the second sighting enters the token cache: its lock
                store.validate(pair.access_token)
            other = SessionStore.from_url(redis_url, keyring=keyring)  # the registry's lock
            other.validate(pair.access_token)
            other.close()
            gone = store.revoke("user-1", pair.session_id)  # the revocation memory's lock
            return {"revoked": gone, "refused": refused(store, pair.access_token)}

        try:
            pid, pipe = fork(child)
        finally:
            release.set()
            thread.join()
        assert outcome(pid, pipe, seconds=20) == {"revoked": True, "refused": True}
        assert not refused(store, store.login("user-2", device=PHONE).access_token)
    finally:
        store.close()


def _pool_worker(store: SessionStore, token: str, parents: set[int], conn: Connection) -> None:
    """A ``multiprocessing`` child: validate hot, then wait for the parent's revocation."""
    try:
        store.validate(token)
        conn.send(("ready", None))
        expect(conn, "revoked")
        seen = wait_for(functools.partial(refused, store, token), PROPAGATION)
        conn.send(("done", {"refused": seen, "inherited": len(socket_inodes() & parents)}))
    except BaseException as err:  # reported to the parent, which fails the test
        conn.send(("done", {"error": repr(err)}))


@ROWS
def test_multiprocessing_fork_children_share_nothing(redis_url: str, keyring: Keyring) -> None:
    """``multiprocessing`` with the ``fork`` start method: two children of a preloaded
    store hear a revocation the parent makes, on sockets of their own."""
    store = SessionStore.from_url(redis_url, keyring=keyring)
    try:
        pair = store.login("user-1", device=PHONE)
        assert warm(store, "user-1", pair.session_id, pair.access_token)
        parents = listener_inodes(store)
        context = multiprocessing.get_context("fork")
        children = []
        for _ in range(2):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=_pool_worker, args=(store, pair.access_token, parents, theirs)
            )
            process.start()
            children.append((process, mine))
        try:
            for _, pipe in children:
                expect(pipe, "ready")
            assert store.revoke("user-1", pair.session_id)
            for _, pipe in children:
                pipe.send(("revoked", None))
            results = [expect(pipe, "done") for _, pipe in children]
        finally:
            for process, _ in children:
                process.join(10)
                if process.is_alive():
                    process.kill()
                    process.join()
        assert results == [{"refused": True, "inherited": 0}] * 2, results
        assert refused(store, pair.access_token)
    finally:
        store.close()
