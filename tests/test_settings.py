"""_settings.py and the checks around it: bad input gets a documented error naming the bad
value, at construction or at the call, on both twins; never a bare error from deep inside,
a hang, or a dead background thread."""

from __future__ import annotations

import asyncio
import math
import ssl
import threading
from typing import Any

import pytest

import headless_client as hc
from headless_client.cli import main as cli_main
from headless_client.testing import AsyncStaticResolver, StaticResolver, statefulset_endpoints

PODS = statefulset_endpoints("web", "prod", ["10.0.0.1", "10.0.0.2"])
INF = math.inf


def sync_service(**kwargs: Any) -> hc.HeadlessService:
    kwargs.setdefault("resolver", StaticResolver({"web.prod": PODS}))
    return hc.HeadlessService("web.prod", kwargs.pop("port", "http"), **kwargs)


def async_service(**kwargs: Any) -> hc.AsyncHeadlessService:
    kwargs.setdefault("resolver", AsyncStaticResolver({"web.prod": PODS}))
    return hc.AsyncHeadlessService("web.prod", kwargs.pop("port", "http"), **kwargs)


BUILDERS = [sync_service, async_service]


@pytest.mark.parametrize("build", BUILDERS, ids=["sync", "async"])
@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"empty_grace": INF}, "empty_grace"),
        ({"min_refresh": INF, "max_refresh": INF}, "min_refresh"),
        ({"max_refresh": INF}, "max_refresh"),
        ({"max_refresh": 10**9}, "max_refresh"),
        ({"min_refresh": 0.001}, "min_refresh"),
        ({"min_refresh": math.nan}, "min_refresh"),
        ({"jitter": 1.5}, "jitter"),
        ({"refresh": hc.RefreshPolicy(), "min_refresh": -1}, "min_refresh"),
    ],
)
def test_non_finite_or_overflowing_settings_are_refused_at_construction(build, kwargs, needle) -> None:
    """Settings that would kill or freeze the refresher are refused with InvalidName
    naming the setting and the value."""
    with pytest.raises(hc.InvalidName, match=needle):
        build(**kwargs)


@pytest.mark.parametrize("build", BUILDERS, ids=["sync", "async"])
@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"backoff": "x"}, hc.InvalidArgument, "backoff"),
        ({"strategy": hc.Sticky}, hc.InvalidArgument, r"Sticky\(\)"),
        ({"strategy": object()}, hc.InvalidArgument, "choose"),
        ({"resolver": "10.96.0.10"}, hc.InvalidArgument, r"nameservers=\['10.96.0.10'\]"),
        ({"resolver": hc.Resolver}, hc.InvalidArgument, "instance"),
        ({"port": None}, hc.InvalidName, "port is required"),
        ({"port": 70000}, hc.InvalidName, "70000"),
        ({"port": 1.5}, hc.InvalidArgument, "1.5"),
        ({"health": "x"}, hc.InvalidArgument, "HealthPolicy"),
        ({"connect": hc.ConnectPolicy(timeout=1), "refresh": 5}, hc.InvalidArgument, "RefreshPolicy"),
        ({"clock": 5}, hc.InvalidArgument, "clock"),
    ],
)
def test_wrong_arguments_are_named(build, kwargs, error, needle) -> None:
    """Wrong types and missing arguments are refused at construction with a documented
    error that says what to pass instead."""
    with pytest.raises(error, match=needle):
        build(**kwargs)


def test_infinite_resolver_timeout_is_refused() -> None:
    """Resolver(timeout=inf) is refused: it used to overflow refresh(), wait_for() and close()."""
    for bad in (INF, -1, 0, 7200):
        with pytest.raises(hc.InvalidName, match="timeout"):
            hc.Resolver(["127.0.0.1"], timeout=bad)


def test_a_nameserver_with_a_non_ascii_port_is_invalid_name() -> None:
    """A superscript digit in the port is InvalidName, not a bare ValueError."""
    with pytest.raises(hc.InvalidName, match="127.0.0.1:²"):
        hc.Resolver(nameservers=["127.0.0.1:²"])


