"""Router: pinned pods, 0.1.0 pick-only strategies adapted, optional parts looked up once."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from headless_client.endpoints import Endpoint, EndpointSet
from headless_client.errors import EndpointNotFound, InvalidArgument, InvalidName, NoEndpointsAvailable
from headless_client.request import Request
from headless_client.strategies import (
    Fallback,
    LeastLoaded,
    PartitionLeader,
    PrimaryReplica,
    Random,
    RoundRobin,
    Router,
    Sticky,
)
from headless_client.strategies.routing import chooser

from ._helpers import pods


class Legacy:
    """A 0.1.0 strategy: only pick(endpoints, key); records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int | None, ...], object]] = []

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        self.calls.append((tuple(ep.ordinal for ep in endpoints), key))
        if not endpoints:
            raise NoEndpointsAvailable("legacy: empty")
        return endpoints[-1]


class ChooseOnly:
    """A request-aware user strategy with nothing optional: the highest usable ordinal."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    def choose(self, request: Request, usable: EndpointSet, snapshot: EndpointSet) -> Endpoint:
        self.requests.append(request)
        return usable[-1]


class Both(ChooseOnly):
    """Has choose and a pick that must never be used."""

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        raise AssertionError("pick used although choose exists")


class Everything(ChooseOnly):
    """A user strategy implementing every optional part, recording the calls."""

    routes_partitions = True

    def __init__(self) -> None:
        super().__init__()
        self.log: list[object] = []
        self.watchers: list[Callable[[], None]] = []

    def prepare(self, endpoints: EndpointSet) -> None:
        self.log.append(("prepare", len(endpoints)))

    def started(self, endpoint: Endpoint) -> None:
        self.log.append(("started", endpoint.ordinal))

    def finished(self, endpoint: Endpoint, *, latency: float | None = None, ok: bool = True) -> None:
        self.log.append(("finished", endpoint.ordinal, latency, ok))

    def pins(self, request: Request) -> bool:
        return request.key == "pin-me"

    def health_pools(self, snapshot: EndpointSet) -> Sequence[Sequence[Endpoint]]:
        return (snapshot[:1], snapshot[1:])

    def key_picker(self, usable: EndpointSet, snapshot: EndpointSet) -> Callable[[object], Endpoint]:
        return lambda key: usable[0]

    def not_leader(self, partition: object, hint: int | str | None = None) -> None:
        self.log.append(("not_leader", partition, hint))

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        self.watchers.append(callback)
        return lambda: self.watchers.remove(callback)


# -- validation -----------------------------------------------------------------------------------


def test_a_class_is_refused_saying_how_to_fix_it() -> None:
    """Router(RoundRobin) raises InvalidArgument telling to pass RoundRobin()."""
    with pytest.raises(InvalidArgument, match=r"not the class RoundRobin: pass RoundRobin\(\) instead"):
        Router(RoundRobin)


@pytest.mark.parametrize("strategy", [object(), "round-robin", None, 3])
def test_an_object_without_choose_or_pick_is_refused_naming_it(strategy: object) -> None:
    """An object with neither method raises InvalidArgument (an InvalidName and a TypeError) naming its type."""
    with pytest.raises(InvalidArgument, match=type(strategy).__name__) as info:
        Router(strategy)
    assert isinstance(info.value, InvalidName)
    assert isinstance(info.value, TypeError)
    with pytest.raises(InvalidArgument):
        chooser(strategy)


def test_name_is_the_strategy_class() -> None:
    """The router names its strategy by class, for messages."""
    assert Router(Sticky()).name == "Sticky"
    assert Router(Legacy()).name == "Legacy"


# -- 0.1.0 strategies, adapted --------------------------------------------------------------------


def test_a_0_1_0_strategy_gets_the_key_and_the_usable_endpoints() -> None:
    """The adapted pick receives the request's key and the usable set, not the snapshot."""
    snapshot = pods(range(3))
    usable = snapshot.without([snapshot[0]])
    legacy = Legacy()
    router = Router(legacy)
    assert router.choose(Request(key="user-1"), usable, snapshot) == snapshot[2]
    assert legacy.calls == [((1, 2), "user-1")]


