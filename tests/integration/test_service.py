"""HeadlessService against a real BIND9 with dynamic updates (TTL 1).

Every test works on a private ``new_service(...)`` and never touches the static ground.
Waits are on conditions with deadlines (``wait_for``, a subscription and an Event, or a
polled predicate for state that has no notification); the only sleeps pace load loops.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from headless_client import (
    Endpoint,
    EndpointSet,
    HeadlessService,
    HealthPolicy,
    NoEndpointsAvailable,
    ResolutionError,
    Resolver,
    RoundRobin,
    Sticky,
    WaitTimeout,
)
from tests.integration.dnsground import TTL, BindServer, FreshService

pytestmark = pytest.mark.integration

MIN_REFRESH = 0.2
MAX_REFRESH = 1.0
#: Slack for one query round trip, thread wake-ups and a loaded CI machine.
SLACK = 1.5


class CountingResolver(Resolver):
    """A Resolver that counts its resolve calls and failures, and can stretch the TTL of
    its answers (BIND's is 1 s; a long TTL tells on-demand refreshes from periodic ones)."""

    def __init__(self, nameserver: str, *, timeout: float = 1.0, ttl: int | None = None) -> None:
        super().__init__([nameserver], timeout=timeout)
        self.ttl = ttl
        self.calls = 0
        self.failures = 0
        self.cond = threading.Condition()

    def resolve(
        self, service: str, port: int | str, *, protocol: str = "tcp", namespace: str | None = None
    ) -> EndpointSet:
        try:
            answer = super().resolve(service, port, protocol=protocol, namespace=namespace)
        except ResolutionError:
            with self.cond:
                self.calls += 1
                self.failures += 1
                self.cond.notify_all()
            raise
        with self.cond:
            self.calls += 1
            self.cond.notify_all()
        if self.ttl is not None:
            answer = EndpointSet(answer, name=answer.name, ttl=self.ttl)
        return answer

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                raise AssertionError(f"not within {timeout}s: {what} (calls={self.calls})")


@pytest.fixture
def services() -> Iterator[list[HeadlessService]]:
    made: list[HeadlessService] = []
    yield made
    for svc in made:
        svc.close()


@pytest.fixture
def open_service(bind: BindServer, services: list[HeadlessService]) -> Callable[..., HeadlessService]:
    """``open_service(fresh, port="http", **kwargs)``: a started HeadlessService, closed after."""

    def make(
        fresh: FreshService | str,
        port: int | str = "http",
        *,
        resolver: Resolver | None = None,
        start: bool = True,
        **kwargs: object,
    ) -> HeadlessService:
        options: dict[str, object] = {
            "min_refresh": MIN_REFRESH,
            "max_refresh": MAX_REFRESH,
            "empty_grace": 1.0,
        }
        options.update(kwargs)
        name = fresh if isinstance(fresh, str) else fresh.short
        svc = HeadlessService(
            name,
            port=port,
            resolver=resolver or Resolver([bind.nameserver], timeout=1.0),
            **options,  # type: ignore[arg-type]
        )
        services.append(svc)
        if start:
            svc.start()
        return svc

    return make


def wait_view(
    svc: HeadlessService, predicate: Callable[[EndpointSet], bool], timeout: float, what: str
) -> EndpointSet:
    """Block until the published view satisfies *predicate* (subscription + Event)."""
    hit = threading.Event()

    def check(old: EndpointSet, new: EndpointSet) -> None:
        if predicate(new):
            hit.set()

    unsubscribe = svc.subscribe(check)  # subscribed before looking: no change is missed
    try:
        if predicate(svc.endpoints) or hit.wait(timeout):
            return svc.endpoints
    finally:
        unsubscribe()
    raise AssertionError(f"not within {timeout}s: {what}; view now {svc.endpoints!r}")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll a cheap in-memory predicate (for state without notifications)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.005)
    return time.monotonic() - start


def ordinals(endpoints: EndpointSet) -> list[int | None]:
    return [ep.ordinal for ep in endpoints]


def refresher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "headless-client-refresher"]


# -- changes in DNS ---------------------------------------------------------------------------


