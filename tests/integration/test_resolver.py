"""Resolver against a real BIND9: the Kubernetes DNS cases of k8s-dns.md section 7."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from headless_client import (
    InvalidName,
    KubernetesContext,
    ResolutionError,
    Resolver,
    ServiceNotFound,
    kubernetes_context,
)
from headless_client.wire import Nameserver
from tests.integration.dnsground import GROUND

pytestmark = pytest.mark.integration


@pytest.fixture(name="resolver")
def _resolver(bind):
    return Resolver([bind.nameserver], timeout=3.0)


def identities(result):
    return sorted((ep.ordinal, ep.hostname, ep.address, ep.port) for ep in result)


def test_three_pod_a(resolver):
    """int port: every ready pod address of the service, with that port."""
    result = resolver.resolve("web.prod", 9000)
    assert sorted(ep.address for ep in result) == sorted(GROUND["web"].addresses)
    assert {ep.port for ep in result} == {9000}
    assert all(ep.hostname is None for ep in result)
    assert result.name == "web.prod.svc.cluster.local"
    assert result.ttl == 1


def test_srv_identities(resolver):
    """Named port: SRV gives pod hostnames, ordinals, ports and addresses."""
    svc = GROUND["web"]
    result = resolver.resolve("web.prod", "http")
    assert identities(result) == sorted(
        (p.ordinal, svc.pod_fqdn(p).rstrip("."), p.addresses[0], svc.port) for p in svc.pods
    )


def test_fully_qualified_and_absolute_names(resolver):
    """FQDNs, trailing dots and explicit namespaces resolve to the same set."""
    base = resolver.resolve("web.prod", "http")
    assert resolver.resolve("web.prod.svc.cluster.local", "http") == base
    assert resolver.resolve("web.prod.svc.cluster.local.", "http") == base
    assert resolver.resolve("web", "http", namespace="prod") == base
    assert Resolver([resolver.nameservers[0].__str__()], namespace="prod").resolve("web", "http") == base


def test_generated_srv_targets(resolver):
    """Deployment-style dashed-IP targets (IPv4 and IPv6) give ordinal None."""
    result = resolver.resolve("web-peers.prod", "http")
    assert sorted(ep.address for ep in result) == sorted(GROUND["web-peers"].addresses)
    assert {ep.ordinal for ep in result} == {None}
    assert all(ep.hostname.endswith(".web-peers.prod.svc.cluster.local") for ep in result)


def test_dual_stack(resolver):
    """A dual-stack service gives both families, by A/AAAA and by SRV."""
    expected = sorted(GROUND["dual"].addresses)
    assert sorted(ep.address for ep in resolver.resolve("dual.prod", 80)) == expected
    srv = resolver.resolve("dual.prod", "http")
    assert sorted(ep.address for ep in srv) == expected
    assert sorted({ep.ordinal for ep in srv}) == [0, 1]


def test_ipv6_only(resolver):
    """A NODATA on an IPv6-only service; AAAA carries the pods."""
    assert [ep.address for ep in resolver.resolve("v6only.prod", 80)] == list(GROUND["v6only"].ipv6)
    assert [ep.ordinal for ep in resolver.resolve("v6only.prod", "http")] == [0]


def test_ordinals_not_starting_at_zero(resolver):
    """.spec.ordinals.start: ordinals are read from the names, not counted."""
    assert resolver.resolve("shifted.prod", "http").ordinals == (5, 6, 7)


@pytest.mark.parametrize("port", [8080, "http"])
def test_thousand_pods(resolver, port):
    """1000 pods: TC then TCP for A; SRV without glue gets every address by batch lookups."""
    svc = GROUND["big"]
    result = resolver.resolve("big.prod", port)
    assert len(result) == 1000
    assert sorted(ep.address for ep in result) == sorted(svc.addresses)
    if port == "http":
        assert result.ordinals == tuple(range(1000))
        assert result.by_ordinal(999).address == svc.pod(999).addresses[0]


def test_nxdomain_is_service_not_found(resolver):
    """Zero ready pods (and a missing service) is NXDOMAIN -> ServiceNotFound."""
    for port in (80, "http"):
        with pytest.raises(ServiceNotFound, match=r"empty\.prod"):
            resolver.resolve("empty.prod", port)
    with pytest.raises(ServiceNotFound, match="nosuch"):
        resolver.resolve("nosuch.prod", 80)


def test_unnamed_port_has_no_srv(resolver):
    """A service without that named port has no SRV: NXDOMAIN or NODATA, never a crash."""
    with pytest.raises(ServiceNotFound):
        resolver.resolve("nameless.prod", "http")


def test_cname_in_cluster_followed(resolver):
    """A CNAME chain inside the cluster domain is followed."""
    assert sorted(ep.address for ep in resolver.resolve("alias.prod", 80)) == sorted(GROUND["web"].addresses)


def test_cname_out_of_cluster_refused(resolver):
    """An ExternalName-style CNAME out of the cluster domain is not followed."""
    with pytest.raises(ResolutionError, match=r"db\.example\.com"):
        resolver.resolve("ext.prod", 80)


def test_out_of_domain_srv_target_dropped(resolver, caplog):
    """SRV targets outside the service's name are dropped and logged."""
    with caplog.at_level(logging.WARNING, logger="headless_client.resolver"):
        result = resolver.resolve("evil.prod", "http")
    assert [ep.hostname for ep in result] == ["evil-0.evil.prod.svc.cluster.local"]
    assert "attacker.example.net" in caplog.text


