"""headless_client.contrib.postgres and postgres_async without a database: conninfo text,
the primary decision, both trackers over scripted probes, and per-pod TLS against a real
TLS listener. The real servers are in tests/integration/test_postgres.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Iterator

import pytest

psycopg = pytest.importorskip("psycopg")
trustme = pytest.importorskip("trustme")

from psycopg.conninfo import conninfo_to_dict  # noqa: E402

from headless_client import (  # noqa: E402
    AsyncHeadlessService,
    Endpoint,
    EndpointSet,
    HeadlessService,
    InvalidArgument,
    InvalidName,
    NoEndpointsAvailable,
    PrimaryReplica,
    RoundRobin,
)
from headless_client.contrib.postgres import (  # noqa: E402
    PrimaryTracker,
    RoleConninfo,
    conninfo,
    decide_primary,
    multi_host_conninfo,
    psycopg_connect,
)
from headless_client.contrib.postgres_async import AsyncPrimaryTracker, pod_tls  # noqa: E402
from headless_client.testing import StaticResolver, statefulset_endpoints  # noqa: E402

PODS = statefulset_endpoints("pg", "prod", ["10.1.0.1", "10.1.0.2", "10.1.0.3"], port=5432)
FAST = {"min_refresh": 0.05, "max_refresh": 0.2, "empty_grace": 0.0}


def pod(ordinal: int) -> Endpoint:
    return PODS[ordinal]


# --------------------------------------------------------------------------------------------
# conninfo text
# --------------------------------------------------------------------------------------------


def test_conninfo_dials_the_address_and_keeps_the_name() -> None:
    """host= is the pod's FQDN, hostaddr= its address, after the base and before params."""
    text = conninfo(pod(1), "dbname=app user=app", sslmode="verify-full", connect_timeout=3)
    assert text == (
        "dbname=app user=app host=pg-1.pg.prod.svc.cluster.local hostaddr=10.1.0.2 port=5432 "
        "sslmode=verify-full connect_timeout=3"
    )
    assert conninfo_to_dict(text)["hostaddr"] == "10.1.0.2"


def test_conninfo_overrides_the_base_routing_and_quotes_values() -> None:
    """A host in the base loses to the pod (libpq keeps the last); odd values are quoted."""
    text = conninfo(pod(0), "host=elsewhere port=1", password="it's a secret", application_name="")
    parsed = conninfo_to_dict(text)
    assert parsed["host"] == "pg-0.pg.prod.svc.cluster.local"
    assert parsed["port"] == "5432"
    assert parsed["password"] == "it's a secret"
    assert parsed["application_name"] == ""


def test_conninfo_without_a_hostname_names_the_address() -> None:
    """A/AAAA discovery gives no pod names: host= is the address, no hostaddr."""
    assert conninfo(Endpoint("fd00::7", 5432)) == "host=fd00::7 port=5432"


def test_conninfo_takes_a_uri_base() -> None:
    """A postgresql:// URI base is converted to keywords first."""
    parsed = conninfo_to_dict(conninfo(pod(2), "postgresql://app@ignored:9/appdb?sslmode=require"))
    assert parsed["dbname"] == "appdb" and parsed["user"] == "app" and parsed["sslmode"] == "require"
    assert parsed["hostaddr"] == "10.1.0.3" and parsed["port"] == "5432"


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: conninfo("10.0.0.1"), InvalidArgument, "Endpoint"),
        (lambda: conninfo(pod(0), b"dbname=x"), InvalidArgument, "base must be a str"),
        (lambda: conninfo(pod(0), **{"Bad-Key": "x"}), InvalidName, "Bad-Key"),
        (lambda: conninfo(pod(0), dbname=["x"]), InvalidArgument, "'dbname'"),
        (lambda: multi_host_conninfo(PODS, target_session_attrs="writable"), InvalidName, "writable"),
        (lambda: multi_host_conninfo(PODS, load_balance_hosts="yes"), InvalidName, "yes"),
        (lambda: multi_host_conninfo([]), NoEndpointsAvailable, "no PostgreSQL pod"),
        (lambda: multi_host_conninfo("pg.prod"), InvalidArgument, "pg.prod"),
    ],
)
def test_bad_input_names_the_value(call, error, match) -> None:
    """Every bad argument raises the library's error naming it."""
    with pytest.raises(error, match=match):
        call()


def test_multi_host_conninfo_lists_every_pod_in_order() -> None:
    """host, hostaddr and port lists pair up by position; libpq picks by session attrs."""
    text = multi_host_conninfo(EndpointSet(reversed(PODS)), "dbname=app", load_balance_hosts="random")
    parsed = conninfo_to_dict(text)
    assert parsed["host"].split(",") == [f"pg-{i}.pg.prod.svc.cluster.local" for i in range(3)]
    assert parsed["hostaddr"] == "10.1.0.1,10.1.0.2,10.1.0.3"
    assert parsed["port"] == "5432,5432,5432"
    assert parsed["target_session_attrs"] == "read-write"
    assert parsed["load_balance_hosts"] == "random"


