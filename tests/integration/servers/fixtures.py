"""Pytest fixtures of the real data-store servers (a plugin: ``tests/conftest.py`` loads it).

- ``postgres_cluster`` (session): :class:`PostgresCluster`, a primary and two streaming
  standbys (``pg-0``..``pg-2`` on 127.0.40.1-3), TLS by per-pod name. Marker ``postgres``.
- ``redis_pods`` (session): :class:`RedisPods`, four ``redis-server`` pods (``redis-0``..``redis-3``
  on 127.0.41.1-4), no persistence. Marker ``redis``.
- ``kafka_cluster`` (session): :class:`KafkaCluster`, three KRaft nodes (``kafka-0``..``kafka-2``
  on 127.0.42.1-3) advertising per-pod names to clients. Marker ``kafka``.

Each starts its servers once per session, on first use, and stops them at the end (and at
interpreter exit, or when pytest dies, see :mod:`tests.integration.servers.process`). After every
test that used one, it is put back to normal (``restore()``): stopped pods start again, a
promoted PostgreSQL standby makes the cluster rebuild, Redis pods are emptied. Pods that moved to
a new address stay there: read addresses from the fixture, never hard-code them.

A test using one of these fixtures gets its marker added, so ``scripts/test --python-only``
skips it; otherwise missing software is a failure naming the install script, never a skip.
The start-up time of each is printed in the terminal summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

import pytest

from tests.integration.servers.kafka import KafkaCluster
from tests.integration.servers.postgres import PostgresCluster
from tests.integration.servers.process import ServerError, ServerMissing
from tests.integration.servers.redis import RedisPods

#: Fixture name -> the marker a test using it must carry.
SERVER_FIXTURES = {"postgres_cluster": "postgres", "redis_pods": "redis", "kafka_cluster": "kafka"}

_startup_seconds: dict[str, float] = {}
_live: dict[str, _Ground] = {}


class _Ground(Protocol):
    startup_seconds: float | None

    def start(self) -> None: ...

    def restore(self) -> None: ...

    def close(self) -> None: ...


G = TypeVar("G", bound=_Ground)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the server fixtures they use (before the python-only switch reads marks)."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        for fixture, marker in SERVER_FIXTURES.items():
            if fixture in names and item.get_closest_marker(marker) is None:
                item.add_marker(getattr(pytest.mark, marker))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _startup_seconds:
        figures = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in _startup_seconds.items())
        terminalreporter.write_line(f"server grounds started: {figures}")


def _started(fixture: str, label: str, make: Callable[[], G]) -> G:
    """Build and start a ground; missing software or a failed start fails the test plainly."""
    began = time.monotonic()
    # pytest.fail outside the except blocks, so the report is the message alone, not a chain.
    problem: str | None = None
    try:
        ground = make()
    except ServerMissing as exc:
        problem = str(exc)
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    try:
        ground.start()
    except ServerError as exc:
        problem = f"{label} did not start: {exc}"
    if problem is not None:
        ground.close()
        pytest.fail(problem, pytrace=False)
    _startup_seconds[label] = time.monotonic() - began
    _live[fixture] = ground
    return ground


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = _started("postgres_cluster", "postgres", PostgresCluster)
    try:
        yield cluster
    finally:
        _live.pop("postgres_cluster", None)
        cluster.close()


@pytest.fixture(scope="session")
def redis_pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisPods]:
    pods = _started("redis_pods", "redis", lambda: RedisPods(tmp_path_factory.mktemp("redis")))
    try:
        yield pods
    finally:
        _live.pop("redis_pods", None)
        pods.close()


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = _started("kafka_cluster", "kafka", lambda: KafkaCluster(tmp_path_factory.mktemp("kafka")))
    try:
        yield cluster
    finally:
        _live.pop("kafka_cluster", None)
        cluster.close()


@pytest.fixture(autouse=True)
def _server_grounds_back_to_normal(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used a server ground, restore its normal shape for the next one."""
    yield
    for name in SERVER_FIXTURES:
        ground = _live.get(name)  # absent when its start failed: nothing to restore
        if ground is not None and name in request.fixturenames:
            ground.restore()
