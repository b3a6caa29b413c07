"""fastwire.py: answers read from the wire equal the dnspython-based path's, or are None.

The contract under test, for any bytes: ``read_addresses`` and ``read_srv`` raise nothing;
they return either exactly what the slow path (``Reply.message`` parsed by dnspython, then
``records.addresses_from_answer`` / ``srv_targets`` + ``glue_from_message``) returns, or
``None``. ``None`` is the only outcome where the slow path raises, and the slow path
raises nothing but ``ResolutionError`` (``ServiceNotFound`` included) there.

Messages come from dnspython-built records (random names in mixed case, compressed or
not, random TTLs, A/AAAA/SRV/CNAME/other types, glue present, partial or absent, records
of other classes), from the real BIND answers of the test ground, and from both mangled
(cut, flipped, pointer loops and out-of-range pointers, bad lengths and counts).
"""

from __future__ import annotations

import io
import ipaddress
import platform
import socket
import struct
from collections.abc import Callable
from typing import TypeVar

import dns.exception
import dns.ipv6
import dns.name
import dns.wire
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from headless_client import fastwire
from headless_client.errors import ResolutionError
from headless_client.fastwire import SrvAnswer, ipv6_text, read_addresses, read_srv
from headless_client.records import (
    DEFAULT_MAX_RECORDS,
    AddressAnswer,
    addresses_from_answer,
    glue_from_message,
    srv_targets,
)
from headless_client.wire import Reply
from tests.faults import packets
from tests.faults.figures import size
from tests.faults.seeds import BIND_ANSWERS
from tests.mangle import mangle

T = TypeVar("T")

A, NS, CNAME, SOA, TXT, AAAA, SRV, OPT = 1, 2, 5, 6, 16, 28, 33, 41
IN, CH = 1, 3

DOMAIN = "web.prod.svc.cluster.local"
SRV_NAME = "_http._tcp." + DOMAIN

def event(name: str) -> None:
    """Count outcomes in ``--hypothesis-show-statistics``; nothing outside hypothesis."""
    try:
        hypothesis_event(name)
    except InvalidArgument:
        pass


GENERATED = settings(
    max_examples=size(400, 20_000),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --------------------------------------------------------------------------------------------
# The slow path and the contract
# --------------------------------------------------------------------------------------------


def slow_addresses(wire: bytes, qname: str, rdtype: int, max_records: int) -> AddressAnswer:
    message = Reply(wire, qname, rdtype).message
    return addresses_from_answer(
        message, qname, rdtype, allowed_domain="cluster.local", max_records=max_records
    )


def slow_srv(wire: bytes, qname: str, domain: str | None, max_records: int) -> SrvAnswer:
    message = Reply(wire, qname, SRV).message
    kept, dropped = srv_targets(message, qname, allowed_domain=domain, max_records=max_records)
    return SrvAnswer(tuple(kept), tuple(dropped), glue_from_message(message))


def agree_addresses(
    wire: bytes, qname: str, rdtype: int, max_records: int = DEFAULT_MAX_RECORDS
) -> AddressAnswer | None:
    """The fast reader's answer, after checking it against the slow path."""
    fast = read_addresses(wire, qname, rdtype, max_records=max_records)
    return agree(fast, lambda: slow_addresses(wire, qname, rdtype, max_records))


def agree(fast: T | None, slow: Callable[[], T]) -> T | None:
    """*fast* (a fast reader's answer), after checking it equals what *slow* reads, and
    that it is ``None`` when *slow* refuses the message."""
    try:
        found = slow()
    except ResolutionError:
        assert fast is None, "the slow path refuses this message; the fast one must too"
        event("slow path raises")
        return None
    event("fast" if fast is not None else "slow path taken")
    if fast is not None:
        assert fast == found
    return fast


def agree_srv(
    wire: bytes, qname: str, domain: str | None = DOMAIN, max_records: int = DEFAULT_MAX_RECORDS
) -> SrvAnswer | None:
    """The fast reader's answer, after checking it against the slow path."""
    fast = agree(read_srv(wire, qname, allowed_domain=domain, max_records=max_records),
                 lambda: slow_srv(wire, qname, domain, max_records))  # fmt: skip
    if fast is not None:
        assert list(fast.kept) == srv_targets(
            Reply(wire, qname, SRV).message, qname, allowed_domain=domain, max_records=max_records
        )[0]
    return fast


# --------------------------------------------------------------------------------------------
# Building messages
# --------------------------------------------------------------------------------------------


class Wire:
    """A DNS message written record by record, names compressed or not, in section order."""

    def __init__(self, *, compress: bool, flags: int = 0x8180, qid: int = 0x1234) -> None:
        self.out = io.BytesIO()
        self.out.write(struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0))
        self.compress: dict[dns.name.Name, int] | None = {} if compress else None
        self.counts = [0, 0, 0, 0]

    def name(self, name: dns.name.Name) -> None:
        name.to_wire(self.out, self.compress)

    def question(self, name: dns.name.Name, rdtype: int, rdclass: int = IN) -> Wire:
        self.name(name)
        self.out.write(struct.pack("!HH", rdtype, rdclass))
        self.counts[0] += 1
        return self

    def record(
        self, section: int, owner: dns.name.Name | bytes, rdtype: int, rdclass: int, ttl: int, rdata: object
    ) -> Wire:
        """One record in *section* (1 answer, 2 authority, 3 additional). *owner* as a
        name, or raw bytes; *rdata* as bytes, or a callable writing it."""
        if isinstance(owner, bytes):
            self.out.write(owner)
        else:
            self.name(owner)
        fixed_at = self.out.tell()
        self.out.write(bytes(10))
        start = self.out.tell()
        if callable(rdata):
            rdata(self)
        else:
            assert isinstance(rdata, bytes)
            self.out.write(rdata)
        end = self.out.tell()
        self.out.seek(fixed_at)
        self.out.write(struct.pack("!HHIH", rdtype, rdclass, ttl, end - start))
        self.out.seek(end)
        self.counts[section] += 1
        return self

    def opt(self, *, ttl: int = 0, options: bytes = b"", owner: bytes = b"\x00") -> Wire:
        return self.record(3, owner, OPT, 1232, ttl, options)

    def bytes(self) -> bytes:
        data = bytearray(self.out.getvalue())
        struct.pack_into("!HHHH", data, 4, *self.counts)
        return bytes(data)


