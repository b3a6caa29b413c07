"""Connecting to pods for real: BIND9 answers, loopback pod servers accept (or do not).

Every service here is private (``new_service``) and its SRV port is the pod servers' port,
so ``HeadlessService.connect`` dials real sockets on 127.20/15 (and ::1). Time bounds are
measured, not assumed: a deadline test fails if a connect outlives ``total_timeout``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import selectors
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import pytest
import trustme

from headless_client import (
    ConnectError,
    Endpoint,
    EndpointNotFound,
    EndpointSet,
    HeadlessService,
    InvalidName,
    LeaderNotAvailable,
    LeastLoaded,
    NoEndpointsAvailable,
    NotLeader,
    PartitionLeader,
    PrimaryReplica,
    ResolutionError,
    Resolver,
    ServiceNotFound,
)
from headless_client.kafka_helpers import kafka_bootstrap_servers
from tests.integration.dnsground import GROUND, BindServer, FreshService, Service, free_port

with warnings.catch_warnings():
    # kafka-python's package import uses importlib.resources APIs deprecated in 3.11.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.cluster import collect_hosts

pytestmark = pytest.mark.integration

#: Scheduling slack allowed on top of a deadline (a loaded CI machine, DNS round trips).
SLACK = 0.3


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def read_line(sock: socket.socket, limit: int = 256) -> str:
    """One ``\\n``-terminated line, bounded in size and time."""
    sock.settimeout(2.0)
    buf = b""
    while not buf.endswith(b"\n") and len(buf) < limit:
        chunk = sock.recv(limit - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf.decode().rstrip("\n")


def greeting(sock: socket.socket) -> str:
    """The pod's name line; also checks that the pod echoes."""
    name = read_line(sock)
    sock.sendall(b"ping\n")
    assert read_line(sock) == "ping"
    return name


def hostname(fresh: FreshService, ordinal: int) -> str:
    return f"{fresh.name}-{ordinal}"


def elapsed_since(start: float) -> float:
    return time.monotonic() - start


class LowestOrdinal:
    """A strategy with a known order: the lowest ordinal offered. Records each pick."""

    def __init__(self) -> None:
        self.picked: list[int | None] = []

    def pick(self, endpoints: EndpointSet, key: object | None = None) -> Endpoint:
        if not endpoints:
            raise NoEndpointsAvailable("none")
        ep = min(endpoints, key=lambda e: e.ordinal if e.ordinal is not None else 1 << 30)
        self.picked.append(ep.ordinal)
        return ep


@pytest.fixture
def open_service(bind: BindServer) -> Iterator[Callable[..., HeadlessService]]:
    """``open_service(fresh, **kwargs)``: a started HeadlessService on the ground, closed after."""
    made: list[HeadlessService] = []

    def make(fresh: FreshService, **kwargs: object) -> HeadlessService:
        kwargs.setdefault("resolver", Resolver([bind.nameserver], timeout=1))
        svc = HeadlessService(fresh.short, port="http", **kwargs)  # type: ignore[arg-type]
        made.append(svc)
        svc.start()
        return svc

    yield make
    for svc in made:
        svc.close()


# --------------------------------------------------------------------------------------------
# plain connects
# --------------------------------------------------------------------------------------------


def test_connect_to_each_ordinal(new_service, pod_port, loopback_pods, open_service):
    fresh = new_service(3, port=pod_port)
    loopback_pods.serve_service(fresh)
    svc = open_service(fresh)
    for n in fresh.ordinals:
        with svc.connect(ordinal=n, timeout=1) as sock:
            assert greeting(sock) == hostname(fresh, n)
            assert sock.getpeername()[:2] == (fresh.addresses[n][0], pod_port)
    # Unpinned, round-robin: three connects reach the three pods.
    names = set()
    for _ in range(3):
        with svc.connect(timeout=1) as sock:
            names.add(greeting(sock))
    assert names == {hostname(fresh, n) for n in fresh.ordinals}


