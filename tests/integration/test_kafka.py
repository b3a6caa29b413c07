"""Kafka end to end: a real 3-broker KRaft cluster (tests/integration/servers/kafka.py) whose
brokers advertise per-pod names, named by the library's fake cluster DNS, with real
clients (kafka-python, aiokafka): bootstrap servers from the service, keyed records in the
partition kafka_partition computes, that partition's leader named by the library's
partition-leader routing, a broker moved to a new address found again, the warning for
brokers that advertise addresses, and the recipe page's program."""

from __future__ import annotations

import asyncio
import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

with warnings.catch_warnings():
    # kafka-python's package import uses importlib.resources APIs deprecated in 3.11.
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka
    import kafka.errors

from headless_client import HeadlessService, PartitionLeader, kafka_partition
from headless_client.contrib.kafka import (
    AdvertisedAddressWarning,
    KafkaLeaders,
    advertised_brokers,
    check_advertised,
    resolve_cluster_names,
)
from headless_client.kafka_helpers import kafka_bootstrap_servers
from headless_client.testing import FakeClusterDNS
from tests.integration.docs_programs import run_example
from tests.integration.servers.kafka import KafkaCluster
from tests.integration.servers.process import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

FAST = {"min_refresh": 0.1, "max_refresh": 0.5, "empty_grace": 0.0}
PARTITIONS = 6
KEYS = [f"customer-{n}".encode() for n in range(24)]


@pytest.fixture
def dns(kafka_cluster: KafkaCluster) -> Iterator[FakeClusterDNS]:
    """kafka-0..2 of kafka.prod where they are now, named port tcp-client."""
    with FakeClusterDNS() as cluster:
        cluster.add_statefulset("kafka", "prod", 0, port_name="tcp-client", port=kafka_cluster.client_port)
        for pod in kafka_cluster.pods:
            cluster.add_pod("kafka", "prod", pod.node_id, address=pod.address)
        yield cluster


@pytest.fixture
def names(dns: FakeClusterDNS) -> Iterator[None]:
    """The clients resolve the advertised per-pod names through the library (no /etc/hosts)."""
    with resolve_cluster_names(dns.resolver()):
        yield


@pytest.fixture
def topic(kafka_cluster: KafkaCluster) -> str:
    return kafka_cluster.create_topic(partitions=PARTITIONS, replication_factor=3)


@pytest.fixture
def admin(dns: FakeClusterDNS, names: None) -> Iterator[Any]:
    """kafka-python's admin client on the CLIENT listener, bootstrapped from DNS."""
    servers = kafka_bootstrap_servers("kafka.prod", "tcp-client", resolver=dns.resolver())
    with kafka.KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=15_000) as client:
        yield client


def producer_for(servers: str) -> Any:
    return kafka.KafkaProducer(bootstrap_servers=servers, acks="all", request_timeout_ms=15_000,
                               max_block_ms=30_000, retry_backoff_ms=100, reconnect_backoff_max_ms=1000)


def test_bootstrap_servers_from_the_service_feed_a_real_producer(dns, names, topic, kafka_cluster) -> None:
    """kafka_bootstrap_servers gives the per-pod names (from a live service or from DNS);
    kafka-python bootstraps from them, and each keyed record lands in kafka_partition's."""
    with HeadlessService("kafka.prod", port="tcp-client", resolver=dns.resolver(), **FAST) as svc:
        servers = kafka_bootstrap_servers(svc)
    assert servers == ",".join(f"{pod.fqdn}:{kafka_cluster.client_port}" for pod in kafka_cluster.pods)
    assert kafka_bootstrap_servers("kafka.prod", "tcp-client", resolver=dns.resolver()) == servers
    producer = producer_for(servers)
    try:
        for key in KEYS:
            sent = producer.send(topic, key=key, value=b"v").get(timeout=30)
            assert sent.partition == kafka_partition(key, PARTITIONS), key
    finally:
        producer.close(timeout=10)


def test_each_records_partition_leader_is_the_pod_the_routing_names(dns, names, topic, admin, kafka_cluster) -> None:
    """Leaders from the cluster's metadata (KafkaLeaders) drive PartitionLeader: for every
    key, the pod picked for (topic, kafka_partition(key)) is the broker leading it."""
    leaders = PartitionLeader(KafkaLeaders(admin, [topic]))
    truth = kafka_cluster.leaders(topic)
    wait_until("the client listener's metadata", lambda: leaders.refresh_leaders(force=True) and
               {p: leaders.leader_of((topic, p)) for p in range(PARTITIONS)}
               == {p: kafka_cluster.pod(n).fqdn for p, n in truth.items()}, timeout=30)
    assert set(truth.values()) == {0, 1, 2}
    with HeadlessService("kafka.prod", port="tcp-client", resolver=dns.resolver(), strategy=leaders, **FAST) as svc:
        producer = producer_for(kafka_bootstrap_servers(svc))
        try:
            for key in KEYS:
                partition = producer.send(topic, key=key, value=b"v").get(timeout=30).partition
                assert partition == kafka_partition(key, PARTITIONS)
                leader = svc.pick(partition=(topic, partition))
                assert leader.ordinal == truth[partition]
                assert (leader.address, leader.port) == (kafka_cluster.pod(truth[partition]).address,
                                                         kafka_cluster.client_port)
        finally:
            producer.close(timeout=10)


