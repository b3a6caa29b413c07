"""PostgreSQL behind a headless Service, asyncio: psycopg's ``AsyncConnectionPool`` and
asyncpg, routed by role, and a primary tracker on the event loop.

The asyncio twin of :mod:`headless_client.contrib.postgres` (read it first: the conninfo
helpers and the rules are the same). The service is an
:class:`~headless_client.AsyncHeadlessService` whose strategy is a
:class:`~headless_client.PrimaryReplica`::

    from headless_client import AsyncHeadlessService, PrimaryReplica
    from headless_client.contrib.postgres_async import AsyncPrimaryTracker, asyncpg_pool, asyncpg_probe

    creds = {"user": "app", "password": "...", "database": "app"}
    async with AsyncHeadlessService("pg.prod", port="tcp-postgresql", strategy=PrimaryReplica()) as pg, \\
               AsyncPrimaryTracker(pg, probe=asyncpg_probe(**creds)) as tracker, \\
               asyncpg_pool(pg, "write", tracker=tracker, **creds) as writer:
        await writer.execute("INSERT INTO orders (id) VALUES (42)")

**asyncpg and TLS.** asyncpg has no ``hostaddr``: it dials ``host`` and verifies the
certificate against the same ``host``. The pools here dial the pod's *address* (from the
view) and, with ``ssl=pod_tls(cafile=...)``, verify the certificate against the pod's
*name*: :func:`pod_tls` builds one ``ssl.SSLContext`` per pod whose server name is fixed to
the pod's FQDN (asyncio asks the context to wrap the connection, and the context puts
the pod's name in, whatever host it was given).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from typing_extensions import Self

from ..endpoints import Endpoint, EndpointSet
from ..errors import InvalidArgument
from ..request import WRITE, Role
from .postgres import (
    _PROBE_DEFAULTS,
    RoleCheck,
    RoleConninfo,
    _base,
    _driver,
    _need_psycopg,
    _not_primary,
    _pool_route,
    _psycopg_pool,
    _reported,
    _routed_name,
    _strategy_with_primary,
    _Tracker,
    _words,
    conninfo,
)

if TYPE_CHECKING:
    import psycopg_pool

__all__ = [
    "AsyncPrimaryTracker",
    "AsyncProbe",
    "async_connection_pool",
    "asyncpg_connect",
    "asyncpg_pool",
    "asyncpg_probe",
    "pod_tls",
    "psycopg_async_probe",
]

log = logging.getLogger("headless_client.postgres")

AsyncProbe = Callable[[Endpoint], Awaitable[bool]]
"""``await probe(endpoint) -> in_recovery`` (True: a standby; raises when the pod cannot tell)."""

SSLFactory = Callable[[Endpoint], ssl.SSLContext]


def _need_asyncpg() -> Any:
    return _driver("asyncpg", "this part of headless_client.contrib.postgres_async", "asyncpg")


# --------------------------------------------------------------------------------------------
# TLS by pod name while dialling the address
# --------------------------------------------------------------------------------------------


class _PodNameContext(ssl.SSLContext):
    """A client context that always verifies (and sends as SNI) one pod's name.

    asyncio wraps a connection with ``context.wrap_bio(..., server_hostname=host)`` (and
    sockets with ``wrap_socket``); here *host* is the address dialled, so the pod's name
    replaces it.
    """

    pod_name: str

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, self.pod_name, session)

    def wrap_socket(
        self,
        sock: Any,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        return super().wrap_socket(
            sock, server_side, do_handshake_on_connect, suppress_ragged_eofs, self.pod_name, session
        )


def pod_tls(
    cafile: str | None = None,
    *,
    capath: str | None = None,
    cadata: str | bytes | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    password: str | None = None,
) -> SSLFactory:
    """Per-pod TLS contexts for asyncpg: verify each pod's certificate against its FQDN.

    Returns ``factory(endpoint) -> ssl.SSLContext`` (one context per pod name, cached),
    for the ``ssl=`` of :func:`asyncpg_connect`, :func:`asyncpg_pool` and
    :func:`asyncpg_probe`. The certificate must be signed by the given CA (default: the
    system's) and name the pod (``pg-0.pg.prod.svc.cluster.local``), as libpq's
    ``sslmode=verify-full`` with ``host=<pod name> hostaddr=<address>``. *certfile* and
    *keyfile* are a client certificate, for servers that ask for one.

    Raises:
        FileNotFoundError / ssl.SSLError: a CA or certificate file that does not load.
        InvalidArgument (when called): an endpoint without a hostname (A/AAAA discovery
            gives none: use a named port, SRV).
    """
    contexts: dict[str, ssl.SSLContext] = {}
    lock = threading.Lock()

    def build(name: str) -> ssl.SSLContext:
        context = _PodNameContext(ssl.PROTOCOL_TLS_CLIENT)
        context.pod_name = name
        if cafile is None and capath is None and cadata is None:
            context.load_default_certs()
        else:
            context.load_verify_locations(cafile, capath, cadata)
        if certfile is not None:
            context.load_cert_chain(certfile, keyfile, password)
        return context

    build("probe.invalid")  # load the files now: a wrong path fails here, not per connection

    def factory(endpoint: Endpoint) -> ssl.SSLContext:
        name = endpoint.hostname
        if name is None:
            raise InvalidArgument(
                f"{endpoint} has no hostname to verify: discover the pods by a named port (SRV)"
            )
        with lock:
            context = contexts.get(name)
            if context is None:
                context = contexts[name] = build(name)
        return context

    return factory


def _ssl_for(ssl_option: object, endpoint: Endpoint) -> Any:
    """asyncpg's ``ssl`` for *endpoint*: a per-pod factory is called, the rest passed on."""
    if callable(ssl_option) and not isinstance(ssl_option, ssl.SSLContext):
        return ssl_option(endpoint)
    return ssl_option


# --------------------------------------------------------------------------------------------
# Probes and the tracker
# --------------------------------------------------------------------------------------------


def psycopg_async_probe(base: str = "", **params: object) -> AsyncProbe:
    """An async probe asking ``SELECT pg_is_in_recovery()`` over psycopg's
    ``AsyncConnection`` (settings as :func:`~headless_client.contrib.postgres.psycopg_probe`)."""
    driver = _need_psycopg()
    base = f"{_PROBE_DEFAULTS} {_base(base)}".strip()
    _words(params)

    async def probe(endpoint: Endpoint) -> bool:
        conn = await driver.AsyncConnection.connect(conninfo(endpoint, base, **params), autocommit=True)
        async with conn:
            row = await (await conn.execute("SELECT pg_is_in_recovery()")).fetchone()
        return bool(row[0]) if row is not None else True

    return probe


def asyncpg_probe(*, ssl: object = None, timeout: float = 2.0, **connect_kwargs: Any) -> AsyncProbe:
    """An async probe asking ``SELECT pg_is_in_recovery()`` over asyncpg.

    Args:
        ssl: asyncpg's ``ssl`` (``False``, an ``SSLContext``...) or a per-pod factory
            such as :func:`pod_tls`.
        timeout: asyncpg's connect timeout.
        **connect_kwargs: ``user``, ``password``, ``database``... (``host`` and ``port``
            come from the pod).
    """
    asyncpg = _need_asyncpg()
    _check_no_routing(connect_kwargs)
    connect_kwargs.setdefault("server_settings", {"application_name": "headless-client-tracker"})

    async def probe(endpoint: Endpoint) -> bool:
        conn = await asyncpg.connect(
            host=endpoint.address, port=endpoint.port, ssl=_ssl_for(ssl, endpoint), timeout=timeout,
            **connect_kwargs,
        )
        try:
            return bool(await conn.fetchval("SELECT pg_is_in_recovery()"))
        finally:
            await conn.close()

    return probe


def _check_no_routing(kwargs: dict[str, Any]) -> None:
    given = sorted({"host", "port", "dsn"} & set(kwargs))
    if given:
        raise InvalidArgument(f"{given} come from the picked pod; pass credentials and settings only")


class AsyncPrimaryTracker(_Tracker[AsyncProbe]):
    """The asyncio twin of :class:`~headless_client.contrib.postgres.PrimaryTracker`: the
    checks run on the event loop (the pods asked concurrently), periodically on a task.

    Args:
        service: a started :class:`~headless_client.AsyncHeadlessService` whose strategy
            is a :class:`~headless_client.PrimaryReplica`.
        base: conninfo settings for the default probe (psycopg's ``AsyncConnection``).
        probe: ``await probe(endpoint) -> in_recovery``, e.g. :func:`asyncpg_probe`.
        interval: seconds between periodic checks.
        min_interval: least seconds between two checks.
        timeout: the most a check waits for the pods' answers.
        **params: more conninfo keywords for the default probe.
    """

    _default_probe = staticmethod(psycopg_async_probe)

    def _prepare(self) -> None:
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._closed

    async def start(self) -> None:
        """Check now, then keep checking on a task (idempotent)."""
        if self._task is not None or self._closed:
            return
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        await self.check()
        self._unsubscribe = self.service.subscribe(self._view_changed)
        self._task = asyncio.create_task(self._run(), name=f"headless-client-pg-tracker[{self.service.name}]")

    async def check(self) -> RoleCheck:
        """Ask every pod now and name the primary; returns what was found."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            began = time.monotonic()
            pods = self._pods_to_ask(began)
            answers = await asyncio.gather(*(self._ask(ep) for ep in pods))
            return self._found(dict(zip(pods, answers, strict=True)), began, time.monotonic())

    async def _ask(self, endpoint: Endpoint) -> bool | BaseException:
        try:
            return bool(await asyncio.wait_for(self.probe(endpoint), self.timeout))
        except asyncio.TimeoutError:
            return TimeoutError(f"no answer within {self.timeout:g}s")
        except Exception as exc:
            return exc

    def check_soon(self) -> None:
        """Ask for a check on the task (within *min_interval*); returns at once. Call it on
        the service's loop."""
        if self._wake is not None:
            self._wake.set()

    def _view_changed(self, old: EndpointSet, new: EndpointSet) -> None:
        self.check_soon()

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        while not self._closed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), self.interval)
            if self._closed:
                return
            wait = self._pause(time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)
            wake.clear()
            try:
                await self.check()
            except Exception as exc:
                self._check_failed(exc)

    async def aclose(self) -> None:
        """Stop checking; harmless to call twice."""
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# --------------------------------------------------------------------------------------------
# Reporting around connections
# --------------------------------------------------------------------------------------------


