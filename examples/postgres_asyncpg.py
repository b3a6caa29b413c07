#!/usr/bin/env python3
"""PostgreSQL with asyncpg: writes to the primary, reads to the standbys, TLS by pod name.

Needs the extra: pip install 'headless-client[postgres]'. Run it in a pod: the pod's
resolv.conf names the database pods; asyncpg reads PGDATABASE, PGUSER and PGPASSWORD from
the environment, and PGSSLROOTCERT is the CA that signed the pods' certificates.

    python postgres_asyncpg.py                            # in a pod: resolv.conf
    python postgres_asyncpg.py --nameserver 10.96.0.10:53
"""

from __future__ import annotations

import argparse
import asyncio
import os

import headless_client as hc
from headless_client.contrib.postgres_async import (
    AsyncPrimaryTracker,
    asyncpg_pool,
    asyncpg_probe,
    pod_tls,
)

SERVICE = "pg.prod"                              # the primary pg-0, standbys pg-1, pg-2


async def main(nameservers: list[str] | None) -> None:
    tls = pod_tls(os.environ["PGSSLROOTCERT"])             # each pod proves its own name
    resolver = hc.AsyncResolver(nameservers)                # None: the pod's resolv.conf
    async with hc.AsyncHeadlessService(SERVICE, port="tcp-postgresql", resolver=resolver,
                                       strategy=hc.PrimaryReplica()) as pg, \
               AsyncPrimaryTracker(pg, probe=asyncpg_probe(ssl=tls)) as tracker, \
               asyncpg_pool(pg, "write", tracker=tracker, ssl=tls, min_size=1,
                            max_size=4) as writer, \
               asyncpg_pool(pg, "read", ssl=tls, min_size=2, max_size=4) as reader:
        primary = tracker.primary
        print("primary:", primary.hostname if primary else None)
        await writer.execute("CREATE TABLE IF NOT EXISTS events (id serial PRIMARY KEY, kind text)")
        await writer.execute("INSERT INTO events (kind) VALUES ('signup')")
        print("write served by the primary:",
              not await writer.fetchval("SELECT pg_is_in_recovery()"))
        standby, address = await reader.fetchrow("SELECT pg_is_in_recovery(), inet_server_addr()")
        print("read served by a standby:", standby, "| at", address)
        print("over TLS:", await reader.fetchval(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nameserver", action="append",
                   help="HOST:PORT of a DNS server that knows the pods")
    asyncio.run(main(p.parse_args().nameserver))
