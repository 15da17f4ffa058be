"""OpenTelemetry adapter (extra ``[otel]``): event counters and operation latencies.

::

    metrics = OtelMetrics()                        # the global MeterProvider's meter
    store = metrics.instrument(SessionStore.from_url(url, keyring=ring, on_event=metrics))

Instruments: ``sessionstore.events`` (counter; attributes ``event``, ``reason``),
``sessionstore.operation.duration`` (histogram, seconds; ``operation``, ``outcome``) and
``sessionstore.degraded`` (up-down counter: 1 while Redis is unreachable to validation: it
answers from tokens alone, or refuses every token under ``fallback="deny"``).
"""

from __future__ import annotations

from typing import TypeVar

from opentelemetry import metrics as otel_metrics

from sessionstore import events
from sessionstore.metrics import LATENCY_BUCKETS, event_labels, instrument

__all__ = ["OtelMetrics"]

S = TypeVar("S")


class OtelMetrics:
    """An ``on_event`` hook and latency recorder writing OpenTelemetry metrics."""

    def __init__(
        self, meter: otel_metrics.Meter | None = None, *, prefix: str = "sessionstore"
    ) -> None:
        if meter is None:
            from sessionstore import __version__

            meter = otel_metrics.get_meter("sessionstore", __version__)
        self.events = meter.create_counter(
            f"{prefix}.events", unit="{event}", description="Session events by kind and reason"
        )
        self.latency = meter.create_histogram(
            f"{prefix}.operation.duration",
            unit="s",
            description="Store operation latency",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.degraded = meter.create_up_down_counter(
            f"{prefix}.degraded",
            description="1 while Redis is unreachable to validation (answering from tokens, "
            "or refusing every token under fallback='deny')",
        )

    def __call__(self, event: events.Event) -> None:
        """The event hook: count ``event``; track degraded mode."""
        kind, reason = event_labels(event)
        self.events.add(1, {"event": kind, "reason": reason})
        if isinstance(event, events.DegradedEntered):
            self.degraded.add(1)
        elif isinstance(event, events.DegradedLeft):
            self.degraded.add(-1)

    def observe(self, operation: str, seconds: float, outcome: str) -> None:
        """Record one store call's latency."""
        self.latency.record(seconds, {"operation": operation, "outcome": outcome})

    def instrument(self, store: S) -> S:
        """Time every operation of ``store`` (sync or async) into the histogram."""
        return instrument(store, self.observe)