class _AsyncReporter:
    __slots__ = ("role", "service", "tracker")

    def __init__(self, service: Any, role: Role, tracker: Any) -> None:
        self.service = service
        self.role = role
        self.tracker = tracker

    def failed(self, endpoint: Endpoint | None) -> None:
        if endpoint is not None:
            with contextlib.suppress(Exception):  # the pod may have left the view meanwhile
                self.service.report_failure(endpoint)
        if self.role == WRITE and self.tracker is not None:
            self.tracker.check_soon()

    def connected(self, endpoint: Endpoint | None) -> None:
        if endpoint is not None:
            with contextlib.suppress(Exception):
                self.service.report_success(endpoint)

    def wrong_role(self) -> None:
        if self.tracker is not None:
            self.tracker.check_soon()


def _on_primary_change(strategy: Any, target: Any, action: Callable[[Any], Awaitable[object]]) -> None:
    """Run ``await action(target)`` on the loop of the caller whenever the named primary
    changes, while *target* (a pool) is alive and open."""
    loop = asyncio.get_running_loop()
    ref: Callable[[], Any]
    try:
        ref = weakref.ref(target)
    except TypeError:  # asyncpg's Pool has no weak references: held until it is closed
        ref = lambda: target  # noqa: E731
    tasks: set[asyncio.Task[object]] = set()
    unwatch: Callable[[], None] | None = None

    def run() -> None:
        pool = ref()
        if pool is None or _is_closed(pool):
            if unwatch is not None:
                unwatch()
            return
        task: asyncio.Task[object] = asyncio.ensure_future(_quietly(action(pool), pool))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def changed() -> None:
        # set_primary may run on any thread (a sync tracker, your code): hop to the loop.
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing left to expire
            loop.call_soon_threadsafe(run)

    unwatch = strategy.watch(changed)


