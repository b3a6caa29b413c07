"""headless_client.contrib.kafka without brokers: reading advertised brokers from metadata
shapes, the warning for addresses, leader maps, and resolve_cluster_names against the fake
cluster DNS. Real brokers: tests/integration/test_kafka.py."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections import namedtuple

import pytest

from headless_client import HeadlessService, InvalidArgument, InvalidName, PartitionLeader
from headless_client.contrib.kafka import (
    AdvertisedAddressWarning,
    KafkaLeaders,
    advertised_brokers,
    check_advertised,
    leaders_from_metadata,
    resolve_cluster_names,
)
from headless_client.testing import FakeClusterDNS

BrokerMetadata = namedtuple("BrokerMetadata", "nodeId host port rack")  # aiokafka's shape


class Metadata:
    """A client's cluster metadata (kafka-python's and aiokafka's ``brokers()``)."""

    def __init__(self, brokers: list[object]) -> None:
        self._brokers = brokers

    def brokers(self) -> list[object]:
        return list(self._brokers)


class Producer:
    """A producer holding its metadata as aiokafka's does (``.client.cluster``)."""

    def __init__(self, brokers: list[object]) -> None:
        self.client = type("Client", (), {"cluster": Metadata(brokers)})()


class Admin:
    """kafka-python's KafkaAdminClient: describe_cluster() and describe_topics()."""

    def __init__(self, hosts: dict[int, str], leaders: dict[int, int]) -> None:
        self.hosts = hosts
        self.leaders = leaders
        self.calls = 0

    def describe_cluster(self) -> dict[str, object]:
        self.calls += 1
        return {"brokers": [{"broker_id": n, "host": h, "port": 9092, "rack": None} for n, h in self.hosts.items()]}

    def describe_topics(self, topics: list[str]) -> list[dict[str, object]]:
        return [{"topic": t, "partitions": [{"partition_index": p, "leader_id": n} for p, n in self.leaders.items()]}
                for t in topics]


NAMES = {n: f"kafka-{n}.kafka.prod.svc.cluster.local" for n in range(3)}


@pytest.mark.parametrize(
    "source",
    [
        Admin(NAMES, {}),
        Metadata([BrokerMetadata(n, h, 9092, None) for n, h in NAMES.items()]),
        Producer([BrokerMetadata(n, h, 9092, None) for n, h in NAMES.items()]),
        [(n, h, 9092) for n, h in NAMES.items()],
        [{"node_id": n, "host": h, "port": 9092} for n, h in NAMES.items()],
    ],
    ids=["admin", "metadata", "producer", "tuples", "dicts"],
)
def test_advertised_brokers_from_each_metadata_shape(source) -> None:
    """Admin clients, ClusterMetadata, producers, tuples and dicts all read the same."""
    assert advertised_brokers(source) == [(n, h, 9092) for n, h in NAMES.items()]
    assert check_advertised(source) == []


def test_host_port_strings_and_bad_sources() -> None:
    """'host:port' strings (IPv6 in brackets) read too; anything else names itself."""
    assert advertised_brokers(["kafka-0:9092", "[fd00::1]:9093", "bare"]) == [
        (None, "kafka-0", 9092), (None, "fd00::1", 9093), (None, "bare", None)]
    with pytest.raises(InvalidArgument, match="42"):
        advertised_brokers(42)
    with pytest.raises(InvalidArgument, match="broker description"):
        advertised_brokers([object()])


def test_addresses_are_warned_and_logged(caplog) -> None:
    """IPv4 and IPv6 literals are addresses; a warning and a log line name them."""
    brokers = [{"node_id": 0, "host": NAMES[0], "port": 9092}, {"node_id": 1, "host": "10.244.1.7", "port": 9092},
               {"node_id": 2, "host": "fd00::7", "port": 9092}]
    with caplog.at_level(logging.WARNING, "headless_client.kafka"), \
            pytest.warns(AdvertisedAddressWarning, match=r"10\.244\.1\.7:9092, \[fd00::7\]:9092"):
        assert check_advertised(brokers) == ["10.244.1.7:9092", "[fd00::7]:9092"]
    assert "advertised.listeners" in caplog.text
    with caplog.at_level(logging.WARNING, "headless_client.kafka"):
        assert check_advertised(brokers, warn=False) == ["10.244.1.7:9092", "[fd00::7]:9092"]


def test_leaders_from_metadata_by_host_and_by_node_id() -> None:
    """Leaders named by advertised host (folded) or by node id; -1 (no leader) left out."""
    brokers = [(0, "Kafka-0.kafka.prod.svc.cluster.local.", 9092), (1, "10.0.0.2", 9092)]
    partitions = {("t", 0): 0, ("t", 1): 1, ("t", 2): -1}
    assert leaders_from_metadata(brokers, partitions) == {
        ("t", 0): "kafka-0.kafka.prod.svc.cluster.local", ("t", 1): "10.0.0.2"}
    assert leaders_from_metadata(brokers, partitions, by="node_id") == {("t", 0): 0, ("t", 1): 1}
    with pytest.raises(InvalidName, match="ordinal"):
        leaders_from_metadata(brokers, partitions, by="ordinal")  # type: ignore[arg-type]


