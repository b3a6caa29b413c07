# GENERATED from headless_client/aio/_resolve_methods.py by scripts/unasync.py: do not edit.
"""The resolve methods of a blocking resolver, written once over its sans-I/O lookups.

A resolver builds lookups (``service_lookup``, ``pod_lookup``, ``host_lookup``,
``statefulset_lookup``: a plan and where to send its questions) and carries them with its
own ``_run_lookup``; these methods only put the two together, so
:class:`~headless_client.Resolver` and
:class:`~headless_client.testing.StaticResolver` share them.

This file is the source of the blocking twin, ``headless_client/_resolve_methods.py``
(``ResolveMethods``, for :class:`~headless_client.Resolver` and
:class:`~headless_client.testing.StaticResolver`), which ``scripts/unasync.py`` generates
from it; ``tests/test_unasync.py`` fails when the two differ.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from typing_extensions import Unpack

from ._resolve_options import PodOptions, StatefulSetOptions
from .endpoints import Endpoint, EndpointSet
from .exchange import Lookup

__all__ = ["ResolveMethods"]

T = TypeVar("T")


class _LookupsAndDriver(Protocol):
    """What the methods need of the resolver they are mixed into (its arguments are
    checked where each builder is defined)."""

    def service_lookup(self, *args: Any, **kwargs: Any) -> Lookup[EndpointSet]: ...

    def pod_lookup(self, *args: Any, **kwargs: Any) -> Lookup[EndpointSet]: ...

    def host_lookup(self, *args: Any, **kwargs: Any) -> Lookup[EndpointSet]: ...

    def statefulset_lookup(self, *args: Any, **kwargs: Any) -> Lookup[EndpointSet]: ...

    def _run_lookup(self, lookup: Lookup[T], /) -> T: ...


class ResolveMethods:
    """``resolve``, ``resolve_pod``, ``resolve_pod_all``, ``resolve_host`` and
    ``resolve_statefulset``: each builds its lookup and runs the resolver's driver."""

    def resolve(
        self: _LookupsAndDriver,
        service: str,
        port: int | str,
        *,
        protocol: str = "tcp",
        namespace: str | None = None,
    ) -> EndpointSet:
        """Every ready endpoint of *service*.

        An ``int`` port asks A and AAAA of the service name and gives every address that
        port. A ``str`` port asks SRV ``_<port>._<protocol>.<fqdn>``: pod hostnames,
        ordinals, ports and addresses (glue, else concurrent lookups).

        Raises:
            InvalidName: a bad service name, port or protocol.
            ServiceNotFound: NXDOMAIN (no such service, or zero ready pods).
            NotHeadless: a ClusterIP Service (unless ``cluster_ip="warn"``).
            ResolutionError: timeout, refused, SERVFAIL or a malformed answer.
        """
        lookup = self.service_lookup(service, port, protocol=protocol, namespace=namespace)
        return self._run_lookup(lookup)

    # A service may carry this resolver's lookups itself (many at once, on one thread or
    # task) while ``resolve`` is this one: a subclass overriding it is called through it.
    _RESOLVE_RUNS_LOOKUPS = resolve

    def resolve_pod(
        self: _LookupsAndDriver,
        statefulset: str,
        ordinal: int,
        **options: Unpack[PodOptions],
    ) -> Endpoint:
        """The endpoint of StatefulSet pod *ordinal* (``<sts>-<n>.<service>...``).

        ``**options`` (:class:`~headless_client._resolve_options.PodOptions`):
        ``namespace``, ``service`` (default: *statefulset*) and ``port`` (default 0,
        unknown). A dual-stack pod gives its IPv4 endpoint.

        Raises:
            ServiceNotFound: the pod name does not exist (not created, or not ready).
        """
        pod = self._run_lookup(self.pod_lookup(statefulset, ordinal, **options))
        return pod[0]

    def resolve_pod_all(
        self: _LookupsAndDriver,
        statefulset: str,
        ordinal: int,
        **options: Unpack[PodOptions],
    ) -> EndpointSet:
        """Every endpoint of one pod (one per address family); options as :meth:`resolve_pod`."""
        return self._run_lookup(self.pod_lookup(statefulset, ordinal, **options))

    def resolve_host(self: _LookupsAndDriver, hostname: str, port: int = 0) -> EndpointSet:
        """The endpoints of one absolute host name (a pod FQDN), A and AAAA.

        Raises:
            ServiceNotFound: the name does not exist.
        """
        return self._run_lookup(self.host_lookup(hostname, port))

    def resolve_statefulset(
        self: _LookupsAndDriver,
        statefulset: str,
        **options: Unpack[StatefulSetOptions],
    ) -> EndpointSet:
        """Pod identities of a StatefulSet whose service has no named port.

        Learns the pod count from the service's A/AAAA answer (or *replicas*), then asks
        ``<sts>-<i>.<service>...`` from *start* concurrently, tolerating gaps (unready
        pods), until the count is found or *max_gap* ordinals in a row are missing.
        ``**options`` (:class:`~headless_client._resolve_options.StatefulSetOptions`):
        ``namespace``, ``service``, ``port``, ``start`` (0), ``replicas``, ``max_gap`` (8).

        Raises:
            ServiceNotFound: the service name does not exist (when *replicas* is None).
            NotGoverningService: the service has ready addresses but none of the
                ``<sts>-<n>`` names exists: it is not the Service the StatefulSet names as
                ``serviceName`` (or the ordinals do not start at *start*).
            NotHeadless: a ClusterIP Service (unless ``cluster_ip="warn"``).
            ResolutionError: the pod names could not be asked.
        """
        return self._run_lookup(self.statefulset_lookup(statefulset, **options))
