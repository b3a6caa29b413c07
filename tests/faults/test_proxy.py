"""The fault proxy itself: every mode does what it says, and the proxy stays bounded.

Runs against :class:`tests.faults.upstream.StaticServer` (no BIND needed), with the
library's own resolver as the client where that is the interesting observer.
"""

from __future__ import annotations

import socket
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

import headless_client as hc
from tests.fakezone import FakeZone, statefulset
from tests.faults import REFUSED, SERVFAIL, FaultProxy, Faults, ProxyError
from tests.faults.packets import MALFORMED_KINDS, parse_query, with_wrong_id
from tests.faults.upstream import StaticServer

SVC = "web.prod.svc.cluster.local"
ADDRESSES = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(3)]
BIG = [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(200)]


@pytest.fixture(name="upstream")
def _upstream():
    records = statefulset("web", "prod", ADDRESSES)
    records.update(statefulset("big", "prod", BIG))
    with StaticServer(FakeZone(records, ttl=1)) as server:
        yield server


@pytest.fixture(name="proxy")
def _proxy(upstream):
    with FaultProxy(upstream.address, max_lifetime=60) as proxy:
        yield proxy
    assert proxy.errors == []


def resolver(proxy, timeout=0.3, **kw):
    return hc.Resolver([proxy.nameserver], timeout=timeout, **kw)


def raw(proxy, name=SVC, rdtype="A", *, tcp=False, timeout=1.0):
    query = dns.message.make_query(name + ".", rdtype)
    if tcp:
        return dns.query.tcp(query, proxy.host, port=proxy.port, timeout=timeout)
    return dns.query.udp(query, proxy.host, port=proxy.port, timeout=timeout)


def test_pass_through_udp_and_tcp(proxy, upstream):
    """Untouched, answers are the server's: small ones over UDP, big ones (TC) over TCP."""
    r = resolver(proxy)
    assert sorted(e.address for e in r.resolve("web.prod", 80)) == ADDRESSES
    assert [e.ordinal for e in r.resolve("web.prod", "http")] == [0, 1, 2]
    assert len(r.resolve("big.prod", 80)) == 200  # 200 A records do not fit: TC, then TCP
    # Every query is answered (a retransmitted one too, possibly after resolve() returned).
    stats = proxy.wait_until(lambda s: s["answered"] == s["udp_queries"] + s["tcp_queries"], timeout=3)
    assert stats["udp_queries"] >= 3 and stats["tcp_queries"] >= 1


def test_drop_all_times_out_and_counts(proxy):
    """Every datagram lost and TCP hanging: the resolver gives up within its timeout."""
    proxy.set(drop=1.0, tcp="hang")
    start = time.monotonic()
    with pytest.raises(hc.ResolutionError, match="did not answer"):
        resolver(proxy, timeout=0.25).resolve("web.prod", 80)
    assert time.monotonic() - start < 1.0
    assert proxy.stats["dropped_queries"] >= 2  # retransmissions were dropped too


def test_all_datagrams_lost_then_tcp_answers(proxy):
    """Every datagram lost but TCP served: past half its budget the resolver asks over TCP."""
    proxy.set(drop=1.0)
    assert len(resolver(proxy, timeout=1.0).resolve("web.prod", 80)) == 3
    assert proxy.stats["dropped_queries"] >= 2


