"""Waiting for a service's view to change, for the delay benchmarks (bench_api_delay.py,
bench_coredns_delay.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from headless_client import EndpointSet, HeadlessService


class Seen:
    """Wakes a waiter whenever the service publishes a new view."""

    def __init__(self, svc: HeadlessService) -> None:
        self.svc = svc
        self.cond = threading.Condition()
        svc.subscribe(lambda old, new: self._notify())

    def _notify(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def wait(self, predicate: Callable[[EndpointSet], bool], timeout: float) -> float | None:
        """Seconds until *predicate* holds for the view (None: not within *timeout*)."""
        start = time.perf_counter()
        deadline = start + timeout
        with self.cond:
            while not predicate(self.svc.endpoints):
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return None
                self.cond.wait(min(remaining, 0.5))
        return time.perf_counter() - start
