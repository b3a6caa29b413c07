"""``headless-client demo``: the library at work on a fake cluster, on this machine.

Needs nothing but the package: :class:`~headless_client.testing.FakeClusterDNS` serves a
``cluster.local`` zone shaped like CoreDNS on loopback, and each pod of a StatefulSet is a
TCP server on its own ``127.42.0.x`` address that answers with its name. The story:
resolve and list the pods, round-robin, sticky keys, a live scale-up and scale-down seen
by the refresher, a crashed pod routed around, and partition-leader routing through a
leader change. Every wait is on an event with a deadline; it ends by itself in a few
seconds.
"""

from __future__ import annotations

import queue
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TextIO

from .endpoints import Endpoint, EndpointSet
from .errors import HeadlessClientError, NotLeader
from .health import HealthPolicy
from .resolver import Resolver
from .service import HeadlessService
from .strategies import PartitionLeader, RoundRobin, Sticky, Strategy
from .testing import FakeClusterDNS, FakePod

__all__ = ["main"]

NAMESPACE = "demo"
STATEFULSET = "web"
ADDRESS_BASE = "127.42.0.1"
WAIT = 5.0  # the most any step waits for the refresher, in seconds


class DemoError(Exception):
    """A step of the story did not happen in time."""


def _short(ep: Endpoint) -> str:
    return ep.hostname.split(".", 1)[0] if ep.hostname else str(ep)


def _read_line(sock: socket.socket, timeout: float = 2.0) -> str:
    sock.settimeout(timeout)
    data = bytearray()
    while not data.endswith(b"\n") and len(data) < 4096:  # bounded: one short line
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").strip()


class _Story:
    def __init__(self, out: TextIO, fast: bool) -> None:
        self.out = out
        self.min_refresh = 0.05 if fast else 0.2
        self.max_refresh = 0.2 if fast else 1.0
        self.started = time.monotonic()

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def section(self, number: int, title: str) -> None:
        self.say()
        self.say(f"{number}. {title}")

    def service(self, resolver: Resolver, strategy: Strategy, **kwargs: object) -> HeadlessService:
        return HeadlessService(
            f"{STATEFULSET}.{NAMESPACE}",
            port="http",
            resolver=resolver,
            strategy=strategy,
            min_refresh=self.min_refresh,
            max_refresh=self.max_refresh,
            empty_grace=0.0,
            **kwargs,  # type: ignore[arg-type]
        )


@contextmanager
def _changes(svc: HeadlessService) -> Iterator[Callable[[Callable[[EndpointSet], bool], str], float]]:
    """``wait(predicate, what)``: block until a published view satisfies *predicate*;
    returns the seconds it took. Subscribed before the change is made, so none is missed."""
    events: queue.Queue[EndpointSet] = queue.Queue()
    unsubscribe = svc.subscribe(lambda old, new: events.put(new))
    start = time.monotonic()

    def wait(predicate: Callable[[EndpointSet], bool], what: str) -> float:
        deadline = start + WAIT
        if predicate(svc.endpoints):
            return time.monotonic() - start
        while True:  # bounded by the deadline
            left = deadline - time.monotonic()
            if left <= 0:
                raise DemoError(f"the refresher did not see {what} within {WAIT:g}s")
            try:
                view = events.get(timeout=left)
            except queue.Empty:
                continue
            if predicate(view):
                return time.monotonic() - start

    try:
        yield wait
    finally:
        unsubscribe()


def _ask(svc: HeadlessService, **how: object) -> str:
    """Connect to a pod (picked by *how*) and return the name it greets with."""
    with svc.connection(timeout=1.0, **how) as sock:  # type: ignore[arg-type]
        return _read_line(sock)


def _changed(old: EndpointSet, new: EndpointSet) -> str:
    """``+ web-3, + web-4`` / ``- web-4``: pods added and removed, by identity (the SRV
    weights of every pod change with the pod count, so endpoints are compared by name)."""
    before = {ep.identity: ep for ep in old}
    after = {ep.identity: ep for ep in new}
    added = [f"+ {_short(ep)}" for i, ep in after.items() if i not in before]
    removed = [f"- {_short(ep)}" for i, ep in before.items() if i not in after]
    return ", ".join(added + removed) or "no change"


