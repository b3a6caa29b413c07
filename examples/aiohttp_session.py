#!/usr/bin/env python3
"""aiohttp over a headless service: a client middleware that balances every request,
keep-alive included.

Needs the extra: pip install 'headless-client[aiohttp]'.

    python examples/aiohttp_session.py                       # fake cluster of HTTP pods
    python examples/aiohttp_session.py --real --service web.prod --port http
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

try:
    import aiohttp

    from headless_client.contrib.aiohttp import HeadlessMiddleware
except ImportError as exc:
    print(f"this example needs aiohttp: {exc}", file=sys.stderr)
    sys.exit(2)

import headless_client as hc
from headless_client.testing import FakeClusterDNS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", action="store_true",
                   default=os.environ.get("HEADLESS_CLIENT_REAL") == "1",
                   help="use real DNS (inside a cluster) instead of the fake cluster")
    p.add_argument("--nameserver", action="append", help="with --real: DNS server HOST:PORT")
    p.add_argument("--service", default="web.demo", help="service name (default: web.demo)")
    p.add_argument("--port", default="http", help="named port (SRV) or number (default: http)")
    p.add_argument("--path", default="/", help="path to GET (default: /)")
    return p.parse_args(argv)


async def run(args: argparse.Namespace, resolver: hc.AsyncResolver,
              cluster: FakeClusterDNS | None) -> None:
    port = int(args.port) if args.port.isdigit() else args.port
    async with hc.AsyncHeadlessService(args.service, port=port, resolver=resolver) as svc:
        await svc.wait_for(1, timeout=10)
        async with aiohttp.ClientSession(middlewares=[HeadlessMiddleware(svc)]) as session:
            url = f"http://{svc.name}:{svc.endpoints[0].port}{args.path}"

            async def get() -> str:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                    return (await response.text()).strip()

            print("round robin:", " ".join([await get() for _ in range(6)]))
            if cluster is not None:
                per_pod = {p.name: p.connections for p in cluster.pods("web", "demo")}
                print("connections per pod:", per_pod)
                cluster.kill_pod("web", "demo", 1)
                print("web-1 crashed; 6 more requests:", " ".join([await get() for _ in range(6)]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        cluster = None
        if args.real:
            resolver = hc.AsyncResolver(args.nameserver)
        else:
            cluster = stack.enter_context(FakeClusterDNS())
            cluster.add_statefulset("web", "demo", replicas=3, serve="http")
            resolver = cluster.async_resolver()
        asyncio.run(run(args, resolver, cluster))
    return 0


if __name__ == "__main__":
    sys.exit(main())
