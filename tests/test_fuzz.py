"""Bad input, property-based: only documented exceptions, with messages naming the value.

Two halves:

* Arguments: service names, ordinals, nameserver strings, CIDRs, keys and partitions,
  from hypothesis. The only exceptions allowed are :mod:`headless_client.errors` classes
  (and ``TypeError`` for a key or partition of the wrong type), and their message must
  quote the offending value.
* Answers: real BIND answers (tests/faults/seeds.py), dnspython-built ones and the fault
  proxy's hostile ones, mutated (bytes flipped or set, counts and pointers rewritten,
  cut, extended, spliced), fed to ``wire.match_response``, the wire readers of
  :mod:`headless_client.fastwire` (which must agree with dnspython's path or decline),
  ``Reply.message`` and to every lookup plan driven with such replies. Allowed:
  ``ResolutionError`` (``ServiceNotFound`` included) and ``InvalidName``; anything else is
  a crash.

``HEADLESS_SOAK=1`` runs many more examples (scripts/soak).
"""

from __future__ import annotations

import ipaddress
import random

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import headless_client as hc
from headless_client.errors import HeadlessClientError, InvalidName, ResolutionError
from headless_client.exchange import Exchange, ExchangeConfig, Open
from headless_client.fastwire import read_addresses, read_srv
from headless_client.lookup import LookupOptions, plan_srv
from headless_client.records import (
    addresses_from_answer,
    glue_from_message,
    in_domain,
    is_host_name,
    parse_networks,
    srv_targets,
)
from headless_client.testing import StaticResolver
from headless_client.wire import (
    Nameserver,
    Pending,
    build_queries,
    encode_name,
    match_response,
    parse_nameserver,
    screen,
)
from tests.fakezone import FakeZone, statefulset
from tests.faults import packets
from tests.faults.figures import size
from tests.faults.seeds import BIND_ANSWERS
from tests.mangle import mangle

FUZZ = settings(
    max_examples=size(300, 20_000),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
INPUT = settings(max_examples=size(200, 5_000), deadline=None)

ANSWER_ERRORS = (ResolutionError, InvalidName)


def names_value(message: str, *values: object) -> bool:
    """True if *message* quotes one of *values* (repr, or str for long ones)."""
    return any(repr(v) in message or (isinstance(v, str) and v and v in message) for v in values)


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------

LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
ALMOST = st.one_of(
    LABEL,
    st.text(alphabet="abcXYZ019-_.* \t\u00e9\u0000", max_size=12),
    st.just(""),
    st.just("a" * 64),
    st.text(max_size=20),
)
NAME = st.one_of(
    st.lists(ALMOST, min_size=1, max_size=6).map(".".join),
    st.lists(ALMOST, min_size=1, max_size=6).map(lambda parts: ".".join(parts) + "."),
    st.text(max_size=300),
)
NOT_STR = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.binary(max_size=8),
                    st.lists(st.integers(), max_size=2), st.booleans())


@INPUT
@given(
    name=st.one_of(NAME, NOT_STR),
    namespace=st.one_of(st.none(), ALMOST, NOT_STR),
    domain=st.one_of(st.just("cluster.local"), NAME, NOT_STR),
)
@example(name="web", namespace=None, domain="cluster.local")
@example(name="a" * 250 + ".prod", namespace=None, domain="cluster.local")
def test_service_names(name, namespace, domain):
    try:
        fqdn = hc.service_fqdn(name, namespace, cluster_domain=domain)
    except InvalidName as exc:
        assert names_value(str(exc), name, namespace, domain), str(exc)
        return
    assert isinstance(fqdn, str) and fqdn.isascii() and not fqdn.endswith(".")
    assert len(fqdn) <= 253
    encode_name(fqdn + ".")  # whatever it accepts can be put on the wire


@INPUT
@given(name=st.one_of(NAME, NOT_STR), port=st.one_of(st.integers(-5, 70_000), ALMOST, NOT_STR))
def test_resolver_plans_validate_name_and_port(name, port):
    """Building a resolution (what HeadlessService does in its constructor) raises only
    InvalidName, naming the value."""
    resolver = hc.Resolver(["127.0.0.1:9"], namespace="prod")
    try:
        plan = resolver._resolve_plan(name, port, "tcp", None)[0]
    except InvalidName as exc:
        assert names_value(str(exc), name, port), str(exc)
        return
    plan.close()


