"""What both services are without I/O: their constructor, reading, picking, health and
subscriptions, written once.

Everything here forwards to the service's own :class:`~headless_client.core.ServiceCore`;
the twins (:mod:`headless_client.service`, :mod:`headless_client.aio.service`) add only
what does I/O: starting, refreshing, waiting, connecting and closing.
"""

from __future__ import annotations

import contextlib
import ssl
import weakref
from collections.abc import Callable, Collection, Hashable, Iterator
from typing import Any, ClassVar, Protocol, TypedDict

from typing_extensions import Unpack

from ._settings import ServiceSettings, settings_from
from .clock import Clock, register_waker
from .connect import ConnectPlan, ConnectPolicy
from .core import ServiceCore, Subscriber
from .endpoints import Endpoint, EndpointSet
from .events import EventKind
from .health import HealthPolicy
from .lookup_runner import LookupRunner, check_resolver
from .refresh import RefreshPolicy
from .request import Request, Role, refuse_unknown, request_for
from .sockets import check_dial_options
from .stats import ServiceStats

__all__ = ["ConnectOptions", "PickFields", "ServiceFace"]


class PickFields(TypedDict, total=False):
    """The keyword arguments of ``pick()`` besides the key (the fields of a
    :class:`~headless_client.Request`, or a whole one)."""

    partition: Hashable | None
    ordinal: int | None
    hostname: str | None
    role: Role | None
    any_pod: bool
    request: Request | None


class ConnectOptions(PickFields, total=False):
    """The keyword arguments of ``connect()`` and ``connection()`` on both services.

    Routing (as :meth:`~headless_client.HeadlessService.pick`, :class:`PickFields`):
    ``partition``, ``ordinal``, ``hostname``, ``role``, ``any_pod``, or a whole ``request``.
    Dialling: ``timeout`` (one dial), ``attempts``, ``total_timeout`` (the whole call;
    defaults from the service's :class:`~headless_client.ConnectPolicy`), ``ssl_context``
    (TLS, verified against the pod's FQDN, else the service's), ``source_address``
    (``(host, port)`` to bind).
    """

    timeout: float | None
    attempts: int | None
    total_timeout: float | None
    ssl_context: ssl.SSLContext | None
    source_address: tuple[str, int] | None


_CONNECT_OPTIONS = ConnectOptions.__optional_keys__ | ConnectOptions.__required_keys__


def _raise_if_permanent(error: BaseException | None) -> None:
    """``start()`` raises an error another attempt cannot fix (a ClusterIP Service, a
    non-governing Service): retrying it in the background would only hide it."""
    if error is not None and getattr(error, "permanent", False):
        raise error


class _Waker(Protocol):
    def wake(self) -> None: ...


