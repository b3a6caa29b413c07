"""OpenTelemetry metrics and span attributes (``headless_client.contrib.otel``), read back
through the SDK's in-memory reader and span exporter.

The services run on a :class:`~headless_client.testing.FakeClock` with static resolvers,
so every figure (picks, ejections, durations, staleness) is exact.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import INVALID_SPAN

import headless_client as hc
from headless_client.contrib.otel import (
    DURATION_BUCKETS,
    ServiceMetrics,
    annotate_span,
    instrument,
    span_attributes,
)
from headless_client.testing import FakeClock, StaticResolver
from tests.test_stats import Cost, listeners, loopback_pods, twin  # noqa: F401 - fixtures
from tests.test_twins import NAME, Twin, wait_until

Points = dict[str, list[Any]]


@pytest.fixture(name="reader")
def _reader() -> Iterator[InMemoryMetricReader]:
    return_reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[return_reader])
    return_reader.provider = provider  # type: ignore[attr-defined]
    try:
        yield return_reader
    finally:
        provider.shutdown()


def provider_of(reader: InMemoryMetricReader) -> MeterProvider:
    return reader.provider  # type: ignore[attr-defined,no-any-return]


def collect(reader: InMemoryMetricReader) -> tuple[Points, dict[str, str]]:
    """Data points by metric name, and each metric's unit."""
    points: Points = {}
    units: dict[str, str] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            assert scope.scope.name == "headless_client"
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
                units[metric.name] = metric.unit or ""
    return points, units


def by_pod(points: list[Any]) -> dict[str, Any]:
    return {p.attributes["k8s.pod.name"]: p.value for p in points}


def test_every_metric_with_its_unit_and_attributes(reader: InMemoryMetricReader, listeners: list[int]) -> None:  # noqa: F811
    """Tracked calls, a failure and the view show up as the documented instruments, each
    with its unit, ``server.address`` the service and per-pod peer attributes."""
    clock = FakeClock()
    table = StaticResolver({"web.prod": loopback_pods(listeners)}, namespace="prod")
    # No refresh falls due within the test's 1.53 s of fake time: staleness is exact.
    with hc.HeadlessService("web.prod", "http", resolver=table, clock=clock, strategy=hc.RoundRobin(),
                            min_refresh=10, max_refresh=20) as svc:
        metrics = instrument(svc, meter_provider=provider_of(reader))
        for _ in range(3):
            with svc.connection():
                clock.advance(0.01)
        with svc.connection(ordinal=0):
            pass
        svc.report_failure(2)
        clock.advance(1.5)
        points, units = collect(reader)
        metrics.close()
    # start()'s own resolution is timed too; whether its sample was taken before the
    # instruments existed depends on when a listener fired, so it is not counted here.
    units.pop("dns.lookup.duration", None)
    assert units == {
        "headless_client.endpoints": "{endpoint}", "headless_client.panic": "1",
        "headless_client.picks": "{pick}", "headless_client.calls.active": "{call}",
        "headless_client.failures": "{failure}", "headless_client.ejections": "{ejection}",
        "headless_client.latency": "s", "headless_client.refreshes": "{refresh}",
        "headless_client.refresh.failures": "{refresh}", "headless_client.staleness": "s",
        "headless_client.dns.questions": "{question}",
    }
    states = {p.attributes["headless_client.endpoint.state"]: p.value for p in points["headless_client.endpoints"]}
    assert states == {"usable": 2, "unusable": 1}
    assert all(p.attributes["server.address"] == NAME for name in points for p in points[name])
    assert by_pod(points["headless_client.picks"]) == {"web-0": 2, "web-1": 1, "web-2": 1}
    assert by_pod(points["headless_client.calls.active"]) == {"web-0": 0, "web-1": 0, "web-2": 0}
    assert by_pod(points["headless_client.failures"]) == {"web-0": 0, "web-1": 0, "web-2": 1}
    assert by_pod(points["headless_client.ejections"]) == {"web-0": 0, "web-1": 0, "web-2": 1}
    latency = by_pod(points["headless_client.latency"])
    assert latency == {"web-0": pytest.approx(0.007), "web-1": pytest.approx(0.01), "web-2": pytest.approx(0.01)}
    pick = next(p for p in points["headless_client.picks"] if p.attributes["k8s.pod.name"] == "web-1")
    assert pick.attributes["network.peer.address"] == "127.0.0.1"
    assert pick.attributes["network.peer.port"] == listeners[1]
    assert [p.value for p in points["headless_client.panic"]] == [0]
    assert [p.value for p in points["headless_client.staleness"]] == [pytest.approx(1.5 + 0.03)]
    assert [p.value for p in points["headless_client.refreshes"]] == [1]
    assert [p.value for p in points["headless_client.refresh.failures"]] == [0]
    assert [p.value for p in points["headless_client.dns.questions"]] == [0]


