"""Consistent hashing of keys to pod identities, with optional bounded loads."""

from __future__ import annotations

import hashlib
import math
import struct
import threading
from array import array
from bisect import bisect_right
from itertools import compress, repeat
from operator import add, and_, lshift, mul, or_, rshift, sub
from typing import NamedTuple
from zlib import crc32

from .. import _forksafe
from ..endpoints import Endpoint, EndpointSet
from ..request import Request
from .base import SnapshotCache, UsableChoice, distinct_pods, no_endpoints, untried

__all__ = ["DEFAULT_VNODES", "Sticky", "key_hash"]

DEFAULT_VNODES = 256
"""Ring points per pod. A pod's share of the ring varies by about ``1/sqrt(vnodes)``
(6 %); over random 10-pod sets the busiest pod's share is at most ~1.15x the mean in
95 % of cases (1.21x with ketama's 160)."""

_MASK32 = 0xFFFFFFFF
# Knuth's multiplicative constant (2**32 / golden ratio, odd). Integer multiplication
# carries break CRC-32's linearity over GF(2), and push every input bit into the top bits
# that decide a key's place on the ring.
_MIX = 0x9E3779B1
# The ring is looked up through a table of 2**18 buckets (512 KiB): finer than the ring
# itself up to ~1600 pods at the default vnodes, so it adds little to the shares' spread.
_BUCKET_BITS = 18
_BUCKETS = 1 << _BUCKET_BITS
_SHIFT = 32 - _BUCKET_BITS
_POINTS_PER_DIGEST = 16  # one 64-byte BLAKE2b digest = sixteen 32-bit ring points
_UNPACK_DIGEST = struct.Struct("<16I").unpack


def _key_bytes(key: object) -> bytes:
    """The bytes a key hashes as; the slow path for everything but plain str/bytes/int."""
    if isinstance(key, bool):
        # bool is an int, but True == 1 as a routing key is almost certainly a bug.
        raise TypeError(f"Sticky key must be str, bytes or int, not bool: {key!r}")
    if isinstance(key, str):
        # Lone surrogates cannot be UTF-8 encoded strictly; keep them routable.
        return str.encode(key, "utf-8", "surrogatepass")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    if isinstance(key, int):
        # int.__repr__, not str(): an IntEnum's str() changed between Python versions.
        return int.__repr__(key).encode("ascii")
    if key is None:
        raise TypeError("Sticky.pick needs a key (str, bytes or int), got None")
    raise TypeError(f"Sticky key must be str, bytes or int, not {type(key).__name__}: {key!r}")


def key_hash(key: object) -> int:
    """The 32-bit ring position of *key*, identical in every process and Python version.

    ``(crc32(data) * 0x9E3779B1) mod 2**32`` where *data* is the UTF-8 encoding of a
    ``str``, the bytes themselves, or the decimal digits of an ``int`` (so ``42`` and
    ``"42"`` are the same key). Built-in :func:`hash` is never used: it is salted per
    process.

    Raises:
        TypeError: *key* is not a ``str``, ``bytes``-like or ``int`` (``bool`` included).
    """
    return (crc32(_key_bytes(key)) * _MIX) & _MASK32