def test_resolve_pod(resolver):
    """resolve_pod gives one pod's endpoint with its identity."""
    ep = resolver.resolve_pod("web", 2, namespace="prod", port=8080)
    assert (ep.ordinal, ep.address, ep.port, ep.hostname) == (
        2, "127.10.0.3", 8080, "web-2.web.prod.svc.cluster.local"
    )
    kafka = resolver.resolve_pod("kafka", 1, namespace="data", service="kafka-headless", port=9092)
    assert kafka.address == "127.10.6.2"
    with pytest.raises(ServiceNotFound, match="web-9"):
        resolver.resolve_pod("web", 9, namespace="prod")


def test_resolve_statefulset_with_gaps(resolver):
    """Without SRV: count from A records, walk ordinals, tolerate the unready gap."""
    result = resolver.resolve_statefulset("nameless", namespace="prod", port=5432)
    svc = GROUND["nameless"]
    assert [(ep.ordinal, ep.address, ep.port) for ep in result] == [
        (p.ordinal, p.addresses[0], 5432) for p in svc.pods
    ]


def test_resolve_statefulset_shifted_start(resolver):
    """A non-zero start and an explicit replica count."""
    result = resolver.resolve_statefulset("shifted", namespace="prod", start=5, replicas=3)
    assert result.ordinals == (5, 6, 7)
    # From 0, the five missing ordinals are a gap: crossed with the default max_gap ...
    assert resolver.resolve_statefulset("shifted", namespace="prod", replicas=3).ordinals == (5, 6, 7)
    # ... and a stop with a smaller one: the walk is bounded.
    assert len(resolver.resolve_statefulset("shifted", namespace="prod", replicas=3, max_gap=3)) == 0


def test_dynamic_update_seen(resolver, fresh_service):
    """A pod added by dynamic update is in the next resolution."""
    before = resolver.resolve(fresh_service.fqdn, "http")
    ordinal = fresh_service.add()
    after = resolver.resolve(fresh_service.fqdn, "http")
    assert len(after) == len(before) + 1
    assert after.by_ordinal(ordinal) is not None


def silent_server():
    """A DNS port that never answers: UDP bound but never read, TCP listening but never
    accepting (the kernel completes the handshake; no reply ever comes)."""
    for _ in range(20):  # the UDP port's TCP twin may be taken: try another (bounded)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", port))
        except OSError:
            tcp.close()
            udp.close()
            continue
        tcp.listen(16)
        return udp, tcp, port
    raise AssertionError("no loopback port free for both UDP and TCP in 20 tries")


