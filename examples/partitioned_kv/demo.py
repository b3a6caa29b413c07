"""Run the partitioned KV store end to end on this machine: ``python -m examples.partitioned_kv``.

Needs BIND9's ``named`` (``apt-get install bind9``) and the repository checkout (it uses
the test ground in ``tests/integration/dnsground.py``): a real ``named`` on 127.0.0.1
serves ``cluster.local`` like CoreDNS, the pods are KV servers on 127.20.x.y addresses,
and the client finds them through DNS exactly as it would in a cluster.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Callable

from headless_client import Resolver
from tests.integration.dnsground import BindServer, free_port

from .client import KVClient
from .server import KVCluster

PARTITIONS = 6
REPLICAS = 3


def run(bind: BindServer, out: Callable[[str], object] = print, keys: int = 12) -> dict[str, int]:
    """The whole story against a running ground; returns the client's counters."""
    port = free_port(udp=False)
    fresh = bind.new_service(REPLICAS, port=port, port_name="kv")
    out(f"service {fresh.short}: pods {dict(fresh.addresses)} on port {port} (SRV _kv._tcp)")
    try:
        with KVCluster({p: p % REPLICAS for p in range(PARTITIONS)}) as cluster:
            for ordinal, addresses in fresh.addresses.items():
                cluster.add_pod(ordinal, addresses[0], port)
            out(f"leaders: {cluster.table.snapshot()}")
            with KVClient(
                fresh.short,
                PARTITIONS,  # the leader map: METADATA to any pod (any_pod=True)
                resolver=Resolver([bind.nameserver], timeout=1),
                min_reread_interval=60,  # only hints and failures re-route
            ) as client:
                data = {f"key-{i}": f"value-{i}" for i in range(keys)}
                for key, value in data.items():
                    client.put(key, value)
                out(f"put {len(data)} keys; partitions: "
                    f"{sorted({client.partition(k) for k in data})}")  # fmt: skip

                moved = [p for p in range(PARTITIONS) if p % REPLICAS == 0][:1]
                for p in moved:
                    cluster.table.move(p, 2)
                out(f"moved leadership of {moved} to pod 2; leaders: {cluster.table.snapshot()}")
                assert all(client.get(k) == v for k, v in data.items())
                out(f"all keys read back; NOT_LEADER hints followed: {client.stats['not_leader']}")

                handed = cluster.table.move_all(0, 1)
                cluster.kill(0)
                out(f"killed pod 0 (DNS still lists it), its partitions {handed} went to pod 1")
                assert all(client.get(k) == v for k, v in data.items())
                client.put("after-the-kill", "still-working")
                assert client.get("after-the-kill") == "still-working"
                out(f"all keys read back; re-routed after failures: {client.stats['rerouted']}; "
                    f"leader maps read from the live pods: {client.stats['metadata']}")
                fresh.remove(0)
                return dict(client.stats)
    finally:
        fresh.delete()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=12, help="keys to write (default 12)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log headless-client at INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="kv-demo-") as directory, BindServer(directory) as bind:
        print(f"named answering on {bind.nameserver}")
        stats = run(bind, keys=args.keys)
    print(f"done: {stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