def test_retries_past_a_refusing_and_a_black_hole_pod(new_service, pod_port, loopback_pods, open_service):
    """Pod 0 refuses, pod 1 never completes the handshake, pod 2 answers: the connect gets
    there, trying each pod once, within one connect timeout of the black hole."""
    fresh = new_service(3, port=pod_port)
    pods = loopback_pods.serve_service(fresh)
    pods[0].refuse()
    pods[1].black_hole()
    strategy = LowestOrdinal()
    svc = open_service(fresh, strategy=strategy)
    start = time.monotonic()
    with svc.connect(timeout=0.4, attempts=3, total_timeout=3) as sock:
        took = elapsed_since(start)
        assert greeting(sock) == hostname(fresh, 2)
    assert strategy.picked == [0, 1, 2]
    assert 0.4 - 0.05 <= took <= 0.4 + SLACK  # the black hole cost one connect timeout
    assert (pods[0].accepted, pods[1].accepted, pods[2].accepted) == (0, 0, 1)


def test_connect_error_lists_each_endpoint_in_order_within_the_deadline(
    new_service, pod_port, loopback_pods, open_service
):
    fresh = new_service(3, port=pod_port)
    pods = loopback_pods.serve_service(fresh)
    pods[0].refuse()
    pods[1].black_hole()
    pods[2].black_hole()
    svc = open_service(fresh, strategy=LowestOrdinal())
    eps = [svc.endpoint(ordinal=n) for n in range(3)]
    start = time.monotonic()
    with pytest.raises(ConnectError) as info:
        svc.connect(timeout=0.6, attempts=3, total_timeout=1.0)
    took = elapsed_since(start)
    # 0 (refused at once) + 0.6 (black hole) + the 0.4 left (black hole, clipped).
    assert 1.0 - 0.05 <= took <= 1.0 + SLACK
    err = info.value
    assert [where for where, _ in err.attempts] == [str(ep) for ep in eps]
    kinds = [type(e) for _, e in err.attempts]
    assert kinds == [ConnectionRefusedError, TimeoutError, TimeoutError]
    assert isinstance(err.__cause__, TimeoutError)
    assert isinstance(err, OSError)
    message = str(err)
    assert svc.name in message and "after 3 attempts" in message
    for ep in eps:
        assert str(ep) in message


def test_attempts_bound_the_number_of_dials(new_service, pod_port, loopback_pods, open_service):
    fresh = new_service(3, port=pod_port)
    pods = loopback_pods.serve_service(fresh)
    for pod in pods:
        pod.refuse()
    svc = open_service(fresh, strategy=LowestOrdinal())
    with pytest.raises(ConnectError) as info:
        svc.connect(timeout=1, attempts=2)
    assert [where for where, _ in info.value.attempts] == [
        str(svc.endpoint(ordinal=0)),
        str(svc.endpoint(ordinal=1)),
    ]
    # More attempts than pods: each pod once, then a clear "nothing left".
    with pytest.raises(ConnectError, match="no endpoint left to try") as info:
        svc.connect(timeout=1, attempts=5)
    assert len(info.value.attempts) == 3
    assert len({where for where, _ in info.value.attempts}) == 3


@pytest.mark.parametrize("mode", ["refuse", "black_hole"])
def test_pinned_retries_stay_within_attempts_and_deadline(
    mode, new_service, pod_port, loopback_pods, open_service
):
    """Retries on one pod back off (50, 100, 200, 400 ms...) but never past total_timeout:
    a backoff that would end past it is not slept, an attempt is clipped to the time left."""
    fresh = new_service(2, port=pod_port)
    pods = loopback_pods.serve_service(fresh)
    getattr(pods[0], mode)()
    svc = open_service(fresh)
    target = str(svc.endpoint(ordinal=0))
    start = time.monotonic()
    with pytest.raises(ConnectError) as info:
        svc.connect(ordinal=0, timeout=0.2, attempts=10, total_timeout=1.0)
    took = elapsed_since(start)
    assert took <= 1.0 + SLACK
    attempts = info.value.attempts
    assert 2 <= len(attempts) <= 10
    assert {where for where, _ in attempts} == {target}
    expected = ConnectionRefusedError if mode == "refuse" else TimeoutError
    assert all(isinstance(e, expected) for _, e in attempts)
    assert "ordinal 0" in str(info.value)
    assert pods[1].accepted == 0  # never elsewhere

    # attempts caps the count even with time to spare.
    with pytest.raises(ConnectError) as info:
        svc.connect(ordinal=0, timeout=0.2, attempts=2, total_timeout=30)
    assert len(info.value.attempts) == 2