def name_of(*labels: bytes | str) -> dns.name.Name:
    return dns.name.Name([*(x.encode() if isinstance(x, str) else x for x in labels), b""])


def labels_of(text: str) -> list[str]:
    return text.rstrip(".").split(".")


def a_data(address: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, address)


def aaaa_data(address: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, address)


def srv_data(priority: int, weight: int, port: int, target: dns.name.Name):
    """SRV rdata whose target is compressed like the rest of the message (BIND does)."""

    def write(w: Wire) -> None:
        w.out.write(struct.pack("!HHH", priority, weight, port))
        w.name(target)

    return write


def names_data(*names: dns.name.Name, tail: bytes = b""):
    def write(w: Wire) -> None:
        for name in names:
            w.name(name)
        w.out.write(tail)

    return write


SOA_DATA = names_data(
    name_of("ns", "dns", "cluster", "local"),
    name_of("hostmaster", "cluster", "local"),
    tail=struct.pack("!IIIII", 1, 7200, 1800, 86400, 30),
)


def bind_like_srv(count: int, *, glue: bool = True, compress_targets: bool = False) -> bytes:
    """An SRV answer laid out as BIND 9.18 writes it (owners point at the question,
    targets are written out, glue owners point at them), or with compressed targets."""
    w = Wire(compress=True).question(dns.name.from_text(SRV_NAME + "."), SRV)
    targets = [name_of(f"web-{i}", *labels_of(DOMAIN)) for i in range(count)]
    for target in targets:
        if compress_targets:
            w.record(1, b"\xc0\x0c", SRV, IN, 30, srv_data(0, 10, 8080, target))
        else:
            at = w.out.tell() + 2 + 10 + 6
            w.record(1, b"\xc0\x0c", SRV, IN, 30, struct.pack("!HHH", 0, 10, 8080) + target.to_wire())
            if w.compress is not None and at < 0x4000:
                w.compress[target] = at  # glue owners point here, as BIND's do
    if glue:
        for i, target in enumerate(targets):
            w.record(3, target, A, IN, 30, a_data(f"10.0.{i // 250}.{i % 250 + 1}"))
    return w.opt().bytes()


# --------------------------------------------------------------------------------------------
# Table tests
# --------------------------------------------------------------------------------------------

SEEDS = [(name, rdtype, bytes.fromhex(text)) for name, rdtype, text in BIND_ANSWERS]


@pytest.mark.parametrize(("qname", "rdtype", "wire"), SEEDS, ids=[f"{n}{t}" for n, t, _ in SEEDS])
def test_bind_answers(qname, rdtype, wire):
    """The real BIND answers of the test ground read as the slow path reads them, but for
    NXDOMAIN and CNAME chains, which are left to it."""
    if rdtype == SRV:
        got: object = agree_srv(wire, qname, qname.split(".", 2)[2].rstrip("."))
    else:
        got = agree_addresses(wire, qname, rdtype)
    assert (got is None) == (qname.split(".")[0] in ("empty", "alias", "ext"))


def test_bind_srv_values():
    """A real BIND SRV answer: three targets with their glue and TTL."""
    wire = next(w for n, _, w in SEEDS if n == SRV_NAME + ".")
    got = read_srv(wire, SRV_NAME, allowed_domain=DOMAIN)
    assert got is not None
    assert [t.target for t in got.kept] == [f"web-{i}.{DOMAIN}" for i in range(3)]
    assert got.glue[f"web-1.{DOMAIN}"] == AddressAnswer(("127.10.0.2",), 1)
    assert not got.dropped


