"""DNS messages on the wire: building query batches, matching and screening responses.

Pure. The sync and asyncio transports send what :func:`build_queries` makes and feed
whatever bytes arrive to :func:`match_response`, which only accepts a well-formed reply
to a question we asked (right ID, right question, QR set); anything else, a spoofed or
corrupted packet, is ignored rather than trusted.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.rcode

from .errors import InvalidName, ResolutionError

__all__ = [
    "EDNS_PAYLOAD",
    "MAX_UDP_BATCH",
    "Nameserver",
    "Pending",
    "build_queries",
    "match_response",
    "parse_nameserver",
    "screen",
]

#: What CoreDNS and BIND honour from clients; avoids IP fragmentation (DNS flag day 2020).
EDNS_PAYLOAD = 1232
#: Batches larger than this go straight to one pipelined TCP connection: bursting
#: thousands of datagrams at a server overflows socket buffers and turns into retransmits.
MAX_UDP_BATCH = 16
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
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise InvalidName(f"nameserver {text!r} has an invalid port {port_text!r}")
        port = int(port_text)
    return Nameserver(str(ip), port)


@dataclass(slots=True)
class Pending:
    """The queries of one batch, by ID, and the answers received so far."""

    queries: list[dns.message.Message]
    wires: list[bytes]
    by_id: dict[int, int]
    answers: list[dns.message.Message | None]

    @property
    def done(self) -> bool:
        """True when every query has its answer."""
        return all(a is not None for a in self.answers)

    def unanswered(self) -> list[int]:
        """Indexes of the queries still waiting."""
        return [i for i, a in enumerate(self.answers) if a is None]


def build_queries(batch: Sequence[tuple[str, object]]) -> Pending:
    """Make one query per ``(absolute name, rdtype)`` with IDs unique within the batch."""
    base = secrets.randbelow(65536)
    queries: list[dns.message.Message] = []
    wires: list[bytes] = []
    by_id: dict[int, int] = {}
    for i, (qname, rdtype) in enumerate(batch):
        q = dns.message.make_query(qname, rdtype, use_edns=0, payload=EDNS_PAYLOAD)  # type: ignore[arg-type]
        # Sequential from a random base: unique for up to 65536 questions in flight.
        q.id = (base + i) & 0xFFFF
        queries.append(q)
        wires.append(q.to_wire())
        by_id[q.id] = i
    if len(by_id) != len(queries):
        raise ResolutionError(f"batch of {len(queries)} questions is larger than the DNS ID space")
    return Pending(queries, wires, by_id, [None] * len(queries))


def match_response(pending: Pending, wire: bytes) -> tuple[int, dns.message.Message] | None:
    """``(index, message)`` if *wire* answers a waiting query of *pending*; else ``None``."""
    if len(wire) < 12 or len(wire) > MAX_MESSAGE_SIZE:
        return None
    index = pending.by_id.get(int.from_bytes(wire[:2], "big"))
    if index is None or pending.answers[index] is not None:
        return None
    query = pending.queries[index]
    try:
        message = dns.message.from_wire(wire, question_only=False)
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError):
        return None
    if not query.is_response(message):
        return None
    return index, message


def screen(message: dns.message.Message, qname: str, server: Nameserver) -> None:
    """Raise for answers that say the *server* failed, so the next server is tried.

    NOERROR and NXDOMAIN are answers about the name and pass; SERVFAIL (CoreDNS while its
    informers sync), REFUSED, NOTIMP, FORMERR and the rest are about the server.
    """
    rcode = message.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise ResolutionError(f"{server} answered {dns.rcode.to_text(rcode)} for {qname!r}")


def is_truncated(message: dns.message.Message) -> bool:
    """True if the TC bit is set (the answer must be asked again over TCP)."""
    return bool(message.flags & dns.flags.TC)
