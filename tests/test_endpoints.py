"""endpoints.py: Endpoint values and EndpointSet snapshots."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headless_client import Endpoint, EndpointSet, InvalidName


def pods(n: int, base: str = "10.0.0.") -> list[Endpoint]:
    return [
        Endpoint(f"{base}{i + 1}", 8080, hostname=f"web-{i}.web.prod.svc.cluster.local", ordinal=i)
        for i in range(n)
    ]


def test_endpoint_is_frozen_and_normalised():
    """Endpoints are immutable; addresses and hostnames are normalised."""
    ep = Endpoint("FD00:0:0::A", 80, hostname="Web-0.Web.Prod.svc.cluster.local.")
    assert ep.address == "fd00::a"
    assert ep.hostname == "web-0.web.prod.svc.cluster.local"
    assert ep.family == 6
    with pytest.raises(AttributeError):
        ep.port = 81  # type: ignore[misc]


def test_identity_prefers_hostname():
    """Identity is the pod hostname when known, so a new IP keeps it."""
    a = Endpoint("10.0.0.1", 80, hostname="web-0.web.prod.svc.cluster.local", ordinal=0)
    b = Endpoint("10.0.0.9", 80, hostname="web-0.web.prod.svc.cluster.local", ordinal=0)
    assert a.identity == b.identity == "web-0.web.prod.svc.cluster.local:80"
    assert Endpoint("10.0.0.1", 80).identity == "10.0.0.1:80"
    assert Endpoint("::1", 80).identity == "[::1]:80"


def test_ttl_not_in_equality():
    """A TTL counting down does not make an endpoint different."""
    assert Endpoint("10.0.0.1", 80, ttl=30) == Endpoint("10.0.0.1", 80, ttl=4)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"address": "not-an-ip", "port": 1}, "'not-an-ip'"),
        ({"address": "10.0.0.1", "port": 70000}, "70000"),
        ({"address": "10.0.0.1", "port": True}, "True"),
        ({"address": "10.0.0.1", "port": 1, "ordinal": -1}, "-1"),
        ({"address": "10.0.0.1", "port": 1, "hostname": ""}, "''"),
        ({"address": 10, "port": 1}, "10"),
    ],
)
def test_endpoint_rejects(kwargs, needle):
    """Bad fields raise InvalidName naming the value."""
    with pytest.raises(InvalidName, match=needle):
        Endpoint(**kwargs)


def test_set_order_independent_of_input_order():
    """The set's order depends on the endpoints only, never on the answer order."""
    eps = pods(20)
    shuffled = eps[:]
    random.Random(7).shuffle(shuffled)
    assert EndpointSet(shuffled).endpoints == EndpointSet(eps).endpoints
    assert [ep.ordinal for ep in EndpointSet(shuffled)] == list(range(20))
    assert EndpointSet(shuffled) == EndpointSet(eps)
    assert hash(EndpointSet(shuffled)) == hash(EndpointSet(eps))


def test_addresses_sort_numerically():
    """Addresses without ordinals sort by numeric value, IPv4 before IPv6."""
    s = EndpointSet([Endpoint("10.0.0.10", 1), Endpoint("::1", 1), Endpoint("10.0.0.9", 1)])
    assert [ep.address for ep in s] == ["10.0.0.9", "10.0.0.10", "::1"]


def test_set_basics():
    """len, iteration, membership, by_ordinal, by_hostname, duplicates dropped."""
    eps = pods(3)
    s = EndpointSet(eps + [eps[0]], name="web.prod.svc.cluster.local")
    assert len(s) == 3
    assert list(s) == eps
    assert eps[1] in s
    assert s.by_ordinal(2) == eps[2]
    assert s.by_ordinal(7) is None
    assert s.by_hostname("web-1") == eps[1]
    assert s.by_hostname("WEB-1.web.prod.svc.cluster.local.") == eps[1]
    assert s.by_identity(eps[0].identity) == eps[0]
    assert s.ordinals == (0, 1, 2)
    assert "web.prod" in repr(s)
    assert not EndpointSet()
    with pytest.raises(AttributeError):
        s.name = "x"  # type: ignore[misc]


def test_set_rejects_non_endpoints():
    """Only Endpoint objects go into a set."""
    with pytest.raises(TypeError, match="str"):
        EndpointSet(["10.0.0.1"])  # type: ignore[list-item]


def test_diff():
    """old.diff(new) gives what was added and removed; a re-IP is both."""
    old = EndpointSet(pods(3))
    moved = Endpoint("10.0.0.99", 8080, hostname="web-1.web.prod.svc.cluster.local", ordinal=1)
    new_eps = [*pods(3)[:1], moved, *pods(4)[2:]]
    new = EndpointSet(new_eps)
    d = old.diff(new)
    assert d.added == (moved, pods(4)[3])
    assert d.removed == (pods(3)[1],)
    assert not old.diff(EndpointSet(pods(3)))


def test_ttl_is_min_of_endpoints():
    """The set's TTL is the smallest endpoint TTL unless given."""
    s = EndpointSet([Endpoint("10.0.0.1", 1, ttl=30), Endpoint("10.0.0.2", 1, ttl=5)])
    assert s.ttl == 5
    assert EndpointSet([Endpoint("10.0.0.1", 1, ttl=30)], ttl=2).ttl == 2


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 65535)), max_size=30), st.randoms())
def test_equality_is_order_free(items, rnd):
    """Any permutation of the same endpoints gives an equal set with equal order."""
    import ipaddress

    eps = [Endpoint(str(ipaddress.IPv4Address(a)), p) for a, p in items]
    other = eps[:]
    rnd.shuffle(other)
    assert EndpointSet(eps) == EndpointSet(other)
    assert EndpointSet(eps).endpoints == EndpointSet(other).endpoints
    assert len(EndpointSet(eps)) == len(set(eps))
