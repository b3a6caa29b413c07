"""Builders of endpoint sets shared by the strategy tests."""

from __future__ import annotations

from collections.abc import Iterable

from headless_client.endpoints import Endpoint, EndpointSet


def pod(ordinal: int, *, address: str | None = None, port: int = 8080, sts: str = "web") -> Endpoint:
    """A StatefulSet pod endpoint ``<sts>-<ordinal>.<sts>.prod.svc.cluster.local``."""
    if address is None:
        address = f"10.{ordinal // 62500}.{(ordinal // 250) % 250}.{ordinal % 250 + 1}"
    return Endpoint(
        address,
        port,
        hostname=f"{sts}-{ordinal}.{sts}.prod.svc.cluster.local",
        ordinal=ordinal,
    )


def pods(ordinals: Iterable[int], *, name: str | None = "web.prod") -> EndpointSet:
    """A set of StatefulSet pods with the given ordinals."""
    return EndpointSet((pod(n) for n in ordinals), name=name)


def addresses(count: int, *, start: int = 0, name: str | None = "api.prod") -> EndpointSet:
    """A set of hostname-less endpoints (a Deployment behind a headless Service)."""
    return EndpointSet(
        (Endpoint(f"10.1.{i // 250}.{i % 250 + 1}", 9000) for i in range(start, start + count)),
        name=name,
    )


def dual_stack(ordinal: int) -> tuple[Endpoint, Endpoint]:
    """The IPv4 and IPv6 endpoints of one pod (same identity)."""
    host = f"web-{ordinal}.web.prod.svc.cluster.local"
    return (
        Endpoint(f"10.0.0.{ordinal + 1}", 8080, hostname=host, ordinal=ordinal),
        Endpoint(f"fd00::{ordinal + 1:x}", 8080, hostname=host, ordinal=ordinal),
    )
