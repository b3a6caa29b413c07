"""AsyncResolver: :class:`~headless_client.Resolver` for asyncio."""

from __future__ import annotations

from typing import TypeVar

from ..endpoints import Endpoint, EndpointSet
from ..exchange import Lookup
from ..lookup import Plan
from ..resolver import BaseResolver
from .transport import run_lookup

__all__ = ["AsyncResolver"]

T = TypeVar("T")


class AsyncResolver(BaseResolver):
    """:class:`~headless_client.Resolver` for asyncio: the same methods, awaited."""

    async def resolve(
        self,
        service: str,
        port: int | str,
        *,
        protocol: str = "tcp",
        namespace: str | None = None,
    ) -> EndpointSet:
        """See :meth:`headless_client.Resolver.resolve`."""
        return await run_lookup(self.service_lookup(service, port, protocol=protocol, namespace=namespace))

    # See Resolver._RESOLVE_RUNS_LOOKUPS.
    _RESOLVE_RUNS_LOOKUPS = resolve

    async def resolve_pod(
        self,
        statefulset: str,
        ordinal: int,
        *,
        namespace: str | None = None,
        service: str | None = None,
        port: int | None = None,
    ) -> Endpoint:
        """See :meth:`headless_client.Resolver.resolve_pod`."""
        lookup = self.pod_lookup(statefulset, ordinal, namespace=namespace, service=service, port=port)
        return (await run_lookup(lookup))[0]

    async def resolve_pod_all(
        self,
        statefulset: str,
        ordinal: int,
        *,
        namespace: str | None = None,
        service: str | None = None,
        port: int | None = None,
    ) -> EndpointSet:
        """See :meth:`headless_client.Resolver.resolve_pod_all`."""
        lookup = self.pod_lookup(statefulset, ordinal, namespace=namespace, service=service, port=port)
        return await run_lookup(lookup)

    async def resolve_host(self, hostname: str, port: int = 0) -> EndpointSet:
        """See :meth:`headless_client.Resolver.resolve_host`."""
        return await run_lookup(self.host_lookup(hostname, port))

    async def resolve_statefulset(
        self,
        statefulset: str,
        *,
        namespace: str | None = None,
        service: str | None = None,
        port: int | None = None,
        start: int = 0,
        replicas: int | None = None,
        max_gap: int = 8,
    ) -> EndpointSet:
        """See :meth:`headless_client.Resolver.resolve_statefulset`."""
        return await run_lookup(self.statefulset_lookup(
            statefulset, namespace=namespace, service=service, port=port, start=start,
            replicas=replicas, max_gap=max_gap,
        ))  # fmt: skip

    async def _run(self, plan: Plan[T]) -> T:
        """Run a bare plan with this resolver's exchange settings (kept for subclasses)."""
        return await run_lookup(Lookup(plan, self.exchange_config))
