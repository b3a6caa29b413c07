"""lookup.py: the Kubernetes DNS cases (k8s-dns.md section 7), table-driven, without I/O."""

from __future__ import annotations

import random

import pytest

from headless_client.errors import ResolutionError, ServiceNotFound
from headless_client.lookup import (
    AAAA,
    LookupOptions,
    StreamBatch,
    _addresses,
    _ask_family,
    plan_addresses,
    plan_pod,
    plan_srv,
    plan_statefulset,
)
from headless_client.names import ordinal_hostnames
from headless_client.wire import Failure, build_queries, encode_name, match_response
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


# -- reading address answers: the wire reader, and dnspython for other shapes ----------------


def _reply_to(qname, rdtype, build):
    """The Reply matched to a query for (*qname*, *rdtype*) whose answer *build* writes
    from the query's header and question."""
    pending = build_queries([(qname, rdtype)])
    query = pending.wires[0]
    question = query[12 : 12 + len(encode_name(qname)) + 4]
    matched = match_response(pending, build(query[:2], question))
    assert matched is not None
    return matched[1]


def test_addresses_read_answers_owned_in_full_in_any_case():
    """CoreDNS writes the owner out in full when the answer fits, in the question's case
    (which may differ from ours); BIND points at the question: both read alike."""
    qname = SVC + "."
    name = encode_name(qname)
    for echoed, rdtype, rdata, address in (
        (name, 1, bytes([10, 0, 0, 7]), "10.0.0.7"),
        (name.upper(), 1, bytes([10, 0, 0, 7]), "10.0.0.7"),
        (name, 28, b"\xfd" + bytes(14) + b"\x01", "fd00::1"),
    ):
        fixed = rdtype.to_bytes(2, "big") + b"\x00\x01" + (5).to_bytes(4, "big") + len(rdata).to_bytes(2, "big")

        def build(head, question, echoed=echoed, fixed=fixed, rdata=rdata):
            records = echoed + fixed + rdata + b"\xc0\x0c" + fixed + rdata
            return head + b"\x84\x00\x00\x01\x00\x02\x00\x00\x00\x00" + question + records

        got = _addresses(_reply_to(qname, rdtype, build), SVC, rdtype, LookupOptions(**OPTS))
        assert (got.addresses, got.ttl) == ((address,), 5)


def test_addresses_follow_a_cname_the_wire_reader_leaves():
    """A CNAME inside the cluster is another shape: dnspython's path follows it."""
    zone = FakeZone({("alias.prod.svc.cluster.local.", "CNAME"): [SVC + "."], (SVC + ".", "A"): ["10.0.0.1"]})
    wire = zone.answer("alias.prod.svc.cluster.local.", 1)
    reply = _reply_to("alias.prod.svc.cluster.local.", 1, lambda head, question: head + wire[2:])
    got = _addresses(reply, "alias.prod.svc.cluster.local", 1, LookupOptions(**OPTS))
    assert got.addresses == ("10.0.0.1",)


def test_addresses_of_a_record_cut_short_is_an_error():
    """A record cut short after its owner is malformed: ResolutionError, not 'no data'."""
    qname = SVC + "."
    reply = _reply_to(qname, 1, lambda head, question: (
        head + b"\x84\x00\x00\x01\x00\x01\x00\x00\x00\x00" + question + encode_name(qname) + b"\x00\x01\x00"
    ))
    with pytest.raises(ResolutionError, match="malformed"):
        _addresses(reply, SVC, 1, LookupOptions(**OPTS))


# -- a refresh given the previous set: the SRV and the service's addresses, targets only if needed --


def pods(count, *, base="10.1", skip=()):
    """Addresses of *count* pods ``web-0..``: 10.1.x.y by default."""
    return [f"{base}.{i // 250}.{i % 250 + 1}" for i in range(count) if i not in skip]


def refresh(zone, previous, **options):
    """The SRV lookup of the web service given *previous*; the zone records what it asked."""
    zone.asked.clear()
    return zone.run(plan_srv(SRV, SVC, LookupOptions(**OPTS, **options), previous))


def mapping(result):
    return sorted((e.hostname.split(".")[0], e.address) for e in result)


def truth(addresses):
    """The mapping a full lookup of a zone of these pod addresses gives."""
    return srv(FakeZone(statefulset("web", "prod", addresses), glue=False))


