"""Exact rotation over the pods of a snapshot."""

from __future__ import annotations

import itertools

from ..endpoints import Endpoint, EndpointSet
from .base import SnapshotCache, UsableChoice, distinct_pods, no_endpoints

__all__ = ["RoundRobin"]


class RoundRobin(UsableChoice):
    """Each pod in turn: the n-th pick returns pod ``n % len(pods)``.

    One global counter serves every thread, so ``k * len(pods)`` picks give exactly
    ``k`` to each pod however the picks are spread over threads. When the set changes the
    counter simply continues modulo the new size; no pod is favoured.

    The key is ignored. Dual-stack pods count once (see :mod:`.base`).

    Thread safety: ``next()`` on an :func:`itertools.count` is one C call, atomic under
    the GIL, so the hot path takes no lock. (On a free-threaded build two threads could
    read the same value; the rotation then stays fair but is no longer exact.)
    """

    __slots__ = ("_cache", "_counter")

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._cache: SnapshotCache[tuple[Endpoint, ...]] = SnapshotCache(distinct_pods, ())

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        """Return the next pod in rotation.

        Raises:
            NoEndpointsAvailable: *endpoints* is empty.
        """
        snap, pods = self._cache.current
        if snap is not endpoints:
            pods = self._cache.derive(endpoints)
        try:
            return pods[next(self._counter) % len(pods)]
        except ZeroDivisionError:
            # An empty set: the check costs nothing on the hot path this way.
            raise no_endpoints(endpoints, self) from None

    def __repr__(self) -> str:
        return "RoundRobin()"
