"""RoundRobin: exact rotation, also across threads and set changes."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from headless_client.endpoints import EndpointSet
from headless_client.errors import NoEndpointsAvailable
from headless_client.request import Request
from headless_client.strategies import HealthPooling, Pinning, RoundRobin, Watching, round_robin
from tests.threads import run_in_threads

from ._helpers import dual_stack, pods


@pytest.fixture(name="fast_switching")
def _fast_switching() -> Iterator[None]:
    """Make the interpreter switch threads as often as it can, to provoke races."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_rotation_is_exact_and_in_set_order() -> None:
    """3000 picks over 3 pods give 1000 each, in order 0, 1, 2, 0, ..."""
    rr = RoundRobin()
    eps = pods(range(3))
    picked = [rr.pick(eps).ordinal for _ in range(3000)]
    assert picked[:6] == [0, 1, 2, 0, 1, 2]
    assert Counter(picked) == {0: 1000, 1: 1000, 2: 1000}


@pytest.mark.usefixtures("fast_switching")
def test_rotation_is_exact_across_eight_threads() -> None:
    """Eight threads sharing one RoundRobin still give exactly 1000 picks per pod."""
    rr = RoundRobin()
    eps = pods(range(3))
    barrier = threading.Barrier(8)
    counts: list[Counter[int | None]] = []

    def worker() -> None:
        mine: Counter[int | None] = Counter()
        barrier.wait()
        for _ in range(375):
            mine[rr.pick(eps).ordinal] += 1
        counts.append(mine)

    run_in_threads(worker, 8)
    total = sum(counts, Counter())
    assert total == {0: 1000, 1: 1000, 2: 1000}


def test_a_new_set_continues_with_the_pod_that_came_next() -> None:
    """After a set change the rotation begins with the pod the old one would have given next."""
    rr = RoundRobin()
    three, five = pods(range(3)), pods(range(5))
    assert [rr.pick(three).ordinal for _ in range(4)] == [0, 1, 2, 0]
    # Pod 1 came next; it is in the new set, so the new rotation starts there.
    assert [rr.pick(five).ordinal for _ in range(6)] == [1, 2, 3, 4, 0, 1]


def test_when_the_next_pod_left_the_rotation_keeps_its_position() -> None:
    """If the pod that came next left, the new rotation starts at its old position."""
    rr = RoundRobin()
    five = pods(range(5))
    assert [rr.pick(five).ordinal for _ in range(3)] == [0, 1, 2]
    # Pod 3 came next (position 3 of 5); without it, position 3 of [0, 1, 2, 4] is pod 4.
    assert [rr.pick(pods([0, 1, 2, 4])).ordinal for _ in range(5)] == [4, 0, 1, 2, 4]


def test_the_old_set_keeps_its_own_rotation() -> None:
    """Calls still holding the previous set rotate over it, not over the new one."""
    rr = RoundRobin()
    old, new = pods(range(3)), pods(range(3, 7))
    rr.pick(old)
    rr.pick(new)
    assert {rr.pick(old).ordinal for _ in range(6)} == {0, 1, 2}
    assert {rr.pick(new).ordinal for _ in range(8)} == {3, 4, 5, 6}


def test_free_threaded_rotation_is_the_same_exact_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a GIL the rotation takes a lock per step and gives the same order, exact across threads."""
    monkeypatch.setattr(round_robin, "_GIL", False)
    rr = RoundRobin()
    eps = pods(range(3))
    assert [rr.pick(eps).ordinal for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert [rr.pick(pods(range(4))).ordinal for _ in range(4)] == [1, 2, 3, 0]
    with pytest.raises(NoEndpointsAvailable):
        rr.pick(EndpointSet())
    counts: Counter[int | None] = Counter()
    lock = threading.Lock()
    eps = pods(range(5))

    def worker() -> None:
        mine = Counter(rr.pick(eps).ordinal for _ in range(500))
        with lock:
            counts.update(mine)

    run_in_threads(worker, 4)
    assert counts == {i: 400 for i in range(5)}


def test_shrinking_set_still_rotates_over_every_pod() -> None:
    """Removing a pod leaves an exact rotation over the rest."""
    rr = RoundRobin()
    rr.pick(pods(range(5)))
    smaller = pods([0, 2, 4])
    assert Counter(rr.pick(smaller).ordinal for _ in range(300)) == {0: 100, 2: 100, 4: 100}


def test_key_is_ignored() -> None:
    """Any key, hashable or not, is accepted and does not change the rotation."""
    rr = RoundRobin()
    eps = pods(range(2))
    assert [rr.pick(eps, k).ordinal for k in ("a", [1], None, 3)] == [0, 1, 0, 1]


def test_dual_stack_pod_counts_once() -> None:
    """A pod with an IPv4 and an IPv6 address gets one share, via its IPv4 endpoint."""
    v4, v6 = dual_stack(0)
    other = dual_stack(1)[0]
    eps = EndpointSet([v4, v6, other])
    rr = RoundRobin()
    assert [rr.pick(eps) for _ in range(4)] == [v4, other, v4, other]


# -- the request-aware protocol ----------------------------------------------------------------


def test_choose_rotates_over_the_usable_pods_only() -> None:
    """choose() rotates over the usable set and never returns a pod only the snapshot has."""
    snapshot = pods(range(3))
    usable = snapshot.without([snapshot[1]])
    rr = RoundRobin()
    assert [rr.choose(Request(), usable, snapshot).ordinal for _ in range(4)] == [0, 2, 0, 2]


def test_choose_skips_pods_already_tried() -> None:
    """A retry skips the excluded pods, then falls back to untried ejected ones, then gives up."""
    snapshot = pods(range(3))
    usable = snapshot.without([snapshot[2]])
    rr = RoundRobin()
    tried = Request(exclude={snapshot[0].identity})
    assert {rr.choose(tried, usable, snapshot).ordinal for _ in range(4)} == {1}
    tried = tried.excluding(snapshot[1].identity)
    assert rr.choose(tried, usable, snapshot).ordinal == 2  # ejected, but not tried yet
    with pytest.raises(NoEndpointsAvailable, match="all 3 were tried"):
        rr.choose(tried.excluding(snapshot[2].identity), usable, snapshot)


def test_key_picker_shares_the_rotation_and_ignores_the_key() -> None:
    """The key-only picker is the same rotation over the usable set, whatever the key."""
    snapshot = pods(range(3))
    rr = RoundRobin()
    quick = rr.key_picker(snapshot, snapshot)
    got = [quick("a").ordinal, rr.choose(Request(key="b"), snapshot, snapshot).ordinal, quick(None).ordinal]
    assert got == [0, 1, 2]


def test_declares_no_other_optional_part() -> None:
    """RoundRobin pins nothing, has no health pools, routes no partitions and cannot be watched."""
    rr = RoundRobin()
    assert not isinstance(rr, (Pinning, HealthPooling, Watching))
    assert not getattr(rr, "routes_partitions", False)
