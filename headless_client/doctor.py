"""``headless-client doctor``: check a headless service and say what to do about it.

Two halves. :func:`gather` does the I/O: it asks the DNS server the questions an operator
would (the service's A/AAAA, its SRV records, the namespace's name, PTR of a few pod
addresses), over UDP and, when an answer is truncated, over TCP, keeping each raw answer
(:class:`Answer`: rcode, records, TTL, size, truncation), and runs the library's own
resolution beside them. The checks are pure functions of those :class:`Facts`, each
returning :class:`Finding` values: one line that says what was found and what to do.

A finding is ``ok``, ``info`` (worth knowing, nothing to fix), ``warn`` or ``fail``;
the service is healthy when no finding is ``warn`` or ``fail``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename

from .endpoints import EndpointSet
from .environment import NAMESPACE_FILE, RESOLV_CONF
from .errors import HeadlessClientError, NotHeadless, ServiceNotFound
from .names import is_generated_hostname, parse_resolv_conf
from .resolver import Resolver
from .wire import EDNS_PAYLOAD, Nameserver

__all__ = [
    "CHECKS",
    "DNS_MESSAGE_LIMIT",
    "Answer",
    "Environment",
    "Facts",
    "Finding",
    "Status",
    "check_all",
    "gather",
    "healthy",
]

Status = Literal["ok", "info", "warn", "fail"]

#: The largest DNS message (a 16-bit length over TCP): bigger answers cannot exist.
DNS_MESSAGE_LIMIT: Final = 65535
#: Share of the limit from which the size check warns.
SIZE_WARNING: Final = 0.75
#: Pod addresses whose PTR names are asked (to find the governing Service).
PTR_SAMPLE: Final = 3
#: CoreDNS's default TTL, and the one kubeadm clusters set.
DEFAULT_TTL: Final = 5
KUBEADM_TTL: Final = 30

_STATEFULSET_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?-\d+$")


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report.

    Attributes:
        check: Which check (``exists``, ``headless``, ``srv``, ``pod_names``, ``ttl``,
            ``screening``, ``transport``, ``size``, ``environment``, ``cname``, ``kafka``,
            ``redis``).
        status: ``ok``, ``info``, ``warn`` or ``fail``.
        message: What was found and what to do, in one line.
    """

    check: str
    status: Status
    message: str


@dataclass(frozen=True, slots=True)
class Answer:
    """One DNS question and what the server said.

    Attributes:
        qname: The name asked (absolute, without the trailing dot).
        rdtype: ``A``, ``AAAA``, ``SRV``, ``PTR``.
        rcode: ``NOERROR``, ``NXDOMAIN``, ``SERVFAIL``..., or ``TIMEOUT``/``ERROR`` when
            no answer came.
        records: The answer's rdata as text for the asked type (addresses; ``priority
            weight port target`` for SRV; names for PTR).
        ttl: The smallest TTL of those records, or None.
        size: Bytes of the complete answer (over TCP when UDP was truncated).
        truncated: The UDP answer had TC set (it did not fit in the EDNS payload).
        tcp: ``None`` when TCP was not needed, ``"ok"``, or the TCP error.
        cname: The CNAME target, when the name is an alias (an ExternalName Service).
        additional: Addresses in the additional section (SRV glue), by target.
        error: Why there is no answer (timeout, refused...).
    """

    qname: str
    rdtype: str
    rcode: str
    records: tuple[str, ...] = ()
    ttl: int | None = None
    size: int = 0
    truncated: bool = False
    tcp: str | None = None
    cname: str | None = None
    additional: tuple[str, ...] = ()
    error: str | None = None

    @property
    def answered(self) -> bool:
        """True for NOERROR with records of the asked type."""
        return self.rcode == "NOERROR" and bool(self.records)