def test_multi_host_conninfo_counts_dual_stack_pods_once() -> None:
    """A pod with an IPv4 and an IPv6 endpoint is one host."""
    dual = [*PODS[:1], Endpoint("fd00::1", 5432, PODS[0].hostname, 0)]
    assert conninfo_to_dict(multi_host_conninfo(dual))["host"] == "pg-0.pg.prod.svc.cluster.local"


# --------------------------------------------------------------------------------------------
# Deciding the primary
# --------------------------------------------------------------------------------------------


def test_decide_the_one_primary() -> None:
    """The single pod out of recovery is the primary; errors are listed with their text."""
    found = decide_primary({pod(0): ConnectionRefusedError("down"), pod(1): False, pod(2): True}, "pg-0")
    assert found.primary == pod(1)
    assert found.standbys == (pod(2),)
    assert found.failed == ((pod(0), "ConnectionRefusedError: down"),)


def test_decide_no_primary() -> None:
    """No pod out of recovery: no primary (the caller keeps the name it has)."""
    assert decide_primary({pod(0): True, pod(1): TimeoutError("slow")}, 0).primary is None


@pytest.mark.parametrize(
    ("current", "chosen"),
    [("pg-2", 2), ("pg-2.pg.prod.svc.cluster.local", 2), (2, 2), ("10.1.0.3", 2), (None, 0), ("pg-1", 0)],
)
def test_decide_among_several_primaries_keeps_the_named_one(current, chosen) -> None:
    """Split brain: the currently named pod if it is among them, else the lowest ordinal."""
    found = decide_primary({pod(2): False, pod(0): False, pod(1): True}, current)
    assert found.primary == pod(chosen)


# --------------------------------------------------------------------------------------------
# Routing by role (no server: the conninfo a route returns)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def pg() -> Iterator[HeadlessService]:
    resolver = StaticResolver({"pg.prod": PODS})
    with HeadlessService("pg.prod", port="tcp-postgresql", resolver=resolver, strategy=PrimaryReplica(),
                         **FAST) as svc:
        yield svc


def test_role_conninfo_routes_each_new_connection(pg) -> None:
    """A write route names the primary; a read route rotates over the standbys."""
    writes = RoleConninfo(pg, "write", "dbname=app")
    reads = RoleConninfo(pg, "read", "dbname=app")
    assert {conninfo_to_dict(writes())["hostaddr"] for _ in range(3)} == {"10.1.0.1"}
    assert {conninfo_to_dict(reads())["hostaddr"] for _ in range(4)} == {"10.1.0.2", "10.1.0.3"}
    pg.strategy.set_primary("pg-2")
    assert conninfo_to_dict(writes())["host"] == "pg-2.pg.prod.svc.cluster.local"
    assert reads.endpoint_of(reads.for_endpoint(pod(1))) == pod(1)
    assert reads.endpoint_of("host=nowhere hostaddr=10.9.9.9 port=5432") is None


def test_routes_need_a_role_strategy_and_a_role(pg) -> None:
    """A role other than read/write, or a strategy without a primary, is refused."""
    with pytest.raises(InvalidName, match="'primary'"):
        RoleConninfo(pg, "primary")  # type: ignore[arg-type]
    resolver = StaticResolver({"pg.prod": PODS})
    with HeadlessService("pg.prod", port="tcp-postgresql", resolver=resolver, strategy=RoundRobin()) as rr, \
            pytest.raises(InvalidArgument, match="PrimaryReplica"):
        PrimaryTracker(rr, probe=lambda ep: True)


def test_a_failed_connect_is_reported_to_the_service_and_the_tracker() -> None:
    """Nothing listens (port 1): psycopg's error; a read ejects the pod, a write asks the
    tracker for a check."""
    asked = threading.Event()

    class Tracker:
        def check_soon(self) -> None:
            asked.set()

    closed = statefulset_endpoints("pg", "prod", ["127.0.0.1", "127.0.0.2", "127.0.0.3"], port=1)
    resolver = StaticResolver({"pg.prod": closed})
    with HeadlessService("pg.prod", port="tcp-postgresql", resolver=resolver, strategy=PrimaryReplica()) as dead:
        with pytest.raises(psycopg.OperationalError):
            psycopg_connect(dead, "read", "connect_timeout=2", tracker=Tracker())  # type: ignore[arg-type]
        assert not asked.is_set()  # reads say nothing about the primary
        assert len(dead.healthy_endpoints) == 2  # the standby that refused is ejected
        with pytest.raises(psycopg.OperationalError):
            psycopg_connect(dead, "write", "connect_timeout=2", tracker=Tracker())  # type: ignore[arg-type]
        assert asked.is_set()


