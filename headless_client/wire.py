"""DNS messages on the wire: building query batches, matching and screening responses.

Pure. The exchange (:mod:`headless_client.exchange`) sends what :func:`build_queries`
makes and feeds whatever bytes arrive to :func:`match_response`, which only accepts a
well-formed reply to a question we asked (right ID, right question, QR set); anything
else, a spoofed or corrupted packet, is ignored rather than trusted.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import dns.exception
import dns.rcode

from .errors import InvalidName, ResolutionError

if TYPE_CHECKING:
    import dns.message  # loaded by Reply.message, for the answers the wire readers leave

__all__ = [
    "EDNS_PAYLOAD",
    "MAX_MESSAGE_SIZE",
    "Answer",
    "Failure",
    "Nameserver",
    "Pending",
    "Reply",
    "build_queries",
    "encode_name",
    "match_response",
    "parse_nameserver",
    "screen",
    "server_failure",
    "stream_frame",
    "take_frames",
]

#: What CoreDNS and BIND honour from clients; avoids IP fragmentation (DNS flag day 2020).
EDNS_PAYLOAD = 1232
#: Replies are refused above this size; TCP's length prefix caps at 65535 anyway.
MAX_MESSAGE_SIZE = 65535


@dataclass(frozen=True, slots=True)
class Nameserver:
    """A DNS server address."""

    host: str
    port: int = 53

    @property
    def family(self) -> int:
        """4 or 6."""
        return 6 if ":" in self.host else 4

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.family == 6 else f"{self.host}:{self.port}"


def parse_nameserver(text: object) -> Nameserver:
    """Parse ``"ip"``, ``"ip:port"``, ``"[v6]:port"`` or a bare IPv6 address.

    Raises:
        InvalidName: not an IP address with an optional port in 1..65535.
    """
    if not isinstance(text, str):
        raise InvalidName(f"nameserver must be a str, not {type(text).__name__}: {text!r}")
    host, port_text = text.strip(), None
    if host.startswith("["):
        end = host.find("]")
        if end < 0 or (end + 1 < len(host) and host[end + 1] != ":"):
            raise InvalidName(f"nameserver {text!r} is not '[ipv6]:port'")
        host, port_text = host[1:end], (host[end + 2 :] if end + 1 < len(host) else None)
    elif host.count(":") == 1:
        host, port_text = host.split(":")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise InvalidName(f"nameserver {text!r} is not an IP address (host names are not resolved)") from None
    port = 53
    if port_text is not None:
        # isascii: "²".isdigit() is True, and int("²") raises a bare ValueError.
        if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
            raise InvalidName(f"nameserver {text!r} has an invalid port {port_text!r}")
        port = int(port_text)
    return Nameserver(str(ip), port)


_FLAG_QR = 0x8000
_FLAG_TC = 0x0200
_OPCODE_MASK = 0x7800
# EDNS0 OPT pseudo-record: root owner, type 41, our UDP payload size, no flags, no options.
_OPT = b"\x00\x00\x29" + EDNS_PAYLOAD.to_bytes(2, "big") + b"\x00\x00\x00\x00\x00\x00"


#: Name -> its wire form: a lookup asks the same names at every refresh. Bounded.
_ENCODED: dict[str, bytes] = {}
_ENCODED_MAX = 8192


def encode_name(qname: str) -> bytes:
    """Uncompressed wire form of an absolute name (ASCII labels of 1..63 octets).

    Raises:
        InvalidName: an empty, non-ASCII or over-long label, or a name over 255 octets.
    """
    known = _ENCODED.get(qname)
    if known is not None:
        return known
    encoded = _encode_name(qname)
    if len(_ENCODED) >= _ENCODED_MAX:
        _ENCODED.clear()
    _ENCODED[qname] = encoded
    return encoded


def _encode_name(qname: str) -> bytes:
    labels = qname.rstrip(".").split(".") if qname.strip(".") else []
    out = bytearray()
    for label in labels:
        raw = label.encode("ascii", "strict") if label.isascii() else b""
        if not 0 < len(raw) < 64:
            raise InvalidName(f"name {qname!r} has an empty, non-ASCII or over-long label {label!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise InvalidName(f"name {qname!r} is longer than 255 octets on the wire")
    return bytes(out)


class Reply:
    """One validated answer to one question; parsed fully only when needed.

    Most answers a resolver needs have one shape ("the A records of the name I asked",
    "the SRV records and their glue"), and :mod:`headless_client.fastwire` reads those
    straight from :attr:`wire`. Anything else (CNAMEs, other owners) goes through
    dnspython's parser, :attr:`message`.
    """

    __slots__ = ("_message", "qname", "rcode", "rdtype", "truncated", "wire")

    def __init__(self, wire: bytes, qname: str, rdtype: int) -> None:
        self.wire = wire
        self.qname = qname
        self.rdtype = rdtype
        flags = int.from_bytes(wire[2:4], "big")
        self.rcode = flags & 0x000F
        self.truncated = bool(flags & _FLAG_TC)
        self._message: dns.message.Message | None = None

    @property
    def message(self) -> dns.message.Message:
        """The whole answer, parsed by dnspython.

        Raises:
            ResolutionError: the answer is malformed.
        """
        if self._message is None:
            import dns.message

            try:
                self._message = dns.message.from_wire(self.wire)
            except (dns.exception.DNSException, ValueError, IndexError, UnicodeError) as exc:
                raise ResolutionError(f"malformed answer for {self.qname!r}: {exc}") from exc
        return self._message


@dataclass(frozen=True, slots=True)
class Failure:
    """A question no nameserver answered usably, in place of its :class:`Reply`.

    Attributes:
        qname: the absolute name asked.
        rdtype: the record type asked.
        reason: what each server did, in order (``"127.0.0.1:53 answered SERVFAIL ..."``).
        timeout: the call's whole budget, in seconds (for the message).
        truncated: the answer does not fit in one DNS message: truncated over TCP (more
            than 64 KiB), or truncated over UDP with TCP unavailable. A partial answer
            must never be taken for the whole set.
    """

    qname: str
    rdtype: int
    reason: str
    timeout: float
    truncated: bool = False

    @property
    def message(self) -> str:
        """One line for a :class:`~headless_client.ResolutionError`."""
        return f"resolving {self.qname} failed within {self.timeout:g}s: {self.reason}"


#: What a lookup plan is sent for each question: the reply, or why there is none.
Answer: TypeAlias = "Reply | Failure"


@dataclass(slots=True)
class Pending:
    """The queries of one batch, by ID, and the replies received so far."""

    questions: list[tuple[str, int]]
    wires: list[bytes]
    by_id: dict[int, int]
    replies: list[Reply | None]

    def question_bytes(self, index: int) -> bytes:
        """The question section of query *index* (what a reply must echo)."""
        wire = self.wires[index]
        return wire[12 : len(wire) - len(_OPT)]


def build_queries(batch: Sequence[tuple[str, int]]) -> Pending:
    """Make one query per ``(absolute name, rdtype)`` with IDs unique within the batch.

    Raises:
        InvalidName: a name cannot be put on the wire.
        ResolutionError: more questions than the 16-bit ID space.
    """
    if len(batch) > 65536:
        raise ResolutionError(f"batch of {len(batch)} questions is larger than the DNS ID space")
    base = secrets.randbelow(65536)
    wires: list[bytes] = []
    by_id: dict[int, int] = {}
    for i, (qname, rdtype) in enumerate(batch):
        # Sequential from a random base: unique for up to 65536 questions in flight.
        qid = (base + i) & 0xFFFF
        # RD set like stub resolvers do: harmless to an authoritative server, needed by a
        # caching one. One question, no answer/authority, one OPT record.
        header = qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01"
        wires.append(header + encode_name(qname) + int(rdtype).to_bytes(2, "big") + b"\x00\x01" + _OPT)
        by_id[qid] = i
    return Pending([(q, int(t)) for q, t in batch], wires, by_id, [None] * len(batch))


def match_response(pending: Pending, wire: bytes) -> tuple[int, Reply] | None:
    """``(index, reply)`` if *wire* answers a waiting query of *pending*; else ``None``.

    Checked: the ID, QR set, a standard query, exactly one question equal to ours (names
    compare case-insensitively). A packet failing any check is ignored, not trusted.
    """
    if len(wire) < 12 or len(wire) > MAX_MESSAGE_SIZE:
        return None
    index = pending.by_id.get(int.from_bytes(wire[:2], "big"))
    if index is None or pending.replies[index] is not None:
        return None
    flags = int.from_bytes(wire[2:4], "big")
    if not flags & _FLAG_QR or flags & _OPCODE_MASK or wire[4:6] != b"\x00\x01":
        return None
    question = pending.question_bytes(index)
    echoed = wire[12 : 12 + len(question)]
    if echoed[-4:] != question[-4:] or echoed[:-4].lower() != question[:-4].lower():
        return None
    qname, rdtype = pending.questions[index]
    return index, Reply(bytes(wire), qname, rdtype)


def server_failure(reply: Reply, server: Nameserver) -> str | None:
    """Why *reply* says the *server* failed (so the next server is asked), else ``None``.

    NOERROR and NXDOMAIN are answers about the name and pass; SERVFAIL (CoreDNS while its
    informers sync), REFUSED, NOTIMP, FORMERR and the rest are about the server.
    """
    rcode = reply.rcode
    if rcode == dns.rcode.NOERROR or rcode == dns.rcode.NXDOMAIN:
        return None
    what = dns.rcode.to_text(dns.rcode.Rcode(rcode))
    return f"{server} answered {what} for {reply.qname!r}"


def screen(reply: Reply, server: Nameserver) -> None:
    """Raise :class:`ResolutionError` for answers that say the *server* failed.

    See :func:`server_failure`.
    """
    reason = server_failure(reply, server)
    if reason is not None:
        raise ResolutionError(reason)


def stream_frame(wire: bytes) -> bytes:
    """*wire* with the two-octet length prefix of DNS over TCP."""
    return len(wire).to_bytes(2, "big") + wire


def take_frames(inbox: bytearray) -> list[bytes]:
    """Take every complete length-prefixed message off the front of *inbox*.

    What stays is less than one message (at most 65,536 octets plus the prefix).
    """
    frames: list[bytes] = []
    offset = 0
    while len(inbox) - offset >= 2:
        size = int.from_bytes(inbox[offset : offset + 2], "big")
        if len(inbox) - offset - 2 < size:
            break
        frames.append(bytes(inbox[offset + 2 : offset + 2 + size]))
        offset += 2 + size
    del inbox[:offset]
    return frames
