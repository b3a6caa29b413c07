"""Conformance: the library gets the same results from real CoreDNS, BIND and FakeClusterDNS.

One :class:`~headless_client.testing.model.ClusterModel` is served three ways (see
:class:`tests.integration.coredns.Grounds`): real CoreDNS reading it through the fake
Kubernetes API, BIND holding the same records, and ``FakeClusterDNS``. Every case asks the
same question of all three through the library and requires identical results (endpoints
with address, port, hostname and ordinal; or the same error class), and checks that
result against the model. CoreDNS is the truth: where the fake differed, the fake was
fixed (see ``docs/testing.md``). A second group compares raw answers of CoreDNS and the
fake record by record (BIND differs on purpose in known ways: glue limit, compression,
empty non-terminals).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from headless_client import (
    Endpoint,
    EndpointSet,
    HeadlessClientError,
    HeadlessService,
    NotGoverningService,
    NotHeadless,
    ResolutionError,
    Resolver,
    ServiceNotFound,
)
from headless_client.records import addresses_from_answer, glue_from_message, srv_endpoints, srv_targets
from headless_client.testing import FakeClusterDNS
from headless_client.testing._zone import dashed
from headless_client.testing.kube_api import FakeKubeAPI
from headless_client.testing.model import SERVICE_LABEL, ClusterModel
from tests.faults.proxy import FaultProxy, Faults
from tests.integration.coredns import (
    GROUND_NAMES,
    CoreDNSServer,
    Grounds,
    corefile_default,
    corefile_kubeadm,
    corefile_nodelocal,
)

pytestmark = [pytest.mark.integration, pytest.mark.coredns]

ZONE = "cluster.local"
BIG = 1000


def _svc(name: str, ns: str = "prod") -> str:
    return f"{name}.{ns}.svc.{ZONE}"


# -- the static cluster -------------------------------------------------------------------------


def build_static(model: ClusterModel) -> None:
    """Services modelled on CoreDNS's own handler tests (``hdls1``, ``hdlsprtls``,
    ``svc1``, ``svc6``, ``svc-dual-stack``, ``external``) plus StatefulSet shapes."""
    with model.batch():
        model.add_service("web", "prod", ports=[("http", 8080)])
        model.add_statefulset("web", "prod", 3, address_base="127.31.1.1")
        model.add_service("web-peers", "prod", ports=[("http", 8080)],
                          selector={"headless-client.test/statefulset": "web"})
        model.add_service("dual", "prod", ports=[("http", 8080)], ip_families=("IPv4", "IPv6"))
        model.add_statefulset("dual", "prod", 2, address_base="127.31.2.1", address_base6="fd00:31:2::1")
        model.add_service("v6only", "prod", ports=[("http", 8080)], ip_families=("IPv6",))
        model.add_statefulset("v6only", "prod", 1, address_base6="fd00:31:3::1")
        model.add_service("empty", "prod", ports=[("http", 8080)])
        model.add_service("unready", "prod", ports=[("http", 8080)])
        model.add_statefulset("unready", "prod", 2, address_base="127.31.4.1")
        for ordinal in (0, 1):
            model.update_pod(f"unready-{ordinal}", "prod", ready=False)
        model.add_service("pnr", "prod", ports=[("http", 8080)], publish_not_ready=True)
        model.add_statefulset("pnr", "prod", 2, address_base="127.31.5.1")
        model.update_pod("pnr-1", "prod", ready=False)
        model.add_service("shifted", "prod", ports=[("http", 8080)])
        model.add_statefulset("shifted", "prod", 3, start=5, address_base="127.31.6.1")
        model.add_service("nameless", "prod", ports=[("", 6379)])
        model.add_statefulset("nameless", "prod", 2, address_base="127.31.7.1")
        model.add_service("multi", "prod", ports=[("http", 80), ("metrics", 9090), ("", 7000), ("dns", 53, "UDP")])
        model.add_statefulset("multi", "prod", 2, address_base="127.31.8.1")
        model.add_service("big", "prod", ports=[("http", 8080)])
        model.add_statefulset("big", "prod", BIG, address_base="127.32.0.1")
        model.add_service("external-to-web", "prod", type="ExternalName", external_name=f"web.prod.svc.{ZONE}")
        model.add_service("kafka-headless", "data", ports=[("kafka", 9092)])
        model.add_statefulset("kafka", "data", 3, service_name="kafka-headless", address_base="127.31.9.1")
        # CoreDNS's handler_test.go fixture, on loopback addresses.
        model.add_service("hdls1", "testns", ports=[("http", 80)], ip_families=("IPv4", "IPv6"))
        hdls1 = {SERVICE_LABEL: "hdls1"}
        model.add_pod("p2", "testns", ["127.30.0.2"], labels=hdls1)
        model.add_pod("p3", "testns", ["127.30.0.3"], labels=hdls1)
        model.add_pod("dup-a", "testns", ["127.30.0.4"], labels=hdls1, hostname="dup-name", subdomain="hdls1")
        model.add_pod("dup-b", "testns", ["127.30.0.5"], labels=hdls1, hostname="dup-name", subdomain="hdls1")
        model.add_pod("v6-a", "testns", ["5678:abcd::1"], labels=hdls1)
        model.add_pod("v6-b", "testns", ["5678:abcd::2"], labels=hdls1)
        model.add_service("hdlsprtls", "testns")
        model.add_pod("portless", "testns", ["127.30.0.20"], labels={SERVICE_LABEL: "hdlsprtls"})
        model.add_service("svc1", "testns", type="ClusterIP", ports=[("http", 80)], cluster_ips=["127.96.0.1"])
        model.add_pod("ep1a", "testns", ["127.30.1.1"], labels={SERVICE_LABEL: "svc1"},
                      hostname="ep1a", subdomain="svc1")
        model.add_service("svc6", "testns", type="ClusterIP", ports=[("http", 80)], ip_families=("IPv6",))
        model.add_service("svc-dual-stack", "testns", type="ClusterIP", ports=[("http", 80)],
                          ip_families=("IPv4", "IPv6"))
        model.add_service("db", "testns", type="ClusterIP", ports=[("pg", 5432)])
        model.add_statefulset("db", "testns", 2, address_base="127.31.10.1")
        model.add_service("external", "testns", type="ExternalName", external_name="ext.interwebs.test")


@pytest.fixture(scope="module")
def static(grounds: Grounds) -> Grounds:
    build_static(grounds.model)
    grounds.sync()
    return grounds


# -- outcomes -------------------------------------------------------------------------------------

Outcome = tuple[str, Any]


def outcome(call: Callable[[], object]) -> Outcome:
    """What the library gave: ``("ok", sorted endpoints)`` or ``("error", class name)``."""
    try:
        result = call()
    except HeadlessClientError as exc:
        return ("error", type(exc).__name__)
    if isinstance(result, Endpoint):
        result = [result]
    assert isinstance(result, (EndpointSet, list))
    return ("ok", tuple(sorted((ep.address, ep.port, ep.hostname, ep.ordinal) for ep in result)))


def ok(*endpoints: tuple[str, int, str | None, int | None]) -> Outcome:
    return ("ok", tuple(sorted(endpoints)))


def error(cls: type[BaseException]) -> Outcome:
    return ("error", cls.__name__)


def pods_of(model: ClusterModel, statefulset: str, ns: str = "prod", *, service: str | None = None,
            port: int = 8080, ready_only: bool = True, family: int | None = None) -> Outcome:
    """The expected SRV/identity endpoints of a StatefulSet, from the model."""
    svc = service or statefulset
    out = []
    for pod in model.statefulset_pods(statefulset, ns):
        if ready_only and not pod.ready:
            continue
        for address in pod.addresses:
            if family is not None and ipaddress.ip_address(address).version != family:
                continue
            out.append((address, port, f"{pod.name}.{svc}.{ns}.svc.{ZONE}", pod.ordinal))
    return ok(*out)


def addresses_of(model: ClusterModel, statefulset: str, ns: str = "prod", port: int = 8080) -> Outcome:
    """The expected A/AAAA endpoints (no identities) of a StatefulSet's ready pods."""
    return ok(*[(a, port, None, None) for p in model.statefulset_pods(statefulset, ns) if p.ready
                for a in p.addresses])


