"""refresher.py: one refresher thread for every sync service, services held weakly, a
loop that never dies. Against static resolvers and the in-process fake cluster DNS."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable

import pytest

import headless_client as hc
from headless_client.clock import monotonic
from headless_client.refresher import refresher_for
from headless_client.testing import FakeClusterDNS, StaticResolver, statefulset_endpoints

FAST = {"min_refresh": 0.05, "max_refresh": 0.2, "empty_grace": 0.0}


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.005)


def library_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("headless-client")]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_two_hundred_services_cost_a_fixed_handful_of_threads_and_descriptors() -> None:
    """200 services on 1 s TTLs, refreshing against a real DNS server: at most 4 library
    threads and 10 library descriptors, whatever the count; all gone after close."""
    with FakeClusterDNS(ttl=1) as cluster:
        for i in range(20):
            cluster.add_statefulset(f"s{i}", "prod", 2)
        resolver = cluster.resolver()
        fds_before = open_fds()
        services = [
            hc.HeadlessService(f"s{i % 20}.prod", "http", resolver=resolver, min_refresh=1, max_refresh=1)
            for i in range(200)
        ]
        for svc in services:
            svc.start()
            svc.subscribe(lambda old, new: None)
        try:
            assert all(svc.refreshing for svc in services)
            # Two periods of refreshes while counting.
            threads = fds = 0
            end = time.monotonic() + 2.5
            while time.monotonic() < end:
                threads = max(threads, len(library_threads()))
                fds = max(fds, open_fds() - fds_before)
                time.sleep(0.01)
            assert threads <= 4, library_threads()  # whatever earlier tests left running too
            assert fds <= 10, f"{fds} descriptors"
            assert refresher_for(monotonic).service_count() == 200
        finally:
            for svc in services:
                svc.close()
        assert refresher_for(monotonic).service_count() == 0
        wait_until(lambda: open_fds() <= fds_before, 5, "descriptors released")


def test_a_dropped_service_is_collected_and_stops_with_a_resource_warning() -> None:
    """A started service dropped without close() does not live on in the refresher: it
    is collected, warns like an unclosed file, and its refreshes stop."""
    resolver = StaticResolver({"web.prod": statefulset_endpoints("web", "prod", ["10.0.0.1"])})
    base = refresher_for(monotonic).service_count()
    svc = hc.HeadlessService("web.prod", "http", resolver=resolver, **FAST)
    svc.start()
    holder = [svc]
    # A cycle through the service, as users write: the callback holds the service.
    svc.subscribe(lambda old, new, holder=holder: holder[0].endpoints)
    assert refresher_for(monotonic).service_count() == base + 1
    calls = len(resolver.calls)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del svc, holder
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) and "unclosed" in str(w.message) for w in caught)
    wait_until(lambda: refresher_for(monotonic).service_count() == base, 5, "the refresher let go")
    settled = len(resolver.calls)
    assert settled - calls <= 2
    time.sleep(0.3)  # several refresh periods of the dead service: nothing may happen
    assert len(resolver.calls) == settled


class Exploding(StaticResolver):
    """A custom resolver with a bug: its resolve() raises something unexpected."""

    armed = False

    def resolve(self, service, port, *, protocol="tcp", namespace=None):  # type: ignore[override]
        if self.armed:
            raise RuntimeError("a bug in a custom resolver")
        return super().resolve(service, port, protocol=protocol, namespace=namespace)


def test_the_refresher_survives_a_resolver_that_raises_anything(caplog: pytest.LogCaptureFixture) -> None:
    """An unexpected exception in a resolution is logged with its traceback, the last good
    view stays, and refreshing goes on (the next good answer is seen)."""
    resolver = Exploding({"web.prod": statefulset_endpoints("web", "prod", ["10.0.0.1"])})
    with hc.HeadlessService("web.prod", "http", resolver=resolver, **FAST) as svc:
        resolver.armed = True
        with caplog.at_level(logging.ERROR, logger="headless_client"):
            wait_until(lambda: "a bug in a custom resolver" in caplog.text, 5, "the error logged")
        assert svc.refreshing
        assert len(svc.endpoints) == 1
        resolver.armed = False
        resolver.add("web.prod", "10.0.0.2:8080")
        svc.wait_for(2, timeout=5)
        assert "refresher stopped" not in repr(svc)
