"""Helpers shared by the sync and asyncio fault scenarios (tests/integration/test_faults*.py).

- :func:`truth` / :func:`view`: the zone's state and a service's view as comparable sets.
- :class:`Watcher` / :class:`AsyncWatcher`: record subscription events and wait on
  conditions with a deadline (no sleeps standing in for synchronisation).
- :class:`CountingResolver` / :class:`CountingAsyncResolver`: count refresh outcomes.
- :func:`churn_step`: one random dynamic update (add, remove or re-IP a pod).
- :func:`check_chain`: subscription events form one unbroken chain.
- :func:`own_sockets_to` / :func:`own_socket_count`: this process's sockets (leak checks).
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import headless_client as hc
from tests.integration.dnsground import FreshService

__all__ = [
    "AsyncWatcher",
    "CountingAsyncResolver",
    "CountingResolver",
    "Watcher",
    "check_chain",
    "churn_step",
    "own_socket_count",
    "own_sockets_to",
    "refresher_threads",
    "toggle_per_refresh",
    "truth",
    "view",
]

State = frozenset[tuple[str | None, str, int]]


def truth(fresh: FreshService, port: int | None = None) -> State:
    """What the zone holds now, as ``{(pod FQDN, address, port)}``."""
    p = fresh.port if port is None else port
    return frozenset(
        (fresh.pod_fqdn(o).rstrip("."), a, p) for o, addrs in fresh.addresses.items() for a in addrs
    )


def view(endpoints: Iterable[hc.Endpoint]) -> State:
    """A service's view in the same shape as :func:`truth`."""
    return frozenset((e.hostname, e.address, e.port) for e in endpoints)


def refresher_threads(svc: hc.HeadlessService) -> list[hc.HeadlessService]:
    """*svc* itself while the shared refresher drives it (empty once it stopped)."""
    return [svc] if svc.refreshing else []


class Watcher:
    """Records ``(old, new)`` events of a sync service; waits on conditions."""

    def __init__(self, svc: hc.HeadlessService | hc.AsyncHeadlessService) -> None:
        self.cond = threading.Condition()
        self.events: list[tuple[hc.EndpointSet, hc.EndpointSet]] = []
        self.times: list[float] = []
        self.unsubscribe = svc.subscribe(self._on_change)

    def _on_change(self, old: hc.EndpointSet, new: hc.EndpointSet) -> None:
        with self.cond:
            self.events.append((old, new))
            self.times.append(time.monotonic())
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        """Block until ``predicate()``; returns the seconds waited. Re-checked on every
        event and at least every 50 ms (for conditions no event signals)."""
        start = time.monotonic()
        deadline = start + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not within {timeout}s: {what}")
                self.cond.wait(min(left, 0.05))
        return time.monotonic() - start


class AsyncWatcher:
    """:class:`Watcher` for an asyncio service (the callback runs on the loop)."""

    def __init__(self, svc: hc.AsyncHeadlessService) -> None:
        self.changed = asyncio.Event()
        self.events: list[tuple[hc.EndpointSet, hc.EndpointSet]] = []
        self.times: list[float] = []
        self.unsubscribe = svc.subscribe(self._on_change)

    def _on_change(self, old: hc.EndpointSet, new: hc.EndpointSet) -> None:
        self.events.append((old, new))
        self.times.append(time.monotonic())
        self.changed.set()

    async def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        start = time.monotonic()
        deadline = start + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not within {timeout}s: {what}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.05))
            except asyncio.TimeoutError:
                pass
        return time.monotonic() - start


