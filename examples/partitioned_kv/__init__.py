"""A partitioned key-value store routed Kafka style with headless-client (see README.md)."""

from .client import KVClient, KVError
from .server import KVCluster, KVPod, LeaderTable, ReplicatedStore, partition_of

__all__ = ["KVClient", "KVCluster", "KVError", "KVPod", "LeaderTable", "ReplicatedStore", "partition_of"]