def test_scale_up_is_seen_within_one_period(
    new_service: Callable[..., FreshService], open_service: Callable[..., HeadlessService]
) -> None:
    fresh = new_service(2)
    svc = open_service(fresh)
    assert ordinals(svc.endpoints) == [0, 1]
    assert svc.endpoints.name == fresh.fqdn.rstrip(".")
    start = time.monotonic()
    fresh.add()
    got = svc.wait_for(3, timeout=10)
    took = time.monotonic() - start
    # Next refresh at max(TTL, min_refresh) + 10 % jitter after the previous one.
    assert took < max(TTL, MIN_REFRESH) * 1.1 + SLACK, took
    assert ordinals(got) == [0, 1, 2]
    new = got.by_ordinal(2)
    assert new is not None
    assert new.address == fresh.addresses[2][0]
    assert new.hostname == fresh.pod_fqdn(2).rstrip(".")
    assert new.port == fresh.port


def test_scale_down_over_a_records(
    new_service: Callable[..., FreshService], open_service: Callable[..., HeadlessService]
) -> None:
    fresh = new_service(4)
    svc = open_service(fresh, 9090)  # numeric port: A records, no identities
    assert {ep.address for ep in svc.endpoints} == set(fresh.ipv4)
    assert {ep.port for ep in svc.endpoints} == {9090}
    fresh.scale(2)
    got = wait_view(svc, lambda s: len(s) == 2, 10, "scaled down to 2")
    assert {ep.address for ep in got} == set(fresh.ipv4)
    assert {svc.pick().address for _ in range(20)} == set(fresh.ipv4)


def test_pod_restart_with_a_new_ip_keeps_its_identity_and_sticky_keys(
    new_service: Callable[..., FreshService], open_service: Callable[..., HeadlessService]
) -> None:
    fresh = new_service(3)
    svc = open_service(fresh, strategy=Sticky())
    keys = [f"user-{i}" for i in range(300)]
    before = {k: svc.pick(k) for k in keys}
    assert {ep.ordinal for ep in before.values()} == {0, 1, 2}
    old_address = svc.endpoint(1).address
    (new_address,) = fresh.reip(1)
    assert new_address != old_address

    def moved(s: EndpointSet) -> bool:
        ep = s.by_ordinal(1)
        return ep is not None and ep.address == new_address

    got = wait_view(svc, moved, 10, "web-1 restarted on its new address")
    assert ordinals(got) == [0, 1, 2]
    assert svc.endpoint(1).hostname == before[next(k for k in keys if before[k].ordinal == 1)].hostname
    after = {k: svc.pick(k) for k in keys}
    for k in keys:
        assert after[k].hostname == before[k].hostname, k  # same pod for every key
        expected = new_address if before[k].ordinal == 1 else before[k].address
        assert after[k].address == expected, k


def test_deleted_service_is_emptied_only_after_the_grace(
    new_service: Callable[..., FreshService], open_service: Callable[..., HeadlessService]
) -> None:
    grace = 1.5
    fresh = new_service(2)
    svc = open_service(fresh, empty_grace=grace, max_refresh=0.5)
    known = svc.endpoints
    emptied = threading.Event()
    emptied_at: list[float] = []

    def on_change(old: EndpointSet, new: EndpointSet) -> None:
        if not new and not emptied.is_set():
            emptied_at.append(time.monotonic())
            emptied.set()

    svc.subscribe(on_change)
    deleted_at = time.monotonic()
    fresh.delete()
    picks = 0
    deadline = deleted_at + grace + 2 * 0.5 * 1.1 + SLACK + 2
    # Picking all along: every pick is served from the last good set until emptied. The
    # subscriber hears of the empty view after it is published, so a pick may meet it first.
    while not emptied.is_set() and time.monotonic() < deadline and picks < 100_000:
        try:
            picked = svc.pick()
        except NoEndpointsAvailable:
            assert emptied.wait(5), "the view emptied but no subscriber heard of it"
            break
        assert picked in known
        picks += 1
        time.sleep(0.002)  # pacing the picks
    assert emptied.is_set(), f"still {svc.endpoints!r} {deadline - deleted_at:.1f}s after the delete"
    waited = emptied_at[0] - deleted_at
    assert waited >= grace, f"emptied {waited:.2f}s after the delete, grace {grace}s"
    assert picks > 100
    with pytest.raises(NoEndpointsAvailable, match=fresh.name):
        svc.pick()


