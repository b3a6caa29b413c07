"""Answers read straight from the wire: addresses, SRV records and their glue. Pure.

Nearly every answer this library reads has one shape: the records of the name asked,
owned by that name, then glue. BIND writes each owner as a pointer to the question and
each glue owner as a pointer to its SRV target; CoreDNS writes answers that fit
uncompressed. Reading those bytes directly costs a twentieth (SRV with glue) to a
hundredth (A) of building a :class:`dns.message.Message` and walking it.

The contract, checked by property tests against dnspython on generated and mangled
messages: a reader returns either exactly what the dnspython-based path of
:mod:`headless_client.records` gives for the same bytes, or ``None``, meaning "take the
slow path". ``None`` comes back

- for every message the slow path refuses, so taking it raises the documented error:
  bytes dnspython cannot parse (``ResolutionError`` from ``Reply.message``), an rcode
  other than NOERROR (``ServiceNotFound`` or ``ResolutionError``), more records than
  *max_records* (``ResolutionError``);
- and for shapes not read here: not exactly one question, an opcode other than QUERY, a
  question or answer owner other than the name asked, CNAMEs, a class other than IN,
  types other than A, AAAA, SRV (answer), NS, SOA (authority) and one OPT without
  options, a name argument that is not plain ASCII host labels.

The readers raise nothing, whatever the *wire* bytes. Loops are bounded by the header's
record counts and the message length; names are decompressed by dnspython's rules
(pointers strictly backwards, at most 16, never into the name's own bytes), so a pointer
loop ends in ``None``, not a hang.
"""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from .records import DEFAULT_MAX_RECORDS, AddressAnswer, SrvTarget

__all__ = ["SrvAnswer", "ipv6_text", "read_addresses", "read_srv"]

_A, _NS, _SOA, _AAAA, _SRV, _OPT = 1, 2, 6, 28, 33, 41
_IN = 1
#: dnspython's MAX_COMPRESSION_POINTER_CHAIN. Older releases allow more: a name read here
#: is read by every supported dnspython, with the same labels.
_MAX_HOPS = 16
_MAX_NAME = 255
#: dnspython reads TTLs above 2**31 - 1 as 0 (RFC 2181 section 8).
_MAX_TTL = 0x7FFFFFFF
#: Header flags that must be zero: the opcode (QUERY is 0) and the rcode (NOERROR).
_OPCODE_RCODE = 0x780F

_RR = struct.Struct("!HHIH")
#: An RR's fixed fields and an SRV's priority, weight and port.
_SRV_RR = struct.Struct("!HHIHHHH")
_WORDS = struct.Struct("!8H")

#: Label octets dnspython prints as themselves (``dns.name._escapify``): printable ASCII
#: except the characters it escapes with a backslash.
_ESCAPED = b'"().;\\@$'
_VERBATIM_OR_DOT = bytes(c for c in range(0x21, 0x7F) if c not in _ESCAPED) + b"."
#: A plain host-name label, as ``records.is_host_name`` has it (labels are lower-cased).
_HOST_LABEL = re.compile(rb"[a-z0-9_](?:[-a-z0-9_]{0,61}[a-z0-9_])?")
_PLAIN_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}")

#: IPv4 text as dnspython writes it, from a table: half the cost of formatting numbers.
_OCTETS = tuple(str(i) for i in range(256))
_dotted = ".".join

Labels = tuple[bytes, ...]
#: A name read from an offset: its labels (lower-cased), the pointers followed to read
#: them, where its own run of bytes ends (after the zero octet or its first pointer),
#: and its length on the wire.
_Name = tuple[Labels, int, int, int]
#: Glue being collected: (owner, type) -> [smallest TTL, address, ...], in the order
#: dnspython makes the rrsets.
_Groups = dict[tuple[Labels, int], list[object]]


@dataclass(frozen=True, slots=True)
class SrvAnswer:
    """One SRV answer: its records split as ``records.srv_targets`` splits them, and glue.

    For the same message, ``(list(kept), list(dropped))`` equals what ``srv_targets``
    returns and ``glue`` equals what ``glue_from_message`` returns.
    """

    kept: tuple[SrvTarget, ...]
    dropped: tuple[SrvTarget, ...]
    glue: Mapping[str, AddressAnswer]


