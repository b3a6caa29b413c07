"""core.py: the sans-I/O service core, driven with explicit times (no resolver, no sleeping).

Plus the stress test of design.md section 6: eight threads picking while the published
view is swapped every 10 ms.
"""

from __future__ import annotations

import gc
import itertools
import logging
import math
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable

import pytest

from headless_client import (
    ConnectError,
    Endpoint,
    EndpointNotFound,
    EndpointSet,
    HealthPolicy,
    InvalidArgument,
    InvalidName,
    LeaderNotAvailable,
    LeastLoaded,
    NoEndpointsAvailable,
    PartitionLeader,
    PrimaryReplica,
    RefreshPolicy,
    Request,
    ResolutionError,
    RoundRobin,
    ServiceClosed,
    ServiceEvent,
    ServiceNotFound,
    ServiceNotStarted,
    Sticky,
)
from headless_client.connect import ConnectPolicy
from headless_client.core import STOP, Resolve, ServiceCore, WaitUntil
from headless_client.errors import ConnectAborted

NAME = "web.prod.svc.cluster.local"
T0 = 1000.0


def pod(i: int, address: str | None = None) -> Endpoint:
    return Endpoint(address or f"10.0.0.{i + 1}", 8080, hostname=f"web-{i}.{NAME}", ordinal=i)


def pods(*ordinals: int, ttl: int | None = 30) -> EndpointSet:
    return EndpointSet((pod(i) for i in ordinals), name=NAME, ttl=ttl)


def make_core(
    strategy: object = None,
    *,
    refresh: RefreshPolicy | None = None,
    health: HealthPolicy | None = None,
) -> ServiceCore:
    core = ServiceCore(
        NAME,
        "http",
        strategy=RoundRobin() if strategy is None else strategy,
        # No jitter: the schedule is then exact and tests can name every deadline.
        refresh=refresh or RefreshPolicy(min_refresh=1.0, max_refresh=30.0, jitter=0.0),
        health=health or HealthPolicy(),
        connect=ConnectPolicy(),
    )
    # Events are queued only for subscribers: one that listens to everything.
    core.subscribe(lambda event: None, events=True)
    return core


def changes(core: ServiceCore) -> list[ServiceEvent]:
    """The queued "changed" events (the view before and after), oldest first."""
    return [event for event in core.take_events() if event.kind == "changed"]


def running(snapshot: EndpointSet, strategy: object = None, **kwargs: object) -> ServiceCore:
    """A started core whose first resolution (at T0) answered *snapshot*; events drained."""
    core = make_core(strategy, **kwargs)  # type: ignore[arg-type]
    assert core.begin_start()
    core.begin_resolve()
    core.resolved(T0, snapshot, None)
    core.start_done()
    core.take_events()
    return core


def settle(core: ServiceCore, now: float) -> WaitUntil:
    """Serve every resolution due at *now* with an unchanged answer; the wait that follows."""
    for _ in range(3):
        action = core.next_action(now)
        if isinstance(action, Resolve):
            core.resolved(now, action.previous, None)
            continue
        assert isinstance(action, WaitUntil), action
        return action
    raise AssertionError("the core keeps asking for resolutions")


def picks(core: ServiceCore, n: int = 60, key: object = None) -> Counter[int | None]:
    return Counter(core.quick(key).ordinal for _ in range(n))


