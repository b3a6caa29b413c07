"""Exact rotation over the pods of a snapshot."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from functools import partial
from itertools import cycle
from typing import Any

from .. import _forksafe
from ..endpoints import Endpoint, EndpointSet
from .base import HotPath, HotPick, SnapshotCache, UsableChoice, distinct_pods, no_endpoints, overrides

__all__ = ["RoundRobin"]

# next() on an itertools.cycle is one C call that runs to the end holding the GIL, so
# concurrent picks need no lock. A free-threaded build makes no such promise (two threads
# could read one position, or one past the end): there the step takes a lock.
_GIL = bool(getattr(sys, "_is_gil_enabled", lambda: True)())

_IDLE: Iterator[Endpoint] = iter(())


class _LockedRotation:
    """The rotation of :func:`itertools.cycle`, one step at a time under a lock (for
    free-threaded builds)."""

    __slots__ = ("__weakref__", "_lock", "_next", "_pods")

    def __init__(self, pods: tuple[Endpoint, ...]) -> None:
        self._pods = pods
        self._next = 0
        self._lock = threading.Lock()
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def __iter__(self) -> _LockedRotation:
        return self

    def __next__(self) -> Endpoint:
        pods = self._pods
        if not pods:
            raise StopIteration
        with self._lock:
            index = self._next
            self._next = index + 1 if index + 1 < len(pods) else 0
        return pods[index]


_Latest = list[tuple[tuple[Endpoint, ...], Iterator[Endpoint]]]


def _rotation(latest: _Latest, endpoints: EndpointSet) -> Iterator[Endpoint]:
    """The rotation of a new set, continuing the latest one built.

    It begins with the pod the latest rotation would have given next, or, if that pod
    left, at the position it had (modulo the new size): a change of the set neither
    restarts every client of a fleet at its first pod nor favours any pod.
    """
    pods = distinct_pods(endpoints)
    start = 0
    old_pods, old_rotation = latest[0]
    if pods and old_pods:
        try:
            following = next(old_rotation)  # only callers still on the old set see it skip
        except StopIteration:
            pass
        else:
            identity = following.identity
            start = next(
                (i for i, ep in enumerate(pods) if ep.identity == identity),
                old_pods.index(following) % len(pods),
            )
    ordered = pods[start:] + pods[:start]
    rotation: Iterator[Endpoint] = cycle(ordered) if _GIL else _LockedRotation(ordered)
    latest[0] = (pods, rotation)
    return rotation


class RoundRobin(UsableChoice):
    """Each pod in turn: every ``len(pods)`` consecutive picks over a set return each of
    its pods exactly once, in set order.

    "Exact" holds across threads: the rotation of a set is one shared iterator whose step
    is a single atomic operation (one C call under the GIL; a lock on free-threaded
    builds), so ``k * len(pods)`` picks give exactly ``k`` to each pod however they are
    spread over threads, with no lock on the hot path. Direct ``pick`` calls and a
    service's ``pick()`` over the same set share that rotation.

    When the set changes, the new rotation begins with the pod the previous one would
    have given next (or, if that pod left, at its position modulo the new size), so a
    change neither sends a fleet of clients back to the first pod together nor favours
    any pod. Calls still holding the old set keep its rotation.

    The key is ignored. Dual-stack pods count once (see :mod:`.base`).
    """

    __slots__ = ("_cache", "_latest")

    def __init__(self) -> None:
        # The latest rotation built, which the next one continues. The cache's builder
        # holds this list, not the instance: no reference cycle.
        self._latest: _Latest = [((), _IDLE)]
        self._cache: SnapshotCache[Iterator[Endpoint]] = SnapshotCache(
            partial(_rotation, self._latest), _IDLE
        )

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        """Return the next pod in rotation.

        Raises:
            NoEndpointsAvailable: *endpoints* is empty.
        """
        snap, rotation = self._cache.current
        if snap is not endpoints:
            rotation = self._cache.derive(endpoints)
        try:
            return next(rotation)
        except StopIteration:
            # An empty set: the check costs nothing on the hot path this way.
            raise no_endpoints(endpoints, self) from None

    def _hot_path(self) -> HotPath | None:
        """A service's ``pick()``: :func:`_hot_pick` over the usable set's rotation."""
        if overrides(self, RoundRobin):
            return None
        return _hot_pick, self._hot_state, _IDLE

    def _hot_state(self, usable: EndpointSet, snapshot: EndpointSet) -> Iterator[Endpoint]:
        return self._cache.derive(usable)

    def __repr__(self) -> str:
        return "RoundRobin()"


def _hot_pick(hot: HotPick, key: object | None = None, **fields: Any) -> Endpoint:
    """A service's whole ``pick()`` with RoundRobin (see :class:`~.base.HotPick`)."""
    if not fields:
        try:
            return next(hot.state)  # type: ignore[no-any-return]
        except StopIteration:  # not started, or an empty view
            pass
    return hot.full(key, fields)
