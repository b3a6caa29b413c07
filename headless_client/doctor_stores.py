"""The doctor's optional checks: do Kafka brokers and Redis nodes advertise per-pod names?

A client that bootstraps through a headless Service then connects to what each server
*advertises*: Kafka brokers' ``advertised.listeners`` (in the Metadata response), Redis
replicas' ``replica-announce-ip`` and a replica's master host (``ROLE``), Redis Cluster's
node endpoints (``CLUSTER NODES``). A pod IP there breaks when the pod is rescheduled and
hides which pod is which; a per-pod name (``kafka-0.kafka-headless.prod.svc.cluster.local``)
does not. Both protocols are spoken here directly (a Metadata v4 request; RESP), so the
doctor needs no client library. The verdicts are pure functions (:func:`judge_kafka`,
:func:`judge_redis`) over what the servers said.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Sequence
from typing import Any, Final

from .doctor import Facts, Finding
from .errors import HeadlessClientError
from .wire import parse_nameserver

__all__ = [
    "check_kafka",
    "check_redis",
    "judge_kafka",
    "judge_redis",
    "kafka_brokers",
    "redis_command",
]

#: Kafka's Metadata API: key 3; version 4 is the oldest Kafka 4 still serves and the
#: newest without the compact ("flexible") encoding.
METADATA_KEY: Final = 3
METADATA_VERSION: Final = 4
MAX_REPLY: Final = 1 << 20


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


# -- Kafka -------------------------------------------------------------------------------------------


def _read_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection mid-reply")
        data += chunk
    return data


def kafka_brokers(address: str, port: int, timeout: float) -> list[tuple[int, str, int]]:
    """``(node id, advertised host, port)`` of every broker, from one Metadata request.

    Raises:
        OSError: no connection, or a malformed reply.
    """
    client = b"headless-client-doctor"
    header = struct.pack(">hhih", METADATA_KEY, METADATA_VERSION, 1, len(client)) + client
    body = struct.pack(">ib", 0, 0)  # no topics; no auto-creation
    request = header + body
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _read_exact(sock, 4))
        if not 8 <= size <= MAX_REPLY:
            raise ConnectionError(f"unexpected Metadata reply size {size}")
        reply = _read_exact(sock, size)
    try:
        correlation, _throttle, count = struct.unpack_from(">iii", reply, 0)
        if correlation != 1:
            raise ConnectionError(f"reply to another request (correlation id {correlation})")
        offset = 12
        brokers = []
        for _ in range(count):
            node, length = struct.unpack_from(">ih", reply, offset)
            offset += 6
            host = reply[offset : offset + length].decode("utf-8", "replace")
            offset += length
            (broker_port, rack) = struct.unpack_from(">ih", reply, offset)
            offset += 6 + max(rack, 0)
            brokers.append((node, host, broker_port))
    except struct.error as exc:
        raise ConnectionError(f"malformed Metadata reply: {exc}") from exc
    return brokers


def judge_kafka(bootstrap: str, brokers: Sequence[tuple[int, str, int]], service: str) -> list[Finding]:
    """Verdicts on what the brokers advertise (pure)."""
    if not brokers:
        return [Finding("kafka", "fail", f"{bootstrap} answered Metadata with no broker")]
    by_ip = [(node, host) for node, host, _ in brokers if _is_ip(host)]
    if by_ip:
        node, host = by_ip[0]
        return [Finding(
            "kafka", "warn",
            f"{len(by_ip)} of {len(brokers)} broker(s) advertise an IP (broker {node}: {host}): clients "
            "lose the pod's identity and break when it moves; set advertised.listeners to the pod's "
            f"name (<pod>.{service}:<port>)",
        )]
    suffix = "." + service.lower()
    elsewhere = [host for _, host, _ in brokers if not host.lower().rstrip(".").endswith(suffix)]
    shown = ", ".join(sorted(f"{h}:{p}" for _, h, p in brokers)[:3])
    if elsewhere:
        return [Finding(
            "kafka", "info",
            f"brokers advertise names, not under {service} ({elsewhere[0]}...): fine if those names "
            "resolve where your clients run",
        )]
    return [Finding("kafka", "ok", f"{len(brokers)} broker(s) advertise per-pod names ({shown})")]


def check_kafka(bootstrap: str, facts: Facts, *, timeout: float, resolver: Any = None) -> list[Finding]:
    """Ask the bootstrap server (``HOST:PORT``; a name is resolved with *resolver*) for
    the brokers, and judge their advertised names."""
    try:
        server = parse_nameserver(bootstrap)
        addresses = [server.host]
    except HeadlessClientError:
        host, _, port_text = bootstrap.rpartition(":")
        if not host or not port_text.isdigit() or resolver is None:
            return [Finding("kafka", "fail", f"--kafka wants HOST:PORT, not {bootstrap!r}")]
        try:
            addresses = [ep.address for ep in resolver.resolve_host(host, int(port_text))]
        except HeadlessClientError as exc:
            return [Finding("kafka", "fail", f"cannot resolve the Kafka bootstrap {host}: {exc}")]
        server = parse_nameserver(f"{addresses[0]}:{port_text}") if addresses else server
    try:
        brokers = kafka_brokers(server.host, server.port, timeout)
    except OSError as exc:
        where = addresses[0] if addresses else "?"
        return [Finding("kafka", "fail", f"no Metadata from {bootstrap} ({where}): {exc}; check the port "
                                         "and that it is a Kafka listener")]
    return judge_kafka(bootstrap, brokers, facts.service)


# -- Redis -------------------------------------------------------------------------------------------


def _resp_encode(*words: str) -> bytes:
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        raw = word.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.total = 0

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._more()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def exact(self, count: int) -> bytes:
        while len(self.buffer) < count + 2:
            self._more()
        data, self.buffer = self.buffer[:count], self.buffer[count + 2 :]
        return data

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-reply")
        self.total += len(chunk)
        if self.total > MAX_REPLY:
            raise ConnectionError("reply too large")
        self.buffer += chunk

    def value(self, depth: int = 0) -> Any:
        if depth > 8:
            raise ConnectionError("reply nested too deeply")
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            return RuntimeError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.exact(size).decode("utf-8", "replace")
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self.value(depth + 1) for _ in range(size)]
        raise ConnectionError(f"unexpected RESP reply {line[:20]!r}")


def redis_command(address: str, port: int, timeout: float, *words: str) -> Any:
    """One RESP command's reply (an error reply comes back as a RuntimeError value).

    Raises:
        OSError: no connection, or a malformed reply.
    """
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(_resp_encode(*words))
        return _Reader(sock).value()


def judge_redis(node: str, role: Any, cluster_nodes: Any, service: str) -> list[Finding]:
    """Verdicts on one node's ``ROLE`` and ``CLUSTER NODES`` replies (pure)."""
    findings: list[Finding] = []
    if isinstance(cluster_nodes, str):
        hostless = [line.split()[1] for line in cluster_nodes.splitlines()
                    if len(line.split()) > 1 and "," not in line.split()[1]]
        if hostless:
            findings.append(Finding(
                "redis", "warn",
                f"{node}: {len(hostless)} cluster node(s) announce no hostname ({hostless[0]}): set "
                "cluster-announce-hostname to the pod's name and cluster-preferred-endpoint-type hostname",
            ))
        else:
            findings.append(Finding("redis", "ok", f"{node}: cluster nodes announce hostnames"))
    if not isinstance(role, list) or not role:
        return [*findings, Finding("redis", "fail", f"{node}: no usable ROLE reply ({role!r})")]
    kind = role[0]
    if kind == "master":
        replicas = [r for r in (role[2] if len(role) > 2 and isinstance(role[2], list) else []) if r]
        by_ip = [str(r[0]) for r in replicas if isinstance(r, list) and r and _is_ip(str(r[0]))]
        if by_ip:
            findings.append(Finding(
                "redis", "warn",
                f"{node}: primary lists {len(by_ip)} replica(s) by IP ({by_ip[0]}): set replica-announce-ip "
                f"to each replica's pod name (<pod>.{service}) so clients and sentinels follow pods, not IPs",
            ))
        elif replicas:
            findings.append(Finding("redis", "ok", f"{node}: primary lists its replicas by name "
                                                   f"({', '.join(str(r[0]) for r in replicas[:3])})"))
        elif not findings:
            findings.append(Finding("redis", "info", f"{node}: a primary, no replicas"))
    elif kind == "slave":
        master = str(role[1]) if len(role) > 1 else "?"
        if _is_ip(master):
            findings.append(Finding(
                "redis", "warn",
                f"{node}: replica follows its primary by IP ({master}): use the primary's pod name in "
                f"replicaof (<pod>.{service}) so it survives the primary's move",
            ))
        else:
            findings.append(Finding("redis", "ok", f"{node}: replica follows its primary by name ({master})"))
    else:
        findings.append(Finding("redis", "info", f"{node}: role {kind!r}"))
    return findings


def check_redis(facts: Facts, *, timeout: float) -> list[Finding]:
    """``ROLE`` and ``CLUSTER NODES`` of each pod of the service, judged."""
    if not facts.endpoints:
        return [Finding("redis", "fail", f"no pods to ask: {facts.service} has no endpoints")]
    findings: list[Finding] = []
    for ep in facts.endpoints:
        port = ep.port or (facts.port if isinstance(facts.port, int) else 6379)
        node = (ep.hostname or ep.address).split(".", 1)[0]
        try:
            role = redis_command(ep.address, port, timeout, "ROLE")
            nodes = redis_command(ep.address, port, timeout, "CLUSTER", "NODES")
        except OSError as exc:
            findings.append(Finding("redis", "fail", f"{node} ({ep.address}:{port}): {exc}"))
            continue
        findings += judge_redis(node, role, nodes if isinstance(nodes, str) else None, facts.service)
    return findings
