"""Crews of racers: N workers (threads, or spawned processes) that start each round together.

A crew hands one task to each worker per round; every worker waits on a barrier, then runs
its task on its store and reports a picklable outcome. Threads share one ``SessionStore``
(it is thread-safe); processes each build their own from the same URL and JWK Set.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from sessionstore import Config, Device, Keyring, SessionStore, SessionStoreError

__all__ = ["BARRIER_TIMEOUT", "ROTATIONS", "Crew", "Outcome", "Task", "attempt", "crew", "perform"]

Task = tuple[Any, ...]
Outcome = tuple[str, Any]  # ("ok", value) or (error class name, message)
BARRIER_TIMEOUT = 60.0
ROTATIONS = 5
PHONE = Device(id="phone-1", name="Pixel")


# --- what a worker does ---------------------------------------------------------------------


def attempt(call: Callable[[], Any]) -> Outcome:
    """Run ``call``: ("ok", result), or the error class name and message."""
    try:
        return "ok", call()
    except SessionStoreError as err:
        return type(err).__name__, str(err)
    except Exception as err:  # a bug, not an answer: report it as such
        return f"unhandled {type(err).__name__}", repr(err)


def _rotate_and_validate(store: SessionStore, tokens: list[str], user: str) -> Outcome:
    """Rotate the keyring ROTATIONS times in a thread while validating ``tokens``.

    After each rotation the rotator logs in (a user of its own, so the cap never evicts
    the sessions under test) and validates the fresh token, signed by the newest key.
    """
    failures: list[str] = []
    count = [0]
    own = f"{user}-{os.getpid()}-{threading.get_ident()}"

    def rotate() -> None:
        for _ in range(ROTATIONS):
            store.keyring.rotate(Keyring.generate("ES256"), grace=3600)
            outcome = attempt(lambda: store.validate(store.login(own, device=PHONE).access_token))
            count[0] += 2
            if outcome[0] != "ok" or outcome[1].degraded:
                failures.append(f"fresh token after rotation: {outcome}")

    rotator = threading.Thread(target=rotate)
    rotator.start()
    while True:
        alive = rotator.is_alive()
        for token in tokens:
            outcome = attempt(lambda t=token: store.validate(t))  # type: ignore[misc]
            count[0] += 1
            if outcome[0] != "ok" or outcome[1].degraded:
                failures.append(f"old token during rotation: {outcome}")
        if not alive:
            break
    rotator.join()
    return "ok", (count[0], failures)


def perform(store: SessionStore, task: Task) -> Outcome:
    """Run one task on ``store``; results are plain picklable values."""
    op, *args = task
    if op == "validate":
        return attempt(lambda: store.validate(args[0]).degraded)
    if op == "touch":
        return attempt(lambda: store.touch(args[0], args[1]))
    if op == "revoke":
        return attempt(lambda: store.revoke(args[0], args[1]))
    if op == "refresh":

        def refresh() -> tuple[str, str]:
            pair = store.refresh(args[0])
            return pair.refresh_token, pair.access_token

        return attempt(refresh)
    if op == "login_many":
        user, count = args
        return attempt(lambda: [store.login(user, device=PHONE).access_token for _ in range(count)])
    if op == "rotate_and_validate":
        return _rotate_and_validate(store, args[0], args[1])
    return "unknown op", op


def _serve(
    store: SessionStore,
    index: int,
    take: Callable[[], Task | None],
    give: Callable[[tuple[int, Outcome]], None],
    barrier: Any,
) -> None:
    while True:
        task = take()
        if task is None:
            return
        try:
            barrier.wait(BARRIER_TIMEOUT)
        except threading.BrokenBarrierError:
            give((index, ("barrier broken", None)))
            continue
        give((index, perform(store, task)))


def _process_main(
    url: str,
    jwks: dict[str, Any],
    config: Config,
    index: int,
    inbox: Any,
    outbox: Any,
    barrier: Any,
) -> None:
    store = SessionStore.from_url(url, keyring=Keyring.from_jwks(jwks), config=config)
    try:
        _serve(store, index, inbox.get, outbox.put, barrier)
    finally:
        store.close()


# --- crews --------------------------------------------------------------------------------------


class Crew(Protocol):
    """N workers that start each round's tasks together."""

    mode: str
    size: int

    def round(self, tasks: list[Task]) -> list[Outcome]:
        """Run one task per worker (barrier start); their outcomes in worker order."""


class _Crew:
    def __init__(self, mode: str, size: int, outbox: Any, inboxes: list[Any]) -> None:
        self.mode, self.size = mode, size
        self._outbox, self._inboxes = outbox, inboxes

    def round(self, tasks: list[Task]) -> list[Outcome]:
        if len(tasks) != self.size:
            raise ValueError(f"a round needs {self.size} tasks, got {len(tasks)}")
        for inbox, task in zip(self._inboxes, tasks, strict=True):
            inbox.put(task)
        results: dict[int, Outcome] = {}
        while len(results) < self.size:
            index, outcome = self._outbox.get(timeout=BARRIER_TIMEOUT * 2)
            results[index] = outcome
        return [results[i] for i in range(self.size)]


@contextlib.contextmanager
def crew(mode: str, size: int, url: str, keyring: Keyring, config: Config) -> Iterator[Crew]:
    """A crew of ``size`` threads (sharing one store) or spawned processes."""
    if mode == "threads":
        store = SessionStore.from_url(url, keyring=keyring, config=config)
        outbox: queue.Queue[tuple[int, Outcome]] = queue.Queue()
        inboxes: list[queue.Queue[Task | None]] = [queue.Queue() for _ in range(size)]
        barrier = threading.Barrier(size)
        threads = [
            threading.Thread(
                target=_serve, args=(store, i, inboxes[i].get, outbox.put, barrier), daemon=True
            )
            for i in range(size)
        ]
        for thread in threads:
            thread.start()
        try:
            yield _Crew(mode, size, outbox, inboxes)
        finally:
            for inbox in inboxes:
                inbox.put(None)
            for thread in threads:
                thread.join(10)
            store.close()
        return
    if mode != "processes":
        raise ValueError(f"mode must be 'threads' or 'processes', got {mode!r}")
    ctx = multiprocessing.get_context("spawn")
    pouts = ctx.Queue()
    pins = [ctx.Queue() for _ in range(size)]
    pbarrier = ctx.Barrier(size)
    jwks = keyring.to_private_jwks()
    procs = [
        ctx.Process(
            target=_process_main,
            args=(url, jwks, config, i, pins[i], pouts, pbarrier),
            name=f"race-worker-{i}",
        )
        for i in range(size)
    ]
    for proc in procs:
        proc.start()
    try:
        yield _Crew(mode, size, pouts, pins)
    finally:
        for pin in pins:
            pin.put(None)
        for proc in procs:
            proc.join(10)
            if proc.is_alive():  # our own child, by its handle
                proc.kill()
                proc.join()
