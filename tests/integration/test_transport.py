"""The lookup drivers against a real BIND9, through the fault proxy: question caps per TCP
connection, TCP refused, a family failing, oversized answers, and one Multiplexer
driving many lookups (a black-holed server, descriptor counts, a real fork)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import warnings

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

import headless_client as hc
from headless_client.aio.transport import run_lookup as run_lookup_async
from headless_client.exchange import ExchangePolicy
from headless_client.transport import Multiplexer, run_lookup
from tests.faults import FaultProxy
from tests.faults.scenario import own_socket_count, truth, view

pytestmark = pytest.mark.integration

CAP = 128


@pytest.fixture(name="proxy")
def _proxy(bind):
    with FaultProxy((bind.host, bind.port), seed=11) as proxy:
        yield proxy
    assert proxy.errors == []


@pytest.fixture(name="silent")
def _silent():
    """A nameserver address that swallows everything: UDP bound and never read, TCP
    listening and never accepting."""
    for _ in range(20):
        udp, tcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket()
        try:
            tcp.bind(("127.0.0.1", 0))
            udp.bind(("127.0.0.1", tcp.getsockname()[1]))
            tcp.listen(1)
        except OSError:
            udp.close()
            tcp.close()
            continue
        with udp, tcp:
            yield f"127.0.0.1:{udp.getsockname()[1]}"
        return
    pytest.fail("no port free for a silent UDP+TCP nameserver")


def resolver(proxy, timeout=5.0, **kw):
    return hc.Resolver([proxy.nameserver], timeout=timeout, **kw)


def identities(endpoints):
    return sorted((e.ordinal, e.address) for e in endpoints)


def expected(fresh):
    return sorted((o, a[0]) for o, a in fresh.addresses.items())


# -- questions per TCP connection ----------------------------------------------------------------


@pytest.mark.parametrize("pods", [100, 500])
def test_resolve_statefulset_under_a_tcp_question_cap(new_service, proxy, pods):
    """2 x (pods + 4) questions, a server closing each connection after 128 answers: all pods
    found, sync and asyncio, and more than one connection was needed."""
    fresh = new_service(pods, port_name=None)
    proxy.set(tcp_max_questions=CAP)
    r = resolver(proxy)
    got = r.resolve_statefulset(fresh.name, namespace="prod", port=80)
    assert identities(got) == expected(fresh)
    stats = proxy.stats
    assert stats["capped_connections"] >= (2 * pods) // CAP
    assert stats["over_cap"] == 0  # the library never sent past the cap
    ar = hc.AsyncResolver([proxy.nameserver], timeout=5.0)
    got = asyncio.run(ar.resolve_statefulset(fresh.name, namespace="prod", port=80))
    assert identities(got) == expected(fresh)


def test_srv_of_500_pods_without_glue_under_a_tcp_question_cap(new_service, proxy):
    """BIND sends no glue for 500 targets: 500 address questions, capped connections."""
    fresh = new_service(500)
    proxy.set(tcp_max_questions=CAP)
    got = resolver(proxy).resolve(fresh.short, "http")
    assert view(got) == truth(fresh)
    assert proxy.stats["capped_connections"] >= 3


def test_a_cap_smaller_than_ours_is_survived_by_re_sending(new_service, proxy):
    """The server closes after 50 while the library sends 128 per connection: the
    unanswered rest goes out again on new connections."""
    fresh = new_service(150, port_name=None)
    proxy.set(tcp_max_questions=50)
    got = resolver(proxy).resolve_statefulset(fresh.name, namespace="prod", port=80)
    assert identities(got) == expected(fresh)
    assert proxy.stats["over_cap"] > 0


def test_a_lower_cap_in_the_policy_is_honoured(new_service, proxy):
    """tcp_max_questions=32 in the policy: the server's cap of 32 is never exceeded."""
    fresh = new_service(40, port_name=None)
    proxy.set(tcp_max_questions=32)
    r = resolver(proxy, exchange=ExchangePolicy(tcp_max_questions=32))
    assert identities(r.resolve_statefulset(fresh.name, namespace="prod", port=80)) == expected(fresh)
    assert proxy.stats["over_cap"] == 0


# -- TCP refused --------------------------------------------------------------------------------------


