"""PrimaryReplica: writes to the lowest ordinal, reads rotate over the others."""

from __future__ import annotations

from collections import Counter

import pytest

from headless_client.endpoints import Endpoint, EndpointSet
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
