"""headless_client.registry and its asyncio twin: one client per pod, balanced per call."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from headless_client import (
    AsyncHeadlessService,
    Endpoint,
    HeadlessService,
    InvalidArgument,
    InvalidName,
    LeastLoaded,
    NoEndpointsAvailable,
    Request,
    RoundRobin,
    ServiceClosed,
)
from headless_client.aio.registry import AsyncClientRegistry
from headless_client.registry import ClientRegistry
from headless_client.registry_core import failure_predicate
from headless_client.testing import FakeClusterDNS, StaticResolver, statefulset_endpoints
from tests.aio_support import run_strict

FAST = {"min_refresh": 0.05, "max_refresh": 0.2, "empty_grace": 0.0}
ADDRESSES = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


class Client:
    """A stand-in per-pod client that records its life."""

    def __init__(self, endpoint: Endpoint, log: Clients) -> None:
        self.endpoint = endpoint
        self.closed = False
        self._log = log

    def close(self) -> None:
        assert not self.closed, f"{self.endpoint} closed twice"
        self.closed = True
        with self._log.cv:
            self._log.closed.append(self)
            self._log.cv.notify_all()


class Clients:
    """The factory: builds Clients, remembers them, lets tests wait for closes."""

    def __init__(self) -> None:
        self.cv = threading.Condition()
        self.built: list[Client] = []
        self.closed: list[Client] = []

    def __call__(self, endpoint: Endpoint) -> Client:
        client = Client(endpoint, self)
        with self.cv:
            self.built.append(client)
        return client

    def wait_closed(self, count: int, timeout: float = 5.0) -> None:
        with self.cv:
            assert self.cv.wait_for(lambda: len(self.closed) >= count, timeout), (
                f"{len(self.closed)} closed, {count} expected"
            )


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until *check()* holds (bounded), polling a condition the library updates."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        pause.wait(0.01)


def static(n: int = 3, strategy: object = None) -> tuple[StaticResolver, HeadlessService]:
    resolver = StaticResolver({"web.prod": statefulset_endpoints("web", "prod", ADDRESSES[:n], port=9000)})
    svc = HeadlessService("web.prod", port="http", resolver=resolver, strategy=strategy or RoundRobin(), **FAST)
    return resolver, svc


@pytest.fixture
def service() -> Iterator[tuple[StaticResolver, HeadlessService]]:
    resolver, svc = static()
    with svc:
        yield resolver, svc


# --------------------------------------------------------------------------------------------
# Building and picking
# --------------------------------------------------------------------------------------------


def test_one_client_per_pod_built_when_the_registry_starts(service) -> None:
    """Eager: every pod in the view has its client before any call; calls reuse them."""
    _, svc = service
    factory = Clients()
    with ClientRegistry(svc, factory) as registry:
        assert sorted(c.endpoint.address for c in factory.built) == ADDRESSES
        seen = []
        for _ in range(6):
            with registry.client() as (endpoint, client):
                assert client.endpoint == endpoint
                seen.append(client)
        assert len(factory.built) == 3
        assert [c.endpoint.address for c in seen] == ADDRESSES * 2  # round-robin
    factory.wait_closed(3)


def test_lazy_registry_builds_at_the_first_call(service) -> None:
    """eager=False: nothing is built until a call needs the pod."""
    _, svc = service
    factory = Clients()
    with ClientRegistry(svc, factory, eager=False) as registry:
        assert factory.built == []
        with registry.client(ordinal=1) as (endpoint, client):
            assert endpoint.ordinal == 1 and client.endpoint is endpoint
        assert [c.endpoint.ordinal for c in factory.built] == [1]
        assert list(registry.clients()) == [endpoint]


def test_request_fields_and_whole_requests_pick_alike(service) -> None:
    """key=/ordinal= fields and a Request give the same pod; both at once is an error."""
    _, svc = service
    with ClientRegistry(svc, Clients()) as registry:
        with registry.client(Request(ordinal=2)) as (a, _):
            pass
        with registry.client(ordinal=2) as (b, _):
            pass
        assert a == b and a.ordinal == 2
        with pytest.raises(InvalidName), registry.client(Request(ordinal=1), ordinal=1):
            pass
        with pytest.raises(InvalidArgument), registry.client("not a request"):  # type: ignore[arg-type]
            pass


def test_concurrent_first_calls_build_one_client_per_pod(service) -> None:
    """Eight threads racing on a lazy registry build each pod's client exactly once."""
    _, svc = service
    factory = Clients()
    errors: list[BaseException] = []
    with ClientRegistry(svc, factory, eager=False) as registry:
        barrier = threading.Barrier(8)

        def worker() -> None:
            try:
                barrier.wait(5)
                for _ in range(50):
                    with registry.client():
                        pass
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert not errors
        assert len(factory.built) == 3
        assert len({c.endpoint for c in factory.built}) == 3


