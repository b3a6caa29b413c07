"""The fake cluster's DNS zone: records shaped like CoreDNS answers, and answering queries.

Pure: no sockets, no clock. :func:`build_zone` turns the cluster's services into an
immutable :class:`Zone` (rebuilt and republished on every change), and :func:`respond`
answers one query message from it, within a size limit (UDP) or not (TCP).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

__all__ = ["Zone", "ZoneEndpoint", "ZoneService", "build_zone", "dashed", "respond"]

_IN = dns.rdataclass.IN
_A = dns.rdatatype.A
_AAAA = dns.rdatatype.AAAA
_SRV = dns.rdatatype.SRV
_PTR = dns.rdatatype.PTR
_SOA = dns.rdatatype.SOA
_NS = dns.rdatatype.NS
_MAX_TCP = 65535


def dashed(address: str) -> str:
    """CoreDNS's generated hostname of an endpoint without one: ``10-244-1-20``, ``fd00--a``."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return str(ip).replace(".", "-")
    label = ip.compressed.replace(":", "-")
    if label.endswith("-"):
        label += "0"
    if label.startswith("-"):
        label = "0" + label
    return label


@dataclass(frozen=True, slots=True)
class ZoneEndpoint:
    """One endpoint of a service: an address, its hostname label (``web-0``) if any."""

    address: str
    hostname: str | None
    ready: bool = True


@dataclass(frozen=True, slots=True)
class ZoneService:
    """One headless service as the zone sees it."""

    name: str
    namespace: str
    #: ``(port name, protocol, number)``; unnamed ports (``""``) get no SRV record.
    ports: tuple[tuple[str, str, int], ...]
    endpoints: tuple[ZoneEndpoint, ...]
    publish_not_ready: bool = False


@dataclass(frozen=True, slots=True)
class Zone:
    """An immutable zone snapshot: read by the server thread without a lock."""

    origin: dns.name.Name
    ttl: int
    records: dict[tuple[dns.name.Name, int], tuple[dns.rdata.Rdata, ...]]
    #: Every owner name and every empty non-terminal between it and the origin.
    names: frozenset[dns.name.Name]
    soa: dns.rdata.Rdata


def _rdata(rdtype: dns.rdatatype.RdataType, text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(_IN, rdtype, text)


def build_zone(domain: str, services: Iterable[ZoneService], ttl: int) -> Zone:
    """The records CoreDNS would serve for *services* in cluster domain *domain*.

    Per service with at least one published endpoint: A/AAAA of the service name (one per
    endpoint), A/AAAA of each endpoint's own name (``<hostname>.<svc>...`` or the dashed
    address), SRV ``_<port>._<proto>.<svc>...`` per named port and SRV of the service name
    itself (all named ports), weights ``floor(100/N)``, and PTR of each address. A service
    without published endpoints has no name at all (NXDOMAIN), like CoreDNS.
    """
    origin = dns.name.from_text(domain)
    records: dict[tuple[dns.name.Name, int], list[dns.rdata.Rdata]] = {}
    for svc in services:
        published = [ep for ep in svc.endpoints if ep.ready or svc.publish_not_ready]
        if not published:
            continue
        base = dns.name.from_text(f"{svc.name}.{svc.namespace}.svc", origin)
        targets: list[dns.name.Name] = []
        for ep in published:
            rdtype = _AAAA if ipaddress.ip_address(ep.address).version == 6 else _A
            target = dns.name.from_text(ep.hostname or dashed(ep.address), base)
            targets.append(target)
            records.setdefault((base, rdtype), []).append(_rdata(rdtype, ep.address))
            records.setdefault((target, rdtype), []).append(_rdata(rdtype, ep.address))
            reverse = dns.name.from_text(ipaddress.ip_address(ep.address).reverse_pointer + ".")
            records.setdefault((reverse, _PTR), []).append(_rdata(_PTR, target.to_text()))
        unique_targets = list(dict.fromkeys(targets))
        named = [(n, proto, num) for n, proto, num in svc.ports if n]
        all_ports: list[tuple[int, dns.name.Name]] = []
        for port_name, proto, number in named:
            owner = dns.name.from_text(f"_{port_name}._{proto}", base)
            pairs = [(number, t) for t in unique_targets]
            all_ports.extend(pairs)
            records[(owner, _SRV)] = _srv(pairs)
        if all_ports:
            records[(base, _SRV)] = _srv(all_ports)
    names: set[dns.name.Name] = {origin}
    for owner, _ in records:
        name = owner
        # Empty non-terminals answer NODATA, not NXDOMAIN (bounded by the name's depth).
        while name.is_subdomain(origin) and name not in names:
            names.add(name)
            name = name.parent()
    soa = _rdata(_SOA, f"ns.dns.{domain}. hostmaster.{domain}. 1 7200 1800 86400 {ttl}")
    return Zone(
        origin=origin,
        ttl=ttl,
        records={k: tuple(v) for k, v in records.items()},
        names=frozenset(names),
        soa=soa,
    )


def _srv(pairs: list[tuple[int, dns.name.Name]]) -> list[dns.rdata.Rdata]:
    weight = 100 // len(pairs) if pairs else 0
    return [_rdata(_SRV, f"0 {weight} {port} {target.to_text()}") for port, target in pairs]


def _rrset(name: dns.name.Name, ttl: int, rdtype: int, rdatas: Iterable[dns.rdata.Rdata]) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, _IN, dns.rdatatype.RdataType.make(rdtype))
    for rd in rdatas:
        rrset.add(rd, ttl)
    return rrset


