"""headless_client.contrib.grpc: channels that send each call to a pod, against real grpcio
servers on loopback pod addresses, named by a fake cluster DNS."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

grpc = pytest.importorskip("grpc")
trustme = pytest.importorskip("trustme")

from headless_client import (  # noqa: E402
    AsyncHeadlessService,
    HeadlessService,
    InvalidArgument,
    InvalidName,
    LeastLoaded,
    NoEndpointsAvailable,
    PartitionLeader,
    RoundRobin,
    ServiceClosed,
    Sticky,
)
from headless_client.contrib.grpc import AsyncHeadlessChannel, HeadlessChannel, NoPodError  # noqa: E402
from headless_client.testing import FakeClusterDNS, StaticResolver  # noqa: E402
from tests.aio_support import run_strict  # noqa: E402
from tests.contrib.grpc_pods import CHAT, COUNT, ECHO, SLOW, SUM, WHO, GrpcPods  # noqa: E402

FAST = {"min_refresh": 0.05, "max_refresh": 0.2, "empty_grace": 0.0}


@pytest.fixture
def cluster() -> Iterator[FakeClusterDNS]:
    with FakeClusterDNS() as c:
        yield c


@pytest.fixture
def pods(cluster: FakeClusterDNS) -> Iterator[GrpcPods]:
    with GrpcPods(cluster) as p:
        yield p


def service(cluster: FakeClusterDNS, strategy: object = None) -> HeadlessService:
    return HeadlessService("web.prod", port="http", resolver=cluster.resolver(),
                           strategy=strategy or RoundRobin(), **FAST)


def names(replies: list[bytes]) -> list[str]:
    return [r.decode() for r in replies]


def call_until(who, wanted: str, timeout: float = 5.0) -> tuple[int, list[BaseException]]:
    """Call *who* until *wanted* answers (bounded); returns (calls made, errors seen)."""
    errors: list[BaseException] = []
    deadline = time.monotonic() + timeout
    calls = 0
    while time.monotonic() < deadline:
        calls += 1
        try:
            if who(b"", timeout=2).decode() == wanted:
                return calls, errors
        except grpc.RpcError as exc:
            errors.append(exc)
    raise AssertionError(f"{wanted} never answered in {timeout}s ({calls} calls, errors {errors})")


def wait_received(pods: GrpcPods, pod: str | None, handler: str, timeout: float = 5.0) -> None:
    """Wait until a pod's server (*pod*, or any) has received a call to *handler*."""
    deadline = time.monotonic() + timeout
    while not any(kind == handler and pod in (None, name) for name, kind in list(pods.received)):
        assert time.monotonic() < deadline, f"{pod or 'no pod'} received no {handler} call"
        threading.Event().wait(0.01)


# --------------------------------------------------------------------------------------------
# Calls
# --------------------------------------------------------------------------------------------


def test_calls_are_spread_round_robin_over_the_pods(cluster, pods) -> None:
    """Each unary call goes to the next pod, over one long-lived channel per pod."""
    with service(cluster) as svc, HeadlessChannel(svc) as channel:
        who = channel.unary_unary(WHO)
        assert names([who(b"") for _ in range(6)]) == ["web-0", "web-1", "web-2"] * 2
        assert len(channel.registry.clients()) == 3


def test_all_four_call_kinds_and_futures(cluster, pods) -> None:
    """unary-unary (call, with_call, future), unary-stream, stream-unary, stream-stream."""
    with service(cluster) as svc, HeadlessChannel(svc) as channel:
        response, call = channel.unary_unary(WHO).with_call(b"")
        assert response == b"web-0" and call.code() == grpc.StatusCode.OK
        assert channel.unary_unary(WHO).future(b"").result(timeout=5) == b"web-1"
        assert list(channel.unary_stream(COUNT)(b"3")) == [b"web-2"] * 3
        assert channel.stream_unary(SUM)(iter([b"ab", b"c"])) == b"web-0:3"
        response, call = channel.stream_unary(SUM).with_call(iter([b"x"]))
        assert response == b"web-1:1"
        assert channel.stream_unary(SUM).future(iter([b"yz"])).result(timeout=5) == b"web-2:2"
        assert list(channel.stream_stream(CHAT)(iter([b"1", b"2"]))) == [b"web-0:1", b"web-0:2"]
        # every call ended: nothing counted in flight, every lease settled
        assert pods.calls == {"web-0": 3, "web-1": 2, "web-2": 2}