def test_a_0_1_0_strategy_never_sees_pods_already_tried() -> None:
    """Exclusions are filtered out before the adapted pick; once every usable pod was tried it sees the untried rest."""
    snapshot = pods(range(4))
    usable = snapshot.without([snapshot[3]])
    legacy = Legacy()
    router = Router(legacy)
    router.choose(Request(exclude={snapshot[2].identity}), usable, snapshot)
    router.choose(Request(exclude={ep.identity for ep in usable}), usable, snapshot)
    assert legacy.calls == [((0, 1), None), ((3,), None)]
    with pytest.raises(NoEndpointsAvailable, match="all 4 were tried"):
        router.choose(Request(exclude={ep.identity for ep in snapshot}), usable, snapshot)
    assert len(legacy.calls) == 2


def test_a_partition_call_to_a_0_1_0_strategy_is_refused_clearly() -> None:
    """A partition request raises InvalidArgument naming the partition, PartitionLeader and the strategy, without calling it."""
    legacy = Legacy()
    router = Router(legacy)
    assert not router.routes_partitions
    with pytest.raises(InvalidArgument, match=r"partition=\('orders', 3\) needs a strategy that routes partitions") as info:
        router.choose(Request(partition=("orders", 3)), pods(range(2)), pods(range(2)))
    assert "PartitionLeader" in str(info.value)
    assert "not Legacy" in str(info.value)
    assert legacy.calls == []
    with pytest.raises(InvalidArgument, match="not_leader needs a strategy that routes partitions"):
        router.not_leader(3, None)


def test_a_0_1_0_strategy_key_picker_is_its_pick() -> None:
    """Without key_picker, the key-only path calls pick over the usable set with the key (None included)."""
    snapshot = pods(range(3))
    usable = snapshot.without([snapshot[2]])
    legacy = Legacy()
    quick = Router(legacy).key_picker(usable, snapshot)
    assert quick("k") == snapshot[1]
    assert quick(None) == snapshot[1]
    assert legacy.calls == [((0, 1), "k"), ((0, 1), None)]


def test_a_0_1_0_strategy_has_no_optional_parts() -> None:
    """A pick-only strategy pins nothing, has no pools, tracks no load and cannot be watched."""
    router = Router(Legacy())
    assert not router.pins(Request(key="write"))
    assert router.health_pools(pods(range(3))) is None
    assert not router.tracks_load
    assert router.watch(lambda: None) is None
    router.prepare(pods(range(3)))  # nothing to do, and no error
    router.started(pods(range(1))[0])
    router.finished(pods(range(1))[0], 0.1, False)


def test_choose_wins_over_pick() -> None:
    """A strategy with both methods is asked through choose."""
    strategy = Both()
    snapshot = pods(range(3))
    assert Router(strategy).choose(Request(key="k"), snapshot, snapshot) == snapshot[2]
    assert strategy.requests == [Request(key="k")]


# -- pinned pods -----------------------------------------------------------------------------------


@pytest.mark.parametrize("request_", [Request(ordinal=1), Request(hostname="web-1"), Request(hostname="WEB-1.web.prod.svc.cluster.local.")])
def test_pinned_pods_are_found_in_the_snapshot_without_the_strategy(request_: Request) -> None:
    """An ordinal or hostname is looked up in the whole snapshot (ejected pods too); the strategy is not asked."""
    snapshot = pods(range(3))
    usable = snapshot.without([snapshot[1]])
    strategy = ChooseOnly()
    router = Router(strategy)
    assert router.choose(request_, usable, snapshot) == snapshot[1]
    assert router.pins(request_)
    assert strategy.requests == []


def test_a_missing_pinned_pod_names_the_set_the_pod_and_the_ordinals() -> None:
    """A pin that is not in the snapshot raises EndpointNotFound listing what is there."""
    router = Router(RoundRobin())
    with pytest.raises(EndpointNotFound, match=r"web\.prod: no pod with ordinal 7 \(ordinals now: 0, 1, 2\)"):
        router.choose(Request(ordinal=7), pods(range(3)), pods(range(3)))
    with pytest.raises(EndpointNotFound, match=r"no pod with pod 'web-9' \(ordinals now: none\)"):
        Router.pinned_pod(Request(hostname="web-9"), EndpointSet(name="web.prod"))


def test_partitions_are_always_pinned() -> None:
    """A partition request is pinned whatever the strategy says."""
    assert Router(PartitionLeader({})).pins(Request(partition=0))
    assert Router(RoundRobin()).pins(Request(partition=0))


# -- optional parts --------------------------------------------------------------------------------


