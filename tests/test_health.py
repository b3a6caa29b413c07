"""health.py: ejection periods, pruning and the panic threshold (pure, clock passed in)."""

from __future__ import annotations

import math

import pytest

from headless_client import Endpoint, EndpointSet, HealthPolicy, InvalidName
from headless_client.health import HealthTracker

NAME = "web.prod.svc.cluster.local"


def pod(i: int, address: str | None = None) -> Endpoint:
    return Endpoint(address or f"10.0.0.{i + 1}", 8080, hostname=f"web-{i}.{NAME}", ordinal=i)


def pods(n: int) -> EndpointSet:
    return EndpointSet((pod(i) for i in range(n)), name=NAME)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_ejection": 0},
        {"base_ejection": -1},
        {"base_ejection": True},
        {"max_ejection": "5"},
        {"max_ejection": math.nan},
        {"max_ejected": -0.1},
        {"max_ejected": 1.5},
        {"max_ejected": True},
    ],
)
def test_policy_rejects_bad_values_naming_them(kwargs: dict[str, object]) -> None:
    """A bad knob raises InvalidName naming the knob and the value."""
    name, value = next(iter(kwargs.items()))
    with pytest.raises(InvalidName) as info:
        HealthPolicy(**kwargs)  # type: ignore[arg-type]
    assert name in str(info.value)
    assert repr(value) in str(info.value)


def test_ejection_grows_base_times_n_and_is_capped() -> None:
    """The n-th consecutive ejection lasts n * base_ejection, at most max_ejection."""
    policy = HealthPolicy(base_ejection=2.0, max_ejection=7.0)
    assert [policy.ejection(n) for n in range(1, 6)] == [2.0, 4.0, 6.0, 7.0, 7.0]
    tracker = HealthTracker(policy)
    ep = pod(0)
    now = 100.0
    periods = []
    for _ in range(5):
        until = tracker.eject(ep, now)
        periods.append(until - now)
        assert tracker.is_ejected(ep, now)
        assert tracker.is_ejected(ep, until - 1e-6)
        assert not tracker.is_ejected(ep, until)
        now = until + 0.5  # fails again after the ejection ended
    assert periods == [2.0, 4.0, 6.0, 7.0, 7.0]


def test_failures_during_an_ejection_count_once() -> None:
    """Concurrent failures of one outage do not stretch the ejection."""
    tracker = HealthTracker(HealthPolicy(base_ejection=2.0))
    ep = pod(0)
    first = tracker.eject(ep, 10.0)
    assert [tracker.eject(ep, 10.0 + t) for t in (0.1, 0.5, 1.9)] == [first] * 3
    # The next failure after it ended is the second ejection: 2 * base.
    assert tracker.eject(ep, 12.5) == pytest.approx(12.5 + 4.0)


def test_success_forgets_the_streak() -> None:
    """report_success clears the state: the next ejection is base long again."""
    tracker = HealthTracker(HealthPolicy(base_ejection=1.0))
    ep = pod(0)
    tracker.eject(ep, 0.0)
    tracker.eject(ep, 1.5)  # second: 2 s
    assert tracker.tracks(ep)
    assert tracker.success(ep) is True
    assert not tracker.tracks(ep)
    assert not tracker.is_ejected(ep, 2.0)
    assert tracker.success(ep) is False
    assert tracker.eject(ep, 10.0) == pytest.approx(11.0)


def test_state_follows_identity_not_address() -> None:
    """A pod restarted with a new IP (same hostname) is still the ejected pod."""
    tracker = HealthTracker()
    tracker.eject(pod(0, "10.0.0.1"), 0.0)
    moved = pod(0, "10.9.9.9")
    assert tracker.is_ejected(moved, 1.0)
    assert tracker.healthy(EndpointSet([moved, pod(1), pod(2)]), 1.0) == EndpointSet([pod(1), pod(2)])


def test_prune_drops_pods_that_left_dns() -> None:
    """A pod that disappears loses its state; when it comes back it starts clean."""
    tracker = HealthTracker(HealthPolicy(base_ejection=5.0))
    ep = pod(1)
    tracker.eject(ep, 0.0)
    tracker.eject(pod(0), 0.0)
    tracker.prune(EndpointSet([pod(0), pod(2)]))
    assert not tracker.tracks(ep)
    assert tracker.tracks(pod(0))  # still in DNS: kept
    assert not tracker.is_ejected(ep, 1.0)
    assert tracker.healthy(pods(3), 1.0) == EndpointSet([pod(1), pod(2)])
    # Back in DNS and failing again: a first ejection, not a second.
    assert tracker.eject(ep, 2.0) == pytest.approx(7.0)


@pytest.mark.parametrize(
    ("size", "share", "ejected", "panic"),
    [
        (4, 0.5, 1, False),
        (4, 0.5, 2, False),  # exactly the share: still honoured
        (4, 0.5, 3, True),
        (3, 0.5, 1, False),  # floor(1.5) = 1 may be ejected
        (3, 0.5, 2, True),
        (1, 0.5, 1, True),  # a lone pod is never ejected
        (10, 0.0, 1, True),  # share 0: ejection disabled
        (10, 1.0, 10, False),  # share 1: everything may go
        (10, 0.25, 2, False),
        (10, 0.25, 3, True),
    ],
)
def test_panic_threshold(size: int, share: float, ejected: int, panic: bool) -> None:
    """More than floor(len * max_ejected) ejected: every endpoint is used again."""
    tracker = HealthTracker(HealthPolicy(max_ejected=share, base_ejection=10.0))
    snapshot = pods(size)
    for ep in snapshot[:ejected]:
        tracker.eject(ep, 0.0)
    healthy = tracker.healthy(snapshot, 1.0)
    if panic:
        assert healthy is snapshot
    else:
        assert list(healthy) == list(snapshot[ejected:])
        assert healthy.name == NAME


def test_healthy_returns_the_snapshot_itself_when_nothing_is_ejected() -> None:
    """No copy on the common path (the view's pick reads it on every call)."""
    tracker = HealthTracker()
    snapshot = pods(3)
    assert tracker.healthy(snapshot, 0.0) is snapshot
    tracker.eject(pod(0), 0.0)
    assert tracker.healthy(snapshot, 100.0) is snapshot  # the ejection ended
    empty = EndpointSet(name=NAME)
    assert tracker.healthy(empty, 0.5) is empty


def test_next_expiry_is_the_earliest_future_end() -> None:
    tracker = HealthTracker(HealthPolicy(base_ejection=2.0))
    assert tracker.next_expiry(0.0) is None
    tracker.eject(pod(0), 0.0)  # until 2
    tracker.eject(pod(1), 1.0)  # until 3
    assert tracker.next_expiry(0.5) == pytest.approx(2.0)
    assert tracker.next_expiry(2.0) == pytest.approx(3.0)
    assert tracker.next_expiry(3.0) is None
