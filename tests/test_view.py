"""view.py: the I/O-free half of the service, driven by a fake clock (no DNS, no sleeping).

Plus the stress test of design.md section 6: eight threads picking while the snapshot is
swapped every 10 ms.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from headless_client.view import ServiceView

from headless_client import (
    Endpoint,
    EndpointNotFound,
    EndpointSet,
    HealthPolicy,
    InvalidName,
    LeaderNotAvailable,
    LeastLoaded,
    NoEndpointsAvailable,
    PartitionLeader,
    ResolutionError,
    RoundRobin,
    ServiceNotFound,
    Sticky,
)
from headless_client.refresh import Decision
from headless_client.strategies import Strategy

NAME = "web.prod.svc.cluster.local"


class Clock:
    """A manual monotonic clock."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def pod(i: int, address: str | None = None) -> Endpoint:
    return Endpoint(address or f"10.0.0.{i + 1}", 8080, hostname=f"web-{i}.{NAME}", ordinal=i)


def pods(*ordinals: int) -> EndpointSet:
    return EndpointSet((pod(i) for i in ordinals), name=NAME)


class RecordingView(ServiceView):
    """Records the hooks the shells override."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.early_requests = 0
        self.health_changes = 0

    def _request_early_refresh(self) -> None:
        self.early_requests += 1

    def _health_changed(self) -> None:
        self.health_changes += 1


def make_view(
    snapshot: EndpointSet | None = None,
    *,
    strategy: Strategy | None = None,
    clock: Clock | None = None,
    health: HealthPolicy | None = None,
    empty_grace: float = 5.0,
) -> RecordingView:
    view = RecordingView(
        NAME,
        "http",
        strategy=strategy or RoundRobin(),
        clock=clock or Clock(),
        health=health,
        empty_grace=empty_grace,
    )
    if snapshot is not None:
        view._apply(view._publish_result(snapshot, None))
    return view


def picks(view: ServiceView, n: int = 60) -> Counter[int | None]:
    return Counter(view.pick().ordinal for _ in range(n))


# -- construction and reading ---------------------------------------------------------------


def test_new_view_is_empty_and_pick_names_the_service() -> None:
    view = ServiceView(NAME, "http")
    assert len(view.endpoints) == 0
    assert view.name == NAME
    assert isinstance(view.strategy, RoundRobin)
    with pytest.raises(NoEndpointsAvailable, match=NAME):
        view.pick()


def test_strategy_without_pick_is_rejected() -> None:
    with pytest.raises(InvalidName, match="strategy must have a pick"):
        ServiceView(NAME, 80, strategy=object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"min_refresh": 0}, "min_refresh"),
        ({"max_refresh": -1}, "max_refresh"),
        ({"min_refresh": 5, "max_refresh": 1}, "max_refresh"),
        ({"empty_grace": -1}, "empty_grace"),
        ({"jitter": 1.5}, "jitter"),
    ],
)
def test_bad_refresh_settings_raise_invalid_name(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidName, match=needle):
        ServiceView(NAME, 80, **kwargs)  # type: ignore[arg-type]


def test_apply_publishes_and_returns_the_event() -> None:
    """One publish = one (old, new) event; an equal set or no publish gives no event."""
    view = make_view()
    first = pods(0, 1)
    event = view._apply(Decision(first, 1.0))
    assert event is not None
    old, new = event
    assert len(old) == 0
    assert new is first
    assert view.endpoints is first
    assert view.healthy_endpoints is first
    assert view._apply(Decision(pods(0, 1), 1.0)) is None  # equal: nothing to tell
    assert view._apply(Decision(None, 1.0)) is None
    previous = view.endpoints
    second = pods(0, 1, 2)
    event = view._apply(Decision(second, 1.0))
    assert event is not None
    assert event[0] is previous
    assert event[1] is second
    assert view.endpoints is second


def test_apply_chains_events() -> None:
    """The new set of event i is the old set of event i+1."""
    view = make_view()
    events = [view._apply(Decision(pods(*range(n)), 1.0)) for n in (1, 3, 2, 0, 2)]
    assert all(e is not None for e in events)
    chain = [e for e in events if e is not None]
    for (_, new), (old, _) in itertools.pairwise(chain):
        assert new is old
    assert chain[-1][1] is view.endpoints


def test_apply_logs_the_decision_messages(caplog: pytest.LogCaptureFixture) -> None:
    view = make_view()
    with caplog.at_level(logging.INFO, logger="headless_client.service"):
        view._apply(Decision(None, 1.0, warning="careful", info="fyi"))
    levels = {(r.levelno, r.getMessage()) for r in caplog.records}
    assert (logging.WARNING, "careful") in levels
    assert (logging.INFO, "fyi") in levels


# -- endpoint(ordinal=) / endpoint(hostname=) ------------------------------------------------


def test_endpoint_by_ordinal_and_hostname() -> None:
    view = make_view(pods(0, 2, 3))
    assert view.endpoint(2) == pod(2)
    assert view.endpoint(ordinal=3) == pod(3)
    assert view.endpoint(hostname="web-2") == pod(2)
    assert view.endpoint(hostname=f"WEB-0.{NAME}.") == pod(0)


def test_endpoint_missing_names_service_and_ordinals() -> None:
    view = make_view(pods(0, 2))
    with pytest.raises(EndpointNotFound) as info:
        view.endpoint(1)
    message = str(info.value)
    assert NAME in message
    assert "ordinal 1" in message
    assert "0, 2" in message
    with pytest.raises(EndpointNotFound, match="'web-7'"):
        view.endpoint(hostname="web-7")
    assert isinstance(info.value, LookupError)


def test_endpoint_on_empty_view_says_none() -> None:
    with pytest.raises(EndpointNotFound, match="ordinals now: none"):
        make_view().endpoint(0)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((1,), {"hostname": "web-1"}), ((-1,), {}), ((True,), {}), (("2",), {})],
)
def test_endpoint_bad_arguments(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    view = make_view(pods(0, 1, 2))
    with pytest.raises(InvalidName):
        view.endpoint(*args, **kwargs)  # type: ignore[arg-type]


# -- pick(partition=) -------------------------------------------------------------------------


def test_pick_partition_needs_partition_leader() -> None:
    view = make_view(pods(0, 1))
    with pytest.raises(TypeError, match="PartitionLeader") as info:
        view.pick(partition=3)
    assert "RoundRobin" in str(info.value)
    assert "3" in str(info.value)


def test_pick_partition_routes_to_leader_even_when_ejected() -> None:
    """Only the leader can serve a partition, so ejection does not redirect it."""
    view = make_view(pods(0, 1, 2, 3), strategy=PartitionLeader({0: 1, ("orders", 3): "web-2", 9: 7}))
    assert view.pick(partition=0) == pod(1)
    assert view.pick(partition=("orders", 3)) == pod(2)
    view.report_failure(pod(1))
    assert pod(1) not in view.healthy_endpoints
    assert view.pick(partition=0) == pod(1)
    with pytest.raises(LeaderNotAvailable, match="ordinal 7"):
        view.pick(partition=9)
    with pytest.raises(LeaderNotAvailable):
        view.pick(partition=42)


# -- passive health ---------------------------------------------------------------------------


def test_report_failure_ejects_for_the_period_and_asks_for_a_refresh() -> None:
    clock = Clock()
    view = make_view(pods(0, 1, 2), clock=clock, health=HealthPolicy(base_ejection=2.0))
    view.report_failure(pod(1))
    assert view.early_requests == 1
    assert view.health_changes == 1
    assert view.endpoints == pods(0, 1, 2)  # DNS view unchanged
    assert view.healthy_endpoints == pods(0, 2)
    assert set(picks(view)) == {0, 2}
    assert view._next_health_expiry() == pytest.approx(clock.now + 2.0)
    clock.advance(1.9)
    view._rebuild_healthy()
    assert view.healthy_endpoints == pods(0, 2)
    clock.advance(0.2)
    assert view._next_health_expiry() is None
    view._rebuild_healthy()  # what the refresher does at the expiry
    assert view.healthy_endpoints == pods(0, 1, 2)
    assert set(picks(view)) == {0, 1, 2}


def test_report_success_restores_at_once() -> None:
    view = make_view(pods(0, 1, 2), health=HealthPolicy(base_ejection=30.0))
    view.report_failure(pod(0))
    assert set(picks(view)) == {1, 2}
    view.report_success(pod(0), latency=0.01)
    assert view.healthy_endpoints == pods(0, 1, 2)
    assert set(picks(view)) == {0, 1, 2}
    # A success for a healthy endpoint changes nothing (and takes no lock).
    healthy = view.healthy_endpoints
    view.report_success(pod(1))
    assert view.healthy_endpoints is healthy


def test_repeated_failures_back_off_base_times_n() -> None:
    clock = Clock()
    view = make_view(pods(0, 1, 2), clock=clock, health=HealthPolicy(base_ejection=1.0, max_ejection=2.5))
    ends = []
    for _ in range(4):
        view.report_failure(pod(2))
        expiry = view._next_health_expiry()
        assert expiry is not None
        ends.append(expiry - clock.now)
        clock.now = expiry
    assert ends == pytest.approx([1.0, 2.0, 2.5, 2.5])


def test_panic_threshold_uses_every_endpoint() -> None:
    """Ejecting more than max_ejected of the set would overload the rest: use them all."""
    view = make_view(pods(0, 1, 2, 3), health=HealthPolicy(max_ejected=0.5, base_ejection=10.0))
    view.report_failure(pod(0))
    view.report_failure(pod(1))
    assert set(picks(view)) == {2, 3}  # exactly half: honoured
    view.report_failure(pod(2))
    assert view.healthy_endpoints == view.endpoints
    assert set(picks(view)) == {0, 1, 2, 3}
    view.report_success(pod(2))
    assert set(picks(view)) == {2, 3}


def test_health_state_is_pruned_when_a_pod_leaves_dns() -> None:
    """An endpoint that disappears from DNS drops its health state; it comes back clean."""
    clock = Clock()
    view = make_view(pods(0, 1, 2), clock=clock, health=HealthPolicy(base_ejection=30.0))
    view.report_failure(pod(1))
    assert pod(1) not in view.healthy_endpoints
    view._apply(Decision(pods(0, 2), 1.0))
    clock.advance(1.0)
    view._apply(Decision(pods(0, 1, 2), 1.0))
    assert view.healthy_endpoints == pods(0, 1, 2)
    assert set(picks(view)) == {0, 1, 2}


def test_stale_failure_of_a_departed_pod_does_not_eject_it_on_return() -> None:
    """A failure reported for a pod no longer in the view (a stale pick) ejects nothing,
    so the pod is healthy when DNS brings it back; DNS is still refreshed early."""
    view = make_view(pods(0, 1, 2), health=HealthPolicy(base_ejection=30.0))
    stale = view.endpoint(1)
    view._apply(Decision(pods(0, 2), 1.0))
    view.report_failure(stale)
    assert view.early_requests == 1
    assert view.health_changes == 0
    view._apply(Decision(pods(0, 1, 2), 1.0))
    assert view.healthy_endpoints == pods(0, 1, 2)


def test_restarted_pod_keeps_identity_and_ejection() -> None:
    """Health follows the pod (hostname), not the IP: a new address stays ejected."""
    view = make_view(pods(0, 1, 2), health=HealthPolicy(base_ejection=30.0))
    view.report_failure(pod(1))
    moved = EndpointSet([pod(0), pod(1, "10.9.9.9"), pod(2)], name=NAME)
    view._apply(Decision(moved, 1.0))
    assert view.endpoint(1).address == "10.9.9.9"
    assert set(picks(view)) == {0, 2}


def test_report_calls_feed_a_load_tracking_strategy() -> None:
    strategy = Sticky(bounded_load=1.25)
    view = make_view(pods(0, 1, 2), strategy=strategy)
    ep = view.pick("user-1")
    view._started(ep)
    view._started(ep)
    assert strategy.load(ep) == 2
    view.report_success(ep, latency=0.001)
    assert strategy.load(ep) == 1
    view.report_failure(ep)
    assert strategy.load(ep) == 0


# -- refresh outcomes through the view (fake clock) ---------------------------------------


def test_nxdomain_empties_the_view_only_after_the_grace() -> None:
    clock = Clock()
    view = make_view(pods(0, 1), clock=clock, empty_grace=5.0)
    gone = ServiceNotFound(f"{NAME}: NXDOMAIN")
    assert view._apply(view._publish_result(None, gone)) is None
    clock.advance(3.0)
    assert view._apply(view._publish_result(None, gone)) is None
    assert len(view.endpoints) == 2
    assert view.pick().ordinal in (0, 1)
    clock.advance(2.0)
    event = view._apply(view._publish_result(None, gone))
    assert event is not None
    assert len(event[1]) == 0
    with pytest.raises(NoEndpointsAvailable):
        view.pick()


def test_transport_errors_keep_the_last_good_set() -> None:
    clock = Clock()
    view = make_view(pods(0, 1), clock=clock, empty_grace=0.5)
    for _ in range(5):
        clock.advance(10.0)  # far beyond the grace: errors are not "empty"
        decision = view._publish_result(None, ResolutionError("timed out"))
        assert decision.publish is None
        assert view._apply(decision) is None
    assert view.endpoints == pods(0, 1)


def test_nxdomain_on_an_empty_view_applies_at_once() -> None:
    view = make_view()
    decision = view._publish_result(None, ServiceNotFound("x"))
    assert decision.publish is not None
    assert len(decision.publish) == 0
    assert view._apply(decision) is None  # empty -> empty: no event


# -- subscriptions ------------------------------------------------------------------------


def test_subscribe_rejects_non_callables_and_unsubscribe_is_idempotent() -> None:
    view = make_view()
    with pytest.raises(TypeError, match="callable"):
        view.subscribe("nope")  # type: ignore[arg-type]

    def callback(old: EndpointSet, new: EndpointSet) -> None: ...

    unsubscribe = view.subscribe(callback)
    assert callback in view._subscribers
    unsubscribe()
    unsubscribe()
    assert callback not in view._subscribers


# -- stress: 8 threads picking while the set is swapped every 10 ms (design.md section 6) ----

THREADS = 8
SWAP_EVERY = 0.010
DURATION = 2.0
GENERATIONS = int(DURATION / SWAP_EVERY)
MAX_PICKS_PER_THREAD = 2_000_000


def generation_set(g: int) -> EndpointSet:
    """Generation *g*: 1..7 pods on addresses unique to it (10.<g>.x.y), ordinals shifting."""
    size = 1 + g % 7
    return EndpointSet(
        (
            Endpoint(f"10.{g // 250}.{g % 250}.{i + 1}", 8080, hostname=f"web-{g + i}.{NAME}", ordinal=g + i)
            for i in range(size)
        ),
        name=NAME,
    )


@pytest.mark.parametrize(
    ("factory", "keyed"),
    [(RoundRobin, False), (lambda: Sticky(vnodes=40), True), (lambda: LeastLoaded(seed=7), False)],
    ids=["round-robin", "sticky", "least-loaded"],
)
def test_picks_never_see_a_stale_set_while_swapping(factory: Callable[[], Strategy], keyed: bool) -> None:
    """No exception, and every pick is a member of the set published when the pick began
    or of a later one (generation counter: published after the swap is visible)."""
    sets = [generation_set(g) for g in range(GENERATIONS)]
    owner = {ep: g for g, s in enumerate(sets) for ep in s}
    view = ServiceView(NAME, "http", strategy=factory(), health=HealthPolicy(base_ejection=0.05))
    view._apply(Decision(sets[0], 1.0))
    published = [0]  # generation whose swap has completed
    stop = threading.Event()
    errors: list[BaseException] = []
    stale: list[tuple[int, int, int]] = []
    per_generation: Counter[int] = Counter()
    counts = [0] * THREADS

    def picker(n: int) -> None:
        key = f"user-{n}" if keyed else None
        seen: Counter[int] = Counter()
        done = 0
        try:
            while not stop.is_set() and done < MAX_PICKS_PER_THREAD:
                before = published[0]
                ep = view.pick(key)
                after = published[0]
                g = owner[ep]
                # >= before: never older than a completed swap. <= after + 1: the swap to
                # after + 1 may be visible before its counter is.
                if not before <= g <= after + 1:
                    stale.append((before, g, after))
                seen[g] += 1
                done += 1
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
        counts[n] = done
        per_generation.update(seen)

    def health_churn() -> None:
        # Failures and successes of current endpoints rebuild the healthy set under the
        # same lock as the swaps; they must never leak an endpoint of an older set.
        i = 0
        try:
            while not stop.is_set() and i < 1_000_000:
                snapshot = view.endpoints
                ep = snapshot[i % len(snapshot)]
                if i % 2:
                    view.report_success(ep)
                else:
                    view.report_failure(ep)
                i += 1
                time.sleep(0.001)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=picker, args=(n,), name=f"picker-{n}") for n in range(THREADS)]
    threads.append(threading.Thread(target=health_churn, name="health-churn"))
    # Eight CPU-bound pickers would hold the GIL for 5 ms slices and starve the publisher
    # into bursts; shorter slices keep the swaps at their 10 ms pace.
    interval = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.0002)
        for t in threads:
            t.start()
        next_swap = time.monotonic()
        for g in range(1, GENERATIONS):
            next_swap += SWAP_EVERY
            delay = next_swap - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the publisher, not waiting for anything
            view._apply(Decision(sets[g], 1.0))
            published[0] = g
    finally:
        stop.set()
        for t in threads:
            if t.ident is not None:
                t.join(10.0)
        sys.setswitchinterval(interval)
    assert not [t.name for t in threads if t.is_alive()]
    assert not errors, errors[:3]
    assert not stale, f"{len(stale)} stale picks, e.g. (published, picked, published after): {stale[:5]}"
    assert all(c > 100 for c in counts), counts
    # The picks really straddled the swaps: many generations were picked from (about
    # all of them on an idle machine; a loaded one runs the publisher in bursts).
    assert len(per_generation) >= GENERATIONS // 10, len(per_generation)
    assert view.endpoints is sets[-1]


def test_primary_replica_writes_reach_an_ejected_primary():
    """pick("write") returns the primary even while it is ejected; reads skip it."""
    from headless_client.view import ServiceView

    from headless_client import Endpoint, EndpointSet, PrimaryReplica
    from headless_client.refresh import Decision

    eps = EndpointSet(
        [Endpoint(f"10.0.0.{i + 1}", 5432, f"db-{i}.db.prod.svc.cluster.local", i) for i in range(3)],
        name="db.prod.svc.cluster.local",
    )
    view = ServiceView("db.prod", 5432, strategy=PrimaryReplica())
    view._apply(Decision(eps, 1.0))
    view.report_failure(eps[0])
    assert view.pick("write").ordinal == 0
    assert view.pick(PrimaryReplica.WRITE).ordinal == 0
    assert sorted(view.pick().ordinal for _ in range(6)) == [1, 1, 1, 2, 2, 2]  # both replicas read
