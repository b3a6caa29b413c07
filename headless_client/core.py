"""The sans-I/O core of a live service: everything a service decides, and no I/O.

A :class:`ServiceCore` holds the state of one live service: the published view (the
snapshot DNS gave and the usable endpoints after passive health), the strategy (through
its :class:`~headless_client.strategies.Router`), health, the refresh schedule and its
empty-grace rules, the lifecycle (new, starting, running, closed), manual refresh
tickets, the event queue and subscribers, and connect plans. It imports nothing from the
shells, builds no resolver, reads no file, environment or clock: time is passed in.

The sync and asyncio services each *own* one and drive it: they ask
:meth:`~ServiceCore.next_action` what to do next (:class:`Resolve`, :class:`WaitUntil`,
:data:`STOP`), do it, and report back (:meth:`~ServiceCore.resolved`); they deliver what
:meth:`~ServiceCore.take_events` returns and dial what a :class:`~headless_client.connect.ConnectPlan`
says. The behaviour therefore lives here once, and the drivers are short loops.

Thread safety: reading (``quick``, :meth:`pick`, :attr:`view`) takes no lock: a view is
an immutable value published by one assignment. Everything else is serialised by one
lock, never held while a callback or I/O runs. Shells learn that they should re-plan
(an early refresh was asked, an ejection began or ended, a manual refresh, close)
through *listeners* they register: zero-argument callables that must not block.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final, Literal

from . import _forksafe
from .connect import ConnectPlan, ConnectPolicy
from .endpoints import Endpoint, EndpointSet
from .errors import (
    ConnectAborted,
    InvalidArgument,
    InvalidName,
    ResolutionError,
    ServiceClosed,
    ServiceNotFound,
    ServiceNotStarted,
)
from .events import EndpointsChanged, Event
from .health import HealthPolicy, HealthTracker
from .refresh import RefreshPolicy, RefreshState
from .request import Request
from .strategies.routing import Router

__all__ = [
    "STOP",
    "Phase",
    "Resolve",
    "ServiceCore",
    "Subscriber",
    "View",
    "WaitUntil",
]

log = logging.getLogger("headless_client.service")

Phase = Literal["new", "starting", "running", "closed"]
Subscriber = Callable[[EndpointSet, EndpointSet], Any]
"""0.1.0's subscriber: ``callback(old, new)`` on every change of the view."""


@dataclass(frozen=True, slots=True)
class View:
    """What picks read: the snapshot from DNS and the endpoints usable now."""

    snapshot: EndpointSet
    usable: EndpointSet


@dataclass(frozen=True, slots=True)
class Resolve:
    """Resolve the service now; *previous* is the view it replaces (for cheap refreshes)."""

    previous: EndpointSet


@dataclass(frozen=True, slots=True)
class WaitUntil:
    """Nothing to do before *deadline* (on the core's clock), unless a listener fires."""

    deadline: float


def _not_started(core: ServiceCore, key: object) -> Endpoint:
    raise core._not_started_error()


class _Stop:
    __slots__ = ()

    def __repr__(self) -> str:
        return "STOP"


#: The service is closed: the driver stops.
STOP: Final = _Stop()

Action = Resolve | WaitUntil | _Stop


