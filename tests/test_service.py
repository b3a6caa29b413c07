"""service.py: HeadlessService's lifecycle, refresher thread and blocking calls, over a
scripted in-memory resolver (no DNS). The same behaviours against BIND9 are in
tests/integration/test_service.py."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from headless_client import (
    Endpoint,
    EndpointSet,
    HeadlessClientError,
    HeadlessService,
    HealthPolicy,
    InvalidName,
    NoEndpointsAvailable,
    RefreshPolicy,
    ResolutionError,
    Resolver,
    ServiceNotFound,
    WaitTimeout,
)

NAME = "web.prod.svc.cluster.local"
THREAD = "headless-client-refresher"


def pod(i: int, ttl: int | None = None) -> Endpoint:
    return Endpoint(f"10.0.0.{i + 1}", 8080, hostname=f"web-{i}.{NAME}", ordinal=i, ttl=ttl)


def pods(*ordinals: int, ttl: int | None = None) -> EndpointSet:
    return EndpointSet((pod(i, ttl) for i in ordinals), name=NAME, ttl=ttl)


class ScriptedResolver(Resolver):
    """Answers ``resolve`` with whatever the test set last (a set or an exception to raise),
    counting calls. Never touches the network."""

    def __init__(self, answer: EndpointSet | BaseException, *, timeout: float = 1.0) -> None:
        super().__init__(["127.0.0.1:9"], timeout=timeout)
        self._answer = answer
        self.calls = 0
        self.cond = threading.Condition()

    def set(self, answer: EndpointSet | BaseException) -> None:
        with self.cond:
            self._answer = answer

    def resolve(
        self, service: str, port: int | str, *, protocol: str = "tcp", namespace: str | None = None
    ) -> EndpointSet:
        with self.cond:
            self.calls += 1
            answer = self._answer
            self.cond.notify_all()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def wait_calls(self, n: int, timeout: float) -> int:
        """Block until at least *n* calls were made (AssertionError after *timeout*)."""
        with self.cond:
            if not self.cond.wait_for(lambda: self.calls >= n, timeout):
                raise AssertionError(f"{self.calls} resolve calls after {timeout}s, wanted {n}")
            return self.calls


def refresher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll *predicate* (cheap, no I/O) until true; returns the seconds it took."""
    start = time.monotonic()
    deadline = start + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.005)
    return time.monotonic() - start


@pytest.fixture
def made() -> Iterator[list[HeadlessService]]:
    """Services to close after the test, even when it fails."""
    services: list[HeadlessService] = []
    yield services
    for svc in services:
        svc.close()


def service(made: list[HeadlessService], resolver: Resolver, **kwargs: object) -> HeadlessService:
    options: dict[str, object] = {"min_refresh": 0.05, "max_refresh": 0.2, "empty_grace": 0.5}
    options.update(kwargs)
    svc = HeadlessService("web.prod", port="http", resolver=resolver, **options)  # type: ignore[arg-type]
    made.append(svc)
    return svc


# -- lifecycle ------------------------------------------------------------------------------


def test_context_manager_resolves_once_and_starts_the_shared_refresher(made: list[HeadlessService]) -> None:
    """Entering resolves once and hands the service to the process's refresher thread,
    a named daemon; closing takes it off again."""
    resolver = ScriptedResolver(pods(0, 1, 2))
    svc = service(made, resolver)
    assert svc.name == NAME
    assert "new" in repr(svc)
    assert not svc.refreshing
    with svc:
        assert resolver.calls >= 1
        assert svc.endpoints == pods(0, 1, 2)
        assert svc.refreshing  # other tests' services may share the refresher: count ours only
        threads = refresher_threads()
        assert len(threads) == 1
        assert threads[0].daemon
        assert "running 3 endpoints" in repr(svc)
    assert svc.closed
    assert not svc.refreshing
    svc.close()  # twice: harmless
    assert "closed" in repr(svc)


