"""The server side of a toy partitioned key-value store: one TCP server per pod.

Protocol: UTF-8 text lines, one request, one reply.

===========================  ==========================================================
request                      replies
===========================  ==========================================================
``GET <key>``                ``VALUE <value>``, ``NOT_FOUND``, ``NOT_LEADER [<ordinal>]``
``PUT <key> <value>``        ``OK``, ``NOT_LEADER [<ordinal>]``
``METADATA``                 ``LEADERS <p>=<ordinal> ...`` from any pod (the leader table)
anything else                ``ERROR <reason>``
===========================  ==========================================================

A key belongs to partition ``kafka_partition(key.encode(), partitions)``; only the pod
that leads the partition serves it, the others answer ``NOT_LEADER`` with the leader's
ordinal (Kafka's ``NOT_LEADER_OR_FOLLOWER``, with the hint Kafka puts in metadata).
Leadership lives in a :class:`LeaderTable` shared by every pod (the controller), and data
in a :class:`ReplicatedStore` shared by every pod (instant replication), so moving a
partition's leadership loses nothing.

Everything runs on loopback, bounded: each pod is one selector thread with a connection
cap and a line-length cap, and :meth:`KVPod.close` stops it within a few seconds.
"""

from __future__ import annotations

import contextlib
import ipaddress
import selectors
import socket
import threading
from collections.abc import Mapping
from types import TracebackType

from headless_client import kafka_partition

__all__ = ["KVCluster", "KVPod", "LeaderTable", "ReplicatedStore", "partition_of"]

MAX_LINE = 4096
MAX_CONNECTIONS = 256


def partition_of(key: str, partitions: int) -> int:
    """The partition of *key*: Kafka's default partitioner over its UTF-8 bytes."""
    return kafka_partition(key.encode(), partitions)


class LeaderTable:
    """partition -> leader ordinal, shared by all pods; the test (or operator) changes it."""

    def __init__(self, leaders: Mapping[int, int]) -> None:
        self._lock = threading.Lock()
        self._leaders = dict(leaders)

    @property
    def partitions(self) -> int:
        return len(self._leaders)

    def snapshot(self) -> dict[int, int]:
        """A copy of the table: what a client's metadata request would return."""
        with self._lock:
            return dict(self._leaders)

    def leader_of(self, partition: int) -> int | None:
        with self._lock:
            return self._leaders.get(partition)

    def move(self, partition: int, ordinal: int) -> None:
        """Make *ordinal* the leader of *partition*."""
        with self._lock:
            if partition not in self._leaders:
                raise KeyError(f"no partition {partition}")
            self._leaders[partition] = ordinal

    def move_all(self, from_ordinal: int, to_ordinal: int) -> list[int]:
        """Hand every partition led by *from_ordinal* to *to_ordinal*; returns them."""
        with self._lock:
            moved = [p for p, o in self._leaders.items() if o == from_ordinal]
            for p in moved:
                self._leaders[p] = to_ordinal
            return moved