def test_kafka_leaders_feed_partition_leader() -> None:
    """KafkaLeaders is a leader source: the map names each partition's leader pod."""
    admin = Admin(NAMES, {0: 1, 1: 2, 2: 0})
    leaders = PartitionLeader(KafkaLeaders(admin, ["orders"]))
    assert leaders.leader_of(("orders", 0)) == NAMES[1]
    admin.leaders = {0: 2, 1: 2, 2: 0}
    assert leaders.refresh_leaders(force=True)
    assert leaders.leader_of(("orders", 0)) == NAMES[2]
    with pytest.raises(InvalidArgument, match="orders"):
        KafkaLeaders(admin, "orders")


def test_kafka_leaders_warn_once_about_addresses() -> None:
    """Brokers advertising addresses: the first read warns, later ones only log."""
    source = KafkaLeaders(Admin({0: "10.0.0.1"}, {0: 0}), ["t"], by="node_id")
    with pytest.warns(AdvertisedAddressWarning):
        assert source() == {("t", 0): 0}
    assert source() == {("t", 0): 0}  # filterwarnings=error: a second warning would fail here


# --------------------------------------------------------------------------------------------
# resolve_cluster_names
# --------------------------------------------------------------------------------------------


@pytest.fixture
def cluster():
    with FakeClusterDNS() as c:
        c.add_statefulset("kafka", "prod", 2, port_name="tcp-client", port=9092)
        yield c


def addresses(answer) -> set[str]:
    return {info[4][0] for info in answer}


def test_cluster_names_resolve_through_the_library_while_active(cluster) -> None:
    """Inside the block a pod's name resolves to its address; outside it does not."""
    name = "kafka-1.kafka.prod.svc.cluster.local"
    address = cluster.pod("kafka", "prod", 1).address
    original = socket.getaddrinfo
    with resolve_cluster_names(cluster.resolver()) as resolver:
        assert resolver.cluster_domain == "cluster.local"
        assert addresses(socket.getaddrinfo(name, 9092, type=socket.SOCK_STREAM)) == {address}
        assert socket.getaddrinfo(name + ".", "9092")[0][4] == (address, 9092)
        assert addresses(socket.getaddrinfo("127.0.0.1", 80)) == {"127.0.0.1"}  # others: untouched
        with pytest.raises(socket.gaierror) as missing:
            socket.getaddrinfo("kafka-9.kafka.prod.svc.cluster.local", 9092)
        assert missing.value.errno == socket.EAI_NONAME
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo(name, 9092, socket.AF_INET6)  # an IPv4 pod has no IPv6 address
    assert socket.getaddrinfo is original


def test_cluster_names_from_asyncio_and_threads(cluster) -> None:
    """asyncio's getaddrinfo (aiokafka's path) and other threads see the shim too."""
    name = "kafka-0.kafka.prod.svc.cluster.local"
    address = cluster.pod("kafka", "prod", 0).address
    seen: list[set[str]] = []
    with resolve_cluster_names(cluster.resolver()):
        loop_answer = asyncio.run(_loop_lookup(name))
        worker = threading.Thread(target=lambda: seen.append(addresses(socket.getaddrinfo(name, 1))))
        worker.start()
        worker.join(10)
    assert addresses(loop_answer) == {address}
    assert seen == [{address}]


async def _loop_lookup(name: str):
    return await asyncio.get_running_loop().getaddrinfo(name, 9092)


def test_nested_uses_stack_and_restore(cluster) -> None:
    """An inner use wins while active; leaving both restores the system's function."""
    original = socket.getaddrinfo
    with FakeClusterDNS(cluster_domain="k8s.example") as other:
        other.add_statefulset("db", "prod", 1, port_name="tcp", port=5432)
        with resolve_cluster_names(cluster.resolver()):
            with resolve_cluster_names(other.resolver()):
                assert addresses(socket.getaddrinfo("db-0.db.prod.svc.k8s.example", 1)) == {
                    other.pod("db", "prod", 0).address}
                assert addresses(socket.getaddrinfo("kafka-0.kafka.prod.svc.cluster.local", 1)) == {
                    cluster.pod("kafka", "prod", 0).address}
            with pytest.raises(socket.gaierror):
                socket.getaddrinfo("db-0.db.prod.svc.k8s.example", 1, flags=socket.AI_NUMERICHOST)
            assert socket.getaddrinfo is not original
    assert socket.getaddrinfo is original


def test_a_resolver_is_required(cluster) -> None:
    """Anything but the library's Resolver is refused, naming it."""
    with pytest.raises(InvalidArgument, match="nope"), resolve_cluster_names("nope"):  # type: ignore[arg-type]
        pass


def test_bootstrap_from_a_service_with_the_shim(cluster) -> None:
    """The per-pod names of kafka_bootstrap_servers(svc) resolve inside the block."""
    from headless_client.kafka_helpers import kafka_bootstrap_servers

    with HeadlessService("kafka.prod", port="tcp-client", resolver=cluster.resolver()) as svc, \
            resolve_cluster_names(cluster.resolver()):
        for item in kafka_bootstrap_servers(svc).split(","):
            host, port = item.rsplit(":", 1)
            assert socket.getaddrinfo(host, int(port))[0][4][1] == 9092
