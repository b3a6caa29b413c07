"""Consistent hashing of keys to pod identities, with optional bounded loads."""

from __future__ import annotations

import gc
import hashlib
import math
import struct
import threading
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from operator import add, and_, itemgetter, mul, rshift, sub
from typing import Any
from zlib import crc32

from .. import _forksafe
from ..endpoints import Endpoint, EndpointSet
from ..request import Request
from .base import (
    HotPath,
    HotPick,
    SnapshotCache,
    UsableChoice,
    distinct_pods,
    no_endpoints,
    overrides,
    untried,
)

__all__ = ["DEFAULT_VNODES", "Sticky", "key_hash"]

DEFAULT_VNODES = 256
"""Ring points per pod. A pod's share of the ring varies by about ``1/sqrt(vnodes)``
(6 %); over random 10-pod sets the busiest pod's share is at most ~1.15x the mean in
95 % of cases (1.21x with ketama's 160)."""

_MASK32 = 0xFFFFFFFF
# Knuth's multiplicative constant (2**32 / golden ratio, odd). Integer multiplication
# carries break CRC-32's linearity over GF(2), and push every input bit into the top bits
# that decide a key's place on the ring. (pick() spells it, _MASK32 and _SHIFT as
# literals: a constant costs less than a global there.)
_MIX = 0x9E3779B1
# The ring is looked up through a table of 2**18 buckets: finer than the ring itself up
# to ~1600 pods at the default vnodes, so it adds little to the shares' spread.
_BUCKET_BITS = 18
_BUCKETS = 1 << _BUCKET_BITS
_SHIFT = 32 - _BUCKET_BITS
_ROUND_UP = (1 << _SHIFT) - 1  # (point + _ROUND_UP) >> _SHIFT = buckets starting below point
_POINTS_PER_DIGEST = 16  # one 64-byte BLAKE2b digest = sixteen 32-bit ring points
_UNPACK_DIGEST = struct.Struct("<16I").unpack

# A full build sorts (point, slot) pairs packed exactly into floats, whose sort is about
# twice as fast as that of 53-bit ints: point * 2**21 + slot < 2**53.
_SLOT_BITS = 21
_SLOT_SCALE = float(1 << _SLOT_BITS)
_SLOT_MASK = (1 << _SLOT_BITS) - 1
_MAX_PODS = 1 << _SLOT_BITS

# Work is cut into steps of a millisecond or two; between two steps the builder sleeps
# 0.2 ms, long enough for a thread waiting for the GIL to wake and take it. (A bare
# release, as in sleep(0), is often taken back before the waiter has woken, and the
# waiter then waits out another switch interval, 5 ms; measured, 50 us still let that
# happen now and then on a busy machine.)
_STEP_POINTS = 2048  # ring points sorted or merged per step of a full build
_STEP_BUCKETS = 1 << 15  # table entries written per step of a small ring's build
_PAUSE = 200e-6


def _pause() -> None:
    time.sleep(_PAUSE)


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


@dataclass(frozen=True, slots=True)
class _Ring:
    """One snapshot's ring, sampled into a bucket table. Never changed once built.

    A bucket ``s`` belongs to the first ring point strictly above ``s << _SHIFT``
    (wrapping around past the last point); of two pods drawing the same point, the one
    first in set order. Pods are numbered by *slots* that stay with an identity from one
    snapshot's ring to the next, so an update rewrites only the buckets that change owner.
    """

    # bucket -> slot, as the shared int objects of _slot_ints. A tuple of ints: the
    # garbage collector stops tracking it after one look, so a quarter million entries
    # never lengthen a collection.
    table: tuple[int, ...]
    members: tuple[Endpoint, ...]  # slot -> first endpoint of its identity (free: any)
    size: int  # distinct pods
    points: array[int]  # the distinct ring points, ascending ("I")
    holders: array[int]  # slot owning each point (the winner of a tie)
    slots: dict[str, int]  # identity -> slot
    free: tuple[int, ...]  # unused slots below len(members), ascending
    shared: dict[int, tuple[int, ...]]  # point -> every slot that drew it, when several


