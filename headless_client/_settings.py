"""One constructor for both services: arguments checked, policies built, once.

Both shells take the same arguments and must refuse the same bad input with the same
error; this module is where that happens, so the twins cannot drift on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ._validate import count, seconds
from .clock import Clock, monotonic
from .connect import ConnectPolicy
from .core import ServiceCore
from .errors import InvalidArgument, InvalidName, WaitTimeout
from .health import HealthPolicy
from .names import srv_name
from .refresh import RefreshPolicy
from .strategies import RoundRobin

__all__ = ["ServiceSettings", "settings_from"]


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Everything a service was built with, checked."""

    service: str
    port: int | str
    protocol: str
    namespace: str | None
    fqdn: str
    resolver: Any
    strategy: object
    refresh: RefreshPolicy
    health: HealthPolicy
    connect: ConnectPolicy
    clock: Clock

    def core(self) -> ServiceCore:
        """A new core for these settings (validates the strategy)."""
        return ServiceCore(
            self.fqdn,
            self.port,
            strategy=self.strategy,
            refresh=self.refresh,
            health=self.health,
            connect=self.connect,
        )

    def connect_policy(
        self, timeout: float | None, attempts: int | None, total_timeout: float | None
    ) -> ConnectPolicy:
        """The service's connect policy with a call's overrides."""
        return self.connect.override(timeout=timeout, attempts=attempts, total_timeout=total_timeout)

    @staticmethod
    def wait_deadline(min_endpoints: object, timeout: object, now: float) -> float:
        """The deadline of ``wait_for`` (infinity for no timeout), arguments checked."""
        count("min_endpoints", min_endpoints, minimum=0)
        if timeout is None:
            return math.inf
        if isinstance(timeout, float) and math.isinf(timeout) and timeout > 0:
            return math.inf
        return now + seconds("timeout", timeout, allow_minimum=True)

    @staticmethod
    def wait_timeout(core: ServiceCore, min_endpoints: int, timeout: float | None) -> WaitTimeout:
        """The error of a ``wait_for`` that ran out of time."""
        return WaitTimeout(
            f"{core.name}: {len(core.view.snapshot)} endpoints after {timeout}s, wanted {min_endpoints}"
        )


def settings_from(
    service: object,
    port: object,
    resolver: object,
    strategy: object,
    protocol: object,
    namespace: object,
    refresh: object,
    health: object,
    connect: object,
    min_refresh: object,
    max_refresh: object,
    empty_grace: object,
    jitter: object,
    backoff: object,
    clock: object,
    *,
    default_resolver: Callable[[], Any],
    awaited: bool,
) -> ServiceSettings:
    """Check a service's arguments and build its settings.

    Raises:
        InvalidName: a bad value (named in the message).
        InvalidArgument: a value of the wrong type.
    """
    if not isinstance(service, str):
        raise InvalidArgument(f"service must be a str, not {type(service).__name__}: {service!r}")
    if port is None:
        raise InvalidName(
            f"port is required for {service!r}: a named port (port='http': SRV, gives pod "
            f"identities) or a number (port=8080: A/AAAA)"
        )
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        raise InvalidArgument(f"port must be an int or a port name, not {type(port).__name__}: {port!r}")
    if isinstance(port, int) and not 0 <= port <= 65535:
        raise InvalidName(f"port must be an int in 0..65535 or a port name: {port!r}")
    if not isinstance(protocol, str):
        raise InvalidArgument(f"protocol must be a str: {protocol!r}")
    if namespace is not None and not isinstance(namespace, str):
        raise InvalidArgument(f"namespace must be a str or None: {namespace!r}")
    if strategy is None:
        strategy = RoundRobin()
    policy = _policy("refresh", refresh, RefreshPolicy)
    flat = {
        name: value
        for name, value in (
            ("min_refresh", min_refresh),
            ("max_refresh", max_refresh),
            ("empty_grace", empty_grace),
            ("jitter", jitter),
            ("backoff", backoff),
        )
        if value is not None
    }
    if flat:
        policy = replace(policy, **flat)
    if refresh is None and empty_grace is None and getattr(resolver, "empty_is_final", False) is True:
        # A source whose empty answers are the truth (the Kubernetes API): no grace.
        policy = replace(policy, empty_grace=0.0)
    health_policy = _policy("health", health, HealthPolicy)
    connect_policy = _policy("connect", connect, ConnectPolicy)
    if clock is None:
        clock = monotonic
    elif not callable(clock):
        raise InvalidArgument(f"clock must be a callable returning monotonic seconds: {clock!r}")
    if resolver is None:
        resolver = default_resolver()
    from .lookup_runner import check_resolver

    check_resolver(resolver, awaited=awaited)
    fqdn = resolver.qualify(service, namespace)  # type: ignore[attr-defined]
    if isinstance(port, str):
        srv_name(port, protocol, fqdn)  # checks the port name and protocol
    return ServiceSettings(
        service=service,
        port=port,
        protocol=protocol,
        namespace=namespace,
        fqdn=fqdn,
        resolver=resolver,
        strategy=strategy,
        refresh=policy,
        health=health_policy,
        connect=connect_policy,
        clock=clock,
    )


def _policy(name: str, value: object, kind: type[Any]) -> Any:
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise InvalidArgument(f"{name} must be a {kind.__name__}, not {type(value).__name__}: {value!r}")
    return value
