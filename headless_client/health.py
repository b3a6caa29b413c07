"""Passive health: eject endpoints that fail, for a growing period. Pure: clock passed in.

Ejection is keyed by :attr:`Endpoint.identity`, so a pod that fails and comes back with
the same name starts clean once DNS has dropped it in between (state is pruned to the
current snapshot). More than ``max_ejected`` of the set is never ejected (Envoy's panic
threshold): when too many fail at once the fault is more likely ours or the network's,
and spreading load over all endpoints beats hammering the few left.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ._validate import seconds
from .endpoints import Endpoint, EndpointSet
from .errors import InvalidArgument, InvalidName

__all__ = ["HealthPolicy", "HealthTracker"]


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Ejection knobs.

    Args:
        base_ejection: seconds of the first ejection; the n-th consecutive one lasts
            ``n * base_ejection`` (gRPC/Envoy outlier detection style).
        max_ejection: cap on one ejection, in seconds.
        max_ejected: the largest share of endpoints that may be ejected at once (0..1);
            beyond it all endpoints are used (panic mode).
    """

    base_ejection: float = 2.0
    max_ejection: float = 30.0
    max_ejected: float = 0.5

    def __post_init__(self) -> None:
        for name in ("base_ejection", "max_ejection"):
            object.__setattr__(self, name, seconds(name, getattr(self, name)))
        share = self.max_ejected
        if isinstance(share, bool) or not isinstance(share, (int, float)):
            raise InvalidArgument(f"max_ejected must be a share in [0, 1]: {share!r}")
        if not 0 <= share <= 1:
            raise InvalidName(f"max_ejected must be a share in [0, 1]: {share!r}")

    def ejection(self, count: int) -> float:
        """Seconds of the *count*-th consecutive ejection."""
        return min(self.base_ejection * count, self.max_ejection)


@dataclass(slots=True)
class _Entry:
    ejections: int
    until: float


class HealthTracker:
    """Which identities are ejected, and until when. Callers serialise access."""

    def __init__(self, policy: HealthPolicy | None = None) -> None:
        self.policy = policy or HealthPolicy()
        self._entries: dict[str, _Entry] = {}

    def eject(self, endpoint: Endpoint, now: float) -> float:
        """Record a failure of *endpoint*; returns when its ejection ends."""
        entry = self._entries.get(endpoint.identity)
        if entry is None:
            entry = self._entries[endpoint.identity] = _Entry(0, now)
        if entry.until > now:
            # Already ejected: concurrent failures of one outage count once.
            return entry.until
        entry.ejections += 1
        entry.until = now + self.policy.ejection(entry.ejections)
        return entry.until

    def success(self, endpoint: Endpoint) -> bool:
        """Forget failures of *endpoint*; True if it was tracked."""
        return self._entries.pop(endpoint.identity, None) is not None

    def tracks(self, endpoint: Endpoint) -> bool:
        """True if *endpoint* has failure state (ejected now or recently)."""
        return endpoint.identity in self._entries

    def is_ejected(self, endpoint: Endpoint, now: float) -> bool:
        """True if *endpoint* is inside an ejection period."""
        entry = self._entries.get(endpoint.identity)
        return entry is not None and entry.until > now

    def prune(self, snapshot: EndpointSet) -> None:
        """Drop the state of identities that left DNS."""
        keep = {ep.identity for ep in snapshot}
        for identity in [i for i in self._entries if i not in keep]:
            del self._entries[identity]

    def healthy(
        self, snapshot: EndpointSet, now: float, pools: Sequence[Sequence[Endpoint]] | None = None
    ) -> EndpointSet:
        """*snapshot* without ejected endpoints, the panic rule applied per pool.

        Each pool (by default the whole snapshot is one) loses its ejected endpoints
        unless more than ``max_ejected`` of it is ejected: then the whole pool stays in
        (panic). Endpoints of *snapshot* in no pool form one more pool.
        """
        if not self._entries or not snapshot:
            return snapshot
        ejected = {ep for ep in snapshot if self.is_ejected(ep, now)}
        if not ejected:
            return snapshot
        groups: list[Sequence[Endpoint]] = list(pools) if pools else []
        covered = {ep for group in groups for ep in group}
        rest = [ep for ep in snapshot if ep not in covered]
        if rest:
            groups.append(rest)
        dropped: list[Endpoint] = []
        for group in groups:
            out = [ep for ep in group if ep in ejected]
            if out and len(out) <= math.floor(len(group) * self.policy.max_ejected):
                dropped.extend(out)
        return snapshot.without(dropped) if dropped else snapshot

    def next_expiry(self, now: float) -> float | None:
        """The earliest future end of an ejection (when the healthy view must be rebuilt)."""
        future = [e.until for e in self._entries.values() if e.until > now]
        return min(future) if future else None
