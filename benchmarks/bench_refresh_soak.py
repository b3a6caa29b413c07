"""A 1000-pod service refreshing every second: CPU per refresh and memory over time.

    python benchmarks/bench_refresh_soak.py [--seconds 60] [--port http|8080]
                                            [--nameserver HOST:PORT --service big.prod]

Without ``--nameserver`` it starts its own BIND9 test ground (needs ``named``) and uses
its ``big.prod`` service (1000 StatefulSet pods; SRV gives no glue above 13 targets, so a
``http`` refresh is one SRV query over TCP plus 1000 address questions pipelined on one
TCP connection; ``8080`` is one A query, truncated over UDP, then TCP).

Two phases, 40 % and 60 % of ``--seconds``:

1. CPU: process CPU time (``resource.getrusage``) and the refresher thread's own CPU
   time, divided by the refreshes done; resident set size at the start and the end.
2. Memory: ``tracemalloc`` on; the traced memory after every refresh. Growth is the last
   sample minus the one after the warm-up refreshes, and the least-squares slope per
   refresh (a leak shows as a steady positive slope).

The reliability suite runs the same function for ~10 s (``HEADLESS_SOAK=1``: a minute);
see docs/reliability.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import headless_client as hc

WARMUP_REFRESHES = 2
#: Refreshes traced after the warm-up, at least (for a meaningful slope).
STEADY_REFRESHES = 3


class _Counting(hc.Resolver):
    """Counts refreshes, their CPU (refresher thread) and wall time; samples memory."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.Condition()
        self.ok = 0
        self.failed = 0
        self.cpu: list[float] = []
        self.wall: list[float] = []
        self.traced: list[int] = []
        self.sizes: list[int] = []

    def resolve(self, *args: Any, **kwargs: Any) -> hc.EndpointSet:
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            result = super().resolve(*args, **kwargs)
        except hc.ResolutionError:
            with self.lock:
                self.failed += 1
                self.lock.notify_all()
            raise
        spent_cpu, spent_wall = time.thread_time() - cpu, time.perf_counter() - wall
        traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else -1
        with self.lock:
            self.ok += 1
            self.cpu.append(spent_cpu)
            self.wall.append(spent_wall)
            self.sizes.append(len(result))
            if traced >= 0:
                self.traced.append(traced)
            self.lock.notify_all()
        return result

    def wait_refreshes(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.ok < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
        return True


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return -1


def _slope(samples: list[int]) -> float:
    n = len(samples)
    if n < 2:
        return 0.0
    mean_x = (n - 1) / 2
    mean_y = sum(samples) / n
    num = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(samples))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


@dataclass
class SoakResult:
    seconds: float
    port: str
    endpoints: int
    refreshes: int
    failed: int
    cpu_per_refresh_process: float
    cpu_per_refresh_thread: float
    wall_per_refresh: float
    rss_start: int
    rss_end: int
    traced_after_warmup: int
    traced_end: int
    traced_peak: int
    traced_slope: float
    memory_refreshes: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def traced_growth(self) -> int:
        return self.traced_end - self.traced_after_warmup

    def rows(self) -> list[tuple[str, str]]:
        mb = 1024 * 1024
        return [
            ("service", f"{self.endpoints} endpoints, port {self.port}, min_refresh=max_refresh=1"),
            ("duration", f"{self.seconds:.0f} s"),
            ("refreshes (ok / failed)", f"{self.refreshes} / {self.failed}"),
            ("CPU per refresh (process)", f"{self.cpu_per_refresh_process * 1000:.1f} ms"),
            ("CPU per refresh (refresher thread)", f"{self.cpu_per_refresh_thread * 1000:.1f} ms"),
            ("wall per refresh", f"{self.wall_per_refresh * 1000:.1f} ms"),
            ("RSS start -> end (CPU phase)", f"{self.rss_start / mb:.1f} -> {self.rss_end / mb:.1f} MB"),
            (
                f"traced memory after warm-up -> end ({self.memory_refreshes} refreshes)",
                f"{self.traced_after_warmup / mb:.2f} -> {self.traced_end / mb:.2f} MB "
                f"(growth {self.traced_growth / 1024:+.0f} KB, peak {self.traced_peak / mb:.1f} MB)",
            ),
            ("traced memory slope", f"{self.traced_slope / 1024:+.1f} KB per refresh"),
        ]