def test_unknown_ordinal_fails_at_once(new_service, pod_port, loopback_pods, open_service):
    fresh = new_service(2, port=pod_port)
    pods = loopback_pods.serve_service(fresh)
    svc = open_service(fresh)
    start = time.monotonic()
    with pytest.raises(EndpointNotFound, match=r"ordinal 7 .*ordinals now: 0, 1"):
        svc.connect(ordinal=7, timeout=5, attempts=5)
    assert elapsed_since(start) < 0.2
    assert [p.accepted for p in pods] == [0, 0]
    with pytest.raises(InvalidName):
        svc.connect(ordinal=0, partition=1)


def test_pinned_ordinal_follows_a_pod_restarted_on_a_new_ip(
    new_service, pod_port, loopback_pods, open_service
):
    fresh = new_service(2, port=pod_port)
    pods = loopback_pods.serve_service(fresh)
    # No periodic refresh during the test: only connect's own re-resolution can help.
    svc = open_service(fresh, min_refresh=30, max_refresh=30)
    with svc.connect(ordinal=0, timeout=1) as sock:
        assert greeting(sock) == hostname(fresh, 0)
    old = fresh.addresses[0][0]
    pods[0].refuse()  # the old pod is gone...
    (new,) = fresh.reip(0)  # ...and restarted elsewhere
    loopback_pods.add("restarted-0", new)
    assert svc.endpoint(ordinal=0).address == old  # the view is stale

    with svc.connect(ordinal=0, timeout=1, attempts=3) as sock:
        assert greeting(sock) == "restarted-0"
        assert sock.getpeername()[0] == new


def test_ipv6_endpoint(new_service, pod_port, loopback_pods, open_service):
    fresh = new_service(1, port=pod_port)
    loopback_pods.serve_service(fresh)
    fresh.add(1, "::1")
    loopback_pods.add("v6-pod", "::1")
    svc = open_service(fresh)
    ep = svc.endpoint(ordinal=1)
    assert ep.address == "::1" and ep.family == 6
    assert f"[::1]:{pod_port}" in str(ep)
    with svc.connect(ordinal=1, timeout=1) as sock:
        assert sock.family == socket.AF_INET6
        assert greeting(sock) == "v6-pod"
    loopback_pods["v6-pod"].refuse()
    with pytest.raises(ConnectError, match=rf"\[::1\]:{pod_port}"):
        svc.connect(ordinal=1, timeout=0.5, attempts=1)


# --------------------------------------------------------------------------------------------
# PrimaryReplica: writes never land on a replica
# --------------------------------------------------------------------------------------------


def test_writes_stay_on_the_primary(new_service, pod_port, loopback_pods, open_service):
    fresh = new_service(3, port=pod_port)
    pods = loopback_pods.serve_service(fresh)
    svc = open_service(fresh, strategy=PrimaryReplica())
    with svc.connect(key="write", timeout=1) as sock:
        assert greeting(sock) == hostname(fresh, 0)
    with svc.connect(timeout=1) as sock:  # a read
        assert greeting(sock) in {hostname(fresh, 1), hostname(fresh, 2)}
    reads_so_far = pods[1].accepted + pods[2].accepted

    pods[0].refuse()
    with pytest.raises(ConnectError, match="the primary") as info:
        svc.connect(key="write", timeout=0.5, attempts=3)
    primary = str(svc.endpoint(ordinal=0))
    assert [where for where, _ in info.value.attempts] == [primary] * 3
    assert pods[1].accepted + pods[2].accepted == reads_so_far

    # The primary is ejected now, yet a write still goes to it, not to "the lowest
    # healthy ordinal".
    pods[0].serve()
    with svc.connect(key=PrimaryReplica.WRITE, timeout=1) as sock:
        assert greeting(sock) == hostname(fresh, 0)


