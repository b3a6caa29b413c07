"""The client side: route each key to its partition's leader pod, Kafka style.

The three pieces of headless-client doing the work:

* :func:`headless_client.kafka_partition` maps a key to its partition, exactly as Kafka's
  Java producer would;
* :class:`headless_client.PartitionLeader` maps the partition to its leader pod, from a
  callable: by default a ``METADATA`` request to any pod (Kafka's Metadata request), sent
  with ``Request(any_pod=True)`` so that no one pod's death stops it; or a function of
  yours (the tests pass the cluster's leader table);
* :meth:`HeadlessService.connection(partition=p) <headless_client.HeadlessService.connection>`
  connects to that pod by DNS and reports how it went.

When the pod answers ``NOT_LEADER <ordinal>`` the client raises
:class:`~headless_client.NotLeader` and handles it with the documented pattern::

    except NotLeader as exc:
        svc.not_leader(exc.partition, exc.hint)   # hint used at once, DNS refreshed if new

When the leader cannot be reached at all (the pod died: :class:`~headless_client.ConnectError`),
the connection breaks mid-request, or the leader is not in DNS
(:class:`~headless_client.LeaderNotAvailable`), it asks the leader table again and retries.
Every request is bounded: at most *max_tries* routing rounds, each a connect bounded by
*timeout* and *attempts*.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections import Counter
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from headless_client import (
    HeadlessService,
    LeaderNotAvailable,
    NotLeader,
    PartitionLeader,
    Request,
    Resolver,
    kafka_partition,
)

__all__ = ["KVClient", "KVError"]

log = logging.getLogger("partitioned_kv.client")

MAX_REPLY = 4096


class KVError(Exception):
    """The request failed: a protocol error, or no leader reachable within *max_tries*."""


def _read_line(sock: socket.socket) -> str:
    buf = b""
    while not buf.endswith(b"\n"):
        if len(buf) > MAX_REPLY:
            raise KVError("reply too long")
        chunk = sock.recv(MAX_REPLY)
        if not chunk:
            raise ConnectionResetError("the pod closed the connection before replying")
        buf += chunk
    return buf[:-1].decode()


class KVClient:
    """A client of the partitioned KV store behind a headless Service.

    Args:
        service: the headless Service (``kv``, ``kv.prod``, an FQDN).
        partitions: the number of partitions.
        leaders: returns ``{partition: leader ordinal or hostname}``; re-read when a
            leader turns out unreachable, and at most once per *min_reread_interval*
            when a pod says ``NOT_LEADER`` without a hint. ``None`` (the default): ask
            the pods (``METADATA``, to any pod that answers).
        port: the Service's named port (SRV gives pod identities).
        resolver, namespace: passed to :class:`~headless_client.HeadlessService`.
        timeout, attempts: per connect (``attempts`` dials to the leader, with backoff).
        max_tries: routing rounds per request (following hints, re-reading leaders).
        ssl_context: TLS per pod (certificates naming the pod's FQDN).
    """

    def __init__(
        self,
        service: str,
        partitions: int,
        leaders: Callable[[], Mapping[Any, int | str]] | None = None,
        *,
        port: str = "kv",
        resolver: Resolver | None = None,
        namespace: str | None = None,
        timeout: float = 1.0,
        attempts: int = 2,
        max_tries: int = 5,
        min_reread_interval: float = 1.0,
        ssl_context: ssl.SSLContext | None = None,
        **service_options: object,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1: {partitions!r}")
        self.partitions = partitions
        self._from_pods = leaders is None
        self.leaders = PartitionLeader(
            self.fetch_leaders if leaders is None else leaders, min_reread_interval=min_reread_interval
        )
        self.service = HeadlessService(
            service,
            port,
            resolver=resolver,
            namespace=namespace,
            strategy=self.leaders,
            **service_options,  # type: ignore[arg-type]
        )
        self.timeout = timeout
        self.attempts = attempts
        self.max_tries = max_tries
        self.ssl_context = ssl_context
        #: ``requests``, ``not_leader`` (hints followed), ``rerouted`` (leader unreachable),
        #: ``metadata`` (leader maps read from the pods).
        self.stats: Counter[str] = Counter()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.service.start()
        if self._from_pods:
            self.leaders.refresh_leaders(force=True)  # now there are pods to ask

    def fetch_leaders(self) -> dict[int, int]:
        """``METADATA`` to any pod: ``{partition: leader ordinal}`` (empty before start()).

        An "any pod" request: the partition-leader strategy rotates it over the usable pods,
        and a pod that refuses is ejected and another one tried. (Asking pod 0 every time
        would stop every re-read of the map the day pod 0 dies.)
        """
        service = getattr(self, "service", None)  # PartitionLeader reads once, before it exists
        if service is None or service.core.phase == "new":
            return {}
        with service.connection(request=Request(any_pod=True), timeout=self.timeout,
                                attempts=3, ssl_context=self.ssl_context) as sock:
            sock.settimeout(self.timeout)
            sock.sendall(b"METADATA\n")
            reply = _read_line(sock)
        verb, _, pairs = reply.partition(" ")
        if verb != "LEADERS":
            raise KVError(f"METADATA: unexpected reply {reply!r}")
        self.stats["metadata"] += 1
        return {int(p): int(o) for p, o in (pair.split("=") for pair in pairs.split())}

    def close(self) -> None:
        self.service.close()

    def __enter__(self) -> KVClient:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the API -------------------------------------------------------------------------------

    def partition(self, key: str) -> int:
        return kafka_partition(key.encode(), self.partitions)

    def get(self, key: str) -> str | None:
        reply = self._request(key, f"GET {key}")
        if reply == "NOT_FOUND":
            return None
        if reply.startswith("VALUE "):
            return reply[len("VALUE ") :]
        raise KVError(f"GET {key}: unexpected reply {reply!r}")

    def put(self, key: str, value: str) -> None:
        if "\n" in value:
            raise ValueError("values are single lines")
        reply = self._request(key, f"PUT {key} {value}")
        if reply != "OK":
            raise KVError(f"PUT {key}: unexpected reply {reply!r}")

    # -- routing ---------------------------------------------------------------------------------

    def _request(self, key: str, line: str) -> str:
        if not key or any(c.isspace() for c in key):
            raise ValueError(f"keys are non-empty and without spaces: {key!r}")
        partition = self.partition(key)
        self.stats["requests"] += 1
        last: Exception | None = None
        for _ in range(self.max_tries):
            try:
                return self._send(partition, line)
            except NotLeader as exc:
                self.stats["not_leader"] += 1
                last = exc
                self.service.not_leader(exc.partition, exc.hint)
            except (OSError, LeaderNotAvailable) as exc:
                # ConnectError (an OSError): the leader is unreachable; another OSError:
                # the connection broke mid-request (GET and PUT are idempotent, so retry).
                self.stats["rerouted"] += 1
                last = exc
                self._reroute(partition)
        raise KVError(f"{line.split()[0]} {key}: no leader of partition {partition} answered") from last

    def _send(self, partition: int, line: str) -> str:
        with self.service.connection(
            partition=partition, timeout=self.timeout, attempts=self.attempts, ssl_context=self.ssl_context
        ) as sock:
            sock.settimeout(self.timeout)
            sock.sendall(line.encode() + b"\n")
            reply = _read_line(sock)
        # Outside the block: a NOT_LEADER is a healthy pod's answer, not a failure.
        if reply == "NOT_LEADER" or reply.startswith("NOT_LEADER "):
            hint = reply[len("NOT_LEADER ") :]
            raise NotLeader(partition, int(hint) if hint.isdigit() else None)
        if reply.startswith("ERROR"):
            raise KVError(reply)
        return reply

    def _reroute(self, partition: int) -> None:
        """The leader is unreachable or unknown: ask the leader table now (not rate-limited:
        the pod may be gone), and make sure DNS knows whichever pod it names."""
        try:
            self.leaders.refresh_leaders(force=True)
        except Exception as exc:  # the table is someone else's service; keep the old map
            log.warning("re-reading the leaders failed: %s", exc)
        leader = self.leaders.leader_of(partition)
        if leader is not None:
            # As a hint: refreshes DNS when the view does not have that pod yet.
            self.service.not_leader(partition, leader)
