"""Revocation propagation across processes: revoke here, time until another process rejects.

A validator process (``multiprocessing``, spawn: a fresh interpreter with its own store,
Config() defaults, so its near cache is on) receives a token, validates it until the near
cache serves it (two calls in a row return the same ``Principal`` object, which only a cache
hit does), reports ready, then validates it in a tight loop until it is refused. This
process waits a random 0.2-1 ms, then calls ``store.revoke``. Both sides read
``time.monotonic_ns()`` (CLOCK_MONOTONIC: one clock for every process of the machine); the
latency of a trial is the rejection time minus the time just before ``revoke`` was called,
so it includes the revoke's own round trip. One new session per trial.

The spinning row (``measure(..., spinning=True)``, issue 14) lets the validator spin for a
random 0-300 ms before the revoke instead of 0.2-1 ms: the spin then spans the listener's
heartbeat (every 0.25 s), where a listener thread that must win the GIL back from the
spinning thread used to leave the near cache unchecked for a whole
``sys.getswitchinterval()`` (5 ms tails). It has no floor trials.

Each trial is paired with a floor trial that shows what the machine itself allows: the same
child spins on ``select()`` of a raw connection SUBSCRIBEd to a channel while this process
PUBLISHes one message; the floor is the time from just before PUBLISH to its arrival. Any
tail the floor shares comes from CPU scheduling (two cores: the spinning child, the server,
this process and whatever else runs), not from the library.
"""

from __future__ import annotations

import multiprocessing
import random
import select
import socket
import statistics
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

import hiredis

from benchmarks.context import DATA, Context, device
from benchmarks.harness import Bound
from benchmarks.server import BenchError
from sessionstore import Config, InvalidToken, Keyring, SessionRevoked, SessionStore

__all__ = ["LIMIT_MS", "SPINNING_LIMIT_MS", "PropagationResult", "measure"]

LIMIT_MS = 2.0
SPINNING_LIMIT_MS = 1.0
# How long the validator spins before the revoke: a short wait, or the heartbeat cycle.
_WAIT_SHORT = (0.0002, 0.001)
_WAIT_SPINNING = (0.0, 0.3)
_WARM_TRIES = 2000
_SPIN_NS = 2_000_000_000
_REPLY_SECONDS = 10.0


