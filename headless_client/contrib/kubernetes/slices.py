"""Pure: EndpointSlice JSON -> :class:`Slice` values -> one :class:`EndpointSet`.

A Service's endpoints are spread over several EndpointSlices (one per address family at
least, and a new one per 100 endpoints by default), so a view of the Service is the merge
of *every* slice that carries its ``kubernetes.io/service-name`` label, never the slice
that changed last (kuberesolver's bug #66).

What an endpoint becomes (the EndpointSlice API's rules):

- ``conditions.ready`` true (unset counts as true): a normal endpoint;
- not ready but ``terminating`` and ``serving`` (unset: the ready value): listed with
  ``terminating=True`` so calls in flight may finish while new work goes elsewhere;
- otherwise (starting, failing its probe): left out, as DNS leaves it out;
- ``hostname`` (set only under the pod's governing Service) -> the pod FQDN
  ``<hostname>.<svc>.<ns>.svc.<domain>`` and its StatefulSet ordinal; without one, the
  dashed-address name CoreDNS answers for it (``10-244-1-20.<svc>...``), no ordinal;
- ``zone``, ``nodeName``, ``targetRef.name`` (the pod), ``hints.forZones`` carried over;
- a named port resolves per slice (pods of one Service may use different numbers for the
  same name), an ``int`` port is used as given; only the first address of an endpoint is
  used, as the API tells consumers to.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ...endpoints import Endpoint, EndpointSet
from ...errors import InvalidName, ServiceNotFound
from ...names import try_parse_pod_fqdn

__all__ = ["SERVICE_NAME_LABEL", "Slice", "SliceEndpoint", "build_endpoints", "parse_slice"]

log = logging.getLogger("headless_client.contrib.kubernetes")

#: The label the EndpointSlice controller puts on every slice of a Service.
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"


@dataclass(frozen=True, slots=True)
class SliceEndpoint:
    """One endpoint of a slice, as the API wrote it."""

    address: str
    hostname: str | None
    ready: bool
    serving: bool
    terminating: bool
    zone: str | None
    node: str | None
    pod: str | None
    zone_hints: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Slice:
    """One EndpointSlice: its name, address family, ports ``(name, port, protocol)`` and
    endpoints."""

    name: str
    family: int
    ports: tuple[tuple[str, int, str], ...]
    endpoints: tuple[SliceEndpoint, ...]


def parse_slice(obj: Mapping[str, Any]) -> Slice | None:
    """A slice from its JSON; None for an ``FQDN`` slice (no addresses to dial).

    Raises:
        ValueError: the object is not a well-formed EndpointSlice (the message says where).
    """
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        raise ValueError("an EndpointSlice without metadata.name")
    name = meta["name"]
    address_type = obj.get("addressType")
    if address_type not in ("IPv4", "IPv6"):
        if address_type == "FQDN":
            return None
        raise ValueError(f"EndpointSlice {name!r} has addressType {address_type!r}")
    ports: list[tuple[str, int, str]] = []
    for port in obj.get("ports") or ():
        if not isinstance(port, Mapping):
            raise ValueError(f"EndpointSlice {name!r} has a port that is not an object: {port!r}")
        number = port.get("port")
        if number is None:
            continue  # "all ports": nothing to dial by name
        if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 65536:
            raise ValueError(f"EndpointSlice {name!r} has a bad port {number!r}")
        ports.append((str(port.get("name") or ""), number, str(port.get("protocol") or "TCP").upper()))
    endpoints = []
    for raw in obj.get("endpoints") or ():
        if not isinstance(raw, Mapping):
            raise ValueError(f"EndpointSlice {name!r} has an endpoint that is not an object")
        endpoints.append(_endpoint(raw, name))
    return Slice(name, 6 if address_type == "IPv6" else 4, tuple(ports), tuple(endpoints))


def _endpoint(raw: Mapping[str, Any], slice_name: str) -> SliceEndpoint:
    addresses = raw.get("addresses")
    if not isinstance(addresses, list) or not addresses or not isinstance(addresses[0], str):
        raise ValueError(f"EndpointSlice {slice_name!r} has an endpoint without addresses")
    conditions = raw.get("conditions") or {}
    ready = conditions.get("ready") is not False  # unset: ready (the API's rule)
    serving_value = conditions.get("serving")
    serving = ready if serving_value is None else serving_value is True
    hints = raw.get("hints") or {}
    zone_hints = tuple(
        str(h["name"]) for h in (hints.get("forZones") or ()) if isinstance(h, Mapping) and h.get("name")
    )
    target = raw.get("targetRef") or {}
    hostname = raw.get("hostname")
    return SliceEndpoint(
        address=addresses[0],
        hostname=hostname if isinstance(hostname, str) and hostname else None,
        ready=ready,
        serving=serving,
        terminating=conditions.get("terminating") is True,
        zone=_text(raw.get("zone")),
        node=_text(raw.get("nodeName")),
        pod=_text(target.get("name")) if target.get("kind", "Pod") == "Pod" else None,
        zone_hints=zone_hints,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def dashed(address: str) -> str:
    """CoreDNS's name of an endpoint without a hostname: ``10-244-1-20``, ``fd00--a``."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return str(ip).replace(".", "-")
    label = ip.compressed.replace(":", "-")
    return label + "0" if label.endswith("-") else label