def test_refresh_durations_are_recorded_once_each(reader: InMemoryMetricReader, twin: Twin) -> None:  # noqa: F811
    """Each resolution the refresher runs is one ``dns.lookup.duration`` sample of its fake
    duration; a failed one carries ``error.type``; other news (an ejection) records nothing."""
    twin.make()
    twin.start()
    instrument(twin.svc, meter_provider=provider_of(reader))
    cost: Cost = twin.table.cost
    cost.clock, cost.seconds = twin.clock, 0.25
    twin.refresh()
    twin.svc.report_failure(0)
    cost.seconds = 0.5
    twin.table.set_error("SERVFAIL from the test")
    with pytest.raises(hc.ResolutionError):
        twin.refresh()

    def recorded() -> int:
        return sum(p.count for p in collect(reader)[0].get("dns.lookup.duration", []))

    # The sample is recorded right after refresh() is released (by the listener that
    # runs after the waiters'): wait for it.
    wait_until(lambda: recorded() >= 2, "two samples")
    twin.settle()
    points, units = collect(reader)
    assert units["dns.lookup.duration"] == "s"
    samples = {p.attributes.get("error.type"): p for p in points["dns.lookup.duration"]}
    assert set(samples) == {None, "ResolutionError"}
    ok, failed = samples[None], samples["ResolutionError"]
    assert (ok.count, ok.sum) == (1, pytest.approx(0.25))
    assert (failed.count, failed.sum) == (1, pytest.approx(0.5))
    assert ok.attributes["dns.question.name"] == NAME
    assert tuple(ok.explicit_bounds) == DURATION_BUCKETS


def test_one_metrics_object_per_provider_reports_many_services(reader: InMemoryMetricReader) -> None:
    """instrument() twice on one provider adds to the same object; each service's series
    carry its own name; remove() and close() stop the reports."""
    table = StaticResolver({"web.prod": loopback_pods([8080, 8081]), "db.prod": loopback_pods([5432])},
                           namespace="prod")
    with hc.HeadlessService("web.prod", "http", resolver=table) as web, \
            hc.HeadlessService("db.prod", "http", resolver=table) as db:
        first = instrument(web, meter_provider=provider_of(reader))
        second = instrument(db, web, meter_provider=provider_of(reader))
        assert first is second and len(first.services) == 2
        points, _ = collect(reader)
        usable = {p.attributes["server.address"]: p.value for p in points["headless_client.endpoints"]
                  if p.attributes["headless_client.endpoint.state"] == "usable"}
        assert usable == {NAME: 2, "db.prod.svc.cluster.local": 1}
        first.remove(web)
        points, _ = collect(reader)
        assert {p.attributes["server.address"] for p in points["headless_client.refreshes"]} == {
            "db.prod.svc.cluster.local"}
        first.close()
        assert first.services == []