class Listener:
    """Counts the core's wake-ups."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


# -- construction --------------------------------------------------------------------------------


def test_new_core_is_empty_and_every_read_says_not_started() -> None:
    """A new core holds an empty view and pick, quick, endpoint and connect_plan raise ServiceNotStarted."""
    core = make_core()
    assert core.phase == "new"
    assert not core.closed
    assert len(core.view.snapshot) == 0
    assert core.view.usable is core.view.snapshot
    assert isinstance(core.strategy, RoundRobin)
    for call in (
        lambda: core.pick(Request()),
        lambda: core.quick(None),
        lambda: core.quick("user-1"),
        lambda: core.endpoint(0),
        lambda: core.connect_plan(Request(), ConnectPolicy(), T0, 1.0),
    ):
        with pytest.raises(ServiceNotStarted, match=f"{NAME}: the service is not started") as info:
            call()
        assert isinstance(info.value, NoEndpointsAvailable)  # 0.1.0 callers catch this
    assert core.next_action(T0) == WaitUntil(math.inf)  # no refreshing before start
    assert "new 0 endpoints" in core.describe()


def test_strategy_class_instead_of_instance_is_rejected_naming_it() -> None:
    """A strategy class (not an instance) raises InvalidArgument that says how to fix it."""
    with pytest.raises(InvalidArgument, match=r"pass RoundRobin\(\) instead of RoundRobin"):
        make_core(RoundRobin)


@pytest.mark.parametrize("strategy", [object(), "round-robin", 42])
def test_object_without_choose_or_pick_is_rejected_naming_it(strategy: object) -> None:
    """An object with neither choose nor pick raises InvalidArgument naming its type."""
    with pytest.raises(InvalidArgument, match="choose.*or pick") as info:
        make_core(strategy)
    assert type(strategy).__name__ in str(info.value)
    assert isinstance(info.value, InvalidName)  # 0.1.0 raised InvalidName


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"min_refresh": 0}, "min_refresh"),
        ({"min_refresh": 0.04}, "min_refresh must be >= 0.05 seconds: 0.04"),
        ({"min_refresh": math.nan}, "min_refresh must be a finite number of seconds: nan"),
        ({"max_refresh": -1}, "max_refresh"),
        ({"max_refresh": math.inf}, "max_refresh must be a finite number of seconds: inf"),
        ({"max_refresh": 86_401}, "max_refresh must be at most 86400 seconds: 86401"),
        ({"min_refresh": 5, "max_refresh": 1}, r"max_refresh \(1\) must be >= min_refresh \(5\)"),
        ({"empty_grace": -1}, "empty_grace must be >= 0 seconds: -1"),
        ({"empty_grace": math.inf}, "empty_grace"),
        ({"jitter": 1.5}, "jitter must be in"),
        ({"jitter": math.nan}, "jitter"),
    ],
)
def test_bad_refresh_settings_raise_invalid_name_naming_the_value(kwargs: dict[str, object], needle: str) -> None:
    """Every bad RefreshPolicy value raises InvalidName whose message names the field and value."""
    with pytest.raises(InvalidName, match=needle):
        RefreshPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"min_refresh": "1"}, "min_refresh must be a number of seconds, not str"),
        ({"min_refresh": True}, "min_refresh"),
        ({"jitter": "0.1"}, "jitter"),
        ({"backoff": 3}, "backoff must be a tenacity wait object"),
    ],
)
def test_refresh_settings_of_the_wrong_type_raise_invalid_argument(kwargs: dict[str, object], needle: str) -> None:
    """A RefreshPolicy value of the wrong type (a non-callable backoff included) raises InvalidArgument."""
    with pytest.raises(InvalidArgument, match=needle):
        RefreshPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"base_ejection": 0}, InvalidName, "base_ejection must be > 0 seconds: 0"),
        ({"base_ejection": math.nan}, InvalidName, "base_ejection must be a finite"),
        ({"max_ejection": math.inf}, InvalidName, "max_ejection must be a finite"),
        ({"max_ejected": 1.5}, InvalidName, r"max_ejected must be a share in \[0, 1\]: 1.5"),
        ({"max_ejected": math.nan}, InvalidName, "max_ejected"),
        ({"max_ejected": "half"}, InvalidArgument, "max_ejected"),
        ({"base_ejection": "2"}, InvalidArgument, "base_ejection"),
    ],
)
def test_bad_health_settings_raise_naming_the_value(
    kwargs: dict[str, object], error: type[Exception], needle: str
) -> None:
    """Every bad HealthPolicy value raises InvalidName (InvalidArgument for a wrong type) naming it."""
    with pytest.raises(error, match=needle):
        HealthPolicy(**kwargs)  # type: ignore[arg-type]


# -- publishing and events -----------------------------------------------------------------------


def test_resolved_publishes_and_queues_one_event_per_change() -> None:
    """An answer publishes the view and queues EndpointsChanged(old, new); an equal answer queues nothing."""
    core = make_core()
    assert core.begin_start()
    action = core.begin_resolve()
    assert action.previous is core.view.snapshot
    first = pods(0, 1)
    core.resolved(T0, first, None)
    core.start_done()
    assert core.phase == "running"
    assert core.has_events()
    (event,) = changes(core)
    assert isinstance(event, ServiceEvent) and event.kind == "changed"
    assert event.service == NAME
    assert len(event.old) == 0
    assert event.new is first
    assert event.old.diff(event.new).added == tuple(first)
    assert core.view.snapshot is first
    assert core.view.usable is first
    assert core.take_events() == []  # each event is returned once
    core.resolved(T0 + 30, pods(0, 1), None)  # equal: nothing to tell
    assert not core.has_events()
    assert core.view.snapshot is first
    second = pods(0, 1, 2)
    core.resolved(T0 + 60, second, None)
    (event,) = changes(core)
    assert event.old is first
    assert event.new is second
    assert event.old.diff(event.new).added == (pod(2),)
    assert event.old.diff(event.new).removed == ()


def test_events_chain_old_to_new() -> None:
    """The new set of event i is the old set of event i+1, and the last new set is the view."""
    core = running(EndpointSet(name=NAME), refresh=RefreshPolicy(empty_grace=0, jitter=0))
    for step, n in enumerate((1, 3, 2, 0, 2)):
        core.resolved(T0 + step, pods(*range(n)), None)
    chain = changes(core)
    assert len(chain) == 5
    for before, after in itertools.pairwise(chain):
        assert before.new is after.old
    assert chain[-1].new is core.view.snapshot


def test_subscribers_get_old_and_new_and_a_raising_one_is_isolated(caplog: pytest.LogCaptureFixture) -> None:
    """deliver() calls each subscriber with (old, new); one that raises is logged and the next still runs."""
    core = running(pods(0))
    seen: list[tuple[EndpointSet, EndpointSet]] = []

    def broken(old: EndpointSet, new: EndpointSet) -> None:
        raise RuntimeError("subscriber bug")

    core.subscribe(broken)
    unsubscribe = core.subscribe(lambda old, new: seen.append((old, new)))
    core.resolved(T0 + 1, pods(0, 1), None)
    with caplog.at_level(logging.ERROR, logger="headless_client.service"):
        for event in core.take_events():
            core.deliver(event)
    assert seen == [(pods(0), pods(0, 1))]
    assert any("raised" in r.getMessage() and r.exc_info for r in caplog.records)
    unsubscribe()
    unsubscribe()  # idempotent
    assert [callback for callback, _ in core.subscribers] == [core.subscribers[0][0], broken]
    with pytest.raises(InvalidArgument, match="callable"):
        core.subscribe("nope")  # type: ignore[arg-type]


def test_decision_messages_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A failure streak warns once, its recovery and membership changes log at INFO."""
    core = running(pods(0, 1))
    with caplog.at_level(logging.INFO, logger="headless_client.service"):
        core.resolved(T0 + 1, None, ResolutionError("127.0.0.1:53 timed out"))
        core.resolved(T0 + 3, None, ResolutionError("127.0.0.1:53 timed out"))
        core.resolved(T0 + 6, pods(0, 1, 2), None)
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    warnings = [m for level, m in messages if level == logging.WARNING]
    assert warnings == [
        f"resolving {NAME} failed, keeping 2 known endpoints and retrying with backoff: 127.0.0.1:53 timed out"
    ]
    assert (logging.INFO, f"resolving {NAME} recovered after 2 failures") in messages
    assert (logging.INFO, f"{NAME}: 3 endpoints (+1 -0)") in messages
    assert all(getattr(r, "service", None) == NAME for r in caplog.records)


