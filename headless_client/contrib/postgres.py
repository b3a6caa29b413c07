"""PostgreSQL behind a headless Service: conninfo strings, role-routed connections and
pools (psycopg 3 and psycopg_pool), and a primary tracker that asks the servers.

``pip install 'headless-client[postgres]'``. The service's strategy is a
:class:`~headless_client.PrimaryReplica`: writes go to the primary, reads over the standbys::

    from headless_client import HeadlessService, PrimaryReplica
    from headless_client.contrib.postgres import PrimaryTracker, connection_pool

    with HeadlessService("pg.prod", port="tcp-postgresql", strategy=PrimaryReplica()) as pg, \\
         PrimaryTracker(pg, "dbname=app user=app") as tracker, \\
         connection_pool(pg, "write", "dbname=app user=app", tracker=tracker) as writer, \\
         connection_pool(pg, "read", "dbname=app user=app") as reader:
        with writer.connection() as conn:
            conn.execute("INSERT INTO orders (id) VALUES (42)")
        with reader.connection() as conn:
            conn.execute("SELECT count(*) FROM orders").fetchone()

**Dial the address, keep the name.** :func:`conninfo` gives libpq both ``hostaddr=`` (the
pod's address from the library's view: libpq dials it and resolves nothing) and ``host=``
(the pod's FQDN: what ``sslmode=verify-full`` checks the certificate against, and what
``.pgpass`` lines match). A conninfo with only ``host=<pod name>`` makes libpq resolve the
name itself, through the system resolver, which fails wherever that resolver does not
know the cluster's names, and may answer a different address than the view.

**Roles.** :class:`PrimaryTracker` asks every pod ``SELECT pg_is_in_recovery()`` when it
starts, every *interval* seconds, when the view changes, and soon after a failure
(:meth:`PrimaryTracker.check_soon`, called by the connections and pools of this module
when a write connection fails or lands on a standby), and names the pod that is not in
recovery with :meth:`PrimaryReplica.set_primary`: after a failover the promoted standby
takes the writes at the next check, instead of the lowest ordinal forever.

**Pools.** :func:`connection_pool` builds a ``psycopg_pool.ConnectionPool`` whose
``conninfo`` is a callable (psycopg_pool calls it for every new connection; psycopg_pool 3.3 and later):
each new connection goes to a pod picked for its role, so a pool follows the view. A
write pool is drained when the named primary changes (its connections to the old one are
replaced); each new write connection checks that it reached a server out of recovery.
A connection that fails to open reports the pod's failure to the service (reads then
skip it for a while) and, for writes, asks the tracker for a check.

The asyncio side (psycopg's ``AsyncConnectionPool``, asyncpg) is
:mod:`headless_client.contrib.postgres_async`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, Literal, TypeVar

from typing_extensions import Self

from ..endpoints import Endpoint, EndpointSet
from ..errors import InvalidArgument, InvalidName, NoEndpointsAvailable
from ..request import READ, WRITE, Role
from ..strategies.base import distinct_pods
from ._extras import missing_extra

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

__all__ = [
    "TARGET_SESSION_ATTRS",
    "PrimaryTracker",
    "RoleCheck",
    "RoleConninfo",
    "connection_pool",
    "conninfo",
    "decide_primary",
    "multi_host_conninfo",
    "psycopg_connect",
    "psycopg_probe",
    "role_conninfo",
]

log = logging.getLogger("headless_client.postgres")

#: libpq's ``target_session_attrs`` values (libpq 14 and later).
TARGET_SESSION_ATTRS: Final = frozenset(
    {"any", "read-write", "read-only", "primary", "standby", "prefer-standby"}
)
_ROUTING_KEYWORDS = frozenset({"host", "hostaddr", "port"})
_PROBE_DEFAULTS: Final = "connect_timeout=2 application_name=headless-client-tracker"

Probe = Callable[[Endpoint], bool]
"""``probe(endpoint) -> in_recovery``: True for a standby, False for a primary; raises when
the pod cannot tell (down, refusing, bad credentials)."""
ProbeT = TypeVar("ProbeT")


def _driver(module: str, what: str, needs: str) -> Any:
    """The driver *module* (``psycopg``, ``psycopg_pool``, ``asyncpg``), imported when first
    needed.

    Raises:
        ImportError: it is not installed: *what* needs *needs*, and the extra says how.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - the drivers are in the test extra
        raise missing_extra(what, needs, "postgres") from exc


def _need_psycopg() -> Any:
    return _driver("psycopg", "this part of headless_client.contrib.postgres", "psycopg 3")