def test_start_is_idempotent_and_closed_service_refuses_work(made: list[HeadlessService]) -> None:
    """A second start() changes nothing; a closed service refuses start, refresh and
    wait_for with ServiceClosed, and its last view stays readable."""
    from headless_client import ServiceClosed

    svc = service(made, ScriptedResolver(pods(0)))
    svc.start()
    svc.start()
    assert svc.refreshing
    assert len(refresher_threads()) == 1
    svc.close()
    for call in (svc.start, svc.refresh, lambda: svc.wait_for(5, timeout=1)):
        with pytest.raises(ServiceClosed, match="closed"):
            call()
    with pytest.raises(HeadlessClientError, match="closed"):
        svc.start()
    with pytest.raises(HeadlessClientError, match="closed"):
        svc.refresh()
    with pytest.raises(HeadlessClientError, match="closed"):
        svc.wait_for(5, timeout=1)
    # The last view stays readable after close.
    assert svc.pick() == pod(0)


def test_close_without_start_and_close_from_a_callback(made: list[HeadlessService]) -> None:
    resolver = ScriptedResolver(pods(0))
    idle = service(made, resolver)
    idle.close()
    assert idle.closed
    svc = service(made, resolver)
    svc.start()
    assert svc.refreshing
    svc.subscribe(lambda old, new: svc.close())
    resolver.set(pods(0, 1))
    wait_until(lambda: svc.closed and not svc.refreshing, 5, "closed from its own callback")


@pytest.mark.parametrize(
    ("name", "port"), [("Not_A_Name", "http"), ("web.prod", 70000), ("web.prod", 1.5), ("web.prod", "")]
)
def test_bad_name_or_port_fails_in_the_constructor(name: str, port: object) -> None:
    before = threading.active_count()
    with pytest.raises(InvalidName):
        HeadlessService(name, port=port, resolver=ScriptedResolver(pods(0)))  # type: ignore[arg-type]
    assert threading.active_count() == before


# -- startup on an empty or failing service ---------------------------------------------------


def test_start_on_nxdomain_gives_an_empty_view_then_waits_for_a_pod(made: list[HeadlessService]) -> None:
    resolver = ScriptedResolver(ServiceNotFound(f"{NAME}: NXDOMAIN"))
    with service(made, resolver) as svc:
        assert len(svc.endpoints) == 0
        with pytest.raises(NoEndpointsAvailable, match=NAME):
            svc.pick()
        resolver.set(pods(0))
        got = svc.wait_for(1, timeout=5)
        assert got == pods(0)
        assert svc.pick() == pod(0)


def test_start_on_a_transport_failure_does_not_raise_and_recovers(made: list[HeadlessService]) -> None:
    resolver = ScriptedResolver(ResolutionError("127.0.0.1:9 timed out"))
    with service(made, resolver, max_refresh=0.3) as svc:
        assert len(svc.endpoints) == 0
        resolver.wait_calls(3, timeout=5)  # retried with backoff
        resolver.set(pods(0, 1))
        assert svc.wait_for(2, timeout=5) == pods(0, 1)


def test_wait_for_timeout_names_the_service(made: list[HeadlessService]) -> None:
    with service(made, ScriptedResolver(pods(0))) as svc:
        start = time.monotonic()
        with pytest.raises(WaitTimeout) as info:
            svc.wait_for(3, timeout=0.3)
        assert time.monotonic() - start >= 0.29
        assert NAME in str(info.value)
        assert "wanted 3" in str(info.value)
        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value, NoEndpointsAvailable)
        assert svc.wait_for(0, timeout=0) == pods(0)
        with pytest.raises(ValueError, match="min_endpoints"):
            svc.wait_for(-1)
        with pytest.raises(ValueError, match="min_endpoints"):
            svc.wait_for(True)  # type: ignore[arg-type]