def test_unexpected_error_is_logged_with_its_traceback_and_kept_as_a_resolution_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An error that is not a ResolutionError (a resolver bug) is logged with its traceback and never fatal."""
    core = running(pods(0, 1))
    with caplog.at_level(logging.ERROR, logger="headless_client.service"):
        core.resolved(T0 + 1, None, RuntimeError("resolver bug"))
    assert isinstance(core.last_error, ResolutionError)
    assert "refresh failed unexpectedly" in str(core.last_error)
    assert "resolver bug" in str(core.last_error)
    assert core.view.snapshot == pods(0, 1)
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info is not None
    assert isinstance(settle(core, T0 + 1), WaitUntil)  # the schedule goes on


# -- endpoint(ordinal=) / endpoint(hostname=) ----------------------------------------------------


def test_endpoint_by_ordinal_and_hostname() -> None:
    """endpoint() finds a pod by ordinal, FQDN or first label, case and trailing dot ignored."""
    core = running(pods(0, 2, 3))
    assert core.endpoint(2) == pod(2)
    assert core.endpoint(ordinal=3) == pod(3)
    assert core.endpoint(hostname="web-2") == pod(2)
    assert core.endpoint(hostname=f"WEB-0.{NAME}.") == pod(0)


def test_endpoint_of_an_ejected_pod_is_still_found() -> None:
    """endpoint() reads the whole snapshot, so an ejected pod is still returned."""
    core = running(pods(0, 1, 2))
    core.report_failure(1, T0 + 1)
    assert pod(1) not in core.view.usable
    assert core.endpoint(1) == pod(1)


def test_endpoint_missing_names_service_and_ordinals() -> None:
    """A missing pod raises EndpointNotFound (a LookupError) naming the service, the pod and the ordinals."""
    core = running(pods(0, 2))
    with pytest.raises(EndpointNotFound) as info:
        core.endpoint(1)
    message = str(info.value)
    assert NAME in message
    assert "ordinal 1" in message
    assert "ordinals now: 0, 2" in message
    assert isinstance(info.value, LookupError)
    with pytest.raises(EndpointNotFound, match="pod 'web-7'"):
        core.endpoint(hostname="web-7")


def test_endpoint_on_an_empty_view_says_none() -> None:
    """On an empty (but resolved) view, the message lists no ordinals."""
    core = running(EndpointSet(name=NAME))
    with pytest.raises(EndpointNotFound, match="ordinals now: none"):
        core.endpoint(0)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((1,), {"hostname": "web-1"}), ((-1,), {}), ((True,), {}), (("2",), {}), ((), {"hostname": ""})],
)
def test_endpoint_bad_arguments(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    """Neither or both selectors, a negative, bool or str ordinal, or an empty hostname raise InvalidName."""
    core = running(pods(0, 1, 2))
    with pytest.raises(InvalidName):
        core.endpoint(*args, **kwargs)  # type: ignore[arg-type]


# -- partitions ------------------------------------------------------------------------------------


def test_partition_needs_a_strategy_that_routes_partitions() -> None:
    """A partition request to RoundRobin raises InvalidArgument (a TypeError) naming the strategy and partition."""
    core = running(pods(0, 1))
    with pytest.raises(InvalidArgument, match="PartitionLeader") as info:
        core.pick(Request(partition=3))
    assert "RoundRobin" in str(info.value)
    assert "partition=3" in str(info.value)
    assert isinstance(info.value, TypeError)  # what 0.1.0 raised
    with pytest.raises(InvalidArgument, match="not_leader needs a strategy that routes partitions"):
        core.not_leader(3, None)


def test_partition_routes_to_the_leader_even_when_ejected() -> None:
    """Only the leader can serve a partition, so ejection does not redirect it."""
    core = running(pods(0, 1, 2, 3), PartitionLeader({0: 1, ("orders", 3): "web-2", 9: 7}))
    assert core.pick(Request(partition=0)) == pod(1)
    assert core.pick(Request(partition=("orders", 3))) == pod(2)
    assert core.pins(Request(partition=0))
    core.report_failure(pod(1), T0 + 1)
    assert pod(1) not in core.view.usable
    assert core.pick(Request(partition=0)) == pod(1)
    with pytest.raises(LeaderNotAvailable, match="ordinal 7"):
        core.pick(Request(partition=9))
    with pytest.raises(LeaderNotAvailable, match="42"):
        core.pick(Request(partition=42))


def test_any_pod_calls_spread_over_usable_pods() -> None:
    """An any_pod call to a partitioned service rotates over the usable pods instead of refusing."""
    core = running(pods(0, 1, 2), PartitionLeader({0: 0}))
    core.report_failure(0, T0 + 1)
    got = Counter(core.pick(Request(any_pod=True)).ordinal for _ in range(40))
    assert got == {1: 20, 2: 20}


def test_a_leader_change_republishes_and_wakes_the_driver() -> None:
    """not_leader with a hint moves the partition at once: key picks follow and listeners are woken."""
    strategy: PartitionLeader[int] = PartitionLeader({0: 1})
    core = running(pods(0, 1, 2), strategy)
    listener = Listener()
    core.listen(listener)
    assert core.quick(0) == pod(1)  # a bare key is a partition, 0.1.0 style
    core.not_leader(0, 2)
    assert listener.calls == 1
    assert core.quick(0) == pod(2)
    assert core.pick(Request(partition=0)) == pod(2)
    assert not core.lacks_pod(2)
    assert core.lacks_pod(5)
    assert core.lacks_pod("web-9")
    assert not core.lacks_pod(True)  # not a pod name at all
    assert not core.lacks_pod(-1)


# -- passive health -----------------------------------------------------------------------------


def test_report_failure_ejects_for_the_period_and_asks_for_a_refresh() -> None:
    """A failure ejects the pod from the usable set until base_ejection passes and asks for an early refresh."""
    core = running(pods(0, 1, 2), health=HealthPolicy(base_ejection=2.0))
    listener = Listener()
    core.listen(listener)
    now = T0 + 10
    core.report_failure(pod(1), now)
    assert listener.calls == 1
    assert core.view.snapshot == pods(0, 1, 2)  # the DNS view is unchanged
    assert core.view.usable == pods(0, 2)
    assert set(picks(core)) == {0, 2}
    assert "1 ejected" in core.describe()
    assert isinstance(core.next_action(now), Resolve)  # early: the last one was 10 s ago
    core.resolved(now, pods(0, 1, 2), None)
    assert core.next_action(now) == WaitUntil(now + 2.0)  # the ejection's end
    assert core.next_action(now + 1.9) == WaitUntil(now + 2.0)
    assert core.view.usable == pods(0, 2)
    assert core.next_action(now + 2.0) == WaitUntil(T0 + 40)  # rebuilt; next: the TTL
    assert core.view.usable == pods(0, 1, 2)
    assert set(picks(core)) == {0, 1, 2}


def test_report_success_restores_at_once() -> None:
    """A success ends the ejection at once; a success of a healthy pod republishes nothing."""
    core = running(pods(0, 1, 2), health=HealthPolicy(base_ejection=30.0))
    core.report_failure(pod(0), T0 + 1)
    assert set(picks(core)) == {1, 2}
    core.report_success(pod(0), 0.01, T0 + 2)
    assert core.view.usable == pods(0, 1, 2)
    assert set(picks(core)) == {0, 1, 2}
    view = core.view
    core.report_success(pod(1), None, T0 + 3)
    assert core.view is view


def test_repeated_failures_eject_for_n_times_base_capped() -> None:
    """The n-th consecutive ejection lasts n * base_ejection, capped at max_ejection."""
    core = running(pods(0, 1, 2), health=HealthPolicy(base_ejection=1.0, max_ejection=2.5))
    now = T0 + 10
    ends = []
    for _ in range(4):
        core.report_failure(pod(2), now)
        wait = settle(core, now)
        assert pod(2) not in core.view.usable
        ends.append(wait.deadline - now)
        now = wait.deadline
    assert ends == pytest.approx([1.0, 2.0, 2.5, 2.5])


def test_failures_during_an_ejection_count_once() -> None:
    """Concurrent failures of one outage do not lengthen the ejection."""
    core = running(pods(0, 1, 2), health=HealthPolicy(base_ejection=1.0))
    core.report_failure(2, T0 + 10)
    core.report_failure(2, T0 + 10.5)
    core.report_failure(2, T0 + 10.9)
    assert settle(core, T0 + 10.9).deadline == T0 + 11.0


def test_panic_threshold_uses_every_endpoint() -> None:
    """Ejecting more than max_ejected of the set would overload the rest: every pod is used."""
    core = running(pods(0, 1, 2, 3), health=HealthPolicy(max_ejected=0.5, base_ejection=10.0))
    core.report_failure(pod(0), T0 + 1)
    core.report_failure(pod(1), T0 + 1)
    assert set(picks(core)) == {2, 3}  # exactly half: honoured
    core.report_failure(pod(2), T0 + 1)
    assert core.view.usable == core.view.snapshot
    assert set(picks(core)) == {0, 1, 2, 3}
    core.report_success(pod(2), None, T0 + 2)
    assert set(picks(core)) == {2, 3}


def test_health_state_is_pruned_when_a_pod_leaves_dns() -> None:
    """A pod that leaves DNS loses its health state and comes back clean."""
    core = running(pods(0, 1, 2), health=HealthPolicy(base_ejection=30.0))
    core.report_failure(pod(1), T0 + 1)
    assert pod(1) not in core.view.usable
    core.resolved(T0 + 2, pods(0, 2), None)
    core.resolved(T0 + 3, pods(0, 1, 2), None)
    assert core.view.usable == pods(0, 1, 2)
    assert set(picks(core)) == {0, 1, 2}


def test_stale_failure_of_a_departed_pod_does_not_eject_it_on_return() -> None:
    """A failure of a pod no longer in the view ejects nothing, but still asks for an early refresh."""
    core = running(pods(0, 1, 2), health=HealthPolicy(base_ejection=30.0))
    stale = core.endpoint(1)
    core.resolved(T0 + 5, pods(0, 2), None)
    listener = Listener()
    core.listen(listener)
    view = core.view
    core.report_failure(stale, T0 + 10)
    assert listener.calls == 1
    assert core.view is view  # nothing ejected, nothing republished
    assert isinstance(core.next_action(T0 + 10), Resolve)
    core.resolved(T0 + 10, pods(0, 1, 2), None)
    assert core.view.usable == pods(0, 1, 2)


def test_restarted_pod_keeps_identity_and_ejection() -> None:
    """Health follows the pod (hostname), not the IP: a pod back on a new address stays ejected."""
    core = running(pods(0, 1, 2), health=HealthPolicy(base_ejection=30.0))
    core.report_failure(pod(1), T0 + 1)
    moved = EndpointSet([pod(0), pod(1, "10.9.9.9"), pod(2)], name=NAME)
    core.resolved(T0 + 2, moved, None)
    assert core.endpoint(1).address == "10.9.9.9"
    assert pod(1, "10.9.9.9") not in core.view.usable
    assert set(picks(core)) == {0, 2}


def test_load_tracking_is_fed_by_started_success_failure_and_finished() -> None:
    """started() counts a call in flight; report_success, report_failure and finished() each end one."""
    strategy = Sticky(bounded_load=1.25)
    core = running(pods(0, 1, 2), strategy)
    assert core.router.tracks_load
    ep = core.quick("user-1")
    for _ in range(3):
        core.started(ep)
    assert strategy.load(ep) == 3
    core.report_success(ep, 0.001, T0 + 1)
    assert strategy.load(ep) == 2
    core.report_failure(ep, T0 + 2)
    assert strategy.load(ep) == 1
    core.finished(ep)
    assert strategy.load(ep) == 0


def test_ejection_by_ordinal_feeds_load_tracking_with_the_pod() -> None:
    """A failure reported by ordinal ends the in-flight call of that pod's endpoint."""
    strategy = LeastLoaded(seed=3)
    core = running(pods(0, 1, 2), strategy)
    core.started(pod(2))
    assert strategy.inflight(pod(2)) == 1
    core.report_failure(2, T0 + 1)
    assert strategy.inflight(pod(2)) == 0


