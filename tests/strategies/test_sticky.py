"""Sticky: stable consistent hashing, minimal remapping, balance, bounded loads."""

from __future__ import annotations

import hashlib
import math
import os
import random
import subprocess
import sys
import zlib
from array import array
from bisect import bisect_right
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headless_client.endpoints import Endpoint, EndpointSet
from headless_client.errors import NoEndpointsAvailable
from headless_client.request import Request
from headless_client.strategies import LoadTracking, Sticky, key_hash
from headless_client.strategies import sticky as sticky_module
from headless_client.strategies.base import distinct_pods

from ._helpers import addresses, dual_stack, pod, pods

KEYS = [f"user-{i}" for i in range(10_000)]

# Pinned mapping over web-0..web-9: changing the hash recipe would move every user's
# keys on upgrade, so it must be a deliberate, changelogged decision.
GOLDEN = {
    "user-1": 5,
    "user-2": 7,
    "alice": 0,
    "bob": 9,
    "": 8,
    "ß": 4,
    0: 9,
    42: 6,
    -7: 8,
    b"\x00\xff": 1,
}

# SHA-256 of the whole bucket -> ordinal table over web-0..web-99 (2**18 little-endian
# u16), as release 0.1.0 built it: every key's pod, not just a sample, is pinned.
TABLE_DIGEST_WEB_0_99 = "5aded8709f7852e2ec695560b2630a026f450730d9b699ef6d520c3e2cd11896"

SUBPROCESS_CODE = """
from headless_client.endpoints import Endpoint, EndpointSet
from headless_client.strategies import Sticky
eps = EndpointSet(
    Endpoint(f"10.0.0.{i + 1}", 8080, hostname=f"web-{i}.web.prod.svc.cluster.local", ordinal=i)
    for i in range(10)
)
s = Sticky()
print(",".join(str(s.pick(eps, f"key-{i}").ordinal) for i in range(1000)))
"""


def owners(strategy: Sticky, eps: EndpointSet, keys: list[str]) -> list[str]:
    return [strategy.pick(eps, k).identity for k in keys]


def ring_of(strategy: Sticky, eps: EndpointSet) -> sticky_module._Ring:
    """The ring *strategy* uses for *eps* (built now if need be)."""
    strategy.prepare(eps)
    return strategy._cache.derive(eps)


def from_scratch(eps: EndpointSet, vnodes: int = sticky_module.DEFAULT_VNODES) -> sticky_module._Ring:
    """A full build of *eps*, with no earlier ring to start from."""
    return sticky_module._run(sticky_module._full_build(distinct_pods(eps), vnodes))


def by_bucket(ring: sticky_module._Ring) -> list[Endpoint]:
    """The endpoint each of the 2**18 buckets sends its keys to."""
    return list(map(ring.members.__getitem__, ring.table))


def canonical(ring: sticky_module._Ring) -> tuple[object, ...]:
    """Everything a ring decides, by endpoint (slot numbers differ between build paths).

    Both rings compared hold the same snapshot's endpoint objects, so the big lists
    compare by identity, quickly.
    """
    who = [ep.identity for ep in ring.members]
    return (
        by_bucket(ring),
        list(ring.points),
        [who[slot] for slot in ring.holders],
        {point: sorted(who[slot] for slot in slots) for point, slots in ring.shared.items()},
        ring.size,
        sorted(ring.slots),
    )


def recipe_owner_table(eps: EndpointSet, vnodes: int) -> list[str]:
    """The documented recipe, spelled out: bucket s belongs to the first ring point above
    ``s << 14``, wrapping around; a point drawn by several pods goes to the first in set order."""
    members = distinct_pods(eps)
    drawn = sorted(
        (point, rank)
        for rank, ep in enumerate(members)
        for point in set(sticky_module._pod_points(ep.identity, vnodes))
    )
    points = [point for point, _ in drawn]
    firsts = {}
    for point, rank in drawn:
        firsts.setdefault(point, rank)
    table = []
    for bucket in range(sticky_module._BUCKETS):
        index = bisect_right(points, bucket << sticky_module._SHIFT)
        point = points[index % len(points)]
        table.append(members[firsts[point]].identity)
    return table


