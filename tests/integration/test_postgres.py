"""headless_client.contrib.postgres against a real primary and two streaming standbys
(tests/integration/servers/postgres.py), named by the library's fake cluster DNS: conninfo
by address and pod name (TLS verify-full, .pgpass), role-routed psycopg and asyncpg pools,
the primary tracker, a dead standby, a promoted standby, and the recipe page's programs."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg is in the test extra")
psycopg_pool = pytest.importorskip("psycopg_pool", reason="psycopg_pool is in the test extra")
asyncpg = pytest.importorskip("asyncpg", reason="asyncpg is in the test extra")

from headless_client import AsyncHeadlessService, HeadlessService, PrimaryReplica  # noqa: E402
from headless_client.contrib.postgres import (  # noqa: E402
    PrimaryTracker,
    connection_pool,
    conninfo,
    multi_host_conninfo,
    psycopg_connect,
)
from headless_client.contrib.postgres_async import (  # noqa: E402
    AsyncPrimaryTracker,
    async_connection_pool,
    asyncpg_pool,
    asyncpg_probe,
    pod_tls,
)
from headless_client.testing import FakeClusterDNS  # noqa: E402
from tests.integration.docs_programs import run_example  # noqa: E402
from tests.integration.servers.postgres import PostgresCluster  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

FAST = {"min_refresh": 0.2, "max_refresh": 1.0, "empty_grace": 0.0}
SERVED = "SELECT pg_is_in_recovery(), host(inet_server_addr())"


@pytest.fixture
def dns(postgres_cluster: PostgresCluster) -> Iterator[FakeClusterDNS]:
    """The cluster DNS naming the pods where they are: pg-N.pg.prod, named port tcp-postgresql."""
    with FakeClusterDNS() as cluster:
        cluster.add_statefulset("pg", "prod", 0, port_name="tcp-postgresql", port=postgres_cluster.port)
        for pod in postgres_cluster.pods:
            cluster.add_pod("pg", "prod", pod.ordinal, address=pod.address)
        yield cluster


@pytest.fixture
def base(postgres_cluster: PostgresCluster) -> str:
    """The application's settings: its database and user, TLS verified by pod name."""
    c = postgres_cluster
    return f"dbname={c.dbname} user={c.user} password={c.password} sslmode=verify-full sslrootcert={c.ca_path}"


@pytest.fixture
def pg(dns: FakeClusterDNS) -> Iterator[HeadlessService]:
    with HeadlessService("pg.prod", port="tcp-postgresql", resolver=dns.resolver(), strategy=PrimaryReplica(),
                         **FAST) as svc:
        yield svc


def served_by(conn: psycopg.Connection) -> tuple[bool, str]:
    row = conn.execute(SERVED).fetchone()
    assert row is not None
    return bool(row[0]), str(row[1])


def retrying(work, *, attempts: int = 20, pause: float = 0.1):
    """work() again after a connection error, a bounded number of times."""
    for attempt in range(attempts):
        try:
            return work()
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout):
            if attempt + 1 == attempts:
                raise
            time.sleep(pause)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# conninfo
# --------------------------------------------------------------------------------------------


def test_conninfo_dials_the_address_and_verifies_the_pod_name(pg, base, postgres_cluster) -> None:
    """hostaddr= is dialled, host= is what verify-full checks: TLS to each pod by its name."""
    for endpoint in pg.endpoints:
        with psycopg.connect(conninfo(endpoint, base)) as conn:
            assert served_by(conn)[1] == endpoint.address
            assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
    # Another pod's name for this address: the certificate does not match.
    wrong = conninfo(pg.endpoint(1), base).replace("host=pg-1.", "host=pg-2.")
    with pytest.raises(psycopg.OperationalError, match="does not match"):
        psycopg.connect(wrong)


def test_a_pod_name_alone_needs_the_system_resolver(pg, base) -> None:
    """Without hostaddr=, libpq resolves host= itself: the system resolver has no such name."""
    name_only = f"{base} host={pg.endpoint(0).hostname} port={pg.endpoint(0).port} connect_timeout=3"
    with pytest.raises(psycopg.OperationalError, match="translate host name|Name or service not known"):
        psycopg.connect(name_only)


