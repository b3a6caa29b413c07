"""The partitioned KV example end to end: BIND9 + KV pods on loopback + Kafka-style routing."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from examples.partitioned_kv import KVClient, KVCluster, KVError, partition_of
from examples.partitioned_kv.demo import run as run_demo
from headless_client import Resolver
from tests.integration.dnsground import BindServer, FreshService

pytestmark = pytest.mark.integration

PARTITIONS = 6


@pytest.fixture
def kv_service(new_service, pod_port) -> FreshService:
    return new_service(3, port=pod_port, port_name="kv")


@pytest.fixture
def cluster(kv_service: FreshService, pod_port: int) -> Iterator[KVCluster]:
    with KVCluster({p: p % 3 for p in range(PARTITIONS)}) as kv:
        for ordinal, addresses in kv_service.addresses.items():
            kv.add_pod(ordinal, addresses[0], pod_port)
        yield kv


@pytest.fixture
def client(bind: BindServer, kv_service: FreshService, cluster: KVCluster) -> Iterator[KVClient]:
    kv = KVClient(
        kv_service.short,
        PARTITIONS,
        cluster.table.snapshot,
        resolver=Resolver([bind.nameserver], timeout=1),
        min_reread_interval=60,  # the map is re-read only when a leader is unreachable
        min_refresh=30,  # and DNS only on demand: the test decides what the client sees
        max_refresh=30,
    )
    with kv:
        yield kv


def raw(address: str, port: int, line: str) -> str:
    with socket.create_connection((address, port), timeout=2) as sock:
        sock.sendall(line.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n") and len(buf) < 4096:
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
    return buf.decode().rstrip("\n")


KEYS = {f"user-{i}": f"v{i}" for i in range(30)}


def served_partitions(cluster: KVCluster) -> dict[int, set[int]]:
    return {ordinal: set(pod.served) for ordinal, pod in cluster.pods.items()}


def test_the_protocol(kv_service, cluster, pod_port):
    """What the pods say, without the client: only the leader serves a partition."""
    key = "user-1"
    p = partition_of(key, PARTITIONS)
    leader, other = p % 3, (p + 1) % 3
    assert raw(kv_service.addresses[other][0], pod_port, f"GET {key}") == f"NOT_LEADER {leader}"
    assert raw(kv_service.addresses[leader][0], pod_port, f"GET {key}") == "NOT_FOUND"
    assert raw(kv_service.addresses[leader][0], pod_port, f"PUT {key} hello world") == "OK"
    assert raw(kv_service.addresses[leader][0], pod_port, f"GET {key}") == "VALUE hello world"
    assert raw(kv_service.addresses[leader][0], pod_port, "DROP x").startswith("ERROR")
    assert raw(kv_service.addresses[leader][0], pod_port, "PUT nokey").startswith("ERROR")


def test_routes_every_key_to_its_leader(client, cluster):
    for key, value in KEYS.items():
        client.put(key, value)
    assert {k: client.get(k) for k in KEYS} == KEYS
    assert client.get("missing") is None
    # Every request went straight to the leader: no pod refused one.
    assert [pod.refused for pod in cluster.pods.values()] == [0, 0, 0]
    assert client.stats["not_leader"] == client.stats["rerouted"] == 0
    touched = {partition_of(k, PARTITIONS) for k in KEYS} | {partition_of("missing", PARTITIONS)}
    assert set().union(*served_partitions(cluster).values()) == touched
    for ordinal, partitions in served_partitions(cluster).items():
        assert all(p % 3 == ordinal for p in partitions)


def test_follows_not_leader_hints_when_leadership_moves(client, cluster):
    for key, value in KEYS.items():
        client.put(key, value)
    moved = {0: 1, 4: 2}  # partition -> new leader
    for p, ordinal in moved.items():
        cluster.table.move(p, ordinal)
    for pod in cluster.pods.values():
        pod.served.clear()

    assert {k: client.get(k) for k in KEYS} == KEYS
    # The client's map was stale (no re-read for 60 s): the old leaders refused once per
    # moved partition, the hints fixed the routing for good.
    touched_moved = {partition_of(k, PARTITIONS) for k in KEYS} & set(moved)
    assert client.stats["not_leader"] == len(touched_moved) > 0
    assert sum(pod.refused for pod in cluster.pods.values()) == len(touched_moved)
    for p, ordinal in moved.items():
        assert client.leaders.leader_of(p) == ordinal
        assert all(p not in cluster.pods[o].served for o in cluster.pods if o != ordinal)


def test_keeps_working_when_a_pod_dies(client, cluster, kv_service):
    for key, value in KEYS.items():
        client.put(key, value)
    handed = cluster.table.move_all(1, 2)
    killed = cluster.kill(1)
    kv_service.remove(1)
    assert not killed.running
    assert client.service.endpoint(ordinal=1)  # the client's view still has the dead pod
    for pod in cluster.pods.values():
        pod.served.clear()

    assert {k: client.get(k) for k in KEYS} == KEYS
    client.put("after", "kill")
    assert client.get("after") == "kill"
    touched = {partition_of(k, PARTITIONS) for k in KEYS}
    assert set(handed) & touched
    # The first request for the dead pod failed to connect and re-read the table; the
    # others went to the new leader directly.
    assert client.stats["rerouted"] >= 1
    assert client.stats["rerouted"] <= len(set(handed) & touched)
    for p in handed:
        assert client.leaders.leader_of(p) == 2
    assert set(handed) & touched <= set(cluster.pods[2].served)


def test_a_new_leader_unknown_to_dns_is_found(client, cluster, kv_service, pod_port):
    """Leadership moves to a pod that joined after the client's last DNS refresh."""
    client.put("user-1", "one")
    new = kv_service.add(3)
    cluster.add_pod(new, kv_service.addresses[new][0], pod_port)
    p = partition_of("user-1", PARTITIONS)
    cluster.table.move(p, new)
    assert client.get("user-1") == "one"  # NOT_LEADER 3 -> DNS refresh -> pod 3
    assert p in cluster.pods[new].served
    assert client.stats["not_leader"] == 1


