#!/usr/bin/env python3
"""Kafka with aiokafka: produce orders by customer key from the brokers' live view, read them back.

Needs: pip install headless-client aiokafka (no Kafka library is a dependency of
headless-client). The brokers must advertise their per-pod names
(kafka-0.kafka.prod.svc.cluster.local:9092), which a pod's resolver knows. Elsewhere,
--nameserver names a DNS server that knows them, and the cluster's names are resolved
through it while the program runs (resolve_cluster_names: asyncio's resolver uses it too).

    python kafka_aiokafka_orders.py --topic orders        # in a pod: resolv.conf
    python kafka_aiokafka_orders.py --nameserver 10.96.0.10:53
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

import headless_client as hc
from headless_client.contrib.kafka import check_advertised, resolve_cluster_names
from headless_client.kafka_helpers import kafka_bootstrap_servers

SERVICE, PORT = "kafka.prod", "tcp-client"       # the brokers' headless Service, its port
CUSTOMERS = (7, 42, 3, 11, 8, 99)


async def produce(servers: str, topic: str) -> int:
    """Send the orders by customer key; the topic's partition count."""
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        check_advertised(producer)                     # warns if the brokers advertise IPs
        partitions = len(await producer.partitions_for(topic))
        cluster = producer.client.cluster
        for customer in CUSTOMERS:
            key = f"customer-{customer}".encode()
            sent = await producer.send_and_wait(topic, key=key, value=b"one order")
            assert sent.partition == hc.kafka_partition(key, partitions)   # Kafka's partitioner
            leader = cluster.broker_metadata(cluster.leader_for_partition(sent))
            print(f"order {key.decode()} -> partition {sent.partition}, "
                  f"leader {leader.host.split('.')[0] if leader else None}")
        return partitions
    finally:
        await producer.stop()


async def consume(servers: str, topic: str, partitions: int) -> int:
    """Read the topic from the beginning until every order is back (30 s at most); how many."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        received, deadline = 0, time.monotonic() + 30
        while received < len(CUSTOMERS) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            received += sum(len(batch) for batch in batches.values())
        return received
    finally:
        await consumer.stop()


async def main(topic: str, nameservers: list[str] | None) -> None:
    resolver = hc.AsyncResolver(nameservers)               # None: the pod's resolv.conf
    with contextlib.ExitStack() as outside:
        if nameservers:                                      # outside the cluster's DNS
            outside.enter_context(resolve_cluster_names(hc.Resolver(nameservers)))
        async with hc.AsyncHeadlessService(SERVICE, port=PORT, resolver=resolver) as brokers:
            servers = kafka_bootstrap_servers(brokers)       # the pods' names, from the view
            print("bootstrap:", servers)
            partitions = await produce(servers, topic)
            print(f"consumed {await consume(servers, topic, partitions)} orders")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--topic", default="orders", help="an existing topic (default: orders)")
    p.add_argument("--nameserver", action="append",
                   help="HOST:PORT of a DNS server that knows the pods")
    args = p.parse_args()
    asyncio.run(main(args.topic, args.nameserver))
