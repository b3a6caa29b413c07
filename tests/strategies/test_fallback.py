"""Fallback: ordered strategies, NoEndpointsAvailable falls through, load forwarding."""

from __future__ import annotations

import pytest

from headless_client.endpoints import Endpoint, EndpointSet
from headless_client.errors import InvalidArgument, LeaderNotAvailable, NoEndpointsAvailable
from headless_client.request import Request
from headless_client.strategies import (
    Fallback,
    LeastLoaded,
    PartitionLeader,
    PrimaryReplica,
    RoundRobin,
    Sticky,
)

from ._helpers import pods


class Failing:
    """A strategy that always raises the given error."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        self.calls += 1
        raise self.error


def test_first_strategy_wins_when_it_can() -> None:
    """The second strategy is not consulted when the first finds an endpoint."""
    second = Failing(NoEndpointsAvailable("unused"))
    eps = pods(range(3))
    assert Fallback(PartitionLeader({0: 2}), second).pick(eps, 0).ordinal == 2
    assert second.calls == 0


def test_falls_through_on_no_endpoints() -> None:
    """NoEndpointsAvailable (and LeaderNotAvailable) move on to the next strategy."""
    eps = pods(range(3))
    strategy = Fallback(Failing(NoEndpointsAvailable("none")), Failing(LeaderNotAvailable("x")), RoundRobin())
    assert strategy.pick(eps).ordinal == 0


def test_all_failing_raises_last_chained_to_first() -> None:
    """When every strategy fails, the last error propagates, caused by the first."""
    first = NoEndpointsAvailable("first")
    last = LeaderNotAvailable("last")
    with pytest.raises(LeaderNotAvailable, match="last") as info:
        Fallback(Failing(first), Failing(last)).pick(pods(range(1)))
    assert info.value.__cause__ is first


def test_single_failing_strategy_reraises_its_error() -> None:
    """With one member, its own error comes out unchanged."""
    with pytest.raises(NoEndpointsAvailable, match="web.prod"):
        Fallback(RoundRobin()).pick(EndpointSet(name="web.prod"))


def test_other_errors_propagate() -> None:
    """A TypeError from a bad key is a bug and is not swallowed."""
    second = Failing(NoEndpointsAvailable("unused"))
    with pytest.raises(TypeError, match="float"):
        Fallback(Sticky(), second).pick(pods(range(2)), 1.5)
    assert second.calls == 0


def test_rejects_non_strategies() -> None:
    """Arguments without a pick method are refused at construction."""
    with pytest.raises(TypeError, match="int"):
        Fallback(RoundRobin(), 3)  # type: ignore[arg-type]


def test_forwards_load_to_tracking_members() -> None:
    """started/finished reach every LoadTracking member, whoever picked."""
    least = LeastLoaded()
    sticky = Sticky(bounded_load=1.25)
    strategy = Fallback(RoundRobin(), least, sticky)
    ep = pods(range(1))[0]
    strategy.started(ep)
    assert (least.inflight(ep), sticky.load(ep)) == (1, 1)
    strategy.finished(ep, latency=0.01, ok=False)
    assert (least.inflight(ep), sticky.load(ep)) == (0, 0)


# -- the request-aware protocol ----------------------------------------------------------------


class Recording:
    """A 0.1.0 pick-only strategy that records what it was asked and returns the first endpoint."""

    def __init__(self) -> None:
        self.calls: list[tuple[EndpointSet, object]] = []

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        self.calls.append((endpoints, key))
        return endpoints[0]


def test_choose_passes_the_request_and_both_sets_to_each_member() -> None:
    """Members get the same request, usable set and snapshot; a write reaches the primary through them."""
    snapshot = pods(range(3))
    usable = snapshot.without([snapshot[0]])
    strategy = Fallback(PrimaryReplica(), RoundRobin())
    assert strategy.choose(Request(role="write"), usable, snapshot).ordinal == 0
    assert strategy.choose(Request(), usable, snapshot).ordinal in (1, 2)


def test_a_leaderless_partition_falls_back_to_a_usable_pod() -> None:
    """A partition without a leader goes to the next member, which picks among the usable pods."""
    snapshot = pods(range(3))
    usable = snapshot.without([snapshot[0]])
    strategy = Fallback(PartitionLeader({0: 0}), RoundRobin())
    assert strategy.choose(Request(partition=0), usable, snapshot).ordinal == 0  # the leader, ejected or not
    assert {strategy.choose(Request(partition=9), usable, snapshot).ordinal for _ in range(4)} == {1, 2}


def test_a_leaderless_partition_falls_back_to_a_0_1_0_member_with_the_partition_as_key() -> None:
    """A pick-only member behind PartitionLeader gets the partition as its key, as in 0.1.0."""
    snapshot = pods(range(3))
    legacy = Recording()
    strategy = Fallback(PartitionLeader({0: 0}), legacy)
    assert strategy.choose(Request(partition=9), snapshot, snapshot) == snapshot[0]
    assert legacy.calls == [(snapshot, 9)]


def test_a_0_1_0_member_gets_keys_and_untried_endpoints() -> None:
    """A pick-only member sees the request's key and the usable endpoints not tried yet."""
    snapshot = pods(range(3))
    legacy = Recording()
    strategy = Fallback(Failing(NoEndpointsAvailable("none")), legacy)
    strategy.choose(Request(key="k", exclude={snapshot[0].identity}), snapshot, snapshot)
    ((seen, key),) = legacy.calls
    assert key == "k"
    assert list(seen) == [snapshot[1], snapshot[2]]


