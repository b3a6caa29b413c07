"""Kubernetes DNS names: validation, qualification, StatefulSet pod names.

Pure functions: no I/O, no environment. Everything here works on ``str`` and returns
names *without* the trailing dot; :func:`absolute` adds it when a query is built.

Kubernetes object names (Service, StatefulSet, namespace) are DNS-1123 labels: lower-case
alphanumerics and ``-``, 1..63 characters, starting and ending with an alphanumeric.
Arguments are validated strictly (an upper-case ``Web`` is rejected, as the API server
would); names read back from DNS answers are folded to lower case first, because DNS
compares names case-insensitively.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

from .errors import InvalidName

__all__ = [
    "DEFAULT_CLUSTER_DOMAIN",
    "PodName",
    "ResolvConf",
    "absolute",
    "is_generated_hostname",
    "ordinal_hostnames",
    "parse_pod_fqdn",
    "parse_resolv_conf",
    "pod_fqdn",
    "pod_ordinal",
    "service_fqdn",
    "srv_name",
    "try_parse_pod_fqdn",
    "validate_label",
    "validate_ordinal",
]

DEFAULT_CLUSTER_DOMAIN: Final = "cluster.local"
MAX_NAME_LENGTH: Final = 253
MAX_LABEL_LENGTH: Final = 63

_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?\Z")
_PORT_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,13}[a-z0-9])?\Z")
_ORDINAL_HOST = re.compile(r"(?P<sts>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)-(?P<ordinal>0|[1-9][0-9]*)\Z")
_LABEL_TEXT = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
#: ``<sts>-<ordinal>.<service>.<namespace>.svc.<domain>``, lower case, every label valid:
#: what :func:`parse_pod_fqdn` accepts, in one match (the host label's length checked by
#: the lookahead). The generated dashed-IP hostnames it also matches are refused after.
_POD_FQDN = re.compile(
    rf"(?=[-a-z0-9]{{1,63}}\.)(?P<sts>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)-(?P<ordinal>0|[1-9][0-9]*)"
    rf"\.(?P<service>{_LABEL_TEXT})\.(?P<namespace>{_LABEL_TEXT})\.svc"
    rf"\.(?P<domain>{_LABEL_TEXT}(?:\.{_LABEL_TEXT})*)\Z"
)
#: Name -> :func:`try_parse_pod_fqdn` of it, and name -> :func:`pod_ordinal` of it: SRV
#: answers repeat the same targets at every refresh. Bounded: cleared when full.
_POD_NAMES: dict[str, PodName | None] = {}
_ORDINALS: dict[str, int | None] = {}
_MEMO_MAX = 8192


@dataclass(frozen=True, slots=True)
class PodName:
    """The parts of a StatefulSet pod FQDN ``<sts>-<ordinal>.<service>.<ns>.svc.<domain>``."""

    statefulset: str
    ordinal: int
    service: str
    namespace: str
    cluster_domain: str

    @property
    def hostname(self) -> str:
        """The pod's own label, ``<statefulset>-<ordinal>``."""
        return f"{self.statefulset}-{self.ordinal}"

    @property
    def fqdn(self) -> str:
        """The full name, without the trailing dot."""
        return f"{self.hostname}.{self.service}.{self.namespace}.svc.{self.cluster_domain}"


@dataclass(frozen=True, slots=True)
class ResolvConf:
    """What a pod's ``/etc/resolv.conf`` tells about its Kubernetes context.

    ``namespace`` and ``cluster_domain`` are ``None`` when the search list does not have
    the kubelet's ``<ns>.svc.<zone> svc.<zone> <zone>`` shape.
    """

    nameservers: tuple[str, ...]
    search: tuple[str, ...]
    ndots: int
    namespace: str | None
    cluster_domain: str | None


def validate_label(label: object, what: str = "label") -> str:
    """Return *label* if it is a DNS-1123 label, else raise :class:`InvalidName`."""
    if not isinstance(label, str):
        raise InvalidName(f"{what} must be a str, not {type(label).__name__}: {label!r}")
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidName(f"{what} {label!r} is longer than {MAX_LABEL_LENGTH} characters")
    if not _LABEL.match(label):
        raise InvalidName(
            f"{what} {label!r} is not a DNS-1123 label "
            "(lower-case letters, digits and '-', starting and ending with a letter or digit)"
        )
    return label


def validate_ordinal(ordinal: object, what: str = "ordinal") -> int:
    """Return *ordinal* if it is a non-negative ``int`` (``bool`` is refused)."""
    if isinstance(ordinal, bool) or not isinstance(ordinal, int):
        raise InvalidName(f"{what} must be an int, not {type(ordinal).__name__}: {ordinal!r}")
    if ordinal < 0:
        raise InvalidName(f"{what} must be >= 0: {ordinal!r}")
    return ordinal


def _validate_domain(domain: object, what: str = "cluster domain") -> str:
    if not isinstance(domain, str):
        raise InvalidName(f"{what} must be a str, not {type(domain).__name__}: {domain!r}")
    name = domain[:-1] if domain.endswith(".") else domain
    if not name:
        raise InvalidName(f"{what} is empty: {domain!r}")
    for label in name.split("."):
        if not _LABEL.match(label):
            raise InvalidName(f"{what} {domain!r} has an invalid label {label!r}")
    return name


