"""Real data-store servers for the integration tests: PostgreSQL, Redis and Kafka on loopback.

- :mod:`.postgres`: a primary and two streaming standbys (``pg-0``..``pg-2``, 127.0.40.x).
- :mod:`.redis`: ``redis-server`` pods (``redis-0``..``redis-3``, 127.0.41.x).
- :mod:`.kafka`: a 3-node KRaft cluster advertising per-pod names (``kafka-0``..``kafka-2``,
  127.0.42.x).
- :mod:`.fixtures`: the session fixtures ``postgres_cluster``, ``redis_pods``, ``kafka_cluster``
  (loaded by ``tests/conftest.py``).
- :mod:`.process`: child processes, ports and bounded waits they share.

The software comes from ``scripts/install/{postgres,redis,kafka}.sh`` (run by ``scripts/test``).
"""
