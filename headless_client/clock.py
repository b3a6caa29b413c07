"""Time for the shells: reading it, and waiting for a deadline on it.

The core never reads a clock; the shells do, through a ``clock`` callable returning
monotonic seconds (``time.monotonic`` by default). A clock may also be *fake*
(:class:`headless_client.testing.FakeClock`): its time moves only when a test advances
it. A fake clock has an ``add_waker(obj)`` method; the shells register anything that
waits on it (the refresher, a service's condition) and the clock calls ``obj.wake()``
after each advance, so waits end exactly when fake time passes their deadline and never
on real time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final, Protocol

__all__ = ["Clock", "Wakeable", "is_fake", "real_timeout", "register_waker"]

Clock = Callable[[], float]
"""Monotonic seconds."""

#: With a fake clock, a waiter re-checks at least this often (real seconds): a safety
#: net only; wakers make waits end as soon as fake time passes their deadline.
FAKE_RECHECK: Final = 0.5


class Wakeable(Protocol):
    """Something a fake clock wakes after each advance."""

    def wake(self) -> None: ...


def is_fake(clock: Clock) -> bool:
    """True for a clock whose time only moves when told to (it can wake waiters)."""
    return callable(getattr(clock, "add_waker", None))


def register_waker(clock: Clock, waiter: Wakeable) -> None:
    """Have a fake *clock* wake *waiter* after each advance (held weakly); no-op for a
    real clock."""
    add = getattr(clock, "add_waker", None)
    if callable(add):
        add(waiter)


def real_timeout(clock: Clock, deadline: float) -> float | None:
    """Real seconds to wait for *deadline* on *clock* (``None``: no limit)."""
    if is_fake(clock):
        if math.isinf(deadline) and deadline > 0:
            return None
        return min(FAKE_RECHECK, max(deadline - clock(), 0.0))
    if math.isinf(deadline):
        return None
    return max(deadline - clock(), 0.0)


def monotonic() -> float:
    """The default clock."""
    return time.monotonic()
