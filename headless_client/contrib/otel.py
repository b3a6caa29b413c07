"""OpenTelemetry metrics of live services, and the span attributes of a call to a pod.

``pip install 'headless-client[otel]'`` (``opentelemetry-api`` only; the application
brings the SDK and its exporters), then::

    from headless_client.contrib.otel import instrument

    with HeadlessService("web.prod", port="http") as svc:
        metrics = instrument(svc)          # the global MeterProvider, or meter_provider=
        ...
        metrics.remove(svc)                # or metrics.close(): stop reporting

What is reported (meter ``headless_client``), every series with ``server.address`` (the
service's FQDN); per pod also ``network.peer.address``, ``network.peer.port`` and, for
StatefulSet pods, ``k8s.pod.name``:

- ``headless_client.endpoints`` (observable up-down counter, ``{endpoint}``): the view,
  by ``headless_client.endpoint.state``: ``usable`` or ``unusable`` (ejected,
  terminating); the two add up to the view;
- ``headless_client.panic`` (observable gauge, ``1``): 1 while the panic rule uses every pod;
- ``headless_client.picks`` (observable counter, ``{pick}``): calls routed to a pod through
  tracked calls (``connect``, ``connection``, the integrations);
- ``headless_client.calls.active`` (observable up-down counter, ``{call}``): of those, calls
  in flight;
- ``headless_client.failures`` (observable counter, ``{failure}``): failures reported per pod;
- ``headless_client.ejections`` (observable counter, ``{ejection}``): times passive health
  ejected the pod;
- ``headless_client.latency`` (observable gauge, ``s``): the pod's latency estimate;
- ``dns.lookup.duration`` (histogram, ``s``): each refresh the refresher ran, with
  ``dns.question.name`` and, when it failed, ``error.type`` (``ServiceNotFound`` for
  NXDOMAIN);
- ``headless_client.refreshes`` and ``headless_client.refresh.failures`` (observable
  counters, ``{refresh}``): resolutions, and those that failed (NXDOMAIN is an answer);
- ``headless_client.staleness`` (observable gauge, ``s``): age of the last good answer;
- ``headless_client.dns.questions`` (observable counter, ``{question}``): DNS questions the
  service's lookups sent.

``dns.lookup.duration``, ``dns.question.name``, ``error.type``, ``server.address``,
``network.peer.*`` and ``k8s.pod.name`` are OpenTelemetry semantic conventions; the rest
has no convention and lives under ``headless_client.``. Counters are read from
:meth:`~headless_client.HeadlessService.stats` when the SDK collects (observable
instruments), so picking stays free of metric calls; the histogram is recorded as each
refresh ends.

Spans: :func:`annotate_span` sets ``server.address`` (the service) and
``network.peer.address``/``network.peer.port`` (the pod) on the current span; the HTTP and
gRPC integrations call it for each request. It is a no-op when OpenTelemetry is not
installed or the span is not recording.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from .. import __version__
from ..endpoints import Endpoint
from ..stats import ServiceStats

try:
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised by a test with opentelemetry hidden
    _metrics = None  # type: ignore[assignment]
    _trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Histogram, Meter, MeterProvider, Observation
    from opentelemetry.trace import Span

__all__ = [
    "METER_NAME",
    "ServiceMetrics",
    "annotate_span",
    "instrument",
    "span_attributes",
]

#: The name of the meter (the instrumentation scope).
METER_NAME: Final = "headless_client"

SERVER_ADDRESS: Final = "server.address"
NETWORK_PEER_ADDRESS: Final = "network.peer.address"
NETWORK_PEER_PORT: Final = "network.peer.port"
K8S_POD_NAME: Final = "k8s.pod.name"
DNS_QUESTION_NAME: Final = "dns.question.name"
ERROR_TYPE: Final = "error.type"
ENDPOINT_STATE: Final = "headless_client.endpoint.state"

#: Bucket boundaries (seconds) advised for ``dns.lookup.duration``: those OpenTelemetry
#: recommends for request durations.
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

_MISSING: Final = "headless_client.contrib.otel needs opentelemetry-api: pip install 'headless-client[otel]'"


def _require() -> None:
    if _metrics is None:  # pragma: no cover - exercised by a test with opentelemetry hidden
        raise ImportError(_MISSING)


# -- spans ------------------------------------------------------------------------------------------


def span_attributes(service: object, endpoint: Endpoint | None) -> dict[str, str | int]:
    """The conventional attributes of a call to *endpoint* of *service*: ``server.address``
    (the service's FQDN: a service object's ``name``, or a string), ``network.peer.address``
    and ``network.peer.port`` (the pod), and ``k8s.pod.name`` for a StatefulSet pod."""
    name = service if isinstance(service, str) else getattr(service, "name", None)
    attributes: dict[str, str | int] = {}
    if isinstance(name, str) and name:
        attributes[SERVER_ADDRESS] = name
    if endpoint is not None:
        attributes.update(_pod_attributes(endpoint))
    return attributes


def annotate_span(service: object, endpoint: Endpoint | None, span: Span | None = None) -> None:
    """Set :func:`span_attributes` on *span* (default: the current span).

    A no-op when OpenTelemetry is not installed, or the span is not recording; never
    raises for a missing or odd service name (the attributes it cannot tell are left out).
    """
    if _trace is None:  # pragma: no cover - exercised by a test with opentelemetry hidden
        return
    target = span if span is not None else _trace.get_current_span()
    if not target.is_recording():
        return
    target.set_attributes(span_attributes(service, endpoint))


# -- metrics -----------------------------------------------------------------------------------------


def _pod_attributes(endpoint: Endpoint) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {NETWORK_PEER_ADDRESS: endpoint.address}
    if endpoint.port:
        attributes[NETWORK_PEER_PORT] = endpoint.port
    if endpoint.ordinal is not None and endpoint.hostname:
        # A StatefulSet pod's DNS name starts with the pod's own name.
        attributes[K8S_POD_NAME] = endpoint.hostname.split(".", 1)[0]
    return attributes


class _Watched:
    """One instrumented service: held weakly, with its refresh listener's remover."""

    __slots__ = ("remove_listener", "service")

    def __init__(self, service: weakref.ReferenceType[Any], remove_listener: Callable[[], None]) -> None:
        self.service = service
        self.remove_listener = remove_listener