def test_routing_metadata_is_used_and_not_sent(cluster, pods) -> None:
    """headless-client-key/-ordinal pick the pod and never reach the server; the user's
    own key_metadata entry is used and sent."""
    with service(cluster, Sticky()) as svc, HeadlessChannel(svc) as channel:
        echo = channel.unary_unary(ECHO)
        replies = {echo(b"", metadata=[("headless-client-key", "alice"), ("x-a", "1")]) for _ in range(5)}
        assert len(replies) == 1
        (reply,) = replies
        pod, metadata = reply.decode().split("|")
        assert metadata == "x-a=1"
        assert pod == svc.pick(key="alice").hostname.split(".")[0]
        assert echo(b"", metadata=[("headless-client-ordinal", "2")]).startswith(b"web-2|")
    with service(cluster, Sticky()) as svc, HeadlessChannel(svc, key_metadata="x-user") as channel:
        echo = channel.unary_unary(ECHO)
        replies = {echo(b"", metadata=[("x-user", "bob")]) for _ in range(5)}
        assert len(replies) == 1 and next(iter(replies)).endswith(b"|x-user=bob")
    with service(cluster, Sticky()) as svc, HeadlessChannel(svc, key=lambda method, req: req) as channel:
        who = channel.unary_unary(WHO)
        assert len({who(b"carol") for _ in range(5)}) == 1


def test_partition_leader_by_metadata(cluster, pods) -> None:
    """A partition given in metadata goes to its leader (digits read as an int)."""
    strategy = PartitionLeader({0: 0, 1: 2})
    with service(cluster, strategy) as svc, HeadlessChannel(svc) as channel:
        who = channel.unary_unary(WHO)
        assert {who(b"", metadata=[("headless-client-partition", "1")]) for _ in range(3)} == {b"web-2"}
        with pytest.raises(grpc.RpcError) as info:
            who(b"", metadata=[("headless-client-partition", "7")])
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert isinstance(info.value, NoPodError)


def test_least_loaded_sees_calls_in_flight(cluster) -> None:
    """With one slow call in flight on a pod, LeastLoaded sends the next calls elsewhere."""
    with GrpcPods(cluster, replicas=2) as two, service(cluster, LeastLoaded()) as svc, \
            HeadlessChannel(svc) as channel:
        slow = channel.unary_unary(SLOW).future(b"1.0")
        wait_received(two, None, "slow")
        ((busy, _),) = [k for k in two.received if k[1] == "slow"]
        others = {channel.unary_unary(WHO)(b"") for _ in range(5)}
        assert len(others) == 1 and others != {busy.encode()}
        assert slow.result(timeout=5) == busy.encode()


# --------------------------------------------------------------------------------------------
# Pods coming and going
# --------------------------------------------------------------------------------------------


def test_a_new_pod_gets_calls_without_a_failed_call(cluster, pods) -> None:
    """Scale up: the new pod answers within a refresh or so, and no call fails meanwhile."""
    with service(cluster) as svc, HeadlessChannel(svc) as channel:
        who = channel.unary_unary(WHO)
        assert names([who(b"") for _ in range(3)]) == ["web-0", "web-1", "web-2"]
        pods.add()
        _, errors = call_until(who, "web-3")
        assert errors == []
        assert len(channel.registry.clients()) == 4


def test_a_removed_pods_channel_finishes_its_call_then_closes(cluster, pods) -> None:
    """Scale down: a call in flight on the departed pod completes; then its channel is
    closed and it gets no further call."""
    with service(cluster) as svc, HeadlessChannel(svc) as channel:
        slow = channel.unary_unary(SLOW).future(b"0.5", metadata=[("headless-client-ordinal", "2")])
        gone = svc.endpoint(2)
        wait_received(pods, "web-2", "slow")
        pods.remove(2, grace=5)
        assert slow.result(timeout=5) == b"web-2"
        deadline = time.monotonic() + 5
        while gone in channel.registry.clients() or channel.registry.draining:
            assert time.monotonic() < deadline
            threading.Event().wait(0.01)
        who = channel.unary_unary(WHO)
        assert set(names([who(b"") for _ in range(6)])) == {"web-0", "web-1"}


def test_the_grace_period_bounds_a_call_on_a_departed_pod(cluster, pods) -> None:
    """A call outliving the channel's grace after its pod left is cancelled."""
    with service(cluster) as svc, HeadlessChannel(svc, grace=0.1) as channel:
        slow = channel.unary_unary(SLOW).future(b"5", metadata=[("headless-client-ordinal", "2")])
        wait_received(pods, "web-2", "slow")
        pods.cluster.remove_pod("web", "prod", 2)  # out of DNS; the server keeps running
        with pytest.raises(grpc.RpcError) as info:
            slow.result(timeout=5)
        assert info.value.code() == grpc.StatusCode.CANCELLED


