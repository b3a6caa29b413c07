"""What a production process pays, and what a fork costs: figures for docs/reliability.md.

Against the in-process fake cluster DNS on loopback (no network beyond it):

* **200 services** on 1 s TTLs (``min_refresh=max_refresh=1``), each with a subscriber:
  library threads, library file descriptors, and CPU share at idle over a window;
* **fork**: how long a child of a process running a started service takes to see a
  scale-up made after the fork; the parent's CPU during a DNS outage after the child
  closed its copy (0.1.0 busy-spun: 2.74 s of CPU in 3 s);
* **an unclosed service**: dropped without ``close()``, how long until the refresher lets
  go of it, and whether a ``ResourceWarning`` was issued.

Run::

    .venv/bin/python benchmarks/bench_production.py [--runs 3] [--window 10]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import statistics
import threading
import time
import warnings
from multiprocessing.connection import Connection

import headless_client as hc
from headless_client.clock import monotonic
from headless_client.refresher import refresher_for
from headless_client.testing import FakeClusterDNS


def library_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("headless-client"))


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def wait(predicate, timeout: float) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError("condition not met")
        time.sleep(0.002)
    return time.monotonic() - start


def _serve_dns(conn: Connection) -> None:
    """In a separate process: a fake cluster DNS with 20 StatefulSets, until told to stop."""
    with FakeClusterDNS(ttl=1) as cluster:
        for i in range(20):
            cluster.add_statefulset(f"s{i}", "prod", 3)
        conn.send(cluster.nameserver)
        conn.recv()


def two_hundred(window: float) -> tuple[int, int, float]:
    """(max library threads, max library fds, CPU share at idle) for 200 services. The DNS
    server runs in another process, so the CPU share is the library's alone."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve_dns, args=(child,), daemon=True)
    server.start()
    try:
        resolver = hc.Resolver([parent.recv()], timeout=2.0)
        base_fds = fds()
        services = [
            hc.HeadlessService(f"s{i % 20}.prod", "http", resolver=resolver, min_refresh=1, max_refresh=1)
            for i in range(200)
        ]
        for svc in services:
            svc.start()
            svc.subscribe(lambda old, new: None)
        try:
            threads = lib_fds = 0
            cpu0, wall0 = time.process_time(), time.monotonic()
            end = wall0 + window
            while time.monotonic() < end:
                threads = max(threads, library_threads())
                lib_fds = max(lib_fds, fds() - base_fds)
                time.sleep(0.05)
            share = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        finally:
            for svc in services:
                svc.close()
        return threads, lib_fds, share
    finally:
        parent.send("stop")
        server.join(10)


def fork_child_sees_scale_up() -> float:
    """Seconds from a scale-up (in the parent, after the fork) to the child seeing it."""
    with FakeClusterDNS() as cluster:
        cluster.add_statefulset("web", "prod", 3)
        with hc.HeadlessService("web.prod", "http", resolver=cluster.resolver(),
                                min_refresh=0.1, max_refresh=0.5) as svc:
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                os.close(r)
                try:
                    start = time.monotonic()
                    svc.wait_for(4, timeout=20)
                    os.write(w, f"{time.monotonic() - start:.6f}".encode())
                finally:
                    os._exit(0)
            os.close(w)
            cluster.scale("web", "prod", 4)
            took = float(os.read(r, 64).decode() or "nan")
            os.close(r)
            os.waitpid(pid, 0)
            return took


def parent_cpu_after_child_close(outage: float = 3.0) -> float:
    """CPU seconds the parent uses during *outage* seconds of black-holed DNS, after a
    forked child closed its copy of the service."""
    with FakeClusterDNS() as cluster:
        cluster.add_statefulset("web", "prod", 3)
        with hc.HeadlessService("web.prod", "http", resolver=cluster.resolver(),
                                min_refresh=0.1, max_refresh=0.2) as svc:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                try:
                    svc.close()
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)
            cluster.fault = "drop"
            cpu0 = time.process_time()
            time.sleep(outage)
            cpu = time.process_time() - cpu0
            cluster.fault = None
            return cpu


def unclosed_collected() -> tuple[float, bool]:
    """(seconds until the refresher let go of a dropped service, ResourceWarning seen)."""
    with FakeClusterDNS() as cluster:
        cluster.add_statefulset("web", "prod", 3)
        base = refresher_for(monotonic).service_count()
        svc = hc.HeadlessService("web.prod", "http", resolver=cluster.resolver(), min_refresh=0.1)
        svc.start()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del svc
            gc.collect()
            took = wait(lambda: refresher_for(monotonic).service_count() == base, 10)
        return took, any(issubclass(w.category, ResourceWarning) for w in caught)


def spread(values: list[float], unit: str, scale: float = 1.0) -> str:
    values = [v * scale for v in values]
    if len(values) == 1:
        return f"{values[0]:.3g} {unit}"
    return (
        f"median {statistics.median(values):.3g} {unit} "
        f"(min {min(values):.3g}, max {max(values):.3g}, n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=float, default=10.0, help="idle window for 200 services (s)")
    args = parser.parse_args()
    rows = [two_hundred(args.window) for _ in range(args.runs)]
    print("200 services, 1 s TTL (0.1.0: 201 threads, 407 fds, 16.6 % CPU)")
    print(f"  library threads      {spread([r[0] for r in rows], '')}")
    print(f"  library descriptors  {spread([r[1] for r in rows], '')}")
    print(f"  CPU at idle          {spread([r[2] for r in rows], '%', 100)} (the DNS server runs elsewhere)")
    print("fork")
    print(f"  child sees a scale-up after      {spread([fork_child_sees_scale_up() for _ in range(args.runs)], 'ms', 1000)}")
    cpu = [parent_cpu_after_child_close() for _ in range(args.runs)]
    print(f"  parent CPU in 3 s of DNS outage  {spread(cpu, 's')} (0.1.0: 2.74 s)")
    collected = [unclosed_collected() for _ in range(args.runs)]
    print("unclosed service")
    print(f"  refresher let go after           {spread([c[0] for c in collected], 'ms', 1000)}")
    print(f"  ResourceWarning issued           {all(c[1] for c in collected)}")


if __name__ == "__main__":
    main()