def _is_closed(pool: Any) -> bool:
    closed = getattr(pool, "closed", None)
    if isinstance(closed, bool):
        return closed
    is_closing = getattr(pool, "is_closing", None)
    return bool(is_closing()) if callable(is_closing) else False


async def _quietly(action: Awaitable[object], pool: Any) -> object:
    try:
        return await action
    except Exception:
        log.exception("refreshing %r after a change of primary failed", pool,
                      extra={"service": None, "pod": None, "address": None, "reason": "pool_drain_failed"})
        return None


# --------------------------------------------------------------------------------------------
# psycopg async pool
# --------------------------------------------------------------------------------------------


async def _in_recovery(conn: Any) -> bool:
    was = conn.autocommit
    await conn.set_autocommit(True)
    try:
        row = await (await conn.execute("SELECT pg_is_in_recovery()")).fetchone()
    finally:
        await conn.set_autocommit(was)
    return bool(row[0]) if row is not None else True


def _routed_async_class(base: type[Any], route: RoleConninfo, reporter: _AsyncReporter) -> type[Any]:
    driver = _need_psycopg()

    class RoutedAsyncConnection(base):  # type: ignore[misc]
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            with _reported(reporter, route.endpoint_of(conninfo), driver.OperationalError):
                return await super().connect(conninfo, **kwargs)

    return _routed_name(RoutedAsyncConnection, base)


