"""``Fallback``: try strategies in order until one finds an endpoint."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from ..endpoints import Endpoint, EndpointSet
from ..errors import InvalidArgument, NoEndpointsAvailable
from ..request import Request
from .base import HealthPooling, LeaderRouting, LoadTracking, Pinning, Preparing, Strategy, Watching
from .routing import chooser

__all__ = ["Fallback"]


class Fallback:
    """Ask *first*; when it raises ``NoEndpointsAvailable``, ask the next one.

    ``LeaderNotAvailable`` is a ``NoEndpointsAvailable``, so
    ``Fallback(PartitionLeader(leaders), RoundRobin())`` sends a request whose leader is
    unknown to any pod instead of failing. Other exceptions (a ``TypeError`` for a bad
    key) propagate at once: they are bugs, not missing endpoints. Every strategy gets the
    same request and endpoints. Members may be request-aware strategies or 0.1.0-style
    ``pick(endpoints, key)`` ones.

    ``Fallback`` forwards the optional parts to its members: :meth:`started` and
    :meth:`finished` to every member that tracks load (whichever member made the pick:
    in-flight load is a property of the endpoint), :meth:`prepare` to every member that
    prepares, :meth:`not_leader` to the first member that routes partitions, and
    :meth:`watch` to every member that can be watched. It routes partitions when a member
    does.

    Args:
        first: The preferred strategy.
        *others: Strategies tried in order when the previous ones found nothing.

    Raises:
        InvalidArgument: An argument is a class (not an instance) or has no ``choose`` or
            ``pick`` method.
    """

    __slots__ = ("_choosers", "_preparers", "_trackers", "routes_partitions", "strategies")

    def __init__(self, first: Strategy, *others: Strategy) -> None:
        strategies = (first, *others)
        self._choosers = tuple(chooser(s) for s in strategies)  # validates each
        self.strategies: tuple[Strategy, ...] = strategies
        self._trackers: tuple[LoadTracking, ...] = tuple(s for s in strategies if isinstance(s, LoadTracking))
        self._preparers: tuple[Preparing, ...] = tuple(s for s in strategies if isinstance(s, Preparing))
        self.routes_partitions: bool = any(getattr(s, "routes_partitions", False) for s in strategies)

    def choose(self, request: Request, usable: EndpointSet, snapshot: EndpointSet) -> Endpoint:
        """Return the choice of the first strategy that finds an endpoint.

        Raises:
            NoEndpointsAvailable: Every strategy raised it; the last one's error is
                re-raised (its type kept, e.g. a ``LeaderNotAvailable``), chained to the
                first one's.
        """
        errors: list[NoEndpointsAvailable] = []
        for choose in self._choosers:
            try:
                return choose(request, usable, snapshot)
            except NoEndpointsAvailable as exc:
                errors.append(exc)
        first, last = errors[0], errors[-1]
        if last is first:
            raise last
        raise last from first

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        """0.1.0's protocol: ``choose`` with *key* over *endpoints*."""
        return self.choose(Request(key=key), endpoints, endpoints)

    def health_pools(self, snapshot: EndpointSet) -> Sequence[Sequence[Endpoint]]:
        """The first member's health pools (the roles it routes by), if it has any."""
        for member in self.strategies:
            if isinstance(member, HealthPooling):
                return member.health_pools(snapshot)
        return ()

    def pins(self, request: Request) -> bool:
        """Pinned when any member pins *request*."""
        return any(s.pins(request) for s in self.strategies if isinstance(s, Pinning))

    def prepare(self, endpoints: EndpointSet) -> None:
        """Forward to every member that prepares."""
        for member in self._preparers:
            member.prepare(endpoints)

    def started(self, endpoint: Endpoint) -> None:
        """Forward to every member that tracks load."""
        for tracker in self._trackers:
            tracker.started(endpoint)

    def finished(self, endpoint: Endpoint, *, latency: float | None = None, ok: bool = True) -> None:
        """Forward to every member that tracks load."""
        for tracker in self._trackers:
            tracker.finished(endpoint, latency=latency, ok=ok)

    def not_leader(self, partition: Hashable, hint: int | str | None = None) -> None:
        """Forward to the first member that routes partitions.

        Raises:
            InvalidArgument: no member routes partitions.
        """
        for member in self.strategies:
            if isinstance(member, LeaderRouting):
                member.not_leader(partition, hint)
                return
        raise InvalidArgument(f"{self!r} has no member that routes partitions (PartitionLeader)")

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Watch every member that can be watched; returns one unsubscribe for all."""
        stops = [s.watch(callback) for s in self.strategies if isinstance(s, Watching)]

        def unsubscribe() -> None:
            for stop in stops:
                stop()

        return unsubscribe

    def __repr__(self) -> str:
        return f"Fallback({', '.join(repr(s) for s in self.strategies)})"
