"""headless_client.testing: StaticResolver, FakeClusterDNS (with the real Resolver and
HeadlessService) and the pytest plugin."""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import queue
import socket
import threading
import time
import warnings
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from headless_client import (
    AsyncHeadlessService,
    Endpoint,
    EndpointSet,
    HeadlessService,
    InvalidName,
    NoEndpointsAvailable,
    NotGoverningService,
    NotHeadless,
    ResolutionError,
    Resolver,
    RoundRobin,
    ServiceNotFound,
    Sticky,
)
from headless_client.testing import (
    AsyncStaticResolver,
    FakeClusterDNS,
    FakeKubeAPI,
    FakePod,
    StaticResolver,
    statefulset_endpoints,
)

pytest_plugins = ["pytester", "headless_client.testing.pytest_plugin"]

FAST = {"min_refresh": 0.05, "max_refresh": 0.2, "empty_grace": 0.0}


def read_line(sock: socket.socket, timeout: float = 2.0) -> str:
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\n") and len(data) < 4096:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def ask(address: str, port: int, line: str | None = None) -> tuple[str, str | None]:
    with socket.create_connection((address, port), timeout=2) as sock:
        greeting = read_line(sock)
        reply = None
        if line is not None:
            sock.sendall(line.encode() + b"\n")
            reply = read_line(sock)
        return greeting, reply


def raw(cluster: FakeClusterDNS, name: str, rdtype: str, *, tcp: bool = False,
        payload: int | None = 1232) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=payload is not None, payload=payload or 512)
    if tcp:
        return dns.query.tcp(query, cluster.host, port=cluster.port, timeout=2)
    return dns.query.udp(query, cluster.host, port=cluster.port, timeout=2, ignore_trailing=True)


def wait_view(svc: HeadlessService, predicate, what: str, timeout: float = 5.0) -> EndpointSet:
    """Block until the service publishes a view satisfying *predicate* (event-driven)."""
    events: queue.Queue[EndpointSet] = queue.Queue()
    unsubscribe = svc.subscribe(lambda old, new: events.put(new))
    try:
        if predicate(svc.endpoints):
            return svc.endpoints
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no view with {what} within {timeout}s: {svc.endpoints}")
            try:
                view = events.get(timeout=left)
            except queue.Empty:
                continue
            if predicate(view):
                return view
    finally:
        unsubscribe()


@pytest.fixture
def cluster() -> Iterator[FakeClusterDNS]:
    with FakeClusterDNS() as c:
        yield c


# --------------------------------------------------------------------------------------------
# StaticResolver
# --------------------------------------------------------------------------------------------