@dataclass(frozen=True)
class Case:
    """One question, asked through the library on every ground."""

    id: str
    ask: Callable[[Callable[..., Resolver]], object]
    expect: Callable[[ClusterModel], Outcome]


def hdls1_dashed(address: str, port: int = 80) -> tuple[str, int, str, None]:
    return (address, port, f"{dashed(address)}.hdls1.testns.svc.{ZONE}", None)


CASES = [
    # Headless A/AAAA and SRV (with glue).
    Case("headless-a", lambda r: r().resolve("web.prod", 8080), lambda m: addresses_of(m, "web")),
    Case("headless-srv-glue", lambda r: r().resolve("web.prod", "http"), lambda m: pods_of(m, "web")),
    Case("headless-aaaa-v6only", lambda r: r().resolve("v6only.prod", 8080), lambda m: addresses_of(m, "v6only")),
    Case("headless-srv-v6only", lambda r: r().resolve("v6only.prod", "http"), lambda m: pods_of(m, "v6only")),
    Case("dual-stack-a-aaaa", lambda r: r().resolve("dual.prod", 8080), lambda m: addresses_of(m, "dual")),
    Case("dual-stack-srv", lambda r: r().resolve("dual.prod", "http"), lambda m: pods_of(m, "dual")),
    Case("dual-stack-pod-all", lambda r: r().resolve_pod_all("dual", 1, namespace="prod", port=8080),
         lambda m: ok(*[e for e in pods_of(m, "dual")[1] if e[3] == 1])),
    Case("pod-name", lambda r: r().resolve_pod("web", 1, namespace="prod", port=8080),
         lambda m: ok(*[e for e in pods_of(m, "web")[1] if e[3] == 1])),
    Case("pod-name-missing", lambda r: r().resolve_pod("web", 7, namespace="prod"), lambda m: error(ServiceNotFound)),
    Case("statefulset-identities", lambda r: r().resolve_statefulset("web", namespace="prod", port=8080),
         lambda m: pods_of(m, "web")),
    Case("statefulset-shifted-start", lambda r: r().resolve_statefulset("shifted", namespace="prod", port=8080, start=5),
         lambda m: pods_of(m, "shifted")),
    Case("statefulset-wrong-start", lambda r: r().resolve_statefulset("shifted", namespace="prod", port=8080, max_gap=2),
         lambda m: error(NotGoverningService)),
    Case("srv-shifted", lambda r: r().resolve("shifted.prod", "http"), lambda m: pods_of(m, "shifted")),
    Case("other-namespace-srv", lambda r: r().resolve("kafka-headless.data", "kafka"),
         lambda m: pods_of(m, "kafka", "data", service="kafka-headless", port=9092)),
    # A second, non-governing headless Service: dashed names only.
    Case("non-governing-srv-dashed", lambda r: r().resolve("web-peers.prod", "http"),
         lambda m: ok(*[(p.addresses[0], 8080, f"{dashed(p.addresses[0])}.web-peers.prod.svc.{ZONE}", None)
                        for p in m.statefulset_pods("web", "prod")])),
    Case("non-governing-a", lambda r: r().resolve("web-peers.prod", 8080), lambda m: addresses_of(m, "web")),
    Case("non-governing-statefulset", lambda r: r().resolve_statefulset("web", namespace="prod", service="web-peers"),
         lambda m: error(NotGoverningService)),
    Case("non-governing-pod", lambda r: r().resolve_pod("web", 0, namespace="prod", service="web-peers"),
         lambda m: error(ServiceNotFound)),
    # CoreDNS's own fixture: generated IPv4/IPv6 names, a hostname on several endpoints.
    Case("hdls1-a-aaaa", lambda r: r().resolve("hdls1.testns", 80),
         lambda m: ok(*[(a, 80, None, None) for a in ("127.30.0.2", "127.30.0.3", "127.30.0.4", "127.30.0.5",
                                                      "5678:abcd::1", "5678:abcd::2")])),
    Case("hdls1-srv-dashed-and-dup", lambda r: r().resolve("hdls1.testns", "http"),
         lambda m: ok(hdls1_dashed("127.30.0.2"), hdls1_dashed("127.30.0.3"), hdls1_dashed("5678:abcd::1"),
                      hdls1_dashed("5678:abcd::2"),
                      ("127.30.0.4", 80, f"dup-name.hdls1.testns.svc.{ZONE}", None),
                      ("127.30.0.5", 80, f"dup-name.hdls1.testns.svc.{ZONE}", None))),
    Case("hostname-on-several-endpoints", lambda r: r().resolve_host(f"dup-name.hdls1.testns.svc.{ZONE}", 80),
         lambda m: ok(("127.30.0.4", 80, f"dup-name.hdls1.testns.svc.{ZONE}", None),
                      ("127.30.0.5", 80, f"dup-name.hdls1.testns.svc.{ZONE}", None))),
    Case("dashed-ipv6-name", lambda r: r().resolve_host(f"5678-abcd--1.hdls1.testns.svc.{ZONE}", 80),
         lambda m: ok(hdls1_dashed("5678:abcd::1"))),
    Case("dashed-ipv4-name", lambda r: r().resolve_host(f"127-30-0-2.hdls1.testns.svc.{ZONE}", 80),
         lambda m: ok(hdls1_dashed("127.30.0.2"))),
    Case("bogus-endpoint", lambda r: r().resolve_host(f"bogusendpoint.hdls1.testns.svc.{ZONE}", 80),
         lambda m: error(ServiceNotFound)),
    # Ports: none, unnamed, several.
    Case("portless-a", lambda r: r().resolve("hdlsprtls.testns", 6000), lambda m: ok(("127.30.0.20", 6000, None, None))),
    Case("portless-srv", lambda r: r().resolve("hdlsprtls.testns", "http"), lambda m: error(ServiceNotFound)),
    Case("portless-endpoint-name", lambda r: r().resolve_host(f"127-30-0-20.hdlsprtls.testns.svc.{ZONE}", 1),
         lambda m: ok(("127.30.0.20", 1, f"127-30-0-20.hdlsprtls.testns.svc.{ZONE}", None))),
    Case("unnamed-port-srv", lambda r: r().resolve("nameless.prod", "http"), lambda m: error(ServiceNotFound)),
    Case("unnamed-port-statefulset", lambda r: r().resolve_statefulset("nameless", namespace="prod", port=6379),
         lambda m: pods_of(m, "nameless", port=6379)),
    Case("several-ports-named", lambda r: r().resolve("multi.prod", "metrics"), lambda m: pods_of(m, "multi", port=9090)),
    Case("several-ports-udp", lambda r: r().resolve("multi.prod", "dns", protocol="udp"),
         lambda m: pods_of(m, "multi", port=53)),
    Case("several-ports-wrong-protocol", lambda r: r().resolve("multi.prod", "dns"), lambda m: error(ServiceNotFound)),
    # Zero ready pods, readiness, publishNotReadyAddresses.
    Case("empty-service-nxdomain", lambda r: r().resolve("empty.prod", 8080), lambda m: error(ServiceNotFound)),
    Case("zero-ready-nxdomain-srv", lambda r: r().resolve("unready.prod", "http"), lambda m: error(ServiceNotFound)),
    Case("publish-not-ready", lambda r: r().resolve("pnr.prod", "http"),
         lambda m: pods_of(m, "pnr", ready_only=False)),
    Case("missing-namespace", lambda r: r().resolve("web.nons", 8080), lambda m: error(ServiceNotFound)),
    # ClusterIP (not headless) Services.
    Case("clusterip-a", lambda r: r().resolve("svc1.testns", 80), lambda m: error(NotHeadless)),
    Case("clusterip-srv", lambda r: r().resolve("svc1.testns", "http"), lambda m: error(NotHeadless)),
    Case("clusterip-ipv6", lambda r: r().resolve("svc6.testns", 80), lambda m: error(NotHeadless)),
    Case("clusterip-dual-stack", lambda r: r().resolve("svc-dual-stack.testns", "http"), lambda m: error(NotHeadless)),
    Case("clusterip-warn-a", lambda r: r(cluster_ip="warn").resolve("svc1.testns", 80),
         lambda m: ok(("127.96.0.1", 80, None, None))),
    Case("clusterip-warn-srv", lambda r: r(cluster_ip="warn").resolve("svc1.testns", "http"),
         lambda m: ok(("127.96.0.1", 80, f"svc1.testns.svc.{ZONE}", None))),
    Case("clusterip-endpoint-name", lambda r: r().resolve_host(f"ep1a.svc1.testns.svc.{ZONE}", 80),
         lambda m: ok(("127.30.1.1", 80, f"ep1a.svc1.testns.svc.{ZONE}", None))),
    Case("clusterip-governed-pod", lambda r: r().resolve_pod("db", 1, namespace="testns", port=5432),
         lambda m: ok(*[e for e in pods_of(m, "db", "testns", port=5432)[1] if e[3] == 1])),
    Case("clusterip-statefulset", lambda r: r().resolve_statefulset("db", namespace="testns"),
         lambda m: error(NotHeadless)),
    # ExternalName in and out of the cluster.
    Case("externalname-outside", lambda r: r().resolve("external.testns", 80), lambda m: error(ResolutionError)),
    Case("externalname-inside", lambda r: r().resolve("external-to-web.prod", 8080), lambda m: addresses_of(m, "web")),
    # 1000 pods: answers over TCP, glue or lookups.
    Case("big-srv-1000", lambda r: r().resolve("big.prod", "http"), lambda m: pods_of(m, "big")),
    Case("big-a-1000", lambda r: r().resolve("big.prod", 8080), lambda m: addresses_of(m, "big")),
    Case("big-statefulset-1000", lambda r: r().resolve_statefulset("big", namespace="prod", port=8080),
         lambda m: pods_of(m, "big")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_same_library_result_on_coredns_bind_and_fake(static: Grounds, case: Case) -> None:
    """The library's result (endpoints or error class) is the same on all three grounds and as the model says."""
    results = {
        ground: outcome(lambda g=ground: case.ask(lambda **kw: static.resolver(g, **kw)))  # type: ignore[misc]
        for ground in GROUND_NAMES
    }
    expected = case.expect(static.model)
    assert results["coredns"] == expected, f"CoreDNS (the truth) disagrees with the model: {results['coredns']}"
    assert results["fake"] == results["coredns"], "FakeClusterDNS differs from CoreDNS"
    assert results["bind"] == results["coredns"], "the BIND ground differs from CoreDNS"


# -- mixed-case questions, read by the library's answer parsers ----------------------------------


def _ask(static: Grounds, ground: str, name: str, rdtype: str, *, tcp: bool = False) -> dns.message.Message:
    host, port = static.nameserver(ground).rsplit(":", 1)
    query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
    if tcp:
        return dns.query.tcp(query, host, port=int(port), timeout=5)
    return dns.query.udp_with_fallback(query, host, port=int(port), timeout=5)[0]


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        (f"WeB.PrOd.SvC.{ZONE.upper()}.", "A"),
        ("_HtTp._TcP.wEb.pRoD.sVc.ClUsTeR.lOcAl.", "SRV"),
        ("DUP-NAME.Hdls1.TestNS.svc.Cluster.Local.", "A"),
    ],
    ids=["mixed-case-a", "mixed-case-srv", "mixed-case-endpoint"],
)
def test_mixed_case_questions_parse_the_same(static: Grounds, name: str, rdtype: str) -> None:
    """Questions in mixed case give the library the same endpoints from all three grounds."""
    got = {}
    for ground in GROUND_NAMES:
        reply = _ask(static, ground, name, rdtype)
        if rdtype == "SRV":
            kept, dropped = srv_targets(reply, name, allowed_domain=name.split(".", 2)[2])
            assert not dropped
            got[ground] = outcome(lambda r=reply, k=kept: srv_endpoints(k, glue_from_message(r)))
        else:
            found = addresses_from_answer(reply, name, dns.rdatatype.A)
            got[ground] = tuple(sorted(found.addresses))
    assert got["coredns"] and got["fake"] == got["coredns"] and got["bind"] == got["coredns"]


