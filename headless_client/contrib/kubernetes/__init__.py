"""Discovery from the Kubernetes API: an EndpointSlice source for the services.

Optional (``pip install 'headless-client[kubernetes]'``: PyYAML, for kubeconfig files; the
client itself is standard library only). DNS stays the default; this source sees changes
within a fraction of a second, and sees what DNS cannot: terminating pods, zones, nodes,
topology hints and the pod behind each endpoint. See ``docs/kubernetes.md`` ("DNS or the
API?").

>>> from headless_client.contrib.kubernetes import EndpointSliceResolver   # doctest: +SKIP
>>> with EndpointSliceResolver() as resolver, hc.HeadlessService(
...         "web.prod", port="http", resolver=resolver) as svc:
...     svc.pick()
"""

from __future__ import annotations

from .config import KubernetesConfig, auto_config, in_cluster_config, load_kubeconfig
from .resolver import AsyncEndpointSliceResolver, EndpointSliceResolver, ZoneSources
from .slices import SERVICE_NAME_LABEL, build_endpoints, parse_slice

__all__ = [
    "SERVICE_NAME_LABEL",
    "AsyncEndpointSliceResolver",
    "EndpointSliceResolver",
    "KubernetesConfig",
    "ZoneSources",
    "auto_config",
    "build_endpoints",
    "in_cluster_config",
    "load_kubeconfig",
    "parse_slice",
]