class TestStaticResolver:
    def test_named_port_returns_the_configured_set(self) -> None:
        eps = statefulset_endpoints("web", "prod", ["10.0.0.1", "10.0.0.2"], port=8080)
        r = StaticResolver({"web.prod": eps})
        got = r.resolve("web.prod", port="http")
        assert got == EndpointSet(eps)
        assert got.name == "web.prod.svc.cluster.local"
        assert [ep.ordinal for ep in got] == [0, 1]
        assert got[0].hostname == "web-0.web.prod.svc.cluster.local"
        # The same key however the name is written.
        assert r.resolve("web.prod.svc.cluster.local", port="http") == got
        assert r.resolve("web", port="http", namespace="prod") == got

    def test_int_port_gives_every_endpoint_that_port(self) -> None:
        r = StaticResolver({"web.prod": ["10.0.0.1", "10.0.0.2:9000", "[fd00::1]:7"]})
        got = r.resolve("web.prod", port=8080)
        assert {(ep.address, ep.port) for ep in got} == {("10.0.0.1", 8080), ("10.0.0.2", 8080), ("fd00::1", 8080)}
        assert {ep.port for ep in r.resolve("web.prod", port="http")} == {0, 9000, 7}

    def test_missing_or_emptied_service_is_nxdomain(self) -> None:
        r = StaticResolver({"web.prod": ["10.0.0.1:80"]}, namespace="prod")
        with pytest.raises(ServiceNotFound, match="other.prod.svc.cluster.local"):
            r.resolve("other", 80)
        r.remove("web", "10.0.0.1")
        with pytest.raises(ServiceNotFound):
            r.resolve("web", 80)
        r.set("web", ["10.0.0.5:80"])
        assert [ep.address for ep in r.resolve("web", 80)] == ["10.0.0.5"]
        r.set("web", [])
        with pytest.raises(ServiceNotFound):
            r.resolve("web", 80)
        r.add("web", "10.0.0.6:80", "10.0.0.7:80")
        assert len(r.configured("web")) == 2
        r.delete("web")
        with pytest.raises(ServiceNotFound):
            r.resolve("web", 80)

    def test_validates_like_the_real_resolver(self) -> None:
        r = StaticResolver({"web.prod": ["10.0.0.1:80"]})
        with pytest.raises(InvalidName):
            r.resolve("web.prod", port=70000)
        with pytest.raises(InvalidName):
            r.resolve("Bad_Name.prod", port=80)
        with pytest.raises(InvalidName):
            r.resolve_pod("web", -1, namespace="prod")
        with pytest.raises(InvalidName):
            StaticResolver({"web.prod": ["not-an-address"]})
        with pytest.raises(TypeError):
            StaticResolver({"web.prod": [42]})  # type: ignore[list-item]

    def test_errors_global_and_per_service(self) -> None:
        r = StaticResolver({"web.prod": ["10.0.0.1:80"], "db.prod": ["10.0.0.2:80"]})
        r.set_error("SERVFAIL from the fake", "web.prod")
        with pytest.raises(ResolutionError, match="SERVFAIL from the fake"):
            r.resolve("web.prod", 80)
        assert len(r.resolve("db.prod", 80)) == 1
        r.set_error(ResolutionError("everything is down"))
        with pytest.raises(ResolutionError, match="everything is down"):
            r.resolve("db.prod", 80)
        r.set_error(None)
        r.set_error(None, "web.prod")
        assert len(r.resolve("web.prod", 80)) == 1
        with pytest.raises(TypeError):
            r.set_error(ValueError("no"))  # type: ignore[arg-type]
        assert ("resolve", "web.prod.svc.cluster.local") in r.calls

    def test_pods_hosts_and_statefulsets(self) -> None:
        eps = statefulset_endpoints("web", "prod", ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
        r = StaticResolver({"web.prod": [eps[0], eps[2]]})  # web-1 missing: a gap
        pod = r.resolve_pod("web", 2, namespace="prod", port=9000)
        assert (pod.address, pod.port, pod.ordinal) == ("10.0.0.3", 9000, 2)
        assert r.resolve_pod("web", 0, namespace="prod").port == 0
        with pytest.raises(ServiceNotFound, match="web-1"):
            r.resolve_pod("web", 1, namespace="prod")
        host = r.resolve_host("web-0.web.prod.svc.cluster.local.", 80)
        assert [(ep.address, ep.port) for ep in host] == [("10.0.0.1", 80)]
        sts = r.resolve_statefulset("web", namespace="prod", port=8080)
        assert [ep.ordinal for ep in sts] == [0, 2]
        assert r.resolve_statefulset("web", namespace="prod", replicas=1).ordinals == (0,)
        assert len(r.resolve_statefulset("web", namespace="prod", max_gap=1)) == 1
        with pytest.raises(ServiceNotFound):
            r.resolve_statefulset("db", namespace="prod")

    def test_drives_a_headless_service(self) -> None:
        r = StaticResolver({"web.prod": statefulset_endpoints("web", "prod", ["10.0.0.1", "10.0.0.2"])})
        with HeadlessService("web.prod", port="http", resolver=r, strategy=Sticky(), **FAST) as svc:
            assert len(svc.endpoints) == 2
            owner = svc.pick("user-42")
            r.add("web.prod", Endpoint("10.0.0.3", 8080, "web-2.web.prod.svc.cluster.local", 2))
            assert len(svc.refresh()) == 3
            r.set_error("SERVFAIL")
            with pytest.raises(ResolutionError):
                svc.refresh()
            assert len(svc.endpoints) == 3  # the last good view is kept
            r.set_error(None)
            r.delete("web.prod")
            assert len(svc.refresh()) == 0
            with pytest.raises(NoEndpointsAvailable):
                svc.pick("user-42")
        assert owner.address in {"10.0.0.1", "10.0.0.2"}

    def test_async_twin_shares_the_table(self) -> None:
        r = StaticResolver({"web.prod": ["10.0.0.1:80"]})
        ar = r.as_async()
        assert isinstance(ar, AsyncStaticResolver)

        async def scenario() -> None:
            async with AsyncHeadlessService("web.prod", port=80, resolver=ar, **FAST) as svc:
                assert len(svc.endpoints) == 1
                r.add("web.prod", "10.0.0.2:80")
                assert len(await svc.refresh()) == 2
            with pytest.raises(ServiceNotFound):
                await ar.resolve_pod("web", 0, namespace="prod")
            own = AsyncStaticResolver({"db.prod": statefulset_endpoints("db", "prod", ["10.0.1.1"])})
            assert (await own.resolve_pod("db", 0, namespace="prod")).address == "10.0.1.1"
            assert len(await own.resolve_statefulset("db", namespace="prod")) == 1
            assert len(await own.resolve_host("db-0.db.prod.svc.cluster.local")) == 1

        asyncio.run(scenario())


# --------------------------------------------------------------------------------------------
# FakeClusterDNS: the zone's shape
# --------------------------------------------------------------------------------------------


class TestZoneShape:
    def test_statefulset_records_like_coredns(self, cluster: FakeClusterDNS) -> None:
        pods = cluster.add_statefulset("web", "prod", 3)
        assert [p.name for p in pods] == ["web-0", "web-1", "web-2"]
        srv = raw(cluster, "_http._tcp.web.prod.svc.cluster.local.", "SRV")
        assert srv.rcode() == dns.rcode.NOERROR and srv.flags & dns.flags.AA
        records = sorted(rd.to_text() for rd in srv.answer[0])
        assert records == [f"0 33 8080 web-{i}.web.prod.svc.cluster.local." for i in range(3)]
        glue = {rrset.name.to_text(): [rd.to_text() for rd in rrset] for rrset in srv.additional}
        assert glue == {p.hostname + ".": [p.address] for p in pods}
        a = raw(cluster, "web.prod.svc.cluster.local.", "A")
        assert sorted(rd.to_text() for rd in a.answer[0]) == sorted(p.address for p in pods)
        assert a.answer[0].ttl == 1
        pod = raw(cluster, "web-1.web.prod.svc.cluster.local.", "A")
        assert [rd.to_text() for rd in pod.answer[0]] == [pods[1].address]
        # SRV of the service name itself lists every named port.
        assert len(raw(cluster, "web.prod.svc.cluster.local.", "SRV").answer[0]) == 3
        reverse = ".".join(reversed(pods[2].address.split("."))) + ".in-addr.arpa."
        ptr = raw(cluster, reverse, "PTR")
        assert [rd.to_text() for rd in ptr.answer[0]] == ["web-2.web.prod.svc.cluster.local."]

    def test_nxdomain_nodata_and_empty_services(self, cluster: FakeClusterDNS) -> None:
        cluster.add_statefulset("web", "prod", 1)
        assert raw(cluster, "nope.prod.svc.cluster.local.", "A").rcode() == dns.rcode.NXDOMAIN
        assert raw(cluster, "example.com.", "A").rcode() == dns.rcode.NXDOMAIN
        nodata = raw(cluster, "prod.svc.cluster.local.", "A")  # an empty non-terminal
        assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
        assert raw(cluster, "web.prod.svc.cluster.local.", "AAAA").answer == []
        cluster.scale("web", "prod", 0)  # zero ready pods: NXDOMAIN, like CoreDNS
        for name, rdtype in [("web.prod.svc.cluster.local.", "A"),
                             ("_http._tcp.web.prod.svc.cluster.local.", "SRV")]:
            assert raw(cluster, name, rdtype).rcode() == dns.rcode.NXDOMAIN
        cluster.add_service("empty", "prod")
        assert raw(cluster, "empty.prod.svc.cluster.local.", "A").rcode() == dns.rcode.NXDOMAIN
        r = cluster.resolver()
        with pytest.raises(ServiceNotFound):
            r.resolve("web.prod", "http")

    def test_big_answers_truncate_over_udp_and_complete_over_tcp(self, cluster: FakeClusterDNS) -> None:
        cluster.add_statefulset("big", "prod", 120)
        udp = raw(cluster, "big.prod.svc.cluster.local.", "A")
        # Like CoreDNS (miekg/dns Truncate): what fits, with TC set.
        assert udp.flags & dns.flags.TC and 0 < len(udp.answer[0]) < 120
        tcp = raw(cluster, "big.prod.svc.cluster.local.", "A", tcp=True)
        assert len(tcp.answer[0]) == 120
        small = raw(cluster, "_http._tcp.big.prod.svc.cluster.local.", "SRV", payload=None)
        assert small.flags & dns.flags.TC  # 512 bytes without EDNS
        r = cluster.resolver()
        got = r.resolve("big.prod", "http")
        assert len(got) == 120 and got.ordinals == tuple(range(120))
        assert any(t == "tcp" for _, _, t in cluster.queries)

    def test_without_glue_the_resolver_looks_targets_up(self, cluster: FakeClusterDNS) -> None:
        cluster.add_statefulset("web", "prod", 4)
        cluster.glue = False
        assert not raw(cluster, "_http._tcp.web.prod.svc.cluster.local.", "SRV").additional
        got = cluster.resolver().resolve("web.prod", "http")
        assert [p.address for p in cluster.pods("web", "prod")] == [ep.address for ep in got]
        assert sum(1 for name, _, _ in cluster.queries if name.startswith("web-")) >= 4

    def test_unnamed_port_unready_and_publish_not_ready(self, cluster: FakeClusterDNS) -> None:
        cluster.add_statefulset("kv", "prod", 2, port_name=None, port=6379)
        r = cluster.resolver()
        with pytest.raises(ServiceNotFound):
            r.resolve("kv.prod", "http")  # no SRV for an unnamed port
        assert len(r.resolve("kv.prod", 6379)) == 2
        assert r.resolve_statefulset("kv", namespace="prod", port=6379).ordinals == (0, 1)
        cluster.set_ready("kv", "prod", 1, ready=False)
        assert len(r.resolve("kv.prod", 6379)) == 1
        assert r.resolve_statefulset("kv", namespace="prod").ordinals == (0,)
        cluster.add_statefulset("zk", "prod", 2, publish_not_ready=True)
        cluster.set_ready("zk", "prod", 0, ready=False)
        assert len(r.resolve("zk.prod", "http")) == 2
        assert cluster.pod("zk", "prod", 0).ready is False

    def test_endpoints_without_hostname_and_ipv6(self, cluster: FakeClusterDNS) -> None:
        cluster.add_service("api", "prod", port_name="grpc", port=9090)
        cluster.add_endpoint("api", "prod", "10.244.1.20")
        v6 = cluster.add_endpoint("api", "prod", "fd00:10::a")
        assert v6.hostname == "fd00-10--a.api.prod.svc.cluster.local"
        r = cluster.resolver()
        got = r.resolve("api.prod", "grpc")
        assert {(ep.address, ep.hostname) for ep in got} == {
            ("10.244.1.20", "10-244-1-20.api.prod.svc.cluster.local"),
            ("fd00:10::a", "fd00-10--a.api.prod.svc.cluster.local"),
        }
        assert all(ep.ordinal is None and ep.port == 9090 for ep in got)
        cluster.remove_endpoint("api", "prod", "10.244.1.20")
        assert [ep.address for ep in r.resolve("api.prod", 9090)] == ["fd00:10::a"]

    def test_changes(self, cluster: FakeClusterDNS) -> None:
        r = cluster.resolver()
        cluster.add_statefulset("web", "prod", 2, start=3, address_base="127.99.0.10")
        assert [(p.ordinal, p.address) for p in cluster.pods("web", "prod")] == [
            (3, "127.99.0.10"), (4, "127.99.0.11")]
        added = cluster.add_pod("web", "prod")
        assert added.ordinal == 5 and added.address == "127.99.0.12"
        cluster.add_pod("web", "prod", 9, address="127.99.1.1")
        assert r.resolve("web.prod", "http").ordinals == (3, 4, 5, 9)
        removed = cluster.remove_pod("web", "prod")  # the highest by default
        assert removed.ordinal == 9
        moved = cluster.reip_pod("web", "prod", 4)
        assert moved.address != "127.99.0.11"
        assert r.resolve_pod("web", 4, namespace="prod").address == moved.address
        assert len(cluster.scale("web", "prod", 1)) == 1  # keeps ordinal 3 only
        assert r.resolve("web.prod", "http").ordinals == (3,)
        cluster.delete_service("web", "prod")
        with pytest.raises(ServiceNotFound):
            r.resolve("web.prod", "http")
        with pytest.raises(LookupError):
            cluster.scale("web", "prod", 2)

    def test_bad_input(self, cluster: FakeClusterDNS) -> None:
        cluster.add_statefulset("web", "prod", 1, address_base="127.98.0.1")
        with pytest.raises(InvalidName):
            cluster.add_statefulset("web", "prod", 1)
        with pytest.raises(InvalidName):
            cluster.add_statefulset("Web", "prod", 1)
        with pytest.raises(InvalidName):
            cluster.add_pod("web", "prod", 0)
        with pytest.raises(InvalidName):
            cluster.add_pod("web", "prod", address="127.98.0.1")
        with pytest.raises(InvalidName):
            cluster.add_statefulset("db", "prod", 1, port=0)  # 0 only when serving
        with pytest.raises(LookupError, match="ordinals: 0"):
            cluster.remove_pod("web", "prod", 7)
        with pytest.raises(LookupError):
            cluster.kill_pod("web", "prod", 0)  # not served
        with pytest.raises(LookupError):
            cluster.pods("nope", "prod")
        with pytest.raises(InvalidName):
            cluster.fault = "explode"  # type: ignore[assignment]
        with pytest.raises(InvalidName):
            FakeClusterDNS(ttl=-1)
        with pytest.raises(InvalidName):
            FakeClusterDNS(address_base="nope")

    def test_lifecycle(self) -> None:
        cluster = FakeClusterDNS(cluster_domain="k8s.example", namespace="team")
        with pytest.raises(RuntimeError, match="not running"):
            _ = cluster.nameserver
        with cluster:
            assert cluster.nameserver == f"127.0.0.1:{cluster.port}"
            cluster.add_statefulset("web", replicas=1)  # the cluster's default namespace
            assert cluster.service_fqdn("web") == "web.team.svc.k8s.example"
            got = cluster.resolver().resolve("web", "http")
            assert got.name == "web.team.svc.k8s.example"
            assert "running" not in repr(cluster)
        cluster.close()  # twice is fine
        with pytest.raises(RuntimeError):
            cluster.start()

    def test_faults(self, cluster: FakeClusterDNS) -> None:
        cluster.add_statefulset("web", "prod", 2)
        r = cluster.resolver(timeout=0.3)
        cluster.fault = "servfail"
        with pytest.raises(ResolutionError, match="SERVFAIL"):
            r.resolve("web.prod", 8080)
        cluster.fault = "refused"
        with pytest.raises(ResolutionError, match="REFUSED"):
            r.resolve("web.prod", 8080)
        cluster.fault = "drop"
        with pytest.raises(ResolutionError, match="in time"):
            r.resolve("web.prod", 8080)
        cluster.fault = "truncate"
        cluster.clear_queries()
        assert len(r.resolve("web.prod", "http")) == 2
        assert {t for _, _, t in cluster.queries} == {"udp", "tcp"}
        cluster.fault = None
        assert cluster.fault is None

    def test_thread_safe_changes_while_resolving(self, cluster: FakeClusterDNS) -> None:
        cluster.add_statefulset("web", "prod", 3)
        r = cluster.resolver()
        errors: list[BaseException] = []
        stop = threading.Event()

        def resolve_loop() -> None:
            for _ in range(200):
                if stop.is_set():
                    return
                try:
                    got = r.resolve("web.prod", "http")
                    assert 1 <= len(got) <= 8
                except BaseException as exc:
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=resolve_loop) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for i in range(40):
                cluster.scale("web", "prod", 1 + i % 8)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        assert not errors


