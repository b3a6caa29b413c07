"""What both client registries are without I/O, written once: their arguments, reading,
settling a lease, what an exception says about a pod, and their log lines.

The decisions about which clients exist live in :mod:`headless_client.registry_core`, the
retry rule of ``call()`` in :class:`~headless_client.attempts.Attempts`; their calls are
written once in :mod:`headless_client._registry_calls` (generated from its asyncio source).
The twins (:class:`~headless_client.registry.ClientRegistry`,
:class:`~headless_client.aio.registry.AsyncClientRegistry`) add only what does I/O or
waits: calling the factory and the closer, the build lock and the grace timers.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Any, ClassVar, Generic, TypedDict, TypeVar

from ._spans import annotate
from .attempts import Attempts
from .endpoints import Endpoint
from .errors import InvalidArgument, InvalidName
from .registry_core import Entry, FailurePredicate, Lease, RegistryCore, failure_predicate
from .request import Request, Role

__all__ = [
    "DEFAULT_GRACE",
    "AsyncCallFunction",
    "CallFunction",
    "RegistryFace",
    "RequestFields",
    "check_service",
    "checked_retries",
    "request_from",
    "request_of",
]

log = logging.getLogger("headless_client.registry")

C = TypeVar("C")
T = TypeVar("T")

CallFunction = Callable[[C], T]
"""What ``ClientRegistry.call()`` runs on a pod's client: ``fn(client) -> result``."""
AsyncCallFunction = Callable[[C], Awaitable[T]]
"""What ``AsyncClientRegistry.call()`` runs on a pod's client: ``await fn(client)``."""

#: How long a departed pod's client may finish its calls before it is closed (seconds).
DEFAULT_GRACE = 30.0


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


class RequestFields(TypedDict, total=False):
    """The keyword arguments of a registry's ``acquire``, ``client`` and ``call`` that
    describe the request instead of a whole one: the fields of a
    :class:`~headless_client.Request` (``key``, ``partition``, ``ordinal``, ``hostname``,
    ``role``, ``any_pod``)."""

    key: object | None
    partition: Hashable | None
    ordinal: int | None
    hostname: str | None
    role: Role | None
    any_pod: bool


_REQUEST_FIELDS = frozenset(RequestFields.__annotations__)


def request_of(call: str, request: Request | None, fields: RequestFields) -> Request:
    """:func:`request_from` for a call that takes the fields as ``**fields``.

    Raises:
        InvalidArgument: a keyword that is no field of a request (naming it), or as
            :func:`request_from`.
    """
    unknown = sorted(set(fields) - _REQUEST_FIELDS)
    if unknown:
        known = sorted(_REQUEST_FIELDS)
        raise InvalidArgument(f"{call}() got unexpected keyword arguments {unknown}; known: {known}")
    return request_from(
        request, fields.get("key"), fields.get("partition"), fields.get("ordinal"),
        fields.get("hostname"), fields.get("role"), fields.get("any_pod", False),
    )  # fmt: skip


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