class ReplicatedStore:
    """Every partition's data, seen by every pod (replication, idealised)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[int, dict[str, str]] = {}

    def get(self, partition: int, key: str) -> str | None:
        with self._lock:
            return self._data.get(partition, {}).get(key)

    def put(self, partition: int, key: str, value: str) -> None:
        with self._lock:
            self._data.setdefault(partition, {})[key] = value


class _Conn:
    __slots__ = ("inbox", "outbox", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = bytearray()
        self.outbox = bytearray()


class KVPod:
    """One pod: a KV server on ``address:port`` for StatefulSet *ordinal*.

    ``served[partition]`` counts the requests it answered as leader, ``refused`` the
    ``NOT_LEADER`` answers it gave, ``metadata`` the ``METADATA`` requests.
    """

    def __init__(
        self,
        ordinal: int,
        address: str,
        port: int,
        table: LeaderTable,
        store: ReplicatedStore,
    ) -> None:
        self.ordinal = ordinal
        self.address = address
        self.port = port
        self.table = table
        self.store = store
        self.served: dict[int, int] = {}
        self.refused = 0
        self.metadata = 0
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        self._listener = socket.create_server((address, port), family=family, backlog=64)
        self._listener.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, None)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._conns: dict[socket.socket, _Conn] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"kv-pod-{ordinal}", daemon=True)
        self._thread.start()

    # -- requests ------------------------------------------------------------------------

    def handle(self, line: str) -> str:
        """The reply to one request line (no newline)."""
        verb, _, rest = line.partition(" ")
        if verb == "METADATA" and not rest:
            self.metadata += 1
            leaders = self.table.snapshot()
            return "LEADERS " + " ".join(f"{p}={o}" for p, o in sorted(leaders.items()))
        if verb == "GET":
            key = rest
            if not key or " " in key:
                return "ERROR usage: GET <key>"
        elif verb == "PUT":
            key, _, value = rest.partition(" ")
            if not key or not value:
                return "ERROR usage: PUT <key> <value>"
        else:
            return f"ERROR unknown command {verb!r}"
        partition = partition_of(key, self.table.partitions)
        leader = self.table.leader_of(partition)
        if leader != self.ordinal:
            self.refused += 1
            return "NOT_LEADER" if leader is None else f"NOT_LEADER {leader}"
        self.served[partition] = self.served.get(partition, 0) + 1
        if verb == "PUT":
            self.store.put(partition, key, value)
            return "OK"
        found = self.store.get(partition, key)
        return "NOT_FOUND" if found is None else f"VALUE {found}"

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            for key, mask in self._sel.select(timeout=5.0):
                sock = key.fileobj
                if sock is self._wake_r:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(64)
                elif sock is self._listener:
                    self._accept()
                else:
                    assert isinstance(sock, socket.socket)
                    self._io(self._conns[sock], mask)
        for conn in list(self._conns.values()):
            self._drop(conn)
        self._sel.close()

    def _accept(self) -> None:
        for _ in range(64):  # a bounded burst per wake-up
            try:
                sock, _ = self._listener.accept()
            except OSError:  # BlockingIOError: no more pending
                return
            if len(self._conns) >= MAX_CONNECTIONS:
                sock.close()
                continue
            sock.setblocking(False)
            conn = self._conns[sock] = _Conn(sock)
            self._sel.register(sock, selectors.EVENT_READ, conn)

    def _io(self, conn: _Conn, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self._drop(conn)
                return
            if data == b"":
                self._drop(conn)
                return
            if data:
                conn.inbox += data
                while b"\n" in conn.inbox:
                    raw, _, rest = bytes(conn.inbox).partition(b"\n")
                    conn.inbox[:] = rest
                    reply = self.handle(raw.decode("utf-8", "replace").rstrip("\r"))
                    conn.outbox += reply.encode() + b"\n"
                if len(conn.inbox) > MAX_LINE:
                    conn.outbox += b"ERROR line too long\n"
                    conn.inbox.clear()
        if conn.outbox:
            try:
                sent = conn.sock.send(conn.outbox)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._drop(conn)
                return
            del conn.outbox[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbox else 0)
        if self._sel.get_key(conn.sock).events != events:
            self._sel.modify(conn.sock, events, conn)

    def _drop(self, conn: _Conn) -> None:
        self._conns.pop(conn.sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn.sock)
        conn.sock.close()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving: the listener and every connection close (the pod is killed)."""
        if self._stopping and not self._thread.is_alive():
            return
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"KV pod {self.ordinal} did not stop within {timeout} s")
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()


class KVCluster:
    """Pods sharing one leader table and one store.

    >>> with KVCluster({p: p % 3 for p in range(6)}) as cluster:
    ...     cluster.add_pod(0, "127.20.0.1", 9000)
    """

    def __init__(self, leaders: Mapping[int, int]) -> None:
        self.table = LeaderTable(leaders)
        self.store = ReplicatedStore()
        self.pods: dict[int, KVPod] = {}

    @property
    def partitions(self) -> int:
        return self.table.partitions

    def add_pod(self, ordinal: int, address: str, port: int) -> KVPod:
        if ordinal in self.pods:
            raise ValueError(f"pod {ordinal} exists")
        pod = self.pods[ordinal] = KVPod(ordinal, address, port, self.table, self.store)
        return pod

    def kill(self, ordinal: int) -> KVPod:
        """Close pod *ordinal*'s server (its partitions should have moved first)."""
        pod = self.pods.pop(ordinal)
        pod.close()
        return pod

    def close(self) -> None:
        while self.pods:
            _, pod = self.pods.popitem()
            pod.close()

    def __enter__(self) -> KVCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
