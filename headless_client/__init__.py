"""headless-client: talk to every pod behind a Kubernetes headless Service.

Discover pods by DNS (A/AAAA and SRV), know which pod is which (StatefulSet ordinals),
pick one per request with a pluggable strategy, keep the view fresh, and connect.
"""

from __future__ import annotations

import sys

# typing is not loaded for this module alone: type checkers take any ``TYPE_CHECKING``
# as true.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from . import errors
    from .aio import AsyncClientRegistry, AsyncHeadlessService, AsyncResolver
    from .connect import ConnectPolicy
    from .endpoints import Endpoint, EndpointDiff, EndpointSet
    from .errors import (
        ConnectAborted,
        ConnectError,
        EndpointNotFound,
        ForeignHost,
        HeadlessClientError,
        InvalidArgument,
        InvalidName,
        LeaderNotAvailable,
        NoEndpointsAvailable,
        NotGoverningService,
        NotHeadless,
        NotLeader,
        ResolutionError,
        ServiceClosed,
        ServiceNotFound,
        ServiceNotStarted,
        WaitTimeout,
    )
    from .events import ServiceEvent
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
    from .registry import ClientRegistry
    from .registry_core import Lease
    from .request import Request
    from .resolver import (
        BaseResolver,
        KubernetesContext,
        Resolver,
        kubernetes_context,
    )
    from .service import HeadlessService
    from .stats import PodStats, ServiceStats
    from .strategies import (
        Fallback,
        LeastLoaded,
        LoadTracking,
        PartitionLeader,
        PreferZone,
        PrimaryReplica,
        Random,
        RequestStrategy,
        RoundRobin,
        Sticky,
        Strategy,
        kafka_partition,
        murmur2,
    )

# Every public name is loaded on first use (PEP 562): ``import headless_client`` loads no
# submodule, not even logging, so a program pays for dnspython, asyncio, tenacity, ssl...
# only when it uses the part that needs them; the exceptions (every other name of
# __all__) come from .errors. ``from headless_client import HeadlessService`` loads what a
# service needs, no more. (Type checkers read the imports above.)
_EXPORTS: dict[str, tuple[str, ...]] = {
    ".aio": ("AsyncClientRegistry", "AsyncHeadlessService", "AsyncResolver"),
    ".connect": ("ConnectPolicy",),
    ".endpoints": ("Endpoint", "EndpointDiff", "EndpointSet"),
    ".events": ("ServiceEvent",),
    ".exchange": ("ExchangePolicy",),
    ".health": ("HealthPolicy",),
    ".names": (
        "DEFAULT_CLUSTER_DOMAIN",
        "PodName",
        "ResolvConf",
        "ordinal_hostnames",
        "parse_pod_fqdn",
        "parse_resolv_conf",
        "pod_fqdn",
        "service_fqdn",
    ),
    ".refresh": ("RefreshPolicy",),
    ".registry": ("ClientRegistry",),
    ".registry_core": ("Lease",),
    ".request": ("Request",),
    ".resolver": ("BaseResolver", "KubernetesContext", "Resolver", "kubernetes_context"),
    ".service": ("HeadlessService",),
    ".stats": ("PodStats", "ServiceStats"),
    ".strategies": (
        "Fallback",
        "LeastLoaded",
        "LoadTracking",
        "PartitionLeader",
        "PreferZone",
        "PrimaryReplica",
        "Random",
        "RequestStrategy",
        "RoundRobin",
        "Sticky",
        "Strategy",
        "kafka_partition",
        "murmur2",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        if name not in __all__:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        module = ".errors"
    # __import__ returns the package; the submodule is then an attribute of it.
    __import__(f"{__name__}{module}")
    loaded = sys.modules[f"{__name__}{module}"]
    value = loaded if name == "errors" else getattr(loaded, name)
    globals()[name] = value  # later reads skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _quiet_logging() -> None:
    """Give the package's logger a NullHandler (once).

    A library never configures logging; this only keeps Python's last-resort handler from
    printing our warnings when the application has not set logging up.
    """
    import logging

    logging.getLogger(__name__).addHandler(logging.NullHandler())


class _Package(type(sys)):  # type: ignore[misc]
    """This package's module type: the NullHandler goes on as soon as logging is loaded.

    Loading logging here would cost more than everything else ``import headless_client``
    does. Python sets each submodule on its package once the submodule has run, so the
    first of ours that loads logging (every module that logs) is followed by this hook,
    before anything of ours can log.
    """

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        if "logging" in sys.modules:
            object.__setattr__(self, "__class__", type(sys))  # done: back to a plain module
            _quiet_logging()


if "logging" in sys.modules:
    _quiet_logging()
else:
    sys.modules[__name__].__class__ = _Package

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CLUSTER_DOMAIN",
    "AsyncClientRegistry",
    "AsyncHeadlessService",
    "AsyncResolver",
    "BaseResolver",
    "ClientRegistry",
    "ConnectAborted",
    "ConnectError",
    "ConnectPolicy",
    "Endpoint",
    "EndpointDiff",
    "EndpointNotFound",
    "EndpointSet",
    "ExchangePolicy",
    "Fallback",
    "ForeignHost",
    "HeadlessClientError",
    "HeadlessService",
    "HealthPolicy",
    "InvalidArgument",
    "InvalidName",
    "KubernetesContext",
    "LeaderNotAvailable",
    "Lease",
    "LeastLoaded",
    "LoadTracking",
    "NoEndpointsAvailable",
    "NotGoverningService",
    "NotHeadless",
    "NotLeader",
    "PartitionLeader",
    "PodName",
    "PodStats",
    "PreferZone",
    "PrimaryReplica",
    "Random",
    "RefreshPolicy",
    "Request",
    "RequestStrategy",
    "ResolutionError",
    "ResolvConf",
    "Resolver",
    "RoundRobin",
    "ServiceClosed",
    "ServiceEvent",
    "ServiceNotFound",
    "ServiceNotStarted",
    "ServiceStats",
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
