"""Instructions per pick (callgrind Ir) over 1000 endpoints, beside floors, peers and wall time.

The one pick benchmark: every strategy's ``pick``, the floor of an exact rotation, a
started service's ``pick()`` (threads and asyncio) for each key-only strategy and for
Sticky, and the peers (elastic-transport, cassandra-driver, uhashring). Run from the
repository root (needs ``valgrind`` and the ``bench`` extra)::

    python benchmarks/bench_pick_ir.py [--iterations 20000] [--runs 3] [--jobs 2] [--rows sticky,uhashring]

**Method.** Each row is a tight loop of one call shape (``call(endpoints, key)`` over
10 000 distinct keys, ``call(endpoints)``, ``call(key)`` or ``call()``), run in its own
interpreter under ``valgrind --tool=callgrind`` twice: once with N iterations and once
with 2N, after the same set-up and the same 2000 warm-up iterations. The two totals
differ only by N iterations of the loop, so ``(Ir(2N) - Ir(N)) / N`` is the cost of one
iteration, with interpreter start-up, imports, set-up (building a Sticky ring, starting
a service) and exit cancelled out. ``PYTHONHASHSEED=0`` and seeded strategies make both
runs take the same path; callgrind counts instructions, not time, so the figures repeat
to within a few Ir on a busy machine where wall times do not. With ``--runs R`` each row
runs R + 1 times, with N, 2N ... (R + 1)N iterations, and each step gives a figure: min,
median and max are printed. Every
figure includes the loop and the call itself: the "empty loop" rows (a Python function
that returns at once, called the same way) show that floor per call shape.

**Floors.** An exact rotation needs at least a Python call and one atomic step. The two
floor rows are methods of the same call shape as ``RoundRobin.pick`` whose whole body is
that step, with no check that the set passed is the one the rotation belongs to:
``next(cycle)`` (the step RoundRobin takes) and ``pods[next(counter) % n]`` (a shared
counter, the step RoundRobin took before).

**Service overhead.** A ``svc.pick()`` row is a started
:class:`~headless_client.HeadlessService` (or
:class:`~headless_client.AsyncHeadlessService`, whose ``pick`` is sync) over a
:class:`~headless_client.testing.StaticResolver` holding the same 1000 endpoints; its
bare row is the same strategy's ``pick(svc.healthy_endpoints)``. Overhead = svc row -
bare row - (empty ``f()`` - empty ``f(endpoints)``): the loop shapes differ by one
argument, and that difference is taken out (it favours the service by ~50 Ir). The
``(attribute)`` rows write ``svc.pick()`` and ``rr.pick(endpoints)`` in the loop itself,
as an application does, instead of calling a bound method kept in a local.

Beside each Ir figure is the wall time per iteration in this process (best of 7 runs of
200 000 iterations, or fewer for slow rows) and, for the rows with a peer, both ratios
(peer / ours: higher is better).

Targets (design.md section 6): RoundRobin <= 1100 Ir; LeastLoaded <= 3000 (idle and with
a third of the pods busy); Sticky <= 3000 and >= 4x fewer than uhashring's ``get_node``;
``svc.pick()`` adds <= 300 over the bare strategy (each strategy, both services). Exits 1
if a target measured in this run is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import itertools
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from typing import Any

N_ENDPOINTS = 1000
NAME = "web.prod.svc.cluster.local"
KEYS = [f"user-{i}" for i in range(10_000)]
WARM_UP = 2000
WALL_REPEATS = 7

Runner = Callable[[int], None]


def endpoints() -> Any:
    from headless_client.endpoints import Endpoint, EndpointSet

    return EndpointSet(
        (
            Endpoint(
                f"10.0.{i // 250}.{i % 250 + 1}",
                8080,
                hostname=f"web-{i}.{NAME}",
                ordinal=i,
            )
            for i in range(N_ENDPOINTS)
        ),
        name=NAME,
    )


# -- loops: one per call shape, each with its empty twin ------------------------------


def loop_fixed_and_key(call: Callable[[Any, Any], object], fixed: object, keys: list[Any]) -> Runner:
    def run(n: int) -> None:
        rounds, rest = divmod(n, len(keys))
        for _ in repeat(None, rounds):
            for key in keys:
                call(fixed, key)
        for key in keys[:rest]:
            call(fixed, key)

    return run


def loop_fixed(call: Callable[[Any], object], fixed: object) -> Runner:
    def run(n: int) -> None:
        for _ in repeat(None, n):
            call(fixed)

    return run


def loop_key(call: Callable[[Any], object], keys: list[Any]) -> Runner:
    def run(n: int) -> None:
        rounds, rest = divmod(n, len(keys))
        for _ in repeat(None, rounds):
            for key in keys:
                call(key)
        for key in keys[:rest]:
            call(key)

    return run


def loop_bare(call: Callable[[], object]) -> Runner:
    def run(n: int) -> None:
        for _ in repeat(None, n):
            call()

    return run


def loop_attribute_svc(svc: Any) -> Runner:
    """``svc.pick()`` written in the loop: the attribute is looked up at every call."""

    def run(n: int) -> None:
        for _ in repeat(None, n):
            svc.pick()

    return run


def loop_attribute_strategy(strategy: Any, fixed: object) -> Runner:
    """``strategy.pick(endpoints)`` written in the loop."""

    def run(n: int) -> None:
        for _ in repeat(None, n):
            strategy.pick(fixed)

    return run


def nothing2(endpoints: object, key: object = None) -> None:
    return None


def nothing1(arg: object) -> None:
    return None


def nothing0() -> None:
    return None


# -- floors of an exact rotation ------------------------------------------------------


class CycleFloor:
    """The rotation step alone, as a method: ``next`` on a shared cycle."""

    __slots__ = ("_rotation",)

    def __init__(self, pods: tuple[object, ...]) -> None:
        self._rotation = itertools.cycle(pods)

    def pick(self, endpoints: object, key: object = None) -> object:
        return next(self._rotation)


class CounterFloor:
    """The rotation step alone, as a method: a shared counter modulo the size."""

    __slots__ = ("_counter", "_pods", "_size")

    def __init__(self, pods: tuple[object, ...]) -> None:
        self._pods = pods
        self._size = len(pods)
        self._counter = itertools.count()

    def pick(self, endpoints: object, key: object = None) -> object:
        return self._pods[next(self._counter) % self._size]


# -- rows -----------------------------------------------------------------------------


def row_empty_fixed_key() -> Runner:
    return loop_fixed_and_key(nothing2, endpoints(), list(KEYS))


def row_empty_fixed() -> Runner:
    return loop_fixed(nothing1, endpoints())


def row_empty_key() -> Runner:
    return loop_key(nothing1, list(KEYS))


def row_empty_bare() -> Runner:
    return loop_bare(nothing0)


def row_floor_cycle() -> Runner:
    eps = endpoints()
    return loop_fixed(CycleFloor(eps.endpoints).pick, eps)


def row_floor_counter() -> Runner:
    eps = endpoints()
    return loop_fixed(CounterFloor(eps.endpoints).pick, eps)


def make_strategy(kind: str) -> Any:
    from headless_client.strategies import LeastLoaded, Random, RoundRobin, Sticky

    if kind == "round_robin":
        return RoundRobin()
    if kind == "random":
        return Random(seed=1)
    if kind.startswith("least_loaded"):
        return LeastLoaded(seed=1)
    if kind == "sticky":
        return Sticky()
    raise ValueError(kind)


def busy(strategy: Any, eps: Any) -> None:
    """A third of the pods with one call in flight."""
    for ep in eps.endpoints[::3]:
        strategy.started(ep)


def bare_row(kind: str) -> Callable[[], Runner]:
    def setup() -> Runner:
        strategy = make_strategy(kind)
        eps = endpoints()
        if kind == "least_loaded_busy":
            busy(strategy, eps)
        if kind == "sticky":
            strategy.prepare(eps)
            return loop_fixed_and_key(strategy.pick, eps, list(KEYS))
        return loop_fixed(strategy.pick, eps)

    return setup


def started_service(strategy: Any, twin: str) -> Any:
    """A started service over a static table of the 1000 endpoints (no DNS)."""
    from headless_client import AsyncHeadlessService, HeadlessService
    from headless_client.testing import AsyncStaticResolver, StaticResolver

    eps = endpoints()
    if twin == "sync":
        svc = HeadlessService(
            NAME, "http", resolver=StaticResolver({NAME: eps}, namespace="prod"), strategy=strategy,
            max_refresh=3600,
        )
        svc.start()
        atexit.register(svc.close)
    else:
        # The loop only starts the service (pick is sync); it stays idle while the row runs.
        loop = asyncio.new_event_loop()
        svc = AsyncHeadlessService(
            NAME, "http", resolver=AsyncStaticResolver({NAME: eps}, namespace="prod"), strategy=strategy,
            max_refresh=3600,
        )
        loop.run_until_complete(svc.start())
        atexit.register(lambda: (loop.run_until_complete(svc.close()), loop.close()))
    assert svc.endpoints == eps
    assert svc.healthy_endpoints is svc.endpoints
    return svc


def service_row(kind: str, twin: str) -> Callable[[], Runner]:
    def setup() -> Runner:
        strategy = make_strategy(kind)
        svc = started_service(strategy, twin)
        if kind == "least_loaded_busy":
            busy(strategy, svc.healthy_endpoints)
        if kind == "sticky":
            return loop_key(svc.pick, list(KEYS))
        return loop_bare(svc.pick)

    return setup


def row_round_robin_attribute() -> Runner:
    strategy = make_strategy("round_robin")
    return loop_attribute_strategy(strategy, endpoints())


def row_svc_round_robin_attribute() -> Runner:
    return loop_attribute_svc(started_service(make_strategy("round_robin"), "sync"))


def row_sticky_int() -> Runner:
    from headless_client.strategies import Sticky

    eps = endpoints()
    sticky = Sticky()
    sticky.prepare(eps)
    return loop_fixed_and_key(sticky.pick, eps, list(range(10_000)))


def row_sticky_bounded() -> Runner:
    from headless_client.strategies import Sticky

    eps = endpoints()
    sticky = Sticky(bounded_load=1.25)
    sticky.prepare(eps)
    return loop_fixed_and_key(sticky.pick, eps, list(KEYS))


def row_partition_leader() -> Runner:
    from headless_client.strategies import PartitionLeader

    leader = PartitionLeader({p: p % N_ENDPOINTS for p in range(N_ENDPOINTS)})
    return loop_fixed_and_key(leader.pick, endpoints(), list(range(N_ENDPOINTS)))


def row_primary_replica() -> Runner:
    from headless_client.strategies import PrimaryReplica

    return loop_fixed(PrimaryReplica().pick, endpoints())


def row_elastic() -> Runner:
    from elastic_transport import NodeConfig, Urllib3HttpNode
    from elastic_transport._node_pool import RoundRobinSelector

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nodes = [
            Urllib3HttpNode(NodeConfig("http", f"10.0.{i // 250}.{i % 250 + 1}", 8080))
            for i in range(N_ENDPOINTS)
        ]
    selector = RoundRobinSelector([node.config for node in nodes])
    return loop_fixed(selector.select, nodes)


def row_cassandra() -> Runner:
    from cassandra.policies import RoundRobinPolicy, SimpleConvictionPolicy
    from cassandra.pool import Host

    hosts = [Host(f"10.0.{i // 250}.{i % 250 + 1}", SimpleConvictionPolicy) for i in range(N_ENDPOINTS)]
    policy = RoundRobinPolicy()
    policy.populate(None, hosts)
    return loop_bare(lambda: next(iter(policy.make_query_plan())))


def row_uhashring() -> Runner:
    from uhashring import HashRing

    ring = HashRing([f"web-{i}.{NAME}:8080" for i in range(N_ENDPOINTS)])
    return loop_key(ring.get_node, list(KEYS))


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    setup: Callable[[], Runner]
    wall_iterations: int = 200_000


LABELS = {
    "round_robin": "RoundRobin",
    "random": "Random",
    "least_loaded": "LeastLoaded",
    "least_loaded_busy": "LeastLoaded, 1/3 of pods busy",
    "sticky": "Sticky, 10k distinct str keys",
}
BARE_LABELS = {
    "round_robin": "RoundRobin.pick",
    "random": "Random.pick",
    "least_loaded": "LeastLoaded.pick",
    "least_loaded_busy": "LeastLoaded.pick (1/3 of pods busy)",
    "sticky": "Sticky.pick (10k distinct str keys)",
}
TWINS = {"sync": "HeadlessService", "async": "AsyncHeadlessService"}

ROWS: dict[str, Row] = {
    "empty_fixed_key": Row("empty loop: f(endpoints, key)", row_empty_fixed_key),
    "empty_fixed": Row("empty loop: f(endpoints)", row_empty_fixed),
    "empty_key": Row("empty loop: f(key)", row_empty_key),
    "empty_bare": Row("empty loop: f()", row_empty_bare),
    "floor_cycle": Row("floor: exact rotation, next(cycle)", row_floor_cycle),
    "floor_counter": Row("floor: exact rotation, pods[next(count) % n]", row_floor_counter),
    **{kind: Row(BARE_LABELS[kind], bare_row(kind)) for kind in LABELS},
    **{f"{twin}_{kind}": Row(f"{name}.pick(): {label}", service_row(kind, twin))
       for twin, name in TWINS.items() for kind, label in LABELS.items()},
    "round_robin_attribute": Row("RoundRobin: rr.pick(eps) (attribute)", row_round_robin_attribute),
    "sync_round_robin_attribute": Row("HeadlessService: svc.pick() (attribute)", row_svc_round_robin_attribute),
    "sticky_int": Row("Sticky.pick (10k distinct int keys)", row_sticky_int),
    "sticky_bounded": Row("Sticky(bounded_load=1.25).pick (no load)", row_sticky_bounded),
    "partition_leader": Row("PartitionLeader.pick (1000 partitions)", row_partition_leader),
    "primary_replica": Row("PrimaryReplica.pick (read)", row_primary_replica),
    "elastic": Row("elastic-transport RoundRobinSelector.select", row_elastic),
    "cassandra": Row("cassandra-driver RoundRobinPolicy plan head", row_cassandra, 20_000),
    "uhashring": Row("uhashring HashRing.get_node (same keys)", row_uhashring, 30_000),
}

# (ours, peer or floor, Ir target for ours or None, minimum Ir ratio peer/ours or None)
COMPARISONS: list[tuple[str, str | None, int | None, float | None]] = [
    ("round_robin", "floor_cycle", 1100, None),
    ("round_robin", "floor_counter", None, None),
    ("round_robin", "elastic", None, None),
    ("round_robin", "cassandra", None, None),
    ("least_loaded", None, 3000, None),
    ("least_loaded_busy", None, 3000, None),
    ("sticky", "uhashring", 3000, 4.0),
]
OVERHEAD_TARGET = 300
# (service row, bare row, the empty loops of their call shapes)
OVERHEADS = [
    (f"{twin}_{kind}", kind, ("empty_key", "empty_fixed_key") if kind == "sticky" else ("empty_bare", "empty_fixed"))
    for twin in TWINS
    for kind in LABELS
] + [("sync_round_robin_attribute", "round_robin_attribute", ("empty_bare", "empty_fixed"))]


# -- measuring --------------------------------------------------------------------------


def worker(name: str, iterations: int) -> None:
    """Set up *name*, warm it up, then run *iterations* of its loop (under callgrind)."""
    run = ROWS[name].setup()
    run(WARM_UP)
    run(iterations)


def package_root() -> str:
    import headless_client

    return os.path.dirname(os.path.dirname(os.path.abspath(headless_client.__file__)))


def callgrind_total(name: str, iterations: int, out_dir: str) -> int:
    """Total Ir of one worker process running *iterations* of *name*."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root(), env.get("PYTHONPATH")]))
    out = os.path.join(out_dir, f"{name}.{iterations}.out")
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            os.path.abspath(__file__),
            "--worker",
            name,
            str(iterations),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"callgrind run of {name} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def wall_ns(name: str) -> float:
    """Best of WALL_REPEATS runs, in ns per iteration, in this process."""
    row = ROWS[name]
    run = row.setup()
    run(WARM_UP)
    best = float("inf")
    for _ in range(WALL_REPEATS):
        gc.disable()
        try:
            start = time.perf_counter_ns()
            run(row.wall_iterations)
            elapsed = time.perf_counter_ns() - start
        finally:
            gc.enable()
        best = min(best, elapsed / row.wall_iterations)
    return best


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:>7.0f}"
    return f"{min(values):>7.0f} {statistics.median(values):>7.0f} {max(values):>7.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000, help="N (the second run does 2N)")
    parser.add_argument("--runs", type=int, default=1, help="figures per row (R + 1 runs: N, 2N ... (R + 1)N)")
    parser.add_argument("--jobs", type=int, default=2, help="callgrind runs at once")
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated row names")
    parser.add_argument("--no-wall", action="store_true", help="skip the wall-time column")
    parser.add_argument("--worker", nargs=2, metavar=("ROW", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)")
        return 2
    names = [name.strip() for name in args.rows.split(",") if name.strip()]
    unknown = [name for name in names if name not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
    try:
        import cassandra  # noqa: F401
        import elastic_transport  # noqa: F401
        import uhashring  # noqa: F401
    except ImportError as exc:
        print(f"missing peer for the comparison ({exc}); install the 'bench' extra")
        return 2

    # R + 1 callgrind runs of N, 2N ... (R + 1)N iterations give R figures, one per step.
    sizes = [args.iterations * (k + 1) for k in range(args.runs + 1)]
    print(f"Python {platform.python_version()} on {platform.machine()}, {N_ENDPOINTS} endpoints")
    print(
        f"Ir per iteration = (Ir((k+1)N) - Ir(kN)) / N, N = {args.iterations}, k = 1..{args.runs}"
        + ("" if args.no_wall else f"; wall: best of {WALL_REPEATS}")
    )
    head = "Ir" if args.runs == 1 else "    min  median     max (Ir)"
    print(f"\n  {'row':<56} {head}{'' if args.no_wall else '   wall ns'}")
    irs: dict[str, list[float]] = {}
    walls: dict[str, float] = {}
    # Wall times first: callgrind runs alongside would disturb them.
    if not args.no_wall:
        for name in names:
            walls[name] = wall_ns(name)
    with tempfile.TemporaryDirectory() as out_dir, ThreadPoolExecutor(args.jobs) as pool:
        runs = {
            (name, n): pool.submit(callgrind_total, name, n, out_dir)
            for name in names
            for n in sizes
        }
        for name in names:
            totals = [runs[name, n].result() for n in sizes]
            irs[name] = [(more - fewer) / args.iterations for fewer, more in itertools.pairwise(totals)]
            wall = "" if args.no_wall else f" {walls[name]:>9.0f}"
            print(f"  {ROWS[name].label:<56} {spread(irs[name])}{wall}", flush=True)

    def ir(name: str) -> float:
        return statistics.median(irs[name])

    def ratio_of_walls(peer: str, ours: str) -> str:
        return "" if args.no_wall else f", {walls[peer] / walls[ours]:.2f}x wall"

    failed = False
    print("\nSide by side (medians; targets checked on the worst figure; floor or peer / ours, higher is better):")
    for ours, other, target, ratio_target in COMPARISONS:
        if ours not in irs or (other is not None and other not in irs):
            continue
        line = f"  {ROWS[ours].label:<44} {ir(ours):>6.0f} Ir"
        ok = True
        if target is not None:
            ok = max(irs[ours]) <= target
            line += f" (target <= {target}: {'ok' if ok else 'MISSED'})"
        if other is not None:
            ratio = ir(other) / ir(ours)
            line += f"; {ROWS[other].label}: {ir(other):.0f} Ir, {ratio:.2f}x{ratio_of_walls(other, ours)}"
            if ratio_target is not None:
                ok_ratio = min(irs[other]) / max(irs[ours]) >= ratio_target
                ok = ok and ok_ratio
                line += f" (target >= {ratio_target}x: {'ok' if ok_ratio else 'MISSED'})"
        failed |= not ok
        print(line)

    print(f"\nsvc.pick() over the bare strategy (Ir; target <= {OVERHEAD_TARGET}):")
    for svc_row, bare, (empty_svc, empty_bare) in OVERHEADS:
        if not all(name in irs for name in (svc_row, bare, empty_svc, empty_bare)):
            continue
        shape = ir(empty_svc) - ir(empty_bare)
        overheads = [s - b - shape for s, b in zip(irs[svc_row], irs[bare])]
        ok = max(overheads) <= OVERHEAD_TARGET
        failed |= not ok
        print(
            f"  {ROWS[svc_row].label:<56} {ir(svc_row):>6.0f} - {ir(bare):>6.0f} - ({shape:+.0f} loop)"
            f" = {statistics.median(overheads):>+5.0f} ({'ok' if ok else 'MISSED'})"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
