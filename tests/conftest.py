"""Suite-wide switches.

Tests that need a real server beyond BIND9 carry a marker naming it (``coredns``,
``postgres``, ``redis``, ``kafka``, ``chromium``, ``tmux``). ``scripts/test`` installs and builds all
of them, and CI runs every test: a missing server is a failure, never a skip.

A Python-only contributor runs ``scripts/test --python-only`` (or sets
``HEADLESS_CLIENT_PYTHON_ONLY=1``): nothing beyond BIND9 is installed and the tests with
those markers are skipped, each saying why.
"""

from __future__ import annotations

import os

import pytest

#: The real data-store servers (postgres_cluster, redis_pods, kafka_cluster fixtures).
pytest_plugins = ["tests.integration.servers.fixtures"]

#: Markers of tests that need a server the Python-only mode does not install.
SERVER_MARKERS = ("coredns", "postgres", "redis", "kafka", "chromium", "tmux")


def python_only() -> bool:
    """True when the suite runs without the servers beyond BIND9."""
    return os.environ.get("HEADLESS_CLIENT_PYTHON_ONLY", "") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not python_only():
        return
    for item in items:
        needed = [m for m in SERVER_MARKERS if item.get_closest_marker(m) is not None]
        if needed:
            item.add_marker(
                pytest.mark.skip(reason=f"python-only mode: needs {', '.join(needed)} (scripts/test runs it)")
            )
