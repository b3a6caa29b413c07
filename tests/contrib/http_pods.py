"""HTTP(S) pods for the HTTP integrations' tests: ``http.server`` on each pod's own loopback
address, behind TLS with a certificate (from a ``trustme.CA``) for the pod's own FQDN.

The fake cluster's ``serve="http"`` pods cover plain HTTP; these add what they lack: TLS,
and *broken* pods that read a request and close the connection without answering (a
connection that breaks after the request was sent). Each healthy pod answers every
request with its pod name (header ``X-Pod``, and ``X-Host`` echoing the ``Host`` header
it received), after reading the request's body.
"""

from __future__ import annotations

import http.server
import ssl
import threading
from typing import Any

from headless_client.testing import FakeClusterDNS, FakePod
from tests.contrib.grpc_pods import free_port


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    pod = ""

    broken = False

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.broken:  # read the request, answer nothing, drop the connection
            self.close_connection = True
            return
        body = self.pod.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Pod", self.pod)
        self.send_header("X-Host", self.headers.get("Host", ""))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET
    do_PUT = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HttpPods:
    """StatefulSet *name* of *cluster*, each pod an HTTP server (HTTPS with *ca*).

    Args:
        ca: the ``trustme.CA`` issuing the pods' certificates (None: plain HTTP).
        cert_names: per ordinal, the names its certificate carries instead of its FQDN.
        broken: ordinals of pods that drop every request after reading it.
    """

    def __init__(self, cluster: FakeClusterDNS, ca: Any = None, name: str = "web", namespace: str = "prod",
                 replicas: int = 3, *, cert_names: dict[int, tuple[str, ...]] | None = None,
                 broken: tuple[int, ...] = ()) -> None:
        self.cluster = cluster
        self.ca = ca
        self.port = free_port()
        self.cert_names = cert_names or {}
        self.broken = broken
        self.servers: list[tuple[http.server.ThreadingHTTPServer, threading.Thread]] = []
        cluster.add_statefulset(name, namespace, 0, port=self.port)
        for ordinal in range(replicas):
            pod = cluster.add_pod(name, namespace, ordinal, ready=False)
            self._serve(pod)
            cluster.set_ready(name, namespace, ordinal, True)

    def _serve(self, pod: FakePod) -> None:
        handler = type("Handler", (_Handler,), {"pod": pod.name, "broken": pod.ordinal in self.broken})
        server = http.server.ThreadingHTTPServer((pod.address, self.port), handler)
        server.daemon_threads = True
        if self.ca is not None:
            names = self.cert_names.get(pod.ordinal or 0, (pod.hostname,))
            cert = self.ca.issue_cert(*names)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(context)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        self.servers.append((server, thread))

    def close(self) -> None:
        for server, thread in self.servers:
            server.shutdown()
            server.server_close()
            thread.join(5)
        self.servers.clear()

    def __enter__(self) -> HttpPods:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
