"""The Strategy / LoadTracking protocols, shared helpers, and contracts of every strategy."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import pytest

import headless_client.strategies as strategies
from headless_client.endpoints import Endpoint, EndpointSet
from headless_client.errors import NoEndpointsAvailable
from headless_client.request import Request
from headless_client.strategies import (
    Fallback,
    LeastLoaded,
    LoadTracking,
    PartitionLeader,
    PrimaryReplica,
    Random,
    RequestStrategy,
    RoundRobin,
    Sticky,
    Strategy,
)
from headless_client.strategies.base import SnapshotCache, distinct_pods, untried
from tests.threads import run_in_threads

from ._helpers import dual_stack, pods

REQUIRED = {
    "Strategy",
    "LoadTracking",
    "Fallback",
    "RoundRobin",
    "Random",
    "LeastLoaded",
    "Sticky",
    "PartitionLeader",
    "PrimaryReplica",
    "kafka_partition",
    "murmur2",
}


def every_strategy() -> list[Strategy]:
    return [
        RoundRobin(),
        Random(seed=1),
        LeastLoaded(),
        LeastLoaded(ewma=True),
        Sticky(),
        Sticky(bounded_load=1.25),
        PartitionLeader({0: 0}),
        PrimaryReplica(),
        Fallback(RoundRobin(), Random()),
    ]


def test_exports() -> None:
    """The package exports the contract's names, each of them real."""
    assert set(strategies.__all__) >= REQUIRED
    for name in strategies.__all__:
        assert getattr(strategies, name) is not None


@pytest.mark.parametrize("strategy", every_strategy(), ids=repr)
def test_every_strategy_is_a_strategy(strategy: Strategy) -> None:
    """Built-in strategies satisfy the runtime-checkable protocol."""
    assert isinstance(strategy, Strategy)


@pytest.mark.parametrize(
    ("strategy", "tracks"),
    [
        (RoundRobin(), False),
        (Random(), False),
        (PartitionLeader({}), False),
        (PrimaryReplica(), False),
        (LeastLoaded(), True),
        (Sticky(bounded_load=1.25), True),
        (Fallback(RoundRobin()), True),
    ],
    ids=repr,
)
def test_load_tracking_protocol(strategy: object, tracks: bool) -> None:
    """Exactly the strategies with started/finished are LoadTracking."""
    assert isinstance(strategy, LoadTracking) is tracks


@pytest.mark.parametrize("strategy", every_strategy(), ids=repr)
def test_empty_set_raises_naming_the_set(strategy: Strategy) -> None:
    """An empty snapshot raises NoEndpointsAvailable that names the service."""
    key: object = 0
    with pytest.raises(NoEndpointsAvailable, match=r"web\.prod"):
        strategy.pick(EndpointSet(name="web.prod"), key)


@pytest.mark.parametrize("strategy", every_strategy(), ids=repr)
def test_pick_returns_a_member(strategy: Strategy) -> None:
    """Every strategy returns an endpoint of the set it was given."""
    eps = pods(range(5))
    for _ in range(20):
        assert strategy.pick(eps, 0) in eps


def test_distinct_pods_counts_dual_stack_once() -> None:
    """A dual-stack pod contributes its first (IPv4) endpoint only."""
    v4, v6 = dual_stack(0)
    other = dual_stack(1)[0]
    eps = EndpointSet([v6, other, v4])
    assert distinct_pods(eps) == (v4, other)


def test_distinct_pods_returns_the_set_tuple_when_all_distinct() -> None:
    """No copy is made in the common case."""
    eps = pods(range(4))
    assert distinct_pods(eps) is eps.endpoints


def test_snapshot_cache_builds_once_per_snapshot_across_threads() -> None:
    """Eight threads meeting a new snapshot build its derived state once."""
    calls: list[EndpointSet] = []

    def build(eps: EndpointSet) -> int:
        calls.append(eps)
        return len(eps)

    cache: SnapshotCache[int] = SnapshotCache(build, -1)
    eps = pods(range(3))
    barrier = threading.Barrier(8)
    results: list[int] = []

    def worker() -> None:
        barrier.wait()
        for _ in range(100):
            snap, derived = cache.current
            if snap is not eps:
                derived = cache.derive(eps)
            results.append(derived)

    run_in_threads(worker, 8)
    assert calls == [eps]
    assert results == [3] * 800


def test_snapshot_cache_keeps_previous_snapshot() -> None:
    """Picks still holding the previous snapshot neither rebuild nor evict the new one."""
    calls: list[int] = []

    def build(eps: EndpointSet) -> int:
        calls.append(len(eps))
        return len(eps)

    cache: SnapshotCache[int] = SnapshotCache(build, -1)
    old, new = pods(range(3)), pods(range(4))
    assert cache.derive(old) == 3
    assert cache.derive(new) == 4
    assert cache.derive(old) == 3
    assert cache.current == (new, 4)
    assert calls == [3, 4]
    # A third snapshot pushes the oldest out.
    third = pods(range(5))
    cache.derive(third)
    cache.derive(old)
    assert calls == [3, 4, 5, 3]


