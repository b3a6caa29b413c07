"""Writes to the primary, reads spread over the replicas."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Final

from .. import _forksafe
from ..endpoints import Endpoint, EndpointSet
from ..errors import InvalidArgument, InvalidName, NoEndpointsAvailable
from ..request import WRITE, Request
from .base import SnapshotCache, Watchers, distinct_pods, no_endpoints

__all__ = ["PrimaryReplica"]


class _WriteKey:
    """Type of :attr:`PrimaryReplica.WRITE`; one instance."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PrimaryReplica.WRITE"

    def __reduce__(self) -> str:
        return "_WRITE"


_WRITE: Final = _WriteKey()

# (primary or None when the named primary is not in the view, replicas); None: empty set.
_Roles = tuple[Endpoint | None, tuple[Endpoint, ...]] | None
_Primary = int | str | None


def _matches(endpoint: Endpoint, primary: int | str) -> bool:
    if isinstance(primary, int):
        return endpoint.ordinal == primary
    hostname = endpoint.hostname
    if hostname is not None and (hostname == primary or hostname.split(".", 1)[0] == primary):
        return True
    return endpoint.address == primary


def _roles(endpoints: EndpointSet, primary: _Primary) -> _Roles:
    pods = distinct_pods(endpoints)
    if not pods:
        return None
    if primary is not None:
        for i, ep in enumerate(pods):
            if _matches(ep, primary):
                return ep, pods[:i] + pods[i + 1 :]
        # The named primary is not in the view (failing over, or gone): every pod is a
        # replica, and writes have nowhere to go (see pick).
        return None, pods
    # The set is ordered by ordinal first, endpoints without one last: pods[0] is the
    # lowest ordinal when there is any ordinal, else simply the first in set order.
    return pods[0], pods[1:]


