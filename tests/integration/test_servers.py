"""Smoke tests of the real data-store servers the suite starts (tests/integration/servers/).

They prove the ground itself works, with the clients users have (psycopg, asyncpg, redis-py,
kafka-python), before any library code is put on top.

Kafka's CLIENT listener advertises per-pod names (``kafka-0.kafka.prod.svc.cluster.local``)
that no system resolver knows. Here, and only inside the tests that need it, the fixture
``pod_names_resolve`` patches ``socket.getaddrinfo`` (monkeypatch restores it) so that those
names answer with the pods' current loopback addresses; kafka-python looks names up through
``socket.getaddrinfo``. The library's own tests resolve them through its fake cluster DNS.
"""

from __future__ import annotations

import asyncio
import socket
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.servers.kafka import KafkaCluster, close_failed_connects
from tests.integration.servers.postgres import PgRole, PostgresCluster
from tests.integration.servers.process import ServerError, wait_until
from tests.integration.servers.redis import RedisPods

with warnings.catch_warnings():
    # kafka-python's package import uses importlib.resources APIs deprecated in 3.11.
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka
    import kafka.errors

asyncpg = pytest.importorskip("asyncpg", reason="asyncpg is in the test extra: pip install -e '.[test]'")
psycopg = pytest.importorskip("psycopg", reason="psycopg is in the test extra: pip install -e '.[test]'")
redis = pytest.importorskip("redis", reason="redis is in the test extra: pip install -e '.[test]'")

pytestmark = pytest.mark.integration


def refuses(address: str, port: int) -> bool:
    """True when nothing listens at ``address:port`` any more."""
    try:
        with socket.create_connection((address, port), timeout=2.0):
            return False
    except ConnectionRefusedError:
        return True


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_roles(postgres_cluster: PostgresCluster) -> None:
    """pg-0 is the primary and the others standbys in recovery, each on its own address."""
    cluster = postgres_cluster
    assert cluster.primary.name == "pg-0"
    assert [p.name for p in cluster.standbys] == ["pg-1", "pg-2"]
    assert len({p.address for p in cluster.pods}) == 3
    for pod in cluster.pods:
        with psycopg.connect(cluster.conninfo(pod.name)) as conn:
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            address = conn.execute("SELECT host(inet_server_addr())").fetchone()[0]
        assert in_recovery is (pod.role is PgRole.STANDBY), pod
        assert address == pod.address


@pytest.mark.postgres
def test_postgres_writes_replicate_to_read_only_standbys(postgres_cluster: PostgresCluster) -> None:
    """A row written on the primary reaches both standbys, which refuse writes."""
    cluster = postgres_cluster
    with psycopg.connect(cluster.conninfo(cluster.primary.name)) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS smoke_replication (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO smoke_replication VALUES (1, 'from the primary')")
    cluster.wait_replicated()
    for standby in cluster.standbys:
        with psycopg.connect(cluster.conninfo(standby.name)) as conn:
            rows = conn.execute("SELECT id, note FROM smoke_replication").fetchall()
            assert rows == [(1, "from the primary")]
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO smoke_replication VALUES (2, 'from a standby')")


@pytest.mark.postgres
def test_postgres_promoted_standby_takes_writes(postgres_cluster: PostgresCluster) -> None:
    """After promote("pg-1") pg-1 takes writes, pg-2 follows it and the old primary stays down."""
    cluster = postgres_cluster
    with psycopg.connect(cluster.conninfo("pg-0")) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS smoke_failover (id int PRIMARY KEY)")
        conn.execute("INSERT INTO smoke_failover VALUES (1)")
    cluster.wait_replicated()

    promoted = cluster.promote("pg-1")

    assert promoted.role is PgRole.PRIMARY and cluster.primary.name == "pg-1"
    old = cluster.pod("pg-0")
    assert old.role is PgRole.RETIRED and not old.running
    assert refuses(old.address, old.port)
    with pytest.raises(ServerError, match="second primary"):
        cluster.start_pod("pg-0")
    with psycopg.connect(cluster.conninfo("pg-1")) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
        conn.execute("INSERT INTO smoke_failover VALUES (2)")
    cluster.wait_replicated()
    with psycopg.connect(cluster.conninfo("pg-2")) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        assert conn.execute("SELECT id FROM smoke_failover ORDER BY id").fetchall() == [(1,), (2,)]


@pytest.mark.postgres
def test_postgres_reset_after_promotion(postgres_cluster: PostgresCluster) -> None:
    """reset() after a promotion rebuilds pg-0 as primary with two streaming standbys."""
    cluster = postgres_cluster
    cluster.promote("pg-2")
    cluster.reset()
    assert [(p.name, p.role, p.running) for p in cluster.pods] == [
        ("pg-0", PgRole.PRIMARY, True),
        ("pg-1", PgRole.STANDBY, True),
        ("pg-2", PgRole.STANDBY, True),
    ]
    streaming = cluster.sql("pg-0", "SELECT application_name FROM pg_stat_replication ORDER BY 1")
    assert streaming.splitlines() == ["pg-1", "pg-2"]


@pytest.mark.postgres
def test_postgres_stopped_standby_comes_back(postgres_cluster: PostgresCluster) -> None:
    """A stopped standby refuses connections, then catches up with writes made meanwhile."""
    cluster = postgres_cluster
    cluster.stop("pg-2")
    pod = cluster.pod("pg-2")
    assert not pod.running and refuses(pod.address, pod.port)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.conninfo("pg-2", connect_timeout="2"))
    with psycopg.connect(cluster.conninfo("pg-0")) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS smoke_gap (id int)")
        conn.execute("INSERT INTO smoke_gap VALUES (7)")

    cluster.start_pod("pg-2")
    cluster.wait_replicated()
    with psycopg.connect(cluster.conninfo("pg-2")) as conn:
        assert conn.execute("SELECT id FROM smoke_gap").fetchall() == [(7,)]


