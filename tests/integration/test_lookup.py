"""What a refresh asks of a real server, counted at the wire (a FaultProxy in front of it)
and by the service's own question count: BIND9 (no glue past 13 targets) and CoreDNS
(glue for as many targets as fit in 64 KiB), and that every change is still seen."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from headless_client import HeadlessService, Resolver
from headless_client.endpoints import EndpointSet
from tests.faults import FaultProxy
from tests.integration.coredns import Grounds
from tests.integration.dnsground import BindServer, FreshService

pytestmark = pytest.mark.integration

#: Refreshes only when the test asks: the scheduled ones are minutes away.
QUIET = {"min_refresh": 300.0, "max_refresh": 600.0}
NS = "refreshes"


@contextmanager
def watched(server: str, service: str, port: int | str) -> Iterator[tuple[HeadlessService, FaultProxy]]:
    """A started service resolving *service* through a counting proxy in front of *server*."""
    with FaultProxy(server, seed=3) as proxy:
        resolver = Resolver([proxy.nameserver], timeout=10.0)
        with HeadlessService(service, port=port, resolver=resolver, **QUIET) as svc:
            yield svc, proxy
        assert proxy.errors == []


def refreshed(svc: HeadlessService, proxy: FaultProxy) -> tuple[EndpointSet, dict[str, int]]:
    """The view after one refresh, and what that refresh cost: questions the service
    counted, and the queries, TCP connections and bytes the server side saw."""
    questions = svc.stats().dns_questions
    before = proxy.stats
    view = svc.refresh()
    after = proxy.stats
    cost = {key: after[key] - before[key] for key in ("udp_queries", "tcp_queries", "tcp_connections",
                                                      "answer_bytes")}
    cost["questions"] = svc.stats().dns_questions - questions
    return view, cost


def pairs(view: EndpointSet) -> list[tuple[int | None, str]]:
    return sorted((e.ordinal, e.address) for e in view)


# -- BIND9: no glue, so every target's address comes from the previous set or a question ------


@pytest.mark.parametrize("port", ["http", 8080])
def test_an_unchanged_refresh_of_1000_pods_asks_two_questions_on_one_connection(bind: BindServer, port) -> None:
    """1000 pods, nothing changed: the SRV and the service's A (or A and AAAA for an int
    port) on one TCP connection, no datagram; the view is the one the first lookup found."""
    with watched(bind.nameserver, "big.prod", port) as (svc, proxy):
        first = svc.endpoints
        assert len(first) == 1000
        view, cost = refreshed(svc, proxy)
        assert view == first
        assert cost["questions"] == 2
        assert (cost["udp_queries"], cost["tcp_queries"], cost["tcp_connections"]) == (0, 2, 1)


def test_every_change_is_seen_by_refreshes_that_ask_only_what_moved(
    bind: BindServer, new_service: Callable[..., FreshService]
) -> None:
    """200 pods: one added (its name asked), one removed (nothing asked), one restarted
    with a new address (its name asked), one taking the address another pod left for a
    new one (every target asked): each refresh gives what the zone holds."""
    fresh = new_service(200)
    with watched(bind.nameserver, fresh.short, "http") as (svc, proxy):
        assert len(svc.endpoints) == 200
        fresh.add()
        view, cost = refreshed(svc, proxy)
        assert pairs(view) == sorted((o, a[0]) for o, a in fresh.addresses.items())
        assert cost["questions"] == 3 and cost["tcp_connections"] == 1

        fresh.remove(17)
        view, cost = refreshed(svc, proxy)
        assert view.by_ordinal(17) is None and len(view) == 200
        assert cost["questions"] == 2

        moved = fresh.reip(42)
        view, cost = refreshed(svc, proxy)
        assert view.by_ordinal(42).address == moved[0]
        assert pairs(view) == sorted((o, a[0]) for o, a in fresh.addresses.items())
        assert cost["questions"] == 3

        # web-5 leaves for a fresh address and web-6 takes web-5's old one; web-6's old
        # address goes: web-6 is asked, claims web-5's address, so every target is asked.
        old5, old6 = fresh.addresses[5][0], fresh.addresses[6][0]
        fresh.reip(5)
        fresh.reip(6, old5)
        view, cost = refreshed(svc, proxy)
        assert view.by_ordinal(6).address == old5 and view.by_ordinal(5).address not in (old5, old6)
        assert pairs(view) == sorted((o, a[0]) for o, a in fresh.addresses.items())
        assert cost["questions"] == 2 + 1 + 199


# -- CoreDNS: glue for 584 of 1000 targets over TCP; the rest from the previous set ---------------


@pytest.fixture(scope="module")
def cluster(grounds: Grounds) -> Grounds:
    model = grounds.model
    with model.batch():
        model.add_service("many", NS, ports=[("http", 8080)])
        model.add_statefulset("many", NS, 1000, address_base="127.36.0.1")
        model.add_service("some", NS, ports=[("http", 8080)])
        model.add_statefulset("some", NS, 100, address_base="127.37.0.1")
    grounds.sync()
    return grounds


def truth(grounds: Grounds, name: str) -> list[tuple[int | None, str]]:
    return sorted((p.ordinal, p.addresses[0]) for p in grounds.model.statefulset_pods(name, NS))


@pytest.mark.coredns
@pytest.mark.parametrize("ground", ["coredns", "fake"])
def test_an_unchanged_refresh_on_coredns_asks_two_questions_on_one_connection(cluster: Grounds, ground) -> None:
    """CoreDNS (and the fake, which answers as it does) cuts the glue of 1000 targets to
    what fits: the glued targets are read from the SRV answer, the others from the previous
    set and the service's A answer: two questions, one connection."""
    with watched(cluster.nameserver(ground), f"many.{NS}", "http") as (svc, proxy):
        assert pairs(svc.endpoints) == truth(cluster, "many")
        view, cost = refreshed(svc, proxy)
        assert pairs(view) == truth(cluster, "many")
        assert cost["questions"] == 2
        assert (cost["udp_queries"], cost["tcp_queries"], cost["tcp_connections"]) == (0, 2, 1)


