"""How late a HeadlessService sees pod changes through the EndpointSlice source, next to DNS.

The fake Kubernetes API (the one real CoreDNS reads in ``bench_coredns_delay.py``) serves a
3-pod StatefulSet; a :class:`HeadlessService` on library defaults (``min_refresh=1``,
``max_refresh=30``, ``empty_grace=5``, SRV-style port ``http``) uses an
:class:`EndpointSliceResolver`. Each run changes the cluster at a random moment and times
how long until the service's view shows it:

- ``scale-up``: a 4th pod (ready) appears;
- ``scale-down``: it goes away again;
- ``new-ip``: pod 1 gets a new address (rescheduled);
- ``terminating``: pod 2 starts terminating (DNS never shows this: it only drops the pod
  once it is no longer ready).

The DNS rows are printed from ``docs/tuning.md`` (measured by ``bench_coredns_delay.py``
against real CoreDNS: default Corefile ``ttl 5``, kubeadm's ``ttl 30``), so the table
compares like with like: the same model, the same changes, the same service defaults.

    python benchmarks/bench_api_delay.py [--runs 10]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.views import Seen
from headless_client import EndpointSet, HeadlessService
from headless_client.contrib.kubernetes import EndpointSliceResolver, KubernetesConfig
from headless_client.testing.kube_api import FakeKubeAPI
from headless_client.testing.model import ClusterModel

EVENTS = ("scale-up", "scale-down", "new-ip", "terminating")
#: docs/tuning.md, measured with real CoreDNS v1.15.0 (6 runs each): min, median, mean, stdev, max.
DNS_ROWS = {
    ("DNS, CoreDNS default (ttl 5)", "scale-up"): (1.0, 2.9, 3.0, 1.9, 5.1),
    ("DNS, CoreDNS default (ttl 5)", "scale-down"): (0.5, 1.4, 2.1, 1.9, 4.8),
    ("DNS, CoreDNS default (ttl 5)", "new-ip"): (0.1, 2.7, 2.5, 1.5, 4.6),
    ("DNS, kubeadm (ttl 30)", "scale-up"): (1.5, 18.0, 16.5, 8.9, 25.9),
    ("DNS, kubeadm (ttl 30)", "scale-down"): (3.6, 18.3, 17.2, 7.9, 27.1),
    ("DNS, kubeadm (ttl 30)", "new-ip"): (12.6, 26.1, 24.0, 7.4, 31.6),
}


def measure(runs: int, rng: random.Random) -> dict[str, list[float]]:
    model = ClusterModel()
    model.add_service("web", "prod", ports=[("http", 8080)])
    model.add_statefulset("web", "prod", 3)
    results: dict[str, list[float]] = {e: [] for e in EVENTS}
    with FakeKubeAPI(model) as api, \
            EndpointSliceResolver(KubernetesConfig(server=api.url, namespace="prod")) as r, \
            HeadlessService("web.prod", port="http", resolver=r) as svc:
        seen = Seen(svc)
        if seen.wait(lambda eps: len(eps) == 3, 30) is None:
            raise SystemExit("the service never saw the 3 pods")
        for run in range(runs):
            for event in EVENTS:
                time.sleep(rng.uniform(0, 1.0))  # a random moment of the refresh cycle
                done: Callable[[EndpointSet], bool]
                if event == "scale-up":
                    model.scale("web", "prod", 4)
                    done = lambda eps: len(eps) == 4  # noqa: E731
                elif event == "scale-down":
                    model.scale("web", "prod", 3)
                    done = lambda eps: len(eps) == 3 and 3 not in eps.ordinals  # noqa: E731
                elif event == "new-ip":
                    new = model.free_address()
                    model.update_pod("web-1", "prod", addresses=(new,))
                    done = lambda eps, new=new: any(  # noqa: E731
                        ep.ordinal == 1 and ep.address == new for ep in eps)
                else:
                    model.terminate_pod("web-2", "prod")
                    done = lambda eps: any(ep.ordinal == 2 and ep.terminating for ep in eps)  # noqa: E731
                delay = seen.wait(done, 60)
                if delay is None:
                    raise SystemExit(f"{event}: not seen within 60 s")
                results[event].append(delay)
                if event == "terminating":  # back to a ready web-2 for the next run
                    model.update_pod("web-2", "prod", terminating=False)
                    seen.wait(lambda eps: not any(ep.terminating for ep in eps), 60)
            print(f"  run {run + 1}/{runs}: " + "  ".join(f"{e} {results[e][-1] * 1000:.1f} ms" for e in EVENTS),
                  flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("runs >= 2 (the spread needs two)")
    results = measure(args.runs, random.Random(args.seed))
    print(f"\n{'source':32} {'change':11} {'n':>3} {'min':>8} {'median':>8} {'mean ± stdev':>17} {'max':>8}")
    for event, delays in results.items():
        ms = [d * 1000 for d in delays]
        print(f"{'API (EndpointSlice watch)':32} {event:11} {len(ms):3} {min(ms):6.1f}ms {statistics.median(ms):6.1f}ms "
              f"{statistics.mean(ms):6.1f} ± {statistics.stdev(ms):5.1f}ms {max(ms):6.1f}ms")
    for (source, event), (lo, med, mean, stdev, hi) in DNS_ROWS.items():
        print(f"{source:32} {event:11} {6:3} {lo:7.1f}s {med:7.1f}s {mean:9.1f} ± {stdev:4.1f}s {hi:7.1f}s")
    print(f"{'DNS (any Corefile)':32} {'terminating':11}   -   never: DNS has no terminating state")
    return 0


if __name__ == "__main__":
    sys.exit(main())