# --------------------------------------------------------------------------------------------
# Pods leaving, moving, draining
# --------------------------------------------------------------------------------------------


def test_a_departed_pods_idle_client_is_closed(service) -> None:
    """Scaling down closes the removed pod's client at once when no call uses it."""
    resolver, svc = service
    factory = Clients()
    with ClientRegistry(svc, factory) as registry:
        resolver.remove("web.prod", "10.0.0.3")
        svc.refresh()
        factory.wait_closed(1)
        assert factory.closed[0].endpoint.address == "10.0.0.3"
        assert sorted(ep.address for ep in registry.clients()) == ADDRESSES[:2]


def test_a_new_pod_gets_its_client_when_it_appears(service) -> None:
    """Scaling up builds the new pod's client from the change event, before any call."""
    resolver, svc = service
    factory = Clients()
    with ClientRegistry(svc, factory) as registry:
        resolver.add("web.prod", *statefulset_endpoints("web", "prod", ["10.0.0.4"], port=9000, start=3))
        svc.refresh()
        eventually(lambda: len(registry.clients()) == 4)
        assert factory.built[-1].endpoint.ordinal == 3


def test_a_client_in_use_is_closed_when_its_call_ends(service) -> None:
    """A departed pod's client stays open for the call using it, and closes at its end."""
    resolver, svc = service
    factory = Clients()
    with ClientRegistry(svc, factory) as registry:
        lease = registry.acquire(ordinal=2)
        resolver.remove("web.prod", "10.0.0.3")
        svc.refresh()
        eventually(lambda: registry.draining == 1)
        assert not lease.client.closed
        assert lease.endpoint not in registry.clients()
        lease.success()
        factory.wait_closed(1)
        assert lease.client.closed and registry.draining == 0
        lease.success()  # a second outcome is ignored


def test_the_grace_period_bounds_draining(service) -> None:
    """A call still using a departed pod's client after the grace period loses it."""
    resolver, svc = service
    factory = Clients()
    with ClientRegistry(svc, factory, grace=0.05) as registry:
        lease = registry.acquire(ordinal=2)
        resolver.remove("web.prod", "10.0.0.3")
        svc.refresh()
        factory.wait_closed(1)
        assert lease.client.closed and registry.draining == 0
        lease.neutral()  # releasing afterwards closes nothing twice
    assert len(factory.closed) == 3


def test_a_pod_that_moves_gets_a_new_client() -> None:
    """A pod re-created at a new address (same name) is a new client; the old one closes."""
    with FakeClusterDNS() as cluster:
        cluster.add_statefulset("web", "prod", 2)
        with HeadlessService("web.prod", port="http", resolver=cluster.resolver(), **FAST) as svc:
            factory = Clients()
            with ClientRegistry(svc, factory) as registry:
                old = svc.endpoint(1)
                cluster.reip_pod("web", "prod", 1)
                factory.wait_closed(1)
                assert factory.closed[0].endpoint == old
                eventually(lambda: len(registry.clients()) == 2)
                new = svc.endpoint(1)
                assert new.address != old.address and new in registry.clients()


