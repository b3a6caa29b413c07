"""Sticky under pod churn: rebuild cost, GIL stalls seen by a request thread, throughput.

Run from the repository root::

    python benchmarks/bench_sticky_churn.py [--pods 1000] [--repeat 15] [--changes 40]

Three measurements over a 1000-pod set (``Sticky()``, 256 points per pod):

1. **Rebuild CPU** after one pod changes, as ``Sticky.prepare`` does it before a
   snapshot is published: CPU time of the calling thread (``time.thread_time``; the short
   sleeps between build steps are not CPU), min / median / max over ``--repeat`` changes
   of each kind: a pod removed or added by a new DNS answer (every endpoint a new
   object), a pod ejected or returned by passive health (the same objects, one fewer or
   one more), and a first build from nothing. "longest step" is the most CPU spent
   between two of the pauses in which the builder leaves the GIL to other threads.
2. **Stalls:** one thread picks in a tight loop (``sticky.pick(current, key)``) and
   stamps ``time.perf_counter()`` after every pick, while another publishes a changed
   set every ``--period`` seconds, preparing its ring first as the service does. The
   gaps between consecutive stamps are what a request thread waits, for the GIL or for
   a CPU: p50 / p99 / p99.9 / max, and how many exceed 5 ms. The same loop without churn
   comes first: on a shared machine the OS alone makes gaps of milliseconds, and only
   the difference is the builder's. A first build of 1000 pods runs under the same eye.
3. **Throughput** of a trivial handler (pick, then read the endpoint's address) in
   ``--handlers`` threads for ``--seconds``, with and without a one-pod change every
   ``--churn-period`` seconds: the loss in handled requests.
4. **The mapping itself:** over random sets of 10 and 1000 pods (ordinals drawn from
   0..9999), each pod's exact share of the key space (its buckets / 2**18; a key hash is
   uniform over the buckets), as busiest / mean and least / mean, and the share of the
   key space that changes pod when one pod is added or one removed, times N (consistent
   hashing moves about 1/N).

To compare with another version of the library, run the script with that version first
on ``PYTHONPATH``: it uses only the public API (and the step hook when there is one).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from headless_client.endpoints import Endpoint, EndpointSet
from headless_client.strategies import Sticky

KEYS = [f"user-{i}" for i in range(10_000)]
STAMPS_PER_BLOCK = 1 << 16


def pod(i: int) -> Endpoint:
    return Endpoint(
        f"10.{i // 62500}.{(i // 250) % 250}.{i % 250 + 1}",
        8080,
        hostname=f"web-{i}.web.prod.svc.cluster.local",
        ordinal=i,
    )


def fleet(ordinals: range | list[int]) -> EndpointSet:
    """A fresh snapshot, as a new DNS answer gives one: every endpoint a new object."""
    return EndpointSet((pod(i) for i in ordinals), name="web.prod")


class Changes:
    """An endless supply of one-pod changes of every kind, each a new snapshot."""

    def __init__(self, pods: int) -> None:
        self.pods = pods
        self.dns = fleet(range(pods))
        self.step = 0

    def next(self, kind: str) -> EndpointSet:
        """The snapshot after one change of *kind* to the last one of that kind."""
        self.step += 1
        victim = self.pods // 2 + self.step % 7
        if kind == "dns-remove":
            return fleet([i for i in range(self.pods) if i != victim])
        if kind == "dns-add":
            return fleet([*range(self.pods), self.pods + self.step % 7])
        if kind == "eject":
            return EndpointSet([ep for ep in self.dns if ep.ordinal != victim], name="web.prod")
        if kind == "return":
            return self.dns
        raise ValueError(kind)


def summary(values: list[float], unit: str = "ms", scale: float = 1e3) -> str:
    return (
        f"min {min(values) * scale:7.2f}  median {statistics.median(values) * scale:7.2f}  "
        f"max {max(values) * scale:7.2f} {unit}"
    )


def step_hook() -> tuple[Callable[[], None] | None, list[float]]:
    """Record the CPU time at every pause between build steps, if this version has them."""
    from headless_client.strategies import sticky as module

    marks: list[float] = []
    original = getattr(module, "_pause", None)
    if original is None:
        return None, marks

    def pause() -> None:
        marks.append(time.thread_time())
        original()

    module._pause = pause
    return original, marks


def restore_hook(original: Callable[[], None] | None) -> None:
    if original is not None:
        from headless_client.strategies import sticky as module

        module._pause = original


def rebuild_costs(pods: int, repeat: int) -> None:
    print(f"1. Rebuild CPU after a one-pod change ({pods} pods, {repeat} runs each)")
    original, marks = step_hook()
    try:
        for kind in ("dns-remove", "dns-add", "eject", "return", "first build"):
            cpu: list[float] = []
            wall: list[float] = []
            steps: list[float] = []
            runs = max(3, repeat // 5) if kind == "first build" else repeat
            changes = Changes(pods)
            for _ in range(runs):
                sticky = Sticky()
                if kind == "first build":
                    snapshot = changes.dns
                else:
                    base = changes.dns if kind != "return" else changes.next("eject")
                    sticky.prepare(base)
                    snapshot = changes.next(kind)
                marks.clear()
                start_cpu, start_wall = time.thread_time(), time.perf_counter()
                sticky.prepare(snapshot)
                end_cpu, end_wall = time.thread_time(), time.perf_counter()
                cpu.append(end_cpu - start_cpu)
                wall.append(end_wall - start_wall)
                edges = [start_cpu, *marks, end_cpu]
                steps.append(max(b - a for a, b in pairwise(edges)))
            print(f"  {kind:<12} CPU {summary(cpu)}   wall median {statistics.median(wall) * 1e3:7.2f} ms")
            if original is not None:
                print(f"  {'':<12} longest step {summary(steps)}")
    finally:
        restore_hook(original)


@dataclass(frozen=True, slots=True)
class Gaps:
    """What a tight-loop picker saw: wall gaps, and the builder's CPU inside each gap."""

    wall: list[float]
    builder: list[float]