def _pod_points(identity: str, vnodes: int) -> list[int]:
    """Ring points of one pod: BLAKE2b-512 of ``identity#block``, as little-endian u32s."""
    data = identity.encode("utf-8")
    points: list[int] = []
    for block in range(-(-vnodes // _POINTS_PER_DIGEST)):
        digest = hashlib.blake2b(data + b"#%d" % block, digest_size=64).digest()
        points.extend(_UNPACK_DIGEST(digest))
    del points[vnodes:]
    return points


class _Ring(NamedTuple):
    table: array[int]  # bucket -> index into members; _BUCKETS entries
    members: tuple[Endpoint, ...]  # first endpoint of each distinct identity
    size: int  # len(members)
    # The table's runs (arcs), for the bounded-loads walk: first bucket and owner of each.
    run_starts: array[int]
    run_owners: array[int]


_EMPTY_RING = _Ring(array("H"), (), 0, array("I"), array("H"))


def _build_ring(endpoints: EndpointSet, vnodes: int) -> _Ring:
    members = distinct_pods(endpoints)
    if not members:
        return _EMPTY_RING
    # The ring is sampled at the starts of _BUCKETS equal buckets into a lookup table: a
    # position belongs to the first point strictly after it, and a key to the owner of
    # its bucket's start. The sample positions are fixed, whatever the set, so a change
    # of membership moves exactly the buckets whose start lies on an arc that changed
    # owner: only keys to or from the pod that came or went. A pick is then one index
    # instead of a binary search over up to 10**5 points.
    #
    # Every step below is a chain of C iterators: Python loops (or a point -> owner dict,
    # with its cache misses) over 256k points made up most of the build time.
    #
    # (point << 32 | member index), sorted: one fast integer sort, and when two pods draw
    # the same point (rare in 32 bits) the one first in set order wins; set order never
    # depends on the DNS answer's order.
    packed: list[int] = []
    for n, ep in enumerate(members):
        points = _pod_points(ep.identity, vnodes)
        packed.extend(map(or_, map(lshift, points, repeat(32)), repeat(n)))
    packed.sort()
    # Point i owns the bucket starts in [point(i-1), point(i)): ceil(point(i) / width) of
    # them lie below point(i), computed on the packed value (the low bits never carry).
    width = 1 << _SHIFT
    belows = list(map(rshift, map(add, packed, repeat((width - 1) << 32)), repeat(32 + _SHIFT)))
    starts = [0, *belows]
    runs = list(map(sub, belows, starts))
    code = "H" if len(members) <= 0xFFFF else "I"
    tags = [array(code, [n]).tobytes() for n in range(len(members))]
    owner_indices = list(map(and_, packed, repeat(_MASK32)))
    data = b"".join(map(mul, map(tags.__getitem__, owner_indices), runs))
    # Past the last point the ring wraps around to the first.
    data += tags[owner_indices[0]] * (_BUCKETS - belows[-1])
    table = array(code)
    table.frombytes(data)
    # Non-empty runs, in ring order (the wrap-around tail last).
    run_starts = array("I", compress(starts, runs))
    run_owners = array(code, compress(owner_indices, runs))
    if belows[-1] < _BUCKETS:
        run_starts.append(belows[-1])
        run_owners.append(owner_indices[0])
    return _Ring(table, members, len(members), run_starts, run_owners)


class Sticky(UsableChoice):
    """The same key goes to the same pod while the set is unchanged (consistent hashing).

    Keys are ``str``, ``bytes`` or ``int`` and hash with :func:`key_hash`; pods are placed
    on a ring by their :attr:`~headless_client.endpoints.Endpoint.identity` (pod hostname
    when DNS gave one, else ``address:port``), *vnodes* points each. The mapping
    therefore depends only on the key and the identities, so it is the same in every
    process and Python version, and a pod restarting with a new IP keeps its keys. Adding
    or removing one of N pods moves about 1/N of the keys (only those of the arcs that
    change owner). A dual-stack pod is one identity; its first endpoint is returned.

    The ring is built once per snapshot and sampled into a lookup table of 2**18 buckets
    at fixed positions (so sampling never moves a key between two unchanged pods); a pick
    is a CRC-32 of the key, one multiplication and two indexing operations. Building the
    ring costs about 0.3 ms per pod (0.3 s for 1000 pods) and 0.5 MiB of table plus 6
    bytes per ring point; :meth:`prepare` lets a refresher pay it before publishing.

    With *bounded_load* ``c`` (Mirrokni, Thorup and Zadimoghaddam, "Consistent hashing
    with bounded loads"), no pod takes more than ``ceil(c * (in_flight + 1) / pods)``
    requests in flight: a key whose pod is at the cap walks the ring clockwise to the next
    pod under it. Loads come from :meth:`started` / :meth:`finished`, which the service
    calls because this class implements :class:`~headless_client.strategies.LoadTracking`;
    without *bounded_load* both return at once. Under no load the mapping is the plain
    ring's. The walk costs one step per full pod passed, so a single key carrying most
    of the traffic makes picks slower (tens of microseconds over 1000 pods) but never
    overloads a pod.

    Args:
        bounded_load: The factor ``c >= 1`` (1.25 is Envoy's and HAProxy's usual), or
            ``None`` for plain consistent hashing.
        vnodes: Ring points per pod. More points even out the shares (the spread of a
            pod's share is about ``1/sqrt(vnodes)``) at the cost of memory and build time.

    Raises:
        ValueError: *bounded_load* is below 1 or *vnodes* below 1.
    """

    __slots__ = ("__weakref__", "_bound", "_cache", "_loads", "_lock", "_total", "_vnodes")

    def __init__(self, *, bounded_load: float | None = None, vnodes: int = DEFAULT_VNODES) -> None:
        if bounded_load is not None and not bounded_load >= 1.0:
            raise ValueError(f"bounded_load must be >= 1 (or None): {bounded_load!r}")
        if isinstance(vnodes, bool) or not isinstance(vnodes, int) or vnodes < 1:
            raise ValueError(f"vnodes must be an int >= 1: {vnodes!r}")
        self._bound = None if bounded_load is None else float(bounded_load)
        self._vnodes = vnodes
        self._lock = threading.Lock()
        # identity -> requests in flight; only positive counts are stored, so the dict
        # never outgrows the pods that are busy right now.
        self._loads: dict[str, int] = {}
        self._total = 0
        self._cache: SnapshotCache[_Ring] = SnapshotCache(self._build, _EMPTY_RING)
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def _build(self, endpoints: EndpointSet) -> _Ring:
        return _build_ring(endpoints, self._vnodes)

    @property
    def bounded_load(self) -> float | None:
        """The bounded-loads factor, or ``None``."""
        return self._bound

    def prepare(self, endpoints: EndpointSet) -> None:
        """Build the ring of *endpoints* now, so the first pick does not pay for it."""
        self._cache.derive(endpoints)

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        """Return the pod that owns *key*.

        Raises:
            TypeError: *key* is not a ``str``, ``bytes``-like or ``int`` (``None`` and
                ``bool`` included).
            NoEndpointsAvailable: *endpoints* is empty.
        """
        snap, ring = self._cache.current
        if snap is not endpoints:
            ring = self._cache.derive(endpoints)
        # Exact-type tests first: this is most of a pick's cost otherwise.
        kind = type(key)
        try:
            if kind is str:
                h = crc32(key.encode())  # type: ignore[union-attr]
            elif kind is bytes:
                h = crc32(key)  # type: ignore[arg-type]
            elif kind is int:
                h = crc32(str(key).encode())
            else:
                h = crc32(_key_bytes(key))
        except UnicodeEncodeError:
            h = crc32(_key_bytes(key))
        h = (h * _MIX) & _MASK32
        table, members = ring.table, ring.members
        try:
            owner = members[table[h >> _SHIFT]]
        except IndexError:
            raise no_endpoints(endpoints, self) from None
        bound = self._bound
        if bound is None:
            return owner
        return self._bounded(bound, ring, h >> _SHIFT, owner)

    def _bounded(self, bound: float, ring: _Ring, bucket: int, owner: Endpoint) -> Endpoint:
        loads = self._loads
        size = ring.size
        # The cap counts the request being placed, as in the paper, so it is never 0 and
        # size * cap > in_flight: some pod is always under it.
        cap = math.ceil(bound * (self._total + 1) / size - 1e-9)
        if loads.get(owner.identity, 0) < cap:
            return owner
        # Walk clockwise, arc by arc (not bucket by bucket: an arc of a 3-pod ring spans
        # hundreds of buckets), to the first pod under the cap.
        members, starts, run_owners = ring.members, ring.run_starts, ring.run_owners
        runs = len(starts)
        here = bisect_right(starts, bucket) - 1
        seen = {owner.identity}
        for step in range(1, runs):
            ep = members[run_owners[(here + step) % runs]]
            identity = ep.identity
            if identity in seen:
                continue
            if loads.get(identity, 0) < cap:
                return ep
            seen.add(identity)
            if len(seen) == size:
                break
        # Every pod at the cap can only happen while counts race with this pick; keep
        # the key's own pod rather than fail.
        return owner

    def started(self, endpoint: Endpoint) -> None:
        """Count one more request in flight to *endpoint*'s pod (bounded loads only)."""
        if self._bound is None:
            return
        identity = endpoint.identity
        with self._lock:
            self._loads[identity] = self._loads.get(identity, 0) + 1
            self._total += 1

    def finished(self, endpoint: Endpoint, *, latency: float | None = None, ok: bool = True) -> None:
        """Count one request less in flight to *endpoint*'s pod (bounded loads only).

        *latency* and *ok* are accepted for the :class:`LoadTracking` protocol and ignored.
        """
        if self._bound is None:
            return
        identity = endpoint.identity
        with self._lock:
            count = self._loads.get(identity, 0)
            if count <= 0:
                return  # finished without started: ignore rather than go negative
            if count == 1:
                del self._loads[identity]
            else:
                self._loads[identity] = count - 1
            self._total -= 1

    def load(self, endpoint: Endpoint) -> int:
        """Requests in flight to *endpoint*'s pod, as tracked (0 without bounded loads)."""
        return self._loads.get(endpoint.identity, 0)

    def choose(self, request: Request, usable: EndpointSet, snapshot: EndpointSet) -> Endpoint:
        """The usable pod owning ``request.key``; on a retry, its owner among the pods not
        tried yet (the key's next pod on their ring).

        Raises:
            TypeError: the key is missing or not a ``str``, ``bytes``-like or ``int``.
        """
        owner = self.pick(usable, request.key)
        if owner.identity not in request.exclude:
            return owner
        return self.pick(untried(request, usable, snapshot), request.key)


    def __repr__(self) -> str:
        return f"Sticky(bounded_load={self._bound!r}, vnodes={self._vnodes})"
