"""transport.py and aio/transport.py: the drivers move bytes for the exchange, against a
small static DNS server on loopback (no BIND): results, interrupts, cancellation, the
Multiplexer's controls and its descriptor accounting."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

import headless_client as hc
from headless_client.aio.transport import run_lookup as run_lookup_async
from headless_client.exchange import ExchangeConfig, Lookup
from headless_client.interrupt import Interrupt
from headless_client.lookup import plan_addresses
from headless_client.transport import Multiplexer, run_lookup
from headless_client.wire import Nameserver
from tests.fakezone import FakeZone, statefulset
from tests.faults.scenario import own_socket_count
from tests.faults.upstream import StaticServer

ADDRESSES = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
BIG = [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(300)]


@pytest.fixture(scope="module", name="server")
def _server():
    records = statefulset("web", "prod", ADDRESSES)
    records.update(statefulset("big", "prod", BIG))
    with StaticServer(FakeZone(records, ttl=1)) as server:
        yield server


@pytest.fixture(name="silent")
def _silent():
    """A UDP port that swallows every query (bound, never read)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def resolver(address, timeout=10.0):
    return hc.Resolver([address if isinstance(address, str) else f"{address[0]}:{address[1]}"], timeout=timeout)


def test_run_lookup_sync_and_async_give_the_same_sets(server):
    """Both drivers run the same lookups to the same results (UDP, and TCP for 600 A/AAAA)."""
    r = resolver(server.address)
    for name, port in (("web.prod", 80), ("web.prod", "http"), ("big.prod", 80), ("big.prod", "http")):
        sync = run_lookup(r.service_lookup(name, port))
        aio = asyncio.run(run_lookup_async(r.service_lookup(name, port)))
        assert sync == aio and len(sync) in (3, 300)


def test_a_bare_plan_runs_with_an_explicit_config(server):
    """A Lookup is any plan with a config: the drivers need nothing from the resolver."""
    config = ExchangeConfig((Nameserver(*server.address),), 2.0)
    plan = plan_addresses("web.prod.svc.cluster.local", 80, hc.Resolver(["127.0.0.1"])._options())
    got = run_lookup(Lookup(plan, config, "web"))
    assert sorted(e.address for e in got) == ADDRESSES


def test_an_interrupt_ends_a_blocked_lookup(silent):
    """Set from another thread, the interrupt ends run_lookup at once with 'interrupted'."""
    r = resolver(silent, timeout=5.0)
    before = own_socket_count()
    interrupt = Interrupt()
    errors = []
    started = threading.Event()

    def call():
        started.set()
        try:
            run_lookup(r.service_lookup("web.prod", 80), interrupt=interrupt)
        except hc.ResolutionError as exc:
            errors.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    started.wait(2)
    interrupt.set()
    worker.join(3)
    interrupt.close()
    assert not worker.is_alive()
    assert "interrupted" in str(errors[0]) and "web.prod" in str(errors[0])
    assert own_socket_count() == before


def test_cancelling_the_async_lookup_closes_its_sockets(silent):
    """A cancelled run_lookup (a service closing) leaves no transport behind."""

    async def main():
        task = asyncio.ensure_future(run_lookup_async(resolver(silent, 5.0).service_lookup("web.prod", 80)))
        for _ in range(20):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(5):
            await asyncio.sleep(0)

    before = own_socket_count()
    asyncio.run(main())
    assert own_socket_count() == before


def test_the_asyncio_driver_times_out_like_the_sync_one(silent):
    """A silent server: both drivers give up with 'did not answer' within the budget."""
    r = resolver(silent, timeout=0.3)
    with pytest.raises(hc.ResolutionError, match="did not answer"):
        run_lookup(r.service_lookup("web.prod", 80))
    with pytest.raises(hc.ResolutionError, match="did not answer"):
        asyncio.run(run_lookup_async(r.service_lookup("web.prod", 80)))


def test_multiplexer_runs_lookups_and_calls_back_from_poll(server):
    """Results come through done(); nothing is called back from submit() itself."""
    r = resolver(server.address)
    results = []
    with Multiplexer() as mux:
        assert mux.next_deadline() is None
        mux.submit(r.service_lookup("web.prod", 80), lambda v, e: results.append((v, e)))
        mux.submit(r.service_lookup("nope.prod", 80), lambda v, e: results.append((v, e)))
        assert results == []
        deadline = time.monotonic() + 5
        while len(results) < 2 and time.monotonic() < deadline:
            mux.poll(0.5)
    found = {type(e).__name__ if e else len(v) for v, e in results}
    assert found == {3, "ServiceNotFound"}


def test_multiplexer_wake_from_another_thread_ends_a_blocked_poll():
    with Multiplexer() as mux:
        waker = threading.Timer(0.05, mux.wake)
        waker.start()
        start = time.monotonic()
        mux.poll(10)
        waker.join()
        assert time.monotonic() - start < 5


def test_multiplexer_reset_after_fork_drops_jobs_and_renews_its_descriptors(silent):
    """In-process stand-in for the child's side: the lookups' sockets are closed, nothing
    is called back, and the wake-up pair and selector are new."""
    r = resolver(silent, timeout=5.0)
    before = own_socket_count()
    calls = []
    mux = Multiplexer()
    baseline = mux.descriptor_count()
    old_wake = mux._wake_r.fileno()
    for _ in range(3):
        mux.submit(r.service_lookup("web.prod", 80), lambda v, e: calls.append(e))
    assert mux.descriptor_count() == baseline + 3
    mux.reset_after_fork()
    assert mux.descriptor_count() == baseline and mux.next_deadline() is None
    mux.wake()
    mux.poll(1)
    assert calls == []
    assert mux._wake_r.fileno() != -1 and old_wake != -1
    mux.close()
    mux.close()
    assert own_socket_count() == before


def test_multiplexer_refuses_work_after_close(server):
    mux = Multiplexer()
    mux.close()
    with pytest.raises(hc.HeadlessClientError, match="closed"):
        mux.submit(resolver(server.address).service_lookup("web.prod", 80), lambda v, e: None)
    with pytest.raises(hc.HeadlessClientError, match="closed"):
        mux.poll(0)


def test_a_plan_error_reaches_done_not_poll(server):
    """An error raised by a plan goes to its callback; poll() itself does not raise."""
    r = resolver(server.address)
    got = []
    with Multiplexer() as mux:
        mux.submit(r.service_lookup("web.prod", "http", protocol="sctp"), lambda v, e: got.append(e))
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            mux.poll(0.5)
    assert isinstance(got[0], hc.ServiceNotFound)
