"""The plug points of picking: the strategy protocols and shared helpers.

A strategy is a pure object. Its one required method is
``choose(request, usable, snapshot)`` (:class:`RequestStrategy`): it reads a
:class:`~headless_client.request.Request` (key, partition, role, "any pod", pods already
tried) and two immutable :class:`~headless_client.endpoints.EndpointSet` values, the
*usable* endpoints (not ejected by passive health, panic rule applied) and the whole
*snapshot* (what DNS says), and returns one endpoint. It does no I/O, never blocks, and
may be called from many threads at once. Anything a strategy derives from a snapshot (a
ring, a rotation order, a leader table) is built once per snapshot by
:class:`SnapshotCache` and then only read.

Optional parts, each found by the service by its method name (a strategy implements
those it needs, nothing else):

* ``prepare(endpoints)`` (:class:`Preparing`): build per-snapshot state ahead of the first
  pick; the service calls it off the request path whenever the usable set changes.
* ``started(endpoint)`` / ``finished(endpoint, latency=, ok=)`` (:class:`LoadTracking`):
  calls in flight, and their outcome.
* ``pins(request)`` (:class:`Pinning`): ``True`` when this request must go to one pod on
  every attempt (a write to the primary); connect retries then stay on that pod. Requests
  with an ordinal, hostname or partition are always pinned.
* ``health_pools(snapshot)`` (:class:`HealthPooling`): groups of pods whose health is
  judged separately (the primary, the replicas), so the panic rule of one group never
  spends the share that protects another.
* ``key_picker(usable, snapshot)`` (:class:`KeyPicking`): a callable ``key -> Endpoint``
  for calls that carry only a key, built once per change; ``svc.pick(key)`` calls it
  directly, so the hot path costs one call. (The built-in key-only strategies go further:
  their whole ``svc.pick()`` is one Python frame, see :class:`HotPick`.)
* ``routes_partitions`` (attribute): ``True`` when ``Request.partition`` means something to
  the strategy; a service refuses partition requests otherwise instead of misrouting them.
* ``not_leader(partition, hint)`` and ``watch(callback) -> unsubscribe``
  (:class:`LeaderRouting`, :class:`Watching`): routing inputs that change outside DNS (a
  leader map), and a way to tell the service when they did.

0.1.0's protocol, :class:`Strategy` with ``pick(endpoints, key)``, keeps working: a
strategy that has only ``pick`` is adapted (see :mod:`headless_client.strategies.routing`).

Dual-stack pods appear in a snapshot once per address but share one
:attr:`~headless_client.endpoints.Endpoint.identity`; the built-in strategies count such a
pod once and return its first endpoint in set order (IPv4 before IPv6).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from functools import partial
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from .. import _forksafe
from ..endpoints import Endpoint, EndpointSet
from ..errors import NoEndpointsAvailable
from ..request import Request

__all__ = [
    "Clock",
    "HealthPooling",
    "HotFunction",
    "HotPath",
    "HotPick",
    "KeyAffinity",
    "KeyPicking",
    "LeaderRouting",
    "LoadTracking",
    "Pinning",
    "Preparing",
    "RequestStrategy",
    "SnapshotCache",
    "Strategy",
    "UsableChoice",
    "Watchers",
    "Watching",
    "distinct_pods",
    "no_endpoints",
    "overrides",
    "untried",
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


# --8<-- [start:request-strategy]
@runtime_checkable
class RequestStrategy(Protocol):
    """Chooses one endpoint per call, knowing what the call is (the current protocol).

    Implementations must not do I/O or block, must be safe to call from many threads at
    once, must return a member of *usable* or *snapshot*, and must raise
    :class:`~headless_client.errors.NoEndpointsAvailable` (or a subclass such as
    :class:`~headless_client.errors.LeaderNotAvailable`) when nothing fits. Requests
    pinned by ordinal or hostname never reach a strategy: the service finds the pod.
    """

    def choose(self, request: Request, usable: EndpointSet, snapshot: EndpointSet) -> Endpoint:
        """Return the endpoint for *request*.

        Args:
            request: What the call needs (key, partition, role, any pod, pods to avoid).
            usable: The endpoints not ejected by passive health (panic rule applied).
            snapshot: Every endpoint DNS gave, ejected ones included (a partition's
                leader or a database primary is wanted even while ejected).

        Raises:
            NoEndpointsAvailable: Nothing fits.
            TypeError: The request carries a key of a type the strategy cannot use.
        """
        ...
# --8<-- [end:request-strategy]


@runtime_checkable
class Preparing(Protocol):
    """Optional: build per-snapshot state before the first pick needs it."""

    def prepare(self, endpoints: EndpointSet) -> None:
        """Build what picks over *endpoints* will read (called off the request path)."""
        ...


@runtime_checkable
class Pinning(Protocol):
    """Optional: say which requests must go to one pod on every attempt."""

    def pins(self, request: Request) -> bool:
        """``True`` when retries of *request* must stay on the same pod."""
        ...


@runtime_checkable
class HealthPooling(Protocol):
    """Optional: groups of pods whose health (and panic rule) is judged separately."""

    def health_pools(self, snapshot: EndpointSet) -> Sequence[Sequence[Endpoint]]:
        """Disjoint groups of *snapshot*'s endpoints; endpoints in none form one more group."""
        ...