class ServiceMetrics:
    """The instruments of one meter, reporting every service added to it.

    Services are held weakly: one that is collected stops being reported. Use one per
    meter provider (:func:`instrument` does): OpenTelemetry keeps the first instrument of
    a name, so a second set on the same meter would not report.

    Args:
        meter_provider: Where the instruments are created (default: the global one).

    Raises:
        ImportError: opentelemetry-api is not installed.
    """

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        _require()
        assert _metrics is not None
        provider = meter_provider if meter_provider is not None else _metrics.get_meter_provider()
        meter: Meter = provider.get_meter(METER_NAME, __version__)
        self._lock = threading.Lock()
        self._services: dict[int, _Watched] = {}
        meter.create_observable_up_down_counter(
            "headless_client.endpoints", [self._endpoints], "{endpoint}",
            "Endpoints in the view from DNS, usable or not (ejected, terminating).",
        )
        meter.create_observable_gauge(
            "headless_client.panic", [self._panic], "1",
            "1 while too many pods are ejected and every pod is used (the panic rule).",
        )
        self._per_pod(meter, "headless_client.picks", "counter", "{pick}", "picks",
                      "Calls routed to the pod through the library's tracked calls.")
        self._per_pod(meter, "headless_client.calls.active", "up_down_counter", "{call}", "in_flight",
                      "Tracked calls to the pod not ended yet.")
        self._per_pod(meter, "headless_client.failures", "counter", "{failure}", "failures",
                      "Failures reported for the pod.")
        self._per_pod(meter, "headless_client.ejections", "counter", "{ejection}", "ejections",
                      "Times passive health ejected the pod.")
        self._per_pod(meter, "headless_client.latency", "gauge", "s", "latency",
                      "The pod's latency estimate (moving average of reported successes).")
        self._per_service(meter, "headless_client.refreshes", "counter", "{refresh}", "refreshes",
                          "Resolutions of the service, whatever their outcome.")
        self._per_service(meter, "headless_client.refresh.failures", "counter", "{refresh}",
                          "refresh_failures", "Resolutions that failed (NXDOMAIN is an answer).")
        self._per_service(meter, "headless_client.staleness", "gauge", "s", "staleness",
                          "Seconds since the last good answer.")
        self._per_service(meter, "headless_client.dns.questions", "counter", "{question}", "dns_questions",
                          "DNS questions the service's lookups sent.")
        self._duration: Histogram = meter.create_histogram(
            "dns.lookup.duration", "s", "Measures the time taken to perform a DNS lookup.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    # -- services ------------------------------------------------------------------------------------

    def add(self, *services: Any) -> None:
        """Report *services* (``HeadlessService`` or ``AsyncHeadlessService``; adding one
        twice is harmless)."""
        for service in services:
            core = service.core
            with self._lock:
                known = self._services.get(id(service))
                if known is not None and known.service() is service:
                    continue
            listener = self._refresh_listener(core)
            remove = core.listen(listener)
            key = id(service)

            def forget(_: object, key: int = key) -> None:
                with self._lock:
                    watched = self._services.pop(key, None)
                if watched is not None:
                    watched.remove_listener()

            with self._lock:
                self._services[key] = _Watched(weakref.ref(service, forget), remove)

    def remove(self, *services: Any) -> None:
        """Stop reporting *services* (unknown ones are ignored)."""
        for service in services:
            with self._lock:
                watched = self._services.pop(id(service), None)
            if watched is not None:
                watched.remove_listener()

    def close(self) -> None:
        """Stop reporting every service (the instruments then observe nothing until a
        service is added again)."""
        with self._lock:
            watched, self._services = list(self._services.values()), {}
        for item in watched:
            item.remove_listener()

    @property
    def services(self) -> list[Any]:
        """The services reported now."""
        with self._lock:
            found = [w.service() for w in self._services.values()]
        return [s for s in found if s is not None]

    # -- recording --------------------------------------------------------------------------------

    def _refresh_listener(self, core: Any) -> Callable[[], None]:
        """A listener recording each timed resolution once (listeners run after every
        change; the count tells a new resolution from other news)."""
        core_ref = weakref.ref(core)
        histogram = self._duration
        name = core.name
        seen = [core.last_resolution()[0]]
        lock = threading.Lock()

        def listener() -> None:
            target = core_ref()
            if target is None:
                return
            count, duration, error = target.last_resolution()
            with lock:
                if count == seen[0]:
                    return
                seen[0] = count
            if duration is not None:
                attributes = {DNS_QUESTION_NAME: name, SERVER_ADDRESS: name}
                if error is not None:
                    attributes[ERROR_TYPE] = error
                histogram.record(duration, attributes)

        return listener

    def _stats(self) -> Iterator[ServiceStats]:
        for service in self.services:
            yield service.stats()

    def _endpoints(self, options: CallbackOptions) -> Iterable[Observation]:
        assert _metrics is not None
        for stats in self._stats():
            service = stats.service
            unusable = max(stats.endpoints - stats.usable, 0)
            yield _metrics.Observation(stats.usable, {SERVER_ADDRESS: service, ENDPOINT_STATE: "usable"})
            yield _metrics.Observation(unusable, {SERVER_ADDRESS: service, ENDPOINT_STATE: "unusable"})

    def _panic(self, options: CallbackOptions) -> Iterable[Observation]:
        assert _metrics is not None
        for stats in self._stats():
            yield _metrics.Observation(int(stats.panic), {SERVER_ADDRESS: stats.service})

    def _per_pod(
        self, meter: Meter, name: str, kind: str, unit: str, field: str, description: str
    ) -> None:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            assert _metrics is not None
            for stats in self._stats():
                for pod in stats.pods:
                    value = getattr(pod, field)
                    if value is not None:
                        attributes = {SERVER_ADDRESS: stats.service, **_pod_attributes(pod.endpoint)}
                        yield _metrics.Observation(value, attributes)

        _create(meter, kind, name, observe, unit, description)

    def _per_service(
        self, meter: Meter, name: str, kind: str, unit: str, field: str, description: str
    ) -> None:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            assert _metrics is not None
            for stats in self._stats():
                value = getattr(stats, field)
                if value is not None:
                    yield _metrics.Observation(value, {SERVER_ADDRESS: stats.service})

        _create(meter, kind, name, observe, unit, description)


def _create(
    meter: Meter, kind: str, name: str, callback: Callable[[CallbackOptions], Iterable[Observation]],
    unit: str, description: str,
) -> None:
    if kind == "counter":
        meter.create_observable_counter(name, [callback], unit, description)
    elif kind == "up_down_counter":
        meter.create_observable_up_down_counter(name, [callback], unit, description)
    else:
        meter.create_observable_gauge(name, [callback], unit, description)


_by_provider: weakref.WeakKeyDictionary[Any, ServiceMetrics] = weakref.WeakKeyDictionary()
_by_provider_lock = threading.Lock()


def instrument(*services: Any, meter_provider: MeterProvider | None = None) -> ServiceMetrics:
    """Report *services* through *meter_provider* (default: the global one); returns the
    provider's :class:`ServiceMetrics` (one per provider: later calls add to it).

    Raises:
        ImportError: opentelemetry-api is not installed.
    """
    _require()
    assert _metrics is not None
    provider = meter_provider if meter_provider is not None else _metrics.get_meter_provider()
    with _by_provider_lock:
        metrics = _by_provider.get(provider)
        if metrics is None:
            metrics = ServiceMetrics(provider)
            _by_provider[provider] = metrics
    metrics.add(*services)
    return metrics
