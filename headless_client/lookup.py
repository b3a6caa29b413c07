"""What to ask DNS, in which order, and what the answers mean. Sans-I/O.

Each lookup is a generator (a "plan") in the style of dnspython's ``_Resolution``: it
yields a batch of questions ``[(absolute name, rdtype), ...]``, is sent back the answers
(one :class:`~headless_client.wire.Reply` per question, same order, rcode already
screened for server failures, or a :class:`~headless_client.wire.Failure` where no server
answered usably), and finally returns its result. The exchange
(:mod:`headless_client.exchange`) carries each batch to the nameservers, so the business
logic exists once.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias, TypeVar

import dns.rcode
import dns.rdatatype

from .endpoints import Endpoint, EndpointSet
from .errors import NotGoverningService, NotHeadless, ResolutionError, ServiceNotFound
from .fastwire import read_addresses, read_srv
from .names import absolute, pod_ordinal
from .records import (
    DEFAULT_MAX_RECORDS,
    AddressAnswer,
    Network,
    SrvTarget,
    address_allowed,
    address_endpoints,
    addresses_from_answer,
    glue_from_message,
    srv_endpoints,
    srv_names_itself,
    srv_targets,
    unsafe_address,
)
from .wire import Answer, Failure, Reply

__all__ = [
    "AAAA",
    "SRV",
    "A",
    "Batch",
    "LookupOptions",
    "Plan",
    "Question",
    "StreamBatch",
    "plan_addresses",
    "plan_pod",
    "plan_srv",
    "plan_statefulset",
]

A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA
SRV = dns.rdatatype.SRV

Question = tuple[str, dns.rdatatype.RdataType]
Batch = list[Question]
T = TypeVar("T")
Plan: TypeAlias = Generator[Batch, list[Answer], T]


class StreamBatch(list[Question]):
    """A batch whose answers will not fit in a datagram (the last answers for these names
    did not): the exchange sends it over TCP at once, its questions pipelined on one
    connection, instead of learning it from truncated UDP answers, one connection each."""

    __slots__ = ()


#: Records of each type that fit in a 1232-octet answer, compressed, with room to spare:
#: above these the previous answer says the next one goes over TCP.
_DATAGRAM_RECORDS = {A: 64, AAAA: 36, SRV: 16}


def _sized(questions: Batch, large: bool) -> Batch:
    """*questions* as a :class:`StreamBatch` when their answers are *large*."""
    return StreamBatch(questions) if large else questions


@dataclass(frozen=True, slots=True)
class LookupOptions:
    """Limits and checks that apply to every lookup of one resolver."""

    #: CNAMEs are followed only inside this domain (the cluster domain); None: anywhere.
    cname_domain: str | None = None
    max_records: int = DEFAULT_MAX_RECORDS
    #: Drop SRV targets outside the service's own name (logged by the shell).
    check_targets: bool = True
    #: Addresses (A/AAAA answers, SRV glue and target lookups) outside every one of these
    #: networks are dropped (logged by the shell); None: any address.
    allowed_networks: tuple[Network, ...] | None = None
    #: Drop unspecified, multicast, broadcast and link-local addresses and SRV port 0
    #: (logged by the shell); loopback too unless *allow_loopback*.
    screen_addresses: bool = True
    allow_loopback: bool = False
    dropped: list[SrvTarget] = field(default_factory=list, compare=False)
    #: ``(name, address)`` dropped by *allowed_networks*, for the shell to log.
    rejected: list[tuple[str, str]] = field(default_factory=list, compare=False)
    #: A ClusterIP (non-headless) Service: ``"error"`` raises :class:`NotHeadless`,
    #: ``"warn"`` accepts its virtual IP (noted in *cluster_ips* for the shell to log).
    cluster_ip: Literal["error", "warn"] = "error"
    #: Service FQDNs already found headless (shared by one resolver: a Service's
    #: ``clusterIP`` cannot change), so the extra SRV question is asked once.
    headless: set[str] | None = field(default=None, compare=False)
    #: ClusterIP Services accepted under ``cluster_ip="warn"``, for the shell to log.
    cluster_ips: list[str] = field(default_factory=list, compare=False)
    #: ``(name, address, why)`` dropped by the default screen, for the shell to log.
    unsafe: list[tuple[str, str, str]] = field(default_factory=list, compare=False)
    #: SRV records with port 0, dropped by the default screen, for the shell to log.
    port_zero: list[SrvTarget] = field(default_factory=list, compare=False)
    #: ``(name, failure)`` of an address family that failed while the other answered
    #: (the answered one is used), for the shell to log.
    partial: list[tuple[str, Failure]] = field(default_factory=list, compare=False)


def _cluster_ip_found(fqdn: str, options: LookupOptions) -> None:
    """*fqdn* is a ClusterIP Service: raise, or note it for a warning."""
    if options.cluster_ip == "warn":
        options.cluster_ips.append(fqdn)
        return
    raise NotHeadless(
        f"service {fqdn!r} is not headless: it has a cluster IP, so DNS gives its virtual IP, "
        "not its pods (make it headless with `clusterIP: None`, or pass cluster_ip='warn' "
        "to the resolver to accept the virtual IP)",
        fqdn,
    )


def _check_headless(
    fqdn: str, found: tuple[AddressAnswer, AddressAnswer], options: LookupOptions
) -> Generator[Batch, list[Answer], None]:
    """A ClusterIP Service answers one virtual IP per family, like a headless Service of
    one pod; only then ask the name's own SRV (once per resolver), which CoreDNS answers
    for a ClusterIP Service with the Service name itself as target."""
    if len(found[0].addresses) > 1 or len(found[1].addresses) > 1:
        return
    if not (found[0].addresses or found[1].addresses):
        return
    key = fqdn.lower().rstrip(".")
    if options.headless is not None and key in options.headless:
        return
    (reply,) = yield [(absolute(fqdn), SRV)]
    if isinstance(reply, Failure):
        return  # the server could not say: not judged now, asked again next time
    if srv_names_itself(reply.message, absolute(fqdn), options.cname_domain):
        _cluster_ip_found(fqdn, options)
    elif options.headless is not None:
        options.headless.add(key)


def _is_nxdomain(reply: Reply) -> bool:
    return reply.rcode == dns.rcode.NXDOMAIN


_WAY_OUT_ADDRESSES = "for a service this large use resolve_statefulset(), which asks one name per pod"
_WAY_OUT_SRV = (
    "for a service this large use an int port (A/AAAA answers are about a third of the size) "
    "or resolve_statefulset(), which asks one name per pod"
)


def _too_big(failure: Failure, service: str, way_out: str) -> ResolutionError:
    what = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(failure.rdtype))
    return ResolutionError(
        f"{service}: the {what} answer for {failure.qname} does not fit in one DNS message "
        f"({failure.reason}); a partial set is refused: {way_out}"
    )


def _reply(answer: Answer, service: str, way_out: str) -> Reply:
    """*answer* itself; a :class:`Failure` raises :class:`ResolutionError`."""
    if isinstance(answer, Failure):
        if answer.truncated:
            raise _too_big(answer, service, way_out)
        raise ResolutionError(answer.message)
    return answer


def _both_families(
    fqdn: str, answers: list[Answer], options: LookupOptions
) -> tuple[AddressAnswer, AddressAnswer] | None:
    """A and AAAA answers for one name; None when the name does not exist.

    When one family failed (a SERVFAIL for AAAA, say) and the other answered with
    addresses, the answered family is used and the failure noted for the log; with
    nothing answered there is nothing to keep, and the failure is raised.
    """
    a_msg, aaaa_msg = answers
    if isinstance(a_msg, Reply) and isinstance(aaaa_msg, Reply):
        if _is_nxdomain(a_msg) and _is_nxdomain(aaaa_msg):
            return None
        return _addresses(a_msg, fqdn, A, options), _addresses(aaaa_msg, fqdn, AAAA, options)
    return _one_family(fqdn, a_msg, aaaa_msg, options)


def _one_family(
    fqdn: str, a_msg: Answer, aaaa_msg: Answer, options: LookupOptions
) -> tuple[AddressAnswer, AddressAnswer] | None:
    """:func:`_both_families` where at least one family failed."""
    for answer in (a_msg, aaaa_msg):
        if isinstance(answer, Failure) and answer.truncated:
            raise _too_big(answer, fqdn, _WAY_OUT_ADDRESSES)
    if isinstance(a_msg, Failure) and isinstance(aaaa_msg, Reply):
        failed, good, family = a_msg, aaaa_msg, AAAA
    elif isinstance(aaaa_msg, Failure) and isinstance(a_msg, Reply):
        failed, good, family = aaaa_msg, a_msg, A
    else:  # both failed
        raise ResolutionError(a_msg.message if isinstance(a_msg, Failure) else str(a_msg))
    if _is_nxdomain(good):
        return None  # NXDOMAIN is about the name, whatever the type
    found = _addresses(good, fqdn, family, options)
    if not found.addresses:
        raise ResolutionError(failed.message)
    options.partial.append((fqdn, failed))
    empty = AddressAnswer((), None)
    return (found, empty) if family == A else (empty, found)


def _addresses(
    reply: Reply, name: str, rdtype: dns.rdatatype.RdataType, options: LookupOptions
) -> AddressAnswer:
    """Addresses of one answer, screened; none for NXDOMAIN (a pod that went away meanwhile).

    Raises:
        ResolutionError: a malformed answer, a server failure, a CNAME leaving the
            cluster domain, more records than ``max_records``.
    """
    return _screen(_unscreened(reply, name, rdtype, options), name, options, rdtype)


def _unscreened(
    reply: Reply, name: str, rdtype: dns.rdatatype.RdataType, options: LookupOptions
) -> AddressAnswer:
    """:func:`_addresses` before the address screen."""
    if _is_nxdomain(reply):
        return AddressAnswer((), None)
    # The wire reader gives exactly what dnspython's path gives, or None for the shapes it
    # does not read (CNAMEs, errors, too many records), which that path then handles.
    found = read_addresses(reply.wire, name, rdtype, max_records=options.max_records)
    if found is None:
        found = addresses_from_answer(
            reply.message, name, rdtype, allowed_domain=options.cname_domain, max_records=options.max_records
        )
    return found


def _admitted(address: str, options: LookupOptions) -> bool:
    """True if :func:`_screen` keeps *address* (nothing is noted for the log)."""
    if options.screen_addresses and unsafe_address(address, allow_loopback=options.allow_loopback):
        return False
    networks = options.allowed_networks
    return networks is None or address_allowed(address, networks)


#: First octets (as text) of the IPv4 addresses the default screen may refuse: 0/8, 127/8,
#: 169.254/16, 224/4, 255.255.255.255. An A answer with none of them needs no closer look.
_SUSPECT_FIRST = frozenset({"0", "127", "169", "255", *map(str, range(224, 240))})
_SUSPECT_FIRST_LOOPBACK_ALLOWED = _SUSPECT_FIRST - {"127"}


def _screen(
    answer: AddressAnswer, name: str, options: LookupOptions, rdtype: int | None = None
) -> AddressAnswer:
    """*answer* without unsafe addresses and those outside ``allowed_networks`` (noted
    for the log). *rdtype* ``A``: every address is IPv4 text."""
    networks = options.allowed_networks
    screen = options.screen_addresses
    if (networks is None and not screen) or not answer.addresses:
        return answer
    loopback = options.allow_loopback
    if rdtype == A and networks is None:
        suspect = _SUSPECT_FIRST_LOOPBACK_ALLOWED if loopback else _SUSPECT_FIRST
        if suspect.isdisjoint({address[: address.find(".")] for address in answer.addresses}):
            return answer
    kept: list[str] = []
    for address in answer.addresses:
        why = unsafe_address(address, allow_loopback=loopback) if screen else None
        if why is not None:
            options.unsafe.append((name, address, why))
        elif networks is not None and not address_allowed(address, networks):
            options.rejected.append((name, address))
        else:
            kept.append(address)
    if len(kept) == len(answer.addresses):
        return answer
    return AddressAnswer(tuple(kept), answer.ttl)


def plan_addresses(
    fqdn: str, port: int, options: LookupOptions, previous: EndpointSet | None = None
) -> Plan[EndpointSet]:
    """A and AAAA of the service name: every ready pod address, all with *port*.

    *previous*, the last set this lookup gave: when its answers did not fit in a datagram,
    both questions go over one TCP connection at once; its endpoints (and the set itself)
    are used again where nothing differs.
    """
    qname = absolute(fqdn)
    large = False
    if previous is not None and len(previous) > _DATAGRAM_RECORDS[AAAA]:
        v6 = sum(1 for ep in previous if ":" in ep.address)
        large = v6 > _DATAGRAM_RECORDS[AAAA] or len(previous) - v6 > _DATAGRAM_RECORDS[A]
    answers = yield _sized([(qname, A), (qname, AAAA)], large)
    found = _both_families(fqdn, answers, options)
    if found is None:
        raise ServiceNotFound(f"service {fqdn!r} does not exist or has no ready pods (NXDOMAIN)")
    yield from _check_headless(fqdn, found, options)
    return address_endpoints(found, port, name=fqdn, previous=previous)


def _merge(a: AddressAnswer, b: AddressAnswer) -> AddressAnswer:
    ttls = [t for t in (a.ttl, b.ttl) if t is not None]
    return AddressAnswer(a.addresses + b.addresses, min(ttls) if ttls else None)


def plan_srv(
    srv_qname: str, service_fqdn: str, options: LookupOptions, previous: EndpointSet | None = None
) -> Plan[EndpointSet]:
    """SRV of a named port, then the targets' addresses: glue first, then what the last
    answer proves, lookups for the rest.

    BIND drops glue that does not fit (without setting TC), and sends none for more than
    13 targets; CoreDNS keeps what fits in 64 KiB (584 of 1000 targets). The missing
    addresses are asked in one concurrent batch. Which families to ask is learned from
    *previous* or else from the first target, so an IPv4-only service of 1000 pods costs
    1000 questions, not 2000.

    With *previous* (the last set this lookup gave), the service name's own A/AAAA
    (every ready pod's address, one question per family it had) is asked with the SRV,
    pipelined on one TCP connection when the answers are large. A target of *previous*
    keeps its addresses without a question while they are all still in that set and the
    answers account for it exactly (:func:`_accounted`); targets that are new or whose
    address left the set are asked. A refresh in which nothing changed asks 2 questions
    (3 for a dual-stack service).
    """
    known = _previous_addresses(previous)
    families = _families(previous) if known else ()
    service = absolute(service_fqdn)
    batch: Batch = [(absolute(srv_qname), SRV), *((service, family) for family in families)]
    answers = yield _sized(batch, previous is not None and len(previous) > _DATAGRAM_RECORDS[SRV])
    reply = _reply(answers[0], service_fqdn, _WAY_OUT_SRV)
    kept, dropped, glue = _srv_records(reply, srv_qname, service_fqdn, options)
    options.dropped.extend(dropped)
    own = service_fqdn.lower().rstrip(".")
    if any(t.target == own for t in kept):  # a ClusterIP Service's SRV names the Service
        _cluster_ip_found(service_fqdn, options)
    if options.screen_addresses and any(t.port == 0 for t in kept):
        # Port 0 is no service; a connect there fails or reaches something unintended.
        options.port_zero.extend(t for t in kept if t.port == 0)
        kept = [t for t in kept if t.port != 0]
    addresses: dict[str, AddressAnswer] = {}
    for t in kept:
        if t.target in glue and t.target not in addresses:
            # Glue outside allowed_networks is dropped; the target is then asked directly.
            screened = _screen(glue[t.target], t.target, options)
            if screened.addresses:
                addresses[t.target] = screened
    missing = list(dict.fromkeys(t.target for t in kept if t.target not in addresses))
    reused: dict[str, AddressAnswer] = {}
    seen: frozenset[str] = frozenset()
    if missing and known:
        found = _service_addresses(answers[1:], families, service_fqdn, options)
        if found is not None:
            seen, ttl = found
            for target in missing:
                had = known.get(target)
                if had is not None and all(address in seen for address in had):
                    reused[target] = AddressAnswer(had, ttl)
    ask = [t for t in missing if t not in reused] if reused else missing
    if ask:
        if families:
            yield from _ask_targets(ask, families, addresses, options, service_fqdn)
        else:
            yield from _probe_targets(ask, addresses, options, service_fqdn)
    if reused:
        if _accounted(reused, addresses, seen):
            addresses.update(reused)
        else:
            # Another target holds one of the addresses now, or an address of the service
            # has no target: some pods moved, and which ones only their own names say.
            yield from _ask_targets(list(reused), families, addresses, options, service_fqdn)
    return srv_endpoints(kept, addresses, name=service_fqdn, previous=previous)


def _srv_records(
    reply: Reply, srv_qname: str, service_fqdn: str, options: LookupOptions
) -> tuple[list[SrvTarget], list[SrvTarget], Mapping[str, AddressAnswer]]:
    """The SRV answer split as :func:`~headless_client.records.srv_targets` splits it, and
    its glue: read from the wire, or by dnspython for the shapes the wire reader leaves."""
    allowed = service_fqdn if options.check_targets else options.cname_domain
    fast = read_srv(reply.wire, srv_qname, allowed_domain=allowed, max_records=options.max_records)
    if fast is not None:
        return list(fast.kept), list(fast.dropped), fast.glue
    message = reply.message
    kept, dropped = srv_targets(message, srv_qname, allowed_domain=allowed, max_records=options.max_records)
    return kept, dropped, glue_from_message(message)


def _previous_addresses(previous: EndpointSet | None) -> dict[str, tuple[str, ...]]:
    """Pod name -> its addresses in *previous*; names that shared an address with another
    name are left out (which of them holds it now cannot be told from the sets)."""
    if not previous:
        return {}
    by_name: dict[str, list[str]] = {}
    holder: dict[str, str] = {}
    shared: set[str] = set()
    for ep in previous:
        name = ep.hostname
        if name is None:
            continue
        address = ep.address
        had = by_name.get(name)
        if had is None:
            by_name[name] = [address]
        elif address not in had:
            had.append(address)
        other = holder.setdefault(address, name)
        if other != name:
            shared.update((name, other))
    return {name: tuple(had) for name, had in by_name.items() if name not in shared}


def _families(previous: EndpointSet | None) -> tuple[dns.rdatatype.RdataType, ...]:
    """The address types *previous* had: (A,), (AAAA,) or both."""
    if not previous:
        return ()
    v6 = any(":" in ep.address for ep in previous)
    v4 = not v6 or any(":" not in ep.address for ep in previous)
    return tuple(family for family, present in ((A, v4), (AAAA, v6)) if present)


def _service_addresses(
    answers: list[Answer],
    families: tuple[dns.rdatatype.RdataType, ...],
    service_fqdn: str,
    options: LookupOptions,
) -> tuple[frozenset[str], int | None] | None:
    """The addresses the service name answered (those the screen keeps) and their smallest
    TTL; None when a family did not answer usably (then nothing is taken from them)."""
    found: set[str] = set()
    ttls: list[int] = []
    for family, answer in zip(families, answers, strict=True):
        if isinstance(answer, Failure) or _is_nxdomain(answer):
            return None
        try:
            got = _unscreened(answer, service_fqdn, family, options)
        except ResolutionError:
            return None
        found.update(address for address in got.addresses if _admitted(address, options))
        if got.ttl is not None:
            ttls.append(got.ttl)
    return frozenset(found), (min(ttls) if ttls else None)


def _accounted(
    reused: dict[str, AddressAnswer], addresses: dict[str, AddressAnswer], seen: frozenset[str]
) -> bool:
    """True when the answers account for the service's addresses exactly: no target read
    from glue or asked now holds an address a reused target had, and every address the
    service name answered belongs to some target.

    A pod that restarted elsewhere leaves its old address (its name is then asked), or
    hands it to another pod (which then has two claimants), or takes an address no
    target claims. What this cannot see is a set of pods that, between two refreshes,
    all restarted and took each other's addresses: no answer read here changes then.
    """
    claimed = {address for answer in addresses.values() for address in answer.addresses}
    held: set[str] = set()
    for answer in reused.values():
        for address in answer.addresses:
            if address in claimed:
                return False
            held.add(address)
    return not seen.difference(held, claimed)


def _ask_targets(
    targets: list[str],
    families: tuple[dns.rdatatype.RdataType, ...],
    addresses: dict[str, AddressAnswer],
    options: LookupOptions,
    service_fqdn: str,
) -> Generator[Batch, list[Answer], None]:
    """Ask every target each of *families* in one batch; a target without any address
    there is asked the other family once (mixed-family services)."""
    answers = yield [(absolute(t), family) for t in targets for family in families]
    count = len(families)
    for index, target in enumerate(targets):
        for family, answer in zip(families, answers[index * count : index * count + count], strict=True):
            got = _addresses(_reply(answer, service_fqdn, _WAY_OUT_SRV), target, family, options)
            if got.addresses:
                old = addresses.get(target)
                addresses[target] = got if old is None else _merge(old, got)
    others = [family for family in (A, AAAA) if family not in families]
    leftovers = [t for t in targets if t not in addresses]
    if others and leftovers:
        yield from _ask_family(leftovers, others[0], addresses, options, service_fqdn, strict=False)


def _probe_targets(
    missing: list[str], addresses: dict[str, AddressAnswer], options: LookupOptions, service_fqdn: str
) -> Generator[Batch, list[Answer], None]:
    """Ask the first target both families, then the rest only the families it had."""
    first = absolute(missing[0])
    probe = yield [(first, A), (first, AAAA)]
    both = _both_families(missing[0], probe, options)
    families = [A, AAAA]
    if both is not None and (both[0].addresses or both[1].addresses):
        addresses[missing[0]] = _merge(*both)
        families = [rt for rt, ans in zip((A, AAAA), both, strict=True) if ans.addresses]
    rest = missing[1:]
    for family in families:
        yield from _ask_family(rest, family, addresses, options, service_fqdn)
    # A pod that lacks the family its peers have (mixed-family services) is asked
    # for the other family once; a name gone NXDOMAIN meanwhile simply drops out, and
    # so does one whose other family fails (its first family had nothing).
    if len(families) == 1:
        other = AAAA if families[0] == A else A
        leftovers = [t for t in rest if t not in addresses]
        yield from _ask_family(leftovers, other, addresses, options, service_fqdn, strict=False)


def _ask_family(
    targets: list[str],
    family: dns.rdatatype.RdataType,
    addresses: dict[str, AddressAnswer],
    options: LookupOptions,
    service_fqdn: str,
    *,
    strict: bool = True,
) -> Generator[Batch, list[Answer], None]:
    if not targets:
        return
    answers = yield [(absolute(t), family) for t in targets]
    for target, answer in zip(targets, answers, strict=True):
        if isinstance(answer, Failure) and not strict and not answer.truncated:
            options.partial.append((target, answer))
            continue
        got = _addresses(_reply(answer, service_fqdn, _WAY_OUT_SRV), target, family, options)
        if got.addresses:
            old = addresses.get(target)
            addresses[target] = got if old is None else _merge(old, got)


def _pod_endpoints(
    fqdn: str, found: tuple[AddressAnswer, AddressAnswer], port: int
) -> list[Endpoint]:
    ordinal = pod_ordinal(fqdn)
    return [
        Endpoint(
            address=addr,
            port=port,
            hostname=fqdn,
            ordinal=ordinal,
            ttl=ans.ttl,
        )
        for ans in found
        for addr in ans.addresses
    ]


def plan_pod(
    fqdn: str, port: int, options: LookupOptions
) -> Plan[EndpointSet]:
    """A and AAAA of one pod name; its endpoints (two for a dual-stack pod)."""
    qname = absolute(fqdn)
    answers = yield [(qname, A), (qname, AAAA)]
    rejected_before = len(options.rejected)
    unsafe_before = len(options.unsafe)
    found = _both_families(fqdn, answers, options)
    if found is None or not (found[0].addresses or found[1].addresses):
        outside = [addr for _, addr in options.rejected[rejected_before:]]
        unsafe = [f"{addr} ({why})" for _, addr, why in options.unsafe[unsafe_before:]]
        if unsafe:
            raise ResolutionError(
                f"pod {fqdn!r}: every address ({', '.join(unsafe + outside)}) is unsafe or outside "
                "allowed_networks (screen_addresses=False turns the default screen off)"
            )
        if outside:
            raise ResolutionError(
                f"pod {fqdn!r}: every address ({', '.join(outside)}) is outside allowed_networks"
            )
        raise ServiceNotFound(f"pod {fqdn!r} does not exist or is not ready (NXDOMAIN)")
    return EndpointSet(_pod_endpoints(fqdn, found, port), name=fqdn)


def plan_statefulset(
    service_fqdn: str,
    pod_names: list[str],
    port: int,
    replicas: int | None,
    options: LookupOptions,
    *,
    max_gap: int = 8,
) -> Plan[EndpointSet]:
    """StatefulSet identities without SRV, as an operator would find them by hand.

    *pod_names* are candidate FQDNs in ordinal order from ``start`` (the caller builds
    enough of them). The pod count comes from the service's own A/AAAA answer unless
    *replicas* is given; names are then asked in windows until that many pods are found
    or *max_gap* ordinals in a row are missing (unready pods leave gaps), and never past
    the end of *pod_names*, so the walk is bounded.
    """
    if replicas is None:
        qname = absolute(service_fqdn)
        answers = yield [(qname, A), (qname, AAAA)]
        found = _both_families(service_fqdn, answers, options)
        if found is None:
            raise ServiceNotFound(
                f"service {service_fqdn!r} does not exist or has no ready pods (NXDOMAIN)"
            )
        yield from _check_headless(service_fqdn, found, options)
        # A dual-stack pod has one address per family: count the larger family.
        replicas = max(len(found[0].addresses), len(found[1].addresses))
        counted = replicas
    else:
        counted = 0
    eps: list[Endpoint] = []
    pods_found = 0
    misses = 0
    index = 0
    while pods_found < replicas and misses < max_gap and index < len(pod_names):
        window = pod_names[index : index + max(replicas - pods_found + max_gap // 2, 1)]
        index += len(window)
        batch: Batch = []
        for name in window:
            batch += [(absolute(name), A), (absolute(name), AAAA)]
        answers = yield batch
        for i, name in enumerate(window):
            pair = answers[2 * i : 2 * i + 2]
            got = _both_families(name, pair, options)
            if got is None or not (got[0].addresses or got[1].addresses):
                misses += 1
                if misses >= max_gap:
                    break
                continue
            misses = 0
            pods_found += 1
            eps.extend(_pod_endpoints(name, got, port))
    if counted and not pods_found and pod_names:
        _not_governing(service_fqdn, pod_names, index, counted)
    return EndpointSet(eps, name=service_fqdn)


def _not_governing(service_fqdn: str, pod_names: list[str], asked: int, counted: int) -> None:
    """The Service has ready addresses but none of the StatefulSet's names exists."""
    first = pod_names[0].split(".", 1)[0]
    statefulset, _, start = first.rpartition("-")
    last = pod_names[max(asked, 1) - 1].split(".", 1)[0]
    service = service_fqdn.split(".", 1)[0]
    raise NotGoverningService(
        f"service {service_fqdn!r} has {counted} ready address(es) but none of the names "
        f"{first}..{last}.{service}... exists: StatefulSet pods get '<statefulset>-<ordinal>' "
        f"names only under the Service their StatefulSet names as serviceName, so {service!r} "
        f"is not the governing Service of {statefulset!r} (a second Service over the same pods "
        f"has only dashed-address names: use resolve() with it, or pass service=<serviceName>), "
        f"or the ordinals do not start at {start} (pass start=)",
        service_fqdn,
        statefulset,
    )