def test_drop_share_applies_both_ways(proxy):
    """drop=0.5: about half the queries and half the surviving answers are lost."""
    proxy.set(drop=0.5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        for i in range(200):
            sock.sendto(dns.message.make_query(SVC + ".", "A", id=i).to_wire(), (proxy.host, proxy.port))
        stats = proxy.wait_until(
            lambda s: s["dropped_queries"] + s["dropped_answers"] + s["answered"] >= 200, timeout=5
        )
        sock.setblocking(False)
        got = 0
        for _ in range(200):
            try:
                sock.recv(4096)
            except BlockingIOError:
                break
            got += 1
    assert 60 <= stats["dropped_queries"] <= 140
    assert 25 <= stats["dropped_answers"] <= 80
    assert got == stats["answered"] == 200 - stats["dropped_queries"] - stats["dropped_answers"]


def test_delay_holds_answers(proxy):
    proxy.set(delay=0.2)
    for tcp in (False, True):
        start = time.monotonic()
        raw(proxy, tcp=tcp)
        assert 0.19 <= time.monotonic() - start < 1.0
    assert proxy.stats["delayed"] == 2


@pytest.mark.parametrize(("rcode", "text"), [(SERVFAIL, "SERVFAIL"), (REFUSED, "REFUSED")])
def test_rcode_answers_without_asking(proxy, upstream, rcode, text):
    proxy.set(rcode=rcode)
    with pytest.raises(hc.ResolutionError, match=text):
        resolver(proxy).resolve("web.prod", 80)
    assert upstream.asked == 0
    assert raw(proxy, tcp=True).rcode() == rcode


def test_truncate_without_tcp_service(proxy):
    proxy.set(truncate=True)
    reply = raw(proxy)
    assert reply.flags & dns.flags.TC and not reply.answer
    with pytest.raises(hc.ResolutionError):
        resolver(proxy).resolve("web.prod", 80)
    assert proxy.stats["tcp_closed"] >= 1


@pytest.mark.parametrize("fault", ["wrong_id", "wrong_question", "noise"])
def test_unmatchable_answers_are_ignored_until_timeout(proxy, fault):
    proxy.set(**{fault: True})
    with pytest.raises(hc.ResolutionError, match="did not answer"):
        resolver(proxy, timeout=0.25).resolve("web.prod", 80)
    assert proxy.stats["answered"] >= 2  # something did come back, and was not taken


def test_spoofed_answers_before_the_real_one(proxy):
    """A forged copy (wrong ID, wrong question) arrives first; the real answer still wins."""
    proxy.set(spoof_first=True)
    r = resolver(proxy)
    assert sorted(e.address for e in r.resolve("web.prod", 80)) == ADDRESSES
    assert len(r.resolve("big.prod", 80)) == 200  # the TCP path too
    assert proxy.stats["spoofed"] >= 6


def test_garbage_body_is_a_malformed_answer(proxy):
    proxy.set(garbage=True)
    with pytest.raises(hc.ResolutionError):
        resolver(proxy).resolve("web.prod", "http")


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
@pytest.mark.parametrize("port", [80, "http"])
def test_malformed_answers(proxy, kind, port):
    proxy.set(malformed=kind)
    with pytest.raises(hc.ResolutionError) as info:
        resolver(proxy).resolve("web.prod", port)
    assert "did not answer" not in str(info.value)  # it was answered, and refused


def test_oversized_answers(proxy):
    """As many records as fit in one message: over UDP (60+ KB datagram) and over TCP."""
    proxy.set(oversized=100_000)
    reply = raw(proxy, timeout=2)
    assert 3000 < len(reply.answer[0]) <= 4100
    assert 3000 < len(raw(proxy, tcp=True, timeout=2).answer[0]) <= 4100
    with pytest.raises(hc.ResolutionError, match="max_records=100"):
        resolver(proxy, max_records=100).resolve("web.prod", 80)


def test_blackhole_udp_and_tcp(proxy):
    proxy.set(blackhole=True)
    for tcp in (False, True):
        with pytest.raises(dns.exception.Timeout):
            raw(proxy, tcp=tcp, timeout=0.2)
    stats = proxy.stats
    assert stats["blackholed"] == 2 and stats.get("answered", 0) == 0
    proxy.reset()
    assert raw(proxy).answer


def test_tcp_hang_and_close(proxy):
    with proxy.applied(tcp="hang"):
        with pytest.raises(dns.exception.Timeout):
            raw(proxy, tcp=True, timeout=0.3)
        assert raw(proxy).answer  # UDP unaffected
    with proxy.applied(tcp="close"), pytest.raises((EOFError, OSError)):
        raw(proxy, tcp=True, timeout=0.3)
    assert proxy.faults == Faults()


def test_transform_rewrites_real_answers(proxy):
    proxy.set(transform=with_wrong_id)
    with pytest.raises(hc.ResolutionError):
        resolver(proxy, timeout=0.2).resolve("web.prod", 80)
    proxy.set(transform=lambda answer: None)
    with pytest.raises(hc.ResolutionError):
        resolver(proxy, timeout=0.2).resolve("web.prod", 80)
    assert proxy.stats["dropped_answers"] >= 1


def test_wait_until_and_describe(proxy):
    proxy.set(blackhole=True, delay=0.1)
    assert proxy.faults.describe() == "delay=0.1, blackhole=True"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(dns.message.make_query(SVC + ".", "A").to_wire(), (proxy.host, proxy.port))
        assert proxy.wait_until(lambda s: s["blackholed"] >= 1, timeout=2)["blackholed"] == 1
    with pytest.raises(TimeoutError):
        proxy.wait_until(lambda s: s["blackholed"] >= 2, timeout=0.1)


def test_bad_settings_rejected(proxy):
    for bad in (dict(drop=1.5), dict(delay=-1), dict(rcode=0), dict(malformed="x"), dict(tcp="x"),
                dict(oversized=-1), dict(tcp_max_questions=-1)):
        with pytest.raises(ValueError):
            proxy.set(**bad)
    assert proxy.faults == Faults()


def test_loopback_only():
    with pytest.raises(ProxyError, match="loopback"):
        FaultProxy(("10.0.0.1", 53))
    with pytest.raises(ProxyError, match="loopback"):
        FaultProxy(("127.0.0.1", 53), host="0.0.0.0")


def test_max_lifetime_stops_it_and_frees_the_port(upstream):
    """The proxy stops by itself after max_lifetime, closing its sockets."""
    proxy = FaultProxy(upstream.address, max_lifetime=0.3)
    port = proxy.port
    proxy._thread.join(3)
    assert not proxy.running and proxy.expired
    proxy.close()
    proxy.close()  # twice is harmless
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", port))  # the UDP socket was closed


def test_flights_expire_when_the_server_is_silent():
    """Queries forwarded to a silent server are given up after flight_timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        with FaultProxy(silent.getsockname(), flight_timeout=0.2, max_lifetime=30) as proxy:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.sendto(dns.message.make_query(SVC + ".", "A").to_wire(), (proxy.host, proxy.port))
                proxy.wait_until(lambda s: s["timed_out"] >= 1, timeout=3)
            assert not proxy._flights


def test_parse_query_rejects_non_queries():
    query = dns.message.make_query(SVC + ".", "SRV").to_wire()
    parsed = parse_query(query)
    assert parsed is not None and parsed.qtype == 33 and parsed.labels[0] == b"web"
    assert parse_query(query[:11]) is None
    assert parse_query(query[:20]) is None
    response = dns.message.make_response(dns.message.from_wire(query)).to_wire()
    assert parse_query(response) is None


def _pipelined(proxy, count):
    """Send *count* A queries pipelined on one TCP connection; return the answers read
    before the proxy closed it (bounded by a timeout)."""
    queries = [dns.message.make_query(f"web-{i % 3}.{SVC}.", "A") for i in range(count)]
    answers = []
    with socket.create_connection((proxy.host, proxy.port), timeout=2) as sock:
        sock.sendall(b"".join(len(w).to_bytes(2, "big") + w for w in (q.to_wire() for q in queries)))
        inbox = b""
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            inbox += chunk
        while len(inbox) >= 2:
            size = int.from_bytes(inbox[:2], "big")
            answers.append(dns.message.from_wire(inbox[2 : 2 + size]))
            inbox = inbox[2 + size :]
    return answers


def test_tcp_question_cap_closes_the_connection_after_n_answers(proxy):
    """tcp_max_questions=5: ten pipelined questions get five answers, then the close."""
    proxy.set(tcp_max_questions=5)
    assert len(_pipelined(proxy, 10)) == 5
    stats = proxy.stats
    assert stats["capped_connections"] == 1 and stats["over_cap"] == 5
    proxy.reset()
    assert len(_pipelined(proxy, 10)) == 10


def test_tcp_refuse_closes_the_listener_and_brings_it_back(proxy):
    """tcp="refuse": connects are refused (UDP still answers); afterwards TCP serves again."""
    with proxy.applied(tcp="refuse"):
        with pytest.raises(ConnectionRefusedError):
            raw(proxy, tcp=True, timeout=0.5)
        assert raw(proxy).answer
    assert raw(proxy, tcp=True).answer


def test_tcp_truncate_sets_tc_on_tcp_answers(proxy):
    proxy.set(tcp_truncate=True)
    reply = raw(proxy, tcp=True)
    assert reply.flags & dns.flags.TC and reply.answer
    assert not raw(proxy).flags & dns.flags.TC


def test_library_resolves_through_a_capped_and_a_refusing_proxy(proxy):
    """The library's exchange copes with both: a 2-question cap, and no TCP at all."""
    r = resolver(proxy, timeout=2.0)
    with proxy.applied(tcp_max_questions=2):
        assert len(r.resolve("big.prod", 80)) == 200  # TC by UDP, then TCP within the cap
    with proxy.applied(tcp="refuse"):
        with pytest.raises(hc.ResolutionError, match="Connection refused"):
            r.resolve("big.prod", 80)  # 200 A records do not fit a datagram
        assert len(r.resolve("web.prod", 80)) == 3
