"""Pick strategies: which pod of a snapshot serves a request.

Every strategy implements :class:`Strategy` (``pick(endpoints, key=None) -> Endpoint``):
pure, no I/O, no blocking, safe from many threads at once. Strategies that want to know
about requests in flight also implement :class:`LoadTracking`. See ``docs/strategies.md``
for when to use which, guarantees, and measured costs.
"""

from __future__ import annotations

from .base import LoadTracking, Strategy
from .fallback import Fallback
from .kafka import kafka_partition, murmur2
from .least_loaded import LeastLoaded
from .partition_leader import PartitionLeader
from .primary_replica import PrimaryReplica
from .random_pick import Random
from .round_robin import RoundRobin
from .sticky import Sticky, key_hash

__all__ = [
    "Fallback",
    "LeastLoaded",
    "LoadTracking",
    "PartitionLeader",
    "PrimaryReplica",
    "Random",
    "RoundRobin",
    "Sticky",
    "Strategy",
    "kafka_partition",
    "key_hash",
    "murmur2",
]
