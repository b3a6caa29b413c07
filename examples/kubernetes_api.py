#!/usr/bin/env python3
"""Discovery from the Kubernetes API: EndpointSlices, zones and terminating pods.

By default this runs against a fake Kubernetes API on this machine (nothing to install);
in a pod whose service account may watch EndpointSlices (see
examples/kubernetes/rbac-endpointslices.yaml), point it at a real service:

    python examples/kubernetes_api.py                       # fake API, 3 pods in 2 zones
    python examples/kubernetes_api.py --real --service web.prod --port http
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import headless_client as hc
from headless_client.contrib.kubernetes import EndpointSliceResolver, load_kubeconfig
from headless_client.testing.kube_api import FakeKubeAPI
from headless_client.testing.model import ClusterModel


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", action="store_true",
                   help="use the cluster's API (in-cluster config or kubeconfig)")
    p.add_argument("--service", default="web.demo", help="service name (default: web.demo)")
    p.add_argument("--port", default="http", help="named port or number (default: http)")
    return p.parse_args()


def show(svc: hc.HeadlessService) -> None:
    for ep in svc.endpoints:
        state = " terminating" if ep.terminating else ""
        print(f"  {ep.hostname}  {ep.address}:{ep.port}  zone={ep.zone} node={ep.node} pod={ep.pod}{state}")


def wait(svc: hc.HeadlessService, predicate: object, timeout: float = 10.0) -> float:
    """Seconds until the view satisfies *predicate*."""
    changed = threading.Event()
    unsubscribe = svc.subscribe(lambda old, new: changed.set())
    start = time.monotonic()
    try:
        while not predicate(svc.endpoints):  # type: ignore[operator]
            if time.monotonic() - start > timeout:
                raise SystemExit(f"not seen within {timeout} s")
            changed.wait(0.5)
            changed.clear()
    finally:
        unsubscribe()
    return time.monotonic() - start


def real(args: argparse.Namespace) -> None:
    port = int(args.port) if args.port.isdigit() else args.port
    with EndpointSliceResolver() as resolver:
        zone = resolver.own_zone()
        strategy = hc.PreferZone(zone)
        with hc.HeadlessService(args.service, port=port, resolver=resolver, strategy=strategy) as svc:
            print(f"{svc.endpoints.name}: {len(svc.endpoints)} pods; this pod's zone: {zone}")
            show(svc)
            print(f"10 picks: {dict(Counter(ep.zone for ep in (svc.pick() for _ in range(10))))}")


def kubeconfig(server: str, token: str, namespace: str) -> dict[str, object]:
    """A kubeconfig (JSON is YAML too) whose context "ops" logs in to *server* with *token*."""
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "dev",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "ops-user", "user": {"token": token}}],
        "contexts": [{"name": "ops", "context": {"cluster": "fake", "user": "ops-user",
                                                 "namespace": namespace}}],
    }


def fake(args: argparse.Namespace) -> None:
    name, namespace = args.service.split(".", 1)
    model = ClusterModel()
    model.add_node("node-a", zone="zone-a")
    model.add_node("node-b", zone="zone-b")
    model.add_service(name, namespace, ports=[("http", 8080)])
    model.add_statefulset(name, namespace, 3, nodes=["node-a", "node-b"])
    with FakeKubeAPI(model, token="demo-token") as api, contextlib.ExitStack() as stack:
        # What kubectl's config would hold for this API: a context "ops" with a token.
        staging = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "staging.yaml"
        staging.write_text(json.dumps(kubeconfig(api.url, "demo-token", namespace)), encoding="utf-8")
        # --8<-- [start:kubeconfig]
        resolver = stack.enter_context(EndpointSliceResolver(load_kubeconfig(staging, context="ops")))
        # --8<-- [end:kubeconfig]
        print(f"kubeconfig context ops: {resolver.config.server}, namespace {resolver.namespace}")
        zone = resolver.own_zone(environ={"NODE_NAME": "node-b"})  # as the downward API would say
        svc = stack.enter_context(
            hc.HeadlessService(args.service, port=args.port, resolver=resolver, strategy=hc.PreferZone(zone))
        )
        print(f"{svc.endpoints.name}: {len(svc.endpoints)} pods; this pod's zone: {zone}")
        show(svc)
        print(f"picks stay in {zone}: {sorted({svc.pick().pod or '' for _ in range(6)})}")

        model.scale(name, namespace, 4)
        seconds = wait(svc, lambda eps: len(eps) == 4)
        print(f"scaled to 4: seen after {seconds * 1000:.0f} ms (DNS: up to its TTL, 5 to 30 s)")

        model.terminate_pod(f"{name}-1", namespace)
        wait(svc, lambda eps: any(ep.terminating for ep in eps))
        picked = Counter(svc.pick().pod for _ in range(30))
        print(f"{name}-1 is terminating: still listed, new picks go to {zone}'s other pod: {sorted(picked)}")
        show(svc)


def main() -> None:
    args = parse_args()
    real(args) if args.real else fake(args)


if __name__ == "__main__":
    main()
