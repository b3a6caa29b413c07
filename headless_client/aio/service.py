"""AsyncHeadlessService: :class:`~headless_client.HeadlessService` for asyncio.

The same core (:class:`~headless_client.core.ServiceCore`) as the sync service, driven by
a short asyncio loop: one refresher task per service, on the loop that started it.
Every decision (schedule, lifecycle, health, connect retries) is the core's; this module
only awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import ssl
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Hashable

from typing_extensions import Self, Unpack

from .._face import ConnectOptions, ServiceFace, _raise_if_permanent
from ..clock import Clock, real_timeout
from ..connect import Backoff, ConnectPolicy, Dial, GiveUp, Reresolve
from ..core import STOP, Resolve, ServiceCore, WaitUntil
from ..endpoints import Endpoint, EndpointSet
from ..errors import ResolutionError, ServiceClosed, ServiceNotFound
from ..lookup_runner import LookupRunner
from ..request import Request
from . import streams as _streams
from .resolver import AsyncResolver
from .streams import Streams

__all__ = ["AsyncHeadlessService"]

log = logging.getLogger("headless_client.service")


class _Signal:
    """Wakes whatever a service awaits (its refresher task, ``wait_for``, back-offs) when
    the core changes or a fake clock moves. Callable from any thread; holds no reference
    to the service."""

    __slots__ = ("__weakref__", "delivering", "event", "loop")

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.event: asyncio.Event | None = None
        #: True while an event delivery runs (on the loop): others leave it the queue.
        self.delivering = False

    def bind(self) -> asyncio.Event:
        """The event of the running loop (a new one after moving to another loop)."""
        loop = asyncio.get_running_loop()
        if self.loop is not loop or self.event is None:
            self.loop = loop
            self.event = asyncio.Event()
        return self.event

    def wake(self) -> None:
        loop, event = self.loop, self.event
        if loop is None or event is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(event.set)

    async def wait(self, clock: Clock, deadline: float, ready: Callable[[], bool]) -> None:
        """Return once *ready()* holds or *deadline* passes (on *clock*)."""
        event = self.bind()
        while not ready() and clock() < deadline:
            event.clear()
            if ready():
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), real_timeout(clock, deadline))


async def _deliver(core: ServiceCore, signal: _Signal) -> None:
    """Deliver *core*'s events on the loop, one at a time, in order; subscribers may be
    coroutine functions (awaited) and may await ``refresh()``."""
    if signal.delivering:
        return  # the delivery in progress takes the queued events, in order
    signal.delivering = True
    try:
        while core.has_events():
            for event in core.take_events():
                for callback, args in core.calls_for(event):
                    try:
                        result = callback(*args)
                        if inspect.isawaitable(result):
                            await result
                    except Exception:
                        log.exception(
                            "%s: subscriber %r raised", core.name, callback,
                            extra={"service": core.name, "pod": None, "address": None,
                                   "reason": "subscriber_error"},
                        )
    finally:
        signal.delivering = False


async def _refresher(
    core_ref: weakref.ReferenceType[ServiceCore],
    runner: LookupRunner,
    clock: Clock,
    signal: _Signal,
) -> None:
    """The refresher task: ask the core, resolve or wait, report; until closed.

    It holds the core only weakly between steps, so a service dropped without close()
    can be collected (its finalizer then cancels this task). Nothing but cancellation
    ends it: any other exception in a step is logged and the loop goes on.
    """
    event = signal.bind()
    while True:
        try:
            if not await _step(core_ref, runner, clock, signal, event):
                return
        except asyncio.CancelledError:
            raise
        except Exception:
            core = core_ref()
            name = core.name if core is not None else "a collected service"
            log.exception(
                "%s: refresher step failed; going on", name,
                extra={"service": name, "pod": None, "address": None, "reason": "refresher_error"},
            )
            del core
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), 1.0)


async def _step(
    core_ref: weakref.ReferenceType[ServiceCore],
    runner: LookupRunner,
    clock: Clock,
    signal: _Signal,
    event: asyncio.Event,
) -> bool:
    """One step of the refresher; False once the service is closed or collected."""
    core = core_ref()
    if core is None:
        return False
    try:
        action = core.next_action(clock())
    except Exception:
        log.exception(
            "%s: planning the next refresh failed", core.name,
            extra={"service": core.name, "pod": None, "address": None, "reason": "refresher_error"},
        )
        action = WaitUntil(clock() + core.refresh_policy.max_refresh)
    if action is STOP:
        return False
    if isinstance(action, Resolve):
        del core
        answer: EndpointSet | None = None
        error: BaseException | None = None
        try:
            answer = await runner.resolve_async(action.reuse)
        except Exception as exc:  # the core logs what is not a ResolutionError
            error = exc
        core = core_ref()
        if core is None:
            return False
        core.resolved(clock(), answer, error)
        if core.has_events():
            await _deliver(core, signal)
        return True
    assert isinstance(action, WaitUntil)
    if core.has_events():  # queued by a failure report, an ejection ending...
        await _deliver(core, signal)
        return True
    del core
    event.clear()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), real_timeout(clock, action.deadline))
    return True


class AsyncHeadlessService(ServiceFace):
    """:class:`~headless_client.HeadlessService` for asyncio: the same arguments, errors
    and behaviour.

    ``async with AsyncHeadlessService("web.prod", port="http") as svc:`` resolves once,
    starts the refresher task, and cancels and awaits it on exit. ``pick``, ``endpoint``,
    ``subscribe`` and ``report_*`` are plain methods (no I/O); ``start``, ``refresh``,
    ``wait_for``, ``connect``, ``not_leader`` and ``close`` are awaited. Subscribers may
    be plain functions or coroutine functions; they run on the refresher task, in order.

    The service belongs to the loop that started it. ``close()`` from another loop (or
    thread) cancels its task without waiting for it; in a forked child, a service started
    in the parent moves to the child's loop at its first awaited call.
    """

    _default_resolver = AsyncResolver
    _awaited = True
    _waker_type = _Signal
    _waker: _Signal
    _task: asyncio.Task[None] | None = None

    #: The process that started the service (0: not started); another pid means a fork.
    _pid: int = 0

    @property
    def refreshing(self) -> bool:
        """True while the service is started and its refresher task runs."""
        task = self._task
        return task is not None and not task.done() and not self._core.closed

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Resolve once, then start the refresher task (idempotent; concurrent calls wait
        for the first).

        Raises:
            ServiceClosed: the service was closed.
        """
        self._adopt_after_fork()
        core = self._core
        if not core.begin_start():
            await self._waker.wait(self._clock, float("inf"), lambda: core.phase != "starting")
            if core.phase == "new":  # the first caller failed unexpectedly
                await self.start()
            return
        ok = False
        try:
            await self._resolve_inline()
            _raise_if_permanent(core.last_error)
            ok = True
        finally:
            core.start_done(ok=ok)
        if not core.closed:
            self._pid = os.getpid()
            self._start_task()
            self._watch_source()
            self._finalizer = weakref.finalize(self, _collected, self._task, repr(self))

    def _start_task(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            _refresher(weakref.ref(self._core), self._runner, self._clock, self._waker),
            name=f"headless-client-refresh[{self.name}]",
        )

    async def _resolve_inline(self) -> None:
        core = self._core
        action = core.begin_resolve(self._clock())
        answer: EndpointSet | None = None
        error: BaseException | None = None
        try:
            answer = await self._runner.resolve_async(action.reuse)
        except Exception as exc:
            error = exc
        except BaseException:
            core.resolved(self._clock(), action.previous, None)
            raise
        core.resolved(self._clock(), answer, error)
        if core.has_events():
            await _deliver(core, self._waker)

    async def close(self) -> None:
        """Cancel the refresher task and wait for it; harmless to call twice.

        From another loop, or in a forked child, the task is cancelled (thread-safely)
        without waiting for it.
        """
        core = self._core
        core.close()
        self._unwatch_source()
        finalizer = self._finalizer
        if finalizer is not None:
            finalizer.detach()
        task, self._task = self._task, None
        if task is None or task.done():
            return
        if self._pid and os.getpid() != self._pid:
            return  # the parent's task: not ours to touch (it does not run here)
        loop = task.get_loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - close() is a coroutine
            running = None
        if running is not loop:
            if not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(task.cancel)
            return
        if task is asyncio.current_task():
            return  # closed from a subscriber: the task ends at its next step
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _adopt_after_fork(self) -> None:
        """In a forked child, forget the parent's task and loop; restart on this one."""
        if not self._pid or os.getpid() == self._pid:
            return
        self._pid = os.getpid()
        self._task = None
        self._waker.loop = None
        self._waker.event = None
        if self._core.phase == "running":
            self._start_task()

    # -- awaited calls -----------------------------------------------------------------------------

    async def refresh(self) -> EndpointSet:
        """See :meth:`headless_client.HeadlessService.refresh`."""
        self._adopt_after_fork()
        core = self._core
        if core.closed:
            raise core.closed_error("refresh")
        if core.phase == "new" or (self._task is not None and asyncio.current_task() is self._task):
            # Before start(), or from a subscriber (on the refresher task itself, which
            # would otherwise wait for itself): resolve here.
            await self._resolve_inline()
        else:
            ticket = core.want_refresh()
            budget = 2 * self._runner.timeout + 1.0
            deadline = self._clock() + budget
            await self._waker.wait(self._clock, deadline, lambda: core.served(ticket) or core.closed)
            if not core.served(ticket):
                if core.closed:
                    raise ServiceClosed(f"{core.name}: closed while refreshing")
                raise ResolutionError(f"{core.name}: refresh did not complete within {budget:g}s")
        error = core.last_error
        if error is not None and not isinstance(error, ServiceNotFound):
            raise error
        return core.view.snapshot

    async def wait_for(self, min_endpoints: int = 1, timeout: float | None = None) -> EndpointSet:
        """See :meth:`headless_client.HeadlessService.wait_for`."""
        self._adopt_after_fork()
        core = self._core
        deadline = self._settings.wait_deadline(min_endpoints, timeout, self._clock())
        while len(core.view.snapshot) < min_endpoints:
            if core.closed:
                raise core.closed_error("wait_for")
            if self._clock() >= deadline:
                raise self._settings.wait_timeout(core, min_endpoints, timeout)
            await self._waker.wait(
                self._clock, deadline, lambda: len(core.view.snapshot) >= min_endpoints or core.closed
            )
        return core.view.snapshot

    # -- connecting ----------------------------------------------------------------------------

    async def connect(self, key: object | None = None, **options: Unpack[ConnectOptions]) -> Streams:
        """See :meth:`headless_client.HeadlessService.connect`; returns (reader, writer)."""
        streams, endpoint = await self._connect(*self._connect_args(key, options))
        self._core.finished(endpoint)
        return streams

    async def _connect(
        self,
        request: Request,
        policy: ConnectPolicy,
        ssl_context: ssl.SSLContext | None,
        source_address: tuple[str, int] | None,
    ) -> tuple[Streams, Endpoint]:
        self._adopt_after_fork()
        plan = self._connect_plan(request, policy, ssl_context, source_address)
        while True:
            action = plan.next(self._clock())
            if isinstance(action, Dial):
                with self._dialling(plan, action.endpoint):
                    streams = await _streams.open_streams(
                        action.endpoint, action.timeout, ssl_context, action.server_hostname, source_address
                    )
                    return streams, action.endpoint
                continue
            if isinstance(action, Backoff):
                deadline = self._clock() + action.seconds
                await self._waker.wait(self._clock, deadline, lambda: self._core.closed)
            elif isinstance(action, Reresolve):
                plan.reresolved(action.endpoint, await self._runner.reresolve_async(action.endpoint))
            else:
                assert isinstance(action, GiveUp)
                raise action.error

    @contextlib.asynccontextmanager
    async def connection(
        self, key: object | None = None, **options: Unpack[ConnectOptions]
    ) -> AsyncIterator[Streams]:
        """See :meth:`headless_client.HeadlessService.connection`; yields (reader, writer)."""
        streams, endpoint = await self._connect(*self._connect_args(key, options))
        writer = streams[1]
        try:
            with self._reporting(endpoint):
                yield streams
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def not_leader(self, partition: Hashable, hint: int | str | None = None) -> None:
        """See :meth:`headless_client.HeadlessService.not_leader`."""
        try:
            self._core.not_leader(partition, hint)
        finally:
            if self._core.lacks_pod(hint):
                try:
                    await self.refresh()
                except ResolutionError as exc:
                    log.warning(
                        "%s: refresh after NOT_LEADER failed: %s", self.name, exc,
                        extra={"service": self.name, "pod": None, "address": None,
                               "reason": "not_leader_refresh_failed"},
                    )



def _collected(task: asyncio.Task[None] | None, text: str) -> None:
    """A started service was garbage-collected without ``close()``: stop its task."""
    if task is not None and not task.done():
        loop = task.get_loop()
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)
    warnings.warn(f"unclosed {text}: await close() or use 'async with'", ResourceWarning, stacklevel=2)
