"""EndpointSlice JSON to endpoints: conditions, hostnames, ports, merging of slices."""

from __future__ import annotations

from typing import Any

import pytest

from headless_client.contrib.kubernetes import build_endpoints, parse_slice
from headless_client.contrib.kubernetes.slices import Slice, dashed
from headless_client.errors import ServiceNotFound


def slice_json(name: str, endpoints: list[dict[str, Any]], *, ports: list[dict[str, Any]] | None = None,
               family: str = "IPv4") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": family,
        "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }


def ep(address: str, **fields: Any) -> dict[str, Any]:
    conditions = {k: fields.pop(k) for k in ("ready", "serving", "terminating") if k in fields}
    return {"addresses": [address], "conditions": conditions, **fields}


def build(*slices: dict[str, Any], port: int | str = "http", **options: Any) -> list[tuple[str, int, str | None, int | None, bool]]:
    parsed = [s for s in (parse_slice(x) for x in slices) if s is not None]
    eps = build_endpoints(parsed, service="web", namespace="prod", cluster_domain="cluster.local", port=port, **options)
    return [(e.address, e.port, e.hostname, e.ordinal, e.terminating) for e in eps]


def test_every_slice_is_merged() -> None:
    """Endpoints of all slices of the Service are in the set, whichever changed last."""
    a = slice_json("web-a", [ep("10.0.0.1", hostname="web-0")])
    b = slice_json("web-b", [ep("10.0.0.2", hostname="web-1")])
    assert [e[3] for e in build(a, b)] == [0, 1]


def test_conditions_ready_serving_terminating() -> None:
    """Ready: in; terminating but serving: in, marked; not ready (starting) or not serving: out."""
    s = slice_json("web-a", [
        ep("10.0.0.1", hostname="web-0", ready=True),
        ep("10.0.0.2", hostname="web-1", ready=False, serving=True, terminating=True),
        ep("10.0.0.3", hostname="web-2", ready=False, serving=False, terminating=True),
        ep("10.0.0.4", hostname="web-3", ready=False),
        ep("10.0.0.5", hostname="web-4"),  # no conditions: ready
    ])
    assert [(e[3], e[4]) for e in build(s)] == [(0, False), (1, True), (4, False)]
    assert [e[3] for e in build(s, terminating=False)] == [0, 4]


def test_published_not_ready_terminating_pod_is_marked() -> None:
    """publishNotReadyAddresses keeps ready true on a terminating pod: still marked terminating."""
    s = slice_json("web-a", [ep("10.0.0.1", hostname="web-0", ready=True, terminating=True)])
    assert build(s)[0][4] is True


def test_hostnames_ordinals_and_generated_names() -> None:
    """A hostname gives the pod FQDN and ordinal; none gives CoreDNS's dashed name, no ordinal."""
    s = slice_json("web-a", [ep("10.0.0.1", hostname="web-0"), ep("10.0.0.2", hostname="custom")])
    v6 = slice_json("web-b", [ep("fd00::a")], family="IPv6")
    assert build(s, v6) == [
        ("10.0.0.1", 8080, "web-0.web.prod.svc.cluster.local", 0, False),
        ("10.0.0.2", 8080, "custom.web.prod.svc.cluster.local", None, False),
        ("fd00::a", 8080, "fd00--a.web.prod.svc.cluster.local", None, False),
    ]
    assert dashed("::1") == "--1" and dashed("fd00::") == "fd00--0"


def test_zone_node_pod_and_hints_are_carried() -> None:
    """zone, nodeName, targetRef and hints.forZones reach the endpoint."""
    s = slice_json("web-a", [ep("10.0.0.1", hostname="web-0", zone="eu-1a", nodeName="n1",
                                targetRef={"kind": "Pod", "name": "web-0", "namespace": "prod"},
                                hints={"forZones": [{"name": "eu-1a"}, {"name": "eu-1b"}]})])
    parsed = parse_slice(s)
    assert parsed is not None
    (endpoint,) = build_endpoints([parsed], service="web", namespace="prod", cluster_domain="cluster.local", port=80)
    assert (endpoint.zone, endpoint.node, endpoint.pod, endpoint.zone_hints) == ("eu-1a", "n1", "web-0", ("eu-1a", "eu-1b"))


def test_named_port_per_slice_and_int_port() -> None:
    """A port name reads each slice's number; a number is used as given."""
    a = slice_json("web-a", [ep("10.0.0.1")], ports=[{"name": "http", "port": 8080}])
    b = slice_json("web-b", [ep("10.0.0.2")], ports=[{"name": "http", "port": 9090}])
    assert [e[1] for e in build(a, b)] == [8080, 9090]
    assert [e[1] for e in build(a, b, port=443)] == [443, 443]
    udp = slice_json("web-c", [ep("10.0.0.3")], ports=[{"name": "http", "port": 53, "protocol": "UDP"}])
    assert [e[1] for e in build(udp, protocol="udp")] == [53]


def test_missing_port_name_and_missing_service_are_not_found() -> None:
    """No slice: no such Service; slices without the port name: the message lists theirs."""
    with pytest.raises(ServiceNotFound, match="no EndpointSlices for web.prod.svc.cluster.local"):
        build()
    with pytest.raises(ServiceNotFound, match=r"no port named 'grpc' \(TCP\); its slices have: http/TCP"):
        build(slice_json("web-a", [ep("10.0.0.1")]), port="grpc")
    assert build(slice_json("web-a", [], ports=[]), port="grpc") == []


def test_same_address_in_two_slices_prefers_the_serving_entry() -> None:
    """While the controller moves an endpoint it may be in two slices: one endpoint results."""
    a = slice_json("web-a", [ep("10.0.0.1", hostname="web-0", ready=False, serving=True, terminating=True)])
    b = slice_json("web-b", [ep("10.0.0.1", hostname="web-0", ready=True)])
    assert build(a, b) == [("10.0.0.1", 8080, "web-0.web.prod.svc.cluster.local", 0, False)]


def test_malformed_slices_are_refused_and_fqdn_slices_skipped() -> None:
    """A slice without name, addresses or with a bad port raises ValueError; FQDN gives None."""
    assert parse_slice({"metadata": {"name": "x"}, "addressType": "FQDN"}) is None
    for bad in (
        {"addressType": "IPv4"},
        {"metadata": {"name": "x"}, "addressType": "IPX"},
        slice_json("x", [{"addresses": []}]),
        slice_json("x", [], ports=[{"port": 70000}]),
    ):
        with pytest.raises(ValueError):
            parse_slice(bad)
    assert isinstance(parse_slice(slice_json("x", [])), Slice)