def test_bind_srv_outside_domain_dropped():
    """A target outside the allowed domain is dropped, as srv_targets drops it."""
    wire = next(w for n, _, w in SEEDS if n.startswith("_http._tcp.evil."))
    got = agree_srv(wire, "_http._tcp.evil.prod.svc.cluster.local", "evil.prod.svc.cluster.local")
    assert got is not None
    assert [t.target for t in got.dropped] == ["attacker.example.net"]
    assert [t.target for t in got.kept] == ["evil-0.evil.prod.svc.cluster.local"]


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("rdtype", [A, AAAA])
def test_addresses_both_layouts(compress, rdtype):
    """Owners as a pointer to the question (BIND) or written out in another case
    (CoreDNS) read alike; the TTL is the smallest; a repeated address counts once."""
    w = Wire(compress=compress).question(dns.name.from_text("Web.Prod.svc.cluster.local."), rdtype)
    owner = dns.name.from_text("WEB.prod.SVC.cluster.local.")
    addresses = ["10.0.0.1", "10.0.0.2", "10.0.0.1"] if rdtype == A else ["fd00::1", "::ffff:10.0.0.1", "fd00::1"]
    for ttl, address in zip((30, 5, 40), addresses, strict=True):
        w.record(1, owner, rdtype, IN, ttl, a_data(address) if rdtype == A else aaaa_data(address))
    got = agree_addresses(w.opt().bytes(), "web.prod.svc.cluster.local.", rdtype)
    assert got is not None
    assert got.ttl == 5
    assert got.addresses == tuple(dict.fromkeys(str(ipaddress.ip_address(a)) for a in addresses)) or rdtype == AAAA
    assert len(got.addresses) == 2


@pytest.mark.parametrize("ttls", [(7, 7, 7), (9, 3, 12), (2**31, 5, 5), (5, 2**32 - 1, 5), (2**31 - 1,)])
def test_ttls(ttls):
    """The smallest TTL; TTLs past 2**31 - 1 read as 0, as dnspython reads them (in the
    block reader of uniform answers and record by record)."""
    for uniform in (True, False):
        w = Wire(compress=True).question(dns.name.from_text(DOMAIN + "."), A)
        for i, ttl in enumerate(ttls):
            # A first owner written out breaks the uniform layout.
            owner = b"\xc0\x0c" if uniform or i else name_of(*labels_of(DOMAIN)).to_wire()
            w.record(1, owner, A, IN, ttl, a_data(f"10.0.0.{i + 1}"))
        got = agree_addresses(w.bytes(), DOMAIN, A)
        assert got is not None
        assert got.ttl == (0 if max(ttls) > 2**31 - 1 else min(ttls))


def test_nodata_with_soa():
    """NODATA (no answer, SOA in authority) reads as no addresses and no TTL."""
    w = Wire(compress=True).question(dns.name.from_text(DOMAIN + "."), AAAA)
    w.record(2, name_of("cluster", "local"), SOA, IN, 30, SOA_DATA)
    assert agree_addresses(w.opt().bytes(), DOMAIN, AAAA) == AddressAnswer((), None)


def test_nodata_srv():
    """An SRV answer without records has nothing kept or dropped, and its glue if any."""
    w = Wire(compress=True).question(dns.name.from_text(SRV_NAME + "."), SRV)
    w.record(2, name_of("cluster", "local"), SOA, IN, 30, SOA_DATA)
    w.record(2, name_of("cluster", "local"), NS, IN, 30, names_data(name_of("ns", "cluster", "local")))
    w.record(3, name_of("web-0", *labels_of(DOMAIN)), A, IN, 30, a_data("10.0.0.1"))
    got = agree_srv(w.bytes(), SRV_NAME)
    assert got == SrvAnswer((), (), {f"web-0.{DOMAIN}": AddressAnswer(("10.0.0.1",), 30)})


OPT_RECORD = b"\x00" + struct.pack("!HHIH", OPT, 1232, 0, 0)


def _one_a(*, flags: int = 0x8180, owner: bytes = b"\xc0\x0c", rdtype: int = A, rdclass: int = IN,
           rdata: bytes = b"\x0a\x00\x00\x01", extra: tuple[bytes, ...] = (OPT_RECORD,),
           trailing: bytes = b"") -> bytes:
    """One A answer, some part replaced; *extra* is the additional section (an OPT)."""
    w = Wire(compress=True, flags=flags).question(dns.name.from_text(DOMAIN + "."), A)
    w.record(1, owner, rdtype, rdclass, 30, rdata)
    for record in extra:
        w.out.write(record)
        w.counts[3] += 1
    return w.bytes() + trailing  # fmt: skip


ANSWER_AT = 12 + len(dns.name.from_text(DOMAIN + ".").to_wire()) + 4