def watch_gaps(work: Callable[[], None], sticky: Sticky, current: list[EndpointSet]) -> Gaps:
    """Gaps between consecutive picks of a tight-loop thread while *work* runs here.

    After every pick the picker also reads this (the working) thread's CPU clock: the
    CPU the builder spent inside a gap is the part of the gap the builder held the GIL,
    whatever the OS did to either thread. On a loaded machine the wall gaps also hold
    the time the picker waited for a CPU.
    """
    clock = time.pthread_getcpuclockid(threading.get_ident())
    blocks: list[tuple[array[float], array[float]]] = []
    stop = threading.Event()

    def picker() -> None:
        pick, now, cpu = sticky.pick, time.perf_counter, time.clock_gettime
        while not stop.is_set():
            walls = array("d", bytes(8 * STAMPS_PER_BLOCK))
            cpus = array("d", bytes(8 * STAMPS_PER_BLOCK))
            blocks.append((walls, cpus))
            for i in range(STAMPS_PER_BLOCK):
                pick(current[0], KEYS[i % 10_000])
                walls[i] = now()
                cpus[i] = cpu(clock)

    thread = threading.Thread(target=picker, name="picker")
    thread.start()
    time.sleep(0.2)
    start = time.perf_counter()
    try:
        work()
    finally:
        end = time.perf_counter()
        stop.set()
        thread.join(timeout=30)
    stamps = [(w, c) for walls, cpus in blocks for w, c in zip(walls, cpus, strict=True) if start <= w <= end]
    return Gaps(
        [b[0] - a[0] for a, b in pairwise(stamps)],
        [min(b[0] - a[0], b[1] - a[1]) for a, b in pairwise(stamps)],
    )


