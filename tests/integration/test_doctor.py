"""``headless-client doctor`` against real servers: CoreDNS reading the fake Kubernetes API
(a ClusterIP Service, a non-governing Service, zero pods, a healthy StatefulSet), and the
optional checks against real Redis and Kafka servers."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import pytest

from headless_client.cli import main
from headless_client.doctor_stores import redis_command
from headless_client.testing import FakeClusterDNS
from tests.integration.coredns import _OUTSIDE, HOST, ZONE, Grounds, running_coredns
from tests.integration.servers.kafka import KafkaCluster
from tests.integration.servers.redis import RedisPods

NS = "doctor"


def corefile_with_reverse_zones(api_url: str, port: int) -> str:
    """CoreDNS's defaults plus the reverse zones, as kubeadm's Corefile has them
    (``kubernetes cluster.local in-addr.arpa ip6.arpa``): pod addresses get PTR records."""
    return f"""\
{ZONE}:{port} in-addr.arpa:{port} ip6.arpa:{port} {{
    bind {HOST}
    errors
    kubernetes {ZONE} in-addr.arpa ip6.arpa {{
        endpoint {api_url}
        ttl 5
    }}
}}
""" + _OUTSIDE.format(port=port, host=HOST)


@pytest.fixture(scope="module")
def coredns(grounds: Grounds) -> Grounds:
    model = grounds.model
    with model.batch():
        model.add_service("web", NS, ports=[("http", 8080)])
        model.add_statefulset("web", NS, 3, address_base="127.33.1.1")
        model.add_service("peers", NS, ports=[("http", 8080)],
                          selector={"headless-client.test/statefulset": "web"})
        model.add_service("api", NS, type="ClusterIP", ports=[("http", 8080)], cluster_ips=["127.96.33.1"])
        model.add_statefulset("api", NS, 2, service_name="api", address_base="127.33.2.1")
        model.add_service("empty", NS, ports=[("http", 8080)])
    grounds.sync()
    return grounds


def doctor(nameserver: str, service: str, *args: str) -> tuple[int, dict[str, dict[str, str]]]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["doctor", service, "--json", "--nameserver", nameserver, "--resolv-conf", "/dev/null",
                 "--timeout", "5", *args], out=out, err=err)
    assert err.getvalue() == ""
    data = json.loads(out.getvalue())
    assert data["healthy"] == (code == 0)
    return code, {f["check"]: f for f in data["findings"]}


@pytest.mark.integration
@pytest.mark.coredns
def test_healthy_statefulset_on_coredns(coredns: Grounds) -> None:
    """The governing Service of a StatefulSet: exit 0; TTL 5 (CoreDNS's default) is fine."""
    code, found = doctor(coredns.nameserver("coredns"), f"web.{NS}", "-p", "http")
    assert code == 0, found
    assert found["pod_names"]["status"] == "ok" and "web-0" in found["pod_names"]["message"]
    assert found["ttl"]["status"] == "ok" and "TTL 5 s" in found["ttl"]["message"]


@pytest.mark.integration
@pytest.mark.coredns
def test_clusterip_service_on_coredns(coredns: Grounds) -> None:
    """A ClusterIP Service: the headless check fails, naming its virtual IP."""
    code, found = doctor(coredns.nameserver("coredns"), f"api.{NS}", "-p", "http")
    assert code == 1 and found["headless"]["status"] == "fail"
    assert "127.96.33.1" in found["headless"]["message"]


@pytest.mark.integration
@pytest.mark.coredns
def test_non_governing_service_on_coredns(coredns: Grounds, coredns_binary: str,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    """A second Service over the StatefulSet's pods: generated names. Without reverse
    zones the doctor cannot name the governing Service; with them (kubeadm's Corefile)
    CoreDNS's PTR answers name it."""
    code, found = doctor(coredns.nameserver("coredns"), f"peers.{NS}", "-p", "http")
    assert code == 1 and found["pod_names"]["status"] == "warn"
    assert "serviceName" in found["pod_names"]["message"]
    directory = tmp_path_factory.mktemp("coredns-ptr")
    with running_coredns(coredns_binary, directory, coredns.model, corefile_with_reverse_zones) as server:
        server.sync(coredns.model)  # type: ignore[attr-defined]
        code, found = doctor(server.nameserver, f"peers.{NS}", "-p", "http")  # type: ignore[attr-defined]
    assert code == 1 and found["pod_names"]["status"] == "warn"
    assert "'web'" in found["pod_names"]["message"]


@pytest.mark.integration
@pytest.mark.coredns
def test_zero_pods_on_coredns(coredns: Grounds) -> None:
    """A Service without ready pods is NXDOMAIN on CoreDNS: the exists check says so."""
    code, found = doctor(coredns.nameserver("coredns"), f"empty.{NS}", "-p", "http")
    assert code == 1 and found["exists"]["status"] == "fail"
    assert "zero ready pods" in found["exists"]["message"]


@pytest.mark.integration
@pytest.mark.coredns
def test_coredns_and_the_fake_give_the_same_verdicts(coredns: Grounds) -> None:
    """Every service gets the same statuses from CoreDNS and from FakeClusterDNS."""
    for service in ("web", "peers", "api", "empty"):
        verdicts = []
        for ground in ("coredns", "fake"):
            code, found = doctor(coredns.nameserver(ground), f"{service}.{NS}", "-p", "http")
            verdicts.append((code, {check: f["status"] for check, f in found.items()}))
        assert verdicts[0] == verdicts[1], service


# -- Redis and Kafka ---------------------------------------------------------------------------------


@pytest.fixture
def redis_dns(redis_pods: RedisPods) -> Iterator[FakeClusterDNS]:
    """A fake cluster DNS whose ``redis.prod`` lists the real Redis pods."""
    with FakeClusterDNS() as cluster:
        cluster.add_statefulset("redis", "prod", 0, port=redis_pods.port, port_name="redis")
        for pod in redis_pods.pods[:2]:
            cluster.add_pod("redis", "prod", pod.ordinal, address=pod.address)
        yield cluster


@pytest.mark.redis
def test_redis_replica_announced_by_name_and_primary_by_ip(redis_pods: RedisPods, redis_dns: FakeClusterDNS) -> None:
    """Pod 1 replicating pod 0 and announcing its pod name: the primary's line is ok; the
    replica follows its primary by IP (redis-server cannot resolve cluster names here),
    which is a warning; the CLI exits 1."""
    primary, replica = redis_pods.pod(0), redis_pods.pod(1)
    redis_command(replica.address, replica.port, 5, "CONFIG", "SET", "replica-announce-ip", replica.fqdn)
    redis_command(replica.address, replica.port, 5, "REPLICAOF", primary.address, str(primary.port))
    try:
        deadline = time.monotonic() + 10
        while not redis_command(primary.address, primary.port, 5, "ROLE")[2]:  # the replica's link
            assert time.monotonic() < deadline, "the replica did not connect to its primary"
            time.sleep(0.02)  # polling another process under the deadline above
        out = io.StringIO()
        code = main(["doctor", "redis.prod", "--redis", "--json", "-p", "redis", "--nameserver",
                     redis_dns.nameserver, "--resolv-conf", "/dev/null"], out=out, err=io.StringIO())
        findings = [f for f in json.loads(out.getvalue())["findings"] if f["check"] == "redis"]
    finally:
        redis_command(replica.address, replica.port, 5, "REPLICAOF", "NO", "ONE")
        redis_command(replica.address, replica.port, 5, "CONFIG", "SET", "replica-announce-ip", "")
    assert code == 1
    by_node = {f["message"].split(":", 1)[0]: f for f in findings}
    assert by_node["redis-0"]["status"] == "ok" and replica.fqdn in by_node["redis-0"]["message"]
    assert by_node["redis-1"]["status"] == "warn" and primary.address in by_node["redis-1"]["message"]


@pytest.mark.kafka
def test_kafka_brokers_advertise_per_pod_names(kafka_cluster: KafkaCluster) -> None:
    """The real KRaft cluster advertises kafka-N.kafka.prod... on its CLIENT listener:
    the Kafka check passes and names them."""
    pod = kafka_cluster.pod(0)
    with FakeClusterDNS() as cluster:
        cluster.add_statefulset("kafka", "prod", 0, port=pod.client_port, port_name="kafka")
        for node in kafka_cluster.pods:
            cluster.add_pod("kafka", "prod", node.node_id, address=node.address)
        out = io.StringIO()
        main(["doctor", "kafka.prod", "-p", "kafka", "--json", "--kafka", f"{pod.address}:{pod.client_port}",
              "--nameserver", cluster.nameserver, "--resolv-conf", "/dev/null"], out=out, err=io.StringIO())
    (kafka,) = [f for f in json.loads(out.getvalue())["findings"] if f["check"] == "kafka"]
    assert kafka["status"] == "ok", kafka
    assert f"kafka-0.kafka.prod.svc.cluster.local:{pod.client_port}" in kafka["message"]


@pytest.mark.kafka
def test_kafka_internal_listener_advertises_ips(kafka_cluster: KafkaCluster) -> None:
    """The INTERNAL listener advertises addresses: the Kafka check warns, naming one."""
    pod = kafka_cluster.pod(0)
    internal = pod.internal
    with FakeClusterDNS() as cluster:
        cluster.add_statefulset("kafka", "prod", 1)
        out = io.StringIO()
        main(["doctor", "kafka.prod", "--json", "--kafka", internal, "--nameserver", cluster.nameserver,
              "--resolv-conf", "/dev/null"], out=out, err=io.StringIO())
    (kafka,) = [f for f in json.loads(out.getvalue())["findings"] if f["check"] == "kafka"]
    assert kafka["status"] == "warn" and "advertise an IP" in kafka["message"]