def test_a_killed_pod_fails_once_then_is_avoided(cluster, pods) -> None:
    """A call pinned to a killed pod raises UNAVAILABLE and ejects it; retryable calls
    move to another pod; later calls skip the ejected pod."""
    with service(cluster) as svc, HeadlessChannel(svc, retryable={WHO}) as channel:
        who = channel.unary_unary(WHO)
        pods.kill(1)
        with pytest.raises(grpc.RpcError) as info:
            who(b"", metadata=[("headless-client-ordinal", "1")])
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert [ep.ordinal for ep in svc.healthy_endpoints] == [0, 2]
        for ep in svc.endpoints:  # forget the ejection: web-1 is in the rotation again
            svc.report_success(ep)
        replies = names([who(b"") for _ in range(6)])  # retried on another pod: no error
        assert "web-1" not in replies and len(replies) == 6
        echo = channel.unary_unary(ECHO)  # not retryable: it may fail, never silently
        for ep in svc.endpoints:
            svc.report_success(ep)
        outcomes = []
        for _ in range(3):
            try:
                outcomes.append(echo(b"").split(b"|")[0].decode())
            except grpc.RpcError as exc:
                outcomes.append(exc.code().name)
        assert "UNAVAILABLE" in outcomes or "web-1" not in outcomes