LEFT_TO_SLOW_PATH = {
    "nxdomain": _one_a(flags=0x8183),
    "servfail": _one_a(flags=0x8182),
    "update opcode": _one_a(flags=0xA980),
    "cname": _one_a(rdtype=CNAME, rdata=name_of("other", "cluster", "local").to_wire()),
    "chaos class": _one_a(rdclass=CH),
    "other owner": _one_a(owner=name_of("other", "cluster", "local").to_wire()),
    "owner in the header": _one_a(owner=b"\xc0\x04"),
    "five-octet address": _one_a(rdata=b"\x0a\x00\x00\x01\x07"),
    "trailing junk": _one_a(trailing=b"\x00"),
    "extended rcode": _one_a(extra=(b"\x00" + struct.pack("!HHIH", OPT, 1232, 1 << 24, 0),)),
    "two OPT": _one_a(extra=(OPT_RECORD, OPT_RECORD)),
    "OPT with an option": _one_a(extra=(b"\x00" + struct.pack("!HHIHHH", OPT, 1232, 0, 4, 10, 0),)),
    "OPT owned by a name": _one_a(extra=(b"\x01a\x00" + struct.pack("!HHIH", OPT, 1232, 0, 0),)),
    "TSIG": _one_a(extra=(b"\x00" + struct.pack("!HHIH", 250, 255, 0, 0),)),
    "chaos glue": _one_a(extra=(b"\xc0\x0c" + struct.pack("!HHIH", A, CH, 0, 4) + b"\x01\x02\x03\x04", OPT_RECORD)),
    "TXT glue": _one_a(extra=(b"\xc0\x0c" + struct.pack("!HHIH", TXT, IN, 0, 2) + b"\x01x", OPT_RECORD)),
    "OPT with options cut short": _one_a(extra=(b"\x00" + struct.pack("!HHIH", OPT, 1232, 0, 2) + b"\x00\x0a",)),
    "owner pointer to itself": _one_a(owner=(0xC000 | ANSWER_AT).to_bytes(2, "big")),
    "owner pointer forward": _one_a(owner=(0xC000 | (ANSWER_AT + 4)).to_bytes(2, "big")),
    "owner pointer past the end": _one_a(owner=b"\xff\xf0"),
    "reserved label type": _one_a(owner=b"\x41abc\x00"),
}


@pytest.mark.parametrize("wire", LEFT_TO_SLOW_PATH.values(), ids=LEFT_TO_SLOW_PATH.keys())
def test_left_to_the_slow_path(wire):
    """Unusual or broken answers give None; the slow path then answers or raises."""
    assert read_addresses(wire, DOMAIN, A) is None
    agree_addresses(wire, DOMAIN, A)


def test_one_a_is_read():
    """The answer the table above varies is itself read by the fast path, with or without
    its OPT record, and the table's OPT variants make the slow path raise."""
    assert agree_addresses(_one_a(), DOMAIN, A) == AddressAnswer(("10.0.0.1",), 30)
    assert agree_addresses(_one_a(extra=()), DOMAIN, A) == AddressAnswer(("10.0.0.1",), 30)
    for name in ("extended rcode", "two OPT", "OPT owned by a name", "TSIG", "trailing junk", "nxdomain"):
        with pytest.raises(ResolutionError):
            slow_addresses(LEFT_TO_SLOW_PATH[name], DOMAIN, A, 10)


@pytest.mark.parametrize("kind", packets.MALFORMED_KINDS)
@pytest.mark.parametrize("rdtype", [A, AAAA, SRV])
def test_fault_proxy_malformations(kind, rdtype):
    """The fault proxy's broken answers give None, as the slow path refuses them."""
    qname = SRV_NAME if rdtype == SRV else DOMAIN
    asked = Wire(compress=False, flags=0x0100).question(dns.name.from_text(qname + "."), rdtype).bytes()
    query = packets.parse_query(asked)
    assert query is not None
    wire = packets.malformed(query, kind)
    if rdtype == SRV:
        assert read_srv(wire, qname, allowed_domain=DOMAIN) is None
        agree_srv(wire, qname)
    else:
        assert read_addresses(wire, qname, rdtype) is None
        agree_addresses(wire, qname, rdtype)


def test_max_records():
    """More distinct records than max_records give None (the slow path raises); repeats
    do not count."""
    w = Wire(compress=True).question(dns.name.from_text(DOMAIN + "."), A)
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.2"):
        w.record(1, b"\xc0\x0c", A, IN, 30, a_data(address))
    wire = w.bytes()
    assert agree_addresses(wire, DOMAIN, A, max_records=2) is not None
    assert read_addresses(wire, DOMAIN, A, max_records=1) is None
    with pytest.raises(ResolutionError, match="max_records=1"):
        slow_addresses(wire, DOMAIN, A, 1)
    srv = bind_like_srv(3)
    assert agree_srv(srv, SRV_NAME, max_records=3) is not None
    assert read_srv(srv, SRV_NAME, allowed_domain=DOMAIN, max_records=2) is None


def test_names_that_are_not_plain():
    """A name or domain argument that is not plain ASCII labels gives None; so does a
    type other than A and AAAA."""
    wire = bind_like_srv(2)
    for qname in ("_http._tcp.web\\.prod.svc.cluster.local", "", ".", "a..b", "é.prod", "x" * 64):
        assert read_srv(wire, qname, allowed_domain=DOMAIN) is None
        assert read_addresses(wire, qname, A) is None
    for domain in ("web\\.prod", "", ".", "prod..local"):
        assert read_srv(wire, SRV_NAME, allowed_domain=domain) is None
    assert read_addresses(wire, SRV_NAME, TXT) is None


@pytest.mark.parametrize("compress_targets", [False, True])
def test_srv_layouts(compress_targets):
    """BIND's layout (targets written out, glue owners pointing at them) and compressed
    targets read alike, glue included, past the 16 KiB pointers can reach."""
    got = agree_srv(bind_like_srv(600, compress_targets=compress_targets), SRV_NAME)
    assert got is not None
    assert len(got.kept) == len(got.glue) == 600


