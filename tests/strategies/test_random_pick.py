"""Random: seedable, uniform, members only."""

from __future__ import annotations

from collections import Counter

from headless_client.request import Request
from headless_client.strategies import Random

from ._helpers import pods


def test_same_seed_same_sequence() -> None:
    """Two instances with one seed pick the same sequence; another seed differs."""
    eps = pods(range(10))
    first = [Random(seed=7).pick(eps) for _ in range(1)]
    a, b, c = Random(seed=7), Random(seed=7), Random(seed=8)
    seq_a = [a.pick(eps).ordinal for _ in range(50)]
    assert seq_a == [b.pick(eps).ordinal for _ in range(50)]
    assert seq_a != [c.pick(eps).ordinal for _ in range(50)]
    assert first[0].ordinal == seq_a[0]


def test_roughly_uniform() -> None:
    """10000 picks over 4 pods put each within 10 % of 2500 (seeded, deterministic)."""
    rnd = Random(seed=1)
    eps = pods(range(4))
    counts = Counter(rnd.pick(eps).ordinal for _ in range(10_000))
    assert set(counts) == {0, 1, 2, 3}
    assert all(2250 <= n <= 2750 for n in counts.values()), counts


def test_single_pod() -> None:
    """A one-pod set always gives that pod."""
    eps = pods([3])
    assert {Random().pick(eps).ordinal for _ in range(20)} == {3}


# -- the request-aware protocol ----------------------------------------------------------------


def test_choose_draws_from_the_usable_pods_only() -> None:
    """choose() never returns a pod that is only in the snapshot."""
    snapshot = pods(range(4))
    usable = snapshot.without([snapshot[0], snapshot[3]])
    rnd = Random(seed=2)
    assert {rnd.choose(Request(), usable, snapshot).ordinal for _ in range(200)} == {1, 2}


def test_choose_skips_pods_already_tried() -> None:
    """A retry never draws an excluded pod, falling back to untried ejected ones."""
    snapshot = pods(range(3))
    usable = snapshot.without([snapshot[2]])
    rnd = Random(seed=3)
    tried = Request(exclude={snapshot[0].identity})
    assert {rnd.choose(tried, usable, snapshot).ordinal for _ in range(50)} == {1}
    tried = tried.excluding(snapshot[1].identity)
    assert {rnd.choose(tried, usable, snapshot).ordinal for _ in range(10)} == {2}


def test_key_picker_is_the_seeded_sequence_over_the_usable_set() -> None:
    """The key-only picker draws the same seeded sequence as pick over the usable set."""
    snapshot = pods(range(10))
    usable = snapshot.without([snapshot[0]])
    quick = Random(seed=11).key_picker(usable, snapshot)
    reference = Random(seed=11)
    assert [quick("ignored").ordinal for _ in range(30)] == [reference.pick(usable).ordinal for _ in range(30)]
