"""Kafka brokers behind a headless Service: leader maps from cluster metadata, a check of
what the brokers advertise, and a scoped resolver of cluster names for Kafka clients.

No Kafka library is imported here: the functions read metadata from whatever client you
have (kafka-python, aiokafka, confluent-kafka's data, or plain dicts), so this module
needs no extra.

**How a Kafka client reaches each broker.** It bootstraps from any broker of
:func:`~headless_client.kafka_helpers.kafka_bootstrap_servers`, then asks for metadata: every
broker's *advertised* listener, and each partition's leader. From then on it connects to
the advertised host of each partition's leader, resolving that host itself, through the
system resolver (``getaddrinfo``). In a pod that is the pod's resolv.conf, which knows
the cluster's per-pod names (``kafka-0.kafka-headless.prod.svc.cluster.local``): nothing
to do. Outside the cluster (a laptop through a VPN, a test against the library's fake
DNS), :func:`resolve_cluster_names` makes ``getaddrinfo`` answer names under the cluster
domain through the library's :class:`~headless_client.Resolver` for as long as it is
active.

**Advertise names, not addresses.** A broker that advertises its pod's IP makes every
client keep that IP in its metadata; when the pod is rescheduled with a new IP, clients
dial the old one until their metadata ages out (kafka-python and librdkafka: 5 minutes by
default), and TLS cannot verify a stable name. This is the stale-IP trouble Kafka (and
Redis) users report most (Strimzi, Bitnami charts, confluent-kafka-python#990,
librdkafka#2841). :func:`check_advertised` detects it from metadata (an advertised host
that is an IP literal) and warns with :class:`AdvertisedAddressWarning`;
:class:`KafkaLeaders` checks every time it reads metadata. Fix it in the brokers'
``advertised.listeners``: ``PLAINTEXT://$(POD_NAME).kafka-headless.$(NAMESPACE).svc.cluster.local:9092``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, Literal

from ..errors import InvalidArgument, InvalidName, ResolutionError, ServiceNotFound
from ..resolver import Resolver

__all__ = [
    "AdvertisedAddressWarning",
    "KafkaLeaders",
    "advertised_brokers",
    "check_advertised",
    "leaders_from_metadata",
    "resolve_cluster_names",
]

log = logging.getLogger("headless_client.kafka")

Broker = tuple[int | None, str, int | None]
"""(node id, advertised host, port) of one broker."""


class AdvertisedAddressWarning(UserWarning):
    """Brokers advertise IP addresses instead of per-pod names: clients will keep dialling
    a rescheduled pod's old address. Set ``advertised.listeners`` to the pods' DNS names."""


# --------------------------------------------------------------------------------------------
# Reading brokers from metadata (duck-typed: kafka-python, aiokafka, dicts)
# --------------------------------------------------------------------------------------------


def _first(item: Any, *names: str) -> Any:
    for name in names:
        if isinstance(item, Mapping):
            if name in item:
                return item[name]
        elif hasattr(item, name):
            return getattr(item, name)
    return None


def _broker(item: object) -> Broker:
    """One broker from a dict (``describe_cluster()``), a ``BrokerMetadata`` (kafka-python,
    aiokafka), a tuple ``(node id, host, port, ...)`` or a ``"host:port"`` string."""
    if isinstance(item, str):
        host, sep, port = item.rpartition(":")
        if not sep:
            return None, item.strip("[]"), None
        return None, host.strip("[]"), int(port) if port.isdigit() else None
    host = _first(item, "host")
    if isinstance(host, str):
        node = _first(item, "broker_id", "node_id", "nodeId", "id")
        port = _first(item, "port")
        return (
            int(node) if isinstance(node, int) else None,
            host,
            int(port) if isinstance(port, int) else None,
        )
    if isinstance(item, tuple) and len(item) >= 3 and isinstance(item[1], str):
        node, host, port = item[0], item[1], item[2]
        return (
            int(node) if isinstance(node, int) else None,
            host,
            int(port) if isinstance(port, int) else None,
        )
    raise InvalidArgument(f"not a broker description (dict, BrokerMetadata, tuple or 'host:port'): {item!r}")


def advertised_brokers(source: object) -> list[Broker]:
    """``[(node id, advertised host, port), ...]`` from a Kafka client or its metadata.

    *source* may be: kafka-python's ``KafkaAdminClient`` (``describe_cluster()``), its
    ``KafkaProducer``/``KafkaConsumer`` or aiokafka's producer/consumer (their cluster
    metadata, once they bootstrapped), a ``ClusterMetadata`` (``brokers()``), or an
    iterable of broker dicts, ``BrokerMetadata`` tuples or ``"host:port"`` strings.

    Raises:
        InvalidArgument: nothing broker-like found in *source*.
    """
    describe = getattr(source, "describe_cluster", None)
    if callable(describe) and not _is_coroutine_function(describe):
        return [_broker(b) for b in describe()["brokers"]]
    for path in (("brokers",), ("cluster", "brokers"), ("client", "cluster", "brokers"),
                 ("_client", "cluster", "brokers"), ("_metadata", "brokers")):
        target: Any = source
        for name in path:
            target = getattr(target, name, None)
            if target is None:
                break
        if callable(target):
            return [_broker(b) for b in target()]
    if isinstance(source, Iterable) and not isinstance(source, (str, bytes, Mapping)):
        return [_broker(b) for b in source]
    raise InvalidArgument(f"no broker metadata in {source!r}")


def _is_coroutine_function(fn: object) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def check_advertised(source: object, *, warn: bool = True) -> list[str]:
    """The brokers of *source* that advertise an IP address instead of a name.

    Reads the brokers as :func:`advertised_brokers` does. When any advertises an address,
    logs a WARNING and (with *warn*) issues an :class:`AdvertisedAddressWarning`: clients
    will dial those addresses until their metadata ages out, even after the pod moved.

    Returns:
        ``["10.244.1.7:9092", ...]``, empty when every broker advertises a name.
    """
    bad = [
        (f"[{host}]:{port}" if ":" in host else f"{host}:{port}") if port is not None else host
        for _, host, port in advertised_brokers(source)
        if _is_address(host)
    ]
    if bad:
        message = (
            f"Kafka brokers advertise IP addresses, not per-pod names: {', '.join(bad)}. Clients keep "
            "dialling these addresses after a pod is rescheduled with a new IP (until their metadata "
            "ages out) and TLS cannot verify a stable name; set advertised.listeners to the pods' DNS "
            "names (<pod>.<headless service>.<namespace>.svc.<cluster domain>)"
        )
        log.warning("%s", message,
                    extra={"service": None, "pod": None, "address": ", ".join(bad),
                           "reason": "advertised_address"})
        if warn:
            warnings.warn(AdvertisedAddressWarning(message), stacklevel=2)
    return bad


# --------------------------------------------------------------------------------------------
# Leader maps for PartitionLeader
# --------------------------------------------------------------------------------------------


def leaders_from_metadata(
    brokers: Iterable[object],
    partitions: Mapping[Hashable, int],
    *,
    by: Literal["host", "node_id"] = "host",
) -> dict[Hashable, int | str]:
    """A :class:`~headless_client.PartitionLeader` map from Kafka metadata.

    Args:
        brokers: the brokers (as :func:`advertised_brokers` reads them).
        partitions: partition -> leader node id (``-1``: no leader now; left out).
        by: name each leader by its advertised ``"host"`` (the pod's name: matched to the
            pod of the view with that hostname), or by its ``"node_id"`` taken as the
            StatefulSet ordinal (charts that set ``node.id`` to the ordinal; works even
            when the brokers advertise addresses).

    Returns:
        partition -> leader hostname (lower case) or ordinal.

    Raises:
        InvalidName: a bad *by*.
    """
    if by not in ("host", "node_id"):
        raise InvalidName(f"by must be 'host' or 'node_id': {by!r}")
    hosts = {node: host.lower().rstrip(".") for node, host, _ in map(_broker, brokers) if node is not None}
    out: dict[Hashable, int | str] = {}
    for partition, leader in partitions.items():
        if leader is None or leader < 0:
            continue
        if by == "node_id":
            out[partition] = int(leader)
        elif leader in hosts:
            out[partition] = hosts[leader]
    return out


class KafkaLeaders:
    """A zero-argument callable returning ``{(topic, partition): leader}`` from a kafka-python
    ``KafkaAdminClient``: the leader source of a :class:`~headless_client.PartitionLeader`.

    Each call asks the cluster (``describe_cluster()``, ``describe_topics(topics)``) and
    checks what the brokers advertise (:func:`check_advertised`: warns once per instance)::

        leaders = PartitionLeader(KafkaLeaders(admin, ["orders"]), min_reread_interval=1.0)
        with HeadlessService("kafka-headless.prod", port="tcp-client", strategy=leaders) as svc:
            svc.pick(partition=("orders", kafka_partition(b"customer-42", 6)))   # that leader's pod

    Args:
        admin: a kafka-python ``KafkaAdminClient`` (or anything with the same two methods).
        topics: the topics to map.
        by: ``"host"`` or ``"node_id"``, as :func:`leaders_from_metadata`.
    """

    __slots__ = ("_warned", "admin", "by", "topics")

    def __init__(self, admin: Any, topics: Iterable[str], *, by: Literal["host", "node_id"] = "host") -> None:
        if isinstance(topics, str):
            raise InvalidArgument(f"topics must be a collection of topic names, not a str: {topics!r}")
        if by not in ("host", "node_id"):
            raise InvalidName(f"by must be 'host' or 'node_id': {by!r}")
        self.admin = admin
        self.topics = list(topics)
        self.by: Literal["host", "node_id"] = by
        self._warned = False

    def __call__(self) -> dict[Hashable, int | str]:
        brokers = self.admin.describe_cluster()["brokers"]
        if check_advertised(brokers, warn=not self._warned):
            self._warned = True
        partitions: dict[Hashable, int] = {}
        for entry in self.admin.describe_topics(self.topics):
            topic = entry.get("topic") or entry.get("name")
            for partition in entry.get("partitions", ()):
                partitions[(topic, int(partition["partition_index"]))] = int(partition["leader_id"])
        return leaders_from_metadata(brokers, partitions, by=self.by)

    def __repr__(self) -> str:
        return f"KafkaLeaders({self.topics!r}, by={self.by!r})"


# --------------------------------------------------------------------------------------------
# Cluster names through the library's resolver
# --------------------------------------------------------------------------------------------

_shim_lock = threading.Lock()
_shims: list[tuple[str, Resolver]] = []  # (suffix, resolver), innermost last
_original_getaddrinfo: Callable[..., Any] | None = None


def _shim_getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                      flags: int = 0) -> Any:
    real = _original_getaddrinfo or socket.getaddrinfo
    name = host.decode() if isinstance(host, bytes) else host
    if isinstance(name, str):
        folded = name.lower().rstrip(".")
        for suffix, resolver in reversed(_shims):
            if folded.endswith(suffix):
                return _answer(real, resolver, folded, port, family, type, proto, flags)
    return real(host, port, family, type, proto, flags)


def _answer(real: Callable[..., Any], resolver: Resolver, name: str, port: Any, family: int, type: int,
            proto: int, flags: int) -> list[Any]:
    try:
        found = resolver.resolve_host(name + ".")
    except ServiceNotFound:
        raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {name}") from None
    except ResolutionError as exc:
        raise socket.gaierror(
            socket.EAI_AGAIN, f"Temporary failure in name resolution: {name}: {exc}"
        ) from None
    out: list[Any] = []
    for endpoint in found:
        try:
            out.extend(real(endpoint.address, port, family, type, proto, flags | socket.AI_NUMERICHOST))
        except socket.gaierror:
            continue  # an address of the other family than asked
    if not out:
        raise socket.gaierror(socket.EAI_NODATA, f"No address associated with hostname: {name}")
    return out


@contextlib.contextmanager
def resolve_cluster_names(resolver: Resolver | None = None) -> Iterator[Resolver]:
    """While active, ``socket.getaddrinfo`` answers names under the cluster domain
    (``*.svc.cluster.local``) through the library's *resolver*; every other name goes to
    the system resolver as before.

    For clients that resolve advertised names themselves (Kafka clients, asyncpg, redis-py
    given names) where the system resolver does not know the cluster: outside the cluster,
    or in tests against :class:`~headless_client.testing.FakeClusterDNS`. Inside a pod you
    do not need it. It patches the process-wide function (asyncio's ``getaddrinfo`` uses it
    too), so it affects every thread while active; nested uses stack, and leaving restores
    what was there. It never sends a cluster name to the system resolver while active.

    Args:
        resolver: the library's resolver (default: one from the pod's resolv.conf).

    Yields:
        The resolver in use.
    """
    global _original_getaddrinfo
    resolver = resolver if resolver is not None else Resolver()
    if not isinstance(resolver, Resolver):
        raise InvalidArgument(f"resolver must be a headless_client.Resolver: {resolver!r}")
    entry = ("." + resolver.cluster_domain.lower().rstrip("."), resolver)
    with _shim_lock:
        if not _shims:
            _original_getaddrinfo = socket.getaddrinfo
            socket.getaddrinfo = _shim_getaddrinfo
        _shims.append(entry)
    try:
        yield resolver
    finally:
        with _shim_lock:
            _shims.remove(entry)
            if not _shims and _original_getaddrinfo is not None:
                socket.getaddrinfo = _original_getaddrinfo
                _original_getaddrinfo = None
