"""HeadlessService: a live, self-refreshing view of a headless service (threads).

Every decision lives in :class:`~headless_client.core.ServiceCore`; this shell owns one
and does only the blocking I/O: the first resolution in ``start()``, waiting
(``refresh``, ``wait_for``, back-offs), and dialling in ``connect()``. Background
refreshes and subscriber callbacks run on the process-wide refresher and events threads
(:mod:`headless_client.refresher`), shared by every service.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import warnings
import weakref
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Final

from typing_extensions import Self

from . import _forksafe
from ._settings import ServiceSettings, settings_from
from .clock import Clock, real_timeout, register_waker
from .connect import Backoff, ConnectPolicy, Dial, GiveUp, Reresolve
from .core import ServiceCore, Subscriber
from .endpoints import Endpoint, EndpointSet
from .errors import ResolutionError, ServiceClosed, ServiceNotFound
from .health import HealthPolicy
from .lookup_runner import LookupRunner, check_resolver
from .refresh import RefreshPolicy
from .refresher import ServiceEntry, dispatcher, refresher_for
from .request import Request, Role
from .resolver import Resolver
from .sockets import check_dial_options, open_socket
from .strategies import Strategy

__all__ = ["HeadlessService"]

log = logging.getLogger("headless_client.service")

#: How long ``close()`` waits for the refresher to let go of the service.
CLOSE_WAIT: Final = 2.0


class _Waiters:
    """The condition a service's blocking calls wait on; woken by the core and by a fake
    clock. Holds no reference to the service."""

    __slots__ = ("__weakref__", "cv")

    def __init__(self) -> None:
        self.cv = threading.Condition()
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        # The parent's waiters do not exist here, and one may have held the lock.
        self.cv = threading.Condition()

    def wake(self) -> None:
        with self.cv:
            self.cv.notify_all()


class HeadlessService:
    """All pods of a headless service, kept fresh in the background.

    ``with HeadlessService("web.prod", port="http") as svc:`` resolves once, starts
    refreshing, and stops on exit. Picks (:meth:`pick`, :meth:`endpoint`) read an
    immutable view and take no lock.

    Args:
        service: ``web``, ``web.prod``, ``web.prod.svc.cluster.local``...
        port: a named port (``"http"``: SRV, gives pod identities) or a number (A/AAAA).
        resolver: the resolver (default: a :class:`~headless_client.Resolver` reading the
            system's resolv.conf). Anything with ``qualify``, ``resolve``, ``resolve_host``
            and ``timeout`` works.
        strategy: the pick strategy instance (default :class:`~headless_client.RoundRobin`).
        protocol: the SRV protocol of a named port.
        namespace: the namespace of one-label names (default: the resolver's).
        refresh: refresh timing (:class:`~headless_client.RefreshPolicy`).
        health: passive health (:class:`~headless_client.HealthPolicy`).
        connect: defaults of :meth:`connect` (:class:`~headless_client.ConnectPolicy`).
        min_refresh: 0.1.0's flat spelling of the :class:`~headless_client.RefreshPolicy`
            field; it overrides *refresh*'s (so do the next four).
        max_refresh: see *min_refresh*.
        empty_grace: see *min_refresh*.
        jitter: see *min_refresh*.
        backoff: see *min_refresh*.
        clock: monotonic seconds (tests pass :class:`headless_client.testing.FakeClock`).

    Raises:
        InvalidName: a bad service name, port, or setting (naming the value).
        InvalidArgument: an argument of the wrong type (a strategy class, a str resolver).
    """

    def __init__(
        self,
        service: str,
        port: int | str | None = None,
        *,
        resolver: Any = None,
        strategy: Strategy | object | None = None,
        protocol: str = "tcp",
        namespace: str | None = None,
        refresh: RefreshPolicy | None = None,
        health: HealthPolicy | None = None,
        connect: ConnectPolicy | None = None,
        min_refresh: float | None = None,
        max_refresh: float | None = None,
        empty_grace: float | None = None,
        jitter: float | None = None,
        backoff: Any = None,
        clock: Clock | None = None,
    ) -> None:
        settings = settings_from(
            service, port, resolver, strategy, protocol, namespace, refresh, health, connect,
            min_refresh, max_refresh, empty_grace, jitter, backoff, clock,
            default_resolver=Resolver, awaited=False,
        )
        self._init(settings)

    def _init(self, settings: ServiceSettings) -> None:
        check_resolver(settings.resolver, awaited=False)
        self._settings = settings
        self._clock = settings.clock
        self._resolver = settings.resolver
        self._core = core = settings.core()
        self._runner = LookupRunner(
            settings.resolver, settings.service, settings.port, settings.protocol, settings.namespace
        )
        self._waiters = waiters = _Waiters()
        register_waker(self._clock, waiters)
        self._entry: ServiceEntry | None = None
        self._remove_listener = core.listen(waiters.wake)
        self._finalizer: weakref.finalize[Any, Any] | None = None

    # -- reading (no lock, no I/O) ------------------------------------------------------------

    @property
    def name(self) -> str:
        """The service's FQDN."""
        return self._core.name

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._core.closed

    @property
    def strategy(self) -> Any:
        """The pick strategy."""
        return self._core.strategy

    @property
    def resolver(self) -> Any:
        """The resolver."""
        return self._resolver

    @property
    def endpoints(self) -> EndpointSet:
        """The current view from DNS (ejected endpoints included)."""
        return self._core.view.snapshot

    @property
    def healthy_endpoints(self) -> EndpointSet:
        """What strategies see: the view without ejected endpoints (panic rule applied)."""
        return self._core.view.usable

    @property
    def last_error(self) -> BaseException | None:
        """The error of the latest resolution, or None if it succeeded (or found nothing)."""
        return self._core.last_error

    @property
    def refreshing(self) -> bool:
        """True while the service is started and the refresher drives it (False before
        ``start()``, after ``close()``, and if the refresher ever stopped: ``repr`` says so)."""
        entry = self._entry
        if entry is None or self._core.closed or entry.stopped.is_set():
            return False
        return refresher_for(self._clock).drives(entry)

    @property
    def core(self) -> ServiceCore:
        """The sans-I/O core this service drives (integrations and tools read it)."""
        return self._core

    def pick(
        self,
        key: object | None = None,
        *,
        partition: Hashable | None = None,
        ordinal: int | None = None,
        hostname: str | None = None,
        role: Role | None = None,
        any_pod: bool = False,
        request: Request | None = None,
    ) -> Endpoint:
        """One endpoint for a call, chosen by the strategy from the current view.

        Args:
            key: strategy input (a sticky key, a write key...).
            partition: the partition whose leader is wanted (ejected or not).
            ordinal: a specific pod by StatefulSet ordinal (ejected or not).
            hostname: a specific pod by hostname (ejected or not).
            role: ``"read"`` or ``"write"`` (:class:`~headless_client.PrimaryReplica`).
            any_pod: any pod will do (metadata calls to a partitioned service).
            request: a whole :class:`~headless_client.Request` instead of the fields.

        Raises:
            ServiceNotStarted: the service was never started (nor refreshed).
            NoEndpointsAvailable: the view is empty (or the strategy found none).
            LeaderNotAvailable: ``partition`` has no leader in the view.
            EndpointNotFound: the pinned pod is not in the view.
            TypeError: the key or partition does not suit the strategy.
        """
        if (
            request is None
            and partition is None
            and ordinal is None
            and hostname is None
            and role is None
            and not any_pod
        ):
            return self._core.quick(key)
        if request is None:
            request = Request(key, partition, ordinal, hostname, role, any_pod)
        return self._core.pick(request)

    def endpoint(self, ordinal: int | None = None, *, hostname: str | None = None) -> Endpoint:
        """A specific pod by StatefulSet ordinal or hostname (ejected or not).

        Raises:
            EndpointNotFound: no such pod in the current view.
            InvalidName: neither or both of ordinal/hostname, or a bad ordinal.
        """
        return self._core.endpoint(ordinal, hostname)

    # -- health ------------------------------------------------------------------------------

    def report_failure(self, endpoint: Endpoint | int | str) -> None:
        """A call to *endpoint* (an endpoint, a pod ordinal or hostname) failed: eject it
        for a while and refresh DNS early.

        Raises:
            EndpointNotFound: an ordinal or hostname not in the view.
            InvalidArgument: another type.
        """
        self._core.report_failure(endpoint, self._clock())

    def report_success(self, endpoint: Endpoint | int | str, latency: float | None = None) -> None:
        """A call to *endpoint* succeeded (in *latency* seconds): clear its ejection."""
        self._core.report_success(endpoint, latency, self._clock())

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(old, new)`` on every published change; returns an unsubscribe.

        Callbacks run on the library's events thread, in order of publication, one at a
        time; one may call :meth:`refresh` or :meth:`close`. An exception in one is logged
        and affects neither the refresher nor the other callbacks.
        """
        return self._core.subscribe(callback)

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Resolve once (on this thread), then refresh in the background (idempotent;
        concurrent calls wait for the first).

        Raises:
            ServiceClosed: the service was closed.
        """
        core = self._core
        if not core.begin_start():
            self._wait_started()
            return
        ok = False
        try:
            self._resolve_inline()
            ok = True
        finally:
            core.start_done(ok=ok)
        if core.closed:
            return
        entry = ServiceEntry(weakref.ref(core), self._runner, core.name)
        self._entry = entry
        refresher = refresher_for(self._clock)
        core.listen(lambda: refresher.poke(entry))
        refresher.add(entry)
        # Not started without close(): collected, the service stops and says so.
        self._finalizer = weakref.finalize(self, _collected, entry, repr(self))

    def _wait_started(self) -> None:
        core = self._core
        cv = self._waiters.cv
        with cv:
            while core.phase == "starting":
                cv.wait(real_timeout(self._clock, self._clock() + 1.0))
        if core.phase == "new":  # the first caller failed unexpectedly: try ourselves
            self.start()

    def _resolve_inline(self) -> None:
        core = self._core
        action = core.begin_resolve()
        answer: EndpointSet | None = None
        error: BaseException | None = None
        try:
            answer = self._runner.resolve_blocking()
        except ResolutionError as exc:
            error = exc
        except Exception as exc:  # a custom resolver's bug: logged by the core, not fatal
            error = exc
        except BaseException:
            core.resolved(self._clock(), action.previous, None)
            raise
        core.resolved(self._clock(), answer, error)
        if core.has_events():
            dispatcher().post(core)

    def close(self) -> None:
        """Stop refreshing; harmless to call twice. Waits briefly for the refresher to let
        go of the service (not when called from a subscriber callback)."""
        core = self._core
        if not core.close():
            return
        finalizer = self._finalizer
        if finalizer is not None:
            finalizer.detach()
        entry = self._entry
        if entry is not None and not dispatcher().on_thread:
            entry.stopped.wait(CLOSE_WAIT)
        self._remove_listener()

    # -- blocking calls -------------------------------------------------------------------------

    def refresh(self) -> EndpointSet:
        """Resolve now and return the resulting view.

        Before ``start()``, resolves on this thread (without starting the refresher).

        Raises:
            ResolutionError: this resolution failed (the last good view is kept).
            ServiceClosed: the service is (or was meanwhile) closed.
        """
        core = self._core
        if core.closed:
            raise core.closed_error("refresh")
        if core.phase == "new":
            self._resolve_inline()
        else:
            ticket = core.want_refresh()
            budget = 2 * self._runner.timeout + 1.0
            deadline = self._clock() + budget
            cv = self._waiters.cv
            with cv:
                while not core.served(ticket):
                    if core.closed:
                        raise ServiceClosed(f"{core.name}: closed while refreshing")
                    if self._clock() >= deadline:
                        raise ResolutionError(f"{core.name}: refresh did not complete within {budget:g}s")
                    cv.wait(real_timeout(self._clock, deadline))
        error = core.last_error
        if error is not None and not isinstance(error, ServiceNotFound):
            raise error
        return core.view.snapshot

    def wait_for(self, min_endpoints: int = 1, timeout: float | None = None) -> EndpointSet:
        """Block until the view holds at least *min_endpoints*; returns it.

        *timeout* ``None`` (or infinity) waits as long as it takes.

        Raises:
            WaitTimeout: not reached within *timeout* seconds (names the service).
            ServiceClosed: the service is (or was meanwhile) closed.
            InvalidName: a negative *min_endpoints* or *timeout*.
        """
        core = self._core
        deadline = self._settings.wait_deadline(min_endpoints, timeout, self._clock())
        cv = self._waiters.cv
        with cv:
            while len(core.view.snapshot) < min_endpoints:
                if core.closed:
                    raise core.closed_error("wait_for")
                if self._clock() >= deadline:
                    raise self._settings.wait_timeout(core, min_endpoints, timeout)
                cv.wait(real_timeout(self._clock, deadline))
            return core.view.snapshot

    # -- connecting ----------------------------------------------------------------------------

    def connect(
        self,
        key: object | None = None,
        *,
        partition: Hashable | None = None,
        ordinal: int | None = None,
        timeout: float | None = None,
        attempts: int | None = None,
        total_timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        source_address: tuple[str, int] | None = None,
        hostname: str | None = None,
        role: Role | None = None,
        request: Request | None = None,
    ) -> socket.socket:
        """A connected socket (TLS-wrapped with *ssl_context*) to a pod.

        By default to the strategy's pick for *key*, retrying on other pods; pinned (with
        ``ordinal=``/``hostname=``, ``partition=``, or a write to a primary) to that pod
        only, retried after a short back-off, re-resolving its name in case it moved. A
        failed attempt ejects the endpoint and schedules an early DNS refresh. With TLS the
        certificate must match the pod's FQDN (else the service's); a certificate that
        does not verify is not retried.

        At most *attempts* dials, each within *timeout* seconds, all within
        *total_timeout* (defaults: the service's :class:`~headless_client.ConnectPolicy`).

        Raises:
            EndpointNotFound: a pinned pod is not in the view (at once, no retry).
            NoEndpointsAvailable / LeaderNotAvailable: nothing to connect to.
            ConnectError: every attempt failed; lists each endpoint tried and its error.
            ServiceClosed: the service is closed (or was closed while connecting).
            InvalidName / InvalidArgument: a bad timeout, TLS context or source address.
        """
        sock, endpoint = self._connect(
            self._settings.request(key, partition, ordinal, hostname, role, request),
            self._settings.connect_policy(timeout, attempts, total_timeout),
            ssl_context,
            source_address,
        )
        # The socket is the caller's now: this call's in-flight count ends here.
        self._core.finished(endpoint)
        return sock

    def _connect(
        self,
        request: Request,
        policy: ConnectPolicy,
        ssl_context: ssl.SSLContext | None,
        source_address: tuple[str, int] | None,
    ) -> tuple[socket.socket, Endpoint]:
        check_dial_options(ssl_context, source_address)
        core, clock = self._core, self._clock
        plan = core.connect_plan(request, policy, clock(), self._runner.timeout)
        while True:
            action = plan.next(clock())
            if isinstance(action, Dial):
                endpoint = action.endpoint
                # Counted in flight while dialling, so report_failure's decrement balances it.
                core.started(endpoint)
                try:
                    sock = _dial(endpoint, action, ssl_context, source_address)
                except OSError as exc:
                    # Through the public method, so a subclass hooking it sees dial failures.
                    self.report_failure(endpoint)
                    plan.failed(endpoint, exc, clock())
                    continue
                except BaseException:
                    core.finished(endpoint)
                    raise
                return sock, endpoint
            if isinstance(action, Backoff):
                self._sleep(action.seconds)
            elif isinstance(action, Reresolve):
                try:
                    found: EndpointSet | None = self._runner.resolve_host_blocking(
                        action.endpoint.hostname or "", action.endpoint.port
                    )
                except ResolutionError:
                    found = None
                plan.reresolved(action.endpoint, found)
            else:
                assert isinstance(action, GiveUp)
                raise action.error

    def _sleep(self, seconds: float) -> None:
        """Wait *seconds*, or less if the service is closed meanwhile."""
        core = self._core
        deadline = self._clock() + seconds
        cv = self._waiters.cv
        with cv:
            while not core.closed and self._clock() < deadline:
                cv.wait(real_timeout(self._clock, deadline))

    @contextlib.contextmanager
    def connection(
        self,
        key: object | None = None,
        *,
        partition: Hashable | None = None,
        ordinal: int | None = None,
        timeout: float | None = None,
        attempts: int | None = None,
        total_timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        source_address: tuple[str, int] | None = None,
        hostname: str | None = None,
        role: Role | None = None,
        request: Request | None = None,
    ) -> Iterator[socket.socket]:
        """``with svc.connection(key) as sock:`` connect, then report the outcome.

        On a clean exit the endpoint's latency (connect to exit) is reported as a success
        (feeding LeastLoaded); an ``OSError`` inside the block reports a failure. Any
        other exception ends the call's in-flight count without judging the pod (a
        ``NotLeader`` says nothing about its health). The socket is closed on exit.
        Arguments and errors as :meth:`connect`.
        """
        sock, endpoint = self._connect(
            self._settings.request(key, partition, ordinal, hostname, role, request),
            self._settings.connect_policy(timeout, attempts, total_timeout),
            ssl_context,
            source_address,
        )
        start = self._clock()
        try:
            with sock:
                yield sock
        except OSError:
            self._core.report_failure(endpoint, self._clock())
            raise
        except BaseException:
            self._core.finished(endpoint)
            raise
        self._core.report_success(endpoint, self._clock() - start, self._clock())

    def not_leader(self, partition: Hashable, hint: int | str | None = None) -> None:
        """A pod answered "not the leader" for *partition*: update routing.

        The strategy's leader map is re-read (rate-limited) and *hint*, when given, is
        used at once; if the hinted pod is not in the view, DNS is refreshed now (even
        when re-reading the map failed), so the next ``connect(partition=...)`` finds it::

            except NotLeader as exc:
                svc.not_leader(exc.partition, exc.hint)

        Raises:
            InvalidArgument: the strategy routes no partitions, or a bad hint.
            Exception: whatever the leader map's callable raised (the hint still applies).
        """
        try:
            self._core.not_leader(partition, hint)
        finally:
            if self._core.lacks_pod(hint):
                try:
                    self.refresh()
                except ResolutionError as exc:
                    log.warning("%s: refresh after NOT_LEADER failed: %s", self.name, exc)

    def __repr__(self) -> str:
        stalled = " (refresher stopped)" if self._core.phase == "running" and not self.refreshing else ""
        return f"<HeadlessService {self._core.describe()}{stalled}>"


def _dial(
    endpoint: Endpoint,
    action: Dial,
    ssl_context: ssl.SSLContext | None,
    source_address: tuple[str, int] | None,
) -> socket.socket:
    return open_socket(endpoint, action.timeout, ssl_context, action.server_hostname, source_address)


def _collected(entry: ServiceEntry, text: str) -> None:
    """A started service was garbage-collected without ``close()``."""
    core = entry.core()
    if core is not None and not core.closed:
        core.close()
    warnings.warn(f"unclosed {text}: call close() or use 'with'", ResourceWarning, stacklevel=2)
