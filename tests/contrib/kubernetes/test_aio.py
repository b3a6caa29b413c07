"""AsyncEndpointSliceResolver against the fake Kubernetes API, on a strict event loop."""

from __future__ import annotations

import asyncio

import pytest

from headless_client import AsyncHeadlessService, EndpointSet
from headless_client.contrib.kubernetes import AsyncEndpointSliceResolver
from headless_client.errors import KubernetesForbidden, ServiceNotFound
from headless_client.testing.kube_api import FakeKubeAPI
from headless_client.testing.model import ClusterModel
from tests.aio_support import run_strict

from .conftest import config_for

SLOW = {"min_refresh": 30.0, "max_refresh": 60.0}


async def seen(svc: AsyncHeadlessService, predicate: object, timeout: float = 5.0) -> EndpointSet:
    """The view once *predicate* holds (AssertionError after *timeout*)."""
    changed = asyncio.Event()
    unsubscribe = svc.subscribe(lambda old, new: changed.set())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not predicate(svc.endpoints):  # type: ignore[operator]
            remaining = deadline - loop.time()
            assert remaining > 0, f"not seen within {timeout} s: {svc.endpoints!r}"
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), min(remaining, 0.5))
            except asyncio.TimeoutError:
                pass
    finally:
        unsubscribe()
    return svc.endpoints


def test_async_service_sees_changes_at_once(model: ClusterModel, api: FakeKubeAPI) -> None:
    """An AsyncHeadlessService over the async resolver sees scale-up, a terminating pod and
    150 pods over two slices through the watch."""

    async def main() -> None:
        async with AsyncEndpointSliceResolver(config_for(api), timeout=3, backoff_min=0.05) as resolver:
            assert (await resolver.resolve("web", "http")).ordinals == (0, 1, 2)
            async with AsyncHeadlessService("web.prod", port="http", resolver=resolver, **SLOW) as svc:
                await asyncio.to_thread(model.scale, "web", "prod", 4)
                await seen(svc, lambda eps: len(eps) == 4)
                await asyncio.to_thread(model.terminate_pod, "web-3", "prod")
                await seen(svc, lambda eps: eps.by_ordinal(3) is not None and eps.by_ordinal(3).terminating)
                assert 3 not in {svc.pick().ordinal for _ in range(12)}
                await asyncio.to_thread(model.scale, "web", "prod", 150)  # the model blocks
                eps = await seen(svc, lambda eps: len(eps) == 150)
                assert eps.ordinals == tuple(range(150))
            (pod,) = await resolver.resolve_host("web-7.web.prod.svc.cluster.local", 80)
            assert pod.ordinal == 7

    run_strict(main)


def test_async_api_down_then_back(model: ClusterModel, api: FakeKubeAPI) -> None:
    """While the API is down the last view stays; afterwards the changes arrive."""

    async def main() -> None:
        config = config_for(api)
        async with AsyncEndpointSliceResolver(config, timeout=3, backoff_min=0.05, backoff_max=0.2) as resolver, \
                AsyncHeadlessService("web.prod", port="http", resolver=resolver, **SLOW) as svc:
            await asyncio.to_thread(api._stop)
            await asyncio.to_thread(model.scale, "web", "prod", 5)
            assert len(await resolver.resolve("web", "http")) == 3
            await asyncio.to_thread(api.start)
            await seen(svc, lambda eps: len(eps) == 5)

    run_strict(main, slow_callback=0.5)


def test_async_errors(api: FakeKubeAPI) -> None:
    """403 and an unknown Service raise the same errors as the blocking resolver."""

    async def main() -> None:
        async with AsyncEndpointSliceResolver(config_for(api), timeout=2) as resolver:
            with pytest.raises(ServiceNotFound):
                await resolver.resolve("nope", "http")
            api.fault = "forbidden"
            with pytest.raises(KubernetesForbidden, match="namespace 'other'"):
                await resolver.resolve("web.other", "http")

    run_strict(main)


def test_async_node_zone(api: FakeKubeAPI) -> None:
    """The node's zone label is read through the API, awaited."""

    async def main() -> None:
        async with AsyncEndpointSliceResolver(config_for(api), timeout=2) as resolver:
            assert await resolver.node_zone("node-a") == "zone-a"
            assert await resolver.own_zone(environ={"NODE_NAME": "node-b"}) == "zone-b"

    run_strict(main)
