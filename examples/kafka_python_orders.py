#!/usr/bin/env python3
"""Kafka with kafka-python: produce orders by customer key, name each partition's leader pod,
read the orders back.

Needs: pip install headless-client kafka-python (no Kafka library is a dependency of
headless-client). The brokers must advertise their per-pod names
(kafka-0.kafka.prod.svc.cluster.local:9092), which a pod's resolver knows. Elsewhere,
--nameserver names a DNS server that knows them, and the cluster's names are resolved
through it for the whole program (resolve_cluster_names).

    python kafka_python_orders.py --topic orders          # in a pod: resolv.conf
    python kafka_python_orders.py --nameserver 10.96.0.10:53
"""

from __future__ import annotations

import argparse
import contextlib
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

import headless_client as hc
from headless_client.contrib.kafka import KafkaLeaders, resolve_cluster_names
from headless_client.kafka_helpers import kafka_bootstrap_servers

SERVICE, PORT = "kafka.prod", "tcp-client"       # the brokers' headless Service, its port
CUSTOMERS = (7, 42, 3, 11, 8, 99)


def produce(servers: str, brokers: hc.HeadlessService, topic: str) -> int:
    """Send the orders by customer key; the topic's partition count."""
    # --8<-- [start:producer]
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", max_block_ms=30_000)
    # --8<-- [end:producer]
    try:
        partitions = len(producer.partitions_for(topic))
        for customer in CUSTOMERS:
            # --8<-- [start:pick]
            key = f"customer-{customer}".encode()
            sent = producer.send(topic, key=key, value=b"one order").get(timeout=30)
            assert sent.partition == hc.kafka_partition(key, partitions)   # Kafka's partitioner
            leader = brokers.pick(partition=(topic, sent.partition))      # the pod leading it
            # --8<-- [end:pick]
            print(f"order {key.decode()} -> partition {sent.partition}, "
                  f"leader {(leader.hostname or leader.address).split('.')[0]}")
        return partitions
    finally:
        producer.close()


def consume(servers: str, topic: str, partitions: int) -> int:
    """Read the topic from the beginning until every order is back (30 s at most); how many."""
    # --8<-- [start:consumer]
    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    # --8<-- [end:consumer]
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        consumer.seek_to_beginning()
        received, deadline = 0, time.monotonic() + 30
        while received < len(CUSTOMERS) and time.monotonic() < deadline:
            received += sum(len(batch) for batch in consumer.poll(timeout_ms=500).values())
        return received
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--topic", default="orders", help="an existing topic (default: orders)")
    p.add_argument("--nameserver", action="append",
                   help="HOST:PORT of a DNS server that knows the pods")
    args = p.parse_args(argv)

    # --8<-- [start:names]
    resolver = hc.Resolver(args.nameserver)              # None: the pod's resolv.conf
    with contextlib.ExitStack() as stack:
        if args.nameserver:                              # outside the cluster's DNS
            stack.enter_context(resolve_cluster_names(resolver))
        servers = kafka_bootstrap_servers(SERVICE, PORT, resolver=resolver)
        print("bootstrap:", servers)
    # --8<-- [end:names]
        # --8<-- [start:leaders]
        admin = stack.enter_context(contextlib.closing(KafkaAdminClient(bootstrap_servers=servers)))
        leaders = hc.PartitionLeader(KafkaLeaders(admin, [args.topic]), min_reread_interval=1.0)
        brokers = stack.enter_context(hc.HeadlessService(SERVICE, port=PORT,
                                                         resolver=resolver, strategy=leaders))
        # --8<-- [end:leaders]
        partitions = produce(servers, brokers, args.topic)
        print(f"consumed {consume(servers, args.topic, partitions)} orders")


if __name__ == "__main__":
    main()