def _table(story: _Story, endpoints: EndpointSet) -> None:
    story.say(f"   {'ORDINAL':<8} {'POD':<7} {'ADDRESS':<14} PORT")
    for ep in endpoints:
        story.say(f"   {ep.ordinal!s:<8} {_short(ep):<7} {ep.address:<14} {ep.port}")


def _run(story: _Story) -> None:
    with ExitStack() as stack:
        cluster = stack.enter_context(FakeClusterDNS(address_base=ADDRESS_BASE, ttl=1))
        cluster.add_statefulset(STATEFULSET, NAMESPACE, 3, serve="tcp")
        resolver = cluster.resolver(namespace=NAMESPACE)
        story.say("headless-client demo: a fake Kubernetes cluster on this machine")
        story.say(f"   DNS {cluster.nameserver} serves cluster.local, answering like CoreDNS")
        story.say(f"   StatefulSet {STATEFULSET} (3 replicas) behind the headless Service {STATEFULSET} "
                  f"in namespace {NAMESPACE}, named port http;")
        story.say("   each pod is a TCP server on its own loopback address that answers with its name")

        # 1. resolve -------------------------------------------------------------------
        story.section(1, f"Resolve {STATEFULSET}.{NAMESPACE}, port \"http\" "
                         f"(SRV _http._tcp.{STATEFULSET}.{NAMESPACE}.svc.cluster.local)")
        t0 = time.monotonic()
        found = resolver.resolve(f"{STATEFULSET}.{NAMESPACE}", port="http")
        took = (time.monotonic() - t0) * 1000
        _table(story, found)
        story.say(f"   {len(found)} pods with their StatefulSet ordinals, resolved in {took:.1f} ms")

        health = HealthPolicy(base_ejection=5.0)  # ejected for the rest of the demo
        rr = stack.enter_context(story.service(resolver, RoundRobin(), health=health))
        sticky = stack.enter_context(story.service(resolver, Sticky()))

        # 2. round robin -------------------------------------------------------------------
        story.section(2, "Round robin: 9 connections, each pod answers with its name")
        story.say("   " + " ".join(_ask(rr) for _ in range(9)))

        # 3. sticky ---------------------------------------------------------------------------
        story.section(3, "Sticky: a key always goes to the same pod (consistent hashing)")
        shown = [f"user-{i}" for i in range(1, 7)]
        for key in shown:
            answers = {_ask(sticky, key=key) for _ in range(3)}
            where = ", ".join(sorted(answers))
            story.say(f"   {key} -> {where}" + ("   (3 of 3 connections)" if len(answers) == 1 else ""))
        keys = [f"user-{i}" for i in range(1, 101)]
        before = {k: _short(sticky.pick(k)) for k in keys}

        # 4. scale ----------------------------------------------------------------------------
        story.section(4, "Scale live, while the services run")
        story.say("   scale up 3 -> 5 (kubectl scale statefulset web --replicas=5)")
        old_view = rr.endpoints
        with _changes(rr) as wait_rr, _changes(sticky) as wait_sticky:
            cluster.scale(STATEFULSET, NAMESPACE, 5)
            took_s = wait_rr(lambda view: len(view) == 5, "the scale-up")
            wait_sticky(lambda view: len(view) == 5, "the scale-up")
        story.say(f"   the refresher saw it after {took_s:.2f} s: {_changed(old_view, rr.endpoints)}")
        story.say("   round robin now: " + " ".join(_ask(rr) for _ in range(5)))
        after = {k: _short(sticky.pick(k)) for k in keys}
        moved = [k for k in keys if before[k] != after[k]]
        targets = sorted({after[k] for k in moved})
        story.say(f"   sticky keys that moved: {len(moved)} of {len(keys)} (about 2/5 expected), "
                  f"all to {' and '.join(targets) or 'nowhere'}")
        story.say("   scale down 5 -> 4")
        old_view = rr.endpoints
        with _changes(rr) as wait_rr:
            cluster.scale(STATEFULSET, NAMESPACE, 4)
            took_s = wait_rr(lambda view: len(view) == 4, "the scale-down")
        story.say(f"   the refresher saw it after {took_s:.2f} s: {_changed(old_view, rr.endpoints)}")

        # 5. crash ------------------------------------------------------------------------------
        story.section(5, "web-1 crashes: its process is gone, but DNS still lists it")
        cluster.kill_pod(STATEFULSET, NAMESPACE, 1)
        for _ in range(len(rr.healthy_endpoints)):  # line the rotation up on web-1
            if rr.pick().ordinal == 0:
                break
        answer = _ask(rr)
        ejected = sorted(_short(ep) for ep in set(rr.endpoints) - set(rr.healthy_endpoints))
        story.say(f"   connect(): {', '.join(ejected) or 'nothing'} refused -> retried on another pod: "
                  f"{answer} answered")
        story.say(f"   the failure was reported (report_failure): {', '.join(ejected)} is ejected, "
                  "picks skip it")
        story.say("   next 6 connections: " + " ".join(_ask(rr) for _ in range(6)))
        with _changes(rr) as wait_rr:
            cluster.set_ready(STATEFULSET, NAMESPACE, 1, ready=False)
            took_s = wait_rr(lambda view: view.by_ordinal(1) is None, "web-1 leave DNS")
        story.say(f"   Kubernetes marks web-1 not ready; it left DNS and the view after {took_s:.2f} s")
        with _changes(rr) as wait_rr:
            cluster.revive_pod(STATEFULSET, NAMESPACE, 1)
            cluster.set_ready(STATEFULSET, NAMESPACE, 1, ready=True)
            took_s = wait_rr(lambda view: view.by_ordinal(1) is not None, "web-1 come back")
        story.say(f"   web-1 restarts and is ready again: back in the view after {took_s:.2f} s")

        # 6. partition leaders ----------------------------------------------------------------
        story.section(6, "Partition leaders: each partition's writes go to its leader pod")
        cluster_leaders = {0: 0, 1: 1, 2: 2, 3: 3}

        def broker(pod: FakePod, request: str) -> str:
            verb, _, arg = request.partition(" ")
            if verb != "PRODUCE" or not arg.isdigit():
                return pod.name
            leader = cluster_leaders[int(arg)]
            return "OK" if pod.ordinal == leader else f"NOT_LEADER {leader}"

        cluster.set_handler(broker)
        routing: PartitionLeader[int] = PartitionLeader(dict(cluster_leaders))
        leader_svc = stack.enter_context(story.service(resolver, routing))
        shown_map = ", ".join(f"{p}: web-{o}" for p, o in cluster_leaders.items())
        story.say(f"   leaders: {{{shown_map}}}")
        story.say("   " + _produce(leader_svc, 2))
        cluster_leaders[2] = 0
        story.say("   leadership of partition 2 moves to web-0 (our map is now stale)")
        story.say("   " + _produce(leader_svc, 2))
        story.say("   the next write goes straight to the new leader:")
        story.say("   " + _produce(leader_svc, 2))


