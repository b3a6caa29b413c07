#!/usr/bin/env python3
"""Partition leaders (Kafka style): send each partition's writes to the pod that leads it.

Keys map to partitions with Kafka's own partitioner (murmur2), partitions to leader pods
with a leader map read from the brokers (a METADATA request that any broker answers, sent
with Request(any_pod=True), so it survives the death of kafka-0). A pod that is not the
leader answers NOT_LEADER with a hint; svc.not_leader() applies it and re-reads the map.

    python examples/partition_leader.py                      # fake brokers that check leadership
    python examples/partition_leader.py --real --service kafka-headless.prod --port tcp-kafka
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
from collections.abc import Callable

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


class Metadata:
    """The leader map, asked of any broker (what a Kafka client's Metadata request does).

    A partition-leader service can send calls that any pod may serve: ``Request(any_pod=True)``
    makes the strategy rotate them over the usable pods, and ``connection()`` tries another pod
    when one refuses. Asking always pod 0 would break the day kafka-0 dies.
    """

    def __init__(self) -> None:
        self.service: hc.HeadlessService | None = None
        self.asked: list[str] = []

    def __call__(self) -> dict[int, int]:
        if self.service is None:
            return {}  # PartitionLeader reads once when built, before the service exists
        with self.service.connection(request=hc.Request(any_pod=True), timeout=2) as sock:
            broker = read_line(sock)
            sock.sendall(b"METADATA\n")
            reply = read_line(sock)
        self.asked.append(broker)
        return {int(p): int(o) for p, o in (item.split("=") for item in reply.split())}


# --8<-- [start:produce]
def produce(svc: hc.HeadlessService, strategy: hc.PartitionLeader[int], key: bytes) -> str:
    """Send one record for *key* to its partition's leader: follow a NOT_LEADER hint, and
    re-read the metadata when the leader cannot be reached."""
    partition = hc.kafka_partition(key, PARTITIONS)
    for _ in range(3):  # bounded
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
        except (OSError, hc.LeaderNotAvailable) as exc:  # ConnectError is an OSError
            print(f"  the leader of partition {partition} is unreachable ({type(exc).__name__}): re-read")
            strategy.refresh_leaders(force=True)
    return f"{key.decode()}: gave up"
# --8<-- [end:produce]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # What the brokers believe (their controller's word).
    leaders = {p: p % 3 for p in range(PARTITIONS)}
    with contextlib.ExitStack() as stack:
        cluster = None
        metadata = Metadata()
        source: Callable[[], dict[int, int]] | dict[int, int] = metadata
        if args.real:
            resolver = hc.Resolver(args.nameserver)
            source = dict(leaders)  # real mode prints the routing of a static map only
        else:
            cluster = stack.enter_context(FakeClusterDNS())
            cluster.add_statefulset("kafka", "demo", replicas=3, port_name="tcp-kafka", serve="tcp")

            def broker(pod: FakePod, request: str) -> str:
                verb, _, partition = request.partition(" ")
                if verb == "METADATA":
                    return " ".join(f"{p}={o}" for p, o in leaders.items())
                if verb != "PRODUCE":
                    return pod.name
                leader = leaders[int(partition)]
                return "OK" if pod.ordinal == leader else f"NOT_LEADER {leader}"

            cluster.set_handler(broker)
            resolver = cluster.resolver()

        # --8<-- [start:service]
        # The client's copy of the map (source: () -> {partition: ordinal}), re-read at most
        # once a second on NOT_LEADER.
        strategy: hc.PartitionLeader[int] = hc.PartitionLeader(source, min_reread_interval=1.0)
        svc = stack.enter_context(hc.HeadlessService(args.service, port=args.port, resolver=resolver,
                                                     strategy=strategy))
        # --8<-- [end:service]
        svc.wait_for(1, timeout=10)
        if cluster is not None:
            metadata.service = svc
            strategy.refresh_leaders(force=True)
        for partition in range(PARTITIONS):
            with contextlib.suppress(hc.LeaderNotAvailable):
                print(f"partition {partition}: leader {svc.pick(partition=partition)}")
        if cluster is None:
            return 0

        for key in (b"order-1", b"order-2", b"order-3"):
            print(produce(svc, strategy, key))
        moved = hc.kafka_partition(b"order-1", PARTITIONS)
        leaders[moved] = (leaders[moved] + 1) % 3
        print(f"leadership of partition {moved} moves to kafka-{leaders[moved]} (the client's map is stale)")
        print(produce(svc, strategy, b"order-1"))
        print(produce(svc, strategy, b"order-1"))

        cluster.kill_pod("kafka", "demo", 0)
        handed = sorted(p for p, o in leaders.items() if o == 0)
        for p in handed:
            leaders[p] = 1
        print(f"kafka-0 died; its partitions {handed} moved to kafka-1")
        metadata.asked.clear()
        for _ in range(3):
            strategy.refresh_leaders(force=True)
        print(f"metadata from {', '.join(metadata.asked)}")
        print(produce(svc, strategy, b"order-2"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
