"""The resolver protocol a service needs, and how one service's resolutions are run.

A service asks its resolver for three things (:class:`ServiceResolver`):
``qualify(service, namespace)``, ``resolve(service, port, protocol=, namespace=)`` and
``resolve_host(hostname, port)``, plus a ``timeout`` attribute (a sync resolver's methods
block, an async one's are awaited). Any object with those works: the library's
:class:`~headless_client.Resolver` and :class:`~headless_client.AsyncResolver`, the fakes
of :mod:`headless_client.testing`, or your own.

A resolver may also offer its resolutions **sans-I/O** (:class:`LookupSource`):
``service_lookup(...)`` and ``host_lookup(...)`` return a lookup plan plus where to
send its questions, which any driver can carry: the blocking selectors driver, the
asyncio one, or the refresher's multiplexer that drives many services' lookups on one
thread. A service uses them whenever they are what ``resolve()`` would do (a subclass that
overrides ``resolve`` is called through ``resolve``, as in 0.1.0).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from dataclasses import replace
from typing import Any, Protocol, TypeVar, runtime_checkable

from .endpoints import Endpoint, EndpointSet
from .errors import InvalidArgument, ResolutionError
from .interrupt import Interrupt
from .lookup import Plan

T = TypeVar("T")

__all__ = [
    "AsyncServiceResolver",
    "ChangeNotifier",
    "LookupRunner",
    "LookupSource",
    "ServiceResolver",
    "check_resolver",
]


@runtime_checkable
class ServiceResolver(Protocol):
    """What a :class:`~headless_client.HeadlessService` needs from its resolver.

    A resolver may also set ``empty_is_final = True`` when an empty answer is the truth
    (no negative caches or rollout blips, as with the Kubernetes API): services using it
    then apply no ``empty_grace`` unless one is given.
    """

    timeout: float

    def qualify(self, service: str, namespace: str | None = None) -> str:
        """The absolute FQDN (no trailing dot) of *service*.

        Raises:
            InvalidName: a bad name.
        """
        ...

    def resolve(
        self, service: str, port: int | str, *, protocol: str = "tcp", namespace: str | None = None
    ) -> EndpointSet:
        """Every ready endpoint of *service*.

        Raises:
            ServiceNotFound: NXDOMAIN.
            ResolutionError: any other failure.
        """
        ...

    def resolve_host(self, hostname: str, port: int = 0) -> EndpointSet:
        """The endpoints of one pod name."""
        ...


@runtime_checkable
class AsyncServiceResolver(Protocol):
    """What an :class:`~headless_client.AsyncHeadlessService` needs from its resolver:
    :class:`ServiceResolver` with ``resolve`` and ``resolve_host`` awaited."""

    timeout: float

    def qualify(self, service: str, namespace: str | None = None) -> str: ...

    def resolve(
        self, service: str, port: int | str, *, protocol: str = "tcp", namespace: str | None = None
    ) -> Awaitable[EndpointSet]: ...

    def resolve_host(self, hostname: str, port: int = 0) -> Awaitable[EndpointSet]: ...


@runtime_checkable
class LookupSource(Protocol):
    """Optional: a resolver whose resolutions can be carried by any driver (sans-I/O)."""

    def service_lookup(
        self,
        service: str,
        port: int | str,
        *,
        protocol: str = "tcp",
        namespace: str | None = None,
        previous: EndpointSet | None = None,
    ) -> Any: ...

    def host_lookup(self, hostname: str, port: int = 0) -> Any: ...


@runtime_checkable
class ChangeNotifier(Protocol):
    """Optional: a resolver that knows at once when a service changed (an EndpointSlice
    watch). A started service asks to be told, and resolves right away when it is, instead
    of waiting for its next refresh."""

    def watch_service(
        self, service: str, namespace: str | None, callback: Callable[[], None]
    ) -> Callable[[], None]:
        """Call *callback* (no arguments, from any thread, must not block) after each change
        of *service*; returns a function that stops the calls."""
        ...


def check_resolver(resolver: object, *, awaited: bool) -> None:
    """Refuse what cannot serve as a service's resolver, with a message saying why.

    Raises:
        InvalidArgument: a class, a str (a nameserver address), or an object without
            the protocol's methods, or with the wrong flavour (sync vs awaited).
    """
    kind = "AsyncResolver" if awaited else "Resolver"
    if isinstance(resolver, str):
        raise InvalidArgument(
            f"resolver must be a {kind}, not a str: to use the nameserver {resolver!r}, pass "
            f"resolver={kind}(nameservers=[{resolver!r}])"
        )
    if isinstance(resolver, type):
        raise InvalidArgument(f"resolver must be an instance, not the class {resolver.__name__}")
    missing = [m for m in ("qualify", "resolve", "resolve_host") if not callable(getattr(resolver, m, None))]
    if missing or not isinstance(getattr(resolver, "timeout", None), (int, float)):
        raise InvalidArgument(
            f"resolver must be a {kind} (qualify, resolve, resolve_host and timeout), "
            f"not {type(resolver).__name__}: {resolver!r}"
        )
    if _runs_lookups(resolver):
        return
    is_async = inspect.iscoroutinefunction(resolver.resolve)  # type: ignore[attr-defined]
    if is_async != awaited:
        other = "AsyncHeadlessService" if is_async else "HeadlessService"
        raise InvalidArgument(
            f"{type(resolver).__name__}.resolve is {'a coroutine function' if is_async else 'blocking'}: "
            f"use it with {other}"
        )


def _runs_lookups(resolver: object) -> bool:
    """True when the resolver's ``resolve`` is just its lookups carried by a driver, so a
    service may carry them itself (and many at once)."""
    if not isinstance(resolver, LookupSource):
        return False
    stock = getattr(type(resolver), "_RESOLVE_RUNS_LOOKUPS", None)
    return stock is not None and getattr(type(resolver), "resolve", None) is stock


class LookupRunner:
    """How one service is resolved: its resolver and the arguments of its name.

    Args:
        resolver: The service's resolver.
        service: The service's name as given.
        port: Its port as given.
        protocol: Its SRV protocol.
        namespace: Its namespace as given.
    """

    __slots__ = ("lookups", "namespace", "port", "protocol", "questions", "resolver", "service")

    def __init__(
        self, resolver: Any, service: str, port: int | str, protocol: str, namespace: str | None
    ) -> None:
        self.resolver = resolver
        self.service = service
        self.port = port
        self.protocol = protocol
        self.namespace = namespace
        self.lookups = _runs_lookups(resolver)
        #: DNS questions this service's lookups sent (counted as their plans ask).
        self.questions = 0

    @property
    def timeout(self) -> float:
        """The resolver's timeout (seconds for one resolution)."""
        return float(self.resolver.timeout)

    def lookup(self, previous: EndpointSet | None) -> Any | None:
        """The sans-I/O lookup of the service, or None when only ``resolve()`` will do.
        Its questions are counted in :attr:`questions`."""
        if not self.lookups:
            return None
        lookup = self.resolver.service_lookup(
            self.service, self.port, protocol=self.protocol, namespace=self.namespace, previous=previous
        )
        return replace(lookup, plan=self._counted(lookup.plan))

    def _counted(self, plan: Plan[T]) -> Plan[T]:
        """*plan*, adding the size of every batch it asks to :attr:`questions`."""
        try:
            batch = next(plan)
            while True:
                self.questions += len(batch)
                answers = yield batch
                batch = plan.send(answers)
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            plan.close()

    def watch(self, callback: Callable[[], None]) -> Callable[[], None] | None:
        """Have a change-notifying resolver call *callback* on changes; None otherwise."""
        if not isinstance(self.resolver, ChangeNotifier):
            return None
        return self.resolver.watch_service(self.service, self.namespace, callback)

    def resolve_blocking(self, interrupt: Interrupt | None = None) -> EndpointSet:
        """Resolve the service now, blocking; *interrupt*, once set, ends it early (for the
        library's resolvers and their subclasses)."""
        lookup = self.lookup(None)
        if lookup is not None:
            from .transport import run_lookup

            found: EndpointSet = run_lookup(lookup, interrupt=interrupt)
            return found
        interruptible = getattr(self.resolver, "interruptible", None)
        scope: Any = nullcontext()
        if interrupt is not None and callable(interruptible):
            scope = interruptible(interrupt)
        with scope:
            result: EndpointSet = self.resolver.resolve(
                self.service, self.port, protocol=self.protocol, namespace=self.namespace
            )
        return result

    @property
    def interruptible(self) -> bool:
        """True when a blocking ``resolve()`` of this resolver can be cut short."""
        return not self.lookups and callable(getattr(self.resolver, "interruptible", None))

    async def resolve_async(self, previous: EndpointSet | None) -> EndpointSet:
        """Resolve the service now, awaited."""
        lookup = self.lookup(previous)
        if lookup is not None:
            found: EndpointSet = await _run_lookup_async(lookup)
            return found
        result: EndpointSet = await self.resolver.resolve(
            self.service, self.port, protocol=self.protocol, namespace=self.namespace
        )
        return result

    def reresolve_blocking(self, endpoint: Endpoint) -> EndpointSet | None:
        """*endpoint*'s pod name looked up again, blocking; None when the lookup failed
        (the connect plan then keeps the address it had)."""
        hostname, port = endpoint.hostname or "", endpoint.port
        try:
            if self.lookups:
                from .transport import run_lookup

                found: EndpointSet = run_lookup(self.resolver.host_lookup(hostname, port))
                return found
            result: EndpointSet = self.resolver.resolve_host(hostname, port)
        except ResolutionError:
            return None
        return result

    async def reresolve_async(self, endpoint: Endpoint) -> EndpointSet | None:
        """As :meth:`reresolve_blocking`, awaited."""
        hostname, port = endpoint.hostname or "", endpoint.port
        try:
            if self.lookups:
                found: EndpointSet = await _run_lookup_async(self.resolver.host_lookup(hostname, port))
                return found
            result: EndpointSet = await self.resolver.resolve_host(hostname, port)
        except ResolutionError:
            return None
        return result


async def _run_lookup_async(lookup: Any) -> Any:
    from .aio.transport import run_lookup

    return await run_lookup(lookup)