def test_key_hash_recipe() -> None:
    """key_hash is CRC-32 times the golden-ratio constant, mod 2**32."""
    assert key_hash("user-1") == (zlib.crc32(b"user-1") * 0x9E3779B1) % 2**32
    assert key_hash(42) == key_hash("42") == key_hash(b"42")


def test_golden_mapping() -> None:
    """The mapping of a fixed set is pinned across releases."""
    eps = pods(range(10))
    s = Sticky()
    assert {k: s.pick(eps, k).ordinal for k in GOLDEN} == GOLDEN


def test_same_key_same_pod_and_instances_agree() -> None:
    """A key keeps its pod while the set is unchanged, in every Sticky instance."""
    eps = pods(range(7))
    a, b = Sticky(), Sticky()
    first = owners(a, eps, KEYS[:500])
    assert owners(a, eps, KEYS[:500]) == first
    assert owners(b, pods(range(7)), KEYS[:500]) == first


def test_stable_across_processes_with_different_hash_seeds() -> None:
    """Two interpreters with different PYTHONHASHSEED map 1000 keys identically."""
    outputs = []
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", SUBPROCESS_CODE],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        outputs.append(done.stdout.strip())
    assert outputs[0] == outputs[1]
    s = Sticky()
    eps = pods(range(10))
    here = ",".join(str(s.pick(eps, f"key-{i}").ordinal) for i in range(1000))
    assert outputs[0] == here
    assert len(set(here.split(","))) == 10


@pytest.mark.parametrize("n", [3, 10, 100])
def test_adding_a_pod_moves_about_one_nth(n: int) -> None:
    """Scaling N -> N+1 moves <= 1.5/N of the keys, all of them to the new pod."""
    before = owners(Sticky(), pods(range(n)), KEYS)
    after = owners(Sticky(), pods(range(n + 1)), KEYS)
    moved = [(b, a) for b, a in zip(before, after) if b != a]
    new_identity = pod(n).identity
    assert all(a == new_identity for _, a in moved)
    assert 0 < len(moved) / len(KEYS) <= 1.5 / n


@pytest.mark.parametrize("n", [3, 10, 100])
@pytest.mark.parametrize("which", ["first", "middle", "last"])
def test_removing_a_pod_moves_only_its_keys(n: int, which: str) -> None:
    """Removing one of N pods moves <= 1.5/N of the keys, only those it owned."""
    gone = {"first": 0, "middle": n // 2, "last": n - 1}[which]
    before = owners(Sticky(), pods(range(n)), KEYS)
    after = owners(Sticky(), pods(i for i in range(n) if i != gone), KEYS)
    moved = [b for b, a in zip(before, after) if b != a]
    assert set(moved) == {pod(gone).identity}
    assert 0 < len(moved) / len(KEYS) <= 1.5 / n


@pytest.mark.parametrize(
    "eps", [pods(range(10)), pods(range(10, 20)), addresses(10)], ids=["web0-9", "web10-19", "ips"]
)
@pytest.mark.parametrize(
    "keys",
    [KEYS[:5000], list(range(5000)), [f"{i:08x}-session".encode() for i in range(5000)]],
    ids=["user-i", "ints", "bytes"],
)
def test_balance(eps: EndpointSet, keys: list[object]) -> None:
    """5000 keys over 10 pods: the busiest pod has at most 1.3x the mean."""
    s = Sticky()
    counts = Counter(s.pick(eps, k).identity for k in keys)
    assert len(counts) == 10
    assert max(counts.values()) / (len(keys) / 10) <= 1.3


def test_restart_with_new_ip_keeps_keys() -> None:
    """A pod coming back with a new address keeps every key, now at its new address."""
    eps = pods(range(5))
    s = Sticky()
    before = [s.pick(eps, k) for k in KEYS[:2000]]
    moved_pod = pod(2, address="10.200.0.99")
    restarted = EndpointSet([*(ep for ep in eps if ep.ordinal != 2), moved_pod])
    after = [s.pick(restarted, k) for k in KEYS[:2000]]
    assert [ep.identity for ep in before] == [ep.identity for ep in after]
    assert {ep.address for ep in after if ep.ordinal == 2} == {"10.200.0.99"}


def test_dual_stack_hashes_identities_and_returns_first_address() -> None:
    """IPv6 twins change nothing: same mapping, IPv4 endpoints returned."""
    v4_only = EndpointSet(dual_stack(i)[0] for i in range(4))
    both = EndpointSet(ep for i in range(4) for ep in dual_stack(i))
    s = Sticky()
    assert [s.pick(both, k) for k in KEYS[:500]] == [s.pick(v4_only, k) for k in KEYS[:500]]


@pytest.mark.parametrize(
    ("key", "name"),
    [(None, "None"), (True, "bool"), (1.5, "float"), (("a",), "tuple"), (["a"], "list")],
)
def test_bad_key_types(key: object, name: str) -> None:
    """Only str, bytes and int are keys; the error names the type."""
    with pytest.raises(TypeError, match=name):
        Sticky().pick(pods(range(3)), key)
    with pytest.raises(TypeError, match=name):
        key_hash(key)


def test_bad_key_type_reported_even_for_an_empty_set() -> None:
    """A bad key is a bug whatever the set holds."""
    with pytest.raises(TypeError, match="float"):
        Sticky().pick(EndpointSet(), 1.0)


def test_equivalent_key_spellings() -> None:
    """An int is its decimal digits, a str its UTF-8 bytes; bytearray and IntEnum too."""
    import enum

    class Shard(enum.IntEnum):
        EU = 42

    eps = pods(range(10))
    s = Sticky()
    same = {s.pick(eps, k) for k in (42, "42", b"42", bytearray(b"42"), memoryview(b"42"), Shard.EU)}
    assert len(same) == 1


FIVE_PODS = pods(range(5))
TWO_INSTANCES = (Sticky(), Sticky())


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.integers()))
def test_any_valid_key_maps_to_a_member_deterministically(key: str | bytes | int) -> None:
    """Every str/bytes/int key lands on a pod of the set, the same one each time."""
    eps = FIVE_PODS
    s, other = TWO_INSTANCES
    ep = s.pick(eps, key)
    assert ep in eps
    assert other.pick(eps, key) == ep
    if isinstance(key, str):
        assert s.pick(eps, key.encode("utf-8", "surrogatepass")) == ep


