"""Route each partition to its leader pod."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from itertools import count
from types import MappingProxyType
from typing import Generic, TypeVar, cast

from .. import _forksafe
from ..endpoints import Endpoint, EndpointSet
from ..errors import LeaderNotAvailable
from ..request import Request
from .base import Clock, SnapshotCache, UsableChoice, Watchers, distinct_pods, no_endpoints, untried

__all__ = ["LeaderMap", "LeaderSource", "PartitionLeader"]

P = TypeVar("P", bound=Hashable)
Leader = int | str
LeaderMap = Mapping[P, Leader]
"""partition -> leader ordinal (``int``) or pod hostname (``str``, FQDN or first label)."""
LeaderSource = Mapping[P, Leader] | Callable[[], Mapping[P, Leader]]
"""A leader map, or a zero-argument callable returning one."""


def _checked(leaders: object) -> dict[Hashable, Leader]:
    """A private copy of a leader map, validated; raises ``TypeError``/``ValueError``."""
    if not isinstance(leaders, Mapping):
        raise TypeError(
            f"leaders must be a mapping partition -> ordinal or hostname, "
            f"not {type(leaders).__name__}: {leaders!r}"
        )
    out: dict[Hashable, Leader] = {}
    for partition, leader in leaders.items():
        if isinstance(leader, bool) or not isinstance(leader, (int, str)):
            raise TypeError(
                f"leader of partition {partition!r} must be an ordinal (int) or a hostname "
                f"(str), not {type(leader).__name__}: {leader!r}"
            )
        if isinstance(leader, int) and leader < 0:
            raise ValueError(f"leader ordinal of partition {partition!r} must be >= 0: {leader!r}")
        if isinstance(leader, str):
            leader = leader.lower().rstrip(".")
            if not leader:
                raise ValueError(f"leader hostname of partition {partition!r} is empty")
        out[partition] = leader
    return out


def _hostname_index(endpoints: EndpointSet) -> dict[str, Endpoint]:
    """hostname (FQDN and first label) -> first endpoint with it, built once per snapshot.

    Same rule as :meth:`EndpointSet.by_hostname`, but O(1) per lookup instead of a scan.
    """
    index: dict[str, Endpoint] = {}
    for ep in endpoints:
        if ep.hostname is not None:
            index.setdefault(ep.hostname, ep)
            index.setdefault(ep.hostname.split(".", 1)[0], ep)
    return index


class PartitionLeader(UsableChoice, Generic[P]):
    """The leader pod of the partition given as key: ``pick(endpoints, key=partition)``.

    *leaders* maps a partition (any hashable: ``3``, ``("orders", 3)``) to its leader,
    given as a StatefulSet ordinal (``int``) or a pod hostname (``str``, FQDN or first
    label such as ``"kafka-2"``). It is either a mapping, copied at construction (later
    changes to it are not seen), or a zero-argument callable returning one, called at
    construction and re-read by :meth:`refresh_leaders` and :meth:`not_leader`, at most
    once per *min_reread_interval*.

    There is no silent fallback: a partition without a known leader, or whose leader is
    not in the snapshot, raises :class:`~headless_client.errors.LeaderNotAvailable`.
    Wrap in :class:`~headless_client.strategies.Fallback` to send such requests elsewhere.

    Errors of the callable: at construction they propagate. Later, :meth:`refresh_leaders`
    and :meth:`not_leader` re-raise them unchanged after keeping the previous map intact
    (a hint given to :meth:`not_leader` is still applied). A callable returning something
    that is not a valid map raises ``TypeError``/``ValueError`` the same way.

    A partition's endpoint is resolved once per (snapshot, leader map) pair and memoised,
    so a pick is one dict lookup whatever the size of the set or of the map.

    Args:
        leaders: The leader map, or a callable returning it.
        min_reread_interval: Minimum seconds between two calls of the callable.
        clock: Monotonic seconds, for the rate limit.
        read_now: Call a callable *leaders* at construction (the default). With
            ``False`` the map starts empty (every partition: ``LeaderNotAvailable``) until
            :meth:`refresh_leaders` reads it, not rate-limited the first time: for a
            source that asks the service this strategy routes for (metadata from any
            pod), which cannot answer before the service has started.

    Raises:
        TypeError: *leaders* is neither a mapping nor a callable, or holds a leader that
            is neither an ``int`` nor a ``str``.
        ValueError: A leader ordinal is negative or a hostname empty, or
            *min_reread_interval* is negative.
    """

    __slots__ = (
        "__weakref__",
        "_any_cache",
        "_cache",
        "_clock",
        "_counter",
        "_last_read",
        "_leaders",
        "_lock",
        "_memo",
        "_min_interval",
        "_source",
        "_watchers",
    )

    #: ``Request.partition`` means something here: a service routes partition calls to it.
    routes_partitions = True

    def __init__(
        self,
        leaders: LeaderSource[P],
        *,
        min_reread_interval: float = 1.0,
        clock: Clock = time.monotonic,
        read_now: bool = True,
    ) -> None:
        if not min_reread_interval >= 0:
            raise ValueError(f"min_reread_interval must be >= 0 seconds: {min_reread_interval!r}")
        self._min_interval = float(min_reread_interval)
        self._clock = clock
        self._lock = threading.Lock()
        if isinstance(leaders, Mapping):
            self._source: Callable[[], Mapping[P, Leader]] | None = None
            self._leaders = _checked(leaders)
        elif callable(leaders):
            self._source = leaders
            # read_now=False: the source may need the very service this strategy routes
            # for (metadata asked of any pod); it is read by refresh_leaders() later.
            self._leaders = _checked(leaders()) if read_now else {}
        else:
            raise TypeError(
                f"leaders must be a mapping or a callable returning one, "
                f"not {type(leaders).__name__}: {leaders!r}"
            )
        self._last_read = clock() if read_now or self._source is None else -math.inf
        self._cache: SnapshotCache[dict[str, Endpoint]] = SnapshotCache(_hostname_index, {})
        # (snapshot, leader map, partition -> endpoint): picks resolved for that pair.
        self._memo: tuple[EndpointSet | None, dict[Hashable, Leader], dict[object, Endpoint]] = (
            None,
            {},
            {},
        )
        # "Any pod" calls (metadata, probes) rotate over the usable pods.
        self._counter = count()
        self._any_cache: SnapshotCache[tuple[Endpoint, ...]] = SnapshotCache(distinct_pods, ())
        self._watchers = Watchers()
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    @property
    def leaders(self) -> Mapping[P, int | str]:
        """The current leader map (read-only view; hostnames folded to lower case)."""
        return cast("Mapping[P, int | str]", MappingProxyType(self._leaders))

    def leader_of(self, partition: P) -> int | str | None:
        """The leader ordinal or hostname of *partition*, or ``None`` when unknown."""
        return self._leaders.get(partition)

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        """Return the endpoint of the leader of partition *key*.

        Raises:
            TypeError: *key* is ``None`` or not hashable.
            LeaderNotAvailable: The partition has no known leader, or the leader is not
                in *endpoints* (including an empty set).
        """
        memo_snap, memo_leaders, memo = self._memo
        leaders = self._leaders  # one read: a refresh replaces the whole dict
        if memo_snap is endpoints and memo_leaders is leaders:
            try:
                endpoint = memo.get(key)
            except TypeError:
                endpoint = None  # unhashable: the slow path says so
            if endpoint is not None:
                return endpoint
        return self._resolve(endpoints, key, leaders)

    def _resolve(
        self, endpoints: EndpointSet, partition: object, leaders: dict[Hashable, Leader]
    ) -> Endpoint:
        """First pick of a partition for this (snapshot, map) pair, or an error."""
        if partition is None:
            raise TypeError("PartitionLeader.pick needs key=<partition>, got None")
        try:
            leader = leaders.get(partition)
        except TypeError:
            raise TypeError(
                f"partition must be hashable, not {type(partition).__name__}: {partition!r}"
            ) from None
        where = f" in {endpoints.name!r}" if endpoints.name else ""
        if leader is None:
            raise LeaderNotAvailable(f"no leader known for partition {partition!r}{where}")
        snap, by_hostname = self._cache.current
        if snap is not endpoints:
            by_hostname = self._cache.derive(endpoints)
        if isinstance(leader, int):
            endpoint = endpoints.by_ordinal(leader)
            what = f"ordinal {leader}"
        else:
            endpoint = by_hostname.get(leader)
            what = f"hostname {leader!r}"
        if endpoint is None:
            if not endpoints:
                raise LeaderNotAvailable(
                    f"leader of partition {partition!r} ({what}) is not available: no endpoints{where}"
                )
            raise LeaderNotAvailable(
                f"leader of partition {partition!r} ({what}) is not among the "
                f"{len(endpoints)} endpoints{where}"
            )
        memo_snap, memo_leaders, memo = self._memo
        if memo_snap is not endpoints or memo_leaders is not leaders:
            # A new (snapshot, map) pair starts a new memo, published by one assignment.
            memo = {}
            self._memo = (endpoints, leaders, memo)
        memo[partition] = endpoint
        return endpoint

    def refresh_leaders(self, *, force: bool = False) -> bool:
        """Re-read the leader map from the callable, unless read within the interval.

        Args:
            force: Ignore *min_reread_interval*.

        Returns:
            ``True`` when the map was re-read; ``False`` when rate-limited or when
            *leaders* was a plain mapping.

        Raises:
            Exception: Whatever the callable raised (the previous map is kept).
        """
        if self._source is None:
            return False
        with self._lock:
            now = self._clock()
            if not force and now - self._last_read < self._min_interval:
                return False
            # Stamp before calling: a failing source is retried at the same rate, not on
            # every request.
            self._last_read = now
            fresh = _checked(self._source())
            changed = fresh != self._leaders
            self._leaders = fresh  # one assignment; readers hold either map whole
        if changed:
            self._watchers.notify()
        return True

    def not_leader(self, partition: P, hint: int | str | None = None) -> None:
        """Handle a "not the leader" answer for *partition*.

        Re-reads the map (rate-limited, see :meth:`refresh_leaders`), then applies *hint*
        (the new leader, when the pod named one) at once, regardless of the rate limit:
        the pod's word is newer than any map.

        Args:
            partition: The partition whose request was refused.
            hint: The new leader's ordinal or hostname, if known.

        Raises:
            TypeError: *partition* is not hashable, or *hint* is neither int nor str.
            ValueError: *hint* is a negative ordinal or an empty hostname.
            Exception: Whatever the callable raised (the hint is still applied).
        """
        try:
            hash(partition)  # fail before touching any state
        except TypeError:
            raise TypeError(
                f"partition must be hashable, not {type(partition).__name__}: {partition!r}"
            ) from None
        checked = _checked({partition: hint}) if hint is not None else None
        try:
            self.refresh_leaders()
        finally:
            if checked is not None:
                with self._lock:
                    updated = dict(self._leaders)
                    updated.update(checked)
                    changed = updated != self._leaders
                    self._leaders = updated
                if changed:
                    self._watchers.notify()

    # -- the request-aware protocol --------------------------------------------------------

    def choose(self, request: Request, usable: EndpointSet, snapshot: EndpointSet) -> Endpoint:
        """The leader of ``request.partition`` (from the whole snapshot: the leader is
        wanted even while ejected); for ``any_pod`` calls, the usable pods in rotation; for
        a bare key (0.1.0's ``pick(key)``), the leader of partition *key* among the usable
        pods.

        Raises:
            LeaderNotAvailable: no leader known for the partition, or it is not in the view.
            TypeError: neither a partition, a key nor ``any_pod`` was given.
        """
        if request.partition is not None:
            return self.pick(snapshot, request.partition)
        if request.any_pod:
            pool = untried(request, usable, snapshot) if request.exclude else usable
            snap, pods = self._any_cache.current
            if snap is not pool:
                pods = self._any_cache.derive(pool)
            if not pods:
                raise no_endpoints(pool, self)
            return pods[next(self._counter) % len(pods)]
        if request.key is None:
            raise TypeError(
                "PartitionLeader needs partition= (the leader's partition), or any_pod=True "
                "for a call any pod can serve (metadata, probes)"
            )
        return self.pick(usable, request.key)


    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call *callback* after every change of the leader map; returns an unsubscribe."""
        return self._watchers.add(callback)


    def __repr__(self) -> str:
        source = "callable" if self._source is not None else f"{len(self._leaders)} partitions"
        return f"PartitionLeader({source})"
