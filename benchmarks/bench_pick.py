"""Pick cost over 1000 endpoints, side by side with installed peers (design.md section 6).

Run: ``python benchmarks/bench_pick.py`` (needs the ``bench`` extra: elastic-transport,
cassandra-driver, uhashring). No network: the peers' node/host objects are built in
memory. Each row is the best of several repeats of a tight loop calling the method
through ``functools.partial`` (a C-level call, so no Python frame is added), and every row
carries the same loop overhead (printed as "empty loop"). The cassandra row needs a
lambda for ``next(iter(plan))``; that adds ~40 ns to a row of several microseconds.

Targets: RoundRobin >= 1.5x faster than elastic-transport's RoundRobinSelector and >= 5x
faster than the head of cassandra-driver's RoundRobinPolicy query plan; Sticky >= 4x
faster than uhashring's HashRing.get_node.
"""

from __future__ import annotations

import gc
import platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from functools import partial

from headless_client.endpoints import Endpoint, EndpointSet
from headless_client.strategies import (
    LeastLoaded,
    PartitionLeader,
    PrimaryReplica,
    Random,
    RoundRobin,
    Sticky,
)

N = 1000
REPEATS = 7
KEYS = [f"user-{i}" for i in range(10_000)]


def endpoints(n: int) -> EndpointSet:
    return EndpointSet(
        (
            Endpoint(
                f"10.0.{i // 250}.{i % 250 + 1}",
                8080,
                hostname=f"web-{i}.web.prod.svc.cluster.local",
                ordinal=i,
            )
            for i in range(n)
        ),
        name="web.prod",
    )


def best_ns(run: Callable[[int], object], iterations: int) -> float:
    """Best ns per iteration of ``run(iterations)`` over REPEATS runs."""
    run(min(iterations, 1000))  # warm caches and lazily built state
    best = float("inf")
    for _ in range(REPEATS):
        gc.disable()
        try:
            start = time.perf_counter_ns()
            run(iterations)
            elapsed = time.perf_counter_ns() - start
        finally:
            gc.enable()
        best = min(best, elapsed / iterations)
    return best


def loop_over(call: Callable[[object], object], args: Sequence[object]) -> Callable[[int], None]:
    """A runner calling ``call(arg)`` *iterations* times, cycling through *args*."""
    count = len(args)

    def run(iterations: int) -> None:
        done = 0
        while done < iterations:
            chunk = args if iterations - done >= count else args[: iterations - done]
            for arg in chunk:
                call(arg)
            done += len(chunk)

    return run


def repeat_call(call: Callable[[], object]) -> Callable[[int], None]:
    def run(iterations: int) -> None:
        for _ in range(iterations):
            call()

    return run


def main() -> int:
    try:
        from cassandra.policies import RoundRobinPolicy, SimpleConvictionPolicy
        from cassandra.pool import Host
        from elastic_transport import NodeConfig, Urllib3HttpNode
        from elastic_transport._node_pool import RoundRobinSelector
        from uhashring import HashRing
    except ImportError as exc:
        print(f"missing peer for the comparison ({exc}); install the 'bench' extra")
        return 2

    eps = endpoints(N)
    rows: list[tuple[str, float]] = []

    def row(name: str, ns: float) -> float:
        rows.append((name, ns))
        print(f"  {name:<52} {ns:>10.0f} ns/op", flush=True)
        return ns

    print(f"Python {platform.python_version()} on {platform.machine()}, {N} endpoints")
    print(f"best of {REPEATS} repeats\n")

    row("empty loop (overhead in every row)", best_ns(repeat_call(partial(int)), 300_000))

    # --- round-robin ---------------------------------------------------------------
    rr = RoundRobin()
    rr_ns = row("headless_client RoundRobin.pick", best_ns(repeat_call(partial(rr.pick, eps)), 300_000))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nodes = [Urllib3HttpNode(NodeConfig("http", ep.address, ep.port)) for ep in eps]
    selector = RoundRobinSelector([node.config for node in nodes])
    es_ns = row(
        "elastic-transport RoundRobinSelector.select",
        best_ns(repeat_call(partial(selector.select, nodes)), 300_000),
    )

    hosts = [Host(ep.address, SimpleConvictionPolicy) for ep in eps]
    policy = RoundRobinPolicy()
    policy.populate(None, hosts)
    cass_ns = row(
        "cassandra-driver RoundRobinPolicy plan head",
        best_ns(repeat_call(lambda: next(iter(policy.make_query_plan()))), 20_000),
    )

    # --- sticky ----------------------------------------------------------------------
    sticky = Sticky()
    start = time.perf_counter()
    sticky.prepare(eps)
    sticky_build = time.perf_counter() - start
    sticky_ns = row(
        "headless_client Sticky.pick (10k distinct keys)",
        best_ns(loop_over(partial(sticky.pick, eps), KEYS), 200_000),
    )
    bounded = Sticky(bounded_load=1.25)
    bounded.prepare(eps)
    row(
        "headless_client Sticky(bounded_load=1.25).pick",
        best_ns(loop_over(partial(bounded.pick, eps), KEYS), 200_000),
    )

    start = time.perf_counter()
    ring = HashRing([ep.identity for ep in eps])
    uhash_build = time.perf_counter() - start
    uhash_ns = row(
        "uhashring HashRing.get_node (same keys)",
        best_ns(loop_over(ring.get_node, KEYS), 30_000),
    )

    # --- partition leader and the rest -------------------------------------------------
    leader = PartitionLeader({p: p % N for p in range(N)})
    partitions = list(range(N))
    row(
        "headless_client PartitionLeader.pick (1000 partitions)",
        best_ns(loop_over(partial(leader.pick, eps), partitions), 300_000),
    )
    rnd = Random(seed=1)
    row("headless_client Random.pick", best_ns(repeat_call(partial(rnd.pick, eps)), 300_000))
    least = LeastLoaded(seed=1)
    row("headless_client LeastLoaded.pick", best_ns(repeat_call(partial(least.pick, eps)), 200_000))
    peak = LeastLoaded(ewma=True, seed=1)
    for ep in eps:
        peak.finished(ep, latency=0.001 + ep.ordinal * 1e-6 if ep.ordinal else 0.001)
    row(
        "headless_client LeastLoaded(ewma=True).pick",
        best_ns(repeat_call(partial(peak.pick, eps)), 200_000),
    )
    primary = PrimaryReplica()
    row(
        "headless_client PrimaryReplica.pick (read)",
        best_ns(repeat_call(partial(primary.pick, eps)), 300_000),
    )

    print("\nRing build for 1000 endpoints (once per snapshot):")
    print(f"  headless_client Sticky (256 vnodes)      {sticky_build * 1000:8.1f} ms")
    print(f"  uhashring HashRing (160 vnodes)          {uhash_build * 1000:8.1f} ms")

    checks = [
        ("RoundRobin vs elastic-transport selector", es_ns / rr_ns, 1.5),
        ("RoundRobin vs cassandra-driver plan head", cass_ns / rr_ns, 5.0),
        ("Sticky vs uhashring get_node", uhash_ns / sticky_ns, 4.0),
    ]
    print("\nRatios (peer ns / ours ns; higher is better):")
    failed = False
    for name, ratio, target in checks:
        ok = ratio >= target
        failed |= not ok
        print(f"  {name:<44} {ratio:6.1f}x  (target >= {target}x) {'ok' if ok else 'MISSED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