def async_connection_pool(
    service: Any,
    role: Role = WRITE,
    base: str = "",
    *,
    tracker: AsyncPrimaryTracker | None = None,
    check_role: bool = True,
    **pool_kwargs: Any,
) -> psycopg_pool.AsyncConnectionPool[Any]:
    """A ``psycopg_pool.AsyncConnectionPool`` whose new connections go to pods of *role*
    (see :func:`~headless_client.contrib.postgres.connection_pool`). Call it on the loop
    that will use the pool, and open it (``async with``, or ``open=False`` then
    ``await pool.open()``). Its connections are refreshed (drained) when the named
    primary changes.

    Raises:
        InvalidArgument: ``conninfo`` given, or a strategy without roles.
    """
    driver = _need_psycopg()
    pool_class = _psycopg_pool("AsyncConnectionPool", "async_connection_pool")
    strategy, route, user_configure = _pool_route("async_connection_pool", service, role, base, pool_kwargs)
    reporter = _AsyncReporter(service, route.role, tracker)

    async def configure(conn: Any) -> None:
        if route.role == WRITE and check_role and await _in_recovery(conn):
            reporter.wrong_role()
            raise _not_primary(driver, route.endpoint_at(conn.info.hostaddr, conn.info.port))
        if user_configure is not None:
            await user_configure(conn)

    connection_class = _routed_async_class(
        pool_kwargs.pop("connection_class", driver.AsyncConnection), route, reporter
    )
    pool: psycopg_pool.AsyncConnectionPool[Any] = pool_class(
        route, connection_class=connection_class, configure=configure, **pool_kwargs
    )
    if route.role == WRITE:
        _on_primary_change(strategy, pool, lambda p: p.drain())
    return pool


# --------------------------------------------------------------------------------------------
# asyncpg
# --------------------------------------------------------------------------------------------


async def _asyncpg_open(
    asyncpg: Any,
    service: Any,
    role: Role,
    reporter: _AsyncReporter,
    check_role: bool,
    ssl_option: object,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    endpoint: Endpoint = service.pick(role=role)
    try:
        conn = await asyncpg.connect(
            *args, host=endpoint.address, port=endpoint.port, ssl=_ssl_for(ssl_option, endpoint), **kwargs
        )
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError):
        reporter.failed(endpoint)
        raise
    if role == WRITE and check_role:
        try:
            standby = await conn.fetchval("SELECT pg_is_in_recovery()")
        except BaseException:
            await conn.close()
            raise
        if standby:
            await conn.close()
            reporter.wrong_role()
            raise asyncpg.exceptions.ConnectionFailureError(
                f"{endpoint} is in recovery (a standby), not the primary: the primary moved"
            )
    reporter.connected(endpoint)
    return conn


