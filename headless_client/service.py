"""HeadlessService: a live, self-refreshing view of a headless service (threads).

Every decision lives in :class:`~headless_client.core.ServiceCore`; what does no I/O is
shared with the asyncio twin (:class:`~headless_client._face.ServiceFace`). This shell
does only the blocking I/O: the first resolution in ``start()``, waiting (``refresh``,
``wait_for``, back-offs), and dialling in ``connect()``. Background refreshes and
subscriber callbacks run on the process-wide refresher and events threads
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
from typing import Final

from typing_extensions import Self, Unpack

from . import _forksafe
from ._face import ConnectOptions, ServiceFace, _raise_if_permanent
from .clock import real_timeout
from .connect import Backoff, ConnectPolicy, Dial, GiveUp, Reresolve
from .endpoints import Endpoint, EndpointSet
from .errors import ResolutionError, ServiceClosed, ServiceNotFound
from .refresher import ServiceEntry, dispatcher, refresher_for
from .request import Request
from .resolver import Resolver
from .sockets import open_socket

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


class HeadlessService(ServiceFace):
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

    _default_resolver = Resolver
    _awaited = False
    _waker_type = _Waiters
    _waker: _Waiters
    _entry: ServiceEntry | None = None

    @property
    def refreshing(self) -> bool:
        """True while the service is started and the refresher drives it (False before
        ``start()``, after ``close()``, and if the refresher ever stopped: ``repr`` says so)."""
        entry = self._entry
        if entry is None or self._core.closed or entry.stopped.is_set():
            return False
        return refresher_for(self._clock).drives(entry)

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
            self._wait(lambda: core.phase != "starting")
            if core.phase == "new":  # the first caller failed unexpectedly: try ourselves
                self.start()
            return
        ok = False
        try:
            self._resolve_inline()
            _raise_if_permanent(core.last_error)
            ok = True
        finally:
            core.start_done(ok=ok)
        if core.closed:
            return
        entry = ServiceEntry(weakref.ref(core), self._runner, core.name)
        self._entry = entry
        refresher = refresher_for(self._clock)
        core.listen(lambda: refresher.poke(entry))
        # Events queued by calls on other threads (a failure reported, an ejection ending).
        core.listen(lambda: dispatcher().post(core) if core.has_events() else None)
        refresher.add(entry)
        self._watch_source()
        # Dropped without close(): collected, the service stops and says so.
        self._finalizer = weakref.finalize(self, _collected, entry, repr(self))

    def _resolve_inline(self) -> None:
        core = self._core
        action = core.begin_resolve(self._clock())
        answer: EndpointSet | None = None
        error: BaseException | None = None
        try:
            answer = self._runner.resolve_blocking()
        except Exception as exc:  # the core logs what is not a ResolutionError
            error = exc
        except BaseException:
            core.resolved(self._clock(), action.previous, None)
            raise
        core.resolved(self._clock(), answer, error)
        # No refresher drives the service yet (start(), or refresh() before it): deliver
        # on this thread, as 0.1.0 did, so a subscriber has seen the first view when
        # start() returns.
        for event in core.take_events():
            core.deliver(event)

    def close(self) -> None:
        """Stop refreshing; harmless to call twice. Waits briefly for the refresher to let
        go of the service (not when called from a subscriber callback)."""
        if not self._core.close():
            return
        self._unwatch_source()
        if self._finalizer is not None:
            self._finalizer.detach()
        entry = self._entry
        if entry is not None and not dispatcher().on_thread:
            entry.stopped.wait(CLOSE_WAIT)

    # -- blocking calls -------------------------------------------------------------------------

    def _wait(self, ready: Callable[[], bool], deadline: float = float("inf")) -> bool:
        """Wait on the service's condition until ``ready()`` or *deadline*; its result."""
        clock, cv = self._clock, self._waker.cv
        with cv:
            while not ready():
                if clock() >= deadline:
                    return False
                cv.wait(real_timeout(clock, deadline))
        return True

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
            if not self._wait(lambda: core.served(ticket) or core.closed, self._clock() + budget):
                raise ResolutionError(f"{core.name}: refresh did not complete within {budget:g}s")
            if not core.served(ticket):
                raise ServiceClosed(f"{core.name}: closed while refreshing")
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
        self._wait(lambda: len(core.view.snapshot) >= min_endpoints or core.closed, deadline)
        if len(core.view.snapshot) >= min_endpoints:
            return core.view.snapshot
        if core.closed:
            raise core.closed_error("wait_for")
        raise self._settings.wait_timeout(core, min_endpoints, timeout)

    # -- connecting ----------------------------------------------------------------------------

    def connect(self, key: object | None = None, **options: Unpack[ConnectOptions]) -> socket.socket:
        """A connected socket (TLS-wrapped with ``ssl_context``) to a pod.

        By default to the strategy's pick for *key*, retrying on other pods; pinned (with
        ``ordinal=``/``hostname=``, ``partition=``, or a write to a primary) to that pod
        only, retried after a short back-off, re-resolving its name in case it moved. A
        failed attempt ejects the endpoint and schedules an early DNS refresh. With TLS the
        certificate must match the pod's FQDN (else the service's); a certificate that
        does not verify is not retried. The options are :class:`~headless_client._face.ConnectOptions`;
        at most ``attempts`` dials, each within ``timeout`` seconds, all within
        ``total_timeout`` (defaults: the service's :class:`~headless_client.ConnectPolicy`).

        Raises:
            EndpointNotFound: a pinned pod is not in the view (at once, no retry).
            NoEndpointsAvailable / LeaderNotAvailable: nothing to connect to.
            ConnectError: every attempt failed; lists each endpoint tried and its error.
            ConnectAborted: the service is closed (or was closed while connecting).
            InvalidName / InvalidArgument: a bad timeout, TLS context or source address.
        """
        sock, endpoint = self._connect(*self._connect_args(key, options))
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
        plan = self._connect_plan(request, policy, ssl_context, source_address)
        while True:
            action = plan.next(self._clock())
            if isinstance(action, Dial):
                with self._dialling(plan, action.endpoint):
                    sock = open_socket(
                        action.endpoint, action.timeout, ssl_context, action.server_hostname, source_address
                    )
                    return sock, action.endpoint
                continue
            if isinstance(action, Backoff):
                self._wait(lambda: self._core.closed, self._clock() + action.seconds)
            elif isinstance(action, Reresolve):
                plan.reresolved(action.endpoint, self._runner.reresolve_blocking(action.endpoint))
            else:
                assert isinstance(action, GiveUp)
                raise action.error

    @contextlib.contextmanager
    def connection(
        self, key: object | None = None, **options: Unpack[ConnectOptions]
    ) -> Iterator[socket.socket]:
        """``with svc.connection(key) as sock:`` connect, then report the outcome.

        On a clean exit the endpoint's latency (connect to exit) is reported as a success
        (feeding LeastLoaded); an ``OSError`` inside the block reports a failure. Any
        other exception ends the call's in-flight count without judging the pod (a
        ``NotLeader`` says nothing about its health). The socket is closed on exit.
        Arguments and errors as :meth:`connect`.
        """
        sock, endpoint = self._connect(*self._connect_args(key, options))
        with self._reporting(endpoint), sock:
            yield sock

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
                    log.warning(
                        "%s: refresh after NOT_LEADER failed: %s", self.name, exc,
                        extra={
                            "service": self.name,
                            "pod": None,
                            "address": None,
                            "reason": "not_leader_refresh_failed",
                        },
                    )


def _collected(entry: ServiceEntry, text: str) -> None:
    """A started service was garbage-collected without ``close()``."""
    core = entry.core()
    if core is not None and not core.closed:
        core.close()
    warnings.warn(f"unclosed {text}: call close() or use 'with'", ResourceWarning, stacklevel=2)
