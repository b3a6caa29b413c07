"""httpx transports that send each request to a pod of a headless service.

``pip install 'headless-client[httpx]'``, then::

    import httpx
    from headless_client import HeadlessService, Sticky
    from headless_client.contrib.httpx import HeadlessTransport

    with HeadlessService("web.prod", port="http", strategy=Sticky()) as svc:
        with httpx.Client(transport=HeadlessTransport(svc, header="X-User"),
                          base_url="http://web.prod") as client:
            client.get("/profile", headers={"X-User": "42"})   # always the same pod for user 42

Host scoping: the transport sends to pods **only requests whose host is the service**, in
any spelling the service's resolver accepts (``web``, ``web.prod``, ``web.prod.svc``, the
FQDN, any case, a trailing dot). A request for any other host is passed to *fallback* (an
``httpx.HTTPTransport()`` of your own) when given, else refused with
:class:`~headless_client.errors.ForeignHost`: a pod never receives a request, or its
``Authorization`` header, meant for another host. The simplest way to use one client for
the service and the rest of the world is httpx's own ``mounts=``::

    client = httpx.Client(mounts={"http://web.prod": HeadlessTransport(svc)})

For every request to the service the transport picks a pod with the service's strategy and
sends the request to that pod's address and port (from DNS): the URL's host and port only
name the service. What the server sees is unchanged: the ``Host`` header stays as the URL wrote it
(``host_header=`` changes that), and for ``https`` the TLS server name (SNI, and the name the
certificate must match) is the pod's FQDN when DNS gave one, else the service's FQDN
(``server_name="service"`` always uses the service's). Each pod has a transport (a connection
pool) of its own, kept in a :class:`~headless_client.registry.ClientRegistry`: built when the
pod appears, closed when it leaves or moves, after the requests still reading from it (at
most ``grace`` seconds); so a pooled TLS connection verified for one pod is never reused
for another pod that later gets its address.

Routing: ``key=`` (a function of the request) or ``header=`` (a header's value) gives the
strategy its key (:class:`~headless_client.Sticky` needs one). Per request,
``extensions={"headless_client.key": k}``, ``{"headless_client.ordinal": n}`` (that pod) or
``{"headless_client.partition": p}`` (that partition's leader) override it.

Health: a response reports ``report_success(endpoint, latency)`` (time to the response
headers) when its body is closed; a transport error reports ``report_failure(endpoint)``
(the pod is ejected for a while), as does a status in ``failure_statuses``. Strategies
that track load (:class:`~headless_client.LeastLoaded`) count the request in flight until
then. The endpoint used is in ``response.extensions["headless_client.endpoint"]``.

Retries, on another pod, at most ``retries`` times: a request whose connection could not
be established (``httpx.ConnectError``/``ConnectTimeout``: nothing was sent) is retried
whatever its method; a request whose connection broke (``ReadError``, ``WriteError``,
``RemoteProtocolError``) only when its method is idempotent (``retry_methods``: GET, HEAD,
OPTIONS, PUT, DELETE, TRACE) and its body can be sent again. Timeouts are not retried, nor
are requests pinned to an ordinal or a partition. When every attempt failed the last
httpx error is raised; when there is no pod to try (empty view, unknown ordinal, no
leader) an ``httpx.ConnectError`` is raised whose ``__cause__`` is the library's error.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from typing import Any, Literal

try:
    import httpx
except ImportError as exc:  # pragma: no cover - exercised by a test with httpx hidden
    raise ImportError(
        "headless_client.contrib.httpx needs httpx: pip install 'headless-client[httpx]'"
    ) from exc

from dataclasses import dataclass, field, replace

from ..aio import AsyncHeadlessService
from ..aio.registry import AsyncClientRegistry
from ..core import ServiceCore
from ..endpoints import Endpoint
from ..errors import ForeignHost, HeadlessClientError, InvalidName
from ..hosts import ServiceHosts, service_hosts
from ..registry import DEFAULT_GRACE, ClientRegistry
from ..registry_core import Lease
from ..request import Request
from ..service import HeadlessService

__all__ = [
    "ENDPOINT_EXTENSION",
    "IDEMPOTENT_METHODS",
    "KEY_EXTENSION",
    "ORDINAL_EXTENSION",
    "PARTITION_EXTENSION",
    "AsyncHeadlessTransport",
    "HeadlessTransport",
]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""Methods retried after a broken connection (RFC 9110 section 9.2.2)."""
KEY_EXTENSION = "headless_client.key"
ORDINAL_EXTENSION = "headless_client.ordinal"
PARTITION_EXTENSION = "headless_client.partition"
ENDPOINT_EXTENSION = "headless_client.endpoint"

_NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
_CONNECTION_LOST = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)

KeyFunction = Callable[[httpx.Request], object]


@dataclass(slots=True)
class _Attempts:
    """The pods one HTTP request tried, and how many tries it may make."""

    request: Request
    attempts: int
    pinned: bool
    tried: list[tuple[Endpoint, Exception]] = field(default_factory=list)

    def record(self, endpoint: Endpoint, error: Exception) -> None:
        self.tried.append((endpoint, error))


class _Router:
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
        if key is not None and header is not None:
            raise InvalidName("pass key= or header=, not both")
        if key is not None and not callable(key):
            raise TypeError(f"key must be a function of the request: {key!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidName(f"retries must be an int >= 0: {retries!r}")
        if server_name not in ("pod", "service"):
            raise InvalidName(f"server_name must be 'pod' or 'service': {server_name!r}")
        if host_header not in ("url", "service", "pod"):
            raise InvalidName(f"host_header must be 'url', 'service' or 'pod': {host_header!r}")
        self.service = service
        self.core: ServiceCore = service.core
        self.hosts: ServiceHosts = service_hosts(service.name, service.resolver.qualify)
        self.key = key
        self.header = header
        self.retries = retries
        self.server_name = server_name
        self.host_header = host_header
        self.failure_statuses = frozenset(failure_statuses)
        self.retry_methods = frozenset(m.upper() for m in retry_methods)

    def ours(self, request: httpx.Request, fallback: object) -> bool:
        """True when *request* is for the service; False when *fallback* should take it.

        Raises:
            ForeignHost: another host, and no fallback.
        """
        if self.hosts.matches(request.url.host):
            return True
        if fallback is not None:
            return False
        raise ForeignHost(
            f"{request.url.host!r} is not {self.service.name} (accepted: {self.hosts.describe()}): "
            f"this transport sends only the service's requests to its pods; mount it for the "
            f"service (httpx.Client(mounts={{'http://{self.service.name}': transport}})) or pass "
            f"fallback=httpx.HTTPTransport()"
        )

    def plan(self, request: httpx.Request) -> _Attempts:
        ext = request.extensions
        ordinal = ext.get(ORDINAL_EXTENSION)
        partition = ext.get(PARTITION_EXTENSION)
        if KEY_EXTENSION in ext:
            key = ext[KEY_EXTENSION]
        elif self.key is not None:
            key = self.key(request)
        elif self.header is not None:
            key = request.headers.get(self.header)
        else:
            key = None
        try:
            wanted = Request(key=key, partition=partition, ordinal=ordinal)
        except HeadlessClientError as exc:
            raise httpx.ConnectError(f"bad routing for {self.service.name}: {exc}", request=request) from exc
        pinned = self.core.pins(wanted)
        return _Attempts(wanted, 1 if pinned else 1 + self.retries, pinned)

    def target(self, plan: _Attempts, request: httpx.Request) -> Endpoint:
        wanted = plan.request
        if plan.tried and not plan.pinned:
            wanted = replace(wanted, exclude=frozenset(ep.identity for ep, _ in plan.tried))
        try:
            endpoint: Endpoint = self.core.pick(wanted)
        except HeadlessClientError as exc:
            message = f"no pod of {self.service.name} to send to: {exc}"
            raise httpx.ConnectError(message, request=request) from exc
        return endpoint

    def rewrite(self, request: httpx.Request, endpoint: Endpoint) -> httpx.Request:
        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            name = endpoint.hostname if self.server_name == "pod" and endpoint.hostname else self.service.name
            extensions["sni_hostname"] = name
        headers = request.headers.copy()
        if self.host_header != "url":
            host = endpoint.hostname if self.host_header == "pod" and endpoint.hostname else self.service.name
            port = request.url.port
            headers["Host"] = host if port is None else f"{host}:{port}"
        return httpx.Request(
            request.method,
            request.url.copy_with(host=endpoint.address, port=endpoint.port),
            headers=headers,
            stream=request.stream,
            extensions=extensions,
        )

    def retryable(self, request: httpx.Request, error: Exception, plan: _Attempts) -> bool:
        if len(plan.tried) >= plan.attempts:
            return False
        if isinstance(error, _NOTHING_SENT):
            return True
        return (
            isinstance(error, _CONNECTION_LOST)
            and request.method.upper() in self.retry_methods
            and isinstance(request.stream, httpx.ByteStream)  # a body we can send again
        )

    def outcome(self, response: httpx.Response, lease: Lease[Any], latency: float) -> Callable[[bool], None]:
        """The once-only callback that reports *response* when its body is closed."""
        bad_status = response.status_code in self.failure_statuses

        def done(ok: bool) -> None:
            if ok and not bad_status:
                lease.success(latency)
            else:
                lease.failure()

        return done

    @staticmethod
    def last_error(plan: _Attempts, request: httpx.Request) -> Exception:
        if plan.tried:
            return plan.tried[-1][1]
        return httpx.ConnectError("no attempt made", request=request)  # pragma: no cover


def _one_tls_context(options: dict[str, Any]) -> dict[str, Any]:
    """*options* with ``verify`` made an SSL context once, shared by every pod's transport
    (httpx would load the CA bundle again for each pod: milliseconds each). The deprecated
    spellings (``verify=<path>``, ``cert=``) are left for httpx to handle, and warn."""
    verify = options.get("verify", True)
    if isinstance(verify, bool) and "cert" not in options:
        context = httpx.create_ssl_context(verify, trust_env=options.get("trust_env", True))
        return {**options, "verify": context}
    return options


class _ReportedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, done: Callable[[bool], None]) -> None:
        self._inner = inner
        self._done = done

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._inner
        except httpx.TransportError:
            self._done(False)
            raise

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._done(True)


