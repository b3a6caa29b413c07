"""Kafka client configuration from a headless Service.

Kafka brokers advertise per-pod names (``kafka-0.kafka-headless.prod.svc.cluster.local:9092``)
and clients route each partition to its leader themselves; what they need from us is a
bootstrap list. :func:`kafka_bootstrap_servers` builds it from DNS, by stable pod
hostnames whenever DNS can tell them, so the list survives broker restarts with new IPs
and TLS listeners can verify the per-pod certificate.
"""

from __future__ import annotations

from typing import Any

from .endpoints import EndpointSet
from .errors import InvalidArgument, InvalidName, NoEndpointsAvailable
from .names import validate_label
from .resolver import Resolver

__all__ = ["kafka_bootstrap_servers"]

DEFAULT_KAFKA_PORT = 9092


def kafka_bootstrap_servers(
    service: str | Any,
    port: int | str = DEFAULT_KAFKA_PORT,
    *,
    resolver: Resolver | None = None,
    namespace: str | None = None,
    statefulset: str | None = None,
) -> str:
    """Comma-separated ``host:port`` of every ready broker of *service*.

    The value for kafka-python's and aiokafka's ``bootstrap_servers`` and
    confluent-kafka's ``bootstrap.servers``::

        KafkaProducer(bootstrap_servers=kafka_bootstrap_servers("kafka-headless.prod", "tcp-client"))

    * A named *port* (the Service's port name: ``"tcp-client"`` in the Bitnami chart,
      often ``"kafka"``) asks SRV ``_<port>._tcp.<service>``: pod hostnames with the port
      of each SRV record.
    * A number with *statefulset* asks the StatefulSet's ordinal names
      (:meth:`Resolver.resolve_statefulset`): pod hostnames with that port.
    * A number alone asks A/AAAA: addresses (IPv6 in brackets) with that port.
    * A live service (:class:`~headless_client.HeadlessService` or its asyncio twin)
      gives its current view, without asking DNS again:
      ``kafka_bootstrap_servers(svc)``; build the list when you create a client.

    Hostnames are listed once per pod (a dual-stack pod has two endpoints), in ordinal
    order; addresses in address order. The client resolves the names itself (see
    :mod:`headless_client.contrib.kafka` for clients outside the cluster), and after
    bootstrapping connects to what the brokers *advertise*: that must be per-pod names too
    (:func:`headless_client.contrib.kafka.check_advertised` warns when it is addresses).

    Args:
        service: ``kafka-headless``, ``kafka-headless.prod``, an FQDN, or a live service
            (then *port*, *resolver*, *namespace* and *statefulset* are not used).
        port: a named port (SRV) or the broker port (default 9092).
        resolver: the :class:`Resolver` (default: the system's resolv.conf).
        namespace: for a one-label *service* (default: the resolver's, i.e. the pod's).
        statefulset: the brokers' StatefulSet name, for hostnames without SRV.

    Raises:
        InvalidName: a bad name, port, or *statefulset* with a named port.
        InvalidArgument: *service* is neither a name nor a service.
        ServiceNotFound: NXDOMAIN (no such service, or no ready broker).
        ResolutionError: timeout, refused, SERVFAIL, malformed answer.
        NoEndpointsAvailable: the answer holds no broker.
    """
    if not isinstance(service, str):
        view = getattr(service, "endpoints", None)
        if not isinstance(view, EndpointSet):
            raise InvalidArgument(f"service must be a service name or a live service: {service!r}")
        servers = _host_ports(view)
        if not servers:
            raise NoEndpointsAvailable(f"no Kafka brokers in {service.name!r}")
        return ",".join(servers)
    if resolver is None:
        resolver = Resolver()
    if isinstance(port, str):
        if statefulset is not None:
            raise InvalidName(
                f"statefulset={statefulset!r} needs a port number; a named port {port!r} "
                "gives pod hostnames by SRV already"
            )
        found = resolver.resolve(service, port, namespace=namespace)
    elif statefulset is not None:
        svc, ns = _split_service(resolver, service, namespace)
        found = resolver.resolve_statefulset(statefulset, namespace=ns, service=svc, port=port)
    else:
        found = resolver.resolve(service, port, namespace=namespace)
    servers = _host_ports(found)
    if not servers:
        raise NoEndpointsAvailable(f"no Kafka brokers in {resolver.qualify(service, namespace)!r}")
    return ",".join(servers)


def _split_service(resolver: Resolver, service: str, namespace: str | None) -> tuple[str, str]:
    """(service label, namespace) of *service* as *resolver* qualifies it."""
    fqdn = resolver.qualify(service, namespace)
    suffix = f".svc.{resolver.cluster_domain}"
    if not fqdn.endswith(suffix):
        raise InvalidName(
            f"service {service!r} ({fqdn!r}) is not under 'svc.{resolver.cluster_domain}'; "
            "statefulset= needs a Service name"
        )
    labels = fqdn[: -len(suffix)].split(".")
    if len(labels) != 2:
        raise InvalidName(f"service {service!r} ({fqdn!r}) is not '<service>.<namespace>'")
    return validate_label(labels[0], "service"), validate_label(labels[1], "namespace")


def _host_ports(endpoints: EndpointSet) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for ep in endpoints:
        item = ep.identity  # host:port, [v6]:port or v4:port: what a bootstrap list wants
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out
