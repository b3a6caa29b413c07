#!/usr/bin/env python3
"""Sticky sessions: the same key (user, tenant, cache key) always goes to the same pod.

Sticky uses consistent hashing over pod identities (their DNS names), stable across
processes and restarts: when a pod is added only about 1/N of the keys move, all to it.

    python examples/sticky_sessions.py                       # fake cluster: 3 pods, then 4
    python examples/sticky_sessions.py --real --service cache.prod --port redis
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
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


def pod(ep: hc.Endpoint) -> str:
    return ep.hostname.split(".")[0] if ep.hostname else str(ep)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    port = int(args.port) if args.port.isdigit() else args.port
    with contextlib.ExitStack() as stack:
        cluster = None
        if args.real:
            resolver = hc.Resolver(args.nameserver)
        else:
            cluster = stack.enter_context(FakeClusterDNS())
            cluster.add_statefulset("web", "demo", replicas=3)
            resolver = cluster.resolver()

        svc = stack.enter_context(hc.HeadlessService(
            args.service, port=port, resolver=resolver, strategy=hc.Sticky(),
            min_refresh=0.1, max_refresh=0.5,
        ))
        svc.wait_for(1, timeout=10)
        print(f"{svc.name}: {len(svc.endpoints)} pods")
        for user in ("alice", "bob", "carol", "dave", "erin"):
            print(f"  {user:<6} -> {pod(svc.pick(user))}")

        keys = [f"session-{i}" for i in range(1000)]
        before = {k: svc.pick(k).identity for k in keys}  # identity: the pod's DNS name
        if cluster is None:
            return 0

        # Scale 3 -> 4 and wait (on the subscription, with a deadline) for the refresher.
        changes: queue.Queue[hc.EndpointSet] = queue.Queue()
        svc.subscribe(lambda old, new: changes.put(new))
        cluster.scale("web", "demo", 4)
        view = changes.get(timeout=10)
        print(f"scaled to {len(view)} pods")
        moved = [k for k in keys if svc.pick(k).identity != before[k]]
        targets = {pod(svc.pick(k)) for k in moved}
        print(f"{len(moved)} of {len(keys)} keys moved (about 1/4 expected), "
              f"all to: {', '.join(sorted(targets))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