@pytest.mark.postgres
def test_postgres_tls_verify_full_by_pod_name(postgres_cluster: PostgresCluster) -> None:
    """verify-full passes with host=<pod name> hostaddr=<address>, and fails for another name."""
    cluster = postgres_cluster
    tls = {"sslmode": "verify-full", "sslrootcert": str(cluster.ca_path)}
    with psycopg.connect(cluster.conninfo("pg-1", **tls)) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0]
    # pg-1's address under pg-0's name: the certificate does not match.
    wrong = cluster.conninfo("pg-1", **tls).replace(cluster.pod("pg-1").fqdn, cluster.pod("pg-0").fqdn)
    with pytest.raises(psycopg.OperationalError, match="does not match"):
        psycopg.connect(wrong)


@pytest.mark.postgres
def test_postgres_asyncpg(postgres_cluster: PostgresCluster) -> None:
    """asyncpg reaches the primary and a standby by address with the test user."""
    cluster = postgres_cluster

    async def recovery_states() -> list[bool]:
        states = []
        for name in ("pg-0", "pg-1"):
            pod = cluster.pod(name)
            conn = await asyncpg.connect(
                host=pod.address, port=pod.port, user=cluster.user, password=cluster.password,
                database=cluster.dbname, ssl=False, timeout=10,
            )
            try:
                states.append(await conn.fetchval("SELECT pg_is_in_recovery()"))
            finally:
                await conn.close()
        return states

    assert asyncio.run(recovery_states()) == [False, True]


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


def redis_client(pods: RedisPods, ordinal: int) -> Any:
    """A redis-py client for one pod, dialling its address; no retries (a refusal shows at once)."""
    pod = pods.pod(ordinal)
    return redis.Redis(
        host=pod.address, port=pod.port, socket_timeout=5, socket_connect_timeout=5,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
    )


@pytest.mark.redis
def test_redis_get_set_on_each_pod(redis_pods: RedisPods) -> None:
    """Every pod stores its own keys: a key set on one pod is absent on the others."""
    assert len(redis_pods.pods) == 4
    assert len({p.address for p in redis_pods.pods}) == 4
    for pod in redis_pods.pods:
        with redis_client(redis_pods, pod.ordinal) as client:
            assert client.set(f"owner-{pod.ordinal}", pod.name)
    for pod in redis_pods.pods:
        with redis_client(redis_pods, pod.ordinal) as client:
            owned = {key.decode() for key in client.keys("owner-*")}
            assert owned == {f"owner-{pod.ordinal}"}
            assert client.get(f"owner-{pod.ordinal}") == pod.name.encode()


@pytest.mark.redis
def test_redis_restart_on_new_address(redis_pods: RedisPods) -> None:
    """A pod restarted on a new address serves there, empty; the old address refuses."""
    before = redis_pods.pod(1)
    with redis_client(redis_pods, 1) as client:
        client.set("k", "v")

    after = redis_pods.restart(1, new_address=True)

    assert after.name == before.name and after.port == before.port
    assert after.address != before.address
    assert refuses(before.address, before.port)
    with redis_client(redis_pods, 1) as client:
        assert client.ping()
        assert client.get("k") is None  # no persistence: a restarted pod starts empty


