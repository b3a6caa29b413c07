"""The asyncio twins against BIND9 and loopback pods: the same scenarios as the sync ones.

Every coroutine runs under asyncio debug mode with a slow-callback threshold (see
tests/aio_support.py): a blocking call on the loop fails the test.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
import threading
import time

import pytest

import headless_client as hc
from tests.aio_support import run_strict
from tests.integration.dnsground import GROUND
from tests.integration.test_resolver import silent_server

pytestmark = pytest.mark.integration

CASES = [
    ("web.prod", 8080), ("web.prod", "http"), ("web-peers.prod", "http"), ("dual.prod", 80),
    ("dual.prod", "http"), ("v6only.prod", 80), ("shifted.prod", "http"), ("evil.prod", "http"),
    ("alias.prod", 80),
]


@pytest.fixture(name="resolvers")
def _resolvers(bind):
    return hc.Resolver([bind.nameserver], timeout=3), hc.AsyncResolver([bind.nameserver], timeout=3)


@pytest.mark.parametrize(("name", "port"), CASES)
def test_resolver_parity(resolvers, name, port):
    """AsyncResolver gives exactly what Resolver gives."""
    sync, aio = resolvers
    expected = sync.resolve(name, port)
    assert len(expected) > 0
    assert run_strict(lambda: aio.resolve(name, port)) == expected


@pytest.mark.parametrize("port", [8080, "http"])
def test_thousand_pods_async(resolvers, port):
    """1000 pods by A (TC then TCP) and by SRV (batched address lookups) in asyncio."""
    sync, aio = resolvers
    # CPU-heavy parsing of 1000 records runs on the loop: a looser slow-callback bound.
    result = run_strict(lambda: aio.resolve("big.prod", port), slow_callback=1.0)
    assert len(result) == 1000
    assert result == sync.resolve("big.prod", port)


def test_async_errors(resolvers):
    """The same errors as the sync resolver: NXDOMAIN, CNAME out of cluster, bad input."""
    _, aio = resolvers
    with pytest.raises(hc.ServiceNotFound, match="empty"):
        run_strict(lambda: aio.resolve("empty.prod", "http"))
    with pytest.raises(hc.ResolutionError, match=r"db\.example\.com"):
        run_strict(lambda: aio.resolve("ext.prod", 80))
    with pytest.raises(hc.InvalidName, match="'Web'"):
        run_strict(lambda: aio.resolve("Web.prod", 80))


def test_async_pod_and_statefulset(resolvers):
    """resolve_pod and resolve_statefulset, awaited."""
    sync, aio = resolvers
    assert run_strict(lambda: aio.resolve_pod("web", 1, namespace="prod", port=80)) == sync.resolve_pod(
        "web", 1, namespace="prod", port=80
    )
    result = run_strict(lambda: aio.resolve_statefulset("nameless", namespace="prod"))
    assert result.ordinals == GROUND["nameless"].ordinals


def test_async_timeout_on_silent_server():
    """A server that never answers fails within the timeout, without blocking the loop."""
    udp, tcp, port = silent_server()
    with udp, tcp:
        aio = hc.AsyncResolver([f"127.0.0.1:{port}"], timeout=0.5)

        async def main():
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            t = asyncio.create_task(ticker())
            start = time.monotonic()
            try:
                with pytest.raises(hc.ResolutionError, match="did not answer"):
                    await aio.resolve("web.prod", 80)
            finally:
                t.cancel()
                await asyncio.gather(t, return_exceptions=True)
            return time.monotonic() - start, ticks

        elapsed, ticks = run_strict(main)
    assert 0.4 <= elapsed < 1.0
    assert ticks >= 20  # the loop kept running while waiting


def service(bind, fresh, **kw):
    kw.setdefault("min_refresh", 0.2)
    kw.setdefault("max_refresh", 1.0)
    return hc.AsyncHeadlessService(
        fresh.fqdn.rstrip("."), "http", resolver=hc.AsyncResolver([bind.nameserver], timeout=1), **kw
    )


def test_async_service_scale_restart_and_events(bind, new_service):
    """Scale up and down, a restart with a new IP, events in order, async callbacks."""
    fresh = new_service(2)

    async def main():
        events = []

        async def on_change(old, new):
            await asyncio.sleep(0)
            events.append((old, new))

        async with service(bind, fresh, strategy=hc.Sticky()) as svc:
            svc.subscribe(on_change)
            assert svc.endpoints.ordinals == (0, 1)
            keys = {k: svc.pick(key=k).identity for k in (f"user-{i}" for i in range(50))}
            fresh.add()
            await svc.wait_for(3, timeout=5)
            fresh.remove(2)
            for _ in range(100):
                if len(svc.endpoints) == 2:
                    break
                await svc.refresh()
                await asyncio.sleep(0.05)
            assert svc.endpoints.ordinals == (0, 1)
            old_address = svc.endpoint(ordinal=1).address
            (new_address,) = fresh.reip(1)
            assert (await svc.refresh()).by_ordinal(1).address == new_address != old_address
            # Sticky keys follow the pod identity, not the IP.
            assert {k: svc.pick(key=k).identity for k in keys} == keys
        for (_, new), (old, _) in itertools.pairwise(events):
            assert new == old
        assert len(events) >= 3
        return svc

    svc = run_strict(main)
    assert svc.closed


def test_async_dns_down_keeps_last_good(bind, new_service):
    """With named stopped, picks are served from the last good set; recovery after restart."""
    fresh = new_service(3)

    async def main():
        async with service(bind, fresh, max_refresh=0.5) as svc:
            before = svc.endpoints
            await asyncio.to_thread(bind.stop)  # the test ground blocks; the library must not
            try:
                with pytest.raises(hc.ResolutionError):
                    await svc.refresh()
                deadline = time.monotonic() + 2.0
                picks = 0
                while time.monotonic() < deadline:
                    assert svc.pick() in before
                    picks += 1
                    await asyncio.sleep(0.01)
                assert svc.endpoints == before
            finally:
                await asyncio.to_thread(bind.start)
            fresh.add()
            await svc.wait_for(4, timeout=10)
            return picks

    assert run_strict(main) > 50


def test_async_startup_empty_then_wait_for(bind, new_service):
    """An empty (NXDOMAIN) service starts empty; wait_for returns when a pod appears."""
    fresh = new_service(0)

    async def main():
        async with service(bind, fresh) as svc:
            with pytest.raises(hc.NoEndpointsAvailable):
                svc.pick()
            with pytest.raises(hc.WaitTimeout, match=fresh.name):
                await svc.wait_for(1, timeout=0.3)
            fresh.add()
            assert len(await svc.wait_for(1, timeout=5)) == 1

    run_strict(main)


def test_async_connect_each_ordinal_and_retries(bind, new_service, loopback_pods, pod_port, black_hole):
    """connect(ordinal=n) reads the pod's name; retries pass refusing and black-holed pods."""
    fresh = new_service(3, port=pod_port)
    servers = loopback_pods.serve_service(fresh)

    async def read_name(streams):
        reader, writer = streams
        try:
            return (await asyncio.wait_for(reader.readline(), 2)).decode().strip()
        finally:
            writer.close()
            await writer.wait_closed()

    async def main():
        async with service(bind, fresh) as svc:
            for i in range(3):
                assert await read_name(await svc.connect(ordinal=i)) == f"{fresh.name}-{i}"
            servers[0].refuse()
            names = {await read_name(await svc.connect(timeout=0.5)) for _ in range(6)}
            assert f"{fresh.name}-0" not in names
            with pytest.raises(hc.EndpointNotFound):
                await svc.connect(ordinal=7)
            start = time.monotonic()
            with pytest.raises(hc.ConnectError) as info:
                await svc.connect(ordinal=0, attempts=3, timeout=0.3, total_timeout=1.0)
            assert time.monotonic() - start < 1.5
            assert 1 <= len(info.value.attempts) <= 3
            assert all(f"{fresh.name}-0" in ep for ep, _ in info.value.attempts)

    run_strict(main)

    hole = black_hole("127.0.0.1")
    blocked = new_service(1, port=hole.port)

    async def main_hole():
        async with service(bind, blocked) as svc:
            start = time.monotonic()
            with pytest.raises(hc.ConnectError, match="Timeout"):
                await svc.connect(attempts=5, timeout=0.2, total_timeout=0.7)
            return time.monotonic() - start

    # The address of the only pod is replaced by the black hole's.
    blocked.reip(0, "127.0.0.1")
    assert run_strict(main_hole) < 1.2


