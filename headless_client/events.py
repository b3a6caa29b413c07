"""What a live service tells its subscribers. Pure values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from .endpoints import Endpoint, EndpointDiff, EndpointSet

__all__ = ["EndpointsChanged", "Event"]


@dataclass(frozen=True, slots=True)
class EndpointsChanged:
    """The service's view changed: pods came, went or moved.

    Attributes:
        service: The service's FQDN.
        old: The view before.
        new: The view now (what ``svc.endpoints`` returns).
    """

    service: str
    old: EndpointSet
    new: EndpointSet
    _diff: list[EndpointDiff] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def diff(self) -> EndpointDiff:
        """``old.diff(new)``, computed once."""
        if not self._diff:
            self._diff.append(self.old.diff(self.new))
        return self._diff[0]

    @property
    def added(self) -> tuple[Endpoint, ...]:
        """Endpoints in *new* and not in *old*."""
        return self.diff.added

    @property
    def removed(self) -> tuple[Endpoint, ...]:
        """Endpoints in *old* and not in *new*."""
        return self.diff.removed


#: Every event type a service publishes.
Event: TypeAlias = EndpointsChanged
