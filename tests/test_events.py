"""Typed events as a user sees them, on both twins: each kind is delivered once when it
should be, with its fields, through ``subscribe(callback, events=...)``; 0.1.0's
``callback(old, new)`` subscribers see only changes of the view, as before.

The services run on a :class:`~headless_client.testing.FakeClock` with a static resolver
(the harness of ``tests/test_twins.py``); waits are on conditions with real deadlines.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import headless_client as hc
from headless_client.events import EVENT_KINDS, ServiceEvent, membership_events
from headless_client.testing import FakeClock, StaticResolver, statefulset_endpoints
from tests.test_twins import NAME, AsyncTwin, SyncTwin, Twin, pods, twin_of, wait_until


@pytest.fixture(params=["sync", "async"])
def twin(request: pytest.FixtureRequest) -> Iterator[Twin]:
    clock = FakeClock()
    table = StaticResolver({"web.prod": pods(0, 1, 2)}, namespace="prod")
    with twin_of(request.param, clock, table, min_refresh=1, max_refresh=5, empty_grace=3,
                 health=hc.HealthPolicy(base_ejection=2, max_ejected=0.5)) as made:
        yield made


class Recorder:
    """Collects events (and 0.1.0-style calls) as the service delivers them."""

    def __init__(self) -> None:
        self.events: list[ServiceEvent] = []
        self.changes: list[tuple[hc.EndpointSet, hc.EndpointSet]] = []

    def event(self, event: ServiceEvent) -> None:
        self.events.append(event)

    def change(self, old: hc.EndpointSet, new: hc.EndpointSet) -> None:
        self.changes.append((old, new))

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def of(self, kind: str) -> list[ServiceEvent]:
        return [e for e in self.events if e.kind == kind]


def started(twin: Twin, *, kinds: Any = True) -> Recorder:
    twin.make()
    twin.start()
    rec = Recorder()
    twin.svc.subscribe(rec.event, events=kinds)
    twin.svc.subscribe(rec.change)
    return rec


def settle_until(twin: Twin, rec: Recorder, count: int) -> None:
    """Wait for *count* events, then for the service to be quiet (so extra events show)."""
    wait_until(lambda: len(rec.events) >= count, f"{count} events (have {rec.kinds()})")
    twin.settle()


# -- membership ---------------------------------------------------------------------------------


def test_added_removed_and_changed_once_each(twin: Twin) -> None:
    """A refresh that swaps pod 2 for pod 3 gives one ``changed``, one ``added`` and one
    ``removed``; the 0.1.0 subscriber gets the same (old, new) pair once."""
    rec = started(twin)
    before = twin.svc.endpoints
    twin.table.set("web.prod", pods(0, 1, 3))
    twin.refresh()
    settle_until(twin, rec, 3)
    assert rec.kinds() == ["changed", "added", "removed"]
    changed, added, removed = rec.events
    assert (changed.old, changed.new) == (before, twin.svc.endpoints)
    assert added.endpoint is not None and added.endpoint.ordinal == 3
    assert removed.endpoint is not None and removed.endpoint.ordinal == 2
    assert all(e.service == NAME and e.at == twin.clock() for e in rec.events)
    assert rec.changes == [(before, twin.svc.endpoints)]


def test_moved_when_a_pod_keeps_its_name_and_gets_a_new_address(twin: Twin) -> None:
    """A rescheduled pod (same name, new IP) is one ``moved`` event naming both endpoints,
    not a removal and an addition."""
    rec = started(twin)
    old = twin.svc.endpoint(ordinal=1)
    new = hc.Endpoint("10.0.9.9", old.port, hostname=old.hostname, ordinal=1)
    twin.table.set("web.prod", [twin.svc.endpoint(ordinal=0), new, twin.svc.endpoint(ordinal=2)])
    twin.refresh()
    settle_until(twin, rec, 2)
    assert rec.kinds() == ["changed", "moved"]
    moved = rec.events[1]
    assert moved.previous == old and moved.endpoint == new
    assert "10.0.9.9" in moved.detail


def test_an_unchanged_refresh_delivers_nothing(twin: Twin) -> None:
    """A refresh with the same answer publishes no event of any kind."""
    rec = started(twin)
    twin.refresh()
    twin.advance(6)
    assert rec.events == [] and rec.changes == []


def test_empty_after_the_grace_removes_every_pod_once(twin: Twin) -> None:
    """NXDOMAIN confirmed after the grace is one ``changed`` and a ``removed`` per pod; the
    answers inside the grace deliver nothing."""
    rec = started(twin)
    twin.table.delete("web.prod")
    twin.advance(5)
    assert rec.events == []
    twin.advance(5)
    settle_until(twin, rec, 4)
    assert rec.kinds() == ["changed", "removed", "removed", "removed"]
    assert [len(pair[1]) for pair in rec.changes] == [0]


# -- health ---------------------------------------------------------------------------------------


def test_ejected_then_returned_once(twin: Twin) -> None:
    """A reported failure is one ``ejected`` event; the end of the ejection one
    ``returned``; the 0.1.0 subscriber sees neither (the DNS view did not change)."""
    rec = started(twin)
    victim = twin.svc.endpoint(ordinal=1)
    twin.svc.report_failure(victim)
    twin.svc.report_failure(victim)  # during the ejection: the same outage, no new event
    settle_until(twin, rec, 1)
    assert rec.kinds() == ["ejected"]
    assert rec.events[0].endpoint == victim
    twin.advance(2.5)
    settle_until(twin, rec, 2)
    assert rec.kinds() == ["ejected", "returned"]
    assert rec.events[1].endpoint == victim
    assert rec.changes == []


def test_report_success_returns_an_ejected_pod_at_once(twin: Twin) -> None:
    """A success reported for an ejected pod gives ``returned`` before the period ends."""
    rec = started(twin)
    victim = twin.svc.endpoint(ordinal=0)
    twin.svc.report_failure(victim)
    settle_until(twin, rec, 1)
    twin.svc.report_success(victim, 0.01)
    settle_until(twin, rec, 2)
    assert rec.kinds() == ["ejected", "returned"]


def test_panic_started_and_ended(twin: Twin) -> None:
    """Ejecting more than max_ejected of the pods starts the panic rule (every pod is used
    again) once; when the ejections end, each pod returns and the panic ends once."""
    rec = started(twin)
    for ordinal in (0, 1):
        twin.svc.report_failure(twin.svc.endpoint(ordinal=ordinal))
    settle_until(twin, rec, 3)
    assert rec.kinds() == ["ejected", "ejected", "panic_started"]
    assert len(twin.svc.healthy_endpoints) == 3
    assert "2 of 3" in rec.events[2].detail
    twin.advance(2.5)
    settle_until(twin, rec, 6)
    assert sorted(rec.kinds()[3:]) == ["panic_ended", "returned", "returned"]


def test_a_pod_ejected_during_panic_is_still_an_ejection(twin: Twin) -> None:
    """With the panic rule on, ejecting one more pod changes nothing usable but is still
    an ``ejected`` event and counts in stats (it used to be lost: see the changelog)."""
    rec = started(twin)
    for ordinal in (0, 1):
        twin.svc.report_failure(twin.svc.endpoint(ordinal=ordinal))
    settle_until(twin, rec, 3)
    twin.svc.report_failure(twin.svc.endpoint(ordinal=2))
    settle_until(twin, rec, 4)
    assert rec.kinds() == ["ejected", "ejected", "panic_started", "ejected"]
    stats = twin.svc.stats()
    assert [p.ejections for p in stats.pods] == [1, 1, 1]
    assert all(p.ejected for p in stats.pods) and stats.panic


def test_the_only_pod_failing_is_ejected_and_panics() -> None:
    """A one-pod service whose pod fails: ``ejected`` and ``panic_started`` (the pod is
    still used), then ``returned`` and ``panic_ended``."""
    clock = FakeClock()
    table = StaticResolver({"web.prod": pods(0)}, namespace="prod")
    with hc.HeadlessService("web.prod", "http", resolver=table, clock=clock,
                            health=hc.HealthPolicy(base_ejection=2)) as svc:
        twin = SyncTwin(clock, table)
        twin.svc = svc
        rec = Recorder()
        svc.subscribe(rec.event, events=True)
        svc.report_failure(0)
        settle_until(twin, rec, 2)
        assert rec.kinds() == ["ejected", "panic_started"]
        assert svc.stats().pods[0].ejected
        twin.advance(2.5)
        settle_until(twin, rec, 4)
        assert rec.kinds() == ["ejected", "panic_started", "returned", "panic_ended"]


# -- refreshes --------------------------------------------------------------------------------------


def test_refresh_failed_each_time_with_the_error_then_recovered_once(twin: Twin) -> None:
    """Each failed resolution is one ``refresh_failed`` carrying the error; the first
    success after them is one ``refresh_recovered``; later successes are silent."""
    rec = started(twin)
    twin.table.set_error("SERVFAIL from the test")
    with pytest.raises(hc.ResolutionError):
        twin.refresh()
    with pytest.raises(hc.ResolutionError):
        twin.refresh()
    settle_until(twin, rec, 2)
    assert rec.kinds() == ["refresh_failed", "refresh_failed"]
    assert all(isinstance(e.error, hc.ResolutionError) and "SERVFAIL" in str(e.error) for e in rec.events)
    assert "SERVFAIL" in rec.events[0].detail
    twin.table.set_error(None)
    twin.refresh()
    settle_until(twin, rec, 3)
    assert rec.kinds()[2:] == ["refresh_recovered"]
    assert "2 failures" in rec.events[2].detail
    twin.refresh()
    twin.settle()
    assert len(rec.events) == 3


def test_nxdomain_is_not_a_failed_refresh(twin: Twin) -> None:
    """NXDOMAIN is an answer (no ready pods), not a failure: no ``refresh_failed``."""
    rec = started(twin, kinds={"refresh_failed", "refresh_recovered"})
    twin.table.delete("web.prod")
    twin.refresh()
    twin.settle()
    assert rec.events == []


# -- routing ------------------------------------------------------------------------------------------


def test_routing_changed_once_per_change_of_the_primary(twin: Twin) -> None:
    """Naming a new primary is one ``routing_changed``; naming the same one again is none."""
    strategy = hc.PrimaryReplica()
    twin.options["strategy"] = strategy
    rec = started(twin)
    strategy.set_primary(2)
    settle_until(twin, rec, 1)
    strategy.set_primary(2)
    twin.settle()
    assert rec.kinds() == ["routing_changed"]
    assert twin.pick(role="write").ordinal == 2


def test_routing_changed_on_a_leader_hint(twin: Twin) -> None:
    """A NOT_LEADER hint that moves a partition is one ``routing_changed``."""
    leaders = {0: 0, 1: 1}
    twin.options["strategy"] = hc.PartitionLeader(lambda: dict(leaders), min_reread_interval=0)
    rec = started(twin)
    twin.not_leader(1, 2)
    settle_until(twin, rec, 1)
    assert rec.kinds() == ["routing_changed"]


# -- subscribing ----------------------------------------------------------------------------------------


def test_a_kind_filter_delivers_only_those_kinds(twin: Twin) -> None:
    """``events={"ejected"}`` gets ejections and nothing of the membership change."""
    rec = started(twin, kinds={"ejected"})
    twin.table.set("web.prod", pods(0, 1, 2, 3))
    twin.refresh()
    twin.svc.report_failure(twin.svc.endpoint(ordinal=3))
    settle_until(twin, rec, 1)
    assert rec.kinds() == ["ejected"]
    assert len(rec.changes) == 1


def test_unsubscribe_stops_delivery(twin: Twin) -> None:
    """After unsubscribe() (twice: harmless) the callback gets nothing more."""
    twin.make()
    twin.start()
    got: list[ServiceEvent] = []
    unsubscribe = twin.svc.subscribe(got.append, events=True)
    unsubscribe()
    unsubscribe()
    twin.svc.report_failure(twin.svc.endpoint(ordinal=0))
    twin.table.set("web.prod", pods(0, 1))
    twin.refresh()
    twin.settle()
    assert got == []


def test_events_before_subscribing_are_not_replayed(twin: Twin) -> None:
    """A subscriber gets what happens after it subscribed, no backlog."""
    twin.make()
    twin.start()
    twin.svc.report_failure(twin.svc.endpoint(ordinal=0))
    twin.settle()
    got: list[ServiceEvent] = []
    twin.svc.subscribe(got.append, events=True)
    twin.advance(2.5)
    wait_until(lambda: [e.kind for e in got] == ["returned"], f"one returned event (have {got})")


def test_a_raising_subscriber_does_not_stop_the_others(twin: Twin, caplog: pytest.LogCaptureFixture) -> None:
    """One callback raising is logged (with the service in the record) and the next
    still gets the event."""
    twin.make()
    twin.start()

    def bad(event: ServiceEvent) -> None:
        raise RuntimeError("subscriber bug")

    got: list[str] = []
    twin.svc.subscribe(bad, events=True)
    twin.svc.subscribe(lambda e: got.append(e.kind), events=True)
    with caplog.at_level("ERROR", logger="headless_client"):
        twin.svc.report_failure(twin.svc.endpoint(ordinal=0))
        wait_until(lambda: got == ["ejected"], "the second subscriber's event")
        wait_until(lambda: any("subscriber" in r.getMessage() for r in caplog.records), "the log record")
    record = next(r for r in caplog.records if "subscriber" in r.getMessage())
    assert record.service == NAME  # type: ignore[attr-defined]


def test_async_twin_awaits_coroutine_subscribers() -> None:
    """On the asyncio twin a coroutine function subscriber is awaited for each event."""
    clock = FakeClock()
    table = StaticResolver({"web.prod": pods(0, 1, 2)}, namespace="prod")
    twin = AsyncTwin(clock, table)
    try:
        twin.make()
        twin.start()
        got: list[str] = []

        async def callback(event: ServiceEvent) -> None:
            got.append(event.kind)

        twin.svc.subscribe(callback, events={"ejected"})
        twin.svc.report_failure(twin.svc.endpoint(ordinal=2))
        wait_until(lambda: got == ["ejected"], "the awaited callback")
    finally:
        twin.close()
        twin.stop()


@pytest.mark.parametrize(
    ("events", "error", "needle"),
    [
        ({"ejected", "exploded"}, hc.InvalidName, "exploded"),
        ("ejected", hc.InvalidArgument, "not a str"),
    ],
)
def test_bad_event_kinds_are_refused_naming_them(events: Any, error: type[Exception], needle: str) -> None:
    """An unknown kind, or a bare string instead of a collection, is refused at subscribe()."""
    svc = hc.HeadlessService("web.prod", "http", resolver=StaticResolver({"web.prod": pods(0)}, namespace="prod"))
    with pytest.raises(error, match=needle):
        svc.subscribe(lambda e: None, events=events)


def test_every_kind_is_documented_on_the_event_type() -> None:
    """Each kind in EVENT_KINDS is described in ServiceEvent's docstring."""
    doc = ServiceEvent.__doc__ or ""
    for kind in EVENT_KINDS:
        assert f"``{kind}``" in doc, kind


def test_membership_events_treat_a_dual_stack_pod_as_one() -> None:
    """A pod with an IPv4 and an IPv6 address that appears is one ``added`` event."""
    v4 = statefulset_endpoints("web", "prod", ["10.0.0.1"])[0]
    v6 = hc.Endpoint("fd00::1", v4.port, hostname=v4.hostname, ordinal=0)
    old = hc.EndpointSet([], name=NAME)
    new = hc.EndpointSet([v4, v6], name=NAME)
    kinds = [e.kind for e in membership_events(NAME, 1.0, old, new)]
    assert kinds == ["added"]