def test_pins_and_routes_partitions_when_a_member_does() -> None:
    """Fallback pins what any member pins and routes partitions when any member routes them."""
    assert Fallback(RoundRobin(), PrimaryReplica()).pins(Request(role="write"))
    assert not Fallback(RoundRobin(), PrimaryReplica()).pins(Request(role="read"))
    assert not Fallback(RoundRobin()).pins(Request(role="write"))
    assert Fallback(PartitionLeader({}), RoundRobin()).routes_partitions
    assert not Fallback(RoundRobin(), Sticky()).routes_partitions


def test_prepare_reaches_every_preparing_member() -> None:
    """prepare() is forwarded; a prepared Sticky member then maps keys as an unprepared one does."""
    snapshot = pods(range(4))
    sticky = Sticky()
    Fallback(RoundRobin(), sticky).prepare(snapshot)
    keys = [f"user-{i}" for i in range(100)]
    assert [sticky.pick(snapshot, k) for k in keys] == [Sticky().pick(snapshot, k) for k in keys]


def test_not_leader_goes_to_the_partition_member_or_is_refused() -> None:
    """not_leader reaches the PartitionLeader member; without one it raises InvalidArgument naming the Fallback."""
    leader: PartitionLeader[int] = PartitionLeader({0: 0})
    Fallback(RoundRobin(), leader).not_leader(0, 2)
    assert leader.leader_of(0) == 2
    with pytest.raises(InvalidArgument, match=r"Fallback\(RoundRobin\(\)\) has no member that routes partitions"):
        Fallback(RoundRobin()).not_leader(0, 1)


def test_watch_covers_every_watchable_member() -> None:
    """One watch call subscribes to every member's changes; its unsubscribe stops them all."""
    leader: PartitionLeader[int] = PartitionLeader({0: 0})
    primary = PrimaryReplica()
    calls: list[int] = []
    unsubscribe = Fallback(leader, primary, RoundRobin()).watch(lambda: calls.append(1))
    leader.not_leader(0, 1)
    primary.set_primary(2)
    assert len(calls) == 2
    unsubscribe()
    leader.not_leader(0, 2)
    primary.set_primary(1)
    assert len(calls) == 2


def test_rejects_classes_naming_them() -> None:
    """A strategy class instead of an instance is refused with InvalidArgument saying how to fix it."""
    with pytest.raises(InvalidArgument, match=r"pass Sticky\(\) instead of Sticky"):
        Fallback(RoundRobin(), Sticky)  # type: ignore[arg-type]