# -- raw answers: the fake against CoreDNS, record by record --------------------------------------


def _shape(reply: dns.message.Message) -> tuple[object, ...]:
    """rcode, TC, and the answer and additional sections as sorted lower-case texts."""
    def section(rrsets: list[Any]) -> tuple[str, ...]:
        return tuple(sorted(f"{r.name.to_text().lower()} {r.ttl} {dns.rdatatype.to_text(r.rdtype)} "
                            f"{rd.to_text().lower()}" for r in rrsets for rd in r))
    return (dns.rcode.to_text(reply.rcode()), bool(reply.flags & dns.flags.TC), section(reply.answer),
            section(reply.additional), bool(reply.authority))


RAW = [
    (f"hdls1.testns.svc.{ZONE}.", "A"),
    (f"hdls1.testns.svc.{ZONE}.", "AAAA"),
    (f"_http._tcp.hdls1.testns.svc.{ZONE}.", "SRV"),  # weight 16: N counts 6 entries
    (f"dup-name.hdls1.testns.svc.{ZONE}.", "A"),
    (f"5678-abcd--2.hdls1.testns.svc.{ZONE}.", "AAAA"),
    (f"bogusendpoint.hdls1.testns.svc.{ZONE}.", "A"),
    (f"hdlsprtls.testns.svc.{ZONE}.", "A"),
    (f"hdlsprtls.testns.svc.{ZONE}.", "SRV"),  # NODATA: port -1 is skipped
    (f"svc1.testns.svc.{ZONE}.", "AAAA"),
    (f"svc1.testns.svc.{ZONE}.", "SRV"),
    (f"_http._tcp.svc1.testns.svc.{ZONE}.", "SRV"),
    (f"svc-dual-stack.testns.svc.{ZONE}.", "SRV"),  # weight 50, A and AAAA glue
    (f"ep1a.svc1.testns.svc.{ZONE}.", "A"),
    (f"external.testns.svc.{ZONE}.", "CNAME"),
    (f"external-to-web.prod.svc.{ZONE}.", "A"),
    (f"external.testns.svc.{ZONE}.", "SRV"),
    (f"external-to-web.prod.svc.{ZONE}.", "SRV"),
    (f"_http._tcp.external.testns.svc.{ZONE}.", "SRV"),
    (f"_tcp.web.prod.svc.{ZONE}.", "A"),  # NXDOMAIN: read as an endpoint named _tcp
    (f"a.b.web.prod.svc.{ZONE}.", "A"),
    (f"web.prod.svc.{ZONE}.", "SRV"),  # bare name: every port
    (f"multi.prod.svc.{ZONE}.", "SRV"),  # unnamed and UDP ports included
    (f"_dns._udp.multi.prod.svc.{ZONE}.", "SRV"),
    (f"web-0.web.prod.svc.{ZONE}.", "SRV"),
    (f"v6only.prod.svc.{ZONE}.", "A"),  # NODATA
    (f"empty.prod.svc.{ZONE}.", "A"),
    (f"unready.prod.svc.{ZONE}.", "A"),
    (f"testns.svc.{ZONE}.", "A"),  # an existing namespace: NODATA
    (f"nons.svc.{ZONE}.", "A"),
    (f"svc.{ZONE}.", "A"),
    (f"pod.{ZONE}.", "A"),
    (f"dns-version.{ZONE}.", "TXT"),
    ("SvC1.TeStNs.SvC.cLuStEr.LoCaL.", "A"),
    ("_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL.", "SRV"),
    (f"_http._tcp.big.prod.svc.{ZONE}.", "SRV"),  # over UDP: truncated, TC
]


