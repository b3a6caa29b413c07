"""``PreferZone``: send calls to pods in the client's own zone, others when it has too few.

Cross-zone traffic costs money in most clouds and adds a millisecond or so per call. An
EndpointSlice source (:mod:`headless_client.contrib.kubernetes`) gives every endpoint its
``zone`` and, when the Service uses topology-aware routing, its ``zone_hints``; DNS gives
neither, so over DNS this strategy finds no local pod and simply delegates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

from ..endpoints import Endpoint, EndpointSet
from ..errors import InvalidName
from ..request import Request
from .base import KeyPicking, LoadTracking, Pinning, Preparing, SnapshotCache, Strategy, untried
from .round_robin import RoundRobin
from .routing import chooser

__all__ = ["PreferZone", "local_endpoints"]

_EMPTY = EndpointSet()


def local_endpoints(endpoints: EndpointSet, zone: str | None, *, hints: bool = True) -> EndpointSet:
    """The endpoints that serve *zone*.

    With *hints*, when **every** endpoint carries topology hints (``zone_hints``, from the
    slices' ``hints.forZones``), those hinted for *zone*: the EndpointSlice controller
    balanced them across zones by capacity, and kube-proxy reads them the same way (it
    ignores hints unless all endpoints have them). Otherwise the endpoints whose ``zone``
    is *zone*. A *zone* of None has no local endpoints.
    """
    if zone is None or not endpoints:
        return _EMPTY
    eps = endpoints.endpoints
    if hints and all(ep.zone_hints for ep in eps):
        local = [ep for ep in eps if zone in ep.zone_hints]
    else:
        local = [ep for ep in eps if ep.zone == zone]
    if len(local) == len(eps):
        return endpoints
    return EndpointSet(local, name=endpoints.name, ttl=endpoints.ttl)


class PreferZone:
    """Own zone first: *then* picks among the usable pods of *zone* while there are at least
    *min_local* of them, else among all usable pods (every zone).

    Retries (``request.exclude``) leave the tried pods out first, so a call that failed on a
    local pod tries another local pod before leaving the zone. Topology hints are respected
    when every endpoint has them (see :func:`local_endpoints`). Terminating pods never get
    new work anyway (the service leaves them out of the usable set).

    Args:
        zone: this client's zone (``topology.kubernetes.io/zone`` of its node: see
            ``docs/kubernetes.md`` for where to get it); None: unknown, every pick goes to
            *then* over all pods.
        then: the strategy used inside the chosen group (default :class:`RoundRobin`);
            request-aware or 0.1.0-style. Its optional parts (load tracking, pinning,
            preparation, key picking) are forwarded.
        min_local: the fewest local pods (distinct identities) worth staying in the zone
            for: with 1 (default) any local pod keeps calls local; with 2, a zone down to
            one pod sends calls everywhere instead of overloading that pod.
        hints: respect topology hints when every endpoint has them.

    Raises:
        InvalidName: *zone* is not a non-empty str or None, or *min_local* < 1.
        InvalidArgument: *then* is not a strategy instance.
    """

    __slots__ = ("_cache", "_choose", "_tracker", "hints", "min_local", "then", "zone")

    routes_partitions = False

    def __init__(
        self, zone: str | None, then: Strategy | None = None, *, min_local: int = 1, hints: bool = True
    ) -> None:
        if zone is not None and (not isinstance(zone, str) or not zone):
            raise InvalidName(f"zone must be a non-empty str or None: {zone!r}")
        if isinstance(min_local, bool) or not isinstance(min_local, int) or min_local < 1:
            raise InvalidName(f"min_local must be an int >= 1: {min_local!r}")
        self.zone = zone
        self.then: Strategy = then if then is not None else RoundRobin()
        self._choose = chooser(self.then)  # validates it
        self._tracker = self.then if isinstance(self.then, LoadTracking) else None
        self.min_local = min_local
        self.hints = bool(hints)
        self._cache: SnapshotCache[EndpointSet] = SnapshotCache(self.candidates, _EMPTY)

    def candidates(self, usable: EndpointSet) -> EndpointSet:
        """The pods a call may go to: the local ones if there are enough, else *usable*."""
        local = local_endpoints(usable, self.zone, hints=self.hints)
        if local is usable:
            return usable
        if len({ep.identity for ep in local}) < self.min_local:
            return usable
        return local

    def _group(self, usable: EndpointSet) -> EndpointSet:
        snap, group = self._cache.current
        if snap is not usable:
            group = self._cache.derive(usable)
        return group

    def choose(self, request: Request, usable: EndpointSet, snapshot: EndpointSet) -> Endpoint:
        """*then*'s choice among the candidates (local pods first).

        Raises:
            NoEndpointsAvailable: nothing usable, or everything tried.
        """
        if request.exclude:
            left = untried(request, usable, snapshot)
            # Tried pods are out already: *then* must not fall back to them.
            return self._choose(replace(request, exclude=frozenset()), self.candidates(left), snapshot)
        return self._choose(request, self._group(usable), snapshot)

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        """0.1.0's protocol: ``choose`` with *key* over *endpoints*."""
        return self.choose(Request(key=key), endpoints, endpoints)

    def key_picker(self, usable: EndpointSet, snapshot: EndpointSet) -> Callable[[object], Endpoint]:
        """*then*'s key picker over the candidates of *usable* (built once per change)."""
        group = self._group(usable)
        then = self.then
        if isinstance(then, KeyPicking):
            return then.key_picker(group, snapshot)
        return partial(_by_key, self._choose, group, snapshot)

    def prepare(self, endpoints: EndpointSet) -> None:
        """Compute the candidates of *endpoints* and let *then* prepare for them."""
        group = self._group(endpoints)
        if isinstance(self.then, Preparing):
            self.then.prepare(group)

    def pins(self, request: Request) -> bool:
        """As *then* says."""
        then = self.then
        return isinstance(then, Pinning) and then.pins(request)

    def started(self, endpoint: Endpoint) -> None:
        """Forwarded to *then* when it tracks load."""
        if self._tracker is not None:
            self._tracker.started(endpoint)

    def finished(self, endpoint: Endpoint, *, latency: float | None = None, ok: bool = True) -> None:
        """Forwarded to *then* when it tracks load."""
        if self._tracker is not None:
            self._tracker.finished(endpoint, latency=latency, ok=ok)

    def __repr__(self) -> str:
        return f"PreferZone({self.zone!r}, then={self.then!r}, min_local={self.min_local})"


def _by_key(
    choose: Callable[[Request, EndpointSet, EndpointSet], Endpoint],
    usable: EndpointSet,
    snapshot: EndpointSet,
    key: object,
) -> Endpoint:
    return choose(Request(key=key), usable, snapshot)