def test_srv_uncompressed_mixed_case():
    """A CoreDNS-like answer: nothing compressed, owners and targets in other cases."""
    w = Wire(compress=False).question(dns.name.from_text(SRV_NAME.upper() + "."), SRV)
    for i in range(5):
        target = name_of(f"WEB-{i}", *labels_of(DOMAIN.title()))
        w.record(1, dns.name.from_text(SRV_NAME.title() + "."), SRV, IN, 30 - i, srv_data(0, 20, 80, target))
    for i in range(5):
        w.record(3, name_of(f"web-{i}", *labels_of(DOMAIN)), A, IN, 30, a_data(f"10.0.0.{i}"))
    got = agree_srv(w.bytes(), SRV_NAME.lower())
    assert got is not None
    assert {t.ttl for t in got.kept} == {26}
    assert got.glue[f"web-3.{DOMAIN}"].addresses == ("10.0.0.3",)


def test_srv_repeats_and_glue_merging():
    """Records equal but for the target's case count once; glue of one owner merges its
    A and AAAA rrsets in the order they first appear, without repeats."""
    w = Wire(compress=True).question(dns.name.from_text(SRV_NAME + "."), SRV)
    lower = name_of("web-0", *labels_of(DOMAIN))
    upper = name_of("WEB-0", *labels_of(DOMAIN))
    w.record(1, b"\xc0\x0c", SRV, IN, 30, srv_data(0, 10, 80, lower))
    w.record(1, b"\xc0\x0c", SRV, IN, 9, srv_data(0, 10, 80, upper))
    w.record(3, upper, AAAA, IN, 30, aaaa_data("fd00::1"))
    w.record(3, lower, A, IN, 20, a_data("10.0.0.1"))
    w.record(3, lower, AAAA, IN, 5, aaaa_data("fd00::1"))
    w.record(3, upper, A, IN, 30, a_data("10.0.0.2"))
    got = agree_srv(w.bytes(), SRV_NAME)
    assert got is not None
    assert len(got.kept) == 1
    assert got.kept[0].ttl == 9
    assert got.glue == {f"web-0.{DOMAIN}": AddressAnswer(("fd00::1", "10.0.0.1", "10.0.0.2"), 5)}


ODD_TARGETS = [
    name_of(b"evil.web", *labels_of(DOMAIN)),  # a dot inside a label: not under web...
    name_of(b"-web", *labels_of(DOMAIN)),
    name_of(b"web\x00", *labels_of(DOMAIN)),
    name_of(b"w\xc3\xa9b", *labels_of(DOMAIN)),
    name_of(b'a"b', *labels_of(DOMAIN)),
    name_of(b"a.", *labels_of(DOMAIN)),
    name_of(b"a."),
    dns.name.root,
    name_of(*labels_of(DOMAIN)),
    name_of("x", "y", *labels_of(DOMAIN)),
    name_of("web-0", "attacker", "example"),
    name_of("web-0", "web", "prod", "svc", "cluster", "local", "evil"),
]


@pytest.mark.parametrize("target", ODD_TARGETS, ids=[t.to_text() for t in ODD_TARGETS])
@pytest.mark.parametrize("domain", [DOMAIN, "cluster.local", None, "-web.prod"])
def test_srv_odd_targets(target, domain):
    """Targets with escapes, dots or binary octets in labels, the root, the domain itself
    and names outside it are kept or dropped, with the same text, as srv_targets does."""
    w = Wire(compress=True).question(dns.name.from_text(SRV_NAME + "."), SRV)
    w.record(1, b"\xc0\x0c", SRV, IN, 30, srv_data(1, 2, 3, target))
    w.record(3, target, A, IN, 30, a_data("10.0.0.1"))
    assert agree_srv(w.bytes(), SRV_NAME, domain) is not None


def test_srv_pointer_chains():
    """Names reached through 16 pointers read as dnspython reads them; 17 are refused by
    both (dnspython's PointerChainTooLong)."""
    w = Wire(compress=False).question(dns.name.from_text(SRV_NAME + "."), SRV)
    previous = None
    for i in range(18):
        at = w.out.tell() + 2 + 10 + 6
        tail = name_of(*labels_of(DOMAIN)).to_wire() if previous is None else (0xC000 | previous).to_bytes(2, "big")
        w.record(1, b"\xc0\x0c", SRV, IN, 30, struct.pack("!HHH", 0, 0, i) + bytes([2]) + b"t%d" % (i % 10) + tail)
        previous = at
        wire = w.bytes()
        got = agree_srv(wire, SRV_NAME, domain=None)
        assert (got is not None) == (i <= 16), i


def test_ipv6_text_table():
    """AAAA text is dnspython's, embedded IPv4 forms included."""
    for text in ("::", "::1", "::2", "::1.2.3.4", "::ffff:1.2.3.4", "::fffe:102:304", "fd00::1", "1::1:0:0:1",
                 "1:0:0:1::1", "0:1::"):  # fmt: skip
        packed = aaaa_data(text)
        assert ipv6_text(packed) == dns.ipv6.inet_ntoa(packed)
        assert fastwire._ipv6_text_python(packed) == dns.ipv6.inet_ntoa(packed)


WORD = st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xFFFE, 0x1234])
PACKED6 = st.one_of(
    st.binary(min_size=16, max_size=16),
    st.lists(WORD, min_size=8, max_size=8).map(lambda words: struct.pack("!8H", *words)),
)


