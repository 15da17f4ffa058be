"""Prometheus adapter (extra ``[prometheus]``): event counters and operation latencies.

::

    metrics = PrometheusMetrics()                  # registers on prometheus_client.REGISTRY
    store = metrics.instrument(SessionStore.from_url(url, keyring=ring, on_event=metrics))

Series: ``sessionstore_events_total{event, reason}``,
``sessionstore_operation_seconds{operation, outcome}`` (a histogram) and
``sessionstore_degraded`` (1 while Redis is unreachable to validation: it answers from
tokens alone, or refuses every token under ``fallback="deny"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from sessionstore import events
from sessionstore.metrics import LATENCY_BUCKETS, event_labels, instrument

__all__ = ["PrometheusMetrics"]

S = TypeVar("S")


class PrometheusMetrics:
    """An ``on_event`` hook and latency recorder writing Prometheus metrics.

    One instance per registry: a second one on the same registry would register the same
    metric names twice (prometheus_client refuses that).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        prefix: str = "sessionstore",
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        registry = REGISTRY if registry is None else registry
        self.events = Counter(
            f"{prefix}_events", "Session events by kind and reason", ["event", "reason"],
            registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            f"{prefix}_operation_seconds", "Store operation latency (seconds)",
            ["operation", "outcome"], buckets=tuple(buckets), registry=registry,
        )  # fmt: skip
        self.degraded = Gauge(
            f"{prefix}_degraded",
            "1 while Redis is unreachable to validation (answering from tokens, or refusing "
            "every token under fallback='deny')",
            registry=registry,
        )  # fmt: skip

    def __call__(self, event: events.Event) -> None:
        """The event hook: count ``event``; track degraded mode."""
        kind, reason = event_labels(event)
        self.events.labels(event=kind, reason=reason).inc()
        if isinstance(event, events.DegradedEntered):
            self.degraded.set(1)
        elif isinstance(event, events.DegradedLeft):
            self.degraded.set(0)

    def observe(self, operation: str, seconds: float, outcome: str) -> None:
        """Record one store call's latency."""
        self.latency.labels(operation=operation, outcome=outcome).observe(seconds)

    def instrument(self, store: S) -> S:
        """Time every operation of ``store`` (sync or async) into the histogram."""
        return instrument(store, self.observe)