def test_every_optional_part_of_a_user_strategy_is_used() -> None:
    """prepare, started/finished, pins, health_pools, key_picker, not_leader and watch are all reached."""
    strategy = Everything()
    router = Router(strategy)
    snapshot = pods(range(3))
    assert router.routes_partitions
    assert router.tracks_load
    router.prepare(snapshot)
    router.started(snapshot[0])
    router.finished(snapshot[0], 0.5, False)
    router.not_leader("p", 2)
    assert strategy.log == [("prepare", 3), ("started", 0), ("finished", 0, 0.5, False), ("not_leader", "p", 2)]
    assert router.pins(Request(key="pin-me"))
    assert not router.pins(Request(key="other"))
    assert router.health_pools(snapshot) == (snapshot[:1], snapshot[1:])
    assert router.key_picker(snapshot, snapshot)("anything") == snapshot[0]
    assert router.choose(Request(partition="p"), snapshot, snapshot) == snapshot[2]  # routed to the strategy
    unsubscribe = router.watch(lambda: None)
    assert unsubscribe is not None and len(strategy.watchers) == 1
    unsubscribe()
    assert strategy.watchers == []


def test_a_choose_only_strategy_gets_a_default_key_picker() -> None:
    """Without key_picker, the key-only path calls choose with a key-only request."""
    strategy = ChooseOnly()
    snapshot = pods(range(3))
    quick = Router(strategy).key_picker(snapshot, snapshot)
    assert quick("k") == snapshot[2]
    quick(None)
    assert strategy.requests == [Request(key="k"), Request()]


STRATEGIES: list[tuple[object, dict[str, bool]]] = [
    (RoundRobin(), {}),
    (Random(seed=1), {}),
    (LeastLoaded(), {"tracks_load": True}),
    (Sticky(), {"tracks_load": True}),
    (PartitionLeader({}), {"routes_partitions": True, "watch": True}),
    (PrimaryReplica(), {"pins": True, "health_pools": True, "watch": True}),
    # Fallback forwards the health pools of its first member that has them (none: no pools).
    (Fallback(PartitionLeader({}), RoundRobin()),
     {"routes_partitions": True, "watch": True, "tracks_load": True, "health_pools": True}),
    (Fallback(RoundRobin(), PrimaryReplica()),
     {"pins": True, "watch": True, "tracks_load": True, "health_pools": True}),
]


@pytest.mark.parametrize(("strategy", "parts"), STRATEGIES, ids=[repr(s) for s, _ in STRATEGIES])
def test_the_optional_parts_of_each_built_in(strategy: object, parts: dict[str, bool]) -> None:
    """Each built-in declares exactly the optional parts its routing needs."""
    router = Router(strategy)
    snapshot = pods(range(3))
    assert router.routes_partitions is parts.get("routes_partitions", False)
    assert router.tracks_load is parts.get("tracks_load", False)
    assert router.pins(Request(role="write")) is parts.get("pins", False)
    assert (router.health_pools(snapshot) is not None) is parts.get("health_pools", False)
    unsubscribe = router.watch(lambda: None)
    assert (unsubscribe is not None) is parts.get("watch", False)
    if unsubscribe is not None:
        unsubscribe()


@pytest.mark.parametrize(
    "strategy",
    [RoundRobin(), Random(seed=1), LeastLoaded(seed=1), Sticky(), PrimaryReplica(), Fallback(RoundRobin())],
    ids=repr,
)
def test_every_built_in_chooses_a_usable_pod_for_a_key(strategy: object) -> None:
    """For a key-only request, every built-in but a partition router returns a usable pod, by choose and by key picker."""
    snapshot = pods(range(4))
    usable = snapshot.without([snapshot[1]])
    router = Router(strategy)
    quick = router.key_picker(usable, snapshot)
    for i in range(20):
        assert router.choose(Request(key=f"user-{i}"), usable, snapshot) in usable
        assert quick(f"user-{i}") in usable


def test_fallback_forwards_the_primary_replica_pools() -> None:
    """Fallback(PrimaryReplica(), ...) keeps the per-role health pools of its first member."""
    snapshot = pods(range(3))
    pools = Router(Fallback(PrimaryReplica(), RoundRobin())).health_pools(snapshot)
    assert pools is not None and [len(p) for p in pools] == [1, 2]
    assert Router(Fallback(RoundRobin())).health_pools(snapshot) == ()
