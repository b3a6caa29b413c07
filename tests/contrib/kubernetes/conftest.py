"""A cluster model served by the fake Kubernetes API, and helpers to wait on a service's view."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from headless_client import EndpointSet, HeadlessService
from headless_client.contrib.kubernetes import EndpointSliceResolver, KubernetesConfig
from headless_client.testing.kube_api import FakeKubeAPI
from headless_client.testing.model import ClusterModel


@pytest.fixture(name="model")
def _model() -> ClusterModel:
    """web.prod (port http 8080), a 3-pod StatefulSet over nodes in zones a and b."""
    model = ClusterModel(max_endpoints_per_slice=100)
    model.add_node("node-a", zone="zone-a")
    model.add_node("node-b", zone="zone-b")
    model.add_service("web", "prod", ports=[("http", 8080)])
    model.add_statefulset("web", "prod", 3, nodes=["node-a", "node-b"])
    return model


@pytest.fixture(name="api")
def _api(model: ClusterModel) -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI(model, bookmark_interval=0.2) as server:
        yield server


def config_for(api: FakeKubeAPI, **changes: object) -> KubernetesConfig:
    return KubernetesConfig(server=api.url, namespace="prod", **changes)  # type: ignore[arg-type]


@pytest.fixture(name="resolver")
def _resolver(api: FakeKubeAPI) -> Iterator[EndpointSliceResolver]:
    with EndpointSliceResolver(config_for(api), timeout=3.0, backoff_min=0.05, backoff_max=0.2) as resolver:
        yield resolver


class Views:
    """Wakes a waiter whenever *svc* publishes a new view."""

    def __init__(self, svc: HeadlessService) -> None:
        self.svc = svc
        self.cond = threading.Condition()
        svc.subscribe(lambda old, new: self._notify())

    def _notify(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def wait(self, predicate: Callable[[EndpointSet], bool], timeout: float = 5.0) -> EndpointSet:
        """The view once *predicate* holds (AssertionError after *timeout*)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.svc.endpoints):
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"not seen within {timeout} s: {self.svc.endpoints!r}"
                self.cond.wait(min(remaining, 0.5))
        return self.svc.endpoints


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Return once *condition()* holds (checked every 10 ms); AssertionError after *timeout*."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
        time.sleep(0.01)
