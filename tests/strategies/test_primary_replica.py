"""PrimaryReplica: writes to the lowest ordinal, reads rotate over the others."""

from __future__ import annotations

from collections import Counter

import pytest

from headless_client.endpoints import Endpoint, EndpointSet
from headless_client.errors import InvalidArgument, InvalidName, NoEndpointsAvailable
from headless_client.request import Request
from headless_client.strategies import PrimaryReplica

from ._helpers import addresses, dual_stack, pods


def test_writes_go_to_lowest_ordinal() -> None:
    """The primary is the lowest ordinal present, not necessarily 0."""
    eps = pods([4, 2, 7])
    pr = PrimaryReplica()
    assert pr.pick(eps, "write").ordinal == 2
    assert pr.pick(eps, PrimaryReplica.WRITE).ordinal == 2
    assert pr.primary(eps).ordinal == 2


def test_reads_rotate_exactly_over_replicas() -> None:
    """Reads never hit the primary while replicas exist, and share evenly."""
    eps = pods(range(4))
    pr = PrimaryReplica()
    reads = Counter(pr.pick(eps).ordinal for _ in range(300))
    assert reads == {1: 100, 2: 100, 3: 100}
    assert Counter(pr.pick(eps, "read").ordinal for _ in range(3)) == {1: 1, 2: 1, 3: 1}


def test_custom_write_keys() -> None:
    """write_keys replaces the default; WRITE always works."""
    eps = pods(range(3))
    pr = PrimaryReplica(write_keys=("w", "rw"))
    assert pr.pick(eps, "rw").ordinal == 0
    assert pr.pick(eps, "write").ordinal != 0
    assert pr.pick(eps, PrimaryReplica.WRITE).ordinal == 0
    assert pr.write_keys == ("w", "rw")


def test_single_pod_serves_reads() -> None:
    """With no replica, reads fall back to the primary."""
    eps = pods([0])
    assert PrimaryReplica().pick(eps).ordinal == 0


def test_no_ordinals_uses_first_in_set_order() -> None:
    """Without ordinals the primary is the first endpoint in set order."""
    eps = addresses(3)
    pr = PrimaryReplica()
    assert pr.pick(eps, "write") == eps[0]
    assert {pr.pick(eps) for _ in range(4)} == {eps[1], eps[2]}


def test_endpoints_without_ordinal_are_replicas() -> None:
    """A pod with an ordinal outranks endpoints without one."""
    extra = Endpoint("10.9.0.1", 8080)
    eps = EndpointSet([extra, *pods([3])])
    pr = PrimaryReplica()
    assert pr.pick(eps, "write").ordinal == 3
    assert pr.pick(eps) == extra


def test_dual_stack_primary_is_not_its_own_replica() -> None:
    """The primary's IPv6 twin does not receive reads."""
    eps = EndpointSet([*dual_stack(0), *dual_stack(1)])
    pr = PrimaryReplica()
    assert {pr.pick(eps).ordinal for _ in range(4)} == {1}


def test_unhashable_read_key_is_fine() -> None:
    """Keys are compared with ==, so any object is a read."""
    eps = pods(range(2))
    assert PrimaryReplica().pick(eps, ["select"]).ordinal == 1


def test_write_keys_must_not_be_a_string() -> None:
    """write_keys='write' (a str) would make every letter a key: refused."""
    with pytest.raises(TypeError, match="write_keys"):
        PrimaryReplica(write_keys="write")


def test_pick_replica_rotates_over_all_given() -> None:
    """pick_replica round-robins over every pod given (the caller vouches none is primary)."""
    from headless_client import EndpointSet, NoEndpointsAvailable
    from headless_client.strategies import PrimaryReplica

    from ._helpers import pods as make_pods

    strategy = PrimaryReplica()
    replicas = make_pods(range(1, 4))
    assert sorted(strategy.pick_replica(replicas).ordinal for _ in range(6)) == [1, 1, 2, 2, 3, 3]
    with pytest.raises(NoEndpointsAvailable):
        strategy.pick_replica(EndpointSet())


# -- the request-aware protocol ----------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [Request(role="write"), Request(key="write"), Request(key=PrimaryReplica.WRITE)],
    ids=["role", "write-key", "WRITE"],
)
def test_writes_choose_the_primary_from_the_snapshot(request_: Request) -> None:
    """A write goes to the primary even when the usable set lacks it (ejected)."""
    snapshot = pods(range(3))
    usable = snapshot.without([snapshot[0]])
    pr = PrimaryReplica()
    assert pr.choose(request_, usable, snapshot).ordinal == 0
    assert pr.pins(request_)


def test_reads_rotate_over_usable_replicas_with_roles_from_the_snapshot() -> None:
    """With the primary ejected, the lowest usable pod is still a replica and keeps its share of reads."""
    snapshot = pods(range(4))
    usable = snapshot.without([snapshot[0]])
    pr = PrimaryReplica()
    reads = Counter(pr.choose(Request(role="read"), usable, snapshot).ordinal for _ in range(300))
    assert reads == {1: 100, 2: 100, 3: 100}
    usable = snapshot.without([snapshot[2]])
    reads = Counter(pr.choose(Request(), usable, snapshot).ordinal for _ in range(200))
    assert reads == {1: 100, 3: 100}  # an ejected replica gets none


