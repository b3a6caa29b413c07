"""Integrations with third-party clients, each behind an optional extra, all built on
:class:`~headless_client.registry.ClientRegistry` or the service's own picks.

- :mod:`headless_client.contrib.grpc`: ``HeadlessChannel`` / ``AsyncHeadlessChannel`` for
  `grpcio <https://grpc.io/>`_ (``pip install 'headless-client[grpc]'``).
- :mod:`headless_client.contrib.requests`: ``HeadlessAdapter`` for
  `requests <https://requests.readthedocs.io/>`_ (``pip install 'headless-client[requests]'``).
- :mod:`headless_client.contrib.aiohttp`: ``HeadlessMiddleware`` for
  `aiohttp <https://docs.aiohttp.org/>`_ (``pip install 'headless-client[aiohttp]'``).
- :mod:`headless_client.contrib.httpx`: ``HeadlessTransport`` / ``AsyncHeadlessTransport``
  for `httpx <https://www.python-httpx.org/>`_ (``pip install 'headless-client[httpx]'``).
- :mod:`headless_client.contrib.postgres` and :mod:`headless_client.contrib.postgres_async`:
  conninfo by address and pod name, role-routed psycopg/psycopg_pool/asyncpg connections
  and pools, and a primary tracker asking ``pg_is_in_recovery()``
  (``pip install 'headless-client[postgres]'``).
- :mod:`headless_client.contrib.redis`: ``RedisShards`` / ``AsyncRedisShards``, keys sharded
  over one redis-py client per pod (``pip install 'headless-client[redis]'``).
- :mod:`headless_client.contrib.kafka`: leader maps from Kafka metadata, a warning for brokers
  that advertise addresses, and a scoped resolver of cluster names (no extra needed).
"""