def test_named_down_keeps_serving_the_last_good_set_and_recovers(
    bind: BindServer,
    new_service: Callable[..., FreshService],
    open_service: Callable[..., HeadlessService],
) -> None:
    fresh = new_service(3)
    resolver = CountingResolver(bind.nameserver, timeout=0.5)
    svc = open_service(fresh, resolver=resolver, max_refresh=0.8)
    known = svc.endpoints
    assert len(known) == 3
    picks = 0
    with bind.down():
        failures_before = resolver.failures
        outage_end = time.monotonic() + 2.5
        while time.monotonic() < outage_end and picks < 100_000:
            assert svc.pick() in known
            assert svc.endpoints is known
            picks += 1
            time.sleep(0.002)  # pacing the picks
        # The refresher really tried (and failed) while named was down.
        resolver.wait(lambda: resolver.failures >= failures_before + 2, 5, "two failed refreshes")
        assert svc.endpoints is known
    assert picks > 100
    # named is back (same port, journal kept): a change made now is seen.
    fresh.add()
    got = svc.wait_for(4, timeout=0.8 * 1.1 + MIN_REFRESH + SLACK + 2)
    assert ordinals(got) == [0, 1, 2, 3]


def test_startup_on_a_missing_service_then_a_pod_is_added(
    new_service: Callable[..., FreshService], open_service: Callable[..., HeadlessService]
) -> None:
    fresh = new_service(0)  # no pods: NXDOMAIN for every type
    svc = open_service(fresh)
    assert len(svc.endpoints) == 0
    with pytest.raises(NoEndpointsAvailable, match=fresh.name):
        svc.pick()
    start = time.monotonic()
    with pytest.raises(WaitTimeout) as info:
        svc.wait_for(1, timeout=0.5)
    assert time.monotonic() - start >= 0.5
    assert fresh.fqdn.rstrip(".") in str(info.value)
    fresh.add()
    got = svc.wait_for(1, timeout=MIN_REFRESH * 1.1 + TTL + SLACK + 2)
    assert ordinals(got) == [0]
    assert svc.pick() == got[0]


# -- subscriptions ------------------------------------------------------------------------


