"""wire.py: query building, reply matching and the fast address path."""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rrset
import pytest
from hypothesis import given
from hypothesis import strategies as st

from headless_client.errors import InvalidName, ResolutionError
from headless_client.wire import (
    Failure,
    Nameserver,
    build_queries,
    encode_name,
    match_response,
    parse_nameserver,
    screen,
    server_failure,
    stream_frame,
    take_frames,
)

QNAME = "web.prod.svc.cluster.local."


def answer_for(pending, index, *records, rcode=dns.rcode.NOERROR, qname=QNAME, rdtype="A"):
    query = dns.message.from_wire(pending.wires[index])
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    for rec in records:
        response.answer.append(dns.rrset.from_text(*rec))
    return response.to_wire()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.96.0.10", Nameserver("10.96.0.10", 53)),
        ("127.0.0.1:5353", Nameserver("127.0.0.1", 5353)),
        ("[::1]:5353", Nameserver("::1", 5353)),
        ("[::1]", Nameserver("::1", 53)),
        ("fd00::10", Nameserver("fd00::10", 53)),
    ],
)
def test_parse_nameserver(text, expected):
    """IPv4, IPv4:port, [IPv6]:port and bare IPv6 forms are accepted."""
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize(
    "bad", ["", "dns.google", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x", "[::1", "[::1]x", "1.2.3"]
)
def test_parse_nameserver_rejects(bad):
    """Bad nameserver strings raise InvalidName quoting them."""
    with pytest.raises(InvalidName, match=repr(bad).replace("[", r"\[").replace(".", r"\.")):
        parse_nameserver(bad)


def test_queries_have_unique_ids_and_parse():
    """A batch's queries carry unique IDs and are valid DNS messages with EDNS."""
    pending = build_queries([(f"web-{i}.web.prod.svc.cluster.local.", 1) for i in range(3000)])
    assert len(pending.by_id) == 3000
    msg = dns.message.from_wire(pending.wires[5])
    assert msg.question[0].name.to_text() == "web-5.web.prod.svc.cluster.local."
    assert msg.edns == 0


def test_encode_name_rejects():
    """Names that cannot go on the wire are refused."""
    for bad in ["a" * 64 + ".example.", "é.example.", "a..b."]:
        with pytest.raises(InvalidName):
            encode_name(bad)


def test_match_and_fast_path():
    """A matching reply is accepted and its A records read without dnspython."""
    pending = build_queries([(QNAME, 1)])
    wire = answer_for(pending, 0, (QNAME, 30, "IN", "A", "10.0.0.1", "10.0.0.2"))
    matched = match_response(pending, wire)
    assert matched is not None
    index, reply = matched
    assert index == 0
    assert reply.rcode == 0
    assert reply.suspect  # unknown until read
    addresses, ttl = reply.fast_addresses(len(encode_name(QNAME)) + 4)
    assert sorted(addresses) == ["10.0.0.1", "10.0.0.2"]
    assert ttl == 30
    assert not reply.suspect  # nothing the address screen needs to look at


@pytest.mark.parametrize(
    ("rdtype", "address", "suspect"),
    [("A", "0.0.0.0", True), ("A", "127.0.0.1", False), ("A", "169.254.169.254", True),
     ("A", "224.0.0.1", True), ("A", "255.255.255.255", True), ("A", "169.1.0.1", True),
     ("A", "172.16.0.1", False), ("AAAA", "::ffff:169.254.169.254", True), ("AAAA", "fe80::1", True),
     ("AAAA", "ff02::1", True), ("AAAA", "fd00::1", False), ("AAAA", "2001:db8::1", False)],
)
def test_fast_path_flags_answers_the_address_screen_must_read(rdtype, address, suspect):
    """The wire pass marks answers holding an address in a range the screen may refuse,
    so the usual answer is not parsed twice."""
    pending = build_queries([(QNAME, 1 if rdtype == "A" else 28)])
    wire = answer_for(pending, 0, (QNAME, 30, "IN", rdtype, "10.0.0.9" if rdtype == "A" else "fd00::9", address))
    _, reply = match_response(pending, wire)
    assert reply.fast_addresses(len(encode_name(QNAME)) + 4) is not None
    assert reply.suspect is suspect
    assert reply.loopback is address.startswith("127.")


def test_fast_path_declines_cnames():
    """An answer of another shape goes to the slow path (None), never to 'no data'."""
    pending = build_queries([(QNAME, 1)])
    wire = answer_for(
        pending, 0, (QNAME, 30, "IN", "CNAME", "other.prod.svc.cluster.local."),
        ("other.prod.svc.cluster.local.", 30, "IN", "A", "10.0.0.1"),
    )
    _, reply = match_response(pending, wire)
    assert reply.fast_addresses(len(encode_name(QNAME)) + 4) is None
    assert len(reply.message.answer) == 2


def test_fast_path_reads_uncompressed_answers_like_coredns_sends():
    """CoreDNS writes the owner out in full when the answer fits (in the question's case,
    which may differ from ours): the fast path reads it; another owner goes the slow way."""
    qname_wire = encode_name(QNAME)
    for echoed, rdtype, rdata, address in (
        (qname_wire, 1, bytes([10, 0, 0, 7]), "10.0.0.7"),
        (qname_wire.upper(), 1, bytes([10, 0, 0, 7]), "10.0.0.7"),
        (qname_wire, 28, bytes(15) + b"\x01", "::1"),
    ):
        pending = build_queries([(QNAME, rdtype)])
        query = pending.wires[0]
        header = query[:2] + b"\x84\x00\x00\x01\x00\x02\x00\x00\x00\x00"
        question = query[12 : 12 + len(qname_wire) + 4]
        record = echoed + rdtype.to_bytes(2, "big") + b"\x00\x01" + (5).to_bytes(4, "big")
        record += len(rdata).to_bytes(2, "big") + rdata
        pointer = b"\xc0\x0c" + record[len(echoed) :]
        wire = header + question + record + pointer
        _, reply = match_response(pending, wire)
        assert reply.fast_addresses(len(qname_wire) + 4) == ((address, address), 5)
        assert [r.to_text() for r in reply.message.answer[0]] == [address]  # dnspython agrees
        other = encode_name("web-0.web.prod.svc.cluster.local.")
        wire = header + question + other + record[len(echoed) :] + pointer
        _, reply = match_response(pending, wire)
        assert reply.fast_addresses(len(qname_wire) + 4) is None


def test_fast_path_declines_truncated_records():
    """A record cut short after an uncompressed owner is the slow path's to judge."""
    pending = build_queries([(QNAME, 1)])
    qname_wire = encode_name(QNAME)
    header = pending.wires[0][:2] + b"\x84\x00\x00\x01\x00\x01\x00\x00\x00\x00"
    question = pending.wires[0][12 : 12 + len(qname_wire) + 4]
    _, reply = match_response(pending, header + question + qname_wire + b"\x00\x01\x00")
    assert reply.fast_addresses(len(qname_wire) + 4) is None


def test_take_frames_and_stream_frame():
    """Length-prefixed frames come off the front; a partial frame stays."""
    inbox = bytearray(stream_frame(b"abc") + stream_frame(b"") + stream_frame(b"defg")[:4])
    assert take_frames(inbox) == [b"abc", b""]
    assert bytes(inbox) == b"\x00\x04de"
    inbox += b"fg"
    assert take_frames(inbox) == [b"defg"] and not inbox


def test_mismatches_are_ignored():
    """Wrong ID, wrong question, a query (QR clear) or garbage are not taken as answers."""
    pending = build_queries([(QNAME, 1)])
    good = answer_for(pending, 0, (QNAME, 30, "IN", "A", "10.0.0.1"))
    wrong_id = bytes([good[0] ^ 0xFF, good[1]]) + good[2:]
    assert match_response(pending, wrong_id) is None
    other = build_queries([("evil.prod.svc.cluster.local.", 1)])
    forged = answer_for(other, 0, ("evil.prod.svc.cluster.local.", 30, "IN", "A", "6.6.6.6"))
    forged = good[:2] + forged[2:]
    assert match_response(pending, forged) is None
    assert match_response(pending, pending.wires[0]) is None
    assert match_response(pending, b"\x00" * 5) is None
    assert match_response(pending, good) is not None


def test_case_insensitive_question():
    """A server that echoes the question in another case (0x20) still matches."""
    pending = build_queries([(QNAME, 1)])
    good = bytearray(answer_for(pending, 0, (QNAME, 30, "IN", "A", "10.0.0.1")))
    good[13] = ord("W")
    assert match_response(pending, bytes(good)) is not None


def test_screen():
    """SERVFAIL and REFUSED are server failures; NXDOMAIN is an answer."""
    pending = build_queries([(QNAME, 1), (QNAME, 28)])
    server = Nameserver("127.0.0.1", 53)
    _, nx = match_response(pending, answer_for(pending, 0, rcode=dns.rcode.NXDOMAIN))
    screen(nx, server)
    _, sf = match_response(pending, answer_for(pending, 1, rcode=dns.rcode.SERVFAIL))
    with pytest.raises(ResolutionError, match="SERVFAIL"):
        screen(sf, server)
    assert server_failure(nx, server) is None
    assert server_failure(sf, server) == f"127.0.0.1:53 answered SERVFAIL for {QNAME!r}"


def test_failure_message_names_the_question_and_the_budget():
    failure = Failure(QNAME, 28, "127.0.0.1:53 answered SERVFAIL", 2.0)
    assert failure.message == f"resolving {QNAME} failed within 2s: 127.0.0.1:53 answered SERVFAIL"
    assert not failure.truncated


@given(st.binary(max_size=600))
def test_garbage_never_crashes(data):
    """Random bytes either match nothing or give a Reply whose parsing raises only ResolutionError."""
    pending = build_queries([(QNAME, 1)])
    wire = pending.wires[0][:2] + data
    matched = match_response(pending, wire)
    if matched is None:
        return
    _, reply = matched
    reply.fast_addresses(len(encode_name(QNAME)) + 4)
    try:
        reply.message  # noqa: B018
    except ResolutionError:
        pass
