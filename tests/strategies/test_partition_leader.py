"""PartitionLeader: leader routing, errors, re-reading the map, not-leader hints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping

import pytest

from headless_client.endpoints import EndpointSet
from headless_client.errors import LeaderNotAvailable, NoEndpointsAvailable
from headless_client.request import Request
from headless_client.strategies import Fallback, PartitionLeader, RoundRobin

from ._helpers import dual_stack, pods


class FakeClock:
    """A clock tests advance by hand."""

    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class Source:
    """A leader-map callable that records calls and can be told to fail."""

    def __init__(self, leaders: Mapping[Hashable, int | str]) -> None:
        self.leaders = dict(leaders)
        self.calls = 0
        self.error: Exception | None = None

    def __call__(self) -> Mapping[Hashable, int | str]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return dict(self.leaders)


def test_routes_by_ordinal() -> None:
    """Each partition goes to the pod with its leader's ordinal."""
    eps = pods(range(3))
    pl = PartitionLeader({0: 2, 1: 0, 2: 1})
    assert [pl.pick(eps, p).ordinal for p in (0, 1, 2, 0)] == [2, 0, 1, 2]


@pytest.mark.parametrize(
    "leader", ["web-1", "web-1.web.prod.svc.cluster.local", "WEB-1.web.prod.svc.cluster.local."]
)
def test_routes_by_hostname(leader: str) -> None:
    """Hostnames work as first label or FQDN, case- and trailing-dot-insensitive."""
    eps = pods(range(3))
    assert PartitionLeader({"p": leader}).pick(eps, "p").ordinal == 1


def test_tuple_partitions() -> None:
    """(topic, partition) tuples are partitions like any hashable."""
    eps = pods(range(4))
    pl = PartitionLeader({("orders", 3): 3, ("orders", 0): 0})
    assert pl.pick(eps, ("orders", 3)).ordinal == 3
    assert pl.leader_of(("orders", 0)) == 0
    assert pl.leader_of(("orders", 9)) is None


def test_dual_stack_leader_returns_first_address() -> None:
    """A dual-stack leader is reached through its first (IPv4) endpoint."""
    v4, v6 = dual_stack(0)
    assert PartitionLeader({0: 0}).pick(EndpointSet([v6, v4]), 0) == v4


def test_unknown_partition_names_it() -> None:
    """A partition without a leader raises LeaderNotAvailable naming the partition."""
    with pytest.raises(LeaderNotAvailable, match=r"partition \('orders', 7\)"):
        PartitionLeader({}).pick(pods(range(3)), ("orders", 7))


def test_leader_missing_from_set_names_partition_and_leader() -> None:
    """A leader not in the snapshot raises, naming partition, leader and service."""
    pl = PartitionLeader({5: 4, 6: "kafka-9"})
    eps = pods(range(3))
    with pytest.raises(LeaderNotAvailable, match=r"partition 5 \(ordinal 4\).*web\.prod"):
        pl.pick(eps, 5)
    with pytest.raises(LeaderNotAvailable, match=r"partition 6 \(hostname 'kafka-9'\)"):
        pl.pick(eps, 6)


def test_leader_not_available_is_no_endpoints_available() -> None:
    """Callers (and Fallback) can catch one error type for both."""
    assert issubclass(LeaderNotAvailable, NoEndpointsAvailable)


def test_key_none_is_a_type_error() -> None:
    """pick without a partition is a programming error."""
    with pytest.raises(TypeError, match="needs key=<partition>"):
        PartitionLeader({0: 0}).pick(pods(range(1)))


def test_unhashable_partition_is_a_type_error() -> None:
    """A list cannot be a partition; the error names its type."""
    pl = PartitionLeader({0: 0})
    eps = pods(range(1))
    pl.pick(eps, 0)  # warm the memo: the fast path must also reject it
    with pytest.raises(TypeError, match="hashable.*list"):
        pl.pick(eps, ["orders", 1])


