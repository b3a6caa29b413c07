"""The background machinery of the sync services: one refresher thread for all of them.

A process pays a small, fixed cost however many :class:`~headless_client.HeadlessService`
objects it runs: one refresher thread (``headless-client-refresher``) drives every
service's refresh schedule, carrying their DNS lookups on one selector, many at once, so
a slow or unreachable nameserver delays nobody else's refresh; one events thread
(``headless-client-events``, started with the first subscriber) delivers subscriber
callbacks in order; and at most two resolver threads (``headless-client-resolve``) serve
resolvers that only offer a blocking ``resolve()`` (user subclasses, custom resolvers).

The refresher holds its services *weakly*: a service dropped without ``close()`` is
collected, with a :class:`ResourceWarning` like an unclosed file, and its refreshes stop.

Fork safety: in a forked child (gunicorn ``--preload``, Celery prefork, multiprocessing's
fork context) the parent's threads do not exist. The one fork hook of the library
(:mod:`headless_client._forksafe`) gives the child fresh locks and a fresh selector and
wake-up socket pair (the parent's stay the parent's), and restarts the refresher **at
fork** for the services the child inherited, with their last good view carried over.
"""

from __future__ import annotations

import collections
import concurrent.futures
import heapq
import itertools
import logging
import math
import queue
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Final

from . import _forksafe
from .clock import Clock, monotonic, real_timeout, register_waker
from .core import STOP, Resolve, ServiceCore, WaitUntil
from .endpoints import EndpointSet
from .interrupt import Interrupt
from .lookup_runner import LookupRunner
from .transport import Multiplexer

__all__ = ["Dispatcher", "Refresher", "ServiceEntry", "dispatcher", "refresher_for"]

log = logging.getLogger("headless_client.service")

REFRESHER_THREAD: Final = "headless-client-refresher"
EVENTS_THREAD: Final = "headless-client-events"
RESOLVE_THREADS: Final = "headless-client-resolve"
#: Resolver threads at most, for resolvers that can only block.
MAX_RESOLVE_THREADS: Final = 2
#: Lookups in flight at once per set of nameservers; the rest wait their turn. Each holds
#: a socket or two, so this bounds the refresher's descriptors however many services it
#: drives, while a black-holed nameserver set delays only the services that use it.
LOOKUPS_PER_NAMESERVERS: Final = 4


@dataclass(eq=False)
class _Lane:
    """The lookups of one set of nameservers: how many run, and who waits."""

    active: int = 0
    waiting: collections.deque[tuple[ServiceEntry, Any]] = field(default_factory=collections.deque)


@dataclass(eq=False)
class _Queued:
    """The job of an entry whose lookup waits in a lane."""

    lane: _Lane


@dataclass(eq=False)
class ServiceEntry:
    """One service as the refresher sees it: its core (weakly) and how to resolve it."""

    core: weakref.ReferenceType[ServiceCore]
    runner: LookupRunner
    name: str
    #: The job in flight (a multiplexer job or a future), if any.
    job: Any = None
    #: Set once the refresher dropped the entry (closed, collected or forked away).
    stopped: threading.Event = field(default_factory=threading.Event)
    version: int = 0
    #: The lane of its lookup in flight, if any.
    lane: Any = None
    #: What ends its blocking resolve() in flight early, if any.
    interrupt: Interrupt | None = None


