"""Real ``redis-server`` pods on loopback addresses, no persistence.

Pod ``i`` is ``redis-<i>`` (per-pod name ``redis-<i>.redis.prod.svc.cluster.local``) and starts
on ``127.0.41.<i+1>``; every pod listens on the same port, like a StatefulSet's container port
behind a headless Service. :meth:`RedisPods.restart` can move a pod to a fresh address
(``127.0.41.101`` and up), as a rescheduled pod gets a new IP and keeps its name.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from tests.integration.servers.process import (
    ServerError,
    ServerMissing,
    ServerProcess,
    address_in_use,
    common_free_port,
    port_free_on,
    wait_until,
)

__all__ = ["REDIS_MISSING", "RedisPod", "RedisPods", "find_redis_server"]

REDIS_MISSING = (
    "redis-server not found: install it with scripts/install/redis.sh "
    "(Debian's redis-server; scripts/test runs it)"
)

CLUSTER_DOMAIN = "cluster.local"


def find_redis_server() -> str | None:
    """Path of ``redis-server``: PATH first, then /usr/bin."""
    found = shutil.which("redis-server")
    if found:
        return found
    return "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None


@dataclass(frozen=True, slots=True)
class RedisPod:
    """Where one pod is now: its StatefulSet name and its current address and port."""

    ordinal: int
    name: str
    fqdn: str
    address: str
    port: int

    @property
    def url(self) -> str:
        """``redis://ADDRESS:PORT/0``, dialling the address itself (no name resolution)."""
        return f"redis://{self.address}:{self.port}/0"


def _ping(address: str, port: int, timeout: float = 1.0) -> bool:
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def _command(address: str, port: int, *words: str, timeout: float = 2.0) -> bytes:
    """One RESP command, its reply's first chunk (for FLUSHALL and friends)."""
    payload = f"*{len(words)}\r\n".encode()
    for word in words:
        raw = word.encode()
        payload += b"$%d\r\n%s\r\n" % (len(raw), raw)
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(payload)
        return sock.recv(256)


