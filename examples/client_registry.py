#!/usr/bin/env python3
"""Any client, balanced: one client object per pod, from a ClientRegistry.

The pods here speak a line protocol (they answer every line with their name); the per-pod
client is a small class of ours, but it could be a Redis client, a database pool, an SDK.
The registry builds one per pod, follows scale-ups and scale-downs, and picks one per call.

    python examples/client_registry.py
    python examples/client_registry.py --real --service web.prod --port http
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import threading

import headless_client as hc
from headless_client.testing import FakeClusterDNS


class PodClient:
    """One connection to one pod, opened at the first call."""

    def __init__(self, endpoint: hc.Endpoint) -> None:
        self.endpoint = endpoint
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None

    def ask(self, line: str) -> str:
        with self.lock:
            if self.sock is None:
                self.sock = socket.create_connection((self.endpoint.address, self.endpoint.port), timeout=5)
                self.reader = self.sock.makefile("rb")
                self.reader.readline()  # the greeting
            self.sock.sendall(line.encode() + b"\n")
            return self.reader.readline().decode().strip()

    def close(self) -> None:
        with self.lock:
            if self.sock is not None:
                self.reader.close()
                self.sock.close()
                self.sock = None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", action="store_true", default=os.environ.get("HEADLESS_CLIENT_REAL") == "1",
                   help="use real DNS (inside a cluster) instead of the fake cluster")
    p.add_argument("--nameserver", action="append", help="with --real: DNS server HOST:PORT")
    p.add_argument("--service", default="web.demo", help="service name (default: web.demo)")
    p.add_argument("--port", default="http", help="named port (SRV) or number (default: http)")
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
            cluster.add_statefulset("web", "demo", replicas=3, serve="tcp")
            resolver = cluster.resolver()
        svc = stack.enter_context(hc.HeadlessService(args.service, port=port, resolver=resolver,
                                                     min_refresh=0.1, max_refresh=0.5))
        svc.wait_for(1, timeout=10)
        clients = stack.enter_context(hc.ClientRegistry(svc, PodClient, failures=OSError))
        answers = []
        for _ in range(6):
            with clients.client() as (_, client):
                answers.append(client.ask("who?"))
        print("round robin:", " ".join(answers))
        print("clients:", len(clients.clients()))
        if cluster is not None:
            cluster.scale("web", "demo", 2)
            svc.refresh()
            for _ in range(100):  # the registry hears of the change on the events thread
                if len(clients.clients()) == 2:
                    break
                threading.Event().wait(0.05)
            print("scaled down to 2: clients", len(clients.clients()),
                  "| answers", " ".join(clients.call(lambda c: c.ask("who?")) for _ in range(4)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