@dataclass(frozen=True, slots=True)
class Environment:
    """Where the doctor runs, as the library detects it.

    Attributes:
        resolv_conf: The file read.
        search: Its search list.
        namespace: The namespace detected (service-account file, else the search list).
        namespace_source: ``service account``, ``resolv.conf`` or None.
        cluster_domain: The cluster domain from the ``svc.<zone>`` search entry, or None.
    """

    resolv_conf: str
    search: tuple[str, ...]
    namespace: str | None
    namespace_source: str | None
    cluster_domain: str | None


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the checks look at (gathered by :func:`gather`).

    Attributes:
        service: The service's FQDN.
        namespace: The namespace it is in.
        cluster_domain: The cluster domain used.
        port: The port asked for (a name: SRV; a number; None: not given).
        protocol: The SRV protocol.
        nameserver: The DNS server asked.
        environment: What resolv.conf and the service account say.
        namespace_answer: ``<namespace>.svc.<zone>`` A (NOERROR: the namespace exists).
        a: The service's A answer.
        aaaa: Its AAAA answer.
        srv: The service name's own SRV answer (every port).
        port_srv: ``_<port>._<protocol>.<service>`` SRV, for a named port.
        ptr: PTR answers of a few pod addresses.
        endpoints: What the library's resolution gave, or None if it failed.
        library_error: The library's error as ``"Class: message"``, or None.
        library_error_type: The error's class name, or None.
    """

    service: str
    namespace: str
    cluster_domain: str
    port: int | str | None
    protocol: str
    nameserver: str
    environment: Environment
    namespace_answer: Answer
    a: Answer
    aaaa: Answer
    srv: Answer
    port_srv: Answer | None = None
    ptr: tuple[Answer, ...] = ()
    endpoints: EndpointSet | None = None
    library_error: str | None = None
    library_error_type: str | None = None


# -- the checks (pure) -------------------------------------------------------------------------------


def check_environment(facts: Facts) -> list[Finding]:
    """Namespace and cluster domain as detected from resolv.conf (and the service account)."""
    env = facts.environment
    if env.cluster_domain is None:
        return [Finding(
            "environment", "info",
            f"{env.resolv_conf} has no Kubernetes search list ({' '.join(env.search) or 'none'}): not in a "
            f"pod? using namespace {facts.namespace!r} and cluster domain {facts.cluster_domain!r}; "
            "pass -n/--namespace and --cluster-domain if they differ",
        )]
    source = f" (from the {env.namespace_source})" if env.namespace_source else ""
    status: Status = "ok"
    note = ""
    if env.cluster_domain != facts.cluster_domain:
        status = "warn"
        note = (f"; but {facts.cluster_domain!r} is used: drop --cluster-domain, or check the "
                "kubelet's clusterDomain")
    return [Finding(
        "environment", status,
        f"pod namespace {env.namespace or '-'}{source}, cluster domain {env.cluster_domain} "
        f"(from the search list of {env.resolv_conf}){note}",
    )]


def check_exists(facts: Facts) -> list[Finding]:
    """The service answers, or why not: zero ready pods versus no such service."""
    a, aaaa = facts.a, facts.aaaa
    if a.answered or aaaa.answered:
        count = len(a.records) + len(aaaa.records)
        return [Finding("exists", "ok", f"{facts.service} answers {count} address(es)")]
    failed = [x for x in (a, aaaa) if x.rcode not in ("NOERROR", "NXDOMAIN")]
    if failed:
        why = failed[0].error or failed[0].rcode
        return [Finding(
            "exists", "fail",
            f"DNS server {facts.nameserver} failed for {facts.service}: {why}; check --nameserver "
            "and that CoreDNS is up (kubectl -n kube-system get pods -l k8s-app=kube-dns)",
        )]
    if facts.namespace_answer.rcode == "NXDOMAIN":
        return [Finding(
            "exists", "fail",
            f"namespace {facts.namespace!r} is unknown to DNS ({facts.namespace}.svc.{facts.cluster_domain} "
            "is NXDOMAIN): check the name and -n/--namespace",
        )]
    return [Finding(
        "exists", "fail",
        f"{facts.service} is NXDOMAIN: either the Service does not exist or it has zero ready pods "
        "(Kubernetes DNS answers both alike); check `kubectl -n "
        f"{facts.namespace} get endpointslices -l kubernetes.io/service-name={_short(facts.service)}` "
        "(no slice: no such Service; slices without ready endpoints: no ready pods)",
    )]


def check_headless(facts: Facts) -> list[Finding]:
    """A ClusterIP Service gives its virtual IP, not the pods."""
    if _not_headless(facts):
        address = (facts.a.records or facts.aaaa.records or ("?",))[0]
        return [Finding(
            "headless", "fail",
            f"{facts.service} is a ClusterIP Service: DNS gives its virtual IP {address}, never the pods; "
            "create a headless Service (clusterIP: None) over the same pods (clusterIP cannot be changed "
            "in place)",
        )]
    if facts.endpoints is not None and len(facts.endpoints):
        return [Finding("headless", "ok", f"headless: DNS lists the pods themselves ({len(facts.endpoints)} "
                                          "endpoint(s))")]
    return []


def check_cname(facts: Facts) -> list[Finding]:
    """An alias (an ExternalName Service) is not a set of pods."""
    for answer in (facts.a, facts.srv):
        if answer.cname:
            return [Finding(
                "cname", "warn",
                f"{facts.service} is an alias of {answer.cname} (an ExternalName Service?): its pods are "
                "not listed; point the library at the headless Service itself",
            )]
    return []


def check_srv(facts: Facts) -> list[Finding]:
    """A named port (SRV) is there, or what to do without one."""
    port = facts.port
    if not (facts.a.answered or facts.aaaa.answered) or _not_headless(facts):
        return []
    if isinstance(port, str):
        answer = facts.port_srv
        if answer is not None and answer.answered:
            ports = sorted({int(r.split()[2]) for r in answer.records})
            return [Finding("srv", "ok", f"named port {port!r} ({facts.protocol}): SRV gives port "
                                         f"{', '.join(map(str, ports))} and the pods' names")]
        other = sorted({int(r.split()[2]) for r in facts.srv.records}) if facts.srv.answered else []
        have = f"; the Service's ports: {', '.join(map(str, other))}" if other else ""
        return [Finding(
            "srv", "fail",
            f"no port named {port!r} for {facts.protocol.upper()} (_{port}._{facts.protocol} SRV is "
            f"{answer.rcode if answer else 'not asked'}): name the port in the Service (ports[].name) "
            f"or pass the port number{have}",
        )]
    if isinstance(port, int) and port:
        return [Finding("srv", "info", f"port {port} given as a number: A/AAAA only, no SRV; a named port "
                                       "would also give the pods' names and ports")]
    ports = sorted({int(r.split()[2]) for r in facts.srv.records}) if facts.srv.answered else []
    if ports:
        listed = ", ".join(map(str, ports))
        return [Finding("srv", "info", f"the Service's SRV records give port(s) {listed}; "
                                       "pass --port NAME to check a named port")]
    return [Finding("srv", "info", "no SRV records on the service name: pass --port NAME to check one")]


def _srv_targets(facts: Facts) -> list[str]:
    answer = facts.port_srv if facts.port_srv is not None and facts.port_srv.answered else facts.srv
    return sorted({r.split()[3].rstrip(".").lower() for r in answer.records}) if answer.answered else []


def check_pod_names(facts: Facts) -> list[Finding]:
    """Pods have per-pod names under this Service (the governing Service of a StatefulSet)."""
    targets = _srv_targets(facts)
    if not targets or _not_headless(facts):
        return []
    suffix = "." + facts.service.lower()
    labels = [t[: -len(suffix)] for t in targets if t.endswith(suffix)]
    if not labels:
        return []
    named = [x for x in labels if not is_generated_hostname(x)]
    if named:
        shown = ", ".join(sorted(named, key=_ordinal_key)[:3]) + (", ..." if len(named) > 3 else "")
        kind = "StatefulSet " if all(_STATEFULSET_LABEL.match(x) for x in named) else ""
        return [Finding("pod_names", "ok", f"pods have {kind}per-pod names under this Service ({shown})")]
    governing = sorted({
        name.split(".", 2)[1]
        for answer in facts.ptr for name in answer.records
        if not is_generated_hostname(name.split(".", 1)[0])
        and name.rstrip(".").lower() != facts.service.lower()
        and name.rstrip(".").lower().endswith(f".{facts.namespace}.svc.{facts.cluster_domain}")
    })
    hint = (f"; the pods' own names are under {', '.join(repr(g) for g in governing)}: use that Service"
            if governing else "; if they are a StatefulSet's, use the Service its serviceName names")
    return [Finding(
        "pod_names", "warn",
        f"pods have only generated names here ({labels[0]}.{_short(facts.service)}...): this is not "
        f"the governing Service of a StatefulSet, so ordinals and stable identities are lost{hint}",
    )]


def _ordinal_key(label: str) -> tuple[str, int]:
    stem, _, number = label.rpartition("-")
    return (stem, int(number)) if number.isdigit() else (label, -1)


def check_ttl(facts: Facts) -> list[Finding]:
    """How late changes arrive: the TTL bounds each client's refresh period."""
    ttls = [x.ttl for x in (facts.a, facts.aaaa, facts.port_srv or facts.srv) if x.ttl is not None]
    if not ttls:
        return []
    ttl = min(ttls)
    late = ttl * 1.1
    if ttl <= DEFAULT_TTL:
        return [Finding("ttl", "ok", f"TTL {ttl} s: clients see changes within about {max(late, 1.1):.1f} s "
                                     "(TTL + 10 % jitter, library defaults); a cache in front (NodeLocal "
                                     "DNSCache) adds up to its own TTL")]
    status: Status = "warn" if ttl >= KUBEADM_TTL else "info"
    return [Finding(
        "ttl", status,
        f"TTL {ttl} s: a new or removed pod reaches clients up to {late:.0f} s late; pass max_refresh=5 "
        "(about 5.5 s, more queries: the cluster zone is usually not cached by CoreDNS), or lower the "
        "kubernetes plugin's ttl; a failed call still ejects a dead pod at once",
    )]


