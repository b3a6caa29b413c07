"""StaticResolver: a resolver that answers from a table you control, with no DNS at all.

See :mod:`headless_client.testing` for the overview and examples.
"""

from __future__ import annotations

import collections
import copy
import inspect
import ipaddress
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Concatenate, ParamSpec, TypeVar

from .._resolve_methods import ResolveMethods
from ..aio._resolve_methods import AsyncResolveMethods
from ..endpoints import Endpoint, EndpointSet
from ..errors import InvalidName, ResolutionError, ServiceNotFound
from ..exchange import Lookup
from ..lookup import Plan
from ..names import DEFAULT_CLUSTER_DOMAIN, pod_fqdn, service_fqdn, try_parse_pod_fqdn
from ..resolver import BaseResolver, KubernetesContext
from ..wire import Nameserver

__all__ = ["AsyncStaticResolver", "EndpointLike", "StaticResolver", "statefulset_endpoints"]

T = TypeVar("T")
P = ParamSpec("P")

EndpointLike = Endpoint | str
"""An :class:`~headless_client.Endpoint`, or ``"10.0.0.7"`` / ``"10.0.0.7:8080"`` /
``"[fd00::7]:8080"`` (an address without a port gets port 0)."""


def statefulset_endpoints(
    statefulset: str,
    namespace: str,
    addresses: Sequence[str],
    *,
    port: int = 8080,
    service: str | None = None,
    start: int = 0,
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN,
) -> list[Endpoint]:
    """Endpoints of StatefulSet pods ``<sts>-<start>``, ``<sts>-<start+1>``... at *addresses*,
    with their pod FQDNs and ordinals, as an SRV lookup of the service would give them."""
    return [
        Endpoint(
            address=address,
            port=port,
            hostname=pod_fqdn(
                statefulset, start + i, service=service, namespace=namespace, cluster_domain=cluster_domain
            ),
            ordinal=start + i,
        )
        for i, address in enumerate(addresses)
    ]


def _endpoint(item: object) -> Endpoint:
    if isinstance(item, Endpoint):
        return item
    if not isinstance(item, str):
        raise TypeError(f"endpoints must be Endpoint objects or 'address[:port]' strings: {item!r}")
    text = item.strip()
    try:
        return Endpoint(str(ipaddress.ip_address(text)), 0)
    except ValueError:
        pass
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidName(f"endpoint {item!r} is not 'address', 'address:port' or '[v6]:port'")
    return Endpoint(host.strip("[]"), int(port))


class _Table:
    """The shared state of a StaticResolver and its async twin."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.services: dict[str, EndpointSet] = {}
        self.errors: dict[str | None, ResolutionError] = {}
        self.calls: collections.deque[tuple[str, str]] = collections.deque(maxlen=10_000)


def _from_table(
    builder: Callable[Concatenate[BaseResolver, P], Lookup[EndpointSet]], answer: str
) -> Callable[Concatenate[_StaticBase, P], Lookup[EndpointSet]]:
    """A static resolver's lookup builder: a plan that asks nothing and runs the real
    *builder*'s checks (so a bad name fails exactly as it would against DNS), then answers
    from the table with ``self.<answer>(**arguments)``, the builder's arguments by name."""
    signature = inspect.signature(builder)

    def lookup(self: _StaticBase, /, *args: P.args, **kwargs: P.kwargs) -> Lookup[EndpointSet]:
        def answered() -> EndpointSet:
            builder(self._names, *args, **kwargs).plan.close()
            call = signature.bind(self._names, *args, **kwargs)
            call.apply_defaults()
            arguments = dict(call.arguments)
            del arguments["self"]
            found: EndpointSet = getattr(self, answer)(**arguments)
            return found

        return Lookup(_answered(answered), self._names.exchange_config)

    lookup.__name__ = builder.__name__
    lookup.__qualname__ = f"_StaticBase.{builder.__name__}"
    lookup.__doc__ = (
        f"The configured answer to :meth:`~headless_client.BaseResolver.{builder.__name__}`'s "
        "arguments, as a lookup any driver runs at once."
    )
    lookup.__wrapped__ = builder  # type: ignore[attr-defined]  # its signature, for inspect
    return lookup