@dataclass
class PropagationResult:
    """Per-trial latencies (ns) from the revoke call's start and from its return."""

    trials: int
    spinning: bool = False
    from_call_ns: list[int] = field(default_factory=list)
    from_return_ns: list[int] = field(default_factory=list)
    revoke_ns: list[int] = field(default_factory=list)
    loops: list[int] = field(default_factory=list)
    refusing_call_ns: list[int] = field(default_factory=list)
    floor_ns: list[int] = field(default_factory=list)
    cold_trials: int = 0

    def percentile(self, q: int, values: list[int] | None = None) -> float:
        """The q-th percentile (1..99) in microseconds (inclusive method)."""
        data = self.from_call_ns if values is None else values
        return statistics.quantiles(data, n=100, method="inclusive")[q - 1] / 1e3

    def bound(self) -> Bound:
        """The target: p99 from the revoke call (spinning: from its return) to the
        rejection, in milliseconds."""
        detail = (
            f"{self.trials} trials, p50 {self.percentile(50) / 1e3:.3f} ms,"
            f" max {max(self.from_call_ns) / 1e6:.3f} ms"
        )
        if self.spinning:  # issue 14 times it from the acknowledged revoke (its return)
            returned = self.from_return_ns
            detail = (
                f"{self.trials} trials, p50 {self.percentile(50, returned) / 1e3:.3f} ms,"
                f" max {max(returned) / 1e6:.3f} ms"
            )
            name = (
                "revocation propagation p99 <= 1 ms from revoke() returning"
                " (validator spinning 0-300 ms, issue 14)"
            )
            p99 = self.percentile(99, returned) / 1e3
            return Bound(name, p99, SPINNING_LIMIT_MS, "ms", detail)
        name = "revocation propagation p99 <= 2 ms (cross-process, near cache on)"
        return Bound(name, self.percentile(99) / 1e3, LIMIT_MS, "ms", detail)

    def to_json(self) -> dict[str, object]:
        """Every trial plus the summary figures (µs)."""
        return {
            "trials": self.trials,
            "clock": "time.monotonic_ns (CLOCK_MONOTONIC, shared by all processes)",
            "cold_trials": self.cold_trials,
            "validator_spins_before_revoke_ms": [x * 1e3 for x in self.wait()],
            "from_revoke_call_us": {
                "p50": round(self.percentile(50), 1),
                "p90": round(self.percentile(90), 1),
                "p99": round(self.percentile(99), 1),
                "max": round(max(self.from_call_ns) / 1e3, 1),
                "mean": round(statistics.fmean(self.from_call_ns) / 1e3, 1),
            },
            "from_revoke_return_us": {
                "p50": round(self.percentile(50, self.from_return_ns), 1),
                "p99": round(self.percentile(99, self.from_return_ns), 1),
                "max": round(max(self.from_return_ns) / 1e3, 1),
            },
            "revoke_call_us_p50": round(self.percentile(50, self.revoke_ns), 1),
            "floor_publish_to_spinning_subscriber_us": {
                "p50": round(self.percentile(50, self.floor_ns), 1),
                "p99": round(self.percentile(99, self.floor_ns), 1),
                "max": round(max(self.floor_ns) / 1e3, 1),
            }
            if self.floor_ns
            else None,
            "floor_trials_ns": self.floor_ns,
            "validations_before_rejection_p50": statistics.median(self.loops),
            "refusing_validate_call_us": {
                "p50": round(self.percentile(50, self.refusing_call_ns), 1),
                "p99": round(self.percentile(99, self.refusing_call_ns), 1),
            },
            "trials_ns": [
                {"from_call": a, "from_return": b, "revoke": c, "loops": d, "refusing_call": e}
                for a, b, c, d, e in zip(
                    self.from_call_ns,
                    self.from_return_ns,
                    self.revoke_ns,
                    self.loops,
                    self.refusing_call_ns,
                    strict=True,
                )
            ],
        }

    def wait(self) -> tuple[float, float]:
        """The range (s) of the validator's spin before the revoke."""
        return _WAIT_SPINNING if self.spinning else _WAIT_SHORT


def _warm(store: SessionStore, token: str) -> bool:
    """Validate until two calls in a row give the same object (a near-cache hit)."""
    previous = store.validate(token)
    for _ in range(_WARM_TRIES):
        current = store.validate(token)
        if current is previous:
            return True
        previous = current
        time.sleep(0.0002)
    return False


def _spin(store: SessionStore, token: str) -> tuple[str, int, int, int]:
    """Validate in a tight loop until refused.

    Returns (outcome, monotonic ns of the refusal, validations, ns the refusing call took).
    """
    validate, now, loops = store.validate, time.monotonic_ns, 0
    deadline = now() + _SPIN_NS
    began = 0
    try:
        while True:
            for _ in range(64):
                began = now()
                validate(token)
                loops += 1
            if now() > deadline:
                return "timeout", now(), loops, 0
    except SessionRevoked:
        refused = now()
        return "rejected", refused, loops, refused - began
    except InvalidToken as err:
        return type(err).__name__, now(), loops, 0


