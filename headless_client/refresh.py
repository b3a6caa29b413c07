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
  ``min_refresh``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import tenacity
from tenacity.wait import wait_base

from .endpoints import EndpointSet
from .errors import InvalidName

__all__ = ["Decision", "RefreshPolicy", "RefreshState"]


def _positive(name: str, value: object, *, zero_ok: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise InvalidName(f"{name} must be a number of seconds: {value!r}")
    if value < 0 or (value == 0 and not zero_ok):
        raise InvalidName(f"{name} must be {'>= 0' if zero_ok else '> 0'}: {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """Refresh timing knobs (seconds). Immutable; share it freely.

    Args:
        min_refresh: floor for the TTL-driven period, and the rate limit of early refreshes.
        max_refresh: ceiling for the period and for failure backoff.
        jitter: share of randomisation around each delay (0.1 = +-10 %).
        empty_grace: how long an empty answer must persist before it empties a non-empty
            view (0 applies it at once).
        backoff: a tenacity wait object for failure ``n`` (attempt_number = n);
            default: exponential from ``min_refresh`` doubling, plus random jitter.
    """

    min_refresh: float = 1.0
    max_refresh: float = 30.0
    jitter: float = 0.1
    empty_grace: float = 5.0
    backoff: wait_base | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _positive("min_refresh", self.min_refresh)
        _positive("max_refresh", self.max_refresh)
        _positive("empty_grace", self.empty_grace, zero_ok=True)
        if self.max_refresh < self.min_refresh:
            raise InvalidName(
                f"max_refresh ({self.max_refresh!r}) must be >= min_refresh ({self.min_refresh!r})"
            )
        if not 0 <= _positive("jitter", self.jitter, zero_ok=True) < 1:
            raise InvalidName(f"jitter must be in [0, 1): {self.jitter!r}")
        if self.backoff is None:
            wait = tenacity.wait_exponential(
                multiplier=self.min_refresh, max=self.max_refresh
            ) + tenacity.wait_random(0, self.min_refresh)
            object.__setattr__(self, "backoff", wait)

    def period(self, ttl: int | None, rng: random.Random) -> float:
        """Seconds until the next refresh after a good answer with this TTL."""
        base = self.min_refresh if ttl is None else min(max(float(ttl), self.min_refresh), self.max_refresh)
        return self._jittered(base, rng)

    def failure_delay(self, failures: int, rng: random.Random) -> float:
        """Seconds until the retry after *failures* consecutive failures (>= 1)."""
        state = tenacity.RetryCallState(_RETRYING, None, (), {})
        state.attempt_number = failures
        assert self.backoff is not None
        return min(float(self.backoff(state)), self.max_refresh)

    def _jittered(self, base: float, rng: random.Random) -> float:
        if not self.jitter:
            return base
        return base * (1.0 + rng.uniform(-self.jitter, self.jitter))


_RETRYING = tenacity.Retrying()


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

    # -- outcomes -----------------------------------------------------------------

    def on_answer(self, answer: EndpointSet, now: float) -> Decision:
        """A successful resolution (possibly empty)."""
        self.last_attempt = now
        recovered = self.failures
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
        recovered = self.failures
        self.failures = 0
        info = f"resolving {self.name} recovered after {recovered} failures" if recovered else None
        return self._on_empty(now, info, "NXDOMAIN")

    def on_error(self, error: BaseException, now: float) -> Decision:
        """A transport or server failure: keep the last good set and back off."""
        self.last_attempt = now
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
                policy._jittered(policy.min_refresh, self.rng),
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
                policy._jittered(policy.min_refresh, self.rng),
                warning=f"{self.name}: {what} confirmed after {waited:.1f}s, view is now empty",
                info=info,
            )
        # Ask again once the grace has passed; until then the last good set stays.
        return Decision(
            None,
            policy.empty_grace - waited,
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