# --------------------------------------------------------------------------------------------
# The trackers, over scripted probes
# --------------------------------------------------------------------------------------------


class Roles:
    """A scripted cluster: which pods are standbys, which are down; counts the probes."""

    def __init__(self, primary: int) -> None:
        self.lock = threading.Lock()
        self.primary = primary
        self.down: set[int] = set()
        self.probes = 0

    def __call__(self, endpoint: Endpoint) -> bool:
        with self.lock:
            self.probes += 1
            if endpoint.ordinal in self.down:
                raise ConnectionRefusedError(f"{endpoint} refuses")
            return endpoint.ordinal != self.primary

    async def probe(self, endpoint: Endpoint) -> bool:
        return self(endpoint)


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_tracker_names_the_primary_the_servers_report(pg, caplog) -> None:
    """start() checks at once: the strategy names the pod that is out of recovery."""
    roles = Roles(primary=2)
    with caplog.at_level(logging.INFO, "headless_client.postgres"), \
            PrimaryTracker(pg, probe=roles, interval=3600) as tracker:
        assert tracker.primary == pod(2)
        assert pg.strategy.primary_name == "pg-2.pg.prod.svc.cluster.local"
        assert pg.pick(role="write") == pod(2)
        assert tracker.last_check is not None and tracker.last_check.standbys == (pod(0), pod(1))
    assert "the primary is now pg-2" in caplog.text
    assert tracker.closed


def test_tracker_follows_a_failover_after_check_soon(pg, caplog) -> None:
    """A failure's check_soon() makes the background thread check: the promoted pod wins."""
    roles = Roles(primary=0)
    with PrimaryTracker(pg, probe=roles, interval=3600, min_interval=0.01) as tracker:
        roles.primary, roles.down = 1, {0}
        before = tracker.checks
        with caplog.at_level(logging.WARNING, "headless_client.postgres"):
            tracker.check_soon()
            assert wait_until(lambda: pg.pick(role="write") == pod(1))
        assert tracker.checks == before + 1
        assert tracker.last_check is not None and tracker.last_check.failed[0][0] == pod(0)
    assert "the primary is now pg-1" in caplog.text and "(was 'pg-0" in caplog.text


def test_tracker_checks_periodically(pg) -> None:
    """Without failures, the periodic check finds the new primary."""
    roles = Roles(primary=0)
    with PrimaryTracker(pg, probe=roles, interval=0.05, min_interval=0.01):
        roles.primary = 2
        assert wait_until(lambda: pg.pick(role="write") == pod(2))


def test_tracker_keeps_the_name_when_no_pod_is_primary(pg, caplog) -> None:
    """Mid-failover (every pod a standby or down) the last primary stays named."""
    roles = Roles(primary=1)
    with PrimaryTracker(pg, probe=roles, interval=3600) as tracker:
        roles.primary, roles.down = -1, {1}
        with caplog.at_level(logging.WARNING, "headless_client.postgres"):
            found = tracker.check()
        assert found.primary is None and tracker.primary is None
        assert pg.strategy.primary_name == "pg-1.pg.prod.svc.cluster.local"
    assert "no pod is the primary" in caplog.text


def test_tracker_rate_limits_checks(pg) -> None:
    """A burst of check_soon() calls costs one check per min_interval."""
    roles = Roles(primary=0)
    with PrimaryTracker(pg, probe=roles, interval=3600, min_interval=60) as tracker:
        for _ in range(50):
            tracker.check_soon()
        time.sleep(0.2)  # an observation window for a negative: no second check within it
        assert tracker.checks == 1


def test_tracker_bounds_a_silent_pod(pg) -> None:
    """A probe that hangs counts as failed after the timeout; the check returns."""
    release = threading.Event()

    def probe(endpoint: Endpoint) -> bool:
        if endpoint.ordinal == 2:
            release.wait(10)
        return endpoint.ordinal != 0

    try:
        tracker = PrimaryTracker(pg, probe=probe, timeout=0.2)
        began = time.monotonic()
        found = tracker.check()
        assert time.monotonic() - began < 2
        assert found.primary == pod(0)
        assert [ep for ep, _ in found.failed] == [pod(2)] and "no answer" in found.failed[0][1]
    finally:
        release.set()


def test_tracker_rechecks_when_the_view_changes() -> None:
    """A new pod in DNS is asked at once (the view change wakes the tracker)."""
    resolver = StaticResolver({"pg.prod": PODS[:2]})
    roles = Roles(primary=0)
    with HeadlessService("pg.prod", port="tcp-postgresql", resolver=resolver, strategy=PrimaryReplica(),
                         **FAST) as pg, PrimaryTracker(pg, probe=roles, interval=3600, min_interval=0.01):
        roles.primary = 2
        resolver.add("pg.prod", PODS[2])
        assert wait_until(lambda: pg.pick(role="write") == pod(2))


