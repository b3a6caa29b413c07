"""FakeClusterDNS: an in-process DNS server shaped like CoreDNS, with optional live pods.

See :mod:`headless_client.testing` for the overview and examples.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from typing_extensions import Self

from ..aio import AsyncResolver
from ..errors import InvalidName
from ..names import DEFAULT_CLUSTER_DOMAIN, service_fqdn, validate_label, validate_ordinal
from ..resolver import Resolver
from ._loop import Fault, Listener, Loop, PodMode, Protocol
from ._zone import Zone, build_zone, dashed
from .model import (
    STATEFULSET_LABEL,
    ClusterModel,
    PodSpec,
    ServicePort,
    ServiceSpec,
    ServiceType,
    StatefulSetSpec,
)

__all__ = ["FakeClusterDNS", "FakePod", "PodHandler", "PodReply"]

PodReply = str | tuple[int, str] | None
"""What a :data:`PodHandler` returns: the reply text, ``(HTTP status, body)``, or ``None``
for the default (the pod's name)."""

PodHandler = Callable[["FakePod", str], PodReply]
"""``handler(pod, request) -> reply`` for serving pods. *request* is the line received
(``tcp`` pods) or ``"METHOD /path"`` (``http`` pods). It runs on the server thread: keep it
quick, and never change the cluster from it."""

_FAULTS = (None, "servfail", "refused", "drop", "truncate", "unsynced")
_PROTOCOLS = (None, "tcp", "http")


@dataclass(frozen=True, slots=True)
class FakePod:
    """A snapshot of one pod (or endpoint) of the fake cluster.

    ``hostname`` is the FQDN DNS gives the pod (``web-0.web.prod.svc.cluster.local``, or
    the dashed-address name of an endpoint without a hostname). ``serving`` is ``None``
    for a DNS-only pod, else the state of its server: ``"serve"``, ``"refuse"`` (killed)
    or ``"hang"``. ``connections`` and ``requests`` count what its server received.
    """

    name: str
    namespace: str
    service: str
    statefulset: str | None
    ordinal: int | None
    address: str
    port: int
    hostname: str
    ready: bool
    serving: PodMode | None = None
    protocol: Protocol | None = None
    connections: int = 0
    requests: int = 0

    def __str__(self) -> str:
        return f"{self.name} ({self.address}:{self.port})"


@dataclass(eq=False)
class _Serving:
    """How the pods of one StatefulSet are served (``serve=``)."""

    protocol: Protocol
    port: int


class FakeClusterDNS:
    """A fake Kubernetes cluster DNS (``cluster.local``) on loopback, for tests and demos.

    Serves UDP and TCP on ``127.0.0.1`` and a free port from a daemon thread, with the
    records CoreDNS gives headless services: the service name's A/AAAA (one per ready
    endpoint), each pod's own name, SRV per named port with glue (``0 floor(100/N) port
    target``), PTR, and NXDOMAIN for unknown names *and for services with zero ready pods*.
    A UDP answer bigger than the client's EDNS size comes back empty with TC set (the
    client retries over TCP, where it is complete). All methods are thread-safe.

    Pods can also be *served*: with ``serve="tcp"`` each pod gets a TCP server on its own
    loopback address (``127.x.y.z``: all of 127/8 is local on Linux) and the service port,
    which greets each connection with ``<pod name>\\n`` and answers each line it receives
    with one line; ``serve="http"`` answers HTTP/1.1 requests with the pod name (headers
    ``X-Pod`` and ``X-Request-Host``). :meth:`kill_pod` makes a pod refuse connections
    while DNS still lists it (the crash the endpoints controller has not noticed yet).

    Args:
        cluster_domain: the zone served.
        ttl: TTL of every record, and of negative answers (seconds).
        address_base: first address handed to pods (default: a random ``127.x.y.1`` so
            clusters of parallel test processes do not collide).
        host: the loopback address the DNS server binds.
        namespace: the default namespace of every method.

    >>> with FakeClusterDNS() as cluster:                          # doctest: +SKIP
    ...     cluster.add_statefulset("web", "prod", 3, serve="tcp")
    ...     with HeadlessService("web.prod", port="http", resolver=cluster.resolver()) as svc:
    ...         cluster.scale("web", "prod", 5)
    ...         svc.wait_for(5, timeout=5)
    """

    def __init__(
        self,
        *,
        cluster_domain: str = DEFAULT_CLUSTER_DOMAIN,
        ttl: int = 1,
        address_base: str | None = None,
        host: str = "127.0.0.1",
        namespace: str = "default",
        model: ClusterModel | None = None,
        max_tcp_queries: int | None = None,
    ) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
            raise InvalidName(f"ttl must be an int >= 0: {ttl!r}")
        service_fqdn("x.y", cluster_domain=cluster_domain)  # validates the domain
        self.cluster_domain = cluster_domain.rstrip(".")
        self.ttl = ttl
        self.namespace = validate_label(namespace, "namespace")
        if address_base is None:
            rng = random.SystemRandom()
            address_base = f"127.{rng.randrange(64, 255)}.{rng.randrange(0, 256)}.1"
        self.address_base = _check_address(address_base, "address_base")
        self._host = _check_address(host, "host")
        self._lock = threading.RLock()
        if model is None:
            model = ClusterModel(address_base=self.address_base)
        self.model: ClusterModel = model
        """The cluster this DNS serves; change it here or through this object's methods
        (a :class:`~headless_client.testing.kube_api.FakeKubeAPI` may serve the same model)."""
        self._serving: dict[tuple[str, str], _Serving] = {}
        self._listeners: dict[tuple[str, str], Listener] = {}
        self._handler: PodHandler | None = None
        self._zone: Zone = build_zone(self.cluster_domain, (), (), (), ttl)
        self._loop = Loop(self._host, lambda: self._zone)
        self.max_tcp_queries = max_tcp_queries
        self._unsubscribe = self.model.subscribe(lambda events: self._publish())
        self._publish()
        self._started = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the DNS server (UDP and TCP, one free port) and start its thread."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this FakeClusterDNS is closed")
            if not self._started:
                self._loop.start()
                self._started = True
        return self

    def close(self) -> None:
        """Stop every pod server and the DNS server; harmless to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._unsubscribe()
            if self._started:
                self._loop.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.nameserver if self._started and not self._closed else "not running"
        return f"<FakeClusterDNS {self.cluster_domain} {where} {len(self.model.services())} services>"

    @property
    def host(self) -> str:
        """The address the DNS server listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The DNS server's port (UDP and TCP)."""
        self._require_running()
        return self._loop.port

    @property
    def nameserver(self) -> str:
        """``"127.0.0.1:PORT"``: what to give ``Resolver([...])`` or ``--nameserver``."""
        return f"{self._host}:{self.port}"

    def resolver(self, **kwargs: Any) -> Resolver:
        """A :class:`~headless_client.Resolver` asking this server (same keyword arguments).

        Defaults: ``timeout=2.0``, this cluster's domain and default namespace.
        """
        kwargs.setdefault("timeout", 2.0)
        kwargs.setdefault("cluster_domain", self.cluster_domain)
        kwargs.setdefault("namespace", self.namespace)
        return Resolver([self.nameserver], **kwargs)

    def async_resolver(self, **kwargs: Any) -> AsyncResolver:
        """An :class:`~headless_client.AsyncResolver` asking this server (see :meth:`resolver`)."""
        kwargs.setdefault("timeout", 2.0)
        kwargs.setdefault("cluster_domain", self.cluster_domain)
        kwargs.setdefault("namespace", self.namespace)
        return AsyncResolver([self.nameserver], **kwargs)

    # -- faults and introspection ----------------------------------------------------

    @property
    def fault(self) -> Fault | None:
        """Make answers fail: ``"servfail"``, ``"refused"``, ``"drop"`` (no answer: the
        client times out), ``"truncate"`` (every UDP answer has TC set), ``"unsynced"``
        (as CoreDNS before its informers have synced with the API: no Service is known
        and every such name gets SERVFAIL), or ``None``."""
        return self._loop.fault

    @fault.setter
    def fault(self, value: Fault | None) -> None:
        if value not in _FAULTS:
            raise InvalidName(f"fault must be one of {_FAULTS}: {value!r}")
        self._loop.fault = value

    @property
    def glue(self) -> bool:
        """Put the targets' addresses in SRV answers (default ``True``). ``False`` makes
        clients look every target up themselves, as with BIND above 13 targets."""
        return self._loop.glue

    @glue.setter
    def glue(self, value: bool) -> None:
        self._loop.glue = bool(value)

    @property
    def max_tcp_queries(self) -> int | None:
        """Questions answered on one TCP connection before the server closes it
        (questions pipelined beyond are dropped unanswered), as miekg/dns did by default
        (128) in CoreDNS before 1.10.1 and CoreDNS's ``timeouts { maxtcpqueries N }``
        does; ``None`` (default): no cap."""
        return self._loop.max_tcp_queries

    @max_tcp_queries.setter
    def max_tcp_queries(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidName(f"max_tcp_queries must be a positive int or None: {value!r}")
        self._loop.max_tcp_queries = value

    @property
    def zone(self) -> Zone:
        """The records served now (an immutable snapshot; ``zone.rrsets()`` lists them),
        for mirroring this cluster into another DNS server."""
        return self._zone

    @property
    def queries(self) -> list[tuple[str, str, str]]:
        """Questions received so far, oldest first (at most 10 000):
        ``(name with trailing dot, type, "udp" | "tcp")``."""
        return list(self._loop.queries)

    def clear_queries(self) -> None:
        """Forget the recorded questions."""
        self._loop.queries.clear()

    def set_handler(self, handler: PodHandler | None) -> None:
        """Answer serving pods' requests with ``handler(pod, request)`` (``None``: the name)."""
        if handler is not None and not callable(handler):
            raise TypeError(f"handler must be callable: {handler!r}")
        self._handler = handler

    # -- services and StatefulSets ----------------------------------------------------

    def add_service(
        self,
        name: str,
        namespace: str | None = None,
        *,
        port_name: str | None = "http",
        port: int = 8080,
        protocol: str = "tcp",
        publish_not_ready: bool = False,
        type: ServiceType = "headless",
        ports: Sequence[tuple[str | None, int] | tuple[str | None, int, str]] | None = None,
        statefulset: str | None = None,
        ip_families: Sequence[str] = ("IPv4",),
        cluster_ips: Sequence[str] | None = None,
        external_name: str | None = None,
    ) -> None:
        """Create a Service (default: headless, no endpoints yet, so it answers NXDOMAIN).

        ``port_name=None`` makes the port unnamed: no SRV record, like Kubernetes.
        *ports* replaces the single port: ``[("http", 80), (None, 9000), ("dns", 53, "udp")]``
        (``[]``: a Service without ports). *statefulset* makes it select that
        StatefulSet's pods without governing it (a second headless Service: its endpoints
        have no hostname, so only dashed-address names). *type* ``"ClusterIP"`` gives a
        virtual IP per family (*cluster_ips*, else allocated); ``"ExternalName"`` a CNAME
        to *external_name*. *ip_families* ``("IPv4", "IPv6")`` makes it dual-stack.
        """
        ns = self._ns(namespace)
        validate_label(name, "service")
        validate_label(protocol, "protocol")
        if ports is None:
            if port_name:
                validate_label(port_name, "port name")
            _check_port(port, allow_zero=False)
            port_specs = [ServicePort(port_name or "", port, protocol.upper())]
        else:
            port_specs = [ServicePort(p[0] or "", p[1], (p[2] if len(p) > 2 else "TCP").upper())
                          for p in ports]
        selector = {STATEFULSET_LABEL: validate_label(statefulset, "statefulset")} if statefulset else None
        self.model.add_service(
            name, ns, type=type, ports=port_specs if type != "ExternalName" else (),
            selector=selector, publish_not_ready=publish_not_ready, ip_families=ip_families,
            cluster_ips=cluster_ips, external_name=external_name,
        )  # fmt: skip

    def add_statefulset(
        self,
        name: str,
        namespace: str | None = None,
        replicas: int = 1,
        *,
        port_name: str | None = "http",
        port: int | None = None,
        protocol: str = "tcp",
        service: str | None = None,
        start: int = 0,
        address_base: str | None = None,
        serve: Protocol | None = None,
        publish_not_ready: bool = False,
        ip_families: Sequence[str] = ("IPv4",),
    ) -> list[FakePod]:
        """A StatefulSet of *replicas* ready pods ``<name>-<start>``... behind a headless
        service (*service*, default *name*; created if missing, else its port is used).

        Pods get consecutive free addresses from *address_base* (default: the cluster's).
        ``serve="tcp"`` or ``"http"`` starts a server per pod on its address and the
        service port. *port* defaults to 8080, or to a free port (chosen by binding the
        first pod) when serving, so a local listener on ``*:8080`` cannot get in the way.
        *ip_families* ``("IPv4", "IPv6")`` makes a created service (and the pods)
        dual-stack. Returns the pods.
        """
        if port is None:
            port = 0 if serve is not None else 8080
        ns = self._ns(namespace)
        validate_label(name, "statefulset")
        validate_ordinal(replicas, "replicas")
        validate_ordinal(start, "start")
        svc_name = validate_label(service or name, "service")
        if serve not in _PROTOCOLS:
            raise InvalidName(f"serve must be one of {_PROTOCOLS}: {serve!r}")
        base = _check_address(address_base, "address_base") if address_base is not None else None
        _check_port(port, allow_zero=serve is not None)
        if port_name:
            validate_label(port_name, "port name")
        with self._lock:
            try:
                self.model.statefulset(name, ns)
            except LookupError:
                pass
            else:
                raise InvalidName(f"statefulset {name!r} already exists in namespace {ns!r}")
            existing = self._service_spec(svc_name, ns)
            first_listener: Listener | None = None
            fixed: dict[int, list[str]] = {}
            if existing is None and serve is not None and port == 0 and replicas:
                # A free port, chosen by binding the first pod's server.
                first = self.model.free_address(4, base)
                first_listener = self._bind(ns, f"{name}-{start}", first, 0, serve)
                port = first_listener.port
                fixed[start] = [first]
            try:
                with self.model.batch():
                    if existing is None:
                        self.model.add_service(
                            svc_name, ns,
                            ports=[ServicePort(port_name or "", port or 0, protocol.upper())] if port else [],
                            publish_not_ready=publish_not_ready, ip_families=ip_families,
                        )  # fmt: skip
                    elif existing.ports:
                        port = existing.ports[0].port
                    self.model.add_statefulset(
                        name, ns, replicas, service_name=svc_name, start=start, address_base=base,
                        addresses=fixed,
                    )  # fmt: skip
                if serve is not None:
                    self._serving[(ns, name)] = _Serving(serve, port or 0)
                    if first_listener is not None:
                        self._listeners[(ns, f"{name}-{start}")] = first_listener
                    self._sync_listeners()
            except BaseException:
                if first_listener is not None:
                    self._loop.call(lambda: self._loop.close_listener(first_listener))
                self._serving.pop((ns, name), None)
                with contextlib.suppress(LookupError):
                    self.model.delete_statefulset(name, ns)
                if existing is None:
                    with contextlib.suppress(LookupError):
                        self.model.delete_service(svc_name, ns)
                raise
            return self._pods_of(name, ns)

    def scale(self, statefulset: str, namespace: str | None = None, replicas: int = 1) -> list[FakePod]:
        """Scale a StatefulSet to *replicas*: ordinals ``start..start+replicas-1`` exist
        afterwards (missing ones are created), higher ones are removed. Returns its pods."""
        validate_ordinal(replicas, "replicas")
        ns = self._ns(namespace)
        with self._lock:
            self.model.scale(statefulset, ns, replicas)
            self._sync_listeners()
            return self._pods_of(statefulset, ns)

    def add_pod(
        self,
        statefulset: str,
        namespace: str | None = None,
        ordinal: int | None = None,
        *,
        address: str | None = None,
        ready: bool = True,
    ) -> FakePod:
        """Add one pod to a StatefulSet (default ordinal: one above the highest)."""
        ns = self._ns(namespace)
        with self._lock:
            sts = self.model.statefulset(statefulset, ns)
            if ordinal is None:
                ordinals = [p.ordinal for p in self.model.statefulset_pods(statefulset, ns)]
                ordinal = max((o for o in ordinals if o is not None), default=sts.start - 1) + 1
            validate_ordinal(ordinal, "ordinal")
            addresses = None if address is None else [_check_address(address, "address")]
            pod = self.model.add_statefulset_pod(statefulset, ns, ordinal, addresses, ready=ready)
            self._sync_listeners()
            return self._snapshot(pod, sts.service_name)

    def add_endpoint(
        self, service: str, namespace: str | None = None, address: str | None = None, *, ready: bool = True
    ) -> FakePod:
        """Add an endpoint without a hostname (a Deployment's pod): DNS names it by its
        dashed address (``10-244-1-20.<svc>...``)."""
        ns = self._ns(namespace)
        with self._lock:
            spec = self._service_spec(service, ns)
            if spec is None:
                raise LookupError(f"no service {service!r} in namespace {ns!r} (add_service first)")
            addr = _check_address(address, "address") if address is not None else self.model.free_address(4)
            family = "IPv6" if ipaddress.ip_address(addr).version == 6 else "IPv4"
            if family not in spec.ip_families:  # the Service becomes dual-stack to list it
                spec = self.model.update_service(service, ns, ip_families=(*spec.ip_families, family))
            label = dashed(addr)
            name = label if label[0].isalnum() and label[-1].isalnum() else f"ip-{label.strip('-')}"
            pod = self.model.add_pod(name, ns, [addr], ready=ready, labels=dict(spec.selector))
            return self._snapshot(pod, service)

    def remove_pod(
        self, statefulset: str, namespace: str | None = None, ordinal: int | None = None
    ) -> FakePod:
        """Delete one pod (default: the highest ordinal): gone from DNS, its server closed."""
        with self._lock:
            pod, service = self._sts_pod(statefulset, namespace, ordinal)
            snap = self._snapshot(pod, service)
            self.model.delete_pod(pod.name, pod.namespace)
            self._sync_listeners()
            return snap

    def remove_endpoint(self, service: str, namespace: str | None = None, address: str = "") -> FakePod:
        """Delete the endpoint of *service* with *address*."""
        ns = self._ns(namespace)
        with self._lock:
            spec = self._service_spec(service, ns)
            pods = self.model.selected_pods(spec) if spec is not None else []
            pod = next((p for p in pods if address in p.addresses), None)
            if spec is None or pod is None:
                raise LookupError(f"no endpoint {address!r} in service {service!r} of namespace {ns!r}")
            snap = self._snapshot(pod, service)
            self.model.delete_pod(pod.name, ns)
            self._sync_listeners()
            return snap

    def reip_pod(
        self, statefulset: str, namespace: str | None = None, ordinal: int = 0, address: str | None = None
    ) -> FakePod:
        """Give a pod a new address (as when it is rescheduled); its server moves with it."""
        with self._lock:
            pod, service = self._sts_pod(statefulset, namespace, ordinal)
            sts = self.model.statefulset(statefulset, pod.namespace)
            if address is not None:
                new = _check_address(address, "address")
            else:
                new = self.model.free_address(4, sts.address_base)
            version = ipaddress.ip_address(new).version
            kept = tuple(a for a in pod.addresses if ipaddress.ip_address(a).version != version)
            updated = self.model.update_pod(pod.name, pod.namespace, addresses=(new, *kept))
            self._sync_listeners()
            return self._snapshot(updated, service)

    def set_ready(
        self, statefulset: str, namespace: str | None = None, ordinal: int = 0, ready: bool = True
    ) -> FakePod:
        """Mark a pod (un)ready: unready pods leave DNS (unless the service publishes them)
        but keep their address and server."""
        with self._lock:
            pod, service = self._sts_pod(statefulset, namespace, ordinal)
            return self._snapshot(self.model.update_pod(pod.name, pod.namespace, ready=bool(ready)), service)

    def delete_service(self, name: str, namespace: str | None = None) -> None:
        """Delete a service, its endpoints and the StatefulSets governed by it."""
        ns = self._ns(namespace)
        with self._lock:
            spec = self._service_spec(name, ns)
            if spec is None:
                raise LookupError(f"no service {name!r} in namespace {ns!r}")
            with self.model.batch():
                for pod in self.model.selected_pods(spec):
                    if pod.statefulset is None:
                        self.model.delete_pod(pod.name, ns)
                for other in [s for s in self._statefulsets(ns) if s.service_name == name]:
                    self.model.delete_statefulset(other.name, ns)
                    self._serving.pop((ns, other.name), None)
                self.model.delete_service(name, ns)
            self._sync_listeners()

    # -- serving pods -------------------------------------------------------------------

    def kill_pod(self, statefulset: str, namespace: str | None = None, ordinal: int = 0) -> FakePod:
        """The pod's process dies: its server refuses connections and resets open ones;
        DNS still lists it (until :meth:`remove_pod` or :meth:`set_ready`)."""
        return self._mode(statefulset, namespace, ordinal, "refuse")

    def hang_pod(self, statefulset: str, namespace: str | None = None, ordinal: int = 0) -> FakePod:
        """The pod's process is stuck: connections are accepted, nothing is ever answered."""
        return self._mode(statefulset, namespace, ordinal, "hang")

    def revive_pod(self, statefulset: str, namespace: str | None = None, ordinal: int = 0) -> FakePod:
        """The pod's server serves again (after :meth:`kill_pod` or :meth:`hang_pod`)."""
        return self._mode(statefulset, namespace, ordinal, "serve")

    def _mode(self, statefulset: str, namespace: str | None, ordinal: int, mode: PodMode) -> FakePod:
        with self._lock:
            pod, service = self._sts_pod(statefulset, namespace, ordinal)
            listener = self._listeners.get((pod.namespace, pod.name))
            if listener is None:
                raise LookupError(f"pod {pod.name} has no server (add its StatefulSet with serve=...)")
            self._loop.call(lambda: self._loop.set_mode(listener, mode))
            return self._snapshot(pod, service)

    # -- reading ------------------------------------------------------------------------

    def pods(self, service: str, namespace: str | None = None) -> list[FakePod]:
        """Every pod of *service* (ready or not), by ordinal then address."""
        ns = self._ns(namespace)
        with self._lock:
            spec = self._service_spec(service, ns)
            if spec is None:
                raise LookupError(f"no service {service!r} in namespace {ns!r}")
            return sorted((self._snapshot(p, service) for p in self.model.selected_pods(spec)), key=_order)

    def pod(self, statefulset: str, namespace: str | None = None, ordinal: int = 0) -> FakePod:
        """One StatefulSet pod."""
        with self._lock:
            return self._snapshot(*self._sts_pod(statefulset, namespace, ordinal))

    def service_fqdn(self, service: str, namespace: str | None = None) -> str:
        """``<service>.<namespace>.svc.<cluster domain>`` (no trailing dot)."""
        return service_fqdn(service, self._ns(namespace), cluster_domain=self.cluster_domain)

    # -- internals (under the lock) -----------------------------------------------------

    def _ns(self, namespace: str | None) -> str:
        return self.namespace if namespace is None else validate_label(namespace, "namespace")

    def _require_running(self) -> None:
        if not self._started or self._closed:
            raise RuntimeError("the fake cluster DNS is not running: use `with FakeClusterDNS() as c:`")

    def _service_spec(self, name: str, namespace: str) -> ServiceSpec | None:
        try:
            return self.model.service(name, namespace)
        except LookupError:
            return None

    def _statefulsets(self, namespace: str) -> list[StatefulSetSpec]:
        return self.model.statefulsets(namespace)

    def _sts_pod(self, statefulset: str, namespace: str | None, ordinal: int | None) -> tuple[PodSpec, str]:
        ns = self._ns(namespace)
        sts = self.model.statefulset(statefulset, ns)
        mine = self.model.statefulset_pods(statefulset, ns)
        if ordinal is None:
            if not mine:
                raise LookupError(f"statefulset {statefulset!r} has no pods")
            return max(mine, key=lambda p: p.ordinal or 0), sts.service_name
        for pod in mine:
            if pod.ordinal == ordinal:
                return pod, sts.service_name
        have = ", ".join(str(p.ordinal) for p in mine) or "none"
        raise LookupError(f"no pod {statefulset}-{ordinal} in namespace {ns!r} (ordinals: {have})")

    def _bind(self, namespace: str, name: str, address: str, port: int, protocol: Protocol) -> Listener:
        listener = Listener((namespace, name), address, port, protocol, self._reply_for(namespace, name))

        def open_it() -> None:
            self._loop.set_mode(listener, "serve")

        try:
            self._loop.call(open_it)
        except OSError as exc:
            raise OSError(
                f"fake pod {name}: cannot listen on {address}:{port}: {exc} "
                "(all of 127/8 is local on Linux; on macOS add loopback aliases first, e.g. "
                "`sudo ifconfig lo0 alias 127.42.0.1`, and pass that address_base)"
            ) from exc
        return listener

    def _sync_listeners(self) -> None:
        """Give every pod of a served StatefulSet a server on its (IPv4) address, move the
        server of a pod whose address changed, and close those of pods gone."""
        wanted: dict[tuple[str, str], tuple[str, _Serving]] = {}
        for (ns, sts_name), serving in self._serving.items():
            try:
                pods = self.model.statefulset_pods(sts_name, ns)
            except LookupError:
                continue
            for pod in pods:
                if pod.addresses:
                    wanted[(ns, pod.name)] = (pod.addresses[0], serving)
        for key, listener in list(self._listeners.items()):
            target = wanted.get(key)
            if target is None or target[0] != listener.address:
                del self._listeners[key]
                self._loop.call(lambda listener=listener: self._loop.close_listener(listener))  # type: ignore[misc]
        for key, (address, serving) in wanted.items():
            if key not in self._listeners:
                self._listeners[key] = self._bind(key[0], key[1], address, serving.port, serving.protocol)

    def _reply_for(self, namespace: str, name: str) -> Callable[[Listener, str], PodReply]:
        def reply(listener: Listener, request: str) -> PodReply:
            handler = self._handler
            if handler is None:
                return None
            try:
                pod = self.model.pod(name, namespace)
            except LookupError:
                return None
            return handler(self._snapshot(pod, None, listener), request)

        return reply

    def _publish(self) -> None:
        services, _ = self.model.snapshot("services")
        slices, _ = self.model.snapshot("endpointslices")
        # One assignment: the server thread reads either the old zone or the new one.
        self._zone = build_zone(self.cluster_domain, services, slices, self.model.namespaces(), self.ttl)

    def _pods_of(self, statefulset: str, namespace: str) -> list[FakePod]:
        sts = self.model.statefulset(statefulset, namespace)
        pods = self.model.statefulset_pods(statefulset, namespace)
        return sorted((self._snapshot(p, sts.service_name) for p in pods), key=_order)

    def _snapshot(self, pod: PodSpec, service: str | None, listener: Listener | None = None) -> FakePod:
        listener = listener or self._listeners.get((pod.namespace, pod.name))
        if service is None:
            service = pod.subdomain or ""
        address = pod.addresses[0] if pod.addresses else ""
        label = pod.hostname if pod.hostname and pod.subdomain == service else dashed(address)
        port = 0
        spec = self._service_spec(service, pod.namespace) if service else None
        if spec is not None and spec.ports:
            port = spec.ports[0].port
        if listener is not None:
            port = listener.port
        return FakePod(
            name=pod.name,
            namespace=pod.namespace,
            service=service,
            statefulset=pod.statefulset,
            ordinal=pod.ordinal,
            address=address,
            port=port,
            hostname=f"{label}.{service}.{pod.namespace}.svc.{self.cluster_domain}",
            ready=pod.ready,
            serving=listener.mode if listener else None,
            protocol=listener.protocol if listener else None,
            connections=listener.connections if listener else 0,
            requests=listener.requests if listener else 0,
        )


def _order(pod: FakePod) -> tuple[int, int, str]:
    return (pod.ordinal is None, pod.ordinal or 0, pod.address)


def _check_address(address: object, what: str) -> str:
    if not isinstance(address, str):
        raise InvalidName(f"{what} must be an IP address string: {address!r}")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise InvalidName(f"{what} {address!r} is not an IP address") from None


def _check_port(port: object, *, allow_zero: bool) -> int:
    low = 0 if allow_zero else 1
    if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= 65535:
        raise InvalidName(f"port must be an int in {low}..65535: {port!r}")
    return port