def read_addresses(
    wire: bytes, qname: str, rdtype: int, *, max_records: int = DEFAULT_MAX_RECORDS
) -> AddressAnswer | None:
    """The A (``rdtype`` 1) or AAAA (28) addresses of *qname* in the response *wire*.

    Equal, when not ``None``, to ``records.addresses_from_answer(m, qname, rdtype,
    allowed_domain=any, max_records=max_records)`` for ``m = Reply(wire, ...).message``.

    Args:
        wire: One DNS response, as received.
        qname: The name asked, with or without the final dot.
        rdtype: 1 for A, 28 for AAAA; another type gives ``None``.
        max_records: More distinct records than this give ``None``.

    Returns:
        The addresses in answer order without repeats and their smallest TTL (``None``
        when there are none), or ``None`` to take the slow path.
    """
    if rdtype not in (_A, _AAAA):
        return None
    asked = _plain(qname)
    if asked is None:
        return None
    try:
        reader = _Reader.open(wire, asked)
        if reader is None:
            return None
        answered = _read_address_records(reader, rdtype, 4 if rdtype == _A else 16)
        if answered is None or len(answered[0]) > max_records or _tail_refused(reader, answered[2], None):
            return None
    except (IndexError, struct.error):
        return None
    return _address_answer(answered[0], answered[1])


def read_srv(
    wire: bytes, qname: str, *, allowed_domain: str | None, max_records: int = DEFAULT_MAX_RECORDS
) -> SrvAnswer | None:
    """The SRV records of *qname* and the glue addresses in the response *wire*.

    Equal, when not ``None``, for ``m = Reply(wire, ...).message``: ``(list(kept),
    list(dropped)) == records.srv_targets(m, qname, allowed_domain=allowed_domain,
    max_records=max_records)`` and ``glue == records.glue_from_message(m)``.

    Args:
        wire: One DNS response, as received.
        qname: The SRV name asked (``_http._tcp.web...``), with or without the final dot.
        allowed_domain: Targets outside it are dropped, as ``srv_targets`` drops them;
            ``None``: anywhere. A domain that is not plain ASCII labels gives ``None``.
        max_records: More distinct SRV records than this give ``None``.

    Returns:
        The split records and the glue, or ``None`` to take the slow path.
    """
    asked = _plain(qname)
    allowed = None if allowed_domain is None else _plain(allowed_domain)
    if asked is None or (allowed_domain is not None and allowed is None):
        return None
    domain = None if allowed is None else allowed[0]
    groups: _Groups = {}
    try:
        reader = _Reader.open(wire, asked)
        if reader is None:
            return None
        answered = _read_srv_records(reader)
        if answered is None or len(answered[0]) > max_records or _tail_refused(reader, answered[2], groups):
            return None
    except (IndexError, struct.error):
        return None
    records, ttl, _ = answered
    kept: list[SrvTarget] = []
    dropped: list[SrvTarget] = []
    texts: dict[Labels, tuple[str, bool]] = {}
    judge = _Judge(domain)
    for priority, weight, port, labels in records:
        known = texts.get(labels)
        if known is None:
            known = texts[labels] = judge(labels)
        (kept if known[1] else dropped).append(_srv_target(known[0], port, priority, weight, ttl or 0))
    return SrvAnswer(tuple(kept), tuple(dropped), _glue(groups, texts))


def ipv6_text(packed: bytes) -> str:
    """The text dnspython gives 16 octets of AAAA data (``dns.ipv6.inet_ntoa``)."""
    return _ipv6_text(packed)


#: Name text -> its lower-cased labels and wire form, or None. A bounded memo: one name
#: is asked per answer read.
_PLAIN: dict[str, tuple[Labels, bytes] | None] = {}
_UNKNOWN: tuple[Labels, bytes] = ((), b"")


def _plain(name: str) -> tuple[Labels, bytes] | None:
    """The lower-cased labels and wire form of a name of ASCII letters, digits, ``-`` and
    ``_``; for such a name ``dns.name.from_text`` gives these labels. Others (escapes,
    IDNA, empty labels, the root) go to the slow path."""
    known = _PLAIN.get(name, _UNKNOWN)
    if known is not _UNKNOWN:
        return known
    text = name[:-1] if name.endswith(".") else name
    parts = text.split(".")
    found: tuple[Labels, bytes] | None = None
    if 0 < len(text) <= _MAX_NAME - 2 and all(_PLAIN_LABEL.fullmatch(part) for part in parts):
        labels = tuple(part.lower().encode("ascii") for part in parts)
        found = labels, b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"
    if len(_PLAIN) >= 4096:
        _PLAIN.clear()
    _PLAIN[name] = found
    return found