def test_events_come_in_publication_order_chained_and_isolated(
    new_service: Callable[..., FreshService],
    open_service: Callable[..., HeadlessService],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fresh = new_service(1)
    svc = open_service(fresh)
    initial = svc.endpoints
    events: list[tuple[EndpointSet, EndpointSet]] = []
    broken_calls = []

    def broken(old: EndpointSet, new: EndpointSet) -> None:
        broken_calls.append(new)
        raise RuntimeError("a buggy subscriber")

    svc.subscribe(broken)  # first: the ones after it must still be called
    svc.subscribe(lambda old, new: events.append((old, new)))
    steps: list[tuple[Callable[[], object], Callable[[EndpointSet], bool]]] = [
        (lambda: fresh.add(), lambda s: ordinals(s) == [0, 1]),
        (lambda: fresh.add(), lambda s: ordinals(s) == [0, 1, 2]),
        (lambda: fresh.remove(0), lambda s: ordinals(s) == [1, 2]),
        (lambda: fresh.reip(2), lambda s: {ep.address for ep in s} == set(fresh.ipv4)),
    ]
    for change, done in steps:
        change()
        wait_view(svc, done, 10, "step applied")
    wait_until(lambda: len(events) >= len(steps), 5, "every event delivered")
    assert len(events) == len(steps)  # one event per change, none for unchanged answers
    assert events[0][0] == initial
    for (_, new), (old, _) in itertools.pairwise(events):
        assert new is old
    assert events[-1][1] is svc.endpoints
    assert broken_calls == [new for _, new in events]
    assert "a buggy subscriber" in caplog.text
    assert [t.is_alive() for t in refresher_threads()] == [True]
    # The refresher survived them all: a later change is still seen.
    fresh.add()
    assert ordinals(svc.wait_for(3, timeout=10)) == [1, 2, 3]


# -- passive health ---------------------------------------------------------------------------


def test_ejection_success_and_panic(
    new_service: Callable[..., FreshService], open_service: Callable[..., HeadlessService]
) -> None:
    fresh = new_service(4)
    svc = open_service(fresh, strategy=RoundRobin(), health=HealthPolicy(base_ejection=30, max_ejected=0.5))

    def picked(n: int = 40) -> set[int | None]:
        return {svc.pick().ordinal for _ in range(n)}

    ep0, ep1, ep2 = svc.endpoint(0), svc.endpoint(1), svc.endpoint(2)
    assert picked() == {0, 1, 2, 3}
    svc.report_failure(ep0)
    assert picked() == {1, 2, 3}
    assert len(svc.endpoints) == 4  # DNS's view is unchanged
    svc.report_success(ep0, latency=0.002)
    assert picked() == {0, 1, 2, 3}
    # Panic threshold: half may be ejected, not more.
    svc.report_failure(ep0)
    svc.report_failure(ep1)
    assert picked() == {2, 3}
    svc.report_failure(ep2)
    assert picked() == {0, 1, 2, 3}
    assert svc.healthy_endpoints == svc.endpoints
    svc.report_success(ep2)
    assert picked() == {2, 3}


def test_ejection_ends_by_itself(
    new_service: Callable[..., FreshService], open_service: Callable[..., HeadlessService]
) -> None:
    """The refresher rebuilds the healthy set when an ejection ends: nothing to report."""
    period = 1.0
    fresh = new_service(3)
    svc = open_service(fresh, health=HealthPolicy(base_ejection=period))
    ep1 = svc.endpoint(1)
    ejected_at = time.monotonic()
    svc.report_failure(ep1)
    ejected = {svc.pick().ordinal for _ in range(30)}
    if time.monotonic() - ejected_at < period:  # else a stalled machine outlived it
        assert ejected == {0, 2}
    wait_until(lambda: ep1 in svc.healthy_endpoints, period + 5, "ejection of pod 1 ended")
    assert time.monotonic() - ejected_at >= period
    assert {svc.pick().ordinal for _ in range(30)} == {0, 1, 2}


def test_report_failure_triggers_an_early_coalesced_refresh(
    bind: BindServer,
    new_service: Callable[..., FreshService],
    open_service: Callable[..., HeadlessService],
) -> None:
    """With a 30 s TTL and max_refresh the next periodic refresh is 27+ s away; a failure
    report brings it to min_refresh after the last query, and a burst costs few queries."""
    fresh = new_service(3)
    resolver = CountingResolver(bind.nameserver, ttl=30)
    svc = open_service(
        fresh, resolver=resolver, min_refresh=0.2, max_refresh=30, health=HealthPolicy(max_ejected=1)
    )
    assert resolver.calls == 1
    fresh.add()
    start = time.monotonic()
    svc.report_failure(svc.endpoint(0))
    got = svc.wait_for(4, timeout=5)
    took = time.monotonic() - start
    assert took < 0.2 * 1.1 + SLACK, took  # far below 27 s
    assert ordinals(got) == [0, 1, 2, 3]
    assert resolver.calls == 2
    # A burst of 100 reports over about 0.5 s: at most one query per min_refresh.
    burst_start = time.monotonic()
    for i in range(100):
        svc.report_failure(svc.endpoints[i % 4])
        time.sleep(0.005)  # pacing the reports
    elapsed = time.monotonic() - burst_start
    resolver.wait(lambda: resolver.calls >= 3, 5, "an early refresh after the burst")
    queries = resolver.calls - 2
    assert queries <= elapsed / 0.2 + 2, (queries, elapsed)


# -- lifecycle ----------------------------------------------------------------------------


def test_close_leaves_no_thread_behind(
    new_service: Callable[..., FreshService], open_service: Callable[..., HeadlessService]
) -> None:
    """Two services share one daemon refresher thread; closing both lets it end."""
    fresh = new_service(2)
    a = open_service(fresh)
    b = open_service(fresh, 8080)
    threads = refresher_threads()
    assert len(threads) == 1 and threads[0].daemon
    assert a.refreshing and b.refreshing
    a.close()
    assert not a.refreshing and b.refreshing
    b.close()
    b.close()
    assert not b.refreshing
    threads[0].join(5)
    assert not threads[0].is_alive()
    # The last view stays readable.
    assert len(a.endpoints) == 2
    assert isinstance(b.pick(), Endpoint)
