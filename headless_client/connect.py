"""Which endpoint to dial next, and when to give up. Sans-I/O, driven by both services.

A :class:`ConnectPlan` is one ``connect()`` call. The driver asks it :meth:`~ConnectPlan.next`
and carries out what it says: :class:`Dial` an endpoint within a timeout, :class:`Backoff`
(sleep, cut short by ``close()``), :class:`Reresolve` a pinned pod's name (it may have
restarted with a new address), or :class:`GiveUp` with an error. The driver reports each
failed dial back (:meth:`~ConnectPlan.failed`); everything else, which pod, how many
attempts, how long, which error, is decided here, once for both services.

Unpinned calls go to the strategy's choice among pods not tried yet in this call; pinned
calls (an ordinal, a hostname, a partition's leader, a primary for a write) retry the same
pod after a short back-off, re-resolving its name when time allows.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final, Protocol

from ._validate import count, seconds
from .endpoints import Endpoint
from .errors import ConnectAborted, ConnectError, HeadlessClientError, NoEndpointsAvailable
from .request import Request

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_CONNECT_TIMEOUT",
    "Backoff",
    "ConnectPlan",
    "ConnectPolicy",
    "Dial",
    "GiveUp",
    "Reresolve",
    "fresh_endpoint",
    "is_retryable",
]

DEFAULT_CONNECT_TIMEOUT: Final = 2.0
DEFAULT_ATTEMPTS: Final = 3
#: Back-off before re-dialling a pinned pod: 50 ms doubling, at most 1 s.
PINNED_BACKOFF_FIRST: Final = 0.05
PINNED_BACKOFF_MAX: Final = 1.0


@dataclass(frozen=True, slots=True)
class ConnectPolicy:
    """How ``connect()`` dials: defaults for every call of a service (a call may override).

    Args:
        timeout: One dial: the TCP handshake and, with TLS, the TLS handshake (seconds).
        attempts: Dials at most, over all pods.
        total_timeout: The whole call, dials and back-offs included; default
            ``timeout * attempts``. No dial or back-off runs past it.

    Raises:
        InvalidName: a value that is not finite, not positive or above one day.
        InvalidArgument: a value of the wrong type.
    """

    timeout: float = DEFAULT_CONNECT_TIMEOUT
    attempts: int = DEFAULT_ATTEMPTS
    total_timeout: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "timeout", seconds("timeout", self.timeout))
        count("attempts", self.attempts, maximum=1000)
        if self.total_timeout is not None:
            object.__setattr__(self, "total_timeout", seconds("total_timeout", self.total_timeout))

    @property
    def budget(self) -> float:
        """Seconds the whole call may take."""
        return self.total_timeout if self.total_timeout is not None else self.timeout * self.attempts

    def override(
        self, *, timeout: float | None = None, attempts: int | None = None, total_timeout: float | None = None
    ) -> ConnectPolicy:
        """This policy with the given fields replaced (``None`` keeps a field; without a
        ``total_timeout`` of its own, the budget follows the new timeout and attempts).

        Raises:
            InvalidName / InvalidArgument: a bad new value.
        """
        if timeout is None and attempts is None and total_timeout is None:
            return self
        return ConnectPolicy(
            timeout=self.timeout if timeout is None else timeout,
            attempts=self.attempts if attempts is None else attempts,
            total_timeout=self.total_timeout if total_timeout is None else total_timeout,
        )


@dataclass(frozen=True, slots=True)
class Dial:
    """Open a connection to *endpoint* within *timeout* seconds, verifying TLS against
    *server_hostname*."""

    endpoint: Endpoint
    timeout: float
    server_hostname: str


@dataclass(frozen=True, slots=True)
class Backoff:
    """Wait *seconds* before the next attempt (``close()`` cuts it short)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Reresolve:
    """Look up *endpoint*'s pod name again and report the result with
    :meth:`ConnectPlan.reresolved`."""

    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop: raise *error*."""

    error: BaseException


Action = Dial | Backoff | Reresolve | GiveUp


class PlanHost(Protocol):
    """What a plan needs from the service core."""

    @property
    def name(self) -> str: ...

    @property
    def closed(self) -> bool: ...

    def pick(self, request: Request) -> Endpoint: ...

    def pins(self, request: Request) -> bool: ...


def fresh_endpoint(endpoint: Endpoint, found: Iterable[Endpoint]) -> Endpoint | None:
    """*endpoint* at its newly resolved address (same family), or None if it has none."""
    for ep in found:
        if ep.family == endpoint.family:
            return Endpoint(ep.address, endpoint.port, endpoint.hostname, endpoint.ordinal)
    return None


def is_retryable(error: BaseException) -> bool:
    """False for errors another attempt cannot fix: a certificate that does not verify."""
    return not isinstance(error, ssl.SSLCertVerificationError)


class ConnectPlan:
    """The decisions of one connect call (see the module docs).

    Args:
        host: The service core (picks, pinning, closed state, name).
        request: What the call asked for.
        policy: Timeouts and attempts.
        now: The clock when the call started (fixes the deadline).
        resolve_timeout: How long a re-resolve may take; it is only asked for when that
            much time is left.
    """

    __slots__ = (
        "_pending",
        "deadline",
        "host",
        "override",
        "pinned",
        "policy",
        "request",
        "resolve_timeout",
        "tried",
    )

    def __init__(
        self, host: PlanHost, request: Request, policy: ConnectPolicy, now: float, resolve_timeout: float
    ) -> None:
        self.host = host
        self.request = request
        self.policy = policy
        self.resolve_timeout = resolve_timeout
        self.pinned = host.pins(request)
        self.deadline = now + policy.budget
        self.tried: list[tuple[Endpoint, BaseException]] = []
        #: A pinned pod's fresh address after re-resolving its name.
        self.override: Endpoint | None = None
        self._pending: list[Action] = []

    # -- the driver's questions -------------------------------------------------------------

    def next(self, now: float) -> Action:
        """What to do now."""
        if self.host.closed:
            return GiveUp(self._closed())
        if self._pending:
            return self._pending.pop(0)
        if len(self.tried) >= self.policy.attempts:
            return GiveUp(self.final_error())
        left = self.deadline - now
        if left <= 0:
            return GiveUp(self.final_error())
        try:
            endpoint = self._target()
        except NoEndpointsAvailable as exc:
            if not self.tried:
                return GiveUp(exc)
            error = self.error("no endpoint left to try")
            error.__cause__ = self.tried[-1][1]
            return GiveUp(error)
        except HeadlessClientError as exc:
            return GiveUp(exc)
        return Dial(endpoint, min(self.policy.timeout, left), self.server_hostname(endpoint))

    def failed(self, endpoint: Endpoint, error: BaseException, now: float) -> None:
        """A dial of *endpoint* failed with *error*."""
        self.tried.append((endpoint, error))
        if not is_retryable(error):
            failure = self.error("certificate verification failed")
            failure.__cause__ = error
            self._pending = [GiveUp(failure)]
            return
        attempts_left = len(self.tried) < self.policy.attempts
        if not (self.pinned and attempts_left):
            return
        delay = min(PINNED_BACKOFF_FIRST * 2 ** (len(self.tried) - 1), PINNED_BACKOFF_MAX)
        if now + delay >= self.deadline:
            # No attempt fits any more: a re-resolve now would only delay the error.
            self._pending.append(GiveUp(self.final_error()))
            return
        if endpoint.hostname is not None and self.deadline - now >= self.resolve_timeout:
            self._pending.append(Reresolve(endpoint))
        self._pending.append(Backoff(delay))

    def reresolved(self, endpoint: Endpoint, found: Iterable[Endpoint] | None) -> None:
        """The result of a :class:`Reresolve` (``None``: the lookup failed)."""
        fresh = fresh_endpoint(endpoint, found) if found is not None else None
        if fresh is not None:
            self.override = fresh

    # -- helpers ---------------------------------------------------------------------------

    def _target(self) -> Endpoint:
        if self.pinned:
            target = self.host.pick(self.request)
            override = self.override
            if override is not None and override.identity == target.identity:
                return override
            return target
        if not self.tried:
            return self.host.pick(self.request)
        exclude = frozenset(ep.identity for ep, _ in self.tried)
        return self.host.pick(replace(self.request, exclude=self.request.exclude | exclude))

    def server_hostname(self, endpoint: Endpoint) -> str:
        """The TLS name to verify: the pod's FQDN when known, else the service's."""
        return endpoint.hostname or self.host.name

    def describe(self) -> str:
        """What the call connects to, for messages."""
        what = self.request.describe()
        if self.pinned and what == "a pod":
            # Pinned by the strategy itself: the one built-in case is a write to a primary.
            return "the primary"
        return what

    def _closed(self) -> ConnectAborted:
        what = self.describe()
        tried = f" after {len(self.tried)} attempts" if self.tried else ""
        error = ConnectAborted(
            f"{self.host.name}: the service was closed while connecting to {what}{tried}",
            [(str(ep), err) for ep, err in self.tried],
        )
        error.__cause__ = self.tried[-1][1] if self.tried else None
        return error

    def final_error(self) -> ConnectError:
        """The error after the last attempt, chained to the last real error."""
        timed_out = len(self.tried) < self.policy.attempts
        error = self.error(f"total timeout of {self.policy.budget:g}s reached" if timed_out else "")
        error.__cause__ = self.tried[-1][1] if self.tried else None
        return error

    def error(self, reason: str = "") -> ConnectError:
        """The ConnectError summarising every attempt."""
        msg = (
            f"could not connect to {self.describe()} of {self.host.name} "
            f"after {len(self.tried)} attempts"
        )
        if reason:
            msg += f": {reason}"
        return ConnectError(msg, [(str(ep), err) for ep, err in self.tried])