class Refresher:
    """The refresher thread of one clock (the real clock has one per process).

    Started on demand, it stops by itself when it has no service left.
    """

    # Repaired after a fork once every lock is fresh: it restarts a thread.
    _fork_order = 10

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: set[ServiceEntry] = set()
        self._dirty: set[ServiceEntry] = set()
        self._heap: list[tuple[float, int, int, ServiceEntry]] = []
        self._seq = itertools.count()
        self._done: queue.SimpleQueue[tuple[ServiceEntry, EndpointSet | None, BaseException | None]] = (
            queue.SimpleQueue()
        )
        # Opened with the thread and closed when it ends: an idle process holds no
        # descriptor for the library.
        self._mux: Multiplexer | None = None
        self._thread: threading.Thread | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lanes: dict[object, _Lane] = {}
        register_waker(clock, self)
        _forksafe.register(self)

    # -- registration (any thread) -----------------------------------------------------------

    def add(self, entry: ServiceEntry) -> None:
        """Start driving *entry*'s service."""
        with self._lock:
            self._entries.add(entry)
            self._dirty.add(entry)
            self._ensure_thread()
            mux = self._mux
        if mux is not None:
            mux.wake()

    def poke(self, entry: ServiceEntry) -> None:
        """Look at *entry* again soon (its core changed: a refresh asked, closed...)."""
        with self._lock:
            if entry in self._entries:
                self._dirty.add(entry)
            mux = self._mux
        if mux is not None:
            mux.wake()

    def wake(self) -> None:
        """Re-plan every service (a fake clock moved)."""
        with self._lock:
            self._dirty.update(self._entries)
            mux = self._mux
        if mux is not None:
            mux.wake()

    @property
    def alive(self) -> bool:
        """True while the refresher thread runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def drives(self, entry: ServiceEntry) -> bool:
        """True while *entry* is registered and the thread runs."""
        return entry in self._entries and self.alive

    def service_count(self) -> int:
        """Services driven now."""
        return len(self._entries)

    def descriptor_count(self) -> int:
        """File descriptors held now (the selector, its wake-up pair, sockets in flight)."""
        mux = self._mux
        return 0 if mux is None else mux.descriptor_count()

    def _ensure_thread(self) -> None:
        # Under the lock.
        if self._thread is None or not self._thread.is_alive():
            if self._mux is None:
                self._mux = Multiplexer(self.clock)
            self._thread = threading.Thread(target=self._run, name=REFRESHER_THREAD, daemon=True)
            self._thread.start()

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        mux = self._mux
        assert mux is not None
        while True:
            try:
                if not self._step(mux):
                    return
            except BaseException:  # pragma: no cover - _step catches per service
                log.exception(
                    "headless-client refresher: unexpected error; continuing",
                    extra={"service": None, "pod": None, "address": None, "reason": "refresher_error"},
                )

    def _step(self, mux: Multiplexer) -> bool:
        """One round; False when there is nothing left to drive (the thread ends)."""
        now = self.clock()
        with self._lock:
            if not self._entries:
                self._thread = None
                self._mux = None
                mux.close()
                pool, self._pool = self._pool, None
                if pool is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
                return False
            todo = self._dirty
            self._dirty = set()
            heap = self._heap
            while heap and heap[0][0] <= now:
                _, _, version, entry = heapq.heappop(heap)
                if version == entry.version:
                    todo.add(entry)
        self._drain_done()
        for entry in todo:
            self._plan(entry, now)
        deadline = self._heap[0][0] if self._heap else math.inf
        mux_deadline = mux.next_deadline()
        timeout = real_timeout(self.clock, deadline)
        if mux_deadline is not None:
            mux_timeout = real_timeout(self.clock, mux_deadline)
            timeout = mux_timeout if timeout is None else min(timeout, mux_timeout or 0.0)
        if not self._dirty and self._done.empty():
            mux.poll(timeout)
        self._drain_done()
        return True

    def _plan(self, entry: ServiceEntry, now: float) -> None:
        core = entry.core()
        if core is None or core.closed:
            self._drop(entry)
            return
        if entry.job is not None:
            return  # in flight; its completion re-plans
        try:
            action = core.next_action(now)
        except Exception:
            log.exception(
                "%s: planning the next refresh failed", entry.name,
                extra={"service": entry.name, "pod": None, "address": None, "reason": "refresher_error"},
            )
            action = WaitUntil(now + core.refresh_policy.max_refresh)
        if core.has_events():  # an ejection that ended while planning
            dispatcher().post(core)
        if action is STOP:
            self._drop(entry)
        elif isinstance(action, Resolve):
            self._start(entry, core, action)
        elif isinstance(action, WaitUntil):
            entry.version += 1
            if not math.isinf(action.deadline):
                with self._lock:
                    heapq.heappush(self._heap, (action.deadline, next(self._seq), entry.version, entry))

    def _start(self, entry: ServiceEntry, core: ServiceCore, action: Resolve) -> None:
        runner = entry.runner

        mux = self._mux
        assert mux is not None

        lookup = runner.lookup(action.reuse)
        if lookup is not None:
            lane = self._lanes.setdefault(lookup.config.nameservers, _Lane())
            if lane.active >= LOOKUPS_PER_NAMESERVERS:
                lane.waiting.append((entry, lookup))
                entry.job = _Queued(lane)
                return
            self._submit(entry, lookup, lane)
            return

        def done(answer: EndpointSet | None, error: BaseException | None) -> None:
            self._done.put((entry, answer, error))
            mux.wake()

        pool = self._pool
        if pool is None:
            pool = self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=MAX_RESOLVE_THREADS, thread_name_prefix=RESOLVE_THREADS
            )

        # A resolver of the library (a subclass overriding resolve()) can be cut short by
        # close(): one socket pair while its call runs, closed when it ends.
        interrupt = Interrupt() if runner.interruptible else None
        entry.interrupt = interrupt

        def blocking() -> None:
            try:
                answer = runner.resolve_blocking(interrupt)
            except BaseException as exc:
                done(None, exc)
            else:
                done(answer, None)
            finally:
                if interrupt is not None:
                    interrupt.close()

        entry.job = pool.submit(blocking)

    def _submit(self, entry: ServiceEntry, lookup: Any, lane: _Lane) -> None:
        mux = self._mux
        assert mux is not None
        lane.active += 1

        def done(answer: EndpointSet | None, error: BaseException | None) -> None:
            self._done.put((entry, answer, error))
            mux.wake()

        entry.job = mux.submit(lookup, done)
        entry.lane = lane

    def _lane_freed(self, entry: ServiceEntry) -> None:
        """*entry*'s lookup ended: its lane may start the next one waiting."""
        lane, entry.lane = entry.lane, None
        if lane is None:
            return
        lane.active -= 1
        while lane.waiting and lane.active < LOOKUPS_PER_NAMESERVERS:
            waiting, lookup = lane.waiting.popleft()
            self._submit(waiting, lookup, lane)

    def _drain_done(self) -> None:
        while True:
            try:
                entry, answer, error = self._done.get_nowait()
            except queue.Empty:
                return
            entry.job = None
            self._lane_freed(entry)
            core = entry.core()
            if core is None:
                self._drop(entry)
                continue
            try:
                core.resolved(self.clock(), answer, error)
            except Exception:
                log.exception(
                    "%s: applying a refresh failed", entry.name,
                    extra={"service": entry.name, "pod": None, "address": None, "reason": "refresher_error"},
                )
            if core.has_events():
                dispatcher().post(core)
            with self._lock:
                self._dirty.add(entry)

    def _drop(self, entry: ServiceEntry) -> None:
        job = entry.job
        running: concurrent.futures.Future[Any] | None = None
        if job is not None:
            entry.job = None
            if isinstance(job, concurrent.futures.Future):
                if not job.cancel() and entry.interrupt is not None:
                    entry.interrupt.set()  # running: end its query now
                    running = job
            elif isinstance(job, _Queued):
                job.lane.waiting = collections.deque(w for w in job.lane.waiting if w[0] is not entry)
            elif self._mux is not None:
                self._mux.cancel(job)
                self._lane_freed(entry)
        with self._lock:
            self._entries.discard(entry)
            self._dirty.discard(entry)
            entry.version += 1
        stopped = entry.stopped
        if running is None:
            stopped.set()
        else:
            # close() waits on this: set it once the interrupted query has returned and
            # its socket is closed, so nothing of the service outlives close().
            running.add_done_callback(lambda _: stopped.set())

    # -- fork -----------------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        if self._mux is not None:
            self._mux.reset_after_fork()
        self._done = queue.SimpleQueue()
        # The parent's resolver threads are gone; a new pool starts on demand.
        self._pool = None
        self._lanes = {}
        self._thread = None
        for entry in self._entries:
            entry.job = None  # its answer would arrive in the parent, not here
            entry.lane = None
            entry.stopped = threading.Event()
        self._dirty = set(self._entries)
        if self._entries:
            self._ensure_thread()