# --------------------------------------------------------------------------------------------
# TLS per pod
# --------------------------------------------------------------------------------------------


class TLSPod:
    """A TLS pod: handshake, send ``<name>\\n``, echo one line, close.

    One thread serves the connections one after another; each socket operation times
    out after 2 s, and :meth:`close` wakes and joins the thread (bounded).
    """

    def __init__(self, name: str, address: str, port: int, context: ssl.SSLContext) -> None:
        self.name = name
        self.context = context
        self.accepted = 0
        self.served = 0
        self.failures: list[BaseException] = []
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        self._listener = socket.create_server((address, port), family=family, backlog=8)
        self._wake_r, self._wake_w = socket.socketpair()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"tls-pod-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._stop:
                for key, _ in sel.select(timeout=5.0):
                    if key.fileobj is self._listener and not self._stop:
                        self._serve_one()

    def _serve_one(self) -> None:
        conn, _ = self._listener.accept()
        self.accepted += 1
        conn.settimeout(2.0)
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(f"{self.name}\n".encode())
                line = read_line(tls)
                tls.sendall(f"{line}\n".encode())
                self.served += 1
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            self.failures.append(exc)
        finally:
            conn.close()

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(5.0)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        assert not self._thread.is_alive(), "TLS pod thread did not stop"


@pytest.fixture
def tls_pods() -> Iterator[Callable[..., TLSPod]]:
    made: list[TLSPod] = []

    def make(name: str, address: str, port: int, context: ssl.SSLContext) -> TLSPod:
        pod = TLSPod(name, address, port, context)
        made.append(pod)
        return pod

    yield make
    for pod in made:
        pod.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*names).configure_cert(ctx)
    return ctx


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the hostname
    ca.configure_trust(ctx)
    return ctx


def test_tls_verifies_each_pods_own_name(ca, new_service, pod_port, tls_pods, open_service):
    fresh = new_service(2, port=pod_port)
    servers = [
        tls_pods(
            hostname(fresh, n),
            fresh.addresses[n][0],
            pod_port,
            server_context(ca, fresh.pod_fqdn(n).rstrip(".")),
        )
        for n in fresh.ordinals
    ]
    svc = open_service(fresh)
    for n in fresh.ordinals:
        with svc.connect(ordinal=n, timeout=1, ssl_context=client_context(ca)) as sock:
            assert isinstance(sock, ssl.SSLSocket)
            assert greeting(sock) == hostname(fresh, n)
            names = [v for k, v in sock.getpeercert()["subjectAltName"] if k == "DNS"]
            assert names == [fresh.pod_fqdn(n).rstrip(".")]
    for server in servers:
        server.close()  # joins its thread: the counts below are final
        assert (server.accepted, server.served, server.failures) == (1, 1, [])


@pytest.mark.parametrize("problem", ["wrong name", "unknown CA"])
def test_tls_verification_failure_is_not_retried(problem, ca, new_service, pod_port, tls_pods, open_service):
    fresh = new_service(2, port=pod_port)
    pod0 = fresh.pod_fqdn(0).rstrip(".")
    if problem == "wrong name":
        bad = server_context(ca, fresh.pod_fqdn(1).rstrip("."))  # pod 1's certificate
    else:
        bad = server_context(trustme.CA(), pod0)
    server0 = tls_pods(hostname(fresh, 0), fresh.addresses[0][0], pod_port, bad)
    server1 = tls_pods(
        hostname(fresh, 1), fresh.addresses[1][0], pod_port, server_context(ca, fresh.pod_fqdn(1).rstrip("."))
    )
    svc = open_service(fresh, strategy=LowestOrdinal())
    # Unpinned (pod 0 is picked first; the failure ejects it), then pinned.
    for kwargs in ({}, {"ordinal": 0}):
        with pytest.raises(ConnectError, match="certificate verification failed") as info:
            svc.connect(timeout=1, attempts=3, ssl_context=client_context(ca), **kwargs)
        assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
        assert len(info.value.attempts) == 1
        assert info.value.attempts[0][0] == str(svc.endpoint(ordinal=0))
    assert server0.accepted == 2  # once per connect: no retry
    assert server1.accepted == 0


