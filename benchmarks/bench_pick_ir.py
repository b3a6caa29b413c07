"""Instructions per pick (callgrind Ir) over 1000 endpoints, beside peers and wall time.

Run from the repository root (needs ``valgrind`` and the ``bench`` extra:
elastic-transport, cassandra-driver, uhashring)::

    python benchmarks/bench_pick_ir.py [--iterations 20000] [--jobs 2] [--rows sticky,uhashring]

**Method.** Each row is a tight loop of one call shape (``call(endpoints, key)`` over
10 000 distinct keys, ``call(endpoints)``, ``call(key)`` or ``call()``), run in its own
interpreter under ``valgrind --tool=callgrind`` twice: once with N iterations and once
with 2N, after the same set-up and the same 2000 warm-up iterations. The two totals
differ only by N iterations of the loop, so ``(Ir(2N) - Ir(N)) / N`` is the cost of one
iteration, with interpreter start-up, imports, set-up (building a Sticky ring, say) and
exit cancelled out. ``PYTHONHASHSEED=0`` and seeded strategies make both runs take the
same path; callgrind counts instructions, not time, so the figures repeat to within a
few Ir on a busy machine where wall times do not. Every figure includes the loop and the
call itself: the "empty loop" rows (a Python function that returns at once, called the
same way) show that floor per call shape. Large memory copies count one Ir per byte
under valgrind (``rep movsb``), but no pick copies memory.

Beside each Ir figure is the wall time per iteration in this process (best of 7 runs of
200 000 iterations, or fewer for slow rows) and, for the rows with a peer, both ratios
(peer / ours: higher is better).

Targets (design.md section 6): RoundRobin <= 1100 Ir; LeastLoaded <= 3000; Sticky <= 3000
and >= 4x fewer than uhashring's ``get_node``. Exits 1 if a Sticky target is missed.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat

N_ENDPOINTS = 1000
KEYS = [f"user-{i}" for i in range(10_000)]
WARM_UP = 2000
WALL_REPEATS = 7

Runner = Callable[[int], None]


def endpoints() -> object:
    from headless_client.endpoints import Endpoint, EndpointSet

    return EndpointSet(
        (
            Endpoint(
                f"10.0.{i // 250}.{i % 250 + 1}",
                8080,
                hostname=f"web-{i}.web.prod.svc.cluster.local",
                ordinal=i,
            )
            for i in range(N_ENDPOINTS)
        ),
        name="web.prod",
    )


# -- loops: one per call shape, each with its empty twin ------------------------------


def loop_fixed_and_key(call: Callable[[object, object], object], fixed: object, keys: list[object]) -> Runner:
    def run(n: int) -> None:
        rounds, rest = divmod(n, len(keys))
        for _ in repeat(None, rounds):
            for key in keys:
                call(fixed, key)
        for key in keys[:rest]:
            call(fixed, key)

    return run


def loop_fixed(call: Callable[[object], object], fixed: object) -> Runner:
    def run(n: int) -> None:
        for _ in repeat(None, n):
            call(fixed)

    return run


def loop_key(call: Callable[[object], object], keys: list[object]) -> Runner:
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


def nothing(*args: object) -> None:
    return None


def nothing2(endpoints: object, key: object = None) -> None:
    return None


def nothing1(arg: object) -> None:
    return None


def nothing0() -> None:
    return None


# -- rows -----------------------------------------------------------------------------


def row_empty_fixed_key() -> Runner:
    return loop_fixed_and_key(nothing2, endpoints(), list(KEYS))


def row_empty_fixed() -> Runner:
    return loop_fixed(nothing1, endpoints())


def row_empty_key() -> Runner:
    return loop_key(nothing1, list(KEYS))


def row_empty_bare() -> Runner:
    return loop_bare(nothing0)


def row_round_robin() -> Runner:
    from headless_client.strategies import RoundRobin

    return loop_fixed(RoundRobin().pick, endpoints())


def row_random() -> Runner:
    from headless_client.strategies import Random

    return loop_fixed(Random(seed=1).pick, endpoints())


def row_least_loaded() -> Runner:
    from headless_client.strategies import LeastLoaded

    return loop_fixed(LeastLoaded(seed=1).pick, endpoints())


def row_sticky() -> Runner:
    from headless_client.strategies import Sticky

    eps = endpoints()
    sticky = Sticky()
    sticky.prepare(eps)  # type: ignore[arg-type]
    return loop_fixed_and_key(sticky.pick, eps, list(KEYS))  # type: ignore[arg-type]


def row_sticky_int() -> Runner:
    from headless_client.strategies import Sticky

    eps = endpoints()
    sticky = Sticky()
    sticky.prepare(eps)  # type: ignore[arg-type]
    return loop_fixed_and_key(sticky.pick, eps, list(range(10_000)))  # type: ignore[arg-type]


def row_sticky_bounded() -> Runner:
    from headless_client.strategies import Sticky

    eps = endpoints()
    sticky = Sticky(bounded_load=1.25)
    sticky.prepare(eps)  # type: ignore[arg-type]
    return loop_fixed_and_key(sticky.pick, eps, list(KEYS))  # type: ignore[arg-type]


def row_partition_leader() -> Runner:
    from headless_client.strategies import PartitionLeader

    leader = PartitionLeader({p: p % N_ENDPOINTS for p in range(N_ENDPOINTS)})
    return loop_fixed_and_key(leader.pick, endpoints(), list(range(N_ENDPOINTS)))  # type: ignore[arg-type]


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

    ring = HashRing([f"web-{i}.web.prod.svc.cluster.local:8080" for i in range(N_ENDPOINTS)])
    return loop_key(ring.get_node, list(KEYS))


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    setup: Callable[[], Runner]
    wall_iterations: int = 200_000


ROWS: dict[str, Row] = {
    "empty_fixed_key": Row("empty loop: f(endpoints, key)", row_empty_fixed_key),
    "empty_fixed": Row("empty loop: f(endpoints)", row_empty_fixed),
    "empty_key": Row("empty loop: f(key)", row_empty_key),
    "empty_bare": Row("empty loop: f()", row_empty_bare),
    "round_robin": Row("RoundRobin.pick", row_round_robin),
    "random": Row("Random.pick", row_random),
    "least_loaded": Row("LeastLoaded.pick", row_least_loaded),
    "sticky": Row("Sticky.pick (10k distinct str keys)", row_sticky),
    "sticky_int": Row("Sticky.pick (10k distinct int keys)", row_sticky_int),
    "sticky_bounded": Row("Sticky(bounded_load=1.25).pick (no load)", row_sticky_bounded),
    "partition_leader": Row("PartitionLeader.pick (1000 partitions)", row_partition_leader),
    "primary_replica": Row("PrimaryReplica.pick (read)", row_primary_replica),
    "elastic": Row("elastic-transport RoundRobinSelector.select", row_elastic),
    "cassandra": Row("cassandra-driver RoundRobinPolicy plan head", row_cassandra, 20_000),
    "uhashring": Row("uhashring HashRing.get_node (same keys)", row_uhashring, 30_000),
}

# (ours, peer, Ir target for ours or None, minimum Ir ratio peer/ours or None)
COMPARISONS = [
    ("round_robin", "elastic", 1100, None),
    ("round_robin", "cassandra", None, None),
    ("least_loaded", None, 3000, None),
    ("sticky", "uhashring", 3000, 4.0),
]
STICKY_CHECKS = {"sticky"}


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000, help="N (the second run does 2N)")
    parser.add_argument("--jobs", type=int, default=2, help="callgrind runs at once")
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated row names")
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

    print(f"Python {platform.python_version()} on {platform.machine()}, {N_ENDPOINTS} endpoints")
    print(f"Ir per iteration = (Ir(2N) - Ir(N)) / N with N = {args.iterations}; wall: best of {WALL_REPEATS}\n")
    irs: dict[str, float] = {}
    walls: dict[str, float] = {}
    # Wall times first: callgrind runs alongside would disturb them.
    for name in names:
        walls[name] = wall_ns(name)
    with tempfile.TemporaryDirectory() as out_dir, ThreadPoolExecutor(args.jobs) as pool:
        runs = {
            (name, n): pool.submit(callgrind_total, name, n, out_dir)
            for name in names
            for n in (args.iterations, 2 * args.iterations)
        }
        for name in names:
            totals = runs[name, args.iterations].result(), runs[name, 2 * args.iterations].result()
            irs[name] = (totals[1] - totals[0]) / args.iterations
            print(f"  {ROWS[name].label:<48} {irs[name]:>9.0f} Ir {walls[name]:>9.0f} ns", flush=True)

    print("\nSide by side (peer / ours; higher is better):")
    failed = False
    for ours, peer, target, ratio_target in COMPARISONS:
        if ours not in irs or (peer is not None and peer not in irs):
            continue
        line = f"  {ROWS[ours].label:<40} {irs[ours]:>7.0f} Ir"
        ok = True
        if target is not None:
            ok = irs[ours] <= target
            line += f" (target <= {target}: {'ok' if ok else 'MISSED'})"
        if peer is not None:
            ratio = irs[peer] / irs[ours]
            line += f"; vs {ROWS[peer].label}: {ratio:.2f}x Ir, {walls[peer] / walls[ours]:.2f}x wall"
            if ratio_target is not None:
                ok_ratio = ratio >= ratio_target
                ok = ok and ok_ratio
                line += f" (target >= {ratio_target}x: {'ok' if ok_ratio else 'MISSED'})"
        if ours in STICKY_CHECKS:
            failed |= not ok
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
