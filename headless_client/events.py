"""What a live service tells its subscribers: one event type, many kinds. Pure values.

Every change a service sees is one :class:`ServiceEvent`: membership (a pod added,
removed, or moved to a new address), health (ejected, returned, the panic rule starting
or ending), refreshes (failed with the error, recovered) and routing (the leader map or
the named primary changed), plus ``changed``, the whole view before and after (what
0.1.0's ``subscribe(callback(old, new))`` receives). :func:`membership_events` computes
the membership kinds from two views.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, get_args

from .endpoints import Endpoint, EndpointSet

__all__ = ["EVENT_KINDS", "Event", "EventKind", "ServiceEvent", "membership_events"]

#: What happened; the order of the kinds is the order a service publishes them after one refresh.
EventKind = Literal[
    "changed",
    "added",
    "removed",
    "moved",
    "ejected",
    "returned",
    "panic_started",
    "panic_ended",
    "refresh_failed",
    "refresh_recovered",
    "routing_changed",
]

#: Every kind, in that order (read from ``EventKind`` so the two cannot differ).
EVENT_KINDS: Final[tuple[EventKind, ...]] = get_args(EventKind)


@dataclass(frozen=True, slots=True)
class ServiceEvent:
    """One thing a service saw.

    Attributes:
        kind: What happened (see :data:`EventKind`):

            * ``changed``: the view changed; *old* and *new* are the whole views;
            * ``added`` / ``removed``: a pod (identity) came or went; *endpoint* is it;
            * ``moved``: a pod kept its name and got a new address; *previous* is the
              old endpoint, *endpoint* the new one;
            * ``ejected`` / ``returned``: passive health took *endpoint* out of the
              usable set or gave it back;
            * ``panic_started`` / ``panic_ended``: too many pods were ejected, so every
              pod is used again (the panic rule), or no longer;
            * ``refresh_failed``: a resolution failed; *error* says why (the view is kept);
            * ``refresh_recovered``: a resolution succeeded after failures;
            * ``routing_changed``: a routing input outside DNS changed (a leader map, a
              named primary).
        service: The service's FQDN.
        at: When, on the service's clock (monotonic seconds).
        endpoint: The endpoint concerned, if any.
        previous: For ``moved``: the endpoint before.
        old: For ``changed``: the view before.
        new: For ``changed``: the view after.
        error: For ``refresh_failed``: the error.
        detail: A one-line description, for logs.
    """

    kind: EventKind
    service: str
    at: float
    endpoint: Endpoint | None = None
    previous: Endpoint | None = None
    old: EndpointSet | None = None
    new: EndpointSet | None = None
    error: BaseException | None = None
    detail: str = ""


#: 0.1.0-era name of the event type.
Event: TypeAlias = ServiceEvent


def membership_events(service: str, at: float, old: EndpointSet, new: EndpointSet) -> Iterator[ServiceEvent]:
    """``added``, ``removed`` and ``moved`` events between two views, by pod identity (a
    dual-stack pod is one pod; its first endpoint in set order speaks for it)."""
    before = _firsts(old)
    after = _firsts(new)
    for identity, endpoint in after.items():
        was = before.get(identity)
        if was is None:
            yield ServiceEvent("added", service, at, endpoint=endpoint, detail=f"{endpoint} added")
        elif was.address != endpoint.address:
            yield ServiceEvent(
                "moved", service, at, endpoint=endpoint, previous=was,
                detail=f"{identity} moved from {was.address} to {endpoint.address}",
            )
    for identity, endpoint in before.items():
        if identity not in after:
            yield ServiceEvent("removed", service, at, endpoint=endpoint, detail=f"{endpoint} removed")


def _firsts(endpoints: EndpointSet) -> dict[str, Endpoint]:
    firsts: dict[str, Endpoint] = {}
    for endpoint in endpoints:
        firsts.setdefault(endpoint.identity, endpoint)
    return firsts
