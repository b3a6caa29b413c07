"""The plug points of picking: :class:`Strategy`, :class:`LoadTracking`, and shared helpers.

A strategy is a pure object: ``pick(endpoints, key)`` reads an immutable
:class:`~headless_client.endpoints.EndpointSet` and returns one of its endpoints. It does
no I/O, never blocks, and may be called from many threads at once. Anything a strategy
derives from a snapshot (a ring, a rotation order, a leader table) is built once per
snapshot by :class:`SnapshotCache` and then only read.

Dual-stack pods appear in a snapshot once per address but share one
:attr:`~headless_client.endpoints.Endpoint.identity`; the built-in strategies count such a
pod once and return its first endpoint in set order (IPv4 before IPv6).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar, runtime_checkable

from ..endpoints import Endpoint, EndpointSet
from ..errors import NoEndpointsAvailable

__all__ = [
    "Clock",
    "LoadTracking",
    "SnapshotCache",
    "Strategy",
    "distinct_pods",
    "no_endpoints",
]

Clock = Callable[[], float]
"""A zero-argument callable returning seconds on a monotonic scale (``time.monotonic``)."""

D = TypeVar("D")


@runtime_checkable
class Strategy(Protocol):
    """Chooses one endpoint of a snapshot per request.

    Implementations must not do I/O or block, must be safe to call from many threads at
    once, and must raise :class:`~headless_client.errors.NoEndpointsAvailable` (or a
    subclass such as :class:`~headless_client.errors.LeaderNotAvailable`) when nothing
    fits. A key of a type the strategy cannot use raises :class:`TypeError`.
    """

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        """Return one endpoint of *endpoints*.

        Args:
            endpoints: The current snapshot.
            key: Strategy-specific routing input (a sticky key, a partition, ...).

        Returns:
            An endpoint that is a member of *endpoints*.

        Raises:
            NoEndpointsAvailable: The set is empty or no endpoint fits.
            TypeError: *key* has a type the strategy cannot use.
        """
        ...


@runtime_checkable
class LoadTracking(Protocol):
    """Accounting a service reports around each request.

    The service calls :meth:`started` right after it picked *endpoint* and sends the
    request, and :meth:`finished` exactly once when the request completed or failed, on
    any strategy for which ``isinstance(strategy, LoadTracking)`` holds. Both must be
    cheap and thread-safe; they never raise for an endpoint the strategy does not know.
    """

    def started(self, endpoint: Endpoint) -> None:
        """Record that a request to *endpoint* is now in flight."""
        ...

    def finished(self, endpoint: Endpoint, *, latency: float | None = None, ok: bool = True) -> None:
        """Record that a request to *endpoint* ended.

        Args:
            endpoint: The endpoint passed to :meth:`started`.
            latency: Seconds the request took, when measured.
            ok: ``False`` when the request failed (connect error, timeout, bad status).
        """
        ...


def no_endpoints(endpoints: EndpointSet, strategy: object) -> NoEndpointsAvailable:
    """The error for an empty snapshot, naming the set and the strategy."""
    where = f" in {endpoints.name!r}" if endpoints.name else ""
    return NoEndpointsAvailable(
        f"no endpoints available{where} ({type(strategy).__name__}: the set is empty)"
    )


def distinct_pods(endpoints: EndpointSet) -> tuple[Endpoint, ...]:
    """The first endpoint of each distinct identity, in set order.

    Returns the set's own tuple when every identity is distinct (the common case), so
    nothing is copied.
    """
    eps = endpoints.endpoints
    firsts: dict[str, Endpoint] = {}
    for ep in eps:
        firsts.setdefault(ep.identity, ep)
    if len(firsts) == len(eps):
        return eps
    return tuple(firsts.values())


class SnapshotCache(Generic[D]):
    """State derived from a snapshot, built once per snapshot and then only read.

    Readers take :attr:`current` once per call (``snap, derived = cache.current``) and
    use *derived* when ``snap is endpoints``; otherwise they call :meth:`derive`. The
    pair is replaced by one assignment, so a reader never sees a derived value of another
    snapshot. The previous pair is kept too: while a new snapshot is being published,
    calls still holding the old one reuse its state instead of rebuilding it and
    evicting the new one (a ring over 1000 pods costs tens of milliseconds).

    Args:
        build: Computes the derived state of a snapshot. Called under a lock, at most
            once per snapshot while that snapshot stays one of the last two.
        empty: The derived value stored before any snapshot was seen.
    """

    __slots__ = ("_build", "_lock", "_previous", "current")

    current: tuple[EndpointSet | None, D]

    def __init__(self, build: Callable[[EndpointSet], D], empty: D) -> None:
        self._build = build
        self._lock = threading.Lock()
        self.current = (None, empty)
        self._previous: tuple[EndpointSet | None, D] = (None, empty)

    def derive(self, endpoints: EndpointSet) -> D:
        """The derived state of *endpoints*, building it if it is not one of the last two."""
        snap, derived = self._previous
        if snap is endpoints:
            return derived
        # The lock only serialises builds, so eight threads meeting a new snapshot build
        # its ring once; the hot path (``current`` hit) never takes it.
        with self._lock:
            current = self.current
            if current[0] is endpoints:
                return current[1]
            snap, derived = self._previous
            if snap is endpoints:
                return derived
            derived = self._build(endpoints)
            self._previous = current
            self.current = (endpoints, derived)
            return derived