async def asyncpg_connect(
    service: Any,
    role: Role = WRITE,
    *,
    tracker: AsyncPrimaryTracker | None = None,
    check_role: bool = True,
    ssl: object = None,
    **connect_kwargs: Any,
) -> Any:
    """One asyncpg connection to a pod picked for *role*, dialled at its address.

    Args:
        service: a started service whose strategy is a :class:`~headless_client.PrimaryReplica`.
        role: ``"write"`` (the primary) or ``"read"``.
        tracker: alerted when a write connection fails or reaches a standby.
        check_role: confirm that a write connection reached the primary.
        ssl: asyncpg's ``ssl``, or a per-pod factory such as :func:`pod_tls` (verifies
            the pod's name while dialling its address).
        **connect_kwargs: asyncpg's (``user``, ``password``, ``database``, ``timeout``...);
            not ``host``, ``port`` nor ``dsn``.

    Raises:
        OSError / asyncpg.PostgresConnectionError: the connection failed;
            ``ConnectionFailureError`` when a write connection reached a standby.
        NoEndpointsAvailable: no pod for the role.
        InvalidArgument: ``host``, ``port`` or ``dsn`` given.
    """
    asyncpg = _need_asyncpg()
    _check_no_routing(connect_kwargs)
    role = RoleConninfo(service, role).role
    reporter = _AsyncReporter(service, role, tracker)
    return await _asyncpg_open(asyncpg, service, role, reporter, check_role, ssl, (), connect_kwargs)


def asyncpg_pool(
    service: Any,
    role: Role = WRITE,
    *,
    tracker: AsyncPrimaryTracker | None = None,
    check_role: bool = True,
    ssl: object = None,
    **pool_kwargs: Any,
) -> Any:
    """An ``asyncpg.Pool`` whose new connections go to pods of *role*.

    asyncpg's ``create_pool(connect=...)`` (asyncpg 0.30+) calls a function of ours for
    every new connection: it picks the pod and dials it as :func:`asyncpg_connect`. A
    write pool expires its connections (``pool.expire_connections()``) when the named
    primary changes. Returned not yet initialised: ``async with asyncpg_pool(...) as pool``
    or ``pool = await asyncpg_pool(...)``, on the service's loop.

    Args:
        service: a started service whose strategy is a :class:`~headless_client.PrimaryReplica`.
        role: ``"write"`` (the primary) or ``"read"``.
        tracker: alerted when a write connection fails or reaches a standby.
        check_role: confirm that each write connection reached the primary.
        ssl: asyncpg's ``ssl``, or a per-pod factory such as :func:`pod_tls`.
        **pool_kwargs: ``create_pool``'s (``min_size``, ``max_size``, ``init``...) and
            the connection's (``user``, ``password``, ``database``...).

    Raises:
        InvalidArgument: ``dsn``, ``host``, ``port`` or ``connect`` given.
    """
    asyncpg = _need_asyncpg()
    _check_no_routing(pool_kwargs)
    if "connect" in pool_kwargs:
        raise InvalidArgument("asyncpg_pool supplies create_pool's connect=; it cannot take yours")
    strategy = _strategy_with_primary(service)
    role = RoleConninfo(service, role).role
    reporter = _AsyncReporter(service, role, tracker)

    async def connect(*args: Any, **kwargs: Any) -> Any:
        kwargs.pop("loop", None)  # asyncpg passes it; connect() takes the running loop
        return await _asyncpg_open(asyncpg, service, role, reporter, check_role, ssl, args, kwargs)

    pool = asyncpg.create_pool(connect=connect, **pool_kwargs)
    if role == WRITE:
        _on_primary_change(strategy, pool, lambda p: p.expire_connections())
    return pool
