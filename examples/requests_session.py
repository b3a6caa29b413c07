#!/usr/bin/env python3
"""requests over a headless service: a Session adapter that balances every request.

Needs the extra: pip install 'headless-client[requests]'. The adapter is mounted for the
service's URL; each request goes to a pod (round-robin here) through that pod's own pool,
other hosts are refused, and a crashed pod is routed around.

    python examples/requests_session.py                      # fake cluster of HTTP pods
    python examples/requests_session.py --real --service web.prod --port http
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

try:
    import requests

    from headless_client.contrib.requests import HeadlessAdapter
except ImportError as exc:
    print(f"this example needs requests: {exc}", file=sys.stderr)
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    port = int(args.port) if args.port.isdigit() else args.port
    with contextlib.ExitStack() as stack:
        cluster = None
        if args.real:
            resolver = hc.Resolver(args.nameserver)
        else:
            cluster = stack.enter_context(FakeClusterDNS())
            cluster.add_statefulset("web", "demo", replicas=3, serve="http")
            resolver = cluster.resolver()
        svc = stack.enter_context(hc.HeadlessService(args.service, port=port, resolver=resolver))
        svc.wait_for(1, timeout=10)
        session = stack.enter_context(requests.Session())
        session.mount(f"http://{svc.name}", HeadlessAdapter(svc))
        url = f"http://{svc.name}:{svc.endpoints[0].port}{args.path}"
        print("round robin:", " ".join(session.get(url, timeout=5).text.strip() for _ in range(6)))
        try:
            session.get(f"http://{svc.name}.example.com/")
        except hc.ForeignHost as exc:
            print("another host:", type(exc).__name__)
        if cluster is not None:
            cluster.kill_pod("web", "demo", 1)
            replies = [session.get(url, timeout=5).text for _ in range(6)]
            print("web-1 crashed; 6 more requests:", " ".join(replies))
            ejected = [ep.hostname for ep in svc.endpoints if ep not in svc.healthy_endpoints]
            print("ejected after failing:", ", ".join(str(h) for h in ejected))
    return 0


if __name__ == "__main__":
    sys.exit(main())
