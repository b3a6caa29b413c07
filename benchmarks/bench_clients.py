"""gRPC against a changing headless service: headless-client's channel next to grpcio's own.

The cluster is a :class:`~headless_client.testing.FakeClusterDNS` (CoreDNS-shaped answers,
TTL 5 s like CoreDNS's default) whose pods are real grpcio servers on their own loopback
addresses (``tests/contrib/grpc_pods.py``). One caller thread sends unary calls back to
back (a 5 ms pause between calls) and records which pod answered each, or the error.
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
  with ``round_robin`` and grpcio's defaults (c-ares resolver, 30 s between resolutions).

Run::

    .venv/bin/python benchmarks/bench_clients.py [--runs 3] [--ttl 5] [--window 12]

Prints one table: the median of the runs and their range (min-max). Everything stays on
loopback; every server started is stopped.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

from headless_client import HeadlessService, RoundRobin  # noqa: E402
from headless_client.contrib.grpc import HeadlessChannel  # noqa: E402
from headless_client.testing import FakeClusterDNS  # noqa: E402
from tests.contrib.grpc_pods import WHO, GrpcPods  # noqa: E402

PAUSE = 0.005


@dataclass
class Log:
    """What the caller saw: (time, pod name or None) per call, and the errors."""

    calls: list[tuple[float, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, when: float, pod: str | None) -> None:
        with self.lock:
            self.calls.append((when, pod))

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
            try:
                pod: str | None = self.who(b"", timeout=1.0).decode()
            except grpc.RpcError:
                pod = None
            self.log.add(time.monotonic(), pod)
            self.stop.wait(PAUSE)

    def __enter__(self) -> Caller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


class Client:
    """A way to call the pods: build it, call through it, close it."""

    name = ""

    def __init__(self, cluster: FakeClusterDNS, pods: GrpcPods) -> None:
        raise NotImplementedError

    def who(self) -> Callable[..., bytes]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class HeadlessClient(Client):
    name = "headless-client (retryable)"
    retryable = True

    def __init__(self, cluster: FakeClusterDNS, pods: GrpcPods) -> None:
        self.svc = HeadlessService("web.prod", port="http", resolver=cluster.resolver(), strategy=RoundRobin())
        self.svc.start()
        self.channel = HeadlessChannel(self.svc, retryable=self.retryable)

    def who(self) -> Callable[..., bytes]:
        return self.channel.unary_unary(WHO)

    def close(self) -> None:
        self.channel.close()
        self.svc.close()


class HeadlessNoRetry(HeadlessClient):
    name = "headless-client (no retry)"
    retryable = False


class GrpcDns(Client):
    name = "grpcio dns:/// round_robin"

    def __init__(self, cluster: FakeClusterDNS, pods: GrpcPods) -> None:
        target = f"dns://{cluster.nameserver}/{pods.fqdn}:{pods.port}"
        self.channel = grpc.insecure_channel(target, options=[("grpc.lb_policy_name", "round_robin")])
        grpc.channel_ready_future(self.channel).result(timeout=10)

    def who(self) -> Callable[..., bytes]:
        return self.channel.unary_unary(WHO)

    def close(self) -> None:
        self.channel.close()


CLIENTS: list[type[Client]] = [HeadlessClient, HeadlessNoRetry, GrpcDns]


def warm(caller: Caller, pods: set[str], timeout: float = 10.0) -> None:
    """Wait until every pod in *pods* answered a call (the client is fully connected)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {p for _, p in caller.log.since(0) if p}
        if pods <= seen:
            return
        time.sleep(0.01)
    raise RuntimeError(f"the client never reached {sorted(pods - seen)}")


def scale_up(client_type: type[Client], ttl: int, window: float, offset: float) -> float | None:
    with FakeClusterDNS(ttl=ttl) as cluster, GrpcPods(cluster) as pods:
        client = client_type(cluster, pods)
        try:
            with Caller(client.who()) as caller:
                warm(caller, {"web-0", "web-1", "web-2"})
                time.sleep(offset)
                start = time.monotonic()
                pods.add()
                deadline = start + window
                while time.monotonic() < deadline:
                    first = next((t for t, p in caller.log.since(start) if p == "web-3"), None)
                    if first is not None:
                        return first - start
                    time.sleep(0.01)
                return None
        finally:
            client.close()


def scale_down(client_type: type[Client], ttl: int, window: float, offset: float) -> int:
    with FakeClusterDNS(ttl=ttl) as cluster, GrpcPods(cluster) as pods:
        client = client_type(cluster, pods)
        try:
            with Caller(client.who()) as caller:
                warm(caller, {"web-0", "web-1", "web-2"})
                time.sleep(offset)
                start = time.monotonic()
                cluster.remove_pod("web", "prod", 2)  # out of DNS; its server keeps answering
                time.sleep(window)
                return sum(1 for _, p in caller.log.since(start) if p == "web-2")
        finally:
            client.close()


def rolling_restart(client_type: type[Client], ttl: int) -> tuple[int, int]:
    with FakeClusterDNS(ttl=ttl) as cluster, GrpcPods(cluster) as pods:
        client = client_type(cluster, pods)
        try:
            with Caller(client.who()) as caller:
                warm(caller, {"web-0", "web-1", "web-2"})
                start = time.monotonic()
                for ordinal in range(3):
                    pods.restart(ordinal, grace=1.0)
                    time.sleep(ttl + 1)
                calls = caller.log.since(start)
                return sum(1 for _, p in calls if p is None), len(calls)
        finally:
            client.close()


def spread(values: list[float], unit: str = "", digits: int = 2) -> str:
    med = statistics.median(values)
    return f"{med:.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ttl", type=int, default=5, help="DNS TTL of the fake cluster (CoreDNS: 5)")
    parser.add_argument("--window", type=float, default=None,
                        help="seconds to watch after a scale-up or -down (default: 2 TTL + 2)")
    parser.add_argument("--clients", default=",".join(c.__name__ for c in CLIENTS))
    args = parser.parse_args(argv)
    window = args.window if args.window is not None else 2 * args.ttl + 2
    chosen = [c for c in CLIENTS if c.__name__ in args.clients.split(",")]
    rows: list[list[str]] = []
    for client_type in chosen:
        ups: list[float | None] = []
        downs: list[int] = []
        failed: list[tuple[int, int]] = []
        # The change comes at a random point of the refresh period (the same points for
        # every client): right after a client's own first resolution would flatter nobody.
        offsets = random.Random(15).sample(range(1000), args.runs)
        for run in range(args.runs):
            offset = offsets[run] / 1000 * args.ttl
            ups.append(scale_up(client_type, args.ttl, window, offset))
            downs.append(scale_down(client_type, args.ttl, window, offset))
            failed.append(rolling_restart(client_type, args.ttl))
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
            spread([float(f) for f, _ in failed], digits=0)
            + f" of {statistics.median([float(t) for _, t in failed]):.0f}",
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
