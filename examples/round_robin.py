#!/usr/bin/env python3
"""Round robin: spread connections evenly over every pod of a headless service.

By default this runs against a fake cluster on this machine (nothing to install); inside a
Kubernetes cluster point it at a real service:

    python examples/round_robin.py                          # fake cluster, 3 pods
    python examples/round_robin.py --real --service web.prod --port http
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import socket
import sys

import headless_client as hc
from headless_client.testing import FakeClusterDNS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", action="store_true", default=os.environ.get("HEADLESS_CLIENT_REAL") == "1",
                   help="use real DNS (inside a cluster) instead of the fake cluster")
    p.add_argument("--nameserver", action="append", help="with --real: DNS server HOST:PORT")
    p.add_argument("--service", default="web.demo", help="service name (default: web.demo)")
    p.add_argument("--port", default="http", help="named port (SRV) or number (default: http)")
    return p.parse_args(argv)


def who(svc: hc.HeadlessService, sock: socket.socket) -> str:
    """The pod a connected socket talks to, by its address."""
    address = sock.getpeername()[0]
    for ep in svc.endpoints:
        if ep.address == address:
            return ep.hostname.split(".")[0] if ep.hostname else ep.address
    return address


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    port = int(args.port) if args.port.isdigit() else args.port
    with contextlib.ExitStack() as stack:
        if args.real:
            resolver = hc.Resolver(args.nameserver)
        else:
            cluster = stack.enter_context(FakeClusterDNS())
            cluster.add_statefulset("web", "demo", replicas=3, serve="tcp")
            resolver = cluster.resolver()

        svc = stack.enter_context(hc.HeadlessService(args.service, port=port, resolver=resolver,
                                                     strategy=hc.RoundRobin()))
        svc.wait_for(1, timeout=10)
        print(f"{svc.name}: {len(svc.endpoints)} pods")
        for ep in svc.endpoints:
            print(f"  {ep}")

        print("6 connections, one pod after the other:")
        for _ in range(6):
            with svc.connection(timeout=2) as sock:  # retried on another pod if one fails
                print(f"  connected to {who(svc, sock)}")

        counts = collections.Counter(svc.pick().address for _ in range(300))
        print("300 picks:", ", ".join(f"{addr}={n}" for addr, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
