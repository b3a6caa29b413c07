"""ClientRegistry: one client object per pod, balanced per call (threads).

The way to balance any client this library does not cover (a gRPC channel, a Redis
client, a database connection pool, an SDK object): give a factory that builds one for a
pod, and take one per call::

    import redis
    from headless_client import HeadlessService, LeastLoaded
    from headless_client.registry import ClientRegistry

    with HeadlessService("cache.prod", port="redis", strategy=LeastLoaded()) as svc, \\
         ClientRegistry(svc, lambda ep: redis.Redis(host=ep.address, port=ep.port),
                        failures=redis.ConnectionError) as clients:
        with clients.client(key="user-42") as (endpoint, r):
            r.get("user-42")

Lifecycle: with ``eager=True`` (the default) a client is built for every pod in the view
when the registry is created and for every pod that appears, on the library's events
thread, as soon as the service publishes the change; a pod picked before that (or with
``eager=False``) gets its client at its first call. A client is *retired* when its pod
leaves the view or changes address: never handed out again, and closed as soon as the
calls using it end, or after ``grace`` seconds, whichever comes first. Closing the
registry closes every client at once. Factories must be quick (build, do not connect:
most clients connect lazily); a factory that raises fails that call (eager builds log the
error and try again at the first call).

Per call, the service's strategy picks the pod from the request (``key=``,
``partition=``, ``ordinal=``, ``hostname=``, ``role=``, ``any_pod=`` or a whole
:class:`~headless_client.Request`); the call is counted in flight
(:class:`~headless_client.LeastLoaded` sees it) until it ends, and its outcome is
reported: a clean exit reports a success with its latency, an exception that
``failures`` recognises reports a failure (the pod is ejected for a while and DNS is
refreshed early), any other exception reports nothing about the pod.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, TypeVar

from typing_extensions import Self

from . import _forksafe
from ._spans import annotate
from .endpoints import Endpoint, EndpointSet
from .errors import HeadlessClientError, InvalidArgument, InvalidName
from .registry_core import (
    Entry,
    FailurePredicate,
    Lease,
    MembershipChange,
    RegistryCore,
    failure_predicate,
)
from .request import Request, Role

__all__ = ["DEFAULT_GRACE", "ClientRegistry", "Lease", "close_client", "request_from"]

log = logging.getLogger("headless_client.registry")

C = TypeVar("C")
T = TypeVar("T")

#: How long a departed pod's client may finish its calls before it is closed (seconds).
DEFAULT_GRACE = 30.0


def close_client(client: object) -> None:
    """The default closer: ``client.close()`` when it has one (else nothing)."""
    close = getattr(client, "close", None)
    if callable(close):
        close()


def request_from(
    request: Request | None,
    key: object | None,
    partition: Hashable | None,
    ordinal: int | None,
    hostname: str | None,
    role: Role | None,
    any_pod: bool,
) -> Request:
    """A :class:`Request` from a call's arguments (a whole request, or its fields).

    Raises:
        InvalidName: both a request and fields, or fields that contradict each other.
        InvalidArgument: *request* is not a :class:`Request`.
    """
    fields = (key, partition, ordinal, hostname, role)
    if request is not None:
        if not isinstance(request, Request):
            raise InvalidArgument(f"request must be a headless_client.Request: {request!r}")
        if any(f is not None for f in fields) or any_pod:
            raise InvalidName("pass request= or the request's fields (key=, partition=...), not both")
        return request
    return Request(key, partition, ordinal, hostname, role, any_pod)


def check_service(service: object, awaited: bool) -> None:
    """Raise :class:`InvalidArgument` unless *service* is the right twin."""
    wanted: type
    if awaited:
        from .aio import AsyncHeadlessService  # only here: sync programs never load asyncio

        wanted = AsyncHeadlessService
    else:
        from .service import HeadlessService

        wanted = HeadlessService
    if not isinstance(service, wanted):
        raise InvalidArgument(f"service must be a {wanted.__name__}: {service!r}")


class ClientRegistry(Generic[C]):
    """One client per pod of *service*, built by *factory*; see the module docs.

    Args:
        service: the :class:`~headless_client.HeadlessService` (owned by the caller:
            closing the registry does not close it).
        factory: ``factory(endpoint) -> client`` for one pod.
        close: ``close(client)`` (default: ``client.close()`` when it exists).
        failures: which exceptions inside a call mean the pod failed: an exception
            class, a tuple of them, or a predicate (default ``OSError``, which covers
            ``ConnectionError`` and ``TimeoutError``).
        grace: how long a departed pod's client may finish the calls using it (seconds).
        eager: build clients when pods appear (``True``) or at their first call.

    Raises:
        InvalidArgument: a wrong service, a factory or closer that is not callable,
            bad *failures*.
        InvalidName: a bad *grace*.
    """

    def __init__(
        self,
        service: Any,
        factory: Callable[[Endpoint], C],
        *,
        close: Callable[[C], object] | None = None,
        failures: type[BaseException] | tuple[type[BaseException], ...] | FailurePredicate = OSError,
        grace: float = DEFAULT_GRACE,
        eager: bool = True,
    ) -> None:
        check_service(service, awaited=False)
        if not callable(factory):
            raise InvalidArgument(f"factory must be callable: {factory!r}")
        if close is not None and not callable(close):
            raise InvalidArgument(f"close must be callable: {close!r}")
        self.service = service
        self._factory = factory
        self._close = close if close is not None else close_client
        self.is_failure: FailurePredicate = failure_predicate(failures)
        self._core: RegistryCore[C] = RegistryCore(service.name, grace)
        self._eager = bool(eager)
        self._build_lock = threading.Lock()
        self._timers: set[threading.Timer] = set()
        self._timers_lock = threading.Lock()
        _forksafe.register(self)
        self._unsubscribe = service.subscribe(self._changed)
        if service.core.phase != "new":
            self._changed(service.endpoints, service.endpoints)

    def _after_fork_in_child(self) -> None:
        # The parent's grace timers do not run here; their clients close with the registry.
        self._build_lock = threading.Lock()
        self._timers_lock = threading.Lock()
        self._timers = set()

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

    def acquire(
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
        """A lease on the client of the pod the strategy picks for the request.

        The call counts in flight until you give its outcome on the lease
        (``lease.success()``, ``lease.failure()`` or ``lease.neutral()``); prefer
        :meth:`client`, which does it for you.

        Raises:
            ServiceClosed: the registry is closed.
            NoEndpointsAvailable / LeaderNotAvailable / EndpointNotFound: nothing to pick.
            Exception: whatever the factory raised.
        """
        wanted = request_from(request, key, partition, ordinal, hostname, role, any_pod)
        return self.lease(self.service.core.pick(wanted))

    def lease(self, endpoint: Endpoint) -> Lease[C]:
        """A lease on *endpoint*'s client (built now if it has none), for callers that
        pick the endpoint themselves (integrations that exclude pods already tried).

        Raises:
            ServiceClosed: the registry is closed.
            Exception: whatever the factory raised.
        """
        core = self._core
        entry = core.take(endpoint)
        if entry is None:
            entry = self._build(endpoint)
        self.service.core.started(endpoint)
        annotate(self.service, endpoint)
        return Lease(entry, time.monotonic(), self._settle)

    def _build(self, endpoint: Endpoint) -> Entry[C]:
        core = self._core
        # One build at a time: a second caller for the same pod waits and finds it built.
        with self._build_lock:
            entry = core.take(endpoint)
            if entry is not None:
                return entry
            client = self._factory(endpoint)
            entry, fresh = core.add(endpoint, client, use=True)
        if not fresh and entry.client is not client:  # pragma: no cover - add() under the build lock
            self._close_quietly(client, endpoint)
        return entry

    @contextlib.contextmanager
    def client(
        self,
        request: Request | None = None,
        *,
        key: object | None = None,
        partition: Hashable | None = None,
        ordinal: int | None = None,
        hostname: str | None = None,
        role: Role | None = None,
        any_pod: bool = False,
    ) -> Iterator[Lease[C]]:
        """``with registry.client(key=...) as (endpoint, client):`` one call on one pod.

        A clean exit reports a success with the block's latency; an exception that
        ``failures`` recognises reports a failure; any other exception reports nothing
        about the pod. Arguments and errors as :meth:`acquire`.
        """
        lease = self.acquire(
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

    def call(
        self,
        fn: Callable[[C], T],
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
        """``fn(client)`` on the picked pod; on a failure (see ``failures``), up to
        *retries* more times on other pods. Retry only idempotent work. Calls pinned to
        a pod (``ordinal=``, ``hostname=``, ``partition=``...) are not retried.

        Raises:
            InvalidName: a bad *retries*.
            Exception: the last failure, or what ``fn`` raised otherwise.
        """
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidName(f"retries must be an int >= 0: {retries!r}")
        wanted = request_from(request, key, partition, ordinal, hostname, role, any_pod)
        attempts = 1 if self.service.core.pins(wanted) else 1 + retries
        last: BaseException | None = None
        for attempt in range(attempts):
            lease = self.acquire(wanted) if attempt == 0 else self._retry_lease(wanted)
            if lease is None:
                break
            try:
                result = fn(lease.client)
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
        assert last is not None  # the loop ran at least once, and only failures continue
        raise last

    def _retry_lease(self, wanted: Request) -> Lease[C] | None:
        try:
            return self.acquire(wanted)
        except HeadlessClientError:
            return None  # every pod was tried: the caller raises the last failure

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
                self._close_entry(lease.entry)

    # -- membership ---------------------------------------------------------------------------

    def _changed(self, old: EndpointSet, new: EndpointSet) -> None:
        """The service's subscriber (events thread): retire, close, build. Reads the
        newest view rather than *new*, so a late call cannot install an older one."""
        view = self.service.core
        change: MembershipChange[C] = self._core.membership(lambda: view.view.snapshot, time.monotonic())
        for entry in change.close:
            self._close_entry(entry)
        for entry in change.drain:
            self._start_timer(entry)
        if self._eager:
            for endpoint in change.build:
                self._build_eagerly(endpoint)

    def _build_eagerly(self, endpoint: Endpoint) -> None:
        core = self._core
        with self._build_lock:
            if core.closed or not core.in_view(endpoint) or endpoint in core.clients():
                return
            try:
                client = self._factory(endpoint)
            except Exception:
                log.exception("%s: building the client of %s failed (retried at its first call)",
                              self.name, endpoint,
                              extra={"service": self.name, "pod": endpoint.hostname,
                                     "address": endpoint.address, "reason": "client_build_failed"})
                return
            entry, fresh = core.add(endpoint, client, use=False)
        if fresh:
            return
        if entry.client is not client:  # pragma: no cover - add() runs under the build lock
            self._close_quietly(client, endpoint)
        elif core.release_unused(entry):  # the pod left meanwhile, or the registry closed
            self._close_entry(entry)

    def _start_timer(self, entry: Entry[C]) -> None:
        delay = max(0.0, (entry.deadline or 0.0) - time.monotonic())
        timer = threading.Timer(delay, self._expire, (entry,))
        timer.daemon = True
        timer.name = f"headless-client-registry-grace[{self.name}]"
        entry.timer = timer
        with self._timers_lock:
            self._timers.add(timer)
        timer.start()

    def _expire(self, entry: Entry[C]) -> None:
        with self._timers_lock:
            self._timers.discard(entry.timer)
        if self._core.expire(entry):
            log.info("%s: closing the client of %s after its %gs grace, with %d call(s) in flight",
                     self.name, entry.endpoint, self.grace, entry.users,
                     extra={"service": self.name, "pod": entry.endpoint.hostname,
                            "address": entry.endpoint.address, "reason": "client_grace_expired"})
            self._close_entry(entry)

    def _close_entry(self, entry: Entry[C]) -> None:
        timer = entry.timer
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()
            with self._timers_lock:
                self._timers.discard(timer)
        self._close_quietly(entry.client, entry.endpoint)

    def _close_quietly(self, client: C, endpoint: Endpoint) -> None:
        try:
            self._close(client)
        except Exception:
            log.exception("%s: closing the client of %s failed", self.name, endpoint,
                          extra={"service": self.name, "pod": endpoint.hostname,
                                 "address": endpoint.address, "reason": "client_close_failed"})

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop following the service and close every client now (calls still using one
        may fail); harmless to call twice. The service stays open."""
        self._unsubscribe()
        for entry in self._core.close():
            self._close_entry(entry)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.clients())} clients, {self.draining} draining"
        return f"<ClientRegistry {self.name} {state}>"