@runtime_checkable
class KeyAffinity(Protocol):
    """Optional: whether a key keeps reaching the same pod.

    Integrations that keep per-key state on the pods (a sharded cache) need a strategy
    that sends a key to one pod while the pods are unchanged and moves it only when pods
    come or go (consistent hashing); they ask this instead of checking a strategy's type,
    so a user's own consistent-hashing strategy qualifies too.
    """

    def keeps_keys(self) -> bool:
        """``True`` while each key stays on its pod (it moves only when the pods change)."""
        ...


@runtime_checkable
class KeyPicking(Protocol):
    """Optional: a fast picker for calls that carry only a key."""

    def key_picker(self, usable: EndpointSet, snapshot: EndpointSet) -> Callable[[object], Endpoint]:
        """A callable equivalent to ``choose(Request(key=key), usable, snapshot)``."""
        ...


@runtime_checkable
class LeaderRouting(Protocol):
    """Optional: partition routing whose leader map can be corrected by the caller."""

    def not_leader(self, partition: Hashable, hint: int | str | None = None) -> None:
        """A pod answered "not the leader" for *partition*; *hint* names the new leader."""
        ...


@runtime_checkable
class Watching(Protocol):
    """Optional: routing inputs that change outside DNS (a leader map, a primary)."""

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call *callback* (no arguments, must not block) after each change; returns an
        unsubscribe function."""
        ...


# --8<-- [start:load-tracking]
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
# --8<-- [end:load-tracking]


class HotPick:
    """What a service's ``pick()`` reads when a call carries nothing but (maybe) a key.

    A service's ``pick`` is a :data:`HotFunction` bound to one of these, so the whole
    pick, from the call to the endpoint, runs in one Python frame: a built-in strategy's
    function does its own work over :attr:`state` instead of calling the strategy (a
    second frame costs about as much as the pick itself).

    Attributes:
        state: The strategy's state for the current view (its rotation, its table...),
            replaced by one assignment whenever the service publishes a view, so a call
            reads it once and never mixes two views. Before the first view it is the
            strategy's *idle* state, from which every function falls back to :attr:`full`.
        full: ``full(key, fields)``: the service's complete pick, for calls with fields
            (a partition, a pinned pod, a whole request...) and whatever the state
            cannot serve (a service not started, an empty view, a key of an unusual type).
    """

    __slots__ = ("full", "state")

    state: Any
    full: Callable[[object | None, dict[str, Any]], Endpoint]

    def __init__(self, full: Callable[[object | None, dict[str, Any]], Endpoint], state: object) -> None:
        self.full = full
        self.state = state


HotFunction = Callable[..., Endpoint]
"""``function(hot, key=None, **fields) -> Endpoint``: a service's whole ``pick`` when
bound to a :class:`HotPick` (see :meth:`~headless_client.strategies.Router.hot_path`). It
must give what ``choose(Request(key=key), usable, snapshot)`` gives over the view its
state was built from, and hand every call with fields to ``hot.full(key, fields)``."""

HotPath = tuple[HotFunction, Callable[[EndpointSet, EndpointSet], object], object]
"""``(function, build, idle)``: a :data:`HotFunction`, ``build(usable, snapshot)`` giving
its :attr:`HotPick.state` for a view, and the state before any view."""


def overrides(strategy: object, owner: type, names: Sequence[str] = ("pick", "choose", "key_picker")) -> bool:
    """True when *strategy*'s class replaces one of *owner*'s methods *names*: a subclass
    that changed how picks are made must not be served by *owner*'s hot path."""
    cls = type(strategy)
    return any(getattr(cls, name, None) is not getattr(owner, name, None) for name in names)