@pytest.mark.redis
def test_redis_stopped_pod_refuses(redis_pods: RedisPods) -> None:
    """A stopped pod refuses connections; the others keep serving."""
    redis_pods.stop(2)
    assert not redis_pods.running(2)
    with redis_client(redis_pods, 2) as client, pytest.raises(redis.ConnectionError):
        client.ping()
    with redis_client(redis_pods, 3) as client:
        assert client.ping()


# --------------------------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------------------------


@pytest.fixture
def pod_names_resolve(kafka_cluster: KafkaCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the brokers' advertised per-pod names resolve to their current addresses, for this
    test only (``socket.getaddrinfo`` is patched; monkeypatch restores it)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str):
            host = kafka_cluster.addresses_by_name().get(host.rstrip("."), host)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def producer(kafka_cluster: KafkaCluster, pod_names_resolve: None) -> Iterator[Any]:
    client = kafka.KafkaProducer(
        bootstrap_servers=kafka_cluster.client_bootstrap, acks="all", linger_ms=5,
        request_timeout_ms=15_000, max_block_ms=30_000,
    )
    try:
        yield client
    finally:
        client.close(timeout=10)


def consume_all(cluster: KafkaCluster, topic: str, expected: int, *, timeout: float = 30.0) -> list[Any]:
    """Read ``expected`` records of ``topic`` from the start of every partition (no group)."""
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=cluster.client_bootstrap, enable_auto_commit=False,
        auto_offset_reset="earliest", consumer_timeout_ms=1000, request_timeout_ms=15_000,
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([kafka.TopicPartition(topic, p) for p in sorted(partitions)])
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


@pytest.fixture
def client_admin(kafka_cluster: KafkaCluster, pod_names_resolve: None) -> Iterator[Any]:
    """kafka-python's admin client bootstrapped from the advertised per-pod names."""
    with kafka.KafkaAdminClient(
        bootstrap_servers=kafka_cluster.client_bootstrap, request_timeout_ms=15_000
    ) as admin:
        yield admin


def described_leaders(admin: Any, topic: str) -> dict[int, int]:
    return {
        int(p["partition_index"]): int(p["leader_id"])
        for entry in admin.describe_topics([topic])
        for p in entry["partitions"]
    }


@pytest.mark.kafka
def test_kafka_brokers_advertise_pod_names(kafka_cluster: KafkaCluster, client_admin: Any) -> None:
    """On the CLIENT listener the metadata names every broker by its per-pod name."""
    advertised = {(b["host"], b["port"]) for b in client_admin.describe_cluster()["brokers"]}
    assert advertised == {
        (f"kafka-{i}.kafka.prod.svc.cluster.local", kafka_cluster.client_port) for i in range(3)
    }
    # INTERNAL listener: addresses, so the brokers and the fixture's admin need no DNS.
    assert kafka_cluster.brokers() == {p.node_id: (p.address, p.internal_port) for p in kafka_cluster.pods}