def test_aiokafka_lands_keys_in_the_same_partitions(dns, names, topic) -> None:
    """aiokafka (asyncio's getaddrinfo, through the same scoped resolution) agrees."""
    aiokafka = pytest.importorskip("aiokafka", reason="aiokafka is in the test extra")
    servers = kafka_bootstrap_servers("kafka.prod", "tcp-client", resolver=dns.resolver())

    async def main() -> dict[bytes, int]:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=servers, acks="all")
        await producer.start()
        try:
            assert check_advertised(producer.client.cluster) == []
            return {key: (await producer.send_and_wait(topic, key=key, value=b"v")).partition for key in KEYS}
        finally:
            await producer.stop()

    assert asyncio.run(main()) == {key: kafka_partition(key, PARTITIONS) for key in KEYS}


def test_a_broker_restarted_on_a_new_address_is_found_again(dns, names, topic, admin, kafka_cluster) -> None:
    """kafka-1 moves to a new IP (same name). A producer made before the move reaches it
    again by name, the service's view follows DNS, and the routing names it at its new
    address for the partitions it leads again."""
    leaders = PartitionLeader(KafkaLeaders(admin, [topic]))
    with HeadlessService("kafka.prod", port="tcp-client", resolver=dns.resolver(), strategy=leaders, **FAST) as svc:
        producer = producer_for(kafka_bootstrap_servers(svc))
        try:
            for partition in range(PARTITIONS):
                producer.send(topic, value=b"before", partition=partition).get(timeout=30)
            before = kafka_cluster.pod(1)

            moved = kafka_cluster.restart(1, new_address=True)
            dns.reip_pod("kafka", "prod", 1, address=moved.address)
            assert moved.address != before.address and moved.fqdn == before.fqdn
            wait_until("the view at kafka-1's new address", lambda: svc.endpoint(1).address == moved.address,
                       timeout=15)
            led = kafka_cluster.elect_preferred_leaders(topic)
            assert 1 in led.values()

            for partition in range(PARTITIONS):
                sent = producer.send(topic, value=b"after", partition=partition).get(timeout=60)
                assert sent.partition == partition
            wait_until("metadata naming kafka-1 again", lambda: leaders.refresh_leaders(force=True) and all(
                leaders.leader_of((topic, p)) == kafka_cluster.pod(n).fqdn for p, n in led.items()), timeout=30)
            for partition, node in led.items():
                assert svc.pick(partition=(topic, partition)).address == kafka_cluster.pod(node).address
        finally:
            producer.close(timeout=10)


def test_brokers_advertising_addresses_are_warned(kafka_cluster, admin) -> None:
    """The INTERNAL listener advertises addresses: reading leaders from it warns (once per
    KafkaLeaders); the CLIENT listener advertises names: no warning."""
    assert check_advertised(admin) == []
    assert {host for _, host, _ in advertised_brokers(admin)} == {pod.fqdn for pod in kafka_cluster.pods}
    topic = kafka_cluster.create_topic(partitions=2, replication_factor=3)
    with kafka_cluster.admin() as by_address:
        source = KafkaLeaders(by_address, [topic], by="node_id")
        with pytest.warns(AdvertisedAddressWarning, match="advertise IP addresses") as caught:
            mapping = source()
        assert len(caught) == 1
        assert str(kafka_cluster.pod(0).address) in str(caught[0].message)
        assert mapping == {(topic, p): n for p, n in kafka_cluster.leaders(topic).items()}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            source()  # warned once: later reads only log


#: kafka-python's import uses importlib.resources' legacy API, deprecated in Python 3.11 (as
#: above); a user's default warning filters do not show it.
KAFKA_PYTHON_IMPORT = ("-W", "ignore::DeprecationWarning:kafka.protocol.schemas.load_json",
                       "-W", "ignore::DeprecationWarning:importlib.resources._legacy")


@pytest.mark.parametrize("script", ["kafka_python_orders.py", "kafka_aiokafka_orders.py"])
def test_the_recipe_program_runs(script, dns, admin, kafka_cluster) -> None:
    """examples/kafka_python_orders.py and kafka_aiokafka_orders.py (docs/kafka.md): orders
    produced by key, each to kafka_partition's partition, whose leader is the pod the
    program names; consumed back."""
    topic = kafka_cluster.create_topic(partitions=PARTITIONS, replication_factor=3)
    # Each broker applies the metadata log on its own: wait until the one asked knows.
    wait_until("the new topic in the client listener's metadata",
               lambda: len(KafkaLeaders(admin, [topic])()) == PARTITIONS, timeout=30)
    out = run_example(script, "--nameserver", dns.nameserver, "--topic", topic, python=KAFKA_PYTHON_IMPORT)
    assert re.search(r"^bootstrap: kafka-0\.kafka\.prod\.svc\.cluster\.local:\d+,kafka-1\.", out, re.M), out
    truth = kafka_cluster.leaders(topic)
    produced = re.findall(r"^order (\S+) -> partition (\d+), leader kafka-(\d)$", out, re.M)
    assert len(produced) == 6, out
    for key, partition, leader in produced:
        assert int(partition) == kafka_partition(key.encode(), PARTITIONS)
        assert int(leader) == truth[int(partition)], (key, partition, leader, truth)
    assert re.search(r"^consumed 6 orders$", out, re.M), out
