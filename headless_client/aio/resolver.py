"""AsyncResolver: :class:`~headless_client.Resolver` for asyncio."""

from __future__ import annotations

import logging
import time
from typing import TypeVar

from ..endpoints import Endpoint, EndpointSet
from ..errors import ResolutionError
from ..lookup import Batch, Plan
from ..resolver import BaseResolver
from ..wire import Reply, exhausted, screen_all, server_budgets
from .transport import exchange_with

__all__ = ["AsyncResolver"]

T = TypeVar("T")
_rlog = logging.getLogger("headless_client.resolver")


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
        plan, options, fqdn = self._resolve_plan(service, port, protocol, namespace)
        result = await self._run(plan)
        self._log_dropped(options, fqdn)
        return result

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
        found = await self._run(self._pod_plan(statefulset, ordinal, namespace, service, port))
        return found[0]

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
        return await self._run(self._pod_plan(statefulset, ordinal, namespace, service, port))

    async def resolve_host(self, hostname: str, port: int = 0) -> EndpointSet:
        """See :meth:`headless_client.Resolver.resolve_host`."""
        return await self._run(self._host_plan(hostname, port))

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
        plan = self._statefulset_plan(statefulset, namespace, service, port, start, replicas, max_gap)
        return await self._run(plan)

    async def _run(self, plan: Plan[T]) -> T:
        deadline = time.monotonic() + self.timeout
        try:
            batch = next(plan)
            while True:
                batch = plan.send(await self._exchange(batch, deadline))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _exchange(self, batch: Batch, deadline: float) -> list[Reply]:
        errors: list[str] = []
        for server, budget_end in server_budgets(self.nameservers, deadline, time.monotonic):
            try:
                return screen_all(await exchange_with(server, batch, budget_end), server)
            except ResolutionError as exc:
                errors.append(str(exc))
                _rlog.debug(
                    "nameserver %s failed: %s", server, exc,
                    extra={"service": None, "pod": None, "address": None, "reason": "nameserver_failed",
                           "nameserver": server},
                )
        raise exhausted(batch, self.timeout, errors)

