#!/usr/bin/env python3
"""Partition leaders (Kafka style): send each partition's writes to the pod that leads it.

Keys map to partitions with Kafka's own partitioner (murmur2), partitions to leader pods
with a leader map (here a callable, as a metadata client would provide). A pod that is not
the leader answers NOT_LEADER with a hint; svc.not_leader() applies it and re-reads the map.

    python examples/partition_leader.py                      # fake brokers that check leadership
    python examples/partition_leader.py --real --service kafka-headless.prod --port tcp-kafka
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys

import headless_client as hc
from headless_client.testing import FakeClusterDNS, FakePod

PARTITIONS = 6


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", action="store_true", default=os.environ.get("HEADLESS_CLIENT_REAL") == "1",
                   help="use real DNS (inside a cluster): print the routing only")
    p.add_argument("--nameserver", action="append", help="with --real: DNS server HOST:PORT")
    p.add_argument("--service", default="kafka.demo", help="service name (default: kafka.demo)")
    p.add_argument("--port", default="tcp-kafka", help="named port (default: tcp-kafka)")
    return p.parse_args(argv)


def read_line(sock: socket.socket) -> str:
    sock.settimeout(2)
    data = b""
    while not data.endswith(b"\n") and len(data) < 1024:
        chunk = sock.recv(1024)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def produce(svc: hc.HeadlessService, key: bytes) -> str:
    """Send one record for *key* to its partition's leader, following one NOT_LEADER hint."""
    partition = hc.kafka_partition(key, PARTITIONS)
    for _ in range(2):  # bounded: the first try, and one after a hint
        try:
            with svc.connection(partition=partition, timeout=2) as sock:
                broker = read_line(sock)
                sock.sendall(f"PRODUCE {partition}\n".encode())
                reply = read_line(sock)
                if reply.startswith("NOT_LEADER"):
                    raise hc.NotLeader(partition, int(reply.split()[1]))
                return f"{key.decode()} -> partition {partition} -> {broker}: {reply}"
        except hc.NotLeader as exc:
            print(f"  {broker} is not the leader of partition {partition}; hint: kafka-{exc.hint}")
            svc.not_leader(exc.partition, exc.hint)
    return f"{key.decode()}: gave up"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # What the brokers believe (in a real client: fetched with a metadata request).
    leaders = {p: p % 3 for p in range(PARTITIONS)}
    with contextlib.ExitStack() as stack:
        cluster = None
        if args.real:
            resolver = hc.Resolver(args.nameserver)
        else:
            cluster = stack.enter_context(FakeClusterDNS())
            cluster.add_statefulset("kafka", "demo", replicas=3, port_name="tcp-kafka", serve="tcp")

            def broker(pod: FakePod, request: str) -> str:
                verb, _, partition = request.partition(" ")
                if verb != "PRODUCE":
                    return pod.name
                leader = leaders[int(partition)]
                return "OK" if pod.ordinal == leader else f"NOT_LEADER {leader}"

            cluster.set_handler(broker)
            resolver = cluster.resolver()

        # The client's copy of the map, re-read (at most once a second) on NOT_LEADER.
        known = dict(leaders)
        strategy: hc.PartitionLeader[int] = hc.PartitionLeader(lambda: known)
        svc = stack.enter_context(hc.HeadlessService(args.service, port=args.port, resolver=resolver,
                                                     strategy=strategy))
        svc.wait_for(1, timeout=10)
        for partition in range(PARTITIONS):
            with contextlib.suppress(hc.LeaderNotAvailable):
                print(f"partition {partition}: leader {svc.pick(partition=partition)}")
        if cluster is None:
            return 0

        for key in (b"order-1", b"order-2", b"order-3"):
            print(produce(svc, key))
        moved = hc.kafka_partition(b"order-1", PARTITIONS)
        leaders[moved] = (leaders[moved] + 1) % 3
        print(f"leadership of partition {moved} moves to kafka-{leaders[moved]} (the client's map is stale)")
        print(produce(svc, b"order-1"))
        print(produce(svc, b"order-1"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
