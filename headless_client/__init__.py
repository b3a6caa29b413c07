"""headless-client: talk to every pod behind a Kubernetes headless Service.

Discover pods by DNS (A/AAAA and SRV), know which pod is which (StatefulSet ordinals),
pick one per request with a pluggable strategy, keep the view fresh, and connect.
"""

from __future__ import annotations

from . import errors
from .endpoints import Endpoint, EndpointDiff, EndpointSet
from .errors import (
    ConnectError,
    EndpointNotFound,
    HeadlessClientError,
    InvalidName,
    LeaderNotAvailable,
    NoEndpointsAvailable,
    NotLeader,
    ResolutionError,
    ServiceNotFound,
)
from .names import (
    DEFAULT_CLUSTER_DOMAIN,
    PodName,
    ResolvConf,
    ordinal_hostnames,
    parse_pod_fqdn,
    parse_resolv_conf,
    pod_fqdn,
    service_fqdn,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "DEFAULT_CLUSTER_DOMAIN",
    "ConnectError",
    "Endpoint",
    "EndpointDiff",
    "EndpointNotFound",
    "EndpointSet",
    "HeadlessClientError",
    "InvalidName",
    "LeaderNotAvailable",
    "NoEndpointsAvailable",
    "NotLeader",
    "PodName",
    "ResolutionError",
    "ResolvConf",
    "ServiceNotFound",
    "__version__",
    "errors",
    "ordinal_hostnames",
    "parse_pod_fqdn",
    "parse_resolv_conf",
    "pod_fqdn",
    "service_fqdn",
]