def test_tls_handshake_counts_against_the_connect_timeout(
    ca, new_service, pod_port, loopback_pods, tls_pods, open_service
):
    """Pod 0 accepts TCP but never speaks TLS: the handshake times out, pod 1 answers."""
    fresh = new_service(2, port=pod_port)
    stuck = loopback_pods.add(hostname(fresh, 0), fresh.addresses[0][0], mode="hang")
    tls_pods(
        hostname(fresh, 1), fresh.addresses[1][0], pod_port, server_context(ca, fresh.pod_fqdn(1).rstrip("."))
    )
    svc = open_service(fresh, strategy=LowestOrdinal())
    start = time.monotonic()
    with svc.connect(timeout=0.4, attempts=2, ssl_context=client_context(ca)) as sock:
        took = elapsed_since(start)
        assert greeting(sock) == hostname(fresh, 1)
    assert stuck.accepted == 1
    assert 0.4 - 0.05 <= took <= 0.4 + SLACK


# --------------------------------------------------------------------------------------------
# connection(): outcome reporting into LeastLoaded
# --------------------------------------------------------------------------------------------


def test_connection_reports_latency_and_failures(new_service, pod_port, loopback_pods, open_service):
    fresh = new_service(3, port=pod_port)
    pods = loopback_pods.serve_service(fresh)
    strategy = LeastLoaded(ewma=True, seed=7)
    svc = open_service(fresh, strategy=strategy)
    ep0, ep1, ep2 = (svc.endpoint(ordinal=n) for n in range(3))
    default = strategy.score(ep0)
    assert default == pytest.approx(0.030)

    # Success: in flight inside the block, a latency sample (a loopback greeting is far
    # below the 30 ms default) after it.
    with svc.connection(ordinal=0) as sock:
        assert strategy.inflight(ep0) == 1
        assert greeting(sock) == hostname(fresh, 0)
    assert sock.fileno() == -1  # closed on exit
    assert strategy.inflight(ep0) == 0
    assert strategy.score(ep0) < default

    # An OSError in the block: a failure sample (at least the 1 s penalty), ejected.
    with pytest.raises(ConnectionResetError), svc.connection(ordinal=1):
        raise ConnectionResetError("peer went away")
    assert strategy.inflight(ep1) == 0
    assert strategy.score(ep1) > 0.9  # the 1 s penalty, barely decayed
    assert ep1 not in svc.healthy_endpoints

    # Another exception says nothing about the pod: in flight no more, no sample.
    with pytest.raises(NotLeader), svc.connection(ordinal=2):
        raise NotLeader(3, hint=0)
    assert strategy.inflight(ep2) == 0
    assert strategy.score(ep2) == pytest.approx(default)
    assert ep2 in svc.healthy_endpoints

    # A failed dial while another request to the pod is in flight leaves that count alone.
    with svc.connection(ordinal=0):
        pods[0].refuse()
        with pytest.raises(ConnectError):
            svc.connect(ordinal=0, timeout=0.5, attempts=1)
        assert strategy.inflight(ep0) == 1
    assert strategy.inflight(ep0) == 0


