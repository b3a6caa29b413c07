"""Data stores: how many Redis keys a scale-up moves, and how long writes take to reach a
promoted PostgreSQL standby.

- **Redis remap** (no server needed: choosing a pod needs no connection): keys hashed by
  ``Sticky`` over the pods ``redis-0..N-1`` of ``redis.prod``, then over one more pod, as
  ``RedisShards`` does; per key set, the share of keys that moved and whether any moved
  between old pods. ``--key-sets`` sets of ``--keys`` keys each.
- **PostgreSQL failover** (real servers: ``scripts/install/postgres.sh``): a primary and two
  streaming standbys on loopback (the test suite's ground), named by the fake cluster DNS;
  a ``PrimaryTracker`` with a one-hour interval (only failures ask for checks) and a routed
  write pool (psycopg_pool, or asyncpg). The primary is stopped and ``pg-1`` promoted; the
  figure is the time from the end of the promotion to the first write committed through the
  pool on the new primary, the application retrying every 50 ms. ``--runs`` per driver; the
  cluster is rebuilt between runs. Checks asked while the failover is under way find no
  primary; the next one may come *min_interval* later (``--min-interval``, default 1 s).

Run::

    .venv/bin/python benchmarks/bench_stores.py [--keys 10000] [--key-sets 10] [--runs 5] [--min-interval 1] [--skip-postgres]

Prints the median of the runs and their range (min-max). Everything stays on loopback;
every server started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from headless_client import AsyncHeadlessService, EndpointSet, HeadlessService, PrimaryReplica, Sticky
from headless_client.testing import FakeClusterDNS, statefulset_endpoints

RETRY_PAUSE = 0.05


def redis_remap(keys: int, key_sets: int, pods: int) -> None:
    endpoints = statefulset_endpoints("redis", "prod", [f"10.0.0.{i + 1}" for i in range(pods + 1)], port=6379)
    before_set, after_set = EndpointSet(endpoints[:pods]), EndpointSet(endpoints)
    shares: list[float] = []
    between_old = 0
    for n in range(key_sets):
        strategy = Sticky()
        names = [f"set{n}:key:{i}" for i in range(keys)]
        before = {k: strategy.pick(before_set, k).ordinal for k in names}
        after = {k: strategy.pick(after_set, k).ordinal for k in names}
        moved = [k for k in names if before[k] != after[k]]
        between_old += sum(after[k] != pods for k in moved)
        shares.append(len(moved) / keys)
    print(f"redis remap {pods} -> {pods + 1} pods, {key_sets} sets of {keys} keys: moved "
          f"median {100 * statistics.median(shares):.1f} % (range {100 * min(shares):.1f}-"
          f"{100 * max(shares):.1f} %, ideal {100 / (pods + 1):.1f} %); "
          f"moved between old pods: {between_old}")


def postgres_failover(runs: int, min_interval: float) -> None:
    import psycopg
    import psycopg_pool

    from headless_client.contrib.postgres import PrimaryTracker, connection_pool
    from headless_client.contrib.postgres_async import AsyncPrimaryTracker, asyncpg_pool, asyncpg_probe
    from tests.integration.servers.postgres import PostgresCluster

    cluster = PostgresCluster()
    cluster.start()
    base = f"dbname={cluster.dbname} user={cluster.user} password={cluster.password} sslmode=disable"
    creds = {"user": cluster.user, "password": cluster.password, "database": cluster.dbname, "ssl": False}
    figures: dict[str, list[float]] = {"psycopg_pool": [], "asyncpg": []}
    checks: list[float] = []
    try:
        for run in range(runs):
            for driver in figures:
                cluster.reset()
                with FakeClusterDNS() as dns:
                    dns.add_statefulset("pg", "prod", 0, port_name="tcp-postgresql", port=cluster.port)
                    for pod in cluster.pods:
                        dns.add_pod("pg", "prod", pod.ordinal, address=pod.address)
                    if driver == "psycopg_pool":
                        took, check = _psycopg_run(cluster, dns, base, psycopg, psycopg_pool,
                                                   PrimaryTracker, connection_pool, min_interval)
                    else:
                        took, check = asyncio.run(_asyncpg_run(cluster, dns, creds, AsyncPrimaryTracker,
                                                               asyncpg_pool, asyncpg_probe, min_interval))
                figures[driver].append(took)
                checks.append(check)
                print(f"  run {run + 1} {driver}: {took:.2f} s", flush=True)
    finally:
        cluster.close()
    for driver, values in figures.items():
        print(f"postgres failover, {driver}, min_interval {min_interval:g} s: first write on the promoted standby after median "
              f"{statistics.median(values):.2f} s (range {min(values):.2f}-{max(values):.2f} s, {runs} runs)")
    print(f"postgres failover: the check that named it took median {1000 * statistics.median(checks):.0f} ms "
          f"(range {1000 * min(checks):.0f}-{1000 * max(checks):.0f} ms)")


def _psycopg_run(cluster, dns, base, psycopg, psycopg_pool, PrimaryTracker, connection_pool,
                 min_interval) -> tuple[float, float]:
    check = psycopg_pool.ConnectionPool.check_connection
    with HeadlessService("pg.prod", port="tcp-postgresql", resolver=dns.resolver(),
                         strategy=PrimaryReplica()) as pg, \
            PrimaryTracker(pg, base, interval=3600, min_interval=min_interval) as tracker, \
            connection_pool(pg, "write", base, tracker=tracker, min_size=1, check=check) as writer:
        with writer.connection() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bench (id serial PRIMARY KEY)")
        cluster.promote("pg-1")
        began = time.monotonic()
        deadline = began + 60
        while time.monotonic() < deadline:
            try:
                with writer.connection(timeout=5) as conn:
                    conn.execute("INSERT INTO bench DEFAULT VALUES")
                    address = conn.execute("SELECT host(inet_server_addr())").fetchone()[0]
                if address == cluster.pod("pg-1").address:
                    break
            except (psycopg.OperationalError, psycopg_pool.PoolTimeout):
                time.sleep(RETRY_PAUSE)
        took = time.monotonic() - began
        assert tracker.last_check is not None
        return took, tracker.last_check.took


async def _asyncpg_run(cluster, dns, creds, AsyncPrimaryTracker, asyncpg_pool, asyncpg_probe,
                       min_interval) -> tuple[float, float]:
    import asyncpg

    async with AsyncHeadlessService("pg.prod", port="tcp-postgresql", resolver=dns.async_resolver(),
                                    strategy=PrimaryReplica()) as pg, \
            AsyncPrimaryTracker(pg, probe=asyncpg_probe(**creds), interval=3600,
                                min_interval=min_interval) as tracker, \
            asyncpg_pool(pg, "write", tracker=tracker, min_size=1, max_size=2, **creds) as writer:
        await writer.execute("CREATE TABLE IF NOT EXISTS bench (id serial PRIMARY KEY)")
        await asyncio.to_thread(cluster.promote, "pg-1")
        began = time.monotonic()
        deadline = began + 60
        while time.monotonic() < deadline:
            try:
                async with writer.acquire() as conn:
                    await conn.execute("INSERT INTO bench DEFAULT VALUES")
                    address = await conn.fetchval("SELECT host(inet_server_addr())")
                if address == cluster.pod("pg-1").address:
                    break
            except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.sleep(RETRY_PAUSE)
        took = time.monotonic() - began
        assert tracker.last_check is not None
        return took, tracker.last_check.took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--key-sets", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--min-interval", type=float, default=1.0, help="the trackers' min_interval (s)")
    args = parser.parse_args(argv)
    redis_remap(args.keys, args.key_sets, 3)
    redis_remap(args.keys, args.key_sets, 9)
    if not args.skip_postgres:
        postgres_failover(args.runs, args.min_interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
