"""Values: one pod endpoint, and an immutable snapshot of all of them.

Pure: no I/O, no clock. An :class:`EndpointSet` is built once per DNS answer and then
only read, so it can be shared between threads without a lock and published by one
reference assignment.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import overload

from .errors import InvalidName

__all__ = ["Endpoint", "EndpointDiff", "EndpointSet"]


#: Address text -> (canonical text, sort key: the IP version byte then the packed
#: address). A pure memo, bounded: cleared when full. It spares the refresh of a large
#: service an ``ipaddress`` parse per endpoint, twice (construction and ordering).
_ADDRESSES: dict[str, tuple[str, bytes]] = {}
_ADDRESSES_MAX = 8192
_OCTETS = tuple(str(i) for i in range(256))


def _learn_address(text: str) -> tuple[str, bytes]:
    """Canonical text and sort key of the IP address *text* (not in the memo yet).

    Raises:
        InvalidName: *text* is not an IP address.
    """
    canonical = key = None
    if ":" not in text:
        # Dotted-quad text that reads back identically is canonical, and ipaddress
        # would parse it to the same value: no need for the slow parser.
        try:
            packed = socket.inet_pton(socket.AF_INET, text)
        except (OSError, ValueError):
            pass
        else:
            if ".".join([_OCTETS[octet] for octet in packed]) == text:
                canonical, key = text, b"\x04" + packed
    if canonical is None or key is None:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise InvalidName(f"address {text!r} is not an IP address") from None
        canonical, key = str(ip), bytes((ip.version,)) + ip.packed
    known = (canonical, key)
    if len(_ADDRESSES) >= _ADDRESSES_MAX:
        _ADDRESSES.clear()
    _ADDRESSES[text] = known
    _ADDRESSES[canonical] = known
    return known


@dataclass(frozen=True, slots=True, init=False)
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

    Raises:
        InvalidName: *address* is not an IP address, *port* not an int in 0..65535,
            *hostname* empty or not a str, *ordinal* not an int >= 0, *zone_hints* a
            str rather than a sequence of zone names.
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

    # Written out rather than generated: the generated __init__ of a frozen dataclass
    # sets each field through object.__setattr__, which made building the endpoints of
    # a 1000-pod answer cost more than reading it. The slots are set directly instead.
    def __init__(
        self,
        address: str,
        port: int,
        hostname: str | None = None,
        ordinal: int | None = None,
        priority: int = 0,
        weight: int = 0,
        ttl: int | None = None,
        zone: str | None = None,
        node: str | None = None,
        terminating: bool = False,
        pod: str | None = None,
        zone_hints: tuple[str, ...] = (),
    ) -> None:
        if not isinstance(address, str):
            raise InvalidName(f"address must be a str, not {type(address).__name__}: {address!r}")
        known = _ADDRESSES.get(address)
        if known is None:
            known = _learn_address(address)
        canonical = known[0]
        if canonical != address:
            address = canonical
        if (type(port) is not int or not 0 <= port <= 65535) and (
            isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535
        ):
            raise InvalidName(f"port must be an int in 0..65535: {port!r}")
        if hostname is not None:
            if not isinstance(hostname, str) or not hostname.strip("."):
                raise InvalidName(f"hostname must be a non-empty str: {hostname!r}")
            folded = hostname.lower().rstrip(".")
            if folded != hostname:
                hostname = folded
            identity = f"{hostname}:{port}"
        elif ":" in address:
            identity = f"[{address}]:{port}"
        else:
            identity = f"{address}:{port}"
        if ordinal is not None and (isinstance(ordinal, bool) or not isinstance(ordinal, int) or ordinal < 0):
            raise InvalidName(f"ordinal must be an int >= 0 or None: {ordinal!r}")
        if not isinstance(zone_hints, tuple):
            if isinstance(zone_hints, str):
                raise InvalidName(f"zone_hints must be a tuple of zone names, not a str: {zone_hints!r}")
            zone_hints = tuple(zone_hints)
        _set_address(self, address)
        _set_port(self, port)
        _set_hostname(self, hostname)
        _set_ordinal(self, ordinal)
        _set_priority(self, priority)
        _set_weight(self, weight)
        _set_ttl(self, ttl)
        _set_zone(self, zone)
        _set_node(self, node)
        _set_terminating(self, terminating)
        _set_pod(self, pod)
        _set_zone_hints(self, zone_hints)
        _set_identity(self, identity)

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


# The slot descriptors: setting through them skips the frozen __setattr__.
(
    _set_address,
    _set_port,
    _set_hostname,
    _set_ordinal,
    _set_priority,
    _set_weight,
    _set_ttl,
    _set_zone,
    _set_node,
    _set_terminating,
    _set_pod,
    _set_zone_hints,
    _set_identity,
) = (
    vars(Endpoint)[name].__set__
    for name in (
        "address",
        "port",
        "hostname",
        "ordinal",
        "priority",
        "weight",
        "ttl",
        "zone",
        "node",
        "terminating",
        "pod",
        "zone_hints",
        "identity",
    )
)


_new = object.__new__


def dns_endpoint(
    address: str,
    port: int,
    hostname: str | None,
    ordinal: int | None,
    priority: int,
    weight: int,
    ttl: int | None,
) -> Endpoint:
    """``Endpoint(address, port, hostname, ordinal, priority, weight, ttl)`` for values read
    from a DNS answer by this library, which already have the types and forms the
    constructor checks for (a port in 0..65535, a lower-case host name without the final
    dot, an ordinal >= 0): only the address is made canonical. Half the cost, for the
    thousand endpoints of a large answer.

    Raises:
        InvalidName: *address* is not an IP address.
    """
    known = _ADDRESSES.get(address)
    if known is None:
        known = _learn_address(address)
    address = known[0]
    if hostname is not None:
        identity = f"{hostname}:{port}"
    elif ":" in address:
        identity = f"[{address}]:{port}"
    else:
        identity = f"{address}:{port}"
    ep: Endpoint = _new(Endpoint)
    _set_address(ep, address)
    _set_port(ep, port)
    _set_hostname(ep, hostname)
    _set_ordinal(ep, ordinal)
    _set_priority(ep, priority)
    _set_weight(ep, weight)
    _set_ttl(ep, ttl)
    _set_zone(ep, None)
    _set_node(ep, None)
    _set_terminating(ep, False)
    _set_pod(ep, None)
    _set_zone_hints(ep, ())
    _set_identity(ep, identity)
    return ep


def _address_key(address: str) -> bytes:
    """The IP version byte then the packed address: compares as (version, int(ip))."""
    known = _ADDRESSES.get(address)
    if known is None:
        known = _learn_address(address)
    return known[1]


#: No ordinal (sorts last), no hostname.
_PLAIN = b"\x01\x00"
_port_bytes = struct.Struct("!H").pack


def _sort_key(ep: Endpoint) -> bytes:
    """The set order as one byte string: ordinal (none last), hostname, IP version,
    numeric address, port.

    Byte strings compare in one ``memcmp``, where tuples compared field by field made
    sorting a large set cost more than reading its DNS answer. Each part keeps its
    order: a flag then 8 big-endian octets for the ordinal; the hostname's UTF-8 (which
    orders as its code points) ended by NUL; the address key (fixed length per
    version); two octets of port.

    Raises:
        ValueError: an ordinal of 2**64 or more, a hostname holding NUL or a lone
            surrogate: the caller sorts with :func:`_tuple_key` instead.
    """
    known = _ADDRESSES.get(ep.address)
    if known is None:
        known = _learn_address(ep.address)
    ordinal = ep.ordinal
    hostname = ep.hostname
    if hostname is None:
        if ordinal is None:
            return _PLAIN + known[1] + _port_bytes(ep.port)
        host = b"\x00"
    elif "\x00" in hostname:
        raise ValueError(f"hostname {hostname!r} holds NUL")
    else:
        host = hostname.encode("utf-8") + b"\x00"
    head = b"\x01" if ordinal is None else b"\x00" + ordinal.to_bytes(8, "big")
    return b"".join((head, host, known[1], _port_bytes(ep.port)))


def _tuple_key(ep: Endpoint) -> tuple[bool, int, str, bytes, int]:
    """The set order as a tuple, for the endpoints :func:`_sort_key` cannot encode."""
    ordinal = ep.ordinal
    address = _address_key(ep.address)
    return (ordinal is None, 0 if ordinal is None else ordinal, ep.hostname or "", address, ep.port)


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
        try:
            keys: list[bytes] | list[tuple[bool, int, str, bytes, int]] = list(map(_sort_key, eps))
        except (ValueError, OverflowError, UnicodeError):
            keys = list(map(_tuple_key, eps))
        # Sorting indexes by key keeps the keys for the two uses below; sorted() is
        # stable, so endpoints with equal keys stay in input order as before.
        ordered = tuple(map(eps.__getitem__, sorted(range(len(eps)), key=keys.__getitem__)))
        distinct = frozenset(keys)
        if len(distinct) != len(eps):
            # Equal endpoints have equal keys: drop the repeats (an address seen in SRV
            # glue and in A), keeping the first.
            ordered = tuple(dict.fromkeys(ordered))
        object.__setattr__(self, "_endpoints", ordered)
        # Equal sets have equal endpoints, so equal keys: the keys' hash (cached in the
        # byte strings) serves as the set's, without hashing each endpoint again.
        object.__setattr__(self, "_hash", hash(distinct))
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