def gap_line(label: str, gaps: Gaps) -> str:
    def at(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1e6

    wall, held = sorted(gaps.wall), sorted(gaps.builder)
    over = sum(1 for g in wall if g > 0.005)
    return (
        f"  {label:<30} wall gap p50 {at(wall, 0.5):5.1f}  p99 {at(wall, 0.99):6.1f}  "
        f"p99.9 {at(wall, 0.999):7.1f}  max {wall[-1] * 1e6:8.0f} us ({over} > 5 ms of {len(wall)})\n"
        f"  {'':<30} builder CPU inside a gap: p99.9 {at(held, 0.999):7.1f}  max {held[-1] * 1e6:8.0f} us"
    )


def stalls(pods: int, changes_count: int, period: float) -> None:
    print(f"\n2. Gaps seen by a thread picking in a tight loop ({pods} pods)")
    changes = Changes(pods)
    sticky = Sticky()
    sticky.prepare(changes.dns)
    current = [changes.dns]
    duration = changes_count * period

    print(gap_line("no churn", watch_gaps(lambda: time.sleep(duration), sticky, current)))

    # Snapshots are made beforehand: building 1000 Endpoint objects is not Sticky's work.
    kinds = ["dns-remove", "dns-add", "eject", "return"]
    snapshots = [changes.next(kinds[n % len(kinds)]) for n in range(changes_count)]

    def churn() -> None:
        for snapshot in snapshots:
            sticky.prepare(snapshot)  # the service builds before it publishes
            current[0] = snapshot
            time.sleep(period)

    print(gap_line(f"one-pod change every {period * 1e3:.0f} ms", watch_gaps(churn, sticky, current)))

    fresh = [fleet(range(pods)) for _ in range(3)]

    def first_builds() -> None:
        for snapshot in fresh:
            Sticky().prepare(snapshot)

    print(gap_line("3 first builds of all pods", watch_gaps(first_builds, sticky, current)))


def throughput(pods: int, handlers: int, seconds: float, churn_period: float, runs: int) -> None:
    print(f"\n3. Trivial handler throughput, {handlers} threads, {seconds:.0f} s per run")
    changes = Changes(pods)

    # Made beforehand: building endpoint objects is the resolver's work, not Sticky's.
    kinds = ["dns-remove", "eject", "dns-add", "return"]
    snapshots = [changes.next(kinds[n % len(kinds)]) for n in range(int(seconds / churn_period) + 2)]

    def run(churn: bool) -> int:
        sticky = Sticky()
        sticky.prepare(changes.dns)
        current = [changes.dns]
        stop = threading.Event()
        counts = [0] * handlers

        def handler(slot: int) -> None:
            pick = sticky.pick
            done = 0
            i = slot
            while not stop.is_set():
                for _ in range(256):
                    ep = pick(current[0], KEYS[i % 10_000])
                    len(ep.address)  # the trivial work
                    i += 1
                done += 256
            counts[slot] = done

        threads = [threading.Thread(target=handler, args=(n,)) for n in range(handlers)]
        for thread in threads:
            thread.start()
        deadline = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < deadline:
            if churn:
                snapshot = snapshots[n % len(snapshots)]
                start_cpu = time.thread_time()
                sticky.prepare(snapshot)
                builder_cpu[0] += time.thread_time() - start_cpu
                current[0] = snapshot
                n += 1
            time.sleep(min(churn_period, max(0.0, deadline - time.perf_counter())))
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        return sum(counts)

    # Pairs, each a quiet run then a churned one, so that drift in what else the machine
    # does weighs on both sides of a pair alike.
    quiet: list[int] = []
    busy: list[int] = []
    builder_cpu = [0.0]
    for _ in range(runs):
        quiet.append(run(False))
        busy.append(run(True))
    losses = [1 - b / q for q, b in zip(quiet, busy, strict=True)]
    print(f"  without churn: {[round(q / seconds) for q in quiet]} picks/s")
    print(f"  one-pod change every {churn_period:.2f} s: {[round(b / seconds) for b in busy]} picks/s")
    print(
        f"  loss: median {statistics.median(losses) * 100:.1f} % "
        f"(runs: {', '.join(f'{x * 100:.1f} %' for x in losses)})"
    )
    # What the builder takes from the handlers, GIL handovers aside: unlike the loss,
    # it does not drift with what else the machine runs.
    share = builder_cpu[0] / (runs * seconds)
    print(f"  builder CPU during the churned runs: {share * 100:.1f} % of the time (GIL time taken from the handlers)")


def bucket_owners(sticky: Sticky, snapshot: EndpointSet) -> list[str]:
    """The pod identity of every bucket (both ring layouts index members by the table)."""
    sticky.prepare(snapshot)
    ring = sticky._cache.derive(snapshot)
    members = ring.members
    return [members[slot].identity for slot in ring.table]


def mapping_quality(sets: int, seed: int) -> None:
    import random
    from collections import Counter

    print("\n4. The mapping: shares and remapping over random sets")
    rng = random.Random(seed)
    for size, count in ((10, sets), (1000, max(2, sets // 10))):
        busiest: list[float] = []
        least: list[float] = []
        moved_add: list[float] = []
        moved_remove: list[float] = []
        for _ in range(count):
            ordinals = rng.sample(range(10_000), size + 1)
            base, extra = ordinals[:size], ordinals[size]
            owners = bucket_owners(Sticky(), fleet(base))
            shares = Counter(owners)
            mean = len(owners) / size
            busiest.append(max(shares.values()) / mean)
            least.append(min(shares.values()) / mean if len(shares) == size else 0.0)
            added = bucket_owners(Sticky(), fleet([*base, extra]))
            moved = sum(a != b for a, b in zip(owners, added, strict=True))
            assert all(b == pod(extra).identity for a, b in zip(owners, added, strict=True) if a != b)
            moved_add.append(moved / len(owners) * size)
            gone = rng.choice(base)
            removed = bucket_owners(Sticky(), fleet([i for i in base if i != gone]))
            moved = sum(a != b for a, b in zip(owners, removed, strict=True))
            moved_remove.append(moved / len(owners) * size)
        print(
            f"  {size:>4} pods, {count} sets: busiest/mean {summary(busiest, 'x', 1)}; "
            f"least/mean min {min(least):.2f}"
        )
        print(f"  {'':>4}       moved on +1 pod, x N: {summary(moved_add, '', 1)}")
        print(f"  {'':>4}       moved on -1 pod, x N: {summary(moved_remove, '', 1)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15, help="runs per kind of change")
    parser.add_argument("--changes", type=int, default=40, help="changes while watching gaps")
    parser.add_argument("--period", type=float, default=0.05, help="seconds between changes (gaps)")
    parser.add_argument("--handlers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--churn-period", type=float, default=0.5)
    parser.add_argument("--runs", type=int, default=5, help="pairs of throughput runs")
    parser.add_argument("--sets", type=int, default=40, help="random 10-pod sets (a tenth as many of 1000)")
    parser.add_argument("--skip", default="", help="parts to skip: rebuild,stalls,throughput,mapping")
    args = parser.parse_args(argv)
    skip = set(args.skip.split(","))
    print(f"Python {sys.version.split()[0]}, switch interval {sys.getswitchinterval() * 1e3:.0f} ms\n")
    if "rebuild" not in skip:
        rebuild_costs(args.pods, args.repeat)
    if "stalls" not in skip:
        stalls(args.pods, args.changes, args.period)
    if "throughput" not in skip:
        throughput(args.pods, args.handlers, args.seconds, args.churn_period, args.runs)
    if "mapping" not in skip:
        mapping_quality(args.sets, seed=14)
    return 0


if __name__ == "__main__":
    sys.exit(main())
