"""The fake cluster's DNS zone, computed the way CoreDNS's ``kubernetes`` plugin answers.

Pure: no sockets, no clock. :func:`build_zone` turns the API objects of a
:class:`~headless_client.testing.model.ClusterModel` (Services, EndpointSlices,
Namespaces: what CoreDNS itself reads) into an immutable :class:`Zone`, and
:func:`respond` answers one query from it. The rules are CoreDNS's (``plugin/kubernetes``
``kubernetes.go`` findServices, ``parse.go``, ``plugin/backend_lookup.go``), checked
against real CoreDNS by ``tests/integration/test_conformance.py``:

- only endpoints with ``conditions.ready`` true (or unset) count; a Service without one
  has no name at all (NXDOMAIN), except a ClusterIP Service, whose name is its VIP;
- an endpoint's label is its ``hostname``, else its address dashed (``10-244-1-20``; for
  IPv6 every ``:`` becomes ``-`` and a trailing ``-`` gets a ``0``);
- SRV weights are ``floor(100/N)``, N counting endpoint x port entries *before* duplicate
  targets are merged; a ClusterIP Service's SRV target is the Service name;
- a name one label below a Service that is not an endpoint (``_tcp.<svc>``) is NXDOMAIN,
  and so is anything two labels deeper than a port; a namespace's name is NODATA;
- ExternalName gives a CNAME (its target chased inside the zone), and NODATA for SRV;
- answers that do not fit are cut record by record, TC set when anything was dropped
  (miekg/dns ``Truncate``).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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

__all__ = ["Zone", "build_zone", "dashed", "respond"]

_IN = dns.rdataclass.IN
_A = dns.rdatatype.A
_AAAA = dns.rdatatype.AAAA
_SRV = dns.rdatatype.SRV
_PTR = dns.rdatatype.PTR
_SOA = dns.rdatatype.SOA
_NS = dns.rdatatype.NS
_CNAME = dns.rdatatype.CNAME
_TXT = dns.rdatatype.TXT
_MAX_TCP = 65535
_MAX_CHAIN = 8
_SERVICE_LABEL = "kubernetes.io/service-name"

Key = tuple[dns.name.Name, int]


def dashed(address: str) -> str:
    """CoreDNS's generated hostname of an endpoint without one: ``10-244-1-20``, ``fd00--a``.

    As CoreDNS's ``endpointHostname``: every ``:`` becomes ``-`` and a trailing ``-`` gets
    ``0``; nothing is added in front (``::1`` gives ``--1``).
    """
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return str(ip).replace(".", "-")
    label = ip.compressed.replace(":", "-")
    if label.endswith("-"):
        label += "0"
    return label


@dataclass(frozen=True, slots=True)
class Zone:
    """An immutable zone snapshot: read by the server thread without a lock.

    ``records`` holds every RRset by (owner, type); ``names`` every name that exists
    (NODATA for other types), without CoreDNS's empty non-terminals; ``externals`` the
    ExternalName owners and their targets (CNAME and the bare-name SRV rule).
    """

    origin: dns.name.Name
    ttl: int
    records: Mapping[Key, tuple[dns.rdata.Rdata, ...]]
    names: frozenset[dns.name.Name]
    soa: dns.rdata.Rdata
    externals: Mapping[dns.name.Name, dns.name.Name] = field(default_factory=dict)
    #: RRsets built on first use (by the one server thread), so a big answer asked again
    #: and again (UDP resends) is not rebuilt record by record each time.
    built: dict[tuple[dns.name.Name, int, int], dns.rrset.RRset] = field(default_factory=dict, compare=False)
    #: Wire answers by question (exact case), size limit and options: a repeated question
    #: costs a dictionary lookup and a new message ID.
    answers: dict[tuple[object, ...], bytes] = field(default_factory=dict, compare=False)

    def rrset(self, owner: dns.name.Name, rdtype: int, ttl: int | None = None) -> dns.rrset.RRset:
        """The RRset at *owner* (asked in any case: the answer echoes *owner*'s case)."""
        ttl = self.ttl if ttl is None else ttl
        key = (owner, rdtype, ttl)
        cached = self.built.get(key)
        if cached is None or cached.name.labels != owner.labels:
            cached = _rrset(owner, ttl, rdtype, self.records[(owner, rdtype)])
            if len(self.built) < 100_000:
                self.built[key] = cached
        return cached

    def rrsets(self) -> list[tuple[dns.name.Name, int, tuple[dns.rdata.Rdata, ...]]]:
        """Every RRset under the origin, for writing the zone elsewhere (BIND)."""
        return [(owner, rdtype, rdatas) for (owner, rdtype), rdatas in self.records.items()
                if owner.is_subdomain(self.origin)]


@functools.lru_cache(maxsize=200_000)
def _rdata(rdtype: dns.rdatatype.RdataType, text: str) -> dns.rdata.Rdata:
    # Cached: the zone is rebuilt on every change, mostly from the same records, and
    # rdata objects are immutable.
    return dns.rdata.from_text(_IN, rdtype, text)


@dataclass(slots=True)
class _Entry:
    """One endpoint address x one port of a Service (CoreDNS's ``msg.Service``)."""

    label: str  # endpoint hostname, or "" for the Service itself (ClusterIP)
    address: str
    port: int  # -1: the slice declares no port
    port_name: str
    protocol: str


def build_zone(
    domain: str,
    services: Iterable[Mapping[str, Any]],
    endpointslices: Iterable[Mapping[str, Any]],
    namespaces: Iterable[str],
    ttl: int,
) -> Zone:
    """The records CoreDNS would serve for these API objects in cluster domain *domain*."""
    origin = dns.name.from_text(domain)
    records: dict[Key, dict[str, None]] = {}
    names: set[dns.name.Name] = {origin}
    externals: dict[dns.name.Name, dns.name.Name] = {}
    svc_root = dns.name.from_text("svc", origin)
    names.add(svc_root)
    names.add(dns.name.from_text("pod", origin))
    for ns in namespaces:
        names.add(dns.name.from_text(ns, svc_root))
    slices: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for eps in endpointslices:
        meta = eps.get("metadata", {})
        svc_name = (meta.get("labels") or {}).get(_SERVICE_LABEL)
        if svc_name:
            slices.setdefault((meta.get("namespace", ""), svc_name), []).append(eps)

    def add(owner: dns.name.Name, rdtype: dns.rdatatype.RdataType, text: str) -> None:
        # A dict keeps the first-seen order and drops duplicates in O(1).
        records.setdefault((owner, rdtype), {})[text] = None
        names.add(owner)

    for svc in services:
        meta = svc["metadata"]
        spec = svc.get("spec", {})
        base = dns.name.from_text(f"{meta['name']}.{meta['namespace']}", svc_root)
        if spec.get("type") == "ExternalName":
            target = dns.name.from_text(str(spec.get("externalName", "")).rstrip(".") + ".")
            add(base, _CNAME, target.to_text())
            externals[base] = target
            continue
        endpoint_entries = _endpoint_entries(slices.get((meta["namespace"], meta["name"]), []))
        headless = spec.get("clusterIP") == "None"
        if headless:
            service_entries = endpoint_entries
        else:
            service_entries = [
                _Entry("", vip, int(p["port"]), p.get("name", "") or "", str(p.get("protocol", "TCP")))
                for p in spec.get("ports", [])
                for vip in spec.get("clusterIPs") or [spec.get("clusterIP")]
                if vip and vip != "None"
            ]
        _add_name(add, names, base, base, service_entries, bare=True)
        by_port: dict[tuple[str, str], list[_Entry]] = {}
        for entry in service_entries:
            if entry.port_name:
                by_port.setdefault((entry.port_name.lower(), entry.protocol.lower()), []).append(entry)
        for (port_name, proto), entries in by_port.items():
            owner = dns.name.from_text(f"_{port_name}._{proto}", base)
            _add_srv(add, owner, base, entries)
        by_label: dict[str, list[_Entry]] = {}
        for entry in endpoint_entries:
            by_label.setdefault(entry.label.lower(), []).append(entry)
        for label, entries in by_label.items():
            _add_name(add, names, dns.name.from_text(label, base), base, entries, bare=True)
        for entry in endpoint_entries:
            reverse = dns.name.from_text(ipaddress.ip_address(entry.address).reverse_pointer + ".")
            add(reverse, _PTR, dns.name.from_text(entry.label, base).to_text())
    add(dns.name.from_text("dns-version", origin), _TXT, '"1.1.0"')
    soa = _rdata(_SOA, f"ns.dns.{domain}. hostmaster.{domain}. 1 7200 1800 86400 {ttl}")
    return Zone(
        origin=origin,
        ttl=ttl,
        records={(owner, t): tuple(_rdata(t, text) for text in v) for (owner, t), v in records.items()},
        names=frozenset(n for n in names if n.is_subdomain(origin)),
        soa=soa,
        externals=externals,
    )


def _endpoint_entries(slices: Sequence[Mapping[str, Any]]) -> list[_Entry]:
    entries: list[_Entry] = []
    for eps in slices:
        ports = eps.get("ports") or []
        port_list = [
            (int(p["port"]) if p.get("port") is not None else -1, p.get("name") or "",
             str(p.get("protocol") or ""))
            for p in ports
        ] or [(-1, "", "")]  # CoreDNS's sentinel: A records and names, but no SRV
        for endpoint in eps.get("endpoints") or []:
            ready = (endpoint.get("conditions") or {}).get("ready")
            if ready is False:
                continue
            for address in endpoint.get("addresses") or []:
                label = endpoint.get("hostname") or dashed(address)
                for number, name, proto in port_list:
                    entries.append(_Entry(label, address, number, name, proto))
    return entries


def _add_name(add: Any, names: set[dns.name.Name], owner: dns.name.Name, base: dns.name.Name,
              entries: list[_Entry], *, bare: bool) -> None:
    """A/AAAA of *owner* (addresses de-duplicated) and its all-ports SRV."""
    if not entries:
        return
    names.add(owner)
    for entry in entries:
        add(owner, _AAAA if ":" in entry.address else _A, entry.address)
    if bare:
        _add_srv(add, owner, base, entries)


def _add_srv(add: Any, owner: dns.name.Name, base: dns.name.Name, entries: list[_Entry]) -> None:
    """SRV of *entries*: weight floor(100/N) over all entries, port -1 skipped, one record
    per (target, port)."""
    weight = max(1, 100 // len(entries)) if entries else 0
    for entry in entries:
        if entry.port == -1:
            continue
        target = dns.name.from_text(entry.label, base) if entry.label else base
        add(owner, _SRV, f"0 {weight} {entry.port} {target.to_text()}")


def _rrset(name: dns.name.Name, ttl: int, rdtype: int, rdatas: Iterable[dns.rdata.Rdata]) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, _IN, dns.rdatatype.RdataType.make(rdtype))
    for rd in rdatas:
        rrset.add(rd, ttl)
    return rrset


def _asked_case(name: dns.name.Name, qname: dns.name.Name, origin: dns.name.Name) -> dns.name.Name:
    """*name* with its zone part in the question's case (CoreDNS keeps the asked zone)."""
    if not name.is_subdomain(origin) or not qname.is_subdomain(origin):
        return name
    depth = len(origin.labels)
    return dns.name.Name(name.labels[:-depth] + qname.labels[-depth:])


def respond(
    zone: Zone,
    query: dns.message.Message,
    *,
    max_size: int | None,
    glue: bool = True,
    rcode: dns.rcode.Rcode | None = None,
    synced: bool = True,
) -> bytes:
    """The wire answer to *query*.

    *max_size* is the UDP limit (the client's EDNS payload, at least 512); ``None`` is
    TCP (65535). An answer that does not fit is cut record by record with TC set.
    *rcode* forces a failure answer (SERVFAIL, REFUSED). ``synced=False`` answers as
    CoreDNS does before its informers have synced with the API: it knows no Service or
    namespace yet, and gives SERVFAIL where it would give NXDOMAIN.
    """
    if rcode is None and len(query.question) == 1:
        q = query.question[0]
        key = (q.name.labels, int(q.rdtype), int(q.rdclass), max_size, glue, synced, query.flags,
               query.opcode(), query.edns, query.payload if query.edns >= 0 else 0)
        cached = zone.answers.get(key)
        if cached is not None:
            return query.id.to_bytes(2, "big") + cached[2:]
        wire = _respond(zone, query, max_size=max_size, glue=glue, synced=synced)
        if len(zone.answers) < 10_000:
            zone.answers[key] = wire
        return wire
    return _respond(zone, query, max_size=max_size, glue=glue, rcode=rcode, synced=synced)


def _respond(
    zone: Zone,
    query: dns.message.Message,
    *,
    max_size: int | None,
    glue: bool,
    rcode: dns.rcode.Rcode | None = None,
    synced: bool,
) -> bytes:
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
    negative_ttl = min(zone.ttl, 300)
    if not in_zone:
        reverse = zone.records.get((qname, rdtype)) if rdtype == _PTR else None
        if reverse:  # PTR of endpoint addresses (CoreDNS with in-addr.arpa/ip6.arpa zones)
            response.answer.append(_rrset(qname, zone.ttl, _PTR, reverse))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return _encode(response, max_size)
    if not synced and len(qname) - len(zone.origin) > 1:
        # Before the informers sync CoreDNS knows no Service or namespace: every name it
        # would call NXDOMAIN gets SERVFAIL instead.
        response.set_rcode(dns.rcode.SERVFAIL)
        response.authority.append(_rrset(zone.origin, negative_ttl, _SOA, [zone.soa]))
        return _encode(response, max_size)
    if qname == zone.origin and rdtype in (_SOA, _NS):
        if rdtype == _SOA:
            response.answer.append(_rrset(qname, zone.ttl, _SOA, [zone.soa]))
        else:
            response.answer.append(_rrset(qname, zone.ttl, _NS, [_rdata(_NS, f"ns.dns.{zone.origin}")]))
        return _encode(response, max_size)
    external = zone.externals.get(qname)
    if external is not None and rdtype == _SRV:
        # CoreDNS answers an ExternalName's SRV with NODATA (checked against v1.15.0).
        response.authority.append(_rrset(zone.origin, negative_ttl, _SOA, [zone.soa]))
        return _encode(response, max_size)
    rdatas = zone.records.get((qname, rdtype))
    if rdatas:
        response.answer.append(zone.rrset(qname, rdtype, 28800 if rdtype == _TXT else zone.ttl))
        if rdtype == _SRV and glue:
            seen: set[dns.name.Name] = set()
            for rd in rdatas:
                target = rd.target  # type: ignore[attr-defined]
                if target not in seen:  # one glue RRset per target (a hostname can repeat)
                    seen.add(target)
                    _add_glue(zone, response, target, qname)
        return _encode(response, max_size)
    if external is not None and rdtype != _CNAME:
        _chase(zone, response, qname, external, rdtype)
        return _encode(response, max_size)
    if external is not None:
        response.answer.append(_rrset(qname, zone.ttl, _CNAME, zone.records[(qname, _CNAME)]))
        return _encode(response, max_size)
    if qname in zone.names:
        response.authority.append(_rrset(zone.origin, negative_ttl, _SOA, [zone.soa]))
        return _encode(response, max_size)
    response.set_rcode(dns.rcode.NXDOMAIN if synced else dns.rcode.SERVFAIL)
    response.authority.append(_rrset(zone.origin, negative_ttl, _SOA, [zone.soa]))
    return _encode(response, max_size)


def _add_glue(zone: Zone, response: dns.message.Message, target: dns.name.Name, qname: dns.name.Name) -> None:
    owner = _asked_case(target, qname, zone.origin)
    for family in (_A, _AAAA):
        if (target, family) in zone.records:
            response.additional.append(zone.rrset(owner, family))


def _chase(zone: Zone, response: dns.message.Message, qname: dns.name.Name, target: dns.name.Name,
           rdtype: int) -> None:
    """CNAME from *qname*, followed inside the zone (CoreDNS resolves ExternalName targets;
    outside the cluster its upstream would answer, which the fake has none of)."""
    owner = qname
    for _ in range(_MAX_CHAIN):  # bounded: a loop of ExternalNames stops here
        response.answer.append(_rrset(owner, zone.ttl, _CNAME, [_rdata(_CNAME, target.to_text())]))
        if not target.is_subdomain(zone.origin):
            return
        rdatas = zone.records.get((target, rdtype))
        if rdatas:
            response.answer.append(_rrset(target, zone.ttl, rdtype, rdatas))
            return
        following = zone.externals.get(target)
        if following is None:
            return
        owner, target = target, following


def _encode(response: dns.message.Message, max_size: int | None) -> bytes:
    limit = _MAX_TCP if max_size is None else max(512, min(max_size, _MAX_TCP))
    records = sum(len(r) for s in (response.answer, response.authority, response.additional) for r in s)
    if records * 12 <= limit:  # a record takes at least 12 bytes: skip what cannot fit
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            pass
    # miekg/dns Truncate: keep the records that fit (answer, then authority, then
    # additional), one by one, and set TC because some were dropped. Each record becomes
    # its own RRset (the same bytes on the wire), so dnspython stops at the first record
    # that does not fit instead of dropping a whole RRset.
    total = 0
    split = dns.message.Message(id=response.id)
    split.flags = response.flags
    split.question = list(response.question)
    if response.edns >= 0:
        split.use_edns(response.edns, response.ednsflags, response.payload, options=list(response.options))
    for source, target in ((response.answer, split.answer), (response.authority, split.authority),
                           (response.additional, split.additional)):
        for rrset in source:
            for rd in rrset:
                total += 1
                if total > limit // 12:  # a record takes at least 12 bytes: cannot fit
                    continue
                one = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)
                one.add(rd, rrset.ttl)
                target.append(one)
    wire = bytearray(split.to_wire(max_size=limit, prefer_truncation=True))
    written = sum(int.from_bytes(wire[i : i + 2], "big") for i in (6, 8, 10))
    if response.edns >= 0:
        written -= 1  # the OPT record
    if written < total:
        wire[2] |= 0x02  # TC
    return bytes(wire)
