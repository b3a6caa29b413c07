"""Clients against a changing headless service: headless-client's integrations next to each
client's own behaviour (gRPC, requests, httpx, aiohttp).

The cluster is a :class:`~headless_client.testing.FakeClusterDNS` (CoreDNS-shaped answers,
TTL 5 s like CoreDNS's default) whose pods are real servers on their own loopback
addresses: grpcio servers (``tests/contrib/grpc_pods.py``) or the fake cluster's HTTP/1.1
pods. One caller thread sends calls back to back (a 5 ms pause between calls) and records
which pod answered each, or the error. The HTTP clients' own behaviour is measured with
the service's name in the URL, resolved as a pod's system resolver would (``getaddrinfo``
answered from the fake cluster DNS, addresses shuffled as CoreDNS does).
Three scenarios, each measured on a fresh cluster, ``--runs`` times per client:

The change in the first two comes at a random point of the refresh period (the same
points for every client).

- **scale-up**: a 4th pod becomes ready (server first, then DNS); the time until it
  answers its first call (``--window`` seconds at most; ``never`` if it did not);
- **scale-down**: a pod leaves DNS while its server keeps answering (a terminating pod
  before its grace ends); the calls it still answered in the next ``--window`` seconds;
- **rolling restart**: each of the 3 pods in turn leaves DNS, stops (1 s of grace for
  calls in flight), and comes back at a new address; ``TTL + 1`` s between pods and
  after the last; the calls that failed.

Clients:

- ``headless-client``: ``HeadlessChannel`` over a ``HeadlessService`` with the library's
  defaults (refresh at the TTL, 1 s floor), round-robin; the method is marked retryable
  (a row without retries is shown too);
- ``grpcio dns:/// round_robin``: ``dns://127.0.0.1:PORT/web.prod.svc.cluster.local:PORT``
  with ``round_robin`` and grpcio's defaults (c-ares resolver, 30 s between resolutions);
- ``requests`` / ``httpx`` / ``aiohttp``: a ``Session``, ``Client`` or ``ClientSession``
  with its defaults, next to the same with ``HeadlessAdapter``, ``HeadlessTransport`` or
  ``HeadlessMiddleware`` (library defaults, round-robin). For HTTP pods, "leaves DNS"
  marks the pod unready (it keeps serving), and a restart kills the pod's server (open
  connections reset) before it comes back at a new address.

Run::

    .venv/bin/python benchmarks/bench_clients.py [--runs 3] [--ttl 5] [--window 12] [--clients ...]

Prints one table: the median of the runs and their range (min-max). Everything stays on
loopback; every server started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import dns.exception
import dns.resolver
import grpc
import httpx
import requests

from headless_client import AsyncHeadlessService, HeadlessService, RoundRobin
from headless_client.contrib.aiohttp import HeadlessMiddleware
from headless_client.contrib.grpc import HeadlessChannel
from headless_client.contrib.httpx import HeadlessTransport
from headless_client.contrib.requests import HeadlessAdapter
from headless_client.testing import FakeClusterDNS
from tests.contrib.grpc_pods import WHO, GrpcPods

PAUSE = 0.005


@dataclass
class Log:
    """What the caller saw: (time, pod name or None) per call, and the errors."""

    calls: list[tuple[float, str | None]] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, when: float, pod: str | None, error: str | None = None) -> None:
        with self.lock:
            self.calls.append((when, pod))
            if error is not None:
                self.errors[error] = self.errors.get(error, 0) + 1

    def since(self, start: float) -> list[tuple[float, str | None]]:
        with self.lock:
            return [c for c in self.calls if c[0] >= start]


class Caller:
    """One thread calling *who* back to back until stopped."""

    def __init__(self, who: Callable[..., bytes]) -> None:
        self.who = who
        self.log = Log()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            error = None
            try:
                pod: str | None = self.who(b"", timeout=1.0).decode()
            except Exception as exc:  # every failed call counts, whatever the client raises
                pod = None
                code = getattr(exc, "code", None)
                error = code().name if callable(code) else type(exc).__name__
            self.log.add(time.monotonic(), pod, error)
            self.stop.wait(PAUSE)

    def __enter__(self) -> Caller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


class GrpcWorld:
    """Three grpcio pods; the cluster changes as the scenarios need."""

    kind = "grpc"

    def __init__(self, ttl: int) -> None:
        self.cluster = FakeClusterDNS(ttl=ttl).start()
        self.pods = GrpcPods(self.cluster)
        self.fqdn = self.pods.fqdn
        self.port = self.pods.port

    def add(self) -> None:
        self.pods.add()

    def leave(self, ordinal: int) -> None:
        self.cluster.remove_pod("web", "prod", ordinal)  # out of DNS; its server keeps answering

    def restart(self, ordinal: int) -> None:
        self.pods.restart(ordinal, grace=1.0)

    def close(self) -> None:
        self.pods.close()
        self.cluster.close()


class HttpWorld:
    """Three HTTP/1.1 pods of the fake cluster (``serve="http"``)."""

    kind = "http"

    def __init__(self, ttl: int) -> None:
        self.cluster = FakeClusterDNS(ttl=ttl).start()
        pods = self.cluster.add_statefulset("web", "prod", 3, serve="http")
        self.fqdn = self.cluster.service_fqdn("web", "prod")
        self.port = pods[0].port

    def add(self) -> None:
        self.cluster.add_pod("web", "prod")

    def leave(self, ordinal: int) -> None:
        self.cluster.set_ready("web", "prod", ordinal, False)  # out of DNS; still serving

    def restart(self, ordinal: int) -> None:
        self.cluster.set_ready("web", "prod", ordinal, False)
        self.cluster.kill_pod("web", "prod", ordinal)        # refuses, resets open connections
        self.cluster.reip_pod("web", "prod", ordinal)        # back, serving, at a new address
        self.cluster.set_ready("web", "prod", ordinal, True)

    def close(self) -> None:
        self.cluster.close()


World = GrpcWorld | HttpWorld


class Client:
    """A way to call the pods: build it, call through it, close it."""

    name = ""
    world: type[World] = GrpcWorld
    #: False for clients that keep to one pod (their warm-up waits for one answer only)
    spreads = True

    def __init__(self, world: World) -> None:
        raise NotImplementedError

    def who(self) -> Callable[..., bytes]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def service(world: World) -> HeadlessService:
    svc = HeadlessService("web.prod", port="http", resolver=world.cluster.resolver(), strategy=RoundRobin())
    svc.start()
    return svc


class HeadlessClient(Client):
    name = "headless-client HeadlessChannel, retryable"
    retryable = True

    def __init__(self, world: World) -> None:
        self.svc = service(world)
        self.channel = HeadlessChannel(self.svc, retryable=self.retryable)

    def who(self) -> Callable[..., bytes]:
        return self.channel.unary_unary(WHO)

    def close(self) -> None:
        self.channel.close()
        self.svc.close()


class HeadlessNoRetry(HeadlessClient):
    name = "headless-client HeadlessChannel, not retryable"
    retryable = False


class GrpcDns(Client):
    name = "grpcio dns:/// round_robin"

    def __init__(self, world: World) -> None:
        target = f"dns://{world.cluster.nameserver}/{world.fqdn}:{world.port}"
        self.channel = grpc.insecure_channel(target, options=[("grpc.lb_policy_name", "round_robin")])
        grpc.channel_ready_future(self.channel).result(timeout=10)

    def who(self) -> Callable[..., bytes]:
        return self.channel.unary_unary(WHO)

    def close(self) -> None:
        self.channel.close()


# -- HTTP clients -------------------------------------------------------------------------------


@contextlib.contextmanager
def system_dns(cluster: FakeClusterDNS) -> Iterator[None]:
    """Names under cluster.local resolve through the fake cluster DNS, as a pod's resolver
    would (every ready pod, in a shuffled order, as CoreDNS answers)."""
    original = socket.getaddrinfo
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [cluster.host]
    resolver.port = cluster.port
    shuffle = random.Random(7).shuffle

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.rstrip(".").endswith(".cluster.local"):
            try:
                answer = resolver.resolve(host.rstrip(".") + ".", "A", lifetime=2)
            except dns.exception.DNSException as exc:
                raise socket.gaierror(socket.EAI_NONAME, str(exc)) from exc
            addresses = [r.address for r in answer]
            shuffle(addresses)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, int(port))) for a in addresses]
        return original(host, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = original


class HttpClient(Client):
    world = HttpWorld

    def __init__(self, world: World) -> None:
        self.world_ = world
        self.stack = contextlib.ExitStack()
        self.stack.enter_context(system_dns(world.cluster))
        self.setup(world)

    def setup(self, world: World) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stack.close()


class RequestsPlain(HttpClient):
    name = "requests Session (system DNS)"
    spreads = False

    def setup(self, world: World) -> None:
        self.session = self.stack.enter_context(requests.Session())
        self.url = f"http://{world.fqdn}:{world.port}/"

    def who(self) -> Callable[..., bytes]:
        return lambda _, timeout: self.session.get(self.url, timeout=timeout).content


class RequestsHeadless(RequestsPlain):
    name = "requests + HeadlessAdapter"
    spreads = True

    def setup(self, world: World) -> None:
        super().setup(world)
        self.svc = self.stack.enter_context(service(world))
        self.session.mount("http://", HeadlessAdapter(self.svc))


class HttpxPlain(HttpClient):
    name = "httpx Client (system DNS)"
    spreads = False

    def setup(self, world: World) -> None:
        self.client = self.stack.enter_context(httpx.Client())
        self.url = f"http://{world.fqdn}:{world.port}/"

    def who(self) -> Callable[..., bytes]:
        return lambda _, timeout: self.client.get(self.url, timeout=timeout).content


class HttpxHeadless(HttpxPlain):
    name = "httpx + HeadlessTransport"
    spreads = True

    def setup(self, world: World) -> None:
        self.svc = self.stack.enter_context(service(world))
        self.client = self.stack.enter_context(httpx.Client(transport=HeadlessTransport(self.svc)))
        self.url = f"http://{world.fqdn}:{world.port}/"


class AiohttpPlain(HttpClient):
    name = "aiohttp ClientSession (system DNS)"
    spreads = False
    headless = False

    def setup(self, world: World) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.url = f"http://{world.fqdn}:{world.port}/"
        self.run(self.open(world), 10)

    async def open(self, world: World) -> None:
        middlewares = ()
        if self.headless:
            self.svc = AsyncHeadlessService("web.prod", port="http", resolver=world.cluster.async_resolver())
            await self.svc.start()
            middlewares = (HeadlessMiddleware(self.svc),)
        self.session = aiohttp.ClientSession(middlewares=middlewares)

    def run(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def who(self) -> Callable[..., bytes]:
        async def fetch(timeout: float) -> bytes:
            async with self.session.get(self.url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                return await response.read()

        return lambda _, timeout: self.run(fetch(timeout), timeout + 1)

    def close(self) -> None:
        async def shut() -> None:
            await self.session.close()
            if self.headless:
                await self.svc.close()

        self.run(shut(), 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        super().close()


class AiohttpHeadless(AiohttpPlain):
    name = "aiohttp + HeadlessMiddleware"
    spreads = True
    headless = True


CLIENTS: list[type[Client]] = [
    HeadlessClient, HeadlessNoRetry, GrpcDns,
    RequestsHeadless, RequestsPlain, HttpxHeadless, HttpxPlain, AiohttpHeadless, AiohttpPlain,
]


def warm(caller: Caller, pods: set[str], timeout: float = 10.0) -> None:
    """Wait until every pod in *pods* answered a call (the client is fully connected)."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        seen = {p for _, p in caller.log.since(0) if p}
        if seen and pods <= seen:
            return
        time.sleep(0.01)
    raise RuntimeError(f"the client never reached {sorted(pods - seen)}")