@pytest.mark.parametrize("glue", [False, True, 40])
def test_an_unchanged_refresh_asks_the_srv_and_the_service_addresses_once(glue):
    """Nothing changed: two questions in one batch, over TCP at once (the answers are large),
    and the same set as a full lookup, whether the server sends all, some or no glue."""
    zone = FakeZone(statefulset("web", "prod", pods(100)), glue=glue)
    previous = srv(zone)
    result = refresh(zone, previous)
    assert result == previous and mapping(result) == mapping(truth(pods(100)))
    assert zone.asked == [[("_http._tcp." + SVC + ".", 33), (SVC + ".", 1)]]
    assert isinstance(zone.asked[0], StreamBatch)


def test_a_small_service_refreshes_over_datagrams():
    """A few pods: the refresh's answers fit in datagrams, so the batch is a plain one."""
    zone = FakeZone(WEB, glue=False)
    previous = srv(zone)
    assert refresh(zone, previous) == previous
    assert [len(b) for b in zone.asked] == [2] and not isinstance(zone.asked[0], StreamBatch)


def test_a_dual_stack_service_asks_both_families_of_the_service():
    """Pods with IPv4 and IPv6 addresses: SRV, A and AAAA, three questions."""
    records = statefulset("web", "prod", pods(30))
    for i in range(30):
        host = f"web-{i}.{SVC}."
        records.setdefault((host, "AAAA"), []).append(f"fd00::{i + 1:x}")
        records.setdefault((SVC + ".", "AAAA"), []).append(f"fd00::{i + 1:x}")
    zone = FakeZone(records, glue=False)
    previous = srv(zone)
    assert len(previous) == 60
    assert refresh(zone, previous) == previous
    assert zone.asked == [[("_http._tcp." + SVC + ".", 33), (SVC + ".", 1), (SVC + ".", 28)]]


def test_a_new_pod_is_the_only_target_asked():
    """A pod added: its name alone is asked, once, in the family the service has."""
    previous = srv(FakeZone(statefulset("web", "prod", pods(100)), glue=False))
    zone = FakeZone(statefulset("web", "prod", pods(101)), glue=False)
    result = refresh(zone, previous)
    assert mapping(result) == mapping(truth(pods(101)))
    assert zone.asked[1:] == [[(f"web-100.{SVC}.", 1)]]


def test_a_removed_pod_costs_no_question():
    """A pod gone (the last ordinal, or one in the middle): nothing more is asked."""
    previous = srv(FakeZone(statefulset("web", "prod", pods(100)), glue=False))
    zone = FakeZone(statefulset("web", "prod", pods(99)), glue=False)
    assert mapping(refresh(zone, previous)) == mapping(truth(pods(99)))
    assert len(zone.asked) == 1
    gone = dict(statefulset("web", "prod", pods(100)))
    gone[("_http._tcp." + SVC + ".", "SRV")] = [r for r in gone[("_http._tcp." + SVC + ".", "SRV")] if "web-7." not in r]
    gone[(SVC + ".", "A")] = [a for a in gone[(SVC + ".", "A")] if a != pods(100)[7]]
    result = refresh(FakeZone(gone, glue=False), previous)
    assert len(result) == 99 and result.by_ordinal(7) is None


def test_a_pod_restarted_with_a_new_address_is_asked_and_seen():
    """Same name, new address: its old address left the service's set, so it is asked."""
    previous = srv(FakeZone(statefulset("web", "prod", pods(100)), glue=False))
    moved = pods(100)
    moved[42] = "10.9.9.9"
    zone = FakeZone(statefulset("web", "prod", moved), glue=False)
    result = refresh(zone, previous)
    assert result.by_ordinal(42).address == "10.9.9.9"
    assert mapping(result) == mapping(truth(moved))
    assert zone.asked[1:] == [[(f"web-42.{SVC}.", 1)]]


def test_a_pod_taking_the_old_address_of_a_moved_pod_is_seen():
    """web-1 moved to a new address and web-2 took web-1's old one: web-2's previous
    address is still in the set (web-3 took it), but the answers no longer add up, so every
    target is asked and the result is right."""
    previous = srv(FakeZone(statefulset("web", "prod", pods(50)), glue=False))
    moved = pods(50)
    moved[1], moved[2], moved[3] = "10.9.9.9", moved[1], moved[2]
    zone = FakeZone(statefulset("web", "prod", moved), glue=False)
    result = refresh(zone, previous)
    assert mapping(result) == mapping(truth(moved))
    assert [len(b) for b in zone.asked] == [2, 1, 49]  # web-3's old address left; then all the rest


