"""Reliability and security of AsyncHeadlessService under injected DNS faults.

The asyncio twin of tests/integration/test_faults.py: the same proxy
(:class:`tests.faults.FaultProxy`), the same assertions, every coroutine run by
:func:`tests.aio_support.run_strict` (debug mode, a blocking call on the loop fails the
test, no task left pending). Zone updates block, so they run in a worker thread
(``asyncio.to_thread``). ``pytest -s`` prints the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time

import dns.message
import dns.rdata
import dns.rdatatype
import pytest

import headless_client as hc
import headless_client.aio as aio_module
from tests.aio_support import run_strict
from tests.faults import SERVFAIL, FaultProxy
from tests.faults.figures import FIGURES, record, size, table, write
from tests.faults.scenario import (
    AsyncWatcher,
    CountingAsyncResolver,
    check_chain,
    churn_step,
    own_socket_count,
    own_sockets_to,
    toggle_per_refresh,
    truth,
    view,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def _figures():
    start = len(FIGURES)
    yield
    mine = FIGURES[start:]
    print(table(mine, "Fault suite figures (AsyncHeadlessService)"))
    write(mine)


@pytest.fixture(name="proxy")
def _proxy(bind):
    with FaultProxy((bind.host, bind.port), seed=11) as proxy:
        yield proxy
    assert proxy.errors == []


def service(nameserver, fresh, port="http", *, timeout=1.0, resolver_kw=None, **kw):
    kw.setdefault("min_refresh", 0.1)
    kw.setdefault("max_refresh", 0.5)
    resolver = CountingAsyncResolver([nameserver], timeout=timeout, **(resolver_kw or {}))
    return hc.AsyncHeadlessService(fresh.fqdn.rstrip("."), port, resolver=resolver, **kw), resolver


def refresher_tasks(svc):
    return [t for t in asyncio.all_tasks() if t.get_name() == f"headless-client-refresh[{svc.name}]"]


# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["blackhole", "SERVFAIL"])
def test_async_dns_down_serves_the_last_good_set_then_recovers(new_service, proxy, kind):
    seconds = size(3.0, 30.0) if kind == "blackhole" else size(0.5, 5.0)
    faults = dict(blackhole=True) if kind == "blackhole" else dict(rcode=SERVFAIL)
    max_refresh, timeout = 0.5, 0.5
    fresh = new_service(3)

    async def main():
        svc, resolver = service(proxy.nameserver, fresh, timeout=timeout, max_refresh=max_refresh)
        async with svc:
            watcher = AsyncWatcher(svc)
            good = svc.endpoints
            assert view(good) == truth(fresh)
            served = wrong = failures = 0
            with proxy.applied(**faults):
                failed_before = resolver.counts.failed
                await watcher.wait(lambda: resolver.counts.failed > failed_before, 5, "a refresh failing")
                down_since = time.monotonic()
                await asyncio.to_thread(fresh.add)
                while time.monotonic() - down_since < seconds:
                    for _ in range(1000):
                        try:
                            picked = svc.pick()
                        except hc.HeadlessClientError:
                            failures += 1
                            continue
                        if picked in good:
                            served += 1
                        else:
                            wrong += 1
                    await asyncio.sleep(0)  # let the refresher run
                failed = resolver.counts.failed - failed_before
                assert svc.endpoints == good and not watcher.events
            restored = time.monotonic()
            recovery = await watcher.wait(lambda: view(svc.endpoints) == truth(fresh), 5, "recovery")
            assert refresher_tasks(svc) and not refresher_tasks(svc)[0].done()
            assert watcher.times[-1] >= restored
        return served, wrong, failures, failed, recovery

    served, wrong, failures, failed, recovery = run_strict(main)
    bound = max_refresh + timeout
    assert failures == 0 and wrong == 0 and served > 10_000 and failed >= 1
    record(f"async DNS down: {kind}", f"picks served from the last good set over {seconds:g} s",
           f"{served:,} of {served:,} (100 %)", bound="100 %, 0 errors")
    record(f"async DNS down: {kind}", "recovery after DNS returned", recovery, "s",
           bound=f"<= max_refresh + timeout = {bound:g} s")
    assert recovery <= bound


CONDITIONS = {
    "loss 10 %": dict(drop=0.1),
    "loss 30 %": dict(drop=0.3),
    "loss 50 %": dict(drop=0.5),
    "delay 200 ms": dict(delay=0.2),
}


def test_async_loss_and_delay_never_kill_the_refresher_nor_publish_partial_sets(bind, new_service):
    """As the sync test: four services, one condition each, zones changing once a second."""
    seconds = size(3.0, 60.0)
    timeout, spacing = 0.9, 1.0
    rng = random.Random(4096)
    freshes = [new_service(16) for _ in CONDITIONS]
    # Proxies start and stop outside the event loop (closing one joins its thread).
    with contextlib.ExitStack() as proxies:
        made = [proxies.enter_context(FaultProxy((bind.host, bind.port), seed=100 + i)) for i in range(4)]
        runs, changes = run_strict(lambda: _loss_runs(made, freshes, seconds, timeout, spacing, rng))
    for run in runs:
        name, events = run["name"], run["watcher"].events
        partial = [new for _, new in events if view(new) not in run["states"]]
        assert not partial, f"{name}: published sets that were never the zone's state"
        check_chain(events, run["initial"], run["final"])
        counts, stats = run["resolver"].counts, run["stats"]
        lost = stats["dropped_queries"] + stats["dropped_answers"]
        assert lost > 0 if "loss" in name else stats["delayed"] > 0
        record(f"async {name}", "refreshes ok / failed", f"{counts.ok} / {counts.failed}")
        record(f"async {name}", "zone changes / sets published", f"{changes} / {len(events)}")
        record(f"async {name}", "published sets not a true zone state", len(partial), bound="0")


async def _loss_runs(proxies, freshes, seconds, timeout, spacing, rng):
    """The body of the loss test, on the loop: services start, zones change, views converge."""
    runs = []
    async with contextlib.AsyncExitStack() as stack:
        for proxy, (name, faults), fresh in zip(proxies, CONDITIONS.items(), freshes):
            svc, resolver = service(proxy.nameserver, fresh, timeout=timeout, max_refresh=0.3)
            await stack.enter_async_context(svc)
            assert view(svc.endpoints) == truth(fresh)
            runs.append(dict(name=name, proxy=proxy, fresh=fresh, svc=svc, resolver=resolver,
                             watcher=AsyncWatcher(svc), states={truth(fresh)}, initial=svc.endpoints))
            proxy.set(**faults)
        changes = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for run in runs:
                await asyncio.to_thread(churn_step, run["fresh"], rng, 12, 20)
                run["states"].add(truth(run["fresh"]))
            changes += 1
            await asyncio.sleep(spacing)  # the zone's rate of change, not a synchronisation
        for run in runs:
            run["proxy"].reset()
        for run in runs:
            svc, fresh, watcher = run["svc"], run["fresh"], run["watcher"]
            await watcher.wait(lambda svc=svc, fresh=fresh: view(svc.endpoints) == truth(fresh), 10,
                               f"{run['name']}: converging once the network is healthy")
            (task,) = refresher_tasks(svc)
            assert not task.done(), f"{run['name']}: the refresher task ended"
            run["stats"] = run["proxy"].stats
            run["final"] = svc.endpoints
    return runs, changes


def test_async_churn_view_matches_the_zone_and_no_event_is_lost(bind, new_service):
    updates = size(100, 500)
    fresh = new_service(4)

    def churn():
        rng = random.Random(78)
        for _ in range(updates):
            churn_step(fresh, rng, 2, 8)

    async def main():
        svc, _ = service(bind.nameserver, fresh, min_refresh=0.05, max_refresh=0.1)
        async with svc:
            initial = svc.endpoints
            watcher = AsyncWatcher(svc)
            await asyncio.to_thread(churn)
            settle = await watcher.wait(lambda: view(svc.endpoints) == truth(fresh), 5, "view equal to the zone")
            await watcher.wait(lambda: bool(watcher.events) and watcher.events[-1][1] == svc.endpoints, 5,
                               "last event delivered")
            final = svc.endpoints
        check_chain(watcher.events, initial, final)
        return len(watcher.events), settle

    events, settle = run_strict(main)
    record(f"async churn ({updates} updates)", "events delivered (chained, none lost)", events,
           bound="chain unbroken, last = final view")
    record(f"async churn ({updates} updates)", "view equal to the zone after quiescing", settle, "s", bound="<= 5 s")


def test_async_tasks_pick_and_connect_during_refreshes(bind, new_service, loopback_pods, pod_port):
    """8 tasks x picks + connects while snapshots are swapped: zero errors."""
    tasks, picks, connects = 8, size(20_000, 100_000), size(100, 1000)
    fresh = new_service(9, port=pod_port)
    loopback_pods.serve_service(fresh)
    names = {f"{fresh.name}-{o}" for o in fresh.addresses}
    everyone = {(fresh.pod_fqdn(o).rstrip("."), a) for o, addrs in fresh.addresses.items() for a in addrs}
    (address_8,) = fresh.addresses[8]
    fresh.remove(8)
    done = threading.Event()

    async def main():
        svc, resolver = service(bind.nameserver, fresh, min_refresh=0.05, max_refresh=0.1)
        async with svc:
            watcher = AsyncWatcher(svc)
            toggler = asyncio.create_task(
                asyncio.to_thread(toggle_per_refresh, fresh, 8, address_8, resolver.counts, done)
            )

            async def worker(n):
                every = max(picks // connects, 1)
                made = count = 0
                deadline = time.monotonic() + 30
                while count < picks or (len(watcher.events) < 6 and time.monotonic() < deadline):
                    ep = svc.pick(key=f"k{n}-{count}") if n % 2 else svc.pick()
                    assert (ep.hostname, ep.address) in everyone
                    if count % every == 0 and made < connects:
                        reader, writer = await svc.connect(timeout=2)
                        try:
                            greeting = (await asyncio.wait_for(reader.readline(), 2)).decode().strip()
                        finally:
                            writer.close()
                            await writer.wait_closed()
                        assert greeting in names
                        made += 1
                    count += 1
                    if count % 500 == 0:
                        await asyncio.sleep(0)
                    if count >= picks and count % 100 == 0:
                        # Past the required picks: keep picking while the snapshot is swapped,
                        # at a pace that leaves the refresher and the zone updates room.
                        await asyncio.sleep(0.002)
                return count

            start = time.monotonic()
            try:
                results = await asyncio.gather(*(worker(n) for n in range(tasks)), return_exceptions=True)
            finally:
                done.set()
                await toggler
            elapsed = time.monotonic() - start
            return results, elapsed, len(watcher.events), resolver.counts.ok

    results, elapsed, events, refreshes = run_strict(main)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    assert events >= 6
    scenario = f"async: {tasks} tasks x {picks:,} picks + {connects} connects"
    record(scenario, "errors", len(errors), bound="0")
    record(scenario, "picks made (all tasks) in", f"{sum(results):,} in {elapsed:.2f} s")
    record(scenario, "snapshots published / refreshes during the run", f"{events} / {refreshes}")


def test_async_close_during_an_in_flight_refresh(new_service, proxy):
    """close() cancels the refresher task waiting on a black-holed server: immediate, and
    no task or socket is left."""
    fresh = new_service(3)

    async def main():
        # Reading /proc can take a while after thousands of connections (soak): off the loop.
        sockets_before = await asyncio.to_thread(own_socket_count)
        svc, _ = service(proxy.nameserver, fresh, timeout=3.0, min_refresh=0.1, max_refresh=0.2)
        await svc.start()
        proxy.set(blackhole=True)
        await asyncio.to_thread(proxy.wait_until, lambda s: s["blackholed"] >= 1, 5)
        assert await asyncio.to_thread(own_sockets_to, proxy.port), "no resolver socket in flight"
        start = time.monotonic()
        await svc.close()
        took = time.monotonic() - start
        assert not refresher_tasks(svc)
        # A transport closes its socket from a loop callback: allow a few loop iterations.
        iterations = 0
        while await asyncio.to_thread(own_sockets_to, proxy.port) and iterations < 10:
            await asyncio.sleep(0)
            iterations += 1
        assert await asyncio.to_thread(own_sockets_to, proxy.port) == []
        assert await asyncio.to_thread(own_socket_count) <= sockets_before
        return took, iterations

    took, iterations = run_strict(main)
    scenario = "async close() during a black-holed refresh (timeout 3 s)"
    record(scenario, "close() took", took, "s", bound="< 0.5 s")
    record(scenario, "loop iterations until the UDP socket is closed", iterations, bound="<= 10")
    assert took < 0.5


def test_async_close_during_an_in_flight_connect(bind, new_service, black_hole, monkeypatch):
    hole = black_hole("127.0.0.1")
    fresh = new_service(1, port=hole.port)
    fresh.reip(0, "127.0.0.1")
    real_open = aio_module.service._streams.open_streams

    async def main():
        dialling = asyncio.Event()

        async def open_and_signal(*args, **kwargs):
            dialling.set()
            return await real_open(*args, **kwargs)

        monkeypatch.setattr(aio_module.service._streams, "open_streams", open_and_signal)
        svc, _ = service(bind.nameserver, fresh)
        await svc.start()

        async def connect():
            start = time.monotonic()
            with pytest.raises(hc.ConnectError) as info:
                await svc.connect(ordinal=0, timeout=0.3, attempts=3)
            return info.value, time.monotonic() - start

        caller = asyncio.create_task(connect())
        await asyncio.wait_for(dialling.wait(), 5)
        start = time.monotonic()
        await svc.close()
        close_took = time.monotonic() - start
        error, connect_took = await asyncio.wait_for(caller, 10)
        return close_took, connect_took, len(error.attempts)

    close_took, connect_took, attempts = run_strict(main)
    scenario = "async close() during connect(ordinal=0) to a black-holed pod (timeout 0.3 s, 3 attempts)"
    record(scenario, "close() took", close_took, "s", bound="< 0.5 s")
    record(scenario, "the connect returned after", connect_took, "s", bound="<= 3 x 0.3 s (+ slack)")
    record(scenario, "attempts made (close() came during the first)", attempts, "of 3")
    assert close_took < 0.5
    assert connect_took < 1.5


def test_async_security_defaults(bind, new_service, proxy, caplog):
    """Foreign SRV targets (planted through the proxy) and addresses outside
    allowed_networks are dropped and logged by the asyncio resolver too."""
    caplog.set_level(logging.WARNING, logger="headless_client")
    fresh = new_service(3)
    fresh.reip(2, "127.99.0.2")

    def plant(answer):
        message = dns.message.from_wire(answer)
        for rrset in message.answer:
            if rrset.rdtype == dns.rdatatype.SRV:
                rrset.add(dns.rdata.from_text("IN", "SRV", "0 10 8080 attacker.example.net."))
        return message.to_wire(max_size=65535)

    proxy.set(transform=plant)

    async def main():
        resolver = hc.AsyncResolver([proxy.nameserver], timeout=1, allowed_networks=["127.20.0.0/15"])
        async with hc.AsyncHeadlessService(fresh.short, "http", resolver=resolver, min_refresh=0.1,
                                           max_refresh=0.5) as svc:
            return svc.endpoints

    endpoints = run_strict(main)
    assert endpoints.ordinals == (0, 1)
    assert "attacker.example.net" in caplog.text
    assert "127.99.0.2" in caplog.text and "allowed_networks" in caplog.text