class _Reader:
    """One message past its question; names read from it, remembered by offset."""

    __slots__ = ("counts", "names", "qlen", "qsimple", "question", "tail", "tail_labels", "wire")

    def __init__(self, wire: bytes, question: _Name | None) -> None:
        """A reader of *wire* past its *question* (read at offset 12); with None, a reader
        of names only (to read that question)."""
        self.wire = wire
        # The last uncompressed name past its first label (see read).
        self.tail = b""
        self.tail_labels: Labels = ()
        if question is None:
            self.names: dict[int, _Name] = {}
            return
        self.names = {12: question}
        self.qlen = question[2] - 12
        self.question = wire[12 : question[2]]
        # With no pointer in the question, an owner written as the pointer 0xC00C or as
        # the question's bytes again is the question's name wherever it stands.
        self.qsimple = not question[1]
        self.counts = ((wire[6] << 8) | wire[7], (wire[8] << 8) | wire[9], (wire[10] << 8) | wire[11])

    @classmethod
    def open(cls, wire: bytes, asked: tuple[Labels, bytes]) -> _Reader | None:
        """A reader of a NOERROR QUERY response whose one question is the name *asked*
        (labels and wire form)."""
        if len(wire) < 12 or ((wire[2] << 8) | wire[3]) & _OPCODE_RCODE or wire[4] or wire[5] != 1:
            return None
        qlabels, qwire = asked
        qend = 12 + len(qwire)
        if wire[12:qend].lower() == qwire:
            # The name asked, uncompressed, whatever its case (length octets are below
            # every letter, so equal lower-cased bytes are equal labels).
            question: _Name | None = (qlabels, 0, qend, len(qwire))
        else:
            question = _Reader(wire, None).read(12, len(wire))
        if question is None or question[0] != qlabels or question[2] + 4 > len(wire):
            return None
        return cls(wire, question)

    def owner_is_question(self, pos: int) -> int:
        """Where the record at *pos* goes on if its owner is the question's name; else -1."""
        wire = self.wire
        if self.qsimple:
            if wire[pos] == 0xC0 and wire[pos + 1] == 12:
                return pos + 2
            qlen = self.qlen
            if wire.startswith(self.question, pos) or wire[pos : pos + qlen].lower() == self.question.lower():
                return pos + qlen
        owner = self.read(pos, len(wire))
        if owner is None or owner[0] != self.names[12][0]:
            return -1
        return owner[2]

    def read(self, pos: int, end: int) -> _Name | None:
        """The name at *pos*, its own bytes ending by *end*.

        Shortcuts for the shapes of nearly every name past the question: a pointer, or a
        label then a pointer, to a name read before (BIND); a label then the same bytes
        as the last uncompressed name (CoreDNS: ``web-7`` then ``web.prod.svc...``).
        """
        if pos >= end:
            return None
        wire = self.wire
        count = wire[pos]
        if not count:
            # The root: the OPT record's owner.
            return ((), 0, pos + 1, 1)
        if count >= 192:
            if pos + 2 <= end:
                target = ((count & 0x3F) << 8) | wire[pos + 1]
                rest = self.names.get(target)
                if rest is not None and target < pos and rest[2] <= pos and rest[1] < _MAX_HOPS:
                    entry: _Name = (rest[0], rest[1] + 1, pos + 2, rest[3])
                    self.names[pos] = entry
                    return entry
        elif count < 64 and pos + 1 + count < end:
            after = pos + 1 + count
            follow = wire[after]
            if follow >= 192:
                if after + 2 <= end:
                    target = ((follow & 0x3F) << 8) | wire[after + 1]
                    rest = self.names.get(target)
                    if (
                        rest is not None
                        and target < pos
                        and rest[2] <= pos
                        and rest[1] < _MAX_HOPS
                        and rest[3] + count < _MAX_NAME
                    ):
                        label = wire[pos + 1 : after].lower()
                        entry = ((label, *rest[0]), rest[1] + 1, after + 2, rest[3] + count + 1)
                        self.names[pos] = entry
                        return entry
            elif follow:
                tail = self.tail
                stop = after + len(tail)
                if tail and stop <= end and stop - pos <= _MAX_NAME and wire.startswith(tail, after):
                    entry = ((wire[pos + 1 : after].lower(), *self.tail_labels), 0, stop, stop - pos)
                    self.names[pos] = entry
                    return entry
        found = self._run(pos, end, 0)
        if found is not None and 0 < count < 64 and not found[1] and len(found[0]) > 1:
            # Uncompressed: its bytes past the first label spell the same name anywhere.
            self.tail = wire[pos + 1 + count : found[2]]
            self.tail_labels = found[0][1:]
        return found

    def _run(self, start: int, limit: int, hops: int) -> _Name | None:
        """The name from *start*, reached by *hops* pointers; its bytes end by *limit*.

        dnspython's rules (``dns.name.from_wire_parser``): a pointer goes strictly below
        the start of the run of bytes holding it (so below the previous pointer, and the
        bytes it points to end before that run), at most 16 pointers, labels of 1..63
        octets, 255 octets in all. A later pointer to an offset read before gets the
        remembered name when it obeys the same bounds.
        """
        wire = self.wire
        labels: list[bytes] = []
        length = 1
        pos = start
        while True:
            if pos >= limit:
                return None
            count = wire[pos]
            if count == 0:
                entry: _Name = (tuple(labels), 0, pos + 1, length)
                break
            if count < 64:
                stop = pos + 1 + count
                if stop > limit:
                    return None
                labels.append(wire[pos + 1 : stop].lower())
                length += count + 1
                pos = stop
                continue
            if count < 192 or pos + 2 > limit:
                return None
            target = ((count & 0x3F) << 8) | wire[pos + 1]
            if target >= start or hops >= _MAX_HOPS:
                return None
            rest = self.names.get(target)
            if rest is None:
                rest = self._run(target, start, hops + 1)
                if rest is None:
                    return None
            elif rest[2] > start or hops + 1 + rest[1] > _MAX_HOPS:
                return None
            entry = ((*labels, *rest[0]), rest[1] + 1, pos + 2, length + rest[3] - 1)
            break
        if entry[3] > _MAX_NAME:
            return None
        self.names.setdefault(start, entry)
        return entry


