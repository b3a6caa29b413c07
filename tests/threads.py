"""Run one function in several threads at once, for the tests that race them."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_in_threads(target: Callable[[], object], count: int, *, timeout: float = 30.0) -> None:
    """Start *count* threads running *target* and join them (AssertionError if one is still
    running after *timeout* seconds)."""
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), f"a thread still runs after {timeout}s"