# --------------------------------------------------------------------------------------------
# FakeClusterDNS with HeadlessService and served pods
# --------------------------------------------------------------------------------------------


class TestLive:
    def test_refresher_notices_scale_up_and_down(self, cluster: FakeClusterDNS) -> None:
        cluster.add_statefulset("web", "prod", 2)
        with HeadlessService("web.prod", port="http", resolver=cluster.resolver(), **FAST) as svc:
            assert len(svc.endpoints) == 2
            cluster.scale("web", "prod", 5)
            assert svc.wait_for(5, timeout=5).ordinals == (0, 1, 2, 3, 4)
            cluster.scale("web", "prod", 3)
            wait_view(svc, lambda v: v.ordinals == (0, 1, 2), "3 pods")
            cluster.reip_pod("web", "prod", 1)
            new_address = cluster.pod("web", "prod", 1).address
            view = wait_view(svc, lambda v: v.by_ordinal(1).address == new_address, "web-1 moved")
            assert view.by_ordinal(1).hostname == "web-1.web.prod.svc.cluster.local"
            cluster.scale("web", "prod", 0)
            wait_view(svc, lambda v: len(v) == 0, "an empty view")

    def test_served_pods_greet_answer_and_die(self, cluster: FakeClusterDNS) -> None:
        pods = cluster.add_statefulset("web", "prod", 2, serve="tcp")
        assert pods[0].port == pods[1].port  # one service port, chosen free
        assert ask(pods[0].address, pods[0].port, "hello") == ("web-0", "web-0")
        cluster.set_handler(lambda pod, line: f"{pod.name} says {line.upper()}")
        assert ask(pods[1].address, pods[1].port, "hi") == ("web-1", "web-1 says HI")
        cluster.set_handler(None)
        assert cluster.pod("web", "prod", 1).requests == 1
        assert cluster.pod("web", "prod", 1).connections == 1
        killed = cluster.kill_pod("web", "prod", 0)
        assert killed.serving == "refuse"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((pods[0].address, pods[0].port), timeout=2).close()
        cluster.revive_pod("web", "prod", 0)
        assert ask(pods[0].address, pods[0].port) == ("web-0", None)
        cluster.hang_pod("web", "prod", 0)
        with socket.create_connection((pods[0].address, pods[0].port), timeout=2) as sock:
            sock.settimeout(0.2)
            with pytest.raises(TimeoutError):
                sock.recv(10)
        moved = cluster.reip_pod("web", "prod", 1)
        assert ask(moved.address, moved.port) == ("web-1", None)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((pods[1].address, pods[1].port), timeout=2).close()
        cluster.remove_pod("web", "prod", 1)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((moved.address, moved.port), timeout=2).close()

    def test_kill_resets_open_connections(self, cluster: FakeClusterDNS) -> None:
        (pod,) = cluster.add_statefulset("web", "prod", 1, serve="tcp")
        with socket.create_connection((pod.address, pod.port), timeout=2) as sock:
            assert read_line(sock) == "web-0"
            cluster.kill_pod("web", "prod", 0)
            sock.settimeout(2)
            with pytest.raises(ConnectionResetError):
                sock.recv(10)

    def test_http_pods(self, cluster: FakeClusterDNS) -> None:
        (pod,) = cluster.add_statefulset("web", "prod", 1, serve="http")
        conn = http.client.HTTPConnection(pod.address, pod.port, timeout=2)
        try:
            conn.request("GET", "/x", headers={"Host": "web.prod.svc.cluster.local"})
            resp = conn.getresponse()
            assert (resp.status, resp.read(), resp.getheader("X-Pod")) == (200, b"web-0", "web-0")
            assert resp.getheader("X-Request-Host") == "web.prod.svc.cluster.local"
            conn.request("POST", "/y", body=b"payload")  # keep-alive: same connection
            assert conn.getresponse().read() == b"web-0"
            conn.request("HEAD", "/z")
            head = conn.getresponse()
            assert head.status == 200 and head.read() == b""
            cluster.set_handler(lambda p, request: (503, "busy") if request == "GET /busy" else None)
            conn.request("GET", "/busy")
            busy = conn.getresponse()
            assert (busy.status, busy.read()) == (503, b"busy")
        finally:
            conn.close()
        assert cluster.pod("web", "prod", 0).requests == 4

    def test_connect_routes_around_a_killed_pod(self, cluster: FakeClusterDNS) -> None:
        cluster.add_statefulset("web", "prod", 3, serve="tcp")
        with HeadlessService("web.prod", port="http", resolver=cluster.resolver(),
                             strategy=RoundRobin(), **FAST) as svc:
            cluster.kill_pod("web", "prod", 1)
            seen = []
            for _ in range(6):
                with svc.connection(timeout=1) as sock:
                    seen.append(read_line(sock))
            assert "web-1" not in seen and set(seen) == {"web-0", "web-2"}
            assert svc.endpoint(ordinal=1) not in svc.healthy_endpoints  # ejected

    def test_pod_snapshot(self, cluster: FakeClusterDNS) -> None:
        (pod,) = cluster.add_statefulset("db", "prod", 1, service="db-headless", port=5432)
        assert pod == FakePod(
            name="db-0", namespace="prod", service="db-headless", statefulset="db", ordinal=0,
            address=pod.address, port=5432, hostname="db-0.db-headless.prod.svc.cluster.local", ready=True,
        )
        assert str(pod) == f"db-0 ({pod.address}:5432)"
        got = cluster.resolver().resolve_pod("db", 0, namespace="prod", service="db-headless")
        assert got.address == pod.address


