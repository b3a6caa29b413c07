"""Hostile and broken DNS answers, built byte by byte. Pure: no I/O, no clock.

The fault proxy (:mod:`tests.faults.proxy`) sends these instead of (or on top of) what the
real server said, and the fuzz tests (tests/test_fuzz.py) use them as seeds. Every builder
takes the raw *query* (what the library sent) so the answer can echo its ID and question:
an answer that does not echo them is ignored by the library before any parsing, which
would test nothing but a timeout.
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "MALFORMED_KINDS",
    "Query",
    "garbage_body",
    "malformed",
    "noise",
    "oversized",
    "parse_query",
    "rcode_answer",
    "respond",
    "truncated",
    "with_wrong_id",
    "with_wrong_question",
]

HEADER = struct.Struct("!HHHHHH")
RR_FIXED = struct.Struct("!HHIH")

QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100

A, AAAA, SRV = 1, 28, 33

#: The largest UDP payload over IPv4 (loopback's MTU allows it).
MAX_UDP = 65507
#: The largest message a TCP length prefix can carry.
MAX_TCP = 65535

MALFORMED_KINDS = (
    "rdlength",  # a record claims more rdata than the message holds
    "cut",  # the message ends inside a record, without TC
    "pointer_loop",  # a record's owner is a compression pointer to itself
    "forward_pointer",  # a compression pointer past the end of the message
    "ancount",  # ANCOUNT claims more records than present
    "bad_rdata",  # an A record with 5 bytes of address, an SRV with 3 bytes of rdata
    "label_type",  # a reserved label type (0x40) in an owner name
)


@dataclass(frozen=True, slots=True)
class Query:
    """The parts of a one-question query an answer must echo."""

    qid: int
    flags: int
    question: bytes  # name + type + class, exactly as asked
    qtype: int
    labels: tuple[bytes, ...]

    @property
    def name_length(self) -> int:
        return len(self.question) - 4


def parse_query(wire: bytes) -> Query | None:
    """The query's ID and question, or ``None`` if it is not a one-question query."""
    if len(wire) < 12:
        return None
    qid, flags, qdcount, _an, _ns, _ar = HEADER.unpack_from(wire)
    if qdcount != 1 or flags & QR:
        return None
    offset = 12
    labels: list[bytes] = []
    for _ in range(128):  # a name has at most 127 labels
        if offset >= len(wire):
            return None
        length = wire[offset]
        if length == 0:
            offset += 1
            break
        if length & 0xC0:
            return None  # queries are not compressed
        labels.append(wire[offset + 1 : offset + 1 + length])
        offset += 1 + length
    else:
        return None
    if offset + 4 > len(wire):
        return None
    qtype = int.from_bytes(wire[offset : offset + 2], "big")
    return Query(qid, flags, bytes(wire[12 : offset + 4]), qtype, tuple(labels))