def test_a_pick_racing_a_departure_uses_a_one_off_client(service) -> None:
    """A lease on a pod that already left (a pick from the old view) gets a client that
    is closed when the call ends, and never stored."""
    resolver, svc = service
    factory = Clients()
    with ClientRegistry(svc, factory, eager=False) as registry:
        gone = svc.endpoint(2)
        resolver.remove("web.prod", "10.0.0.3")
        svc.refresh()
        eventually(lambda: gone not in svc.endpoints)
        with registry.client(ordinal=0):  # the registry has seen the change once a call ran
            pass
        eventually(lambda: not registry._core.in_view(gone))
        lease = registry.lease(gone)
        assert gone not in registry.clients()
        lease.success()
        factory.wait_closed(1)
        assert factory.closed[0].endpoint == gone


# --------------------------------------------------------------------------------------------
# Health and load
# --------------------------------------------------------------------------------------------


def test_failures_eject_the_pod_and_other_errors_do_not(service) -> None:
    """An exception in ``failures`` ejects the pod; an application error does not."""
    _, svc = service
    with ClientRegistry(svc, Clients(), failures=ConnectionError) as registry:
        with pytest.raises(ValueError), registry.client(ordinal=0):
            raise ValueError("an application error")
        assert len(svc.healthy_endpoints) == 3
        with pytest.raises(ConnectionRefusedError), registry.client(ordinal=1):
            raise ConnectionRefusedError("pod down")
        assert [ep.ordinal for ep in svc.healthy_endpoints] == [0, 2]


def test_calls_in_flight_steer_least_loaded() -> None:
    """LeastLoaded sees the registry's calls in flight until each ends."""
    _, svc = static(n=2, strategy=LeastLoaded())
    with svc, ClientRegistry(svc, Clients()) as registry:
        for _ in range(5):  # with two pods, both are the candidates: the idle one wins
            first = registry.acquire()
            with registry.client() as (endpoint, _):
                assert endpoint != first.endpoint
            first.success()
        held = [registry.acquire(), registry.acquire()]
        assert {lease.endpoint for lease in held} == set(svc.endpoints)
        held[0].success()
        with registry.client() as (endpoint, _):
            assert endpoint == held[0].endpoint  # the only idle pod
        held[1].success()


def test_call_retries_failures_on_other_pods(service) -> None:
    """call() retries a failure on another pod, at most ``retries`` times; pinned calls
    and non-failures are not retried."""
    _, svc = service
    with ClientRegistry(svc, Clients(), failures=ConnectionError) as registry:
        tried: list[int] = []

        def flaky(client: Client) -> str:
            tried.append(client.endpoint.ordinal)
            if len(tried) < 3:
                raise ConnectionResetError("broken")
            return "ok"

        assert registry.call(flaky, retries=2) == "ok"
        assert len(set(tried)) == 3

        for ep in svc.endpoints:
            svc.report_success(ep)
        tried.clear()
        with pytest.raises(ConnectionResetError):
            registry.call(flaky, ordinal=1, retries=2)
        assert tried == [1]

        tried.clear()
        with pytest.raises(ConnectionResetError):
            registry.call(flaky, retries=1)
        assert len(tried) == 2

        def bad(client: Client) -> str:
            tried.append(client.endpoint.ordinal)
            raise KeyError("app")

        tried.clear()
        with pytest.raises(KeyError):
            registry.call(bad, retries=2)
        assert len(tried) == 1
        with pytest.raises(InvalidName):
            registry.call(bad, retries=-1)


def test_call_stops_when_every_pod_was_tried() -> None:
    """With more retries than pods, the last failure is raised once all were tried."""
    _, svc = static(n=2)
    with svc, ClientRegistry(svc, Clients()) as registry:
        tried: list[int] = []

        def down(client: Client) -> None:
            tried.append(client.endpoint.ordinal)
            raise ConnectionRefusedError(f"pod {client.endpoint.ordinal}")

        with pytest.raises(ConnectionRefusedError):
            registry.call(down, retries=5)
        assert sorted(tried) == [0, 1]


