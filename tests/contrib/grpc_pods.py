"""Real grpcio servers as the pods of a StatefulSet in a FakeClusterDNS (tests and benchmarks).

Each pod is a ``grpc.server`` bound on the pod's own loopback address (``127.x.y.z``) and
the service port, serving generic handlers on raw bytes (no code generation) under the
service ``test.Pods``:

- ``Who`` (unary): the pod's name; ``Echo`` (unary): ``<pod>|<metadata k=v,...>``;
- ``Slow`` (unary): waits the seconds in the request (at most 10), then the pod's name;
- ``Count`` (unary -> stream): the pod's name, as many times as the request says;
- ``Sum`` (stream -> unary): ``<pod>:<total bytes received>``;
- ``Chat`` (stream -> stream): ``<pod>:<message>`` for each message.

Pods enter DNS only once their server listens, and leave DNS before it stops, as a
readiness probe and a preStop hook would make them.
"""

from __future__ import annotations

import collections
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from headless_client.testing import FakeClusterDNS, FakePod

SERVICE = "test.Pods"
WHO = f"/{SERVICE}/Who"
ECHO = f"/{SERVICE}/Echo"
SLOW = f"/{SERVICE}/Slow"
COUNT = f"/{SERVICE}/Count"
SUM = f"/{SERVICE}/Sum"
CHAT = f"/{SERVICE}/Chat"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 (pods use it on their own addresses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class GrpcPods:
    """The pods of StatefulSet *name* in *cluster*, each a real grpcio server.

    Args:
        cluster: the fake cluster DNS (started).
        replicas: pods to start with.
        ca: a ``trustme.CA``: serve TLS with a certificate for each pod's own FQDN (and
            the names in *extra_names*).
    """

    def __init__(
        self,
        cluster: FakeClusterDNS,
        name: str = "web",
        namespace: str = "prod",
        replicas: int = 3,
        *,
        ca: Any = None,
        extra_names: tuple[str, ...] = (),
        cert_names: dict[int, tuple[str, ...]] | None = None,
    ) -> None:
        self.cluster = cluster
        self.name = name
        self.namespace = namespace
        self.ca = ca
        self.extra_names = extra_names
        self.cert_names = cert_names or {}
        self.port = free_port()
        self.lock = threading.Lock()
        self.calls: collections.Counter[str] = collections.Counter()
        #: (pod name, handler) -> calls received, e.g. ("web-0", "slow")
        self.received: collections.Counter[tuple[str, str]] = collections.Counter()
        self.servers: dict[str, grpc.Server] = {}  # address -> server
        cluster.add_statefulset(name, namespace, 0, port=self.port)
        for ordinal in range(replicas):
            self.add(ordinal)

    @property
    def fqdn(self) -> str:
        return self.cluster.service_fqdn(self.name, self.namespace)

    # -- pods --------------------------------------------------------------------------

    def add(self, ordinal: int | None = None) -> FakePod:
        """A new pod: its server starts, then it becomes ready (enters DNS)."""
        pod = self.cluster.add_pod(self.name, self.namespace, ordinal, ready=False)
        self._serve(pod)
        return self.cluster.set_ready(self.name, self.namespace, pod.ordinal or 0, True)

    def remove(self, ordinal: int | None = None, grace: float | None = 1.0) -> FakePod:
        """Delete a pod: it leaves DNS, then its server stops (finishing calls within *grace*)."""
        pod = self.cluster.remove_pod(self.name, self.namespace, ordinal)
        self._stop(pod.address, grace)
        return pod

    def kill(self, ordinal: int) -> FakePod:
        """The pod's process dies: its server is gone at once, DNS still lists it."""
        pod = self.cluster.pod(self.name, self.namespace, ordinal)
        self._stop(pod.address, None)
        return pod

    def restart(self, ordinal: int, grace: float | None = 1.0) -> FakePod:
        """A rolling-update step: unready (out of DNS), stopped, back at a new address."""
        pod = self.cluster.set_ready(self.name, self.namespace, ordinal, False)
        self._stop(pod.address, grace)
        moved = self.cluster.reip_pod(self.name, self.namespace, ordinal)
        self._serve(moved)
        return self.cluster.set_ready(self.name, self.namespace, ordinal, True)

    def close(self) -> None:
        with self.lock:
            servers = list(self.servers.values())
            self.servers.clear()
        for server in servers:
            server.stop(None).wait(5)

    def __enter__(self) -> GrpcPods:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- servers -----------------------------------------------------------------------

    def _stop(self, address: str, grace: float | None) -> None:
        with self.lock:
            server = self.servers.pop(address, None)
        if server is not None:
            server.stop(grace).wait(10)

    def _serve(self, pod: FakePod) -> None:
        server = grpc.server(ThreadPoolExecutor(max_workers=16, thread_name_prefix=f"pod-{pod.name}"))
        server.add_generic_rpc_handlers((self._handlers(pod.name),))
        where = f"{pod.address}:{self.port}"
        if self.ca is not None:
            names = self.cert_names.get(pod.ordinal or 0, (pod.hostname, *self.extra_names))
            cert = self.ca.issue_cert(*names)
            credentials = grpc.ssl_server_credentials(
                [(cert.private_key_pem.bytes(), cert.cert_chain_pems[0].bytes())]
            )
            bound = server.add_secure_port(where, credentials)
        else:
            bound = server.add_insecure_port(where)
        if bound != self.port:
            raise OSError(f"pod {pod.name}: cannot listen on {where}")
        server.start()
        with self.lock:
            self.servers[pod.address] = server

    def _handlers(self, pod: str) -> grpc.GenericRpcHandler:
        def count(kind: str) -> None:
            with self.lock:
                self.calls[pod] += 1
                self.received[(pod, kind)] += 1

        def who(request: bytes, context: grpc.ServicerContext) -> bytes:
            count("who")
            return pod.encode()

        def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
            count("echo")
            metadata = ",".join(f"{k}={v}" for k, v in context.invocation_metadata()
                                if not k.startswith(("grpc-", "user-agent")))
            return f"{pod}|{metadata}".encode()

        def slow(request: bytes, context: grpc.ServicerContext) -> bytes:
            count("slow")
            threading.Event().wait(min(float(request or b"0"), 10.0))
            return pod.encode()

        def many(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            count("count")
            for _ in range(int(request or b"1")):
                yield pod.encode()

        def total(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
            count("sum")
            return f"{pod}:{sum(len(r) for r in requests)}".encode()

        def chat(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
            count("chat")
            for message in requests:
                yield pod.encode() + b":" + message

        return grpc.method_handlers_generic_handler(SERVICE, {
            "Who": grpc.unary_unary_rpc_method_handler(who),
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "Slow": grpc.unary_unary_rpc_method_handler(slow),
            "Count": grpc.unary_stream_rpc_method_handler(many),
            "Sum": grpc.stream_unary_rpc_method_handler(total),
            "Chat": grpc.stream_stream_rpc_method_handler(chat),
        })