def test_lone_surrogate_is_a_valid_key() -> None:
    """A str that strict UTF-8 cannot encode still routes."""
    assert Sticky().pick(pods(range(3)), "\ud800") in pods(range(3))


def test_empty_set() -> None:
    """No pods: NoEndpointsAvailable."""
    with pytest.raises(NoEndpointsAvailable):
        Sticky().pick(EndpointSet(), "k")


@pytest.mark.parametrize("kwargs", [{"bounded_load": 0.9}, {"vnodes": 0}, {"vnodes": True}])
def test_rejects_bad_parameters(kwargs: dict[str, object]) -> None:
    """bounded_load below 1 and non-positive vnodes are refused."""
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Sticky(**kwargs)  # type: ignore[arg-type]


def test_vnodes_change_the_ring_but_keep_properties() -> None:
    """Fewer points still give a valid, stable mapping."""
    s = Sticky(vnodes=1)
    eps = pods(range(4))
    assert owners(s, eps, KEYS[:100]) == owners(Sticky(vnodes=1), eps, KEYS[:100])


class TestBoundedLoads:
    """Sticky(bounded_load=c): no pod above ceil(c * average) in flight."""

    def place(self, s: Sticky, eps: EndpointSet, keys: list[str]) -> list[Endpoint]:
        placed = []
        for k in keys:
            ep = s.pick(eps, k)
            s.started(ep)
            placed.append(ep)
        return placed

    def test_is_load_tracking(self) -> None:
        """The service reports loads to it through the protocol."""
        assert isinstance(Sticky(bounded_load=1.25), LoadTracking)

    def test_cap_holds_after_every_request(self) -> None:
        """With skewed keys, each pod stays under ceil(1.25 * m / n) at every step."""
        eps = pods(range(10))
        s = Sticky(bounded_load=1.25)
        # Half the traffic on one hot key, the rest on a handful of warm ones.
        keys = ["hot" if i % 2 else f"warm-{i % 7}" for i in range(1000)]
        for m, k in enumerate(keys, start=1):
            s.started(s.pick(eps, k))
            assert max(s.load(ep) for ep in eps) <= math.ceil(1.25 * m / 10)
        loads = [s.load(ep) for ep in eps]
        assert sum(loads) == 1000
        assert max(loads) / (1000 / 10) <= 1.25

    def test_same_traffic_unbounded_is_skewed(self) -> None:
        """Without the bound the same traffic overloads one pod (the test above bites)."""
        eps = pods(range(10))
        s = Sticky()
        counts = Counter(s.pick(eps, "hot" if i % 2 else f"warm-{i % 7}") for i in range(1000))
        assert max(counts.values()) / 100 > 2

    def test_unloaded_mapping_is_the_plain_ring(self) -> None:
        """Under no load, bounded and plain Sticky agree on every key."""
        eps = pods(range(10))
        assert owners(Sticky(bounded_load=1.25), eps, KEYS[:1000]) == owners(Sticky(), eps, KEYS[:1000])

    def test_overflow_walks_clockwise_deterministically(self) -> None:
        """Overflow of a hot key goes to the same pods in every instance."""
        eps = pods(range(10))
        a = self.place(Sticky(bounded_load=1.25), eps, ["hot"] * 40)
        b = self.place(Sticky(bounded_load=1.25), eps, ["hot"] * 40)
        assert a == b
        assert len(set(a)) > 1
        assert a[0] == Sticky().pick(eps, "hot")

    def test_finishing_returns_keys_home(self) -> None:
        """When the load drains, a key goes back to its own pod."""
        eps = pods(range(4))
        s = Sticky(bounded_load=1.0)
        home = Sticky().pick(eps, "k")
        placed = self.place(s, eps, ["k"] * 8)
        assert len(set(placed)) == 4
        for ep in placed:
            s.finished(ep, latency=0.01)
        assert [s.load(ep) for ep in eps] == [0, 0, 0, 0]
        assert s.pick(eps, "k") == home

    def test_unmatched_finish_is_ignored(self) -> None:
        """finished() without started() does not drive counts negative."""
        s = Sticky(bounded_load=1.5)
        ep = pod(0)
        s.finished(ep)
        assert s.load(ep) == 0
        s.started(ep)
        assert s.load(ep) == 1

    def test_unbounded_tracking_is_a_no_op(self) -> None:
        """Without bounded_load, started/finished record nothing."""
        s = Sticky()
        ep = pod(0)
        s.started(ep)
        assert s.load(ep) == 0
        assert s.bounded_load is None