def test_pgpass_matches_the_pod_name(pg, postgres_cluster, tmp_path) -> None:
    """A .pgpass line naming the pod gives the password of a conninfo without one."""
    c, endpoint = postgres_cluster, pg.endpoint(1)
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{endpoint.hostname}:{endpoint.port}:{c.dbname}:{c.user}:{c.password}\n")
    passfile.chmod(0o600)
    settings = f"dbname={c.dbname} user={c.user} sslmode=verify-full sslrootcert={c.ca_path}"
    with psycopg.connect(conninfo(endpoint, settings, passfile=str(passfile))) as conn:
        assert served_by(conn) == (True, endpoint.address)


def test_multi_host_conninfo_lets_libpq_choose_by_role(pg, base) -> None:
    """read-write reaches the primary, prefer-standby a standby; each verified by name."""
    with psycopg.connect(multi_host_conninfo(pg, base)) as conn:
        assert served_by(conn) == (False, pg.endpoint(0).address)
    with psycopg.connect(multi_host_conninfo(pg, base, target_session_attrs="prefer-standby")) as conn:
        assert served_by(conn)[0] is True


# --------------------------------------------------------------------------------------------
# The tracker and the routed pools
# --------------------------------------------------------------------------------------------


def test_the_tracker_names_the_primary_the_servers_report(dns, base) -> None:
    """Told the wrong primary (pg-2), the first check names pg-0, which is out of recovery."""
    strategy = PrimaryReplica(primary=2)
    with HeadlessService("pg.prod", port="tcp-postgresql", resolver=dns.resolver(), strategy=strategy) as pg, \
            PrimaryTracker(pg, base, interval=3600) as tracker:
        assert tracker.primary == pg.endpoint(0)
        assert pg.pick(role="write") == pg.endpoint(0)
        assert tracker.last_check is not None
        assert set(tracker.last_check.standbys) == {pg.endpoint(1), pg.endpoint(2)}


def test_pools_route_writes_to_the_primary_and_reads_over_the_standbys(pg, base, postgres_cluster) -> None:
    """Every write connection is on pg-0; the read pool's connections are on pg-1 and pg-2."""
    with PrimaryTracker(pg, base, interval=3600) as tracker, \
            connection_pool(pg, "write", base, tracker=tracker, min_size=2) as writer, \
            connection_pool(pg, "read", base, min_size=2) as reader:
        with writer.connection() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS pool_routing (id int PRIMARY KEY)")
            conn.execute("INSERT INTO pool_routing VALUES (1) ON CONFLICT DO NOTHING")
        with writer.connection() as a, writer.connection() as b:
            assert served_by(a) == served_by(b) == (False, pg.endpoint(0).address)
        postgres_cluster.wait_replicated()
        with reader.connection() as a, reader.connection() as b:
            roles = {served_by(a), served_by(b)}
            assert roles == {(True, pg.endpoint(1).address), (True, pg.endpoint(2).address)}
            assert a.execute("SELECT id FROM pool_routing").fetchall() == [(1,)]


def test_a_dead_standby_leaves_the_reads_to_the_other(pg, base, postgres_cluster) -> None:
    """pg-2 stops: its pooled connections fail their check, new ones go to pg-1, which
    serves every read; the tracker reports pg-2 as not answering."""
    check = psycopg_pool.ConnectionPool.check_connection
    with PrimaryTracker(pg, base, interval=3600) as tracker, \
            connection_pool(pg, "read", base, min_size=2, check=check) as reader:
        reader.wait(10)
        postgres_cluster.stop("pg-2")
        served = [retrying(lambda: _read(reader)) for _ in range(10)]
        assert set(served) == {(True, pg.endpoint(1).address)}
        found = tracker.check()
        assert [ep for ep, _ in found.failed] == [pg.endpoint(2)]
        assert found.primary == pg.endpoint(0)


def _read(pool: psycopg_pool.ConnectionPool) -> tuple[bool, str]:
    with pool.connection(timeout=10) as conn:
        return served_by(conn)


