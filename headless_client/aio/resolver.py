"""AsyncResolver: :class:`~headless_client.Resolver` for asyncio."""

from __future__ import annotations

from typing import TypeVar

from ..exchange import Lookup
from ..lookup import Plan
from ..resolver import BaseResolver
from ._resolve_methods import AsyncResolveMethods
from .transport import run_lookup

__all__ = ["AsyncResolver"]

T = TypeVar("T")


class AsyncResolver(AsyncResolveMethods, BaseResolver):
    """:class:`~headless_client.Resolver` for asyncio: the same methods, awaited (from
    :class:`~headless_client.aio._resolve_methods.AsyncResolveMethods`)."""

    async def _run_lookup(self, lookup: Lookup[T]) -> T:
        return await run_lookup(lookup)

    async def _run(self, plan: Plan[T]) -> T:
        """Run a bare plan with this resolver's exchange settings (kept for subclasses)."""
        return await run_lookup(Lookup(plan, self.exchange_config))