@pytest.mark.kafka
def test_kafka_keyed_messages_round_trip(kafka_cluster: KafkaCluster, producer: Any) -> None:
    """Keyed messages land one partition per key and come back intact, in order per key."""
    topic = kafka_cluster.create_topic(partitions=6, replication_factor=3)
    sent: dict[str, int] = {}
    for n in range(60):
        key = f"user-{n % 12}"
        metadata = producer.send(topic, key=key.encode(), value=f"{key}:{n}".encode()).get(timeout=30)
        assert sent.setdefault(key, metadata.partition) == metadata.partition
    producer.flush(timeout=30)

    records = consume_all(kafka_cluster, topic, 60)

    assert len(records) == 60
    for record in records:
        key = record.key.decode()
        assert record.partition == sent[key]
        assert record.value.decode().startswith(f"{key}:")
    by_key: dict[str, list[int]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(record.key.decode(), []).append(int(record.value.decode().split(":")[1]))
    assert all(numbers == sorted(numbers) for numbers in by_key.values())
    assert len(set(sent.values())) > 1  # 12 keys over 6 partitions use more than one


@pytest.mark.kafka
def test_kafka_partition_leaders_per_broker(kafka_cluster: KafkaCluster, client_admin: Any) -> None:
    """Leaders spread over all three brokers, and clients of the CLIENT listener see the same."""
    topic = kafka_cluster.create_topic(partitions=6, replication_factor=3)
    leaders = kafka_cluster.leaders(topic)
    assert sorted(leaders) == list(range(6))
    assert set(leaders.values()) == {0, 1, 2}
    # Each broker applies the metadata log on its own: wait for the one the client asks.
    wait_until("clients seeing the leaders", lambda: described_leaders(client_admin, topic) == leaders, timeout=30)


@pytest.mark.kafka
def test_kafka_broker_restarts_on_new_address(kafka_cluster: KafkaCluster, pod_names_resolve: None) -> None:
    """A stopped broker's partitions move; restarted on a new address it rejoins under its name."""
    topic = kafka_cluster.create_topic(partitions=6, replication_factor=3)
    before = kafka_cluster.pod(1)

    kafka_cluster.stop(1)
    kafka_cluster.wait_brokers({0, 2})
    wait_until("kafka-1's partitions led elsewhere", lambda: 1 not in kafka_cluster.leaders(topic).values(), timeout=30)
    assert refuses(before.address, before.client_port)

    after = kafka_cluster.restart(1, new_address=True)

    assert after.address != before.address and after.fqdn == before.fqdn
    assert kafka_cluster.brokers()[1] == (after.address, after.internal_port)
    # Back in sync, it leads its preferred partitions again; clients reach it by its name.
    assert 1 in kafka_cluster.elect_preferred_leaders(topic).values()
    producer = kafka.KafkaProducer(bootstrap_servers=kafka_cluster.client_bootstrap, acks="all")
    try:
        for partition in range(6):
            producer.send(topic, value=b"after the move", partition=partition).get(timeout=30)
    finally:
        producer.close(timeout=10)
    assert len(consume_all(kafka_cluster, topic, 6)) == 6


@pytest.mark.kafka
def test_kafka_aiokafka_round_trip(kafka_cluster: KafkaCluster, pod_names_resolve: None) -> None:
    """aiokafka produces and consumes through the per-pod names too (asyncio's getaddrinfo)."""
    aiokafka = pytest.importorskip("aiokafka", reason="aiokafka is in the test extra: pip install -e '.[test]'")
    topic = kafka_cluster.create_topic(partitions=3, replication_factor=3)

    async def round_trip() -> tuple[dict[str, int], list[tuple[str, int]]]:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=kafka_cluster.client_bootstrap, acks="all")
        await producer.start()
        sent: dict[str, int] = {}
        try:
            for n in range(9):
                metadata = await producer.send_and_wait(topic, key=f"k{n}".encode(), value=b"v")
                sent[f"k{n}"] = metadata.partition
        finally:
            await producer.stop()
        consumer = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=kafka_cluster.client_bootstrap, enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        received: list[tuple[str, int]] = []
        try:
            consumer.assign([aiokafka.TopicPartition(topic, p) for p in range(3)])
            deadline = time.monotonic() + 30
            while len(received) < 9 and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                received += [(r.key.decode(), r.partition) for batch in batches.values() for r in batch]
        finally:
            await consumer.stop()
        return sent, received

    sent, received = asyncio.run(round_trip())
    assert sorted(received) == sorted(sent.items())


def test_kafka_python_sockets_of_refused_connects_are_closed() -> None:
    """kafka-python 3.0 drops the socket of a refused connect unclosed; the ground closes it."""
    from kafka.net.inet import KafkaNetSocket

    close_failed_connects()
    close_failed_connects()  # idempotent: wrapped once
    with socket.socket() as listener:  # a loopback port that was just freed: connects are refused
        listener.bind(("127.0.0.1", 0))
        address = listener.getsockname()

    class Net:  # the one call sock_connect makes of kafka-python's event loop, on asyncio's
        async def wait_write(self, sock: socket.socket, timeout_at: float | None = None) -> None:
            loop = asyncio.get_running_loop()
            writable = loop.create_future()
            loop.add_writer(sock, writable.set_result, None)
            try:
                await asyncio.wait_for(writable, 5)
            finally:
                loop.remove_writer(sock)

    dialled = socket.socket()
    dialled.setblocking(False)
    with pytest.raises(kafka.errors.KafkaConnectionError, match="ECONNREFUSED"):
        asyncio.run(KafkaNetSocket().sock_connect(Net(), dialled, address, timeout_at=time.monotonic() + 5))
    assert dialled.fileno() == -1