def checked_retries(retries: object) -> int:
    """*retries* (a ``call()`` argument), checked.

    Raises:
        InvalidName: not an int >= 0.
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidName(f"retries must be an int >= 0: {retries!r}")
    return retries


class RegistryFace(Generic[C]):
    """The I/O-free part of both registries (see :class:`~headless_client.ClientRegistry`
    for the arguments)."""

    #: Whether the registry serves an AsyncHeadlessService (its calls are awaited).
    _awaited: ClassVar[bool]

    def __init__(
        self,
        service: Any,
        factory: Callable[[Endpoint], Any],
        close: Callable[[C], object] | None,
        failures: object,
        grace: float,
        eager: bool,
        default_close: Callable[[C], object],
    ) -> None:
        check_service(service, awaited=self._awaited)
        if not callable(factory):
            raise InvalidArgument(f"factory must be callable: {factory!r}")
        if close is not None and not callable(close):
            raise InvalidArgument(f"close must be callable: {close!r}")
        self.service = service
        self._factory = factory
        self._close = close if close is not None else default_close
        self.is_failure: FailurePredicate = failure_predicate(failures)
        self._core: RegistryCore[C] = RegistryCore(service.name, grace)
        self._eager = bool(eager)

    # -- reading ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The service's FQDN."""
        return str(self.service.name)

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

    def _leased(self, entry: Entry[C]) -> Lease[C]:
        """A lease on *entry* (taken in use): the call counts in flight from now."""
        self.service.core.started(entry.endpoint)
        annotate(self.service, entry.endpoint)
        return Lease(entry, time.monotonic(), self._settle)

    def _attempts(self, request: Request, retries: int) -> Attempts:
        """The attempts ``call(..., retries=retries)`` may make for *request*."""
        return Attempts.for_call(self.service.core, request, retries)

    def _report(self, lease: Lease[C], error: BaseException) -> bool:
        """Report what *error*, raised by a call on *lease*, says about its pod: a failure
        when ``failures`` recognises it, else nothing. True for a failure."""
        failed = isinstance(error, Exception) and self.is_failure(error)
        if failed:
            lease.failure()
        else:
            lease.neutral()
        return failed

    @contextlib.contextmanager
    def _reported(self, lease: Lease[C]) -> Iterator[Lease[C]]:
        """Around one call on *lease*: a clean exit reports a success with its latency, an
        exception what :meth:`_report` makes of it."""
        try:
            yield lease
        except BaseException as exc:
            self._report(lease, exc)
            raise
        lease.success()

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
                self._dispose(lease.entry)

    def _dispose(self, entry: Entry[C]) -> None:
        """Close a claimed entry's client, from any thread (each twin its own way)."""
        raise NotImplementedError

    # -- membership ---------------------------------------------------------------------------

    def _wants_eager_build(self, endpoint: Endpoint) -> bool:
        """True when an eager build of *endpoint*'s client is still wanted (under the
        build lock): not closed, still in the view, and no client yet."""
        core = self._core
        return not core.closed and core.in_view(endpoint) and endpoint not in core.clients()

    def _unkept(self, entry: Entry[C], fresh: bool, client: C) -> tuple[C | None, Entry[C] | None]:
        """After an eager build stored *client* (``core.add`` gave *entry*, *fresh*): the
        client to close because another was stored meanwhile, or the entry to close because
        its pod left meanwhile or the registry closed (claimed for the caller)."""
        if fresh:
            return None, None
        if entry.client is not client:
            return client, None
        return None, entry if self._core.release_unused(entry) else None

    # -- logging ------------------------------------------------------------------------------

    def _log_build_failed(self, endpoint: Endpoint, error: Exception) -> None:
        log.error("%s: building the client of %s failed (retried at its first call)",
                  self.name, endpoint, exc_info=error,
                  extra={"service": self.name, "pod": endpoint.hostname,
                         "address": endpoint.address, "reason": "client_build_failed"})

    def _log_close_failed(self, endpoint: Endpoint, error: Exception) -> None:
        log.error("%s: closing the client of %s failed", self.name, endpoint, exc_info=error,
                  extra={"service": self.name, "pod": endpoint.hostname,
                         "address": endpoint.address, "reason": "client_close_failed"})

    def _expired(self, entry: Entry[C]) -> bool:
        """*entry*'s grace period ended: True (logged) when the caller must close it now."""
        if not self._core.expire(entry):
            return False
        log.info("%s: closing the client of %s after its %gs grace, with %d call(s) in flight",
                 self.name, entry.endpoint, self.grace, entry.users,
                 extra={"service": self.name, "pod": entry.endpoint.hostname,
                        "address": entry.endpoint.address, "reason": "client_grace_expired"})
        return True

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.clients())} clients, {self.draining} draining"
        return f"<{type(self).__name__} {self.name} {state}>"
