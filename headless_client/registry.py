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

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from typing_extensions import Self

from . import _forksafe
from ._registry_calls import RegistryCalls
from ._registry_face import DEFAULT_GRACE, check_service, request_from
from .endpoints import Endpoint, EndpointSet
from .registry_core import Entry, FailurePredicate, Lease, MembershipChange

__all__ = ["DEFAULT_GRACE", "ClientRegistry", "Lease", "check_service", "close_client", "request_from"]

C = TypeVar("C")


def close_client(client: object) -> None:
    """The default closer: ``client.close()`` when it has one (else nothing)."""
    close = getattr(client, "close", None)
    if callable(close):
        close()


class ClientRegistry(RegistryCalls[C]):
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

    _awaited = False

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
        super().__init__(service, factory, close, failures, grace, eager, default_close=close_client)
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

    # -- calls (acquire, client and call come from RegistryCalls) -----------------------------

    def lease(self, endpoint: Endpoint) -> Lease[C]:
        """A lease on *endpoint*'s client (built now if it has none), for callers that
        pick the endpoint themselves (integrations that exclude pods already tried).

        Raises:
            ServiceClosed: the registry is closed.
            Exception: whatever the factory raised.
        """
        entry = self._core.take(endpoint)
        if entry is None:
            entry = self._build(endpoint)
        return self._leased(entry)

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

    def _dispose(self, entry: Entry[C]) -> None:
        self._close_entry(entry)

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
        with self._build_lock:
            if not self._wants_eager_build(endpoint):
                return
            try:
                client = self._factory(endpoint)
            except Exception as exc:
                self._log_build_failed(endpoint, exc)
                return
            entry, fresh = self._core.add(endpoint, client, use=False)
        unkept_client, claimed = self._unkept(entry, fresh, client)
        if unkept_client is not None:  # pragma: no cover - add() runs under the build lock
            self._close_quietly(unkept_client, endpoint)
        if claimed is not None:  # the pod left meanwhile, or the registry closed
            self._close_entry(claimed)

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
        if self._expired(entry):
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
        except Exception as exc:
            self._log_close_failed(endpoint, exc)

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