def no_endpoints(endpoints: EndpointSet, strategy: object) -> NoEndpointsAvailable:
    """The error for an empty snapshot, naming the set and the strategy."""
    where = f" in {endpoints.name!r}" if endpoints.name else ""
    return NoEndpointsAvailable(
        f"no endpoints available{where} ({type(strategy).__name__}: the set is empty)"
    )


class UsableChoice:
    """``choose`` and ``key_picker`` for a strategy whose 0.1.0 ``pick(endpoints, key)``
    already says everything: it picks among the usable endpoints, minus the pods a retry
    already tried, and reads nothing else of the request."""

    __slots__ = ()

    pick: Callable[[EndpointSet, object | None], Endpoint]

    def choose(self, request: Request, usable: EndpointSet, snapshot: EndpointSet) -> Endpoint:
        """``pick`` over the usable endpoints not tried yet in this call."""
        return self.pick(untried(request, usable, snapshot) if request.exclude else usable, request.key)

    def key_picker(self, usable: EndpointSet, snapshot: EndpointSet) -> Callable[[object], Endpoint]:
        """``pick`` bound to *usable*."""
        return partial(self.pick, usable)


class Watchers:
    """The callbacks of a strategy's ``watch()``: added and removed under a lock, called
    (outside it) by :meth:`notify` after a change of the strategy's routing inputs."""

    __slots__ = ("__weakref__", "_callbacks", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: tuple[Callable[[], None], ...] = ()
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def add(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Watch with *callback*; returns the unsubscribe function."""
        with self._lock:
            self._callbacks = (*self._callbacks, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._callbacks = tuple(c for c in self._callbacks if c is not callback)

        return unsubscribe

    def notify(self) -> None:
        """Call every callback."""
        for callback in self._callbacks:
            callback()


def untried(request: Request, usable: EndpointSet, snapshot: EndpointSet) -> EndpointSet:
    """The endpoints a retry may use: *usable* minus ``request.exclude``, else (when that
    leaves nothing) the snapshot's not yet tried, ejected ones included.

    Raises:
        NoEndpointsAvailable: Every endpoint of the snapshot was tried.
    """
    exclude = request.exclude
    if not exclude:
        return usable
    for pool in (usable, snapshot):
        left = [ep for ep in pool if ep.identity not in exclude]
        if left:
            return EndpointSet(left, name=pool.name, ttl=pool.ttl)
    where = f" of {snapshot.name!r}" if snapshot.name else ""
    raise NoEndpointsAvailable(f"no endpoint{where} left to try: all {len(snapshot)} were tried")


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

    __slots__ = ("__weakref__", "_build", "_lock", "_previous", "current")

    current: tuple[EndpointSet | None, D]

    def __init__(self, build: Callable[[EndpointSet], D], empty: D) -> None:
        self._build = build
        self._lock = threading.Lock()
        self.current = (None, empty)
        self._previous: tuple[EndpointSet | None, D] = (None, empty)
        # A fork during a build would leave the child's copy of the lock held forever.
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

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