def test_resolve_target_accepts_endpoints_ordinals_and_hostnames() -> None:
    """report_failure takes an Endpoint, an ordinal or a hostname; others raise naming the value."""
    core = running(pods(0, 1, 2), health=HealthPolicy(base_ejection=30.0))
    target = pod(1)
    assert core.resolve_target(target) is target
    assert core.resolve_target(1) == pod(1)
    assert core.resolve_target("web-1") == pod(1)
    assert core.resolve_target(f"web-1.{NAME}") == pod(1)
    core.report_failure("web-0", T0 + 1)
    assert pod(0) not in core.view.usable
    core.report_success(0, None, T0 + 2)
    assert pod(0) in core.view.usable
    core.report_failure(2, T0 + 3)
    assert pod(2) not in core.view.usable
    with pytest.raises(EndpointNotFound, match="ordinal 7"):
        core.report_failure(7, T0 + 4)
    with pytest.raises(EndpointNotFound, match="web-9"):
        core.report_success("web-9", None, T0 + 4)
    for bad in (1.5, True, None, b"web-1", ["web-1"]):
        with pytest.raises(InvalidArgument, match=r"an Endpoint, a pod ordinal \(int\) or a pod hostname") as info:
            core.report_failure(bad, T0 + 4)
        assert repr(bad) in str(info.value)


