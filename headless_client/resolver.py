"""The synchronous resolver: Kubernetes service names -> :class:`EndpointSet`.

:class:`BaseResolver` holds configuration and turns calls into lookups: a plan
(:mod:`headless_client.lookup`) with where to send its questions
(:class:`~headless_client.exchange.Lookup`). :class:`Resolver` runs them with the blocking
driver (:func:`headless_client.transport.run_lookup`), which carries each batch of
questions to the nameservers as :class:`~headless_client.exchange.Exchange` decides: a
batch of 1000 questions costs one round of I/O, not 1000.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Final, Literal, TypeVar

from ._resolve_methods import ResolveMethods
from ._validate import seconds
from .endpoints import EndpointSet
from .environment import KubernetesContext, kubernetes_context
from .errors import InvalidName
from .exchange import MAX_TIMEOUT, ExchangeConfig, ExchangePolicy, Lookup
from .interrupt import Interrupt
from .lookup import LookupOptions, Plan, plan_addresses, plan_pod, plan_srv, plan_statefulset
from .names import (
    DEFAULT_CLUSTER_DOMAIN,
    pod_fqdn,
    service_fqdn,
    srv_name,
    validate_label,
    validate_ordinal,
)
from .records import DEFAULT_MAX_RECORDS, Network, parse_networks
from .transport import run_lookup
from .wire import Nameserver, parse_nameserver

__all__ = ["BaseResolver", "Interrupt", "KubernetesContext", "Resolver", "kubernetes_context"]


log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT: Final = 2.0
#: Services whose last logged drops are remembered (bounds the memory of a long process).
_DROP_MEMORY = 4096


class BaseResolver:
    """Configuration and lookup plans shared by :class:`Resolver` and ``AsyncResolver``.

    Args:
        nameservers: ``["ip", "ip:port", "[v6]:port"]``; ``None`` reads the system's
            resolv.conf (and, in a pod, the namespace and cluster domain with it).
        timeout: the most one call may take, across all nameservers, in seconds.
        cluster_domain: the cluster's DNS zone; default: from resolv.conf's ``svc.``
            search entry, else ``cluster.local``.
        namespace: the namespace for one-label service names; default: the pod's own.
        max_records: records accepted in one answer (a bound against hostile servers).
        check_targets: drop SRV targets outside the service's own name (logged).
        allowed_networks: CIDRs (``["10.244.0.0/16", "fd00::/8"]``) that pod addresses
            must be in. Addresses outside all of them, in A/AAAA answers, SRV glue and
            SRV target lookups, are dropped and logged at WARNING; the rest of the answer
            is used. ``None`` (default): any address the default screen lets through.
        context: an explicit :class:`KubernetesContext` instead of reading the system's.
        cluster_ip: what a normal (ClusterIP, not headless) Service gives, since DNS then
            answers its one virtual IP instead of the pods: ``"error"`` (default) raises
            :class:`~headless_client.errors.NotHeadless` naming the Service; ``"warn"``
            logs one WARNING per Service and returns the virtual IP as a single endpoint.
            Detected from the SRV answer (its target is the Service name itself); with a
            port number, the Service name's SRV is asked once per Service when the A/AAAA
            answer has a single address per family.
        exchange: how batches of questions are carried (UDP/TCP choice, retransmits,
            questions per TCP connection...); default :class:`ExchangePolicy()`.
        screen_addresses: drop, from every answer, addresses no pod has: unspecified
            (``0.0.0.0``, ``::``), multicast, broadcast, link-local (``169.254.0.0/16``
            with the cloud metadata service, ``fe80::/10``), SRV records with port 0 and,
            unless every nameserver is itself on loopback (tests, local development),
            loopback addresses. Dropped records are logged once per change, naming the
            service. ``False`` turns this screen off (``allowed_networks`` still applies).

    Raises:
        InvalidName: a nameserver string, the cluster domain or namespace is invalid, or
            a timeout that is not a finite positive number of seconds (at most one day),
            or max_records is not a positive int.
    """

    def __init__(
        self,
        nameservers: Sequence[str] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        cluster_domain: str | None = None,
        namespace: str | None = None,
        max_records: int = DEFAULT_MAX_RECORDS,
        check_targets: bool = True,
        allowed_networks: Iterable[str | Network] | None = None,
        context: KubernetesContext | None = None,
        cluster_ip: Literal["error", "warn"] = "error",
        exchange: ExchangePolicy | None = None,
        screen_addresses: bool = True,
    ) -> None:
        if cluster_ip not in ("error", "warn"):
            raise InvalidName(f"cluster_ip must be 'error' or 'warn': {cluster_ip!r}")
        self.cluster_ip: Literal["error", "warn"] = cluster_ip
        self._headless: set[str] = set()
        self._cluster_ip_warned: set[str] = set()
        # Finite and at most an hour: an infinite timeout would overflow every wait that
        # derives from it (refresh(), wait_for(), close()).
        timeout = seconds("timeout", timeout, maximum=min(3600.0, MAX_TIMEOUT))
        if exchange is not None and not isinstance(exchange, ExchangePolicy):
            raise InvalidName(
                f"exchange must be an ExchangePolicy, not {type(exchange).__name__}: {exchange!r}"
            )
        if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
            raise InvalidName(f"max_records must be a positive int: {max_records!r}")
        if isinstance(nameservers, str):
            raise InvalidName(f"nameservers must be a list of strings, not a str: {nameservers!r}")
        if nameservers is not None:
            parsed = tuple(parse_nameserver(ns) for ns in nameservers)
            if not parsed:
                raise InvalidName("nameservers is empty; pass None to use the system's resolv.conf")
            if context is None:
                context = KubernetesContext(parsed, None, None)
            else:
                context = KubernetesContext(parsed, context.namespace, context.cluster_domain)
        elif context is None:
            context = kubernetes_context()
        self.nameservers: tuple[Nameserver, ...] = context.nameservers
        self.timeout = float(timeout)
        domain = cluster_domain or context.cluster_domain or DEFAULT_CLUSTER_DOMAIN
        # Validates the domain once, here, instead of on every call.
        service_fqdn("x.y", cluster_domain=domain)
        self.cluster_domain: str = domain.rstrip(".")
        if namespace is not None:
            validate_label(namespace, "namespace")
        self.namespace: str | None = namespace or context.namespace
        self.max_records = max_records
        self.check_targets = check_targets
        self.allowed_networks: tuple[Network, ...] | None = (
            None if allowed_networks is None else parse_networks(allowed_networks)
        )
        self.exchange_policy: ExchangePolicy = exchange if exchange is not None else ExchangePolicy()
        self.screen_addresses = bool(screen_addresses)
        self._local = threading.local()
        # What was last logged as dropped, per lookup: logged again only when it changes.
        self._drops_logged: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}
        self._drops_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(nameservers={[str(n) for n in self.nameservers]}, "
            f"timeout={self.timeout}, cluster_domain={self.cluster_domain!r}, "
            f"namespace={self.namespace!r})"
        )

    @property
    def exchange_config(self) -> ExchangeConfig:
        """The nameservers, timeout and exchange policy this resolver's lookups use now."""
        return ExchangeConfig(self.nameservers, self.timeout, self.exchange_policy)

    # -- naming -------------------------------------------------------------------

    def qualify(self, service: str, namespace: str | None = None) -> str:
        """The absolute FQDN (without the dot) of *service* as this resolver sees it."""
        return service_fqdn(service, namespace or self.namespace, cluster_domain=self.cluster_domain)

    def _options(self) -> LookupOptions:
        return LookupOptions(
            cname_domain=self.cluster_domain,
            max_records=self.max_records,
            check_targets=self.check_targets,
            allowed_networks=self.allowed_networks,
            screen_addresses=self.screen_addresses,
            allow_loopback=all(ipaddress.ip_address(ns.host).is_loopback for ns in self.nameservers),
            cluster_ip=self.cluster_ip,
            headless=self._headless,
        )

    def _log_dropped(self, options: LookupOptions, fqdn: str, key: str | None = None) -> None:
        """Log what the plan dropped, once per change for the same lookup *key*; drains the
        lists, so a second call logs nothing."""
        for service in dict.fromkeys(options.cluster_ips):
            if service not in self._cluster_ip_warned:
                self._cluster_ip_warned.add(service)
                log.warning(
                    "service %s is not headless (it has a cluster IP): using its virtual IP as "
                    "the only endpoint, with no pod identities (cluster_ip='warn')",
                    service,
                    extra={"service": service, "pod": None, "address": None, "reason": "not_headless"},
                )
        options.cluster_ips.clear()
        lines = _drop_messages(options, fqdn)
        memo = (fqdn, key or "")
        with self._drops_lock:
            if self._drops_logged.get(memo, ()) == lines:
                return
            if lines:
                if len(self._drops_logged) >= _DROP_MEMORY:
                    self._drops_logged.pop(next(iter(self._drops_logged)))
                self._drops_logged[memo] = lines
            else:
                self._drops_logged.pop(memo, None)
        for line, why in lines:
            # "reason:addresses" carries the addresses a screen dropped, for the record.
            reason, _, address = why.partition(":")
            log.warning(
                "%s", line, extra={"service": fqdn, "pod": None, "address": address or None, "reason": reason}
            )

    def _logged(self, plan: Plan[T], options: LookupOptions, fqdn: str, key: str | None = None) -> Plan[T]:
        """*plan*, logging what it dropped when it ends (answered, failed or abandoned)."""
        try:
            return (yield from plan)
        finally:
            self._log_dropped(options, fqdn, key)

    # -- lookups: a plan and where to send it, for either driver -------------------------------

    def service_lookup(
        self,
        service: str,
        port: int | str,
        *,
        protocol: str = "tcp",
        namespace: str | None = None,
        previous: EndpointSet | None = None,
    ) -> Lookup[EndpointSet]:
        """The lookup behind :meth:`Resolver.resolve`, for a driver to run.

        Args:
            previous: the last set this service resolved to: a refresh then asks only what
                may have changed (see :func:`headless_client.lookup.plan_srv`).

        Raises:
            InvalidName: a bad service name, port or protocol.
        """
        plan, _, fqdn = self._resolve_plan(service, port, protocol, namespace, previous)
        return Lookup(plan, self.exchange_config, fqdn)

    def pod_lookup(
        self,
        statefulset: str,
        ordinal: int,
        *,
        namespace: str | None = None,
        service: str | None = None,
        port: int | None = None,
    ) -> Lookup[EndpointSet]:
        """The lookup behind :meth:`Resolver.resolve_pod_all` (every endpoint of one pod).

        Raises:
            InvalidName: a bad name, ordinal or port, or no namespace.
        """
        plan = self._pod_plan(statefulset, ordinal, namespace, service, port)
        return Lookup(plan, self.exchange_config, f"{statefulset}-{ordinal}")

    def host_lookup(self, hostname: str, port: int = 0) -> Lookup[EndpointSet]:
        """The lookup behind :meth:`Resolver.resolve_host`.

        Raises:
            InvalidName: a bad host name or port.
        """
        return Lookup(self._host_plan(hostname, port), self.exchange_config, hostname)

    def statefulset_lookup(
        self,
        statefulset: str,
        *,
        namespace: str | None = None,
        service: str | None = None,
        port: int | None = None,
        start: int = 0,
        replicas: int | None = None,
        max_gap: int = 8,
    ) -> Lookup[EndpointSet]:
        """The lookup behind :meth:`Resolver.resolve_statefulset`.

        Raises:
            InvalidName: a bad name, ordinal, count or port, or no namespace.
        """
        validate_label(statefulset, "statefulset")
        validate_ordinal(start, "start")
        if replicas is not None:
            validate_ordinal(replicas, "replicas")
        validate_ordinal(max_gap, "max_gap")
        ns = self._namespace(namespace, statefulset)
        svc = service or statefulset
        svc_fqdn = service_fqdn(svc, ns, cluster_domain=self.cluster_domain)
        # Enough candidates for every pod plus a run of gaps, and no more: the walk is bounded.
        limit = (replicas if replicas is not None else 10_000) + 2 * max(max_gap, 1)
        names = (
            pod_fqdn(statefulset, i, service=svc, namespace=ns, cluster_domain=self.cluster_domain)
            for i in range(start, start + limit)
        )
        options = self._options()
        plan = plan_statefulset(
            svc_fqdn, list(names), _check_port(0 if port is None else port), replicas,
            options, max_gap=max(max_gap, 1),
        )
        return Lookup(self._logged(plan, options, svc_fqdn), self.exchange_config, statefulset)

    # -- plans --------------------------------------------------------------------

    def _resolve_plan(
        self,
        service: str,
        port: int | str,
        protocol: str,
        namespace: str | None,
        previous: EndpointSet | None = None,
    ) -> tuple[Plan[EndpointSet], LookupOptions, str]:
        fqdn = self.qualify(service, namespace)
        options = self._options()
        if isinstance(port, bool) or not isinstance(port, (int, str)):
            raise InvalidName(f"port must be an int or a port name, not {type(port).__name__}: {port!r}")
        if isinstance(port, int):
            _check_port(port)
            plan = plan_addresses(fqdn, port, options, previous)
            return self._logged(plan, options, fqdn, "A"), options, fqdn
        plan = plan_srv(srv_name(port, protocol, fqdn), fqdn, options, previous)
        return self._logged(plan, options, fqdn, f"SRV {port}/{protocol}"), options, fqdn

    def _pod_plan(
        self,
        statefulset: str,
        ordinal: int,
        namespace: str | None,
        service: str | None,
        port: int | None,
    ) -> Plan[EndpointSet]:
        fqdn = pod_fqdn(
            statefulset,
            ordinal,
            service=service,
            namespace=self._namespace(namespace, statefulset),
            cluster_domain=self.cluster_domain,
        )
        options = self._options()
        return self._logged(plan_pod(fqdn, _check_port(0 if port is None else port), options), options, fqdn)

    def _host_plan(self, hostname: str, port: int) -> Plan[EndpointSet]:
        fqdn = service_fqdn(hostname if hostname.endswith(".") else hostname + ".")
        options = self._options()
        return self._logged(plan_pod(fqdn, _check_port(port), options), options, fqdn)

    def _namespace(self, namespace: str | None, what: str) -> str:
        ns = namespace or self.namespace
        if ns is None:
            raise InvalidName(f"no namespace for {what!r}: pass namespace= (not running in a pod)")
        return ns