def scale_up(client_type: type[Client], world_type: type[World], ttl: int, window: float,
             offset: float) -> float | None:
    world = world_type(ttl)
    try:
        client = client_type(world)
        try:
            with Caller(client.who()) as caller:
                warm(caller, {"web-0", "web-1", "web-2"} if client.spreads else set())
                time.sleep(offset)
                start = time.monotonic()
                world.add()
                deadline = start + window
                while time.monotonic() < deadline:
                    first = next((t for t, p in caller.log.since(start) if p == "web-3"), None)
                    if first is not None:
                        return first - start
                    time.sleep(0.01)
                return None
        finally:
            client.close()
    finally:
        world.close()


def scale_down(client_type: type[Client], world_type: type[World], ttl: int, window: float,
               offset: float) -> int:
    world = world_type(ttl)
    try:
        client = client_type(world)
        try:
            with Caller(client.who()) as caller:
                warm(caller, {"web-0", "web-1", "web-2"} if client.spreads else set())
                time.sleep(offset)
                start = time.monotonic()
                world.leave(2)
                time.sleep(window)
                return sum(1 for _, p in caller.log.since(start) if p == "web-2")
        finally:
            client.close()
    finally:
        world.close()


def rolling_restart(client_type: type[Client], world_type: type[World],
                    ttl: int) -> tuple[int, int, dict[str, int]]:
    world = world_type(ttl)
    try:
        client = client_type(world)
        try:
            with Caller(client.who()) as caller:
                warm(caller, {"web-0", "web-1", "web-2"} if client.spreads else set())
                start = time.monotonic()
                for ordinal in range(3):
                    world.restart(ordinal)
                    time.sleep(ttl + 1)
                calls = caller.log.since(start)
                return sum(1 for _, p in calls if p is None), len(calls), dict(caller.log.errors)
        finally:
            client.close()
    finally:
        world.close()


