"""The I/O-free half of a live service view, shared by the sync and asyncio services.

:class:`ServiceView` owns the snapshot, the health state, the strategy and the refresh
state machine. Its reading methods (``pick``, ``endpoint``, ``endpoints``) take no lock:
they read one attribute that the refresher replaces by a single assignment. Mutations
(publishing a snapshot, ejecting an endpoint) are short and serialised by a lock; no I/O
or callback ever runs under it. The shells (:mod:`headless_client.service`,
:mod:`headless_client.aio`) add the refresher thread or task, resolving and connecting.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar, cast

from .endpoints import Endpoint, EndpointSet
from .errors import EndpointNotFound, InvalidName, NoEndpointsAvailable, ServiceNotFound
from .health import HealthPolicy, HealthTracker
from .refresh import Decision, RefreshPolicy, RefreshState
from .resolver import BaseResolver
from .strategies import Fallback, LoadTracking, PartitionLeader, PrimaryReplica, RoundRobin, Strategy

__all__ = ["ServiceView", "Subscriber"]

log = logging.getLogger("headless_client.service")

Subscriber = Callable[[EndpointSet, EndpointSet], Any]
Event = tuple[EndpointSet, EndpointSet]


R = TypeVar("R", bound=BaseResolver)


class ServiceView(Generic[R]):
    """Snapshot, health and strategy of one service; see :class:`HeadlessService`.

    Args:
        service: the service name as given (``web``, ``web.prod``, an FQDN).
        port: a named port (SRV, gives pod identities) or a number (A/AAAA).
        resolver: the resolver to use (default: a new one reading the system's resolv.conf).
        strategy: how to pick; default :class:`RoundRobin`.
        protocol: SRV protocol for named ports.
        namespace: namespace for one-label names (default: the resolver's).
        min_refresh: see :class:`RefreshPolicy`.
        max_refresh: see :class:`RefreshPolicy`.
        empty_grace: see :class:`RefreshPolicy`.
        jitter: see :class:`RefreshPolicy`.
        backoff: see :class:`RefreshPolicy`.
        health: see :class:`HealthPolicy`.
        clock: monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        service: str,
        port: int | str,
        *,
        resolver: R | None = None,
        strategy: Strategy | None = None,
        protocol: str = "tcp",
        namespace: str | None = None,
        min_refresh: float = 1.0,
        max_refresh: float = 30.0,
        empty_grace: float = 5.0,
        jitter: float = 0.1,
        backoff: Any = None,
        health: HealthPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if strategy is not None and not isinstance(strategy, Strategy):
            raise InvalidName(f"strategy must have a pick(endpoints, key) method: {strategy!r}")
        self._service = service
        self._port = port
        self._protocol = protocol
        self._namespace = namespace
        self._strategy: Strategy = strategy if strategy is not None else RoundRobin()
        self._leaders = _partition_leader(self._strategy)
        if isinstance(self._strategy, PrimaryReplica):
            # Writes must reach the primary even while it is ejected: a replica cannot take
            # them. Swapped in per instance so other strategies pay nothing on the hot path.
            self.pick = self._pick_primary_aware  # type: ignore[method-assign]
        prepare = getattr(self._strategy, "prepare", None)
        self._prepare: Callable[[EndpointSet], object] | None = prepare if callable(prepare) else None
        self._tracking: LoadTracking | None = (
            self._strategy if isinstance(self._strategy, LoadTracking) else None
        )
        self._policy = RefreshPolicy(
            min_refresh=min_refresh,
            max_refresh=max_refresh,
            jitter=jitter,
            empty_grace=empty_grace,
            backoff=backoff,
        )
        self._health = HealthTracker(health)
        self._clock = clock
        self._lock = threading.Lock()
        self._name = service  # replaced by the FQDN once the resolver qualified it
        self._state = RefreshState(self._policy, service)
        empty = EndpointSet(name=service)
        self._snapshot = empty
        self._healthy = empty
        self._subscribers: tuple[Subscriber, ...] = ()
        self._resolver: R = resolver if resolver is not None else self._default_resolver()
        # Validates the name and port now, not in the background.
        self._resolver._resolve_plan(service, port, protocol, namespace)[0].close()
        self._set_name(self._resolver.qualify(service, namespace))
        # Refresher bookkeeping both shells keep.
        self._closed = False
        self._next_refresh = 0.0
        self._early = False
        self._health_wake = math.inf
        self._last_error: BaseException | None = None
        self._outbox: collections.deque[Event] = collections.deque()
        self._delivering = False
        self._init_shell()

    def _default_resolver(self) -> R:
        """The resolver used when none is given (the shells make their own kind)."""
        # A bare view (tests, tools) only qualifies and validates names with it.
        return cast(R, BaseResolver())

    def _init_shell(self) -> None:
        """The shell's own state (thread and condition, or task and events)."""

    def _set_name(self, fqdn: str) -> None:
        self._name = fqdn
        self._state.name = fqdn
        empty = EndpointSet(name=fqdn)
        self._state.current = empty
        self._snapshot = self._healthy = empty

    # -- reading (no lock, no I/O) -------------------------------------------------

    @property
    def name(self) -> str:
        """The service's FQDN."""
        return self._name

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    @property
    def strategy(self) -> Strategy:
        """The pick strategy."""
        return self._strategy

    @property
    def endpoints(self) -> EndpointSet:
        """The current snapshot from DNS (ejected endpoints included)."""
        return self._snapshot

    @property
    def healthy_endpoints(self) -> EndpointSet:
        """What strategies see: the snapshot without ejected endpoints (panic rule applied)."""
        return self._healthy

    def pick(self, key: object | None = None, *, partition: Hashable | None = None) -> Endpoint:
        """One endpoint for a request, chosen by the strategy from the current view.

        Raises:
            NoEndpointsAvailable: the view is empty (or the strategy found none).
            LeaderNotAvailable: ``partition`` has no leader in the view.
            TypeError: the key or partition does not suit the strategy.
        """
        if partition is not None:
            return self._pick_partition(partition)
        return self._strategy.pick(self._healthy, key)

    def _pick_primary_aware(
        self, key: object | None = None, *, partition: Hashable | None = None
    ) -> Endpoint:
        strategy = self._strategy
        assert isinstance(strategy, PrimaryReplica)
        if partition is not None:
            return ServiceView.pick(self, key, partition=partition)
        snapshot, healthy = self._snapshot, self._healthy
        if key is not None and strategy.is_write(key):
            return strategy.pick(snapshot, key)
        if healthy is not snapshot and healthy and strategy.primary(snapshot) not in healthy:
            # The primary is ejected: every healthy pod is a replica; do not let the lowest
            # of them pose as primary and lose its share of the reads.
            return strategy.pick_replica(healthy)
        return strategy.pick(healthy, key)

    def _pick_partition(self, partition: Hashable) -> Endpoint:
        if self._leaders is None:
            raise TypeError(
                f"partition={partition!r} needs a PartitionLeader strategy (alone or first in "
                f"a Fallback), not {type(self._strategy).__name__}"
            )
        # The leader is wanted even while ejected: another pod cannot serve it. Through
        # the strategy itself, so a Fallback still falls back.
        return self._strategy.pick(self._snapshot, partition)

    def endpoint(self, ordinal: int | None = None, *, hostname: str | None = None) -> Endpoint:
        """A specific pod by StatefulSet ordinal or hostname (ejected or not).

        Raises:
            EndpointNotFound: no such pod in the current view.
            InvalidName: neither or both of ordinal/hostname, or a bad ordinal.
        """
        snapshot = self._snapshot
        if (ordinal is None) == (hostname is None):
            raise InvalidName("pass exactly one of ordinal= or hostname=")
        if hostname is not None:
            found = snapshot.by_hostname(hostname)
            what = f"hostname {hostname!r}"
        else:
            if isinstance(ordinal, bool) or not isinstance(ordinal, int) or ordinal < 0:
                raise InvalidName(f"ordinal must be an int >= 0: {ordinal!r}")
            found = snapshot.by_ordinal(ordinal)
            what = f"ordinal {ordinal}"
        if found is None:
            have = ", ".join(str(o) for o in snapshot.ordinals) or "none"
            raise EndpointNotFound(f"{self._name}: no pod with {what} (ordinals now: {have})")
        return found

    # -- health and load -------------------------------------------------------------

    def report_failure(self, endpoint: Endpoint) -> None:
        """A request to *endpoint* failed: eject it for a while and refresh DNS early."""
        if self._tracking is not None:
            self._tracking.finished(endpoint, ok=False)
        until: float | None = None
        with self._lock:
            # Only pods in the view are ejected: state for one that already left DNS
            # (a stale pick) would outlive the prune and eject it when it comes back.
            if self._snapshot.by_identity(endpoint.identity) is not None:
                until = self._health.eject(endpoint, self._clock())
                self._update_healthy(self._snapshot)
        if until is not None:
            log.info("%s: ejected %s until +%.1fs", self._name, endpoint, until - self._clock())
        self._request_early_refresh()
        if until is not None:
            self._health_changed()

    def report_success(self, endpoint: Endpoint, latency: float | None = None) -> None:
        """A request to *endpoint* succeeded (in *latency* seconds): clear its ejection."""
        if self._tracking is not None:
            self._tracking.finished(endpoint, latency=latency, ok=True)
        # Unlocked read first: the common case (a healthy endpoint) costs no lock.
        if not self._health.tracks(endpoint):
            return
        with self._lock:
            self._health.success(endpoint)
            self._update_healthy(self._snapshot)

    def _unknown_pod(self, hint: object) -> bool:
        """True if *hint* validly names a pod (ordinal or hostname) the view lacks."""
        snapshot = self._snapshot
        if isinstance(hint, int) and not isinstance(hint, bool) and hint >= 0:
            return snapshot.by_ordinal(hint) is None
        if isinstance(hint, str) and hint.strip("."):
            return snapshot.by_hostname(hint) is None
        return False

    def _finish(self, endpoint: Endpoint) -> None:
        """End one in-flight count of *endpoint* without a latency sample or health change."""
        if self._tracking is not None:
            self._tracking.finished(endpoint)

    def _started(self, endpoint: Endpoint) -> None:
        if self._tracking is not None:
            self._tracking.started(endpoint)

    def _rebuild_healthy(self) -> None:
        with self._lock:
            self._update_healthy(self._snapshot)

    def _update_healthy(self, snapshot: EndpointSet) -> None:
        """Under the lock: publish what strategies see, with its derived state built.

        Building a strategy's per-snapshot state here (a sticky ring over 1000 pods
        takes a fraction of a second) keeps that cost off the first pick after a change.
        """
        healthy = self._health.healthy(snapshot, self._clock())
        if healthy is not self._healthy and self._prepare is not None:
            self._prepare(healthy)
        self._healthy = healthy

    def _next_health_expiry(self) -> float | None:
        with self._lock:
            return self._health.next_expiry(self._clock())

    # -- subscriptions --------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(old, new)`` on every published change; returns an unsubscribe.

        Callbacks run in order of publication, from the refresher. An exception in one is
        logged and affects neither the refresher nor the other callbacks.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable: {callback!r}")
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                subs = list(self._subscribers)
                if callback in subs:
                    subs.remove(callback)
                self._subscribers = tuple(subs)

        return unsubscribe

    # -- refresh outcomes (called by the shells' refresher) -----------------------------

    def _apply(self, decision: Decision) -> Event | None:
        """Log and publish one decision; returns the (old, new) event to deliver."""
        if decision.warning:
            log.warning("%s", decision.warning)
        if decision.info:
            log.info("%s", decision.info)
        new = decision.publish
        if new is None:
            return None
        with self._lock:
            old = self._snapshot
            self._health.prune(new)
            self._snapshot = new
            self._update_healthy(new)
        if old == new:
            return None
        diff = old.diff(new)
        log.info(
            "%s: %d endpoints (+%d -%d)", self._name, len(new), len(diff.added), len(diff.removed)
        )
        return old, new

    def _publish_result(self, answer: EndpointSet | None, error: BaseException | None) -> Decision:
        """Feed one resolution outcome to the state machine."""
        now = self._clock()
        with self._lock:
            if error is None and answer is not None:
                return self._state.on_answer(answer, now)
            if isinstance(error, ServiceNotFound):
                return self._state.on_not_found(now)
            assert error is not None
            return self._state.on_error(error, now)

    def _request_early_refresh(self) -> None:
        """Overridden by the shells: wake the refresher (coalesced, rate-limited)."""

    def _health_changed(self) -> None:
        """Overridden by the shells: an ejection may end; re-plan the wake-up."""

    def _no_endpoints(self) -> NoEndpointsAvailable:
        return NoEndpointsAvailable(f"no endpoints available for {self._name!r}")


def _partition_leader(strategy: Strategy) -> PartitionLeader[Any] | None:
    """The PartitionLeader that routes partitions: the strategy, or one inside a Fallback."""
    if isinstance(strategy, PartitionLeader):
        return strategy
    if isinstance(strategy, Fallback):
        for inner in strategy.strategies:
            found = _partition_leader(inner)
            if found is not None:
                return found
    return None
