"""Resolve a 1000-pod service: headless-client next to raw dnspython, same server, same query.

Starts its own server on loopback: BIND9 (the test ground, needs `named`) or, with
``--server coredns``, real CoreDNS (``scripts/install/coredns.sh``) reading the fake
Kubernetes API. The two differ where it matters here: BIND compresses every answer, while
CoreDNS sends an answer that fits uncompressed (miekg/dns), so the library's A/AAAA wire
fast path (which needs compressed owners) is only exercised against BIND. Prints the best
of N runs for each, and the ratios that design.md section 6 sets targets for:

    A/AAAA (int port):   library / one raw dnspython query   target <= 1.25
    SRV (named port):    library / one raw SRV query          target <= 3

    python benchmarks/bench_resolve.py [--runs 15] [--server bind|coredns]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.query

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from headless_client import Resolver
from headless_client.testing.kube_api import FakeKubeAPI
from headless_client.testing.model import ClusterModel
from tests.integration.coredns import (
    COREDNS_MISSING,
    CoreDNSServer,
    coredns_version,
    corefile_default,
    find_coredns,
)
from tests.integration.dnsground import GROUND, BindServer, find_named

SVC = "big.prod.svc.cluster.local."


def best(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@contextlib.contextmanager
def serving(kind: str, tmp: Path) -> Iterator[tuple[str, int]]:
    """``(host, port)`` of a server holding ``big.prod`` (1000 pods) and ``web.prod`` (3)."""
    if kind == "bind":
        named = find_named()
        if named is None:
            raise SystemExit("named not found: install bind9 (scripts/test does)")
        with BindServer(tmp, named=named) as server:
            yield server.host, server.port
        return
    binary = find_coredns()
    if binary is None:
        raise SystemExit(COREDNS_MISSING.format(version=coredns_version()))
    model = ClusterModel()
    for name, replicas in (("big", len(GROUND["big"].pods)), ("web", len(GROUND["web"].pods))):
        model.add_service(name, "prod", ports=[("http", 8080)])
        model.add_statefulset(name, "prod", replicas)
    with FakeKubeAPI(model) as api:
        server = CoreDNSServer(binary, tmp, lambda p: corefile_default(api.url, p))
        server.start()
        try:
            yield server.host, server.port
        finally:
            server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--server", choices=("bind", "coredns"), default="bind")
    args = parser.parse_args()
    print(f"server: {args.server}")
    with tempfile.TemporaryDirectory() as tmp, serving(args.server, Path(tmp)) as (host, port):
        resolver = Resolver([f"{host}:{port}"], timeout=10)

        def raw(qname: str, rdtype: str) -> Callable[[], object]:
            return lambda: dns.query.udp_with_fallback(
                dns.message.make_query(qname, rdtype), host, port=port, timeout=10
            )

        rows = []
        small = "web.prod.svc.cluster.local."
        rows.append(("A/AAAA, 3 pods (UDP)", best(raw(small, "A"), args.runs),
                     best(lambda: resolver.resolve("web.prod", 8080), args.runs), 1.25))
        raw_a = best(raw(SVC, "A"), args.runs)
        lib_a = best(lambda: resolver.resolve("big.prod", 8080), args.runs)
        rows.append(("A/AAAA, 1000 pods", raw_a, lib_a, 1.25))
        raw_srv = best(raw("_http._tcp." + SVC, "SRV"), args.runs)
        lib_srv = best(lambda: resolver.resolve("big.prod", "http"), args.runs)
        rows.append(("SRV + all addresses, 1000 pods", raw_srv, lib_srv, 3.0))

        try:
            from headless_client import AsyncResolver
        except ImportError:
            AsyncResolver = None
        if AsyncResolver is not None:
            aresolver = AsyncResolver([f"{host}:{port}"], timeout=10)

            def run_async(port_: int | str) -> Callable[[], object]:
                return lambda: asyncio.run(aresolver.resolve("big.prod", port_))

            def raw_async(qname: str, rdtype: str) -> Callable[[], object]:
                async def go() -> object:
                    return await dns.asyncquery.udp_with_fallback(
                        dns.message.make_query(qname, rdtype), host, port=port, timeout=10
                    )

                return lambda: asyncio.run(go())

            rows.append(("async A/AAAA, 1000 pods", best(raw_async(SVC, "A"), args.runs),
                         best(run_async(8080), args.runs), 1.25))
            rows.append(("async SRV + all addresses", best(raw_async("_http._tcp." + SVC, "SRV"), args.runs),
                         best(run_async("http"), args.runs), 3.0))

    print(f"{'case':34} {'raw dnspython':>14} {'headless-client':>16} {'ratio':>7} {'target':>7}")
    ok = True
    for name, raw_t, lib_t, target in rows:
        ratio = lib_t / raw_t
        ok &= ratio <= target
        print(f"{name:34} {raw_t * 1e3:11.2f} ms {lib_t * 1e3:13.2f} ms {ratio:7.2f} {'<= ' + str(target):>7}")
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