@given(PACKED6)
@settings(max_examples=size(500, 20_000), deadline=None)
def test_ipv6_text_property(packed):
    """Both IPv6 writers (libc's, checked at import, and the pure-Python one) equal
    dnspython's for any 16 octets."""
    assert fastwire._ipv6_text_python(packed) == dns.ipv6.inet_ntoa(packed)
    assert ipv6_text(packed) == dns.ipv6.inet_ntoa(packed)


# --------------------------------------------------------------------------------------------
# Generated messages
# --------------------------------------------------------------------------------------------

LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9_]{0,6}[a-z0-9])?", fullmatch=True)
ODD_LABEL = st.sampled_from([b"-x", b"x-", b"a.b", b"a\\b", b"\x00", b"\xc3\xa9", b"a b", b"a$", b"*", b"x" * 63])
FIRST_LABEL = st.one_of(
    st.sampled_from([b"web-0", b"web-1", b"Web-1", b"web-2", b"WEB-2"]),
    LABEL.map(str.encode),
    ODD_LABEL,
    st.binary(min_size=1, max_size=6),
)
TTL = st.one_of(st.sampled_from([0, 1, 5, 30, 2**31 - 1, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1))
V4 = st.one_of(st.sampled_from(["10.0.0.1", "10.0.0.2", "127.0.0.1"]), st.ip_addresses(v=4).map(str))
V6 = st.one_of(
    st.sampled_from(["fd00::1", "::ffff:10.0.0.1", "::1.2.3.4", "::", "fd00::1"]),
    PACKED6.map(lambda p: str(ipaddress.IPv6Address(p))),
)


@st.composite
def recased(draw, text: str) -> str:
    """*text* with each letter's case drawn."""
    mask = draw(st.integers(0, (1 << len(text)) - 1))
    return "".join(c.upper() if mask >> i & 1 else c for i, c in enumerate(text))


@st.composite
def targets(draw) -> dns.name.Name:
    domain = labels_of(draw(recased(DOMAIN)))
    kind = draw(st.sampled_from(["under"] * 6 + ["deeper", "domain", "root", "outside", "longer"]))
    first = draw(FIRST_LABEL)
    if kind == "under":
        return name_of(first, *domain)
    if kind == "deeper":
        return name_of(first, draw(FIRST_LABEL), *domain)
    if kind == "domain":
        return name_of(*domain)
    if kind == "root":
        return dns.name.root
    if kind == "longer":
        return name_of(first, *domain, "evil")
    return name_of(first, "attacker", "example")


FLAGS = st.tuples(
    st.sampled_from([0] * 40 + [2 << 11, 4 << 11, 5 << 11]),  # opcode
    st.sampled_from([0] * 40 + [2, 3, 5]),  # rcode
).map(lambda parts: 0x8180 | parts[0] | parts[1])


@st.composite
def extras(draw, w: Wire, owners: list[dns.name.Name]) -> None:
    """Authority and additional records: SOA, NS, glue of *owners* (present, partial,
    absent, repeated), records of other classes and types, OPT variants."""
    for _ in range(draw(st.sampled_from([0] * 4 + [1, 2]))):
        kind = draw(st.sampled_from(["soa", "ns", "txt", "a"]))
        owner = name_of("cluster", "local")
        if kind == "soa":
            w.record(2, owner, SOA, IN, draw(TTL), SOA_DATA)
        elif kind == "ns":
            w.record(2, owner, NS, IN, draw(TTL), names_data(name_of("ns", "cluster", "local")))
        elif kind == "txt":
            w.record(2, owner, TXT, IN, draw(TTL), b"\x01x")
        else:
            w.record(2, owner, A, IN, draw(TTL), a_data("10.9.9.9"))
    glue: list[tuple[dns.name.Name, int, bytes]] = []
    for owner in owners:
        for _ in range(draw(st.integers(0, 2))):
            if draw(st.booleans()):
                glue.append((owner, A, a_data(draw(V4))))
            else:
                glue.append((owner, AAAA, aaaa_data(draw(V6))))
    glue = draw(st.permutations(glue)) if glue else glue
    for owner, rdtype, data in glue:
        owner = dns.name.from_text(draw(recased(owner.to_text()))) if draw(st.booleans()) and owner.labels[0].isascii() else owner
        w.record(3, owner, rdtype, IN if draw(st.integers(0, 40)) else CH, draw(TTL), data)
    for _ in range(draw(st.sampled_from([0] * 9 + [1]))):
        kind = draw(st.sampled_from(["ch-txt", "txt", "srv"]))
        if kind == "ch-txt":
            w.record(3, name_of("version", "bind"), TXT, CH, 0, b"\x019")
        elif kind == "txt":
            w.record(3, name_of("x", "cluster", "local"), TXT, IN, 0, b"\x01x")
        else:
            w.record(3, name_of("x", "cluster", "local"), SRV, IN, 0, srv_data(0, 0, 1, name_of("y")))
    opt = draw(st.sampled_from(["plain"] * 24 + ["none"] * 4 + ["ext-rcode", "option", "two"]))
    if opt == "plain":
        w.opt()
    elif opt == "ext-rcode":
        w.opt(ttl=1 << 24)
    elif opt == "option":
        w.opt(options=struct.pack("!HH", 10, 8) + bytes(8))
    elif opt == "two":
        w.opt().opt()


@st.composite
def srv_messages(draw) -> bytes:
    w = Wire(compress=draw(st.booleans()), flags=draw(FLAGS))
    w.question(dns.name.from_text(draw(recased(SRV_NAME)) + "."), SRV)
    chosen: list[dns.name.Name] = []
    for _ in range(draw(st.integers(0, 6))):
        owner: dns.name.Name | bytes = dns.name.from_text(draw(recased(SRV_NAME)) + ".")
        kind = draw(st.sampled_from(["srv"] * 50 + ["pointer"] * 10 + ["cname", "txt", "chaos", "other owner"]))
        target = draw(targets())
        if not chosen or draw(st.booleans()):
            chosen.append(target)
        else:
            target = draw(st.sampled_from(chosen))
        numbers = draw(st.tuples(st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 65535)))
        data = srv_data(*numbers, target)
        if kind == "pointer":
            owner = b"\xc0\x0c"
        if kind == "cname":
            w.record(1, owner, CNAME, IN, draw(TTL), names_data(target))
        elif kind == "txt":
            w.record(1, owner, TXT, IN, draw(TTL), b"\x01x")
        else:
            rdclass = CH if kind == "chaos" else IN
            if kind == "other owner":
                owner = name_of("_http", "_tcp", "other", "cluster", "local")
            w.record(1, owner, SRV, rdclass, draw(TTL), data)
    draw(extras(w, chosen))
    return w.bytes()


