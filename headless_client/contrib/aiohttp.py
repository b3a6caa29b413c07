"""An aiohttp client middleware that sends each request to a pod of a headless service.

``pip install 'headless-client[aiohttp]'`` (aiohttp >= 3.12, which has client middlewares)::

    import aiohttp
    from headless_client import AsyncHeadlessService
    from headless_client.contrib.aiohttp import HeadlessMiddleware

    async with AsyncHeadlessService("api.prod", port="http") as svc:
        async with aiohttp.ClientSession(middlewares=[HeadlessMiddleware(svc)]) as session:
            async with session.get("http://api.prod:8080/users/42") as response:   # a pod
                print(await response.text())

Why a middleware: aiohttp pools connections per host and port, so with a resolver that
returns every pod, keep-alive sends every request to the first pod it connected to
(unless ``force_close=True``, which gives up keep-alive). The middleware picks a pod **per
request** with the service's strategy and points the request at the pod's address and
port: aiohttp then pools connections per pod, keep-alive included, and cannot pin a pod.
The URL only names the service: the ``Host`` header stays the URL's and ``response.url``
is the URL you asked for.

Host scoping: only requests whose host is the service (any spelling its resolver accepts)
go to pods. A request for another host is refused with
:class:`~headless_client.errors.ForeignHost` (nothing is sent), or, with
``other_hosts="pass"``, sent untouched as aiohttp would: a pod never receives a request,
or its ``Authorization`` header, meant for another host.

TLS (``https``): the certificate is verified as aiohttp does (``ssl=``), against the
**pod's own name** (its FQDN when DNS gave one, SRV) while dialling its address (aiohttp's
``server_hostname``, which is also part of the pool key, so a connection to one pod is
never reused for another), or the service's FQDN (``server_name="service"``, or on the
A/AAAA path where pods have no names).

Routing: ``key=`` (a function of the ``ClientRequest``) or ``header=`` (a header's value)
gives the strategy its key.

Health and retries: a response reports a success with its latency (time to the response
headers; :class:`~headless_client.LeastLoaded` counts the request in flight until then);
a connection error reports a failure (the pod is ejected for a while, DNS refreshed
early), as does a status in ``failure_statuses``. A request whose connection could not be
made (``ClientConnectorError``: nothing sent) is retried on another pod whatever its
method, at most ``retries`` times; one whose connection broke after sending
(``ServerDisconnectedError``, ``ClientOSError``) only when its method is idempotent
(``retry_methods``) and its body is in memory. Timeouts are not retried. With no pod to
send to, an ``aiohttp.ClientConnectionError`` is raised whose ``__cause__`` is the
library's error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from typing import Any, Literal

from ._extras import missing_extra

try:
    import aiohttp
    from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, payload
except ImportError as exc:  # pragma: no cover - exercised by a test with aiohttp hidden
    raise missing_extra("headless_client.contrib.aiohttp", "aiohttp >= 3.12", "aiohttp") from exc

from .._registry_face import check_service
from .._spans import annotate
from ..attempts import Attempts
from ..endpoints import Endpoint
from ..errors import InvalidName
from ..hosts import ServiceHosts
from ..request import Request
from ._http_routing import IDEMPOTENT_METHODS, HttpRouting, foreign_host, service_scope

__all__ = ["IDEMPOTENT_METHODS", "HeadlessMiddleware"]

KeyFunction = Callable[[ClientRequest], object]

_NOTHING_SENT = (aiohttp.ClientConnectorError,)
_CONNECTION_LOST = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError)
_TIMEOUTS = (asyncio.TimeoutError, aiohttp.ServerTimeoutError)


class HeadlessMiddleware:
    """``aiohttp.ClientSession(middlewares=[HeadlessMiddleware(svc)])``: each request for
    the service goes to a pod; see the module documentation.

    Args:
        service: a started :class:`~headless_client.AsyncHeadlessService` (the caller's).
        key: a function ``client_request -> key`` for the strategy.
        header: take the key from this request header instead.
        retries: extra attempts on other pods.
        server_name: the TLS name to verify: ``"pod"`` (its FQDN when known) or ``"service"``.
        failure_statuses: statuses that count as a pod failure (e.g. ``{502, 503, 504}``).
        retry_methods: methods retried after a broken connection.
        other_hosts: ``"refuse"`` (:class:`~headless_client.errors.ForeignHost`) or
            ``"pass"`` (sent untouched) for requests to other hosts.

    Raises:
        InvalidArgument / InvalidName: a wrong argument, naming it.
    """

    def __init__(
        self,
        service: Any,
        *,
        key: KeyFunction | None = None,
        header: str | None = None,
        retries: int = 2,
        server_name: Literal["pod", "service"] = "pod",
        failure_statuses: Collection[int] = (),
        retry_methods: Collection[str] = IDEMPOTENT_METHODS,
        other_hosts: Literal["refuse", "pass"] = "refuse",
    ) -> None:
        check_service(service, awaited=True)
        routing = HttpRouting.checked(
            key, header, retries, server_name, "url", failure_statuses, retry_methods
        )
        if other_hosts not in ("refuse", "pass"):
            raise InvalidName(f"other_hosts must be 'refuse' or 'pass': {other_hosts!r}")
        self.service = service
        self.hosts: ServiceHosts = service_scope(service)
        self._routing = routing
        self._other_hosts = other_hosts

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        """Send *request* to a pod (or pass or refuse it, for another host)."""
        url = request.url
        if not self.hosts.matches(url.host):
            if self._other_hosts == "pass":
                return await handler(request)
            raise foreign_host(url.host, self.service.name, self.hosts, "middleware",
                               "pass other_hosts='pass' to send other hosts' requests as aiohttp would")
        routing = self._routing
        core = self.service.core
        wanted = Request(key=routing.key_of(request, request.headers))
        attempts = Attempts.for_call(core, wanted, routing.retries)
        while True:  # bounded: every failure retried spends one of the attempts
            endpoint = attempts.pick(core, lambda exc: aiohttp.ClientConnectionError(
                f"no pod of {self.service.name} to send to: {exc}"
            ))
            self._aim(request, url, endpoint)
            core.started(endpoint)
            annotate(core.name, endpoint)
            start = time.monotonic()
            try:
                response = await handler(request)
            except _TIMEOUTS:
                self.service.report_failure(endpoint)
                raise
            except (*_NOTHING_SENT, *_CONNECTION_LOST) as exc:
                self.service.report_failure(endpoint)
                retryable = isinstance(exc, _NOTHING_SENT) or (
                    routing.may_resend(request.method) and _replayable(request)
                )
                if attempts.retry(endpoint, exc, retryable):
                    continue
                raise
            except BaseException:
                core.finished(endpoint)
                raise
            if response.status in routing.failure_statuses:
                self.service.report_failure(endpoint)
            else:
                self.service.report_success(endpoint, time.monotonic() - start)
            return response

    def _aim(self, request: ClientRequest, url: Any, endpoint: Endpoint) -> None:
        """Point *request* at *endpoint* (the Host header, set from the URL, stays)."""
        request.url = url.with_host(endpoint.address).with_port(endpoint.port)
        if url.scheme in ("https", "wss"):
            request.server_hostname = self._routing.tls_name(endpoint, self.service.name)

    def __repr__(self) -> str:
        return f"<HeadlessMiddleware {self.service.name}>"


def _replayable(request: ClientRequest) -> bool:
    body = request.body
    return body == b"" or isinstance(body, payload.BytesPayload)