class _AsyncReportedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, done: Callable[[bool], None]) -> None:
        self._inner = inner
        self._done = done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx.TransportError:
            self._done(False)
            raise

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._done(True)


class HeadlessTransport(httpx.BaseTransport):
    """An ``httpx.Client`` transport sending each request to a pod of *service*.

    See the module documentation for routing, health reporting and retries.

    Args:
        service: a started :class:`~headless_client.HeadlessService` (owned by the caller:
            closing the transport does not close it).
        key: a function ``request -> key`` for the strategy (e.g. a sticky key).
        header: take the key from this request header instead.
        retries: extra attempts on other pods (see the module docs for which errors).
        transport: one transport to send every pod's requests through (yours: closed with
            this one). By default each pod gets an ``httpx.HTTPTransport`` of its own,
            built from *transport_options* (``verify=``, ``http2=``, ``limits=``...).
        server_name: the TLS name to verify: ``"pod"`` (its FQDN when known) or ``"service"``.
        host_header: ``"url"`` (unchanged), ``"service"`` or ``"pod"`` (its FQDN).
        failure_statuses: statuses that count as a pod failure (e.g. ``{502, 503, 504}``).
        retry_methods: methods retried after a broken connection.
        fallback: the transport for requests to other hosts (default: refuse them with
            :class:`~headless_client.errors.ForeignHost`).
        grace: how long a departed pod's transport may finish its requests (seconds).
    """

    def __init__(
        self,
        service: HeadlessService,
        *,
        key: KeyFunction | None = None,
        header: str | None = None,
        retries: int = 2,
        transport: httpx.BaseTransport | None = None,
        server_name: Literal["pod", "service"] = "pod",
        host_header: Literal["url", "service", "pod"] = "url",
        failure_statuses: Collection[int] = (),
        retry_methods: Collection[str] = IDEMPOTENT_METHODS,
        fallback: httpx.BaseTransport | None = None,
        grace: float = DEFAULT_GRACE,
        **transport_options: Any,
    ) -> None:
        if transport is not None and transport_options:
            raise InvalidName("pass transport= or transport options, not both")
        self._router = _Router(
            service, key, header, retries, server_name, host_header, failure_statuses, retry_methods
        )
        self._shared = transport
        self._options = _one_tls_context(transport_options)
        if transport is None:
            httpx.HTTPTransport(**self._options).close()  # bad options fail here, not per pod
        self._fallback = fallback
        self._pods: ClientRegistry[httpx.BaseTransport] = ClientRegistry(
            service, self._open, close=self._close_pod, failures=(), grace=grace,
        )

    def _open(self, endpoint: Endpoint) -> httpx.BaseTransport:
        if self._shared is not None:
            return self._shared
        return httpx.HTTPTransport(**self._options)

    def _close_pod(self, transport: httpx.BaseTransport) -> None:
        if transport is not self._shared:
            transport.close()

    @property
    def service(self) -> HeadlessService:
        """The service requests are routed over."""
        service = self._router.service
        assert isinstance(service, HeadlessService)
        return service

    @property
    def registry(self) -> ClientRegistry[httpx.BaseTransport]:
        """The per-pod transports."""
        return self._pods

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        router = self._router
        if not router.ours(request, self._fallback):
            assert self._fallback is not None
            return self._fallback.handle_request(request)
        plan = router.plan(request)
        clock = time.monotonic
        while True:  # bounded: each pass records an attempt, and plan.attempts caps them
            try:
                endpoint = router.target(plan, request)
            except httpx.ConnectError:
                if plan.tried:  # every pod left was tried: the last real error says more
                    raise router.last_error(plan, request) from None
                raise
            lease = self._pods.lease(endpoint)
            start = clock()
            try:
                response = lease.client.handle_request(router.rewrite(request, endpoint))
            except httpx.TransportError as exc:
                lease.failure()
                plan.record(endpoint, exc)
                if router.retryable(request, exc, plan):
                    continue
                raise
            except BaseException:
                lease.neutral()
                raise
            stream = response.stream
            assert isinstance(stream, httpx.SyncByteStream)
            done = router.outcome(response, lease, clock() - start)
            response.stream = _ReportedStream(stream, done)
            response.extensions[ENDPOINT_EXTENSION] = endpoint
            return response

    def close(self) -> None:
        """Close every pod's connections, your transport and the fallback (not the service)."""
        self._pods.close()
        if self._shared is not None:
            self._shared.close()
        if self._fallback is not None:
            self._fallback.close()