def test_glue_less_srv_targets_with_tcp_refused(new_service, proxy):
    """20 SRV targets without glue and no TCP: the 20 address questions go by UDP.

    BIND writes SRV targets uncompressed (RFC 2782) and sends no glue above 13 targets;
    a one-letter prefix keeps this SRV answer within one 1232-octet datagram."""
    fresh = new_service(20, prefix="g")
    proxy.set(tcp="refuse")
    for r in (resolver(proxy), hc.AsyncResolver([proxy.nameserver], timeout=5.0)):
        result = r.resolve(fresh.short, "http")
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        assert view(result) == truth(fresh)
    assert proxy.stats["tcp_connections"] == 0


def test_statefulset_with_tcp_refused_is_asked_by_udp_in_small_batches(new_service, proxy):
    fresh = new_service(60, port_name=None)
    proxy.set(tcp="refuse")
    got = resolver(proxy).resolve_statefulset(fresh.name, namespace="prod", port=80)
    assert identities(got) == expected(fresh)


# -- a family failing, answers too big -------------------------------------------------------------


def _servfail_aaaa(answer: bytes) -> bytes:
    message = dns.message.from_wire(answer)
    if message.question[0].rdtype == dns.rdatatype.AAAA:
        message.answer = []
        message.set_rcode(dns.rcode.SERVFAIL)
    return message.to_wire()


def test_aaaa_servfail_keeps_the_a_answer_and_logs_it_once(new_service, proxy, caplog):
    """A server failing AAAA for a dual-stack service: the IPv4 endpoints are used, and the
    failure is logged once, not on every call."""
    fresh = new_service(3, ipv6=True)
    proxy.set(transform=_servfail_aaaa)
    caplog.set_level(logging.WARNING, logger="headless_client")
    r = resolver(proxy, timeout=2.0)
    for _ in range(3):
        got = r.resolve(fresh.short, 8080)
        assert sorted(e.address for e in got) == sorted(fresh.ipv4)
    pod = r.resolve_pod(fresh.name, 0, namespace="prod")
    assert pod.address == fresh.addresses[0][0]
    lines = [rec.getMessage() for rec in caplog.records if "AAAA lookup" in rec.getMessage()]
    assert len(lines) == 2 and all("SERVFAIL" in line for line in lines)  # the service, the pod
    proxy.reset()
    assert len(r.resolve(fresh.short, 8080)) == 6


def test_answers_truncated_over_tcp_are_a_clear_error(bind, proxy):
    """TC on TCP (an answer over 64 KiB): ResolutionError naming the service and the way
    out, for A/AAAA and SRV, sync and asyncio; never a partial set."""
    proxy.set(tcp_truncate=True)
    r = resolver(proxy, timeout=2.0)
    with pytest.raises(hc.ResolutionError, match=r"big\.prod.*does not fit.*resolve_statefulset"):
        r.resolve("big.prod", 8080)
    with pytest.raises(hc.ResolutionError, match=r"big\.prod.*does not fit.*int port"):
        r.resolve("big.prod", "http")
    ar = hc.AsyncResolver([proxy.nameserver], timeout=2.0)
    with pytest.raises(hc.ResolutionError, match="resolve_statefulset"):
        asyncio.run(ar.resolve("big.prod", 8080))


# -- the drivers -----------------------------------------------------------------------------------------


def test_a_static_plan_completes_without_io(bind):
    """replicas=0: the plan asks nothing; both drivers return at once, no socket opened."""
    r = hc.Resolver([bind.nameserver])
    before = own_socket_count()
    assert len(run_lookup(r.statefulset_lookup("web", namespace="prod", replicas=0))) == 0
    assert len(asyncio.run(run_lookup_async(r.statefulset_lookup("web", namespace="prod", replicas=0)))) == 0
    with Multiplexer() as mux:
        results = []
        mux.submit(r.statefulset_lookup("web", namespace="prod", replicas=0), lambda v, e: results.append((v, e)))
        assert mux.next_deadline() is not None
        mux.poll(0)
        assert len(results) == 1 and len(results[0][0]) == 0 and results[0][1] is None
    assert own_socket_count() == before


