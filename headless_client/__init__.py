"""headless-client: talk to every pod behind a Kubernetes headless Service.

Discover pods by DNS (A/AAAA and SRV), know which pod is which (StatefulSet ordinals),
pick one per request with a pluggable strategy, keep the view fresh, and connect.
"""

from __future__ import annotations

import logging

from . import errors
from .aio import AsyncHeadlessService, AsyncResolver
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
    WaitTimeout,
)
from .exchange import ExchangePolicy
from .health import HealthPolicy
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
from .refresh import RefreshPolicy
from .resolver import BaseResolver, KubernetesContext, Resolver, kubernetes_context
from .service import HeadlessService
from .strategies import (
    Fallback,
    LeastLoaded,
    LoadTracking,
    PartitionLeader,
    PrimaryReplica,
    Random,
    RoundRobin,
    Sticky,
    Strategy,
    kafka_partition,
    murmur2,
)

# A library never configures logging; this only keeps Python's last-resort handler from
# printing our warnings when the application has not set logging up.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CLUSTER_DOMAIN",
    "AsyncHeadlessService",
    "AsyncResolver",
    "BaseResolver",
    "ConnectError",
    "Endpoint",
    "EndpointDiff",
    "EndpointNotFound",
    "EndpointSet",
    "ExchangePolicy",
    "Fallback",
    "HeadlessClientError",
    "HeadlessService",
    "HealthPolicy",
    "InvalidName",
    "KubernetesContext",
    "LeaderNotAvailable",
    "LeastLoaded",
    "LoadTracking",
    "NoEndpointsAvailable",
    "NotLeader",
    "PartitionLeader",
    "PodName",
    "PrimaryReplica",
    "Random",
    "RefreshPolicy",
    "ResolutionError",
    "ResolvConf",
    "Resolver",
    "RoundRobin",
    "ServiceNotFound",
    "Sticky",
    "Strategy",
    "WaitTimeout",
    "__version__",
    "errors",
    "kafka_partition",
    "kubernetes_context",
    "murmur2",
    "ordinal_hostnames",
    "parse_pod_fqdn",
    "parse_resolv_conf",
    "pod_fqdn",
    "service_fqdn",
]
