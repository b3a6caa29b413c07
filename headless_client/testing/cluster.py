"""FakeClusterDNS: an in-process DNS server shaped like CoreDNS, with optional live pods.

See :mod:`headless_client.testing` for the overview and examples.
"""

from __future__ import annotations

import ipaddress
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from typing_extensions import Self

from ..aio import AsyncResolver
from ..errors import InvalidName
from ..names import DEFAULT_CLUSTER_DOMAIN, service_fqdn, validate_label, validate_ordinal
from ..resolver import Resolver
from ._loop import Fault, Listener, Loop, PodMode, Protocol
from ._zone import Zone, ZoneEndpoint, ZoneService, build_zone, dashed

__all__ = ["FakeClusterDNS", "FakePod", "PodHandler", "PodReply"]

PodReply = str | tuple[int, str] | None
"""What a :data:`PodHandler` returns: the reply text, ``(HTTP status, body)``, or ``None``
for the default (the pod's name)."""

PodHandler = Callable[["FakePod", str], PodReply]
"""``handler(pod, request) -> reply`` for serving pods. *request* is the line received
(``tcp`` pods) or ``"METHOD /path"`` (``http`` pods). It runs on the server thread: keep it
quick, and never change the cluster from it."""

_FAULTS = (None, "servfail", "refused", "drop", "truncate")
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
class _Pod:
    name: str
    namespace: str
    service: str
    statefulset: str | None
    ordinal: int | None
    hostname: str | None  # the label in DNS; None: the dashed address
    address: str
    port: int
    ready: bool = True
    listener: Listener | None = None


@dataclass(eq=False)
class _Service:
    name: str
    namespace: str
    port_name: str
    protocol: str
    port: int
    publish_not_ready: bool
    pods: dict[str, _Pod] = field(default_factory=dict)