def _poll_until(mux, predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate():
        left = deadline - time.monotonic()
        assert left > 0, "multiplexer did not finish in time"
        at = mux.next_deadline()
        mux.poll(left if at is None else min(left, max(at - time.monotonic(), 0.0)))


def test_multiplexer_50_lookups_and_a_black_hole_delays_only_its_own(bind, silent):
    """49 lookups to BIND and one to a black-holed server, all at once on one thread:
    the 49 finish while the black-holed one is still waiting; descriptors go back to baseline."""
    good = hc.Resolver([bind.nameserver], timeout=10.0)
    stuck = hc.Resolver([silent], timeout=60.0)
    before = own_socket_count()
    done: dict[int, tuple[object, BaseException | None]] = {}
    with Multiplexer() as mux:
        baseline = mux.descriptor_count()
        blackholed = mux.submit(stuck.service_lookup("web.prod", 8080), lambda v, e: done.__setitem__(-1, (v, e)))
        for i in range(49):
            # Small answers over UDP, SRV with glue, and 1000-pod answers over TCP.
            lookup = good.service_lookup("big.prod", 8080) if i % 7 == 0 else good.service_lookup(
                "web.prod", "http" if i % 2 else 8080
            )
            mux.submit(lookup, lambda v, e, i=i: done.__setitem__(i, (v, e)))
        assert mux.descriptor_count() > baseline
        _poll_until(mux, lambda: all(i in done for i in range(49)), 30)
        assert -1 not in done and not blackholed.finished  # the black hole holds nobody else up
        assert all(e is None for v, e in done.values())
        assert {len(done[i][0]) for i in range(49) if i % 7} == {3}
        assert {len(done[i][0]) for i in range(0, 49, 7)} == {1000}
        mux.cancel(blackholed)
        short = hc.Resolver([silent], timeout=0.5)
        mux.submit(short.service_lookup("web.prod", 8080), lambda v, e: done.__setitem__(-2, (v, e)))
        _poll_until(mux, lambda: -2 in done, 10)
        assert isinstance(done[-2][1], hc.ResolutionError) and "did not answer" in str(done[-2][1])
        assert -1 not in done  # cancelled: never called back
        assert mux.descriptor_count() == baseline
    assert own_socket_count() == before


def test_multiplexer_cancel_wake_and_callback_errors(bind, silent, caplog):
    """cancel() closes a lookup's sockets without calling back; wake() ends a blocked poll;
    a raising callback is logged and the others still run."""
    r = hc.Resolver([silent], timeout=5.0)
    calls = []
    with Multiplexer() as mux:
        baseline = mux.descriptor_count()
        job = mux.submit(r.service_lookup("web.prod", 8080), lambda v, e: calls.append("cancelled"))
        assert mux.descriptor_count() == baseline + 1
        mux.cancel(job)
        assert mux.descriptor_count() == baseline and job.finished
        mux.wake()
        mux.poll(None)  # returns at once: the wake-up
        good = hc.Resolver([bind.nameserver], timeout=5.0)

        def boom(value, error):
            raise RuntimeError("callback bug")

        caplog.set_level(logging.ERROR, logger="headless_client")
        mux.submit(good.service_lookup("web.prod", 8080), boom)
        mux.submit(good.service_lookup("web.prod", 8080), lambda v, e: calls.append(len(v)))
        _poll_until(mux, lambda: 3 in calls, 5)
        assert "callback bug" in caplog.text
    assert calls == [3]
    with pytest.raises(hc.HeadlessClientError, match="closed"):
        mux.poll(0)
    mux.wake()  # harmless after close
    assert mux.descriptor_count() == 0


def _wait_child(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"forked child {pid} did not finish within {timeout}s")


def test_reset_after_fork_in_a_real_child_leaves_the_parent_alone(bind, proxy):
    """Lookups in flight (answers held back 0.5 s), then os.fork(): the child resets, sees
    only its own descriptors and resolves on its own; the parent's lookups finish unharmed."""
    proxy.set(delay=0.5)
    r = hc.Resolver([proxy.nameserver], timeout=5.0)
    direct = hc.Resolver([bind.nameserver], timeout=5.0)
    done: dict[int, tuple[object, BaseException | None]] = {}
    with Multiplexer() as mux:
        baseline = mux.descriptor_count()
        for i in range(5):
            mux.submit(r.service_lookup("web.prod", "http" if i % 2 else 8080), lambda v, e, i=i: done.__setitem__(i, (v, e)))
        mux.poll(0.05)
        assert mux.descriptor_count() > baseline and not done
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads (3.12+)
            pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                mux.reset_after_fork()
                ok = mux.descriptor_count() == baseline
                got = []
                mux.submit(direct.service_lookup("web.prod", 8080), lambda v, e: got.append((v, e)))
                deadline = time.monotonic() + 5
                while not got and time.monotonic() < deadline:
                    mux.poll(0.1)
                ok = ok and bool(got) and got[0][1] is None and len(got[0][0]) == 3 and not done
                mux.close()
                code = 0 if ok else 1
            finally:
                os._exit(code)
        assert _wait_child(pid, 10) == 0
        _poll_until(mux, lambda: len(done) == 5, 10)
        assert all(e is None and len(v) == 3 for v, e in done.values())
        assert mux.descriptor_count() == baseline