def _check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidName(f"port must be an int in 0..65535 or a port name: {port!r}")
    return port


class Resolver(ResolveMethods, BaseResolver):
    """Resolve headless services, pods and StatefulSets with blocking I/O.

    Thread-safe: calls share no mutable state. See :class:`BaseResolver` for arguments;
    the resolve methods come from :class:`~headless_client._resolve_methods.ResolveMethods`.
    """

    # -- I/O ------------------------------------------------------------------------

    @contextlib.contextmanager
    def interruptible(self, interrupt: Interrupt) -> Iterator[None]:
        """Within the block, resolutions made from this thread end early (with a
        :class:`~headless_client.ResolutionError`) once *interrupt* is set.

        A service's refresher runs a blocking ``resolve()`` (a subclass that overrides it)
        inside this, so ``close()`` does not wait for a query to a black-holed server.
        """
        previous = getattr(self._local, "interrupt", None)
        self._local.interrupt = interrupt
        try:
            yield
        finally:
            self._local.interrupt = previous

    _interruptible = interruptible  # 0.1.0's private name, kept for subclasses and tests

    def _run_lookup(self, lookup: Lookup[T]) -> T:
        return run_lookup(lookup, interrupt=getattr(self._local, "interrupt", None))

    def _run(self, plan: Plan[T]) -> T:
        """Run a bare plan with this resolver's exchange settings (kept for subclasses)."""
        return self._run_lookup(Lookup(plan, self.exchange_config))