def _read_address_records(
    reader: _Reader, rdtype: int, size: int
) -> tuple[tuple[str, ...], int | None, int] | None:
    """The answer: *rdtype* records of the question's name, class IN, and nothing else."""
    pos = reader.qlen + 16
    count = reader.counts[0]
    if not count:
        return (), None, pos
    # Small answers are read record by record: slicing columns costs more than it saves.
    block = _uniform_block(reader, pos, count, rdtype, size) if count > 8 else None
    if block is not None:
        return block
    wire = reader.wire
    simple = reader.qsimple
    question = reader.question
    addresses: list[str] = []
    ttl = _MAX_TTL
    for _ in range(count):
        if simple and wire[pos] == 0xC0 and wire[pos + 1] == 12:
            pos += 2
        elif simple and wire.startswith(question, pos):
            pos += reader.qlen
        else:
            pos = reader.owner_is_question(pos)
            if pos < 0:
                return None
        rtype, rclass, rr_ttl, rdlen = _RR.unpack_from(wire, pos)
        pos += 10
        if rtype != rdtype or rclass != _IN or rdlen != size or pos + size > len(wire):
            return None
        if size == 4:
            o = _OCTETS
            addresses.append(_dotted((o[wire[pos]], o[wire[pos + 1]], o[wire[pos + 2]], o[wire[pos + 3]])))
        else:
            addresses.append(_ipv6_text(wire[pos : pos + 16]))
        pos += size
        if rr_ttl > _MAX_TTL:
            rr_ttl = 0
        if rr_ttl < ttl:
            ttl = rr_ttl
    # An rdataset is a set: a repeated address is one record.
    return (addresses[0],) if count == 1 else tuple(dict.fromkeys(addresses)), ttl, pos


