#!/usr/bin/env python3
"""TLS to every pod: each pod proves its own name, with a socket, requests, httpx, aiohttp and gRPC.

Needs: pip install 'headless-client[requests,httpx,aiohttp,grpc]' trustme. HTTPS pods (web)
and gRPC pods (greeter) on loopback addresses, named by a fake cluster DNS, each with a
certificate for its own FQDN (web-0.web.demo.svc.cluster.local) from a throwaway CA: every
client dials a pod's address and checks the certificate against that pod's name.

    python examples/tls_pods.py
"""

from __future__ import annotations

import asyncio
import http.server
import os
import socket
import ssl
import threading
from concurrent import futures

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # grpcio's core logs on stderr otherwise

import aiohttp
import grpc
import httpx
import requests
import trustme

import headless_client as hc
from headless_client.contrib.aiohttp import HeadlessMiddleware
from headless_client.contrib.grpc import HeadlessChannel
from headless_client.contrib.httpx import HeadlessTransport
from headless_client.contrib.requests import HeadlessAdapter
from headless_client.testing import FakeClusterDNS, FakePod

HELLO = "/demo.Greeter/Hello"


def serve_https(pod: FakePod, ca: trustme.CA) -> http.server.ThreadingHTTPServer:
    """HTTPS on the pod's address, with a certificate for the pod's FQDN: answers its name."""

    class Name(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(pod.name)))
            self.end_headers()
            self.wfile.write(pod.name.encode())

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((pod.address, pod.port), Name)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(pod.hostname).configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def serve_grpc(pod: FakePod, ca: trustme.CA) -> grpc.Server:
    """gRPC on the pod's address, with a certificate for the pod's FQDN: Hello answers its name."""
    cert = ca.issue_cert(pod.hostname)
    chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    hello: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(
        lambda request, context: pod.name.encode())
    greeter = grpc.method_handlers_generic_handler("demo.Greeter", {"Hello": hello})
    server.add_generic_rpc_handlers([greeter])
    server.add_secure_port(f"{pod.address}:{pod.port}",
                           grpc.ssl_server_credentials([(cert.private_key_pem.bytes(), chain)]))
    server.start()
    return server


def with_socket(cluster: FakeClusterDNS, ca_file: str) -> None:
    # --8<-- [start:socket]
    # ca_file: the CA's PEM file (in a pod: the mounted secret's ca.crt)
    ctx = ssl.create_default_context(cafile=ca_file)      # check_hostname=True, CERT_REQUIRED
    # ctx.load_cert_chain("/etc/tls/tls.crt", "/etc/tls/tls.key")   # optional: mutual TLS
    with hc.HeadlessService("web.demo", port="http", resolver=cluster.resolver()) as svc, \
            svc.connection(ordinal=0, ssl_context=ctx) as tls:
        print("socket:", tls.getpeercert()["subjectAltName"])   # web-0's own name
    # --8<-- [end:socket]


def with_requests(cluster: FakeClusterDNS, url: str, ca_file: str) -> None:
    # --8<-- [start:requests]
    # url: https://web.demo:<port>/ (the service's name); ca_file: the CA's PEM file
    with hc.HeadlessService("web.demo", port="http", resolver=cluster.resolver()) as svc:
        with requests.Session() as session:
            session.mount("https://web.demo", HeadlessAdapter(svc))
            print("requests:", [session.get(url, verify=ca_file).text for _ in range(3)])
        with requests.Session() as session:       # no pod's certificate names the service
            session.mount("https://web.demo", HeadlessAdapter(svc, server_name="service"))
            try:
                session.get(url, verify=ca_file)
            except requests.exceptions.SSLError:
                print("checked against the service's name instead: refused")
    # --8<-- [end:requests]


def with_httpx(cluster: FakeClusterDNS, url: str, ca_file: str) -> None:
    # --8<-- [start:httpx]
    # url: https://web.demo:<port>/ (the service's name); ca_file: the CA's PEM file
    context = ssl.create_default_context(cafile=ca_file)
    with hc.HeadlessService("web.demo", port="http", resolver=cluster.resolver()) as svc, \
            httpx.Client(transport=HeadlessTransport(svc, verify=context)) as client:
        print("httpx:", [client.get(url).text for _ in range(3)])    # web-N proves its name
    # --8<-- [end:httpx]


async def with_aiohttp(cluster: FakeClusterDNS, url: str, ca_file: str) -> None:
    # --8<-- [start:aiohttp]
    # url: https://web.demo:<port>/ (the service's name); ca_file: the CA's PEM file
    context = ssl.create_default_context(cafile=ca_file)
    async with hc.AsyncHeadlessService("web.demo", port="http",
                                       resolver=cluster.async_resolver()) as svc, \
            aiohttp.ClientSession(middlewares=[HeadlessMiddleware(svc)]) as session:
        names = []
        for _ in range(3):
            async with session.get(url, ssl=context) as response:    # web-N proves its name
                names.append(await response.text())
        print("aiohttp:", names)
    # --8<-- [end:aiohttp]


def with_grpc(cluster: FakeClusterDNS, ca: trustme.CA) -> None:
    # --8<-- [start:grpc]
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
    with hc.HeadlessService("greeter.demo", port="http", resolver=cluster.resolver()) as svc, \
            HeadlessChannel(svc, credentials=credentials) as channel:
        hello = channel.unary_unary(HELLO)                # greeter-N proves greeter-N's name
        print("grpc:", [hello(b"").decode() for _ in range(3)])
    # --8<-- [end:grpc]


def main() -> None:
    ca = trustme.CA()
    with socket.socket() as probe:     # a free port: every pod listens on its own address
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with FakeClusterDNS() as cluster, ca.cert_pem.tempfile() as ca_file:
        web = [serve_https(pod, ca) for pod in cluster.add_statefulset("web", "demo", 3, port=port)]
        greeter = [serve_grpc(pod, ca) for pod in cluster.add_statefulset("greeter", "demo", 3,
                                                                          port=port)]
        try:
            url = f"https://web.demo:{port}/"
            with_socket(cluster, ca_file)
            with_requests(cluster, url, ca_file)
            with_httpx(cluster, url, ca_file)
            asyncio.run(with_aiohttp(cluster, url, ca_file))
            with_grpc(cluster, ca)
        finally:
            for server in web:
                server.shutdown()
                server.server_close()
            for grpc_server in greeter:
                grpc_server.stop(None)


if __name__ == "__main__":
    main()
