"""How late a HeadlessService (library defaults) sees pod changes, under real Corefiles.

Real CoreDNS (``scripts/install/coredns.sh``) reads the fake Kubernetes API; a
:class:`HeadlessService` with the library's defaults (``min_refresh=1``,
``max_refresh=30``, ``empty_grace=5``, SRV port ``http``) watches a 3-pod StatefulSet.
Each run changes the cluster at a random moment of the refresh cycle and times how long
until the service's view shows it:

- ``scale-up``: a 4th pod (ready) appears;
- ``scale-down``: it goes away again;
- ``new-ip``: pod 1 gets a new address (rescheduled).

Corefile variants (see ``tests/integration/coredns.py``):

- ``default``: the kubernetes plugin's defaults (``ttl 5``, no cache);
- ``kubeadm``: kubeadm's ConfigMap (``ttl 30``; ``cache 30`` with success and denial
  disabled for the cluster zone);
- ``nodelocal``: a NodeLocal-DNSCache-like CoreDNS (``cache`` success 30 s, denial 5 s,
  ``forward ... { force_tcp }``) in front of the kubeadm one; the library asks the front.

CoreDNS itself applies a change within milliseconds of the API event, so the delays are
the TTLs, the caches and the library's refresh schedule. Prints min, median, mean ± stdev
and max per variant and change.

    python benchmarks/bench_coredns_delay.py [--runs 5] [--variants default,kubeadm,nodelocal]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.views import Seen
from headless_client import HeadlessService, Resolver
from headless_client.testing.kube_api import FakeKubeAPI
from headless_client.testing.model import ClusterModel
from tests.integration.coredns import (
    COREDNS_MISSING,
    CoreDNSServer,
    coredns_version,
    corefile_default,
    corefile_kubeadm,
    corefile_nodelocal,
    find_coredns,
)

VARIANTS = ("default", "kubeadm", "nodelocal")
EVENTS = ("scale-up", "scale-down", "new-ip")
PERIOD = {"default": 5.0, "kubeadm": 30.0, "nodelocal": 30.0}


def measure(variant: str, binary: str, runs: int, tmp: Path, rng: random.Random) -> dict[str, list[float]]:
    model = ClusterModel()
    model.add_service("web", "prod", ports=[("http", 8080)])
    model.add_statefulset("web", "prod", 3)
    results: dict[str, list[float]] = {e: [] for e in EVENTS}
    with FakeKubeAPI(model) as api:
        maker = corefile_default if variant == "default" else corefile_kubeadm
        cluster = CoreDNSServer(binary, tmp / variant / "cluster", lambda port: maker(api.url, port))
        front: CoreDNSServer | None = None
        try:
            cluster.start()
            asked = cluster
            if variant == "nodelocal":
                front = CoreDNSServer(binary, tmp / variant / "front",
                                      lambda port: corefile_nodelocal(cluster.nameserver, port))
                front.start(probe="web.prod.svc.cluster.local.")
                asked = front
            with HeadlessService("web.prod", port="http", resolver=Resolver([asked.nameserver])) as svc:
                seen = Seen(svc)
                if seen.wait(lambda eps: len(eps) == 3, 60) is None:
                    raise SystemExit(f"{variant}: the service never saw the 3 pods")
                for run in range(runs):
                    for event in EVENTS:
                        # A random moment of the refresh cycle (this is what is measured).
                        time.sleep(rng.uniform(0, PERIOD[variant]))
                        if event == "scale-up":
                            model.scale("web", "prod", 4)
                            done = lambda eps: len(eps) == 4  # noqa: E731
                        elif event == "scale-down":
                            model.scale("web", "prod", 3)
                            done = lambda eps: len(eps) == 3 and 3 not in eps.ordinals  # noqa: E731
                        else:
                            new = model.free_address()
                            model.update_pod("web-1", "prod", addresses=(new,))
                            done = lambda eps, new=new: any(  # noqa: E731
                                ep.ordinal == 1 and ep.address == new for ep in eps)
                        delay = seen.wait(done, 120)
                        if delay is None:
                            raise SystemExit(f"{variant}/{event}: not seen within 120 s")
                        results[event].append(delay)
                        print(f"  {variant:9} run {run + 1}/{runs} {event:10} {delay:6.2f} s", flush=True)
        finally:
            if front is not None:
                front.close()
            cluster.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    binary = find_coredns()
    if binary is None:
        print(COREDNS_MISSING.format(version=coredns_version()), file=sys.stderr)
        return 2
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown or args.runs < 1:
        parser.error(f"variants are {', '.join(VARIANTS)}; runs >= 1")
    rng = random.Random(args.seed)
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in variants:
            results = measure(variant, binary, args.runs, Path(tmp), rng)
            for event, delays in results.items():
                table.append((variant, event, delays))
    print(f"\n{'Corefile':10} {'change':11} {'n':>2} {'min':>6} {'median':>7} {'mean ± stdev':>14} {'max':>6}  (s)")
    for variant, event, delays in table:
        spread = statistics.stdev(delays) if len(delays) > 1 else 0.0
        print(f"{variant:10} {event:11} {len(delays):2} {min(delays):6.1f} {statistics.median(delays):7.1f} "
              f"{statistics.mean(delays):7.1f} ± {spread:4.1f} {max(delays):6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
