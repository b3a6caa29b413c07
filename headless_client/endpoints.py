"""Values: one pod endpoint, and an immutable snapshot of all of them.

Pure: no I/O, no clock. An :class:`EndpointSet` is built once per DNS answer and then
only read, so it can be shared between threads without a lock and published by one
reference assignment.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import overload

from .errors import InvalidName

__all__ = ["Endpoint", "EndpointDiff", "EndpointSet"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One pod address and port.

    ``hostname`` is the pod's FQDN (no trailing dot) when DNS told us (SRV target or
    StatefulSet lookup), ``ordinal`` its StatefulSet ordinal when the hostname has one.
    ``priority``/``weight`` come from SRV; Kubernetes sets them to meaningless values
    (0 and ``floor(100/N)``), so no strategy balances by them. ``ttl`` is informative and
    not part of equality, since a caching server counts it down between answers.
    ``zone``, ``node`` and ``terminating`` come from an EndpointSlice source (DNS knows
    none of them): a terminating pod finishes the calls it has, but gets no new ones.
    So do ``pod`` (the name of the pod behind the endpoint, the slice's ``targetRef``) and
    ``zone_hints`` (the zones topology-aware routing assigns it to, ``hints.forZones``).
    """

    address: str
    port: int
    hostname: str | None = None
    ordinal: int | None = None
    # Not part of equality: CoreDNS writes weight = floor(100/N), so every scale would make
    # every endpoint look new; like ttl, they describe the answer, not the pod.
    priority: int = field(default=0, compare=False)
    weight: int = field(default=0, compare=False)
    ttl: int | None = field(default=None, compare=False)
    # From the Kubernetes API (EndpointSlices), not DNS: where the pod runs, and whether it
    # is shutting down. A pod that starts terminating is a change of the view.
    zone: str | None = None
    node: str | None = None
    terminating: bool = False
    pod: str | None = None
    zone_hints: tuple[str, ...] = ()
    # The stable name of this endpoint: pod hostname when known (a restarted pod with a
    # new IP keeps it), else address:port. Sticky hashing and health state key on it.
    identity: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.address, str):
            raise InvalidName(f"address must be a str, not {type(self.address).__name__}: {self.address!r}")
        try:
            ip = ipaddress.ip_address(self.address)
        except ValueError:
            raise InvalidName(f"address {self.address!r} is not an IP address") from None
        if str(ip) != self.address:
            object.__setattr__(self, "address", str(ip))
        port = self.port
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidName(f"port must be an int in 0..65535: {port!r}")
        if self.hostname is not None:
            if not isinstance(self.hostname, str) or not self.hostname.strip("."):
                raise InvalidName(f"hostname must be a non-empty str: {self.hostname!r}")
            folded = self.hostname.lower().rstrip(".")
            if folded != self.hostname:
                object.__setattr__(self, "hostname", folded)
        if self.ordinal is not None and (
            isinstance(self.ordinal, bool) or not isinstance(self.ordinal, int) or self.ordinal < 0
        ):
            raise InvalidName(f"ordinal must be an int >= 0 or None: {self.ordinal!r}")
        if not isinstance(self.zone_hints, tuple):
            if isinstance(self.zone_hints, str):
                raise InvalidName(f"zone_hints must be a tuple of zone names, not a str: {self.zone_hints!r}")
            object.__setattr__(self, "zone_hints", tuple(self.zone_hints))
        if self.hostname is not None:
            identity = f"{self.hostname}:{port}"
        elif ip.version == 6:
            identity = f"[{self.address}]:{port}"
        else:
            identity = f"{self.address}:{port}"
        object.__setattr__(self, "identity", identity)

    @property
    def family(self) -> int:
        """4 or 6."""
        return 6 if ":" in self.address else 4

    @property
    def server_name(self) -> str | None:
        """The name to verify in TLS: the pod FQDN, when known."""
        return self.hostname

    def __str__(self) -> str:
        where = f"[{self.address}]:{self.port}" if self.family == 6 else f"{self.address}:{self.port}"
        return f"{self.hostname} ({where})" if self.hostname else where


def _sort_key(ep: Endpoint) -> tuple[bool, int, str, int, int, int]:
    ip = ipaddress.ip_address(ep.address)
    return (
        ep.ordinal is None,
        ep.ordinal if ep.ordinal is not None else 0,
        ep.hostname or "",
        ip.version,
        int(ip),
        ep.port,
    )