# -- refresh outcomes (explicit times) ----------------------------------------------------------


@pytest.mark.parametrize("empty", ["nxdomain", "empty answer"])
def test_empty_answers_empty_the_view_only_after_the_grace(empty: str) -> None:
    """NXDOMAIN (or an empty answer) after a non-empty view is applied only once it persists for empty_grace."""
    core = running(pods(0, 1), refresh=RefreshPolicy(empty_grace=5.0, jitter=0.0))

    def answer(now: float) -> None:
        if empty == "nxdomain":
            core.resolved(now, None, ServiceNotFound(f"{NAME}: NXDOMAIN"))
        else:
            core.resolved(now, EndpointSet(name=NAME), None)

    answer(T0 + 1)
    assert core.next_action(T0 + 1) == WaitUntil(T0 + 6)  # the recheck at the grace's end
    answer(T0 + 4)
    assert not core.has_events()
    assert core.view.snapshot == pods(0, 1)
    assert core.quick(None).ordinal in (0, 1)
    assert core.last_error is None or isinstance(core.last_error, ServiceNotFound)
    answer(T0 + 6)
    (event,) = changes(core)
    assert len(event.new) == 0
    assert core.view.snapshot is event.new
    with pytest.raises(NoEndpointsAvailable, match=NAME) as info:
        core.quick(None)
    assert not isinstance(info.value, ServiceNotStarted)


def test_grace_recheck_is_never_later_than_max_refresh_and_sees_new_pods() -> None:
    """During a long grace the core still asks every max_refresh, so pods replacing the old ones are seen at once."""
    core = running(pods(0, 1), refresh=RefreshPolicy(empty_grace=60.0, max_refresh=10.0, jitter=0.0))
    core.resolved(T0 + 1, None, ServiceNotFound(f"{NAME}: NXDOMAIN"))
    assert core.next_action(T0 + 1) == WaitUntil(T0 + 11)
    assert core.next_action(T0 + 11) == Resolve(pods(0, 1))
    core.resolved(T0 + 11, pods(5, 6), None)
    (event,) = changes(core)
    assert event.old == pods(0, 1)
    assert event.new == pods(5, 6)
    assert set(picks(core)) == {5, 6}


def test_transport_errors_keep_the_last_good_set_and_back_off() -> None:
    """Transport errors never empty the view; retries back off exponentially up to max_refresh."""
    core = running(pods(0, 1), refresh=RefreshPolicy(min_refresh=1.0, max_refresh=8.0, empty_grace=0.5, jitter=0.0))
    now = T0
    delays = []
    for _ in range(6):
        now += 100.0  # far beyond the grace: errors are not "empty"
        error = ResolutionError("127.0.0.1:53 timed out")
        core.resolved(now, None, error)
        assert core.last_error is error
        assert [e.kind for e in core.take_events()] == ["refresh_failed"]  # the view did not change
        assert core.view.snapshot == pods(0, 1)
        wait = core.next_action(now)
        assert isinstance(wait, WaitUntil)
        delays.append(wait.deadline - now)
    # min_refresh * 2**(n-1) plus up to min_refresh of random jitter, capped at max_refresh.
    for n, delay in enumerate(delays, 1):
        low = min(2.0 ** (n - 1), 8.0)
        assert low <= delay <= min(low + 1.0, 8.0), (n, delay)
    assert delays[-1] == 8.0
    core.resolved(now + 8, pods(0, 1), None)
    assert core.last_error is None


