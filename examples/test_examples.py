"""Every example runs to completion on the fake cluster, and in --real mode against a DNS
server given with --nameserver (a FakeClusterDNS standing in for the cluster's); the recipe
programs that need real servers (WITH_SERVERS) run in the integration test named for each."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from headless_client.testing import FakeClusterDNS
from tests.integration.docs_programs import run_example as run

HERE = Path(__file__).parent

# script -> lines (regular expressions) its output must contain
EXPECTED = {
    "round_robin.py": [
        r"web\.demo\.svc\.cluster\.local: 3 pods",
        r"(?s)connected to web-0\n  connected to web-1\n  connected to web-2",
        r"300 picks: \S+=100, \S+=100, \S+=100",
    ],
    "sticky_sessions.py": [
        r"alice +-> web-\d",
        r"scaled to 4 pods",
        r"\d+ of 1000 keys moved \(about 1/4 expected\), all to: web-3$",
    ],
    "statefulset_pods.py": [
        r"db\.demo\.svc\.cluster\.local: ordinals \[0, 1, 2\]",
        r"primary \(ordinal 0\): db-0\.db\.demo\.svc\.cluster\.local",
        r"without SRV: found ordinals \[0, 1, 2\]",
        r"write connection to ordinal 0: 127\.",
    ],
    "asyncio_service.py": [
        r"web\.demo\.svc\.cluster\.local: web-0 web-1 web-2",
        r"change: 3 -> 5 pods: web-0 web-1 web-2 web-3 web-4",
        r"the new pod web-4 says: web-4",
    ],
    "httpx_client.py": [
        r"round robin: web-0 web-1 web-2 web-0 web-1 web-2",
        r"sticky: X-User alice -> web-\d$",
        r"web-1 crashed; 6 more requests: (?!.*web-1)",
        r"ejected after failing: web-1\.web\.demo",
    ],
    "grpc_channel.py": [
        r"round robin: greeter-0 greeter-1 greeter-2 greeter-0 greeter-1 greeter-2",
        r"scaled up: greeter-3 answered after [\d.]+s, \d+ calls, 0 failed",
        r"greeter-1 crashed; 8 retryable calls: (?!.*greeter-1)",
        r"ejected: greeter-1\.greeter\.demo",
    ],
    "requests_session.py": [
        r"round robin: web-0 web-1 web-2 web-0 web-1 web-2",
        r"another host: ForeignHost",
        r"web-1 crashed; 6 more requests: (?!.*web-1)",
        r"ejected after failing: web-1\.web\.demo",
    ],
    "aiohttp_session.py": [
        r"round robin: web-0 web-1 web-2 web-0 web-1 web-2",
        r"connections per pod: \{'web-0': 1, 'web-1': 1, 'web-2': 1\}",
        r"web-1 crashed; 6 more requests: (?!.*web-1)",
    ],
    "client_registry.py": [
        r"round robin: web-0 web-1 web-2 web-0 web-1 web-2",
        r"clients: 3",
        r"scaled down to 2: clients 2 \| answers (web-[01] ?){4}$",
    ],
    "kubernetes_api.py": [
        r"^kubeconfig context ops: http://127\.0\.0\.1:\d+, namespace demo$",
        r"web\.demo\.svc\.cluster\.local: 3 pods; this pod's zone: zone-b",
        r"zone=zone-a node=node-a pod=web-0",
        r"picks stay in zone-b: \['web-1'\]",
        r"scaled to 4: seen after \d+ ms",
        r"web-1 is terminating: still listed, new picks go to zone-b's other pod: \['web-3'\]",
        r"web-1\.web\.demo\.svc\.cluster\.local .* terminating$",
    ],
    "tls_pods.py": [
        r"^socket: \(\('DNS', 'web-0\.web\.demo\.svc\.cluster\.local'\),\)$",
        r"^requests: \['web-0', 'web-1', 'web-2'\]$",
        r"^httpx: \['web-0', 'web-1', 'web-2'\]$",
        r"^checked against the service's name instead: refused$",
        r"^aiohttp: \['web-0', 'web-1', 'web-2'\]$",
        r"^grpc: \['greeter-0', 'greeter-1', 'greeter-2'\]$",
    ],
    "partition_leader.py": [
        r"partition 0: leader kafka-0\.kafka\.demo",
        r"order-1 -> partition 4 -> kafka-1: OK",
        r"kafka-1 is not the leader of partition 4; hint: kafka-2",
        r"(?s)hint: kafka-2\norder-1 -> partition 4 -> kafka-2: OK\norder-1 -> partition 4 -> kafka-2: OK",
        # Metadata from any pod (any_pod=True): kafka-0's death does not stop the routing.
        r"kafka-0 died; its partitions \[0, 3\] moved to kafka-1",
        r"^metadata from kafka-[12], kafka-[12], kafka-[12]$",
        r"(?s)moved to kafka-1\n.*order-2 -> partition 3 -> kafka-1: OK$",
    ],
}


# script -> the optional package it needs
NEEDS = {"httpx_client.py": "httpx", "grpc_channel.py": "grpc", "requests_session.py": "requests",
         "aiohttp_session.py": "aiohttp", "tls_pods.py": "trustme"}


# script -> the test module that runs it against real servers (the recipe pages' programs)
WITH_SERVERS = {
    "postgres_psycopg.py": "tests/integration/test_postgres.py",
    "postgres_asyncpg.py": "tests/integration/test_postgres.py",
    "postgres_sqlalchemy.py": "tests/integration/test_postgres.py",
    "redis_sharded_cache.py": "tests/integration/test_redis.py",
    "kafka_python_orders.py": "tests/integration/test_kafka.py",
    "kafka_aiokafka_orders.py": "tests/integration/test_kafka.py",
}


def test_every_example_is_tested() -> None:
    """Each program runs here on the fake cluster, or in the integration test named for it."""
    scripts = {p.name for p in HERE.glob("*.py") if not p.name.startswith(("test_", "_"))}
    assert scripts == set(EXPECTED) | set(WITH_SERVERS)
    for script, module in WITH_SERVERS.items():
        assert f'"{script}"' in (HERE.parent / module).read_text(encoding="utf-8"), module


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_on_the_fake_cluster(script: str) -> None:
    extra = NEEDS.get(script)
    if extra is not None and importlib.util.find_spec(extra) is None:
        pytest.skip(f"{extra} is not installed")
    out = run(script)
    for pattern in EXPECTED[script]:
        assert re.search(pattern, out, re.M), f"{pattern!r} not in the output of {script}:\n{out}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[FakeClusterDNS]:
    """Stands in for a cluster's DNS, with pods, for the examples' --real mode."""
    with FakeClusterDNS() as c:
        c.add_statefulset("web", "prod", 2, serve="tcp")
        c.add_statefulset("db", "prod", 2, port_name="tcp-db", serve="tcp")
        yield c


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("round_robin.py", ["--service", "web.prod"], r"connected to web-0\n  connected to web-1"),
        ("sticky_sessions.py", ["--service", "web.prod"], r"alice +-> web-[01]"),
        ("statefulset_pods.py", ["--namespace", "prod"], r"without SRV: found ordinals \[0, 1\]"),
        ("asyncio_service.py", ["--service", "web.prod"], r"connected to 127\."),
        ("partition_leader.py", ["--service", "web.prod", "--port", "http"], r"partition 1: leader web-1"),
        ("client_registry.py", ["--service", "web.prod"], r"round robin: web-0 web-1 web-0 web-1"),
    ],
)
def test_example_in_real_mode(cluster: FakeClusterDNS, script: str, args: list[str], expected: str) -> None:
    out = run(script, "--real", "--nameserver", cluster.nameserver, *args)
    assert re.search(expected, out, re.M), out
