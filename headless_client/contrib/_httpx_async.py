"""An asyncio httpx transport: :class:`AsyncHeadlessTransport` (re-exported by
:mod:`headless_client.contrib.httpx`, whose documentation gives the rules).

The asyncio source is ``headless_client/contrib/_httpx_async.py``; ``scripts/unasync.py``
generates the blocking twin ``headless_client/contrib/_httpx_sync.py`` from it, and
``tests/test_unasync.py`` fails when they differ.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any, Literal

import httpx

from .._registry_face import DEFAULT_GRACE
from ..aio import AsyncHeadlessService
from ..aio.registry import AsyncClientRegistry
from ..endpoints import Endpoint
from ..errors import InvalidName
from ._http_routing import IDEMPOTENT_METHODS
from ._httpx_router import KeyFunction, Router, Stream, one_tls_context

__all__ = ["AsyncHeadlessTransport"]


class _AsyncReportedStream(httpx.AsyncByteStream):
    """A response body that reports the response's outcome when it is closed (a failure
    when reading it broke)."""

    def __init__(self, inner: Stream, done: Callable[[bool], None]) -> None:
        assert isinstance(inner, httpx.AsyncByteStream)
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


class AsyncHeadlessTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncClient`` transport sending each request to a pod of *service*.

    See :mod:`headless_client.contrib.httpx` for routing, health reporting and retries.

    Args:
        service: a started :class:`~headless_client.AsyncHeadlessService` (owned by the
            caller: closing the transport does not close it).
        key: a function ``request -> key`` for the strategy (e.g. a sticky key).
        header: take the key from this request header instead.
        retries: extra attempts on other pods (see the module docs for which errors).
        transport: one transport to send every pod's requests through (yours: closed with
            this one). By default each pod gets an ``httpx.AsyncHTTPTransport`` of its own,
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
        self._router = Router(
            service, key, header, retries, server_name, host_header, failure_statuses, retry_methods
        )
        self._shared = transport
        self._options = one_tls_context(transport_options)
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
        attempts = router.plan(request)
        while True:  # bounded: every failure retried spends one of the attempts
            lease = await self._pods.lease(router.target(attempts, request))
            start = time.monotonic()
            try:
                sent = router.rewrite(request, lease.endpoint)
                response = await lease.client.handle_async_request(sent)
            except httpx.TransportError as exc:
                if router.failed(request, lease, exc, attempts):
                    continue
                raise
            except BaseException:
                lease.neutral()
                raise
            return router.answered(response, lease, time.monotonic() - start, _AsyncReportedStream)

    async def aclose(self) -> None:
        """Close every pod's connections, your transport and the fallback (not the service)."""
        await self._pods.aclose()
        if self._shared is not None:
            await self._shared.aclose()
        if self._fallback is not None:
            await self._fallback.aclose()