def test_start_on_a_failing_dns_gives_an_empty_view_not_not_started() -> None:
    """When the first resolution fails, picks say "no endpoints", not "not started"."""
    core = make_core()
    assert core.begin_start()
    core.begin_resolve()
    core.resolved(T0, None, ResolutionError("127.0.0.1:53 timed out"))
    core.start_done()
    for call in (lambda: core.quick(None), lambda: core.pick(Request())):
        with pytest.raises(NoEndpointsAvailable, match=NAME) as info:
            call()
        assert not isinstance(info.value, ServiceNotStarted)
    with pytest.raises(EndpointNotFound):
        core.endpoint(0)


def test_refresh_before_start_resolves_once_and_picks_work() -> None:
    """A resolution before start() makes picks work without starting the refresh loop."""
    core = make_core()
    core.begin_resolve()
    core.resolved(T0, pods(0, 1), None)
    assert core.phase == "new"
    assert set(picks(core)) == {0, 1}
    assert core.pick(Request()).ordinal in (0, 1)
    assert core.endpoint(1) == pod(1)
    assert core.next_action(T0 + 100) == WaitUntil(math.inf)


# -- the refresh loop ----------------------------------------------------------------------------


def test_refreshes_reuse_the_view_between_full_lookups() -> None:
    """A refresh may reuse the addresses its answers prove (reuse is the view), except the
    first and one at least every full_refresh_every, which ask every pod's name (reuse None):
    the only way to see two pods that swapped addresses."""
    policy = RefreshPolicy(min_refresh=1.0, max_refresh=30.0, jitter=0.0, full_refresh_every=60.0)
    core = running(pods(0, 1, ttl=5), refresh=policy)  # the first resolution was a full one at T0
    reused = []
    now = T0
    for _ in range(30):  # 150 s of refreshes every 5 s
        now += 5
        action = core.next_action(now)
        assert isinstance(action, Resolve)
        reused.append(action.reuse is core.view.snapshot)
        assert action.reuse is None or reused[-1]
        core.resolved(now, pods(0, 1, ttl=5), None)
    full_at = [T0 + 5 * (i + 1) for i, was in enumerate(reused) if not was]
    assert full_at == [T0 + 60, T0 + 120]


def test_a_failed_full_lookup_is_retried_full_and_zero_makes_every_refresh_full() -> None:
    """A full lookup that failed does not count: the next refresh is full again;
    full_refresh_every=0 asks every name on every refresh (0.1.0's behaviour)."""
    policy = RefreshPolicy(min_refresh=1.0, max_refresh=30.0, jitter=0.0, full_refresh_every=10.0)
    core = running(pods(0, 1, ttl=5), refresh=policy)
    action = core.next_action(T0 + 5)
    assert isinstance(action, Resolve) and action.reuse is not None
    core.resolved(T0 + 5, pods(0, 1, ttl=5), None)
    action = core.next_action(T0 + 10)
    assert isinstance(action, Resolve) and action.reuse is None
    core.resolved(T0 + 10, None, ResolutionError("timed out"))
    action = core.next_action(T0 + 12)
    assert isinstance(action, Resolve) and action.reuse is None
    every = running(pods(0, 1, ttl=5), refresh=RefreshPolicy(jitter=0.0, full_refresh_every=0))
    for now in (T0 + 5, T0 + 10, T0 + 15):
        action = every.next_action(now)
        assert isinstance(action, Resolve) and action.reuse is None
        every.resolved(now, pods(0, 1, ttl=5), None)


def test_next_action_resolves_when_due_and_waits_otherwise() -> None:
    """After an answer with TTL 5 the core waits until then, asks for one resolution, and waits again."""
    core = running(pods(0, 1, ttl=5))
    assert core.next_action(T0) == WaitUntil(T0 + 5)
    assert core.next_action(T0 + 4.9) == WaitUntil(T0 + 5)
    action = core.next_action(T0 + 5)
    assert action == Resolve(pods(0, 1))
    assert isinstance(action, Resolve) and action.previous is core.view.snapshot
    assert core.next_action(T0 + 5) == WaitUntil(math.inf)  # one resolution at a time
    core.resolved(T0 + 5.2, pods(0, 1, ttl=5), None)
    assert core.next_action(T0 + 5.2) == WaitUntil(T0 + 10.2)


def test_ttl_is_clamped_to_min_and_max_refresh() -> None:
    """A TTL below min_refresh or above max_refresh schedules at the bound."""
    core = running(pods(0, ttl=0), refresh=RefreshPolicy(min_refresh=2.0, max_refresh=20.0, jitter=0.0))
    assert core.next_action(T0) == WaitUntil(T0 + 2)
    core.resolved(T0 + 2, pods(0, ttl=3600), None)
    assert core.next_action(T0 + 2) == WaitUntil(T0 + 22)


def test_early_refresh_is_rate_limited_to_one_per_min_refresh() -> None:
    """Early refreshes coalesce and run at most once per min_refresh after the last attempt."""
    core = running(pods(0, 1), refresh=RefreshPolicy(min_refresh=1.0, jitter=0.0))
    listener = Listener()
    core.listen(listener)
    core.request_early_refresh()
    core.request_early_refresh()
    assert listener.calls == 2
    assert core.next_action(T0 + 0.2) == WaitUntil(T0 + 1.0)
    assert isinstance(core.next_action(T0 + 1.0), Resolve)
    core.resolved(T0 + 1.0, pods(0, 1), None)
    assert core.next_action(T0 + 1.0) == WaitUntil(T0 + 31.0)  # coalesced: no second one
    core.report_failure(0, T0 + 1.5)  # a failure asks for one too
    assert core.next_action(T0 + 1.5) == WaitUntil(T0 + 2.0)
    assert isinstance(core.next_action(T0 + 2.0), Resolve)


