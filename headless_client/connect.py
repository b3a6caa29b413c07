"""Which endpoint to dial next, and when to give up. Sans-I/O, shared by both services.

A :class:`ConnectPlan` is one ``connect()`` call: it picks a target per attempt (the
strategy's choice among endpoints not tried yet, a pinned ordinal, a partition's leader,
or :class:`~headless_client.PrimaryReplica`'s primary for a write key), records each
failure, and turns the record into a :class:`~headless_client.errors.ConnectError`
listing every endpoint tried and its error. The shells do the dialling and drive retries with tenacity.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import tenacity

from .endpoints import Endpoint, EndpointSet
from .errors import ConnectError, InvalidName
from .strategies import PrimaryReplica

if TYPE_CHECKING:
    from .view import ServiceView

__all__ = ["DEFAULT_ATTEMPTS", "DEFAULT_CONNECT_TIMEOUT", "ConnectPlan", "is_retryable"]

DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_ATTEMPTS = 3


_PINNED_BACKOFF = tenacity.wait_exponential(multiplier=0.05, max=1.0)


def fresh_endpoint(endpoint: Endpoint, found: Iterable[Endpoint]) -> Endpoint | None:
    """*endpoint* at its newly resolved address (same family), or None if it has none."""
    for ep in found:
        if ep.family == endpoint.family:
            return Endpoint(ep.address, endpoint.port, endpoint.hostname, endpoint.ordinal)
    return None


def is_retryable(error: BaseException) -> bool:
    """False for errors another attempt cannot fix: a certificate that does not verify."""
    return not isinstance(error, ssl.SSLCertVerificationError)


def _number(name: str, value: object, *, integer: bool = False) -> float:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        raise InvalidName(f"{name} must be a positive {'int' if integer else 'number'}: {value!r}")
    return float(value)


@dataclass(slots=True)
class ConnectPlan:
    """The state of one connect call."""

    view: ServiceView[Any]
    key: object | None = None
    partition: Hashable | None = None
    ordinal: int | None = None
    timeout: float = DEFAULT_CONNECT_TIMEOUT
    attempts: int = DEFAULT_ATTEMPTS
    total_timeout: float | None = None
    tried: list[tuple[Endpoint, BaseException]] = field(default_factory=list)
    #: A pinned target's fresh address after re-resolving its pod name.
    override: Endpoint | None = None
    #: The PrimaryReplica strategy when *key* is one of its write keys: a write goes to
    #: the primary on every attempt, never to a replica.
    primary_of: PrimaryReplica | None = field(default=None, init=False)
    deadline: float = field(default=math.inf, init=False)

    def __post_init__(self) -> None:
        _number("timeout", self.timeout)
        _number("attempts", self.attempts, integer=True)
        if self.total_timeout is None:
            self.total_timeout = self.timeout * self.attempts
        _number("total_timeout", self.total_timeout)
        if self.ordinal is not None and self.partition is not None:
            raise InvalidName("pass ordinal= or partition=, not both")
        strategy = self.view.strategy
        if (
            self.ordinal is None
            and self.partition is None
            and isinstance(strategy, PrimaryReplica)
            and self.key is not None
            and strategy.is_write(self.key)
        ):
            self.primary_of = strategy

    @property
    def pinned(self) -> bool:
        """True when every attempt must go to the same pod (ordinal, partition leader,
        or the primary for a write)."""
        return self.ordinal is not None or self.partition is not None or self.primary_of is not None

    def target(self) -> Endpoint:
        """The endpoint for the next attempt.

        Raises:
            EndpointNotFound: the pinned ordinal is not in the view.
            NoEndpointsAvailable / LeaderNotAvailable: nothing left to try.
        """
        view = self.view
        if self.ordinal is not None:
            return self.override or view.endpoint(self.ordinal)
        if self.partition is not None or self.primary_of is not None:
            if self.primary_of is not None:
                # From the whole snapshot: while the primary is ejected, the healthy set's
                # "lowest ordinal" would be a replica.
                leader = self.primary_of.primary(view.endpoints)
            else:
                leader = view.pick(partition=self.partition)
            if self.override is not None and self.override.identity == leader.identity:
                return self.override
            return leader
        tried = {ep.identity for ep, _ in self.tried}
        if not tried:
            return view.pick(self.key)
        # Another endpoint than those that failed in this call; past the panic threshold
        # the ejected ones are candidates again, but never one that failed just now.
        healthy = view.healthy_endpoints
        remaining = [ep for ep in healthy if ep.identity not in tried] or [
            ep for ep in view.endpoints if ep.identity not in tried
        ]
        if not remaining:
            raise self.error("no endpoint left to try")
        return view.strategy.pick(EndpointSet(remaining, name=healthy.name), self.key)

    # -- timing and retry rules (both shells drive these) -----------------------------

    def start(self, now: float) -> None:
        """Fix the deadline: *now* + ``total_timeout``."""
        assert self.total_timeout is not None
        self.deadline = now + self.total_timeout

    def backoff(self, state: tenacity.RetryCallState) -> float:
        """The wait before the next attempt: a short backoff for a pinned pod, none else."""
        return _PINNED_BACKOFF(state) if self.pinned else 0.0

    def should_stop(self, state: tenacity.RetryCallState, now: float) -> bool:
        """Stop at *attempts*, when the next backoff would end past the deadline, or once
        the service is closed."""
        return (
            state.attempt_number >= self.attempts
            or now + self.backoff(state) >= self.deadline
            or self.view.closed
        )

    def dial_timeout(self, now: float, endpoint: Endpoint) -> float:
        """The timeout of the next dial; raises the final error once no time is left."""
        left = self.deadline - now
        if left <= 0:  # no dial made: nothing to record
            raise self.final_error()
        if self.view.closed:
            raise self.error("the service was closed")
        return min(self.timeout, left)

    def failed(self, endpoint: Endpoint, error: BaseException, now: float, resolve_timeout: float) -> bool:
        """Record a failed dial; True if the pinned pod's name should be re-resolved.

        Raises:
            ConnectError: the error cannot be fixed by another attempt (a certificate).
        """
        self.record(endpoint, error)
        if not is_retryable(error):
            raise self.error("certificate verification failed") from error
        # Re-resolving may have moved the pod to a new IP; only when time is left for it.
        return (
            self.pinned
            and endpoint.hostname is not None
            and len(self.tried) < self.attempts
            and self.deadline - now >= resolve_timeout
        )

    def final_error(self) -> ConnectError:
        """The error after the last attempt, chained to the last real error."""
        timed_out = len(self.tried) < self.attempts
        error = self.error(f"total timeout of {self.total_timeout:g}s reached" if timed_out else "")
        error.__cause__ = self.tried[-1][1] if self.tried else None
        return error

    def server_hostname(self, endpoint: Endpoint) -> str:
        """The TLS name to verify: the pod's FQDN when known, else the service's."""
        return endpoint.hostname or self.view.name

    def record(self, endpoint: Endpoint, error: BaseException) -> None:
        """Note a failed attempt."""
        self.tried.append((endpoint, error))

    def error(self, reason: str = "") -> ConnectError:
        """The ConnectError summarising every attempt."""
        if self.ordinal is not None:
            what = f"ordinal {self.ordinal}"
        elif self.partition is not None:
            what = f"the leader of partition {self.partition!r}"
        elif self.primary_of is not None:
            what = "the primary"
        else:
            what = "a pod"
        msg = f"could not connect to {what} of {self.view.name} after {len(self.tried)} attempts"
        if reason:
            msg += f": {reason}"
        return ConnectError(msg, [(str(ep), err) for ep, err in self.tried])
