"""headless_client.contrib.httpx: transports that route each request to a pod."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

httpx = pytest.importorskip("httpx")

from headless_client import (  # noqa: E402
    AsyncHeadlessService,
    HeadlessService,
    LeastLoaded,
    NoEndpointsAvailable,
    PartitionLeader,
    RoundRobin,
    Sticky,
)
from headless_client.contrib.httpx import (  # noqa: E402
    ENDPOINT_EXTENSION,
    AsyncHeadlessTransport,
    HeadlessTransport,
)
from headless_client.testing import FakeClusterDNS, StaticResolver, statefulset_endpoints  # noqa: E402

FAST = {"min_refresh": 0.05, "max_refresh": 0.2, "empty_grace": 0.0}
URL = "http://web.prod:8080"


@pytest.fixture
def cluster() -> Iterator[FakeClusterDNS]:
    with FakeClusterDNS() as c:
        c.add_statefulset("web", "prod", 3, serve="http")
        yield c


@pytest.fixture
def svc(cluster: FakeClusterDNS) -> Iterator[HeadlessService]:
    with HeadlessService("web.prod", port="http", resolver=cluster.resolver(), strategy=RoundRobin(),
                         **FAST) as service:
        yield service


def static_service(strategy=None, n: int = 3) -> HeadlessService:
    addresses = [f"10.0.0.{i + 1}" for i in range(n)]
    resolver = StaticResolver({"web.prod": statefulset_endpoints("web", "prod", addresses, port=9000)})
    return HeadlessService("web.prod", port="http", resolver=resolver, strategy=strategy or RoundRobin(),
                           **FAST)


class Recorder:
    """A MockTransport handler: records requests, fails the addresses it is told to."""

    def __init__(self, fail: dict[str, type[Exception]] | None = None) -> None:
        self.fail = fail or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        error = self.fail.get(request.url.host)
        if error is not None:
            raise error("injected", request=request)
        return httpx.Response(200, text=request.url.host)


# --------------------------------------------------------------------------------------------
# Against loopback HTTP pods
# --------------------------------------------------------------------------------------------


def test_requests_are_spread_over_the_pods(svc: HeadlessService, cluster: FakeClusterDNS) -> None:
    with httpx.Client(transport=HeadlessTransport(svc), base_url=URL) as client:
        responses = [client.get("/hello") for _ in range(6)]
    assert sorted(r.text for r in responses) == ["web-0", "web-0", "web-1", "web-1", "web-2", "web-2"]
    first = responses[0]
    assert first.headers["X-Request-Host"] == "web.prod:8080"  # Host as the URL wrote it
    assert str(first.request.url) == "http://web.prod:8080/hello"  # the caller's URL
    endpoint = first.extensions[ENDPOINT_EXTENSION]
    assert endpoint.hostname == f"{first.text}.web.prod.svc.cluster.local"
    assert endpoint.address == cluster.pod("web", "prod", endpoint.ordinal).address
    assert all(p.requests == 2 for p in cluster.pods("web", "prod"))


def test_sticky_by_header_and_by_key_function(cluster: FakeClusterDNS) -> None:
    resolver = cluster.resolver()
    with HeadlessService("web.prod", port="http", resolver=resolver, strategy=Sticky(), **FAST) as svc:
        with httpx.Client(transport=HeadlessTransport(svc, header="X-User"), base_url=URL) as client:
            for user in ("1", "2", "3", "42"):
                pods = {client.get("/", headers={"X-User": user}).text for _ in range(4)}
                assert len(pods) == 1
            expected = svc.pick("42").hostname.split(".")[0]
            assert client.get("/", headers={"X-User": "42"}).text == expected
        by_path = HeadlessTransport(svc, key=lambda request: request.url.path)
        with httpx.Client(transport=by_path, base_url=URL) as client:
            assert len({client.get("/users/7").text for _ in range(4)}) == 1
            # A per-request key overrides the function.
            answer = client.get("/x", extensions={"headless_client.key": "42"}).text
            assert answer == svc.pick("42").hostname.split(".")[0]


def test_killed_pod_is_routed_around_and_ejected(svc: HeadlessService, cluster: FakeClusterDNS) -> None:
    cluster.kill_pod("web", "prod", 1)
    with httpx.Client(transport=HeadlessTransport(svc), base_url=URL) as client:
        answers = [client.get("/").text for _ in range(6)]
        # Nothing was sent to the dead pod, so even a POST is retried elsewhere.
        posts = [client.post("/orders", content=b"{}").text for _ in range(3)]
    assert "web-1" not in answers + posts
    assert svc.endpoint(ordinal=1) not in svc.healthy_endpoints


def test_no_retries_surfaces_the_connect_error(svc: HeadlessService, cluster: FakeClusterDNS) -> None:
    for ordinal in range(3):
        cluster.kill_pod("web", "prod", ordinal)
    for retries in (5, 0):
        client = httpx.Client(transport=HeadlessTransport(svc, retries=retries), base_url=URL)
        with client, pytest.raises(httpx.ConnectError):
            client.get("/")


def test_pinned_by_ordinal_and_by_partition(cluster: FakeClusterDNS) -> None:
    resolver = cluster.resolver()
    leaders = PartitionLeader({"orders": 2})
    with (
        HeadlessService("web.prod", port="http", resolver=resolver, strategy=leaders, **FAST) as svc,
        httpx.Client(transport=HeadlessTransport(svc), base_url=URL) as client,
    ):
        assert client.get("/", extensions={"headless_client.ordinal": 1}).text == "web-1"
        assert client.get("/", extensions={"headless_client.partition": "orders"}).text == "web-2"
        with pytest.raises(httpx.ConnectError, match="ordinal 7") as info:
            client.get("/", extensions={"headless_client.ordinal": 7})
        assert info.value.__cause__ is not None
        cluster.kill_pod("web", "prod", 2)
        with pytest.raises(httpx.ConnectError):  # pinned: not sent anywhere else
            client.get("/", extensions={"headless_client.partition": "orders"})


def test_failure_statuses_eject_and_latency_is_reported(cluster: FakeClusterDNS) -> None:
    cluster.set_handler(lambda pod, request: (503, "overloaded") if pod.ordinal == 0 else None)
    strategy = LeastLoaded()
    resolver = cluster.resolver()
    with HeadlessService("web.prod", port="http", resolver=resolver, strategy=strategy, **FAST) as svc:
        transport = HeadlessTransport(svc, failure_statuses={503})
        with httpx.Client(transport=transport, base_url=URL) as client:
            statuses = {}
            # LeastLoaded draws two pods at random: send until pod 0 answered once (bounded).
            for _ in range(200):
                response = client.get("/")
                statuses[response.text] = response.status_code
                if "overloaded" in statuses:
                    break
            with client.stream("GET", "/stream") as streamed:
                endpoint = streamed.extensions[ENDPOINT_EXTENSION]
                assert strategy.inflight(endpoint) == 1  # counted until the body is closed
                streamed.read()
            assert strategy.inflight(endpoint) == 0
        assert statuses.get("overloaded") == 503
        assert svc.endpoint(ordinal=0) not in svc.healthy_endpoints
        assert all(strategy.inflight(ep) == 0 for ep in svc.endpoints)


def test_empty_service_raises_an_httpx_error_caused_by_ours(cluster: FakeClusterDNS) -> None:
    cluster.scale("web", "prod", 0)
    with (
        HeadlessService("web.prod", port="http", resolver=cluster.resolver(), **FAST) as svc,
        httpx.Client(transport=HeadlessTransport(svc), base_url=URL) as client,
        pytest.raises(httpx.ConnectError) as info,
    ):
        client.get("/")
    assert isinstance(info.value.__cause__, NoEndpointsAvailable)


def test_async_transport(cluster: FakeClusterDNS) -> None:
    async def scenario() -> list[str]:
        resolver = cluster.async_resolver()
        async with AsyncHeadlessService("web.prod", port="http", resolver=resolver, **FAST) as svc:
            transport = AsyncHeadlessTransport(svc)
            async with httpx.AsyncClient(transport=transport, base_url=URL) as client:
                answers = [(await client.get("/")).text for _ in range(3)]
                cluster.kill_pod("web", "prod", 0)
                answers += [(await client.get("/")).text for _ in range(4)]
                answers.append((await client.put("/k", content=b"v")).text)
                async with client.stream("GET", "/s") as streamed:
                    await streamed.aread()
                assert transport.service is svc
            return answers

    answers = asyncio.run(scenario())
    assert sorted(answers[:3]) == ["web-0", "web-1", "web-2"]
    assert "web-0" not in answers[3:]


# --------------------------------------------------------------------------------------------
# Rewriting and retry policy, with a mock inner transport (no network)
# --------------------------------------------------------------------------------------------


def test_url_host_sni_and_host_header_rewriting() -> None:
    recorder = Recorder()
    with static_service() as svc:
        transport = HeadlessTransport(svc, transport=httpx.MockTransport(recorder))
        with httpx.Client(transport=transport) as client:
            client.get("https://web.prod/a?b=1")
            with httpx.Client(transport=HeadlessTransport(
                svc, transport=httpx.MockTransport(recorder), server_name="service", host_header="pod",
            )) as other:
                other.get("https://web.prod:8443/c")
    sent, pod_named = recorder.requests
    assert sent.url.host.startswith("10.0.0.") and sent.url.port == 9000
    assert sent.url.path == "/a" and sent.url.query == b"b=1"
    assert sent.headers["Host"] == "web.prod"
    ordinal = int(sent.url.host.rsplit(".", 1)[1]) - 1
    assert sent.extensions["sni_hostname"] == f"web-{ordinal}.web.prod.svc.cluster.local"
    assert pod_named.extensions["sni_hostname"] == "web.prod.svc.cluster.local"
    assert pod_named.headers["Host"].endswith(".web.prod.svc.cluster.local:8443")


class First:
    """A strategy that always picks the first endpoint offered: makes retries predictable."""

    def pick(self, endpoints, key=None):
        if not endpoints:
            raise NoEndpointsAvailable("empty")
        return endpoints[0]


def test_broken_connections_retry_only_idempotent_replayable_requests() -> None:
    def body() -> Iterator[bytes]:
        yield b"streamed"

    with static_service(First(), n=3) as svc:
        recorder = Recorder({"10.0.0.1": httpx.ReadError, "10.0.0.2": httpx.ReadError})
        transport = HeadlessTransport(svc, transport=httpx.MockTransport(recorder))

        def attempts(method: str, **kwargs) -> list[str]:
            for ep in svc.endpoints:  # forget earlier ejections: start on 10.0.0.1 again
                svc.report_success(ep)
            recorder.requests.clear()
            try:
                client.request(method, "http://web.prod/", **kwargs)
            except httpx.ReadError:
                pass
            return [r.url.host for r in recorder.requests]

        with httpx.Client(transport=transport) as client:
            assert attempts("GET") == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            assert attempts("PUT", content=b"x") == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            assert attempts("POST", content=b"x") == ["10.0.0.1"]  # not idempotent: sent once
            assert attempts("PUT", content=body()) == ["10.0.0.1"]  # body cannot be replayed
        with httpx.Client(transport=HeadlessTransport(
            svc, transport=httpx.MockTransport(recorder), retries=1,
        )) as client:
            assert attempts("GET") == ["10.0.0.1", "10.0.0.2"]  # retries caps the attempts


def test_timeouts_are_not_retried() -> None:
    with static_service(n=2) as svc:
        recorder = Recorder({"10.0.0.1": httpx.ReadTimeout, "10.0.0.2": httpx.ReadTimeout})
        transport = HeadlessTransport(svc, transport=httpx.MockTransport(recorder))
        with httpx.Client(transport=transport) as client, pytest.raises(httpx.ReadTimeout):
            client.get("http://web.prod/")
        assert len(recorder.requests) == 1


def test_arguments_are_checked() -> None:
    with static_service() as svc:
        with pytest.raises(ValueError):
            HeadlessTransport(svc, key=lambda r: 1, header="X")
        with pytest.raises(ValueError):
            HeadlessTransport(svc, retries=-1)
        with pytest.raises(ValueError):
            HeadlessTransport(svc, transport=httpx.MockTransport(Recorder()), verify=False)
        with pytest.raises(ValueError):
            HeadlessTransport(svc, server_name="url")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            HeadlessTransport(object())  # type: ignore[arg-type]
        transport = HeadlessTransport(svc)
        assert transport.service is svc
        transport.close()


def test_import_without_httpx_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['httpx'] = None\n"
        "try:\n"
        "    import headless_client.contrib.httpx\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install 'headless-client[httpx]'" in proc.stdout


# --------------------------------------------------------------------------------------------
# Host scoping: only the service's own requests reach its pods
# --------------------------------------------------------------------------------------------


def test_a_request_for_another_host_never_reaches_a_pod() -> None:
    """A call to another host, with an Authorization header, is refused with ForeignHost
    and the pods' transport never sees it."""
    from headless_client import ForeignHost

    recorder = Recorder()
    with static_service() as svc, httpx.Client(
        transport=HeadlessTransport(svc, transport=httpx.MockTransport(recorder))
    ) as client:
        with pytest.raises(ForeignHost, match="auth.example.com"):
            client.get("http://auth.example.com/token", headers={"Authorization": "Bearer secret"})
        assert recorder.requests == []
        assert client.get("http://web.prod/ok").status_code == 200
        assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    "host",
    ["web", "web.prod", "web.prod.svc", "web.prod.svc.cluster.local", "WEB.Prod", "web.prod.svc.cluster.local."],
)
def test_every_spelling_of_the_service_is_routed(host: str) -> None:
    """The short name (in the resolver's namespace), the namespace form, the FQDN, any case
    and a trailing dot all mean the service."""
    recorder = Recorder()
    addresses = ["10.0.0.1", "10.0.0.2"]
    resolver = StaticResolver(
        {"web.prod": statefulset_endpoints("web", "prod", addresses, port=9000)}, namespace="prod"
    )
    with HeadlessService("web.prod", port="http", resolver=resolver, **FAST) as svc, httpx.Client(
        transport=HeadlessTransport(svc, transport=httpx.MockTransport(recorder))
    ) as client:
        assert client.get(f"http://{host}/").status_code == 200
    assert recorder.requests[0].url.host in addresses


