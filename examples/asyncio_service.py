#!/usr/bin/env python3
"""asyncio: a live view of a headless service, change notifications, and connections.

AsyncHeadlessService keeps the pod list fresh from a background task; subscribers (plain
or async functions) hear about every change. Nothing blocks the event loop.

    python examples/asyncio_service.py                       # fake cluster, scaled live
    python examples/asyncio_service.py --real --service web.prod --port http
"""

from __future__ import annotations

import argparse
import asyncio
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
    p.add_argument("--service", default="web.demo", help="service name (default: web.demo)")
    p.add_argument("--port", default="http", help="named port (SRV) or number (default: http)")
    return p.parse_args(argv)


def pods(view: hc.EndpointSet) -> str:
    return " ".join(ep.hostname.split(".")[0] if ep.hostname else ep.address for ep in view) or "(none)"


async def run(args: argparse.Namespace, cluster: FakeClusterDNS | None) -> None:
    port = int(args.port) if args.port.isdigit() else args.port
    resolver = hc.AsyncResolver(args.nameserver) if cluster is None else cluster.async_resolver()
    changed = asyncio.Event()

    async def on_change(old: hc.EndpointSet, new: hc.EndpointSet) -> None:
        print(f"  change: {len(old)} -> {len(new)} pods: {pods(new)}")
        changed.set()

    async with hc.AsyncHeadlessService(args.service, port=port, resolver=resolver,
                                       min_refresh=0.1, max_refresh=0.5) as svc:
        await svc.wait_for(1, timeout=10)
        print(f"{svc.name}: {pods(svc.endpoints)}")
        svc.subscribe(on_change)

        for _ in range(3):
            async with svc.connection(timeout=2) as (reader, writer):
                print(f"  connected to {writer.get_extra_info('peername')[0]}")

        if cluster is not None:
            print("scaling the StatefulSet to 5 while the service runs...")
            cluster.scale("web", "demo", 5)
            await asyncio.wait_for(svc.wait_for(5), timeout=10)
            await asyncio.wait_for(changed.wait(), timeout=10)
            reader, writer = await svc.connect(ordinal=4)
            try:
                greeting = await asyncio.wait_for(reader.readline(), timeout=2)
                print(f"the new pod web-4 says: {greeting.decode().strip()}")
            finally:
                writer.close()
                await writer.wait_closed()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        cluster = None
        if not args.real:
            cluster = stack.enter_context(FakeClusterDNS())
            cluster.add_statefulset("web", "demo", replicas=3, serve="tcp")
        asyncio.run(run(args, cluster))
    return 0


if __name__ == "__main__":
    sys.exit(main())
