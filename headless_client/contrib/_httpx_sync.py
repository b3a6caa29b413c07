# GENERATED from headless_client/contrib/_httpx_async.py by scripts/unasync.py: do not edit.
"""A blocking httpx transport: :class:`HeadlessTransport` (re-exported by
:mod:`headless_client.contrib.httpx`, whose documentation gives the rules).

The asyncio source is ``headless_client/contrib/_httpx_async.py``; ``scripts/unasync.py``
generates the blocking twin ``headless_client/contrib/_httpx_sync.py`` from it, and
``tests/test_unasync.py`` fails when they differ.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from typing import Any, Literal

import httpx

from .._registry_face import DEFAULT_GRACE
from ..endpoints import Endpoint
from ..errors import InvalidName
from ..registry import ClientRegistry
from ..service import HeadlessService
from ._http_routing import IDEMPOTENT_METHODS
from ._httpx_router import KeyFunction, Router, Stream, one_tls_context

__all__ = ["HeadlessTransport"]


class _ReportedStream(httpx.SyncByteStream):
    """A response body that reports the response's outcome when it is closed (a failure
    when reading it broke)."""

    def __init__(self, inner: Stream, done: Callable[[bool], None]) -> None:
        assert isinstance(inner, httpx.SyncByteStream)
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


class HeadlessTransport(httpx.BaseTransport):
    """An ``httpx.Client`` transport sending each request to a pod of *service*.

    See :mod:`headless_client.contrib.httpx` for routing, health reporting and retries.

    Args:
        service: a started :class:`~headless_client.HeadlessService` (owned by the
            caller: closing the transport does not close it).
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
        self._router = Router(
            service, key, header, retries, server_name, host_header, failure_statuses, retry_methods
        )
        self._shared = transport
        self._options = one_tls_context(transport_options)
        if transport is None:
            httpx.HTTPTransport(**self._options)  # bad options fail here, not per pod
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
        attempts = router.plan(request)
        while True:  # bounded: every failure retried spends one of the attempts
            lease = self._pods.lease(router.target(attempts, request))
            start = time.monotonic()
            try:
                sent = router.rewrite(request, lease.endpoint)
                response = lease.client.handle_request(sent)
            except httpx.TransportError as exc:
                if router.failed(request, lease, exc, attempts):
                    continue
                raise
            except BaseException:
                lease.neutral()
                raise
            return router.answered(response, lease, time.monotonic() - start, _ReportedStream)

    def close(self) -> None:
        """Close every pod's connections, your transport and the fallback (not the service)."""
        self._pods.close()
        if self._shared is not None:
            self._shared.close()
        if self._fallback is not None:
            self._fallback.close()