@INPUT
@given(
    ordinal=st.one_of(st.integers(min_value=-(10**30), max_value=10**30), st.booleans(), st.floats(),
                      st.text(max_size=5), st.none()),
    statefulset_name=st.one_of(LABEL, ALMOST),
)
@example(ordinal=10**60, statefulset_name="web")
def test_ordinals(ordinal, statefulset_name):
    try:
        fqdn = hc.pod_fqdn(statefulset_name, ordinal, namespace="prod")
    except InvalidName as exc:
        assert names_value(str(exc), ordinal, statefulset_name), str(exc)
        return
    parsed = hc.parse_pod_fqdn(fqdn)
    assert parsed.ordinal == ordinal and parsed.statefulset == statefulset_name


@INPUT
@given(ordinal=st.one_of(st.integers(min_value=-5, max_value=10**20), st.booleans(), st.floats(), st.text(max_size=3)))
def test_endpoint_by_ordinal(ordinal):
    with hc.HeadlessService("web.prod", 80, resolver=StaticResolver()) as view:
        try:
            view.endpoint(ordinal=ordinal)
        except (InvalidName, hc.EndpointNotFound) as exc:
            assert names_value(str(exc), ordinal), str(exc)
        else:  # pragma: no cover - the view is empty
            raise AssertionError("an empty view found an endpoint")


@INPUT
@given(text=st.one_of(NAME, st.text(max_size=60)))
def test_parse_pod_fqdn(text):
    try:
        pod = hc.parse_pod_fqdn(text)
    except InvalidName as exc:
        assert names_value(str(exc), text), str(exc)
        return
    assert pod.fqdn == text.lower().rstrip(".")


NAMESERVER = st.one_of(
    st.ip_addresses().map(str),
    st.tuples(st.ip_addresses(v=4).map(str), st.integers(-5, 70_000)).map(lambda t: f"{t[0]}:{t[1]}"),
    st.tuples(st.ip_addresses(v=6).map(str), st.integers(-5, 70_000)).map(lambda t: f"[{t[0]}]:{t[1]}"),
    st.text(alphabet="0123456789.:[]abcdef%x ", max_size=45),
    st.text(max_size=20),
)


@INPUT
@given(text=st.one_of(NAMESERVER, NOT_STR))
@example(text="[::1]:")
@example(text="127.0.0.1:")
@example(text="[::1]:५३")  # a non-ASCII digit
def test_nameserver_strings(text):
    try:
        server = parse_nameserver(text)
    except InvalidName as exc:
        assert names_value(str(exc), text), str(exc)
        with pytest.raises(InvalidName):
            hc.Resolver([text])
        return
    assert isinstance(server, Nameserver) and 1 <= server.port <= 65535
    ipaddress.ip_address(server.host)
    assert hc.Resolver([text]).nameservers == (server,)


