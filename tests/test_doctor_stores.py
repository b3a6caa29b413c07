"""The doctor's Kafka and Redis verdicts (pure); the checks against real servers are in
tests/integration/test_doctor.py."""

from __future__ import annotations

from dataclasses import replace

from headless_client.doctor import Finding
from headless_client.doctor_stores import check_redis, judge_kafka, judge_redis
from tests.test_doctor import facts

SERVICE = "kafka.prod.svc.cluster.local"


def test_kafka_brokers_by_name_under_the_service_pass() -> None:
    """Per-pod names under the service: ok, naming them."""
    brokers = [(i, f"kafka-{i}.{SERVICE}", 9092) for i in range(3)]
    (finding,) = judge_kafka("kafka:9092", brokers, SERVICE)
    assert finding.status == "ok" and f"kafka-0.{SERVICE}:9092" in finding.message


def test_kafka_brokers_by_ip_warn() -> None:
    """A broker advertising an IP (v4 or v6) is a warning with the fix."""
    (finding,) = judge_kafka("kafka:9092", [(0, "10.0.0.1", 9092), (1, "fd00::1", 9092)], SERVICE)
    assert finding.status == "warn" and "2 of 2" in finding.message and "advertised.listeners" in finding.message


def test_kafka_names_elsewhere_and_no_brokers() -> None:
    """Names under another domain are information; an empty broker list fails."""
    assert judge_kafka("b:9092", [(0, "broker.example.com", 9092)], SERVICE)[0].status == "info"
    assert judge_kafka("b:9092", [], SERVICE)[0].status == "fail"


def test_redis_roles() -> None:
    """A replica following its primary by name passes, by IP warns; a primary listing
    replicas by IP warns; a bad reply fails."""
    assert judge_redis("r-1", ["slave", "redis-0.redis.prod.svc.cluster.local", 6379, "connected", 0], None,
                       "redis.prod")[0].status == "ok"
    assert judge_redis("r-1", ["slave", "10.0.0.1", 6379, "connected", 0], None, "redis.prod")[0].status == "warn"
    assert judge_redis("r-0", ["master", 0, [["10.0.0.2", "6379", "0"]]], None, "redis.prod")[0].status == "warn"
    assert judge_redis("r-0", RuntimeError("ERR unknown command"), None, "redis.prod")[0].status == "fail"


def test_redis_judgement_of_cluster_nodes() -> None:
    """CLUSTER NODES lines without a hostname warn; with one they pass (pure)."""
    hostless = "abc 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-5460\n"
    named = "abc 10.0.0.1:6379@16379,redis-0.redis.prod.svc.cluster.local myself,master - 0 0 1 connected\n"
    role = ["master", 0, []]
    assert [f.status for f in judge_redis("redis-0", role, hostless, "redis.prod")] == ["warn"]
    assert [f.status for f in judge_redis("redis-0", role, named, "redis.prod")] == ["ok"]


def test_redis_with_no_pods_fails() -> None:
    """No endpoints: nothing to ask, said plainly."""
    empty = replace(facts(), endpoints=None)
    assert check_redis(empty, timeout=1) == [
        Finding("redis", "fail", "no pods to ask: web.prod.svc.cluster.local has no endpoints")]
