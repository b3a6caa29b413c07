"""AsyncClientRegistry: the asyncio twin of :class:`~headless_client.registry.ClientRegistry`.

Same decisions (they live in :mod:`headless_client.registry_core`), same arguments; the
factory and the closer may be coroutine functions (a ``grpc.aio`` channel's ``close()``
is one). Eager builds and closes run on the service's refresher task as it delivers a
change; a departed pod's client is closed by a task when its last call ends or its grace
period (``loop.call_later``) ends. Use the registry on the loop of its service::

    async with AsyncClientRegistry(svc, lambda ep: redis.asyncio.Redis(host=ep.address, port=ep.port),
                                   failures=redis.ConnectionError) as clients:
        async with clients.client(key="user-42") as (endpoint, r):
            await r.get("user-42")
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

from typing_extensions import Self

from .._spans import annotate
from ..endpoints import Endpoint, EndpointSet
from ..errors import HeadlessClientError, InvalidArgument, InvalidName
from ..registry import DEFAULT_GRACE, check_service, request_from
from ..registry_core import Entry, FailurePredicate, Lease, RegistryCore, failure_predicate
from ..request import Request, Role

__all__ = ["AsyncClientRegistry", "aclose_client"]

log = logging.getLogger("headless_client.registry")

C = TypeVar("C")
T = TypeVar("T")


async def aclose_client(client: object) -> None:
    """The default closer: ``await client.aclose()``, else ``client.close()`` (awaited
    when it returns an awaitable); nothing when it has neither."""
    close = getattr(client, "aclose", None)
    if not callable(close):
        close = getattr(client, "close", None)
    if callable(close):
        result = close()
        if inspect.isawaitable(result):
            await result


class AsyncClientRegistry(Generic[C]):
    """One client per pod of an :class:`~headless_client.AsyncHeadlessService`; see
    :class:`~headless_client.registry.ClientRegistry` for the arguments and rules.

    Args:
        service: the :class:`~headless_client.AsyncHeadlessService` (not closed by the
            registry).
        factory: ``factory(endpoint) -> client`` or a coroutine function.
        close: ``close(client)`` or a coroutine function (default:
            :func:`aclose_client`).
        failures: the exceptions (or a predicate) that mean the pod failed.
        grace: how long a departed pod's client may finish its calls (seconds).
        eager: build clients when pods appear (``True``) or at their first call.
    """

    def __init__(
        self,
        service: Any,
        factory: Callable[[Endpoint], C | Awaitable[C]],
        *,
        close: Callable[[C], object] | None = None,
        failures: type[BaseException] | tuple[type[BaseException], ...] | FailurePredicate = OSError,
        grace: float = DEFAULT_GRACE,
        eager: bool = True,
    ) -> None:
        check_service(service, awaited=True)
        if not callable(factory):
            raise InvalidArgument(f"factory must be callable: {factory!r}")
        if close is not None and not callable(close):
            raise InvalidArgument(f"close must be callable: {close!r}")
        self.service = service
        self._factory = factory
        self._close = close if close is not None else aclose_client
        self.is_failure: FailurePredicate = failure_predicate(failures)
        self._core: RegistryCore[C] = RegistryCore(service.name, grace)
        self._eager = bool(eager)
        self._build_lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Follow the service's changes and build the clients of the pods in its view
        (eager); idempotent. ``async with`` calls it, and so does the first call."""
        if self._started:
            return
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._unsubscribe = self.service.subscribe(self._changed)
        if self.service.core.phase != "new":
            await self._changed(self.service.endpoints, self.service.endpoints)

    def start_nowait(self) -> None:
        """:meth:`start` without awaiting, for constructors of integrations whose factory
        is a plain function: with such a factory the eager builds happen now, otherwise
        at the next change or call."""
        if self._started:
            return
        self._started = True
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        self._unsubscribe = self.service.subscribe(self._changed)
        if self.service.core.phase == "new":
            return
        service_core = self.service.core
        change = self._core.membership(lambda: service_core.view.snapshot, time.monotonic())
        if self._eager:
            for endpoint in change.build:
                try:
                    self._build_now(endpoint, use=False)
                except InvalidArgument:
                    break  # an async factory: built at the first call instead
                except Exception:
                    log.exception("%s: building the client of %s failed (retried at its first call)",
                                  self.name, endpoint,
                                  extra={"service": self.name, "pod": endpoint.hostname,
                                         "address": endpoint.address, "reason": "client_build_failed"})

    async def aclose(self) -> None:
        """Stop following the service and close every client now; harmless to call twice."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._started = True  # a call after close must not subscribe again
        for entry in self._core.close():
            await self._close_entry(entry)
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def close(self) -> None:
        """The same as :meth:`aclose` (the services' twins spell it ``await close()``)."""
        await self.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- reading ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The service's FQDN."""
        return self._core.name

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._core.closed

    @property
    def grace(self) -> float:
        """How long a departed pod's client may finish its calls (seconds)."""
        return self._core.grace

    def clients(self) -> dict[Endpoint, C]:
        """The clients of the pods in the view, by endpoint (a copy)."""
        return self._core.clients()

    @property
    def draining(self) -> int:
        """How many clients of departed pods are still open, finishing their calls."""
        return self._core.retired_count()

    # -- calls --------------------------------------------------------------------------------

    async def acquire(
        self,
        request: Request | None = None,
        *,
        key: object | None = None,
        partition: Hashable | None = None,
        ordinal: int | None = None,
        hostname: str | None = None,
        role: Role | None = None,
        any_pod: bool = False,
    ) -> Lease[C]:
        """See :meth:`headless_client.registry.ClientRegistry.acquire`."""
        wanted = request_from(request, key, partition, ordinal, hostname, role, any_pod)
        return await self.lease(self.service.core.pick(wanted))

    async def lease(self, endpoint: Endpoint) -> Lease[C]:
        """See :meth:`headless_client.registry.ClientRegistry.lease`."""
        if not self._started:
            await self.start()
        entry = self._core.take(endpoint)
        if entry is None:
            entry = await self._build(endpoint)
        self.service.core.started(endpoint)
        annotate(self.service, endpoint)
        return Lease(entry, time.monotonic(), self._settle)

    def lease_now(self, endpoint: Endpoint) -> Lease[C]:
        """:meth:`lease` without awaiting, for a factory that is a plain function (the
        call objects of ``grpc.aio`` must be returned synchronously).

        Raises:
            InvalidArgument: the factory returned an awaitable.
            ServiceClosed: the registry is closed.
        """
        self.start_nowait()
        entry = self._core.take(endpoint)
        if entry is None:
            entry = self._build_now(endpoint, use=True)
        self.service.core.started(endpoint)
        annotate(self.service, endpoint)
        return Lease(entry, time.monotonic(), self._settle)

    def _build_now(self, endpoint: Endpoint, *, use: bool) -> Entry[C]:
        core = self._core
        made = self._factory(endpoint)
        if inspect.isawaitable(made):
            if inspect.iscoroutine(made):
                made.close()
            raise InvalidArgument(
                f"{self.name}: this registry's factory returns an awaitable; lease_now() needs "
                f"a plain function"
            )
        client: C = made
        entry, fresh = core.add(endpoint, client, use=use)
        if not fresh:
            if entry.client is not client:  # built meanwhile by an awaiting caller
                self._spawn(self._close_client(client, endpoint))
            elif not use and core.release_unused(entry):
                self._spawn(self._close_entry(entry))
        return entry

    async def _close_client(self, client: C, endpoint: Endpoint) -> None:
        try:
            result = self._close(client)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("%s: closing the client of %s failed", self.name, endpoint,
                          extra={"service": self.name, "pod": endpoint.hostname,
                                 "address": endpoint.address, "reason": "client_close_failed"})

    def _lock(self) -> asyncio.Lock:
        if self._build_lock is None:
            self._build_lock = asyncio.Lock()
        return self._build_lock

    async def _make(self, endpoint: Endpoint) -> C:
        client = self._factory(endpoint)
        if inspect.isawaitable(client):
            built: C = await client
            return built
        return client

    async def _build(self, endpoint: Endpoint) -> Entry[C]:
        core = self._core
        async with self._lock():
            entry = core.take(endpoint)
            if entry is not None:
                return entry
            client = await self._make(endpoint)
            entry, _ = core.add(endpoint, client, use=True)
        if entry.client is not client:  # built meanwhile by lease_now()
            await self._close_client(client, endpoint)
        return entry

    @contextlib.asynccontextmanager
    async def client(
        self,
        request: Request | None = None,
        *,
        key: object | None = None,
        partition: Hashable | None = None,
        ordinal: int | None = None,
        hostname: str | None = None,
        role: Role | None = None,
        any_pod: bool = False,
    ) -> AsyncIterator[Lease[C]]:
        """``async with registry.client(key=...) as (endpoint, client):``; see
        :meth:`headless_client.registry.ClientRegistry.client`."""
        lease = await self.acquire(
            request, key=key, partition=partition, ordinal=ordinal, hostname=hostname, role=role,
            any_pod=any_pod,
        )
        try:
            yield lease
        except BaseException as exc:
            if isinstance(exc, Exception) and self.is_failure(exc):
                lease.failure()
            else:
                lease.neutral()
            raise
        lease.success()

    async def call(
        self,
        fn: Callable[[C], Awaitable[T]],
        request: Request | None = None,
        *,
        retries: int = 0,
        key: object | None = None,
        partition: Hashable | None = None,
        ordinal: int | None = None,
        hostname: str | None = None,
        role: Role | None = None,
        any_pod: bool = False,
    ) -> T:
        """``await fn(client)`` on the picked pod, retried on other pods after failures;
        see :meth:`headless_client.registry.ClientRegistry.call`."""
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidName(f"retries must be an int >= 0: {retries!r}")
        wanted = request_from(request, key, partition, ordinal, hostname, role, any_pod)
        attempts = 1 if self.service.core.pins(wanted) else 1 + retries
        last: BaseException | None = None
        for attempt in range(attempts):
            if attempt == 0:
                lease = await self.acquire(wanted)
            else:
                try:
                    lease = await self.acquire(wanted)
                except HeadlessClientError:
                    break  # every pod was tried: raise the last failure
            try:
                result = await fn(lease.client)
            except BaseException as exc:
                failed = isinstance(exc, Exception) and self.is_failure(exc)
                if failed:
                    lease.failure()
                else:
                    lease.neutral()
                if not failed or attempt + 1 >= attempts:
                    raise
                wanted = wanted.excluding(lease.endpoint.identity)
                last = exc
                continue
            lease.success()
            return result
        assert last is not None
        raise last

    def _settle(self, lease: Lease[C], outcome: str, latency: float | None) -> None:
        if lease.done:
            return
        lease.done = True
        endpoint = lease.endpoint
        try:
            if outcome == "success":
                if latency is None:
                    latency = time.monotonic() - lease.started
                self.service.report_success(endpoint, latency)
            elif outcome == "failure":
                self.service.report_failure(endpoint)
            else:
                self.service.core.finished(endpoint)
        finally:
            if self._core.release(lease.entry):
                self._spawn(self._close_entry(lease.entry))

    # -- membership ---------------------------------------------------------------------------

    async def _changed(self, old: EndpointSet, new: EndpointSet) -> None:
        """The service's subscriber (its refresher task): retire, close, build."""
        service_core = self.service.core
        change = self._core.membership(lambda: service_core.view.snapshot, time.monotonic())
        for entry in change.close:
            await self._close_entry(entry)
        loop = asyncio.get_running_loop()
        for entry in change.drain:
            delay = max(0.0, (entry.deadline or 0.0) - time.monotonic())
            entry.timer = loop.call_later(delay, self._expire, entry)
        if self._eager:
            for endpoint in change.build:
                await self._build_eagerly(endpoint)

    async def _build_eagerly(self, endpoint: Endpoint) -> None:
        core = self._core
        async with self._lock():
            if core.closed or not core.in_view(endpoint) or endpoint in core.clients():
                return
            try:
                client = await self._make(endpoint)
            except Exception:
                log.exception("%s: building the client of %s failed (retried at its first call)",
                              self.name, endpoint,
                              extra={"service": self.name, "pod": endpoint.hostname,
                                     "address": endpoint.address, "reason": "client_build_failed"})
                return
            entry, fresh = core.add(endpoint, client, use=False)
        if fresh:
            return
        if entry.client is not client:  # built meanwhile by lease_now()
            await self._close_client(client, endpoint)
        elif core.release_unused(entry):  # the pod left meanwhile, or the registry closed
            await self._close_entry(entry)

    def _expire(self, entry: Entry[C]) -> None:
        entry.timer = None
        if self._core.expire(entry):
            log.info("%s: closing the client of %s after its %gs grace, with %d call(s) in flight",
                     self.name, entry.endpoint, self.grace, entry.users,
                     extra={"service": self.name, "pod": entry.endpoint.hostname,
                            "address": entry.endpoint.address, "reason": "client_grace_expired"})
            self._spawn(self._close_entry(entry))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # a lease settled from another thread: close on our loop
            loop = self._loop
            if loop is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._spawn, coro)
                    return
            coro.close()
            log.warning("%s: a client could not be closed: its event loop is gone", self.name,
                        extra={"service": self.name, "pod": None, "address": None,
                               "reason": "client_close_failed"})
            return
        task = running.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_entry(self, entry: Entry[C]) -> None:
        timer = entry.timer
        if timer is not None:
            timer.cancel()
            entry.timer = None
        await self._close_client(entry.client, entry.endpoint)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.clients())} clients, {self.draining} draining"
        return f"<AsyncClientRegistry {self.name} {state}>"