class TLSPod:
    """A loopback TLS server presenting one certificate; answers each client with a line."""

    def __init__(self, cert, address="127.0.0.1"):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(self.ctx)
        self.sock = socket.create_server((address, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        deadline = time.monotonic() + 30
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                try:
                    conn.settimeout(2)
                    with self.ctx.wrap_socket(conn, server_side=True) as tls:
                        tls.sendall(b"hello\n")
                except (ssl.SSLError, OSError):
                    pass

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def test_async_tls_verifies_pod_name(bind, new_service):
    """connect(ssl_context=) verifies the pod FQDN while dialling the IP; a wrong name fails."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    client = ssl.create_default_context()
    ca.configure_trust(client)
    pods = []
    try:
        names = {}
        for label in ("good", "bad"):
            pod = TLSPod(ca.issue_cert("placeholder.invalid"))
            pods.append(pod)
            fresh = new_service(1, port=pod.port)
            fresh.reip(0, "127.0.0.1")
            names[label] = (fresh, pod)
        good_fresh, good_pod = names["good"]
        good_pod.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(good_fresh.pod_fqdn(0).rstrip(".")).configure_cert(good_pod.ctx)
        bad_fresh, bad_pod = names["bad"]
        bad_pod.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("someone-else.prod.svc.cluster.local").configure_cert(bad_pod.ctx)

        async def main():
            async with service(bind, good_fresh) as svc:
                reader, writer = await svc.connect(ordinal=0, ssl_context=client)
                assert await reader.readline() == b"hello\n"
                writer.close()
                await writer.wait_closed()
            async with service(bind, bad_fresh) as svc:
                with pytest.raises(hc.ConnectError, match="certificate") as info:
                    await svc.connect(ordinal=0, ssl_context=client, attempts=3)
                # A certificate that does not verify is not retried.
                assert len(info.value.attempts) == 1
                assert isinstance(info.value.attempts[0][1], ssl.SSLCertVerificationError)

        run_strict(main)
    finally:
        for pod in pods:
            pod.close()


def test_async_leader_change(bind, new_service, loopback_pods, pod_port):
    """not_leader with a hint moves the next connect(partition=p) to the new leader."""
    fresh = new_service(3, port=pod_port)
    loopback_pods.serve_service(fresh)
    table = {0: 0, 1: 1}

    async def main():
        strategy = hc.PartitionLeader(lambda: dict(table), min_reread_interval=0.0)
        async with service(bind, fresh, strategy=strategy) as svc:
            reader, writer = await svc.connect(partition=1)
            assert (await reader.readline()).decode().strip() == f"{fresh.name}-1"
            writer.close()
            await writer.wait_closed()
            table[1] = 2
            await svc.not_leader(1, hint=2)
            reader, writer = await svc.connect(partition=1)
            assert (await reader.readline()).decode().strip() == f"{fresh.name}-2"
            writer.close()
            await writer.wait_closed()
            # A hint naming a pod DNS does not know yet triggers a refresh.
            fresh.add()
            await svc.not_leader(0, hint=3)
            assert svc.pick(partition=0).ordinal == 3

    run_strict(main)


def test_async_close_leaves_nothing(bind, new_service):
    """Exiting cancels and awaits the refresher task; closing twice is harmless."""
    fresh = new_service(1)

    async def main():
        svc = service(bind, fresh)
        await svc.start()
        assert any("headless-client-refresh" in t.get_name() for t in asyncio.all_tasks())
        await svc.close()
        await svc.close()
        assert not any("headless-client-refresh" in t.get_name() for t in asyncio.all_tasks())
        with pytest.raises(hc.HeadlessClientError, match="closed"):
            await svc.refresh()

    run_strict(main)


def test_async_refresh_from_a_callback(bind, new_service):
    """An async callback may await refresh(): no deadlock, events stay in order."""
    fresh = new_service(1)

    async def main():
        events = []
        added = asyncio.Event()

        async with service(bind, fresh, max_refresh=5.0, min_refresh=2.0) as svc:

            async def on_change(old, new):
                events.append((len(old), len(new)))
                if len(new) == 2:
                    await asyncio.to_thread(fresh.add)
                    assert len(await asyncio.wait_for(svc.refresh(), 3)) == 3
                if len(new) == 3:
                    added.set()

            svc.subscribe(on_change)
            await asyncio.to_thread(fresh.add)
            await svc.refresh()
            await asyncio.wait_for(added.wait(), 5)
        return events

    assert run_strict(main) == [(1, 2), (2, 3)]