def test_a_short_name_of_another_namespace_is_foreign() -> None:
    """"web" means the service only when the resolver's namespace is the service's."""
    from headless_client import ForeignHost

    with static_service() as svc, httpx.Client(
        transport=HeadlessTransport(svc, transport=httpx.MockTransport(Recorder()))
    ) as client, pytest.raises(ForeignHost):
        client.get("http://web/")  # the resolver's namespace is "default"


def test_other_hosts_go_to_the_fallback_and_mounts_work() -> None:
    """With fallback=, other hosts go there untouched; with mounts=, httpx itself sends
    only the service's URLs to the transport."""
    pods, others = Recorder(), Recorder()
    with static_service() as svc:
        transport = HeadlessTransport(
            svc, transport=httpx.MockTransport(pods), fallback=httpx.MockTransport(others)
        )
        with httpx.Client(transport=transport) as client:
            client.get("http://example.org/x")
            client.get("http://web.prod/y")
        assert [r.url.host for r in others.requests] == ["example.org"]
        assert len(pods.requests) == 1 and pods.requests[0].url.host.startswith("10.0.0.")
        mounted = HeadlessTransport(svc, transport=httpx.MockTransport(pods))
        with httpx.Client(mounts={"http://web.prod": mounted}, transport=httpx.MockTransport(others)) as client:
            client.get("http://web.prod/z")
            client.get("http://example.org/w")
        assert [r.url.host for r in others.requests] == ["example.org", "example.org"]
        assert len(pods.requests) == 2


