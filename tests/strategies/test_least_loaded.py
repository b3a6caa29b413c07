"""LeastLoaded: power of two choices on in-flight counts and peak-EWMA latency."""

from __future__ import annotations

import math
import threading
from collections import Counter

import pytest

from headless_client.endpoints import Endpoint, EndpointSet
from headless_client.request import Request
from headless_client.strategies import LeastLoaded, LoadTracking

from ._helpers import pod, pods


class FakeClock:
    """A clock tests advance by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_is_load_tracking() -> None:
    """The service feeds it through the LoadTracking protocol."""
    assert isinstance(LeastLoaded(), LoadTracking)


def test_prefers_fewer_in_flight_of_two() -> None:
    """With two pods, the busier one is never picked."""
    ll = LeastLoaded(seed=1)
    eps = pods(range(2))
    busy = eps[0]
    for _ in range(3):
        ll.started(busy)
    assert {ll.pick(eps).ordinal for _ in range(100)} == {1}


def test_busy_pod_loses_every_pairing() -> None:
    """A pod busier than all others is never chosen: every pair it is in, it loses."""
    ll = LeastLoaded(seed=2)
    eps = pods(range(5))
    ll.started(eps[2])
    picked = Counter(ll.pick(eps).ordinal for _ in range(2000))
    assert 2 not in picked
    assert set(picked) == {0, 1, 3, 4}


def test_finished_decrements_and_never_goes_negative() -> None:
    """Counts follow started/finished and ignore unmatched finishes."""
    ll = LeastLoaded()
    ep = pod(0)
    ll.started(ep)
    ll.started(ep)
    assert ll.inflight(ep) == 2
    ll.finished(ep)
    assert ll.inflight(ep) == 1
    ll.finished(ep)
    ll.finished(ep)
    assert ll.inflight(ep) == 0
    ll.finished(pod(9))  # never started: ignored
    assert ll.inflight(pod(9)) == 0


def test_counts_are_exact_under_threads() -> None:
    """Eight threads doing started/finished pairs leave exact counts."""
    ll = LeastLoaded()
    eps = pods(range(4))
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for i in range(500):
            ep = ll.pick(eps)
            ll.started(ep)
            ll.started(eps[i % 4])
            ll.finished(ep, latency=0.001)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [ll.inflight(ep) for ep in eps] == [1000, 1000, 1000, 1000]


def test_state_is_keyed_by_identity() -> None:
    """A pod restarting with a new IP keeps its in-flight count."""
    ll = LeastLoaded()
    ll.started(pod(0, address="10.9.9.9"))
    assert ll.inflight(pod(0, address="10.8.8.8")) == 1


def test_subset_views_keep_state_and_outgrown_tables_are_pruned() -> None:
    """A pod missing from one pick's set (ejected, or just tried) keeps its penalty; once
    the table clearly outgrows the view, idle pods that left are dropped, busy ones kept."""
    ll = LeastLoaded(ewma=True, clock=FakeClock())
    eps = pods(range(3))
    ll.pick(eps)
    ll.started(eps[1])
    ll.finished(eps[1], latency=0.5)
    ll.pick(pods([0, 2]))  # pod 1 ejected for a while
    assert ll.score(eps[1]) == pytest.approx(0.5)  # its penalty is still known
    many = pods(range(40))
    for ep in many:
        ll.started(ep)
        ll.finished(ep, latency=0.2)
    ll.started(eps[2])
    ll.pick(pods([0]))
    assert ll.score(eps[1]) == pytest.approx(0.030)  # forgotten: back to default
    assert ll.inflight(eps[2]) == 1


@pytest.mark.parametrize("bad", [{"decay": 0}, {"default_rtt": -1.0}, {"failure_penalty": 0.0}])
def test_rejects_non_positive_parameters(bad: dict[str, float]) -> None:
    """Time constants must be positive."""
    with pytest.raises(ValueError, match=next(iter(bad))):
        LeastLoaded(**bad)  # type: ignore[arg-type]


class TestPeakEwma:
    """The ewma=True cost: latency estimate times (in flight + 1)."""

    def test_unmeasured_pod_costs_default_rtt(self) -> None:
        """Before any sample the estimate is default_rtt."""
        ll = LeastLoaded(ewma=True, default_rtt=0.05, clock=FakeClock())
        ep = pod(0)
        assert ll.score(ep) == pytest.approx(0.05)
        ll.started(ep)
        assert ll.score(ep) == pytest.approx(0.10)

    def test_prefers_lower_latency(self) -> None:
        """Of two idle pods, the one measured faster wins every pick."""
        clock = FakeClock()
        ll = LeastLoaded(ewma=True, clock=clock, seed=3)
        eps = pods(range(2))
        for ep, latency in zip(eps, (0.200, 0.010)):
            ll.started(ep)
            ll.finished(ep, latency=latency)
        assert {ll.pick(eps).ordinal for _ in range(50)} == {1}

    def test_in_flight_multiplies_the_latency(self) -> None:
        """A fast pod with enough requests in flight loses to a slower idle one."""
        clock = FakeClock()
        ll = LeastLoaded(ewma=True, clock=clock)
        fast, slow = pods(range(2))
        for ep, latency in ((fast, 0.010), (slow, 0.025)):
            ll.started(ep)
            ll.finished(ep, latency=latency)
        for _ in range(3):
            ll.started(fast)
        assert ll.score(fast) == pytest.approx(0.040)
        assert ll.pick(EndpointSet([fast, slow])) == slow

    def test_peak_replaces_at_once(self) -> None:
        """A sample above the estimate becomes the estimate immediately."""
        clock = FakeClock()
        ll = LeastLoaded(ewma=True, clock=clock)
        ep = pod(0)
        ll.finished(ep, latency=0.010)
        clock.advance(0.001)
        ll.finished(ep, latency=0.900)
        assert ll.score(ep) == pytest.approx(0.900)

    def test_lower_sample_blends_by_elapsed_time(self) -> None:
        """A lower sample moves the estimate by weight 1 - exp(-elapsed/decay)."""
        clock = FakeClock()
        ll = LeastLoaded(ewma=True, decay=10.0, clock=clock)
        ep = pod(0)
        ll.finished(ep, latency=0.100)
        clock.advance(5.0)
        ll.finished(ep, latency=0.020)
        w = math.exp(-0.5)
        assert ll.score(ep) == pytest.approx(0.100 * w + 0.020 * (1 - w))

    def test_estimate_decays_without_samples(self) -> None:
        """A slow pod is tried again after a while: its estimate decays towards zero."""
        clock = FakeClock()
        ll = LeastLoaded(ewma=True, decay=10.0, clock=clock, seed=4)
        slow, fast = pods(range(2))
        ll.finished(slow, latency=1.0)
        ll.finished(fast, latency=0.010)
        eps = EndpointSet([slow, fast])
        assert ll.pick(eps) == fast
        clock.advance(10.0)
        assert ll.score(slow) == pytest.approx(math.exp(-1.0))
        clock.advance(60.0)
        assert ll.score(slow) == pytest.approx(math.exp(-7.0))
        # Both decayed by the same factor, so their order holds until a new sample; but
        # the slow pod now costs less than an unmeasured one and gets picked over it.
        newcomer = pod(5)
        assert ll.pick(EndpointSet([slow, newcomer])) == slow

    def test_failure_counts_as_slow_sample(self) -> None:
        """A failed request that failed fast still costs at least failure_penalty."""
        clock = FakeClock()
        ll = LeastLoaded(ewma=True, failure_penalty=2.0, clock=clock)
        bad, good = pods(range(2))
        ll.started(bad)
        ll.finished(bad, latency=0.0001, ok=False)
        ll.finished(good, latency=0.050)
        assert ll.score(bad) == pytest.approx(2.0)
        assert ll.pick(EndpointSet([bad, good])) == good

    def test_failure_without_latency(self) -> None:
        """ok=False with no latency is the penalty sample."""
        ll = LeastLoaded(ewma=True, failure_penalty=1.5, clock=FakeClock())
        ep = pod(0)
        ll.finished(ep, ok=False)
        assert ll.score(ep) == pytest.approx(1.5)

    def test_finish_without_latency_keeps_estimate(self) -> None:
        """A success without a measured latency changes only the count."""
        ll = LeastLoaded(ewma=True, default_rtt=0.03, clock=FakeClock())
        ep = pod(0)
        ll.started(ep)
        ll.finished(ep)
        assert ll.score(ep) == pytest.approx(0.03)
        assert ll.inflight(ep) == 0


def test_without_ewma_latency_is_ignored() -> None:
    """In in-flight mode the score is the count, whatever the latencies."""
    ll = LeastLoaded()
    ep = pod(0)
    ll.started(ep)
    ll.finished(ep, latency=9.0, ok=False)
    assert ll.score(ep) == 0.0


def test_single_endpoint_and_dual_stack() -> None:
    """One pod (even with two addresses) is returned without choosing."""
    v4 = Endpoint("10.0.0.1", 80, hostname="db-0.db.prod.svc.cluster.local", ordinal=0)
    v6 = Endpoint("fd00::1", 80, hostname="db-0.db.prod.svc.cluster.local", ordinal=0)
    assert LeastLoaded().pick(EndpointSet([v6, v4])) == v4


# -- the request-aware protocol ----------------------------------------------------------------


def test_choose_compares_the_usable_pods_only() -> None:
    """choose() pairs usable pods only and still prefers the less loaded of each pair."""
    snapshot = pods(range(4))
    usable = snapshot.without([snapshot[0]])
    ll = LeastLoaded(seed=4)
    ll.started(snapshot[1])
    picked = Counter(ll.choose(Request(), usable, snapshot).ordinal for _ in range(500))
    assert set(picked) == {2, 3}


def test_choose_skips_pods_already_tried() -> None:
    """A retry never pairs an excluded pod, falling back to untried ejected ones."""
    snapshot = pods(range(3))
    usable = snapshot.without([snapshot[2]])
    ll = LeastLoaded(seed=5)
    tried = Request(exclude={snapshot[0].identity})
    assert {ll.choose(tried, usable, snapshot).ordinal for _ in range(50)} == {1}
    tried = tried.excluding(snapshot[1].identity)
    assert ll.choose(tried, usable, snapshot).ordinal == 2


def test_key_picker_sees_load_reported_after_it_was_built() -> None:
    """The key-only picker built at publish time reads live in-flight counts."""
    snapshot = pods(range(2))
    ll = LeastLoaded(seed=6)
    quick = ll.key_picker(snapshot, snapshot)
    ll.started(snapshot[0])
    assert {quick("ignored").ordinal for _ in range(50)} == {1}
