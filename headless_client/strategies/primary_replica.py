"""Writes to the primary (lowest ordinal), reads spread over the replicas."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Final

from ..endpoints import Endpoint, EndpointSet
from .base import SnapshotCache, distinct_pods, no_endpoints

__all__ = ["PrimaryReplica"]


class _WriteKey:
    """Type of :attr:`PrimaryReplica.WRITE`; one instance."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PrimaryReplica.WRITE"

    def __reduce__(self) -> str:
        return "_WRITE"


_WRITE: Final = _WriteKey()

_Roles = tuple[Endpoint, tuple[Endpoint, ...]] | None


def _roles(endpoints: EndpointSet) -> _Roles:
    pods = distinct_pods(endpoints)
    if not pods:
        return None
    # The set is ordered by ordinal first, endpoints without one last: pods[0] is the
    # lowest ordinal when there is any ordinal, else simply the first in set order.
    return pods[0], pods[1:]


class PrimaryReplica:
    """Writes go to the primary; reads rotate over the replicas.

    The primary is the pod with the lowest StatefulSet ordinal, the convention of
    primary/replica charts (``postgres-0``, ``redis-0``, ``mysql-0``). When no endpoint
    has an ordinal, it is the first endpoint in set order (lowest hostname, then
    address), which is the same in every process but says nothing about roles: give
    such sets hostnames or use another strategy.

    ``pick(endpoints, key=PrimaryReplica.WRITE)`` or a key equal to one of *write_keys*
    returns the primary. Any other key (``None`` included) is a read: round-robin over
    the other pods, or the primary when it is alone. Dual-stack pods count once.

    Args:
        write_keys: Keys that mean "write", compared with ``==`` (so unhashable keys are
            fine as reads).
    """

    WRITE: Final = _WRITE
    """The key that always means "write", whatever *write_keys* is."""

    __slots__ = ("_cache", "_counter", "_write_keys")

    def __init__(self, *, write_keys: Iterable[object] = ("write",)) -> None:
        if isinstance(write_keys, (str, bytes)):
            # ("write") instead of ("write",) would otherwise make every letter a key.
            raise TypeError(f"write_keys must be a collection of keys, not a {type(write_keys).__name__}")
        self._write_keys = tuple(write_keys)
        self._counter = itertools.count()
        self._cache: SnapshotCache[_Roles] = SnapshotCache(_roles, None)

    @property
    def write_keys(self) -> tuple[object, ...]:
        """Keys that select the primary (besides :attr:`WRITE`)."""
        return self._write_keys

    def is_write(self, key: object) -> bool:
        """True if *key* selects the primary."""
        return key is _WRITE or (key is not None and key in self._write_keys)

    def primary(self, endpoints: EndpointSet) -> Endpoint:
        """The primary of *endpoints*.

        Raises:
            NoEndpointsAvailable: *endpoints* is empty.
        """
        return self.pick(endpoints, _WRITE)

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        """Return the primary for a write key, else the next replica.

        Raises:
            NoEndpointsAvailable: *endpoints* is empty.
        """
        snap, roles = self._cache.current
        if snap is not endpoints:
            roles = self._cache.derive(endpoints)
        if roles is None:
            raise no_endpoints(endpoints, self)
        primary, replicas = roles
        if not replicas or self.is_write(key):
            return primary
        return replicas[next(self._counter) % len(replicas)]

    def pick_replica(self, replicas: EndpointSet) -> Endpoint:
        """Round-robin over *replicas*, all of them (the caller knows none is the primary).

        Raises:
            NoEndpointsAvailable: *replicas* is empty.
        """
        pods = distinct_pods(replicas)
        if not pods:
            raise no_endpoints(replicas, self)
        return pods[next(self._counter) % len(pods)]

    def __repr__(self) -> str:
        return f"PrimaryReplica(write_keys={self._write_keys!r})"