def test_async_transport_is_host_scoped_too() -> None:
    """The asyncio transport refuses other hosts the same way."""
    from headless_client import ForeignHost
    from headless_client.testing import AsyncStaticResolver

    async def main() -> None:
        resolver = AsyncStaticResolver(
            {"web.prod": statefulset_endpoints("web", "prod", ["10.0.0.1"], port=9000)}
        )
        recorder = Recorder()
        async with (
            AsyncHeadlessService("web.prod", port="http", resolver=resolver, **FAST) as svc,
            httpx.AsyncClient(transport=AsyncHeadlessTransport(svc, transport=httpx.MockTransport(recorder))) as client,
        ):
            with pytest.raises(ForeignHost):
                await client.get("http://auth.example.com/token")
            assert (await client.get("http://web.prod/")).status_code == 200
        assert len(recorder.requests) == 1

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# A transport per pod (the registry)
# --------------------------------------------------------------------------------------------


def test_each_pod_has_its_own_pool_closed_when_it_leaves(cluster: FakeClusterDNS) -> None:
    """One HTTPTransport per pod, reused by keep-alive; a departed pod's is closed."""
    with HeadlessService("web.prod", port="http", resolver=cluster.resolver(), **FAST) as svc:
        transport = HeadlessTransport(svc)
        with httpx.Client(transport=transport, base_url=URL) as client:
            assert [client.get("/").text for _ in range(6)] == ["web-0", "web-1", "web-2"] * 2
            pods = transport.registry.clients()
            assert len({id(t) for t in pods.values()}) == 3
            assert {p.name: p.connections for p in cluster.pods("web", "prod")} == {
                "web-0": 1, "web-1": 1, "web-2": 1}
            gone = svc.endpoint(2)
            pool = pods[gone]._pool
            cluster.remove_pod("web", "prod", 2)
            deadline = time.monotonic() + 5
            while gone in transport.registry.clients():
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert pool.connections == []  # closed
            assert {client.get("/").text for _ in range(4)} == {"web-0", "web-1"}


def test_async_transport_has_a_pool_per_pod_too(cluster: FakeClusterDNS) -> None:
    """The async twin keeps one AsyncHTTPTransport per pod and closes them on aclose."""

    async def main() -> None:
        async with AsyncHeadlessService("web.prod", port="http", resolver=cluster.async_resolver(),
                                        **FAST) as svc:
            transport = AsyncHeadlessTransport(svc)
            async with httpx.AsyncClient(transport=transport, base_url=URL) as client:
                replies = [(await client.get("/")).text for _ in range(6)]
                assert replies == ["web-0", "web-1", "web-2"] * 2
                assert len(transport.registry.clients()) == 3
            assert transport.registry.closed

    asyncio.run(main())