def _uniform_block(
    reader: _Reader, pos: int, count: int, rdtype: int, size: int
) -> tuple[tuple[str, ...], int, int] | None:
    """The answer as one block, when every record has the first one's bytes except for
    TTL and address (how servers write an rrset); ``None`` to read record by record.

    Equal owner bytes are an equal and equally valid owner wherever they stand, so the
    first record is checked and the others compared to it column by column: a few slices
    in C instead of a Python step per record.
    """
    wire = reader.wire
    after = reader.owner_is_question(pos)
    if after < 0:
        return None
    head = after - pos
    stride = head + 10 + size
    stop = pos + count * stride
    fixed = _RR.unpack_from(wire, after)
    if stop > len(wire) or fixed[0] != rdtype or fixed[1] != _IN or fixed[3] != size:
        return None
    for column in (*range(head + 4), head + 8, head + 9):
        if wire[pos + column : stop : stride] != wire[pos + column : pos + column + 1] * count:
            return None
    same_ttl = all(
        wire[pos + column : stop : stride] == wire[pos + column : pos + column + 1] * count
        for column in range(head + 4, head + 8)
    )
    block = wire[pos:stop]
    if same_ttl:
        ttl = 0 if fixed[2] > _MAX_TTL else fixed[2]
    else:
        ttls = [t for (t,) in struct.iter_unpack(f"!{head + 4}xI{size + 2}x", block)]
        ttl = 0 if max(ttls) > _MAX_TTL else min(ttls)
    if size == 4:
        octets = _OCTETS
        addresses = [
            _dotted((octets[a], octets[b], octets[c], octets[d]))
            for a, b, c, d in struct.iter_unpack(f"!{head + 10}x4B", block)
        ]
    else:
        addresses = [_ipv6_text(packed) for (packed,) in struct.iter_unpack(f"!{head + 10}x16s", block)]
    return tuple(dict.fromkeys(addresses)), ttl, stop


def _read_srv_records(reader: _Reader) -> tuple[list[tuple[int, int, int, Labels]], int | None, int] | None:
    """The answer: SRV records of the question's name, class IN, and nothing else."""
    wire = reader.wire
    end = len(wire)
    read = reader.read
    pos = reader.qlen + 16
    count = reader.counts[0]
    simple = reader.qsimple
    question = reader.question
    qlen = reader.qlen
    seen: dict[tuple[int, int, int, Labels], None] = {}
    ttl = _MAX_TTL
    for _ in range(count):
        if simple and wire[pos] == 0xC0 and wire[pos + 1] == 12:
            pos += 2
        elif simple and wire.startswith(question, pos):
            pos += qlen
        else:
            pos = reader.owner_is_question(pos)
            if pos < 0:
                return None
        # Fixed fields and the SRV numbers at once: a record too short for them is
        # refused just below, or fails the unpack at the very end of the message.
        rtype, rclass, rr_ttl, rdlen, priority, weight, port = _SRV_RR.unpack_from(wire, pos)
        rd_end = pos + 10 + rdlen
        if rtype != _SRV or rclass != _IN or rdlen < 7 or rd_end > end:
            return None
        target = read(pos + 16, rd_end)
        if target is None or target[2] != rd_end:
            return None
        # Records equal but for the case of the target are one record to dnspython.
        seen[(priority, weight, port, target[0])] = None
        pos = rd_end
        if rr_ttl > _MAX_TTL:
            rr_ttl = 0
        if rr_ttl < ttl:
            ttl = rr_ttl
    return list(seen), (ttl if count else None), pos


def _tail_refused(reader: _Reader, pos: int, groups: _Groups | None) -> bool:
    """True unless the authority and additional sections are what servers send; the
    glue A/AAAA records go to *groups*.

    Authority may hold NS and SOA (class IN), additional A and AAAA (class IN) and one
    OPT without options and with extended rcode 0. The message must end there.
    """
    wire = reader.wire
    end = len(wire)
    _, authority, additional = reader.counts
    if (
        not authority
        and additional == 1
        and pos + 11 == end
        and wire[pos] == 0
        and wire[pos + 1] == 0
        and wire[pos + 2] == _OPT
        and not wire[pos + 5]
    ):
        # Just the OPT record most answers end with: root owner, type 41, extended
        # rcode 0 (the TTL's first octet), then no options (the rdlength, last).
        return bool(wire[pos + 9] or wire[pos + 10])
    read = reader.read
    unpack = _RR.unpack_from
    opt_seen = False
    for index in range(authority + additional):
        owner = read(pos, end)
        if owner is None:
            return True
        pos = owner[2]
        rtype, rclass, rr_ttl, rdlen = unpack(wire, pos)
        pos += 10
        rd_end = pos + rdlen
        if rd_end > end:
            return True
        if rclass == _IN and index >= authority and rtype in (_A, _AAAA):
            if rdlen != (4 if rtype == _A else 16):
                return True
            if groups is not None:
                if rr_ttl > _MAX_TTL:
                    rr_ttl = 0
                address = _address_text(wire, pos, rdlen)
                group = groups.get((owner[0], rtype))
                if group is None:
                    groups[(owner[0], rtype)] = [rr_ttl, address]
                else:
                    group.append(address)
                    if rr_ttl < group[0]:
                        group[0] = rr_ttl
        elif rtype == _OPT:
            # dnspython refuses a second OPT, one outside additional or not owned by the
            # root; a non-zero extended rcode makes the rcode other than NOERROR.
            if index < authority or opt_seen or owner[0] or rdlen or rr_ttl >> 24:
                return True
            opt_seen = True
        elif rclass != _IN or index >= authority:
            return True
        elif rtype == _NS:
            name = read(pos, rd_end)
            if name is None or name[2] != rd_end:
                return True
        elif rtype == _SOA:
            name = read(pos, rd_end)
            name = None if name is None else read(name[2], rd_end)
            if name is None or name[2] + 20 != rd_end:
                return True
        else:
            return True
        pos = rd_end
    return pos != end