# --------------------------------------------------------------------------------------------
# conninfo strings (pure)
# --------------------------------------------------------------------------------------------


def _quote(value: str) -> str:
    """A libpq conninfo value: bare when it can be, else single-quoted with ``\\`` escapes."""
    if value and not any(c in value for c in " \t\n\r\f\v'\\="):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _words(params: Mapping[str, object]) -> list[str]:
    out: list[str] = []
    for keyword, value in params.items():
        if value is None:
            continue
        if not keyword.isidentifier() or keyword != keyword.lower():
            raise InvalidName(f"not a libpq connection keyword: {keyword!r}")
        if isinstance(value, bool):
            text = "1" if value else "0"
        elif isinstance(value, (str, int, float)):
            text = str(value)
        else:
            raise InvalidArgument(
                f"conninfo value of {keyword!r} must be a str or a number, not "
                f"{type(value).__name__}: {value!r}"
            )
        out.append(f"{keyword}={_quote(text)}")
    return out


def _base(base: str) -> str:
    """*base* as keyword/value text (a ``postgresql://`` URI is converted by psycopg)."""
    if not isinstance(base, str):
        raise InvalidArgument(f"conninfo base must be a str, not {type(base).__name__}: {base!r}")
    text = base.strip()
    if text.startswith(("postgresql://", "postgres://")):
        try:
            from psycopg.conninfo import conninfo_to_dict
        except ImportError:  # pragma: no cover - psycopg is in the test extra
            raise InvalidName(
                "a postgresql:// URI as base needs psycopg to convert it; give keyword/value "
                "text instead (dbname=app user=app)"
            ) from None
        return " ".join(_words({k: v for k, v in conninfo_to_dict(text).items() if v is not None}))
    return text


def _join(base: str, words: list[str]) -> str:
    text = _base(base)
    # libpq keeps the last setting of a keyword: ours come after the base, and win.
    return " ".join([text, *words]) if text else " ".join(words)


def conninfo(endpoint: Endpoint, base: str = "", **params: object) -> str:
    """A libpq connection string for one pod: dial its address, keep its name.

    ``host=<pod FQDN> hostaddr=<address> port=<port>``, after *base* and before *params*.
    libpq connects to ``hostaddr`` without any name lookup, and uses ``host`` for
    ``sslmode=verify-full`` (the certificate must name the pod) and to find the password
    in ``.pgpass``. An endpoint without a hostname (A/AAAA discovery) gets
    ``host=<address>`` only: TLS then verifies the address.

    Args:
        endpoint: The pod (from ``service.pick(...)``, ``service.endpoints``...).
        base: Connection settings as libpq text (``"dbname=app user=app sslmode=verify-full"``)
            or a ``postgresql://`` URI (converted with psycopg). Its ``host``, ``hostaddr``
            and ``port``, if any, are overridden.
        **params: More keywords (``dbname="app"``, ``connect_timeout=5``); ``None`` skips one.

    Raises:
        InvalidName: a keyword that is not a libpq keyword's shape.
        InvalidArgument: a value that is neither a str nor a number, or a base that is not a str.

    >>> conninfo(Endpoint("10.0.0.7", 5432, "pg-0.pg.prod.svc.cluster.local"), "dbname=app")
    'dbname=app host=pg-0.pg.prod.svc.cluster.local hostaddr=10.0.0.7 port=5432'
    """
    if not isinstance(endpoint, Endpoint):
        raise InvalidArgument(f"endpoint must be a headless_client.Endpoint: {endpoint!r}")
    routing: dict[str, object] = {"host": endpoint.hostname or endpoint.address}
    if endpoint.hostname is not None:
        routing["hostaddr"] = endpoint.address
    routing["port"] = endpoint.port
    return _join(base, _words(routing) + _words(params))


def _endpoints_of(pods: object) -> tuple[Endpoint, ...]:
    if isinstance(pods, EndpointSet):
        return distinct_pods(pods)
    view = getattr(pods, "endpoints", None)
    if isinstance(view, EndpointSet):
        return distinct_pods(view)
    if isinstance(pods, Iterable) and not isinstance(pods, (str, bytes)):
        found = list(pods)
        for ep in found:
            if not isinstance(ep, Endpoint):
                raise InvalidArgument(f"not a headless_client.Endpoint: {ep!r}")
        return distinct_pods(EndpointSet(found))
    raise InvalidArgument(f"expected a service, an EndpointSet or endpoints: {pods!r}")


