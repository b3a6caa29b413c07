"""When to resolve again, and which answers to trust. Pure: the clock is passed in.

The rules (design.md section 4):

* next refresh at the answer's TTL clamped to ``[min_refresh, max_refresh]``, +-10 %
  jitter so a fleet of clients does not query in lockstep;
* on failure keep the last good snapshot and retry with exponential backoff and jitter
  (tenacity wait objects), capped at ``max_refresh``; warn once per failure streak;
* an answer equal to the current set publishes nothing;
* an empty answer or NXDOMAIN after a non-empty set is applied only once a refresh at
  least ``empty_grace`` seconds later confirms it (rollouts and negative caches produce
  brief false empties);
* early refreshes (after connect failures) are coalesced and rate-limited to one per
  ``min_refresh``;
* no scheduled delay is longer than ``max_refresh``, the empty-grace recheck included:
  while an empty answer waits for confirmation the service keeps asking, so pods that
  replaced the old ones are seen at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ._validate import seconds
from .endpoints import EndpointSet
from .errors import InvalidArgument, InvalidName

if TYPE_CHECKING:
    import tenacity

__all__ = ["MIN_REFRESH_FLOOR", "Decision", "RefreshPolicy", "RefreshState"]

#: The smallest ``min_refresh`` accepted: 20 questions a second from one service is
#: already more than any cluster DNS should see from a single client.
MIN_REFRESH_FLOOR: Final = 0.05


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """Refresh timing knobs (seconds). Immutable; share it freely.

    Args:
        min_refresh: floor for the TTL-driven period, and the rate limit of early refreshes.
        max_refresh: ceiling for the period and for failure backoff.
        jitter: share of randomisation around each delay (0.1 = +-10 %).
        empty_grace: how long an empty answer must persist before it empties a non-empty
            view (0 applies it at once).
        full_refresh_every: how often at most a refresh asks every pod's name again
            (SRV services). The refreshes between reuse the addresses that unchanged
            answers prove, which misses only two pods swapping addresses; a full one
            catches that. Default 300 s.
        backoff: a tenacity wait object (or any callable taking a
            ``tenacity.RetryCallState``) for failure ``n`` (``attempt_number = n``);
            default: exponential from ``min_refresh`` doubling, plus up to
            ``min_refresh`` of random jitter.

    Every delay is capped at ``max_refresh``.

    Raises:
        InvalidName: a value that is not finite, out of range (``min_refresh`` below
            0.05 s, anything above one day), or ``max_refresh < min_refresh``.
        InvalidArgument: a value of the wrong type (``backoff`` not callable).
    """

    min_refresh: float = 1.0
    max_refresh: float = 30.0
    jitter: float = 0.1
    empty_grace: float = 5.0
    full_refresh_every: float = 300.0
    backoff: Callable[[tenacity.RetryCallState], float] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        minimum = seconds("min_refresh", self.min_refresh, minimum=MIN_REFRESH_FLOOR, allow_minimum=True)
        maximum = seconds("max_refresh", self.max_refresh)
        grace = seconds("empty_grace", self.empty_grace, allow_minimum=True)
        full = seconds("full_refresh_every", self.full_refresh_every, allow_minimum=True)
        jitter = self.jitter
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)):
            raise InvalidArgument(f"jitter must be a number in [0, 1): {jitter!r}")
        if not 0 <= jitter < 1:
            raise InvalidName(f"jitter must be in [0, 1): {jitter!r}")
        if maximum < minimum:
            raise InvalidName(
                f"max_refresh ({self.max_refresh!r}) must be >= min_refresh ({self.min_refresh!r})"
            )
        if self.backoff is not None and not callable(self.backoff):
            raise InvalidArgument(
                f"backoff must be a tenacity wait object or a callable of a RetryCallState: {self.backoff!r}"
            )
        for name, value in (
            ("min_refresh", minimum), ("max_refresh", maximum), ("empty_grace", grace),
            ("full_refresh_every", full),
        ):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "jitter", float(jitter))

    def period(self, ttl: int | None, rng: random.Random) -> float:
        """Seconds until the next refresh after a good answer with this TTL.

        Jittered around the clamped TTL; at the ceiling, a draw above ``max_refresh`` is
        reflected below it, so a fleet still spreads out without any delay passing it.
        """
        base = self.min_refresh if ttl is None else min(max(float(ttl), self.min_refresh), self.max_refresh)
        delay = self._jittered(base, rng)
        if delay > self.max_refresh:
            delay = max(2 * self.max_refresh - delay, self.min_refresh)
        return delay

    def failure_delay(self, failures: int, rng: random.Random) -> float:
        """Seconds until the retry after *failures* consecutive failures (>= 1).

        A custom *backoff* that raises or returns nonsense (negative, NaN, infinite) is
        clamped: the refresher must never stop over it.
        """
        if self.backoff is None:
            exponential = self.min_refresh * 2.0 ** min(failures - 1, 64)
            delay = exponential + rng.uniform(0, self.min_refresh)
        else:
            try:
                delay = float(self.backoff(_retry_state(failures)))
            except Exception:
                delay = self.max_refresh
            if not delay >= 0:  # NaN included
                delay = self.max_refresh
        return min(delay, self.max_refresh)

    def _jittered(self, base: float, rng: random.Random) -> float:
        if not self.jitter:
            return base
        return base * (1.0 + rng.uniform(-self.jitter, self.jitter))


def _retry_state(failures: int) -> Any:
    """A tenacity RetryCallState for attempt *failures* (tenacity imported only here)."""
    import tenacity

    state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
    state.attempt_number = failures
    return state


@dataclass(frozen=True, slots=True)
class Decision:
    """What the shell does after one refresh attempt."""

    #: The snapshot to publish, or None to keep the current one.
    publish: EndpointSet | None
    #: Seconds until the next scheduled refresh.
    delay: float
    #: A message to log at WARNING, or None.
    warning: str | None = None
    #: A message to log at INFO, or None.
    info: str | None = None


class RefreshState:
    """The refresh state machine of one service; both shells drive it.

    Not thread-safe by itself: only the refresher (thread or task) calls it.
    """

    def __init__(self, policy: RefreshPolicy, name: str, *, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.name = name
        self.rng = rng or random.Random()
        self.current: EndpointSet = EndpointSet(name=name)
        self.resolved_once = False
        self.failures = 0
        self.empty_since: float | None = None
        self.last_attempt: float | None = None
        #: The failure streak the latest answer ended (0: there was none).
        self.recovered_from = 0

    # -- outcomes -----------------------------------------------------------------

    def on_answer(self, answer: EndpointSet, now: float) -> Decision:
        """A successful resolution (possibly empty)."""
        self.last_attempt = now
        recovered = self.recovered_from = self.failures
        self.failures = 0
        info = f"resolving {self.name} recovered after {recovered} failures" if recovered else None
        if not answer:
            return self._on_empty(now, info, "empty answer")
        self.empty_since = None
        first = not self.resolved_once
        self.resolved_once = True
        delay = self.policy.period(answer.ttl, self.rng)
        if answer == self.current and not first:
            return Decision(None, delay, info=info)
        self.current = answer
        return Decision(answer, delay, info=info)

    def on_not_found(self, now: float) -> Decision:
        """NXDOMAIN: in Kubernetes, "no ready pods" as much as "no such service"."""
        self.last_attempt = now
        recovered = self.recovered_from = self.failures
        self.failures = 0
        info = f"resolving {self.name} recovered after {recovered} failures" if recovered else None
        return self._on_empty(now, info, "NXDOMAIN")

    def on_error(self, error: BaseException, now: float) -> Decision:
        """A transport or server failure: keep the last good set and back off."""
        self.last_attempt = now
        self.recovered_from = 0
        self.failures += 1
        delay = self.policy.failure_delay(self.failures, self.rng)
        warning = None
        if self.failures == 1:
            warning = (
                f"resolving {self.name} failed, keeping {len(self.current)} known endpoints "
                f"and retrying with backoff: {error}"
            )
        return Decision(None, delay, warning=warning)

    def _on_empty(self, now: float, info: str | None, what: str) -> Decision:
        policy = self.policy
        if not self.current or policy.empty_grace == 0:
            first = not self.resolved_once
            self.resolved_once = True
            self.empty_since = None
            changed = bool(self.current) or first
            self.current = EndpointSet(name=self.name)
            warning = f"{self.name}: {what}, no ready endpoints" if changed else None
            # Poll at the floor while empty: the first pod of a StatefulSet should be
            # seen as soon as DNS has it.
            return Decision(
                self.current if changed else None,
                min(policy._jittered(policy.min_refresh, self.rng), policy.max_refresh),
                warning=warning,
                info=info,
            )
        if self.empty_since is None:
            self.empty_since = now
        waited = now - self.empty_since
        if waited >= policy.empty_grace:
            self.empty_since = None
            self.current = EndpointSet(name=self.name)
            return Decision(
                self.current,
                min(policy._jittered(policy.min_refresh, self.rng), policy.max_refresh),
                warning=f"{self.name}: {what} confirmed after {waited:.1f}s, view is now empty",
                info=info,
            )
        # Ask again (at least every max_refresh) until the grace has passed; until then the
        # last good set stays, and new pods replacing it are seen at the next answer.
        return Decision(
            None,
            min(policy.empty_grace - waited, policy.max_refresh),
            info="; ".join(
                m
                for m in (info, f"{self.name}: {what}, keeping {len(self.current)} endpoints until confirmed")
                if m
            ),
        )

    # -- scheduling ---------------------------------------------------------------

    def earliest_early_refresh(self, now: float) -> float:
        """When an on-demand refresh may run: rate-limited to one per ``min_refresh``."""
        if self.last_attempt is None:
            return now
        return max(now, self.last_attempt + self.policy.min_refresh)