def _produce(svc: HeadlessService, partition: int, attempts: int = 2) -> str:
    """Send one write for *partition* to its leader; follow a NOT_LEADER hint once."""
    steps: list[str] = []
    for _ in range(attempts):
        try:
            with svc.connection(partition=partition, timeout=1.0) as sock:
                pod = _read_line(sock)
                sock.sendall(f"PRODUCE {partition}\n".encode())
                reply = _read_line(sock)
                if reply.startswith("NOT_LEADER"):
                    hint = int(reply.split()[1])
                    steps.append(f"produce to partition {partition} -> {pod}: NOT_LEADER (hint: web-{hint}),"
                                 f" so svc.not_leader({partition}, hint={hint})")
                    raise NotLeader(partition, hint)
                steps.append(f"produce to partition {partition} -> {pod}: {reply}")
                return "\n   ".join(steps)
        except NotLeader as exc:
            svc.not_leader(exc.partition, exc.hint)
    return "\n   ".join(steps)


def main(out: TextIO | None = None, *, fast: bool = False) -> int:
    """Run the demo, writing the story to *out* (default stdout). Returns the exit code:
    0 when every step happened, 1 otherwise (with one line saying which step failed)."""
    out = out if out is not None else sys.stdout
    story = _Story(out, fast)
    try:
        _run(story)
    except (DemoError, HeadlessClientError, OSError) as exc:
        story.say()
        story.say(f"demo failed: {exc}")
        if isinstance(exc, OSError) and sys.platform != "linux":
            story.say("(the demo's pods listen on 127.42.0.x, which needs Linux or loopback aliases)")
        return 1
    story.say()
    story.say(f"Done in {time.monotonic() - story.started:.1f} s. The same calls work in a cluster "
              "against real DNS: see examples/ and `headless-client resolve`.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