def test_every_pod_down_raises_the_last_unavailable(cluster, pods) -> None:
    """With every pod killed, a retryable call tries each once and raises UNAVAILABLE."""
    with service(cluster) as svc, HeadlessChannel(svc, retryable=True, retries=5) as channel:
        for ordinal in range(3):
            pods.kill(ordinal)
        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary(WHO)(b"", timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert not isinstance(info.value, NoPodError)


def test_an_empty_service_raises_unavailable_caused_by_ours() -> None:
    """No pod: an UNAVAILABLE RpcError whose cause is the library's error."""
    with HeadlessService("web.prod", port="http", resolver=StaticResolver({}), **FAST) as svc, \
            HeadlessChannel(svc) as channel:
        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary(WHO)(b"")
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert isinstance(info.value.__cause__, NoEndpointsAvailable)
        assert "web.prod.svc.cluster.local" in info.value.details()


def test_connectivity_subscription(cluster, pods) -> None:
    """channel_ready_future works on the headless channel; SHUTDOWN after close."""
    with service(cluster) as svc:
        channel = HeadlessChannel(svc)
        grpc.channel_ready_future(channel).result(timeout=5)
        states: list[object] = []
        seen = threading.Event()

        def watch(state) -> None:
            states.append(state)
            seen.set()

        channel.subscribe(watch, try_to_connect=True)
        assert seen.wait(5)
        assert states[-1] == grpc.ChannelConnectivity.READY
        channel.unsubscribe(watch)
        channel.close()
        with pytest.raises(ServiceClosed):  # closed: no call goes anywhere
            channel.unary_unary(WHO)(b"")


# --------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------


def test_tls_checks_each_pods_own_name(cluster) -> None:
    """Each pod proves its own FQDN while the channel dials its address; a certificate for
    another name is refused."""
    ca = trustme.CA()
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
    wrong = {1: ("web-0.web.prod.svc.cluster.local",)}  # web-1 shows web-0's certificate
    with GrpcPods(cluster, ca=ca, cert_names=wrong), service(cluster) as svc, \
            HeadlessChannel(svc, credentials=credentials) as channel:
        who = channel.unary_unary(WHO)
        assert who(b"", metadata=[("headless-client-ordinal", "0")]) == b"web-0"
        assert who(b"", metadata=[("headless-client-ordinal", "2")]) == b"web-2"
        with pytest.raises(grpc.RpcError) as info:
            who(b"", metadata=[("headless-client-ordinal", "1")], timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tls_with_the_services_name(cluster) -> None:
    """server_name="service": every pod must prove the service's FQDN instead."""
    ca = trustme.CA()
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
    fqdn = "web.prod.svc.cluster.local"
    with GrpcPods(cluster, ca=ca, extra_names=(fqdn,)), service(cluster) as svc, \
            HeadlessChannel(svc, credentials=credentials, server_name="service") as channel:
        assert names([channel.unary_unary(WHO)(b"") for _ in range(3)]) == ["web-0", "web-1", "web-2"]
    with FakeClusterDNS() as other, GrpcPods(other, ca=ca), service(other) as svc, \
            HeadlessChannel(svc, credentials=credentials, server_name="service") as channel:
        with pytest.raises(grpc.RpcError) as info:  # pod certificates only: refused
            channel.unary_unary(WHO)(b"", timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


# --------------------------------------------------------------------------------------------
# Arguments, import
# --------------------------------------------------------------------------------------------


def test_arguments_are_checked(cluster, pods) -> None:
    """Bad arguments raise the library's documented errors, naming the value."""
    with service(cluster) as svc:
        with pytest.raises(InvalidArgument, match="HeadlessService"):
            HeadlessChannel("web.prod")
        with pytest.raises(InvalidArgument, match="credentials"):
            HeadlessChannel(svc, credentials="tls")  # type: ignore[arg-type]
        with pytest.raises(InvalidName, match="server_name"):
            HeadlessChannel(svc, server_name="url")  # type: ignore[arg-type]
        with pytest.raises(InvalidName):
            HeadlessChannel(svc, key=lambda m, r: r, key_metadata="x")
        with pytest.raises(InvalidName, match="retries"):
            HeadlessChannel(svc, retries=-1)
        with pytest.raises(InvalidArgument, match="retryable"):
            HeadlessChannel(svc, retryable="/test.Pods/Who")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="failure_codes"):
            HeadlessChannel(svc, failure_codes=[14])  # type: ignore[list-item]
        with pytest.raises(InvalidArgument, match="options"):
            HeadlessChannel(svc, options=[1])  # type: ignore[list-item]
        with HeadlessChannel(svc) as channel, pytest.raises(grpc.RpcError) as info:
            channel.unary_unary(WHO)(b"", metadata=[("headless-client-ordinal", "x")])
        assert isinstance(info.value.__cause__, InvalidName)


def test_import_without_grpc_names_the_extra() -> None:
    """Importing the module without grpcio says which extra to install."""
    code = (
        "import sys; sys.modules['grpc'] = None\n"
        "try:\n"
        "    import headless_client.contrib.grpc\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install 'headless-client[grpc]'" in proc.stdout


# --------------------------------------------------------------------------------------------
# asyncio
# --------------------------------------------------------------------------------------------


def test_async_channel_all_kinds_and_retries(cluster, pods) -> None:
    """grpc.aio: round-robin, the four kinds, channel_ready, and a retryable call moving
    off a killed pod."""

    async def main() -> None:
        async with AsyncHeadlessService("web.prod", port="http", resolver=cluster.async_resolver(),
                                        **FAST) as svc:
            async with AsyncHeadlessChannel(svc, retryable=True) as channel:
                who = channel.unary_unary(WHO)
                assert names([await who(b"") for _ in range(3)]) == ["web-0", "web-1", "web-2"]
                assert [m async for m in channel.unary_stream(COUNT)(b"2")] == [b"web-0"] * 2
                assert await channel.stream_unary(SUM)(iter([b"ab", b"c"])) == b"web-1:3"
                chat = [m async for m in channel.stream_stream(CHAT)(iter([b"1", b"2"]))]
                assert chat == [b"web-2:1", b"web-2:2"]
                await asyncio.wait_for(channel.channel_ready(), 5)
                assert channel.get_state() == grpc.ChannelConnectivity.READY
                call = who(b"")
                assert await call == b"web-0" and await call.code() == grpc.StatusCode.OK
                pods.kill(1)
                replies = names([await who(b"", timeout=5) for _ in range(6)])
                assert "web-1" not in replies
                assert [ep.ordinal for ep in svc.healthy_endpoints] == [0, 2]
            assert channel.get_state() == grpc.ChannelConnectivity.SHUTDOWN

    run_strict(main, slow_callback=0.5)


def test_async_channel_follows_scale_up_and_down(cluster, pods) -> None:
    """grpc.aio: a new pod gets calls with no failure; a removed pod gets none."""

    async def main() -> None:
        async with AsyncHeadlessService("web.prod", port="http", resolver=cluster.async_resolver(),
                                        **FAST) as svc, AsyncHeadlessChannel(svc) as channel:
            who = channel.unary_unary(WHO)
            await who(b"")
            await asyncio.to_thread(pods.add)
            deadline = time.monotonic() + 5
            while (await who(b"", timeout=2)) != b"web-3":  # any failure would raise here
                assert time.monotonic() < deadline
            await asyncio.to_thread(pods.remove, 0)
            await svc.refresh()
            replies = {await who(b"", timeout=2) for _ in range(9)}
            assert replies == {b"web-1", b"web-2", b"web-3"}
            with pytest.raises(InvalidArgument):
                AsyncHeadlessChannel(object())

    run_strict(main, slow_callback=0.5)
