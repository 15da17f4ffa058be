"""The longest single script at the largest allowed cap, as the server measures it (SLOWLOG).

One user holds ``MAX_SESSIONS_PER_USER`` sessions (pipelined through ``bulk``, untimed);
then each operation that walks a user's sessions runs on it: a login at the cap (evicts the
least recently active), ``sessions()``, ``devices()``, ``revoke_device`` and ``revoke_user``
(the user refilled before each). SLOWLOG logs every command slower than 100 µs meanwhile
(not 0: Valkey also logs the commands a script runs, and logging each one would slow the
very scripts measured; the previous settings are put back): the figure is the longest
EVALSHA/EVAL an operation caused, over every repeat. INFO commandstats counts the script
runs of each call. While one script runs, Redis
serves nobody else, so this is how long one such call can stall every other client.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from benchmarks import bulk
from benchmarks.context import DEVICES, Context, device
from benchmarks.harness import Bound, progress
from benchmarks.server import BenchError
from sessionstore.models import MAX_SESSIONS_PER_USER

__all__ = ["CapResult", "measure"]

LIMIT_MS = 5.0
"""The target: no script blocks the server longer than a few milliseconds."""
_SCRIPT_COMMANDS = (b"EVALSHA", b"EVAL")
_THRESHOLD_US = 100


def _script_calls(client: redis.Redis) -> int:
    """Script runs so far (INFO commandstats: evalsha and eval)."""
    stats = client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval")
    )


@dataclass
class CapResult:
    """Per operation: the longest script (µs) and how many script runs it took, per repeat."""

    cap: int
    repeats: int
    worst_us: dict[str, int] = field(default_factory=dict)
    runs: dict[str, list[int]] = field(default_factory=dict)
    durations: dict[str, list[int]] = field(default_factory=dict)

    def median_us(self, name: str) -> float:
        """The median script run over 100 µs of an operation (the worst one is the figure
        that matters; this one shows whether it was the rule or one run the load stretched)."""
        return statistics.median(self.durations[name])

    def bound(self) -> Bound:
        """The target: the longest script of any operation, under ``LIMIT_MS``."""
        name, us = max(self.worst_us.items(), key=lambda item: item[1])
        return Bound(
            f"issue 15.6: longest script <= {LIMIT_MS:g} ms at the largest cap ({self.cap:,})",
            us / 1000,
            LIMIT_MS,
            "ms",
            f"{name}; SLOWLOG, {self.repeats} repeats of each operation",
        )

    def to_json(self) -> dict[str, object]:
        """Every figure."""
        return {
            "cap": self.cap,
            "repeats": self.repeats,
            "worst_script_us": dict(self.worst_us),
            "script_runs_per_call": {name: list(runs) for name, runs in self.runs.items()},
            "median_script_us": {name: self.median_us(name) for name in self.durations},
        }


@contextmanager
def _slowlog_everything(client: redis.Redis) -> Iterator[None]:
    """Log every command in SLOWLOG for the duration; the server's settings put back."""
    before = client.config_get("slowlog-*")
    try:
        client.config_set("slowlog-log-slower-than", _THRESHOLD_US)
        client.config_set("slowlog-max-len", 10_000)
    except redis.ResponseError as err:
        raise BenchError(f"the cap group needs CONFIG SET (slowlog): {err}") from err
    try:
        yield
    finally:
        for name in ("slowlog-log-slower-than", "slowlog-max-len"):
            value = before.get(name)
            if value is not None:
                client.config_set(name, value)


def _scripts(client: redis.Redis) -> list[int]:
    """Durations (µs) of the script runs SLOWLOG holds."""
    return [
        entry["duration"]
        for entry in client.slowlog_get(10_000)
        if entry["command"].split(b" ", 1)[0].upper() in _SCRIPT_COMMANDS
    ]


def measure(ctx: Context, repeats: int = 3) -> CapResult:
    """Run each operation ``repeats`` times on a user at the largest allowed cap."""
    cap = MAX_SESSIONS_PER_USER
    store = ctx.open_store(max_sessions_per_user=cap)
    result = CapResult(cap, repeats)
    admin = ctx.admin

    def full_user() -> str:
        user_id = ctx.new_user("cap")
        owners = [(user_id, k % DEVICES) for k in range(cap)]
        if bulk.create_many(store, owners) != cap:
            raise BenchError("cap setup created too few sessions")
        return user_id

    def expect(name: str, got: Any, wanted: Any) -> None:
        if got != wanted:
            raise BenchError(f"cap group: {name} gave {got!r}, expected {wanted!r}")

    operations: list[tuple[str, Callable[[str], None]]] = [
        (
            "login at the cap",
            lambda u: expect("login", bool(store.login(u, device=device(0))), True),
        ),
        ("sessions()", lambda u: expect("sessions()", len(store.sessions(u)), cap)),
        ("devices()", lambda u: expect("devices()", len(store.devices(u)), DEVICES)),
        (
            "revoke_device",
            lambda u: expect("revoke_device", store.revoke_device(u, device(1).id), cap // DEVICES),
        ),
        ("revoke_user", lambda u: expect("revoke_user", store.revoke_user(u), cap)),
    ]
    progress(f"cap: {len(operations)} operations x {repeats} on users of {cap:,} sessions")
    with _slowlog_everything(admin):
        for _ in range(repeats):
            for name, operation in operations:
                user_id = full_user()
                admin.slowlog_reset()
                before = _script_calls(admin)
                operation(user_id)
                runs = _scripts(admin)
                result.worst_us[name] = max(result.worst_us.get(name, 0), *runs, 0)
                result.runs.setdefault(name, []).append(_script_calls(admin) - before)
                result.durations.setdefault(name, []).extend(runs or [0])
                store.revoke_user(user_id)
    return result
