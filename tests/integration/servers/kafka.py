"""A real 3-node Apache Kafka cluster in KRaft mode (no ZooKeeper) on loopback addresses.

The jars come from Maven Central through ``scripts/install/kafka.sh`` (into
``$HEADLESS_CLIENT_CACHE/kafka/current/libs``); each node runs ``kafka.Kafka`` in its own JVM as
broker and controller at once. Node ``i`` is pod ``kafka-<i>``
(``kafka-<i>.kafka.prod.svc.cluster.local``) and has three listeners:

``CLIENT``
    on the pod address (``127.0.42.<i+1>``, or a fresh ``127.0.42.101+`` after a move) and the
    cluster's client port, **advertised as the per-pod name** (``kafka-0.kafka.prod.svc...:PORT``).
    A client that bootstraps here must resolve those names itself: the tests do it through the
    library against the fake cluster DNS; nothing here touches ``/etc/hosts``.
``INTERNAL``
    on the pod address, advertised as that address: replication between brokers, and the
    fixture's own admin client (:meth:`KafkaCluster.admin`), need no DNS.
``CONTROLLER``
    the KRaft quorum, on a fixed address per node id (``127.0.42.<201+i>``), listed in the static
    ``controller.quorum.voters``. It does not move with the pod, because static voters are
    addressed by what the configuration says; the client and inter-broker listeners do.

All nodes share one client port, one internal port and one controller port (like a
StatefulSet's container ports), each picked free at start.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tests.integration.servers.process import (
    ServerError,
    ServerMissing,
    ServerProcess,
    address_in_use,
    cache_dir,
    common_free_port,
    port_free_on,
    remove_at_exit,
    wait_until,
)

__all__ = ["KAFKA_MISSING", "KafkaCluster", "KafkaInstall", "KafkaPod", "PartitionState", "find_kafka"]

CLUSTER_DOMAIN = "cluster.local"

KAFKA_MISSING = (
    "Kafka's jars not found in $HEADLESS_CLIENT_CACHE/kafka/current/libs (default "
    "~/.cache/headless-client): fetch them with scripts/install/kafka.sh (Maven Central; "
    "scripts/test runs it); Java 17 or newer must be on PATH or in $JAVA_HOME"
)


@dataclass(frozen=True, slots=True)
class KafkaInstall:
    java: str
    libs: Path
    version: str


def find_kafka() -> KafkaInstall | None:
    """The Java binary and the Kafka class path installed by scripts/install/kafka.sh."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java is None or not os.access(java, os.X_OK):
        return None
    home = cache_dir() / "kafka" / "current"
    stamp = home / "installed"
    if not stamp.is_file() or not (home / "libs").is_dir():
        return None
    return KafkaInstall(java=java, libs=home / "libs", version=stamp.read_text().strip())


def _import_kafka() -> Any:
    with warnings.catch_warnings():
        # kafka-python's package import uses importlib.resources APIs deprecated in 3.11.
        warnings.simplefilter("ignore", DeprecationWarning)
        import kafka
        import kafka.admin
    close_failed_connects()
    return kafka