def build_endpoints(
    slices: Iterable[Slice],
    *,
    service: str,
    namespace: str,
    cluster_domain: str,
    port: int | str,
    protocol: str = "tcp",
    terminating: bool = True,
) -> EndpointSet:
    """The endpoints of one Service, merged from all its slices.

    Args:
        slices: every slice of the Service (the order does not matter).
        service: the Service's name (to name its pods).
        namespace: its namespace.
        cluster_domain: the cluster's DNS domain.
        port: a port name (resolved per slice) or a number (used as is).
        protocol: the port's protocol, for a port name (``tcp``, ``udp``, ``sctp``).
        terminating: list terminating endpoints that still serve (``terminating=True``).

    Raises:
        ServiceNotFound: there is no slice at all (no such Service, or no selector), or a
            port name no slice of a non-empty Service has.
    """
    fqdn = f"{service}.{namespace}.svc.{cluster_domain}"
    proto = protocol.upper()
    found: dict[tuple[str, int], Endpoint] = {}
    seen_slice = False
    named_port_missing: set[str] = set()
    for piece in slices:
        seen_slice = True
        if isinstance(port, str):
            numbers = [n for name, n, p in piece.ports if name == port and p == proto]
            if not numbers:
                if piece.endpoints:
                    named_port_missing.update(f"{name or '(unnamed)'}/{p}" for name, _, p in piece.ports)
                continue
            number = numbers[0]
        else:
            number = port
        for ep in piece.endpoints:
            ending = ep.terminating or not ep.ready
            if not ep.ready and not (terminating and ep.terminating and ep.serving):
                continue
            endpoint = _make(ep, number, fqdn, ending)
            if endpoint is None:
                continue
            key = (endpoint.address, number)
            old = found.get(key)
            # The same address in two slices (the controller moving it): a serving entry wins.
            if old is None or (old.terminating and not endpoint.terminating):
                found[key] = endpoint
    if not seen_slice:
        raise ServiceNotFound(
            f"no EndpointSlices for {fqdn} (label {SERVICE_NAME_LABEL}={service} in namespace "
            f"{namespace!r}): no such Service, or it has no selector"
        )
    if isinstance(port, str) and not found and named_port_missing:
        raise ServiceNotFound(
            f"{fqdn} has no port named {port!r} ({proto}); its slices have: "
            f"{', '.join(sorted(named_port_missing)) or 'no named ports'}"
        )
    return EndpointSet(found.values(), name=fqdn)


def _make(ep: SliceEndpoint, port: int, fqdn: str, terminating: bool) -> Endpoint | None:
    label = ep.hostname or dashed(ep.address)
    hostname = f"{label}.{fqdn}"
    pod = None if ep.hostname is None else try_parse_pod_fqdn(hostname)
    try:
        return Endpoint(
            address=ep.address,
            port=port,
            hostname=hostname,
            ordinal=pod.ordinal if pod is not None else None,
            zone=ep.zone,
            node=ep.node,
            terminating=terminating,
            pod=ep.pod,
            zone_hints=ep.zone_hints,
        )
    except InvalidName as exc:
        log.warning("%s: ignoring an endpoint of its EndpointSlices: %s", fqdn, exc,
                    extra={"service": fqdn, "pod": hostname, "address": ep.address,
                           "reason": "slice_endpoint_dropped"})
        return None