@st.composite
def address_messages(draw, rdtype: int) -> bytes:
    w = Wire(compress=draw(st.booleans()), flags=draw(FLAGS))
    w.question(dns.name.from_text(draw(recased(DOMAIN)) + "."), rdtype)
    uniform_owner = draw(st.sampled_from([None, b"\xc0\x0c"]))
    for _ in range(draw(st.integers(0, 8))):
        owner: dns.name.Name | bytes = uniform_owner or dns.name.from_text(draw(recased(DOMAIN)) + ".")
        kind = draw(st.sampled_from(["own"] * 60 + ["other type", "cname", "chaos", "other owner"]))
        if kind == "cname":
            w.record(1, owner, CNAME, IN, draw(TTL), names_data(name_of("x", "cluster", "local")))
            continue
        own = kind != "other type"
        family = rdtype if own else (AAAA if rdtype == A else A)
        data = a_data(draw(V4)) if family == A else aaaa_data(draw(V6))
        if kind == "other owner":
            owner = name_of("other", "cluster", "local")
        w.record(1, owner, family, CH if kind == "chaos" else IN, draw(TTL), data)
    draw(extras(w, []))
    return w.bytes()


DOMAINS = st.sampled_from([DOMAIN, DOMAIN.upper() + ".", "cluster.local", None, "prod.svc.cluster.local", "-x.local"])


@given(srv_messages(), DOMAINS, st.sampled_from([DEFAULT_MAX_RECORDS] * 5 + [2]))
@GENERATED
def test_generated_srv(wire, domain, max_records):
    """dnspython-built SRV answers: the fast reader gives the slow path's result or None."""
    agree_srv(wire, SRV_NAME, domain, max_records)


@given(st.sampled_from([A, AAAA]).flatmap(lambda t: st.tuples(st.just(t), address_messages(t))))
@GENERATED
def test_generated_addresses(case):
    """dnspython-built A and AAAA answers: the fast reader gives the slow path's result or
    None."""
    rdtype, wire = case
    agree_addresses(wire, DOMAIN, rdtype)
    agree_addresses(wire, DOMAIN + ".", A if rdtype == AAAA else AAAA)


# --------------------------------------------------------------------------------------------
# Mangled messages
# --------------------------------------------------------------------------------------------

OP = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(1, 255)),
    st.tuples(st.just("set"), st.integers(0, 1 << 16), st.integers(0, 255)),
    st.tuples(st.just("u16"), st.integers(0, 1 << 16), st.integers(0, 0xFFFF)),
    st.tuples(st.just("pointer"), st.integers(0, 1 << 16), st.integers(0, 0x3FFF)),
    st.tuples(st.just("self"), st.integers(0, 1 << 16), st.integers(-4, 8)),
    st.tuples(st.just("count"), st.integers(0, 3), st.integers(0, 12)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 16), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 16), st.integers(1, 16)),
    st.tuples(st.just("rdlen"), st.integers(0, 1 << 16), st.integers(-3, 3)),
)




SEED_WIRES = st.one_of(
    st.sampled_from([wire for _, _, wire in SEEDS]),
    st.sampled_from([bind_like_srv(3), bind_like_srv(3, compress_targets=True), _one_a()]),
    srv_messages(),
    address_messages(A),
    address_messages(AAAA),
)


