"""HeadlessService: a live, self-refreshing view of a headless service (threads).

The I/O-free half (snapshot, health, strategy, refresh rules) is
:class:`~headless_client.view.ServiceView`; this module adds the refresher thread and
the blocking calls (``refresh``, ``wait_for``, ``connect``).
"""

from __future__ import annotations

import contextlib
import math
import socket
import ssl
import threading
from collections.abc import Hashable, Iterator

import tenacity
from typing_extensions import Self

from .connect import DEFAULT_ATTEMPTS, DEFAULT_CONNECT_TIMEOUT, ConnectPlan, fresh_endpoint
from .endpoints import Endpoint, EndpointSet
from .errors import HeadlessClientError, ResolutionError, ServiceNotFound, WaitTimeout
from .resolver import Interrupt, Resolver
from .sockets import open_socket
from .view import Event, ServiceView, log

__all__ = ["HeadlessService"]


class _Retry(Exception):
    """One attempt failed in a way another attempt may fix."""


class HeadlessService(ServiceView[Resolver]):
    """All pods of a headless service, kept fresh by a background thread.

    ``with HeadlessService("web.prod", port="http") as svc:`` resolves once, starts the
    refresher, and stops it on exit. See :class:`~headless_client.view.ServiceView` for
    the picking and health methods and the refresh arguments.

    Args:
        service: ``web``, ``web.prod``, ``web.prod.svc.cluster.local``...
        port: a named port (``"http"``: SRV, gives pod identities) or a number (A/AAAA).
        resolver: the :class:`Resolver` to use (default: the system's resolv.conf).
        strategy: the pick strategy (default :class:`~headless_client.RoundRobin`).

    Raises:
        InvalidName: a bad service name, port, or refresh/health setting.
    """

    def _default_resolver(self) -> Resolver:
        return Resolver()

    def _init_shell(self) -> None:
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._manual_wanted = 0
        self._manual_served = 0
        self._interrupt: Interrupt | None = None
        self._closed_by_refresher = False

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Resolve once, then start the refresher thread (idempotent)."""
        with self._cv:
            if self._closed:
                raise HeadlessClientError(f"{self.name}: service is closed")
            if self._thread is not None:
                return
            if self._interrupt is None:
                self._interrupt = Interrupt()
        event, decision_delay = self._refresh_once()
        next_refresh = self._clock() + decision_delay
        # Deliver the first event before the refresher exists: delivered after, a slow
        # callback would let the refresher deliver the next event first, concurrently.
        if event is not None:
            self._deliver(event)
        with self._cv:
            if self._closed or self._thread is not None:
                return  # closed (or started) meanwhile, by a callback or another thread
            self._next_refresh = next_refresh
            self._thread = threading.Thread(
                target=self._run, name=f"headless-client-refresh[{self.name}]", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        """Stop the refresher and wait for it; harmless to call twice."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
            thread = self._thread
            interrupt = self._interrupt
            if thread is threading.current_thread():
                self._closed_by_refresher = True
        if interrupt is not None:
            # Ends a query in flight at once instead of at the resolver's timeout.
            interrupt.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._resolver.timeout + 1.0)
            if thread.is_alive():  # pragma: no cover - resolver timeouts bound every query
                log.warning("%s: refresher did not stop in time", self.name)
                return
        if interrupt is not None and (thread is None or not thread.is_alive()):
            with self._cv:
                self._interrupt = None
            interrupt.close()

    # -- blocking calls ----------------------------------------------------------------

    def refresh(self) -> EndpointSet:
        """Resolve now and return the resulting view.

        Raises:
            ResolutionError: this resolution failed (the last good view is kept).
            HeadlessClientError: the service is closed.
        """
        with self._cv:
            if self._closed:
                raise HeadlessClientError(f"{self.name}: service is closed")
            # From the refresher itself (a subscriber callback), resolve inline: waiting for
            # the refresher would wait for ourselves.
            running = self._thread is not None and self._thread is not threading.current_thread()
            if running:
                self._manual_wanted += 1
                target = self._manual_wanted
                self._cv.notify_all()
                deadline = self._clock() + 2 * self._resolver.timeout + 1.0
                while self._manual_served < target and not self._closed:
                    left = deadline - self._clock()
                    if left <= 0:
                        raise ResolutionError(f"{self.name}: refresh did not complete in time")
                    self._cv.wait(left)
                error = self._last_error
        if not running:
            event, _ = self._refresh_once()
            if event is not None:
                self._deliver(event)
            error = self._last_error
        if error is not None and not isinstance(error, ServiceNotFound):
            raise error
        return self.endpoints

    def wait_for(self, min_endpoints: int = 1, timeout: float | None = None) -> EndpointSet:
        """Block until the view holds at least *min_endpoints*; returns it.

        Raises:
            WaitTimeout: not reached within *timeout* seconds (names the service).
        """
        if isinstance(min_endpoints, bool) or not isinstance(min_endpoints, int) or min_endpoints < 0:
            raise ValueError(f"min_endpoints must be an int >= 0: {min_endpoints!r}")
        deadline = None if timeout is None else self._clock() + timeout
        with self._cv:
            while len(self.endpoints) < min_endpoints:
                if self._closed:
                    raise HeadlessClientError(f"{self.name}: service is closed")
                left = None if deadline is None else deadline - self._clock()
                if left is not None and left <= 0:
                    raise WaitTimeout(
                        f"{self.name}: {len(self.endpoints)} endpoints after {timeout}s, "
                        f"wanted {min_endpoints}"
                    )
                self._cv.wait(left)
            return self.endpoints

    # -- connecting ------------------------------------------------------------------------

    def connect(
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
    ) -> socket.socket:
        """A connected socket (TLS-wrapped with *ssl_context*) to a pod.

        By default to the strategy's pick for *key*, retrying on other pods; with
        ``ordinal=`` to that pod only, with ``partition=`` to that partition's leader
        (both retried on the same pod after a short backoff, re-resolving its name in
        case it moved). A failed attempt ejects the endpoint and schedules an early DNS
        refresh. With TLS the certificate must match the pod's FQDN (else the service's);
        a certificate that does not verify is not retried.

        At most *attempts* dials, each within *timeout* seconds, all within
        *total_timeout* (default ``timeout * attempts``): no attempt or backoff runs past
        it. A pinned pod's name is re-resolved between attempts only when the resolver's
        own timeout fits in the time left.

        Raises:
            EndpointNotFound: ``ordinal`` is not in the view (at once, no retry).
            NoEndpointsAvailable / LeaderNotAvailable: nothing to connect to.
            ConnectError: every attempt failed; lists each endpoint tried and its error,
                in order (``__cause__``: the last error).
        """
        sock, endpoint = self._connect(
            ConnectPlan(self, key, partition, ordinal, timeout, attempts, total_timeout),
            ssl_context,
            source_address,
        )
        # The socket is the caller's now: this call's in-flight count ends here.
        self._finish(endpoint)
        return sock

    def _connect(
        self,
        plan: ConnectPlan,
        ssl_context: ssl.SSLContext | None,
        source_address: tuple[str, int] | None,
    ) -> tuple[socket.socket, Endpoint]:
        plan.start(self._clock())
        retrying = tenacity.Retrying(
            stop=lambda state: plan.should_stop(state, self._clock()),
            wait=plan.backoff,
            retry=tenacity.retry_if_exception_type(_Retry),
            sleep=self._sleep_unless_closed,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(plan, ssl_context, source_address)
        except _Retry:
            pass
        raise plan.final_error()

    def _attempt(
        self,
        plan: ConnectPlan,
        ssl_context: ssl.SSLContext | None,
        source_address: tuple[str, int] | None,
    ) -> tuple[socket.socket, Endpoint]:
        endpoint = plan.target()
        timeout = plan.dial_timeout(self._clock(), endpoint)
        # Counted in flight while dialling, so report_failure's decrement balances it
        # (instead of taking one off a request of another thread).
        self._started(endpoint)
        try:
            sock = open_socket(endpoint, timeout, ssl_context, plan.server_hostname(endpoint), source_address)
        except OSError as exc:
            self.report_failure(endpoint)
            if plan.failed(endpoint, exc, self._clock(), self._resolver.timeout):
                plan.override = self._reresolve(endpoint)
            raise _Retry from exc
        except BaseException:
            self._finish(endpoint)
            raise
        return sock, endpoint

    def _reresolve(self, endpoint: Endpoint) -> Endpoint | None:
        """The pod's current endpoint by its name: it may have restarted with a new IP."""
        assert endpoint.hostname is not None
        try:
            return fresh_endpoint(endpoint, self._resolver.resolve_host(endpoint.hostname, endpoint.port))
        except ResolutionError:
            return None

    def _sleep_unless_closed(self, seconds: float) -> None:
        with self._cv:
            if not self._closed:
                self._cv.wait(seconds)

    @contextlib.contextmanager
    def connection(
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
    ) -> Iterator[socket.socket]:
        """``with svc.connection(key) as sock:`` connect, then report the outcome.

        On a clean exit the endpoint's latency (connect to exit) is reported as a success
        (feeding LeastLoaded); an ``OSError`` inside the block reports a failure. Any
        other exception ends the request's in-flight count without judging the pod (a
        ``NotLeader`` says nothing about its health). The socket is closed on exit.
        Arguments and errors as :meth:`connect`.
        """
        sock, endpoint = self._connect(
            ConnectPlan(self, key, partition, ordinal, timeout, attempts, total_timeout),
            ssl_context,
            source_address,
        )
        # In flight since _attempt counted it.
        start = self._clock()
        try:
            with sock:
                yield sock
        except OSError:
            self.report_failure(endpoint)
            raise
        except BaseException:
            self._finish(endpoint)
            raise
        self.report_success(endpoint, self._clock() - start)

    def not_leader(self, partition: Hashable, hint: int | str | None = None) -> None:
        """A pod answered "not the leader" for *partition*: update routing.

        The strategy's leader map is re-read (rate-limited) and *hint*, when given, is
        used at once; if the hinted pod is not in the view, DNS is refreshed now (even
        when re-reading the map failed), so the next ``connect(partition=...)`` finds it.
        The usual loop::

            except NotLeader as exc:
                svc.not_leader(exc.partition, exc.hint)

        Raises:
            TypeError: the strategy is not a :class:`PartitionLeader`, or a bad hint.
            Exception: whatever the leader map's callable raised (the hint still applies).
        """
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
                    self.refresh()
                except ResolutionError as exc:
                    log.warning("%s: refresh after NOT_LEADER failed: %s", self.name, exc)

    # -- the refresher -------------------------------------------------------------------

    def _refresh_once(self) -> tuple[Event | None, float]:
        """One resolution, applied; returns the event to deliver and the next delay."""
        answer: EndpointSet | None = None
        error: BaseException | None = None
        interrupt = self._interrupt
        try:
            with self._resolver._interruptible(interrupt) if interrupt else contextlib.nullcontext():
                answer = self._resolver.resolve(
                    self._service, self._port, protocol=self._protocol, namespace=self._namespace
                )
        except ResolutionError as exc:
            if self._closed:
                # Interrupted by close(): not a DNS failure worth a warning.
                return None, 0.0
            error = exc
        decision = self._publish_result(answer, error)
        event = self._apply(decision)
        with self._cv:
            self._last_error = error
            self._cv.notify_all()
        return event, decision.delay

    def _run(self) -> None:
        while True:
            with self._cv:
                manual = self._wait_until_due()
                if manual is None:
                    # close() releases the interrupt after joining us, except when it was
                    # called from a subscriber, on this thread: then nobody else will.
                    interrupt = self._interrupt
                    if interrupt is not None and self._closed_by_refresher:
                        self._interrupt = None
                        interrupt.close()
                    return
            try:
                event, delay = self._refresh_once()
            except Exception:  # never let the refresher die
                log.exception("%s: refresh failed unexpectedly", self.name)
                event, delay = None, self._policy.max_refresh
            with self._cv:
                self._next_refresh = self._clock() + delay
                self._manual_served = max(self._manual_served, manual)
                self._cv.notify_all()
            if event is not None:
                self._deliver(event)

    def _wait_until_due(self) -> int | None:
        """Under the condition: sleep until a refresh is due; None once closed."""
        while not self._closed:
            now = self._clock()
            if now >= self._health_wake:
                self._rebuild_healthy()
                self._health_wake = self._next_health_expiry() or math.inf
                continue
            if self._manual_wanted > self._manual_served:
                self._early = False  # this refresh serves the early request too
                return self._manual_wanted
            due = self._next_refresh
            if self._early:
                due = min(due, self._state.earliest_early_refresh(now))
            if now >= due:
                self._early = False
                return self._manual_wanted
            self._cv.wait(min(due, self._health_wake) - now)
        return None

    def _deliver(self, event: Event) -> None:
        # A callback may call refresh(), which publishes again from this same thread:
        # that event waits in the queue until the current one reached every callback.
        self._outbox.append(event)
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._outbox:
                old, new = self._outbox.popleft()
                for callback in self._subscribers:
                    try:
                        callback(old, new)
                    except Exception:
                        log.exception("%s: subscriber %r raised", self.name, callback)
        finally:
            self._delivering = False

    def _request_early_refresh(self) -> None:
        with self._cv:
            self._early = True
            self._cv.notify_all()

    def _health_changed(self) -> None:
        with self._cv:
            self._health_wake = min(self._health_wake, self._next_health_expiry() or math.inf)
            self._cv.notify_all()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._thread else "new")
        return f"<HeadlessService {self.name} port={self._port!r} {state} {len(self.endpoints)} endpoints>"
