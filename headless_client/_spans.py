"""Span attributes for the integrations' calls, at no cost to an application without
tracing.

An application that traces has imported ``opentelemetry.trace`` itself; only then is the
current span given the conventional attributes of a call to a pod (``server.address``:
the service; ``network.peer.address``/``port``: the pod; ``k8s.pod.name``), by
:func:`headless_client.contrib.otel.annotate_span`. Otherwise this is one dictionary
lookup: the library never imports OpenTelemetry on its own.
"""

from __future__ import annotations

import sys

from .endpoints import Endpoint

__all__ = ["annotate"]


def annotate(service: object, endpoint: Endpoint) -> None:
    """Describe the call about to go to *endpoint* on the current span, if tracing is on."""
    if "opentelemetry.trace" not in sys.modules:
        return
    from .contrib.otel import annotate_span

    annotate_span(service, endpoint)