@pytest.mark.parametrize(
    ("leaders", "error"),
    [
        ({0: 1.5}, TypeError),
        ({0: True}, TypeError),
        ({0: None}, TypeError),
        ({0: -1}, ValueError),
        ({0: "."}, ValueError),
        ([(0, 1)], TypeError),
        (42, TypeError),
    ],
)
def test_invalid_maps_are_rejected(leaders: object, error: type[Exception]) -> None:
    """Leaders must be ordinals >= 0 or non-empty hostnames, in a mapping."""
    with pytest.raises(error):
        PartitionLeader(leaders)  # type: ignore[arg-type]


def test_mapping_is_copied() -> None:
    """Later changes to the caller's dict are not seen (pass a callable for that)."""
    leaders = {0: 0}
    pl = PartitionLeader(leaders)
    leaders[0] = 1
    assert pl.leader_of(0) == 0
    assert pl.refresh_leaders() is False


def test_callable_read_at_construction_and_rate_limited() -> None:
    """The callable is read once at once, then at most once per interval."""
    clock = FakeClock()
    source = Source({0: 0})
    pl = PartitionLeader(source, min_reread_interval=1.0, clock=clock)
    assert source.calls == 1
    source.leaders[0] = 2
    assert pl.refresh_leaders() is False
    assert pl.leader_of(0) == 0
    clock.now += 1.0
    assert pl.refresh_leaders() is True
    assert pl.leader_of(0) == 2
    assert pl.refresh_leaders(force=True) is True
    assert source.calls == 3


def test_new_map_is_used_by_the_next_pick() -> None:
    """After a re-read, picks follow the new leaders (the memo is per map)."""
    clock = FakeClock()
    source = Source({0: 0})
    pl = PartitionLeader(source, clock=clock)
    eps = pods(range(3))
    assert pl.pick(eps, 0).ordinal == 0
    source.leaders[0] = 1
    pl.refresh_leaders(force=True)
    assert pl.pick(eps, 0).ordinal == 1


def test_not_leader_hint_applies_at_once_despite_rate_limit() -> None:
    """A hint moves the partition immediately, even when a re-read is rate-limited."""
    clock = FakeClock()
    source = Source({0: 0, 1: 1})
    pl = PartitionLeader(source, clock=clock)
    eps = pods(range(3))
    assert pl.pick(eps, 0).ordinal == 0
    pl.not_leader(0, hint="web-2")
    assert source.calls == 1  # rate-limited: not re-read
    assert pl.pick(eps, 0).ordinal == 2
    assert pl.pick(eps, 1).ordinal == 1


def test_not_leader_rereads_when_allowed() -> None:
    """Without a hint, not_leader re-reads the map once the interval has passed."""
    clock = FakeClock()
    source = Source({0: 0})
    pl = PartitionLeader(source, min_reread_interval=1.0, clock=clock)
    source.leaders[0] = 1
    pl.not_leader(0)
    assert pl.leader_of(0) == 0
    clock.now += 2.0
    pl.not_leader(0)
    assert source.calls == 2
    assert pl.leader_of(0) == 1


def test_hint_wins_over_a_stale_reread() -> None:
    """The pod's hint is applied after the re-read, so a stale source does not undo it."""
    clock = FakeClock()
    source = Source({0: 0})
    pl = PartitionLeader(source, clock=clock)
    clock.now += 5.0
    pl.not_leader(0, hint=2)
    assert source.calls == 2
    assert pl.leader_of(0) == 2


def test_failing_callable_keeps_the_old_map() -> None:
    """A source that raises re-raises its error and leaves the map intact."""
    clock = FakeClock()
    source = Source({0: 0})
    pl = PartitionLeader(source, clock=clock)
    source.error = RuntimeError("metadata service down")
    clock.now += 5.0
    with pytest.raises(RuntimeError, match="metadata service down"):
        pl.refresh_leaders()
    assert pl.leader_of(0) == 0
    assert pl.pick(pods(range(1)), 0).ordinal == 0
    # The failed read still counts for the rate limit: no hammering a broken source.
    assert pl.refresh_leaders() is False


