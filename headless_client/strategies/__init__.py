"""Pick strategies: which pod of a snapshot serves a call.

Every built-in strategy implements the request-aware protocol :class:`RequestStrategy`
(``choose(request, usable, snapshot) -> Endpoint``) and 0.1.0's :class:`Strategy`
(``pick(endpoints, key=None) -> Endpoint``): pure, no I/O, no blocking, safe from many
threads at once. Optional parts (preparation, load tracking, pinning, health pools, a
key-only fast path, leader routing) are described in :mod:`.base`. See
``docs/strategies.md`` for when to use which, guarantees, and measured costs.
"""

from __future__ import annotations

from .base import (
    HealthPooling,
    KeyAffinity,
    KeyPicking,
    LeaderRouting,
    LoadTracking,
    Pinning,
    Preparing,
    RequestStrategy,
    Strategy,
    Watching,
)
from .fallback import Fallback
from .kafka import kafka_partition, murmur2
from .least_loaded import LeastLoaded
from .partition_leader import PartitionLeader
from .primary_replica import PrimaryReplica
from .random_pick import Random
from .round_robin import RoundRobin
from .routing import Router
from .sticky import Sticky, key_hash
from .zone import PreferZone, local_endpoints

__all__ = [
    "Fallback",
    "HealthPooling",
    "KeyAffinity",
    "KeyPicking",
    "LeaderRouting",
    "LeastLoaded",
    "LoadTracking",
    "PartitionLeader",
    "Pinning",
    "PreferZone",
    "Preparing",
    "PrimaryReplica",
    "Random",
    "RequestStrategy",
    "RoundRobin",
    "Router",
    "Sticky",
    "Strategy",
    "Watching",
    "kafka_partition",
    "key_hash",
    "local_endpoints",
    "murmur2",
]
