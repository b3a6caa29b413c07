"""One behaviour suite, run on both twins: HeadlessService and AsyncHeadlessService.

Every scenario is written once, against a :class:`Twin` harness, and runs on a
:class:`~headless_client.testing.FakeClock` with a static resolver: no DNS, no BIND, no
real sleeping (waits are on conditions, with real deadlines only as safety nets). The
async twin runs on an event loop in a thread of its own; the harness carries each call
there. The suite covers what drifted between hand-copied twins before the core redesign:
concurrent ``start()`` calls, ``close()`` cutting a connect back-off short, and a refresh
interrupted by ``close()`` raising the same error on both.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

import headless_client as hc
from headless_client.testing import AsyncStaticResolver, FakeClock, StaticResolver, statefulset_endpoints

T = TypeVar("T")
NAME = "web.prod.svc.cluster.local"
DEADLINE = 10.0  # real seconds any condition may take; only a safety net


def pods(*ordinals: int, port: int = 8080) -> list[hc.Endpoint]:
    eps = statefulset_endpoints("web", "prod", [f"10.0.0.{i + 1}" for i in range(max(ordinals) + 1)], port=port)
    return [eps[i] for i in ordinals]


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll a cheap condition until true, failing after DEADLINE real seconds."""
    end = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"not within {DEADLINE}s: {what}")
        time.sleep(0.002)