def test_failing_callable_still_applies_the_hint() -> None:
    """not_leader re-raises the source's error, after applying the hint."""
    clock = FakeClock()
    source = Source({0: 0})
    pl = PartitionLeader(source, clock=clock)
    source.error = RuntimeError("boom")
    clock.now += 5.0
    with pytest.raises(RuntimeError, match="boom"):
        pl.not_leader(0, hint=1)
    assert pl.leader_of(0) == 1


def test_callable_returning_garbage_keeps_the_old_map() -> None:
    """An invalid map from the source is rejected like a failure."""
    clock = FakeClock()
    source = Source({0: 0})
    pl = PartitionLeader(source, clock=clock)
    source.leaders = {0: 2.5}  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="partition 0"):
        pl.refresh_leaders(force=True)
    assert pl.leader_of(0) == 0


def test_callable_failing_at_construction_propagates() -> None:
    """No map at all is a construction error."""
    source = Source({})
    source.error = RuntimeError("no metadata")
    with pytest.raises(RuntimeError, match="no metadata"):
        PartitionLeader(source)


def test_bad_hint_is_rejected_before_any_change() -> None:
    """A hint that is not an ordinal or hostname raises and changes nothing."""
    pl = PartitionLeader({0: 0})
    with pytest.raises(TypeError):
        pl.not_leader(0, hint=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="hashable.*list"):
        pl.not_leader([0], hint=1)  # type: ignore[arg-type]
    assert pl.leader_of(0) == 0


def test_leaders_view_is_read_only() -> None:
    """The exposed map cannot be mutated behind the strategy's back."""
    pl = PartitionLeader({0: "Web-0."})
    assert dict(pl.leaders) == {0: "web-0"}
    with pytest.raises(TypeError):
        pl.leaders[1] = 1  # type: ignore[index]


def test_fallback_sends_leaderless_partitions_elsewhere() -> None:
    """Fallback(PartitionLeader, RoundRobin) serves a partition whose leader is gone."""
    eps = pods(range(2))
    strategy = Fallback(PartitionLeader({0: 5}), RoundRobin())
    assert strategy.pick(eps, 0).ordinal == 0
    assert strategy.pick(eps, 0).ordinal == 1


def test_memo_is_per_snapshot() -> None:
    """A new snapshot without the leader raises even after earlier successful picks."""
    pl = PartitionLeader({0: 2})
    assert pl.pick(pods(range(3)), 0).ordinal == 2
    with pytest.raises(LeaderNotAvailable, match="not among the 2 endpoints"):
        pl.pick(pods(range(2)), 0)
    with pytest.raises(LeaderNotAvailable, match="no endpoints"):
        pl.pick(EndpointSet(), 0)


# -- the request-aware protocol ----------------------------------------------------------------


def test_routes_partitions() -> None:
    """PartitionLeader declares that Request.partition means something to it."""
    assert PartitionLeader({}).routes_partitions is True


def test_a_partition_goes_to_its_leader_even_when_ejected() -> None:
    """choose(partition=) reads the whole snapshot: only the leader can serve the partition."""
    snapshot = pods(range(3))
    usable = snapshot.without([snapshot[1]])
    pl = PartitionLeader({0: 1, "orders": "web-2"})
    assert pl.choose(Request(partition=0), usable, snapshot).ordinal == 1
    assert pl.choose(Request(partition="orders"), usable, snapshot).ordinal == 2
    with pytest.raises(LeaderNotAvailable, match="no leader known for partition 5"):
        pl.choose(Request(partition=5), usable, snapshot)


def test_a_partition_retry_ignores_the_exclusions() -> None:
    """A partition call has one possible pod, so pods tried before do not change it."""
    snapshot = pods(range(3))
    pl = PartitionLeader({0: 1})
    tried = Request(partition=0, exclude={snapshot[1].identity})
    assert pl.choose(tried, snapshot, snapshot).ordinal == 1