def test_unreachable_nameserver_fails_within_timeout():
    """A server that never answers (UDP nor TCP) fails within the timeout."""
    udp, tcp, port = silent_server()
    with udp, tcp:
        resolver = Resolver([f"127.0.0.1:{port}"], timeout=0.5)
        start = time.monotonic()
        with pytest.raises(ResolutionError, match="did not answer"):
            resolver.resolve("web.prod", 80)
        elapsed = time.monotonic() - start
    assert 0.4 <= elapsed < 1.0


def test_refused_port_fails_fast():
    """A closed port (ICMP port unreachable) fails at once, naming the server."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ResolutionError, match=f"127.0.0.1:{port}"):
        Resolver([f"127.0.0.1:{port}"], timeout=2).resolve("web.prod", 80)
    assert time.monotonic() - start < 1.0


def test_second_nameserver_used_when_first_is_dead(bind):
    """Nameservers are tried in order; a dead first one does not fail the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{silent.getsockname()[1]}"
        resolver = Resolver([dead, bind.nameserver], timeout=1.0)
        assert len(resolver.resolve("web.prod", 80)) == 3


def test_dns_down(bind):
    """With named stopped, resolution raises ResolutionError, no dnspython exception."""
    resolver = Resolver([bind.nameserver], timeout=0.5)
    with bind.down(), pytest.raises(ResolutionError):
        resolver.resolve("web.prod", "http")


@pytest.mark.parametrize(
    "bad", [["dns.google"], ["127.0.0.1:99999"], [], "127.0.0.1", ["[::1"], [5353]]
)
def test_bad_nameservers_rejected_at_construction(bad):
    """Bad nameserver configuration is refused in the constructor."""
    with pytest.raises(InvalidName):
        Resolver(bad)


def test_bad_arguments(resolver):
    """Bad names, ports and protocols raise InvalidName naming the value."""
    with pytest.raises(InvalidName, match="'Web'"):
        resolver.resolve("Web.prod", 80)
    with pytest.raises(InvalidName, match="70000"):
        resolver.resolve("web.prod", 70000)
    with pytest.raises(InvalidName, match="'HTTP'"):
        resolver.resolve("web.prod", "HTTP")
    with pytest.raises(InvalidName, match="'icmp'"):
        resolver.resolve("web.prod", "http", protocol="icmp")
    with pytest.raises(InvalidName, match="1.5"):
        resolver.resolve("web.prod", 1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidName, match="-1"):
        resolver.resolve_pod("web", -1, namespace="prod")
    with pytest.raises(InvalidName, match="namespace"):
        Resolver([resolver.nameservers[0].__str__()], context=KubernetesContext((), None, None)).resolve(
            "web", 80
        )


def test_kubernetes_context_from_files(tmp_path):
    """Namespace from the service-account file wins; cluster domain from resolv.conf."""
    conf = tmp_path / "resolv.conf"
    conf.write_text("search team.svc.k8s.example svc.k8s.example k8s.example\nnameserver 10.96.0.10\n")
    ns_file = tmp_path / "namespace"
    ctx = kubernetes_context(conf, ns_file)
    assert (ctx.namespace, ctx.cluster_domain) == ("team", "k8s.example")
    assert ctx.nameservers == (Nameserver("10.96.0.10", 53),)
    ns_file.write_text("payments\n")
    assert kubernetes_context(conf, ns_file).namespace == "payments"
    empty = kubernetes_context(tmp_path / "missing", tmp_path / "missing2")
    assert empty.nameservers == (Nameserver("127.0.0.1", 53),)
    resolver = Resolver(["127.0.0.1"], context=ctx)
    assert resolver.qualify("web") == "web.team.svc.k8s.example"
    assert Resolver(["127.0.0.1"], context=ctx, cluster_domain="other.zone").qualify("web") == (
        "web.team.svc.other.zone"
    )
