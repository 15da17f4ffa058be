"""Metrics adapters: Prometheus (extra ``[prometheus]``) and OpenTelemetry (extra ``[otel]``).

Each adapter is an event hook (pass it as ``on_event``: it counts every event by kind and
reason and tracks degraded mode) and times store operations into a latency histogram once
``instrument(store)`` has wrapped the store's methods. Labels stay low-cardinality: event
kind and reason, operation name and outcome (``ok`` or the error class name), never ids.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, TypeVar

from sessionstore import events

__all__ = ["LATENCY_BUCKETS", "OPERATIONS", "Observe", "event_labels", "instrument"]

S = TypeVar("S")
Observe = Callable[[str, float, str], None]
"""``observe(operation, seconds, outcome)``: one timed store call."""

OPERATIONS = (
    "create",
    "devices",
    "get",
    "iter_sessions",
    "iter_users",
    "login",
    "logout",
    "refresh",
    "revoke",
    "revoke_device",
    "revoke_user",
    "sessions",
    "step_up",
    "touch",
    "update",
    "validate",
)
"""The store methods ``instrument`` times (a walk, ``iter_*``, from its first step to its end)."""

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Histogram bounds in seconds: one Redis round trip on a LAN is well under a millisecond."""

_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def event_labels(event: events.Event) -> tuple[str, str]:
    """(kind, reason) of an event, e.g. ``("revoked", "logout")``, ``("validation_failed",
    "TokenExpired")``, ``("refreshed", "grace")``, ``("degraded_entered", "deny")`` under
    ``fallback="deny"``; reason is ``""`` where there is none."""
    kind = _SNAKE.sub("_", type(event).__name__).lower()
    if isinstance(event, events.Revoked):
        return kind, event.reason
    if isinstance(event, events.ValidationFailed):
        return kind, event.reason
    if isinstance(event, events.Refreshed):
        return kind, "grace" if event.grace else "rotate"
    if isinstance(event, events.DegradedEntered):
        return kind, "deny" if event.fallback == "deny" else ""
    if isinstance(event, events.DeviceMismatch):
        return kind, f"{event.field}_{'enforced' if event.enforced else 'reported'}"
    return kind, ""


def instrument(store: S, observe: Observe, operations: Iterable[str] = OPERATIONS) -> S:
    """Wrap ``store``'s methods (sync or async) so each call reports its latency; returns it."""
    for name in operations:
        method = getattr(store, name)
        setattr(store, name, _timed(name, method, observe))
    return store


class _Timing:
    """Times one call, or one walk of a generator, and reports it with its outcome: ``ok``,
    or the class name of the ``Exception`` that ended it (an interruption such as a
    consumer letting go of a walk or a cancellation counts as ``ok``)."""

    __slots__ = ("_name", "_observe", "_started")

    def __init__(self, name: str, observe: Observe) -> None:
        self._name = name
        self._observe = observe
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        failed = kind is not None and issubclass(kind, Exception)
        outcome = kind.__name__ if failed and kind is not None else "ok"
        self._observe(self._name, time.perf_counter() - self._started, outcome)


def _timed_walk(name: str, method: Callable[..., Any], observe: Observe) -> Callable[..., Any]:
    """A generator (sync or async) timed as one operation: from the first step to the last
    (or to the consumer letting go, which counts as ``ok``)."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def walk_async(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            with _Timing(name, observe):
                async for item in method(*args, **kwargs):
                    yield item

        return walk_async

    @functools.wraps(method)
    def walk(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with _Timing(name, observe):
            yield from method(*args, **kwargs)

    return walk


def _timed(name: str, method: Callable[..., Any], observe: Observe) -> Callable[..., Any]:
    if inspect.isgeneratorfunction(method) or inspect.isasyncgenfunction(method):
        return _timed_walk(name, method, observe)
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            with _Timing(name, observe):
                return await method(*args, **kwargs)

        return timed_async

    @functools.wraps(method)
    def timed(*args: Any, **kwargs: Any) -> Any:
        with _Timing(name, observe):
            return method(*args, **kwargs)

    return timed
