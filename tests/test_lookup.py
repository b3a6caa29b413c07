"""lookup.py: the Kubernetes DNS cases (k8s-dns.md section 7), table-driven, without I/O."""

from __future__ import annotations

import random

import pytest

from headless_client.errors import ResolutionError, ServiceNotFound
from headless_client.lookup import (
    AAAA,
    LookupOptions,
    _ask_family,
    plan_addresses,
    plan_pod,
    plan_srv,
    plan_statefulset,
)
from headless_client.names import ordinal_hostnames
from headless_client.wire import Failure, build_queries, match_response
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
# -- answers that failed, and the default address screen ------------------------------------------


def run_with(plan, zone: FakeZone, fail: dict[tuple[str, int], Failure]):
    """Drive *plan* against *zone*, with *fail* standing in for some questions' replies."""
    try:
        batch = next(plan)
        while True:
            replies = []
            for qname, rdtype in batch:
                failure = fail.get((qname.lower(), int(rdtype)))
                if failure is not None:
                    replies.append(failure)
                    continue
                pending = build_queries([(qname, rdtype)])
                wire = zone.answer(qname, rdtype)
                replies.append(match_response(pending, pending.wires[0][:2] + wire[2:])[1])
            batch = plan.send(replies)
    except StopIteration as stop:
        return stop.value


def servfail(qname, rdtype):
    return Failure(qname, rdtype, "10.96.0.10:53 answered SERVFAIL", 2.0)


def tc(qname, rdtype):
    return Failure(qname, rdtype, "10.96.0.10:53 truncated its answer over TCP", 2.0, truncated=True)


DUAL = statefulset("web", "prod", ["10.0.0.1", "10.0.0.2", "fd00::1", "fd00::2"])


def test_a_family_that_fails_while_the_other_answered_is_noted_not_fatal():
    """AAAA SERVFAIL, A answered: the A endpoints are used and the failure noted for the log."""
    opts = LookupOptions(**OPTS)
    got = run_with(plan_addresses(SVC, 80, opts), FakeZone(DUAL), {(SVC + ".", 28): servfail(SVC + ".", 28)})
    assert sorted(e.address for e in got) == ["10.0.0.1", "10.0.0.2"]
    assert [(name, f.rdtype) for name, f in opts.partial] == [(SVC, 28)]
    pod = f"web-2.{SVC}"
    opts = LookupOptions(**OPTS)
    got = run_with(plan_pod(pod, 80, opts), FakeZone(DUAL), {(pod + ".", 1): servfail(pod + ".", 1)})
    assert [e.address for e in got] == ["fd00::1"]


def test_a_family_failing_with_nothing_answered_is_an_error():
    """AAAA failed and A has no records (or both failed): nothing to keep, the failure is raised."""
    v4 = statefulset("web", "prod", ["10.0.0.1"])
    fail = {(SVC + ".", 1): servfail(SVC + ".", 1)}
    with pytest.raises(ResolutionError, match="SERVFAIL"):
        run_with(plan_addresses(SVC, 80, LookupOptions(**OPTS)), FakeZone(v4), fail)
    fail[(SVC + ".", 28)] = servfail(SVC + ".", 28)
    with pytest.raises(ResolutionError, match="SERVFAIL"):
        run_with(plan_addresses(SVC, 80, LookupOptions(**OPTS)), FakeZone(DUAL), fail)


def test_truncated_answers_are_an_error_naming_the_service_and_the_way_out():
    """TC over TCP: never a partial or empty set, whatever the other family said."""
    with pytest.raises(ResolutionError, match=rf"{SVC}: the A answer .* resolve_statefulset"):
        run_with(plan_addresses(SVC, 80, LookupOptions(**OPTS)), FakeZone(WEB), {(SVC + ".", 1): tc(SVC + ".", 1)})
    with pytest.raises(ResolutionError, match=rf"{SVC}: the SRV answer .* int port .* resolve_statefulset"):
        run_with(plan_srv(SRV, SVC, LookupOptions(**OPTS)), FakeZone(WEB), {(SRV + ".", 33): tc(SRV + ".", 33)})


def test_a_failed_target_lookup_fails_the_srv_lookup():
    """A target whose address question failed everywhere is an error, not a silent drop."""
    target = f"web-1.{SVC}."
    with pytest.raises(ResolutionError, match="SERVFAIL"):
        run_with(plan_srv(SRV, SVC, LookupOptions(**OPTS)), FakeZone(WEB, glue=False), {(target, 1): servfail(target, 1)})


UNSAFE = ["0.0.0.0", "0.1.2.3", "169.254.169.254", "169.254.1.1", "224.0.0.251", "239.1.1.1",
          "255.255.255.255", "::", "fe80::1", "ff02::1", "::ffff:169.254.169.254", "::ffff:0.0.0.0"]


