"""PreferZone: own zone first, every zone when it has none or too few, hints respected."""

from __future__ import annotations

from collections import Counter

import pytest

import headless_client as hc
from headless_client.endpoints import Endpoint, EndpointSet
from headless_client.errors import InvalidArgument, InvalidName, NoEndpointsAvailable
from headless_client.request import Request
from headless_client.strategies import LeastLoaded, PreferZone, RoundRobin, Router, Sticky, local_endpoints


def zoned(zones: str, hints: dict[int, tuple[str, ...]] | None = None) -> EndpointSet:
    """Pods web-0.. with the zone of each letter of *zones* (``"aab"``: two in a, one in b)."""
    return EndpointSet(
        (
            Endpoint(
                f"10.0.0.{n + 1}",
                8080,
                hostname=f"web-{n}.web.prod.svc.cluster.local",
                ordinal=n,
                zone=z,
                zone_hints=(hints or {}).get(n, ()),
            )
            for n, z in enumerate(zones)
        ),
        name="web.prod.svc.cluster.local",
    )


def ordinals(strategy: PreferZone, eps: EndpointSet, count: int = 60, request: Request | None = None) -> Counter[int]:
    picked = Counter[int]()
    for _ in range(count):
        ep = strategy.choose(request or Request(), eps, eps)
        assert ep.ordinal is not None
        picked[ep.ordinal] += 1
    return picked


def test_own_zone_only_while_it_has_pods() -> None:
    """Calls stay in zone a while it has pods, round-robin between them."""
    assert ordinals(PreferZone("a"), zoned("abab")) == {0: 30, 2: 30}


def test_no_local_pod_spreads_over_every_zone() -> None:
    """A zone with no pod sends calls to every zone."""
    assert ordinals(PreferZone("c"), zoned("abab")) == {0: 15, 1: 15, 2: 15, 3: 15}


def test_too_few_local_pods_spread_over_every_zone() -> None:
    """With min_local=2, a zone down to one pod does not take all its clients' calls."""
    strategy = PreferZone("a", min_local=2)
    assert set(ordinals(strategy, zoned("abbb"))) == {0, 1, 2, 3}
    assert set(ordinals(strategy, zoned("aabb"))) == {0, 1}


def test_unknown_zone_delegates_to_then() -> None:
    """zone=None (not known) picks among every pod, as *then* alone would."""
    assert set(ordinals(PreferZone(None), zoned("ab"))) == {0, 1}


def test_endpoints_without_zone_are_not_local() -> None:
    """DNS endpoints carry no zone: the strategy finds no local pod and uses them all."""
    eps = EndpointSet(Endpoint(f"10.0.0.{n}", 80) for n in range(1, 4))
    assert local_endpoints(eps, "a") == EndpointSet()
    strategy = PreferZone("a")
    assert len({strategy.pick(eps) for _ in range(3)}) == 3


def test_topology_hints_win_over_zones_when_every_endpoint_has_them() -> None:
    """With hints on every endpoint, the pods hinted for our zone are local (pod 1 is in b
    but the controller assigned it to a)."""
    eps = zoned("abb", hints={0: ("a",), 1: ("a",), 2: ("b",)})
    assert set(ordinals(PreferZone("a"), eps)) == {0, 1}
    assert set(ordinals(PreferZone("a", hints=False), eps)) == {0}


def test_hints_are_ignored_unless_every_endpoint_has_them() -> None:
    """One endpoint without hints: zones decide, as kube-proxy does."""
    eps = zoned("abb", hints={0: ("a",), 1: ("a",)})
    assert set(ordinals(PreferZone("a"), eps)) == {0}


def test_retries_try_other_local_pods_before_leaving_the_zone() -> None:
    """A retry excludes the tried pod: another local pod first, then other zones."""
    eps = zoned("aab")
    strategy = PreferZone("a")
    web0, web1 = eps[0], eps[1]
    assert strategy.choose(Request(exclude=frozenset({web0.identity})), eps, eps) == web1
    both = Request(exclude=frozenset({web0.identity, web1.identity}))
    assert strategy.choose(both, eps, eps).zone == "b"
    every = both.excluding(eps[2].identity)
    with pytest.raises(NoEndpointsAvailable):
        strategy.choose(every, eps, eps)


def test_then_strategy_gets_keys_and_load() -> None:
    """Sticky inside the zone keeps a key on one local pod; LeastLoaded's accounting is forwarded."""
    eps = zoned("aabb")
    sticky = PreferZone("a", then=Sticky())
    chosen = {sticky.choose(Request(key="user-7"), eps, eps) for _ in range(10)}
    assert len(chosen) == 1 and next(iter(chosen)).zone == "a"
    assert sticky.key_picker(eps, eps)("user-7") in chosen

    least = LeastLoaded()
    strategy = PreferZone("a", then=least)
    busy = strategy.choose(Request(), eps, eps)
    strategy.started(busy)
    other = strategy.choose(Request(), eps, eps)
    assert other != busy and other.zone == "a"
    strategy.finished(busy, latency=0.01)


def test_router_finds_optional_parts_and_prepares() -> None:
    """A service's router sees load tracking and key picking, and prepare() builds the group."""
    eps = zoned("abab")
    router = Router(PreferZone("b", then=LeastLoaded()))
    assert router.tracks_load
    router.prepare(eps)
    assert router.key_picker(eps, eps)(None).zone == "b"


def test_empty_set_raises_no_endpoints() -> None:
    """No endpoints at all: NoEndpointsAvailable, as from any strategy."""
    with pytest.raises(NoEndpointsAvailable):
        PreferZone("a").choose(Request(), EndpointSet(), EndpointSet())


def test_bad_arguments_are_refused_with_their_value() -> None:
    """An empty zone, a bad min_local or a strategy class are clear errors."""
    with pytest.raises(InvalidName, match="''"):
        PreferZone("")
    with pytest.raises(InvalidName, match="min_local"):
        PreferZone("a", min_local=0)
    with pytest.raises(InvalidArgument, match="RoundRobin"):
        PreferZone("a", then=RoundRobin)  # type: ignore[arg-type]


def test_public_name_and_repr() -> None:
    """PreferZone is exported at the package root and says what it holds."""
    assert hc.PreferZone is PreferZone
    assert repr(PreferZone("eu-1a")) == "PreferZone('eu-1a', then=RoundRobin(), min_local=1)"