def test_an_address_without_a_target_makes_every_target_asked():
    """A new address in the service's set that no SRV target claims (web-5 moved to it and
    a pod without the named port took web-5's old one): the targets are all asked."""
    previous = srv(FakeZone(statefulset("web", "prod", pods(40)), glue=False))
    moved = pods(40)
    old, moved[5] = moved[5], "10.9.9.9"
    records = statefulset("web", "prod", moved)
    records[(SVC + ".", "A")].append(old)  # an A record with no SRV record (no named port)
    zone = FakeZone(records, glue=False)
    result = refresh(zone, previous)
    assert result.by_ordinal(5).address == "10.9.9.9"
    assert [len(b) for b in zone.asked] == [2, 40]


def test_two_pods_that_swapped_addresses_are_seen_through_glue():
    """web-0 and web-50 swapped addresses; web-0's glue is in the answer (CoreDNS keeps
    the first targets' glue), so its new address is claimed by the wrong previous holder:
    every target without glue is asked."""
    previous = srv(FakeZone(statefulset("web", "prod", pods(100)), glue=False))
    swapped = pods(100)
    swapped[0], swapped[50] = swapped[50], swapped[0]
    zone = FakeZone(statefulset("web", "prod", swapped), glue=10)
    result = refresh(zone, previous)
    assert mapping(result) == mapping(truth(swapped))
    assert [len(b) for b in zone.asked] == [2, 90]


def test_names_that_shared_an_address_are_asked_every_time():
    """Two targets with one address in the previous set: which holds it now cannot be told
    from the sets, so both are asked; the others are not."""
    records = statefulset("web", "prod", pods(20))
    records[(f"web-19.{SVC}.", "A")] = [pods(20)[18]]
    records[(SVC + ".", "A")].remove(pods(20)[19])
    zone = FakeZone(records, glue=False)
    previous = srv(zone)
    assert refresh(zone, previous) == previous
    assert sorted(zone.asked[1]) == [(f"web-18.{SVC}.", 1), (f"web-19.{SVC}.", 1)]


def test_a_failed_service_address_question_falls_back_to_asking_the_targets():
    """The service's A question failed: nothing is taken from it; every target is asked."""
    zone = FakeZone(statefulset("web", "prod", pods(30)), glue=False)
    previous = srv(zone)
    got = run_with(plan_srv(SRV, SVC, LookupOptions(**OPTS), previous), zone, {(SVC + ".", 1): servfail(SVC + ".", 1)})
    assert got == previous


def test_the_service_set_is_screened_silently():
    """A pod with an unsafe address: its target is asked (and its address dropped and noted
    for that target only), the others keep theirs without a question."""
    zone = FakeZone(statefulset("web", "prod", [*pods(30), "169.254.169.254"]), glue=False)
    previous = srv(zone)
    assert len(previous) == 30
    opts = LookupOptions(**OPTS)
    assert zone.run(plan_srv(SRV, SVC, opts, previous)) == previous
    assert [name for name, _, _ in opts.unsafe] == [f"web-30.{SVC}"]


def test_an_unchanged_refresh_gives_the_previous_set_itself():
    """Nothing differs (TTLs included): no endpoint is built, the previous set comes back;
    on both paths."""
    zone = FakeZone(statefulset("web", "prod", pods(100)), glue=False)
    previous = srv(zone)
    assert refresh(zone, previous) is previous
    options = LookupOptions(**OPTS)
    first = zone.run(plan_addresses(SVC, 80, options))
    assert zone.run(plan_addresses(SVC, 80, options, first)) is first


def test_a_refresh_with_other_ttls_gives_endpoints_with_the_new_ttls():
    """A caching server counting TTLs down: equal sets, but the new endpoints carry the
    new TTLs (no stale value is kept)."""
    records = statefulset("web", "prod", pods(100))
    previous = srv(FakeZone(records, glue=False, ttl=30))
    result = refresh(FakeZone(records, glue=False, ttl=12), previous)
    assert result == previous and result is not previous
    assert {e.ttl for e in result} == {12} and result.ttl == 12
    first = FakeZone(records, ttl=30).run(plan_addresses(SVC, 80, LookupOptions(**OPTS)))
    again = FakeZone(records, ttl=12).run(plan_addresses(SVC, 80, LookupOptions(**OPTS), first))
    assert again == first and {e.ttl for e in again} == {12}


def test_a_refresh_after_a_change_keeps_the_unchanged_endpoints():
    """One pod moved: the other endpoints are the previous objects, the moved one is new."""
    previous = srv(FakeZone(statefulset("web", "prod", pods(100)), glue=False))
    moved = pods(100)
    moved[9] = "10.9.9.9"
    result = refresh(FakeZone(statefulset("web", "prod", moved), glue=False), previous)
    kept = {id(e) for e in previous}
    assert [e.ordinal for e in result if id(e) not in kept] == [9]
