"""DNS answers -> endpoints. Pure: works on parsed :class:`dns.message.Message` objects.

Both resolvers (sync and asyncio) do the I/O and hand the messages to these functions,
so the rules for CNAME chains, target checks, glue and bounds exist once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import dns.exception
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from .endpoints import Endpoint, EndpointSet, dns_endpoint
from .errors import InvalidName, ResolutionError, ServiceNotFound
from .names import pod_ordinal

if TYPE_CHECKING:
    # Loaded where a function needs them: answers are read from the wire (fastwire), and
    # dns.name alone costs about 25 ms of import (it loads importlib.metadata).
    import dns.message
    import dns.name

__all__ = [
    "DEFAULT_MAX_RECORDS",
    "AddressAnswer",
    "Network",
    "SrvTarget",
    "address_allowed",
    "address_endpoints",
    "addresses_from_answer",
    "check_rcode",
    "glue_from_message",
    "in_domain",
    "is_host_name",
    "parse_networks",
    "srv_endpoints",
    "srv_names_itself",
    "srv_targets",
    "unsafe_address",
]

_HOST_LABEL = re.compile(rb"[A-Za-z0-9_](?:[-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?")

#: Records accepted from one answer; a hostile or broken server cannot make us hold more.
DEFAULT_MAX_RECORDS = 10_000
_MAX_CNAME_HOPS = 8


Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(networks: object) -> tuple[Network, ...]:
    """``["10.0.0.0/8", "fd00::/8"]`` -> networks, for ``allowed_networks=``.

    Raises:
        InvalidName: not a list of CIDR strings (or network objects), a CIDR with host
            bits set or an invalid prefix, or an empty list.
    """
    if isinstance(networks, (str, bytes)) or not isinstance(networks, Iterable):
        raise InvalidName(
            f"allowed_networks must be a list of CIDRs, not {type(networks).__name__}: {networks!r}"
        )
    parsed: list[Network] = []
    for net in networks:
        if isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            parsed.append(net)
            continue
        if not isinstance(net, str):
            raise InvalidName(f"allowed_networks entry must be a CIDR str, not {type(net).__name__}: {net!r}")
        try:
            parsed.append(ipaddress.ip_network(net.strip()))
        except ValueError as exc:
            raise InvalidName(f"allowed_networks entry {net!r} is not a CIDR network: {exc}") from None
    if not parsed:
        raise InvalidName(f"allowed_networks is empty: {networks!r}; pass None to allow any address")
    return tuple(parsed)


def address_allowed(address: str, networks: Iterable[Network]) -> bool:
    """True if *address* is inside one of *networks* (families never match each other)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def unsafe_address(address: str, *, allow_loopback: bool = False) -> str | None:
    """Why a pod must not be reached at *address* by default, or ``None`` if it may.

    Refused: unspecified (``0.0.0.0/8``, ``::``: a connect there reaches this host),
    multicast, broadcast, link-local (``169.254.0.0/16`` with the cloud metadata service
    ``169.254.169.254``, ``fe80::/10``) and, unless *allow_loopback*, loopback. An
    IPv4-mapped IPv6 address is judged as its IPv4 address. Text that is not an IP
    address is refused too.
    """
    if ":" not in address:
        # The hot path (every A record of every answer): the first octet decides.
        head, _, rest = address.partition(".")
        if not head.isdigit():
            return "not an IP address"
        first = int(head)
        if first == 0:
            return "unspecified"
        if first == 127:
            return None if allow_loopback else "loopback"
        if first == 169 and rest.startswith("254."):
            return "link-local"
        if 224 <= first <= 239:
            return "multicast"
        if address == "255.255.255.255":
            return "broadcast"
        return None
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        return "not an IP address"
    if ip.ipv4_mapped is not None:
        return unsafe_address(str(ip.ipv4_mapped), allow_loopback=allow_loopback)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    if ip.is_multicast:
        return "multicast"
    if ip.is_link_local:
        return "link-local"
    return None


@dataclass(frozen=True, slots=True)
class AddressAnswer:
    """The addresses found for one name, with the smallest TTL of the chain."""

    addresses: tuple[str, ...]
    ttl: int | None


@dataclass(frozen=True, slots=True)
class SrvTarget:
    """One SRV record, target without the trailing dot, lower-cased."""

    target: str
    port: int
    priority: int
    weight: int
    ttl: int


def in_domain(name: str | dns.name.Name, domain: str) -> bool:
    """True if *name* is *domain* or under it (case-insensitive, dots ignored at the end).

    Compared label by label: a name read from the wire whose label holds a dot
    (``evil\\.web.prod...``, text ``evil\\.web``) is *not* under ``web.prod...``, although
    its text ends with it.
    """
    if isinstance(name, str):
        n = name.lower().rstrip(".")
        d = domain.lower().rstrip(".")
        return n == d or n.endswith("." + d)
    import dns.name

    try:
        return name.is_subdomain(dns.name.from_text(domain))
    except dns.exception.DNSException:
        return False