def test_gives_up_when_no_leader_answers(client, cluster, kv_service):
    """All pods dead: a clear error after a bounded number of tries, no hang."""
    for ordinal in list(cluster.pods):
        cluster.kill(ordinal)
    with pytest.raises(KVError, match="no leader of partition") as info:
        client.get("user-1")
    assert client.stats["rerouted"] == client.max_tries
    assert isinstance(info.value.__cause__, OSError)


def test_demo_runs(bind):
    lines: list[str] = []
    stats = run_demo(bind, out=lines.append)
    assert stats["not_leader"] >= 1 and stats["rerouted"] >= 1
    assert any("killed pod 0" in line for line in lines)


@pytest.fixture
def pods_client(bind: BindServer, kv_service: FreshService, cluster: KVCluster) -> Iterator[KVClient]:
    """A client that reads the leader map from the pods (METADATA to any pod)."""
    kv = KVClient(kv_service.short, PARTITIONS, resolver=Resolver([bind.nameserver], timeout=1),
                  min_reread_interval=60, min_refresh=30, max_refresh=30)
    with kv:
        yield kv


def test_the_leader_map_comes_from_any_pod(pods_client, cluster) -> None:
    """Without a leaders function the client asks the pods, spread over them."""
    assert dict(pods_client.leaders.leaders) == cluster.table.snapshot()
    for _ in range(5):
        pods_client.leaders.refresh_leaders(force=True)
    assert pods_client.stats["metadata"] == 6
    assert sum(pod.metadata > 0 for pod in cluster.pods.values()) >= 2


def test_the_routing_survives_the_death_of_pod_0(pods_client, cluster, kv_service) -> None:
    """Pod 0 dies while DNS still lists it, its partitions handed to pod 1: every key is
    still served, the leader map is read again from the live pods (metadata is an "any pod"
    request: pod 0's refusal is retried elsewhere), never a bare ConnectionRefusedError."""
    for key, value in KEYS.items():
        pods_client.put(key, value)
    handed = cluster.table.move_all(0, 1)
    cluster.kill(0)
    assert pods_client.service.endpoint(ordinal=0)  # still in the client's view
    asked = pods_client.stats["metadata"]

    assert {k: pods_client.get(k) for k in KEYS} == KEYS
    pods_client.put("after", "pod 0 died")
    assert pods_client.get("after") == "pod 0 died"
    touched = {partition_of(k, PARTITIONS) for k in KEYS}
    assert set(handed) & touched
    assert pods_client.stats["rerouted"] >= 1
    assert pods_client.stats["metadata"] > asked  # re-read from a live pod
    for p in handed:
        assert pods_client.leaders.leader_of(p) == 1
    for _ in range(4):  # and again, whichever pod the rotation comes to
        pods_client.leaders.refresh_leaders(force=True)
    assert dict(pods_client.leaders.leaders) == cluster.table.snapshot()
