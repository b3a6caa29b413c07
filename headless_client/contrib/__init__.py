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
"""
