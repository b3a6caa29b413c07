"""One fake Kubernetes cluster, as data: the model every test ground is driven from.

:class:`ClusterModel` holds what a test changes (namespaces, Services, StatefulSets, pods)
and derives what a real cluster's controllers would: EndpointSlices (one per Service and
address family, with the EndpointSlice controller's ``hostname`` and ``ready`` rules) and
the API objects (``v1`` Namespaces, Services and Pods, ``discovery.k8s.io/v1``
EndpointSlices) as the JSON an API server returns, each with a ``resourceVersion``.

Every change is one commit: the derived objects are recomputed, compared with the last
ones, and each difference becomes a watch event (``ADDED``, ``MODIFIED``, ``DELETED``)
under a new resource version. Three consumers read the same commits:

- :class:`~headless_client.testing.FakeClusterDNS` builds its zone from :meth:`ClusterModel.snapshot`;
- :class:`~headless_client.testing.kube_api.FakeKubeAPI` serves list and watch from
  :meth:`ClusterModel.snapshot` and :meth:`ClusterModel.events_since` (so real CoreDNS,
  through its ``kubernetes`` plugin, answers from this model);
- the BIND test ground writes the zone built from the same snapshot.

The rules follow Kubernetes (see ``docs/testing.md``):

- a Service selects pods by labels; a StatefulSet's pods carry its governing Service's
  selector, so they are its endpoints;
- an endpoint gets ``hostname`` only when its pod has ``spec.hostname`` and
  ``spec.subdomain`` equal to the Service's name (the EndpointSlice controller's
  ``ShouldSetHostname``), so a second headless Service over a StatefulSet's pods has only
  generated (dashed-address) names;
- ``ready`` is ``publishNotReadyAddresses or pod ready``;
- a Service carries the address families of ``ip_families`` (dual-stack services two).

Additions for the EndpointSlice source (none changes what the above produce unless used):

- **nodes** (:meth:`ClusterModel.add_node`) with a zone; a pod placed on one
  (``update_pod(..., node="n1")``) gives its endpoints ``nodeName`` and ``zone``;
- **terminating** pods (:meth:`ClusterModel.terminate_pod`: the pod got its
  ``deletionTimestamp``): ``serving`` stays the pod's readiness, ``terminating`` is true
  and ``ready`` false (unless ``publishNotReadyAddresses``), as the EndpointSlice
  controller writes them;
- **topology hints** (a Service with ``topology_hints=True``, like
  ``service.kubernetes.io/topology-mode: Auto``): each endpoint with a zone gets
  ``hints.forZones`` of its own zone, or of the pod's ``hint_zones``;
- **several slices per family**: ``ClusterModel(max_endpoints_per_slice=100)`` splits a
  Service's endpoints like the controller's ``--max-endpoints-per-slice`` (default: one
  slice per family, however many endpoints).

All methods are thread-safe. Nothing here does I/O.
"""

from __future__ import annotations

import collections
import copy
import ipaddress
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

from ..errors import InvalidName
from ..names import validate_label

__all__ = [
    "KINDS",
    "ClusterModel",
    "Kind",
    "ModelEvent",
    "NodeSpec",
    "PodSpec",
    "ServicePort",
    "ServiceSpec",
    "ServiceType",
    "StatefulSetSpec",
    "TooOld",
]

Kind = Literal["namespaces", "services", "endpointslices", "pods", "nodes"]
"""The resources the model serves, by their API plural."""

KINDS: tuple[Kind, ...] = ("namespaces", "services", "endpointslices", "pods", "nodes")

ServiceType = Literal["headless", "ClusterIP", "ExternalName"]
"""``headless`` is a ``ClusterIP`` Service with ``clusterIP: None``."""

JSON: TypeAlias = dict[str, Any]

#: Label the EndpointSlice controller puts on every slice of a Service.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
#: Label of the pods of a StatefulSet (made up for the fake: real ones use the template's).
STATEFULSET_LABEL = "headless-client.test/statefulset"
#: Default selector key of a Service created by the model.
SERVICE_LABEL = "headless-client.test/service"
#: The well-known node labels of the zone and region.
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"

_MAX_HISTORY = 100_000  # events kept for watches from an old resource version
_FAMILIES = ("IPv4", "IPv6")