def test_any_pod_calls_rotate_over_the_usable_pods() -> None:
    """A metadata call (any_pod) rotates over the usable pods, skipping tried ones, dual-stack pods once."""
    snapshot = EndpointSet([*dual_stack(0), *dual_stack(1), *dual_stack(2)], name="web.prod")
    usable = snapshot.without(dual_stack(0))
    pl = PartitionLeader({})
    got = Counter(pl.choose(Request(any_pod=True), usable, snapshot).address for _ in range(40))
    assert got == {"10.0.0.2": 20, "10.0.0.3": 20}
    tried = Request(any_pod=True, exclude={dual_stack(1)[0].identity})
    assert {pl.choose(tried, usable, snapshot).ordinal for _ in range(4)} == {2}
    with pytest.raises(NoEndpointsAvailable, match="web.prod"):
        pl.choose(Request(any_pod=True), EndpointSet(name="web.prod"), EndpointSet(name="web.prod"))


def test_a_bare_key_is_a_partition_among_the_usable_pods() -> None:
    """0.1.0's pick(key): the key is the partition, looked up among the usable pods."""
    snapshot = pods(range(3))
    usable = snapshot.without([snapshot[2]])
    pl = PartitionLeader({0: 1, 1: 2})
    assert pl.choose(Request(key=0), usable, snapshot).ordinal == 1
    with pytest.raises(LeaderNotAvailable, match="not among the 2 endpoints"):
        pl.choose(Request(key=1), usable, snapshot)
    quick = pl.key_picker(usable, snapshot)
    assert quick(0).ordinal == 1
    with pytest.raises(LeaderNotAvailable):
        quick(1)


def test_a_call_without_partition_key_or_any_pod_says_what_to_pass() -> None:
    """A request with nothing to route by raises TypeError naming partition= and any_pod=True."""
    with pytest.raises(TypeError, match=r"partition=.*any_pod=True"):
        PartitionLeader({0: 0}).choose(Request(), pods(range(2)), pods(range(2)))


def test_watchers_hear_of_every_real_change_of_the_map() -> None:
    """A hint or a re-read that changes the map calls each watcher; one that changes nothing does not."""
    clock = FakeClock()
    source = Source({0: 0})
    pl = PartitionLeader(source, min_reread_interval=1.0, clock=clock)
    calls: list[int] = []
    unsubscribe = pl.watch(lambda: calls.append(1))
    pl.not_leader(0, hint=2)
    assert len(calls) == 1
    pl.not_leader(0, hint=2)  # the same hint again: no change
    assert len(calls) == 1
    clock.now += 2.0
    source.leaders[0] = 1
    assert pl.refresh_leaders()
    assert len(calls) == 2
    clock.now += 2.0
    assert pl.refresh_leaders()  # re-read, unchanged
    assert len(calls) == 2
    unsubscribe()
    pl.not_leader(0, hint=0)
    assert len(calls) == 2


def test_read_now_false_defers_the_first_read() -> None:
    """With read_now=False the source is not called at construction: the map is empty
    (LeaderNotAvailable) until refresh_leaders() reads it, at once the first time."""
    from headless_client.errors import LeaderNotAvailable
    from headless_client.strategies import PartitionLeader

    calls: list[int] = []

    def source() -> dict[int, int]:
        calls.append(1)
        return {0: 1}

    strategy = PartitionLeader(source, read_now=False, min_reread_interval=60)
    assert calls == []
    assert strategy.leader_of(0) is None
    endpoints = pods([0, 1])
    with pytest.raises(LeaderNotAvailable):
        strategy.pick(endpoints, 0)
    assert strategy.refresh_leaders() is True  # not rate-limited the first time
    assert calls == [1]
    assert strategy.pick(endpoints, 0).ordinal == 1
    assert strategy.refresh_leaders() is False  # now it is
