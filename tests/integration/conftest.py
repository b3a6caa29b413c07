"""Fixtures of the BIND9 test ground (implementation in :mod:`tests.integration.dnsground`).

- ``bind`` (session): a running :class:`BindServer` serving :data:`GROUND`.
- ``new_service`` (function): factory ``new_service(replicas=3, *, port=8080, ...)`` of private
  :class:`FreshService` objects, deleted after the test. ``fresh_service``: one with defaults.
- ``pod_port`` (session): one TCP port free on loopback, shared by all pod servers.
- ``loopback_pods`` (function): a :class:`PodServers` on ``pod_port``, closed after the test.
- ``black_hole`` (function): factory ``black_hole(address="127.0.0.1", port=0)`` of
  :class:`BlackHole` listeners, closed after the test.
- ``coredns_binary`` (session): the CoreDNS executable built by ``scripts/install/coredns.sh``;
  a test using it fails, saying to run that script, when it is missing.
- ``grounds`` (session): :class:`tests.integration.coredns.Grounds`: one cluster model served
  by real CoreDNS (through the fake Kubernetes API), a BIND ``named`` and ``FakeClusterDNS``.

A test that stops named gets it restarted afterwards, so one failure does not cascade.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.coredns import COREDNS_MISSING, CoreDNSError, Grounds, coredns_version, find_coredns
from tests.integration.dnsground import (
    NAMED_MISSING,
    BindServer,
    BlackHole,
    FreshService,
    GroundError,
    PodServers,
    find_named,
    free_port,
)


@pytest.fixture(scope="session")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    named = find_named()
    if named is None:
        pytest.fail(NAMED_MISSING, pytrace=False)
    server = BindServer(tmp_path_factory.mktemp("bind"), named=named)
    try:
        server.start()
    except GroundError as exc:
        server.close()
        pytest.fail(f"BIND9 test ground did not start: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(autouse=True)
def _bind_back_up(request: pytest.FixtureRequest) -> Iterator[None]:
    """Restart named after a test that left it stopped (only where ``bind`` is in use)."""
    yield
    if "bind" in request.fixturenames:
        server: BindServer = request.getfixturevalue("bind")
        if not server.running:
            server.start()


@pytest.fixture
def new_service(bind: BindServer) -> Iterator[Callable[..., FreshService]]:
    made: list[FreshService] = []

    def make(replicas: int = 3, **kwargs: Any) -> FreshService:
        fresh = bind.new_service(replicas, **kwargs)
        made.append(fresh)
        return fresh

    yield make
    if not bind.running:
        bind.start()
    for fresh in made:
        fresh.delete(missing_ok=True)


@pytest.fixture
def fresh_service(new_service: Callable[..., FreshService]) -> FreshService:
    return new_service()


@pytest.fixture(scope="session")
def pod_port() -> int:
    return free_port("127.0.0.1", udp=False)


@pytest.fixture
def loopback_pods(pod_port: int) -> Iterator[PodServers]:
    with PodServers(pod_port) as pods:
        yield pods


@pytest.fixture
def black_hole() -> Iterator[Callable[..., BlackHole]]:
    made: list[BlackHole] = []

    def make(address: str = "127.0.0.1", port: int = 0) -> BlackHole:
        hole = BlackHole(address, port)
        made.append(hole)
        return hole

    yield make
    for hole in made:
        hole.close()


@pytest.fixture(scope="session")
def coredns_binary() -> str:
    binary = find_coredns()
    if binary is None:
        pytest.fail(COREDNS_MISSING.format(version=coredns_version()), pytrace=False)
    return binary


@pytest.fixture(scope="session")
def grounds(coredns_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grounds]:
    named = find_named()
    if named is None:
        pytest.fail(NAMED_MISSING, pytrace=False)
    try:
        made = Grounds(coredns_binary, tmp_path_factory.mktemp("grounds"), named=named)
    except (CoreDNSError, GroundError) as exc:
        pytest.fail(f"the conformance grounds did not start: {exc}", pytrace=False)
    try:
        yield made
    finally:
        made.close()
