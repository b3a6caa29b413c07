"""AsyncHeadlessService: :class:`~headless_client.HeadlessService` for asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import ssl
from collections.abc import AsyncIterator, Hashable

import tenacity
from typing_extensions import Self

from ..connect import DEFAULT_ATTEMPTS, DEFAULT_CONNECT_TIMEOUT, ConnectPlan, fresh_endpoint
from ..endpoints import Endpoint, EndpointSet
from ..errors import HeadlessClientError, ResolutionError, ServiceNotFound, WaitTimeout
from ..view import ServiceView, log
from . import streams as _streams
from .resolver import AsyncResolver
from .streams import Streams

__all__ = ["AsyncHeadlessService"]


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
            streams = await _streams.open_streams(
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

