#!/usr/bin/env python3
"""gRPC over a headless service: a channel whose every call goes to a pod.

Needs the extra: pip install 'headless-client[grpc]'. Three gRPC "pods" on loopback
addresses, named by a fake cluster DNS, stand in for a StatefulSet; the program calls them
round-robin, scales up (the new pod gets calls at the next refresh, no call fails), then
kills a pod (a retryable call moves to another pod, and the dead pod is ejected).

    python examples/grpc_channel.py
"""

from __future__ import annotations

import os
import socket
import sys
import time
from concurrent import futures

# grpcio's core logs connection events (a crashed pod's GOAWAY) on stderr; errors only here.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

try:
    import grpc

    from headless_client.contrib.grpc import HeadlessChannel
except ImportError as exc:
    print(f"this example needs grpcio: {exc}", file=sys.stderr)
    sys.exit(2)

import headless_client as hc
from headless_client.testing import FakeClusterDNS, FakePod

HELLO = "/demo.Greeter/Hello"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve(pod: FakePod) -> grpc.Server:
    """One gRPC server per pod, on its own address: Hello answers with the pod's name."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    hello = grpc.unary_unary_rpc_method_handler(lambda request, context: pod.name.encode())
    greeter = grpc.method_handlers_generic_handler("demo.Greeter", {"Hello": hello})
    server.add_generic_rpc_handlers([greeter])
    server.add_insecure_port(f"{pod.address}:{pod.port}")
    server.start()
    return server


def main() -> int:
    with FakeClusterDNS() as cluster:
        pods = cluster.add_statefulset("greeter", "demo", 3, port=free_port())
        servers = {pod.name: serve(pod) for pod in pods}
        try:
            with hc.HeadlessService("greeter.demo", port="http", resolver=cluster.resolver(),
                                    min_refresh=0.1, max_refresh=0.5) as svc, \
                    HeadlessChannel(svc, retryable={HELLO}) as channel:
                hello = channel.unary_unary(HELLO)
                print("round robin:", " ".join(hello(b"").decode() for _ in range(6)))

                new = cluster.add_pod("greeter", "demo", ready=False)   # server first, then DNS
                servers[new.name] = serve(new)
                cluster.set_ready("greeter", "demo", new.ordinal or 0, True)
                start, calls, failed = time.monotonic(), 0, 0
                while time.monotonic() - start < 10:
                    calls += 1
                    try:
                        if hello(b"", timeout=2) == b"greeter-3":
                            break
                    except grpc.RpcError:
                        failed += 1
                print(f"scaled up: greeter-3 answered after {time.monotonic() - start:.2f}s, "
                      f"{calls} calls, {failed} failed")

                servers.pop("greeter-1").stop(None)                      # dies; DNS still lists it
                replies = [hello(b"", timeout=2).decode() for _ in range(8)]
                print("greeter-1 crashed; 8 retryable calls:", " ".join(replies))
                ejected = [ep.hostname for ep in svc.endpoints if ep not in svc.healthy_endpoints]
                print("ejected:", ", ".join(str(h) for h in ejected))
        finally:
            for server in servers.values():
                server.stop(None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
