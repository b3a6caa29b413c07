"""Sticky: stable consistent hashing, minimal remapping, balance, bounded loads."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import zlib
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headless_client.endpoints import Endpoint, EndpointSet
from headless_client.errors import NoEndpointsAvailable
from headless_client.request import Request
from headless_client.strategies import LoadTracking, Sticky, key_hash

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


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.integers()))
def test_any_valid_key_maps_to_a_member_deterministically(key: str | bytes | int) -> None:
    """Every str/bytes/int key lands on a pod of the set, the same one each time."""
    eps = pods(range(5))
    s = Sticky()
    ep = s.pick(eps, key)
    assert ep in eps
    assert Sticky().pick(eps, key) == ep
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