def _check_length(name: str, original: object) -> str:
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"name {original!r} is longer than {MAX_NAME_LENGTH} characters")
    return name


def absolute(name: str) -> str:
    """*name* with exactly one trailing dot, for an absolute query."""
    return name if name.endswith(".") else name + "."


def service_fqdn(
    service: str,
    namespace: str | None = None,
    *,
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN,
) -> str:
    """Qualify a Service name the way a pod's search list would, as one absolute name.

    ``web`` -> ``web.<namespace>.svc.<domain>``; ``web.prod`` -> ``web.prod.svc.<domain>``;
    ``web.prod.svc`` -> ``web.prod.svc.<domain>``; a name that already ends in
    ``.svc.<domain>`` or has a trailing dot is returned as is (without the dot).
    ``namespace`` is used only when the name does not carry one.

    Raises:
        InvalidName: a label is invalid, the name is too long, or a one-label name was
            given without a namespace.
    """
    if not isinstance(service, str):
        raise InvalidName(f"service must be a str, not {type(service).__name__}: {service!r}")
    domain = _validate_domain(cluster_domain)
    if service.endswith("."):
        # Absolute: the caller knows the full name (it may be outside the cluster domain).
        _validate_domain(service, "name")
        return _check_length(service[:-1], service)
    if not service:
        raise InvalidName(f"service name is empty: {service!r}")
    if service == domain or service.endswith("." + domain):
        _validate_domain(service, "name")
        return _check_length(service, service)
    labels = service.split(".")
    for label in labels:
        validate_label(label, f"service name {service!r}: label")
    if labels[-1] == "svc":
        if len(labels) < 3:
            raise InvalidName(f"service name {service!r} has no namespace before '.svc'")
        return _check_length(f"{service}.{domain}", service)
    if len(labels) == 1:
        if namespace is None:
            raise InvalidName(
                f"service name {service!r} has no namespace; pass namespace= or use 'name.namespace'"
            )
        validate_label(namespace, "namespace")
        return _check_length(f"{service}.{namespace}.svc.{domain}", service)
    if len(labels) in (2, 3):
        # 'svc.ns' or 'host.svc.ns': what the kubelet's 'svc.<domain>' search entry completes.
        return _check_length(f"{service}.svc.{domain}", service)
    raise InvalidName(
        f"name {service!r} is not a Service name under {domain!r}; "
        "add a trailing dot if it is a full name"
    )


def pod_fqdn(
    statefulset: str,
    ordinal: int,
    *,
    service: str | None = None,
    namespace: str | None = None,
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN,
) -> str:
    """The FQDN of StatefulSet pod *ordinal*: ``<sts>-<n>.<service>.<ns>.svc.<domain>``.

    ``service`` is the StatefulSet's ``serviceName`` (default: the StatefulSet's own name).

    Raises:
        InvalidName: a bad name, a missing namespace, or an ordinal that is not an int >= 0.
    """
    validate_label(statefulset, "statefulset")
    validate_ordinal(ordinal)
    svc = validate_label(service if service is not None else statefulset, "service")
    if namespace is None:
        raise InvalidName(f"namespace is required for pod {statefulset!r}-{ordinal!r}")
    validate_label(namespace, "namespace")
    domain = _validate_domain(cluster_domain)
    host = f"{statefulset}-{ordinal}"
    validate_label(host, "pod hostname")
    return _check_length(f"{host}.{svc}.{namespace}.svc.{domain}", host)


def ordinal_hostnames(
    statefulset: str,
    replicas: int,
    *,
    service: str | None = None,
    namespace: str | None = None,
    start: int = 0,
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN,
) -> list[str]:
    """The pod FQDNs of a StatefulSet with *replicas* pods from ordinal *start*."""
    validate_ordinal(replicas, "replicas")
    validate_ordinal(start, "start")
    return [
        pod_fqdn(
            statefulset, i, service=service, namespace=namespace, cluster_domain=cluster_domain
        )
        for i in range(start, start + replicas)
    ]


def is_generated_hostname(label: str) -> bool:
    """True if *label* is a dashed-IP name Kubernetes generates (``10-244-1-20``, ``fd00-10--a``)."""
    label = label.lower()
    parts = label.split("-")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        try:
            ipaddress.IPv4Address(".".join(parts))
        except ValueError:
            return False
        return True
    if len(parts) >= 3 and all(len(p) <= 4 for p in parts):
        try:
            ipaddress.IPv6Address(label.replace("-", ":"))
        except ValueError:
            return False
        return True
    return False


