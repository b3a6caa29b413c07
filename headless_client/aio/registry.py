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
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from typing_extensions import Self

from .._registry_face import DEFAULT_GRACE
from ..endpoints import Endpoint, EndpointSet
from ..errors import InvalidArgument
from ..registry_core import Entry, FailurePredicate, Lease
from ._registry_calls import AsyncRegistryCalls

__all__ = ["AsyncClientRegistry", "aclose_client"]

log = logging.getLogger("headless_client.registry")

C = TypeVar("C")


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


class AsyncClientRegistry(AsyncRegistryCalls[C]):
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

    _awaited = True

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
        super().__init__(service, factory, close, failures, grace, eager, default_close=aclose_client)
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
                except Exception as exc:
                    self._log_build_failed(endpoint, exc)

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

    # -- calls (acquire, client and call come from AsyncRegistryCalls) ------------------------

    async def lease(self, endpoint: Endpoint) -> Lease[C]:
        """See :meth:`headless_client.registry.ClientRegistry.lease`."""
        if not self._started:
            await self.start()
        entry = self._core.take(endpoint)
        if entry is None:
            entry = await self._build(endpoint)
        return self._leased(entry)

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
        return self._leased(entry)

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
        except Exception as exc:
            self._log_close_failed(endpoint, exc)

    def _lock(self) -> asyncio.Lock:
        if self._build_lock is None:
            self._build_lock = asyncio.Lock()
        return self._build_lock

    async def _make(self, endpoint: Endpoint) -> C:
        client = self._factory(endpoint)
        if inspect.isawaitable(client):
            built: C = await client
            return built
        made: C = client
        return made

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

    def _dispose(self, entry: Entry[C]) -> None:
        self._spawn(self._close_entry(entry))

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
        async with self._lock():
            if not self._wants_eager_build(endpoint):
                return
            try:
                client = await self._make(endpoint)
            except Exception as exc:
                self._log_build_failed(endpoint, exc)
                return
            entry, fresh = self._core.add(endpoint, client, use=False)
        unkept_client, claimed = self._unkept(entry, fresh, client)
        if unkept_client is not None:  # built meanwhile by lease_now()
            await self._close_client(unkept_client, endpoint)
        if claimed is not None:  # the pod left meanwhile, or the registry closed
            await self._close_entry(claimed)

    def _expire(self, entry: Entry[C]) -> None:
        entry.timer = None
        if self._expired(entry):
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