# -- the request-aware protocol (public behaviour only) ------------------------------------------


def test_choose_is_the_usable_sets_owner() -> None:
    """choose() returns the key's owner on the ring of the usable pods."""
    snapshot = pods(range(6))
    usable = snapshot.without([snapshot[4]])
    s = Sticky()
    for key in KEYS[:300]:
        assert s.choose(Request(key=key), usable, snapshot) == s.pick(usable, key)


def test_an_ejected_pod_moves_only_its_own_keys() -> None:
    """While a pod is ejected its keys go elsewhere and every other key stays on its pod."""
    snapshot = pods(range(6))
    ejected = snapshot[4]
    usable = snapshot.without([ejected])
    s = Sticky()
    for key in KEYS[:1000]:
        owner = s.choose(Request(key=key), snapshot, snapshot)
        now = s.choose(Request(key=key), usable, snapshot)
        assert now != ejected
        if owner != ejected:
            assert now == owner


def test_a_retry_goes_to_the_keys_next_pod_deterministically() -> None:
    """With its owner excluded, a key goes to its owner among the pods not tried, the same in every instance."""
    snapshot = pods(range(5))
    first, second = Sticky(), Sticky()
    for key in KEYS[:200]:
        owner = first.choose(Request(key=key), snapshot, snapshot)
        retry = Request(key=key, exclude={owner.identity})
        other = first.choose(retry, snapshot, snapshot)
        assert other != owner
        assert other == first.pick(snapshot.without([owner]), key)
        assert second.choose(retry, snapshot, snapshot) == other


def test_a_retry_with_every_usable_pod_tried_reaches_an_ejected_one() -> None:
    """When every usable pod was tried the retry goes to an ejected pod not tried yet."""
    snapshot = pods(range(3))
    usable = snapshot.without([snapshot[2]])
    tried = Request(key="user-1", exclude={snapshot[0].identity, snapshot[1].identity})
    assert Sticky().choose(tried, usable, snapshot) == snapshot[2]
    with pytest.raises(NoEndpointsAvailable, match="all 3 were tried"):
        Sticky().choose(tried.excluding(snapshot[2].identity), usable, snapshot)