def _drop_messages(options: LookupOptions, fqdn: str) -> tuple[tuple[str, str], ...]:
    """What a plan dropped or could not get, as ``(log line, reason)`` in a stable order
    (answers come shuffled), and the lists drained."""
    lines: list[tuple[str, str]] = []
    for target in sorted({t.target for t in options.dropped}):
        lines.append((
            f"ignoring SRV target {target or '.'!r} of {fqdn}: outside the service's domain "
            "or not a host name",
            "srv_target_dropped",
        ))
    zero = sorted({t.target for t in options.port_zero})
    if zero:
        lines.append(
            (f"ignoring {len(zero)} SRV record(s) of {fqdn} with port 0: {_shown(zero)}", "port_zero")
        )
    unsafe = sorted({f"{address} ({why}, {name})" for name, address, why in options.unsafe})
    if unsafe:
        lines.append((
            f"ignoring {len(unsafe)} unsafe address(es) of {fqdn}: {_shown(unsafe)} "
            "(screen_addresses=False accepts them)",
            "unsafe_address",
        ))
    rejected = sorted({f"{address} ({name})" for name, address in options.rejected})
    if rejected:
        addresses = ", ".join(sorted({address for _, address in options.rejected}))
        lines.append((
            f"ignoring {len(rejected)} address(es) of {fqdn} outside allowed_networks: {_shown(rejected)}",
            f"address_dropped:{addresses}",
        ))
    for name, rdtype, reason in sorted({(n, f.rdtype, f.reason) for n, f in options.partial}):
        what = {1: "A", 28: "AAAA"}.get(rdtype, str(rdtype))
        lines.append((
            f"{fqdn}: the {what} lookup of {name} failed ({reason}); using the other address family",
            "family_failed",
        ))
    options.dropped.clear()
    options.port_zero.clear()
    options.unsafe.clear()
    options.rejected.clear()
    options.partial.clear()
    return tuple(lines)


def _shown(items: list[str]) -> str:
    more = f" and {len(items) - 10} more" if len(items) > 10 else ""
    return ", ".join(items[:10]) + more
