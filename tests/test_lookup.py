"""lookup.py: the Kubernetes DNS cases (k8s-dns.md section 7), table-driven, without I/O."""

from __future__ import annotations

import random

import pytest

from headless_client.errors import ResolutionError, ServiceNotFound
from headless_client.lookup import (
    LookupOptions,
    plan_addresses,
    plan_pod,
    plan_srv,
    plan_statefulset,
)
from headless_client.names import ordinal_hostnames
from tests.fakezone import FakeZone, statefulset

SVC = "web.prod.svc.cluster.local"
SRV = "_http._tcp." + SVC
OPTS = dict(cname_domain="cluster.local")


def srv(zone, name=SVC):
    return zone.run(plan_srv("_http._tcp." + name, name, LookupOptions(**OPTS)))


def addrs(zone, name=SVC, port=80):
    return zone.run(plan_addresses(name, port, LookupOptions(**OPTS)))


WEB = statefulset("web", "prod", ["10.0.0.1", "10.0.0.2", "10.0.0.3"])


def test_a_records_every_endpoint_gets_the_port():
    """int port: A and AAAA of the service, every endpoint with that port."""
    result = addrs(FakeZone(WEB), port=9000)
    assert [(e.address, e.port, e.ordinal) for e in result] == [
        ("10.0.0.1", 9000, None), ("10.0.0.2", 9000, None), ("10.0.0.3", 9000, None)
    ]
    assert result.ttl == 5


def test_srv_with_glue_asks_one_question():
    """SRV with glue: identities, ordinals and addresses from one answer."""
    zone = FakeZone(WEB)
    result = srv(zone)
    assert [(e.hostname, e.ordinal, e.address, e.port) for e in result] == [
        (f"web-{i}.{SVC}", i, f"10.0.0.{i + 1}", 8080) for i in range(3)
    ]
    assert len(zone.asked) == 1


def test_srv_without_glue_asks_in_batches():
    """Glue missing without TC: targets are asked in one batch after a one-target probe."""
    zone = FakeZone(statefulset("web", "prod", [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(100)]),
                    glue=False)
    result = srv(zone)
    assert len(result) == 100
    assert [len(b) for b in zone.asked] == [1, 2, 99]  # SRV, probe A+AAAA, the rest (A only)


def test_nxdomain_is_service_not_found():
    """Zero ready pods: NXDOMAIN for A, AAAA and SRV."""
    for run in (addrs, srv):
        with pytest.raises(ServiceNotFound, match="web.prod"):
            run(FakeZone({}))


def test_dashed_ip_targets_have_no_ordinal():
    """Generated dashed-IP targets (IPv4 and IPv6) give ordinal None."""
    base = "web-peers.prod.svc.cluster.local."
    zone = FakeZone({
        (f"_http._tcp.{base}", "SRV"): [f"0 50 8080 10-244-1-20.{base}", f"0 50 8080 fd00-10-244-1--a.{base}"],
        (f"10-244-1-20.{base}", "A"): ["10.244.1.20"],
        (f"fd00-10-244-1--a.{base}", "AAAA"): ["fd00:10:244:1::a"],
    })
    result = srv(zone, base[:-1])
    assert [(e.ordinal, e.address) for e in result] == [(None, "10.244.1.20"), (None, "fd00:10:244:1::a")]


def test_ordinals_not_starting_at_zero():
    """StatefulSets with .spec.ordinals.start keep their real ordinals."""
    zone = FakeZone(statefulset("web", "prod", ["10.0.0.5", "10.0.0.6"], start=5))
    assert [e.ordinal for e in srv(zone)] == [5, 6]


def test_many_a_records():
    """More than 29 A records (TC territory on UDP) are all returned."""
    zone = FakeZone(statefulset("web", "prod", [f"10.1.0.{i}" for i in range(1, 41)]))
    assert len(addrs(zone)) == 40


def test_shuffled_answers_give_the_same_set():
    """The EndpointSet order never depends on the answer order."""
    results = {tuple(srv(FakeZone(WEB, shuffle=random.Random(seed))).endpoints) for seed in range(5)}
    assert len(results) == 1