@pytest.mark.parametrize(("key", "name"), [(None, "None"), (1.5, "float"), (["a"], "list")])
def test_choose_needs_a_usable_key(key: object, name: str) -> None:
    """A missing or badly typed key raises TypeError naming it."""
    with pytest.raises(TypeError, match=name):
        Sticky().choose(Request(key=key), pods(range(3)), pods(range(3)))


def test_key_picker_matches_choose() -> None:
    """The key-only picker gives what choose gives for a key-only request."""
    snapshot = pods(range(6))
    usable = snapshot.without([snapshot[0]])
    s = Sticky(bounded_load=1.25)
    quick = s.key_picker(usable, snapshot)
    assert [quick(k) for k in KEYS[:300]] == [s.choose(Request(key=k), usable, snapshot) for k in KEYS[:300]]


def test_prepare_changes_no_mapping() -> None:
    """Building the ring ahead of the first pick leaves every key's pod as it is."""
    snapshot = pods(range(8))
    prepared, lazy = Sticky(), Sticky()
    prepared.prepare(snapshot)
    assert owners(prepared, snapshot, KEYS[:500]) == owners(lazy, snapshot, KEYS[:500])
# -- the ring behind the picks: one recipe, whichever way it is built --------------------


def test_whole_table_pinned_across_releases() -> None:
    """Every bucket of web-0..web-99 goes where release 0.1.0 sent it."""
    ring = ring_of(Sticky(), pods(range(100)))
    ordinals = array("H", [ep.ordinal or 0 for ep in by_bucket(ring)])
    assert hashlib.sha256(ordinals.tobytes()).hexdigest() == TABLE_DIGEST_WEB_0_99


@pytest.mark.parametrize(
    ("eps", "vnodes"),
    [
        (pods(range(60)), 256),
        (pods(random.Random(5).sample(range(10_000), 40)), 3),
        (addresses(25), 1),
        (EndpointSet(ep for i in range(6) for ep in dual_stack(i)), 16),
    ],
    ids=["60-pods", "random-ordinals", "ips-one-point", "dual-stack"],
)
def test_table_follows_the_recipe(eps: EndpointSet, vnodes: int) -> None:
    """The bucket table equals a bisect over the sorted ring points, bucket by bucket."""
    ring = ring_of(Sticky(vnodes=vnodes), eps)
    assert [ep.identity for ep in by_bucket(ring)] == recipe_owner_table(eps, vnodes)


def coarse_points(identity: str, vnodes: int) -> list[int]:
    """Real points squeezed onto 4096 positions 64 buckets apart, each a bucket start:
    pods draw the same points often (ties, and a pod twice its own), and arcs are long."""
    return [(point % 4096) << 20 for point in REAL_POD_POINTS(identity, vnodes)]


REAL_POD_POINTS = sticky_module._pod_points


@pytest.fixture
def tied_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sticky_module, "_pod_points", coarse_points)


def test_coarse_points_do_tie(tied_points: None) -> None:
    """The tie-forcing points above really produce shared points (so the tests below bite)."""
    ring = from_scratch(pods(range(40)), 16)
    assert len(ring.shared) > 10
    assert ring.shared == from_scratch(pods(range(40)), 16).shared
    assert [ep.identity for ep in by_bucket(ring)] == recipe_owner_table(pods(range(40)), 16)


OPS = st.lists(
    st.tuples(st.sampled_from(["add", "remove", "eject", "restore", "reresolve", "move"]), st.integers(0, 30)),
    min_size=1,
    max_size=10,
)


