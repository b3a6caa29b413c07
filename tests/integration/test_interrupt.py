"""close() does not wait for a query stuck on a silent nameserver."""

from __future__ import annotations

import socket
import threading
import time

import pytest

import headless_client as hc
from headless_client.resolver import Interrupt

pytestmark = pytest.mark.integration


@pytest.fixture(name="silent")
def _silent():
    """A UDP port that swallows every query (bound, never read)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def test_interrupt_ends_a_blocked_resolve(silent):
    """A resolve waiting on a silent server returns as soon as the interrupt is set."""
    resolver = hc.Resolver([silent], timeout=5)
    interrupt = Interrupt()
    errors = []

    def call():
        with resolver._interruptible(interrupt):
            try:
                resolver.resolve("web.prod", 80)
            except hc.ResolutionError as exc:
                errors.append(exc)

    worker = threading.Thread(target=call)
    start = time.monotonic()
    worker.start()
    interrupt.set()
    worker.join(5)
    interrupt.close()
    assert not worker.is_alive()
    assert time.monotonic() - start < 1.0
    assert "interrupted" in str(errors[0])


def test_close_during_inflight_refresh_is_prompt(bind, silent):
    """close() while the refresher waits on a black-holed server returns at once, no thread left."""
    resolver = hc.Resolver([bind.nameserver, silent], timeout=4)
    svc = hc.HeadlessService("web.prod", "http", resolver=resolver, min_refresh=0.1, max_refresh=0.2)
    with svc:
        assert len(svc.endpoints) == 3
        # From now on only the silent server is asked.
        resolver.nameservers = (resolver.nameservers[1],)
        assert svc.refreshing
        # Wait until a refresh is in flight against the silent server (the view stays):
        # the next one is due within 0.2 s and then waits on the silent server for 4 s.
        deadline = time.monotonic() + 3
        while not svc.core.resolving:
            assert time.monotonic() < deadline, "no refresh in flight"
            threading.Event().wait(0.01)
        start = time.monotonic()
    elapsed = time.monotonic() - start
    assert elapsed < 0.5
    assert not svc.refreshing
    assert len(svc.endpoints) == 3
