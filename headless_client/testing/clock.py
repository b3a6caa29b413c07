"""FakeClock: time that moves only when a test says so."""

from __future__ import annotations

import threading
import weakref

from .._validate import seconds
from ..clock import Wakeable

__all__ = ["FakeClock"]


class FakeClock:
    """A monotonic clock for tests: ``clock()`` returns the current fake time, which only
    :meth:`advance` moves.

    Pass it as ``clock=`` to a service: its refresh schedule, ejections, back-offs and
    waits (``wait_for``, ``refresh``) then run on fake time, with no real sleeping. Each
    :meth:`advance` wakes whatever waits on the clock (the refresher, a service's
    waiters), so their deadlines are re-checked at once. Thread-safe.

    Args:
        start: the initial time in seconds.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self._wakers: weakref.WeakSet[Wakeable] = weakref.WeakSet()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds_: float) -> float:
        """Move time forward by *seconds_* and wake every waiter; returns the new time.

        Raises:
            InvalidName: a negative or non-finite step.
        """
        step = seconds("seconds", seconds_, allow_minimum=True, maximum=float("inf"))
        with self._lock:
            self._now += step
            wakers = list(self._wakers)
        for waker in wakers:
            waker.wake()
        return self._now

    def add_waker(self, waker: Wakeable) -> None:
        """Call ``waker.wake()`` after each advance, while *waker* lives (held weakly)."""
        with self._lock:
            self._wakers.add(waker)

    def __repr__(self) -> str:
        return f"FakeClock({self._now:g})"
