#!/usr/bin/env python3
"""StatefulSet pods by identity: who is web-0, reach one pod, list pods without SRV.

A StatefulSet's pods have stable names (<sts>-<ordinal>.<service>.<ns>.svc.<zone>).
Databases and brokers need them: "write to the primary (ordinal 0)", "read from replica 2".

    python examples/statefulset_pods.py                      # fake cluster
    python examples/statefulset_pods.py --real --statefulset web --namespace prod --port http
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

import headless_client as hc
from headless_client.testing import FakeClusterDNS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", action="store_true", default=os.environ.get("HEADLESS_CLIENT_REAL") == "1",
                   help="use real DNS (inside a cluster) instead of the fake cluster")
    p.add_argument("--nameserver", action="append", help="with --real: DNS server HOST:PORT")
    p.add_argument("--statefulset", default="db", help="StatefulSet name (default: db)")
    p.add_argument("--service", default=None, help="its governing service (default: the same name)")
    p.add_argument("--namespace", default="demo", help="namespace (default: demo)")
    p.add_argument("--port", default="tcp-db", help="the service's named port (default: tcp-db)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    service = args.service or args.statefulset
    with contextlib.ExitStack() as stack:
        if args.real:
            resolver = hc.Resolver(args.nameserver, namespace=args.namespace)
        else:
            cluster = stack.enter_context(FakeClusterDNS())
            cluster.add_statefulset(args.statefulset, args.namespace, replicas=3, service=service,
                                    port_name=args.port, serve="tcp")
            resolver = cluster.resolver(namespace=args.namespace)

        # 1. The whole set with identities, from SRV: hostnames, ordinals, ports.
        pods = resolver.resolve(service, port=args.port)
        print(f"{pods.name}: ordinals {list(pods.ordinals)}")
        for ep in pods:
            print(f"  #{ep.ordinal}  {ep.hostname}  {ep.address}:{ep.port}")

        # 2. One pod by ordinal, straight from its own DNS name.
        primary = resolver.resolve_pod(args.statefulset, 0, service=service, port=pods[0].port)
        print(f"primary (ordinal 0): {primary}")
        print("  its DNS name:", hc.pod_fqdn(args.statefulset, 0, service=service, namespace=args.namespace,
                                             cluster_domain=resolver.cluster_domain))

        # 3. Without a named port (no SRV): count by A records, then ask <sts>-<i> names.
        found = resolver.resolve_statefulset(args.statefulset, service=service, port=pods[0].port)
        print(f"without SRV: found ordinals {list(found.ordinals)}")

        # 4. A live service: writes to ordinal 0, reads spread over the others.
        with hc.HeadlessService(service, port=args.port, resolver=resolver,
                                strategy=hc.PrimaryReplica()) as svc:
            with svc.connection(ordinal=0, timeout=2) as sock:
                print(f"write connection to ordinal 0: {sock.getpeername()[0]}")
            replica = svc.endpoint(ordinal=max(svc.endpoints.ordinals))
            print(f"a replica by ordinal: {replica}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