class RedisPods:
    """``replicas`` redis-server processes on loopback, one per pod.

    All of them run from the start; a scale-up test (3 pods, then 4) names the first three in
    its DNS and adds the fourth later.

    >>> pods = RedisPods(tmp_dir); pods.start()
    >>> pods.pods[0].address, pods.port          # ('127.0.41.1', PORT)
    >>> pods.stop(1); pods.restart(1, new_address=True)
    >>> pods.close()
    """

    service = "redis"
    namespace = "prod"

    def __init__(
        self,
        directory: Path,
        *,
        replicas: int = 4,
        network: str = "127.0.41.0/24",
        redis_server: str | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        found = redis_server or find_redis_server()
        if found is None:
            raise ServerMissing(REDIS_MISSING)
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        self.redis_server = found
        self.directory = directory
        self.replicas = replicas
        self.start_timeout = start_timeout
        net = ipaddress.ip_network(network)
        self._first_address = [str(net.network_address + 1 + i) for i in range(replicas)]
        self._spare = (str(net.network_address + n) for n in range(101, min(net.num_addresses - 1, 255)))
        self._lock = threading.Lock()
        self.port = 0
        self._pods: list[RedisPod] = []
        self._servers: list[ServerProcess | None] = [None] * replicas
        self.startup_seconds: float | None = None
        """Wall time of :meth:`start`: every pod spawned and answering PING."""

    # ---------------------------------------------------------------------------- state
    @property
    def pods(self) -> tuple[RedisPod, ...]:
        """Every pod, by ordinal, where it is now (stopped pods included: see :meth:`running`)."""
        return tuple(self._pods)

    def addresses_by_name(self) -> dict[str, str]:
        """``{per-pod name: current address}``, what a cluster DNS would answer now."""
        return {pod.fqdn: pod.address for pod in self._pods}

    def pod(self, ordinal: int) -> RedisPod:
        return self._pods[ordinal]

    def running(self, ordinal: int) -> bool:
        server = self._servers[ordinal]
        return server is not None and server.running

    # ---------------------------------------------------------------------------- lifecycle
    def start(self, *, attempts: int = 3) -> None:
        """Start every pod in parallel; another port is tried if one was taken meanwhile."""
        began = time.monotonic()
        self.directory.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            self.port = common_free_port(self._first_address)
            self._pods = [
                RedisPod(
                    ordinal=i,
                    name=f"redis-{i}",
                    fqdn=f"redis-{i}.{self.service}.{self.namespace}.svc.{CLUSTER_DOMAIN}",
                    address=address,
                    port=self.port,
                )
                for i, address in enumerate(self._first_address)
            ]
            for i in range(self.replicas):
                self._spawn(i)
            try:
                with ThreadPoolExecutor(max_workers=self.replicas) as waiters:
                    list(waiters.map(self._wait_ready, range(self.replicas)))
            except ServerError as exc:
                taken = any(
                    server is not None and address_in_use(server.log_tail(50)) for server in self._servers
                )
                self.close()
                if taken and attempt < attempts:
                    continue
                raise ServerError(f"redis pods did not start: {exc}") from exc
            break
        self.startup_seconds = time.monotonic() - began

    def stop(self, ordinal: int, *, timeout: float = 10.0) -> None:
        """Stop one pod (SIGTERM; it saves nothing since persistence is off)."""
        server = self._servers[ordinal]
        if server is not None:
            server.stop(timeout=timeout)

    def restart(self, ordinal: int, *, new_address: bool = False, address: str | None = None) -> RedisPod:
        """(Re)start one pod, on its current address, on a fresh one (``new_address``) or on
        ``address``, always with the same port. A running pod is stopped first. Returns where
        the pod is now."""
        self.stop(ordinal)
        if address is not None:
            self._pods[ordinal] = replace(self._pods[ordinal], address=address)
        elif new_address:
            self._pods[ordinal] = replace(self._pods[ordinal], address=self._take_address())
        self._spawn(ordinal)
        self._wait_ready(ordinal)
        return self._pods[ordinal]

    def restore(self) -> None:
        """Back to normal between tests: every pod running (where it is now) and empty."""
        for i in range(self.replicas):
            if not self.running(i):
                self.restart(i)
            pod = self._pods[i]
            reply = _command(pod.address, pod.port, "FLUSHALL")
            if not reply.startswith(b"+OK"):
                raise ServerError(f"FLUSHALL on {pod.name} answered {reply!r}")

    def close(self) -> None:
        for server in self._servers:
            if server is not None:
                server.stop(timeout=10.0)

    # ---------------------------------------------------------------------------- internals
    def _take_address(self) -> str:
        with self._lock:
            for address in self._spare:
                if port_free_on(address, self.port):
                    return address
        raise ServerError(f"no spare address left for redis pods on port {self.port}")

    def _spawn(self, ordinal: int) -> None:
        pod = self._pods[ordinal]
        workdir = self.directory / pod.name
        workdir.mkdir(parents=True, exist_ok=True)
        server = ServerProcess(
            pod.name,
            [
                self.redis_server,
                "--bind", pod.address,
                "--port", str(pod.port),
                "--save", "",
                "--appendonly", "no",
                "--protected-mode", "no",
                "--daemonize", "no",
                "--dir", str(workdir),
                "--logfile", "",
            ],
            log_path=workdir / "redis.log",
        )
        server.start()
        self._servers[ordinal] = server

    def _wait_ready(self, ordinal: int) -> None:
        pod = self._pods[ordinal]
        server = self._servers[ordinal]
        assert server is not None
        wait_until(
            f"{pod.name} on {pod.address}:{pod.port} answering PING",
            lambda: _ping(pod.address, pod.port),
            timeout=self.start_timeout,
            alive=server.exit_reason,
        )