def test_ipv6_only_service():
    """A NODATA plus AAAA data: an IPv6-only service resolves."""
    zone = FakeZone(statefulset("v6", "prod", ["fd00::1", "fd00::2"]))
    result = addrs(zone, "v6.prod.svc.cluster.local")
    assert [e.address for e in result] == ["fd00::1", "fd00::2"]
    glueless = FakeZone(statefulset("v6", "prod", ["fd00::1", "fd00::2"]), glue=False)
    assert len(srv(glueless, "v6.prod.svc.cluster.local")) == 2


def test_dual_stack_pods_get_both_addresses():
    """Dual-stack pods: one endpoint per family, same hostname."""
    recs = statefulset("web", "prod", ["10.0.0.1", "10.0.0.2"])
    for i, a in enumerate(["fd00::1", "fd00::2"]):
        recs[(f"web-{i}.{SVC}.", "AAAA")] = [a]
    for glue in (True, False):
        result = srv(FakeZone(recs, glue=glue))
        assert sorted((e.ordinal, e.address) for e in result) == [
            (0, "10.0.0.1"), (0, "fd00::1"), (1, "10.0.0.2"), (1, "fd00::2")
        ]


def test_cname_chain_inside_cluster_is_followed():
    """A CNAME to another in-cluster name (autopath, aliases) is followed."""
    recs = dict(WEB)
    recs[("alias.prod.svc.cluster.local.", "CNAME")] = [SVC + "."]
    result = addrs(FakeZone(recs), "alias.prod.svc.cluster.local")
    assert len(result) == 3


def test_cname_out_of_cluster_is_not_followed():
    """A CNAME leaving the cluster domain (ExternalName) is refused, naming both names."""
    recs = {("ext.prod.svc.cluster.local.", "CNAME"): ["db.example.com."],
            ("db.example.com.", "A"): ["6.6.6.6"]}
    with pytest.raises(ResolutionError, match="db.example.com"):
        addrs(FakeZone(recs), "ext.prod.svc.cluster.local")


def test_case_insensitive_names():
    """Upper-case owner names in answers are matched and folded."""
    result = srv(FakeZone(WEB, upper=True))
    assert result[0].hostname == f"web-0.{SVC}"
    assert len(addrs(FakeZone(WEB, upper=True))) == 3


def test_out_of_domain_targets_are_dropped():
    """SRV targets outside the service's own domain are dropped and reported."""
    recs = dict(WEB)
    recs[(SRV + ".", "SRV")] = [*recs[(SRV + ".", "SRV")], "0 33 8080 attacker.example.net."]
    opts = LookupOptions(**OPTS)
    result = FakeZone(recs).run(plan_srv(SRV, SVC, opts))
    assert len(result) == 3
    assert [t.target for t in opts.dropped] == ["attacker.example.net"]


def test_target_vanishing_between_questions():
    """A target that is NXDOMAIN when its address is asked simply drops out."""
    recs = dict(WEB)
    del recs[(f"web-2.{SVC}.", "A")]
    assert [e.ordinal for e in srv(FakeZone(recs, glue=False))] == [0, 1]


def test_max_records_bound():
    """An answer with more records than max_records is refused."""
    zone = FakeZone(statefulset("web", "prod", [f"10.1.0.{i}" for i in range(1, 41)]))
    with pytest.raises(ResolutionError, match="max_records=10"):
        zone.run(plan_addresses(SVC, 80, LookupOptions(cname_domain="cluster.local", max_records=10)))


def test_pod_lookup():
    """One pod's A/AAAA gives its endpoint with hostname and ordinal; a missing pod is NXDOMAIN."""
    result = FakeZone(WEB).run(plan_pod(f"web-1.{SVC}", 80, LookupOptions(**OPTS)))
    assert [(e.ordinal, e.address, e.port) for e in result] == [(1, "10.0.0.2", 80)]
    with pytest.raises(ServiceNotFound, match="web-7"):
        FakeZone(WEB).run(plan_pod(f"web-7.{SVC}", 80, LookupOptions(**OPTS)))