def _answer_now(lookup: Lookup[T]) -> T:
    """The result of a lookup whose plan asks no question (the table's answer)."""
    try:
        next(lookup.plan)
    except StopIteration as stop:
        result: T = stop.value
        return result
    lookup.plan.close()
    raise AssertionError("a static lookup asked a DNS question")  # pragma: no cover


class _StaticBase:
    """The table, its controls and the answers, shared by :class:`StaticResolver` and
    :class:`AsyncStaticResolver`; the twins only add how a lookup is run.

    It implements the resolver protocol services need (``qualify``, ``timeout``, the
    resolve methods) itself, and the sans-I/O lookups too (``service_lookup``,
    ``host_lookup``), as plans that ask nothing: a service drives them with no thread and
    no socket. Names and arguments are checked by a real resolver's lookup builders, so a
    bad name fails here exactly as it would against DNS.
    """

    _table: _Table

    def __init__(
        self,
        services: Mapping[str, Iterable[EndpointLike]] | None = None,
        *,
        namespace: str | None = "default",
        cluster_domain: str = DEFAULT_CLUSTER_DOMAIN,
        timeout: float = 2.0,
        _table: _Table | None = None,
    ) -> None:
        # Checks names and arguments; never sends a packet (its nameserver is a placeholder).
        self._names = BaseResolver(
            timeout=timeout, namespace=namespace, cluster_domain=cluster_domain,
            context=_context(namespace, cluster_domain),
        )
        self.timeout: float = self._names.timeout
        self.namespace: str | None = self._names.namespace
        self.cluster_domain: str = self._names.cluster_domain
        self._table = _table if _table is not None else _Table()
        for name, endpoints in (services or {}).items():
            self.set(name, endpoints)

    def qualify(self, service: str, namespace: str | None = None) -> str:
        """The FQDN of *service*, as the real resolver qualifies it."""
        return self._names.qualify(service, namespace)

    # -- sans-I/O lookups: a real resolver's checks, then the table; they ask nothing --------

    service_lookup = _from_table(BaseResolver.service_lookup, "_answer_resolve")
    pod_lookup = _from_table(BaseResolver.pod_lookup, "_answer_pod")
    host_lookup = _from_table(BaseResolver.host_lookup, "_answer_host")
    statefulset_lookup = _from_table(BaseResolver.statefulset_lookup, "_answer_statefulset")

    def _ns(self, namespace: str | None, what: str) -> str:
        ns = namespace or self.namespace
        if ns is None:
            raise InvalidName(f"no namespace for {what!r}: pass namespace=")
        return ns

    # -- changing the answers --------------------------------------------------------

    def set(
        self, service: str, endpoints: Iterable[EndpointLike], *, namespace: str | None = None
    ) -> EndpointSet:
        """Make *service* resolve to *endpoints* (an empty list: NXDOMAIN, like Kubernetes)."""
        fqdn = self.qualify(service, namespace)
        eps = EndpointSet((_endpoint(e) for e in endpoints), name=fqdn)
        with self._table.lock:
            if eps:
                self._table.services[fqdn] = eps
            else:
                self._table.services.pop(fqdn, None)
        return eps

    def add(self, service: str, *endpoints: EndpointLike, namespace: str | None = None) -> EndpointSet:
        """Add endpoints to *service* (created if needed); returns its new set."""
        fqdn = self.qualify(service, namespace)
        new = [_endpoint(e) for e in endpoints]
        with self._table.lock:
            old = self._table.services.get(fqdn, EndpointSet())
            eps = EndpointSet([*old, *new], name=fqdn)
            if eps:
                self._table.services[fqdn] = eps
            return eps

    def remove(self, service: str, *endpoints: EndpointLike, namespace: str | None = None) -> EndpointSet:
        """Remove endpoints from *service*, matched by address and port (a port of 0, or a
        bare address, matches every port of that address); returns its new set."""
        fqdn = self.qualify(service, namespace)
        gone = [_endpoint(e) for e in endpoints]

        def matches(ep: Endpoint) -> bool:
            return any(ep.address == g.address and g.port in (0, ep.port) for g in gone)

        with self._table.lock:
            old = self._table.services.get(fqdn, EndpointSet())
            eps = EndpointSet([ep for ep in old if not matches(ep)], name=fqdn)
            if eps:
                self._table.services[fqdn] = eps
            else:
                self._table.services.pop(fqdn, None)
            return eps

    def delete(self, service: str, *, namespace: str | None = None) -> None:
        """Forget *service*: it answers NXDOMAIN (:class:`~headless_client.ServiceNotFound`)."""
        fqdn = self.qualify(service, namespace)
        with self._table.lock:
            self._table.services.pop(fqdn, None)

    def configured(self, service: str, *, namespace: str | None = None) -> EndpointSet:
        """What *service* is configured to resolve to now (empty if nothing)."""
        fqdn = self.qualify(service, namespace)
        return self._table.services.get(fqdn, EndpointSet(name=fqdn))

    def set_error(
        self,
        error: ResolutionError | str | None,
        service: str | None = None,
        *,
        namespace: str | None = None,
    ) -> None:
        """Make resolutions fail with *error* (a message becomes a
        :class:`~headless_client.ResolutionError`), for one service or, with
        ``service=None``, for every name. ``None`` clears it."""
        key = None if service is None else self.qualify(service, namespace)
        if isinstance(error, str):
            error = ResolutionError(error)
        if error is not None and not isinstance(error, ResolutionError):
            raise TypeError(f"error must be a ResolutionError, a message or None: {error!r}")
        with self._table.lock:
            if error is None:
                self._table.errors.pop(key, None)
            else:
                self._table.errors[key] = error

    @property
    def calls(self) -> list[tuple[str, str]]:
        """``(method, name)`` of every call so far, oldest first (at most 10 000)."""
        return list(self._table.calls)

    # -- answering (no I/O) ------------------------------------------------------------

    def _check(self, method: str, name: str, *services: str) -> None:
        self._table.calls.append((method, name))
        errors = self._table.errors
        for key in (None, *services):
            error = errors.get(key)
            if error is not None:
                # A fresh copy per call: one exception object raised from many threads
                # would share (and grow) one traceback.
                raise copy.copy(error).with_traceback(None)

    # -- answers from the table, to arguments a real lookup builder has checked -------------

    def _answer_resolve(
        self, service: str, port: int | str, protocol: str, namespace: str | None, previous: object
    ) -> EndpointSet:
        return self._service(self.qualify(service, namespace), port)

    def _answer_pod(
        self, statefulset: str, ordinal: int, namespace: str | None, service: str | None, port: int | None
    ) -> EndpointSet:
        ns = self._ns(namespace, statefulset)
        fqdn = pod_fqdn(
            statefulset, ordinal, service=service, namespace=ns, cluster_domain=self.cluster_domain
        )
        return self._host("resolve_pod", fqdn, port or 0)

    def _answer_host(self, hostname: str, port: int) -> EndpointSet:
        return self._host("resolve_host", hostname, port)

    def _answer_statefulset(
        self,
        statefulset: str,
        namespace: str | None,
        service: str | None,
        port: int | None,
        start: int,
        replicas: int | None,
        max_gap: int,
    ) -> EndpointSet:
        ns = self._ns(namespace, statefulset)
        svc = service_fqdn(service or statefulset, ns, cluster_domain=self.cluster_domain)
        return self._statefulset(statefulset, svc, port or 0, start, replicas, max_gap)

    def _service(self, fqdn: str, port: int | str) -> EndpointSet:
        self._check("resolve", fqdn, fqdn)
        found = self._table.services.get(fqdn)
        if not found:
            raise ServiceNotFound(f"service {fqdn!r} does not exist or has no ready pods (NXDOMAIN)")
        if isinstance(port, int):
            return EndpointSet(
                (
                    Endpoint(ep.address, port, ep.hostname, ep.ordinal, ep.priority, ep.weight, ep.ttl)
                    for ep in found
                ),
                name=fqdn,
                ttl=found.ttl,
            )
        return found

    def _host(self, method: str, fqdn: str, port: int) -> EndpointSet:
        fqdn = fqdn.lower().rstrip(".")
        self._check(method, fqdn, fqdn.split(".", 1)[-1])
        found = [
            Endpoint(ep.address, port, fqdn, ep.ordinal, ttl=ep.ttl)
            for eps in list(self._table.services.values())
            for ep in eps
            if ep.hostname == fqdn
        ]
        if not found:
            raise ServiceNotFound(f"pod {fqdn!r} does not exist or is not ready (NXDOMAIN)")
        return EndpointSet(found, name=fqdn)

    def _statefulset(
        self, statefulset: str, svc_fqdn: str, port: int, start: int, replicas: int | None, max_gap: int
    ) -> EndpointSet:
        self._check("resolve_statefulset", svc_fqdn, svc_fqdn)
        if replicas is None and not self._table.services.get(svc_fqdn):
            raise ServiceNotFound(f"service {svc_fqdn!r} does not exist or has no ready pods (NXDOMAIN)")
        by_ordinal: dict[int, list[Endpoint]] = {}
        for eps in list(self._table.services.values()):
            for ep in eps:
                pod = try_parse_pod_fqdn(ep.hostname) if ep.hostname else None
                if pod is None or pod.statefulset != statefulset or pod.ordinal < start:
                    continue
                if ep.hostname is not None and ep.hostname.split(".", 1)[1] == svc_fqdn:
                    by_ordinal.setdefault(pod.ordinal, []).append(
                        Endpoint(ep.address, port, ep.hostname, pod.ordinal, ttl=ep.ttl)
                    )
        wanted = replicas if replicas is not None else len(by_ordinal)
        out: list[Endpoint] = []
        misses = found = 0
        ordinal = start
        # The same walk as the real lookup: stop at the count or after max_gap misses.
        while found < wanted and misses < max(max_gap, 1) and ordinal <= max(by_ordinal, default=start):
            if ordinal in by_ordinal:
                out.extend(dict.fromkeys(by_ordinal[ordinal]))
                found += 1
                misses = 0
            else:
                misses += 1
            ordinal += 1
        return EndpointSet(out, name=svc_fqdn)