def is_host_name(name: dns.name.Name) -> bool:
    """True if every label of *name* is a plain host-name label: ASCII letters, digits,
    ``-`` and ``_``, 1..63 octets (what Kubernetes writes). Names with escapes, dots or
    binary octets inside labels are refused instead of being turned into other names."""
    labels = name.labels
    if not labels or labels[-1] != b"":
        return False
    return all(_HOST_LABEL.fullmatch(label) for label in labels[:-1])


def check_rcode(message: dns.message.Message, qname: str) -> None:
    """Raise for NXDOMAIN and server failures; NOERROR (with or without data) passes."""
    rcode = message.rcode()
    if rcode == dns.rcode.NOERROR:
        return
    if rcode == dns.rcode.NXDOMAIN:
        raise ServiceNotFound(f"{qname!r} does not exist (NXDOMAIN)")
    raise ResolutionError(f"server answered {dns.rcode.to_text(rcode)} for {qname!r}")


def _follow_chain(
    message: dns.message.Message,
    qname: str,
    rdtype: dns.rdatatype.RdataType,
    allowed_domain: str | None,
) -> tuple[dns.name.Name, int | None]:
    """Follow CNAMEs inside the answer; return the final owner name and the chain's min TTL.

    A CNAME that leaves *allowed_domain* is not followed: the data behind it would come
    from outside the cluster, which a service name must not silently turn into.
    """
    import dns.name

    name = dns.name.from_text(qname)
    ttl: int | None = None
    for _ in range(_MAX_CNAME_HOPS):
        try:
            message.find_rrset(message.answer, name, dns.rdataclass.IN, rdtype)
            return name, ttl
        except KeyError:
            pass
        try:
            cname = message.find_rrset(
                message.answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME
            )
        except KeyError:
            return name, ttl
        target = cname[0].target
        if allowed_domain is not None and not in_domain(target, allowed_domain):
            raise ResolutionError(
                f"{qname!r} is a CNAME to {target.to_text()!r}, outside {allowed_domain!r}; "
                "not followed"
            )
        ttl = cname.ttl if ttl is None else min(ttl, cname.ttl)
        name = target
    raise ResolutionError(f"CNAME chain from {qname!r} is longer than {_MAX_CNAME_HOPS} hops")


def _rrset(
    message: dns.message.Message,
    qname: str,
    rdtype: dns.rdatatype.RdataType,
    allowed_domain: str | None,
    max_records: int,
) -> tuple[list[object], int | None]:
    name, chain_ttl = _follow_chain(message, qname, rdtype, allowed_domain)
    try:
        rrset = message.find_rrset(message.answer, name, dns.rdataclass.IN, rdtype)
    except KeyError:
        return [], chain_ttl
    if len(rrset) > max_records:
        raise ResolutionError(
            f"answer for {qname!r} has {len(rrset)} records, more than max_records={max_records}"
        )
    ttl = rrset.ttl if chain_ttl is None else min(chain_ttl, rrset.ttl)
    return list(rrset), ttl


def addresses_from_answer(
    message: dns.message.Message,
    qname: str,
    rdtype: dns.rdatatype.RdataType,
    *,
    allowed_domain: str | None = None,
    max_records: int = DEFAULT_MAX_RECORDS,
) -> AddressAnswer:
    """The A or AAAA addresses answered for *qname* (after CNAMEs). NODATA gives none."""
    check_rcode(message, qname)
    rdatas, ttl = _rrset(message, qname, rdtype, allowed_domain, max_records)
    return AddressAnswer(tuple(r.address for r in rdatas), ttl)  # type: ignore[attr-defined]


class _Reuse:
    """The endpoints of a previous set, to use again where a new one would equal them in
    every field (TTL, priority and weight included), and the set itself when nothing
    differs: a refresh in which nothing changed builds no endpoint."""

    __slots__ = ("index", "previous", "used")

    def __init__(self, previous: EndpointSet | None) -> None:
        self.previous = previous
        self.index = {} if not previous else {(ep.hostname, ep.port, ep.address): ep for ep in previous}
        self.used: set[int] = set()

    def endpoint(
        self, address: str, port: int, hostname: str | None, ordinal: int | None, priority: int, weight: int,
        ttl: int | None,
    ) -> Endpoint:
        old = self.index.get((hostname, port, address))
        if (
            old is not None
            and old.ttl == ttl
            and old.ordinal == ordinal
            and old.priority == priority
            and old.weight == weight
            and old.zone is None
            and old.node is None
            and not old.terminating
            and old.pod is None
            and not old.zone_hints
        ):
            self.used.add(id(old))
            return old
        return dns_endpoint(address, port, hostname, ordinal, priority, weight, ttl)

    def endpoint_set(self, eps: list[Endpoint], name: str | None, ttl: int | None) -> EndpointSet:
        """The set of *eps*: the previous one itself when *eps* are exactly its endpoints
        (each used again, none twice) and its name and TTL are these."""
        previous = self.previous
        if (
            previous is not None
            and len(self.used) == len(eps) == len(previous)
            and previous.name == name
            and previous.ttl == ttl
        ):
            return previous
        return EndpointSet(eps, name=name, ttl=ttl)