# --------------------------------------------------------------------------------------------
# leader routing
# --------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_not_leader_reroutes_the_next_connect(new_service, pod_port, loopback_pods, open_service):
    fresh = new_service(3, port=pod_port)
    loopback_pods.serve_service(fresh)
    table: dict[int, int | str] = {0: 0, 1: 1, 2: 2}
    reads: list[int] = []
    fail_reads = False

    def leaders() -> dict[int, int | str]:
        reads.append(1)
        if fail_reads:
            raise RuntimeError("metadata unavailable")
        return dict(table)

    clock = FakeClock()
    strategy = PartitionLeader(leaders, min_reread_interval=5.0, clock=clock)
    svc = open_service(fresh, strategy=strategy, min_refresh=30, max_refresh=30)

    def leader_name(partition: int) -> str:
        with svc.connect(partition=partition, timeout=1) as sock:
            return greeting(sock)

    assert [leader_name(p) for p in range(3)] == [hostname(fresh, n) for n in range(3)]
    assert len(reads) == 1

    # Leadership moves; within the rate limit the map is not re-read...
    table[1] = 2
    svc.not_leader(1)
    assert len(reads) == 1
    assert leader_name(1) == hostname(fresh, 1)
    # ...but a hint applies at once.
    svc.not_leader(1, 2)
    assert leader_name(1) == hostname(fresh, 2)
    # Past the interval the map is re-read (a hostname works as a leader too).
    table[0] = hostname(fresh, 2)
    clock.now += 6
    svc.not_leader(0)
    assert len(reads) == 2
    assert leader_name(0) == hostname(fresh, 2)

    # A hint naming a pod the view does not have yet refreshes DNS.
    fresh.add(3)
    loopback_pods.add(hostname(fresh, 3), fresh.addresses[3][0])
    with pytest.raises(EndpointNotFound):
        svc.endpoint(ordinal=3)
    svc.not_leader(2, 3)
    assert leader_name(2) == hostname(fresh, 3)

    # Even when re-reading the map fails, the hint applies and DNS is refreshed.
    fail_reads = True
    fresh.add(4)
    loopback_pods.add(hostname(fresh, 4), fresh.addresses[4][0])
    clock.now += 6
    with pytest.raises(RuntimeError, match="metadata unavailable"):
        svc.not_leader(1, hint=hostname(fresh, 4))
    assert leader_name(1) == hostname(fresh, 4)

    # No leader: at once, no dialling.
    start = time.monotonic()
    with pytest.raises(LeaderNotAvailable, match="partition 9"):
        svc.connect(partition=9, timeout=5, attempts=5)
    assert elapsed_since(start) < 0.2


def test_not_leader_needs_a_partition_leader_strategy(new_service, pod_port, open_service):
    svc = open_service(new_service(1, port=pod_port))
    with pytest.raises(TypeError, match="PartitionLeader"):
        svc.not_leader(0, 1)


def test_the_not_leader_loop(new_service, pod_port, loopback_pods, open_service):
    """The documented pattern: ``except NotLeader as e: svc.not_leader(e.partition, e.hint)``."""
    fresh = new_service(3, port=pod_port)
    loopback_pods.serve_service(fresh)
    true_leader = 2
    svc = open_service(fresh, strategy=PartitionLeader({7: 0}))

    def request(partition: int) -> str:
        with svc.connection(partition=partition, timeout=1) as sock:
            name = greeting(sock)
        if name != hostname(fresh, true_leader):
            raise NotLeader(partition, hint=true_leader)
        return name

    answers = []
    for _ in range(3):  # bounded
        try:
            answers.append(request(7))
            break
        except NotLeader as exc:
            svc.not_leader(exc.partition, exc.hint)
    assert answers == [hostname(fresh, 2)]
    assert svc.strategy.leader_of(7) == 2


# --------------------------------------------------------------------------------------------
# Kafka bootstrap servers
# --------------------------------------------------------------------------------------------


@pytest.fixture
def resolver(bind: BindServer) -> Resolver:
    return Resolver([bind.nameserver], timeout=1)