def replay(ops: list[tuple[str, int]], vnodes: int) -> None:
    """Apply *ops* to a fleet and check, after each, that the ring one Sticky derived
    from its previous one equals a full build of the same set."""
    live = {n: pod(n) for n in range(0, 30, 3)}
    ejected: set[int] = set()
    sticky = Sticky(vnodes=vnodes)
    sticky.prepare(EndpointSet(live.values(), name="web.prod"))
    for op, n in ops:
        if op == "add":
            live.setdefault(n, pod(n))
        elif op == "remove" and len(live) > 1:
            live.pop(n, None)
        elif op == "eject":
            ejected.add(n)
        elif op == "restore":
            ejected.discard(n)
        elif op == "reresolve":  # a new DNS answer: equal pods, new objects
            live = {k: pod(k) for k in live}
        elif op == "move" and n in live:  # restarted with a new address, same identity
            live[n] = pod(n, address=f"10.9.{n}.{len(ops)}")
        healthy = [ep for k, ep in live.items() if k not in ejected] or list(live.values())
        snapshot = EndpointSet(healthy, name="web.prod")
        assert canonical(ring_of(sticky, snapshot)) == canonical(from_scratch(snapshot, vnodes))
        # What a pick returns is the snapshot's own object.
        ring = ring_of(sticky, snapshot)
        assert all(ep is snapshot.by_identity(ep.identity) for ep in by_bucket(ring)[:: 1 << 10])


@settings(max_examples=30, deadline=None)
@given(OPS, st.sampled_from([1, 5, 16]))
def test_updated_ring_equals_full_build(ops: list[tuple[str, int]], vnodes: int) -> None:
    """Random add/remove/eject/restore/re-resolve sequences: incremental == from scratch."""
    replay(ops, vnodes)


@settings(max_examples=30, deadline=None)
@given(OPS, st.sampled_from([4, 16]))
def test_updated_ring_equals_full_build_with_ties(ops: list[tuple[str, int]], vnodes: int) -> None:
    """The same with points that pods share, so ties are won, lost and handed on."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sticky_module, "_pod_points", coarse_points)
        replay(ops, vnodes)


def test_tie_winner_follows_a_change_of_set_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two pods drawing the same points: when re-resolving flips their order, so do the ties."""
    monkeypatch.setattr(sticky_module, "_pod_points", lambda identity, vnodes: [1 << 30, 3 << 30])
    a = Endpoint("10.0.0.1", 80, hostname="a.web.prod.svc.cluster.local")
    b = Endpoint("10.0.0.2", 80, hostname="b.web.prod.svc.cluster.local")
    b_first = Endpoint("10.0.0.2", 80, hostname="b.web.prod.svc.cluster.local", ordinal=0)
    sticky = Sticky()
    before = EndpointSet([a, b])
    after = EndpointSet([Endpoint("10.0.0.1", 80, hostname="a.web.prod.svc.cluster.local"), b_first])
    assert {ep.identity for ep in by_bucket(ring_of(sticky, before))} == {a.identity}
    assert next(iter(after)) is b_first
    assert {ep.identity for ep in by_bucket(ring_of(sticky, after))} == {b.identity}
    assert canonical(ring_of(sticky, after)) == canonical(from_scratch(after))