def parse_pod_fqdn(name: str) -> PodName:
    """Parse ``<sts>-<ordinal>.<service>.<ns>.svc.<domain>[.]`` (case-insensitive).

    Raises:
        InvalidName: the name is not a StatefulSet pod name (too few labels, no ``svc``
            label, no ordinal suffix, or a generated dashed-IP hostname).
    """
    if not isinstance(name, str):
        raise InvalidName(f"pod name must be a str, not {type(name).__name__}: {name!r}")
    folded = name.lower()
    if folded.endswith("."):
        folded = folded[:-1]
    _check_length(folded, name)
    labels = folded.split(".")
    if len(labels) < 5 or labels[3] != "svc":
        raise InvalidName(
            f"{name!r} is not a pod name of the form "
            "<statefulset>-<ordinal>.<service>.<namespace>.svc.<domain>"
        )
    for label in labels:
        if not _LABEL.match(label):
            raise InvalidName(f"{name!r} has an invalid label {label!r}")
    host, service, namespace = labels[0], labels[1], labels[2]
    match = _ORDINAL_HOST.match(host)
    if match is None or is_generated_hostname(host):
        raise InvalidName(f"{name!r} has no StatefulSet ordinal in its hostname {host!r}")
    return PodName(
        statefulset=match["sts"],
        ordinal=int(match["ordinal"]),
        service=service,
        namespace=namespace,
        cluster_domain=".".join(labels[4:]),
    )


def try_parse_pod_fqdn(name: str) -> PodName | None:
    """Like :func:`parse_pod_fqdn`, but ``None`` for names that are not StatefulSet pods."""
    known = _POD_NAMES.get(name, _POD_NAMES) if isinstance(name, str) else None
    if known is not _POD_NAMES:
        return known  # type: ignore[return-value]
    match = _pod_match(name)
    found = None
    if match is not None:
        statefulset, ordinal, service, namespace, domain = match.group(
            "sts", "ordinal", "service", "namespace", "domain"
        )
        found = PodName(statefulset, int(ordinal), service, namespace, domain)
    if len(_POD_NAMES) >= _MEMO_MAX:
        _POD_NAMES.clear()
    _POD_NAMES[name] = found
    return found


def pod_ordinal(name: str) -> int | None:
    """The StatefulSet ordinal of the pod name *name* (``web-2.web.prod.svc.cluster.local``
    gives 2), or ``None`` when it is not one; ``try_parse_pod_fqdn(name).ordinal``,
    remembered for the names of the last few thousand pods."""
    known = _ORDINALS.get(name, -1)
    if known != -1:
        return known
    match = _pod_match(name)
    ordinal = None if match is None else int(match["ordinal"])
    if len(_ORDINALS) >= _MEMO_MAX:
        _ORDINALS.clear()
    _ORDINALS[name] = ordinal
    return ordinal


def _pod_match(name: str) -> re.Match[str] | None:
    """The :data:`_POD_FQDN` match of *name* folded, when it is a StatefulSet pod name;
    ``None`` when :func:`parse_pod_fqdn` refuses it."""
    if not isinstance(name, str):
        return None
    folded = name.lower()
    match = _POD_FQDN.match(folded[:-1] if folded.endswith(".") else folded)
    if match is None or match.end() > MAX_NAME_LENGTH:
        return None
    if is_generated_hostname(folded[: folded.index(".")]):
        return None
    return match


def srv_name(port: str, protocol: str, fqdn: str) -> str:
    """``_<port>._<protocol>.<fqdn>`` after checking the port name (IANA service name rules)."""
    if not isinstance(port, str) or not _PORT_NAME.match(port) or "--" in port:
        raise InvalidName(
            f"port name {port!r} is not a valid named port "
            "(1-15 lower-case letters, digits and '-', as in the Service spec)"
        )
    if port.isdigit():
        raise InvalidName(f"port name {port!r} must contain a letter; pass an int for a number")
    if protocol not in ("tcp", "udp", "sctp"):
        raise InvalidName(f"protocol {protocol!r} is not one of 'tcp', 'udp', 'sctp'")
    return f"_{port}._{protocol}.{fqdn}"


def parse_resolv_conf(text: str) -> ResolvConf:
    """Read nameservers, search list and ndots, and infer the pod's namespace and zone.

    The kubelet writes ``search <ns>.svc.<zone> svc.<zone> <zone> ...``. The cluster
    domain is the search entry that starts with ``svc.``; the namespace is the first
    entry of the form ``<ns>.svc.<that zone>``. As in glibc, the last ``search`` or
    ``domain`` line wins.
    """
    nameservers: list[str] = []
    search: list[str] = []
    ndots = 1
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        key, *values = line.split()
        if key == "nameserver" and values:
            nameservers.append(values[0])
        elif key in ("search", "domain"):
            search = [v.lower().rstrip(".") for v in values]
        elif key == "options":
            for opt in values:
                if opt.startswith("ndots:") and opt[6:].isdigit():
                    ndots = min(int(opt[6:]), 15)
    zone: str | None = None
    for entry in search:
        if entry.startswith("svc.") and len(entry) > 4:
            zone = entry[4:]
            break
    namespace: str | None = None
    if zone is not None:
        suffix = f".svc.{zone}"
        for entry in search:
            head = entry[: -len(suffix)] if entry.endswith(suffix) else None
            if head and _LABEL.match(head):
                namespace = head
                break
    return ResolvConf(
        nameservers=tuple(nameservers),
        search=tuple(search),
        ndots=ndots,
        namespace=namespace,
        cluster_domain=zone,
    )