def test_health_expiry_rebuilds_the_usable_set_without_a_resolution() -> None:
    """When an ejection ends, next_action republishes the usable set and keeps waiting for the TTL."""
    core = running(pods(0, 1, 2), health=HealthPolicy(base_ejection=3.0))
    core.report_failure(1, T0 + 10)
    assert settle(core, T0 + 10) == WaitUntil(T0 + 13)
    view = core.view
    assert core.next_action(T0 + 13.5) == WaitUntil(T0 + 40)
    assert core.view is not view
    assert core.view.usable == pods(0, 1, 2)
    assert core.view.snapshot is view.snapshot


def test_manual_refresh_tickets_are_served_by_a_resolution_started_after_them() -> None:
    """want_refresh() forces a resolution; its ticket is served only by one that began after it was asked."""
    core = running(pods(0, 1))
    listener = Listener()
    core.listen(listener)
    first = core.want_refresh()
    assert listener.calls == 1
    assert not core.served(first)
    assert isinstance(core.next_action(T0 + 0.1), Resolve)  # not due, but asked for
    second = core.want_refresh()  # asked while the first is in flight
    assert second > first
    core.resolved(T0 + 0.2, pods(0, 1), None)
    assert core.served(first)
    assert not core.served(second)
    assert isinstance(core.next_action(T0 + 0.2), Resolve)  # not rate-limited: the user asked
    core.resolved(T0 + 0.3, pods(0, 1), None)
    assert core.served(second)
    assert core.next_action(T0 + 0.3) == WaitUntil(T0 + 30.3)


def test_a_failed_resolution_still_serves_the_ticket() -> None:
    """A ticket is served by a failed resolution too (the caller then reads last_error)."""
    core = running(pods(0, 1))
    ticket = core.want_refresh()
    core.next_action(T0 + 1)
    error = ResolutionError("SERVFAIL")
    core.resolved(T0 + 1, None, error)
    assert core.served(ticket)
    assert core.last_error is error


# -- lifecycle -----------------------------------------------------------------------------------


def test_begin_start_lets_one_caller_resolve() -> None:
    """Of two concurrent starts, one resolves; the other waits for the phase to leave "starting"."""
    core = make_core()
    listener = Listener()
    core.listen(listener)
    assert core.begin_start() is True
    assert core.phase == "starting"
    assert core.begin_start() is False
    assert core.next_action(T0) == WaitUntil(math.inf)  # no refresher during the start
    core.begin_resolve()
    core.resolved(T0, pods(0), None)
    core.start_done()
    assert core.phase == "running"
    assert listener.calls >= 1  # waiters re-check the phase
    assert core.begin_start() is False  # idempotent


def test_a_start_that_failed_unexpectedly_can_be_retried() -> None:
    """start_done(ok=False) makes the core startable again."""
    core = make_core()
    assert core.begin_start()
    core.start_done(ok=False)
    assert core.phase == "new"
    assert core.begin_start()


def test_close_stops_everything_and_says_closed() -> None:
    """close() is idempotent, stops the loop, drops undelivered events and refuses new work naming the service."""
    core = running(pods(0))
    listener = Listener()
    core.listen(listener)
    core.resolved(T0 + 1, pods(0, 1), None)
    assert core.has_events()
    assert core.close() is True
    assert core.close() is False
    assert core.closed
    assert core.phase == "closed"
    assert listener.calls >= 1
    assert not core.has_events()
    assert core.next_action(T0 + 2) is STOP
    assert repr(STOP) == "STOP"
    with pytest.raises(ServiceClosed, match=f"{NAME}: cannot start: the service is closed"):
        core.begin_start()
    with pytest.raises(ServiceClosed, match=f"{NAME}: cannot refresh: the service is closed"):
        core.want_refresh()
    with pytest.raises(ConnectAborted, match=f"{NAME}: cannot connect: the service is closed") as info:
        core.connect_plan(Request(), ConnectPolicy(), T0, 1.0)
    assert isinstance(info.value, ConnectError)
    assert isinstance(core.closed_error("wait_for"), ServiceClosed)
    assert "cannot wait_for" in str(core.closed_error("wait_for"))


def test_a_resolution_ending_after_close_publishes_nothing_but_serves_tickets() -> None:
    """A resolution in flight when close() ran publishes nothing, queues no event and releases waiting tickets."""
    core = running(pods(0))
    ticket = core.want_refresh()
    assert isinstance(core.next_action(T0 + 1), Resolve)
    core.close()
    core.resolved(T0 + 2, pods(0, 1, 2), None)
    assert core.view.snapshot == pods(0)
    assert not core.has_events()
    assert core.served(ticket)


def test_close_stops_watching_the_strategy() -> None:
    """After close() a routing change of a shared strategy no longer wakes the core's driver."""
    strategy = PrimaryReplica()
    core = running(pods(0, 1, 2), strategy)
    listener = Listener()
    core.listen(listener)
    strategy.set_primary(1)
    assert listener.calls == 1
    core.close()
    calls = listener.calls
    strategy.set_primary(2)
    assert listener.calls == calls


def test_a_shared_strategy_does_not_keep_the_core_alive() -> None:
    """A strategy outliving its core holds it weakly: the core is collected and later changes are harmless."""
    strategy = PrimaryReplica()
    core = running(pods(0, 1, 2), strategy)
    ref = weakref.ref(core)
    del core
    gc.collect()
    assert ref() is None
    strategy.set_primary(1)  # the dead core's callback does nothing