def test_statefulset_walk_with_gaps():
    """Without SRV: count from the service A records, walk ordinals, tolerate gaps."""
    recs = statefulset("db", "prod", ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"])
    svc = "db.prod.svc.cluster.local"
    del recs[(f"db-1.{svc}.", "A")]
    recs[(f"{svc}.", "A")].remove("10.0.0.2")
    names = ordinal_hostnames("db", 20, namespace="prod")
    zone = FakeZone(recs)
    result = zone.run(plan_statefulset(svc, names, 5432, None, LookupOptions(**OPTS)))
    assert [(e.ordinal, e.address) for e in result] == [(0, "10.0.0.1"), (2, "10.0.0.3"), (3, "10.0.0.4")]


def test_statefulset_walk_is_bounded():
    """With replicas larger than what exists, the walk stops after max_gap misses."""
    names = ordinal_hostnames("web", 1000, namespace="prod")
    zone = FakeZone(WEB)
    result = zone.run(plan_statefulset(SVC, names, 80, 50, LookupOptions(**OPTS), max_gap=4))
    assert len(result) == 3
    asked = sum(len(b) for b in zone.asked) // 2
    assert asked < 60


# -- ClusterIP Services and non-governing Services (issue 13) --------------------------------------

CLUSTER_IP = {
    (f"{SVC}.", "A"): ["10.96.0.10"],
    (f"{SVC}.", "SRV"): [f"0 100 8080 {SVC}."],
    (f"_http._tcp.{SVC}.", "SRV"): [f"0 100 8080 {SVC}."],
}


def test_cluster_ip_service_raises_not_headless_on_both_paths():
    """A ClusterIP Service (SRV target = the Service name) raises NotHeadless, or is noted with 'warn'."""
    from headless_client.errors import NotHeadless

    with pytest.raises(NotHeadless, match="not headless") as info:
        addrs(FakeZone(CLUSTER_IP))
    assert info.value.service == SVC
    with pytest.raises(NotHeadless):
        srv(FakeZone(CLUSTER_IP))
    options = LookupOptions(**OPTS, cluster_ip="warn")
    result = FakeZone(CLUSTER_IP).run(plan_addresses(SVC, 80, options))
    assert [e.address for e in result] == ["10.96.0.10"] and options.cluster_ips == [SVC]


def test_one_pod_headless_service_passes_the_check_and_is_remembered():
    """One address per family triggers one SRV question; a headless answer is remembered."""
    zone = FakeZone(statefulset("web", "prod", ["10.0.0.1"]))
    options = LookupOptions(**OPTS, headless=set())
    assert len(zone.run(plan_addresses(SVC, 80, options))) == 1
    assert len(zone.asked) == 2 and options.headless == {SVC}
    assert len(zone.run(plan_addresses(SVC, 80, options))) == 1
    assert len(zone.asked) == 3  # no second SRV question


def test_statefulset_through_a_non_governing_service_says_why():
    """Addresses but no <sts>-<n> names: NotGoverningService naming serviceName and start=."""
    from headless_client.errors import NotGoverningService

    peers = "web-peers.prod.svc.cluster.local"
    zone = FakeZone({(f"{peers}.", "A"): ["10.0.0.1", "10.0.0.2"],
                     (f"10-0-0-1.{peers}.", "A"): ["10.0.0.1"], (f"10-0-0-2.{peers}.", "A"): ["10.0.0.2"]})
    names = [f"web-{i}.{peers}" for i in range(20)]
    with pytest.raises(NotGoverningService, match="serviceName") as info:
        zone.run(plan_statefulset(peers, names, 80, None, LookupOptions(**OPTS)))
    assert info.value.statefulset == "web" and info.value.service == peers
    # With an explicit replica count the walk trusts the caller: an empty set, no error.
    assert len(zone.run(plan_statefulset(peers, names, 80, 2, LookupOptions(**OPTS)))) == 0