def test_the_cli_says_one_line_for_a_bad_nameserver(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI prints one clear line and exits 2 for the same input, no traceback."""
    assert cli_main(["resolve", "web.prod", "--port", "http", "--nameserver", "127.0.0.1:²"]) == 2
    err = capsys.readouterr().err
    assert "127.0.0.1:²" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_sync_call_arguments() -> None:
    """connect/wait_for/report_failure arguments of the sync twin."""
    with sync_service() as svc:
        with pytest.raises(hc.InvalidName, match="timeout"):
            svc.connect(timeout=INF)
        with pytest.raises(hc.InvalidArgument, match="source_address"):
            svc.connect(source_address="x")  # type: ignore[arg-type]
        with pytest.raises(hc.InvalidArgument, match="ssl_context"):
            svc.connect(ssl_context="x")  # type: ignore[arg-type]
        with pytest.raises(hc.InvalidName, match="min_endpoints"):
            svc.wait_for(-1)
        assert svc.wait_for(2, timeout=INF) == svc.endpoints  # infinity means no limit
        svc.report_failure("web-0")  # a pod name is accepted
        svc.report_failure(1)  # and an ordinal
        assert svc.healthy_endpoints == svc.endpoints  # two of two ejected: panic, all used
        with pytest.raises(hc.EndpointNotFound, match="web-9"):
            svc.report_failure("web-9")
        with pytest.raises(hc.InvalidArgument, match="Endpoint"):
            svc.report_failure(["web-0"])  # type: ignore[arg-type]


def test_async_call_arguments() -> None:
    """The same arguments on the asyncio twin get the same errors."""

    async def main() -> None:
        async with async_service() as svc:
            with pytest.raises(hc.InvalidName, match="timeout"):
                await svc.connect(timeout=INF)
            with pytest.raises(hc.InvalidArgument, match="source_address"):
                await svc.connect(source_address="x")  # type: ignore[arg-type]
            with pytest.raises(hc.InvalidArgument, match="ssl_context"):
                await svc.connect(ssl_context="x")  # type: ignore[arg-type]
            with pytest.raises(hc.InvalidName, match="min_endpoints"):
                await svc.wait_for(-1)
            assert await svc.wait_for(2, timeout=INF) == svc.endpoints
            svc.report_failure("web-0")
            with pytest.raises(hc.EndpointNotFound):
                svc.report_failure(9)

    asyncio.run(main())


@pytest.mark.parametrize("build", BUILDERS, ids=["sync", "async"])
def test_pick_before_start_says_not_started(build) -> None:
    """pick() on a never-started service raises ServiceNotStarted (a NoEndpointsAvailable)
    saying what to do, instead of "the set is empty"."""
    svc = build()
    with pytest.raises(hc.ServiceNotStarted, match=r"start\(\)"):
        svc.pick()
    with pytest.raises(hc.NoEndpointsAvailable):
        svc.pick(key="x")


def test_closed_services_raise_service_closed() -> None:
    """start, refresh and wait_for on a closed service raise ServiceClosed on both twins."""
    svc = sync_service()
    svc.close()
    for call in (svc.start, svc.refresh, lambda: svc.wait_for(1)):
        with pytest.raises(hc.ServiceClosed, match="closed"):
            call()

    async def main() -> None:
        asvc = async_service()
        await asvc.close()
        for call in (asvc.start, asvc.refresh, lambda: asvc.wait_for(1)):
            with pytest.raises(hc.ServiceClosed, match="closed"):
                await call()

    asyncio.run(main())


def test_async_close_from_another_loop_cancels_without_error() -> None:
    """close() of an asyncio service from a loop it does not belong to cancels its
    refresher task (thread-safely) instead of raising a bare RuntimeError."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        svc = asyncio.run_coroutine_threadsafe(_started(), loop).result(10)
        assert svc.refreshing
        asyncio.run(svc.close())  # another loop, another thread
        assert svc.closed

        async def task_done() -> bool:
            for _ in range(100):
                if not svc.refreshing:
                    return True
                await asyncio.sleep(0.01)
            return False

        assert asyncio.run_coroutine_threadsafe(task_done(), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _started() -> hc.AsyncHeadlessService:
    svc = async_service()
    await svc.start()
    return svc


def test_policies_validate_their_own_fields() -> None:
    """The value objects refuse bad fields themselves."""
    with pytest.raises(hc.InvalidName, match="attempts"):
        hc.ConnectPolicy(attempts=0)
    with pytest.raises(hc.InvalidName, match="total_timeout"):
        hc.ConnectPolicy(total_timeout=INF)
    with pytest.raises(hc.InvalidArgument, match="timeout"):
        hc.ConnectPolicy(timeout="2")  # type: ignore[arg-type]
    with pytest.raises(hc.InvalidName, match="max_ejected"):
        hc.HealthPolicy(max_ejected=2)
    with pytest.raises(hc.InvalidName, match="base_ejection"):
        hc.HealthPolicy(base_ejection=INF)
    assert isinstance(ssl.create_default_context(), ssl.SSLContext)  # the documented kind


def test_a_source_whose_empty_answers_are_final_gets_no_empty_grace() -> None:
    """A resolver with empty_is_final (the Kubernetes API source) makes the default
    empty_grace 0; an explicit one still wins."""

    class Final(StaticResolver):
        empty_is_final = True

    resolver = Final({"web.prod": PODS})
    assert sync_service(resolver=resolver).core.refresh_policy.empty_grace == 0
    assert sync_service(resolver=resolver, empty_grace=3).core.refresh_policy.empty_grace == 3
    assert sync_service().core.refresh_policy.empty_grace == 5