@dataclass(eq=False)
class _StatefulSet:
    name: str
    namespace: str
    service: str
    start: int
    serve: Protocol | None
    address_base: str | None


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
        self._services: dict[tuple[str, str], _Service] = {}
        self._statefulsets: dict[tuple[str, str], _StatefulSet] = {}
        self._handler: PodHandler | None = None
        self._zone: Zone = build_zone(self.cluster_domain, (), ttl)
        self._loop = Loop(self._host, lambda: self._zone)
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
            if self._started:
                self._loop.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.nameserver if self._started and not self._closed else "not running"
        return f"<FakeClusterDNS {self.cluster_domain} {where} {len(self._services)} services>"

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
        """Make every answer fail: ``"servfail"``, ``"refused"``, ``"drop"`` (no answer: the
        client times out), ``"truncate"`` (every UDP answer has TC set), or ``None``."""
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
    ) -> None:
        """Create a headless service with no endpoints yet (it answers NXDOMAIN).

        ``port_name=None`` makes the port unnamed: no SRV record, like Kubernetes.
        """
        ns = self._ns(namespace)
        validate_label(name, "service")
        if port_name:
            validate_label(port_name, "port name")
        _check_port(port, allow_zero=False)
        validate_label(protocol, "protocol")
        with self._lock:
            if (ns, name) in self._services:
                raise InvalidName(f"service {name!r} already exists in namespace {ns!r}")
            self._services[(ns, name)] = _Service(
                name, ns, port_name or "", protocol, port, bool(publish_not_ready)
            )
            self._publish()

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
    ) -> list[FakePod]:
        """A StatefulSet of *replicas* ready pods ``<name>-<start>``... behind a headless
        service (*service*, default *name*; created if missing, else its port is used).

        Pods get consecutive free addresses from *address_base* (default: the cluster's).
        ``serve="tcp"`` or ``"http"`` starts a server per pod on its address and the
        service port. *port* defaults to 8080, or to a free port (chosen by binding the
        first pod) when serving, so a local listener on ``*:8080`` cannot get in the way.
        Returns the pods.
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
        with self._lock:
            if (ns, name) in self._statefulsets:
                raise InvalidName(f"statefulset {name!r} already exists in namespace {ns!r}")
            svc = self._services.get((ns, svc_name))
            created = svc is None
            if svc is None:
                svc = _Service(
                    svc_name, ns, port_name or "", protocol, port or 0, bool(publish_not_ready)
                )
                self._services[(ns, svc_name)] = svc
            sts = _StatefulSet(name, ns, svc_name, start, serve, base)
            self._statefulsets[(ns, name)] = sts
            try:
                for ordinal in range(start, start + replicas):
                    self._new_pod(sts, svc, ordinal, None, True)
            except BaseException:
                for pod in list(svc.pods.values()):
                    if pod.statefulset == name:
                        self._forget(svc, pod)
                del self._statefulsets[(ns, name)]
                if created:
                    del self._services[(ns, svc_name)]
                raise
            self._publish()
            return self._pods_of(sts)

    def scale(self, statefulset: str, namespace: str | None = None, replicas: int = 1) -> list[FakePod]:
        """Scale a StatefulSet to *replicas*: ordinals ``start..start+replicas-1`` exist
        afterwards (missing ones are created), higher ones are removed. Returns its pods."""
        validate_ordinal(replicas, "replicas")
        with self._lock:
            sts, svc = self._sts(statefulset, namespace)
            wanted = set(range(sts.start, sts.start + replicas))
            for pod in [p for p in svc.pods.values() if p.statefulset == sts.name]:
                if pod.ordinal not in wanted:
                    self._forget(svc, pod)
            have = {p.ordinal for p in svc.pods.values() if p.statefulset == sts.name}
            for ordinal in sorted(wanted - have):
                self._new_pod(sts, svc, ordinal, None, True)
            self._publish()
            return self._pods_of(sts)

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
        with self._lock:
            sts, svc = self._sts(statefulset, namespace)
            if ordinal is None:
                ordinals = [p.ordinal for p in svc.pods.values() if p.statefulset == sts.name]
                ordinal = max((o for o in ordinals if o is not None), default=sts.start - 1) + 1
            validate_ordinal(ordinal, "ordinal")
            if f"{sts.name}-{ordinal}" in svc.pods:
                raise InvalidName(f"pod {sts.name}-{ordinal} already exists in namespace {sts.namespace!r}")
            pod = self._new_pod(sts, svc, ordinal, address, ready)
            self._publish()
            return self._snapshot(pod)

    def add_endpoint(
        self, service: str, namespace: str | None = None, address: str | None = None, *, ready: bool = True
    ) -> FakePod:
        """Add an endpoint without a hostname (a Deployment's pod): DNS names it by its
        dashed address (``10-244-1-20.<svc>...``)."""
        ns = self._ns(namespace)
        with self._lock:
            svc = self._services.get((ns, service))
            if svc is None:
                raise LookupError(f"no service {service!r} in namespace {ns!r} (add_service first)")
            addr = self._allocate(address, None)
            pod = _Pod(dashed(addr), ns, svc.name, None, None, None, addr, svc.port, bool(ready))
            svc.pods[pod.name] = pod
            self._publish()
            return self._snapshot(pod)

    def remove_pod(
        self, statefulset: str, namespace: str | None = None, ordinal: int | None = None
    ) -> FakePod:
        """Delete one pod (default: the highest ordinal): gone from DNS, its server closed."""
        with self._lock:
            svc, pod = self._pod(statefulset, namespace, ordinal)
            snap = self._snapshot(pod)
            self._forget(svc, pod)
            self._publish()
            return snap

    def remove_endpoint(self, service: str, namespace: str | None = None, address: str = "") -> FakePod:
        """Delete the endpoint of *service* with *address*."""
        ns = self._ns(namespace)
        with self._lock:
            svc = self._services.get((ns, service))
            pod = next((p for p in svc.pods.values() if p.address == address), None) if svc else None
            if svc is None or pod is None:
                raise LookupError(f"no endpoint {address!r} in service {service!r} of namespace {ns!r}")
            snap = self._snapshot(pod)
            self._forget(svc, pod)
            self._publish()
            return snap

    def reip_pod(
        self, statefulset: str, namespace: str | None = None, ordinal: int = 0, address: str | None = None
    ) -> FakePod:
        """Give a pod a new address (as when it is rescheduled); its server moves with it."""
        with self._lock:
            _, pod = self._pod(statefulset, namespace, ordinal)
            sts = self._statefulsets.get((pod.namespace, statefulset))
            new = self._allocate(address, sts.address_base if sts else None, exclude=pod.address)
            old_listener = pod.listener
            if old_listener is not None:
                listener = self._listen(pod, new, old_listener.protocol)
                self._loop.call(lambda: self._loop.close_listener(old_listener))
                pod.listener = listener
            pod.address = new
            self._publish()
            return self._snapshot(pod)

    def set_ready(
        self, statefulset: str, namespace: str | None = None, ordinal: int = 0, ready: bool = True
    ) -> FakePod:
        """Mark a pod (un)ready: unready pods leave DNS (unless the service publishes them)
        but keep their address and server."""
        with self._lock:
            _, pod = self._pod(statefulset, namespace, ordinal)
            pod.ready = bool(ready)
            self._publish()
            return self._snapshot(pod)

    def delete_service(self, name: str, namespace: str | None = None) -> None:
        """Delete a service, its endpoints and the StatefulSets governed by it."""
        ns = self._ns(namespace)
        with self._lock:
            svc = self._services.get((ns, name))
            if svc is None:
                raise LookupError(f"no service {name!r} in namespace {ns!r}")
            for pod in list(svc.pods.values()):
                self._forget(svc, pod)
            del self._services[(ns, name)]
            for key in [k for k, s in self._statefulsets.items() if s.namespace == ns and s.service == name]:
                del self._statefulsets[key]
            self._publish()

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
            _, pod = self._pod(statefulset, namespace, ordinal)
            listener = pod.listener
            if listener is None:
                raise LookupError(f"pod {pod.name} has no server (add its StatefulSet with serve=...)")
            self._loop.call(lambda: self._loop.set_mode(listener, mode))
            return self._snapshot(pod)

    # -- reading ------------------------------------------------------------------------

    def pods(self, service: str, namespace: str | None = None) -> list[FakePod]:
        """Every pod of *service* (ready or not), by ordinal then address."""
        ns = self._ns(namespace)
        with self._lock:
            svc = self._services.get((ns, service))
            if svc is None:
                raise LookupError(f"no service {service!r} in namespace {ns!r}")
            return sorted((self._snapshot(p) for p in svc.pods.values()), key=_order)

    def pod(self, statefulset: str, namespace: str | None = None, ordinal: int = 0) -> FakePod:
        """One StatefulSet pod."""
        with self._lock:
            return self._snapshot(self._pod(statefulset, namespace, ordinal)[1])

    def service_fqdn(self, service: str, namespace: str | None = None) -> str:
        """``<service>.<namespace>.svc.<cluster domain>`` (no trailing dot)."""
        return service_fqdn(service, self._ns(namespace), cluster_domain=self.cluster_domain)

    # -- internals (under the lock) -----------------------------------------------------

    def _ns(self, namespace: str | None) -> str:
        return self.namespace if namespace is None else validate_label(namespace, "namespace")

    def _require_running(self) -> None:
        if not self._started or self._closed:
            raise RuntimeError("the fake cluster DNS is not running: use `with FakeClusterDNS() as c:`")

    def _sts(self, statefulset: str, namespace: str | None) -> tuple[_StatefulSet, _Service]:
        ns = self._ns(namespace)
        sts = self._statefulsets.get((ns, statefulset))
        if sts is None:
            raise LookupError(f"no statefulset {statefulset!r} in namespace {ns!r}")
        return sts, self._services[(ns, sts.service)]

    def _pod(self, statefulset: str, namespace: str | None, ordinal: int | None) -> tuple[_Service, _Pod]:
        sts, svc = self._sts(statefulset, namespace)
        mine = [p for p in svc.pods.values() if p.statefulset == sts.name]
        if ordinal is None:
            if not mine:
                raise LookupError(f"statefulset {statefulset!r} has no pods")
            return svc, max(mine, key=lambda p: p.ordinal or 0)
        for pod in mine:
            if pod.ordinal == ordinal:
                return svc, pod
        have = ", ".join(str(p.ordinal) for p in sorted(mine, key=lambda p: p.ordinal or 0)) or "none"
        raise LookupError(f"no pod {statefulset}-{ordinal} in namespace {sts.namespace!r} (ordinals: {have})")

    def _used(self) -> set[str]:
        return {p.address for s in self._services.values() for p in s.pods.values()}

    def _allocate(self, address: str | None, base: str | None, *, exclude: str | None = None) -> str:
        used = self._used()
        if address is not None:
            addr = _check_address(address, "address")
            if addr in used and addr != exclude:
                raise InvalidName(f"address {addr} is already used by another pod")
            return addr
        first = ipaddress.ip_address(base or self.address_base)
        for step in range(1 << 16):  # bounded: a /16 of candidates
            candidate = first + step
            text = str(candidate)
            if candidate.version == 4 and text.endswith((".0", ".255")):
                continue
            if text not in used and text != exclude:
                return text
        raise InvalidName(f"no free address from {first} (65536 tried)")

    def _new_pod(
        self, sts: _StatefulSet, svc: _Service, ordinal: int, address: str | None, ready: bool
    ) -> _Pod:
        name = f"{sts.name}-{ordinal}"
        addr = self._allocate(address, sts.address_base)
        pod = _Pod(name, sts.namespace, svc.name, sts.name, ordinal, name, addr, svc.port, bool(ready))
        if sts.serve is not None:
            pod.listener = self._listen(pod, addr, sts.serve)
            if svc.port == 0:  # port=0: the first server chose a free port for the service
                svc.port = pod.listener.port
            pod.port = svc.port
        svc.pods[name] = pod
        return pod

    def _listen(self, pod: _Pod, address: str, protocol: Protocol) -> Listener:
        listener = Listener((pod.namespace, pod.name), address, pod.port, protocol, self._reply_for(pod))

        def open_it() -> None:
            self._loop.set_mode(listener, "serve")

        try:
            self._loop.call(open_it)
        except OSError as exc:
            raise OSError(
                f"fake pod {pod.name}: cannot listen on {address}:{listener.port}: {exc} "
                "(all of 127/8 is local on Linux; on macOS add loopback aliases first, e.g. "
                "`sudo ifconfig lo0 alias 127.42.0.1`, and pass that address_base)"
            ) from exc
        return listener

    def _reply_for(self, pod: _Pod) -> Callable[[Listener, str], PodReply]:
        def reply(listener: Listener, request: str) -> PodReply:
            handler = self._handler
            if handler is None:
                return None
            return handler(self._snapshot(pod, listener), request)

        return reply

    def _forget(self, svc: _Service, pod: _Pod) -> None:
        svc.pods.pop(pod.name, None)
        listener = pod.listener
        if listener is not None:
            pod.listener = None
            self._loop.call(lambda: self._loop.close_listener(listener))

    def _publish(self) -> None:
        services = [
            ZoneService(
                name=s.name,
                namespace=s.namespace,
                ports=((s.port_name, s.protocol, s.port),),
                endpoints=tuple(ZoneEndpoint(p.address, p.hostname, p.ready) for p in s.pods.values()),
                publish_not_ready=s.publish_not_ready,
            )
            for s in self._services.values()
        ]
        # One assignment: the server thread reads either the old zone or the new one.
        self._zone = build_zone(self.cluster_domain, services, self.ttl)

    def _pods_of(self, sts: _StatefulSet) -> list[FakePod]:
        svc = self._services[(sts.namespace, sts.service)]
        return sorted(
            (self._snapshot(p) for p in svc.pods.values() if p.statefulset == sts.name), key=_order
        )

    def _snapshot(self, pod: _Pod, listener: Listener | None = None) -> FakePod:
        listener = listener or pod.listener
        label = pod.hostname or dashed(pod.address)
        return FakePod(
            name=pod.name,
            namespace=pod.namespace,
            service=pod.service,
            statefulset=pod.statefulset,
            ordinal=pod.ordinal,
            address=pod.address,
            port=pod.port,
            hostname=f"{label}.{pod.service}.{pod.namespace}.svc.{self.cluster_domain}",
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