def test_listener_removal() -> None:
    """A removed listener is no longer called."""
    core = running(pods(0))
    listener = Listener()
    remove = core.listen(listener)
    core.request_early_refresh()
    remove()
    core.request_early_refresh()
    assert listener.calls == 1


# -- PrimaryReplica through the core -------------------------------------------------------------

DB = "db.prod.svc.cluster.local"


def db(i: int) -> Endpoint:
    return Endpoint(f"10.0.1.{i + 1}", 5432, f"db-{i}.{DB}", i)


def dbs(n: int) -> EndpointSet:
    return EndpointSet((db(i) for i in range(n)), name=DB)


def test_primary_replica_writes_reach_an_ejected_primary() -> None:
    """Writes go to the primary even while it is ejected; reads use both replicas."""
    # max_ejected=1: the primary, alone in its health pool, can really leave the usable set.
    core = running(dbs(3), PrimaryReplica(), health=HealthPolicy(max_ejected=1.0, base_ejection=30.0))
    core.report_failure(db(0), T0 + 1)
    assert db(0) not in core.view.usable
    assert core.quick("write") == db(0)
    assert core.quick(PrimaryReplica.WRITE) == db(0)
    assert core.pick(Request(role="write")) == db(0)
    assert core.pins(Request(role="write"))
    assert not core.pins(Request(role="read"))
    assert sorted(core.quick(None).ordinal for _ in range(6)) == [1, 1, 1, 2, 2, 2]
    assert sorted(core.pick(Request(role="read")).ordinal for _ in range(6)) == [1, 1, 1, 2, 2, 2]


def test_ejected_primary_and_dead_replica_send_no_reads_to_the_dead_replica() -> None:
    """With 3 pods, an ejected primary plus an ejected replica send every read to the live replica (issue 11)."""
    core = running(dbs(3), PrimaryReplica(), health=HealthPolicy(max_ejected=0.5, base_ejection=30.0))
    core.report_failure(0, T0 + 1)  # the primary
    core.report_failure(2, T0 + 1)  # a dead replica
    reads = Counter(core.quick(None).ordinal for _ in range(40))
    assert reads == {1: 40}
    reads = Counter(core.pick(Request(role="read")).ordinal for _ in range(40))
    assert reads == {1: 40}
    assert core.quick("write") == db(0)  # writes still have their only pod


def test_primary_pool_panic_does_not_spend_the_replicas_share() -> None:
    """The primary's ejection is judged in its own pool: the replicas keep their own panic share."""
    core = running(dbs(5), PrimaryReplica(), health=HealthPolicy(max_ejected=0.5, base_ejection=30.0))
    for ordinal in (0, 3, 4):  # the primary and half of the four replicas
        core.report_failure(ordinal, T0 + 1)
    assert set(picks(core, 40)) == {1, 2}
    core.report_failure(2, T0 + 1)  # three of four replicas: that pool panics
    assert set(picks(core, 40)) == {1, 2, 3, 4}


def test_a_new_primary_re_judges_health_pools() -> None:
    """set_primary() republishes: an ejected pod that becomes the primary is its own pool (and in panic)."""
    strategy = PrimaryReplica()
    core = running(dbs(3), strategy, health=HealthPolicy(max_ejected=0.5, base_ejection=30.0))
    core.report_failure(2, T0 + 1)
    assert db(2) not in core.view.usable  # one of two replicas: ejected
    strategy.set_primary(2)
    assert db(2) in core.view.usable  # alone in its pool: panic keeps it
    assert core.quick("write") == db(2)
    assert set(picks(core, 20)) == {0, 1}


# -- stress: 8 threads picking while the view is swapped every 10 ms (design.md section 6) -------

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
def test_picks_never_see_a_stale_set_while_swapping(factory: Callable[[], object], keyed: bool) -> None:
    """No pick raises, and every pick is a member of the set published when it began or of a later one."""
    sets = [generation_set(g) for g in range(GENERATIONS)]
    owner = {ep: g for g, s in enumerate(sets) for ep in s}
    core = make_core(factory(), health=HealthPolicy(base_ejection=0.05))
    core.begin_start()
    core.begin_resolve()
    core.resolved(0.0, sets[0], None)
    core.start_done()
    published = [0]  # generation whose swap has completed
    stop = threading.Event()
    errors: list[BaseException] = []
    stale: list[tuple[int, int, int]] = []
    per_generation: Counter[int] = Counter()
    counts = [0] * THREADS

    def picker(n: int) -> None:
        key = f"user-{n}" if keyed else None
        request = Request(key=key)
        seen: Counter[int] = Counter()
        done = 0
        try:
            while not stop.is_set() and done < MAX_PICKS_PER_THREAD:
                before = published[0]
                # Both read paths: the key-only fast path and the request-aware one.
                ep = core.quick(key) if done % 2 else core.pick(request)
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
        # Failures and successes of current endpoints republish the usable set under the
        # same lock as the swaps; they must never leak an endpoint of an older set.
        i = 0
        try:
            while not stop.is_set() and i < 1_000_000:
                snapshot = core.view.snapshot
                ep = snapshot[i % len(snapshot)]
                now = published[0] * SWAP_EVERY
                if i % 2:
                    core.report_success(ep, None, now)
                else:
                    core.report_failure(ep, now)
                i += 1
                time.sleep(0.001)  # pacing the churn, not waiting for anything
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
            core.begin_resolve()
            core.resolved(g * SWAP_EVERY, sets[g], None)
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
    assert core.view.snapshot is sets[-1]
    assert len(changes(core)) == GENERATIONS  # one per swap (and the first), in order
