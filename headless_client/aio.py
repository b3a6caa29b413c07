"""The asyncio twins: :class:`AsyncResolver` and :class:`AsyncHeadlessService`.

Same arguments, methods, errors and behaviour as :class:`~headless_client.Resolver` and
:class:`~headless_client.HeadlessService`: every decision lives in the shared pure
modules (:mod:`~headless_client.lookup`, :mod:`~headless_client.wire`,
:mod:`~headless_client.refresh`, :mod:`~headless_client.view`,
:mod:`~headless_client.connect`); this module only does the I/O, with no blocking call on
the event loop. The refresher is an :class:`asyncio.Task`, cancelled and awaited on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import socket
import ssl
import time
from collections.abc import AsyncIterator, Hashable
from typing import Any, TypeVar

import tenacity
from typing_extensions import Self

from .connect import DEFAULT_ATTEMPTS, DEFAULT_CONNECT_TIMEOUT, ConnectPlan, fresh_endpoint
from .endpoints import Endpoint, EndpointSet
from .errors import HeadlessClientError, ResolutionError, ServiceNotFound, WaitTimeout
from .lookup import Batch, Plan
from .resolver import BaseResolver
from .view import ServiceView, log
from .wire import (
    MAX_UDP_BATCH,
    Nameserver,
    Pending,
    Reply,
    accept_datagram,
    build_queries,
    drain_stream,
    exhausted,
    retransmit_intervals,
    screen_all,
    server_budgets,
    stream_payload,
    udp_give_up_at,
)

__all__ = ["AsyncHeadlessService", "AsyncResolver"]

T = TypeVar("T")
_rlog = logging.getLogger("headless_client.resolver")

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class AsyncResolver(BaseResolver):
    """:class:`~headless_client.Resolver` for asyncio: the same methods, awaited."""

    async def resolve(
        self,
        service: str,
        port: int | str,
        *,
        protocol: str = "tcp",
        namespace: str | None = None,
    ) -> EndpointSet:
        """See :meth:`headless_client.Resolver.resolve`."""
        plan, options, fqdn = self._resolve_plan(service, port, protocol, namespace)
        result = await self._run(plan)
        self._log_dropped(options, fqdn)
        return result

    async def resolve_pod(
        self,
        statefulset: str,
        ordinal: int,
        *,
        namespace: str | None = None,
        service: str | None = None,
        port: int | None = None,
    ) -> Endpoint:
        """See :meth:`headless_client.Resolver.resolve_pod`."""
        found = await self._run(self._pod_plan(statefulset, ordinal, namespace, service, port))
        return found[0]

    async def resolve_pod_all(
        self,
        statefulset: str,
        ordinal: int,
        *,
        namespace: str | None = None,
        service: str | None = None,
        port: int | None = None,
    ) -> EndpointSet:
        """See :meth:`headless_client.Resolver.resolve_pod_all`."""
        return await self._run(self._pod_plan(statefulset, ordinal, namespace, service, port))

    async def resolve_host(self, hostname: str, port: int = 0) -> EndpointSet:
        """See :meth:`headless_client.Resolver.resolve_host`."""
        return await self._run(self._host_plan(hostname, port))

    async def resolve_statefulset(
        self,
        statefulset: str,
        *,
        namespace: str | None = None,
        service: str | None = None,
        port: int | None = None,
        start: int = 0,
        replicas: int | None = None,
        max_gap: int = 8,
    ) -> EndpointSet:
        """See :meth:`headless_client.Resolver.resolve_statefulset`."""
        plan = self._statefulset_plan(statefulset, namespace, service, port, start, replicas, max_gap)
        return await self._run(plan)

    async def _run(self, plan: Plan[T]) -> T:
        deadline = time.monotonic() + self.timeout
        try:
            batch = next(plan)
            while True:
                batch = plan.send(await self._exchange(batch, deadline))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _exchange(self, batch: Batch, deadline: float) -> list[Reply]:
        errors: list[str] = []
        for server, budget_end in server_budgets(self.nameservers, deadline, time.monotonic):
            try:
                return screen_all(await _exchange_with(server, batch, budget_end), server)
            except ResolutionError as exc:
                errors.append(str(exc))
                _rlog.debug("nameserver %s failed: %s", server, exc)
        raise exhausted(batch, self.timeout, errors)


async def _exchange_with(server: Nameserver, batch: Batch, deadline: float) -> list[Reply]:
    pending = build_queries(batch)
    if len(batch) <= MAX_UDP_BATCH:
        tcp_indexes = await _udp(server, pending, deadline)
    else:
        tcp_indexes = list(range(len(batch)))
    if tcp_indexes:
        await _tcp(server, pending, tcp_indexes, deadline)
    return [r for r in pending.replies if r is not None]


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, pending: Pending, waiting: set[int], truncated: list[int]) -> None:
        self.pending = pending
        self.waiting = waiting
        self.truncated = truncated
        self.changed = asyncio.Event()
        self.error: OSError | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        accept_datagram(self.pending, data, self.waiting, self.truncated)
        if not self.waiting:
            self.changed.set()

    def error_received(self, exc: Exception) -> None:
        self.error = exc if isinstance(exc, OSError) else OSError(str(exc))
        self.changed.set()


async def _udp(server: Nameserver, pending: Pending, deadline: float) -> list[int]:
    loop = asyncio.get_running_loop()
    waiting = set(range(len(pending.wires)))
    truncated: list[int] = []
    start = time.monotonic()
    intervals = retransmit_intervals(deadline - start)
    to_tcp_at = udp_give_up_at(start, deadline)
    family = socket.AF_INET6 if server.family == 6 else socket.AF_INET
    try:
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _Datagrams(pending, waiting, truncated),
            remote_addr=(server.host, server.port),
            family=family,
        )
    except OSError as exc:
        raise ResolutionError(f"{server}: {exc.strerror or exc} (UDP)") from exc
    try:
        while waiting:
            now = time.monotonic()
            if now >= deadline:
                raise ResolutionError(f"{server} did not answer in time (UDP)")
            if now >= to_tcp_at:
                # Lossy path: TCP's own retransmission does better than more datagrams.
                truncated.extend(sorted(waiting))
                waiting.clear()
                break
            for i in list(waiting):
                transport.sendto(pending.wires[i])
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proto.changed.wait(), min(next(intervals), to_tcp_at - now))
            error = proto.error
            if error is not None:
                raise ResolutionError(f"{server}: {error.strerror or error} (UDP)") from error
    finally:
        transport.close()
    return truncated


async def _tcp(server: Nameserver, pending: Pending, indexes: list[int], deadline: float) -> None:
    waiting = set(indexes)
    inbox = bytearray()
    writer: asyncio.StreamWriter | None = None
    try:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ResolutionError(f"{server} did not answer in time (TCP)")
        reader, opened = await asyncio.wait_for(
            asyncio.open_connection(server.host, server.port, limit=1 << 20), remaining
        )
        writer = opened
        # No drain() before reading: the transport flushes as the socket allows, and
        # reading meanwhile keeps the server from blocking on its replies.
        opened.write(stream_payload(pending, indexes))
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ResolutionError(
                    f"{server} did not answer {len(waiting)} of {len(indexes)} questions in time (TCP)"
                )
            chunk = await asyncio.wait_for(reader.read(262144), remaining)
            if not chunk:
                raise ResolutionError(
                    f"{server} closed the TCP connection with {len(waiting)} questions unanswered"
                )
            inbox += chunk
            drain_stream(pending, inbox, waiting)
    except asyncio.TimeoutError as exc:
        raise ResolutionError(f"{server} did not answer in time (TCP)") from exc
    except OSError as exc:
        raise ResolutionError(f"{server}: {exc.strerror or exc} (TCP)") from exc
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


class _Retry(Exception):
    """One attempt failed in a way another attempt may fix."""


class AsyncHeadlessService(ServiceView[AsyncResolver]):
    """:class:`~headless_client.HeadlessService` for asyncio.

    ``async with AsyncHeadlessService("web.prod", port="http") as svc:`` resolves once,
    starts the refresher task, and cancels and awaits it on exit. ``pick``, ``endpoint``,
    ``subscribe`` and ``report_*`` are plain methods (no I/O); ``refresh``, ``wait_for``,
    ``connect``, ``not_leader`` and ``close`` are awaited. Subscribers may be plain
    functions or coroutine functions.
    """

    def _default_resolver(self) -> AsyncResolver:
        return AsyncResolver()

    def _init_shell(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._refresh_lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Resolve once, then start the refresher task (idempotent)."""
        if self._closed:
            raise HeadlessClientError(f"{self.name}: service is closed")
        if self._task is not None:
            return
        delay = await self._refresh_once()
        self._next_refresh = self._clock() + delay
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"headless-client-refresh[{self.name}]"
        )

    async def close(self) -> None:
        """Cancel the refresher task and wait for it; harmless to call twice."""
        self._closed = True
        self._wake.set()
        self._changed.set()
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- awaited calls -------------------------------------------------------------------

    async def refresh(self) -> EndpointSet:
        """See :meth:`headless_client.HeadlessService.refresh`."""
        if self._closed:
            raise HeadlessClientError(f"{self.name}: service is closed")
        await self._refresh_once()
        error = self._last_error
        if error is not None and not isinstance(error, ServiceNotFound):
            raise error
        return self.endpoints

    async def wait_for(self, min_endpoints: int = 1, timeout: float | None = None) -> EndpointSet:
        """See :meth:`headless_client.HeadlessService.wait_for`."""
        if isinstance(min_endpoints, bool) or not isinstance(min_endpoints, int) or min_endpoints < 0:
            raise ValueError(f"min_endpoints must be an int >= 0: {min_endpoints!r}")
        deadline = None if timeout is None else self._clock() + timeout
        while len(self.endpoints) < min_endpoints:
            if self._closed:
                raise HeadlessClientError(f"{self.name}: service is closed")
            left = None if deadline is None else deadline - self._clock()
            if left is not None and left <= 0:
                raise WaitTimeout(
                    f"{self.name}: {len(self.endpoints)} endpoints after {timeout}s, "
                    f"wanted {min_endpoints}"
                )
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return self.endpoints

    # -- connecting ------------------------------------------------------------------------

    async def connect(
        self,
        key: object | None = None,
        *,
        partition: Hashable | None = None,
        ordinal: int | None = None,
        timeout: float = DEFAULT_CONNECT_TIMEOUT,
        attempts: int = DEFAULT_ATTEMPTS,
        total_timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        source_address: tuple[str, int] | None = None,
    ) -> Streams:
        """See :meth:`headless_client.HeadlessService.connect`; returns (reader, writer)."""
        streams, endpoint = await self._connect(
            ConnectPlan(self, key, partition, ordinal, timeout, attempts, total_timeout),
            ssl_context,
            source_address,
        )
        # The streams are the caller's now: this call's in-flight count ends here.
        self._finish(endpoint)
        return streams

    async def _connect(
        self,
        plan: ConnectPlan,
        ssl_context: ssl.SSLContext | None,
        source_address: tuple[str, int] | None,
    ) -> tuple[Streams, Endpoint]:
        plan.start(self._clock())
        retrying = tenacity.AsyncRetrying(
            stop=lambda state: plan.should_stop(state, self._clock()),
            wait=plan.backoff,
            retry=tenacity.retry_if_exception_type(_Retry),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(plan, ssl_context, source_address)
        except _Retry:
            pass
        raise plan.final_error()

    async def _attempt(
        self,
        plan: ConnectPlan,
        ssl_context: ssl.SSLContext | None,
        source_address: tuple[str, int] | None,
    ) -> tuple[Streams, Endpoint]:
        endpoint = plan.target()
        timeout = plan.dial_timeout(self._clock(), endpoint)
        self._started(endpoint)
        try:
            streams = await open_streams(
                endpoint, timeout, ssl_context, plan.server_hostname(endpoint), source_address
            )
        except OSError as exc:
            self.report_failure(endpoint)
            if plan.failed(endpoint, exc, self._clock(), self._resolver.timeout):
                plan.override = await self._reresolve(endpoint)
            raise _Retry from exc
        except BaseException:
            self._finish(endpoint)
            raise
        return streams, endpoint

    async def _reresolve(self, endpoint: Endpoint) -> Endpoint | None:
        assert endpoint.hostname is not None
        try:
            found = await self._resolver.resolve_host(endpoint.hostname, endpoint.port)
        except ResolutionError:
            return None
        return fresh_endpoint(endpoint, found)

    @contextlib.asynccontextmanager
    async def connection(
        self,
        key: object | None = None,
        *,
        partition: Hashable | None = None,
        ordinal: int | None = None,
        timeout: float = DEFAULT_CONNECT_TIMEOUT,
        attempts: int = DEFAULT_ATTEMPTS,
        total_timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        source_address: tuple[str, int] | None = None,
    ) -> AsyncIterator[Streams]:
        """See :meth:`headless_client.HeadlessService.connection`; yields (reader, writer)."""
        streams, endpoint = await self._connect(
            ConnectPlan(self, key, partition, ordinal, timeout, attempts, total_timeout),
            ssl_context,
            source_address,
        )
        start = self._clock()
        writer = streams[1]
        try:
            yield streams
        except OSError:
            self.report_failure(endpoint)
            raise
        except BaseException:
            self._finish(endpoint)
            raise
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
        self.report_success(endpoint, self._clock() - start)

    async def not_leader(self, partition: Hashable, hint: int | str | None = None) -> None:
        """See :meth:`headless_client.HeadlessService.not_leader`."""
        strategy = self._leaders
        if strategy is None:
            raise TypeError(
                f"not_leader needs a PartitionLeader strategy, not {type(self._strategy).__name__}"
            )
        try:
            strategy.not_leader(partition, hint)
        finally:
            if self._unknown_pod(hint):
                try:
                    await self.refresh()
                except ResolutionError as exc:
                    log.warning("%s: refresh after NOT_LEADER failed: %s", self.name, exc)

    # -- the refresher -------------------------------------------------------------------

    async def _refresh_once(self) -> float:
        # One resolution at a time, so events queue in publication order.
        async with self._refresh_lock:
            answer: EndpointSet | None = None
            error: BaseException | None = None
            try:
                answer = await self._resolver.resolve(
                    self._service, self._port, protocol=self._protocol, namespace=self._namespace
                )
            except ResolutionError as exc:
                error = exc
            decision = self._publish_result(answer, error)
            event = self._apply(decision)
            self._last_error = error
            self._changed.set()
            self._next_refresh = self._clock() + decision.delay
            if event is not None:
                self._outbox.append(event)
        # Outside the lock: a callback may await refresh() itself.
        await self._deliver_pending()
        return decision.delay

    async def _run(self) -> None:
        while not self._closed:
            now = self._clock()
            if now >= self._health_wake:
                self._rebuild_healthy()
                self._health_wake = self._next_health_expiry() or math.inf
                continue
            due = self._next_refresh
            if self._early:
                due = min(due, self._state.earliest_early_refresh(now))
            if now < due:
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(due, self._health_wake) - now)
                continue
            self._early = False
            try:
                await self._refresh_once()
            except Exception:  # never let the refresher die
                log.exception("%s: refresh failed unexpectedly", self.name)
                self._next_refresh = self._clock() + self._policy.max_refresh

    async def _deliver_pending(self) -> None:
        if self._delivering:
            return  # the task already delivering will take the queued events, in order
        self._delivering = True
        try:
            while self._outbox:
                old, new = self._outbox.popleft()
                for callback in self._subscribers:
                    try:
                        result = callback(old, new)
                        if inspect.isawaitable(result):
                            await result
                    except Exception:
                        log.exception("%s: subscriber %r raised", self.name, callback)
        finally:
            self._delivering = False

    def _request_early_refresh(self) -> None:
        self._early = True
        self._wake.set()

    def _health_changed(self) -> None:
        self._health_wake = min(self._health_wake, self._next_health_expiry() or math.inf)
        self._wake.set()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._task else "new")
        return (
            f"<AsyncHeadlessService {self.name} port={self._port!r} {state} "
            f"{len(self.endpoints)} endpoints>"
        )


async def open_streams(
    endpoint: Endpoint,
    timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    source_address: tuple[str, int] | None = None,
) -> Streams:
    """:func:`asyncio.open_connection` to *endpoint* within *timeout* (TCP and TLS).

    Raises:
        OSError: refused, unreachable, timed out (:class:`TimeoutError`), or TLS failed.
    """
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(
                endpoint.address,
                endpoint.port,
                ssl=ssl_context,
                server_hostname=server_hostname if ssl_context is not None else None,
                local_addr=source_address,
            ),
            timeout,
        )
    except asyncio.TimeoutError as exc:
        raise TimeoutError(f"connect to {endpoint} timed out after {timeout:g}s") from exc