def test_snapshot_cache_keys_on_identity_not_equality() -> None:
    """An equal but distinct set object gets its own entry (cheap: identity check)."""
    calls: list[int] = []

    def build(eps: EndpointSet) -> int:
        calls.append(len(eps))
        return len(eps)

    cache: SnapshotCache[int] = SnapshotCache(build, -1)
    a, b = pods(range(3)), pods(range(3))
    assert a == b
    cache.derive(a)
    cache.derive(b)
    assert len(calls) == 2


class PreferZone:
    """The user-written strategy of docs/strategies.md: prefer pods in my zone."""

    def __init__(self, zone_of: Mapping[str, str], my_zone: str, then: Strategy) -> None:
        self.zone_of = zone_of  # pod name (first label) -> zone
        self.my_zone = my_zone
        self.then = then
        self._local: tuple[EndpointSet | None, EndpointSet] = (None, EndpointSet())

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        snap, local = self._local  # one read
        if snap is not endpoints:
            local = EndpointSet(
                (
                    ep
                    for ep in endpoints
                    if ep.hostname and self.zone_of.get(ep.hostname.split(".")[0]) == self.my_zone
                ),
                name=endpoints.name,
            )
            self._local = (endpoints, local)  # one assignment
        if not local:
            raise NoEndpointsAvailable(f"no pod of {endpoints.name} in zone {self.my_zone}")
        return self.then.pick(local, key)


ZONES = {"web-0": "eu-west-1a", "web-1": "eu-west-1b", "web-2": "eu-west-1a"}


def test_user_written_strategy_prefers_its_zone() -> None:
    """The documented example is a Strategy and rotates over its zone's pods only."""
    prefer = PreferZone(ZONES, "eu-west-1a", RoundRobin())
    assert isinstance(prefer, Strategy)
    eps = pods(range(3))
    assert [prefer.pick(eps).ordinal for _ in range(4)] == [0, 2, 0, 2]


def test_user_written_strategy_derives_once_per_snapshot() -> None:
    """The zone subset is built once per snapshot, so the inner Sticky keeps its ring."""
    sticky = Sticky()
    prefer = PreferZone(ZONES, "eu-west-1a", sticky)
    eps = pods(range(3))
    prefer.pick(eps, "k1")
    ring_before = sticky._cache.current
    prefer.pick(eps, "k2")
    assert sticky._cache.current is ring_before


def test_user_written_strategy_composes_with_fallback() -> None:
    """With no pod in its zone it raises NoEndpointsAvailable and Fallback moves on."""
    strategy = Fallback(PreferZone(ZONES, "us-east-1a", RoundRobin()), RoundRobin())
    eps = pods(range(3))
    assert [strategy.pick(eps).ordinal for _ in range(3)] == [0, 1, 2]


# -- the request-aware protocol ----------------------------------------------------------------


@pytest.mark.parametrize("strategy", every_strategy(), ids=repr)
def test_every_strategy_is_request_aware(strategy: Strategy) -> None:
    """Built-in strategies satisfy the runtime-checkable RequestStrategy protocol too."""
    assert isinstance(strategy, RequestStrategy)


@pytest.mark.parametrize("strategy", every_strategy(), ids=repr)
def test_choose_on_an_empty_view_raises_naming_the_set(strategy: Strategy) -> None:
    """choose() over empty sets raises NoEndpointsAvailable naming the service."""
    assert isinstance(strategy, RequestStrategy)
    empty = EndpointSet(name="web.prod")
    request = Request(partition=0) if getattr(strategy, "routes_partitions", False) else Request(key=0)
    with pytest.raises(NoEndpointsAvailable, match=r"web\.prod"):
        strategy.choose(request, empty, empty)


def test_untried_returns_the_usable_set_itself_without_exclusions() -> None:
    """With nothing excluded, untried() copies nothing."""
    eps = pods(range(3))
    assert untried(Request(), eps, eps) is eps


def test_untried_prefers_usable_then_the_snapshot() -> None:
    """untried() drops tried pods from the usable set, else takes the snapshot's untried ones, keeping the name."""
    snapshot = pods(range(4))
    usable = snapshot.without([snapshot[3]])
    left = untried(Request(exclude={snapshot[0].identity}), usable, snapshot)
    assert list(left) == [snapshot[1], snapshot[2]]
    assert left.name == "web.prod"
    every_usable = Request(exclude={ep.identity for ep in usable})
    assert list(untried(every_usable, usable, snapshot)) == [snapshot[3]]
    with pytest.raises(NoEndpointsAvailable, match="no endpoint of 'web.prod' left to try: all 4 were tried"):
        untried(every_usable.excluding(snapshot[3].identity), usable, snapshot)


def test_untried_drops_both_addresses_of_a_tried_dual_stack_pod() -> None:
    """Exclusion is by identity: a tried pod's IPv6 twin is not tried next."""
    eps = EndpointSet([*dual_stack(0), *dual_stack(1)])
    left = untried(Request(exclude={dual_stack(0)[0].identity}), eps, eps)
    assert list(left) == list(dual_stack(1))