def multi_host_conninfo(
    pods: object,
    base: str = "",
    *,
    target_session_attrs: str = "read-write",
    load_balance_hosts: Literal["disable", "random"] | None = None,
    **params: object,
) -> str:
    """One libpq connection string naming every pod, for libpq to choose by role.

    ``host=<name0>,<name1>,... hostaddr=<addr0>,<addr1>,... port=<p0>,<p1>,...`` with
    ``target_session_attrs``: libpq tries the pods in order and keeps the first whose
    session fits (``read-write``: the primary; ``prefer-standby``: a standby if any).
    Each pod is dialled at its address and verified by its name, as :func:`conninfo`.
    The string is a snapshot of the view: build it again when pods come and go (or use
    the routed pools, which pick per connection).

    Args:
        pods: A service (its current view), an :class:`EndpointSet`, or endpoints.
        base: Settings as libpq text or a URI, as :func:`conninfo`.
        target_session_attrs: ``any``, ``read-write``, ``read-only``, ``primary``,
            ``standby`` or ``prefer-standby``.
        load_balance_hosts: ``"random"`` (libpq 16+) to try the pods in random order.
        **params: More keywords.

    Raises:
        NoEndpointsAvailable: no pod.
        InvalidName: a bad ``target_session_attrs`` or ``load_balance_hosts``.
    """
    if target_session_attrs not in TARGET_SESSION_ATTRS:
        raise InvalidName(
            f"target_session_attrs must be one of {sorted(TARGET_SESSION_ATTRS)}: {target_session_attrs!r}"
        )
    if load_balance_hosts not in (None, "disable", "random"):
        raise InvalidName(f"load_balance_hosts must be 'disable', 'random' or None: {load_balance_hosts!r}")
    endpoints = _endpoints_of(pods)
    if not endpoints:
        raise NoEndpointsAvailable(f"no PostgreSQL pod to name in a conninfo: {pods!r}")
    routing = {
        "host": ",".join(ep.hostname or ep.address for ep in endpoints),
        # libpq pairs the lists by position: the address for every host, named or not.
        "hostaddr": ",".join(ep.address for ep in endpoints),
        "port": ",".join(str(ep.port) for ep in endpoints),
        "target_session_attrs": target_session_attrs,
        "load_balance_hosts": load_balance_hosts,
    }
    return _join(base, _words(routing) + _words(params))


def _check_role(role: object) -> Role:
    if role not in (READ, WRITE):
        raise InvalidName(f"role must be 'read' or 'write': {role!r}")
    checked: Role = WRITE if role == WRITE else READ
    return checked


def _strategy_with_primary(service: Any) -> Any:
    strategy = getattr(service, "strategy", None)
    if not callable(getattr(strategy, "set_primary", None)):
        raise InvalidArgument(
            f"the service's strategy must name a primary (PrimaryReplica), not {strategy!r}"
        )
    return strategy


class RoleConninfo:
    """A zero-argument callable returning the conninfo of a pod picked for *role*.

    The value for psycopg_pool's ``conninfo`` (a callable is called for every new
    connection, psycopg_pool 3.3+): ``ConnectionPool(RoleConninfo(pg, "read", "dbname=app"))``.
    Picks through the service's strategy (``role="write"``: the primary; ``"read"``: the
    next standby not ejected), so each connection follows the current view.

    Raises (when called):
        NoEndpointsAvailable: no pod for the role (psycopg_pool retries later).
    """

    __slots__ = ("base", "params", "role", "service")

    def __init__(self, service: Any, role: Role = WRITE, base: str = "", **params: object) -> None:
        self.service = service
        self.role = _check_role(role)
        _base(base)
        _words(params)  # fail now on bad settings, not in a pool's worker thread
        self.base = base
        self.params = params

    def endpoint(self) -> Endpoint:
        """The pod the next connection would go to."""
        endpoint: Endpoint = self.service.pick(role=self.role)
        return endpoint

    def __call__(self) -> str:
        return conninfo(self.endpoint(), self.base, **self.params)

    def for_endpoint(self, endpoint: Endpoint) -> str:
        """The conninfo of this route's settings for *endpoint*."""
        return conninfo(endpoint, self.base, **self.params)

    def endpoint_of(self, text: str) -> Endpoint | None:
        """The pod of the view a conninfo of this route dials (``None``: not in the view)."""
        words = _parse_routing(text)
        return self.endpoint_at(words.get("hostaddr") or words.get("host"), words.get("port"))

    def endpoint_at(self, address: object, port: object) -> Endpoint | None:
        """The pod of the view at *address* and *port* (``None``: not in the view)."""
        view: EndpointSet = self.service.endpoints
        for ep in view:
            if ep.address == address and str(ep.port) == str(port):
                return ep
        return None

    def __repr__(self) -> str:
        return f"RoleConninfo({self.service.name!r}, role={self.role!r})"


