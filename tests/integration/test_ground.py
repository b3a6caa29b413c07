"""The test ground itself: BIND answers like CoreDNS would, edits show up, faults work.

Raw dnspython only (no headless_client), so a failure here is the ground's, not the library's.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.integration import dnsground
from tests.integration.dnsground import (
    GROUND,
    NAMED_MISSING,
    TTL,
    ZONE,
    BindServer,
    BlackHole,
    FreshService,
    GroundError,
    PodServers,
    Service,
    ZoneUpdateError,
    free_port,
    statefulset,
)

pytestmark = pytest.mark.integration


def ask(
    bind: BindServer, name: str, rdtype: str, *, tcp: bool = False, payload: int | None = None
) -> tuple[dns.message.Message, bool]:
    """Query the ground; returns (reply, went over TCP)."""
    q = dns.message.make_query(name, rdtype, use_edns=payload is not None, payload=payload or 0)
    if tcp:
        return dns.query.tcp(q, bind.host, timeout=3, port=bind.port), True
    return dns.query.udp_with_fallback(q, bind.host, timeout=3, port=bind.port)


def answer(reply: dns.message.Message, name: str, rdtype: str) -> list[str]:
    qname = dns.name.from_text(name)
    want = dns.rdatatype.from_text(rdtype)
    return sorted(
        rdata.to_text()
        for rrset in reply.answer
        if rrset.name == qname and rrset.rdtype == want
        for rdata in rrset
    )


def glue(reply: dns.message.Message) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for rrset in reply.additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            out.setdefault(rrset.name.to_text(), []).extend(r.to_text() for r in rrset)
    return {k: sorted(v) for k, v in out.items()}


def srv_set(reply: dns.message.Message, name: str) -> set[tuple[int, int, int, str]]:
    out = set()
    for text in answer(reply, name, "SRV"):
        prio, weight, port, target = text.split()
        out.add((int(prio), int(weight), int(port), target))
    return out


def addresses(bind: BindServer, name: str) -> list[str]:
    """Every A and AAAA at ``name`` (empty for NXDOMAIN/NODATA)."""
    found: list[str] = []
    for rdtype in ("A", "AAAA"):
        reply, _ = ask(bind, name, rdtype)
        found += answer(reply, name, rdtype)
    return sorted(found, key=ip_key)


def ip_key(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return ip.version, int(ip)


def rcode(bind: BindServer, name: str, rdtype: str) -> str:
    reply, _ = ask(bind, name, rdtype)
    return dns.rcode.to_text(reply.rcode())


def _sorted_ips(values: tuple[str, ...] | list[str]) -> list[str]:
    return sorted(values, key=ip_key)


# --- static zone ----------------------------------------------------------------------------


def test_web_a_has_three_records_ttl_one_authoritative(bind: BindServer) -> None:
    web = GROUND["web"]
    reply, _ = ask(bind, web.fqdn, "A")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert answer(reply, web.fqdn, "A") == sorted(web.ipv4)
    assert len(web.ipv4) == 3
    assert all(rrset.ttl == TTL for rrset in reply.answer)


def test_web_srv_has_glue_and_coredns_shape(bind: BindServer) -> None:
    web = GROUND["web"]
    assert web.srv_fqdn is not None
    reply, tcp = ask(bind, web.srv_fqdn, "SRV")
    assert not tcp
    expected = {(0, 33, 8080, web.pod_fqdn(p)) for p in web.pods}
    assert srv_set(reply, web.srv_fqdn) == expected
    assert glue(reply) == {web.pod_fqdn(p): list(p.addresses) for p in web.pods}


def test_pod_names_resolve(bind: BindServer) -> None:
    web = GROUND["web"]
    for pod in web.pods:
        assert addresses(bind, web.pod_fqdn(pod)) == list(pod.addresses)
    assert rcode(bind, web.pod_fqdn(3), "A") == "NXDOMAIN"


def test_big_a_truncates_over_udp_and_has_1000_over_tcp(bind: BindServer) -> None:
    big = GROUND["big"]
    q = dns.message.make_query(big.fqdn, "A", use_edns=False)
    raw = dns.query.udp(q, bind.host, timeout=3, port=bind.port, ignore_trailing=True)
    assert raw.flags & dns.flags.TC
    reply, tcp = ask(bind, big.fqdn, "A")
    assert tcp  # udp_with_fallback retried over TCP
    assert len(answer(reply, big.fqdn, "A")) == 1000
    reply, _ = ask(bind, big.fqdn, "A", tcp=True)
    assert answer(reply, big.fqdn, "A") == sorted(big.ipv4)


def test_big_srv_over_tcp_has_1000_targets_and_incomplete_glue(bind: BindServer) -> None:
    big = GROUND["big"]
    assert big.srv_fqdn is not None
    reply, _ = ask(bind, big.srv_fqdn, "SRV", tcp=True)
    srv = srv_set(reply, big.srv_fqdn)
    assert len(srv) == 1000
    assert {weight for _, weight, _, _ in srv} == {0}
    # BIND drops glue that does not fit, without TC (9.18 sends none at all here):
    # the library must look the targets up itself.
    assert not reply.flags & dns.flags.TC
    assert len(glue(reply)) < 1000


def test_srv_glue_stops_above_13_targets(
    bind: BindServer, new_service: Callable[..., FreshService]
) -> None:
    """BIND 9.18 adds glue only for SRV RRsets of at most 13 records, even over TCP."""
    with_glue, without = new_service(13), new_service(14)
    assert with_glue.srv_fqdn is not None
    assert without.srv_fqdn is not None
    reply, _ = ask(bind, with_glue.srv_fqdn, "SRV", tcp=True)
    assert len(glue(reply)) == 13
    reply, _ = ask(bind, without.srv_fqdn, "SRV", tcp=True)
    assert len(srv_set(reply, without.srv_fqdn)) == 14
    assert len(glue(reply)) < 14


def test_empty_service_is_nxdomain_for_every_type(bind: BindServer) -> None:
    empty = GROUND["empty"]
    assert empty.pods == ()
    for name, rdtype in ((empty.fqdn, "A"), (empty.fqdn, "AAAA"), (empty.srv_fqdn, "SRV")):
        assert name is not None
        assert rcode(bind, name, rdtype) == "NXDOMAIN"


def test_v6only_a_is_nodata_aaaa_answers(bind: BindServer) -> None:
    v6 = GROUND["v6only"]
    reply, _ = ask(bind, v6.fqdn, "A")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.answer == []
    assert any(rrset.rdtype == dns.rdatatype.SOA for rrset in reply.authority)
    reply, _ = ask(bind, v6.fqdn, "AAAA")
    assert answer(reply, v6.fqdn, "AAAA") == list(v6.ipv6)
    assert addresses(bind, v6.pod_fqdn(0)) == list(v6.ipv6)


def test_dual_stack_service_and_srv(bind: BindServer) -> None:
    dual = GROUND["dual"]
    assert dual.srv_fqdn is not None
    assert addresses(bind, dual.fqdn) == _sorted_ips(dual.addresses)
    reply, _ = ask(bind, dual.srv_fqdn, "SRV")
    assert srv_set(reply, dual.srv_fqdn) == {
        (0, 25, 8080, dual.pod_fqdn(p)) for p in dual.pods
    }  # floor(100 / (2 pods x 2 families))
    assert glue(reply) == {dual.pod_fqdn(p): sorted(p.addresses) for p in dual.pods}


def test_dashed_ip_endpoint_names(bind: BindServer) -> None:
    peers = GROUND["web-peers"]
    assert peers.srv_fqdn is not None
    assert {p.hostname for p in peers.pods} == {"127-10-1-1", "127-10-1-2", "fd00-10-244-1--a"}
    for pod in peers.pods:
        assert addresses(bind, peers.pod_fqdn(pod)) == list(pod.addresses)
    reply, _ = ask(bind, peers.srv_fqdn, "SRV")
    assert {t for *_, t in srv_set(reply, peers.srv_fqdn)} == {
        peers.pod_fqdn(p) for p in peers.pods
    }


def test_shifted_ordinals_and_nameless_gaps(bind: BindServer) -> None:
    shifted, nameless = GROUND["shifted"], GROUND["nameless"]
    assert shifted.ordinals == (5, 6, 7)
    assert shifted.srv_fqdn is not None
    reply, _ = ask(bind, shifted.srv_fqdn, "SRV")
    assert {t for *_, t in srv_set(reply, shifted.srv_fqdn)} == {
        f"shifted-{i}.{shifted.fqdn}" for i in (5, 6, 7)
    }
    assert nameless.srv_fqdn is None
    assert rcode(bind, f"_http._tcp.{nameless.fqdn}", "SRV") == "NXDOMAIN"
    assert nameless.ordinals == (0, 2, 3)
    for i in (0, 2, 3):
        assert addresses(bind, nameless.pod_fqdn(i)) == [f"127.10.4.{i + 1}"]
    assert rcode(bind, nameless.pod_fqdn(1), "A") == "NXDOMAIN"


def test_cnames_alias_chased_ext_not(bind: BindServer) -> None:
    alias, ext = GROUND["alias"], GROUND["ext"]
    reply, _ = ask(bind, alias.fqdn, "A")
    assert answer(reply, alias.fqdn, "CNAME") == [GROUND["web"].fqdn]
    assert answer(reply, GROUND["web"].fqdn, "A") == sorted(GROUND["web"].ipv4)
    reply, _ = ask(bind, ext.fqdn, "A")
    assert reply.rcode() == dns.rcode.NOERROR
    assert answer(reply, ext.fqdn, "CNAME") == ["db.example.com."]
    assert len(reply.answer) == 1  # out-of-zone target not chased


def test_evil_srv_has_out_of_domain_target(bind: BindServer) -> None:
    evil = GROUND["evil"]
    assert evil.srv_fqdn is not None
    reply, _ = ask(bind, evil.srv_fqdn, "SRV")
    targets = {t for *_, t in srv_set(reply, evil.srv_fqdn)}
    assert targets == {evil.pod_fqdn(0), "attacker.example.net."}
    assert glue(reply) == {evil.pod_fqdn(0): ["127.10.5.1"]}


def test_kafka_in_data_namespace(bind: BindServer) -> None:
    kafka = GROUND["kafka-headless"]
    assert kafka.fqdn == f"kafka-headless.data.svc.{ZONE}."
    assert kafka.srv_fqdn == f"_kafka._tcp.kafka-headless.data.svc.{ZONE}."
    reply, _ = ask(bind, kafka.srv_fqdn, "SRV")
    assert srv_set(reply, kafka.srv_fqdn) == {
        (0, 33, 9092, f"kafka-{i}.kafka-headless.data.svc.{ZONE}.") for i in range(3)
    }
    assert addresses(bind, kafka.fqdn) == ["127.10.6.1", "127.10.6.2", "127.10.6.3"]


@pytest.mark.parametrize("name", sorted(GROUND))
def test_every_ground_service_matches_its_description(bind: BindServer, name: str) -> None:
    svc = GROUND[name]
    if svc.cname is not None:
        reply, _ = ask(bind, svc.fqdn, "CNAME")
        assert answer(reply, svc.fqdn, "CNAME") == [svc.cname]
        return
    if not svc.pods:
        assert rcode(bind, svc.fqdn, "A") == "NXDOMAIN"
        return
    assert addresses(bind, svc.fqdn) == _sorted_ips(svc.addresses)
    if svc.srv_fqdn is not None:
        reply, _ = ask(bind, svc.srv_fqdn, "SRV", tcp=True)
        assert srv_set(reply, svc.srv_fqdn) == {
            (0, svc.srv_weight, port, target) for target, port in svc.srv_targets
        }


def test_fixed_names_and_off_zone_nxdomain(bind: BindServer) -> None:
    reply, _ = ask(bind, f"dns-version.{ZONE}.", "TXT")
    assert answer(reply, f"dns-version.{ZONE}.", "TXT") == ['"1.1.0"']
    reply, _ = ask(bind, f"{ZONE}.", "NS")
    assert answer(reply, f"{ZONE}.", "NS") == [f"ns.dns.{ZONE}."]
    assert addresses(bind, f"ns.dns.{ZONE}.") == ["127.0.0.1"]
    # The empty root zone turns REFUSED into NXDOMAIN, as CoreDNS forwarding would.
    assert rcode(bind, "web-9.web.", "A") == "NXDOMAIN"
    assert rcode(bind, "db.example.com.", "A") == "NXDOMAIN"


# --- dynamic updates ------------------------------------------------------------------------


def test_fresh_service_is_private_and_created(
    bind: BindServer, new_service: Callable[..., FreshService]
) -> None:
    a, b = new_service(), new_service(2, port=9999)
    assert a.name != b.name
    assert not set(a.ipv4) & set(b.ipv4)
    assert all(ip.startswith(("127.20.", "127.21.")) for ip in a.ipv4 + b.ipv4)
    assert addresses(bind, a.fqdn) == _sorted_ips(a.ipv4)
    assert b.srv_fqdn is not None
    reply, _ = ask(bind, b.srv_fqdn, "SRV")
    assert srv_set(reply, b.srv_fqdn) == {(0, 50, 9999, b.pod_fqdn(i)) for i in (0, 1)}
    assert glue(reply) == {b.pod_fqdn(i): list(b.addresses[i]) for i in (0, 1)}


def test_updates_via_helpers_are_visible(bind: BindServer, fresh_service: FreshService) -> None:
    svc = fresh_service
    assert svc.srv_fqdn is not None
    assert svc.ordinals == (0, 1, 2)

    new = svc.add()
    assert new == 3
    assert addresses(bind, svc.fqdn) == _sorted_ips(svc.ipv4)
    assert len(svc.ipv4) == 4
    assert addresses(bind, svc.pod_fqdn(3)) == list(svc.addresses[3])

    svc.remove(1)
    assert rcode(bind, svc.pod_fqdn(1), "A") == "NXDOMAIN"
    assert addresses(bind, svc.fqdn) == _sorted_ips(svc.ipv4)
    reply, _ = ask(bind, svc.srv_fqdn, "SRV")
    assert {t for *_, t in srv_set(reply, svc.srv_fqdn)} == {svc.pod_fqdn(i) for i in (0, 2, 3)}

    old = svc.addresses[2]
    fresh_ips = svc.reip(2)
    assert fresh_ips != old
    assert addresses(bind, svc.pod_fqdn(2)) == list(fresh_ips)
    assert old[0] not in addresses(bind, svc.fqdn)

    svc.scale(5)
    reply, _ = ask(bind, svc.srv_fqdn, "SRV")
    assert srv_set(reply, svc.srv_fqdn) == {(0, 20, 8080, svc.pod_fqdn(i)) for i in range(5)}
    assert svc.addresses[2] == fresh_ips  # survivors keep their addresses

    svc.delete()
    for name, rdtype in ((svc.fqdn, "A"), (svc.fqdn, "AAAA"), (svc.srv_fqdn, "SRV")):
        assert rcode(bind, name, rdtype) == "NXDOMAIN"


def test_removing_the_last_pod_leaves_nxdomain(
    bind: BindServer, new_service: Callable[..., FreshService]
) -> None:
    svc = new_service(1)
    svc.remove(0)
    assert svc.srv_fqdn is not None
    assert rcode(bind, svc.fqdn, "A") == "NXDOMAIN"
    assert rcode(bind, svc.srv_fqdn, "SRV") == "NXDOMAIN"


def test_zone_editor_low_level_api(bind: BindServer, fresh_service: FreshService) -> None:
    zone, name = bind.zone, fresh_service.name
    pod = zone.add_pod(name, "prod", "custom-host", ["127.22.0.9", "fd00:22::9"], port=7000)
    assert pod == f"custom-host.{fresh_service.fqdn}"
    assert addresses(bind, pod) == ["127.22.0.9", "fd00:22::9"]
    reply, _ = ask(bind, fresh_service.fqdn, "AAAA")
    assert answer(reply, fresh_service.fqdn, "AAAA") == ["fd00:22::9"]
    zone.reip_pod(name, "prod", "custom-host", "127.22.0.10")
    assert addresses(bind, pod) == ["127.22.0.10"]
    assert rcode(bind, fresh_service.fqdn, "AAAA") == "NOERROR"  # NODATA now
    zone.remove_pod(name, "prod", "custom-host")
    assert rcode(bind, pod, "A") == "NXDOMAIN"
    assert "127.22.0.10" not in addresses(bind, fresh_service.fqdn)

    with pytest.raises(ZoneUpdateError, match="NXDOMAIN") as err:
        zone.remove_pod(name, "prod", 42)
    assert err.value.rcode == dns.rcode.NXDOMAIN
    with pytest.raises(ZoneUpdateError, match="YXDOMAIN"):
        zone.create_service(Service(name, pods=fresh_service.service.pods))

    read = zone.read_service(name, "prod")
    assert read.ordinals == fresh_service.ordinals
    assert read.addresses == fresh_service.service.addresses


def test_zone_editor_scale_and_delete_service(bind: BindServer) -> None:
    zone = bind.zone
    name = "scaled-ground-test"
    try:
        svc = zone.scale(name, "prod", 2, "127.23.0.1", start=3)
        assert svc.ordinals == (3, 4)
        assert addresses(bind, f"{name}-3.{svc.fqdn}") == ["127.23.0.1"]
        svc = zone.scale(name, "prod", 4, "127.23.0.1", start=3)
        assert addresses(bind, svc.fqdn) == ["127.23.0.1", "127.23.0.2", "127.23.0.3", "127.23.0.4"]
        assert svc.srv_fqdn is not None
        reply, _ = ask(bind, svc.srv_fqdn, "SRV")
        assert {w for _, w, _, _ in srv_set(reply, svc.srv_fqdn)} == {25}
        svc = zone.scale(name, "prod", 1, "127.23.0.1", start=3)
        assert rcode(bind, f"{name}-4.{svc.fqdn}", "A") == "NXDOMAIN"
        # A leftover child would make the service NODATA; delete_service removes everything.
        zone.add_pod(name, "prod", "straggler", "127.23.0.99", port_name="other")
        assert zone.delete_service(name, "prod") >= 3
        assert rcode(bind, svc.fqdn, "A") == "NXDOMAIN"
        with pytest.raises(ZoneUpdateError):
            zone.delete_service(name, "prod")
    finally:
        zone.delete_service(name, "prod", missing_ok=True)


def test_create_service_from_description(bind: BindServer) -> None:
    desc = statefulset("created-ground-test", {0: "127.23.1.1", 1: ("127.23.1.2", "fd00:23::2")})
    try:
        bind.zone.create_service(desc)
        assert addresses(bind, desc.fqdn) == _sorted_ips(desc.addresses)
        assert desc.srv_fqdn is not None
        reply, _ = ask(bind, desc.srv_fqdn, "SRV")
        assert {w for _, w, _, _ in srv_set(reply, desc.srv_fqdn)} == {33}
    finally:
        bind.zone.delete_service(desc.name, desc.namespace, missing_ok=True)


# --- faults ---------------------------------------------------------------------------------


def test_stop_start_same_port_updates_survive(
    bind: BindServer, fresh_service: FreshService
) -> None:
    port = bind.port
    ordinal = fresh_service.add()
    bind.stop()
    assert not bind.running
    q = dns.message.make_query(fresh_service.fqdn, "A")
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(q, bind.host, timeout=0.3, port=bind.port)
    with pytest.raises(ConnectionRefusedError):
        dns.query.tcp(q, bind.host, timeout=0.3, port=bind.port)
    bind.start()
    assert bind.running
    assert bind.port == port
    assert bind.nameserver == f"127.0.0.1:{port}"
    assert addresses(bind, fresh_service.pod_fqdn(ordinal)) == list(
        fresh_service.addresses[ordinal]
    )
    assert addresses(bind, fresh_service.fqdn) == _sorted_ips(fresh_service.ipv4)
    with bind.down():
        assert not bind.running
    assert rcode(bind, GROUND["web"].fqdn, "A") == "NOERROR"


def test_black_hole_never_completes_a_handshake(black_hole: Callable[..., BlackHole]) -> None:
    hole = black_hole("127.0.0.1")
    assert hole.fillers >= 1
    for _ in range(2):
        with socket.socket() as client:
            client.settimeout(0.3)
            with pytest.raises(TimeoutError):
                client.connect((hole.address, hole.port))


def test_pod_servers_greet_echo_and_switch_modes(
    loopback_pods: PodServers, pod_port: int
) -> None:
    web = GROUND["web"]
    servers = loopback_pods.serve_service(web)
    assert [s.name for s in servers] == ["web-0", "web-1", "web-2"]
    assert loopback_pods.port == pod_port
    for pod in web.pods:
        with socket.create_connection((pod.addresses[0], pod_port), timeout=2) as conn:
            reader = conn.makefile("rb")
            try:
                assert reader.readline() == f"{pod.hostname}\n".encode()
                conn.sendall(b"ping\n")
                assert reader.readline() == b"ping\n"
            finally:
                reader.close()
    web0 = loopback_pods["web-0"]
    assert web0.accepted == 1

    web0.refuse()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(web0.endpoint, timeout=2).close()

    web0.hang()
    with socket.create_connection(web0.endpoint, timeout=2) as conn:
        conn.settimeout(0.3)
        with pytest.raises(TimeoutError):
            conn.recv(16)

    web0.black_hole()
    with socket.socket() as client:
        client.settimeout(0.3)
        with pytest.raises(TimeoutError):
            client.connect(web0.endpoint)

    web0.serve()
    with socket.create_connection(web0.endpoint, timeout=2) as conn:
        conn.settimeout(2)
        assert conn.recv(16) == b"web-0\n"


def test_pod_servers_for_a_fresh_service(
    new_service: Callable[..., FreshService], loopback_pods: PodServers
) -> None:
    svc = new_service(2, port=loopback_pods.port)
    loopback_pods.serve_service(svc)
    for ordinal, (address,) in svc.addresses.items():
        with socket.create_connection((address, svc.port), timeout=2) as conn:
            conn.settimeout(2)
            assert conn.recv(32) == f"{svc.name}-{ordinal}\n".encode()


# --- the server's own failure modes -----------------------------------------------------------


def test_bad_zone_fails_fast_with_named_log(tmp_path: Path) -> None:
    clash = [Service("clash", cname="elsewhere.example."), statefulset("clash", {0: "127.24.0.1"})]
    server = BindServer(tmp_path, services=clash)
    try:
        with pytest.raises(GroundError, match="CNAME and other data"):
            server.start()
        assert not server.running
    finally:
        server.close()


def test_busy_fixed_port_fails_with_named_log(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", port))
        server = BindServer(tmp_path, port=port)
        try:
            with pytest.raises(GroundError, match="could not listen"):
                server.start()
            assert not server.running
        finally:
            server.close()


def test_named_missing_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(dnsground, "find_named", lambda: None)
    with pytest.raises(GroundError) as err:
        dnsground.BindServer(tmp_path)
    assert str(err.value) == NAMED_MISSING
    assert "apt-get install -y bind9 bind9-dnsutils" in NAMED_MISSING


def test_zone_mirror_keeps_bind_equal_to_a_cluster_model(tmp_path: Path) -> None:
    """ZoneMirror writes a model's zone into a BIND of its own and follows its changes."""
    from headless_client import Resolver, ServiceNotFound
    from headless_client.testing import FakeClusterDNS

    named = dnsground.find_named()
    if named is None:
        pytest.fail(dnsground.NAMED_MISSING, pytrace=False)
    with BindServer(tmp_path, named=named, services=[]) as server, FakeClusterDNS(ttl=5) as fake:
        mirror = dnsground.ZoneMirror(lambda: server.zone)
        fake.add_statefulset("web", "prod", 3)
        assert mirror.push(fake.zone) > 0
        r = Resolver([server.nameserver], timeout=3.0)
        assert r.resolve("web.prod", "http").ordinals == (0, 1, 2)
        fake.scale("web", "prod", 2)
        fake.reip_pod("web", "prod", 0)
        changed = mirror.push(fake.zone)
        assert 0 < changed < 20  # only what changed travels
        got = r.resolve("web.prod", "http")
        assert [(ep.ordinal, ep.address) for ep in got] == [(p.ordinal, p.address) for p in fake.pods("web", "prod")]
        assert mirror.push(fake.zone) == 0
        fake.delete_service("web", "prod")
        mirror.push(fake.zone)
        with pytest.raises(ServiceNotFound):
            r.resolve("web.prod", 8080)