def test_reads_skip_tried_replicas_then_use_the_primary() -> None:
    """A read retry skips replicas already tried, and goes to the primary once none is left."""
    snapshot = pods(range(3))
    pr = PrimaryReplica()
    tried = Request(exclude={snapshot[1].identity})
    assert {pr.choose(tried, snapshot, snapshot).ordinal for _ in range(4)} == {2}
    tried = tried.excluding(snapshot[2].identity)
    assert pr.choose(tried, snapshot, snapshot).ordinal == 0


def test_reads_use_ejected_replicas_rather_than_the_primary() -> None:
    """When no replica is usable, reads still go to the (ejected) replicas, not to the primary."""
    snapshot = pods(range(3))
    usable = EndpointSet([snapshot[0]], name=snapshot.name)
    pr = PrimaryReplica()
    assert {pr.choose(Request(), usable, snapshot).ordinal for _ in range(4)} == {1, 2}


def test_reads_and_other_keys_are_not_pinned() -> None:
    """Reads, foreign keys and unhashable keys leave retries free to move."""
    pr = PrimaryReplica(write_keys=("w",))
    assert pr.pins(Request(key="w"))
    assert pr.pins(Request(role="write"))
    assert not pr.pins(Request())
    assert not pr.pins(Request(role="read"))
    assert not pr.pins(Request(key="write"))
    assert not pr.pins(Request(key=["unhashable"]))


def test_a_write_without_a_primary_in_the_view_names_it() -> None:
    """A named primary that is not in the view makes writes fail with NoEndpointsAvailable naming it."""
    snapshot = pods(range(3))
    pr = PrimaryReplica(primary="web-7")
    with pytest.raises(NoEndpointsAvailable, match="'web-7' is not among the 3 endpoints"):
        pr.choose(Request(role="write"), snapshot, snapshot)
    assert {pr.choose(Request(), snapshot, snapshot).ordinal for _ in range(6)} == {0, 1, 2}


def test_health_pools_are_the_primary_and_the_replicas() -> None:
    """The primary (both its addresses) is one pool, the replicas another."""
    snapshot = EndpointSet([*dual_stack(0), *dual_stack(1), *dual_stack(2)])
    pools = PrimaryReplica().health_pools(snapshot)
    assert [sorted(ep.address for ep in pool) for pool in pools] == [
        ["10.0.0.1", "fd00::1"],
        ["10.0.0.2", "10.0.0.3", "fd00::2", "fd00::3"],
    ]
    assert PrimaryReplica(primary=2).health_pools(snapshot)[0] == tuple(dual_stack(2))


def test_no_health_pools_without_a_primary() -> None:
    """An empty set, or a named primary missing from it, has no pools (the whole set is one)."""
    assert PrimaryReplica().health_pools(EndpointSet()) == ()
    assert PrimaryReplica(primary=9).health_pools(pods(range(3))) == ()


def test_key_picker_sends_write_keys_to_the_primary() -> None:
    """The key-only picker routes write keys to the primary (from the snapshot) and the rest to replicas."""
    snapshot = pods(range(3))
    usable = snapshot.without([snapshot[0]])
    pr = PrimaryReplica(write_keys=("w",))
    quick = pr.key_picker(usable, snapshot)
    assert quick("w").ordinal == 0
    assert quick(PrimaryReplica.WRITE).ordinal == 0
    assert sorted(quick(None).ordinal for _ in range(4)) == [1, 1, 2, 2]
    assert quick("write").ordinal in (1, 2)


def test_set_primary_moves_writes_and_tells_watchers() -> None:
    """set_primary() moves writes at the next pick and calls each watcher once per real change."""
    snapshot = pods(range(3))
    pr = PrimaryReplica()
    calls: list[str] = []
    unsubscribe = pr.watch(lambda: calls.append("changed"))
    pr.set_primary("web-2")
    assert pr.primary_name == "web-2"
    assert pr.choose(Request(role="write"), snapshot, snapshot).ordinal == 2
    assert pr.replicas(snapshot) == (snapshot[0], snapshot[1])
    pr.set_primary("WEB-2.")  # the same name, spelled differently: no change
    assert calls == ["changed"]
    pr.set_primary(None)
    assert pr.primary(snapshot).ordinal == 0
    assert calls == ["changed", "changed"]
    unsubscribe()
    pr.set_primary(1)
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("primary", "error", "needle"),
    [(-1, InvalidName, "primary ordinal must be >= 0: -1"), ("", InvalidName, "must not be empty"),
     (True, InvalidArgument, "primary must be an ordinal"), (1.5, InvalidArgument, "1.5")],
)
def test_bad_primary_names_are_refused(primary: object, error: type[Exception], needle: str) -> None:
    """A negative ordinal, an empty name or a wrong type is refused, in the constructor and in set_primary."""
    with pytest.raises(error, match=needle):
        PrimaryReplica(primary=primary)  # type: ignore[arg-type]
    pr = PrimaryReplica(primary=1)
    with pytest.raises(error, match=needle):
        pr.set_primary(primary)  # type: ignore[arg-type]
    assert pr.primary_name == 1


def test_no_partition_routing() -> None:
    """PrimaryReplica routes no partitions: a service refuses partition calls to it."""
    assert not getattr(PrimaryReplica(), "routes_partitions", False)