@pytest.mark.coredns
def test_changes_are_seen_on_coredns_including_two_pods_swapping_addresses(cluster: Grounds) -> None:
    """100 pods, glue for all: a pod added, one removed, one restarted elsewhere, and two
    that swapped addresses (the glue says so) are all seen, on each ground."""
    model = cluster.model
    servers = {ground: cluster.nameserver(ground) for ground in ("coredns", "fake", "bind")}
    with watched(servers["coredns"], f"some.{NS}", "http") as (on_coredns, p1), \
            watched(servers["fake"], f"some.{NS}", "http") as (on_fake, p2), \
            watched(servers["bind"], f"some.{NS}", "http") as (on_bind, p3):
        services = [(on_coredns, p1), (on_fake, p2), (on_bind, p3)]

        def step(change: Callable[[], object]) -> None:
            change()
            cluster.sync()
            for svc, proxy in services:
                view, _ = refreshed(svc, proxy)
                assert pairs(view) == truth(cluster, "some"), svc

        step(lambda: model.scale("some", NS, 101))
        step(lambda: model.delete_pod("some-13", NS))
        step(lambda: model.update_pod("some-42", NS, addresses=(model.free_address(),)))

        def swap() -> None:
            a, b = (model.pod(f"some-{i}", NS).addresses for i in (7, 70))
            with model.batch():
                model.update_pod("some-7", NS, addresses=(model.free_address(),))
                model.update_pod("some-70", NS, addresses=a)
                model.update_pod("some-7", NS, addresses=b)

        swap()
        cluster.sync()
        for svc, proxy in services[:2]:  # glue: the swap is seen
            view, _ = refreshed(svc, proxy)
            assert pairs(view) == truth(cluster, "some")