def test_close_wakes_a_waiter(made: list[HeadlessService]) -> None:
    svc = service(made, ScriptedResolver(ServiceNotFound("x")))
    svc.start()
    outcome: list[BaseException] = []
    entered = threading.Event()

    def waiter() -> None:
        entered.set()
        try:
            svc.wait_for(1, timeout=30)
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=waiter)
    t.start()
    assert entered.wait(5)
    svc.close()
    t.join(5)
    assert not t.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], HeadlessClientError)


# -- refresh() --------------------------------------------------------------------------------


def test_refresh_resolves_now_and_keeps_the_last_good_set_on_error(made: list[HeadlessService]) -> None:
    resolver = ScriptedResolver(pods(0), timeout=0.5)
    with service(made, resolver, min_refresh=5, max_refresh=10) as svc:  # no periodic refresh
        calls = resolver.calls
        resolver.set(pods(0, 1))
        assert svc.refresh() == pods(0, 1)
        assert resolver.calls == calls + 1
        resolver.set(ResolutionError("SERVFAIL from 127.0.0.1:9"))
        with pytest.raises(ResolutionError, match="SERVFAIL"):
            svc.refresh()
        assert svc.endpoints == pods(0, 1)
        assert svc.pick() in pods(0, 1)
        # NXDOMAIN is not an error for refresh(): the set is kept during the grace.
        resolver.set(ServiceNotFound("gone"))
        assert svc.refresh() == pods(0, 1)


def test_refresh_before_start_resolves_inline(made: list[HeadlessService]) -> None:
    """refresh() before start() resolves on the caller's thread, publishes the view (picks
    work), and does not hand the service to the refresher."""
    resolver = ScriptedResolver(pods(2))
    svc = service(made, resolver)
    assert svc.refresh() == pods(2)
    assert not svc.refreshing
    assert svc.endpoint(ordinal=2) == pod(2)
    assert svc.pick() == pod(2)


# -- subscriptions ------------------------------------------------------------------------


def test_events_are_ordered_and_chained_and_a_raising_callback_is_isolated(
    made: list[HeadlessService], caplog: pytest.LogCaptureFixture
) -> None:
    resolver = ScriptedResolver(pods(0))
    events: list[tuple[EndpointSet, EndpointSet]] = []
    raised = []

    def bad(old: EndpointSet, new: EndpointSet) -> None:
        raised.append(new)
        raise RuntimeError("subscriber bug")

    with service(made, resolver, min_refresh=5, max_refresh=10) as svc:
        first = svc.endpoints
        svc.subscribe(bad)
        svc.subscribe(lambda old, new: events.append((old, new)))
        for answer in (pods(0, 1), pods(0, 1, 2), pods(1, 2), pods(1, 2), pods(3)):
            resolver.set(answer)
            svc.refresh()  # on the refresher thread; delivered there, maybe after this returns
        wait_until(lambda: len(events) >= 4, 5, "four events delivered")
        assert [len(new) for _, new in events] == [2, 3, 2, 1]  # the repeat published nothing
        assert events[0][0] is first
        for (_, new), (old, _) in itertools.pairwise(events):
            assert new is old
        assert events[-1][1] is svc.endpoints
        assert len(raised) == 4
        assert "subscriber bug" in caplog.text
        assert any(t.is_alive() for t in refresher_threads())


def test_unsubscribed_callback_is_not_called(made: list[HeadlessService]) -> None:
    resolver = ScriptedResolver(pods(0))
    seen: list[int] = []
    with service(made, resolver, min_refresh=5, max_refresh=10) as svc:
        unsubscribe = svc.subscribe(lambda old, new: seen.append(len(new)))
        resolver.set(pods(0, 1))
        svc.refresh()
        wait_until(lambda: seen == [2], 5, "first event delivered")
        unsubscribe()
        unsubscribe()
        svc.subscribe(lambda old, new: seen.append(-len(new)))
        resolver.set(pods(0, 1, 2))
        svc.refresh()
        wait_until(lambda: len(seen) == 2, 5, "second event delivered")
    assert seen == [2, -3]