class PrimaryReplica:
    """Writes go to the primary; reads rotate over the replicas.

    By default the primary is the pod with the lowest StatefulSet ordinal, the convention
    of primary/replica charts (``postgres-0``, ``redis-0``, ``mysql-0``). When no endpoint
    has an ordinal, it is the first endpoint in set order (lowest hostname, then
    address), which is the same in every process but says nothing about roles: give
    such sets hostnames, or name the primary. After a failover the primary is another
    pod: :meth:`set_primary` (or ``primary=``) names it by ordinal, hostname or address,
    and a role tracker (such as the PostgreSQL one, which asks each server) keeps it
    current.

    A write is ``Request(role="write")``, the key :attr:`WRITE`, or a key equal to one of
    *write_keys*; it goes to the primary, ejected or not (a replica cannot take it), and
    its connect retries stay on the primary. Anything else is a read: round-robin over the
    usable replicas, or the primary when it is alone. Health is judged per role: the
    primary's ejection never spends the panic share that protects the replicas. Dual-stack
    pods count once.

    Args:
        write_keys: Keys that mean "write", compared with ``==`` (so unhashable keys are
            fine as reads).
        primary: The primary's ordinal, hostname or address; ``None``: the lowest ordinal.
    """

    WRITE: Final = _WRITE
    """The key that always means "write", whatever *write_keys* is."""

    __slots__ = ("__weakref__", "_cache", "_counter", "_lock", "_primary", "_watchers", "_write_keys")

    def __init__(
        self, *, write_keys: Iterable[object] = ("write",), primary: int | str | None = None
    ) -> None:
        if isinstance(write_keys, (str, bytes)):
            # ("write") instead of ("write",) would otherwise make every letter a key.
            raise InvalidArgument(
                f"write_keys must be a collection of keys, not a {type(write_keys).__name__}"
            )
        self._write_keys = tuple(write_keys)
        self._counter = itertools.count()
        self._primary: _Primary = _check_primary(primary)
        self._lock = threading.Lock()
        self._watchers = Watchers()
        self._cache: SnapshotCache[_Roles] = SnapshotCache(self._derive, None)
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def _derive(self, endpoints: EndpointSet) -> _Roles:
        return _roles(endpoints, self._primary)

    @property
    def write_keys(self) -> tuple[object, ...]:
        """Keys that select the primary (besides :attr:`WRITE`)."""
        return self._write_keys

    @property
    def primary_name(self) -> int | str | None:
        """The primary as named by :meth:`set_primary` (``None``: the lowest ordinal)."""
        return self._primary

    def set_primary(self, primary: int | str | None) -> None:
        """Name the primary (ordinal, hostname or address; ``None``: the lowest ordinal).

        Takes effect for the next pick; services are told so they re-judge health.

        Raises:
            InvalidName: a negative ordinal or an empty name.
        """
        checked = _check_primary(primary)
        with self._lock:
            if checked == self._primary:
                return
            self._primary = checked
            # Roles depend on the name: derived state of every snapshot is stale.
            self._cache = SnapshotCache(self._derive, None)
        self._watchers.notify()

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call *callback* after every change of the named primary; returns an unsubscribe."""
        return self._watchers.add(callback)

    def is_write(self, key: object) -> bool:
        """True if *key* selects the primary."""
        return key is _WRITE or (key is not None and key in self._write_keys)

    def _roles_of(self, endpoints: EndpointSet) -> _Roles:
        cache = self._cache
        snap, roles = cache.current
        if snap is not endpoints:
            roles = cache.derive(endpoints)
        return roles

    def primary(self, endpoints: EndpointSet) -> Endpoint:
        """The primary of *endpoints*.

        Raises:
            NoEndpointsAvailable: *endpoints* is empty, or the named primary is not in it.
        """
        roles = self._roles_of(endpoints)
        if roles is None:
            raise no_endpoints(endpoints, self)
        if roles[0] is None:
            raise self._no_primary(endpoints)
        return roles[0]

    def replicas(self, endpoints: EndpointSet) -> tuple[Endpoint, ...]:
        """The replicas of *endpoints* (one endpoint per pod)."""
        roles = self._roles_of(endpoints)
        return () if roles is None else roles[1]

    def _no_primary(self, endpoints: EndpointSet) -> NoEndpointsAvailable:
        where = f" of {endpoints.name!r}" if endpoints.name else ""
        return NoEndpointsAvailable(
            f"no primary{where}: {self._primary!r} is not among the {len(endpoints)} endpoints"
        )

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        """Return the primary for a write key, else the next replica.

        Raises:
            NoEndpointsAvailable: *endpoints* is empty (or has no primary, for a write).
        """
        roles = self._roles_of(endpoints)
        if roles is None:
            raise no_endpoints(endpoints, self)
        primary, replicas = roles
        if self.is_write(key) or not replicas:
            if primary is None:
                raise self._no_primary(endpoints)
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

    # -- the request-aware protocol --------------------------------------------------------

    def _wants_primary(self, request: Request) -> bool:
        return request.role == WRITE or self.is_write(request.key)

    def pins(self, request: Request) -> bool:
        """Writes are pinned: their retries stay on the primary."""
        return self._wants_primary(request)

    def health_pools(self, snapshot: EndpointSet) -> Sequence[Sequence[Endpoint]]:
        """The primary alone, and the replicas: each group's health is judged on its own."""
        roles = self._roles_of(snapshot)
        if roles is None or roles[0] is None:
            return ()
        primary = roles[0].identity
        return (
            tuple(ep for ep in snapshot if ep.identity == primary),
            tuple(ep for ep in snapshot if ep.identity != primary),
        )

    def choose(self, request: Request, usable: EndpointSet, snapshot: EndpointSet) -> Endpoint:
        """The primary for a write (from the whole snapshot), else the next usable replica
        not tried yet in this call; the primary when there is no replica."""
        return self._choose(usable, snapshot, self._wants_primary(request), request.exclude)

    def _choose(
        self, usable: EndpointSet, snapshot: EndpointSet, write: bool, exclude: frozenset[str]
    ) -> Endpoint:
        roles = self._roles_of(snapshot)
        if roles is None:
            raise no_endpoints(snapshot, self)
        primary, replicas = roles
        if not write and replicas:
            # Roles come from the whole view: while the primary is ejected, the usable set's
            # lowest ordinal is a replica, and must keep its share of the reads.
            ready = [ep for ep in replicas if ep.identity not in exclude and usable.by_identity(ep.identity)]
            if not ready:
                ready = [ep for ep in replicas if ep.identity not in exclude]
            if ready:
                return ready[next(self._counter) % len(ready)]
        if primary is None:
            raise self._no_primary(snapshot)
        return primary

    def key_picker(self, usable: EndpointSet, snapshot: EndpointSet) -> Callable[[object], Endpoint]:
        """A picker for key-only calls: write keys to the primary, the rest to replicas."""
        return partial(self._pick_key, usable, snapshot)

    def _pick_key(self, usable: EndpointSet, snapshot: EndpointSet, key: object) -> Endpoint:
        return self._choose(usable, snapshot, self.is_write(key), frozenset())

    def __repr__(self) -> str:
        return f"PrimaryReplica(write_keys={self._write_keys!r}, primary={self._primary!r})"


def _check_primary(primary: object) -> _Primary:
    if primary is None:
        return None
    if isinstance(primary, bool) or not isinstance(primary, (int, str)):
        raise InvalidArgument(
            f"primary must be an ordinal (int), a hostname or address (str), or None: {primary!r}"
        )
    if isinstance(primary, int):
        if primary < 0:
            raise InvalidName(f"primary ordinal must be >= 0: {primary!r}")
        return primary
    folded = primary.lower().rstrip(".")
    if not folded:
        raise InvalidName(f"primary name must not be empty: {primary!r}")
    return folded
