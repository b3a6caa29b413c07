"""refresh.py: the refresh rules, driven by a fake clock (no sleeping)."""

from __future__ import annotations

import random

import pytest
import tenacity

from headless_client import Endpoint, EndpointSet, InvalidName, ResolutionError
from headless_client.refresh import RefreshPolicy, RefreshState

NAME = "web.prod.svc.cluster.local"


def snap(n: int, ttl: int = 5) -> EndpointSet:
    return EndpointSet(
        [Endpoint(f"10.0.0.{i + 1}", 80, hostname=f"web-{i}.{NAME}", ordinal=i, ttl=ttl) for i in range(n)],
        name=NAME,
    )


def state(**kw) -> RefreshState:
    return RefreshState(RefreshPolicy(**kw), NAME, rng=random.Random(1))


@pytest.mark.parametrize(("ttl", "low", "high"), [(5, 4.5, 5.5), (0, 0.9, 1.1), (3600, 27, 30), (None, 0.9, 1.1)])
def test_period_is_clamped_ttl_with_jitter(ttl, low, high):
    """Next refresh at the TTL clamped to [min, max], +-10 %, never past max_refresh."""
    policy = RefreshPolicy(min_refresh=1, max_refresh=30)
    rng = random.Random(3)
    delays = [policy.period(ttl, rng) for _ in range(500)]
    assert low <= min(delays) and max(delays) <= high
    assert max(delays) - min(delays) > (high - low) * 0.5  # the jitter is really there


def test_unchanged_answer_publishes_nothing():
    """An answer equal to the current set publishes nothing."""
    s = state()
    assert s.on_answer(snap(3), 0).publish == snap(3)
    decision = s.on_answer(snap(3, ttl=4), 5)
    assert decision.publish is None
    assert s.on_answer(snap(4), 10).publish == snap(4)


def test_failure_keeps_last_good_and_backs_off():
    """Failures keep the set, back off exponentially up to max_refresh, warn once per streak."""
    s = state(min_refresh=1, max_refresh=30)
    s.on_answer(snap(3), 0)
    decisions = [s.on_error(ResolutionError("down"), t) for t in range(8)]
    assert all(d.publish is None for d in decisions)
    assert [d.warning is not None for d in decisions] == [True] + [False] * 7
    delays = [d.delay for d in decisions]
    assert delays[0] < 2.01 and delays[3] >= 8
    assert max(delays) <= 30
    assert s.current == snap(3)
    recovered = s.on_answer(snap(3), 10)
    assert recovered.info and "recovered after 8 failures" in recovered.info
    again = s.on_error(ResolutionError("down"), 11)
    assert again.warning is not None  # a new streak warns again


def test_custom_tenacity_backoff():
    """A tenacity wait object sets the failure delays."""
    s = state(backoff=tenacity.wait_fixed(7), max_refresh=30)
    assert s.on_error(ResolutionError("x"), 0).delay == 7


def test_empty_after_non_empty_needs_confirmation():
    """NXDOMAIN after a good set is applied only when confirmed empty_grace later."""
    s = state(empty_grace=5)
    s.on_answer(snap(3), 0)
    first = s.on_not_found(10)
    assert first.publish is None
    assert first.delay == pytest.approx(5)
    early = s.on_not_found(12)  # an on-demand refresh inside the grace
    assert early.publish is None
    assert early.delay == pytest.approx(3)
    confirmed = s.on_not_found(15)
    assert confirmed.publish is not None and len(confirmed.publish) == 0
    assert "confirmed" in confirmed.warning


def test_empty_blip_is_forgotten():
    """A brief empty answer followed by pods again never empties the view."""
    s = state(empty_grace=5)
    s.on_answer(snap(3), 0)
    assert s.on_answer(EndpointSet(name=NAME), 1).publish is None
    assert s.on_answer(snap(3), 2).publish is None
    assert s.on_not_found(3).publish is None
    assert s.on_not_found(7).publish is None  # the grace restarted at 3
    assert s.on_not_found(8).publish == EndpointSet()


def test_grace_zero_applies_at_once():
    """empty_grace=0 disables the confirmation."""
    s = state(empty_grace=0)
    s.on_answer(snap(3), 0)
    assert s.on_not_found(1).publish == EndpointSet()


def test_startup_empty_is_published_and_polled_at_floor():
    """At startup NXDOMAIN gives an empty view at once, polled at min_refresh."""
    s = state(min_refresh=2)
    d = s.on_not_found(0)
    assert d.publish is not None and len(d.publish) == 0
    assert 1.8 <= d.delay <= 2.2
    assert d.warning
    assert s.on_not_found(2).publish is None


def test_early_refresh_rate_limit():
    """On-demand refreshes run at most once per min_refresh."""
    s = state(min_refresh=2)
    assert s.earliest_early_refresh(0) == 0
    s.on_answer(snap(1), 10)
    assert s.earliest_early_refresh(10.5) == 12
    assert s.earliest_early_refresh(13) == 13


@pytest.mark.parametrize(
    "kw",
    [{"min_refresh": 0}, {"min_refresh": -1}, {"max_refresh": 0.5}, {"jitter": 1.0},
     {"empty_grace": -1}, {"min_refresh": "1"}, {"min_refresh": float("nan")}, {"max_refresh": True}],
)
def test_bad_policy(kw):
    """Bad knobs raise InvalidName naming the value."""
    with pytest.raises(InvalidName):
        RefreshPolicy(**kw)