def test_one_pod_change_is_an_update_not_a_rebuild(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding or ejecting one of 200 pods derives the ring from the last one, in few steps."""
    sticky = Sticky()
    sticky.prepare(pods(range(200)))
    builds: list[int] = []
    pauses: list[None] = []
    real_full_build = sticky_module._full_build

    def counting_full_build(members: tuple[Endpoint, ...], vnodes: int):  # type: ignore[no-untyped-def]
        builds.append(len(members))
        return real_full_build(members, vnodes)

    monkeypatch.setattr(sticky_module, "_full_build", counting_full_build)
    monkeypatch.setattr(sticky_module, "_pause", lambda: pauses.append(None))
    everyone = pods(range(201))
    sticky.prepare(everyone)
    sticky.prepare(EndpointSet([ep for ep in everyone if ep.ordinal != 7], name="web.prod"))
    assert builds == []
    assert len(pauses) <= 2 * (1 + sticky_module._BUCKETS // sticky_module._STEP_BUCKETS)
    # Many pods at once: a full build is cheaper.
    sticky.prepare(pods(range(100)))
    assert builds == [100]


def test_full_build_runs_in_short_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """A full build pauses between steps of at most a few thousand points each."""
    pauses: list[None] = []
    monkeypatch.setattr(sticky_module, "_pause", lambda: pauses.append(None))
    Sticky().prepare(pods(range(400)))
    points = 400 * sticky_module.DEFAULT_VNODES
    assert len(pauses) >= 2 * points // sticky_module._STEP_POINTS


def test_update_leaves_the_previous_ring_untouched() -> None:
    """Picks still using the previous snapshot see its ring unchanged while a new one builds."""
    sticky = Sticky()
    old = pods(range(50))
    old_ring = ring_of(sticky, old)
    before = canonical(old_ring)
    answers = [sticky.pick(old, key) for key in KEYS[:500]]
    sticky.prepare(EndpointSet([*old, pod(50)], name="web.prod"))
    sticky.prepare(pods(range(1, 50)))
    assert canonical(old_ring) == before
    assert [sticky.pick(old, key) for key in KEYS[:500]] == answers


def test_alternating_sets_pick_from_their_own_snapshot() -> None:
    """The pick fast path follows the set passed in, never the last one picked from."""
    sticky, reference = Sticky(), Sticky()
    full, healthy = pods(range(20)), pods(i for i in range(20) if i != 4)
    healthy_twin = pods(i for i in range(20) if i != 4)
    assert pod(4) in full
    for key in KEYS[:300]:
        assert sticky.pick(full, key) == reference.pick(full, key)
        assert sticky.pick(healthy, key) == reference.pick(healthy_twin, key)


def test_lone_surrogate_on_the_fast_path() -> None:
    """After a warm-up pick, a key strict UTF-8 cannot encode still routes like its bytes."""
    eps = pods(range(8))
    sticky = Sticky()
    sticky.pick(eps, "warm-up")
    assert sticky.pick(eps, "\udc80x") == sticky.pick(eps, "\udc80x".encode("utf-8", "surrogatepass"))


def test_key_types_after_the_fast_path_is_set() -> None:
    """str, bytes, int and str subclasses agree once the fast path is in use; bad keys still fail."""

    class Name(str):
        def encode(self, *args: object, **kwargs: object) -> bytes:  # type: ignore[override]
            return b"not what the key hashes as"

    eps = pods(range(8))
    sticky = Sticky()
    sticky.pick(eps, "warm-up")
    assert sticky.pick(eps, "42") == sticky.pick(eps, b"42") == sticky.pick(eps, 42)
    assert sticky.pick(eps, Name("user-7")) == sticky.pick(eps, "user-7")
    with pytest.raises(TypeError, match="bool"):
        sticky.pick(eps, True)
    with pytest.raises(TypeError, match="None"):
        sticky.pick(eps, None)


def test_empty_set_after_a_full_one() -> None:
    """A set that empties raises NoEndpointsAvailable, and refills routing as before."""
    sticky = Sticky()
    eps = pods(range(5))
    first = sticky.pick(eps, "k")
    with pytest.raises(NoEndpointsAvailable):
        sticky.pick(EndpointSet(name="web.prod"), "k")
    assert sticky.pick(pods(range(5)), "k") == first


def test_bounded_walk_visits_pods_in_table_order() -> None:
    """Overflow goes to the pods in the order their buckets follow the key's, clockwise."""
    eps = pods(range(12))
    sticky = Sticky(bounded_load=1.0, vnodes=4)
    refs = by_bucket(ring_of(sticky, eps))
    bucket = key_hash("hot") >> sticky_module._SHIFT
    order: list[str] = []
    for step in range(len(refs)):
        identity = refs[(bucket + step) % len(refs)].identity
        if identity not in order:
            order.append(identity)
    placed = []
    for _ in range(12):
        ep = sticky.pick(eps, "hot")
        sticky.started(ep)
        placed.append(ep.identity)
    assert placed == order


def test_dropped_sticky_frees_its_rings_at_once() -> None:
    """No reference cycle holds a dropped Sticky (and megabytes of rings) until a full GC."""
    import gc

    gc.collect()
    gc.disable()
    try:
        sticky = Sticky()
        sticky.prepare(pods(range(3)))
        sticky.pick(pods(range(4)), "k")
        del sticky
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_table_is_not_walked_by_the_garbage_collector() -> None:
    """After one collection the 2**18-entry table is untracked: it never lengthens a GC."""
    import gc

    sticky = Sticky()
    ring = ring_of(sticky, pods(range(30)))
    updated = ring_of(sticky, pods(range(31)))
    gc.collect()
    assert not gc.is_tracked(ring.table)
    assert not gc.is_tracked(updated.table)