class AsyncHeadlessTransport(httpx.AsyncBaseTransport):
    """:class:`HeadlessTransport` for ``httpx.AsyncClient`` and an
    :class:`~headless_client.AsyncHeadlessService`; the same arguments (*transport*: an
    ``httpx.AsyncHTTPTransport``; per pod by default)."""

    def __init__(
        self,
        service: AsyncHeadlessService,
        *,
        key: KeyFunction | None = None,
        header: str | None = None,
        retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        server_name: Literal["pod", "service"] = "pod",
        host_header: Literal["url", "service", "pod"] = "url",
        failure_statuses: Collection[int] = (),
        retry_methods: Collection[str] = IDEMPOTENT_METHODS,
        fallback: httpx.AsyncBaseTransport | None = None,
        grace: float = DEFAULT_GRACE,
        **transport_options: Any,
    ) -> None:
        if transport is not None and transport_options:
            raise InvalidName("pass transport= or transport options, not both")
        self._router = _Router(
            service, key, header, retries, server_name, host_header, failure_statuses, retry_methods
        )
        self._shared = transport
        self._options = _one_tls_context(transport_options)
        if transport is None:
            httpx.AsyncHTTPTransport(**self._options)  # bad options fail here, not per pod
        self._fallback = fallback
        self._pods: AsyncClientRegistry[httpx.AsyncBaseTransport] = AsyncClientRegistry(
            service, self._open, close=self._close_pod, failures=(), grace=grace,
        )

    def _open(self, endpoint: Endpoint) -> httpx.AsyncBaseTransport:
        if self._shared is not None:
            return self._shared
        return httpx.AsyncHTTPTransport(**self._options)

    async def _close_pod(self, transport: httpx.AsyncBaseTransport) -> None:
        if transport is not self._shared:
            await transport.aclose()

    @property
    def service(self) -> AsyncHeadlessService:
        """The service requests are routed over."""
        service = self._router.service
        assert isinstance(service, AsyncHeadlessService)
        return service

    @property
    def registry(self) -> AsyncClientRegistry[httpx.AsyncBaseTransport]:
        """The per-pod transports."""
        return self._pods

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        router = self._router
        if not router.ours(request, self._fallback):
            assert self._fallback is not None
            return await self._fallback.handle_async_request(request)
        plan = router.plan(request)
        clock = time.monotonic
        while True:  # bounded: each pass records an attempt, and plan.attempts caps them
            try:
                endpoint = router.target(plan, request)
            except httpx.ConnectError:
                if plan.tried:
                    raise router.last_error(plan, request) from None
                raise
            lease = await self._pods.lease(endpoint)
            start = clock()
            try:
                response = await lease.client.handle_async_request(router.rewrite(request, endpoint))
            except httpx.TransportError as exc:
                lease.failure()
                plan.record(endpoint, exc)
                if router.retryable(request, exc, plan):
                    continue
                raise
            except BaseException:
                lease.neutral()
                raise
            stream = response.stream
            assert isinstance(stream, httpx.AsyncByteStream)
            done = router.outcome(response, lease, clock() - start)
            response.stream = _AsyncReportedStream(stream, done)
            response.extensions[ENDPOINT_EXTENSION] = endpoint
            return response

    async def aclose(self) -> None:
        """Close every pod's connections, your transport and the fallback (not the service)."""
        await self._pods.aclose()
        if self._shared is not None:
            await self._shared.aclose()
        if self._fallback is not None:
            await self._fallback.aclose()