def test_slow_first_callback_does_not_let_the_refresher_overtake(made: list[HeadlessService]) -> None:
    """The event of the first resolution is delivered before the refresher starts, so a
    slow callback cannot see the second event first (or two callbacks run at once)."""
    resolver = ScriptedResolver(pods(0))
    svc = service(made, resolver, min_refresh=0.05, max_refresh=0.05)
    order: list[int] = []
    inside = [0]
    overlap = []

    def slow(old: EndpointSet, new: EndpointSet) -> None:
        inside[0] += 1
        if inside[0] > 1:
            overlap.append(len(new))
        order.append(len(new))
        if len(order) == 1:
            resolver.set(pods(0, 1))
            # A refresher already running would resolve again within 0.05 s and deliver
            # (0, 1) now; give it ten times that. Not a synchronisation: what is checked
            # is that nothing happens meanwhile.
            with resolver.cond:
                resolver.cond.wait_for(lambda: resolver.calls >= 2, 0.5)
        inside[0] -= 1

    svc.subscribe(slow)
    svc.start()
    assert svc.wait_for(2, timeout=5) == pods(0, 1)
    wait_until(lambda: len(order) == 2, 5, "second event delivered")
    assert order == [1, 2]
    assert overlap == []


# -- on-demand refresh and health -----------------------------------------------------------


def test_report_failure_refreshes_early_and_coalesces(made: list[HeadlessService]) -> None:
    """TTL 30 s puts the next periodic refresh 27+ s away; a failure report brings it to
    min_refresh after the last query, and a burst of reports costs only a few queries."""
    resolver = ScriptedResolver(pods(0, 1, 2, ttl=30))
    with service(made, resolver, min_refresh=0.1, max_refresh=30, health=HealthPolicy(max_ejected=1)) as svc:
        assert resolver.calls == 1
        resolver.set(pods(0, 1, 2, 3, ttl=30))
        start = time.monotonic()
        svc.report_failure(svc.endpoint(0))
        assert svc.wait_for(4, timeout=5) == pods(0, 1, 2, 3)
        assert time.monotonic() - start < 5
        assert resolver.calls == 2
        # 100 reports over about half a second: at most one query per min_refresh.
        burst_start = time.monotonic()
        for i in range(100):
            svc.report_failure(svc.endpoints[i % 4])
            time.sleep(0.005)  # pacing the reports
        elapsed = time.monotonic() - burst_start
        queries = resolver.calls - 2
        assert 1 <= queries <= elapsed / 0.1 + 2, (queries, elapsed)


def test_ejection_ends_by_itself(made: list[HeadlessService]) -> None:
    resolver = ScriptedResolver(pods(0, 1, 2, ttl=30))
    period = 0.5
    health = HealthPolicy(base_ejection=period)
    with service(made, resolver, min_refresh=1, max_refresh=30, health=health) as svc:
        start = time.monotonic()
        svc.report_failure(pod(1))
        ejected = {svc.pick().ordinal for _ in range(30)}
        if time.monotonic() - start < period:  # else a stalled machine outlived it
            assert ejected == {0, 2}
        wait_until(lambda: pod(1) in svc.healthy_endpoints, period + 5, "ejection of web-1 ended")
        assert time.monotonic() - start >= period
        assert {svc.pick().ordinal for _ in range(30)} == {0, 1, 2}