def _address_text(wire: bytes, pos: int, size: int) -> str:
    """The A (*size* 4) or AAAA (16) address at *pos* as dnspython writes it."""
    if size == 4:
        o = _OCTETS
        return _dotted((o[wire[pos]], o[wire[pos + 1]], o[wire[pos + 2]], o[wire[pos + 3]]))
    return _ipv6_text(wire[pos : pos + 16])


class _Judge:
    """Text and verdict (kept or dropped) of SRV targets, by the rules of ``srv_targets``.

    Kept: not the root ("." means "no service here"), a plain host name, inside the
    allowed domain if there is one. A target is mostly one host label under the allowed
    domain: then only that label needs a look.
    """

    __slots__ = ("domain", "domain_text", "plain")

    def __init__(self, domain: Labels | None) -> None:
        self.domain = domain
        self.domain_text = b".".join(domain).decode("ascii") if domain else ""
        self.plain = domain is not None and all(_HOST_LABEL.fullmatch(label) for label in domain)

    def __call__(self, labels: Labels) -> tuple[str, bool]:
        domain = self.domain
        under = len(labels) - (len(domain) if domain is not None else 0)
        inside = domain is None or (under >= 0 and labels[under:] == domain)
        if inside and self.plain:
            if not under:
                return self.domain_text, True
            prefix = labels[:under]
            if all(_HOST_LABEL.fullmatch(label) for label in prefix):
                return b".".join(prefix).decode("ascii") + "." + self.domain_text, True
        text, host = _describe(labels)
        return text, bool(text) and host and inside


def _describe(labels: Labels) -> tuple[str, bool]:
    """``name.to_text().rstrip(".").lower()`` and ``records.is_host_name(name)`` for the
    name of lower-cased *labels*."""
    joined = b".".join(labels)
    if joined.count(b".") == len(labels) - 1 and not joined.translate(None, _VERBATIM_OR_DOT):
        # No label holds a dot and every octet prints as itself: the text is the octets.
        text = joined.decode("ascii")
    else:
        text = (".".join(map(_escapify, labels)) + ".").rstrip(".")
    return text, all(_HOST_LABEL.fullmatch(label) for label in labels)


def _escapify(label: bytes) -> str:
    """One label as ``dns.name._escapify`` prints it."""
    out = []
    for c in label:
        if c in _ESCAPED:
            out.append("\\" + chr(c))
        elif 0x20 < c < 0x7F:
            out.append(chr(c))
        else:
            out.append(f"\\{c:03d}")
    return "".join(out)


def _glue(groups: _Groups, texts: dict[Labels, tuple[str, bool]]) -> dict[str, AddressAnswer]:
    """``records.glue_from_message``: each rrset in order, merged by owner text."""
    found: dict[str, list[object]] = {}
    for (labels, _), group in groups.items():
        known = texts.get(labels)
        owner = known[0] if known is not None else _describe(labels)[0]
        addresses = group[1:]
        if len(addresses) > 1:
            # An rdataset is a set: a repeated address is one record.
            addresses = list(dict.fromkeys(addresses))
        merged = found.get(owner)
        if merged is None:
            found[owner] = [group[0], addresses]
        else:
            merged[1].extend(addresses)  # type: ignore[attr-defined]
            if group[0] < merged[0]:  # type: ignore[operator]
                merged[0] = group[0]
    return {owner: _address_answer(tuple(addrs), ttl) for owner, (ttl, addrs) in found.items()}  # type: ignore[arg-type]