@pytest.mark.parametrize("address", UNSAFE)
def test_unsafe_addresses_are_dropped_by_default(address):
    """Unspecified, link-local (cloud metadata), multicast and broadcast answers are dropped
    and noted; the pod's other endpoints stay; screen_addresses=False keeps them."""
    zone = FakeZone(statefulset("web", "prod", ["10.0.0.1", address]))
    opts = LookupOptions(**OPTS)
    assert [e.address for e in addrs_with(zone, opts)] == ["10.0.0.1"]
    assert [a for _, a, _ in opts.unsafe] == [address]
    opts = LookupOptions(**OPTS, screen_addresses=False)
    assert len(addrs_with(zone, opts)) == 2 and not opts.unsafe


def addrs_with(zone, opts):
    return zone.run(plan_addresses(SVC, 80, opts))


@pytest.mark.parametrize("address", ["127.0.0.1", "127.10.0.3", "::1", "::ffff:127.0.0.1"])
def test_loopback_is_kept_only_when_allowed(address):
    zone = FakeZone(statefulset("web", "prod", ["10.0.0.1", address]))
    assert len(addrs_with(zone, LookupOptions(**OPTS))) == 1
    assert len(addrs_with(zone, LookupOptions(**OPTS, allow_loopback=True))) == 2


@pytest.mark.parametrize("address", ["10.0.0.1", "240.0.0.1", "100.64.0.1", "fd00::1", "2001:db8::1", "169.253.0.1"])
def test_ordinary_pod_addresses_pass_the_screen(address):
    """Private, CGNAT, class E (some clusters use 240/4 for pods) and global addresses pass."""
    zone = FakeZone(statefulset("web", "prod", [address]))
    assert [e.address for e in addrs_with(zone, LookupOptions(**OPTS))] == [address]


def test_unsafe_glue_and_srv_port_zero_are_dropped():
    """Glue pointing at the metadata service is dropped (the target is then asked, and its
    answer screened too); an SRV record with port 0 is dropped and noted."""
    recs = statefulset("web", "prod", ["10.0.0.1", "169.254.169.254", "10.0.0.3"])
    recs[(SRV + ".", "SRV")][2] = recs[(SRV + ".", "SRV")][2].replace(" 8080 ", " 0 ")
    opts = LookupOptions(**OPTS)
    got = srv_with(FakeZone(recs), opts)
    assert [(e.ordinal, e.address) for e in got] == [(0, "10.0.0.1")]
    assert {a for _, a, _ in opts.unsafe} == {"169.254.169.254"}
    assert [t.target for t in opts.port_zero] == [f"web-2.{SVC}"]


def srv_with(zone, opts):
    return zone.run(plan_srv(SRV, SVC, opts))


def test_a_pod_with_only_unsafe_addresses_is_an_error_saying_why():
    zone = FakeZone(statefulset("web", "prod", ["0.0.0.0"]))
    with pytest.raises(ResolutionError, match=r"0\.0\.0\.0 \(unspecified\).*screen_addresses=False"):
        zone.run(plan_pod(f"web-0.{SVC}", 80, LookupOptions(**OPTS)))


def test_nxdomain_for_one_family_means_no_such_name_even_if_the_other_failed():
    """NXDOMAIN is about the name: with the other family failed, the pod is still missing."""
    pod = f"web-7.{SVC}"
    with pytest.raises(ServiceNotFound, match="web-7"):
        run_with(plan_pod(pod, 80, LookupOptions(**OPTS)), FakeZone(WEB), {(pod + ".", 28): servfail(pod + ".", 28)})


def test_a_failure_in_the_other_family_pass_only_drops_that_target():
    """The second pass of a mixed-family SRV lookup (the other family of targets that had
    none) drops a target whose question failed, and notes it; the first pass is strict."""
    targets = [f"web-1.{SVC}", f"web-2.{SVC}"]
    failure = servfail(targets[0] + ".", 28)
    zone = FakeZone(statefulset("web", "prod", ["10.0.0.1", "fd00::2", "fd00::3"]))
    for strict in (False, True):
        opts = LookupOptions(**OPTS)
        addresses = {}
        plan = _ask_family(targets, AAAA, addresses, opts, SVC, strict=strict)
        if strict:
            with pytest.raises(ResolutionError, match="SERVFAIL"):
                run_with(plan, zone, {(targets[0] + ".", 28): failure})
            continue
        run_with(plan, zone, {(targets[0] + ".", 28): failure})
        assert list(addresses) == [targets[1]]
        assert opts.partial == [(targets[0], failure)]
