"""Uniform random choice over the pods of a snapshot."""

from __future__ import annotations

import random

from ..endpoints import Endpoint, EndpointSet
from .base import SnapshotCache, UsableChoice, distinct_pods, no_endpoints

__all__ = ["Random"]


class Random(UsableChoice):
    """A uniformly random pod per pick.

    Useful when many independent clients start at once: unlike a fresh
    :class:`~headless_client.strategies.RoundRobin` in every client, they do not all
    begin with the same pod. The key is ignored. Dual-stack pods count once.

    Args:
        seed: Seed for the private :class:`random.Random` instance (for reproducible
            tests); ``None`` seeds from the OS.
    """

    __slots__ = ("_cache", "_random", "_seed")

    def __init__(self, seed: int | str | bytes | None = None) -> None:
        self._seed = seed
        # random.Random.random is one C call, so concurrent picks need no lock.
        self._random = random.Random(seed).random
        self._cache: SnapshotCache[tuple[Endpoint, ...]] = SnapshotCache(distinct_pods, ())

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        """Return a uniformly random pod.

        Raises:
            NoEndpointsAvailable: *endpoints* is empty.
        """
        snap, pods = self._cache.current
        if snap is not endpoints:
            pods = self._cache.derive(endpoints)
        if not pods:
            raise no_endpoints(endpoints, self)
        # random() < 1.0, and for any len below 2**53 the product rounds below len.
        return pods[int(self._random() * len(pods))]

    def __repr__(self) -> str:
        return f"Random(seed={self._seed!r})"
