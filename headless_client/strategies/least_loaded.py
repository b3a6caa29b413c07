"""Power-of-two-choices on in-flight requests, optionally weighted by peak-EWMA latency."""

from __future__ import annotations

import math
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from .. import _forksafe
from ..endpoints import Endpoint, EndpointSet
from .base import Clock, HotPath, HotPick, SnapshotCache, UsableChoice, distinct_pods, no_endpoints, overrides

__all__ = ["LeastLoaded"]


class _PodLoad:
    """Mutable load state of one pod identity; written under the strategy's lock only."""

    __slots__ = ("__weakref__", "ewma", "inflight", "measured", "stamp")

    def __init__(self, default_rtt: float, now: float) -> None:
        self.inflight = 0
        self.ewma = default_rtt
        self.stamp = now
        self.measured = False


# What a pick reads of one set: its pods, each pod's load state (same order), and the
# number of pods and of the others as floats (see _draw).
_Derived = tuple[tuple[Endpoint, ...], tuple[_PodLoad, ...], float, float]
_NO_PODS: _Derived = ((), (), 0.0, 0.0)


class LeastLoaded(UsableChoice):
    """Two random pods, keep the less loaded one ("power of two choices").

    Load is the number of requests in flight, reported through :meth:`started` and
    :meth:`finished` (the service calls them; this class implements
    :class:`~headless_client.strategies.LoadTracking`). Two random candidates rather than
    the global minimum avoid herding: many clients with slightly stale counts would all
    pick the same idle pod.

    With ``ewma=True`` the load is Finagle's / Linkerd's peak-EWMA cost,
    ``latency_estimate * (inflight + 1)``:

    * a sample above the current estimate replaces it at once (peak sensitive), so a pod
      that turns slow sheds traffic immediately;
    * a lower sample is blended in with weight ``1 - exp(-elapsed / decay)``, where
      *elapsed* is the time since the previous update;
    * between samples the estimate decays towards zero with the same time constant, as
      Finagle's does on every read, so a pod that was slow (or failed) is tried again
      after a while instead of being starved of the samples that would clear it;
    * a pod never measured is assumed to answer in *default_rtt*;
    * a failed request (``ok=False``) counts as a sample of
      ``max(latency, failure_penalty)``: a pod that fails fast must not look fast.

    Without ``ewma``, latencies and failures are ignored; ejecting failing pods is the
    job of the service's passive health checks.

    State is kept per :attr:`~headless_client.endpoints.Endpoint.identity`, so a pod that
    restarts with a new IP keeps its history. When a new snapshot is seen, state of
    identities that left the set and have nothing in flight is dropped (once no set still
    in use holds them).

    Args:
        ewma: Weight in-flight counts by peak-EWMA latency.
        decay: Time constant of the EWMA in seconds (Finagle and Linkerd use 10 s).
        default_rtt: Latency assumed for a pod not yet measured (Linkerd: 30 ms).
        failure_penalty: Latency in seconds a failed request counts as, at least.
        clock: Monotonic seconds; injected so tests need no sleeping.
        seed: Seed for the candidate choice (reproducible tests).

    Raises:
        ValueError: *decay*, *default_rtt* or *failure_penalty* is not positive.
    """

    __slots__ = (
        "__weakref__",
        "_cache",
        "_clock",
        "_decay",
        "_default_rtt",
        "_ewma",
        "_failure_penalty",
        "_fast",
        "_lock",
        "_random",
        "_retired",
        "_states",
    )

    def __init__(
        self,
        *,
        ewma: bool = False,
        decay: float = 10.0,
        default_rtt: float = 0.030,
        failure_penalty: float = 1.0,
        clock: Clock = time.monotonic,
        seed: int | str | bytes | None = None,
    ) -> None:
        for name, value in (
            ("decay", decay),
            ("default_rtt", default_rtt),
            ("failure_penalty", failure_penalty),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0 seconds: {value!r}")
        self._ewma = ewma
        self._decay = float(decay)
        self._default_rtt = float(default_rtt)
        self._failure_penalty = float(failure_penalty)
        self._clock = clock
        self._random: Callable[[], float] = random.Random(seed).random
        # Writers (started/finished/deriving) hold the lock; pick only reads. Every set a
        # pick derives holds the load state of each of its pods, so a pick reads two
        # attributes instead of looking identities up.
        self._lock = threading.Lock()
        self._states: dict[str, _PodLoad] = {}
        # States dropped from _states while a set still in use may hold them: a pod that
        # comes back gets the same object again, so every set sees one count per pod.
        self._retired: weakref.WeakValueDictionary[str, _PodLoad] = weakref.WeakValueDictionary()
        self._cache: SnapshotCache[_Derived] = SnapshotCache(self._derive, _NO_PODS)
        # (snapshot, *its derived state) for pick's fast path: the last set a pick used.
        # Never set with ewma, which always takes the full path.
        self._fast: tuple[EndpointSet | None, tuple[Endpoint, ...], tuple[_PodLoad, ...], float, float] = (
            None, *_NO_PODS
        )
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def _derive(self, endpoints: EndpointSet) -> _Derived:
        pods = distinct_pods(endpoints)
        keep = {ep.identity for ep in pods}
        with self._lock:
            states = self._states
            # Subsets of the view come and go (ejections, connect retries that exclude the
            # pods just tried): keep their pods' load and penalties, and prune only once
            # the table clearly outgrows the view, which still bounds its memory.
            if len(states) > 2 * len(keep) + 16:
                kept: dict[str, _PodLoad] = {}
                for identity, state in states.items():
                    if identity in keep or state.inflight > 0:
                        kept[identity] = state
                    else:
                        self._retired[identity] = state
                self._states = kept
            loads = tuple(self._state(ep.identity) for ep in pods)
        return pods, loads, float(len(pods)), float(max(len(pods) - 1, 0))

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        """Return the less loaded of two random pods. The key is ignored.

        Raises:
            NoEndpointsAvailable: *endpoints* is empty.
        """
        snap, pods, loads, size, others = self._fast
        if snap is endpoints:
            # Two distinct indices from one draw: i from its integer part, j (over the
            # n - 1 others, skipping i) from the fraction left, which keeps 40 random bits.
            spread = self._random() * size
            i = spread.__trunc__()
            j = ((spread - i) * others).__trunc__()
            if j >= i:
                j += 1
            try:
                return pods[i] if loads[i].inflight <= loads[j].inflight else pods[j]
            except IndexError:  # fewer than two pods (or j rounded up to n - 1: rare)
                pass
        return self._pick(endpoints)

    def _pick(self, endpoints: EndpointSet) -> Endpoint:
        """Every pick the fast path does not take: new sets, small sets, ewma."""
        snap, derived = self._cache.current
        if snap is not endpoints:
            derived = self._cache.derive(endpoints)
        pods, loads, size, others = derived
        n = len(pods)
        if n < 2:
            if not pods:
                raise no_endpoints(endpoints, self)
            return pods[0]
        if not self._ewma and self._fast[0] is not endpoints:
            self._fast = (endpoints, *derived)
        spread = self._random() * size
        i = spread.__trunc__()
        j = min(((spread - i) * others).__trunc__(), n - 2)
        if j >= i:
            j += 1
        if self._ewma:
            now = self._clock()
            return pods[i] if self._cost(loads[i], now) <= self._cost(loads[j], now) else pods[j]
        return pods[i] if loads[i].inflight <= loads[j].inflight else pods[j]

    def _hot_path(self) -> HotPath | None:
        """A service's ``pick()``: :func:`_hot_pick` over the usable pods (not with ewma)."""
        if self._ewma or overrides(self, LeastLoaded):
            return None
        return _hot_pick, self._hot_state, (*_NO_PODS, self._random)

    def _hot_state(self, usable: EndpointSet, snapshot: EndpointSet) -> tuple[Any, ...]:
        return (*self._cache.derive(usable), self._random)

    def _estimate(self, state: _PodLoad | None, now: float) -> float:
        if state is None or not state.measured:
            return self._default_rtt
        elapsed = now - state.stamp
        if elapsed <= 0:
            return state.ewma
        # Decays towards zero between samples, as Finagle's read-side update does.
        return state.ewma * math.exp(-elapsed / self._decay)

    def _cost(self, state: _PodLoad | None, now: float) -> float:
        if state is None:
            return self._default_rtt
        return self._estimate(state, now) * (state.inflight + 1)

    def _state(self, identity: str) -> _PodLoad:
        # Caller holds the lock.
        state = self._states.get(identity)
        if state is None:
            state = self._retired.pop(identity, None)
            if state is None:
                state = _PodLoad(self._default_rtt, self._clock())
            self._states[identity] = state
        return state

    def _find(self, identity: str) -> _PodLoad | None:
        state = self._states.get(identity)
        return self._retired.get(identity) if state is None else state

    def started(self, endpoint: Endpoint) -> None:
        """Count one more request in flight to *endpoint*'s pod."""
        with self._lock:
            self._state(endpoint.identity).inflight += 1

    def finished(self, endpoint: Endpoint, *, latency: float | None = None, ok: bool = True) -> None:
        """Count one request less in flight; with ``ewma`` feed the latency sample.

        Args:
            endpoint: The endpoint passed to :meth:`started`.
            latency: Seconds the request took; without it (and ``ok``) only the
                in-flight count changes.
            ok: ``False`` counts the request as a sample of at least *failure_penalty*.
        """
        with self._lock:
            state = self._find(endpoint.identity)
            if state is None:
                if not self._ewma:
                    return
                state = self._state(endpoint.identity)
            if state.inflight > 0:
                state.inflight -= 1
            if not self._ewma:
                return
            sample = latency
            if not ok:
                sample = max(latency or 0.0, self._failure_penalty)
            if sample is None:
                return
            sample = max(float(sample), 0.0)
            now = self._clock()
            weight = math.exp(-max(now - state.stamp, 0.0) / self._decay)
            current = state.ewma * weight  # what _estimate reports now
            if sample > current or not state.measured:
                state.ewma = sample
            else:
                # Finagle's update: the old value decayed over the elapsed time, plus the
                # sample weighted by that same elapsed time.
                state.ewma = current + sample * (1.0 - weight)
            state.stamp = now
            state.measured = True

    def inflight(self, endpoint: Endpoint) -> int:
        """Requests in flight to *endpoint*'s pod, as reported."""
        state = self._find(endpoint.identity)
        return state.inflight if state is not None else 0

    def score(self, endpoint: Endpoint) -> float:
        """The cost :meth:`pick` compares now (in-flight count, or peak-EWMA cost)."""
        if self._ewma:
            return self._cost(self._find(endpoint.identity), self._clock())
        return float(self.inflight(endpoint))

    def __repr__(self) -> str:
        return f"LeastLoaded(ewma={self._ewma}, decay={self._decay}, default_rtt={self._default_rtt})"


def _hot_pick(hot: HotPick, key: object | None = None, **fields: Any) -> Endpoint:
    """A service's whole ``pick()`` with LeastLoaded (see :class:`~.base.HotPick`)."""
    if not fields:
        pods, loads, size, others, draw = hot.state
        spread = draw() * size
        i = spread.__trunc__()
        j = ((spread - i) * others).__trunc__()
        if j >= i:
            j += 1
        try:
            return pods[i] if loads[i].inflight <= loads[j].inflight else pods[j]  # type: ignore[no-any-return]
        except IndexError:  # not started, fewer than two pods (or a rare rounding)
            pass
    return hot.full(key, fields)