# --------------------------------------------------------------------------------------------
# pytest plugin
# --------------------------------------------------------------------------------------------


def test_fixtures(fake_cluster: FakeClusterDNS, fake_resolver: Resolver) -> None:
    fake_cluster.add_statefulset("web", "default", 2)
    assert fake_resolver.resolve("web", "http").ordinals == (0, 1)


def test_fake_kube_api_fixture_serves_the_fake_clusters_model(
    fake_cluster: FakeClusterDNS, fake_kube_api: FakeKubeAPI
) -> None:
    """The fake_kube_api fixture lists what fake_cluster serves in DNS."""
    fake_cluster.add_statefulset("web", "prod", 2)
    conn = http.client.HTTPConnection(fake_kube_api.host, fake_kube_api.port, timeout=5)
    try:
        conn.request("GET", "/api/v1/namespaces/prod/pods")
        names = [p["metadata"]["name"] for p in json.loads(conn.getresponse().read())["items"]]
    finally:
        conn.close()
    assert names == [p.name for p in fake_cluster.pods("web", "prod")] == ["web-0", "web-1"]


def test_plugin_in_a_user_project(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["headless_client.testing.pytest_plugin"]\n')
    pytester.makepyfile(
        """
        from headless_client import HeadlessService

        def test_failover(fake_cluster, fake_resolver):
            fake_cluster.add_statefulset("db", "prod", replicas=2, serve="tcp")
            with HeadlessService("db.prod", port="http", resolver=fake_resolver) as svc:
                fake_cluster.kill_pod("db", "prod", 0)
                for _ in range(3):
                    with svc.connection(timeout=1) as sock:
                        assert sock.recv(16) == b"db-1\\n"
        """
    )
    result = pytester.runpytest_inprocess("-W", "error", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


class TestCoreDNSShapes:
    """Shapes the fake shares with CoreDNS (checked against real CoreDNS by the conformance suite)."""

    def test_max_tcp_queries_closes_the_connection_after_n(self) -> None:
        """With max_tcp_queries=3, three pipelined questions are answered, then the connection closes."""
        with FakeClusterDNS(max_tcp_queries=3) as cluster:
            cluster.add_statefulset("web", "prod", 1)
            with socket.create_connection((cluster.host, cluster.port), timeout=2) as sock:
                pipelined = b""
                for i in range(5):
                    wire = dns.message.make_query("web-0.web.prod.svc.cluster.local.", "A", id=i).to_wire()
                    pipelined += len(wire).to_bytes(2, "big") + wire
                sock.sendall(pipelined)  # one write: the server reads it all before closing
                data = b""
                while chunk := sock.recv(65536):  # bounded: the server closes after 3 answers
                    data += chunk
            answers = []
            while data:
                size = int.from_bytes(data[:2], "big")
                answers.append(dns.message.from_wire(data[2 : 2 + size]))
                data = data[2 + size :]
            assert [a.id for a in answers] == [0, 1, 2]
            cluster.max_tcp_queries = None
            assert raw(cluster, "web.prod.svc.cluster.local.", "A", tcp=True).answer
            with pytest.raises(InvalidName):
                cluster.max_tcp_queries = 0

    def test_cluster_ip_service_is_reported(self, caplog: pytest.LogCaptureFixture) -> None:
        """A ClusterIP Service raises NotHeadless; with cluster_ip='warn' its VIP comes back, warned once."""
        with FakeClusterDNS() as cluster:
            cluster.add_service("api", "prod", type="ClusterIP", cluster_ips=["127.96.0.7"], port=80)
            with pytest.raises(NotHeadless, match="api.prod.svc.cluster.local"):
                cluster.resolver().resolve("api.prod", 80)
            with pytest.raises(NotHeadless):
                cluster.resolver().resolve("api.prod", "http")
            lenient = cluster.resolver(cluster_ip="warn")
            with caplog.at_level("WARNING", logger="headless_client"):
                for _ in range(2):
                    assert [ep.address for ep in lenient.resolve("api.prod", 80)] == ["127.96.0.7"]
            assert sum("not headless" in r.getMessage() for r in caplog.records) == 1
            with pytest.raises(InvalidName):
                cluster.resolver(cluster_ip="ignore")

    def test_one_pod_headless_service_is_checked_once(self) -> None:
        """A headless Service of one pod costs one extra SRV question, on the first resolution only."""
        with FakeClusterDNS() as cluster:
            cluster.add_statefulset("solo", "prod", 1)
            r = cluster.resolver()
            cluster.clear_queries()
            for _ in range(3):
                assert len(r.resolve("solo.prod", 8080)) == 1
            assert [t for _, t, _ in cluster.queries].count("SRV") == 1

    def test_statefulset_under_a_non_governing_service_is_an_error(self) -> None:
        """resolve_statefulset via a second headless Service says why instead of returning nothing."""
        with FakeClusterDNS() as cluster:
            cluster.add_statefulset("web", "prod", 3)
            cluster.add_service("peers", "prod", statefulset="web")
            r = cluster.resolver()
            assert len(r.resolve("peers.prod", "http")) == 3  # dashed names
            with pytest.raises(NotGoverningService, match="serviceName") as info:
                r.resolve_statefulset("web", namespace="prod", service="peers")
            assert info.value.statefulset == "web" and info.value.service == "peers.prod.svc.cluster.local"
            assert r.resolve_statefulset("web", namespace="prod").ordinals == (0, 1, 2)

    def test_unsynced_external_name_dual_stack_and_a_shared_model(self) -> None:
        """SERVFAIL before sync, ExternalName CNAMEs, dual-stack pods, and two servers on one model."""
        with FakeClusterDNS() as cluster, FakeClusterDNS(model=cluster.model) as twin:
            cluster.add_statefulset("db", "prod", 2, ip_families=("IPv4", "IPv6"))
            cluster.add_service("db-alias", "prod", type="ExternalName", external_name="db.prod.svc.cluster.local")
            cluster.add_service("outside", "prod", type="ExternalName", external_name="db.example.com")
            r = twin.resolver()
            assert len(r.resolve("db.prod", 5432)) == 4
            assert len(r.resolve("db-alias.prod", 5432)) == 4
            with pytest.raises(ResolutionError, match="outside"):
                r.resolve("outside.prod", 80)
            twin.fault = "unsynced"
            with pytest.raises(ResolutionError, match="SERVFAIL"):
                r.resolve("db.prod", 5432)
            assert raw(twin, "cluster.local.", "SOA").rcode() == dns.rcode.NOERROR


def test_an_unstarted_fake_cluster_dns_leaves_no_socket_behind() -> None:
    """Closed or dropped without start(), a FakeClusterDNS opened no socket that could leak
    into a later test's ResourceWarning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        FakeClusterDNS().close()
        dropped = FakeClusterDNS()
        del dropped
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