@given(SEED_WIRES, st.lists(OP, min_size=1, max_size=4))
@GENERATED
@example(wire=bind_like_srv(2), ops=[("self", 12 + 43, 0)])
def test_mangled(wire, ops):
    """Mangled answers: each reader gives the slow path's result or None, raises nothing."""
    mangled = mangle(wire, ops)
    agree_srv(mangled, SRV_NAME)
    agree_srv(mangled, "_http._tcp.web-peers.prod.svc.cluster.local", "web-peers.prod.svc.cluster.local")
    agree_addresses(mangled, DOMAIN, A)
    agree_addresses(mangled, DOMAIN, AAAA)


@given(st.binary(max_size=300))
@settings(max_examples=size(300, 20_000), deadline=None)
def test_noise(wire):
    """Random bytes: None or agreement, and nothing raised."""
    agree_srv(wire, SRV_NAME)
    agree_addresses(wire, DOMAIN, A)


def test_dnspython_exceptions_are_wrapped():
    """The slow path turns dnspython's parse errors into ResolutionError (what None leads
    to), so the contract above covers every failure."""
    with pytest.raises(ResolutionError):
        slow_addresses(b"\x00" * 5, DOMAIN, A, 10)
    assert issubclass(dns.exception.FormError, dns.exception.DNSException)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="checks the writer chosen on glibc")
def test_libc_writer_chosen_on_glibc():
    """On glibc, inet_ntop writes IPv6 as dnspython does, so the fast writer is used."""
    assert fastwire._libc_agrees()
    assert fastwire._ipv6_text is fastwire._ipv6_text_libc


# --------------------------------------------------------------------------------------------
# Names, alone: the reader against dns.name.from_wire_parser
# --------------------------------------------------------------------------------------------

SOUP_LABEL = st.one_of(st.sampled_from([b"web-0", b"Web", b"a", b"x" * 63, b"A.b"]), st.binary(min_size=1, max_size=4))


@st.composite
def name_soup(draw) -> tuple[bytes, list[int], int]:
    """Bytes holding names one after another (labels, pointers back to earlier names or
    anywhere, reserved label types, cut-off names), the offsets where they start, and a
    bound on the bytes of the last name."""
    wire = bytearray(12)
    starts: list[int] = []
    for _ in range(draw(st.integers(1, 14))):
        starts.append(len(wire))
        for _ in range(draw(st.integers(0, 3))):
            label = draw(SOUP_LABEL)
            wire += bytes([len(label)]) + label
        ending = draw(st.sampled_from(["zero", "zero", "back", "back", "back", "into", "anywhere", "type", "none"]))
        if ending == "type" and draw(st.booleans()):
            del wire[starts[-1] :]  # the reserved type first
        if ending == "zero":
            wire += b"\x00"
        elif ending == "back":
            wire += (0xC000 | draw(st.sampled_from(starts))).to_bytes(2, "big")
        elif ending == "into":
            wire += (0xC000 | draw(st.integers(0, len(wire)))).to_bytes(2, "big")
        elif ending == "anywhere":
            wire += (0xC000 | draw(st.integers(0, 0x3FFF))).to_bytes(2, "big")
        elif ending == "type":
            # A reserved label type, then what a label of that length would be followed
            # by: a pointer back, or junk.
            label_type = draw(st.integers(64, 191))
            after = (0xC000 | draw(st.sampled_from(starts))).to_bytes(2, "big") if draw(st.booleans()) else b"\x00"
            wire += bytes([label_type]) + b"t" * label_type + after
    bound = len(wire) - draw(st.sampled_from([0, 0, 0, 1, 2]))
    return bytes(wire), starts, bound


def dnspython_name(wire: bytes, pos: int, end: int) -> tuple[tuple[bytes, ...], int] | None:
    parser = dns.wire.Parser(wire, pos)
    parser.end = end
    try:
        name = dns.name.from_wire_parser(parser)
    except dns.exception.DNSException:
        return None
    return tuple(label.lower() for label in name.labels[:-1]), parser.current


@given(name_soup())
@settings(max_examples=size(1000, 50_000), deadline=None)
def test_names_as_dnspython_reads_them(soup):
    """Names read in order (with the reader's shortcuts: remembered offsets, pointers to
    them, the last uncompressed tail) have dnspython's labels and end, or both refuse."""
    wire, starts, bound = soup
    reader = fastwire._Reader(wire, None)
    for i, pos in enumerate(starts):
        end = bound if i == len(starts) - 1 else len(wire)
        got = reader.read(pos, end)
        expected = dnspython_name(wire, pos, end)
        assert (None if got is None else (got[0], got[2])) == expected, (pos, end)


def test_reserved_label_type_before_a_pointer():
    """A name starting with a reserved label type (0x41) is refused even when what would
    follow a 65-octet label is a pointer to a name read before (a shortcut once took it)."""
    w = Wire(compress=True).question(dns.name.from_text(SRV_NAME + "."), SRV)
    at = w.out.tell() + 2 + 10 + 6
    w.record(1, b"\xc0\x0c", SRV, IN, 30, struct.pack("!HHH", 0, 10, 8080) + name_of("web-0", *labels_of(DOMAIN)).to_wire())
    w.record(3, b"\x41" + b"a" * 65 + (0xC000 | at).to_bytes(2, "big"), A, IN, 30, a_data("10.0.0.1"))
    wire = w.opt().bytes()
    assert read_srv(wire, SRV_NAME, allowed_domain=DOMAIN) is None
    agree_srv(wire, SRV_NAME)