CIDR = st.one_of(
    st.ip_addresses().map(str),
    st.tuples(st.ip_addresses(), st.integers(-1, 130)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.text(alphabet="0123456789./:af", max_size=20),
)


@INPUT
@given(networks=st.one_of(st.lists(st.one_of(CIDR, NOT_STR), max_size=3), CIDR, NOT_STR.filter(lambda v: v is not None)))
def test_allowed_networks(networks):
    try:
        parsed = parse_networks(networks)
    except InvalidName as exc:
        values = networks if isinstance(networks, list) else []
        assert names_value(str(exc), networks, *values), str(exc)
        with pytest.raises(InvalidName):
            hc.Resolver(["127.0.0.1"], allowed_networks=networks)
        return
    assert parsed and hc.Resolver(["127.0.0.1"], allowed_networks=networks).allowed_networks == parsed


ENDPOINTS = hc.EndpointSet(
    hc.Endpoint(f"10.0.0.{i + 1}", 80, f"web-{i}.web.prod.svc.cluster.local", i) for i in range(5)
)
KEY = st.one_of(st.text(max_size=10), st.binary(max_size=10), st.integers(), st.booleans(), st.none(),
                st.floats(allow_nan=False), st.tuples(st.integers()), st.lists(st.integers(), max_size=2),
                st.builds(object))


@INPUT
@given(key=KEY, strategy=st.sampled_from(["RoundRobin", "Random", "LeastLoaded", "Sticky"]))
def test_keys(key, strategy):
    chooser = getattr(hc, strategy)()
    try:
        first = chooser.pick(ENDPOINTS, key)
    except TypeError as exc:
        assert names_value(str(exc), key) or type(key).__name__ in str(exc), str(exc)
        return
    assert first in ENDPOINTS
    if strategy == "Sticky":
        assert hc.Sticky().pick(ENDPOINTS, key) == first  # stable across instances


PARTITION = st.one_of(st.integers(-3, 10), st.text(max_size=5), st.tuples(st.text(max_size=3), st.integers(0, 3)),
                      st.none(), st.lists(st.integers(), max_size=2), st.booleans(), st.floats(allow_nan=False))


@INPUT
@given(partition=PARTITION)
def test_partitions(partition):
    leaders = {0: 0, 1: 1, ("orders", 2): "web-2", "p": 4}
    view = hc.HeadlessService("web.prod", 80, resolver=StaticResolver(), strategy=hc.PartitionLeader(leaders))
    view.start()
    strategy = view.strategy
    try:
        leader = strategy.pick(ENDPOINTS, partition)
    except hc.LeaderNotAvailable as exc:
        assert names_value(str(exc), partition), str(exc)
    except TypeError as exc:
        assert names_value(str(exc), partition) or "None" in str(exc), str(exc)
    else:
        assert leader in ENDPOINTS
    try:
        view.pick(partition=partition)
    except (hc.NoEndpointsAvailable, TypeError) as exc:
        assert isinstance(exc, HeadlessClientError | TypeError)
    finally:
        view.close()


@INPUT
@given(key=st.one_of(st.binary(max_size=40), st.text(max_size=5), st.integers()),
       partitions=st.one_of(st.integers(-3, 10_000), st.booleans(), st.floats(), st.text(max_size=3)))
def test_kafka_partition(key, partitions):
    try:
        p = hc.kafka_partition(key, partitions)
    except (TypeError, InvalidName) as exc:
        assert names_value(str(exc), partitions, key) or type(key).__name__ in str(exc), str(exc)
        return
    assert 0 <= p < partitions


# --------------------------------------------------------------------------------------------
# Answers: seeds
# --------------------------------------------------------------------------------------------


def _dnspython_seeds() -> list[tuple[str, int, bytes]]:
    zone = statefulset("web", "prod", ["10.0.0.1", "10.0.0.2", "fd00::3"])
    zone[("alias.prod.svc.cluster.local.", "CNAME")] = ["web.prod.svc.cluster.local."]
    zone[("out.prod.svc.cluster.local.", "CNAME")] = ["db.example.com."]
    zone[("db.example.com.", "A")] = ["192.0.2.1"]
    seeds = []
    for upper in (False, True):
        fake = FakeZone(zone, upper=upper, shuffle=random.Random(1))
        for name, rdtype in [
            ("web.prod.svc.cluster.local.", 1), ("web.prod.svc.cluster.local.", 28),
            ("_http._tcp.web.prod.svc.cluster.local.", 33), ("alias.prod.svc.cluster.local.", 1),
            ("out.prod.svc.cluster.local.", 1), ("gone.prod.svc.cluster.local.", 1),
            ("web-1.web.prod.svc.cluster.local.", 1),
        ]:
            seeds.append((name, rdtype, fake.answer(name, rdtype)))
    # Hostile shapes from the fault proxy.
    for name, rdtype in [("web.prod.svc.cluster.local.", 1), ("_http._tcp.web.prod.svc.cluster.local.", 33)]:
        query = packets.parse_query(build_queries([(name, rdtype)]).wires[0])
        assert query is not None
        for kind in packets.MALFORMED_KINDS:
            seeds.append((name, rdtype, packets.malformed(query, kind)))
        seeds.append((name, rdtype, packets.oversized(query, 50)))
        seeds.append((name, rdtype, packets.truncated(query)))
        seeds.append((name, rdtype, packets.garbage_body(query, random.Random(5), 40)))
    return seeds


SEEDS = [(n, t, bytes.fromhex(h)) for n, t, h in BIND_ANSWERS] + _dnspython_seeds()

OP = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(1, 255)),
    st.tuples(st.just("set"), st.integers(0, 1 << 16), st.integers(0, 255)),
    st.tuples(st.just("u16"), st.integers(0, 1 << 16), st.integers(0, 0xFFFF)),
    st.tuples(st.just("pointer"), st.integers(0, 1 << 16), st.integers(0, 0x3FFF)),
    st.tuples(st.just("count"), st.integers(0, 3), st.integers(0, 0xFFFF)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 16), st.just(0)),
    st.tuples(st.just("extend"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 16), st.integers(1, 32)),
    st.tuples(st.just("dup"), st.integers(0, 1 << 16), st.integers(1, 64)),
)