@pytest.mark.parametrize(("name", "rdtype"), RAW, ids=[f"{n.split('.svc')[0]}-{t}" for n, t in RAW])
def test_fake_answers_like_coredns(static: Grounds, name: str, rdtype: str) -> None:
    """FakeClusterDNS's raw answer matches CoreDNS's: rcode, TC, answer and glue records."""
    coredns = _shape(_raw(static, "coredns", name, rdtype))
    fake = _shape(_raw(static, "fake", name, rdtype))
    if name.startswith("_http._tcp.big."):  # truncation keeps what fits: compare the shape only
        assert coredns[:2] == fake[:2] == ("NOERROR", True)
        return
    assert fake == coredns


def _raw(static: Grounds, ground: str, name: str, rdtype: str) -> dns.message.Message:
    host, port = static.nameserver(ground).rsplit(":", 1)
    query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
    return dns.query.udp(query, host, port=int(port), timeout=5)


# -- informers not synced: SERVFAIL -----------------------------------------------------------------


def test_not_synced_gives_servfail_on_all_grounds(coredns_binary: str, static: Grounds, tmp_path: Path) -> None:
    """Before CoreDNS has synced (RBAC forbids the API), it answers SERVFAIL; so do the fake and BIND behind a proxy."""
    model = ClusterModel()
    model.add_service("web", "prod", ports=[("http", 8080)])
    model.add_statefulset("web", "prod", 2)
    with FakeKubeAPI(model) as api:
        api.fault = "forbidden"
        server = CoreDNSServer(coredns_binary, tmp_path, lambda port: corefile_default(api.url, port))
        try:
            server.start(wait=False)
            # CoreDNS waits up to 5 s for its informers, then serves; until it syncs, SERVFAIL.
            deadline = time.monotonic() + 30
            query = dns.message.make_query(f"web.prod.svc.{ZONE}.", "A")
            rcode = None
            while time.monotonic() < deadline:
                try:
                    rcode = dns.query.udp(query, server.host, port=server.port, timeout=0.5).rcode()
                    break
                except (OSError, dns.exception.DNSException):
                    time.sleep(0.1)  # polling a process that is starting, under the deadline
            assert rcode == dns.rcode.SERVFAIL
            with FakeClusterDNS(model=model, ttl=5) as fake, FaultProxy(static.bind.nameserver) as proxy:
                fake.fault = "unsynced"
                proxy.set(Faults(rcode=dns.rcode.SERVFAIL))
                results = {}
                for ground, ns in (("coredns", server.nameserver), ("fake", fake.nameserver),
                                   ("bind", proxy.nameserver)):
                    r = Resolver([ns], timeout=2.0, namespace="default")
                    results[ground] = (outcome(lambda r=r: r.resolve("web.prod", "http")),
                                       outcome(lambda r=r: r.resolve("web.prod", 8080)))
            assert results["coredns"] == (error(ResolutionError), error(ResolutionError))
            assert results["fake"] == results["coredns"] == results["bind"]
            api.fault = None  # RBAC fixed: CoreDNS syncs and answers
            server._wait_ready(time.monotonic() + 30, f"web.prod.svc.{ZONE}.")
            assert outcome(lambda: Resolver([server.nameserver], timeout=2.0).resolve("web.prod", 8080)) == \
                addresses_of(model, "web")
        finally:
            server.close()


