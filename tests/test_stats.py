"""``svc.stats()`` as a user sees it, on both twins, and the counters behind it.

Tracked calls (``connection()``) count picks, calls in flight, failures and the latency
estimate per pod; passive health counts ejections; the service counts refreshes,
failures, the staleness of its view and (for timed resolutions) how long the latest took.
A :class:`~headless_client.testing.FakeClock` makes every figure exact.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

import headless_client as hc
from headless_client.errors import ResolutionError, ServiceNotFound
from headless_client.stats import LATENCY_WEIGHT, StatsKeeper
from headless_client.testing import AsyncStaticResolver, FakeClock, StaticResolver
from tests.test_twins import NAME, Twin, pods, twin_of

# -- the keeper (pure) ----------------------------------------------------------------------------------

EP0, EP1 = pods(0, 1)


def test_keeper_counts_calls_and_never_goes_below_zero_in_flight() -> None:
    """started/ended/failed/succeeded move picks, in-flight and failures per pod; an end
    without a start leaves in-flight at 0."""
    keeper = StatsKeeper()
    keeper.started(EP0)
    keeper.started(EP0)
    keeper.failed(EP0)
    keeper.ended(EP1)
    keeper.succeeded(EP1, None)
    stats = keeper.snapshot(NAME, "running", 0.0, hc.EndpointSet([EP0, EP1]), hc.EndpointSet([EP0, EP1]),
                            frozenset(), False, 0)
    pod0, pod1 = stats.pods
    assert (pod0.picks, pod0.in_flight, pod0.failures) == (2, 1, 1)
    assert (pod1.picks, pod1.in_flight, pod1.failures) == (0, 0, 0)


def test_keeper_latency_is_a_moving_average() -> None:
    """The first success sets the estimate; each next one moves it by LATENCY_WEIGHT;
    negative latencies are ignored."""
    keeper = StatsKeeper()
    keeper.succeeded(EP0, 0.100)
    keeper.succeeded(EP0, 0.200)
    keeper.succeeded(EP0, -1.0)
    stats = keeper.snapshot(NAME, "running", 0.0, hc.EndpointSet([EP0]), hc.EndpointSet([EP0]),
                            frozenset(), False, 0)
    assert stats.pods[0].latency == pytest.approx(0.100 + LATENCY_WEIGHT * 0.100)


def test_keeper_refreshes_staleness_and_last_resolution() -> None:
    """A failure counts but keeps the last good time; NXDOMAIN is a good answer;
    last_resolution reports the count, duration and error class of the latest."""
    keeper = StatsKeeper()
    keeper.resolved(10.0, None, 0.25)
    keeper.resolved(12.0, ResolutionError("SERVFAIL"), 0.5)
    assert keeper.last_resolution() == (2, 0.5, "ResolutionError")
    stats = keeper.snapshot(NAME, "running", 15.0, hc.EndpointSet(), hc.EndpointSet(), frozenset(), False, 3)
    assert (stats.refreshes, stats.refresh_failures, stats.staleness) == (2, 1, 5.0)
    assert stats.dns_questions == 3 and stats.last_refresh_duration == 0.5
    keeper.resolved(16.0, ServiceNotFound("gone"), None)
    assert keeper.last_resolution() == (3, None, "ServiceNotFound")
    stats = keeper.snapshot(NAME, "running", 16.0, hc.EndpointSet(), hc.EndpointSet(), frozenset(), False, 3)
    assert (stats.refresh_failures, stats.staleness) == (1, 0.0)


# -- through the services -------------------------------------------------------------------------------


@pytest.fixture
def listeners() -> Iterator[list[int]]:
    """Three listening loopback ports (the pods' servers), closed afterwards."""
    socks = []
    for _ in range(3):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        socks.append(s)
    try:
        yield [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def loopback_pods(ports: list[int]) -> list[hc.Endpoint]:
    return [hc.Endpoint("127.0.0.1", port, hostname=f"web-{i}.{NAME}", ordinal=i) for i, port in enumerate(ports)]


class Cost:
    """Fake time each resolution takes (0 until a test sets it)."""

    clock: FakeClock | None = None
    seconds = 0.0

    def spend(self) -> None:
        if self.clock is not None and self.seconds:
            self.clock.advance(self.seconds)


class ClockedResolver(StaticResolver):
    """A static resolver whose resolutions take ``cost.seconds`` of fake time."""

    cost = Cost()

    def resolve(self, service: str, port: Any, *, protocol: str = "tcp", namespace: str | None = None) -> Any:
        self.cost.spend()
        return super().resolve(service, port, protocol=protocol, namespace=namespace)

    def as_async(self) -> AsyncStaticResolver:
        twin = AsyncClockedResolver(namespace=self.namespace, timeout=self.timeout, _table=self._table)
        twin.cost = self.cost
        return twin


class AsyncClockedResolver(AsyncStaticResolver):
    """The asyncio twin of ClockedResolver, sharing its table and cost."""

    cost = Cost()

    async def resolve(self, service: str, port: Any, *, protocol: str = "tcp", namespace: str | None = None) -> Any:
        self.cost.spend()
        return await super().resolve(service, port, protocol=protocol, namespace=namespace)


@pytest.fixture(params=["sync", "async"])
def twin(request: pytest.FixtureRequest, listeners: list[int]) -> Iterator[Twin]:
    clock = FakeClock()
    table = ClockedResolver({"web.prod": loopback_pods(listeners)}, namespace="prod")
    table.cost = Cost()
    with twin_of(request.param, clock, table, min_refresh=1, max_refresh=5, strategy=hc.RoundRobin()) as made:
        yield made


def test_a_new_service_has_nothing_counted(twin: Twin) -> None:
    """Before start: phase new, no pods, no refreshes, no staleness."""
    twin.make()
    stats = twin.svc.stats()
    assert (stats.service, stats.phase, stats.endpoints, stats.refreshes) == (NAME, "new", 0, 0)
    assert stats.staleness is None and stats.pods == ()


def test_tracked_calls_count_picks_in_flight_and_latency(twin: Twin) -> None:
    """Each connection() is a pick of its pod, in flight while its block runs; its
    success feeds the pod's latency estimate; a bare pick() counts nothing."""
    twin.make()
    twin.start()
    for _ in range(6):
        twin.pick()
    assert [p.picks for p in twin.svc.stats().pods] == [0, 0, 0]
    for _ in range(6):
        twin.connect()
    stats = twin.svc.stats()
    assert [p.picks for p in stats.pods] == [2, 2, 2]
    assert [p.in_flight for p in stats.pods] == [0, 0, 0]
    assert all(p.latency == 0.0 for p in stats.pods)  # fake time did not move
    assert stats.endpoints == stats.usable == 3


def test_in_flight_while_a_connection_is_open(listeners: list[int]) -> None:
    """A call is in flight between entering and leaving ``connection()``, and its
    latency is the fake time spent inside."""
    clock = FakeClock()
    table = StaticResolver({"web.prod": loopback_pods(listeners)}, namespace="prod")
    with hc.HeadlessService("web.prod", "http", resolver=table, clock=clock) as svc:
        with svc.connection(ordinal=1):
            assert [p.in_flight for p in svc.stats().pods] == [0, 1, 0]
            clock.advance(0.04)
        pod = svc.stats().pods[1]
        assert (pod.picks, pod.in_flight, pod.latency) == (1, 0, pytest.approx(0.04))


def test_failures_and_ejections(twin: Twin) -> None:
    """report_failure counts a failure and an ejection; a second failure during the same
    ejection counts a failure only; the pod shows as ejected."""
    twin.make()
    twin.start()
    twin.svc.report_failure(1)
    twin.svc.report_failure(1)
    stats = twin.svc.stats()
    pod = stats.pods[1]
    assert (pod.failures, pod.ejections, pod.ejected) == (2, 1, True)
    assert stats.usable == 2 and not stats.panic


def test_staleness_grows_while_dns_fails_and_resets_on_an_answer(twin: Twin) -> None:
    """Staleness is the fake time since the last good answer: it grows through failures
    (counted) and is 0 right after a good answer."""
    twin.make()
    twin.start()
    assert twin.svc.stats().staleness == 0.0
    twin.table.set_error("SERVFAIL from the test")
    twin.advance(5)
    stats = twin.svc.stats()
    assert stats.refresh_failures >= 1
    assert stats.staleness == pytest.approx(5.0)
    twin.table.set_error(None)
    twin.refresh()
    stats = twin.svc.stats()
    assert stats.staleness == 0.0
    assert stats.refreshes == stats.refresh_failures + 2


def test_refresher_resolutions_are_timed(twin: Twin) -> None:
    """A resolution the refresher runs reports its duration (fake time spent resolving)."""
    twin.make()
    twin.start()
    assert twin.svc.stats().last_refresh_duration == 0.0  # start()'s own, at no fake cost
    twin.table.cost.clock, twin.table.cost.seconds = twin.clock, 0.25
    twin.refresh()
    count, duration, error = twin.svc.core.last_resolution()
    assert (duration, error) == (pytest.approx(0.25), None)
    assert twin.svc.stats().last_refresh_duration == pytest.approx(0.25)
    assert count == twin.svc.stats().refreshes


def test_a_pod_that_leaves_is_forgotten(twin: Twin, listeners: list[int]) -> None:
    """Counters of a pod that left DNS are dropped with it; the rest stay."""
    twin.make()
    twin.start()
    for _ in range(3):
        twin.connect()
    twin.table.set("web.prod", loopback_pods(listeners)[:2])
    twin.refresh()
    stats = twin.svc.stats()
    assert [p.endpoint.ordinal for p in stats.pods] == [0, 1]
    assert [p.picks for p in stats.pods] == [1, 1]


def test_dns_questions_is_zero_for_a_resolver_without_lookups(twin: Twin) -> None:
    """A resolver that offers only resolve() (this static one) sends no DNS questions the
    service could count."""
    twin.make()
    twin.start()
    twin.refresh()
    assert twin.svc.stats().dns_questions == 0