def test_kafka_bootstrap_by_srv_hostnames(resolver):
    kafka = GROUND["kafka-headless"]
    expected = ",".join(f"{kafka.pod_fqdn(p).rstrip('.')}:9092" for p in kafka.pods)
    got = kafka_bootstrap_servers("kafka-headless.data", "kafka", resolver=resolver)
    assert got == expected
    assert got.startswith("kafka-0.kafka-headless.data.svc.cluster.local:9092,")
    assert kafka_bootstrap_servers("kafka-headless", "kafka", resolver=resolver, namespace="data") == expected
    # What kafka-python makes of it.
    hosts = collect_hosts(got, randomize=False)
    assert [(h, p) for h, p, _ in hosts] == [(kafka.pod_fqdn(p).rstrip("."), 9092) for p in kafka.pods]


def test_kafka_bootstrap_by_statefulset_names(resolver):
    kafka = GROUND["kafka-headless"]
    got = kafka_bootstrap_servers("kafka-headless.data", 9093, resolver=resolver, statefulset="kafka")
    assert got == ",".join(f"{kafka.pod_fqdn(p).rstrip('.')}:9093" for p in kafka.pods)
    assert (
        kafka_bootstrap_servers(
            "kafka-headless.data.svc.cluster.local", 9093, resolver=resolver, statefulset="kafka"
        )
        == got
    )


def test_kafka_bootstrap_by_addresses(resolver):
    kafka = GROUND["kafka-headless"]
    got = kafka_bootstrap_servers("kafka-headless.data", resolver=resolver)
    assert got == ",".join(f"{a}:9092" for a in sorted(kafka.addresses, key=ipaddress.ip_address))
    dual = kafka_bootstrap_servers("dual.prod", 9092, resolver=resolver)
    assert "[fd00:10:244:2::1]:9092" in dual.split(",")
    hosts = collect_hosts(dual, randomize=False)
    assert sorted(h for h, _, _ in hosts) == sorted(GROUND["dual"].addresses)
    # Dual-stack pods by SRV: one entry per pod, not per address.
    assert kafka_bootstrap_servers("dual.prod", "http", resolver=resolver) == (
        "dual-0.dual.prod.svc.cluster.local:8080,dual-1.dual.prod.svc.cluster.local:8080"
    )


def test_kafka_bootstrap_errors(bind, resolver):
    with pytest.raises(ServiceNotFound, match="nope"):
        kafka_bootstrap_servers("nope.data", "kafka", resolver=resolver)
    with pytest.raises(ServiceNotFound, match="empty"):
        kafka_bootstrap_servers("empty.prod", resolver=resolver)
    with pytest.raises(InvalidName):
        kafka_bootstrap_servers("kafka-headless.data", "kafka", resolver=resolver, statefulset="kafka")
    dead = Resolver([f"127.0.0.1:{free_port()}"], timeout=0.3)
    with pytest.raises(ResolutionError):
        kafka_bootstrap_servers("kafka-headless.data", "kafka", resolver=dead)
    # Every SRV target outside the service's domain is dropped: nothing left.
    foreign = Service("kafka-foreign", namespace="data", port_name="kafka",
                      foreign_srv_targets=(("broker.example.net.", 9092),))  # fmt: skip
    bind.zone.create_service(foreign)
    try:
        with pytest.raises(NoEndpointsAvailable, match="kafka-foreign"):
            kafka_bootstrap_servers("kafka-foreign.data", "kafka", resolver=resolver)
    finally:
        bind.zone.delete_service("kafka-foreign", "data")


def test_kafka_bootstrap_follows_a_broker_restart(new_service, resolver):
    """Hostnames stay the same when a broker comes back on a new IP; addresses do not."""
    fresh = new_service(2, port=9092, port_name="kafka")
    by_name = kafka_bootstrap_servers(fresh.short, "kafka", resolver=resolver)
    by_address = kafka_bootstrap_servers(fresh.short, resolver=resolver)
    fresh.reip(1)
    assert kafka_bootstrap_servers(fresh.short, "kafka", resolver=resolver) == by_name
    assert kafka_bootstrap_servers(fresh.short, resolver=resolver) != by_address
