#!/usr/bin/env python3
"""httpx over a headless service: every request to a pod, sticky by header, with failover.

Needs the extra: pip install 'headless-client[httpx]'. The transport picks a pod per
request with the service's strategy, keeps the Host header, reports successes and failures
(a pod that fails is ejected for a while) and retries on another pod when a connection
cannot be made.

    python examples/httpx_client.py                          # fake cluster of HTTP pods
    python examples/httpx_client.py --real --service web.prod --port http --path /hostname
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

try:
    import httpx

    from headless_client.contrib.httpx import HeadlessTransport
except ImportError as exc:
    print(f"this example needs httpx: {exc}", file=sys.stderr)
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

        rr = stack.enter_context(hc.HeadlessService(args.service, port=port, resolver=resolver))
        rr.wait_for(1, timeout=10)
        client = stack.enter_context(httpx.Client(
            transport=HeadlessTransport(rr), base_url=f"http://{rr.name}", timeout=5,
        ))
        print("round robin:", " ".join(client.get(args.path).text.strip() for _ in range(6)))

        sticky = stack.enter_context(hc.HeadlessService(args.service, port=port, resolver=resolver,
                                                        strategy=hc.Sticky()))
        by_user = stack.enter_context(httpx.Client(
            transport=HeadlessTransport(sticky, header="X-User"), base_url=f"http://{sticky.name}",
            timeout=5,
        ))
        for user in ("alice", "bob", "carol"):
            replies = [by_user.get(args.path, headers={"X-User": user}) for _ in range(3)]
            answers = {reply.text.strip() for reply in replies}
            print(f"sticky: X-User {user} -> {', '.join(sorted(answers))}")

        if cluster is not None:
            cluster.kill_pod("web", "demo", 1)
            print("web-1 crashed; 6 more requests:",
                  " ".join(client.get(args.path).text for _ in range(6)))
            ejected = [ep.hostname for ep in rr.endpoints if ep not in rr.healthy_endpoints]
            print("ejected after failing:", ", ".join(str(h) for h in ejected))
    return 0


if __name__ == "__main__":
    sys.exit(main())
