"""The decisions of a per-pod client registry, shared by the sync and asyncio twins.

A registry keeps one client object per pod (a gRPC channel, a Redis client, a connection
pool...), built by a user factory. This module decides which clients exist, which call may
use which, and when each must be closed; it builds, closes and waits for nothing itself.
The drivers (:mod:`headless_client.registry`, :mod:`headless_client.aio.registry`) call
the factory, close clients and run the grace timers.

Rules:

* Clients are keyed by :class:`~headless_client.Endpoint` (address, port, hostname,
  ordinal): a pod that moves to a new address is a new client, and the old one retires.
* A client *retires* when its pod leaves the view (or moves). A retired client is never
  handed out again; it is closed as soon as no call uses it, or when its grace period
  ends, whichever comes first.
* Every client is closed exactly once: whoever *claims* it (:meth:`RegistryCore.release`,
  :meth:`RegistryCore.expire`, :meth:`RegistryCore.close`, :meth:`RegistryCore.membership`)
  closes it.

Thread-safe: one lock serialises every change; it is never held while a factory, a
close or a callback runs. Pure otherwise: time is passed in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import _forksafe
from .endpoints import Endpoint, EndpointSet
from .errors import InvalidArgument, InvalidName, ServiceClosed

__all__ = ["Entry", "FailurePredicate", "Lease", "MembershipChange", "RegistryCore", "failure_predicate"]

C = TypeVar("C")

FailurePredicate = Callable[[BaseException], bool]
"""``is_failure(exc) -> bool``: does this exception mean the pod failed?"""


def failure_predicate(failures: object) -> FailurePredicate:
    """A predicate from what a user passed as ``failures=``: a predicate, an exception
    class, or a tuple of exception classes.

    Raises:
        InvalidArgument: anything else.
    """
    if isinstance(failures, type) and issubclass(failures, BaseException):
        failures = (failures,)
    if isinstance(failures, tuple):
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in failures):
            raise InvalidArgument(f"failures must be exception classes: {failures!r}")
        classes: tuple[type[BaseException], ...] = failures

        def is_instance(exc: BaseException) -> bool:
            return isinstance(exc, classes)

        return is_instance
    if callable(failures):
        predicate: FailurePredicate = failures
        return predicate
    raise InvalidArgument(
        f"failures must be an exception class, a tuple of them, or a predicate: {failures!r}"
    )


def check_grace(grace: object) -> float:
    """*grace* as a float, checked (finite, >= 0).

    Raises:
        InvalidName: a negative, infinite or non-numeric value.
    """
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 <= grace < float("inf"):
        raise InvalidName(f"grace must be a finite number of seconds >= 0: {grace!r}")
    return float(grace)


class Entry(Generic[C]):
    """One pod's client and its bookkeeping (mutated only under the core's lock)."""

    __slots__ = ("client", "closed", "deadline", "endpoint", "retired", "timer", "users")

    def __init__(self, endpoint: Endpoint, client: C) -> None:
        self.endpoint = endpoint
        self.client = client
        self.users = 0
        self.retired = False
        self.closed = False
        self.deadline: float | None = None
        #: The driver's grace timer (a ``threading.Timer``, an asyncio handle), to cancel.
        self.timer: Any = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "retired" if self.retired else "live"
        return f"<Entry {self.endpoint} {state} users={self.users}>"


@dataclass(frozen=True, slots=True)
class MembershipChange(Generic[C]):
    """What a change of the view asks the driver to do.

    Attributes:
        build: endpoints that have no client yet (build them now if eager).
        close: retired entries nobody uses: close them now (claimed for the caller).
        drain: retired entries still in use: close them when released, or at
            ``entry.deadline`` (start a timer calling :meth:`RegistryCore.expire`).
    """

    build: tuple[Endpoint, ...]
    close: tuple[Entry[C], ...]
    drain: tuple[Entry[C], ...]


class Lease(Generic[C]):
    """One call's use of one pod's client: ``endpoint, client = lease``.

    Give the outcome exactly once, with :meth:`success`, :meth:`failure` or
    :meth:`neutral` (later calls are ignored): it feeds the service's health and load
    tracking, and lets the registry close a retired client. The registries' context
    managers (``with registry.client(...) as lease``) do it for you.

    Attributes:
        endpoint: the pod the call goes to.
        client: that pod's client.
        started: when the lease was taken (``time.monotonic()``).
    """

    __slots__ = ("_settle", "client", "done", "endpoint", "entry", "started")

    def __init__(
        self,
        entry: Entry[C],
        started: float,
        settle: Callable[[Lease[C], str, float | None], None],
    ) -> None:
        self.entry = entry
        self.endpoint = entry.endpoint
        self.client = entry.client
        self.started = started
        self.done = False
        self._settle = settle

    def __iter__(self) -> Iterator[Any]:
        yield self.endpoint
        yield self.client

    def success(self, latency: float | None = None) -> None:
        """The call worked: report a success (with *latency*, default: since the lease)."""
        self._settle(self, "success", latency)

    def failure(self) -> None:
        """The pod failed the call: report a failure (the pod is ejected for a while)."""
        self._settle(self, "failure", None)

    def neutral(self) -> None:
        """The call ended without a verdict on the pod (cancelled, an application error)."""
        self._settle(self, "neutral", None)

    def __repr__(self) -> str:
        return f"<Lease {self.endpoint}{' done' if self.done else ''}>"


class RegistryCore(Generic[C]):
    """Which per-pod clients exist and who may use them (see the module docs).

    Fork: a forked child gets a fresh lock; the clients themselves are the parent's
    objects (most clients, grpcio's included, must not be used across a fork: build the
    registry in the child, or after the fork).

    Args:
        name: what to call the registry in messages (the service's name).
        grace: how long a retired client in use may stay open (seconds).
    """

    def __init__(self, name: str, grace: float) -> None:
        self.name = name
        self.grace = check_grace(grace)
        self._lock = threading.Lock()
        self._live: dict[Endpoint, Entry[C]] = {}
        self._retired: set[Entry[C]] = set()
        self._view: frozenset[Endpoint] | None = None
        self.closed = False
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        # A thread of the parent may have held the lock at the fork: it does not exist here.
        self._lock = threading.Lock()

    # -- reading --------------------------------------------------------------------------

    def clients(self) -> dict[Endpoint, C]:
        """The live clients (retired ones excluded), by endpoint."""
        with self._lock:
            return {ep: e.client for ep, e in self._live.items()}

    def retired_count(self) -> int:
        """How many retired clients are still open (draining)."""
        with self._lock:
            return sum(1 for e in self._retired if not e.closed)

    def closed_error(self) -> ServiceClosed:
        return ServiceClosed(f"{self.name}: the client registry is closed")

    # -- calls ----------------------------------------------------------------------------

    def take(self, endpoint: Endpoint) -> Entry[C] | None:
        """The live entry of *endpoint*, counted in use; None when it has no client yet.

        Raises:
            ServiceClosed: the registry is closed.
        """
        with self._lock:
            if self.closed:
                raise self.closed_error()
            entry = self._live.get(endpoint)
            if entry is not None:
                entry.users += 1
            return entry

    def add(self, endpoint: Endpoint, client: C, *, use: bool) -> tuple[Entry[C], bool]:
        """Store a client the driver just built for *endpoint*; counted in use when *use*.

        Returns ``(entry, fresh)``. *fresh* False means *client* was not kept: another
        client for *endpoint* was stored meanwhile (returned, counted in use if *use*),
        or the registry is closed or the endpoint already left the view (the entry
        returned then holds *client*, retired, and is closed when released). The caller
        closes a client that was not kept and is not in the returned entry.
        """
        with self._lock:
            existing = self._live.get(endpoint)
            if existing is not None:
                if use:
                    existing.users += 1
                return existing, False
            entry = Entry(endpoint, client)
            if use:
                entry.users += 1
            view = self._view
            if self.closed or (view is not None and endpoint not in view):
                # Built for a pod that left meanwhile (a pick from the old view): usable
                # once, by this call, then closed.
                entry.retired = True
                self._retired.add(entry)
                return entry, False
            self._live[endpoint] = entry
            return entry, True

    def release(self, entry: Entry[C]) -> bool:
        """A call stopped using *entry*; True when the caller must now close it."""
        with self._lock:
            entry.users -= 1
            return self._claim_if_idle(entry)

    def _claim_if_idle(self, entry: Entry[C]) -> bool:
        # Under the lock.
        if entry.users > 0 or entry.closed or not (entry.retired or self.closed):
            return False
        entry.closed = True
        self._retired.discard(entry)
        return True

    # -- membership -----------------------------------------------------------------------

    def membership(self, current: Callable[[], EndpointSet], now: float) -> MembershipChange[C]:
        """The view changed: retire the clients of pods that left it.

        *current* returns the service's current snapshot; it is read under the lock, so
        when two changes are processed concurrently the last one processed sees the
        newest view. After close, asks for nothing.
        """
        with self._lock:
            snapshot = current()
            view = frozenset(snapshot)
            self._view = view
            if self.closed:
                return MembershipChange((), (), ())
            close: list[Entry[C]] = []
            drain: list[Entry[C]] = []
            for endpoint in [ep for ep in self._live if ep not in view]:
                entry = self._live.pop(endpoint)
                entry.retired = True
                self._retired.add(entry)
                if self._claim_if_idle(entry):
                    close.append(entry)
                else:
                    entry.deadline = now + self.grace
                    drain.append(entry)
            build = tuple(ep for ep in snapshot if ep not in self._live)
        return MembershipChange(build, tuple(close), tuple(drain))

    def release_unused(self, entry: Entry[C]) -> bool:
        """*entry* was stored by :meth:`add` without a user; True when the caller must
        close it now (it was retired at once)."""
        with self._lock:
            return self._claim_if_idle(entry)

    def in_view(self, endpoint: Endpoint) -> bool:
        """True unless a published view lacks *endpoint*."""
        view = self._view
        return view is None or endpoint in view

    def expire(self, entry: Entry[C]) -> bool:
        """*entry*'s grace period ended: True when the caller must close it now (calls
        still using it will fail; that is what the grace period bounds)."""
        with self._lock:
            if entry.closed:
                return False
            entry.closed = True
            self._retired.discard(entry)
            return True

    def close(self) -> list[Entry[C]]:
        """Close the registry: every open entry, live or retired, claimed for the caller."""
        with self._lock:
            if self.closed:
                return []
            self.closed = True
            entries = [*self._live.values(), *self._retired]
            self._live.clear()
            self._retired.clear()
            for entry in entries:
                entry.retired = True
            claimed = [e for e in entries if not e.closed]
            for entry in claimed:
                entry.closed = True
            return claimed