def test_a_promoted_standby_takes_the_writes_within_one_check(pg, base, postgres_cluster) -> None:
    """pg-0 stops, pg-1 is promoted: the write pool's failed connect asks for a check (no
    periodic one: the interval is an hour), which names pg-1; writes go on there."""
    check = psycopg_pool.ConnectionPool.check_connection
    with PrimaryTracker(pg, base, interval=3600) as tracker, \
            connection_pool(pg, "write", base, tracker=tracker, min_size=1, check=check) as writer:
        with writer.connection() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS failover (id serial PRIMARY KEY, at text)")
            assert served_by(conn) == (False, pg.endpoint(0).address)
        checks = tracker.checks

        postgres_cluster.promote("pg-1")
        began = time.monotonic()

        def write() -> tuple[bool, str]:
            with writer.connection(timeout=5) as conn:
                conn.execute("INSERT INTO failover (at) VALUES ('after')")
                return served_by(conn)

        assert retrying(write) == (False, pg.endpoint(1).address)
        took = time.monotonic() - began
        assert tracker.primary == pg.endpoint(1)
        assert pg.strategy.primary_name == "pg-1.pg.prod.svc.cluster.local"
        # The failures asked; one check after the promotion found pg-1 (more only when a
        # check ran while pg-0 was down and pg-1 not yet promoted).
        assert 1 <= tracker.checks - checks <= 3, tracker.checks - checks
        assert took < 30


def test_a_write_connection_on_a_standby_is_refused(pg, base) -> None:
    """Named wrongly by hand, the primary check refuses the standby and asks the tracker,
    whose check names pg-0 again: the next write connection is right."""
    with PrimaryTracker(pg, base, interval=3600, min_interval=0.05) as tracker:
        pg.strategy.set_primary("pg-2")
        with pytest.raises(psycopg.OperationalError, match="in recovery"):
            psycopg_connect(pg, "write", base, tracker=tracker)
        deadline = time.monotonic() + 10
        while pg.strategy.primary_name != "pg-0.pg.prod.svc.cluster.local" and time.monotonic() < deadline:
            time.sleep(0.02)
        with psycopg_connect(pg, "write", base, tracker=tracker) as conn:
            assert served_by(conn) == (False, pg.endpoint(0).address)


# --------------------------------------------------------------------------------------------
# asyncio
# --------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def async_pg(dns: FakeClusterDNS):
    async with AsyncHeadlessService("pg.prod", port="tcp-postgresql", resolver=dns.async_resolver(),
                                    strategy=PrimaryReplica(), **FAST) as svc:
        yield svc


def test_asyncpg_pools_route_by_role_over_tls(dns, postgres_cluster) -> None:
    """asyncpg dials the addresses and verifies each pod's name (pod_tls); writes on the
    primary, reads on the standbys."""
    c = postgres_cluster
    creds = {"user": c.user, "password": c.password, "database": c.dbname}
    tls = pod_tls(str(c.ca_path))

    async def main() -> tuple[set[tuple[bool, str]], set[tuple[bool, str]]]:
        async with async_pg(dns) as apg, \
                AsyncPrimaryTracker(apg, probe=asyncpg_probe(ssl=tls, **creds), interval=3600) as tracker, \
                asyncpg_pool(apg, "write", tracker=tracker, ssl=tls, min_size=1, max_size=2, **creds) as writer, \
                asyncpg_pool(apg, "read", ssl=tls, min_size=2, max_size=2, **creds) as reader:
            async with writer.acquire() as a:
                writes = {tuple(await a.fetchrow(SERVED))}
                assert await a.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            async with reader.acquire() as a, reader.acquire() as b:
                reads = {tuple(await a.fetchrow(SERVED)), tuple(await b.fetchrow(SERVED))}
            return writes, reads

    writes, reads = asyncio.run(main())
    assert writes == {(False, c.pod("pg-0").address)}
    assert reads == {(True, c.pod("pg-1").address), (True, c.pod("pg-2").address)}


def test_asyncpg_pool_follows_a_promoted_standby(dns, postgres_cluster) -> None:
    """pg-2 promoted: the write pool's failures ask the async tracker, which names pg-2."""
    c = postgres_cluster
    creds = {"user": c.user, "password": c.password, "database": c.dbname, "ssl": False}

    async def main() -> tuple[tuple[bool, str], str | None]:
        async with async_pg(dns) as apg, \
                AsyncPrimaryTracker(apg, probe=asyncpg_probe(**creds), interval=3600) as tracker, \
                asyncpg_pool(apg, "write", tracker=tracker, min_size=1, max_size=2, **creds) as writer:
            assert (await writer.fetchrow(SERVED))[1] == c.pod("pg-0").address
            await asyncio.to_thread(c.promote, "pg-2")
            for attempt in range(50):  # bounded: about 5 s
                try:
                    row = tuple(await writer.fetchrow(SERVED))
                    break
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    if attempt == 49:
                        raise
                    await asyncio.sleep(0.1)
            return row, apg.strategy.primary_name

    row, named = asyncio.run(main())
    assert row == (False, c.pod("pg-2").address)
    assert named == "pg-2.pg.prod.svc.cluster.local"