def with_id(pending: Pending, index: int, wire: bytes) -> bytes:
    return pending.wires[index][:2] + wire[2:] if len(wire) >= 2 else wire


# --------------------------------------------------------------------------------------------
# Answers: the wire layer
# --------------------------------------------------------------------------------------------


@FUZZ
@given(seed=st.sampled_from(SEEDS), ops=st.lists(OP, max_size=5), keep_id=st.booleans())
def test_mutated_answers_through_the_wire_layer(seed, ops, keep_id):
    qname, rdtype, wire = seed
    pending = build_queries([(qname, rdtype)])
    mutated = mangle(wire, ops)
    if keep_id:
        mutated = with_id(pending, 0, mutated)
    matched = match_response(pending, mutated)
    if matched is None:
        return
    index, reply = matched
    assert index == 0
    # The wire readers never raise, and what they read is what dnspython's path reads.
    fast_addresses = read_addresses(reply.wire, qname, rdtype)
    domain = qname.split(".", 2)[-1]
    fast_srv = read_srv(reply.wire, qname, allowed_domain=domain)
    try:
        message = reply.message
    except ResolutionError:
        assert fast_addresses is None and fast_srv is None
        return
    assert isinstance(message, dns.message.Message)
    if fast_addresses is not None:
        family = 4 if rdtype == 1 else 6
        for address in fast_addresses.addresses:
            assert ipaddress.ip_address(address).version == family
        assert fast_addresses == addresses_from_answer(message, qname, rdtype)
    if fast_srv is not None:
        kept, dropped = srv_targets(message, qname, allowed_domain=domain)
        assert (list(fast_srv.kept), list(fast_srv.dropped)) == (kept, dropped)
        assert fast_srv.glue == glue_from_message(message)
    try:
        screen(reply, Nameserver("127.0.0.1"))
    except ResolutionError:
        pass


@FUZZ
@given(chunks=st.lists(st.binary(max_size=300), max_size=8), seed=st.sampled_from(SEEDS))
def test_the_exchange_takes_any_bytes(chunks, seed):
    """Arbitrary datagrams and stream bytes fed to an Exchange: no exception, a bounded
    stream buffer, and every question settled at the deadline."""
    qname, rdtype, _wire = seed
    batch = [(qname, rdtype)] * 17  # over udp_batch: starts on TCP
    exchange = Exchange(batch, ExchangeConfig((Nameserver("127.0.0.1"),), 1.0), now=0.0)
    (tcp,) = [a.channel for a in exchange.take_actions() if isinstance(a, Open)]
    exchange.stream_opened(tcp, 0.0)
    exchange.take_actions()
    for chunk in chunks:
        exchange.datagram_received(tcp, chunk, 0.0)
        exchange.stream_received(tcp, chunk, 0.0)
        exchange.take_actions()
        attempt = exchange._attempt
        if attempt is not None and tcp in attempt.conns:
            assert len(attempt.conns[tcp].inbox) < 65537 + 300
    exchange.timer(1.0)
    assert exchange.done and len(exchange.answers()) == 17


# --------------------------------------------------------------------------------------------
# Answers: the lookup plans driven with mutated replies
# --------------------------------------------------------------------------------------------

ZONE_SMALL = statefulset("web", "prod", ["10.0.0.1", "10.0.0.2", "fd00::3"])
ZONE_LARGE = statefulset("big", "prod", [f"10.1.0.{i + 1}" for i in range(20)])


