"""What a service has seen, counted: per pod and for the service. Pure.

:class:`StatsKeeper` is updated by the service core on the paths that already carry a
verdict (a call started or ended, a failure, a resolution), never on ``pick()``'s hot path,
which stays counter- and lock-free; :meth:`StatsKeeper.snapshot` returns immutable
:class:`ServiceStats`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Final

from . import _forksafe
from .endpoints import Endpoint, EndpointSet
from .errors import ServiceNotFound

__all__ = ["PodStats", "ServiceStats", "StatsKeeper"]

#: Weight of a new latency sample in the per-pod estimate (an exponential moving average).
LATENCY_WEIGHT: Final = 0.3


@dataclass(frozen=True, slots=True)
class PodStats:
    """One pod's counters.

    Attributes:
        endpoint: The pod (its first endpoint in set order).
        picks: Calls routed to it that the library tracked: ``connect()``,
            ``connection()``, the client registry and the integrations (a bare ``pick()`` is
            not counted: it stays free of counters).
        in_flight: Of those, calls not ended yet.
        failures: Failures reported (``report_failure``, failed dials, integrations).
        ejections: Times passive health ejected it.
        ejected: Whether it is ejected now.
        latency: The latency estimate in seconds (moving average of reported successes),
            or None before the first.
    """

    endpoint: Endpoint
    picks: int
    in_flight: int
    failures: int
    ejections: int
    ejected: bool
    latency: float | None


@dataclass(frozen=True, slots=True)
class ServiceStats:
    """A service's counters at one moment.

    Attributes:
        service: The FQDN.
        phase: ``new``, ``starting``, ``running`` or ``closed``.
        endpoints: Endpoints in the view (from DNS).
        usable: Endpoints strategies may pick (ejected ones left out, panic rule applied).
        panic: Whether the panic rule is on (too many ejected: every endpoint used).
        refreshes: Resolutions completed (successful or not).
        refresh_failures: Resolutions that failed (transport, SERVFAIL...; NXDOMAIN is an
            answer, not a failure).
        staleness: Seconds since the last good answer, or None if there was none.
        dns_questions: DNS questions this service's resolutions sent (0 when its resolver
            only offers a blocking ``resolve()``).
        pods: Per pod, in view order.
        last_refresh_duration: Seconds the latest resolution took, or None (none yet, or
            not timed: the first one, run inline by ``start()``, is not).
    """

    service: str
    phase: str
    endpoints: int
    usable: int
    panic: bool
    refreshes: int
    refresh_failures: int
    staleness: float | None
    dns_questions: int
    pods: tuple[PodStats, ...]
    last_refresh_duration: float | None = None


class _Pod:
    __slots__ = ("ejections", "failures", "in_flight", "latency", "picks")

    def __init__(self) -> None:
        self.picks = 0
        self.in_flight = 0
        self.failures = 0
        self.ejections = 0
        self.latency: float | None = None


class StatsKeeper:
    """The mutable counters behind :class:`ServiceStats` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pods: dict[str, _Pod] = {}
        self.refreshes = 0
        self.refresh_failures = 0
        self.last_good: float | None = None
        self.last_duration: float | None = None
        self.last_error_type: str | None = None
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def _pod(self, endpoint: Endpoint) -> _Pod:
        # Caller holds the lock.
        pod = self._pods.get(endpoint.identity)
        if pod is None:
            pod = self._pods[endpoint.identity] = _Pod()
        return pod

    def started(self, endpoint: Endpoint) -> None:
        """A tracked call to *endpoint* began."""
        with self._lock:
            pod = self._pod(endpoint)
            pod.picks += 1
            pod.in_flight += 1

    def ended(self, endpoint: Endpoint) -> None:
        """A tracked call to *endpoint* ended."""
        with self._lock:
            pod = self._pods.get(endpoint.identity)
            if pod is not None and pod.in_flight > 0:
                pod.in_flight -= 1

    def failed(self, endpoint: Endpoint) -> None:
        """A call to *endpoint* failed (it ended, too)."""
        with self._lock:
            pod = self._pod(endpoint)
            pod.failures += 1
            if pod.in_flight > 0:
                pod.in_flight -= 1

    def succeeded(self, endpoint: Endpoint, latency: float | None) -> None:
        """A call to *endpoint* succeeded in *latency* seconds (it ended, too)."""
        with self._lock:
            pod = self._pod(endpoint)
            if pod.in_flight > 0:
                pod.in_flight -= 1
            if latency is not None and latency >= 0:
                old = pod.latency
                pod.latency = latency if old is None else old + LATENCY_WEIGHT * (latency - old)

    def ejected(self, endpoint: Endpoint) -> None:
        """Passive health ejected *endpoint*."""
        with self._lock:
            self._pod(endpoint).ejections += 1

    def resolved(self, now: float, error: BaseException | None, duration: float | None = None) -> None:
        """A resolution ended after *duration* seconds, if timed (NXDOMAIN is a good answer here)."""
        with self._lock:
            self.refreshes += 1
            self.last_duration = duration
            self.last_error_type = None if error is None else type(error).__name__
            if error is None or isinstance(error, ServiceNotFound):
                self.last_good = now
            else:
                self.refresh_failures += 1

    def last_resolution(self) -> tuple[int, float | None, str | None]:
        """``(resolutions ended, the latest one's duration or None, its error's class name or None)``."""
        with self._lock:
            return self.refreshes, self.last_duration, self.last_error_type

    def snapshot(
        self,
        service: str,
        phase: str,
        now: float,
        view: EndpointSet,
        usable: EndpointSet,
        ejected: frozenset[str],
        panic: bool,
        dns_questions: int,
    ) -> ServiceStats:
        """The counters now, per pod of *view* (pods that left are forgotten)."""
        with self._lock:
            keep = {ep.identity for ep in view}
            for identity in [i for i in self._pods if i not in keep]:
                del self._pods[identity]
            pods: list[PodStats] = []
            seen: set[str] = set()
            for ep in view:
                if ep.identity in seen:
                    continue
                seen.add(ep.identity)
                pod = self._pods.get(ep.identity) or _Pod()
                pods.append(
                    PodStats(
                        endpoint=ep,
                        picks=pod.picks,
                        in_flight=pod.in_flight,
                        failures=pod.failures,
                        ejections=pod.ejections,
                        ejected=ep.identity in ejected,
                        latency=pod.latency,
                    )
                )
            return ServiceStats(
                service=service,
                phase=phase,
                endpoints=len(view),
                usable=len(usable),
                panic=panic,
                refreshes=self.refreshes,
                refresh_failures=self.refresh_failures,
                staleness=None if self.last_good is None else max(now - self.last_good, 0.0),
                dns_questions=dns_questions,
                pods=tuple(pods),
                last_refresh_duration=self.last_duration,
            )