def close_failed_connects() -> None:
    """Make kafka-python 3.0 close the socket of a connect that fails.

    ``kafka.net.inet.KafkaNetSocket.sock_connect`` raises on a refused or timed-out connect
    and drops its non-blocking socket unclosed (3.0.12): every test that stops a broker
    would then leak a socket into some later test's ResourceWarning. The suite keeps
    ResourceWarnings fatal for the library's own sockets, so the client's is closed here,
    where it leaks, instead of silencing the warning. A no-op where the method is absent
    (kafka-python 2.x closes its own). Idempotent.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from kafka.net.inet import KafkaNetSocket
    except ImportError:
        return
    original = getattr(KafkaNetSocket, "sock_connect", None)
    if original is None or getattr(original, "closes_failed_sockets", False):
        return

    async def sock_connect(self: Any, net: Any, sock: socket.socket, sockaddr: Any, timeout_at: Any = None) -> Any:
        try:
            return await original(self, net, sock, sockaddr, timeout_at=timeout_at)
        except BaseException:
            sock.close()
            raise

    sock_connect.closes_failed_sockets = True  # type: ignore[attr-defined]
    KafkaNetSocket.sock_connect = sock_connect


@dataclass(frozen=True, slots=True)
class KafkaPod:
    """A snapshot of one node: its names and where each listener is now."""

    node_id: int
    name: str
    fqdn: str
    address: str
    client_port: int
    internal_port: int
    controller_address: str
    controller_port: int
    running: bool

    @property
    def advertised(self) -> str:
        """``kafka-0.kafka.prod.svc.cluster.local:PORT``: what the CLIENT listener advertises."""
        return f"{self.fqdn}:{self.client_port}"

    @property
    def internal(self) -> str:
        """``ADDRESS:PORT`` of the INTERNAL listener (advertised as is)."""
        return f"{self.address}:{self.internal_port}"


@dataclass(frozen=True, slots=True)
class PartitionState:
    """One partition of a topic: its leader (-1 while none), replicas (preferred first), ISR."""

    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: frozenset[int]


class KafkaCluster:
    """Three KRaft nodes (broker + controller each) on loopback.

    >>> cluster = KafkaCluster(tmp_dir); cluster.start()
    >>> cluster.create_topic("orders", partitions=6, replication_factor=3)
    >>> cluster.leaders("orders")              # {0: 1, 1: 2, ...}: partition -> node id
    >>> cluster.stop(1); cluster.restart(1, new_address=True)
    >>> cluster.close()
    """

    service = "kafka"
    namespace = "prod"

    def __init__(
        self,
        directory: Path | None = None,
        *,
        nodes: int = 3,
        network: str = "127.0.42.0/24",
        heap: str = "384m",
        start_timeout: float = 180.0,
    ) -> None:
        install = find_kafka()
        if install is None:
            raise ServerMissing(KAFKA_MISSING)
        self.install = install
        close_failed_connects()  # before any test's client dials a stopped broker
        self.base = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="hc-kafka-"))
        self._owns_base = directory is None
        if self._owns_base:
            remove_at_exit(self.base)
        self.nodes = nodes
        self.heap = heap
        self.start_timeout = start_timeout
        prefix = network.rsplit(".", 1)[0]
        self._pod_addresses = [f"{prefix}.{i + 1}" for i in range(nodes)]
        self._controller_addresses = [f"{prefix}.{201 + i}" for i in range(nodes)]
        self._spare = iter([f"{prefix}.{n}" for n in range(101, 200)])
        self._spare_lock = threading.Lock()
        self.cluster_id = _kafka_uuid()
        self.client_port = self.internal_port = self.controller_port = 0
        self._pods: list[KafkaPod] = []
        self._servers: list[ServerProcess | None] = [None] * nodes
        self._topic_counter = 0
        self.startup_seconds: float | None = None
        """Wall time of :meth:`start`: storage formatted, every broker registered and unfenced."""
        self.format_seconds: float | None = None
        """Of which formatting the storage (one JVM per node, in parallel)."""

    # ---------------------------------------------------------------------------- views
    @property
    def pods(self) -> tuple[KafkaPod, ...]:
        return tuple(replace(pod, running=self.running(pod.node_id)) for pod in self._pods)

    def pod(self, node_id: int) -> KafkaPod:
        return replace(self._pods[node_id], running=self.running(node_id))

    def running(self, node_id: int) -> bool:
        server = self._servers[node_id]
        return server is not None and server.running

    @property
    def client_bootstrap(self) -> list[str]:
        """Every node's advertised CLIENT endpoint (``name:port``): needs name resolution."""
        return [pod.advertised for pod in self._pods]

    @property
    def internal_bootstrap(self) -> list[str]:
        """Every running node's INTERNAL endpoint (``address:port``): no DNS needed."""
        return [pod.internal for pod in self._pods if self.running(pod.node_id)]

    def addresses_by_name(self) -> dict[str, str]:
        """``{per-pod name: current address}``, what a cluster DNS would answer now."""
        return {pod.fqdn: pod.address for pod in self._pods}

    # ---------------------------------------------------------------------------- lifecycle
    def start(self, *, attempts: int = 3) -> None:
        """Format every node's storage and start the nodes in parallel; wait until all three
        are registered with the controller quorum and unfenced (a busy port is retried)."""
        began = time.monotonic()
        for attempt in range(1, attempts + 1):
            self._pick_ports()
            try:
                self._format_all()
                for node_id in range(self.nodes):  # spawned from this thread, see process.py
                    self._spawn(node_id)
                self.wait_brokers(set(range(self.nodes)))
            except ServerError as exc:
                busy = any(s is not None and address_in_use(s.log_tail(200)) for s in self._servers)
                self._stop_all(kill=True)
                if busy and attempt < attempts:
                    continue
                raise ServerError(f"Kafka cluster did not start: {exc}") from exc
            break
        self.startup_seconds = time.monotonic() - began

    def stop(self, node_id: int, *, kill: bool = False, timeout: float = 60.0) -> None:
        """Stop one node: SIGTERM (controlled shutdown: its leaderships move first) or, with
        ``kill``, SIGKILL (a crash: the quorum fences it after the session timeout)."""
        server = self._servers[node_id]
        if server is None:
            return
        if kill:
            server.kill()
        else:
            server.stop(timeout=timeout)

    def restart(self, node_id: int, *, new_address: bool = False, address: str | None = None) -> KafkaPod:
        """(Re)start one node, same node id, same data, same per-pod name; with ``new_address``
        (or a given ``address``) its CLIENT and INTERNAL listeners move there (a rescheduled
        pod's new IP). Waits until the quorum lists it again at that address."""
        self.stop(node_id)
        if address is not None:
            self._pods[node_id] = replace(self._pods[node_id], address=address)
        elif new_address:
            self._pods[node_id] = replace(self._pods[node_id], address=self._take_address())
        self._write_config(node_id)
        self._spawn(node_id)
        self.wait_brokers({node_id} | {i for i in range(self.nodes) if self.running(i)})
        return self.pod(node_id)

    def restore(self) -> None:
        """Back to normal between tests: every node running (wherever it is now)."""
        for node_id in range(self.nodes):
            if not self.running(node_id):
                self.restart(node_id)

    def close(self) -> None:
        """Stop every node (SIGKILL: the data is thrown away, and three brokers shutting down
        together would only wait on each other's controlled shutdowns)."""
        self._stop_all(kill=True)
        if self._owns_base:
            shutil.rmtree(self.base, ignore_errors=True)
            remove_at_exit(self.base, cancel=True)

    # ---------------------------------------------------------------------------- admin
    @contextlib.contextmanager
    def admin(self) -> Iterator[Any]:
        """A kafka-python ``KafkaAdminClient`` on the INTERNAL listeners (no DNS), closed after."""
        kafka = _import_kafka()
        client = kafka.admin.KafkaAdminClient(
            bootstrap_servers=self.internal_bootstrap,
            client_id="headless-client-test-ground",
            request_timeout_ms=10_000,
            bootstrap_timeout_ms=5_000,
        )
        try:
            yield client
        finally:
            client.close()

    def brokers(self) -> dict[int, tuple[str, int]]:
        """``{node id: (host, port)}`` of the registered, unfenced brokers, as the INTERNAL
        listener's metadata tells them."""
        with self.admin() as admin:
            described = admin.describe_cluster()
        return {
            int(b["broker_id"]): (str(b["host"]), int(b["port"]))
            for b in described["brokers"]
            if not b.get("is_fenced", False)
        }

    def wait_brokers(self, node_ids: set[int], *, timeout: float | None = None) -> None:
        """Wait until exactly ``node_ids`` are registered and each at its current address."""
        expected = {i: (self._pods[i].address, self.internal_port) for i in node_ids}

        def settled() -> bool:
            # Listening first: an admin client bootstrapping from closed ports only times out.
            for i in node_ids:
                with socket.create_connection((self._pods[i].address, self.internal_port), timeout=1.0):
                    pass
            return self.brokers() == expected

        def dead() -> str | None:
            for i in node_ids:
                server = self._servers[i]
                if server is None:
                    return f"kafka-{i} was never started"
                reason = server.exit_reason()
                if reason is not None:
                    return reason
            return None

        wait_until(
            f"Kafka brokers {sorted(node_ids)} registered at {expected}",
            settled,
            timeout=timeout if timeout is not None else self.start_timeout,
            interval=0.25,
            alive=dead,
        )

    def create_topic(
        self,
        name: str | None = None,
        *,
        partitions: int = 3,
        replication_factor: int = 3,
        config: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> str:
        """Create a topic (a unique ``topic-<n>`` when unnamed) and wait until every partition
        has a leader; returns its name."""
        kafka = _import_kafka()
        if name is None:
            self._topic_counter += 1
            name = f"topic-{self._topic_counter}"
        with self.admin() as admin:
            admin.create_topics(
                [
                    kafka.admin.NewTopic(
                        name=name,
                        num_partitions=partitions,
                        replication_factor=replication_factor,
                        topic_configs=dict(config or {}),
                    )
                ],
                timeout_ms=int(timeout * 1000),
            )
        wait_until(
            f"every partition of {name} with a leader",
            lambda: len(self.leaders(name)) == partitions,
            timeout=timeout,
            interval=0.1,
        )
        return name

    def partitions(self, topic: str) -> dict[int, PartitionState]:
        """``{partition: PartitionState}`` of ``topic`` as the metadata tells it now."""
        with self.admin() as admin:
            described = admin.describe_topics([topic])
        states: dict[int, PartitionState] = {}
        for entry in described:
            for partition in entry.get("partitions", []):
                index = int(partition["partition_index"])
                states[index] = PartitionState(
                    partition=index,
                    leader=int(partition["leader_id"]),
                    replicas=tuple(int(r) for r in partition["replica_nodes"]),
                    isr=frozenset(int(r) for r in partition["isr_nodes"]),
                )
        return states

    def leaders(self, topic: str) -> dict[int, int]:
        """``{partition: leader node id}`` for the partitions that have a leader now."""
        return {p: state.leader for p, state in self.partitions(topic).items() if state.leader >= 0}

    def wait_in_sync(self, topic: str, *, timeout: float = 60.0) -> None:
        """Wait until every replica of every partition of ``topic`` is in sync (after a broker
        came back, before it can lead again)."""
        wait_until(
            f"every replica of {topic} in sync",
            lambda: all(set(s.replicas) == s.isr for s in self.partitions(topic).values()),
            timeout=timeout,
            interval=0.2,
        )

    def elect_preferred_leaders(self, topic: str, *, timeout: float = 60.0) -> dict[int, int]:
        """Move leadership back to each partition's preferred (first) replica, as Kafka's
        periodic rebalance would later; waits for replicas in sync first. Returns the leaders."""
        self.wait_in_sync(topic, timeout=timeout)

        def elected() -> bool:
            with self.admin() as admin:
                admin.elect_leaders(election_type=0, topic_partitions=[topic], raise_errors=False)
            return all(s.leader == s.replicas[0] for s in self.partitions(topic).values())

        wait_until(f"preferred leaders of {topic}", elected, timeout=timeout, interval=0.5)
        return self.leaders(topic)

    # ---------------------------------------------------------------------------- internals
    def _pick_ports(self) -> None:
        self.controller_port = common_free_port(self._controller_addresses)
        self.client_port = common_free_port(self._pod_addresses, avoid={self.controller_port})
        self.internal_port = common_free_port(
            self._pod_addresses, avoid={self.controller_port, self.client_port}
        )
        self._pods = [
            KafkaPod(
                node_id=i,
                name=f"kafka-{i}",
                fqdn=f"kafka-{i}.{self.service}.{self.namespace}.svc.{CLUSTER_DOMAIN}",
                address=self._pod_addresses[i],
                client_port=self.client_port,
                internal_port=self.internal_port,
                controller_address=self._controller_addresses[i],
                controller_port=self.controller_port,
                running=False,
            )
            for i in range(self.nodes)
        ]

    def _take_address(self) -> str:
        with self._spare_lock:
            for address in self._spare:
                if port_free_on(address, self.client_port) and port_free_on(address, self.internal_port):
                    return address
        raise ServerError("no spare address left for Kafka pods")

    def _node_dir(self, node_id: int) -> Path:
        return self.base / f"kafka-{node_id}"

    def _write_config(self, node_id: int) -> Path:
        pod = self._pods[node_id]
        node_dir = self._node_dir(node_id)
        node_dir.mkdir(parents=True, exist_ok=True)
        voters = ",".join(
            f"{p.node_id}@{p.controller_address}:{p.controller_port}" for p in self._pods
        )
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(node_id),
            "controller.quorum.voters": voters,
            "listeners": (
                f"CLIENT://{pod.address}:{pod.client_port},INTERNAL://{pod.address}:{pod.internal_port},"
                f"CONTROLLER://{pod.controller_address}:{pod.controller_port}"
            ),
            "advertised.listeners": f"CLIENT://{pod.advertised},INTERNAL://{pod.internal}",
            "listener.security.protocol.map": "CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "INTERNAL",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(node_dir / "data"),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": str(min(3, self.nodes)),
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": str(min(3, self.nodes)),
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": str(min(3, self.nodes)),
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # A crashed broker is fenced within seconds, not the default 9 s.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "4000",
            "controller.quorum.election.timeout.ms": "1000",
            "controller.quorum.fetch.timeout.ms": "2000",
            "log.segment.bytes": str(16 * 1024 * 1024),
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "background.threads": "2",
        }
        path = node_dir / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        (node_dir / "log4j2.properties").write_text(_LOG4J2)
        return path

    def _java(self, node_id: int, main: str, *args: str) -> list[str]:
        node_dir = self._node_dir(node_id)
        return [
            self.install.java,
            "-Xms64m", f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={node_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={node_dir}",
            "-cp", f"{self.install.libs}/*",
            main,
            *args,
        ]

    def _format_all(self) -> None:
        began = time.monotonic()
        for node_id in range(self.nodes):
            shutil.rmtree(self._node_dir(node_id) / "data", ignore_errors=True)

        def format_one(node_id: int) -> None:
            config = self._write_config(node_id)
            argv = self._java(
                node_id, "kafka.tools.StorageTool", "format", "-t", self.cluster_id, "-c", str(config)
            )
            try:
                result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
            except subprocess.TimeoutExpired as exc:
                raise ServerError(f"formatting kafka-{node_id}'s storage: no answer after 120 s") from exc
            if result.returncode != 0:
                raise ServerError(
                    f"formatting kafka-{node_id}'s storage failed ({result.returncode}): "
                    f"{(result.stderr or result.stdout).strip()[-2000:]}"
                )

        with ThreadPoolExecutor(max_workers=self.nodes) as pool:
            list(pool.map(format_one, range(self.nodes)))
        self.format_seconds = time.monotonic() - began

    def _spawn(self, node_id: int) -> None:
        node_dir = self._node_dir(node_id)
        server = ServerProcess(
            f"kafka-{node_id}",
            self._java(node_id, "kafka.Kafka", str(node_dir / "server.properties")),
            log_path=node_dir / "server.log",
            stop_signal=signal.SIGTERM,
        )
        server.start()
        self._servers[node_id] = server

    def _stop_all(self, *, kill: bool) -> None:
        for server in self._servers:
            if server is None:
                continue
            if kill:
                server.kill()
            else:
                server.stop(timeout=60.0)


def _kafka_uuid() -> str:
    """A random Kafka Uuid string (base64url, no padding), never starting with ``-`` (which a
    command line would take for an option; Kafka's own ``Uuid.randomUuid`` avoids it too)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRefs = out
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""