def test_a_collected_service_is_no_longer_reported(reader: InMemoryMetricReader) -> None:
    """Services are held weakly: one dropped (closed and collected) disappears."""
    table = StaticResolver({"web.prod": loopback_pods([8080])}, namespace="prod")
    metrics = ServiceMetrics(provider_of(reader))
    svc = hc.HeadlessService("web.prod", "http", resolver=table)
    svc.start()
    metrics.add(svc)
    assert len(metrics.services) == 1
    svc.close()
    del svc
    gc.collect()
    assert metrics.services == []


# -- spans ------------------------------------------------------------------------------------------


@pytest.fixture(name="spans")
def _spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield provider, exporter
    finally:
        provider.shutdown()


def test_annotate_span_sets_the_conventional_attributes(spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    """On the current span: server.address the service, network.peer.* the pod,
    k8s.pod.name for a StatefulSet pod."""
    provider, exporter = spans
    table = StaticResolver({"web.prod": loopback_pods([8080])}, namespace="prod")
    svc = hc.HeadlessService("web.prod", "http", resolver=table)
    endpoint = loopback_pods([8080])[0]
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("GET /"):
        annotate_span(svc, endpoint)
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {}) == {
        "server.address": NAME, "network.peer.address": "127.0.0.1", "network.peer.port": 8080,
        "k8s.pod.name": "web-0",
    }


def test_span_attributes_of_odd_inputs() -> None:
    """A service given by name works; a pod without an ordinal gets no pod name; no
    endpoint gives the service alone; something without a name gives nothing for it."""
    dashed = hc.Endpoint("10.0.0.7", 80, hostname=f"10-0-0-7.{NAME}")
    assert span_attributes(NAME, dashed) == {
        "server.address": NAME, "network.peer.address": "10.0.0.7", "network.peer.port": 80}
    assert span_attributes(NAME, None) == {"server.address": NAME}
    assert span_attributes(object(), hc.Endpoint("10.0.0.8", 0)) == {"network.peer.address": "10.0.0.8"}


def test_annotate_span_ignores_a_span_that_is_not_recording() -> None:
    """The invalid span (no tracing set up) is left alone, without an error."""
    annotate_span(NAME, loopback_pods([8080])[0], span=INVALID_SPAN)
    annotate_span(NAME, loopback_pods([8080])[0])  # no current span: the invalid one


def test_without_opentelemetry_spans_are_a_no_op_and_metrics_say_what_to_install() -> None:
    """With opentelemetry hidden, the module imports, annotate_span does nothing and
    instrument() raises ImportError naming the extra."""
    script = textwrap.dedent(
        """
        import sys
        class Hide:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ImportError("hidden by the test")
        sys.meta_path.insert(0, Hide())
        from headless_client import Endpoint
        from headless_client.contrib.otel import annotate_span, instrument
        annotate_span("web.prod.svc.cluster.local", Endpoint("10.0.0.1", 80))
        try:
            instrument()
        except ImportError as exc:
            print("ImportError:", exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert "ImportError: headless_client.contrib.otel needs opentelemetry-api" in result.stdout
    assert "headless-client[otel]" in result.stdout


def test_integration_calls_set_the_span_attributes(spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    """A call through an integration (the httpx transport, on the client registry) sets
    the conventional attributes on the current span: the service and the pod it went to."""
    import httpx

    from headless_client.contrib.httpx import HeadlessTransport

    provider, exporter = spans
    table = StaticResolver({"web.prod": loopback_pods([8080])}, namespace="prod")
    tracer = provider.get_tracer("test")
    with hc.HeadlessService("web.prod", "http", resolver=table) as svc:
        transport = HeadlessTransport(svc, transport=httpx.MockTransport(lambda request: httpx.Response(200)))
        with httpx.Client(transport=transport) as client, tracer.start_as_current_span("GET /"):
            assert client.get("http://web.prod/").status_code == 200
    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert attributes["server.address"] == NAME
    assert attributes["network.peer.address"] == "127.0.0.1"
    assert attributes["k8s.pod.name"] == "web-0"