class ServiceCore:
    """The decisions of one live service (see the module docs).

    Args:
        name: The service's FQDN (as the resolver qualified it).
        port: The port as given (a name for SRV, a number for A/AAAA).
        strategy: A strategy instance (request-aware or 0.1.0-style).
        refresh: Refresh timing.
        health: Passive health (ejection) settings.
        connect: Default connect settings.

    Raises:
        InvalidArgument: *strategy* is not a strategy instance.
    """

    def __init__(
        self,
        name: str,
        port: int | str,
        *,
        strategy: object,
        refresh: RefreshPolicy,
        health: HealthPolicy,
        connect: ConnectPolicy,
    ) -> None:
        self.name = name
        self.port = port
        self.router = Router(strategy)
        self.refresh_policy = refresh
        self.health_policy = health
        self.connect_policy = connect
        self._lock = threading.Lock()
        self._schedule = RefreshState(refresh, name)
        self._health = HealthTracker(health)
        empty = EndpointSet(name=name)
        self.view = View(empty, empty)
        #: ``(picker, argument)`` for calls that carry only a key (the hot path):
        #: ``picker(argument, key)`` is the pick. One tuple, replaced by one assignment, so
        #: a reader never pairs a picker with another view's argument.
        self.hot: tuple[Callable[[Any, object], Endpoint], Any] = (_not_started, self)
        self.phase: Phase = "new"
        # A refresh() before start() resolves once without starting: picks then work.
        self._resolved_once = False
        self._next_refresh = 0.0
        self._early = False
        self._health_wake = math.inf
        self._in_flight = False
        # The latest time a driver passed in: what "now" means for work that arrives
        # without a clock reading (a leader map changed).
        self._now = 0.0
        self._ticket_in_flight = 0
        self._wanted = 0
        self._served = 0
        self.last_error: BaseException | None = None
        self._events: collections.deque[Event] = collections.deque()
        self._subscribers: tuple[Subscriber, ...] = ()
        self._listeners: tuple[Callable[[], None], ...] = ()
        # The strategy may be shared and long-lived: it must not keep this core alive.
        self_ref = weakref.WeakMethod(self._routing_changed)

        def routing_changed() -> None:
            method = self_ref()
            if method is not None:
                method()

        self._unwatch = self.router.watch(routing_changed)
        _forksafe.register(self)

    # -- reading (no lock) -------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self.phase == "closed"

    @property
    def resolving(self) -> bool:
        """True while a resolution begun by the driver has not ended."""
        return self._in_flight

    @property
    def strategy(self) -> object:
        """The strategy as given."""
        return self.router.strategy

    def pick(self, request: Request) -> Endpoint:
        """The endpoint for *request* from the current view.

        Raises:
            ServiceNotStarted: the service was never started.
            EndpointNotFound: a pinned pod is not in the view.
            NoEndpointsAvailable / LeaderNotAvailable: nothing fits.
        """
        if self.phase == "new" and not self._resolved_once:
            raise self._not_started_error()
        view = self.view
        return self.router.choose(request, view.usable, view.snapshot)

    def pins(self, request: Request) -> bool:
        """True when retries of *request* must stay on one pod."""
        return self.router.pins(request)

    def endpoint(self, ordinal: int | None = None, hostname: str | None = None) -> Endpoint:
        """A specific pod by ordinal or hostname, ejected or not.

        Raises:
            InvalidName: neither or both given, or a bad ordinal.
            ServiceNotStarted: the service was never started.
            EndpointNotFound: no such pod in the view.
        """
        if (ordinal is None) == (hostname is None):
            raise InvalidName("pass exactly one of ordinal= or hostname=")
        request = Request(ordinal=ordinal, hostname=hostname)
        if self.phase == "new" and not self._resolved_once:
            raise self._not_started_error()
        return self.router.pinned_pod(request, self.view.snapshot)

    def quick(self, key: object | None = None) -> Endpoint:
        """The pick for a call that carries only *key* (what ``svc.pick(key)`` returns)."""
        picker, argument = self.hot
        return picker(argument, key)

    def _not_started_error(self) -> ServiceNotStarted:
        return ServiceNotStarted(
            f"{self.name}: the service is not started; call start() or use it in a "
            f"'with' (or 'async with') block before picking"
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def begin_start(self) -> bool:
        """True if the caller must do the first resolution now; False when another caller
        is doing it or it is done (wait for :attr:`phase` to leave ``"starting"``).

        Raises:
            ServiceClosed: the service is closed.
        """
        with self._lock:
            if self.phase == "closed":
                raise self.closed_error("start")
            if self.phase == "new":
                self.phase = "starting"
                return True
            return False

    def start_done(self, *, ok: bool = True) -> None:
        """The first resolution ended; *ok* False (an unexpected error) makes the service
        startable again."""
        with self._lock:
            if self.phase == "starting":
                self.phase = "running" if ok else "new"
        self._notify()

    def close(self) -> bool:
        """Close; True if this call closed it (False if it already was)."""
        with self._lock:
            if self.phase == "closed":
                return False
            self.phase = "closed"
            self._events.clear()
        if self._unwatch is not None:
            self._unwatch()
        self._notify()
        return True

    def closed_error(self, what: str) -> ServiceClosed:
        """The error for *what* (``"refresh"``...) on a closed service."""
        return ServiceClosed(f"{self.name}: cannot {what}: the service is closed")

    # -- refresh schedule (the driver's loop) --------------------------------------------------

    def next_action(self, now: float) -> Action:
        """What the refresher does now: resolve, wait, or stop."""
        rebuild = False
        with self._lock:
            self._now = now
            if self.phase == "closed":
                return STOP
            if self._in_flight or self.phase != "running":
                return WaitUntil(math.inf)
            if now >= self._health_wake:
                rebuild = True
        if rebuild:
            self._health_expired(now)
        with self._lock:
            if self.closed:  # closed meanwhile, by another thread
                return STOP
            due = self._next_refresh
            if self._early:
                due = min(due, self._schedule.earliest_early_refresh(now))
            if self._wanted > self._served or now >= due:
                return self._begin_resolve()
            return WaitUntil(min(due, self._health_wake))

    def due(self, now: float) -> bool:
        """True when :meth:`next_action` would start a resolution (or rebuild health) at
        *now*; a pure question, for drivers and tests that wait for a quiet service."""
        with self._lock:
            if self.phase != "running" or self._in_flight:
                return False
            due = self._next_refresh
            if self._early:
                due = min(due, self._schedule.earliest_early_refresh(now))
            return self._wanted > self._served or now >= due or now >= self._health_wake

    def begin_resolve(self) -> Resolve:
        """Start a resolution outside the schedule (the first one, in ``start()``)."""
        with self._lock:
            return self._begin_resolve()

    def _begin_resolve(self) -> Resolve:
        # Under the lock.
        self._in_flight = True
        self._early = False
        self._ticket_in_flight = self._wanted
        return Resolve(self.view.snapshot)

    def resolved(self, now: float, answer: EndpointSet | None, error: BaseException | None) -> None:
        """The resolution begun by :meth:`next_action` (or :meth:`begin_resolve`) ended.

        Exactly one of *answer* and *error* is set; an error that is not a
        :class:`ResolutionError` is a bug somewhere below and is treated as one (logged
        with its traceback) so the refresher never dies of it.
        """
        if error is not None and not isinstance(error, ResolutionError):
            log.error(
                "%s: refresh failed unexpectedly", self.name, exc_info=error,
                extra={"service": self.name, "reason": "unexpected"},
            )
            error = ResolutionError(f"{self.name}: refresh failed unexpectedly: {error!r}")
        with self._lock:
            self._now = now
            self._in_flight = False
            if self.phase == "closed":
                self._served = max(self._served, self._ticket_in_flight)
                return
            first = not self._resolved_once
            self._resolved_once = True
            schedule = self._schedule
            if error is None and answer is not None:
                decision = schedule.on_answer(answer, now)
            elif isinstance(error, ServiceNotFound):
                decision = schedule.on_not_found(now)
            else:
                assert error is not None
                decision = schedule.on_error(error, now)
            if decision.publish is not None:
                old = self.view.snapshot
                self._health.prune(decision.publish)
                self._publish(decision.publish, now)
                if old != decision.publish:
                    self._events.append(EndpointsChanged(self.name, old, decision.publish))
                    diff = old.diff(decision.publish)
                    log.info(
                        "%s: %d endpoints (+%d -%d)", self.name, len(decision.publish),
                        len(diff.added), len(diff.removed),
                        extra={"service": self.name, "reason": "membership"},
                    )
            elif first:
                # DNS failed the first time: publish the empty view so picks say "no
                # endpoints" from now on instead of "not started".
                self._publish(self.view.snapshot, now, force=True)
            self._next_refresh = now + decision.delay
            self.last_error = error
            self._served = max(self._served, self._ticket_in_flight)
        if decision.warning:
            log.warning("%s", decision.warning, extra={"service": self.name, "reason": "refresh"})
        if decision.info:
            log.info("%s", decision.info, extra={"service": self.name, "reason": "refresh"})
        self._notify()

    def want_refresh(self) -> int:
        """Ask for a resolution that starts after now; returns its ticket.

        Raises:
            ServiceClosed: the service is closed.
        """
        with self._lock:
            if self.phase == "closed":
                raise self.closed_error("refresh")
            self._wanted += 1
            ticket = self._wanted
        self._notify()
        return ticket

    def served(self, ticket: int) -> bool:
        """True once a resolution started after *ticket* was asked for has ended."""
        return self._served >= ticket

    def request_early_refresh(self) -> None:
        """Refresh soon (rate-limited to one per ``min_refresh``): a pod failed."""
        with self._lock:
            self._early = True
        self._notify()

    # -- health and load ---------------------------------------------------------------------

    def resolve_target(self, target: object) -> Endpoint | None:
        """The endpoint *target* names: an :class:`Endpoint` itself, an ordinal or a pod
        hostname in the view.

        Raises:
            InvalidArgument: *target* is of another type.
            EndpointNotFound: an ordinal or hostname that is not in the view.
        """
        if isinstance(target, Endpoint):
            return target
        if isinstance(target, bool) or not isinstance(target, (int, str)):
            raise InvalidArgument(
                f"pass an Endpoint, a pod ordinal (int) or a pod hostname (str), "
                f"not {type(target).__name__}: {target!r}"
            )
        request = Request(ordinal=target) if isinstance(target, int) else Request(hostname=target)
        return self.router.pinned_pod(request, self.view.snapshot)

    def report_failure(self, target: object, now: float) -> None:
        """A call to *target* failed: eject it for a while and refresh DNS early."""
        endpoint = self.resolve_target(target)
        assert endpoint is not None
        self.router.finished(endpoint, ok=False)
        until: float | None = None
        with self._lock:
            # Only pods in the view are ejected: state for one that already left DNS (a
            # stale pick) would outlive the prune and eject it when it comes back.
            snapshot = self.view.snapshot
            if snapshot.by_identity(endpoint.identity) is not None:
                until = self._health.eject(endpoint, now)
                self._health_wake = min(self._health_wake, until)
                self._publish(snapshot, now)
            self._early = True
        if until is not None:
            log.info(
                "%s: ejected %s for %.1fs", self.name, endpoint, until - now,
                extra={"service": self.name, "pod": endpoint.hostname, "address": endpoint.address,
                       "reason": "ejected"},
            )
        self._notify()

    def report_success(self, target: object, latency: float | None, now: float) -> None:
        """A call to *target* succeeded: end its ejection record."""
        endpoint = self.resolve_target(target)
        assert endpoint is not None
        self.router.finished(endpoint, latency=latency, ok=True)
        # Unlocked read first: the common case (a healthy pod) costs no lock.
        if not self._health.tracks(endpoint):
            return
        with self._lock:
            if self._health.success(endpoint):
                self._publish(self.view.snapshot, now)

    def started(self, endpoint: Endpoint) -> None:
        """A call to *endpoint* is in flight (load tracking)."""
        self.router.started(endpoint)

    def finished(self, endpoint: Endpoint, latency: float | None = None, ok: bool = True) -> None:
        """A call to *endpoint* ended without a verdict on the pod's health."""
        self.router.finished(endpoint, latency=latency, ok=ok)

    def _health_expired(self, now: float) -> None:
        with self._lock:
            self._publish(self.view.snapshot, now)
            self._health_wake = self._health.next_expiry(now) or math.inf

    def _routing_changed(self) -> None:
        # A leader map or a named primary changed: roles and health pools may differ,
        # and memoised picks with them.
        with self._lock:
            if self.phase == "new":
                return
            self._publish(self.view.snapshot, self._now, force=True)
        self._notify()

    def _publish(self, snapshot: EndpointSet, now: float, *, force: bool = False) -> None:
        """Under the lock: publish *snapshot* and what strategies see of it.

        Building the strategy's per-view state here (a sticky ring) keeps that cost off
        the first pick after a change.
        """
        self._now = max(self._now, now)
        usable = self._health.healthy(snapshot, now, self.router.health_pools(snapshot))
        old = self.view
        if usable is old.usable and snapshot is old.snapshot and not force:
            return
        self.router.prepare(usable)
        hot = self.router.hot_picker(usable, snapshot)
        self.view = View(snapshot, usable)
        if self._resolved_once:
            self.hot = hot

    # -- events --------------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(old, new)`` on every change of the view; returns an unsubscribe.

        Raises:
            InvalidArgument: *callback* is not callable.
        """
        if not callable(callback):
            raise InvalidArgument(f"callback must be callable: {callback!r}")
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                subs = list(self._subscribers)
                if callback in subs:
                    subs.remove(callback)
                self._subscribers = tuple(subs)

        return unsubscribe

    @property
    def subscribers(self) -> tuple[Subscriber, ...]:
        """The current subscribers, in order."""
        return self._subscribers

    def has_events(self) -> bool:
        """True when events wait for delivery."""
        return bool(self._events)

    def take_events(self) -> list[Event]:
        """The events not delivered yet, oldest first (each returned once)."""
        with self._lock:
            events = list(self._events)
            self._events.clear()
        return events

    def deliver(self, event: Event) -> None:
        """Call every subscriber with *event* (in the caller's thread); an exception in
        one is logged and affects neither the others nor the caller."""
        for callback in self._subscribers:
            try:
                callback(event.old, event.new)
            except Exception:
                log.exception("%s: subscriber %r raised", self.name, callback, extra={"service": self.name})

    # -- shells' wake-ups ------------------------------------------------------------------

    def listen(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call *listener* (no arguments, must not block) whenever the driver should look
        at :meth:`next_action` again or a waiter should re-check; returns a remover."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def remove() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)

        return remove

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # pragma: no cover - listeners are the library's own
                log.exception("%s: listener failed", self.name)

    # -- connecting ------------------------------------------------------------------------------

    def connect_plan(
        self, request: Request, policy: ConnectPolicy, now: float, resolve_timeout: float
    ) -> ConnectPlan:
        """The plan of one connect call.

        Raises:
            ServiceClosed: the service is closed.
            ServiceNotStarted: the service was never started.
        """
        if self.phase == "closed":
            raise ConnectAborted(f"{self.name}: cannot connect: the service is closed")
        if self.phase == "new" and not self._resolved_once:
            raise self._not_started_error()
        return ConnectPlan(self, request, policy, now, resolve_timeout)

    # -- leaders -----------------------------------------------------------------------------

    def not_leader(self, partition: Hashable, hint: int | str | None) -> None:
        """Tell the strategy a pod refused *partition* (*hint*: the new leader, if named).

        Raises:
            InvalidArgument: the strategy routes no partitions, or a bad hint.
        """
        self.router.not_leader(partition, hint)

    def lacks_pod(self, hint: object) -> bool:
        """True if *hint* validly names a pod (ordinal or hostname) the view lacks."""
        snapshot = self.view.snapshot
        if isinstance(hint, int) and not isinstance(hint, bool) and hint >= 0:
            return snapshot.by_ordinal(hint) is None
        if isinstance(hint, str) and hint.strip("."):
            return snapshot.by_hostname(hint) is None
        return False

    # -- fork --------------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        # The parent's other threads (its refresher, its waiters) do not exist here: a
        # resolution they had in flight never ends, and nobody waits for a ticket.
        self._lock = threading.Lock()
        self._in_flight = False
        self._served = self._wanted

    def describe(self) -> str:
        """A one-line state summary for ``repr``."""
        view = self.view
        ejected = len(view.snapshot) - len(view.usable)
        health = f", {ejected} ejected" if ejected > 0 else ""
        return f"{self.name} port={self.port!r} {self.phase} {len(view.snapshot)} endpoints{health}"