def _subscriber(url: str, channel: str) -> socket.socket:
    """A raw RESP2 connection SUBSCRIBEd to ``channel`` (the floor's receiving end)."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(channel), channel.encode()))
    reader = hiredis.Reader()
    while (reply := reader.gets()) is False:
        reader.feed(sock.recv(4096))
    if not isinstance(reply, list) or reply[0] != b"subscribe":
        raise BenchError(f"SUBSCRIBE failed: {reply!r}")
    return sock


def _spin_raw(sock: socket.socket) -> tuple[str, int, int]:
    """Poll the subscriber socket in a tight loop until a message arrives."""
    loops, deadline = 0, time.monotonic_ns() + _SPIN_NS
    while not select.select([sock], [], [], 0)[0]:
        loops += 1
        if not loops % 64 and time.monotonic_ns() > deadline:
            return "timeout", time.monotonic_ns(), loops
    arrived = time.monotonic_ns()
    sock.recv(65536)  # one small message; its content does not matter
    return "received", arrived, loops


def validator(conn: Connection, url: str, namespace: str, jwks: dict[str, Any]) -> None:
    """The other process: per token, warm + ready + spin until refused; per None, the floor."""
    store = SessionStore.from_url(
        url, keyring=Keyring.from_jwks(jwks), config=Config(namespace=namespace)
    )
    sock = _subscriber(url, floor_channel(namespace))
    try:
        while (job := conn.recv()) != "stop":
            if job is None:
                conn.send(("ready", True))
                conn.send(_spin_raw(sock))
                continue
            conn.send(("ready", _warm(store, job)))
            conn.send(_spin(store, job))
    finally:
        sock.close()
        store.close()
        conn.close()


def floor_channel(namespace: str) -> str:
    """The channel of the floor trials."""
    return f"{namespace}:{{!floor}}"


def _recv(conn: Connection) -> Any:
    if not conn.poll(_REPLY_SECONDS):
        raise BenchError("the validator process did not answer")
    return conn.recv()


def _floor_trial(ctx: Context, parent: Connection, rng: random.Random) -> int:
    """One PUBLISH to the spinning raw subscriber; ns from before PUBLISH to arrival."""
    parent.send(None)
    if _recv(parent)[0] != "ready":
        raise BenchError("the validator did not get ready for a floor trial")
    time.sleep(rng.uniform(0.0002, 0.001))
    start = time.monotonic_ns()
    ctx.admin.publish(floor_channel(ctx.namespace), "x")
    outcome, arrived, _ = _recv(parent)
    if outcome != "received":
        raise BenchError(f"the floor trial ended with {outcome}")
    return int(arrived - start)


def measure(ctx: Context, trials: int = 200, *, spinning: bool = False) -> PropagationResult:
    """Run ``trials`` revoke/reject trials against a validator in another process
    (``spinning``: the validator spins 0-300 ms before the revoke; no floor trials)."""
    spawn = multiprocessing.get_context("spawn")
    parent, child = spawn.Pipe()
    jwks = ctx.keyring.to_private_jwks()
    process = spawn.Process(
        target=validator,
        args=(child, ctx.server.url, ctx.namespace, jwks),
        name="bench-validator",
        daemon=True,
    )
    process.start()
    result = PropagationResult(trials=trials, spinning=spinning)
    low, high = result.wait()
    rng = random.Random(4)
    try:
        user_id = ctx.new_user("propagation")
        for _ in range(trials):
            pair = ctx.store.login(user_id, device=device(0), data=DATA)
            parent.send(pair.access_token)
            kind, warm = _recv(parent)
            if kind != "ready":
                raise BenchError(f"validator said {kind!r}")
            result.cold_trials += not warm
            time.sleep(rng.uniform(low, high))
            start = time.monotonic_ns()
            if not ctx.store.revoke(user_id, pair.session_id):
                raise BenchError("revoke found the session gone")
            returned = time.monotonic_ns()
            outcome, rejected, loops, refusing = _recv(parent)
            if outcome != "rejected":
                raise BenchError(f"the validator's tight loop ended with {outcome}")
            result.from_call_ns.append(rejected - start)
            result.from_return_ns.append(rejected - returned)
            result.revoke_ns.append(returned - start)
            result.loops.append(loops)
            result.refusing_call_ns.append(refusing)
            if not spinning:
                result.floor_ns.append(_floor_trial(ctx, parent, rng))
        parent.send("stop")
        process.join(timeout=10)
    finally:
        if process.is_alive():
            process.terminate()  # our own child, by its handle
            process.join(timeout=5)
        parent.close()
    return result