def _header(query: Query, *, rcode: int = 0, tc: bool = False, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    flags = QR | AA | (query.flags & RD) | (TC if tc else 0) | (rcode & 0xF)
    return HEADER.pack(query.qid, flags, 1, an, ns, ar)


def respond(
    query: Query, records: Sequence[bytes] = (), *, rcode: int = 0, tc: bool = False, ancount: int | None = None
) -> bytes:
    """An answer echoing *query* with the given raw answer *records*."""
    count = len(records) if ancount is None else ancount
    return _header(query, rcode=rcode, tc=tc, an=count) + query.question + b"".join(records)


def rcode_answer(query: Query, rcode: int) -> bytes:
    """An empty answer with *rcode* (2 SERVFAIL, 5 REFUSED, ...)."""
    return respond(query, [], rcode=rcode)


def truncated(query: Query) -> bytes:
    """TC set and no records: "ask me over TCP"."""
    return respond(query, [], tc=True)


def a_record(address: str, ttl: int = 1, owner: bytes = b"\xc0\x0c") -> bytes:
    return owner + RR_FIXED.pack(A, 1, ttl, 4) + socket.inet_aton(address)


def aaaa_record(address: str, ttl: int = 1, owner: bytes = b"\xc0\x0c") -> bytes:
    return owner + RR_FIXED.pack(AAAA, 1, ttl, 16) + socket.inet_pton(socket.AF_INET6, address)


def _service_pointer(query: Query) -> bytes:
    """A compression pointer to the service name inside an SRV question
    (``_http._tcp.<service>``), or to the whole question name."""
    offset = 12
    labels = list(query.labels)
    skipped = 0
    while labels and labels[0].startswith(b"_") and skipped < 2:
        offset += 1 + len(labels.pop(0))
        skipped += 1
    return (0xC000 | offset).to_bytes(2, "big")


def srv_record(target_label: bytes, pointer: bytes, port: int = 8080, ttl: int = 1) -> bytes:
    rdata = struct.pack("!HHH", 0, 0, port) + bytes([len(target_label)]) + target_label + pointer
    return b"\xc0\x0c" + RR_FIXED.pack(SRV, 1, ttl, len(rdata)) + rdata


def _synth_address(i: int, family: int) -> str:
    if family == A:
        return f"10.{200 + (i >> 16) % 50}.{(i >> 8) & 0xFF}.{i & 0xFF}"
    return f"fd00:66::{i >> 16:x}:{i & 0xFFFF:x}"


def oversized(query: Query, count: int, *, max_size: int = MAX_TCP) -> bytes:
    """*count* records of the asked type (A, AAAA or SRV), as many as fit in *max_size*.

    The records are well-formed: only their number is hostile. Other types get NOERROR
    with no records.
    """
    base = len(query.question) + 12
    records: list[bytes] = []
    size = base
    pointer = _service_pointer(query)
    for i in range(count):
        if query.qtype == A:
            rec = a_record(_synth_address(i, A))
        elif query.qtype == AAAA:
            rec = aaaa_record(_synth_address(i, AAAA))
        elif query.qtype == SRV:
            rec = srv_record(f"x{i}".encode(), pointer)
        else:
            break
        if size + len(rec) > max_size:
            break
        records.append(rec)
        size += len(rec)
    return respond(query, records)


def _one_record(query: Query) -> bytes:
    if query.qtype == AAAA:
        return aaaa_record("fd00:66::1")
    if query.qtype == SRV:
        return srv_record(b"x0", _service_pointer(query))
    return a_record("10.200.0.1")


def malformed(query: Query, kind: str) -> bytes:
    """An answer broken in one of :data:`MALFORMED_KINDS` ways; ID and question are right."""
    record = _one_record(query)
    answer_at = 12 + len(query.question)
    if kind == "rdlength":
        broken = record[:10] + (len(record) - 12 + 200).to_bytes(2, "big") + record[12:]
        return respond(query, [broken])
    if kind == "cut":
        return respond(query, [record, record])[:-3]
    if kind == "pointer_loop":
        return respond(query, [(0xC000 | answer_at).to_bytes(2, "big") + record[2:]])
    if kind == "forward_pointer":
        return respond(query, [b"\xff\xf0" + record[2:]])
    if kind == "ancount":
        return respond(query, [record], ancount=7)
    if kind == "bad_rdata":
        if query.qtype == SRV:
            bad = b"\xc0\x0c" + RR_FIXED.pack(SRV, 1, 1, 3) + b"\x00\x00\x1f"
        else:
            rtype = AAAA if query.qtype == AAAA else A
            bad = b"\xc0\x0c" + RR_FIXED.pack(rtype, 1, 1, 5) + b"\x0a\x00\x00\x01\x07"
        return respond(query, [bad])
    if kind == "label_type":
        return respond(query, [b"\x41abc\x00" + record[2:]])
    raise ValueError(f"unknown malformation {kind!r}; one of {MALFORMED_KINDS}")


def garbage_body(query: Query, rng: random.Random, size: int | None = None) -> bytes:
    """Right ID and question, then random counts and random bytes: gets past the ID and
    question checks, so the parser has to cope."""
    size = rng.randrange(0, 600) if size is None else size
    body = rng.randbytes(size)
    counts = struct.pack("!HHH", rng.randrange(0, 65536), rng.randrange(0, 65536), rng.randrange(0, 65536))
    return _header(query)[:6] + counts + query.question + body


def noise(rng: random.Random, size: int | None = None) -> bytes:
    """Random bytes (any ID, any flags): noise a resolver must ignore."""
    return rng.randbytes(rng.randrange(0, 600) if size is None else size)


def with_wrong_id(answer: bytes) -> bytes:
    """*answer* with another ID (a blind spoofing attempt)."""
    if len(answer) < 2:
        return answer
    qid = int.from_bytes(answer[:2], "big") ^ 0x5A5A
    return qid.to_bytes(2, "big") + answer[2:]


def with_wrong_question(answer: bytes) -> bytes:
    """*answer* echoing another name: the first letter of the first label is changed
    (to another letter, so case folding cannot make it equal again)."""
    if len(answer) < 14 or answer[12] == 0 or answer[12] & 0xC0:
        return answer
    first = answer[13]
    replacement = ord("q") if first not in (ord("q"), ord("Q")) else ord("z")
    return answer[:13] + bytes([replacement]) + answer[14:]