def _ipv6_text_python(packed: bytes) -> str:
    """``dns.ipv6.inet_ntoa``: the longest run (the first of equals) of two or more zero
    groups becomes ``::``; ``::a.b.c.d`` and ``::ffff:a.b.c.d`` keep IPv4 text."""
    words = _WORDS.unpack(packed)
    best_start = best_len = 0
    start = -1
    for i, word in enumerate(words):
        if word:
            start = -1
            continue
        if start < 0:
            start = i
        if i - start + 1 > best_len:
            best_start, best_len = start, i - start + 1
    if best_len < 2:
        return ":".join(f"{w:x}" for w in words)
    if best_start == 0 and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF)):
        return ("::" if best_len == 6 else "::ffff:") + _dotted(map(str, packed[12:]))
    head = ":".join(f"{w:x}" for w in words[:best_start])
    return head + "::" + ":".join(f"{w:x}" for w in words[best_start + best_len :])


def _libc_agrees() -> bool:
    """True if this platform's ``inet_ntop`` writes IPv6 as dnspython does (glibc and musl
    do); otherwise the pure-Python writer, ten times slower, is used."""
    samples = [
        bytes(16), bytes(15) + b"\x01", bytes(15) + b"\x02", bytes(12) + b"\x01\x02\x03\x04",
        bytes(10) + b"\xff\xff\x01\x02\x03\x04", bytes(10) + b"\xff\xfe\x01\x02\x03\x04",
        b"\xfd" + bytes(14) + b"\x01", b"\x20\x01\x0d\xb8" + bytes(4) + b"\x00\x01" + bytes(6),
        b"\x00\x01" + bytes(4) + b"\x00\x01" + bytes(4) + b"\x00\x01" * 2, b"\xab\xcd" * 8,
        bytes(2) + b"\x00\x01" * 7, b"\x00\x01" * 7 + bytes(2), bytes(4) + b"\x00\x01" * 6,
    ]  # fmt: skip
    try:
        return all(socket.inet_ntop(socket.AF_INET6, s) == _ipv6_text_python(s) for s in samples)
    except (OSError, ValueError, AttributeError):  # pragma: no cover - no inet_ntop here
        return False


def _ipv6_text_libc(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, packed)


_ipv6_text: Callable[[bytes], str] = _ipv6_text_libc if _libc_agrees() else _ipv6_text_python


def _makers() -> tuple[
    Callable[[str, int, int, int, int], SrvTarget], Callable[[tuple[str, ...], int | None], AddressAnswer]
]:
    """Constructors of SrvTarget and AddressAnswer that set the slots directly.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``:
    for a thousand-record answer, a third of the reading. The values read here already
    have the right types. Used only while the classes have these fields, in this order,
    and no ``__post_init__``; otherwise the classes themselves.
    """
    new = object.__new__
    make_srv: Callable[[str, int, int, int, int], SrvTarget] = SrvTarget
    make_answer: Callable[[tuple[str, ...], int | None], AddressAnswer] = AddressAnswer
    srv_names = ("target", "port", "priority", "weight", "ttl")
    if tuple(f.name for f in fields(SrvTarget)) == srv_names and not hasattr(SrvTarget, "__post_init__"):
        s_target, s_port, s_priority, s_weight, s_ttl = (vars(SrvTarget)[n].__set__ for n in srv_names)

        def make_srv(target: str, port: int, priority: int, weight: int, ttl: int) -> SrvTarget:
            made: SrvTarget = new(SrvTarget)
            s_target(made, target)
            s_port(made, port)
            s_priority(made, priority)
            s_weight(made, weight)
            s_ttl(made, ttl)
            return made

    answer_names = ("addresses", "ttl")
    if tuple(f.name for f in fields(AddressAnswer)) == answer_names and not hasattr(
        AddressAnswer, "__post_init__"
    ):
        a_addresses, a_ttl = (vars(AddressAnswer)[n].__set__ for n in answer_names)

        def make_answer(addresses: tuple[str, ...], ttl: int | None) -> AddressAnswer:
            made: AddressAnswer = new(AddressAnswer)
            a_addresses(made, addresses)
            a_ttl(made, ttl)
            return made

    return make_srv, make_answer


_srv_target, _address_answer = _makers()