def check_chain(events: list[tuple[hc.EndpointSet, hc.EndpointSet]], first: hc.EndpointSet,
                last: hc.EndpointSet) -> None:
    """Events are chained (new of i is old of i+1), real changes, from *first* to *last*."""
    assert events, "no event was delivered"
    assert events[0][0] == first, "the first event does not start from the initial view"
    for i, (old, new) in enumerate(events):
        assert old != new, f"event {i} is not a change"
        if i + 1 < len(events):
            assert new == events[i + 1][0], f"event {i + 1} does not start where event {i} ended"
    assert events[-1][1] == last, "the last event does not end at the final view"


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.ok = 0
        self.failed = 0
        self.cpu = 0.0
        self.wall: list[float] = []

    def note(self, ok: bool, cpu: float, wall: float) -> None:
        with self.lock:
            if ok:
                self.ok += 1
            else:
                self.failed += 1
            self.cpu += cpu
            self.wall.append(wall)
            self.lock.notify_all()

    def wait_ok_beyond(self, count: int, timeout: float) -> bool:
        """Block until more than *count* refreshes succeeded; False after *timeout*."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.ok <= count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
        return True


def toggle_per_refresh(fresh: FreshService, ordinal: int, address: str, counts: _Counts,
                       done: threading.Event, limit: int = 10_000) -> int:
    """Remove pod *ordinal*, or add it back with *address*, once after every successful
    refresh, until *done*: each refresh then sees a change, so snapshots really swap under
    concurrent pickers. Returns the number of toggles (bounded by *limit*)."""
    toggles = 0
    for _ in range(limit):
        seen = counts.ok
        while not counts.wait_ok_beyond(seen, 0.1):
            if done.is_set():
                return toggles
        if done.is_set():
            return toggles
        if ordinal in fresh.addresses:
            fresh.remove(ordinal)
        else:
            fresh.add(ordinal, address)
        toggles += 1
    return toggles


class CountingResolver(hc.Resolver):
    """A :class:`headless_client.Resolver` that counts its resolve() outcomes and the CPU
    time of its calling thread (the refresher's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts = _Counts()

    def resolve(self, *args: Any, **kwargs: Any) -> hc.EndpointSet:
        cpu, wall = time.thread_time(), time.monotonic()
        ok = False
        try:
            result = super().resolve(*args, **kwargs)
            ok = True
            return result
        finally:
            self.counts.note(ok, time.thread_time() - cpu, time.monotonic() - wall)


class CountingAsyncResolver(hc.AsyncResolver):
    """:class:`CountingResolver` for asyncio (CPU time is the loop thread's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts = _Counts()

    async def resolve(self, *args: Any, **kwargs: Any) -> hc.EndpointSet:
        wall = time.monotonic()
        ok = False
        try:
            result = await super().resolve(*args, **kwargs)
            ok = True
            return result
        finally:
            self.counts.note(ok, 0.0, time.monotonic() - wall)


def churn_step(fresh: FreshService, rng: random.Random, low: int, high: int) -> str:
    """One random dynamic update keeping between *low* and *high* pods; returns what it did."""
    count = len(fresh.addresses)
    choices = ["reip"]
    if count < high:
        choices.append("add")
    if count > low:
        choices.append("remove")
    op = rng.choice(choices)
    if op == "add":
        return f"add {fresh.add()}"
    ordinal = rng.choice(sorted(fresh.addresses))
    if op == "remove":
        fresh.remove(ordinal)
        return f"remove {ordinal}"
    fresh.reip(ordinal)
    return f"reip {ordinal}"


def _own_socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    return inodes


def own_sockets_to(port: int) -> list[str]:
    """This process's UDP/TCP sockets whose remote port is *port* (Linux /proc)."""
    mine = _own_socket_inodes()
    found = []
    for table in ("udp", "tcp", "udp6", "tcp6"):
        try:
            with open(f"/proc/net/{table}", encoding="ascii") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            remote, inode = parts[2], parts[9]
            if int(remote.rsplit(":", 1)[1], 16) == port and inode in mine:
                found.append(f"{table} {parts[1]} -> {remote} (inode {inode})")
    return found


def own_socket_count() -> int:
    """How many sockets this process has open."""
    return len(_own_socket_inodes())
