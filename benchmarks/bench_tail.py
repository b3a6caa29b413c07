"""Tail latency of ``svc.pick()`` in a request thread while the refresher resolves 1000 pods.

Run from the repository root::

    python benchmarks/bench_tail.py [--pods 1000] [--seconds 3] [--period 0.5]

**Set-up.** A fake cluster DNS (:class:`~headless_client.testing.FakeClusterDNS`, on
loopback) serves a 1000-pod StatefulSet ``web.prod`` with SRV records for its ``http``
port and glue, TTL 0. It runs in a *separate process*, so its own work (building and
encoding a 58 KB answer twice a second) never takes this process's GIL: what the request
thread sees is the library's doing. A :class:`~headless_client.HeadlessService` over it
refreshes every ``--period`` seconds (``RefreshPolicy(min_refresh=period,
max_refresh=period, jitter=0)``), a full SRV resolve of the 1000 pods each time.

**Measure.** The main thread is the request thread: it calls ``svc.pick()`` (RoundRobin)
or ``svc.pick(key)`` (Sticky, 10 000 distinct keys) in a tight loop and stamps
``time.perf_counter_ns()`` after every call, for ``--seconds`` seconds (at most
``--max-picks`` picks). The gap between two stamps is one pick plus the stamp (about
0.1 us), and everything that kept the thread from running: the refresher holding the
GIL, a Sticky ring being rebuilt, the garbage collector, the OS. p50, p99, p99.9 and max
of the gaps, and how many exceed 1 ms and 5 ms.

**Scenarios.** Each strategy without the refresher first (one resolve before any pick,
no thread: the floor on this machine, OS noise included), then with it. "with churn": a
pod leaves or comes back every period (the server removes one pod, then recreates it,
a different one each time), so every other refresh publishes a changed view and Sticky
updates its ring. The refreshes, DNS questions and view changes seen during each run are
printed beside it, to show what the refresher did (a refresher starved of the GIL by a
busy request thread completes fewer refreshes than the period asks: each answer it
waits for costs it up to a switch interval, 5 ms, to get the GIL back). Every run is bounded in time;
the whole script takes well under a minute.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise, repeat
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from headless_client import HeadlessService, RefreshPolicy, Resolver, RoundRobin, Sticky  # noqa: E402

KEYS = [f"user-{i}" for i in range(10_000)]
BLOCK = 10_000


# -- the DNS server, in its own process -----------------------------------------------


def serve(pods: int) -> None:
    """Child process: serve *pods* pods; on each ``churn`` line, change one pod and answer ``ok``."""
    from headless_client.testing import FakeClusterDNS

    with FakeClusterDNS(ttl=0, namespace="prod") as cluster:
        cluster.add_statefulset("web", "prod", pods)
        print(cluster.nameserver, flush=True)
        step = 0
        for line in sys.stdin:
            command = line.strip()
            if command == "quit":
                break
            if command == "churn":
                if step % 2 == 0:
                    cluster.remove_pod("web", "prod", ordinal=(step * 37) % pods)
                else:
                    cluster.scale("web", "prod", pods)  # recreates the pod removed
                step += 1
            print("ok", flush=True)


class Server:
    """The DNS server process; ``churn()`` changes one pod and returns once DNS shows it."""

    def __init__(self, pods: int) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(pods)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self._lock = threading.Lock()
        self.nameserver = self._read()

    def _read(self) -> str:
        stdout: TextIO | None = self._process.stdout
        assert stdout is not None
        line = stdout.readline().strip()
        if not line:
            raise RuntimeError(f"the DNS server process stopped (exit code {self._process.poll()})")
        return line

    def _send(self, command: str) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        stdin.write(command + "\n")
        stdin.flush()

    def churn(self) -> None:
        with self._lock:
            self._send("churn")
            self._read()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send("quit")
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)


# -- one run --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    label: str
    strategy: Callable[[], Any]
    keyed: bool
    refresher: bool
    churn: bool


SCENARIOS = [
    Scenario("RoundRobin, no refresher", RoundRobin, False, False, False),
    Scenario("RoundRobin, refresher (unchanged answers)", RoundRobin, False, True, False),
    Scenario("RoundRobin, refresher, with churn", RoundRobin, False, True, True),
    Scenario("Sticky, no refresher", Sticky, True, False, False),
    Scenario("Sticky, refresher (unchanged answers)", Sticky, True, True, False),
    Scenario("Sticky, refresher, with churn", Sticky, True, True, True),
]


@dataclass(frozen=True, slots=True)
class Result:
    gaps: Counter[int]
    picks: int
    refreshes: int
    questions: int
    changes: int
    churns: int


def request_loop(pick: Callable[..., object], keyed: bool, seconds: float, max_picks: int) -> array[int]:
    """Pick in a tight loop, stamping the clock after every pick, until time or count runs out."""
    stamps: array[int] = array("q")
    append = stamps.append
    now = time.perf_counter_ns
    append(now())
    deadline = stamps[0] + int(seconds * 1e9)
    while stamps[-1] < deadline and len(stamps) <= max_picks:
        if keyed:
            for key in KEYS:
                pick(key)
                append(now())
        else:
            for _ in repeat(None, BLOCK):
                pick()
                append(now())
    return stamps


@contextlib.contextmanager
def churning(server: Server, period: float, on: bool) -> Iterator[list[int]]:
    """While inside, change one pod every *period* seconds (when *on*); yields the count."""
    done = threading.Event()
    count = [0]

    def run() -> None:
        while not done.wait(period):
            server.churn()
            count[0] += 1

    thread = threading.Thread(target=run, name="churn", daemon=True)
    if on:
        thread.start()
    try:
        yield count
    finally:
        done.set()
        if on:
            thread.join(timeout=30)


def run_scenario(scenario: Scenario, server: Server, args: argparse.Namespace) -> Result:
    svc = HeadlessService(
        "web.prod",
        port="http",
        resolver=Resolver([server.nameserver], namespace="prod", timeout=5.0),
        strategy=scenario.strategy(),
        refresh=RefreshPolicy(min_refresh=args.period, max_refresh=args.period, jitter=0.0),
    )
    changes = [0]
    svc.subscribe(lambda old, new: changes.__setitem__(0, changes[0] + 1))
    try:
        if scenario.refresher:
            svc.start()
        else:
            svc.refresh()  # one resolve, no refresher thread
        if len(svc.endpoints) != args.pods:
            raise RuntimeError(f"expected {args.pods} pods, the service sees {len(svc.endpoints)}")
        pick = svc.pick
        request_loop(pick, scenario.keyed, 0.2, BLOCK)  # warm up
        before = svc.stats()
        changes_before = changes[0]
        with churning(server, args.period, scenario.churn) as churns:
            stamps = request_loop(pick, scenario.keyed, args.seconds, args.max_picks)
        after = svc.stats()
        seen = changes[0] - changes_before
    finally:
        svc.close()
    if scenario.churn:
        # Put back the pod the last churn removed, so every run starts from the whole set.
        while churns[0] % 2:
            server.churn()
            churns[0] += 1
    gaps = Counter(b - a for a, b in pairwise(stamps))
    return Result(
        gaps,
        len(stamps) - 1,
        after.refreshes - before.refreshes,
        after.dns_questions - before.dns_questions,
        seen,
        churns[0],
    )


def quantile(gaps: Counter[int], total: int, share: float) -> int:
    """The smallest gap with at least *share* of all gaps at or below it."""
    wanted = share * total
    seen = 0
    for gap in sorted(gaps):
        seen += gaps[gap]
        if seen >= wanted:
            return gap
    return max(gaps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0, help="picking time per scenario")
    parser.add_argument("--period", type=float, default=0.5, help="refresh (and churn) period, seconds")
    parser.add_argument("--max-picks", type=int, default=12_000_000, help="cap per scenario (memory)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0

    started = time.monotonic()
    server = Server(args.pods)
    try:
        print(
            f"Python {sys.version.split()[0]}; {args.pods} pods over SRV from a fake cluster DNS in another "
            f"process; refresh every {args.period} s; {args.seconds} s of picks per row\n"
        )
        head = "p50 us  p99 us p99.9 us   max us  >1ms  >5ms"
        print(f"  {'scenario':<44} {head}   picks  refreshes  questions  changes")
        for scenario in SCENARIOS:
            result = run_scenario(scenario, server, args)
            total = result.picks
            p50, p99, p999 = (quantile(result.gaps, total, q) / 1000 for q in (0.5, 0.99, 0.999))
            worst = max(result.gaps) / 1000
            over_1 = sum(n for gap, n in result.gaps.items() if gap > 1_000_000)
            over_5 = sum(n for gap, n in result.gaps.items() if gap > 5_000_000)
            print(
                f"  {scenario.label:<44} {p50:>6.2f} {p99:>7.2f} {p999:>8.2f} {worst:>8.0f} {over_1:>5} {over_5:>5}"
                f" {total / 1e6:>6.1f}M {result.refreshes:>10} {result.questions:>10} {result.changes:>8}",
                flush=True,
            )
    finally:
        server.close()
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