# --------------------------------------------------------------------------------------------
# Closing, errors, arguments
# --------------------------------------------------------------------------------------------


def test_closing_closes_every_client_and_refuses_calls(service) -> None:
    """close() closes live and draining clients once; calls afterwards raise ServiceClosed."""
    resolver, svc = service
    factory = Clients()
    registry = ClientRegistry(svc, factory)
    lease = registry.acquire(ordinal=2)
    resolver.remove("web.prod", "10.0.0.3")
    svc.refresh()
    eventually(lambda: registry.draining == 1)
    registry.close()
    registry.close()
    assert len(factory.closed) == 3 and all(c.closed for c in factory.built)
    lease.success()  # nothing closed twice (Client.close asserts)
    with pytest.raises(ServiceClosed, match="web.prod.svc.cluster.local"):
        registry.acquire()
    assert "closed" in repr(registry)
    assert not svc.closed  # the service is the caller's


def test_a_failing_factory_fails_the_call_and_eager_builds_log(service, caplog) -> None:
    """A factory error fails that call; an eager build's error is logged, not fatal."""
    _, svc = service
    calls = {"n": 0}

    def factory(endpoint: Endpoint) -> Client:
        calls["n"] += 1
        if calls["n"] <= 4:
            raise RuntimeError(f"cannot build {endpoint.address}")
        return Client(endpoint, Clients())

    with caplog.at_level(logging.ERROR, "headless_client.registry"):
        registry = ClientRegistry(svc, factory)
    assert len(caplog.records) == 3 and registry.clients() == {}
    with pytest.raises(RuntimeError, match="cannot build"), registry.client():
        pass
    with registry, registry.client() as (endpoint, client):
        assert client.endpoint == endpoint


def test_a_closer_that_raises_is_logged(service, caplog) -> None:
    """An exception from the closer is logged and closing goes on."""
    _, svc = service

    def close(client: Client) -> None:
        raise OSError("already gone")

    with caplog.at_level(logging.ERROR, "headless_client.registry"):
        ClientRegistry(svc, Clients(), close=close).close()
    assert len(caplog.records) == 3


def test_an_empty_service_raises_the_librarys_error() -> None:
    """With no pod, acquiring raises NoEndpointsAvailable naming the service."""
    resolver = StaticResolver({})
    with HeadlessService("web.prod", port="http", resolver=resolver, **FAST) as svc, \
            ClientRegistry(svc, Clients()) as registry, pytest.raises(NoEndpointsAvailable):
        registry.acquire()


def test_arguments_are_checked(service) -> None:
    """Bad arguments raise the library's documented errors, naming the value."""
    _, svc = service
    with pytest.raises(InvalidArgument, match="service must be a HeadlessService"):
        ClientRegistry("web.prod", Clients())
    with pytest.raises(InvalidArgument, match="factory"):
        ClientRegistry(svc, 42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="close"):
        ClientRegistry(svc, Clients(), close="x")  # type: ignore[arg-type]
    for grace in (-1, float("inf"), "1", True):
        with pytest.raises(InvalidName, match="grace"):
            ClientRegistry(svc, Clients(), grace=grace)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="failures"):
        ClientRegistry(svc, Clients(), failures=(ValueError, 3))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="failures"):
        failure_predicate("x")
    assert failure_predicate(lambda e: True)(ValueError())
    assert failure_predicate(OSError)(ConnectionError()) and not failure_predicate(OSError)(ValueError())


def test_a_registry_on_an_unstarted_service_follows_its_start() -> None:
    """Created before the service starts, the registry builds clients once it resolves."""
    _, svc = static()
    factory = Clients()
    with ClientRegistry(svc, factory) as registry:
        assert registry.clients() == {}
        with svc:
            eventually(lambda: len(registry.clients()) == 3)


# --------------------------------------------------------------------------------------------
# asyncio
# --------------------------------------------------------------------------------------------