def address_endpoints(
    answers: Iterable[AddressAnswer],
    port: int,
    *,
    name: str | None = None,
    previous: EndpointSet | None = None,
) -> EndpointSet:
    """Every address of *answers* with *port*: the A/AAAA view of a headless service.

    *previous*: the last set for the same name; its endpoints (and the set itself) are used
    again where nothing differs.
    """
    reuse = _Reuse(previous)
    eps = [reuse.endpoint(addr, port, None, None, 0, 0, ans.ttl) for ans in answers for addr in ans.addresses]
    ttls = [a.ttl for a in answers if a.ttl is not None and a.addresses]
    return reuse.endpoint_set(eps, name, min(ttls) if ttls else None)


def srv_targets(
    message: dns.message.Message,
    qname: str,
    *,
    allowed_domain: str | None,
    max_records: int = DEFAULT_MAX_RECORDS,
) -> tuple[list[SrvTarget], list[SrvTarget]]:
    """Split the SRV answer into (kept, dropped) targets.

    With *allowed_domain* set, a target outside it is dropped: a compromised or
    misconfigured record must not send traffic (and TLS server names) elsewhere.
    """
    import dns.rdtypes.IN.SRV

    check_rcode(message, qname)
    rdatas, ttl = _rrset(message, qname, dns.rdatatype.SRV, allowed_domain, max_records)
    kept: list[SrvTarget] = []
    dropped: list[SrvTarget] = []
    for rd in rdatas:
        assert isinstance(rd, dns.rdtypes.IN.SRV.SRV)
        target = rd.target.to_text().rstrip(".").lower()
        entry = SrvTarget(target, rd.port, rd.priority, rd.weight, ttl or 0)
        # "." is the RFC 2782 "service not available here" target. A target that is not
        # a plain host name (escaped dots or octets in a label) is refused: its text
        # would name another node than the one the record points to.
        if (
            not target
            or not is_host_name(rd.target)
            or (allowed_domain is not None and not in_domain(rd.target, allowed_domain))
        ):
            dropped.append(entry)
        else:
            kept.append(entry)
    return kept, dropped


def srv_names_itself(message: dns.message.Message, qname: str, allowed_domain: str | None) -> bool:
    """True if the SRV answer for *qname* has a target equal to its own owner name.

    That is how CoreDNS answers the SRV of a ClusterIP (non-headless) Service:
    ``0 100 <port> <service name>``, with the virtual IP as glue; a headless Service's
    targets are its endpoints' names, one label deeper. NXDOMAIN, NODATA, or a CNAME
    leaving *allowed_domain* give False.
    """
    if message.rcode() != dns.rcode.NOERROR:
        return False
    try:
        name, _ = _follow_chain(message, qname, dns.rdatatype.SRV, allowed_domain)
        rrset = message.find_rrset(message.answer, name, dns.rdataclass.IN, dns.rdatatype.SRV)
    except (KeyError, ResolutionError):
        return False
    return any(rd.target == name for rd in rrset)


def glue_from_message(message: dns.message.Message) -> dict[str, AddressAnswer]:
    """Addresses in the additional section, by lower-cased owner name without the dot."""
    found: dict[str, tuple[list[str], int]] = {}
    for rrset in message.additional:
        # Class IN only: a CHAOS "A" record carries a domain and a 16-bit int, not an IP.
        if rrset.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA) or rrset.rdclass != dns.rdataclass.IN:
            continue
        owner = rrset.name.to_text().rstrip(".").lower()
        addrs, ttl = found.setdefault(owner, ([], rrset.ttl))
        addrs.extend(r.address for r in rrset)
        found[owner] = (addrs, min(ttl, rrset.ttl))
    return {k: AddressAnswer(tuple(v[0]), v[1]) for k, v in found.items()}


def srv_endpoints(
    targets: Iterable[SrvTarget],
    addresses: Mapping[str, AddressAnswer],
    *,
    name: str | None = None,
    previous: EndpointSet | None = None,
) -> EndpointSet:
    """One endpoint per (SRV target, address); targets without any address are left out.

    The ordinal comes from a StatefulSet hostname (``web-2``); generated dashed-IP
    hostnames and other names get ``ordinal=None``. *previous*: the last set for the same
    SRV name; its endpoints (and the set itself) are used again where nothing differs.
    """
    reuse = _Reuse(previous)
    eps: list[Endpoint] = []
    ttl: int | None = None
    for t in targets:
        found = addresses.get(t.target)
        if found is None or not found.addresses:
            continue
        ordinal = pod_ordinal(t.target)
        rr_ttl = t.ttl if found.ttl is None else min(t.ttl, found.ttl)
        ttl = rr_ttl if ttl is None else min(ttl, rr_ttl)
        for addr in found.addresses:
            eps.append(reuse.endpoint(addr, t.port, t.target, ordinal, t.priority, t.weight, rr_ttl))
    return reuse.endpoint_set(eps, name, ttl)
