#!/usr/bin/env python3
"""PostgreSQL with psycopg: writes go to the primary, reads to the standbys.

Needs the extra: pip install 'headless-client[postgres]'. Run it in a pod: the pod's
resolv.conf names the database pods, and libpq's settings come from the environment
(PGDATABASE, PGUSER, PGPASSWORD or a .pgpass naming the pods, PGSSLROOTCERT).

    python postgres_psycopg.py                            # in a pod: resolv.conf
    python postgres_psycopg.py --nameserver 10.96.0.10:53
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

import headless_client as hc
from headless_client.contrib.postgres import PrimaryTracker, connection_pool, conninfo

SERVICE = "pg.prod"                              # the primary pg-0, standbys pg-1, pg-2
BASE = "sslmode=verify-full connect_timeout=3"   # and PGDATABASE, PGUSER... from the environment
T = TypeVar("T")


def with_retries(pool: ConnectionPool[Any], work: Callable[[psycopg.Connection[Any]], T],
                 attempts: int = 5) -> T:
    """work(conn) on a pooled connection, again after a connection error (a failover)."""
    for attempt in range(attempts):
        try:
            with pool.connection(timeout=10) as conn:
                return work(conn)
        except psycopg.OperationalError:
            if attempt + 1 == attempts:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def main(nameservers: list[str] | None) -> None:
    resolver = hc.Resolver(nameservers)                # None: the pod's resolv.conf
    with hc.HeadlessService(SERVICE, port="tcp-postgresql", resolver=resolver,
                            strategy=hc.PrimaryReplica()) as pg, \
         PrimaryTracker(pg, BASE) as tracker, \
         connection_pool(pg, "write", BASE, tracker=tracker, min_size=1, max_size=4,
                         check=ConnectionPool.check_connection) as writer, \
         connection_pool(pg, "read", BASE, min_size=2, max_size=4,
                         check=ConnectionPool.check_connection) as reader:
        primary = tracker.primary
        print("primary:", primary.hostname if primary else None)
        with_retries(writer, lambda conn: conn.execute(
            "CREATE TABLE IF NOT EXISTS visits (id serial PRIMARY KEY, page text)"))
        with_retries(writer, lambda conn: conn.execute("INSERT INTO visits (page) VALUES ('/')"))
        row = with_retries(writer, lambda conn: conn.execute(
            "SELECT count(*), pg_is_in_recovery() FROM visits").fetchone())
        assert row is not None
        visits, in_recovery = row
        print("write served by the primary:", in_recovery is False, "| visits:", visits)
        for _ in range(4):
            served = with_retries(reader, lambda conn: conn.execute(
                "SELECT pg_is_in_recovery(), inet_server_addr()").fetchone())
            assert served is not None
            print("read served by a standby:", served[0], "| at", served[1])

        # Without a pool: pick a pod per connection, hand libpq its name and address.
        # --8<-- [start:direct]
        writer_dsn = conninfo(pg.pick("write"), BASE)   # the primary: host=pg-0... hostaddr=...
        reader_dsn = conninfo(pg.pick(), BASE)          # a standby
        with psycopg.connect(writer_dsn) as conn:
            conn.execute("INSERT INTO visits (page) VALUES (%s)", ("/direct",))
            wrote_on_standby = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        with psycopg.connect(reader_dsn) as conn:
            read_on_standby = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        # --8<-- [end:direct]
        assert wrote_on_standby is not None
        assert read_on_standby is not None
        print("direct: write on a standby:", wrote_on_standby[0],
              "| read on a standby:", read_on_standby[0])

        # The generic registry, for a pool per pod (the read pools above, by hand).
        # --8<-- [start:registry]
        def pool_for(ep: hc.Endpoint) -> ConnectionPool[Any]:    # connects in the background
            return ConnectionPool(conninfo(ep, BASE), min_size=1, open=True)

        with hc.ClientRegistry(pg, pool_for, failures=psycopg.OperationalError) as pools, \
                pools.client(role="read") as (endpoint, pool), \
                pool.connection(timeout=10) as conn:                       # a standby
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        # --8<-- [end:registry]
        assert in_recovery is not None
        print(f"registry: read on {(endpoint.hostname or '?').split('.')[0]}, "
              f"a standby: {in_recovery[0]}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nameserver", action="append",
                   help="HOST:PORT of a DNS server that knows the pods")
    main(p.parse_args().nameserver)
