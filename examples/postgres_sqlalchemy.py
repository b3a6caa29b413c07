#!/usr/bin/env python3
"""PostgreSQL with SQLAlchemy: an engine per role, each opening connections on the right pod.

Needs: pip install 'headless-client[postgres]' sqlalchemy. SQLAlchemy's pool opens its
connections through ``creator=``; psycopg_connect with the service and role bound is one.
Run it in a pod: the pod's resolv.conf names the database pods, and libpq's settings come
from the environment (PGDATABASE, PGUSER, PGPASSWORD or a .pgpass, PGSSLROOTCERT).

    python postgres_sqlalchemy.py                         # in a pod: resolv.conf
    python postgres_sqlalchemy.py --nameserver 10.96.0.10:53
"""

from __future__ import annotations

import argparse
from functools import partial

from sqlalchemy import create_engine, text

import headless_client as hc
from headless_client.contrib.postgres import PrimaryTracker, psycopg_connect

SERVICE = "pg.prod"                              # the primary pg-0, standbys pg-1, pg-2
BASE = "sslmode=verify-full connect_timeout=3"   # and PGDATABASE, PGUSER... from the environment


def main(nameservers: list[str] | None) -> None:
    resolver = hc.Resolver(nameservers)                # None: the pod's resolv.conf
    with hc.HeadlessService(SERVICE, port="tcp-postgresql", resolver=resolver,
                            strategy=hc.PrimaryReplica()) as pg, \
         PrimaryTracker(pg, BASE) as tracker:
        # pool_pre_ping: a pooled connection a failover broke is replaced, through creator.
        writer = create_engine("postgresql+psycopg://", pool_pre_ping=True,
                               creator=partial(psycopg_connect, pg, "write", BASE, tracker=tracker))
        reader = create_engine("postgresql+psycopg://", pool_pre_ping=True,
                               creator=partial(psycopg_connect, pg, "read", BASE))
        try:
            with writer.begin() as conn:
                conn.execute(text(
                    "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text)"))
                conn.execute(text("INSERT INTO notes (body) VALUES (:body)"), {"body": "hello"})
                print("write served by the primary:",
                      conn.execute(text("SELECT NOT pg_is_in_recovery()")).scalar())
            with reader.connect() as conn:
                standby, address = conn.execute(
                    text("SELECT pg_is_in_recovery(), inet_server_addr()")).one()
                print("read served by a standby:", standby, "| at", address)
        finally:
            writer.dispose()
            reader.dispose()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nameserver", action="append",
                   help="HOST:PORT of a DNS server that knows the pods")
    main(p.parse_args().nameserver)