def check_screening(facts: Facts) -> list[Finding]:
    """Addresses or SRV targets that DNS gave and the library dropped (allowed_networks,
    targets outside the service's domain)."""
    if facts.endpoints is None or not (facts.a.answered or facts.aaaa.answered):
        return []
    kept = {ep.address for ep in facts.endpoints}
    hosts = {ep.hostname.lower().rstrip(".") for ep in facts.endpoints if ep.hostname}
    raw = [r for r in (*facts.a.records, *facts.aaaa.records) if r not in kept]
    targets: list[str] = []
    if facts.port_srv is not None and facts.port_srv.answered:  # the library used SRV
        targets = [t for t in _srv_targets(facts) if t not in hosts]
    findings: list[Finding] = []
    if raw:
        findings.append(Finding(
            "screening", "warn",
            f"{len(raw)} address(es) dropped by screening ({', '.join(raw[:5])}"
            f"{', ...' if len(raw) > 5 else ''}): outside allowed_networks; widen allowed_networks if "
            "these pods are yours, else something answers for the service that should not",
        ))
    if targets:
        findings.append(Finding(
            "screening", "warn",
            f"{len(targets)} SRV target(s) dropped ({', '.join(targets[:3])}): outside "
            f"{facts.service} or not host names; a proxy or a rewrite rule changes the answers",
        ))
    if not findings:
        findings.append(Finding("screening", "ok", "no address or SRV target dropped by screening"))
    return findings


