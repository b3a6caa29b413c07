"""Random: seedable, uniform, members only."""

from __future__ import annotations

from collections import Counter

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