def spread(values: list[float], unit: str = "", digits: int = 2) -> str:
    med = statistics.median(values)
    return f"{med:.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ttl", type=int, default=5, help="DNS TTL of the fake cluster (CoreDNS: 5)")
    parser.add_argument("--window", type=float, default=None,
                        help="seconds to watch after a scale-up or -down (default: 2 TTL + 2)")
    parser.add_argument("--clients", default=",".join(c.__name__ for c in CLIENTS),
                        help="comma-separated class names (default: all)")
    args = parser.parse_args(argv)
    window = args.window if args.window is not None else 2 * args.ttl + 2
    chosen = [c for c in CLIENTS if c.__name__ in args.clients.split(",")]
    rows: list[list[str]] = []
    for client_type in chosen:
        ups: list[float | None] = []
        downs: list[int] = []
        failed: list[tuple[int, int, dict[str, int]]] = []
        # The change comes at a random point of the refresh period (the same points for
        # every client): right after a client's own first resolution would flatter nobody.
        offsets = random.Random(15).sample(range(1000), args.runs)
        for run in range(args.runs):
            offset = offsets[run] / 1000 * args.ttl
            world = client_type.world
            ups.append(scale_up(client_type, world, args.ttl, window, offset))
            downs.append(scale_down(client_type, world, args.ttl, window, offset))
            failed.append(rolling_restart(client_type, world, args.ttl))
            print(f"  {client_type.name} run {run + 1}: first call to new pod {ups[-1]}, "
                  f"calls to removed pod {downs[-1]}, failed/total in rolling restart {failed[-1]}",
                  file=sys.stderr, flush=True)
        seen = [u for u in ups if u is not None]
        never = len(ups) - len(seen)
        up = spread(seen, " s") if seen else f"never in {window:g} s"
        if seen and never:
            up += f"; never in {window:g} s in {never} of {len(ups)} runs"
        rows.append([
            client_type.name,
            up,
            spread([float(d) for d in downs], digits=0) + f" in {window:g} s",
            spread([float(f) for f, _, _ in failed], digits=0)
            + f" of {statistics.median([float(t) for _, t, _ in failed]):.0f}",
        ])
    header = ["client", "new pod: first call after", "calls to a removed pod",
              "failed calls, rolling restart of 3 pods"]
    print(f"\nDNS TTL {args.ttl} s, {args.runs} runs each; median (min-max)\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