def check_transport(facts: Facts) -> list[Finding]:
    """Answers too big for UDP are retried over TCP: TCP to the DNS server must work."""
    answers = [x for x in _main_answers(facts) if x.truncated]
    if not answers:
        return []
    broken = [x for x in answers if x.tcp != "ok"]
    if broken:
        return [Finding(
            "transport", "fail",
            f"{broken[0].qname} {broken[0].rdtype} does not fit in UDP and TCP failed ({broken[0].tcp}): "
            f"allow TCP port 53 to {facts.nameserver} (NetworkPolicy, firewall)",
        )]
    worst = max(answers, key=lambda x: x.size)
    return [Finding(
        "transport", "info",
        f"{worst.qname} {worst.rdtype} is {worst.size} bytes, over the {EDNS_PAYLOAD}-byte UDP payload: "
        "answered with TC, the library retries over TCP (works here); keep TCP port 53 open",
    )]


def check_size(facts: Facts) -> list[Finding]:
    """The biggest answer against the 64 KiB limit of a DNS message."""
    answers = [x for x in _main_answers(facts) if x.answered]
    if not answers:
        return []
    worst = max(answers, key=lambda x: x.size)
    share = worst.size / DNS_MESSAGE_LIMIT
    per_record = max(worst.size // max(len(worst.records), 1), 1)
    room = max((DNS_MESSAGE_LIMIT - worst.size) // per_record, 0)
    text = (f"largest answer {worst.qname} {worst.rdtype}: {worst.size} bytes for {len(worst.records)} "
            f"record(s), {share:.0%} of the 64 KiB DNS limit (room for about {room} more)")
    if share >= SIZE_WARNING:
        return [Finding("size", "warn", text + "; beyond it answers are cut: resolve by number (A/AAAA, "
                                               "smaller records) or split the service")]
    return [Finding("size", "ok", text)]


def _not_headless(facts: Facts) -> bool:
    return facts.library_error_type == NotHeadless.__name__


def _main_answers(facts: Facts) -> list[Answer]:
    return [x for x in (facts.a, facts.aaaa, facts.srv, facts.port_srv) if x is not None]


def _short(fqdn: str) -> str:
    return fqdn.split(".", 1)[0]


#: Every check, in report order.
CHECKS: Final[tuple[Callable[[Facts], list[Finding]], ...]] = (
    check_environment,
    check_exists,
    check_cname,
    check_headless,
    check_srv,
    check_pod_names,
    check_ttl,
    check_screening,
    check_transport,
    check_size,
)


def check_all(facts: Facts) -> list[Finding]:
    """Every check's findings, in order."""
    return [finding for check in CHECKS for finding in check(facts)]


def healthy(findings: Sequence[Finding]) -> bool:
    """True when no finding is ``warn`` or ``fail``."""
    return not any(f.status in ("warn", "fail") for f in findings)


def as_json(facts: Facts, findings: Sequence[Finding]) -> dict[str, Any]:
    """The ``--json`` report."""
    return {
        "service": facts.service,
        "nameserver": facts.nameserver,
        "healthy": healthy(findings),
        "findings": [asdict(f) for f in findings],
    }


# -- gathering (I/O) ---------------------------------------------------------------------------------


def detect_environment(resolv_conf: str = RESOLV_CONF, namespace_file: str = NAMESPACE_FILE) -> Environment:
    """What resolv.conf (and the service-account file) say about where this runs."""
    try:
        text = Path(resolv_conf).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    conf = parse_resolv_conf(text)
    namespace, source = conf.namespace, "resolv.conf search list" if conf.namespace else None
    try:
        account = Path(namespace_file).read_text(encoding="utf-8").strip()
    except OSError:
        account = ""
    if account:
        namespace, source = account, "service account"
    return Environment(str(resolv_conf), conf.search, namespace, source, conf.cluster_domain)


def ask(server: Nameserver, qname: str, rdtype: str, timeout: float) -> Answer:
    """One question over UDP (EDNS payload as the library's), then TCP if truncated."""
    name = dns.name.from_text(qname)
    kind = dns.rdatatype.from_text(rdtype)
    query = dns.message.make_query(name, kind, use_edns=0, payload=EDNS_PAYLOAD)
    try:
        reply = dns.query.udp(query, server.host, port=server.port, timeout=timeout)
    except (dns.exception.Timeout, OSError, dns.exception.DNSException) as exc:
        code = "TIMEOUT" if isinstance(exc, dns.exception.Timeout) else "ERROR"
        return Answer(qname, rdtype, code, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
    truncated = bool(reply.flags & dns.flags.TC)
    tcp: str | None = None
    if truncated:
        try:
            reply = dns.query.tcp(query, server.host, port=server.port, timeout=timeout)
            tcp = "ok"
        except (dns.exception.Timeout, OSError, dns.exception.DNSException) as exc:
            tcp = f"{type(exc).__name__}: {exc}"
    records: list[str] = []
    ttl: int | None = None
    cname: str | None = None
    for rrset in reply.answer:
        if rrset.rdtype == dns.rdatatype.CNAME and cname is None:
            cname = rrset[0].target.to_text().rstrip(".")
        if rrset.rdtype == kind:
            records.extend(r.to_text() for r in rrset)
            ttl = rrset.ttl if ttl is None else min(ttl, rrset.ttl)
    address_types = (dns.rdatatype.A, dns.rdatatype.AAAA)
    glue = tuple(r.to_text() for rrset in reply.additional if rrset.rdtype in address_types for r in rrset)
    return Answer(
        qname, rdtype, dns.rcode.to_text(reply.rcode()), tuple(records), ttl, len(reply.to_wire()),
        truncated, tcp, cname, glue,
    )


def gather(
    service: str,
    port: int | str | None,
    *,
    resolver: Resolver,
    protocol: str = "tcp",
    namespace: str | None = None,
    environment: Environment | None = None,
) -> Facts:
    """Ask DNS what the checks need, and resolve *service* with the library beside it.

    Args:
        service: ``web``, ``web.prod``, or an FQDN.
        port: A named port (SRV), a number, or None.
        resolver: The library resolver to use (its first nameserver is asked directly).
        protocol: The SRV protocol of a named port.
        namespace: The namespace of a one-label name (default: the resolver's).
        environment: Where this runs (default: :func:`detect_environment`).

    Raises:
        InvalidName: a bad service name.
    """
    fqdn = resolver.qualify(service, namespace)
    env = environment or detect_environment()
    server = resolver.nameservers[0]
    timeout = resolver.timeout
    labels = fqdn.split(".")
    ns = labels[1] if len(labels) > 1 else (namespace or resolver.namespace or "default")
    namespace_answer = ask(server, f"{ns}.svc.{resolver.cluster_domain}", "A", timeout)
    a = ask(server, fqdn, "A", timeout)
    aaaa = ask(server, fqdn, "AAAA", timeout)
    srv = ask(server, fqdn, "SRV", timeout)
    port_srv = ask(server, f"_{port}._{protocol}.{fqdn}", "SRV", timeout) if isinstance(port, str) else None
    endpoints: EndpointSet | None = None
    error: HeadlessClientError | None = None
    try:
        endpoints = resolver.resolve(fqdn, port if port is not None else 0, protocol=protocol)
    except ServiceNotFound as exc:
        endpoints, error = EndpointSet(name=fqdn), exc
    except HeadlessClientError as exc:
        error = exc
    ptr: list[Answer] = []
    for address in [*a.records, *aaaa.records][:PTR_SAMPLE]:
        ptr.append(ask(server, dns.reversename.from_address(address).to_text().rstrip("."), "PTR", timeout))
    return Facts(
        service=fqdn,
        namespace=ns,
        cluster_domain=resolver.cluster_domain,
        port=port,
        protocol=protocol,
        nameserver=str(server),
        environment=env,
        namespace_answer=namespace_answer,
        a=a,
        aaaa=aaaa,
        srv=srv,
        port_srv=port_srv,
        ptr=tuple(ptr),
        endpoints=endpoints,
        library_error=None if error is None else f"{type(error).__name__}: {error}",
        library_error_type=None if error is None else type(error).__name__,
    )


def format_report(facts: Facts, findings: Sequence[Finding]) -> str:
    """The text report: a header, one line per finding, a verdict."""
    width = max((len(f.check) for f in findings), default=8)
    lines = [f"{facts.service} (asking {facts.nameserver})"]
    for f in findings:
        lines.append(f"{f.status.upper():<4}  {f.check:<{width}}  {f.message}")
    problems = sum(1 for f in findings if f.status in ("warn", "fail"))
    lines.append("healthy" if not problems else f"{problems} finding{'s' if problems != 1 else ''} to act on")
    return "\n".join(lines)
