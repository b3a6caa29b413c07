"""endpoints.py: Endpoint values and EndpointSet snapshots."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given, settings
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
        ({"address": "10.0.0.1", "port": 1, "zone_hints": "zone-a"}, "'zone-a'"),
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


# --------------------------------------------------------------------------------------------
# The fast construction and ordering behave as the ipaddress-based ones they replace
# --------------------------------------------------------------------------------------------


def reference_endpoint(address, port, hostname=None, ordinal=None):
    """What Endpoint's checks and normalisation were, written with ipaddress: (address,
    hostname, identity), or the InvalidName message."""
    import ipaddress

    if not isinstance(address, str):
        return f"address must be a str, not {type(address).__name__}: {address!r}"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"address {address!r} is not an IP address"
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        return f"port must be an int in 0..65535: {port!r}"
    if hostname is not None:
        if not isinstance(hostname, str) or not hostname.strip("."):
            return f"hostname must be a non-empty str: {hostname!r}"
        hostname = hostname.lower().rstrip(".")
    if ordinal is not None and (isinstance(ordinal, bool) or not isinstance(ordinal, int) or ordinal < 0):
        return f"ordinal must be an int >= 0 or None: {ordinal!r}"
    if hostname is not None:
        identity = f"{hostname}:{port}"
    elif ip.version == 6:
        identity = f"[{ip}]:{port}"
    else:
        identity = f"{ip}:{port}"
    return (str(ip), hostname, identity)


def reference_order(eps):
    """The set order as it was: a tuple key with ipaddress, repeats dropped."""
    import ipaddress

    def key(ep):
        ip = ipaddress.ip_address(ep.address)
        return (ep.ordinal is None, ep.ordinal if ep.ordinal is not None else 0, ep.hostname or "", ip.version,
                int(ip), ep.port)  # fmt: skip

    return tuple(dict.fromkeys(sorted(eps, key=key)))


ADDRESS_TEXT = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from([
        "10.0.0.1", "010.0.0.1", "1.2.3", "1.2.3.4.5", "256.0.0.1", " 1.2.3.4", "1.2.3.4\x00", "1.2.3.4 ",
        "\u0661.\u0662.\u0663.\u0664", "0x1.2.3.4", "1.2.3.04", "0.0.0.0", "255.255.255.255",
        "FD00::0001", "::FFFF:1.2.3.4", "::1.2.3.4", "fe80::1%eth0", "fe80::1%1", "::", "1::2::3",
        "[::1]", "", "\ud800", "10.0.0.1/32",
    ]),
    st.text(alphabet="0123456789.:abcdefABCDEF%x ", max_size=20),
)  # fmt: skip
PORT = st.one_of(st.integers(0, 65535), st.sampled_from([-1, 65536, True, 80.0, "80", None]))
HOSTNAME = st.one_of(
    st.none(),
    st.sampled_from(["web-0.web.prod", "Web-0.WEB.prod.", "", ".", "a", "\u00e9.x", "a\x00b", "\ud800x", "b"]),
    st.text(max_size=8),
)
ORDINAL = st.one_of(st.none(), st.integers(0, 5), st.sampled_from([2**64 - 1, 2**64, 2**70, -1, True, 1.0]))


@given(ADDRESS_TEXT, PORT, HOSTNAME, ORDINAL)
@settings(max_examples=500, deadline=None)
def test_construction_as_before(address, port, hostname, ordinal):
    """Endpoint accepts, normalises and refuses exactly what it did with ipaddress, with
    the same messages, memo cold or warm."""
    from headless_client import endpoints

    expected = reference_endpoint(address, port, hostname, ordinal)
    for _ in range(2):
        try:
            ep = Endpoint(address, port, hostname=hostname, ordinal=ordinal)
        except InvalidName as exc:
            assert str(exc) == expected
        else:
            assert (ep.address, ep.hostname, ep.identity) == expected
        endpoints._ADDRESSES.clear()


def test_memo_is_bounded():
    """The address memo never holds more than its bound, and an evicted address still
    gives the same endpoint."""
    from headless_client import endpoints

    first = Endpoint("10.0.0.1", 80)
    for i in range(endpoints._ADDRESSES_MAX + 10):
        Endpoint(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", 80)
        assert len(endpoints._ADDRESSES) <= endpoints._ADDRESSES_MAX
    assert Endpoint("10.0.0.1", 80) == first


ENDPOINT = st.builds(
    Endpoint,
    address=st.one_of(
        st.ip_addresses().map(str),
        st.sampled_from(["10.0.0.1", "10.0.0.2", "fd00::1", "fe80::1%a", "fe80::1%b", "::ffff:1.2.3.4"]),
    ),
    port=st.sampled_from([80, 443, 8080, 0, 65535]),
    hostname=st.one_of(
        st.none(),
        st.sampled_from(["web-0.x", "web-1.x", "web-10.x", "web-1.x.", "WEB-1.x", "a\x00b", "\ud800", "\u00e9", "ab"]),
        st.text(min_size=1, max_size=4).filter(lambda h: h.strip(".")),
    ),
    ordinal=st.one_of(st.none(), st.integers(0, 20), st.sampled_from([2**64 - 1, 2**64, 2**80])),
    ttl=st.one_of(st.none(), st.integers(0, 60)),
)


@given(st.lists(ENDPOINT, max_size=25), st.randoms(use_true_random=False))
@settings(max_examples=500, deadline=None)
def test_order_as_before(eps, rnd):
    """The set order (byte-string keys, or tuple keys for what they cannot encode) is
    the ipaddress-based order it replaced, repeats dropped alike; equal sets hash alike."""
    s = EndpointSet(eps)
    assert s.endpoints == reference_order(eps)
    shuffled = eps[:]
    rnd.shuffle(shuffled)
    other = EndpointSet(shuffled)
    if all("%" not in ep.address for ep in eps):
        # Scoped addresses that differ only in scope tie; ties keep input order.
        assert other == s
        assert hash(other) == hash(s)
    assert EndpointSet(eps + eps[:3]) == s


def test_sort_key_fallbacks():
    """Ordinals past 2**64 and hostnames with NUL or a lone surrogate still sort as the
    tuple order says."""
    eps = [
        Endpoint("10.0.0.2", 1, hostname="a\x00b", ordinal=2**70),
        Endpoint("10.0.0.1", 1, hostname="\ud800", ordinal=1),
        Endpoint("10.0.0.3", 1, ordinal=2**64),
        Endpoint("10.0.0.4", 1),
    ]
    assert EndpointSet(eps).endpoints == reference_order(eps)


def test_dataclass_behaviour_kept():
    """The written-out __init__ keeps the dataclass: replace, pickling, copying, frozen
    fields, match_args and the signature."""
    import copy
    import dataclasses
    import inspect
    import pickle

    ep = Endpoint("10.0.0.1", 80, hostname="Web-0.x.", ordinal=0, priority=1, weight=2, ttl=5)
    assert dataclasses.replace(ep, port=81) == Endpoint("10.0.0.1", 81, hostname="web-0.x", ordinal=0)
    assert dataclasses.replace(ep, port=81).identity == "web-0.x:81"
    assert pickle.loads(pickle.dumps(ep)) == ep
    assert copy.copy(ep).identity == ep.identity
    fields = ("address", "port", "hostname", "ordinal", "priority", "weight", "ttl")
    fields += ("zone", "node", "terminating", "pod", "zone_hints")
    assert [f.name for f in dataclasses.fields(Endpoint)] == [*fields, "identity"]
    assert dataclasses.asdict(ep)["identity"] == "web-0.x:80"
    assert Endpoint.__match_args__ == fields
    assert list(inspect.signature(Endpoint).parameters) == list(Endpoint.__match_args__)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ep.address = "10.0.0.2"  # type: ignore[misc]
    assert (ep.priority, ep.weight, ep.ttl) == (1, 2, 5)
    assert repr(ep) == (
        "Endpoint(address='10.0.0.1', port=80, hostname='web-0.x', ordinal=0, priority=1, weight=2, ttl=5, "
        "zone=None, node=None, terminating=False, pod=None, zone_hints=())"
    )
    sliced = Endpoint("10.0.0.1", 80, zone="a", node="n1", terminating=True, pod="web-0", zone_hints=["a", "b"])
    assert sliced.zone_hints == ("a", "b")
    assert pickle.loads(pickle.dumps(sliced)) == sliced
    assert dataclasses.replace(sliced, terminating=False) == Endpoint(
        "10.0.0.1", 80, zone="a", node="n1", pod="web-0", zone_hints=("a", "b")
    )
    assert sliced != dataclasses.replace(sliced, terminating=False)


@pytest.mark.parametrize("address", ["10.0.0.1", "fd00::1", "FD00:0::1", "::ffff:10.0.0.1", "127.0.0.1"])
@pytest.mark.parametrize(("hostname", "ordinal"), [(None, None), ("web-3.web.prod.svc.cluster.local", 3)])
def test_dns_endpoint_equals_the_constructor_in_every_field(address, hostname, ordinal):
    """The builder for values read from DNS gives the constructor's endpoint: canonical
    address, identity, every field; a bad address is still InvalidName."""
    from headless_client.endpoints import dns_endpoint

    built = dns_endpoint(address, 8080, hostname, ordinal, 1, 2, 30)
    made = Endpoint(address, 8080, hostname, ordinal, 1, 2, 30)
    fields = [f.name for f in dataclasses.fields(Endpoint)]
    assert [getattr(built, f) for f in fields] == [getattr(made, f) for f in fields]
    assert built == made and hash(built) == hash(made) and repr(built) == repr(made)
    with pytest.raises(InvalidName, match="'bogus'"):
        dns_endpoint("bogus", 80, None, None, 0, 0, None)
