"""Tail latency of ``svc.pick()`` in a request thread while the refresher resolves 1000 pods.

Run from the repository root::

    python benchmarks/bench_tail.py [--pods 1000] [--seconds 3] [--period 0.5]

**Set-up.** A DNS server on loopback serves a 1000-pod StatefulSet with SRV records for
its ``http`` port: BIND9 with the test ground's ``big.prod`` (TTL 1 s, no glue above 13
targets, as BIND does; the default when ``named`` is installed), or ``--server fake``: a
:class:`~headless_client.testing.FakeClusterDNS` serving ``web.prod`` with glue, TTL 0.
Either runs in a *separate process*, and so do the pod changes (dynamic updates, or the
fake's model), so their work never takes this process's GIL: what the request thread
sees is the library's doing. A :class:`~headless_client.HeadlessService` over it
refreshes every ``--period`` seconds (``RefreshPolicy(min_refresh=period,
max_refresh=period, jitter=0)``), a full SRV resolve of the 1000 pods each time (a
refresh starts ``period`` after the previous one ended).

**Measure.** The main thread is the request thread: it calls ``svc.pick()`` (RoundRobin)
or ``svc.pick(key)`` (Sticky, 10 000 distinct keys) in bursts of 2000 and stamps
``time.perf_counter_ns()`` after every call; between bursts it sleeps 1 ms, as a thread
serving requests waits for I/O (and gives the refresher the GIL). The gap between two
stamps is one pick plus the stamp (about 0.1 us), and everything that kept the thread
from running: the refresher holding the GIL, a Sticky ring being rebuilt, the garbage
collector, the OS. The first pick of a burst counts from the moment its sleep should
have ended, so waiting for the GIL on waking counts too (and so does the OS's timer
slack, tens of us). p50, p99, p99.9 and max of the gaps, and how many exceed 1 ms and
5 ms, over ``--seconds`` seconds per row (at most ``--max-picks`` picks).

**Scenarios.** Each strategy without the refresher first (one resolve before any pick,
no thread: the floor on this machine, OS noise included), then with it. "with churn": a
pod leaves or comes back every period (the server removes one pod, then recreates it,
a different one each time), so every other refresh publishes a changed view and Sticky
updates its ring. The refreshes, DNS questions and view changes seen during each run are
printed beside it, to show what the refresher did. The last row picks in a tight loop,
never sleeping: the worst case for the refresher, which then gets the GIL back only
when the request thread is made to drop it (every switch interval, 5 ms), so each
answer it waits for costs it up to 5 ms and it completes fewer refreshes than asked. Every run is bounded in time;
the whole script takes well under a minute.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from headless_client import HeadlessService, RefreshPolicy, Resolver, RoundRobin, Sticky  # noqa: E402

KEYS = [f"user-{i}" for i in range(10_000)]
BURST = 2000
PAUSE = 0.001


# -- the DNS server, in its own process -----------------------------------------------


def serve_fake(pods: int) -> None:
    """Child process: a FakeClusterDNS with ``web.prod`` (*pods* pods); each ``churn``
    line changes one pod (removed, then recreated) and is answered ``ok``."""
    from headless_client.testing import FakeClusterDNS

    with FakeClusterDNS(ttl=0, namespace="prod") as cluster:
        cluster.add_statefulset("web", "prod", pods)
        print(cluster.nameserver, "web.prod", flush=True)

        def churn(step: int) -> None:
            if step % 2 == 0:
                cluster.remove_pod("web", "prod", ordinal=(step * 37) % pods)
            else:
                cluster.scale("web", "prod", pods)  # recreates the pod removed

        answer_commands(churn)


def serve_bind() -> None:
    """Child process: BIND9 with the test ground's ``big.prod`` (1000 pods, TTL 1 s);
    each ``churn`` line removes one pod by a dynamic update, or puts it back."""
    import tempfile

    from tests.integration.dnsground import GROUND, BindServer

    big = GROUND["big"]
    with tempfile.TemporaryDirectory() as tmp, BindServer(tmp) as server:
        print(server.nameserver, "big.prod", flush=True)

        def churn(step: int) -> None:
            ordinal = big.ordinals[(step // 2 * 37) % len(big.ordinals)]
            if step % 2 == 0:
                server.zone.remove_pod("big", "prod", ordinal)
            else:
                server.zone.add_pod("big", "prod", ordinal, big.pod(ordinal).ipv4[0])

        answer_commands(churn)


def answer_commands(churn: Callable[[int], None]) -> None:
    """Read commands from the parent until ``quit``: ``churn`` calls *churn* with the step
    number; every command is answered ``ok``."""
    step = 0
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        if command == "churn":
            churn(step)
            step += 1
        print("ok", flush=True)


class Server:
    """The DNS server process; ``churn()`` changes one pod and returns once DNS shows it."""

    def __init__(self, kind: str, pods: int) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--pods", str(pods)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self._lock = threading.Lock()
        self.nameserver, self.service = self._read().split()

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
    pause: float = PAUSE


SCENARIOS = [
    Scenario("RoundRobin, no refresher", RoundRobin, False, False, False),
    Scenario("RoundRobin, refresher (unchanged answers)", RoundRobin, False, True, False),
    Scenario("RoundRobin, refresher, with churn", RoundRobin, False, True, True),
    Scenario("Sticky, no refresher", Sticky, True, False, False),
    Scenario("Sticky, refresher (unchanged answers)", Sticky, True, True, False),
    Scenario("Sticky, refresher, with churn", Sticky, True, True, True),
    Scenario("Sticky, refresher, with churn, tight loop", Sticky, True, True, True, 0.0),
]


@dataclass(frozen=True, slots=True)
class Result:
    gaps: Counter[int]
    picks: int
    refreshes: int
    questions: int
    changes: int
    churns: int


def request_loop(
    pick: Callable[..., object], keyed: bool, seconds: float, max_picks: int, pause: float
) -> Counter[int]:
    """Pick in bursts of BURST picks, stamping the clock after every pick, until time or
    count runs out; between bursts, sleep *pause* seconds (none: a tight loop).

    Returns the gaps (ns) between consecutive stamps; the first pick after a pause counts
    from when the pause should have ended, so waiting for the GIL on waking is counted.
    """
    gaps: Counter[int] = Counter()
    now = time.perf_counter_ns
    bursts = [KEYS[i : i + BURST] if keyed else [None] * BURST for i in range(0, len(KEYS), BURST)]
    pause_ns = int(pause * 1e9)
    start = now()
    deadline = start + int(seconds * 1e9)
    done = 0
    while done < max_picks:
        keys = bursts[(done // BURST) % len(bursts)]
        stamps: array[int] = array("q")
        append = stamps.append
        if pause_ns:
            asleep = now()
            time.sleep(pause)
            append(asleep + pause_ns)
        else:
            append(now())
        if keyed:
            for key in keys:
                pick(key)
                append(now())
        else:
            for _ in keys:
                pick()
                append(now())
        gaps.update(b - a for a, b in pairwise(stamps))
        done += BURST
        if stamps[-1] >= deadline:
            break
    return gaps


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
        server.service,
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
        request_loop(pick, scenario.keyed, 0.2, 10 * BURST, scenario.pause)  # warm up
        before = svc.stats()
        changes_before = changes[0]
        with churning(server, args.period, scenario.churn) as churns:
            gaps = request_loop(pick, scenario.keyed, args.seconds, args.max_picks, scenario.pause)
        after = svc.stats()
        seen = changes[0] - changes_before
    finally:
        svc.close()
    if scenario.churn:
        # Put back the pod the last churn removed, so every run starts from the whole set.
        while churns[0] % 2:
            server.churn()
            churns[0] += 1
    return Result(
        gaps,
        gaps.total(),
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
    parser.add_argument(
        "--server",
        choices=("bind", "fake"),
        help="BIND9 (default when named is installed) or the fake cluster DNS",
    )
    parser.add_argument("--serve", choices=("bind", "fake"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve == "bind":
        serve_bind()
        return 0
    if args.serve == "fake":
        serve_fake(args.pods)
        return 0
    if args.server is None:
        args.server = "bind" if shutil.which("named") or Path("/usr/sbin/named").exists() else "fake"
    if args.server == "bind":
        args.pods = 1000  # the test ground's big.prod

    started = time.monotonic()
    server = Server(args.server, args.pods)
    try:
        print(
            f"Python {sys.version.split()[0]}; {args.pods} pods over SRV from "
            f"{'BIND9' if args.server == 'bind' else 'the fake cluster DNS'} in another process; "
            f"refresh every {args.period} s; {args.seconds} s of picks per row\n"
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