def _answered(answer: Callable[[], EndpointSet]) -> Plan[EndpointSet]:
    """A lookup plan that asks no question: its result is *answer()* (or its error)."""
    return answer()
    yield  # pragma: no cover - makes this a generator that asks nothing


def _context(namespace: str | None, cluster_domain: str) -> KubernetesContext:
    # A placeholder server: a StaticResolver never sends a packet.
    return KubernetesContext((Nameserver("127.0.0.1", 53),), namespace, cluster_domain)


class StaticResolver(ResolveMethods, _StaticBase):
    """A :class:`~headless_client.Resolver` answering from a table, without DNS.

    Use it wherever a resolver is taken (``HeadlessService(..., resolver=StaticResolver(...))``)
    to test code that picks and connects, and change the table while the service runs::

        r = StaticResolver({"web.prod": ["10.0.0.1:8080", "10.0.0.2:8080"]})
        r = StaticResolver({"web.prod": statefulset_endpoints("web", "prod", ["10.0.0.1", "10.0.0.2"])})
        r.add("web.prod", "10.0.0.3:8080"); r.remove("web.prod", "10.0.0.1"); r.delete("web.prod")
        r.set_error("SERVFAIL")          # every resolution fails until set_error(None)

    Semantics: ``resolve(service, port)`` returns the configured set (qualified like the
    real resolver: ``web.prod`` and ``web.prod.svc.cluster.local`` are the same key). An
    ``int`` port gives every endpoint that port, as an A/AAAA lookup does; a named port
    returns the endpoints as configured. A missing or empty service raises
    :class:`~headless_client.ServiceNotFound` (NXDOMAIN, as Kubernetes answers for zero
    ready pods). ``resolve_pod``, ``resolve_host`` and ``resolve_statefulset`` find pods
    by the ``hostname`` of configured endpoints. Arguments are validated exactly as by
    :class:`~headless_client.Resolver`. Thread-safe.

    Args:
        services: ``{service name: endpoints}`` to start with.
        namespace: the namespace of one-label names (default ``"default"``).
        cluster_domain: the cluster domain names are qualified with.
        timeout: reported as the resolver's timeout (services size waits by it).
    """

    def as_async(self) -> AsyncStaticResolver:
        """An :class:`AsyncStaticResolver` over the same table (changes show in both)."""
        return AsyncStaticResolver(
            namespace=self.namespace, cluster_domain=self.cluster_domain, timeout=self.timeout,
            _table=self._table,
        )

    def _run_lookup(self, lookup: Lookup[T]) -> T:
        return _answer_now(lookup)


class AsyncStaticResolver(AsyncResolveMethods, _StaticBase):
    """:class:`StaticResolver` for asyncio (for ``AsyncHeadlessService``): the same
    arguments, table controls and answers, with the resolving methods awaited."""

    async def _run_lookup(self, lookup: Lookup[T]) -> T:
        return _answer_now(lookup)