def respond(
    zone: Zone,
    query: dns.message.Message,
    *,
    max_size: int | None,
    glue: bool = True,
    rcode: dns.rcode.Rcode | None = None,
) -> bytes:
    """The wire answer to *query*.

    *max_size* is the UDP limit (the client's EDNS payload, at least 512): an answer that
    does not fit comes back empty with TC set, so the client asks again over TCP. ``None``
    is TCP: up to 65535 bytes, dropping glue first if needed. *rcode* forces a failure
    answer (SERVFAIL, REFUSED) for fault injection.
    """
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if rcode is not None:
        response.flags &= ~dns.flags.AA
        response.set_rcode(rcode)
        return response.to_wire()
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response.to_wire()
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    question = query.question[0]
    qname = question.name
    rdtype = int(question.rdtype)
    if question.rdclass != _IN:
        response.set_rcode(dns.rcode.REFUSED)
        return response.to_wire()
    in_zone = qname.is_subdomain(zone.origin)
    rdatas = zone.records.get((qname, rdtype))
    if rdatas:
        response.answer.append(_rrset(qname, zone.ttl, rdtype, rdatas))
        if rdtype == _SRV and glue:
            for rd in rdatas:
                target = rd.target  # type: ignore[attr-defined]
                for family in (_A, _AAAA):
                    addresses = zone.records.get((target, family))
                    if addresses:
                        response.additional.append(_rrset(target, zone.ttl, family, addresses))
    elif in_zone and qname in zone.names and rdtype == _SOA and qname == zone.origin:
        response.answer.append(_rrset(qname, zone.ttl, _SOA, [zone.soa]))
    elif in_zone and qname in zone.names:
        response.authority.append(_rrset(zone.origin, zone.ttl, _SOA, [zone.soa]))
    else:
        response.set_rcode(dns.rcode.NXDOMAIN)
        if in_zone:
            response.authority.append(_rrset(zone.origin, zone.ttl, _SOA, [zone.soa]))
    return _encode(response, max_size)


def _encode(response: dns.message.Message, max_size: int | None) -> bytes:
    limit = _MAX_TCP if max_size is None else max(512, min(max_size, _MAX_TCP))
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        pass
    if max_size is not None:
        # UDP: like BIND, an empty truncated answer; the client retries over TCP.
        response.answer.clear()
        response.authority.clear()
        response.additional.clear()
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=limit)
    # TCP: glue is optional (the client looks the targets up itself).
    response.additional.clear()
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        pass
    # Still too big for a TCP message: keep what fits of the answer, with TC set.
    rrset = response.answer[0]
    items = list(rrset)
    ttl = rrset.ttl
    keep = len(items)
    while keep > 0:  # bounded: halves each round
        keep //= 2
        response.answer[0] = _rrset(rrset.name, ttl, rrset.rdtype, items[:keep])
        try:
            response.flags |= dns.flags.TC
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            continue
    response.answer.clear()
    return response.to_wire(max_size=limit)
