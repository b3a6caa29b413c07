"""Fallback: ordered strategies, NoEndpointsAvailable falls through, load forwarding."""

from __future__ import annotations

import pytest

from headless_client.endpoints import Endpoint, EndpointSet
from headless_client.errors import LeaderNotAvailable, NoEndpointsAvailable
from headless_client.strategies import (
    Fallback,
    LeastLoaded,
    PartitionLeader,
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
