"""Reliability and security of the sync HeadlessService under injected DNS faults.

The library talks to BIND9 through :class:`tests.faults.FaultProxy` (loopback UDP+TCP),
which drops, delays, corrupts or withholds answers on demand. Each scenario asserts
that nothing is lost and nothing hangs, and records its figures; ``pytest -s`` prints
them as a table at the end of the module (docs/reliability.md quotes a run).
``HEADLESS_SOAK=1`` (scripts/soak) selects the long variants.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import ssl
import threading
import time
import tracemalloc

import dns.message
import dns.rdatatype
import dns.rrset
import pytest

import headless_client as hc
import headless_client.service as service_module
from benchmarks.bench_refresh_soak import soak
from tests.faults import REFUSED, SERVFAIL, FaultProxy
from tests.faults.figures import FIGURES, record, size, table, write
from tests.faults.scenario import (
    CountingResolver,
    Watcher,
    check_chain,
    churn_step,
    own_socket_count,
    own_sockets_to,
    refresher_threads,
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
    print(table(mine, "Fault suite figures (sync HeadlessService)"))
    write(mine)


@pytest.fixture(name="proxy")
def _proxy(bind):
    with FaultProxy((bind.host, bind.port), seed=7) as proxy:
        yield proxy
    assert proxy.errors == []


def service(nameserver, fresh, port="http", *, timeout=1.0, resolver_kw=None, **kw):
    """A HeadlessService on *fresh* through *nameserver*, with a counting resolver."""
    kw.setdefault("min_refresh", 0.1)
    kw.setdefault("max_refresh", 0.5)
    resolver = CountingResolver([nameserver], timeout=timeout, **(resolver_kw or {}))
    return hc.HeadlessService(fresh.fqdn.rstrip("."), port, resolver=resolver, **kw), resolver


# --------------------------------------------------------------------------------------------
# DNS down: the last good set is served, recovery within one backoff period
# --------------------------------------------------------------------------------------------

OUTAGES = {
    "blackhole": dict(blackhole=True),
    "SERVFAIL": dict(rcode=SERVFAIL),
    "REFUSED": dict(rcode=REFUSED),
    "TC without TCP": dict(truncate=True),
    "garbage answers": dict(garbage=True),
    "malformed records": dict(malformed="pointer_loop"),
    "wrong ID": dict(wrong_id=True),
}


@pytest.mark.parametrize("kind", list(OUTAGES))
def test_dns_down_serves_the_last_good_set_then_recovers(new_service, proxy, kind):
    """While DNS fails, 100 % of picks come from the last good set and nothing is
    published; once it answers again the view catches up within one backoff period."""
    if kind == "blackhole":
        seconds, max_refresh, timeout = size(3.0, 30.0), 0.5, 0.5
    else:  # the same path with other failures: shorter in CI
        seconds, max_refresh, timeout = size(0.3, 5.0), 0.3, 0.3
    fresh = new_service(3)
    svc, resolver = service(proxy.nameserver, fresh, timeout=timeout, min_refresh=0.1, max_refresh=max_refresh)
    with svc:
        watcher = Watcher(svc)
        # The first answer may miss the short timeout on a loaded machine: the refresher
        # retries; the outage starts from a good view either way.
        good = svc.wait_for(len(truth(fresh)), timeout=10)
        assert view(good) == truth(fresh)
        served = wrong = failures = 0
        with proxy.applied(**OUTAGES[kind]):
            failed_before = resolver.counts.failed
            watcher.wait(lambda: resolver.counts.failed > failed_before, 5, "a refresh failing")
            down_since = time.monotonic()
            fresh.add()  # the zone moves on while DNS is unreachable
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
            failed_refreshes = resolver.counts.failed - failed_before
            assert svc.endpoints == good
            assert not watcher.events, "something was published while DNS was down"
        restored = time.monotonic()
        recovery = watcher.wait(
            lambda: view(svc.endpoints) == truth(fresh), max_refresh + timeout + 5, "recovery after DNS returned"
        )
        assert refresher_threads(svc), "the refresher died"
        assert watcher.times[-1] >= restored
    assert failures == 0 and wrong == 0
    assert served > 1_000
    assert failed_refreshes >= 1
    bound = max_refresh + timeout
    record(f"DNS down: {kind}", f"picks served from the last good set over {seconds:g} s",
           f"{served:,} of {served + failures + wrong:,} (100 %)", bound="100 %, 0 errors")
    record(f"DNS down: {kind}", "failed refreshes while down", failed_refreshes)
    record(f"DNS down: {kind}", "recovery after DNS returned", recovery, "s",
           bound=f"<= max_refresh + timeout = {bound:g} s")
    assert recovery <= bound, f"recovery took {recovery:.2f}s, more than {bound:g}s"


# --------------------------------------------------------------------------------------------
# Packet loss and delay: the refresher survives, no partial set is ever published
# --------------------------------------------------------------------------------------------

CONDITIONS = {
    "loss 10 %": dict(drop=0.1),
    "loss 30 %": dict(drop=0.3),
    "loss 50 %": dict(drop=0.5),
    "delay 200 ms": dict(delay=0.2),
}


def test_loss_and_delay_never_kill_the_refresher_nor_publish_partial_sets(bind, new_service):
    """Four services, each behind its own proxy with one condition, while their zones change.

    16+ pods: BIND sends no glue, so every refresh is an SRV query and then a batch of
    address questions, each of which may be lost: the case where a partial set could
    slip out. A zone change happens at most once per resolver timeout, so every correct
    result is one of the zone's true states; every published set must be one.
    """
    seconds = size(4.0, 60.0)
    timeout = 0.9
    spacing = 1.0  # > timeout: a resolution sees at most one zone change
    rng = random.Random(2024)
    runs = []
    with contextlib.ExitStack() as stack:
        for seed, (name, faults) in enumerate(CONDITIONS.items()):
            proxy = stack.enter_context(FaultProxy((bind.host, bind.port), seed=seed))
            fresh = new_service(16)
            svc, resolver = service(proxy.nameserver, fresh, timeout=timeout, min_refresh=0.1, max_refresh=0.3)
            stack.enter_context(svc)
            run = dict(name=name, proxy=proxy, fresh=fresh, svc=svc, resolver=resolver, watcher=Watcher(svc),
                       states={truth(fresh)}, initial=svc.endpoints)
            assert view(svc.endpoints) == truth(fresh)
            proxy.set(**faults)
            runs.append(run)
        pace = threading.Event()
        changes = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for run in runs:
                churn_step(run["fresh"], rng, 12, 20)
                run["states"].add(truth(run["fresh"]))
            changes += 1
            pace.wait(spacing)  # the zone's rate of change, not a synchronisation
        for run in runs:
            run["proxy"].reset()
        for run in runs:
            svc, fresh, watcher = run["svc"], run["fresh"], run["watcher"]
            watcher.wait(lambda svc=svc, fresh=fresh: view(svc.endpoints) == truth(fresh), 10,
                         f"{run['name']}: the view converging once the network is healthy")
            watcher.wait(lambda svc=svc, watcher=watcher: watcher.events[-1][1] == svc.endpoints, 5,
                         f"{run['name']}: the last event delivered")
            assert refresher_threads(svc), f"{run['name']}: the refresher died"
            run["stats"] = run["proxy"].stats
            assert run["proxy"].errors == []
    for run in runs:
        name, counts, stats, events = run["name"], run["resolver"].counts, run["stats"], run["watcher"].events
        partial = [new for _, new in events if view(new) not in run["states"]]
        assert not partial, f"{name}: published sets that were never the zone's state: {partial[:2]}"
        check_chain(events, run["initial"], run["svc"].endpoints)
        lost = stats["dropped_queries"] + stats["dropped_answers"]
        if "loss" in name:
            assert lost > 0
        else:
            assert stats["delayed"] > 0
        record(name, "refreshes ok / failed", f"{counts.ok} / {counts.failed}")
        record(name, "zone changes / sets published", f"{changes} / {len(events)}")
        record(name, "published sets not a true zone state", len(partial), bound="0")
        record(name, "datagrams dropped / delayed", f"{lost} / {stats['delayed']}")
        record(name, "refresher alive after the run", "yes", bound="alive")


# --------------------------------------------------------------------------------------------
# Churn: many dynamic updates at a high rate
# --------------------------------------------------------------------------------------------


def test_churn_view_matches_the_zone_and_no_event_is_lost(bind, new_service):
    """N random add/remove/re-IP updates as fast as BIND takes them; afterwards the view
    is the zone's truth and the events form one unbroken chain ending at it."""
    updates = size(100, 500)
    fresh = new_service(4)
    rng = random.Random(77)
    svc, _ = service(bind.nameserver, fresh, timeout=1.0, min_refresh=0.05, max_refresh=0.1)
    with svc:
        initial = svc.endpoints
        watcher = Watcher(svc)
        start = time.monotonic()
        for _ in range(updates):
            churn_step(fresh, rng, 2, 8)
        churn_seconds = time.monotonic() - start
        quiesced = time.monotonic()
        watcher.wait(lambda: view(svc.endpoints) == truth(fresh), 5, "the view equal to the zone")
        watcher.wait(lambda: bool(watcher.events) and watcher.events[-1][1] == svc.endpoints, 5,
                     "the last event delivered")
        settle = time.monotonic() - quiesced
        final = svc.endpoints
        assert refresher_threads(svc)
    check_chain(watcher.events, initial, final)
    assert view(final) == truth(fresh)
    record(f"churn ({updates} updates)", "update rate", updates / churn_seconds, "updates/s")
    record(f"churn ({updates} updates)", "events delivered (chained, none lost)", len(watcher.events),
           bound="chain unbroken, last = final view")
    record(f"churn ({updates} updates)", "view equal to the zone after quiescing", settle, "s", bound="<= 5 s")


