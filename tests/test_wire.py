"""wire.py: query building, reply matching, screening and TCP framing."""

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


def test_match_accepts_a_reply_to_our_question():
    """A matching reply is accepted as the reply to its question, rcode read from the header."""
    pending = build_queries([(QNAME, 1)])
    wire = answer_for(pending, 0, (QNAME, 30, "IN", "A", "10.0.0.1", "10.0.0.2"))
    matched = match_response(pending, wire)
    assert matched is not None
    index, reply = matched
    assert index == 0
    assert (reply.rcode, reply.qname, reply.rdtype, reply.truncated) == (0, QNAME, 1, False)
    assert sorted(r.address for r in reply.message.answer[0]) == ["10.0.0.1", "10.0.0.2"]


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
    try:
        reply.message  # noqa: B018
    except ResolutionError:
        pass