def test_tracker_arguments_are_checked(pg) -> None:
    """Bad intervals and probes name the value."""
    with pytest.raises(InvalidName, match="interval"):
        PrimaryTracker(pg, probe=lambda ep: True, interval=0)
    with pytest.raises(InvalidName, match="timeout"):
        PrimaryTracker(pg, probe=lambda ep: True, timeout=-1)
    with pytest.raises(InvalidArgument, match="probe"):
        PrimaryTracker(pg, probe="select 1")  # type: ignore[arg-type]


def test_async_tracker_follows_a_failover() -> None:
    """The asyncio tracker: a check at start, then check_soon() finds the promoted pod."""

    async def main() -> None:
        resolver = StaticResolver({"pg.prod": PODS}).as_async()
        roles = Roles(primary=0)
        async with AsyncHeadlessService("pg.prod", port="tcp-postgresql", resolver=resolver,
                                        strategy=PrimaryReplica(), **FAST) as apg:
            async with AsyncPrimaryTracker(apg, probe=roles.probe, interval=3600, min_interval=0.01) as tracker:
                assert apg.pick(role="write") == pod(0)
                roles.primary, roles.down = 2, {0}
                tracker.check_soon()
                for _ in range(500):
                    if apg.pick(role="write") == pod(2):
                        break
                    await asyncio.sleep(0.01)
                assert apg.pick(role="write") == pod(2)
                assert tracker.checks == 2
            assert tracker.closed

    asyncio.run(main())


def test_async_tracker_bounds_a_silent_pod() -> None:
    """An async probe that never answers counts as failed after the timeout."""

    async def main() -> None:
        resolver = StaticResolver({"pg.prod": PODS}).as_async()

        async def probe(endpoint: Endpoint) -> bool:
            if endpoint.ordinal == 1:
                await asyncio.sleep(30)
            return False  # pg-0 and pg-2 both claim to be the primary

        async with AsyncHeadlessService("pg.prod", port="tcp-postgresql", resolver=resolver,
                                        strategy=PrimaryReplica()) as apg:
            tracker = AsyncPrimaryTracker(apg, probe=probe, timeout=0.1)
            found = await tracker.check()
            assert [ep for ep, _ in found.failed] == [pod(1)]
            assert len(found.primaries) == 2 and found.primary == pod(0)

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# pod_tls: verify the pod's name while dialling its address (a real TLS listener)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@contextlib.contextmanager
def tls_listener(ca: trustme.CA, name: str) -> Iterator[int]:
    """A TLS echo listener on 127.0.0.1 presenting a certificate for *name*; its port."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(server_context)
    ready = threading.Event()
    stop: list[asyncio.AbstractEventLoop] = []
    port: list[int] = []

    def run() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                writer.write(await reader.readline())
                await writer.drain()
            writer.close()

        async def serve() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
            port.append(server.sockets[0].getsockname()[1])
            stop.append(asyncio.get_running_loop())
            ready.set()
            async with server:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(60)

        asyncio.run(serve())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield port[0]
    finally:
        loop = stop[0]
        loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(loop)])
        thread.join(10)


def test_pod_tls_verifies_the_pod_name_while_dialling_the_address(ca, tmp_path) -> None:
    """asyncio dials 127.0.0.1 and the certificate must name the pod; another name fails."""
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    factory = pod_tls(str(ca_file))

    async def echo(port: int, endpoint: Endpoint) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=factory(endpoint))
        try:
            writer.write(b"hello\n")
            return await reader.readline()
        finally:
            # Wait for TLS's close_notify exchange: asyncio.run closes the loop next.
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 10)

    with tls_listener(ca, "pg-1.pg.prod.svc.cluster.local") as port:
        right = Endpoint("127.0.0.1", port, "pg-1.pg.prod.svc.cluster.local", 1)
        wrong = Endpoint("127.0.0.1", port, "pg-2.pg.prod.svc.cluster.local", 2)
        assert asyncio.run(echo(port, right)) == b"hello\n"
        with pytest.raises(ssl.SSLCertVerificationError, match="pg-2"):
            asyncio.run(echo(port, wrong))
    assert factory(right) is factory(right)  # one context per pod
    with pytest.raises(InvalidArgument, match="no hostname"):
        factory(Endpoint("127.0.0.1", port))


def test_pod_tls_fails_early_on_a_missing_ca(tmp_path) -> None:
    """A CA file that does not exist fails when the factory is made, not per connection."""
    with pytest.raises(FileNotFoundError):
        pod_tls(str(tmp_path / "missing.pem"))