def drive(plan, zone: FakeZone, data) -> object:
    """Run *plan* against *zone*, letting hypothesis mutate any answer on the way."""
    try:
        batch = next(plan)
    except StopIteration as stop:  # nothing to ask (replicas=0)
        return stop.value
    for _ in range(50):  # plans ask a handful of batches; bounded anyway
        pending = build_queries(batch)
        replies = []
        for i, (qname, rdtype) in enumerate(batch):
            wire = zone.answer(qname, rdtype)
            if data.draw(st.integers(0, 9), label="mutate?") < 3:
                wire = mangle(wire, data.draw(st.lists(OP, min_size=1, max_size=3), label="ops"))
            matched = match_response(pending, with_id(pending, i, wire))
            if matched is None:
                raise ResolutionError("no matching answer (the transport would time out)")
            replies.append(matched[1])
        for reply in replies:
            screen(reply, Nameserver("127.0.0.1"))
        try:
            batch = plan.send(replies)
        except StopIteration as stop:
            return stop.value
    raise AssertionError("the plan did not finish within 50 batches")


@FUZZ
@given(
    data=st.data(),
    which=st.sampled_from(["srv", "srv-large", "a", "pod", "statefulset", "host"]),
    glue=st.booleans(),
    networks=st.sampled_from([None, ["10.0.0.0/24"], ["10.0.0.0/8", "fd00::/8"]]),
)
def test_plans_with_mutated_replies_raise_only_documented_errors(data, which, glue, networks):
    resolver = hc.Resolver(["127.0.0.1:9"], namespace="prod", allowed_networks=networks)
    zone = FakeZone(ZONE_LARGE if which == "srv-large" else ZONE_SMALL, glue=glue,
                    shuffle=random.Random(data.draw(st.integers(0, 9))))
    if which == "srv":
        plan = resolver._resolve_plan("web", "http", "tcp", None)[0]
    elif which == "srv-large":
        plan = resolver._resolve_plan("big", "http", "tcp", None)[0]
    elif which == "a":
        plan = resolver._resolve_plan("web", 80, "tcp", None)[0]
    elif which == "pod":
        plan = resolver._pod_plan("web", data.draw(st.integers(0, 3)), None, None, 80)
    elif which == "host":
        plan = resolver._host_plan("web-1.web.prod.svc.cluster.local.", 80)
    else:
        replicas = data.draw(st.none() | st.integers(0, 4))
        plan = resolver.statefulset_lookup("web", port=80, replicas=replicas, max_gap=2).plan
    try:
        result = drive(plan, zone, data)
    except ResolutionError:
        return
    # (InvalidName is documented too, but from a DNS answer it would mean the library let
    # server data reach a constructor unchecked: none is expected here.)
    assert isinstance(result, hc.EndpointSet)
    domain = "big.prod.svc.cluster.local" if which == "srv-large" else "web.prod.svc.cluster.local"
    for ep in result:
        if networks is not None:
            assert any(ipaddress.ip_address(ep.address) in ipaddress.ip_network(n) for n in networks)
        if ep.hostname is not None:
            name = dns.name.from_text(ep.hostname)
            assert is_host_name(name), ep.hostname
            assert in_domain(name, domain), ep.hostname


# --------------------------------------------------------------------------------------------
# Regressions found while fuzzing and reviewing (records.py)
# --------------------------------------------------------------------------------------------

SRV_NAME = "_http._tcp.web.prod.svc.cluster.local."


def _srv_answer(*targets: str, additional=()) -> dns.message.Message:
    query = dns.message.make_query(SRV_NAME, "SRV")
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text(SRV_NAME, 5, "IN", "SRV", *(f"0 0 80 {t}" for t in targets)))
    for rrset in additional:
        response.additional.append(rrset)
    return dns.message.from_wire(response.to_wire())


def test_srv_target_with_an_escaped_dot_is_not_inside_the_service():
    """``evil\\.web.prod.svc...`` has the label ``evil.web`` under ``prod.svc...``: its text
    ends with the service's name, but it is not under it (it was kept before)."""
    message = _srv_answer("evil\\.web.prod.svc.cluster.local.", "web-0.web.prod.svc.cluster.local.",
                          "a\\000b.web.prod.svc.cluster.local.")
    kept, dropped = srv_targets(message, SRV_NAME, allowed_domain="web.prod.svc.cluster.local")
    assert [t.target for t in kept] == ["web-0.web.prod.svc.cluster.local"]
    assert len(dropped) == 2