class ServiceFace:
    """The I/O-free part of :class:`~headless_client.HeadlessService` and
    :class:`~headless_client.AsyncHeadlessService` (see those for the arguments)."""

    #: The resolver built when none is given, and whether its calls are awaited.
    _default_resolver: ClassVar[Callable[[], Any]]
    _awaited: ClassVar[bool]
    #: What waits on the service's changes (a condition, an asyncio event), per twin.
    _waker_type: ClassVar[Callable[[], _Waker]]

    _finalizer: weakref.finalize[Any, Any] | None = None
    _unwatch: Callable[[], None] | None = None

    def __init__(
        self,
        service: str,
        port: int | str | None = None,
        *,
        resolver: Any = None,
        strategy: object | None = None,
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
            default_resolver=type(self)._default_resolver, awaited=self._awaited,
        )
        check_resolver(settings.resolver, awaited=self._awaited)
        self._settings: ServiceSettings = settings
        self._clock: Clock = settings.clock
        self._resolver = settings.resolver
        self._core = core = settings.core()
        self._runner = LookupRunner(
            settings.resolver, settings.service, settings.port, settings.protocol, settings.namespace
        )
        self._waker = waker = type(self)._waker_type()
        register_waker(self._clock, waker)
        core.listen(waker.wake)
        if type(self).pick is ServiceFace.pick:
            # svc.pick is the core's pick itself, in which the strategy does its work:
            # the whole call is one Python frame (a method calling it would add a second,
            # costing about as much as a pick). It reads the view current at each call,
            # so a reference kept to svc.pick stays live.
            self.__dict__["pick"] = core.fast_pick

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
    def core(self) -> ServiceCore:
        """The sans-I/O core this service drives (integrations and tools read it)."""
        return self._core

    def pick(self, key: object | None = None, **fields: Unpack[PickFields]) -> Endpoint:
        """One endpoint for a call, chosen by the strategy from the current view.

        Args:
            key: strategy input (a sticky key, a write key...).
            **fields: what else the call needs (:class:`PickFields`): ``partition`` (the
                partition whose leader is wanted, ejected or not), ``ordinal`` or
                ``hostname`` (a specific pod, ejected or not), ``role`` (``"read"`` or
                ``"write"``: :class:`~headless_client.PrimaryReplica`), ``any_pod`` (any
                pod will do: metadata calls to a partitioned service), or a whole
                ``request`` (:class:`~headless_client.Request`).

        Raises:
            ServiceNotStarted: the service was never started (nor refreshed).
            NoEndpointsAvailable: the view is empty (or the strategy found none).
            LeaderNotAvailable: ``partition`` has no leader in the view.
            EndpointNotFound: the pinned pod is not in the view.
            TypeError: the key or partition does not suit the strategy, or an unknown field.
        """
        # (Reached only through the class, ``HeadlessService.pick(svc)``, or a subclass's
        # super().pick(): an instance's ``pick`` is the core's one-frame pick, see
        # __init__.)
        return self._core.fast_pick(key, **fields)

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

    def subscribe(
        self, callback: Subscriber, *, events: bool | Collection[EventKind] = False
    ) -> Callable[[], None]:
        """Subscribe to the service; returns an unsubscribe function.

        Without *events*: ``callback(old, new)`` on every change of the view (0.1.0's
        form). With ``events=True``, or a collection of kinds (``{"ejected",
        "refresh_failed"}``): ``callback(event)`` for each
        :class:`~headless_client.ServiceEvent` of those kinds (membership, health,
        refreshes, routing).

        Callbacks run in order of publication, one at a time (sync: on the library's events
        thread; asyncio: on the service's refresher task, and coroutine functions are
        awaited); one may refresh or close the service. An exception in one is logged and
        affects neither the refresher nor the other callbacks.

        Raises:
            InvalidArgument: *callback* is not callable.
            InvalidName: an unknown event kind.
        """
        return self._core.subscribe(callback, events=events)

    def stats(self) -> ServiceStats:
        """A snapshot of what the service has seen: per pod (picks made through the
        library's calls, calls in flight, failures, ejections, latency estimate) and for
        the service (refreshes, failures, staleness of the view, DNS questions sent)."""
        return self._core.stats(self._clock(), self._runner.questions)

    # -- shared by connect() and connection() ------------------------------------------------

    def _connect_plan(
        self,
        request: Request,
        policy: ConnectPolicy,
        ssl_context: ssl.SSLContext | None,
        source_address: tuple[str, int] | None,
    ) -> ConnectPlan:
        """The sans-I/O plan a driver's connect loop follows, after checking the dial options."""
        check_dial_options(ssl_context, source_address)
        return self._core.connect_plan(request, policy, self._clock(), self._runner.timeout)

    @contextlib.contextmanager
    def _reporting(self, endpoint: Endpoint) -> Iterator[None]:
        """The outcome of a ``connection()`` block on *endpoint*, for both drivers: its
        latency as a success on a clean exit, a failure on ``OSError``; any other exception
        only ends the in-flight count (a ``NotLeader`` says nothing about the pod's health)."""
        core, clock = self._core, self._clock
        start = clock()
        try:
            yield
        except OSError:
            core.report_failure(endpoint, clock())
            raise
        except BaseException:
            core.finished(endpoint)
            raise
        core.report_success(endpoint, clock() - start, clock())

    @contextlib.contextmanager
    def _dialling(self, plan: ConnectPlan, endpoint: Endpoint) -> Iterator[None]:
        """One dial of a connect plan, for both drivers: the pod counts in flight while
        dialled (report_failure's decrement balances it); an ``OSError`` is the pod's
        failure and the plan's, and is swallowed (the driver asks the plan what next);
        anything else ends the count and propagates."""
        core = self._core
        core.started(endpoint)
        try:
            yield
        except OSError as exc:
            # Through the public method, so a subclass hooking it sees dial failures.
            self.report_failure(endpoint)
            plan.failed(endpoint, exc, self._clock())
        except BaseException:
            core.finished(endpoint)
            raise

    def _connect_args(
        self, key: object | None, options: ConnectOptions
    ) -> tuple[Request, ConnectPolicy, ssl.SSLContext | None, tuple[str, int] | None]:
        refuse_unknown("connect", options, _CONNECT_OPTIONS)
        settings = self._settings
        request = request_for(key, options)
        policy = settings.connect_policy(
            options.get("timeout"), options.get("attempts"), options.get("total_timeout")
        )
        return request, policy, options.get("ssl_context"), options.get("source_address")

    def _watch_source(self) -> None:
        """Started: have a change-notifying resolver (an EndpointSlice watch) trigger a
        refresh at once. The resolver holds the core only weakly: it may outlive us."""
        core_ref = weakref.ref(self._core)

        def changed() -> None:
            core = core_ref()
            if core is not None:
                core.refresh_soon()

        self._unwatch = self._runner.watch(changed)

    def _unwatch_source(self) -> None:
        unwatch, self._unwatch = self._unwatch, None
        if unwatch is not None:
            unwatch()

    def _stalled(self) -> str:
        refreshing = bool(getattr(self, "refreshing", True))
        return " (refresher stopped)" if self._core.phase == "running" and not refreshing else ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._core.describe()}{self._stalled()}>"