class TooOld(Exception):
    """A watch asked for events older than the model still keeps (HTTP 410 Gone)."""

    def __init__(self, asked: int, oldest: int) -> None:
        self.asked = asked
        self.oldest = oldest
        super().__init__(f"too old resource version: {asked} (oldest kept: {oldest})")


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of a Service: ``name`` ``""`` is an unnamed port (no ``_name._proto`` SRV)."""

    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A Service as a test declares it.

    ``cluster_ips`` are the virtual IPs of a ``ClusterIP`` Service (one per family);
    ``external_name`` the target of an ``ExternalName`` one. ``selector`` picks the
    pods (label pairs); ``ip_families`` the address families of its EndpointSlices.
    """

    name: str
    namespace: str
    type: ServiceType = "headless"
    ports: tuple[ServicePort, ...] = ()
    selector: tuple[tuple[str, str], ...] = ()
    publish_not_ready: bool = False
    ip_families: tuple[str, ...] = ("IPv4",)
    cluster_ips: tuple[str, ...] = ()
    external_name: str | None = None
    topology_hints: bool = False


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A node: its zone and region (``topology.kubernetes.io/*`` labels) and other labels."""

    name: str
    zone: str | None = None
    region: str | None = None
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PodSpec:
    """A pod: its addresses (one per family), readiness, DNS ``hostname``/``subdomain``.

    ``node`` is the node it runs on (its zone goes into the EndpointSlice), ``terminating``
    true once it was asked to stop, ``hint_zones`` the zones a Service with topology hints
    assigns it to (default: its own zone).
    """

    name: str
    namespace: str
    addresses: tuple[str, ...]
    ready: bool = True
    labels: tuple[tuple[str, str], ...] = ()
    hostname: str | None = None
    subdomain: str | None = None
    statefulset: str | None = None
    ordinal: int | None = None
    node: str | None = None
    terminating: bool = False
    hint_zones: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class StatefulSetSpec:
    """A StatefulSet: pods ``<name>-<start>``.. governed by Service ``service_name``."""

    name: str
    namespace: str
    service_name: str
    replicas: int
    start: int = 0
    address_base: str | None = None
    address_base6: str | None = None
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelEvent:
    """One watch event: ``type`` is ``ADDED``, ``MODIFIED`` or ``DELETED``; ``object`` the
    API object as JSON (with its new ``metadata.resourceVersion``)."""

    resource_version: int
    kind: Kind
    type: Literal["ADDED", "MODIFIED", "DELETED"]
    object: JSON


@dataclass(slots=True)
class _Stored:
    body: JSON  # without resourceVersion: compared across commits
    resource_version: int
    uid: str


@dataclass
class _State:
    namespaces: set[str] = field(default_factory=set)
    services: dict[tuple[str, str], ServiceSpec] = field(default_factory=dict)
    pods: dict[tuple[str, str], PodSpec] = field(default_factory=dict)
    statefulsets: dict[tuple[str, str], StatefulSetSpec] = field(default_factory=dict)
    nodes: dict[str, NodeSpec] = field(default_factory=dict)


class ClusterModel:
    """The fake cluster's objects, their derived EndpointSlices, versions and events.

    Args:
        address_base: first IPv4 address handed to pods (default ``127.10.0.1``; the
            tests keep every address on loopback, so a stray connection stays local).
        address_base6: first IPv6 address for dual-stack and IPv6 pods.
        cluster_ip_base: first virtual IP of ClusterIP Services.
        history: events kept for watches from an older resource version (older: 410).
        max_endpoints_per_slice: split a Service's endpoints of one family over slices of
            at most this many (the controller's default is 100); None: one slice per family.

    >>> model = ClusterModel()
    >>> _ = model.add_statefulset("web", "prod", replicas=3)
    >>> [p.name for p in model.pods("prod")]
    ['web-0', 'web-1', 'web-2']
    """

    def __init__(
        self,
        *,
        address_base: str = "127.10.0.1",
        address_base6: str = "fd00:10::1",
        cluster_ip_base: str = "127.96.0.1",
        cluster_ip_base6: str = "fd00:96::1",
        history: int = _MAX_HISTORY,
        max_endpoints_per_slice: int | None = None,
    ) -> None:
        if max_endpoints_per_slice is not None and (
            isinstance(max_endpoints_per_slice, bool)
            or not isinstance(max_endpoints_per_slice, int)
            or max_endpoints_per_slice < 1
        ):
            raise InvalidName(
                f"max_endpoints_per_slice must be an int >= 1 or None: {max_endpoints_per_slice!r}"
            )
        self.max_endpoints_per_slice = max_endpoints_per_slice
        self.address_base = _ip(address_base, "address_base", 4)
        self.address_base6 = _ip(address_base6, "address_base6", 6)
        self.cluster_ip_base = _ip(cluster_ip_base, "cluster_ip_base", 4)
        self.cluster_ip_base6 = _ip(cluster_ip_base6, "cluster_ip_base6", 6)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._state = _State()
        self._stored: dict[tuple[Kind, str, str], _Stored] = {}
        self._history: collections.deque[ModelEvent] = collections.deque(maxlen=max(1, history))
        self._rv = 1
        self._oldest = 1  # events after this resource version are all in the history
        self._listeners: list[Callable[[Sequence[ModelEvent]], None]] = []
        self._batch_depth = 0

    # -- reading --------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The newest resource version (of the last commit)."""
        with self._lock:
            return self._rv

    def snapshot(self, kind: Kind) -> tuple[list[JSON], int]:
        """Every object of *kind* (deep copies, with ``resourceVersion``) and the list's
        resource version."""
        _check_kind(kind)
        with self._lock:
            items = [
                self._materialize(k, stored)
                for (k, _, _), stored in sorted(self._stored.items(), key=lambda kv: kv[0])
                if k == kind
            ]
            return items, self._rv

    def events_since(self, resource_version: int, kind: Kind | None = None) -> list[ModelEvent]:
        """Events newer than *resource_version* (of *kind*, or all), oldest first.

        Raises:
            TooOld: the history no longer reaches back that far (the API's 410 Gone).
        """
        with self._lock:
            if resource_version < self._oldest:
                raise TooOld(resource_version, self._oldest)
            return [
                e for e in self._history
                if e.resource_version > resource_version and (kind is None or e.kind == kind)
            ]

    def wait_for_change(self, resource_version: int, timeout: float) -> int:
        """Block until the resource version passes *resource_version* or *timeout* ends;
        returns the current one."""
        with self._changed:
            self._changed.wait_for(lambda: self._rv > resource_version, timeout=max(0.0, timeout))
            return self._rv

    def compact(self) -> int:
        """Forget every past event (as etcd compaction does): a watch from an older
        resource version then gets 410 Gone. Returns the current resource version."""
        with self._lock:
            self._history.clear()
            self._oldest = self._rv
            return self._rv

    def subscribe(self, listener: Callable[[Sequence[ModelEvent]], None]) -> Callable[[], None]:
        """Call ``listener(events)`` after every commit (under the model's lock: keep it
        quick). Returns a function that unsubscribes."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def namespaces(self) -> list[str]:
        """Names of the existing namespaces."""
        with self._lock:
            return sorted(self._state.namespaces)

    def services(self, namespace: str | None = None) -> list[ServiceSpec]:
        """Declared Services (of *namespace*, or all)."""
        with self._lock:
            return [s for (ns, _), s in sorted(self._state.services.items()) if namespace in (None, ns)]

    def service(self, name: str, namespace: str) -> ServiceSpec:
        """One Service (``LookupError`` if absent)."""
        with self._lock:
            svc = self._state.services.get((namespace, name))
            if svc is None:
                raise LookupError(f"no service {name!r} in namespace {namespace!r}")
            return svc

    def pods(self, namespace: str | None = None) -> list[PodSpec]:
        """Pods (of *namespace*, or all), by StatefulSet ordinal then name."""
        with self._lock:
            pods = [p for (ns, _), p in self._state.pods.items() if namespace in (None, ns)]
        return sorted(pods, key=lambda p: (p.namespace, p.statefulset or "", p.ordinal or 0, p.name))

    def pod(self, name: str, namespace: str) -> PodSpec:
        """One pod (``LookupError`` if absent)."""
        with self._lock:
            pod = self._state.pods.get((namespace, name))
            if pod is None:
                raise LookupError(f"no pod {name!r} in namespace {namespace!r}")
            return pod

    def statefulset(self, name: str, namespace: str) -> StatefulSetSpec:
        """One StatefulSet (``LookupError`` if absent)."""
        with self._lock:
            sts = self._state.statefulsets.get((namespace, name))
            if sts is None:
                raise LookupError(f"no statefulset {name!r} in namespace {namespace!r}")
            return sts

    def selected_pods(self, service: ServiceSpec) -> list[PodSpec]:
        """The pods *service* selects (none for an ExternalName or selector-less one)."""
        if service.type == "ExternalName" or not service.selector:
            return []
        wanted = dict(service.selector)
        with self._lock:
            return [
                p for p in self.pods(service.namespace)
                if all(dict(p.labels).get(k) == v for k, v in wanted.items())
            ]

    # -- changing ---------------------------------------------------------------------------

    def batch(self) -> _Batch:
        """``with model.batch(): ...``: several changes, one commit (one set of events)."""
        return _Batch(self)

    def add_namespace(self, name: str) -> None:
        """Create a namespace (no-op if it exists)."""
        validate_label(name, "namespace")
        with self._lock:
            self._state.namespaces.add(name)
            self._commit()

    def delete_namespace(self, name: str) -> None:
        """Delete a namespace and everything in it."""
        with self._lock:
            if name not in self._state.namespaces:
                raise LookupError(f"no namespace {name!r}")
            st = self._state
            st.namespaces.discard(name)
            for table in (st.services, st.pods, st.statefulsets):
                for key in [k for k in table if k[0] == name]:
                    del table[key]
            self._commit()

    def add_service(
        self,
        name: str,
        namespace: str,
        *,
        type: ServiceType = "headless",
        ports: Iterable[ServicePort | tuple[str, int] | tuple[str, int, str]] = (),
        selector: Mapping[str, str] | None = None,
        publish_not_ready: bool = False,
        ip_families: Sequence[str] = ("IPv4",),
        cluster_ips: Sequence[str] | None = None,
        external_name: str | None = None,
        replace_existing: bool = False,
        topology_hints: bool = False,
    ) -> ServiceSpec:
        """Create (or with *replace_existing*, replace) a Service.

        *selector* defaults to ``{SERVICE_LABEL: name}`` (what StatefulSets governed by it
        carry). A ``ClusterIP`` Service gets one virtual IP per family unless
        *cluster_ips* says which. Ports are ``ServicePort`` or ``(name, port[, protocol])``.
        *topology_hints* gives its endpoints ``hints.forZones`` (topology-aware routing).
        """
        validate_label(name, "service")
        validate_label(namespace, "namespace")
        if type not in ("headless", "ClusterIP", "ExternalName"):
            raise InvalidName(f"service type must be headless, ClusterIP or ExternalName: {type!r}")
        families = tuple(ip_families)
        if not families or any(f not in _FAMILIES for f in families) or len(set(families)) != len(families):
            raise InvalidName(f"ip_families must be IPv4 and/or IPv6: {ip_families!r}")
        port_specs = tuple(_port(p) for p in ports)
        if type == "ExternalName":
            if not external_name:
                raise InvalidName(f"ExternalName service {name!r} needs external_name")
            chosen_selector: tuple[tuple[str, str], ...] = ()
        else:
            if external_name is not None:
                raise InvalidName(f"only an ExternalName service has external_name: {name!r}")
            chosen = selector if selector is not None else {SERVICE_LABEL: name}
            chosen_selector = tuple(sorted(chosen.items()))
        with self._lock:
            key = (namespace, name)
            if key in self._state.services and not replace_existing:
                raise InvalidName(f"service {name!r} already exists in namespace {namespace!r}")
            vips: tuple[str, ...] = ()
            if type == "ClusterIP":
                if cluster_ips is not None:
                    vips = tuple(_ip(v, "cluster IP") for v in cluster_ips)
                else:
                    vips = tuple(self._free_vip(6 if f == "IPv6" else 4) for f in families)
            spec = ServiceSpec(
                name=name,
                namespace=namespace,
                type=type,
                ports=port_specs,
                selector=chosen_selector,
                publish_not_ready=bool(publish_not_ready),
                ip_families=families,
                cluster_ips=vips,
                external_name=external_name.rstrip(".") if external_name else None,
                topology_hints=bool(topology_hints),
            )
            self._state.namespaces.add(namespace)
            self._state.services[key] = spec
            self._commit()
            return spec

    def update_service(self, name: str, namespace: str, **changes: Any) -> ServiceSpec:
        """Change fields of a Service (``publish_not_ready=True``, ``ports=...``)."""
        with self._lock:
            spec = self.service(name, namespace)
            if "ports" in changes:
                changes["ports"] = tuple(_port(p) for p in changes["ports"])
            new = replace(spec, **changes)
            self._state.services[(namespace, name)] = new
            self._commit()
            return new

    def delete_service(self, name: str, namespace: str) -> None:
        """Delete a Service (its pods stay, like in Kubernetes)."""
        with self._lock:
            self.service(name, namespace)
            del self._state.services[(namespace, name)]
            self._commit()

    def add_pod(
        self,
        name: str,
        namespace: str,
        addresses: Sequence[str] | None = None,
        *,
        ready: bool = True,
        labels: Mapping[str, str] | None = None,
        hostname: str | None = None,
        subdomain: str | None = None,
        families: Sequence[str] = ("IPv4",),
    ) -> PodSpec:
        """A pod (not of a StatefulSet): free addresses of *families* unless given."""
        validate_label(name, "pod")
        validate_label(namespace, "namespace")
        with self._lock:
            if (namespace, name) in self._state.pods:
                raise InvalidName(f"pod {name!r} already exists in namespace {namespace!r}")
            addrs = self._addresses(addresses, families, None, None)
            pod = PodSpec(
                name=name,
                namespace=namespace,
                addresses=addrs,
                ready=bool(ready),
                labels=tuple(sorted((labels or {}).items())),
                hostname=hostname,
                subdomain=subdomain,
            )
            self._state.namespaces.add(namespace)
            self._state.pods[(namespace, name)] = pod
            self._commit()
            return pod

    def update_pod(self, name: str, namespace: str, **changes: Any) -> PodSpec:
        """Change fields of a pod: ``ready=False``, ``addresses=("127.10.0.9",)``."""
        with self._lock:
            pod = self.pod(name, namespace)
            if "addresses" in changes:
                changes["addresses"] = tuple(_ip(a, "address") for a in changes["addresses"])
                self._check_free(changes["addresses"], exclude=pod.addresses)
            new = replace(pod, **changes)
            self._state.pods[(namespace, name)] = new
            self._commit()
            return new

    def delete_pod(self, name: str, namespace: str) -> PodSpec:
        """Delete a pod (a StatefulSet does not recreate it: see :meth:`scale`)."""
        with self._lock:
            pod = self.pod(name, namespace)
            del self._state.pods[(namespace, name)]
            self._commit()
            return pod

    # -- nodes and pod lifecycle (for the EndpointSlice source) ------------------------------

    def add_node(
        self,
        name: str,
        *,
        zone: str | None = None,
        region: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> NodeSpec:
        """Create (or replace) a node in *zone* (its ``topology.kubernetes.io/zone`` label)."""
        validate_label(name, "node")
        node = NodeSpec(name, zone, region, tuple(sorted((labels or {}).items())))
        with self._lock:
            self._state.nodes[name] = node
            self._commit()
            return node

    def delete_node(self, name: str) -> None:
        """Delete a node (its pods keep their ``node`` but lose their zone)."""
        with self._lock:
            if self._state.nodes.pop(name, None) is None:
                raise LookupError(f"no node {name!r}")
            self._commit()

    def nodes(self) -> list[NodeSpec]:
        """Every node, by name."""
        with self._lock:
            return [self._state.nodes[n] for n in sorted(self._state.nodes)]

    def terminate_pod(self, name: str, namespace: str) -> PodSpec:
        """The pod was asked to stop (``deletionTimestamp`` set): its endpoints stay, marked
        ``terminating`` (and ``serving`` while it is still ready), until :meth:`delete_pod`."""
        return self.update_pod(name, namespace, terminating=True)

    def add_statefulset(
        self,
        name: str,
        namespace: str,
        replicas: int = 1,
        *,
        service_name: str | None = None,
        start: int = 0,
        address_base: str | None = None,
        address_base6: str | None = None,
        families: Sequence[str] | None = None,
        addresses: Mapping[int, Sequence[str]] | None = None,
        nodes: Sequence[str] = (),
    ) -> StatefulSetSpec:
        """A StatefulSet of *replicas* ready pods ``<name>-<start>``...

        Its pods carry the governing Service's selector (the Service named *service_name*,
        default *name*, if it exists then), hostname ``<pod name>`` and subdomain
        *service_name*. *families* defaults to the governing Service's ``ip_families``.
        *addresses* fixes some pods' addresses (``{ordinal: (v4[, v6])}``). *nodes* places
        pod ``n`` on ``nodes[n % len(nodes)]`` (now and when scaling up).
        """
        validate_label(name, "statefulset")
        validate_label(namespace, "namespace")
        svc_name = validate_label(service_name or name, "service")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise InvalidName(f"replicas must be an int >= 0: {replicas!r}")
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise InvalidName(f"start must be an int >= 0: {start!r}")
        with self._lock:
            if (namespace, name) in self._state.statefulsets:
                raise InvalidName(f"statefulset {name!r} already exists in namespace {namespace!r}")
            sts = StatefulSetSpec(
                name, namespace, svc_name, replicas, start,
                _ip(address_base, "address_base", 4) if address_base else None,
                _ip(address_base6, "address_base6", 6) if address_base6 else None,
                tuple(validate_label(n, "node") for n in nodes),
            )  # fmt: skip
            self._state.namespaces.add(namespace)
            self._state.statefulsets[(namespace, name)] = sts
            for ordinal in range(start, start + replicas):
                fixed = (addresses or {}).get(ordinal)
                self._new_sts_pod(sts, ordinal, fixed, families)
            self._commit()
            return sts

    def scale(self, name: str, namespace: str, replicas: int) -> list[PodSpec]:
        """Scale a StatefulSet: ordinals ``start..start+replicas-1`` exist afterwards."""
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise InvalidName(f"replicas must be an int >= 0: {replicas!r}")
        with self._lock:
            sts = self.statefulset(name, namespace)
            wanted = set(range(sts.start, sts.start + replicas))
            for pod in self.statefulset_pods(name, namespace):
                if pod.ordinal not in wanted:
                    del self._state.pods[(namespace, pod.name)]
            have = {p.ordinal for p in self.statefulset_pods(name, namespace)}
            for ordinal in sorted(wanted - have):
                self._new_sts_pod(sts, ordinal, None, None)
            self._state.statefulsets[(namespace, name)] = replace(sts, replicas=replicas)
            self._commit()
            return self.statefulset_pods(name, namespace)

    def add_statefulset_pod(
        self, name: str, namespace: str, ordinal: int, addresses: Sequence[str] | None = None,
        *, ready: bool = True,
    ) -> PodSpec:
        """Create one pod of a StatefulSet (a gap filled, or a pod outside its replicas)."""
        with self._lock:
            sts = self.statefulset(name, namespace)
            if (namespace, f"{name}-{ordinal}") in self._state.pods:
                raise InvalidName(f"pod {name}-{ordinal} already exists in namespace {namespace!r}")
            pod = self._new_sts_pod(sts, ordinal, addresses, None, ready=ready)
            self._commit()
            return pod

    def delete_statefulset(self, name: str, namespace: str) -> None:
        """Delete a StatefulSet and its pods."""
        with self._lock:
            self.statefulset(name, namespace)
            for pod in self.statefulset_pods(name, namespace):
                del self._state.pods[(namespace, pod.name)]
            del self._state.statefulsets[(namespace, name)]
            self._commit()

    def statefulsets(self, namespace: str | None = None) -> list[StatefulSetSpec]:
        """Declared StatefulSets (of *namespace*, or all)."""
        with self._lock:
            return [s for (ns, _), s in sorted(self._state.statefulsets.items()) if namespace in (None, ns)]

    def statefulset_pods(self, name: str, namespace: str) -> list[PodSpec]:
        """The pods of one StatefulSet, by ordinal."""
        with self._lock:
            return [p for p in self.pods(namespace) if p.statefulset == name]

    def free_address(self, family: int = 4, base: str | None = None) -> str:
        """The first address not used by any pod, from *base* (default the model's)."""
        with self._lock:
            return self._free(family, base)

    # -- internals (under the lock) ---------------------------------------------------------

    def _new_sts_pod(
        self,
        sts: StatefulSetSpec,
        ordinal: int,
        fixed: Sequence[str] | None,
        families: Sequence[str] | None,
        *,
        ready: bool = True,
    ) -> PodSpec:
        governing = self._state.services.get((sts.namespace, sts.service_name))
        if families is None:
            families = governing.ip_families if governing is not None else ("IPv4",)
        labels = {STATEFULSET_LABEL: sts.name}
        if governing is not None:
            labels.update(dict(governing.selector))
        name = f"{sts.name}-{ordinal}"
        labels["statefulset.kubernetes.io/pod-name"] = name
        labels["apps.kubernetes.io/pod-index"] = str(ordinal)
        pod = PodSpec(
            name=name,
            namespace=sts.namespace,
            addresses=self._addresses(fixed, families, sts.address_base, sts.address_base6),
            ready=ready,
            labels=tuple(sorted(labels.items())),
            hostname=name,
            subdomain=sts.service_name,
            statefulset=sts.name,
            ordinal=ordinal,
            node=sts.nodes[ordinal % len(sts.nodes)] if sts.nodes else None,
        )
        self._state.pods[(sts.namespace, name)] = pod
        return pod

    def _used(self) -> set[str]:
        used = {a for p in self._state.pods.values() for a in p.addresses}
        used.update(v for s in self._state.services.values() for v in s.cluster_ips)
        return used

    def _check_free(self, addresses: Iterable[str], exclude: Iterable[str] = ()) -> None:
        used = self._used() - set(exclude)
        for addr in addresses:
            if addr in used:
                raise InvalidName(f"address {addr} is already used by another pod or service")

    def _addresses(
        self, fixed: Sequence[str] | None, families: Sequence[str], base4: str | None, base6: str | None
    ) -> tuple[str, ...]:
        if fixed is not None:
            addrs = tuple(_ip(a, "address") for a in ([fixed] if isinstance(fixed, str) else fixed))
            self._check_free(addrs)
            return addrs
        return tuple(self._free(6 if f == "IPv6" else 4, base6 if f == "IPv6" else base4) for f in families)

    def _free(self, family: int, base: str | None) -> str:
        first = ipaddress.ip_address(base or (self.address_base6 if family == 6 else self.address_base))
        return self._first_free(first)

    def _free_vip(self, family: int) -> str:
        base = self.cluster_ip_base6 if family == 6 else self.cluster_ip_base
        return self._first_free(ipaddress.ip_address(base))

    def _first_free(self, first: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
        used = self._used()
        for step in range(1 << 20):  # bounded: a million candidates
            text = str(first + step)
            if first.version == 4 and text.endswith((".0", ".255")):
                continue
            if text not in used:
                return text
        raise InvalidName(f"no free address from {first}")

    def _materialize(self, kind: Kind, stored: _Stored) -> JSON:
        body = copy.deepcopy(stored.body)
        meta = body["metadata"]
        meta["resourceVersion"] = str(stored.resource_version)
        meta["uid"] = stored.uid
        return body

    def _commit(self) -> None:
        if self._batch_depth:
            return
        desired = self._derive()
        events: list[ModelEvent] = []
        for key in sorted(set(self._stored) | set(desired)):
            old = self._stored.get(key)
            new = desired.get(key)
            if old is not None and new is not None and old.body == new:
                continue
            self._rv += 1
            if new is None:
                assert old is not None
                del self._stored[key]
                gone = _Stored(old.body, self._rv, old.uid)
                events.append(ModelEvent(self._rv, key[0], "DELETED", self._materialize(key[0], gone)))
                continue
            stored = _Stored(new, self._rv, old.uid if old is not None else str(uuid.uuid4()))
            self._stored[key] = stored
            change: Literal["ADDED", "MODIFIED"] = "ADDED" if old is None else "MODIFIED"
            events.append(ModelEvent(self._rv, key[0], change, self._materialize(key[0], stored)))
        if not events:
            return
        if len(self._history) + len(events) > (self._history.maxlen or 0):
            overflow = len(self._history) + len(events) - (self._history.maxlen or 0)
            dropped = [self._history[i] for i in range(min(overflow, len(self._history)))]
            if dropped:
                self._oldest = dropped[-1].resource_version
        self._history.extend(events)
        self._changed.notify_all()
        for listener in list(self._listeners):
            listener(events)

    def _derive(self) -> dict[tuple[Kind, str, str], JSON]:
        st = self._state
        out: dict[tuple[Kind, str, str], JSON] = {}
        for ns in st.namespaces:
            out[("namespaces", "", ns)] = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "creationTimestamp": _EPOCH},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
        for node in st.nodes.values():
            out[("nodes", "", node.name)] = _node_json(node)
        for pod in st.pods.values():
            out[("pods", pod.namespace, pod.name)] = _pod_json(pod)
        for svc in st.services.values():
            out[("services", svc.namespace, svc.name)] = _service_json(svc)
            for family in svc.ip_families if svc.type != "ExternalName" and svc.selector else ():
                for slice_json in self._slices_json(svc, family):
                    out[("endpointslices", svc.namespace, slice_json["metadata"]["name"])] = slice_json
        return out

    def _slices_json(self, svc: ServiceSpec, family: str) -> list[JSON]:
        """The slices of *svc* for *family*: one, or chunks of ``max_endpoints_per_slice``
        (the first keeps the one-slice name, the others get ``-2``, ``-3``...)."""
        whole = self._slice_json(svc, family)
        size = self.max_endpoints_per_slice
        endpoints = whole["endpoints"]
        if size is None or len(endpoints) <= size:
            return [whole]
        slices = []
        for index, start in enumerate(range(0, len(endpoints), size)):
            part = copy.deepcopy(whole)
            part["endpoints"] = endpoints[start:start + size]
            if index:
                part["metadata"]["name"] = f"{whole['metadata']['name']}-{index + 1}"
            slices.append(part)
        return slices

    def _slice_json(self, svc: ServiceSpec, family: str) -> JSON:
        version = 6 if family == "IPv6" else 4
        endpoints: list[JSON] = []
        for pod in self.selected_pods(svc):
            for addr in pod.addresses:
                if ipaddress.ip_address(addr).version != version:
                    continue
                # The EndpointSlice controller's podToEndpoint: a terminating pod is never
                # "ready" (unless published regardless), but still "serving" while ready.
                ready = svc.publish_not_ready or (pod.ready and not pod.terminating)
                endpoint: JSON = {
                    "addresses": [addr],
                    "conditions": {"ready": ready, "serving": pod.ready, "terminating": pod.terminating},
                    "targetRef": {"kind": "Pod", "namespace": pod.namespace, "name": pod.name},
                }
                # The EndpointSlice controller's ShouldSetHostname.
                if pod.hostname and pod.subdomain == svc.name:
                    endpoint["hostname"] = pod.hostname
                if pod.node is not None:
                    endpoint["nodeName"] = pod.node
                    node = self._state.nodes.get(pod.node)
                    if node is not None and node.zone is not None:
                        endpoint["zone"] = node.zone
                        if svc.topology_hints:
                            zones = pod.hint_zones if pod.hint_zones is not None else (node.zone,)
                            endpoint["hints"] = {"forZones": [{"name": z} for z in zones]}
                endpoints.append(endpoint)
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{svc.name}-{family.lower()}",
                "namespace": svc.namespace,
                "creationTimestamp": _EPOCH,
                "labels": {
                    SERVICE_NAME_LABEL: svc.name,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                },
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": svc.name, "uid": ""}],
            },
            "addressType": family,
            "endpoints": endpoints,
            "ports": [{"name": p.name, "port": p.port, "protocol": p.protocol} for p in svc.ports],
        }


class _Batch:
    def __init__(self, model: ClusterModel) -> None:
        self._model = model

    def __enter__(self) -> ClusterModel:
        self._model._lock.acquire()
        self._model._batch_depth += 1
        return self._model

    def __exit__(self, *exc: object) -> None:
        model = self._model
        try:
            model._batch_depth -= 1
            model._commit()
        finally:
            model._lock.release()


_EPOCH = "2024-01-01T00:00:00Z"


def _service_json(svc: ServiceSpec) -> JSON:
    spec: JSON = {
        "ports": [
            {"name": p.name, "port": p.port, "protocol": p.protocol, "targetPort": p.port} for p in svc.ports
        ],
        "sessionAffinity": "None",
    }
    if svc.type == "ExternalName":
        spec["type"] = "ExternalName"
        spec["externalName"] = svc.external_name
    else:
        spec["type"] = "ClusterIP"
        spec["selector"] = dict(svc.selector)
        spec["ipFamilies"] = list(svc.ip_families)
        spec["ipFamilyPolicy"] = "PreferDualStack" if len(svc.ip_families) > 1 else "SingleStack"
        spec["publishNotReadyAddresses"] = svc.publish_not_ready
        if svc.type == "headless":
            spec["clusterIP"] = "None"
            spec["clusterIPs"] = ["None"]
        else:
            spec["clusterIP"] = svc.cluster_ips[0]
            spec["clusterIPs"] = list(svc.cluster_ips)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": svc.name, "namespace": svc.namespace, "creationTimestamp": _EPOCH},
        "spec": spec,
        "status": {"loadBalancer": {}},
    }


def _pod_json(pod: PodSpec) -> JSON:
    spec: JSON = {"containers": [{"name": "main", "image": "fake"}]}
    if pod.hostname:
        spec["hostname"] = pod.hostname
    if pod.subdomain:
        spec["subdomain"] = pod.subdomain
    if pod.node is not None:
        spec["nodeName"] = pod.node
    status: JSON = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if pod.ready else "False"}],
    }
    if pod.addresses:
        status["podIP"] = pod.addresses[0]
        status["podIPs"] = [{"ip": a} for a in pod.addresses]
    meta: JSON = {
        "name": pod.name,
        "namespace": pod.namespace,
        "labels": dict(pod.labels),
        "creationTimestamp": _EPOCH,
    }
    if pod.terminating:
        meta["deletionTimestamp"] = _EPOCH
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def _node_json(node: NodeSpec) -> JSON:
    labels = dict(node.labels)
    labels["kubernetes.io/hostname"] = node.name
    if node.zone is not None:
        labels[ZONE_LABEL] = node.zone
    if node.region is not None:
        labels[REGION_LABEL] = node.region
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": labels, "creationTimestamp": _EPOCH},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def _port(port: ServicePort | tuple[str, int] | tuple[str, int, str]) -> ServicePort:
    if isinstance(port, ServicePort):
        spec = port
    elif isinstance(port, tuple) and len(port) in (2, 3):
        spec = ServicePort(*port)
    else:
        raise InvalidName(f"a port is ServicePort or (name, port[, protocol]): {port!r}")
    if spec.name:
        validate_label(spec.name, "port name")
    if isinstance(spec.port, bool) or not isinstance(spec.port, int) or not 1 <= spec.port <= 65535:
        raise InvalidName(f"port must be an int in 1..65535: {spec.port!r}")
    if spec.protocol not in ("TCP", "UDP", "SCTP"):
        raise InvalidName(f"protocol must be TCP, UDP or SCTP: {spec.protocol!r}")
    return spec


def _ip(address: object, what: str, version: int | None = None) -> str:
    if not isinstance(address, str):
        raise InvalidName(f"{what} must be an IP address string: {address!r}")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise InvalidName(f"{what} {address!r} is not an IP address") from None
    if version is not None and ip.version != version:
        raise InvalidName(f"{what} {address!r} is not an IPv{version} address")
    return str(ip)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidName(f"kind must be one of {KINDS}: {kind!r}")
