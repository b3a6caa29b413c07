"""pytest fixtures for testing code that uses headless-client, without Kubernetes.

Loaded automatically once headless-client is installed (a ``pytest11`` entry point).
Fixtures:

``fake_cluster``
    A running :class:`~headless_client.testing.FakeClusterDNS` (function scope), closed
    with all its pod servers after the test. Add what your code expects::

        def test_failover(fake_cluster):
            fake_cluster.add_statefulset("db", "prod", replicas=3, serve="tcp")
            with HeadlessService("db.prod", port="http", resolver=fake_cluster.resolver()) as svc:
                fake_cluster.kill_pod("db", "prod", 0)
                ...

``fake_resolver``
    A :class:`~headless_client.Resolver` asking ``fake_cluster`` (timeout 2 s, namespace
    ``default``).

``fake_kube_api``
    A running :class:`~headless_client.testing.FakeKubeAPI` serving ``fake_cluster``'s
    model (``fake_kube_api.url``), so a Kubernetes API client and DNS see the same pods.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..resolver import Resolver
from .cluster import FakeClusterDNS
from .kube_api import FakeKubeAPI

__all__ = ["fake_cluster", "fake_kube_api", "fake_resolver"]


@pytest.fixture
def fake_cluster() -> Iterator[FakeClusterDNS]:
    """A running fake cluster DNS on loopback; closed after the test."""
    with FakeClusterDNS() as cluster:
        yield cluster


@pytest.fixture
def fake_resolver(fake_cluster: FakeClusterDNS) -> Resolver:
    """A Resolver asking the ``fake_cluster``."""
    return fake_cluster.resolver()


@pytest.fixture
def fake_kube_api(fake_cluster: FakeClusterDNS) -> Iterator[FakeKubeAPI]:
    """A fake Kubernetes API serving ``fake_cluster``'s model; closed after the test."""
    with FakeKubeAPI(fake_cluster.model) as api:
        yield api