_EMPTY_RING = _Ring((), (), 0, array("I"), array("H"), {}, (), {})

_slot_ints: tuple[int, ...] = tuple(range(1024))


def _slot_objects(count: int) -> tuple[int, ...]:
    """Canonical int objects for slots ``0..count-1``, so a table shares a few objects."""
    global _slot_ints
    ints = _slot_ints
    if len(ints) < count:
        ints = _slot_ints = (*ints, *range(len(ints), count))
    return ints


def _below(point: int) -> int:
    """How many bucket starts lie below *point* (its arc ends there)."""
    return (point + _ROUND_UP) >> _SHIFT


# -- full build -------------------------------------------------------------------------


def _full_build(pods: tuple[Endpoint, ...], vnodes: int) -> Generator[None, None, _Ring]:
    """Build the ring of *pods* (distinct identities, set order) from nothing, in steps.

    Slots are set indices here, so ties go to the lower slot. The points are sorted in
    chunks of pods, then merged one range of ring positions at a time: no single C call
    (a sort of 256k values takes tens of milliseconds) holds the GIL long.
    """
    count = len(pods)
    if not count:
        return _EMPTY_RING
    if count > _MAX_PODS:
        raise ValueError(f"Sticky supports at most {_MAX_PODS} pods, got {count}")
    ints = _slot_objects(count)
    # Ranges of ring positions merged one per step, each about _STEP_POINTS points.
    ranges = 1
    while ranges < 1 << 16 and count * vnodes // ranges > _STEP_POINTS:
        ranges <<= 1
    width = 1 << (32 - ranges.bit_length() + 1)
    bounds = [float(r * width) * _SLOT_SCALE for r in range(1, ranges)]
    # 1. Points of a few pods at a time, packed into floats; each chunk sorted and cut
    # at the range bounds.
    per_chunk = max(1, _STEP_POINTS // vnodes)
    chunks: list[list[float]] = []
    cuts: list[list[int]] = []
    for start in range(0, count, per_chunk):
        packed: list[float] = []
        for slot in range(start, min(count, start + per_chunk)):
            points = _pod_points(pods[slot].identity, vnodes)
            packed += map(float.__add__, map(float.__mul__, repeat(_SLOT_SCALE), points), repeat(float(slot)))
        packed.sort()
        chunks.append(packed)
        cuts.append([0, *map(bisect_left, repeat(packed), bounds), len(packed)])
        yield
    # 2. Merge range by range; each range appends its part of every array. A small ring
    # has long arcs, spelled out one list product per point; a large one has about one
    # bucket per point, expanded in C calls.
    long_arcs = count * vnodes * 8 <= _BUCKETS
    table: list[int] = []
    room = _STEP_BUCKETS  # entries still to append in this step (long arcs)
    points_out = array("I")
    holders_out = array("H" if count <= 0xFFFF else "I")
    shared: dict[int, tuple[int, ...]] = {}
    prev_below = 0
    for r in range(ranges):
        merged: list[float] = []
        for chunk, cut in zip(chunks, cuts, strict=True):
            merged += chunk[cut[r] : cut[r + 1]]
        if not merged:
            continue
        merged.sort()
        packed_ints = list(map(int, merged))
        points = list(map(rshift, packed_ints, repeat(_SLOT_BITS)))
        holders = list(map(and_, packed_ints, repeat(_SLOT_MASK)))
        if len(set(points)) != len(points):
            points, holders = _merge_ties(points, holders, shared)
        belows = list(map(rshift, map(add, points, repeat(_ROUND_UP)), repeat(_SHIFT)))
        runs = list(map(sub, belows, [prev_below, *belows[:-1]]))
        if long_arcs:
            for slot, run in zip(holders, runs, strict=True):
                while run:
                    part = min(run, room)
                    table += [ints[slot]] * part
                    run -= part
                    room -= part
                    if not room:
                        yield
                        room = _STEP_BUCKETS
        else:
            _expand(table, tuple(map(ints.__getitem__, holders)), runs)
        points_out.fromlist(points)
        holders_out.fromlist(holders)
        prev_below = belows[-1]
        yield
    # Freeing a quarter million floats at once would hold the GIL for milliseconds too.
    while chunks:
        del chunks[-16:]
        yield
    # Past the last point the ring wraps around to the first.
    table += [ints[holders_out[0]]] * (_BUCKETS - prev_below)
    yield
    frozen = tuple(table)
    del table
    yield from _untrack(frozen)
    slots = {ep.identity: slot for slot, ep in enumerate(pods)}
    return _Ring(frozen, pods, count, points_out, holders_out, slots, (), shared)


def _untrack(table: tuple[int, ...]) -> Iterator[None]:
    """Let a young collection see *table* now, in a step of the builder's own.

    A new tuple is tracked by the garbage collector until a collection finds it holds
    only ints and lets it go; that first look walks all 2**18 entries (about a
    millisecond). Left alone, it would happen in whichever thread next allocates.
    """
    yield
    if gc.isenabled() and gc.is_tracked(table):
        gc.collect(0)


_position_tags: tuple[bytes, ...] = ()


def _expand(table: list[int], owners: tuple[int, ...], runs: list[int]) -> None:
    """Append ``owners[i]`` *runs[i]* times to *table*, for every i, in C calls.

    The runs are mostly 0, 1 or 2 long: a repeat() per point would cost more than the
    table, and create as many objects for the garbage collector to chase. Instead the
    positions are spelled as bytes (a tag per position, multiplied by its run), read
    back as an array, and looked up all at once.
    """
    global _position_tags
    tags = _position_tags
    if len(tags) < len(owners):
        # Replaced, never extended in place: two builds may grow it at once.
        tags = _position_tags = (*tags, *(array("H", [i]).tobytes() for i in range(len(tags), len(owners))))
    positions = array("H")
    positions.frombytes(b"".join(map(mul, tags, runs)))
    if len(positions) > 1:
        table += itemgetter(*positions)(owners)
    elif positions:
        table.append(owners[positions[0]])


def _merge_ties(
    points: list[int], holders: list[int], shared: dict[int, tuple[int, ...]]
) -> tuple[list[int], list[int]]:
    """Collapse equal points (sorted, slots ascending within a point) to their winner.

    Records every point drawn by more than one pod in *shared*. A pod drawing the same
    point twice counts once.
    """
    out_points: list[int] = []
    out_holders: list[int] = []
    last = -1
    for point, slot in zip(points, holders, strict=True):
        if point != last:
            out_points.append(point)
            out_holders.append(slot)
            last = point
            continue
        group = shared.get(point, (out_holders[-1],))
        if slot not in group:
            shared[point] = (*group, slot)
    return out_points, out_holders


# -- incremental update -----------------------------------------------------------------


class _Update:
    """A ring being derived from the previous one: private copies, changed in place.

    Each pod that went takes its points off the ring, each pod that came puts its points
    on; either way only the arcs next to those points change owner, and :meth:`assign`
    rewrites exactly those buckets. The result equals a full build of the new set (the
    tests check it), so a rolling update never moves a key a full build would not.
    """

    def __init__(self, old: _Ring, pods: tuple[Endpoint, ...], vnodes: int) -> None:
        self.vnodes = vnodes
        # Shared with the old ring until changed: removals and additions build new
        # arrays anyway, and only a tie's new winner writes into holders in place.
        self.points = old.points
        self.holders = old.holders
        self._old_holders = old.holders
        self.table = list(old.table)
        self.shared = dict(old.shared)
        self.slots = dict(old.slots)
        self.free = list(old.free)
        self.members = list(old.members)
        # Position of each slot in the new set order, for ties; leaving pods rank last.
        self.position = {ep.identity: rank for rank, ep in enumerate(pods)}
        last = len(pods)
        self.rank = [last] * len(self.members)
        for identity, slot in self.slots.items():
            self.rank[slot] = self.position.get(identity, last)

    def own_holders(self) -> array[int]:
        """The holders array, copied first if it is still the old ring's."""
        if self.holders is self._old_holders:
            self.holders = self.holders[:]
        return self.holders

    def winner(self, contenders: Sequence[int]) -> int:
        """The slot among *contenders* first in the new set order."""
        return min(contenders, key=self.rank.__getitem__)

    def assign(self, indices: Iterable[int]) -> None:
        """Give the arc of each point at *indices* to its holder."""
        points, holders, table = self.points, self.holders, self.table
        ints = _slot_objects(len(self.members))
        wrap = (points[-1] + _ROUND_UP) >> _SHIFT  # buckets past it wrap to the first point
        for index in indices:
            slot = holders[index]
            owner = ints[slot]
            end = (points[index] + _ROUND_UP) >> _SHIFT
            if index:
                start = (points[index - 1] + _ROUND_UP) >> _SHIFT
            else:
                start = 0
                if wrap < _BUCKETS:
                    table[wrap:] = [owner] * (_BUCKETS - wrap)
            if end > start:
                table[start:end] = [owner] * (end - start)

    def remove(self, identity: str) -> Iterator[None]:
        """Take a pod's points off the ring; their arcs go to the points after them."""
        slot = self.slots.pop(identity)
        self.free.append(slot)
        self.free.sort()
        points, holders = self.points, self.holders
        own = sorted(set(_pod_points(identity, self.vnodes)))
        gone: list[int] = []  # indices of points no other pod drew
        rewon: list[tuple[int, int]] = []  # (point, new holder) of ties it held
        for point, index in zip(own, map(bisect_left, repeat(points), own), strict=True):
            contenders = self.shared.get(point)
            if contenders is None:
                gone.append(index)
                continue
            rest = tuple(s for s in contenders if s != slot)
            if len(rest) > 1:
                self.shared[point] = rest
            else:
                del self.shared[point]
            winner = self.winner(rest)
            if winner != holders[index]:
                rewon.append((point, winner))
        if gone:
            self.points, self.holders = _without(points, gone), _without(holders, gone)
            points, holders = self.points, self.holders
        if not points:
            return
        yield
        for point, winner in rewon:
            index = bisect_left(points, point)
            self.own_holders()[index] = winner
            self.assign((index,))
        # The k-th point taken off (ascending) was followed by what is now at index - k.
        size = len(points)
        self.assign(sorted({(index - k) % size for k, index in enumerate(gone)}))

    def add(self, ep: Endpoint) -> Iterator[None]:
        """Put a new pod's points on the ring; each takes the arc that ends at it."""
        if self.free:
            slot = self.free.pop(0)
            self.members[slot] = ep
            self.rank[slot] = self.position[ep.identity]
        else:
            slot = len(self.members)
            self.members.append(ep)
            self.rank.append(self.position[ep.identity])
        self.slots[ep.identity] = slot
        points, holders = self.points, self.holders
        own = sorted(set(_pod_points(ep.identity, self.vnodes)))
        size = len(points)
        at: list[int] = []  # where each point not on the ring yet goes in (old index)
        new: list[int] = []
        rewon: list[tuple[int, int]] = []
        for point, index in zip(own, map(bisect_left, repeat(points), own), strict=True):
            if index < size and points[index] == point:
                contenders = (*self.shared.get(point, (holders[index],)), slot)
                self.shared[point] = contenders
                winner = self.winner(contenders)
                if winner != holders[index]:
                    rewon.append((point, winner))
            else:
                at.append(index)
                new.append(point)
        if new:
            self.points, self.holders = _with(points, holders, at, new, slot)
            points, holders = self.points, self.holders
        yield
        for point, winner in rewon:
            index = bisect_left(points, point)
            self.own_holders()[index] = winner
            self.assign((index,))
        # The k-th point put on (ascending) went in before old index, now index + k.
        self.assign([index + k for k, index in enumerate(at)])

    def settle_ties(self) -> None:
        """Re-decide every tie by the final set order (a kept pod may have moved in it)."""
        points, holders = self.points, self.holders
        for point, contenders in self.shared.items():
            index = bisect_left(points, point)
            winner = self.winner(contenders)
            if winner != holders[index]:
                holders = self.own_holders()
                holders[index] = winner
                self.assign((index,))


# The two helpers below cut arrays into array slices, not memoryviews: arrays are not
# tracked by the garbage collector, and hundreds of live tracked objects would start a
# young collection that walks the freshly copied quarter-million-entry tables.


def _without(values: array[int], indices: list[int]) -> array[int]:
    """*values* less the entries at *indices* (ascending), as a new array."""
    pieces = []
    start = 0
    for index in indices:
        pieces.append(values[start:index])
        start = index + 1
    pieces.append(values[start:])
    out = array(values.typecode)
    out.frombytes(b"".join(pieces))  # one copy: frombytes per piece would regrow it
    return out


def _with(
    points: array[int], holders: array[int], at: list[int], new: list[int], slot: int
) -> tuple[array[int], array[int]]:
    """*points* and *holders* with each point of *new* inserted before old index *at*."""
    added = array(points.typecode, new)
    holder = array(holders.typecode, [slot])
    point_pieces: list[array[int]] = []
    holder_pieces: list[array[int]] = []
    start = 0
    for k, index in enumerate(at):
        point_pieces += (points[start:index], added[k : k + 1])
        holder_pieces += (holders[start:index], holder)
        start = index
    point_pieces.append(points[start:])
    holder_pieces.append(holders[start:])
    out_points = array(points.typecode)
    out_points.frombytes(b"".join(point_pieces))
    out_holders = array(holders.typecode)
    out_holders.frombytes(b"".join(holder_pieces))
    return out_points, out_holders


def _update(old: _Ring, pods: tuple[Endpoint, ...], vnodes: int) -> Generator[None, None, _Ring] | None:
    """Steps deriving the ring of *pods* from *old*, or ``None`` when a full build is cheaper."""
    if not old.size or not pods:
        return None
    slots = old.slots
    came = [ep for ep in pods if ep.identity not in slots]
    changes = len(came) + old.size - (len(pods) - len(came))
    # One pod costs an update about 1/100 of a full build of 1000 pods.
    if changes > max(2, len(pods) // 16):
        return None
    limit = 0xFFFF if old.holders.typecode == "H" else _MAX_PODS
    if len(old.members) + len(came) > limit:
        return None
    return _update_steps(old, pods, vnodes, came)


def _update_steps(
    old: _Ring, pods: tuple[Endpoint, ...], vnodes: int, came: list[Endpoint]
) -> Generator[None, None, _Ring]:
    kept = {ep.identity: ep for ep in pods}
    work = _Update(old, pods, vnodes)
    # The new snapshot's objects: a re-resolved pod is a new (equal) object, and a pick
    # returns the object of the snapshot it was given.
    for identity, slot in old.slots.items():
        ep = kept.get(identity)
        if ep is not None:
            work.members[slot] = ep
    yield  # copying the table is a step of its own
    for identity in [identity for identity in old.slots if identity not in kept]:
        yield from work.remove(identity)
        yield
    for ep in came:
        yield from work.add(ep)
        yield
    work.settle_ties()
    members = work.members
    for slot in work.free:
        members[slot] = pods[0]  # never read: no bucket holds a free slot
    table = tuple(work.table)
    work.table = []
    yield from _untrack(table)
    return _Ring(
        table,
        tuple(members),
        len(pods),
        work.points,
        work.holders,
        work.slots,
        tuple(work.free),
        work.shared,
    )


def _derive(last: list[_Ring], vnodes: int, endpoints: EndpointSet) -> _Ring:
    """The ring of *endpoints*: an update of ``last[0]`` if few pods differ, else built anew."""
    pods = distinct_pods(endpoints)
    steps = _update(last[0], pods, vnodes)
    if steps is None:
        steps = _full_build(pods, vnodes)
    ring = last[0] = _run(steps)
    return ring


def _build_ring(endpoints: EndpointSet, vnodes: int) -> _Ring:
    """The ring of *endpoints* built from nothing (in steps, pausing between them)."""
    return _run(_full_build(distinct_pods(endpoints), vnodes))


def _run(steps: Generator[None, None, _Ring]) -> _Ring:
    """Run *steps*, pausing between two so that waiting threads get the GIL."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            ring: _Ring = done.value
            return ring
        _pause()


class Sticky(UsableChoice):
    """The same key goes to the same pod while the set is unchanged (consistent hashing).

    Keys are ``str``, ``bytes`` or ``int`` and hash with :func:`key_hash`; pods are placed
    on a ring by their :attr:`~headless_client.endpoints.Endpoint.identity` (pod hostname
    when DNS gave one, else ``address:port``), *vnodes* points each. The mapping
    therefore depends only on the key and the identities, so it is the same in every
    process and Python version, and a pod restarting with a new IP keeps its keys. Adding
    or removing one of N pods moves about 1/N of the keys (only those of the arcs that
    change owner). A dual-stack pod is one identity; its first endpoint is returned.

    The ring is sampled into a lookup table of 2**18 buckets at fixed positions (so
    sampling never moves a key between two unchanged pods); a pick is a CRC-32 of the
    key, one multiplication and two indexing operations. The table of a new snapshot is
    derived from the previous one: only the arcs next to the points of the pods that
    came or went change owner, and only those buckets are rewritten, with exactly the
    result a full build would give. One pod of 1000 added, removed, ejected or returned
    costs a few milliseconds of CPU; a first build, or a change of more than 1/16 of the
    pods, builds from scratch (about 0.25 s for 1000 pods). Either way the work runs in
    steps of a millisecond or two with a short sleep between them, so a request thread
    never waits long for the GIL. A ring takes 2 MiB for the table (a tuple of small
    ints, which the garbage collector stops tracking) plus 6 bytes per ring point;
    :meth:`prepare` lets a refresher build it before publishing.

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

    __slots__ = (
        "__weakref__", "_bound", "_cache", "_fast", "_last", "_loads", "_lock", "_total", "_vnodes"
    )

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
        # The last ring built, which the next one is derived from. The cache's builder
        # holds this list, not the instance: no reference cycle, so a dropped Sticky and
        # its rings (megabytes) go at once, not at the next full garbage collection.
        self._last: list[_Ring] = [_EMPTY_RING]
        self._cache: SnapshotCache[_Ring] = SnapshotCache(partial(_derive, self._last, vnodes), _EMPTY_RING)
        # (snapshot, its table, its members) for pick's fast path: the last set a pick
        # used. Never set with bounded loads, which always take the full path.
        self._fast: tuple[EndpointSet | None, tuple[int, ...], tuple[Endpoint, ...]] = (None, (), ())
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        # The parent's lock may have been held by another thread at the fork.
        self._lock = threading.Lock()

    def _build(self, endpoints: EndpointSet) -> _Ring:
        return _derive(self._last, self._vnodes, endpoints)

    def keeps_keys(self) -> bool:
        """``True`` without bounded loads (:class:`~headless_client.strategies.base.KeyAffinity`):
        with them, a key spills to another pod while its own is busy."""
        return self._bound is None

    @property
    def bounded_load(self) -> float | None:
        """The bounded-loads factor, or ``None``."""
        return self._bound

    def prepare(self, endpoints: EndpointSet) -> None:
        """Build the ring of *endpoints* now, so the first pick does not pay for it.

        The ring is derived from the last one when few pods changed, in short steps that
        leave the GIL to other threads in between.
        """
        self._cache.derive(endpoints)

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        """Return the pod that owns *key*.

        Raises:
            TypeError: *key* is not a ``str``, ``bytes``-like or ``int`` (``None`` and
                ``bool`` included).
            NoEndpointsAvailable: *endpoints* is empty.
        """
        # The hot path (the set of the last pick, a key of an exact built-in type, no
        # bounded loads) is a few expressions: bytecodes are most of a pick's cost. The
        # literals are _MIX, _MASK32 and _SHIFT.
        snap, table, members = self._fast
        if snap is endpoints and key.__class__ is str:
            try:
                return members[table[(crc32(key.encode()) * 0x9E3779B1 & 0xFFFFFFFF) >> 14]]
            except (UnicodeEncodeError, IndexError):
                pass
        elif snap is endpoints and key.__class__ is int:
            try:
                return members[table[(crc32(str(key).encode()) * 0x9E3779B1 & 0xFFFFFFFF) >> 14]]
            except IndexError:
                pass
        elif snap is endpoints and key.__class__ is bytes:
            try:
                return members[table[(crc32(key) * 0x9E3779B1 & 0xFFFFFFFF) >> 14]]
            except IndexError:
                pass
        return self._pick(endpoints, key)

    def _pick(self, endpoints: EndpointSet, key: object) -> Endpoint:
        """Every pick the fast path does not take: other key types, new sets, bounds."""
        kind = type(key)
        try:
            if kind is str:
                h = crc32(key.encode())  # type: ignore[attr-defined]
            elif kind is bytes:
                h = crc32(key)  # type: ignore[arg-type]
            elif kind is int:
                h = crc32(int.__repr__(key).encode())
            else:
                h = crc32(_key_bytes(key))
        except UnicodeEncodeError:
            h = crc32(_key_bytes(key))
        bucket = ((h * _MIX) & _MASK32) >> _SHIFT
        snap, ring = self._cache.current
        if snap is not endpoints:
            ring = self._cache.derive(endpoints)
        try:
            owner = ring.members[ring.table[bucket]]
        except IndexError:
            raise no_endpoints(endpoints, self) from None
        bound = self._bound
        if bound is None:
            if self._fast[0] is not endpoints:
                self._fast = (endpoints, ring.table, ring.members)
            return owner
        if not self._loads:  # nothing in flight: every pod is under any cap
            return owner
        return self._bounded(bound, ring, bucket, owner)

    def _bounded(self, bound: float, ring: _Ring, bucket: int, owner: Endpoint) -> Endpoint:
        loads = self._loads
        size = ring.size
        # The cap counts the request being placed, as in the paper, so it is never 0 and
        # size * cap > in_flight: some pod is always under it.
        cap = math.ceil(bound * (self._total + 1) / size - 1e-9)
        if loads.get(owner.identity, 0) < cap:
            return owner
        # Walk clockwise, point by point, to the first pod under the cap; a point whose
        # arc holds no bucket start is passed over (it owns no key), so the walk visits
        # the pods in the order of the table's arcs.
        points, holders, members = ring.points, ring.holders, ring.members
        count = len(points)
        here = bisect_right(points, bucket << _SHIFT) % count
        seen = {owner.identity}
        wraps = _below(points[-1]) < _BUCKETS
        for step in range(1, count):
            index = (here + step) % count
            end = _below(points[index])
            if index:
                if end == _below(points[index - 1]):
                    continue
            elif not end and not wraps:
                continue
            ep = members[holders[index]]
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

    def _hot_path(self) -> HotPath | None:
        """A service's ``pick(key)``: :func:`_hot_pick` over the usable set's table
        (not with bounded loads, which always take the full path)."""
        if self._bound is not None or overrides(self, Sticky):
            return None
        return _hot_pick, self._hot_state, ((), ())

    def _hot_state(
        self, usable: EndpointSet, snapshot: EndpointSet
    ) -> tuple[tuple[int, ...], tuple[Endpoint, ...]]:
        ring = self._cache.derive(usable)
        return ring.table, ring.members

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


def _hot_pick(hot: HotPick, key: object | None = None, **fields: Any) -> Endpoint:
    """A service's whole ``pick(key)`` with Sticky (see :class:`~.base.HotPick`): the
    fast path of :meth:`Sticky.pick`, over the table of the usable set."""
    if not fields:
        table, members = hot.state
        if key.__class__ is str:
            try:
                return members[table[(crc32(key.encode()) * 0x9E3779B1 & 0xFFFFFFFF) >> 14]]  # type: ignore[no-any-return]
            except (UnicodeEncodeError, IndexError):
                pass
        elif key.__class__ is int:
            try:
                return members[table[(crc32(str(key).encode()) * 0x9E3779B1 & 0xFFFFFFFF) >> 14]]  # type: ignore[no-any-return]
            except IndexError:
                pass
        elif key.__class__ is bytes:
            try:
                return members[table[(crc32(key) * 0x9E3779B1 & 0xFFFFFFFF) >> 14]]  # type: ignore[no-any-return]
            except IndexError:
                pass
    return hot.full(key, fields)