def role_conninfo(service: Any, role: Role = WRITE, base: str = "", **params: object) -> RoleConninfo:
    """:class:`RoleConninfo` (a callable conninfo for psycopg_pool) for *role* of *service*."""
    return RoleConninfo(service, role, base, **params)


def _parse_routing(text: str) -> dict[str, str]:
    """``host``, ``hostaddr`` and ``port`` of a conninfo this module wrote (the last of each)."""
    found: dict[str, str] = {}
    for word in text.split():
        keyword, sep, value = word.partition("=")
        if sep and keyword in _ROUTING_KEYWORDS and not value.startswith("'"):
            found[keyword] = value
    return found


# --------------------------------------------------------------------------------------------
# Deciding the primary (pure)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoleCheck:
    """What one check of the pods found.

    Attributes:
        primaries: pods out of recovery (one, normally).
        standbys: pods in recovery.
        failed: pods that could not tell, with the error's text.
        primary: the pod named primary after this check (``None``: none found, the
            previous name is kept).
        took: seconds the check took.
    """

    primaries: tuple[Endpoint, ...]
    standbys: tuple[Endpoint, ...]
    failed: tuple[tuple[Endpoint, str], ...]
    primary: Endpoint | None
    took: float = 0.0


def _named(endpoint: Endpoint) -> str:
    return endpoint.hostname or endpoint.address


def decide_primary(
    results: Mapping[Endpoint, bool | BaseException], current: int | str | None
) -> RoleCheck:
    """The primary from each pod's answer to ``pg_is_in_recovery()``.

    One pod out of recovery: it. Several (a split brain, or an old primary started again
    beside the promoted one): the currently named one if it is among them, else the first
    in set order, and the caller should shout. None: no primary (``RoleCheck.primary`` is
    ``None``; the caller keeps the previous name, since writes have nowhere better to go).

    Args:
        results: pod -> ``True`` (in recovery), ``False`` (primary) or the error raised.
        current: the name now given to ``PrimaryReplica.set_primary`` (or ``None``).
    """
    primaries = tuple(ep for ep, r in results.items() if r is False)
    standbys = tuple(ep for ep, r in results.items() if r is True)
    failed = tuple(
        (ep, f"{type(r).__name__}: {r}".strip()) for ep, r in results.items() if isinstance(r, BaseException)
    )
    chosen: Endpoint | None = None
    if len(primaries) == 1:
        chosen = primaries[0]
    elif primaries:
        keep = [ep for ep in primaries if _is_named(ep, current)]
        chosen = keep[0] if keep else sorted(primaries, key=_order)[0]
    return RoleCheck(primaries, standbys, failed, chosen)


def _order(ep: Endpoint) -> tuple[bool, int, str]:
    return (ep.ordinal is None, ep.ordinal or 0, _named(ep))


def _is_named(endpoint: Endpoint, name: int | str | None) -> bool:
    if name is None:
        return False
    if isinstance(name, int):
        return endpoint.ordinal == name
    hostname = endpoint.hostname
    return name in (endpoint.address, hostname) or (
        hostname is not None and hostname.split(".", 1)[0] == name
    )


def _apply(service: Any, strategy: Any, found: RoleCheck) -> None:
    """Name the primary a check found (both trackers); log what deserves it."""
    name = service.name
    if len(found.primaries) > 1:
        log.error("%s: several pods are out of recovery (%s); writes go to %s", name,
                  ", ".join(_named(ep) for ep in found.primaries), found.primary,
                  extra={"service": name, "pod": ", ".join(_named(ep) for ep in found.primaries),
                         "address": ", ".join(ep.address for ep in found.primaries),
                         "reason": "several_primaries"})
    current = strategy.primary_name
    if found.primary is None:
        if found.primaries or found.standbys or found.failed:
            log.warning("%s: no pod is the primary (standbys: %s; no answer: %s); keeping %r",
                        name, [_named(ep) for ep in found.standbys],
                        [_named(ep) for ep, _ in found.failed], current,
                        extra={"service": name, "pod": None, "address": None, "reason": "no_primary"})
        return
    if not _is_named(found.primary, current):
        level = logging.INFO if current is None else logging.WARNING
        log.log(level, "%s: the primary is now %s (was %r)", name, _named(found.primary), current,
                extra={"service": name, "pod": found.primary.hostname, "address": found.primary.address,
                       "reason": "primary_changed"})
        strategy.set_primary(_named(found.primary))