def test_refresh_from_a_subscriber_callback():
    """A callback may call refresh(): it resolves inline on the refresher thread (no
    self-wait), and its event reaches every callback after the current one, in order."""
    resolver = ScriptedResolver(pods(0, 1))
    events: list[tuple[int, int, str]] = []
    refreshed: list[int] = []
    done = threading.Event()

    with HeadlessService("web.prod", "http", resolver=resolver, min_refresh=0.05, max_refresh=0.1) as svc:

        def first(old: EndpointSet, new: EndpointSet) -> None:
            events.append((len(old), len(new), "first"))
            if len(new) == 3:
                resolver.set(pods(0, 1, 2, 3))
                start = time.monotonic()
                refreshed.append(len(svc.refresh()))
                assert time.monotonic() - start < 0.5
            if len(new) == 4:
                done.set()

        def second(old: EndpointSet, new: EndpointSet) -> None:
            events.append((len(old), len(new), "second"))

        svc.subscribe(first)
        svc.subscribe(second)
        resolver.set(pods(0, 1, 2))
        assert done.wait(5)
    assert refreshed == [4]
    assert events[:4] == [(2, 3, "first"), (2, 3, "second"), (3, 4, "first"), (3, 4, "second")]


def test_connect_on_a_closed_service_does_not_dial():
    """After close(), connect() stops without dialling a stale view: a ConnectAborted,
    both the ConnectError of 0.1.0 and a ServiceClosed."""
    import headless_client as hc

    svc = HeadlessService("web.prod", "http", resolver=ScriptedResolver(pods(0, 1)))
    svc.start()
    svc.close()
    with pytest.raises(hc.ConnectError, match="closed") as info:
        svc.connect(timeout=0.2)
    assert isinstance(info.value, hc.ServiceClosed)
    assert info.value.attempts == ()


def test_close_stops_a_connect_in_progress():
    """A pinned connect backing off between attempts stops retrying once the service closes."""
    import socket as socket_module

    import headless_client as hc

    with socket_module.socket() as probe:  # a loopback port nobody listens on: refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = EndpointSet([Endpoint("127.0.0.1", port, hostname=f"web-0.{NAME}", ordinal=0)], name=NAME)
    svc = HeadlessService("web.prod", "http", resolver=ScriptedResolver(target, timeout=5.0))
    svc.start()
    attempted = threading.Event()
    original = svc.report_failure

    def report_failure(ep: Endpoint) -> None:
        original(ep)
        attempted.set()

    svc.report_failure = report_failure  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            svc.connect(ordinal=0, timeout=0.5, attempts=50, total_timeout=20)
        except hc.ConnectError as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    start = time.monotonic()
    worker.start()
    assert attempted.wait(5)
    svc.close()
    worker.join(5)
    assert not worker.is_alive()
    assert time.monotonic() - start < 3
    assert len(errors[0].attempts) < 50


@pytest.mark.parametrize("full_refresh_every", [0.0, 3600.0])
def test_two_pods_swapping_addresses_are_seen_by_a_full_refresh(full_refresh_every: float) -> None:
    """Between full lookups a refresh reuses the addresses its answers prove, so two pods
    that swapped addresses (the service's address set unchanged, no glue) keep their old
    pairing; a full refresh (here every one, full_refresh_every=0) asks their names."""
    from headless_client.testing import FakeClusterDNS

    with FakeClusterDNS() as cluster:
        cluster.glue = False
        cluster.add_statefulset("web", "prod", 20)
        policy = RefreshPolicy(min_refresh=60, max_refresh=60, full_refresh_every=full_refresh_every)
        with HeadlessService("web.prod", port="http", resolver=cluster.resolver(), refresh=policy) as svc:
            one, two = svc.endpoint(ordinal=1).address, svc.endpoint(ordinal=2).address
            cluster.reip_pod("web", "prod", 1, address="10.99.0.1")  # the swap, between refreshes
            cluster.reip_pod("web", "prod", 2, address=one)
            cluster.reip_pod("web", "prod", 1, address=two)
            view = svc.refresh()
            assert {ep.address for ep in view} == {ep.address for ep in svc.endpoints}
            seen = (view.by_ordinal(1).address, view.by_ordinal(2).address)
            assert seen == ((two, one) if full_refresh_every == 0 else (one, two))