# --------------------------------------------------------------------------------------------
# 1000 pods refreshing every second: CPU and memory
# --------------------------------------------------------------------------------------------


def test_thousand_pod_service_refreshing_every_second(bind):
    """CPU per refresh and memory stay flat (benchmarks/bench_refresh_soak.py)."""
    seconds = size(8.0, 60.0)
    result = soak(bind.nameserver, seconds, port="http", service="big.prod")
    scenario = f"1000 pods, SRV, 1 s refresh, {seconds:g} s"
    for metric, value in result.rows()[2:]:
        record(scenario, metric, value)
    assert result.endpoints == 1000
    assert result.failed == 0
    assert result.refreshes >= seconds * 0.5
    # A leak of one snapshot per refresh would be ~1 MB per refresh.
    assert result.traced_growth < 512 * 1024
    assert result.cpu_per_refresh_thread < 1.0


# --------------------------------------------------------------------------------------------
# 8 threads picking and connecting during refreshes
# --------------------------------------------------------------------------------------------


def test_threads_pick_and_connect_during_refreshes(bind, new_service, loopback_pods, pod_port):
    """8 threads x picks + connects while the snapshot is swapped: zero errors."""
    threads, picks, connects = 8, size(20_000, 100_000), size(100, 1000)
    fresh = new_service(9, port=pod_port)
    loopback_pods.serve_service(fresh)  # every pod, the toggled one included, is served
    everyone = view(hc.EndpointSet(
        hc.Endpoint(a, pod_port, fresh.pod_fqdn(o).rstrip("."), o) for o, addrs in fresh.addresses.items()
        for a in addrs
    ))
    names = {f"{fresh.name}-{o}" for o in fresh.addresses}
    (address_8,) = fresh.addresses[8]
    fresh.remove(8)
    errors: list[BaseException] = []
    totals: list[int] = []
    swaps = 6
    done = threading.Event()
    svc, resolver = service(bind.nameserver, fresh, timeout=1.0, min_refresh=0.05, max_refresh=0.1)

    def worker(n):
        try:
            every = max(picks // connects, 1)
            made = done_picks = 0
            deadline = time.monotonic() + 30
            # At least `picks` picks, and on until the snapshot has been swapped a few
            # times under them (bounded by the deadline).
            while done_picks < picks or (len(watcher.events) < swaps and time.monotonic() < deadline):
                i = done_picks
                ep = svc.pick(key=f"user-{n}-{i}") if n % 2 else svc.pick()
                assert (ep.hostname, ep.address, ep.port) in everyone, ep
                done_picks += 1
                if i % every == 0 and made < connects:
                    with svc.connection(timeout=2) as sock:
                        sock.settimeout(2)
                        with sock.makefile("rb") as stream:
                            greeting = stream.readline().decode().strip()
                    assert greeting in names, greeting
                    made += 1
                if done_picks >= picks and done_picks % 100 == 0:
                    # Past the required picks: keep picking while the snapshot is swapped,
                    # at a pace that leaves the refresher and the zone updates room.
                    done.wait(0.002)
            assert made == connects
            totals.append(done_picks)
        except BaseException as exc:
            errors.append(exc)

    with svc:
        watcher = Watcher(svc)
        # Pod 8 comes and goes (with its served address), so snapshots really change.
        toggler = threading.Thread(
            target=toggle_per_refresh, args=(fresh, 8, address_8, resolver.counts, done), daemon=True
        )
        start = time.monotonic()
        toggler.start()
        pool = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(120)
        elapsed = time.monotonic() - start
        done.set()
        toggler.join(10)
        alive = [t for t in pool if t.is_alive()]
        assert refresher_threads(svc)
    assert not alive, "a worker hung"
    assert not errors, errors[:3]
    assert len(watcher.events) >= swaps, "the snapshot was not swapped during the run"
    scenario = f"{threads} threads x {picks:,} picks + {connects} connects"
    record(scenario, "errors", len(errors), bound="0")
    record(scenario, "picks made (all threads) in", f"{sum(totals):,} in {elapsed:.2f} s")
    record(scenario, "snapshots published during the run", len(watcher.events))
    record(scenario, "refreshes during the run", resolver.counts.ok)


# --------------------------------------------------------------------------------------------
# close() during an in-flight refresh or connect
# --------------------------------------------------------------------------------------------


def test_close_during_an_in_flight_refresh(new_service, proxy):
    """DNS black-holed, resolver timeout 3 s, a refresh waiting on it: close() is prompt
    and leaves no thread and no socket behind."""
    fresh = new_service(3)
    sockets_before = own_socket_count()
    svc, _ = service(proxy.nameserver, fresh, timeout=3.0, min_refresh=0.1, max_refresh=0.2)
    svc.start()
    refresher = refresher_threads(svc)
    assert len(refresher) == 1
    proxy.set(blackhole=True)
    # A refresh is in flight once the proxy has swallowed one of its queries.
    proxy.wait_until(lambda s: s["blackholed"] >= 1, timeout=5)
    assert own_sockets_to(proxy.port), "no resolver socket in flight"
    start = time.monotonic()
    svc.close()
    took = time.monotonic() - start
    assert not refresher[0].refreshing
    assert own_sockets_to(proxy.port) == []
    assert own_socket_count() <= sockets_before
    assert len(svc.endpoints) == 3
    record("close() during a black-holed refresh (timeout 3 s)", "close() took", took, "s", bound="< 0.5 s")
    record("close() during a black-holed refresh (timeout 3 s)", "threads / sockets left", "0 / 0", bound="0 / 0")
    assert took < 0.5


def test_close_during_an_in_flight_connect(bind, new_service, black_hole, monkeypatch):
    """A connect stuck on a black-holed pod: close() does not wait for it; the connect
    ends within its own budget (it is not interrupted by close()) and leaks nothing."""
    hole = black_hole("127.0.0.1")
    fresh = new_service(1, port=hole.port)
    fresh.reip(0, "127.0.0.1")
    dialling = threading.Event()
    real_open = service_module.open_socket

    def open_and_signal(*args, **kwargs):
        dialling.set()
        return real_open(*args, **kwargs)

    monkeypatch.setattr(service_module, "open_socket", open_and_signal)
    svc, _ = service(bind.nameserver, fresh, timeout=1.0)
    outcome: list[object] = []

    def connect():
        start = time.monotonic()
        try:
            svc.connect(ordinal=0, timeout=0.3, attempts=3)  # pinned: retried on the same pod
        except hc.ConnectError as exc:
            outcome.append(exc)
        outcome.append(time.monotonic() - start)

    svc.start()
    sockets_before = own_socket_count()
    caller = threading.Thread(target=connect, daemon=True)
    caller.start()
    assert dialling.wait(5)
    start = time.monotonic()
    svc.close()
    close_took = time.monotonic() - start
    caller.join(10)
    assert not caller.is_alive()
    error, connect_took = outcome
    assert isinstance(error, hc.ConnectError)
    assert not refresher_threads(svc)
    assert own_socket_count() <= sockets_before
    scenario = "close() during connect(ordinal=0) to a black-holed pod (timeout 0.3 s, 3 attempts)"
    record(scenario, "close() took", close_took, "s", bound="< 0.5 s")
    record(scenario, "the connect returned after", connect_took, "s", bound="<= 3 x 0.3 s (+ slack)")
    record(scenario, "attempts made (close() came during the first)", len(error.attempts), "of 3")
    assert close_took < 0.5
    assert connect_took < 1.5


# --------------------------------------------------------------------------------------------
# Security defaults
# --------------------------------------------------------------------------------------------


def _rewrite(answer: bytes, edit) -> bytes:
    message = dns.message.from_wire(answer)
    edit(message)
    return message.to_wire(max_size=65535)


def test_foreign_srv_targets_are_ignored_and_logged_through_the_proxy(new_service, proxy, caplog):
    """A planted SRV target outside the service (another domain, or an escaped dot that
    only looks like the service's domain) is dropped and logged; the view keeps the rest."""
    fresh = new_service(3)
    srv_owner = fresh.srv_fqdn
    foreign = ["attacker.example.net.", f"evil\\.{fresh.fqdn}", f"{fresh.name}-9.other.prod.svc.cluster.local."]

    def plant(message):
        for rrset in message.answer:
            if rrset.rdtype == dns.rdatatype.SRV:
                for target in foreign:
                    rrset.add(dns.rdata.from_text("IN", "SRV", f"0 10 8080 {target}"))
                message.additional.append(dns.rrset.from_text("attacker.example.net.", 1, "IN", "A", "203.0.113.9"))

    proxy.set(transform=lambda answer: _rewrite(answer, plant))
    caplog.set_level(logging.WARNING, logger="headless_client")
    svc, _ = service(proxy.nameserver, fresh)
    with svc:
        assert view(svc.endpoints) == truth(fresh)
        assert "203.0.113.9" not in {e.address for e in svc.endpoints}
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "attacker.example.net" in messages
    assert "evil\\\\." in messages or "evil\\." in messages
    assert "other.prod" in messages
    assert srv_owner
    record("security", "foreign SRV targets planted / kept", "3 / 0", bound="0 kept, each logged")


def test_evil_ground_service_through_the_proxy(bind, proxy, caplog):
    caplog.set_level(logging.WARNING, logger="headless_client")
    resolved = hc.Resolver([proxy.nameserver], timeout=1).resolve("evil.prod", "http")
    assert [e.hostname for e in resolved] == ["evil-0.evil.prod.svc.cluster.local"]
    assert "attacker.example.net" in caplog.text


def test_cname_out_of_the_cluster_is_not_followed(new_service, proxy):
    """An answer that CNAMEs the service out of the cluster domain, even one that only
    looks inside it (``x\\.cluster.local.``, a name under ``local.``), is refused."""
    fresh = new_service(2)
    r = hc.Resolver([proxy.nameserver], timeout=1)
    for target in ("db.example.com.", "x\\.cluster.local."):
        def redirect(message, target=target):
            if message.question[0].rdtype != dns.rdatatype.A:
                return
            owner = message.question[0].name
            message.answer = [
                dns.rrset.from_text(owner, 1, "IN", "CNAME", target),
                dns.rrset.from_text(target, 1, "IN", "A", "203.0.113.7"),
            ]

        proxy.set(transform=lambda answer, redirect=redirect: _rewrite(answer, redirect))
        with pytest.raises(hc.ResolutionError, match="not followed"):
            r.resolve(fresh.short, 8080)
    proxy.reset()
    assert len(r.resolve(fresh.short, 8080)) == 2


def test_allowed_networks_drop_and_log_foreign_addresses(bind, new_service, caplog):
    """allowed_networks applies to A/AAAA answers, SRV glue and SRV target lookups."""
    caplog.set_level(logging.WARNING, logger="headless_client")
    small = new_service(3)  # SRV with glue
    large = new_service(16)  # SRV without glue: targets looked up
    for fresh in (small, large):
        fresh.reip(1, "127.99.0.1")
    r = hc.Resolver([bind.nameserver], timeout=2, allowed_networks=["127.20.0.0/15"])
    for fresh in (small, large):
        for port in ("http", 8080):
            caplog.clear()
            got = r.resolve(fresh.short, port)
            assert "127.99.0.1" not in {e.address for e in got}
            assert len(got) == len(fresh.addresses) - 1
            assert "127.99.0.1" in caplog.text and "allowed_networks" in caplog.text
    with pytest.raises(hc.ResolutionError, match=r"127\.99\.0\.1.*outside allowed_networks"):
        r.resolve_pod(small.name, 1, namespace="prod")
    assert r.resolve_pod(small.name, 0, namespace="prod").address.startswith("127.2")
    with hc.HeadlessService(small.short, "http", resolver=r, min_refresh=0.1, max_refresh=0.5) as svc:
        assert svc.endpoints.ordinals == (0, 2)
    everyone = hc.Resolver([bind.nameserver], timeout=2)
    assert len(everyone.resolve(small.short, "http")) == 3
    record("security", "addresses outside allowed_networks", "dropped and logged (A, glue, lookups)",
           bound="none kept")


def test_hostile_oversized_answer_is_refused_with_bounded_memory(new_service, proxy):
    """~4000 records in one answer (UDP and TCP): refused above max_records, and the
    memory a hostile answer can cost is bounded by the 64 KB message size either way."""
    fresh = new_service(2)
    proxy.set(oversized=100_000)
    bounded = hc.Resolver([proxy.nameserver], timeout=2, max_records=500)
    default = hc.Resolver([proxy.nameserver], timeout=2)
    peaks = {}
    for port in (8080, "http"):
        tracemalloc.start()
        try:
            with pytest.raises(hc.ResolutionError, match="max_records=500"):
                bounded.resolve(fresh.short, port)
            _, peaks[("refused", port)] = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            if port == 8080:
                accepted = default.resolve(fresh.short, port)  # under the default bound of 10000
                assert 3000 < sum(1 for e in accepted if e.family == 4) < 4100  # and ~2300 AAAA
                _, peaks[("accepted", port)] = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    for key, peak in peaks.items():
        record("security: oversized answer (~4000 records)", f"peak traced memory, {key[0]}, port {key[1]}",
               peak / 1024 / 1024, "MB", bound="< 32 MB")
        assert peak < 32 * 1024 * 1024
    assert proxy.stats["synthesised"] >= 2


def test_tls_connect_verifies_the_pod_fqdn(bind, new_service):
    """connect(ssl_context=) checks the certificate against the pod's own FQDN."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    client = ssl.create_default_context()
    ca.configure_trust(client)
    results = {}
    for label in ("right name", "other pod's name"):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            fresh = new_service(1, port=listener.getsockname()[1])
            fresh.reip(0, "127.0.0.1")
            name = fresh.pod_fqdn(0).rstrip(".") if label == "right name" else "someone-else.prod.svc.cluster.local"
            server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ca.issue_cert(name).configure_cert(server_ctx)
            listener.settimeout(0.2)
            stop = threading.Event()

            def serve(listener=listener, server_ctx=server_ctx, stop=stop):
                for _ in range(200):  # bounded: 200 x 0.2 s at most
                    if stop.is_set():
                        return
                    try:
                        conn, _ = listener.accept()
                    except OSError:
                        continue
                    with conn:
                        conn.settimeout(2)
                        with contextlib.suppress(OSError), server_ctx.wrap_socket(conn, server_side=True) as tls:
                            tls.sendall(b"hello\n")

            server = threading.Thread(target=serve, daemon=True)
            server.start()
            try:
                resolver = hc.Resolver([bind.nameserver], timeout=1)
                with hc.HeadlessService(fresh.short, "http", resolver=resolver, min_refresh=0.2,
                                        max_refresh=1.0) as svc:
                    try:
                        with svc.connection(ordinal=0, ssl_context=client, attempts=2) as sock:
                            results[label] = sock.recv(6)
                    except hc.ConnectError as exc:
                        results[label] = exc
            finally:
                stop.set()
                server.join(5)
    assert results["right name"] == b"hello\n"
    error = results["other pod's name"]
    assert isinstance(error, hc.ConnectError) and "certificate" in str(error)
    assert len(error.attempts) == 1  # a certificate that does not verify is not retried
    record("security", "TLS to a pod whose certificate names another host", "refused, not retried",
           bound="ConnectError after 1 attempt")
