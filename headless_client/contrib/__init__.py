"""Integrations with third-party clients, each behind an optional extra.

- :mod:`headless_client.contrib.httpx`: ``HeadlessTransport`` / ``AsyncHeadlessTransport``
  for `httpx <https://www.python-httpx.org/>`_ (``pip install 'headless-client[httpx]'``).
"""