def soak(nameserver: str, seconds: float, *, port: str | int = "http", service: str = "big.prod",
         timeout: float = 5.0) -> SoakResult:
    """Run a ``HeadlessService`` on *service* refreshing every second for *seconds*
    (40 % CPU phase, 60 % memory phase; the memory phase lasts at least until
    :data:`STEADY_REFRESHES` refreshes after the warm-up, however slow tracing makes them)."""
    cpu_phase = seconds * 0.4
    memory_phase = seconds - cpu_phase
    resolver = _Counting([nameserver], timeout=timeout)
    stop = threading.Event()
    with hc.HeadlessService(service, port, resolver=resolver, min_refresh=1.0, max_refresh=1.0) as svc:
        endpoints = len(svc.endpoints)
        # Phase 1: CPU.
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        rss0 = _rss_bytes()
        ok0, cpu0 = resolver.ok, len(resolver.cpu)
        stop.wait(cpu_phase)  # the soak's duration: nothing to synchronise with
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        rss1 = _rss_bytes()
        with resolver.lock:
            done = resolver.ok - ok0
            thread_cpu = resolver.cpu[cpu0:]
            walls = resolver.wall[cpu0:]
        process_cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
        # Phase 2: memory.
        gc.collect()
        tracemalloc.start()
        try:
            start_ok = resolver.ok
            began = time.monotonic()
            resolver.wait_refreshes(start_ok + WARMUP_REFRESHES, timeout=WARMUP_REFRESHES * 3 + timeout)
            stop.wait(max(memory_phase - (time.monotonic() - began), 0.0))
            resolver.wait_refreshes(start_ok + WARMUP_REFRESHES + STEADY_REFRESHES,
                                    timeout=STEADY_REFRESHES * 3 + timeout)
            with resolver.lock:
                samples = list(resolver.traced)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        failed = resolver.failed
    after_warmup = samples[WARMUP_REFRESHES - 1] if len(samples) >= WARMUP_REFRESHES else (samples or [0])[0]
    steady = samples[WARMUP_REFRESHES - 1 :] or samples
    return SoakResult(
        seconds=seconds,
        port=str(port),
        endpoints=endpoints,
        refreshes=resolver.ok,
        failed=failed,
        cpu_per_refresh_process=process_cpu / max(done, 1),
        cpu_per_refresh_thread=sum(thread_cpu) / max(len(thread_cpu), 1),
        wall_per_refresh=sum(walls) / max(len(walls), 1),
        rss_start=rss0,
        rss_end=rss1,
        traced_after_warmup=after_warmup,
        traced_end=samples[-1] if samples else 0,
        traced_peak=peak,
        traced_slope=_slope(steady),
        memory_refreshes=len(samples),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--port", default="http", help="named port (SRV) or a number (A/AAAA)")
    parser.add_argument("--nameserver", help="HOST:PORT of a server with the test ground's zone")
    parser.add_argument("--service", default="big.prod")
    args = parser.parse_args(argv)
    port: str | int = int(args.port) if args.port.isdigit() else args.port
    if args.nameserver:
        result = soak(args.nameserver, args.seconds, port=port, service=args.service)
    else:
        from tests.integration.dnsground import BindServer, find_named

        if find_named() is None:
            print("named (BIND9) not found: apt-get install bind9", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory() as tmp, BindServer(tmp) as server:
            result = soak(server.nameserver, args.seconds, port=port, service=args.service)
    print(f"\n1000-pod refresh soak ({sys.platform}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print("| metric | value |\n|---|---|")
    for name, value in result.rows():
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
