"""The routing of the httpx transports, without I/O: which pod each request goes to, how
it is rewritten for the pod, which failures are retried, when the outcome is reported.

Shared by :class:`~headless_client.contrib.httpx.HeadlessTransport` and
:class:`~headless_client.contrib.httpx.AsyncHeadlessTransport` (see
:mod:`headless_client.contrib.httpx` for the rules).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Literal

import httpx

from ..aio import AsyncHeadlessService
from ..attempts import Attempts
from ..core import ServiceCore
from ..endpoints import Endpoint
from ..errors import HeadlessClientError
from ..hosts import ServiceHosts
from ..registry_core import Lease
from ..request import Request
from ..service import HeadlessService
from ._http_routing import HttpRouting, foreign_host, service_scope

__all__ = [
    "ENDPOINT_EXTENSION",
    "KEY_EXTENSION",
    "ORDINAL_EXTENSION",
    "PARTITION_EXTENSION",
    "KeyFunction",
    "Router",
    "one_tls_context",
]

KEY_EXTENSION = "headless_client.key"
ORDINAL_EXTENSION = "headless_client.ordinal"
PARTITION_EXTENSION = "headless_client.partition"
ENDPOINT_EXTENSION = "headless_client.endpoint"

_NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
_CONNECTION_LOST = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)

KeyFunction = Callable[[httpx.Request], object]
Stream = httpx.SyncByteStream | httpx.AsyncByteStream


class Router:
    """Everything but the I/O, shared by the sync and async transports."""

    def __init__(
        self,
        service: HeadlessService | AsyncHeadlessService,
        key: KeyFunction | None,
        header: str | None,
        retries: int,
        server_name: Literal["pod", "service"],
        host_header: Literal["url", "service", "pod"],
        failure_statuses: Collection[int],
        retry_methods: Collection[str],
    ) -> None:
        if not isinstance(service, (HeadlessService, AsyncHeadlessService)):
            raise TypeError(f"service must be a HeadlessService or AsyncHeadlessService: {service!r}")
        self.routing = HttpRouting.checked(
            key, header, retries, server_name, host_header, failure_statuses, retry_methods
        )
        self.service = service
        self.core: ServiceCore = service.core
        self.hosts: ServiceHosts = service_scope(service)

    def ours(self, request: httpx.Request, fallback: object) -> bool:
        """True when *request* is for the service; False when *fallback* should take it.

        Raises:
            ForeignHost: another host, and no fallback.
        """
        if self.hosts.matches(request.url.host):
            return True
        if fallback is not None:
            return False
        name = self.service.name
        raise foreign_host(
            request.url.host, name, self.hosts, "transport",
            f"mount it for the service (httpx.Client(mounts={{'http://{name}': transport}})) or pass "
            f"fallback=httpx.HTTPTransport()",
        )

    def plan(self, request: httpx.Request) -> Attempts:
        """The attempts *request* may make, from its routing extensions or the key."""
        ext = request.extensions
        if KEY_EXTENSION in ext:
            key = ext[KEY_EXTENSION]
        else:
            key = self.routing.key_of(request, request.headers)
        try:
            wanted = Request(key, ext.get(PARTITION_EXTENSION), ext.get(ORDINAL_EXTENSION))
        except HeadlessClientError as exc:
            raise httpx.ConnectError(f"bad routing for {self.service.name}: {exc}", request=request) from exc
        return Attempts.for_call(self.core, wanted, self.routing.retries)

    def target(self, attempts: Attempts, request: httpx.Request) -> Endpoint:
        """The pod of the next attempt.

        Raises:
            httpx.ConnectError: no pod to send to (caused by the library's error).
            httpx.TransportError: the last failure, once every pod left was tried.
        """
        return attempts.pick(self.core, lambda exc: httpx.ConnectError(
            f"no pod of {self.service.name} to send to: {exc}", request=request
        ))

    def rewrite(self, request: httpx.Request, endpoint: Endpoint) -> httpx.Request:
        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            extensions["sni_hostname"] = self.routing.tls_name(endpoint, self.service.name)
        headers = request.headers.copy()
        if self.routing.host_header != "url":
            host = self.routing.host_name(endpoint, self.service.name)
            port = request.url.port
            headers["Host"] = host if port is None else f"{host}:{port}"
        return httpx.Request(
            request.method,
            request.url.copy_with(host=endpoint.address, port=endpoint.port),
            headers=headers,
            stream=request.stream,
            extensions=extensions,
        )

    def failed(self, request: httpx.Request, lease: Lease[Any], error: httpx.TransportError,
               attempts: Attempts) -> bool:
        """Report the attempt on *lease* failed with *error*; True when *request* is to be
        sent to another pod (nothing was sent, or an idempotent request with a body in
        memory lost its connection)."""
        lease.failure()
        retryable = isinstance(error, _NOTHING_SENT) or (
            isinstance(error, _CONNECTION_LOST)
            and self.routing.may_resend(request.method)
            and isinstance(request.stream, httpx.ByteStream)  # a body we can send again
        )
        return attempts.retry(lease.endpoint, error, retryable)

    def answered(
        self,
        response: httpx.Response,
        lease: Lease[Any],
        latency: float,
        reporting: Callable[[Stream, Callable[[bool], None]], Stream],
    ) -> httpx.Response:
        """*response*, from *lease*'s pod in *latency* seconds: its stream wrapped by
        *reporting* (which reports the outcome when the body is closed), the pod named in
        its extensions."""
        bad_status = response.status_code in self.routing.failure_statuses

        def done(ok: bool) -> None:
            if ok and not bad_status:
                lease.success(latency)
            else:
                lease.failure()

        response.stream = reporting(response.stream, done)
        response.extensions[ENDPOINT_EXTENSION] = lease.endpoint
        return response


def one_tls_context(options: dict[str, Any]) -> dict[str, Any]:
    """*options* with ``verify`` made an SSL context once, shared by every pod's transport
    (httpx would load the CA bundle again for each pod: milliseconds each). The deprecated
    spellings (``verify=<path>``, ``cert=``) are left for httpx to handle, and warn."""
    verify = options.get("verify", True)
    if isinstance(verify, bool) and "cert" not in options:
        context = httpx.create_ssl_context(verify, trust_env=options.get("trust_env", True))
        return {**options, "verify": context}
    return options