class Gate:
    """A resolver that blocks until opened, to hold a resolution in flight."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def pass_through(self) -> None:
        self.entered.set()
        self.opened.wait(DEADLINE)


class GatedResolver(StaticResolver):
    """A StaticResolver whose resolve() waits at the gate while one is set."""

    gate: Gate | None = None

    def resolve(self, service: str, port: int | str, *, protocol: str = "tcp", namespace: str | None = None):
        if self.gate is not None:
            self.gate.pass_through()
        return super().resolve(service, port, protocol=protocol, namespace=namespace)


class AsyncGatedResolver(AsyncStaticResolver):
    """The asyncio twin of GatedResolver."""

    gate: Gate | None = None

    async def resolve(self, service: str, port: int | str, *, protocol: str = "tcp", namespace: str | None = None):
        if self.gate is not None:
            await asyncio.to_thread(self.gate.pass_through)
        return await super().resolve(service, port, protocol=protocol, namespace=namespace)


class Twin:
    """A service of either flavour behind one synchronous interface."""

    flavour = ""

    def __init__(self, clock: FakeClock, table: StaticResolver, **options: Any) -> None:
        self.clock = clock
        self.table = table
        self.options = options
        self.svc: Any = None

    # -- calls (each blocks until done) --------------------------------------------------------
    def start(self) -> None: raise NotImplementedError
    def close(self) -> None: raise NotImplementedError
    def refresh(self) -> hc.EndpointSet: raise NotImplementedError
    def wait_for(self, n: int, timeout: float | None = None) -> hc.EndpointSet: raise NotImplementedError
    def connect(self, **kwargs: Any) -> hc.Endpoint: raise NotImplementedError
    def not_leader(self, partition: object, hint: object) -> None: raise NotImplementedError
    def start_concurrently(self, n: int) -> None: raise NotImplementedError
    def background(self, call: Callable[[], Any]) -> concurrent.futures.Future[Any]: raise NotImplementedError
    def refreshers(self) -> int: raise NotImplementedError
    def refreshing_subscriber(self, when: Callable[[hc.EndpointSet], bool], log: list[Any]) -> Callable[..., Any]:
        raise NotImplementedError
    def events_idle(self) -> bool: raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------
    def pick(self, *args: Any, **kwargs: Any) -> hc.Endpoint:
        return self.svc.pick(*args, **kwargs)

    def settle(self) -> None:
        """Wait until nothing is due at the current fake time and events are delivered."""
        core = self.svc.core
        wait_until(
            lambda: not core.resolving and not core.due(self.clock()) and self.events_idle(),
            "the service to settle",
        )

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.settle()


class SyncTwin(Twin):
    flavour = "sync"

    def make(self, resolver: Any = None) -> None:
        self.svc = hc.HeadlessService(
            "web.prod", "http", resolver=resolver or self.table, clock=self.clock, **self.options
        )

    def start(self) -> None:
        self.svc.start()

    def close(self) -> None:
        self.svc.close()

    def refresh(self) -> hc.EndpointSet:
        return self.svc.refresh()

    def wait_for(self, n: int, timeout: float | None = None) -> hc.EndpointSet:
        return self.svc.wait_for(n, timeout=timeout)

    def connect(self, **kwargs: Any) -> hc.Endpoint:
        with self.svc.connection(**kwargs) as sock:
            host, port = sock.getpeername()[:2]
        return next(ep for ep in self.svc.endpoints if ep.port == port and ep.address == host)

    def not_leader(self, partition: object, hint: object) -> None:
        self.svc.not_leader(partition, hint)

    def start_concurrently(self, n: int) -> None:
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            for future in [pool.submit(self.svc.start) for _ in range(n)]:
                future.result(DEADLINE)

    def background(self, call: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        pool = concurrent.futures.ThreadPoolExecutor(1)
        future = pool.submit(call)
        pool.shutdown(wait=False)
        return future

    def refreshers(self) -> int:
        return int(self.svc.refreshing)

    def refreshing_subscriber(self, when: Callable[[hc.EndpointSet], bool], log: list[Any]) -> Callable[..., Any]:
        def callback(old: hc.EndpointSet, new: hc.EndpointSet) -> None:
            log.append((len(old), len(new)))
            if when(new):
                log.append(("refreshed", len(self.svc.refresh())))

        return callback

    def events_idle(self) -> bool:
        from headless_client.refresher import dispatcher

        return dispatcher().wait_idle(0)


class AsyncTwin(Twin):
    flavour = "async"

    def __init__(self, clock: FakeClock, table: StaticResolver, **options: Any) -> None:
        super().__init__(clock, table, **options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="twin-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(DEADLINE)  # type: ignore[arg-type]

    def make(self, resolver: Any = None) -> None:
        async def build() -> Any:
            return hc.AsyncHeadlessService(
                "web.prod", "http", resolver=resolver or self.table.as_async(), clock=self.clock, **self.options
            )

        self.svc = self.run(build())

    def start(self) -> None:
        self.run(self.svc.start())

    def close(self) -> None:
        self.run(self.svc.close())

    def refresh(self) -> hc.EndpointSet:
        return self.run(self.svc.refresh())

    def wait_for(self, n: int, timeout: float | None = None) -> hc.EndpointSet:
        return self.run(self.svc.wait_for(n, timeout=timeout))

    def connect(self, **kwargs: Any) -> hc.Endpoint:
        async def go() -> hc.Endpoint:
            async with self.svc.connection(**kwargs) as (_, writer):
                host, port = writer.get_extra_info("peername")[:2]
            return next(ep for ep in self.svc.endpoints if ep.port == port and ep.address == host)

        return self.run(go())

    def not_leader(self, partition: object, hint: object) -> None:
        self.run(self.svc.not_leader(partition, hint))

    def start_concurrently(self, n: int) -> None:
        async def go() -> None:
            await asyncio.gather(*(self.svc.start() for _ in range(n)))

        self.run(go())

    def background(self, call: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        async def go() -> Any:
            return await call()

        return asyncio.run_coroutine_threadsafe(go(), self.loop)

    def refreshers(self) -> int:
        async def count() -> int:
            return sum(1 for t in asyncio.all_tasks() if t.get_name() == f"headless-client-refresh[{NAME}]")

        return self.run(count())

    def refreshing_subscriber(self, when: Callable[[hc.EndpointSet], bool], log: list[Any]) -> Callable[..., Any]:
        async def callback(old: hc.EndpointSet, new: hc.EndpointSet) -> None:
            log.append((len(old), len(new)))
            if when(new):
                log.append(("refreshed", len(await self.svc.refresh())))

        return callback

    def events_idle(self) -> bool:
        return True  # delivered on the refresher task before it reports idle

    def stop(self) -> None:
        async def drain() -> None:
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()

        self.run(drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(DEADLINE)
        self.loop.close()


@contextlib.contextmanager
def twin_of(kind: str, clock: FakeClock, table: Any, **options: Any) -> Iterator[Twin]:
    """A SyncTwin (*kind* "sync") or AsyncTwin of *table* on *clock*, closed (and its loop
    stopped) after the block."""
    made = (SyncTwin if kind == "sync" else AsyncTwin)(clock, table, **options)
    try:
        yield made
    finally:
        if made.svc is not None:
            made.close()
        if isinstance(made, AsyncTwin):
            made.stop()


@pytest.fixture(params=["sync", "async"])
def twin(request: pytest.FixtureRequest) -> Iterator[Twin]:
    clock = FakeClock()
    table = StaticResolver({"web.prod": pods(0, 1, 2)}, namespace="prod")
    with twin_of(request.param, clock, table, min_refresh=1, max_refresh=5, empty_grace=3) as made:
        yield made


# -- start and close -----------------------------------------------------------------------------


def test_concurrent_starts_leave_one_refresher(twin: Twin) -> None:
    """Four start() calls at once resolve once and leave exactly one refresher."""
    twin.make()
    before = len(twin.table.calls)
    twin.start_concurrently(4)
    assert twin.refreshers() == 1
    assert len(twin.table.calls) == before + 1
    assert len(twin.svc.endpoints) == 3


def test_close_while_start_resolves(twin: Twin) -> None:
    """close() during the first resolution: start() returns, nothing keeps refreshing."""
    gate = Gate()
    resolver: Any = GatedResolver({"web.prod": pods(0, 1)}, namespace="prod")
    if twin.flavour == "async":
        resolver = AsyncGatedResolver({"web.prod": pods(0, 1)}, namespace="prod")
    resolver.gate = gate
    twin.make(resolver)
    started = twin.background(twin.svc.start)
    assert gate.entered.wait(DEADLINE)
    twin.close()
    gate.opened.set()
    started.result(DEADLINE)
    assert twin.svc.closed
    assert twin.refreshers() == 0
    with pytest.raises(hc.ServiceClosed):
        twin.start()


def test_pick_before_start_says_not_started(twin: Twin) -> None:
    """A pick on a service never started names the problem instead of "empty"."""
    twin.make()
    with pytest.raises(hc.ServiceNotStarted, match="not started"):
        twin.pick()


# -- refresh ----------------------------------------------------------------------------------------


def test_schedule_follows_the_fake_clock(twin: Twin) -> None:
    """No refresh before min_refresh of fake time; one after max_refresh; none in between
    real time matters."""
    twin.make()
    twin.start()
    calls = len(twin.table.calls)
    twin.advance(0.5)
    assert len(twin.table.calls) == calls
    twin.table.add("web.prod", pods(3)[0])
    twin.advance(5)
    assert len(twin.table.calls) == calls + 1
    assert len(twin.svc.endpoints) == 4


def test_refresh_from_a_subscriber_callback(twin: Twin) -> None:
    """A callback that refreshes gets the new view, and every event arrives in order."""
    twin.make()
    twin.start()
    log: list[Any] = []
    twin.svc.subscribe(twin.refreshing_subscriber(lambda new: len(new) == 4, log))
    twin.table.set("web.prod", pods(0, 1, 2, 3))

    def refresh_then_grow() -> None:
        twin.refresh()

    refresh_then_grow()
    wait_until(lambda: ("refreshed", 4) in log, "the callback's refresh")
    twin.table.set("web.prod", pods(0, 1, 2, 3, 4))
    twin.refresh()
    wait_until(lambda: (4, 5) in log, "the next event")
    assert log == [(3, 4), ("refreshed", 4), (4, 5)]


def test_empty_grace_keeps_the_view_then_confirms(twin: Twin) -> None:
    """NXDOMAIN keeps the last good view through the grace (asking again at least every
    max_refresh), then empties it."""
    twin.make()
    twin.start()
    twin.table.delete("web.prod")
    twin.advance(5)
    assert len(twin.svc.endpoints) == 3
    calls = len(twin.table.calls)
    twin.advance(5)  # past the 3 s grace, confirmed by a later answer
    assert len(twin.table.calls) > calls
    assert len(twin.svc.endpoints) == 0


def test_empty_grace_recheck_is_capped_by_max_refresh() -> None:
    """With a grace longer than max_refresh, pods that replaced the old ones are seen at
    the next max_refresh, not at the end of the grace (both twins share this rule: it is
    the core's)."""
    clock = FakeClock()
    table = StaticResolver({"web.prod": pods(0, 1)}, namespace="prod")
    with hc.HeadlessService("web.prod", "http", resolver=table, clock=clock, min_refresh=0.1, max_refresh=0.2,
                            empty_grace=3) as svc:
        twin = SyncTwin(clock, table)
        twin.svc = svc
        table.delete("web.prod")
        twin.advance(0.2)
        table.set("web.prod", pods(2, 3))
        twin.advance(0.2)
        twin.advance(0.2)
        assert {ep.ordinal for ep in svc.endpoints} == {2, 3}


def test_dns_down_keeps_the_view_backs_off_and_recovers(twin: Twin) -> None:
    """Failures keep the last good view, are retried with growing back-off (capped at
    max_refresh), and the view updates at once when DNS is back."""
    twin.make()
    twin.start()
    twin.table.set_error("SERVFAIL from the test")
    calls = len(twin.table.calls)
    for _ in range(8):
        twin.advance(1)
    failed = len(twin.table.calls) - calls
    assert 2 <= failed <= 8
    assert len(twin.svc.endpoints) == 3
    assert isinstance(twin.svc.last_error, hc.ResolutionError)
    with pytest.raises(hc.ResolutionError, match="SERVFAIL"):
        twin.refresh()
    twin.table.set_error(None)
    twin.table.add("web.prod", pods(3)[0])
    twin.advance(5)
    assert len(twin.svc.endpoints) == 4
    assert twin.svc.last_error is None


def test_refresh_interrupted_by_close_raises_service_closed(twin: Twin) -> None:
    """A refresh waiting on a resolution in flight ends with ServiceClosed on both twins."""
    gate = Gate()
    resolver: Any = GatedResolver({"web.prod": pods(0, 1)}, namespace="prod")
    if twin.flavour == "async":
        resolver = AsyncGatedResolver({"web.prod": pods(0, 1)}, namespace="prod")
    twin.make(resolver)
    twin.start()
    resolver.gate = gate
    refreshing = twin.background(twin.svc.refresh)
    assert gate.entered.wait(DEADLINE)
    twin.close()
    with pytest.raises(hc.ServiceClosed):
        refreshing.result(DEADLINE)
    gate.opened.set()


# -- connect ----------------------------------------------------------------------------------------


@pytest.fixture
def refused_port() -> int:
    with socket.socket() as probe:  # a loopback port nobody listens on: refused at once
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connect_backoff_is_cut_short_by_close(twin: Twin, refused_port: int) -> None:
    """A pinned connect backing off on fake time stops at close() with ConnectAborted."""
    twin.table.set("web.prod", [hc.Endpoint("127.0.0.1", refused_port, hostname=f"web-0.{NAME}", ordinal=0)])
    twin.make()
    twin.start()
    failed = threading.Event()
    report = twin.svc.report_failure

    def report_failure(endpoint: hc.Endpoint) -> None:
        report(endpoint)
        failed.set()

    twin.svc.report_failure = report_failure  # the shells report dial failures through it
    connecting = twin.background(
        lambda: twin.svc.connect(ordinal=0, timeout=0.5, attempts=50, total_timeout=100)
    )
    assert failed.wait(DEADLINE), "the first dial did not fail"
    twin.close()
    with pytest.raises(hc.ConnectAborted, match="closed"):
        connecting.result(DEADLINE)


def test_connect_retries_other_pods(twin: Twin, refused_port: int) -> None:
    """An unpinned connect that is refused moves on to the next pod, and ejects the first."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        good = listener.getsockname()[1]
        twin.table.set("web.prod", [
            hc.Endpoint("127.0.0.1", refused_port, hostname=f"web-0.{NAME}", ordinal=0),
            hc.Endpoint("127.0.0.1", good, hostname=f"web-1.{NAME}", ordinal=1),
        ])
        twin.make()
        twin.start()
        seen = {twin.connect(attempts=2).ordinal for _ in range(4)}
    assert seen == {1}


# -- health and leaders -----------------------------------------------------------------------------


def test_ejection_and_return(twin: Twin) -> None:
    """A reported failure ejects the pod for base_ejection of fake time; then it is back."""
    twin.options["health"] = hc.HealthPolicy(base_ejection=2)
    twin.table.set("web.prod", pods(0, 1, 2, 3))
    twin.make()
    twin.start()
    victim = twin.svc.endpoint(ordinal=1)
    twin.svc.report_failure(victim)
    assert victim not in twin.svc.healthy_endpoints
    assert all(twin.pick() != victim for _ in range(12))
    twin.advance(2.5)
    assert victim in twin.svc.healthy_endpoints
    assert victim in {twin.pick() for _ in range(12)}


def test_leader_change(twin: Twin) -> None:
    """not_leader with a hint moves the partition at once; a hint naming a pod the view
    lacks refreshes DNS, which then finds it."""
    leaders = {0: 0, 1: 1}
    twin.options["strategy"] = hc.PartitionLeader(lambda: dict(leaders), min_reread_interval=0)
    twin.make()
    twin.start()
    assert twin.pick(partition=1).ordinal == 1
    twin.not_leader(1, 2)
    assert twin.pick(partition=1).ordinal == 2
    assert twin.pick(any_pod=True).ordinal in (0, 1, 2)
    twin.table.add("web.prod", pods(7)[0])
    calls = len(twin.table.calls)
    twin.not_leader(0, 7)
    assert len(twin.table.calls) > calls
    assert twin.pick(partition=0).ordinal == 7


def test_a_permanent_error_at_start_is_raised_not_retried(twin: Twin) -> None:
    """A ClusterIP Service (NotHeadless) is a configuration error: start() raises it, and
    nothing keeps refreshing; a transient failure at start is retried in the background."""
    twin.table.set_error(hc.NotHeadless(f"{NAME} is a ClusterIP Service", NAME))
    twin.make()
    with pytest.raises(hc.NotHeadless, match="ClusterIP"):
        twin.start()
    assert twin.refreshers() == 0
    assert twin.svc.core.phase == "new"
    twin.table.set_error("SERVFAIL")  # transient: start returns, the refresher retries
    twin.start()
    assert twin.refreshers() == 1
    twin.table.set_error(None)
    twin.advance(5)
    assert len(twin.svc.endpoints) == 3
