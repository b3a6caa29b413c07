"""Uniform random choice over the pods of a snapshot."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from ..endpoints import Endpoint, EndpointSet
from .base import HotPath, HotPick, SnapshotCache, UsableChoice, distinct_pods, no_endpoints, overrides

__all__ = ["Random"]

_Pods = tuple[tuple[Endpoint, ...], float]


def _pods_and_size(endpoints: EndpointSet) -> _Pods:
    # The size as a float: random() * size is then a float product (the interpreter's
    # fast path), and __trunc__ turns it into the index at half the price of int().
    pods = distinct_pods(endpoints)
    return pods, float(len(pods))


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
        self._random: Callable[[], float] = random.Random(seed).random
        self._cache: SnapshotCache[_Pods] = SnapshotCache(_pods_and_size, ((), 0.0))

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        """Return a uniformly random pod.

        Raises:
            NoEndpointsAvailable: *endpoints* is empty.
        """
        snap, (pods, size) = self._cache.current
        if snap is not endpoints:
            pods, size = self._cache.derive(endpoints)
        try:
            # random() < 1.0, and for any size below 2**53 the product rounds below size.
            return pods[(self._random() * size).__trunc__()]
        except IndexError:  # an empty set
            raise no_endpoints(endpoints, self) from None

    def _hot_path(self) -> HotPath | None:
        """A service's ``pick()``: :func:`_hot_pick` over the usable pods."""
        if overrides(self, Random):
            return None
        return _hot_pick, self._hot_state, ((), 0.0, self._random)

    def _hot_state(self, usable: EndpointSet, snapshot: EndpointSet) -> tuple[object, ...]:
        pods, size = self._cache.derive(usable)
        return pods, size, self._random

    def __repr__(self) -> str:
        return f"Random(seed={self._seed!r})"


def _hot_pick(hot: HotPick, key: object | None = None, **fields: Any) -> Endpoint:
    """A service's whole ``pick()`` with Random (see :class:`~.base.HotPick`)."""
    if not fields:
        pods, size, draw = hot.state
        try:
            return pods[(draw() * size).__trunc__()]  # type: ignore[no-any-return]
        except IndexError:  # not started, or an empty view
            pass
    return hot.full(key, fields)