def test_psycopg_async_pool_routes_reads(dns, base, postgres_cluster) -> None:
    """psycopg's AsyncConnectionPool with the callable conninfo: reads on both standbys."""

    async def main() -> set[tuple[bool, str]]:
        async with async_pg(dns) as apg, AsyncPrimaryTracker(apg, base, interval=3600), \
                async_connection_pool(apg, "read", base, min_size=2) as reader:
            async with reader.connection() as a, reader.connection() as b:
                rows = [await (await conn.execute(SERVED)).fetchone() for conn in (a, b)]
            return {(bool(r[0]), str(r[1])) for r in rows if r is not None}

    assert asyncio.run(main()) == {
        (True, postgres_cluster.pod("pg-1").address),
        (True, postgres_cluster.pod("pg-2").address),
    }


# --------------------------------------------------------------------------------------------
# The recipe page's programs
# --------------------------------------------------------------------------------------------


@pytest.fixture
def pod_environment(postgres_cluster) -> dict[str, str]:
    """libpq's settings, as a pod of the application has them in its environment (from a
    Secret, typically)."""
    c = postgres_cluster
    return {"PGDATABASE": c.dbname, "PGUSER": c.user, "PGPASSWORD": c.password, "PGSSLROOTCERT": str(c.ca_path)}


def assert_standby_reads(out: str, cluster: PostgresCluster, count: int) -> None:
    """*out* has *count* lines ``read served by a standby: True | at <a standby's address>``."""
    reads = re.findall(r"^read served by a standby: (\w+) \| at (\S+)$", out, re.M)
    standbys = {str(pod.address) for pod in cluster.standbys}
    assert len(reads) == count and all(s == "True" and at in standbys for s, at in reads), out


def test_the_psycopg_recipe_runs(dns, pod_environment, postgres_cluster) -> None:
    """examples/postgres_psycopg.py (docs/postgres.md): the primary named, the write on it,
    the reads on the standbys, through pools, direct connections and a ClientRegistry of pools."""
    out = run_example("postgres_psycopg.py", "--nameserver", dns.nameserver, env=pod_environment)
    assert re.search(r"^primary: pg-0\.pg\.prod\.svc\.cluster\.local$", out, re.M), out
    assert re.search(r"^write served by the primary: True \| visits: \d+$", out, re.M), out
    assert_standby_reads(out, postgres_cluster, 4)
    assert re.search(r"^direct: write on a standby: False \| read on a standby: True$", out, re.M), out
    assert re.search(r"^registry: read on pg-[12], a standby: True$", out, re.M), out


def test_the_asyncpg_recipe_runs(dns, pod_environment, postgres_cluster) -> None:
    """examples/postgres_asyncpg.py (docs/postgres.md) over asyncpg, TLS by pod name."""
    out = run_example("postgres_asyncpg.py", "--nameserver", dns.nameserver, env=pod_environment)
    assert re.search(r"^primary: pg-0\.pg\.prod\.svc\.cluster\.local$", out, re.M), out
    assert re.search(r"^write served by the primary: True$", out, re.M), out
    assert_standby_reads(out, postgres_cluster, 1)
    assert re.search(r"^over TLS: True$", out, re.M), out


def test_the_sqlalchemy_recipe_runs(dns, pod_environment, postgres_cluster) -> None:
    """examples/postgres_sqlalchemy.py (docs/postgres.md): writes through one engine, reads
    through the other."""
    pytest.importorskip("sqlalchemy", reason="SQLAlchemy is in the test extra")
    out = run_example("postgres_sqlalchemy.py", "--nameserver", dns.nameserver, env=pod_environment)
    assert re.search(r"^write served by the primary: True$", out, re.M), out
    assert_standby_reads(out, postgres_cluster, 1)