# --------------------------------------------------------------------------------------------
# The tracker (threads)
# --------------------------------------------------------------------------------------------


def psycopg_probe(base: str = "", **params: object) -> Probe:
    """A probe asking one pod ``SELECT pg_is_in_recovery()`` over psycopg.

    Connects with :func:`conninfo` (address dialled, name kept for TLS), *base* and
    *params* (your credentials and TLS settings), ``connect_timeout=2`` and
    ``application_name=headless-client-tracker`` unless you set them.
    """
    psycopg = _need_psycopg()
    base = f"{_PROBE_DEFAULTS} {_base(base)}".strip()
    _words(params)

    def probe(endpoint: Endpoint) -> bool:
        with psycopg.connect(conninfo(endpoint, base, **params), autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return bool(row[0]) if row is not None else True

    return probe


def _probe_all(
    pods: tuple[Endpoint, ...], probe: Probe, timeout: float
) -> dict[Endpoint, bool | BaseException]:
    """Each pod's answer, probed concurrently on daemon threads, within *timeout* seconds
    (a pod still silent then counts as failed; its thread ends with its own timeout)."""
    results: dict[Endpoint, bool | BaseException] = {}
    lock = threading.Lock()

    def run(endpoint: Endpoint) -> None:
        try:
            answer: bool | BaseException = bool(probe(endpoint))
        except Exception as exc:
            answer = exc
        with lock:
            results[endpoint] = answer

    threads = [
        threading.Thread(target=run, args=(ep,), name=f"headless-client-pg-probe[{_named(ep)}]", daemon=True)
        for ep in pods
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    with lock:
        done = dict(results)
    for ep in pods:
        done.setdefault(ep, TimeoutError(f"no answer within {timeout:g}s"))
    return {ep: done[ep] for ep in pods}


class _Tracker(Generic[ProbeT]):
    """What both primary trackers are without I/O: their arguments, the bookkeeping of a
    check, and the pause between two checks; each twin asks the pods and waits its own way.
    """

    #: The probe used when none is given: ``default_probe(base, **params)``.
    _default_probe: ClassVar[Callable[..., Any]]

    def __init__(
        self,
        service: Any,
        base: str = "",
        *,
        probe: ProbeT | None = None,
        interval: float = 10.0,
        min_interval: float = 1.0,
        timeout: float = 5.0,
        **params: object,
    ) -> None:
        self.service = service
        self.strategy = _strategy_with_primary(service)
        for name, value in (("interval", interval), ("min_interval", min_interval), ("timeout", timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidName(f"{name} must be a number of seconds > 0: {value!r}")
        if probe is not None and not callable(probe):
            raise InvalidArgument(f"probe must be callable: {probe!r}")
        self.probe: ProbeT = probe if probe is not None else type(self)._default_probe(base, **params)
        self.interval = float(interval)
        self.min_interval = float(min_interval)
        self.timeout = float(timeout)
        self._last_started = float("-inf")
        #: The latest check's findings (``None`` before the first).
        self.last_check: RoleCheck | None = None
        #: How many checks ran.
        self.checks = 0
        self._prepare()

    def _prepare(self) -> None:
        """The twin's own state (its wake-up, its lock), made last by the constructor."""
        raise NotImplementedError

    @property
    def primary(self) -> Endpoint | None:
        """The pod the latest check found primary (``None``: none found, or no check yet)."""
        check = self.last_check
        return check.primary if check is not None else None

    def _pods_to_ask(self, now: float) -> tuple[Endpoint, ...]:
        """A check starts at *now*: the pods it asks (one endpoint per pod)."""
        self._last_started = now
        return distinct_pods(self.service.endpoints)

    def _found(self, answers: Mapping[Endpoint, bool | BaseException], began: float, now: float) -> RoleCheck:
        """A check that began at *began* got *answers* at *now*: decide, record, apply."""
        found = decide_primary(answers, self.strategy.primary_name)
        found = RoleCheck(found.primaries, found.standbys, found.failed, found.primary, now - began)
        # Recorded first: whoever sees the new primary named also sees this check.
        self.last_check = found
        self.checks += 1
        _apply(self.service, self.strategy, found)
        return found

    def _pause(self, now: float) -> float:
        """Seconds to wait before the next check may start: at most one check per
        *min_interval*, however often failures ask."""
        return self._last_started + self.min_interval - now

    def _check_failed(self, error: Exception) -> None:
        log.error("%s: checking the pods' roles failed", self.service.name, exc_info=error,
                  extra={"service": self.service.name, "pod": None, "address": None,
                         "reason": "role_check_failed"})

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"primary {self.primary}"
        return f"<{type(self).__name__} {self.service.name} {state}, {self.checks} checks>"

    @property
    def closed(self) -> bool:
        """True once closed."""
        raise NotImplementedError


class PrimaryTracker(_Tracker[Probe]):
    """Keeps a :class:`~headless_client.PrimaryReplica` naming the pod that really is
    the primary, by asking the servers.

    A check asks every pod of the view, concurrently, ``pg_is_in_recovery()`` (or your
    *probe*) and names the one out of recovery with ``strategy.set_primary(hostname)``
    (see :func:`decide_primary` for several or none). Checks run: once in :meth:`start`
    (on the caller's thread), then on a background thread every *interval* seconds, when
    the view changes, and after :meth:`check_soon` (failures call it), at most once per
    *min_interval*. A change of primary is logged at WARNING.

    Args:
        service: a started :class:`~headless_client.HeadlessService` whose strategy is a
            :class:`~headless_client.PrimaryReplica` (the caller's: not closed here).
        base: conninfo settings for the default probe (credentials, ``sslmode``...).
        probe: ``probe(endpoint) -> in_recovery`` instead of the psycopg one (an
            operator's API, pod labels...).
        interval: seconds between periodic checks.
        min_interval: least seconds between two checks (on failures and changes).
        timeout: the most a check waits for the pods' answers.
        **params: more conninfo keywords for the default probe.

    Raises:
        InvalidArgument: the strategy cannot name a primary, or a bad probe.
        InvalidName: a bad interval or timeout.
    """

    _default_probe = staticmethod(psycopg_probe)

    def _prepare(self) -> None:
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._check_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._closed.is_set()

    def start(self) -> None:
        """Check now (on this thread), then keep checking in the background (idempotent)."""
        if self._thread is not None or self.closed:
            return
        self.check()
        self._unsubscribe = self.service.subscribe(self._view_changed)
        self._thread = threading.Thread(
            target=self._run, name=f"headless-client-pg-tracker[{self.service.name}]", daemon=True
        )
        self._thread.start()

    def check(self) -> RoleCheck:
        """Ask every pod now and name the primary; returns what was found.

        Never raises for a pod's failure (it is in :attr:`RoleCheck.failed`).
        """
        with self._check_lock:
            began = time.monotonic()
            answers = _probe_all(self._pods_to_ask(began), self.probe, self.timeout)
            return self._found(answers, began, time.monotonic())

    def check_soon(self) -> None:
        """Ask for a check on the background thread (within *min_interval*); returns at once."""
        self._wake.set()

    def _view_changed(self, old: EndpointSet, new: EndpointSet) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self.closed:
            self._wake.wait(self.interval)
            if self.closed:
                return
            wait = self._pause(time.monotonic())
            if wait > 0 and self._closed.wait(wait):
                return
            self._wake.clear()
            try:
                self.check()
            except Exception as exc:
                self._check_failed(exc)

    def close(self) -> None:
        """Stop checking (waits briefly for the thread); harmless to call twice."""
        self._closed.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.timeout + 1.0)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# psycopg connections and pools
# --------------------------------------------------------------------------------------------


class _Reporter:
    """What a route does around each connection it opens: report to the service, and ask
    the tracker for a check when a write connection fails or reaches a standby."""

    __slots__ = ("route", "tracker")

    def __init__(self, route: RoleConninfo, tracker: Any) -> None:
        self.route = route
        self.tracker = tracker

    def failed(self, endpoint: Endpoint | None) -> None:
        service = self.route.service
        if endpoint is not None:
            try:
                service.report_failure(endpoint)
            except Exception:  # the pod left the view meanwhile: nothing to eject
                log.debug("%s: %s left the view before its failure was reported", service.name, endpoint,
                          extra={"service": service.name, "pod": endpoint.hostname,
                                 "address": endpoint.address, "reason": "endpoint_left_view"})
        if self.route.role == WRITE and self.tracker is not None:
            self.tracker.check_soon()

    def connected(self, endpoint: Endpoint | None) -> None:
        if endpoint is not None:
            try:
                self.route.service.report_success(endpoint)
            except Exception:
                log.debug("%s: %s left the view before its success was reported",
                          self.route.service.name, endpoint,
                          extra={"service": self.route.service.name, "pod": endpoint.hostname,
                                 "address": endpoint.address, "reason": "endpoint_left_view"})

    def wrong_role(self, endpoint: Endpoint | None) -> None:
        if self.tracker is not None:
            self.tracker.check_soon()


def _in_recovery(conn: Any) -> bool:
    """Ask an open psycopg connection whether its server is a standby, leaving it idle."""
    was = conn.autocommit
    conn.autocommit = True
    try:
        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    finally:
        conn.autocommit = was
    return bool(row[0]) if row is not None else True


def _not_primary(psycopg: Any, endpoint: Endpoint | None) -> Exception:
    where = str(endpoint) if endpoint is not None else "the server"
    error: Exception = psycopg.OperationalError(
        f"{where} is in recovery (a standby), not the primary: the primary moved"
    )
    return error


def psycopg_connect(
    service: Any,
    role: Role = WRITE,
    base: str = "",
    *,
    tracker: PrimaryTracker | None = None,
    check_role: bool = True,
    connection_class: type[psycopg.Connection[Any]] | None = None,
    **kwargs: Any,
) -> psycopg.Connection[Any]:
    """One psycopg connection to a pod picked for *role* (the primary for ``"write"``).

    The factory for anything that wants a zero-argument connect function, such as
    SQLAlchemy's ``create_engine(..., creator=partial(psycopg_connect, pg, "write", base))``.
    A failed connect reports the pod's failure to the service (and, for writes, asks
    *tracker* for a check); with *check_role*, a write connection that reached a standby
    is closed and raises ``psycopg.OperationalError``.

    Args:
        service: a started service whose strategy is a :class:`~headless_client.PrimaryReplica`.
        role: ``"write"`` or ``"read"``.
        base: conninfo settings (credentials, database, TLS).
        tracker: the :class:`PrimaryTracker` to alert on write failures.
        check_role: confirm that a write connection reached the primary.
        connection_class: psycopg's ``Connection`` or a subclass.
        **kwargs: passed to ``connect()`` (``autocommit=True``, ``row_factory=``...).

    Raises:
        psycopg.OperationalError: the connection failed, or reached a standby for a write.
        NoEndpointsAvailable: no pod for the role.
    """
    driver = _need_psycopg()
    route = RoleConninfo(service, role, base)
    reporter = _Reporter(route, tracker)
    endpoint = route.endpoint()
    cls = connection_class or driver.Connection
    try:
        conn = cls.connect(route.for_endpoint(endpoint), **kwargs)
    except driver.OperationalError:
        reporter.failed(endpoint)
        raise
    if role == WRITE and check_role:
        try:
            standby = _in_recovery(conn)
        except BaseException:
            conn.close()
            raise
        if standby:
            conn.close()
            reporter.wrong_role(endpoint)
            raise _not_primary(driver, endpoint)
    reporter.connected(endpoint)
    result: psycopg.Connection[Any] = conn
    return result


def _routed_class(base: type[Any], reporter: _Reporter) -> type[Any]:
    """A subclass of psycopg's connection class whose ``connect`` reports how it went.

    psycopg_pool opens connections with ``connection_class.connect(conninfo, **kwargs)``
    (after calling the callable conninfo): this is the one place that sees the outcome.
    """
    psycopg = _need_psycopg()

    class RoutedConnection(base):  # type: ignore[misc]
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            with _reported(reporter, reporter.route.endpoint_of(conninfo), psycopg.OperationalError):
                return super().connect(conninfo, **kwargs)

    return _routed_name(RoutedConnection, base)


@contextlib.contextmanager
def _reported(reporter: Any, endpoint: Endpoint | None, failures: type[BaseException]) -> Iterator[None]:
    """Around opening a connection to *endpoint*: *failures* report the pod failed (and
    propagate), a connection made reports it connected; both reporters have the methods."""
    try:
        yield
    except failures:
        reporter.failed(endpoint)
        raise
    reporter.connected(endpoint)


def _routed_name(routed: type[Any], base: type[Any]) -> type[Any]:
    """*routed* (a subclass of *base* whose ``connect`` reports), named after *base*."""
    routed.__qualname__ = routed.__name__ = f"Routed{base.__name__}"
    return routed


def connection_pool(
    service: Any,
    role: Role = WRITE,
    base: str = "",
    *,
    tracker: PrimaryTracker | None = None,
    check_role: bool = True,
    **pool_kwargs: Any,
) -> psycopg_pool.ConnectionPool[Any]:
    """A ``psycopg_pool.ConnectionPool`` whose new connections go to pods of *role*.

    The pool's ``conninfo`` is a :class:`RoleConninfo` (psycopg_pool calls it for every
    new connection): ``"write"`` connections go to the primary, ``"read"`` ones
    round-robin over the standbys not ejected (the primary when it is alone). A write
    pool is drained (its connections replaced) whenever the strategy's named primary
    changes, and with *check_role* each new write connection must be out of recovery
    (else it is discarded, the tracker asked for a check, and psycopg_pool tries again).
    Failed connects report the pod's failure to the service. The pool is returned closed
    (unless ``open=True``): ``with connection_pool(...) as pool:`` opens it.

    Args:
        service: a started service whose strategy is a :class:`~headless_client.PrimaryReplica`.
        role: ``"write"`` or ``"read"``.
        base: conninfo settings (credentials, database, TLS).
        tracker: the :class:`PrimaryTracker` to alert when write connections fail.
        check_role: confirm that each write connection reached the primary.
        **pool_kwargs: ``ConnectionPool``'s own (``min_size``, ``max_size``, ``open``,
            ``check``, ``kwargs``, ``configure``, ``connection_class``, ``name``...).

    Raises:
        InvalidArgument: ``conninfo`` given (the route makes it), or a strategy without roles.
    """
    psycopg = _need_psycopg()
    pool_class = _psycopg_pool("ConnectionPool", "connection_pool")
    strategy, route, user_configure = _pool_route("connection_pool", service, role, base, pool_kwargs)
    reporter = _Reporter(route, tracker)

    def configure(conn: Any) -> None:
        if route.role == WRITE and check_role and _in_recovery(conn):
            endpoint = route.endpoint_at(conn.info.hostaddr, conn.info.port)
            reporter.wrong_role(endpoint)
            raise _not_primary(psycopg, endpoint)
        if user_configure is not None:
            user_configure(conn)

    connection_class = _routed_class(pool_kwargs.pop("connection_class", psycopg.Connection), reporter)
    pool: psycopg_pool.ConnectionPool[Any] = pool_class(
        route, connection_class=connection_class, configure=configure, **pool_kwargs
    )
    if route.role == WRITE:
        _drain_on_primary_change(strategy, pool)
    return pool


def _psycopg_pool(name: str, what: str) -> Any:
    """psycopg_pool's pool class *name*, for the function *what*."""
    return getattr(_driver("psycopg_pool", what, "psycopg_pool"), name)


def _pool_route(
    what: str, service: Any, role: Role, base: str, pool_kwargs: dict[str, Any]
) -> tuple[Any, RoleConninfo, Callable[[Any], Any] | None]:
    """What a psycopg pool of *role* needs (both pools): the strategy naming the primary,
    the route (the pool's conninfo) and the user's ``configure``; *pool_kwargs* gets the
    pool's name and ``open=False`` unless given.

    Raises:
        InvalidArgument: ``conninfo`` given, or a strategy without roles.
    """
    if "conninfo" in pool_kwargs:
        raise InvalidArgument(f"{what} makes the conninfo from the route; pass base= instead")
    strategy = _strategy_with_primary(service)
    route = RoleConninfo(service, role, base)
    pool_kwargs.setdefault("name", f"{service.name}/{route.role}")
    pool_kwargs.setdefault("open", False)  # psycopg_pool's coming default: open with `with`
    return strategy, route, pool_kwargs.pop("configure", None)


def _drain_on_primary_change(strategy: Any, pool: Any) -> None:
    """Drain *pool* when the named primary changes, on a short-lived thread (watch
    callbacks must not block); stop watching when the pool is closed."""
    import weakref

    ref = weakref.ref(pool)
    unwatch: Callable[[], None] | None = None

    def changed() -> None:
        target = ref()
        if target is None or target.closed:
            if unwatch is not None:
                unwatch()
            return
        threading.Thread(target=_drain_quietly, args=(target,), name="headless-client-pg-drain",
                         daemon=True).start()

    unwatch = strategy.watch(changed)


def _drain_quietly(pool: Any) -> None:
    try:
        pool.drain()
    except Exception:
        log.exception("draining %s after a change of primary failed", getattr(pool, "name", pool),
                      extra={"service": None, "pod": None, "address": None, "reason": "pool_drain_failed"})