def test_cname_to_an_escaped_dot_name_is_out_of_the_cluster():
    query = dns.message.make_query("alias.prod.svc.cluster.local.", "A")
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("alias.prod.svc.cluster.local.", 5, "IN", "CNAME", "x\\.cluster.local."))
    response.answer.append(dns.rrset.from_text("x\\.cluster.local.", 5, "IN", "A", "192.0.2.1"))
    message = dns.message.from_wire(response.to_wire())
    with pytest.raises(ResolutionError, match="not followed"):
        addresses_from_answer(message, "alias.prod.svc.cluster.local", dns.rdatatype.A,
                              allowed_domain="cluster.local")


def test_chaos_class_glue_is_ignored():
    """A CHAOS-class "A" record in the additional section carries an int, not an IP; it
    used to become an Endpoint address (InvalidName from a DNS answer)."""
    target = "web-0.web.prod.svc.cluster.local."
    chaos = dns.rrset.from_text(target, 5, "CH", "A", "ns.example. 1234")
    glue = dns.rrset.from_text(target, 5, "IN", "A", "10.0.0.1")
    message = _srv_answer(target, additional=[chaos, glue])
    assert glue_from_message(message)["web-0.web.prod.svc.cluster.local"].addresses == ("10.0.0.1",)
    only_chaos = _srv_answer(target, additional=[chaos])
    assert glue_from_message(only_chaos) == {}
    options = LookupOptions(cname_domain="cluster.local")
    plan = plan_srv(SRV_NAME.rstrip("."), "web.prod.svc.cluster.local", options)
    next(plan)
    pending = build_queries([(SRV_NAME, dns.rdatatype.SRV)])
    reply = match_response(pending, with_id(pending, 0, only_chaos.to_wire()))
    assert reply is not None
    batch = plan.send([reply[1]])  # no usable glue: the target is looked up
    assert batch == [(target, dns.rdatatype.A), (target, dns.rdatatype.AAAA)]
    plan.close()


def test_rcodes_without_names_are_screened():
    """Rcodes 12..15 have no mnemonic; screening them still raises ResolutionError."""
    query = packets.parse_query(build_queries([("web.prod.svc.cluster.local.", 1)]).wires[0])
    for rcode in range(1, 16):
        if rcode == dns.rcode.NXDOMAIN:
            continue
        pending = build_queries([("web.prod.svc.cluster.local.", 1)])
        wire = with_id(pending, 0, packets.rcode_answer(query, rcode))
        matched = match_response(pending, wire)
        assert matched is not None
        with pytest.raises(ResolutionError, match="web.prod"):
            screen(matched[1], Nameserver("127.0.0.1"))


def test_allowed_networks_in_every_plan_without_io(caplog):
    """A/AAAA answers, SRV glue and SRV target lookups are screened; a pod whose every
    address is outside fails with ResolutionError naming them; one log line per call."""
    zone = dict(statefulset("web", "prod", ["10.0.0.1", "192.0.2.2", "fd00::3"]))
    resolver = hc.Resolver(["127.0.0.1:9"], namespace="prod", allowed_networks=["10.0.0.0/8", "fd00::/8"])
    for glue in (True, False):
        fake = FakeZone(zone, glue=glue)
        got = fake.run(resolver._resolve_plan("web", "http", "tcp", None)[0])
        assert sorted(e.address for e in got) == ["10.0.0.1", "fd00::3"]
        got = fake.run(resolver._resolve_plan("web", 80, "tcp", None)[0])
        assert sorted(e.address for e in got) == ["10.0.0.1", "fd00::3"]
        with pytest.raises(ResolutionError, match=r"192\.0\.2\.2.*outside allowed_networks"):
            fake.run(resolver._pod_plan("web", 1, None, None, 80))
        assert fake.run(resolver._pod_plan("web", 0, None, None, 80))[0].address == "10.0.0.1"
    warnings = [r.getMessage() for r in caplog.records if "allowed_networks" in r.getMessage()]
    assert warnings and all("192.0.2.2" in w for w in warnings)
    # One per lookup (glue, then lookup, folded); the same drop again is not logged again.
    assert len(warnings) == 3
