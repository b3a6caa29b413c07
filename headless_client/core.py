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
from collections.abc import Callable, Collection, Hashable, Iterator
from dataclasses import dataclass, field
from types import MethodType
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
from .events import EVENT_KINDS, EventKind, ServiceEvent, membership_events
from .health import HealthPolicy, HealthTracker
from .refresh import RefreshPolicy, RefreshState
from .request import PICK_FIELDS, Request, refuse_unknown, request_for
from .stats import ServiceStats, StatsKeeper
from .strategies.base import HotPick
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
Subscriber = Callable[..., Any]
"""A subscriber: 0.1.0's ``callback(old, new)`` on every change of the view, or, with
``events=``, ``callback(event)`` for each :class:`~headless_client.events.ServiceEvent`."""
_Subscription = tuple[Subscriber, frozenset[str] | None]


@dataclass(frozen=True, slots=True)
class View:
    """What picks read: the snapshot from DNS and the endpoints usable now."""

    snapshot: EndpointSet
    usable: EndpointSet


@dataclass(frozen=True, slots=True)
class Resolve:
    """Resolve the service now; *previous* is the view it replaces. *reuse* is what the
    lookup may take as proven by unchanged answers (cheap refreshes): *previous*, or None
    for a full lookup that asks every pod's name again (``RefreshPolicy.full_refresh_every``)."""

    previous: EndpointSet
    reuse: EndpointSet | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class WaitUntil:
    """Nothing to do before *deadline* (on the core's clock), unless a listener fires."""

    deadline: float


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
        # The hot path: what a pick reads (the strategy's state for the current view,
        # replaced by one assignment at each publication) and the pick itself, one
        # Python frame for the built-in strategies (see Router.hot_path).
        function, self._hot_build, idle = self.router.hot_path()
        self.hot = HotPick(self._full_pick, idle)
        #: ``fast_pick(key=None, **fields)``: a service's ``pick()``.
        self.fast_pick: Callable[..., Endpoint] = MethodType(function, self.hot)
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
        # When the resolution in flight began (None: not timed).
        self._resolve_started: float | None = None
        self._last_full: float | None = None  # when the last full lookup answered
        self._full_in_flight = False
        self._wanted = 0
        self._served = 0
        self.last_error: BaseException | None = None
        self._events: collections.deque[ServiceEvent] = collections.deque()
        self._subscribers: tuple[_Subscription, ...] = ()
        # Identities ejected as of the last publication, and whether the panic rule was on.
        self._ejected: frozenset[str] = frozenset()
        self._panic = False
        self._stats = StatsKeeper()
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
        return self.fast_pick(key)

    def _full_pick(self, key: object | None, fields: dict[str, Any]) -> Endpoint:
        """A pick the hot path leaves to the full one: a call with fields, a service not
        started, an empty view, a key the strategy's fast path does not take."""
        if fields:
            refuse_unknown("pick", fields, PICK_FIELDS)
            return self.pick(request_for(key, fields))
        if self.phase == "new" and not self._resolved_once:
            raise self._not_started_error()
        view = self.view
        return self.router.key_picker(view.usable, view.snapshot)(key)

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
                return self._begin_resolve(now)
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

    def begin_resolve(self, now: float | None = None) -> Resolve:
        """Start a resolution outside the schedule (the first one, in ``start()``);
        *now*, when given, times it (:meth:`last_resolution`)."""
        with self._lock:
            return self._begin_resolve(now)

    def _begin_resolve(self, now: float | None) -> Resolve:
        # Under the lock.
        self._resolve_started = now
        self._in_flight = True
        self._early = False
        self._ticket_in_flight = self._wanted
        snapshot = self.view.snapshot
        # Between full lookups a refresh reuses the addresses its answers prove; two pods
        # that swapped addresses are only seen by asking their names, so now and then, ask.
        full = now is None or self._last_full is None or (
            now - self._last_full >= self.refresh_policy.full_refresh_every
        )
        self._full_in_flight = full
        return Resolve(snapshot, None if full or not snapshot else snapshot)

    def resolved(self, now: float, answer: EndpointSet | None, error: BaseException | None) -> None:
        """The resolution begun by :meth:`next_action` (or :meth:`begin_resolve`) ended.

        Exactly one of *answer* and *error* is set; an error that is not a
        :class:`ResolutionError` is a bug somewhere below and is treated as one (logged
        with its traceback) so the refresher never dies of it.
        """
        if error is not None and not isinstance(error, ResolutionError):
            log.error(
                "%s: refresh failed unexpectedly", self.name, exc_info=error,
                extra={"service": self.name, "pod": None, "address": None, "reason": "unexpected"},
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
            if self._full_in_flight and error is None:
                self._last_full = now
            schedule = self._schedule
            if error is None and answer is not None:
                decision = schedule.on_answer(answer, now)
            elif isinstance(error, ServiceNotFound):
                decision = schedule.on_not_found(now)
            else:
                assert error is not None
                decision = schedule.on_error(error, now)
            started, self._resolve_started = self._resolve_started, None
            self._stats.resolved(now, error, None if started is None else max(now - started, 0.0))
            if error is not None and not isinstance(error, ServiceNotFound):
                self._emit("refresh_failed", now, error=error, detail=str(error))
            elif schedule.recovered_from:
                self._emit(
                    "refresh_recovered", now, detail=f"recovered after {schedule.recovered_from} failures"
                )
            if decision.publish is not None:
                old = self.view.snapshot
                self._health.prune(decision.publish)
                self._publish(decision.publish, now)
                if old != decision.publish:
                    self._emit("changed", now, old=old, new=decision.publish)
                    self._events.extend(membership_events(self.name, now, old, decision.publish))
                    diff = old.diff(decision.publish)
                    log.info(
                        "%s: %d endpoints (+%d -%d)", self.name, len(decision.publish),
                        len(diff.added), len(diff.removed),
                        extra={"service": self.name, "pod": None, "address": None, "reason": "membership"},
                    )
            elif first:
                # DNS failed the first time: publish the empty view so picks say "no
                # endpoints" from now on instead of "not started".
                self._publish(self.view.snapshot, now, force=True)
            self._next_refresh = now + decision.delay
            self.last_error = error
            self._served = max(self._served, self._ticket_in_flight)
        if decision.warning:
            log.warning(
                "%s", decision.warning,
                extra={"service": self.name, "pod": None, "address": None, "reason": "refresh"},
            )
        if decision.info:
            log.info(
                "%s", decision.info,
                extra={"service": self.name, "pod": None, "address": None, "reason": "refresh"},
            )
        self._notify()

    def refresh_soon(self) -> None:
        """Resolve as soon as possible, not rate-limited: the source said it changed (an
        EndpointSlice watch event). Never blocks; no ticket."""
        with self._lock:
            if self.phase == "closed":
                return
            self._wanted += 1
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
        self._stats.failed(endpoint)
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
        self._stats.succeeded(endpoint, latency)
        # Unlocked read first: the common case (a healthy pod) costs no lock.
        if not self._health.tracks(endpoint):
            return
        with self._lock:
            if self._health.success(endpoint):
                self._publish(self.view.snapshot, now)
        if self._events:
            self._notify()

    def started(self, endpoint: Endpoint) -> None:
        """A call to *endpoint* is in flight (load tracking, statistics)."""
        self.router.started(endpoint)
        self._stats.started(endpoint)

    def finished(self, endpoint: Endpoint, latency: float | None = None, ok: bool = True) -> None:
        """A call to *endpoint* ended without a verdict on the pod's health."""
        self.router.finished(endpoint, latency=latency, ok=ok)
        self._stats.ended(endpoint)

    def _health_expired(self, now: float) -> None:
        with self._lock:
            self._publish(self.view.snapshot, now)
            self._health_wake = self._health.next_expiry(now) or math.inf
        if self._events:
            self._notify()

    def _routing_changed(self) -> None:
        # A leader map or a named primary changed: roles and health pools may differ,
        # and memoised picks with them.
        with self._lock:
            if self.phase == "new":
                return
            self._publish(self.view.snapshot, self._now, force=True)
            self._emit("routing_changed", self._now, detail=f"{self.router.name}'s routing inputs changed")
        self._notify()

    def _publish(self, snapshot: EndpointSet, now: float, *, force: bool = False) -> None:
        """Under the lock: publish *snapshot* and what strategies see of it.

        Building the strategy's per-view state here (a sticky ring) keeps that cost off
        the first pick after a change.
        """
        self._now = max(self._now, now)
        usable = self._health.healthy(snapshot, now, self.router.health_pools(snapshot))
        if any(ep.terminating for ep in usable):
            # New work avoids pods that are shutting down (calls in flight finish); if
            # every pod is terminating, they are all there is.
            serving = [ep for ep in usable if not ep.terminating]
            if serving:
                usable = EndpointSet(serving, name=usable.name, ttl=usable.ttl)
        old = self.view
        if usable is old.usable and snapshot is old.snapshot and not force:
            # Nothing usable changed, yet an ejection may have begun or ended: under the
            # panic rule every endpoint stays usable while ejected.
            self._health_events(snapshot, usable, now)
            return
        self.router.prepare(usable)
        state = self._hot_build(usable, snapshot)
        self.view = View(snapshot, usable)
        if self._resolved_once:
            self.hot.state = state
        self._health_events(snapshot, usable, now)

    def _health_events(self, snapshot: EndpointSet, usable: EndpointSet, now: float) -> None:
        """Under the lock: ``ejected``/``returned`` and panic events since the last view."""
        ejected = frozenset(ep.identity for ep in snapshot if self._health.is_ejected(ep, now))
        before = self._ejected
        if ejected != before:
            for ep in snapshot:
                if ep.identity in ejected and ep.identity not in before:
                    self._stats.ejected(ep)
                    self._emit("ejected", now, endpoint=ep, detail=f"{ep} ejected")
                    before = before | {ep.identity}  # one event per pod, not per address
                elif ep.identity in before and ep.identity not in ejected:
                    self._emit("returned", now, endpoint=ep, detail=f"{ep} returned")
                    before = before - {ep.identity}
            self._ejected = ejected
        panic = any(usable.by_identity(identity) is not None for identity in ejected)
        if panic != self._panic:
            self._panic = panic
            if panic:
                detail = f"{len(ejected)} of {len(snapshot)} pods ejected: every endpoint is used (panic)"
                self._emit("panic_started", now, detail=detail)
            else:
                self._emit("panic_ended", now, detail="the panic rule no longer applies")

    def _emit(self, kind: EventKind, now: float, **fields: Any) -> None:
        """Under the lock: queue one event for the subscribers."""
        if self._subscribers:
            self._events.append(ServiceEvent(kind, self.name, now, **fields))

    # -- events --------------------------------------------------------------------------------

    def subscribe(
        self, callback: Subscriber, *, events: bool | Collection[EventKind] = False
    ) -> Callable[[], None]:
        """Subscribe *callback*; returns an unsubscribe function (idempotent).

        Without *events*, ``callback(old, new)`` is called on every change of the view
        (0.1.0's form). With ``events=True`` (every kind) or a collection of kinds,
        ``callback(event)`` gets each :class:`~headless_client.events.ServiceEvent`.

        Raises:
            InvalidArgument: *callback* is not callable.
            InvalidName: an unknown event kind.
        """
        if not callable(callback):
            raise InvalidArgument(f"callback must be callable: {callback!r}")
        kinds: frozenset[str] | None
        if events is False:
            kinds = None
        elif events is True:
            kinds = frozenset(EVENT_KINDS)
        else:
            if isinstance(events, str):
                raise InvalidArgument(f"events must be True or a collection of kinds, not a str: {events!r}")
            kinds = frozenset(events)
            unknown = sorted(kinds - set(EVENT_KINDS))
            if unknown:
                raise InvalidName(f"unknown event kinds {unknown}; the kinds are {list(EVENT_KINDS)}")
        subscription: _Subscription = (callback, kinds)
        with self._lock:
            self._subscribers = (*self._subscribers, subscription)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not subscription)

        return unsubscribe

    @property
    def subscribers(self) -> tuple[_Subscription, ...]:
        """The current subscriptions, in order: ``(callback, kinds or None for 0.1.0's form)``."""
        return self._subscribers

    def has_events(self) -> bool:
        """True when events wait for delivery."""
        return bool(self._events)

    def take_events(self) -> list[ServiceEvent]:
        """The events not delivered yet, oldest first (each returned once)."""
        with self._lock:
            events = list(self._events)
            self._events.clear()
        return events

    def calls_for(self, event: ServiceEvent) -> Iterator[tuple[Subscriber, tuple[Any, ...]]]:
        """Each subscriber that wants *event*, with the arguments to call it with."""
        for callback, kinds in self._subscribers:
            if kinds is None:
                if event.kind == "changed":
                    yield callback, (event.old, event.new)
            elif event.kind in kinds:
                yield callback, (event,)

    def deliver(self, event: ServiceEvent) -> None:
        """Call every subscriber that wants *event* (in the caller's thread); an exception
        in one is logged and affects neither the others nor the caller."""
        for callback, args in self.calls_for(event):
            try:
                callback(*args)
            except Exception:
                log.exception(
                    "%s: subscriber %r raised", self.name, callback,
                    extra={"service": self.name, "pod": None, "address": None, "reason": "subscriber_error"},
                )

    # -- statistics -------------------------------------------------------------------------

    def stats(self, now: float, dns_questions: int = 0) -> ServiceStats:
        """A snapshot of the service's counters (see :class:`~headless_client.stats.ServiceStats`)."""
        view = self.view
        ejected = self._ejected
        return self._stats.snapshot(
            self.name, self.phase, now, view.snapshot, view.usable, ejected, self._panic, dns_questions
        )

    def last_resolution(self) -> tuple[int, float | None, str | None]:
        """``(resolutions ended, the latest one's duration in seconds or None when it was
        not timed, the class name of its error or None)``: cheap, for instruments that
        record every refresh from a :meth:`listen` callback."""
        return self._stats.last_resolution()

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
                log.exception(
                    "%s: listener failed", self.name,
                    extra={"service": self.name, "pod": None, "address": None, "reason": "listener_error"},
                )

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