class AsyncClient:
    def __init__(self, endpoint: Endpoint, log: list[AsyncClient]) -> None:
        self.endpoint = endpoint
        self.closed = False
        self._log = log

    async def aclose(self) -> None:
        assert not self.closed
        self.closed = True
        self._log.append(self)


async def wait_async(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_async_registry_builds_balances_drains_and_closes() -> None:
    """The twin: async factory and closer, eager builds, round-robin, drain, aclose."""
    resolver = StaticResolver({"web.prod": statefulset_endpoints("web", "prod", ADDRESSES, port=9000)})
    closed: list[AsyncClient] = []
    built: list[AsyncClient] = []

    async def factory(endpoint: Endpoint) -> AsyncClient:
        client = AsyncClient(endpoint, closed)
        built.append(client)
        return client

    async def main() -> None:
        async with AsyncHeadlessService("web.prod", port="http", resolver=resolver.as_async(),
                                        **FAST) as svc:
            async with AsyncClientRegistry(svc, factory, failures=ConnectionError) as registry:
                assert len(built) == 3
                seen = []
                for _ in range(3):
                    async with registry.client() as (endpoint, client):
                        seen.append(endpoint.address)
                        assert client.endpoint == endpoint
                assert seen == ADDRESSES

                lease = await registry.acquire(ordinal=2)
                resolver.remove("web.prod", "10.0.0.3")
                await svc.refresh()
                await wait_async(lambda: registry.draining == 1)
                assert not lease.client.closed
                lease.success()
                await wait_async(lambda: lease.client.closed)

                with pytest.raises(ConnectionResetError):
                    async with registry.client(ordinal=0):
                        raise ConnectionResetError("down")
                assert [ep.ordinal for ep in svc.healthy_endpoints] == [1]

                async def flaky(client: AsyncClient) -> int:
                    if client.endpoint.ordinal == 1:
                        raise ConnectionRefusedError("down")
                    return client.endpoint.ordinal or 0

                for ep in svc.endpoints:
                    svc.report_success(ep)
                assert await registry.call(flaky, retries=1, key=None) in (0,)
            assert all(c.closed for c in built)
            with pytest.raises(ServiceClosed):
                await registry.acquire()

    run_strict(main)


def test_async_registry_grace_and_sync_factory() -> None:
    """A sync factory and closer work too; a call outliving the grace loses its client."""
    resolver = StaticResolver({"web.prod": statefulset_endpoints("web", "prod", ADDRESSES, port=9000)})
    factory = Clients()

    async def main() -> None:
        async with AsyncHeadlessService("web.prod", port="http", resolver=resolver.as_async(),
                                        **FAST) as svc:
            registry = AsyncClientRegistry(svc, factory, grace=0.05, eager=False)
            with pytest.raises(InvalidArgument):
                AsyncClientRegistry(object(), factory)
            async with registry:
                lease = await registry.acquire(ordinal=2)
                resolver.remove("web.prod", "10.0.0.3")
                await svc.refresh()
                await wait_async(lambda: lease.client.closed)
                lease.neutral()
                assert "AsyncClientRegistry" in repr(registry)
            assert len(factory.closed) == 1  # lazy: only the used pod had a client
            await registry.close()  # the twins' spelling; harmless after aclose()

    run_strict(main)


def test_a_forked_child_can_use_a_registry_whose_lock_was_held(service) -> None:
    """Forked while another thread holds the registry's lock, the child still builds and
    releases clients (it got a fresh lock)."""
    import os

    _, svc = service
    registry = ClientRegistry(svc, Clients(), eager=False)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with registry._core._lock:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only if the registry works
        code = 1
        try:
            with registry.client(ordinal=1) as (endpoint, _):
                code = 0 if endpoint.ordinal == 1 else 3
        finally:
            os._exit(code)
    release.set()
    holder.join(5)
    deadline = time.monotonic() + 10
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:  # pragma: no cover - a deadlocked child
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child hung on the registry's lock")
        threading.Event().wait(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
    registry.close()