class Dispatcher:
    """The events thread: delivers each service's events to its subscribers, in order.

    One FIFO for the process, so a service's events are delivered in publication order,
    one at a time; a subscriber may call ``refresh()`` (it waits for the refresher, not
    for this thread). Started with the first event, it stops when idle.
    """

    _fork_order = 10

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[weakref.ReferenceType[ServiceCore] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        _forksafe.register(self)

    def post(self, core: ServiceCore) -> None:
        """Deliver what *core* has queued, on the events thread."""
        if not core.subscribers:
            core.take_events()  # nobody listens: drop rather than keep growing
            return
        with self._lock:
            self._pending += 1
            self._queue.put(weakref.ref(core))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=EVENTS_THREAD, daemon=True)
                self._thread.start()

    @property
    def on_thread(self) -> bool:
        """True when called from the events thread (a subscriber callback)."""
        return threading.current_thread() is self._thread

    def wait_idle(self, timeout: float) -> bool:
        """Block until every posted event was delivered (tests); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        while True:
            try:
                ref = self._queue.get(timeout=5.0)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                core = ref() if ref is not None else None
                if core is not None and not core.closed:
                    for event in core.take_events():
                        core.deliver(event)
            except BaseException:  # pragma: no cover - deliver catches subscriber errors
                log.exception(
                    "headless-client events: unexpected error; continuing",
                    extra={"service": None, "pod": None, "address": None, "reason": "subscriber_error"},
                )
            finally:
                with self._lock:
                    self._pending -= 1
                    self._idle.notify_all()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue = queue.SimpleQueue()
        self._pending = 0
        self._thread = None


_registry_lock = threading.Lock()
_refreshers: weakref.WeakKeyDictionary[Any, Refresher] = weakref.WeakKeyDictionary()
_default: Refresher | None = None
_dispatcher: Dispatcher | None = None


def refresher_for(clock: Clock) -> Refresher:
    """The refresher of *clock*: one per process for the real clock, one per fake clock."""
    global _default
    with _registry_lock:
        if clock is monotonic or clock is time.monotonic:
            if _default is None:
                _default = Refresher(clock)
            return _default
        try:
            found = _refreshers.get(clock)
        except TypeError:  # an unhashable or non-weakrefable callable
            found = None
        if found is None:
            found = Refresher(clock)
            try:
                _refreshers[clock] = found
            except TypeError:
                pass
        return found


def dispatcher() -> Dispatcher:
    """The events thread of the process."""
    global _dispatcher
    with _registry_lock:
        if _dispatcher is None:
            _dispatcher = Dispatcher()
        return _dispatcher


def _reset_registry_lock() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()


class _RegistryRepair:
    _fork_order = -1

    def _after_fork_in_child(self) -> None:
        _reset_registry_lock()


_repair = _RegistryRepair()
_forksafe.register(_repair)