# -- changes seen through the library's live HeadlessService --------------------------------------


class _Watch:
    """A HeadlessService per ground, and a wait for a predicate on all of them."""

    def __init__(self, static: Grounds, service: str, port: int | str) -> None:
        self.changed = threading.Condition()
        self.services: dict[str, HeadlessService] = {}
        for ground in GROUND_NAMES:
            svc = HeadlessService(service, port=port, resolver=static.resolver(ground),
                                  min_refresh=0.1, max_refresh=0.3, empty_grace=0.5)
            svc.subscribe(lambda old, new: self._notify())
            self.services[ground] = svc

    def _notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def __enter__(self) -> _Watch:
        for svc in self.services.values():
            svc.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for svc in self.services.values():
            svc.close()

    def wait(self, expected: Outcome, timeout: float = 20.0) -> dict[str, Outcome]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                seen = {g: outcome(lambda s=s: s.endpoints) for g, s in self.services.items()}
                remaining = deadline - time.monotonic()
                if all(v == expected for v in seen.values()) or remaining <= 0:
                    return seen
                self.changed.wait(min(remaining, 0.5))


LIVE = ["scale-up", "scale-down", "new-ip", "unready", "ready-again", "publish-not-ready"]


@pytest.fixture
def live_service(static: Grounds, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"live-{request.node.callspec.id}"
    static.model.add_service(name, "prod", ports=[("http", 8080)])
    static.model.add_statefulset(name, "prod", 3)
    static.sync()
    yield name
    static.model.delete_statefulset(name, "prod")
    static.model.delete_service(name, "prod")
    static.sync()


@pytest.mark.parametrize("change", LIVE)
def test_live_service_follows_changes_on_every_ground(static: Grounds, live_service: str, change: str) -> None:
    """A HeadlessService on each ground sees the same pods after a scale, a new IP or a readiness flip."""
    model = static.model
    name = live_service
    with _Watch(static, f"{name}.prod", "http") as watch:
        assert set(watch.wait(pods_of(model, name)).values()) == {pods_of(model, name)}
        if change == "scale-up":
            model.scale(name, "prod", 5)
        elif change == "scale-down":
            model.scale(name, "prod", 1)
        elif change == "new-ip":
            model.update_pod(f"{name}-1", "prod", addresses=(model.free_address(),))
        elif change in ("unready", "ready-again"):
            model.update_pod(f"{name}-2", "prod", ready=False)
            if change == "ready-again":
                static.sync()
                assert set(watch.wait(pods_of(model, name)).values()) == {pods_of(model, name)}
                model.update_pod(f"{name}-2", "prod", ready=True)
        else:
            model.update_pod(f"{name}-2", "prod", ready=False)
            model.update_service(name, "prod", publish_not_ready=True)
        static.sync()
        expected = pods_of(model, name, ready_only=change != "publish-not-ready")
        seen = watch.wait(expected)
    assert seen["coredns"] == expected
    assert seen["fake"] == seen["coredns"] and seen["bind"] == seen["coredns"]


# -- Corefile variants (timing lives in benchmarks/bench_coredns_delay.py) ------------------------


@pytest.mark.parametrize("variant", ["default", "kubeadm", "nodelocal"])
def test_corefile_variants_start_and_answer(coredns_binary: str, tmp_path: Path, variant: str) -> None:
    """Each Corefile variant starts, syncs and gives the library the model's pods with its TTL."""
    model = ClusterModel()
    model.add_service("web", "prod", ports=[("http", 8080)])
    model.add_statefulset("web", "prod", 2)
    with FakeKubeAPI(model) as api:
        maker = corefile_kubeadm if variant != "default" else corefile_default
        cluster = CoreDNSServer(coredns_binary, tmp_path / "cluster", lambda port: maker(api.url, port))
        front: CoreDNSServer | None = None
        try:
            cluster.start()
            asked = cluster
            if variant == "nodelocal":
                front = CoreDNSServer(coredns_binary, tmp_path / "nodelocal",
                                      lambda port: corefile_nodelocal(cluster.nameserver, port))
                front.start(probe=f"web.prod.svc.{ZONE}.")
                asked = front
            got = Resolver([asked.nameserver], timeout=5.0).resolve("web.prod", "http")
            assert outcome(lambda: got) == pods_of(model, "web")
            assert got.ttl == (5 if variant == "default" else 30)
            with pytest.raises(ServiceNotFound):
                Resolver([asked.nameserver], timeout=5.0).resolve("nope.prod", 8080)
        finally:
            if front is not None:
                front.close()
            cluster.close()


def test_coredns_follows_the_api_through_fallback_expiry_and_outage(coredns_binary: str, tmp_path: Path) -> None:
    """Without WatchList CoreDNS lists then watches; after a 410 it lists again; after an outage it catches up."""
    model = ClusterModel()
    model.add_service("web", "prod", ports=[("http", 8080)])
    model.add_statefulset("web", "prod", 2)
    with FakeKubeAPI(model, watch_list=False) as api:
        server = CoreDNSServer(coredns_binary, tmp_path, lambda port: corefile_default(api.url, port))
        try:
            server.start()
            refused = [path for _, path, status in api.requests if "sendInitialEvents=true" in path]
            assert refused and all(status == 400 for _, path, status in api.requests if path in refused)
            assert any("watch=" not in path and status == 200 for _, path, status in api.requests)
            resolver = Resolver([server.nameserver], timeout=5.0)
            assert outcome(lambda: resolver.resolve("web.prod", "http")) == pods_of(model, "web")

            lists_before = sum(1 for _, path, _ in api.requests if "watch=" not in path)
            api.expire_watches()
            model.scale("web", "prod", 3)
            server.sync(model)
            assert sum(1 for _, path, _ in api.requests if "watch=" not in path) > lists_before  # relisted
            assert outcome(lambda: resolver.resolve("web.prod", "http")) == pods_of(model, "web")

            with api.down():
                model.update_pod("web-0", "prod", ready=False)
                model.compact()  # the outage outlasts the history: CoreDNS must list again
            server.sync(model, timeout=60)
            assert outcome(lambda: resolver.resolve("web.prod", "http")) == pods_of(model, "web")
        finally:
            server.close()
