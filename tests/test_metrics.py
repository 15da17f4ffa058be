"""Metrics adapters: Prometheus and OpenTelemetry hooks, fed by a real store."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator
from typing import Any, cast

import pytest
import redis
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry

from sessionstore import (
    AsyncSessionStore,
    Config,
    Device,
    Keyring,
    RefreshReuseDetected,
    SessionRevoked,
    SessionStore,
    StoreUnavailable,
    events,
)
from sessionstore.metrics import event_labels
from sessionstore.metrics.otel import OtelMetrics
from sessionstore.metrics.prometheus import PrometheusMetrics
from sessionstore.testing import LocalServer
from web_support import server_fixtures

PHONE = Device(id="phone-1", name="Pixel")

server, url = server_fixtures("metrics")


def test_event_labels_are_low_cardinality() -> None:
    assert event_labels(events.Created(user_id="u", session_id="s", device_id="d")) == (
        "created",
        "",
    )
    revoked = events.Revoked(user_id="u", session_ids=("s",), reason="device")
    assert event_labels(revoked) == ("revoked", "device")
    failed = events.ValidationFailed(reason="TokenExpired", user_id="u")
    assert event_labels(failed) == ("validation_failed", "TokenExpired")
    refreshed = events.Refreshed(user_id="u", session_id="s", generation=2, grace=True)
    assert event_labels(refreshed) == ("refreshed", "grace")
    assert event_labels(events.ReuseDetected(user_id="u", session_id="s")) == (
        "reuse_detected",
        "",
    )
    assert event_labels(events.DegradedEntered()) == ("degraded_entered", "")
    assert event_labels(events.DegradedEntered(fallback="deny")) == ("degraded_entered", "deny")


def test_prometheus_counts_events_and_times_operations(url: str) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    keyring = Keyring.generate("HS256")
    store = metrics.instrument(SessionStore.from_url(url, keyring=keyring, on_event=metrics))
    with store:
        pair = store.login("alice", device=PHONE)
        for _ in range(3):
            store.validate(pair.access_token)
        newer = store.refresh(pair.refresh_token)
        store.refresh(newer.refresh_token)
        with pytest.raises(RefreshReuseDetected):
            store.refresh(pair.refresh_token)
        with pytest.raises(SessionRevoked):
            store.validate(pair.access_token)

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("sessionstore_events_total", event="created", reason="") == 1
    assert sample("sessionstore_events_total", event="refreshed", reason="rotate") == 2
    assert sample("sessionstore_events_total", event="reuse_detected", reason="") == 1
    assert sample("sessionstore_events_total", event="revoked", reason="reuse") == 1
    failed = sample("sessionstore_events_total", event="validation_failed", reason="SessionRevoked")
    assert failed == 1
    ok = sample("sessionstore_operation_seconds_count", operation="validate", outcome="ok")
    assert ok == 3
    refused = {"operation": "validate", "outcome": "SessionRevoked"}
    assert sample("sessionstore_operation_seconds_count", **refused) == 1
    assert sample("sessionstore_operation_seconds_count", operation="login", outcome="ok") == 1
    total = sample("sessionstore_operation_seconds_sum", operation="validate", outcome="ok")
    assert total is not None and total > 0
    assert sample("sessionstore_degraded") == 0


def test_prometheus_tracks_degraded_mode(fault_server: LocalServer) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    config = Config(breaker_failures=1, breaker_reset=0.05)
    keyring = Keyring.generate("HS256")
    with SessionStore.from_url(
        fault_server.url, keyring=keyring, config=config, on_event=metrics
    ) as store:
        pair = store.login("alice", device=PHONE)
        fault_server.kill()
        assert store.validate(pair.access_token).degraded
        assert registry.get_sample_value("sessionstore_degraded") == 1
        fault_server.restart()  # back, and empty
        deadline = time.monotonic() + 5
        while registry.get_sample_value("sessionstore_degraded") == 1:
            assert time.monotonic() < deadline, "degraded mode never ended"
            time.sleep(0.06)  # let the breaker's next probe through
            # The restart lost the session: Redis answered, so the outage is over.
            with contextlib.suppress(SessionRevoked):
                store.validate(pair.access_token)
    left = registry.get_sample_value(
        "sessionstore_events_total", {"event": "degraded_left", "reason": ""}
    )
    assert left == 1


async def test_otel_counts_events_and_times_async_operations(url: str) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = OtelMetrics(provider.get_meter("test"))
    keyring = Keyring.generate("ES256")
    store = metrics.instrument(AsyncSessionStore.from_url(url, keyring=keyring, on_event=metrics))
    async with store:
        pair = await store.login("bob", device=PHONE)
        await store.validate(pair.access_token)
        await store.revoke_user("bob")
        with pytest.raises(SessionRevoked):
            await store.validate(pair.access_token)

    points: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = list(metric.data.data_points)
    counts = {
        (p.attributes["event"], p.attributes["reason"]): p.value
        for p in points["sessionstore.events"]
    }
    assert counts[("created", "")] == 1
    assert counts[("revoked", "user")] == 1
    assert counts[("validation_failed", "SessionRevoked")] == 1
    durations = {
        (p.attributes["operation"], p.attributes["outcome"]): p.count
        for p in points["sessionstore.operation.duration"]
    }
    assert durations[("validate", "ok")] == 1
    assert durations[("validate", "SessionRevoked")] == 1
    assert durations[("login", "ok")] == 1 and durations[("revoke_user", "ok")] == 1
    provider.shutdown()


def test_instrument_times_the_admin_walks(url: str) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    store = metrics.instrument(SessionStore.from_url(url, keyring=Keyring.generate("HS256")))
    with store:
        for user in ("alice", "bob"):
            store.login(user, device=PHONE)
        assert sorted(store.iter_users()) == ["alice", "bob"]
        assert len(list(store.iter_sessions())) == 2
        walk = cast("Generator[str, None, None]", store.iter_users())
        next(walk)
        walk.close()  # a consumer that stops early: still one observation

    def count(operation: str) -> float | None:
        labels = {"operation": operation, "outcome": "ok"}
        return registry.get_sample_value("sessionstore_operation_seconds_count", labels)

    assert count("iter_sessions") == 1
    assert count("iter_users") == 3  # twice directly, once inside iter_sessions


async def test_otel_times_the_async_admin_walks(url: str) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = OtelMetrics(provider.get_meter("test"))
    store = metrics.instrument(AsyncSessionStore.from_url(url, keyring=Keyring.generate("HS256")))
    async with store:
        await store.login("carol", device=PHONE)
        assert [u async for u in store.iter_users()] == ["carol"]
        assert len([s async for s in store.iter_sessions()]) == 1
    data = reader.get_metrics_data()
    assert data is not None
    found: list[Any] = [
        p
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "sessionstore.operation.duration"
        for p in metric.data.data_points
    ]
    durations = {(p.attributes["operation"], p.attributes["outcome"]): p.count for p in found}
    assert durations[("iter_sessions", "ok")] == 1
    assert durations[("iter_users", "ok")] == 2
    provider.shutdown()


def test_fallback_deny_is_reported_as_refusing(fault_server: LocalServer) -> None:
    """Under fallback='deny' the event and the gauge say validation refuses, not that it
    answers from tokens; every refusal keeps the driver's error as its cause."""
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    seen: list[events.Event] = []
    config = Config(fallback="deny", breaker_failures=1, breaker_reset=60)
    keyring = Keyring.generate("HS256")
    hook = events.fanout(seen.append, metrics)
    with SessionStore.from_url(
        fault_server.url, keyring=keyring, config=config, on_event=hook
    ) as s:
        pair = s.login("alice", device=PHONE)
        fault_server.kill()
        for _ in range(3):  # the first asks Redis; then the breaker is open
            with pytest.raises(StoreUnavailable) as refused:
                s.validate(pair.access_token)
            assert isinstance(refused.value.__cause__, redis.ConnectionError)
    (entered,) = [e for e in seen if isinstance(e, events.DegradedEntered)]
    assert entered.fallback == "deny"
    assert "deny" in (events.DegradedEntered.__doc__ or "")
    labels = {"event": "degraded_entered", "reason": "deny"}
    assert registry.get_sample_value("sessionstore_events_total", labels) == 1
    assert registry.get_sample_value("sessionstore_degraded") == 1
    (gauge,) = [m for m in registry.collect() if m.name == "sessionstore_degraded"]
    assert "deny" in gauge.documentation and "answers from tokens alone" not in gauge.documentation
