"""``Fallback``: try strategies in order until one finds an endpoint."""

from __future__ import annotations

from ..endpoints import Endpoint, EndpointSet
from ..errors import NoEndpointsAvailable
from .base import LoadTracking, Strategy

__all__ = ["Fallback"]


class Fallback:
    """Ask *first*; when it raises ``NoEndpointsAvailable``, ask the next one.

    ``LeaderNotAvailable`` is a ``NoEndpointsAvailable``, so
    ``Fallback(PartitionLeader(leaders), RoundRobin())`` sends a request whose leader is
    unknown to any pod instead of failing. Other exceptions (a ``TypeError`` for a bad
    key) propagate at once: they are bugs, not missing endpoints. Every strategy gets the
    same *endpoints* and *key*.

    ``Fallback`` is itself :class:`~headless_client.strategies.LoadTracking`: it forwards
    :meth:`started` and :meth:`finished` to every member that tracks load, whichever
    member made the pick, because in-flight load is a property of the endpoint.

    Args:
        first: The preferred strategy.
        *others: Strategies tried in order when the previous ones found nothing.

    Raises:
        TypeError: An argument has no ``pick`` method.
    """

    __slots__ = ("_trackers", "strategies")

    def __init__(self, first: Strategy, *others: Strategy) -> None:
        strategies = (first, *others)
        for strategy in strategies:
            if not isinstance(strategy, Strategy):
                raise TypeError(
                    f"Fallback takes strategies (objects with a pick method), "
                    f"not {type(strategy).__name__}: {strategy!r}"
                )
        self.strategies: tuple[Strategy, ...] = strategies
        self._trackers: tuple[LoadTracking, ...] = tuple(s for s in strategies if isinstance(s, LoadTracking))

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        """Return the pick of the first strategy that finds an endpoint.

        Raises:
            NoEndpointsAvailable: Every strategy raised it; the last one's error is
                re-raised (its type kept, e.g. a ``LeaderNotAvailable``), chained to the
                first one's.
        """
        errors: list[NoEndpointsAvailable] = []
        for strategy in self.strategies:
            try:
                return strategy.pick(endpoints, key)
            except NoEndpointsAvailable as exc:
                errors.append(exc)
        first, last = errors[0], errors[-1]
        if last is first:
            raise last
        raise last from first

    def started(self, endpoint: Endpoint) -> None:
        """Forward to every member that tracks load."""
        for tracker in self._trackers:
            tracker.started(endpoint)

    def finished(self, endpoint: Endpoint, *, latency: float | None = None, ok: bool = True) -> None:
        """Forward to every member that tracks load."""
        for tracker in self._trackers:
            tracker.finished(endpoint, latency=latency, ok=ok)

    def __repr__(self) -> str:
        return f"Fallback({', '.join(repr(s) for s in self.strategies)})"
