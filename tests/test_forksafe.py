"""Fork safety: services started before ``os.fork()`` work in the child, and the parent is
unaffected. Every test forks for real (``os.fork`` or multiprocessing's fork context),
talks to a real DNS server on loopback (FakeClusterDNS, served by the parent), and bounds
every wait; a child that hangs is killed and fails the test.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import headless_client as hc
from headless_client.testing import FakeClusterDNS

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    # Python 3.12+ warns about forking a process with threads; forking one is the point.
    pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork.*:DeprecationWarning"),
]

FAST = {"min_refresh": 0.05, "max_refresh": 0.2, "empty_grace": 0.0}
CHILD_DEADLINE = 20.0


@pytest.fixture
def cluster() -> Iterator[FakeClusterDNS]:
    with FakeClusterDNS() as c:
        c.add_statefulset("web", "prod", 3)
        yield c


def fork_child(body: Callable[[], None]) -> int:
    """Run *body* in a forked child; returns the child's pid. The child exits 0 when
    *body* returns, 1 when it raises (printing why), never running the parent's cleanup."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            body()
            code = 0
        except BaseException as exc:
            os.write(2, f"child failed: {exc!r}\n".encode())
        finally:
            os._exit(code)
    return pid


def wait_child(pid: int, deadline: float = CHILD_DEADLINE) -> int:
    """The child's exit status; kills it and fails after *deadline* seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"child {pid} did not finish within {deadline}s (killed)")


def test_child_sees_a_scale_up_with_a_refresher_of_its_own(cluster: FakeClusterDNS) -> None:
    """A service started before fork keeps its view in the child, refreshes there on its
    own (the refresher restarts at fork), and sees a scale-up; the parent sees it too."""
    with hc.HeadlessService("web.prod", "http", resolver=cluster.resolver(), **FAST) as svc:
        assert len(svc.endpoints) == 3

        def child() -> None:
            assert len(svc.endpoints) == 3  # the last good view, carried over
            assert svc.refreshing
            svc.wait_for(5, timeout=10)
            assert svc.pick().port > 0
            svc.refresh()
            svc.close()

        pid = fork_child(child)
        cluster.scale("web", "prod", 5)
        assert wait_child(pid) == 0
        svc.wait_for(5, timeout=10)
        assert svc.refreshing


def test_childs_close_leaves_the_parent_refreshing(cluster: FakeClusterDNS) -> None:
    """A child closing its copy of the service stops nothing in the parent: no shared
    wake-up socket, the parent's refresher keeps its schedule and sees the next change."""
    with hc.HeadlessService("web.prod", "http", resolver=cluster.resolver(), **FAST) as svc:
        pid = fork_child(svc.close)
        assert wait_child(pid) == 0
        assert svc.refreshing
        cluster.scale("web", "prod", 4)
        svc.wait_for(4, timeout=10)
        start = time.process_time()
        cluster.fault = "drop"  # DNS black-holed: the parent must wait, not spin
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            time.sleep(0.05)  # the measured interval itself, not a synchronisation
        cpu = time.process_time() - start
        cluster.fault = None
        assert cpu < 0.5, f"the parent burnt {cpu:.2f}s of CPU in 1s of DNS outage"


class SlowPrepare(hc.RoundRobin):
    """A strategy whose per-view preparation blocks until released (a long ring build)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.block = False

    def prepare(self, endpoints: hc.EndpointSet) -> None:
        if self.block:
            self.entered.set()
            self.release.wait(10)


def test_fork_while_the_view_is_being_rebuilt(cluster: FakeClusterDNS) -> None:
    """Forked while another thread holds the core's lock (a slow rebuild), the child still
    reports failures and picks: it got fresh locks."""
    strategy = SlowPrepare()
    with hc.HeadlessService("web.prod", "http", resolver=cluster.resolver(), strategy=strategy,
                            min_refresh=5, max_refresh=10) as svc:
        victim = svc.endpoint(ordinal=0)
        strategy.block = True
        holder = threading.Thread(target=svc.report_failure, args=(svc.endpoint(ordinal=1),))
        holder.start()
        assert strategy.entered.wait(5)

        def child() -> None:
            strategy.block = False
            svc.report_failure(victim)
            assert svc.pick() in svc.endpoints
            svc.close()

        try:
            pid = fork_child(child)
        finally:
            strategy.release.set()
            holder.join(5)
        assert wait_child(pid) == 0


def _mp_child(svc: hc.HeadlessService, wanted: int, result: multiprocessing.queues.Queue) -> None:
    try:
        svc.wait_for(wanted, timeout=10)
        result.put(("ok", sorted(ep.ordinal for ep in svc.endpoints)))
    except BaseException as exc:  # pragma: no cover - reported to the parent
        result.put(("error", repr(exc)))
    finally:
        svc.close()


def test_multiprocessing_fork_context(cluster: FakeClusterDNS) -> None:
    """A worker started with multiprocessing's fork context refreshes the inherited
    service and sees a scale-up."""
    ctx = multiprocessing.get_context("fork")
    result = ctx.Queue()
    with hc.HeadlessService("web.prod", "http", resolver=cluster.resolver(), **FAST) as svc:
        worker = ctx.Process(target=_mp_child, args=(svc, 4, result))
        worker.start()
        cluster.scale("web", "prod", 4)
        worker.join(CHILD_DEADLINE)
        if worker.is_alive():
            worker.kill()
            worker.join(5)
            raise AssertionError("the worker did not finish")
        assert worker.exitcode == 0
        assert result.get(timeout=5) == ("ok", [0, 1, 2, 3])


def test_asyncio_service_moves_to_the_childs_loop(cluster: FakeClusterDNS) -> None:
    """An asyncio service started on the parent's loop works in a forked child on a new
    loop: it refreshes, waits and closes there."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> hc.AsyncHeadlessService:
        svc = hc.AsyncHeadlessService("web.prod", "http", resolver=cluster.async_resolver(), **FAST)
        await svc.start()
        return svc

    svc = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:

        def child() -> None:
            async def main() -> None:
                assert len(svc.endpoints) == 3
                await svc.refresh()
                await svc.wait_for(4, timeout=10)
                assert svc.refreshing
                await svc.close()

            asyncio.run(main())

        pid = fork_child(child)
        cluster.scale("web", "prod", 4)
        assert wait_child(pid) == 0
    finally:
        asyncio.run_coroutine_threadsafe(svc.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