@dataclass(frozen=True, slots=True)
class EndpointDiff:
    """What changed between two snapshots (``old.diff(new)``)."""

    added: tuple[Endpoint, ...]
    removed: tuple[Endpoint, ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


class EndpointSet:
    """An immutable, deterministically ordered set of endpoints.

    The order (by ordinal, then hostname, then address, then port) never depends on the
    order of the DNS answer, so two resolutions of the same state compare equal and
    strategies see the same sequence in every process. Equality ignores the metadata
    (``ttl``, ``name``) and is cheap: a cached hash is compared before the tuples.
    """

    __slots__ = ("_by_identity", "_by_ordinal", "_endpoints", "_hash", "name", "ttl")

    _endpoints: tuple[Endpoint, ...]
    _hash: int
    _by_ordinal: dict[int, Endpoint] | None
    _by_identity: dict[str, Endpoint] | None
    name: str | None
    ttl: int | None

    def __init__(
        self,
        endpoints: Iterable[Endpoint] = (),
        *,
        name: str | None = None,
        ttl: int | None = None,
    ) -> None:
        eps = list(endpoints)
        for ep in eps:
            if not isinstance(ep, Endpoint):
                raise TypeError(f"EndpointSet takes Endpoint objects, not {type(ep).__name__}: {ep!r}")
        # dict.fromkeys drops duplicates (an address seen in SRV glue and in A) keeping order.
        ordered = tuple(dict.fromkeys(sorted(eps, key=_sort_key)))
        object.__setattr__(self, "_endpoints", ordered)
        object.__setattr__(self, "_hash", hash(ordered))
        object.__setattr__(self, "_by_ordinal", None)
        object.__setattr__(self, "_by_identity", None)
        object.__setattr__(self, "name", name)
        if ttl is None and ordered:
            ttls = [ep.ttl for ep in ordered if ep.ttl is not None]
            ttl = min(ttls) if ttls else None
        object.__setattr__(self, "ttl", ttl)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"EndpointSet is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"EndpointSet is immutable; cannot delete {name!r}")

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The endpoints, in the set's deterministic order."""
        return self._endpoints

    def __len__(self) -> int:
        return len(self._endpoints)

    def __bool__(self) -> bool:
        return bool(self._endpoints)

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self._endpoints)

    @overload
    def __getitem__(self, index: int) -> Endpoint: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Endpoint, ...]: ...
    def __getitem__(self, index: int | slice) -> Endpoint | tuple[Endpoint, ...]:
        return self._endpoints[index]

    def __contains__(self, item: object) -> bool:
        return item in self._endpoints

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, EndpointSet):
            return NotImplemented
        return self._hash == other._hash and self._endpoints == other._endpoints

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        inner = ", ".join(str(ep) for ep in self._endpoints[:5])
        more = f", ... {len(self._endpoints) - 5} more" if len(self._endpoints) > 5 else ""
        return f"EndpointSet({self.name or ''}[{inner}{more}])"

    def _ordinal_index(self) -> dict[int, Endpoint]:
        index = self._by_ordinal
        if index is None:
            index = {}
            for ep in self._endpoints:
                if ep.ordinal is not None:
                    index.setdefault(ep.ordinal, ep)
            # Benign race: two threads may both build it; both results are equal.
            object.__setattr__(self, "_by_ordinal", index)
        return index

    def by_ordinal(self, ordinal: int) -> Endpoint | None:
        """The endpoint of StatefulSet pod *ordinal*, or ``None``.

        A dual-stack pod has one endpoint per address; the first in set order
        (IPv4 before IPv6) is returned.
        """
        return self._ordinal_index().get(ordinal)

    def by_hostname(self, hostname: str) -> Endpoint | None:
        """The first endpoint whose pod hostname is *hostname* (FQDN or first label)."""
        wanted = hostname.lower().rstrip(".")
        for ep in self._endpoints:
            if ep.hostname is not None and (
                ep.hostname == wanted or ep.hostname.split(".", 1)[0] == wanted
            ):
                return ep
        return None

    def by_identity(self, identity: str) -> Endpoint | None:
        """The endpoint with this :attr:`Endpoint.identity`, or ``None``."""
        index = self._by_identity
        if index is None:
            index = {}
            for ep in self._endpoints:
                index.setdefault(ep.identity, ep)
            object.__setattr__(self, "_by_identity", index)
        return index.get(identity)

    @property
    def ordinals(self) -> tuple[int, ...]:
        """The distinct ordinals present, ascending."""
        return tuple(sorted(self._ordinal_index()))

    def diff(self, other: EndpointSet) -> EndpointDiff:
        """What changes going from this set to *other*: ``old.diff(new)``."""
        mine = set(self._endpoints)
        theirs = set(other._endpoints)
        return EndpointDiff(
            added=tuple(ep for ep in other._endpoints if ep not in mine),
            removed=tuple(ep for ep in self._endpoints if ep not in theirs),
        )

    def without(self, excluded: Iterable[Endpoint]) -> EndpointSet:
        """A new set without *excluded* (same metadata)."""
        drop = set(excluded)
        return EndpointSet(
            (ep for ep in self._endpoints if ep not in drop), name=self.name, ttl=self.ttl
        )
