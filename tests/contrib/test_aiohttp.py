"""headless_client.contrib.aiohttp: a client middleware that sends each request to a pod,
against real HTTP(S) servers on loopback pod addresses, named by a fake cluster DNS."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator

import pytest

aiohttp = pytest.importorskip("aiohttp")
trustme = pytest.importorskip("trustme")

from headless_client import (  # noqa: E402
    AsyncHeadlessService,
    ForeignHost,
    HeadlessService,
    InvalidArgument,
    InvalidName,
    NoEndpointsAvailable,
    RoundRobin,
    Sticky,
)
from headless_client.contrib.aiohttp import HeadlessMiddleware  # noqa: E402
from headless_client.testing import AsyncStaticResolver, FakeClusterDNS  # noqa: E402
from tests.aio_support import run_strict  # noqa: E402
from tests.contrib.http_pods import HttpPods  # noqa: E402

FAST = {"min_refresh": 0.05, "max_refresh": 0.2, "empty_grace": 0.0}


@pytest.fixture
def cluster() -> Iterator[FakeClusterDNS]:
    with FakeClusterDNS() as c:
        c.add_statefulset("api", "prod", 3, serve="http")
        yield c


def run(cluster: FakeClusterDNS, body: Callable[..., Awaitable[None]], name: str = "api.prod",
        port: int | str = "http", strategy: object = None, **middleware: object) -> None:
    """Run *body(svc, session, base_url)* with a service, and a session using the middleware."""

    async def main() -> None:
        async with AsyncHeadlessService(name, port=port, resolver=cluster.async_resolver(),
                                        strategy=strategy or RoundRobin(), **FAST) as svc:
            first = svc.endpoints[0].port if svc.endpoints else 80
            async with aiohttp.ClientSession(middlewares=[HeadlessMiddleware(svc, **middleware)]) as session:
                await body(svc, session, f"http://{name}:{first}")

    run_strict(main, slow_callback=0.5)


async def texts(session, url: str, count: int, **kwargs) -> list[str]:
    replies = []
    for _ in range(count):
        async with session.get(url, **kwargs) as response:
            replies.append(await response.text())
    return replies


def test_requests_are_spread_and_keep_alive_cannot_pin(cluster) -> None:
    """Round-robin per request over pooled connections: one connection per pod, reused."""

    async def body(svc, session, base) -> None:
        assert await texts(session, base + "/a", 9) == ["api-0", "api-1", "api-2"] * 3
        async with session.get(base + "/a?b=1") as response:
            assert response.headers["X-Request-Host"] == base.removeprefix("http://")
            assert str(response.url) == base + "/a?b=1"
        connections = {p.name: p.connections for p in cluster.pods("api", "prod")}
        assert connections == {"api-0": 1, "api-1": 1, "api-2": 1}

    run(cluster, body)


def test_sticky_by_header_and_by_key_function(cluster) -> None:
    """header= and key= give Sticky its key: one user, one pod."""

    async def by_header(svc, session, base) -> None:
        assert len(set(await texts(session, base, 5, headers={"X-User": "alice"}))) == 1

    async def by_key(svc, session, base) -> None:
        assert len(set(await texts(session, base + "/cart/9", 5))) == 1

    run(cluster, by_header, strategy=Sticky(), header="X-User")
    run(cluster, by_key, strategy=Sticky(), key=lambda r: r.url.path)


def test_another_host_is_refused_or_passed(cluster) -> None:
    """Another host never reaches a pod: refused, or passed untouched on request."""

    async def refused(svc, session, base) -> None:
        with pytest.raises(ForeignHost, match="api.production.example"):
            await session.get("http://api.production.example/", headers={"Authorization": "Bearer x"})
        assert sum(p.requests for p in cluster.pods("api", "prod")) == 0

    run(cluster, refused)
    pod = cluster.pods("api", "prod")[1]

    async def passed(svc, session, base) -> None:
        async with session.get(f"http://{pod.address}:{pod.port}/") as response:  # by address: not the service
            assert await response.text() == "api-1"

    run(cluster, passed, other_hosts="pass")


@pytest.mark.parametrize("host", ["API.PROD", "api.prod.svc", "api.prod.svc.cluster.local."])
def test_every_spelling_of_the_service_is_routed(cluster, host: str) -> None:
    """Every name the resolver maps to the service goes to a pod."""

    async def body(svc, session, base) -> None:
        assert await texts(session, base.replace("api.prod", host), 1) == ["api-0"]

    run(cluster, body)


def test_a_killed_pod_is_retried_elsewhere_and_ejected(cluster) -> None:
    """A refused connection moves the request, POST included, to another pod and ejects it."""

    async def body(svc, session, base) -> None:
        cluster.kill_pod("api", "prod", 1)
        assert await texts(session, base, 1) == ["api-0"]
        async with session.post(base, data=b"x") as response:
            assert await response.text() in ("api-0", "api-2")
        assert [ep.ordinal for ep in svc.healthy_endpoints] == [0, 2]

    run(cluster, body)


def test_no_retries_surfaces_the_connection_error(cluster) -> None:
    """retries=0: the refused connection is raised as aiohttp's error."""

    async def body(svc, session, base) -> None:
        cluster.kill_pod("api", "prod", 0)
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(base)

    run(cluster, body, retries=0)


def test_timeouts_are_not_retried(cluster) -> None:
    """A read timeout is raised, and the other pods receive nothing."""

    async def body(svc, session, base) -> None:
        cluster.hang_pod("api", "prod", 0)
        with pytest.raises(aiohttp.ServerTimeoutError):
            await session.get(base, timeout=aiohttp.ClientTimeout(sock_read=0.3))
        assert [p.requests for p in cluster.pods("api", "prod")][1:] == [0, 0]

    run(cluster, body)


class First:
    """A strategy that always picks the first endpoint offered: makes retries predictable."""

    def pick(self, endpoints, key=None):
        if not endpoints:
            raise NoEndpointsAvailable("empty")
        return endpoints[0]


def test_broken_connections_retry_only_idempotent_requests() -> None:
    """A connection dropped after sending is retried for GET and PUT, never for POST."""
    with FakeClusterDNS() as cluster, HttpPods(cluster, broken=(0,)) as pods:

        async def body(svc, session, base) -> None:
            async def first(method: str, **kwargs) -> str:
                for ep in svc.endpoints:  # forget ejections: web-0 is first again
                    svc.report_success(ep)
                async with session.request(method, base + "/", **kwargs) as response:
                    return await response.text()

            assert await first("GET") == "web-1"
            assert await first("PUT", data=b"x") == "web-1"
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await first("POST", data=b"x")

        run(cluster, body, name="web.prod", strategy=First())
        assert pods.port


def test_failure_statuses_eject(cluster) -> None:
    """A status in failure_statuses reports the pod as failed (the response is returned)."""
    cluster.set_handler(lambda pod, request: (503, "busy") if pod.ordinal == 0 else None)

    async def body(svc, session, base) -> None:
        async with session.get(base) as response:
            assert response.status == 503
        assert [ep.ordinal for ep in svc.healthy_endpoints] == [1, 2]

    run(cluster, body, failure_statuses={503})


def test_an_empty_service_raises_an_aiohttp_error_caused_by_ours() -> None:
    """No pod: aiohttp's ClientConnectionError whose cause is the library's error."""

    async def main() -> None:
        async with AsyncHeadlessService("api.prod", port="http", resolver=AsyncStaticResolver({}),
                                        **FAST) as svc, \
                aiohttp.ClientSession(middlewares=[HeadlessMiddleware(svc)]) as session:
            with pytest.raises(aiohttp.ClientConnectionError) as info:
                await session.get("http://api.prod/")
            assert isinstance(info.value.__cause__, NoEndpointsAvailable)

    run_strict(main)


def test_tls_checks_each_pods_own_name() -> None:
    """Each pod proves its own FQDN while its address is dialled; another name fails."""
    ca = trustme.CA()
    context = ssl.create_default_context()
    ca.configure_trust(context)
    wrong = {1: ("web-0.web.prod.svc.cluster.local",)}
    with FakeClusterDNS() as cluster, HttpPods(cluster, ca, cert_names=wrong) as pods:
        target = f"https://web.prod:{pods.port}/"

        async def body(svc, session, base) -> None:
            assert await texts(session, target, 1, ssl=context) == ["web-0"]
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(target, ssl=context)
            assert [ep.ordinal for ep in svc.healthy_endpoints] == [0, 2]  # web-1 ejected
            assert sorted(await texts(session, target, 2, ssl=context)) == ["web-0", "web-2"]

        run(cluster, body, name="web.prod", retries=0)

        async def service_name(svc, session, base) -> None:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(target, ssl=context)

        run(cluster, service_name, name="web.prod", retries=0, server_name="service")


def test_tls_on_the_a_path_checks_the_service_name() -> None:
    """With a numeric port (pods without names) the service's FQDN is checked."""
    ca = trustme.CA()
    context = ssl.create_default_context()
    ca.configure_trust(context)
    names = {i: ("web.prod.svc.cluster.local",) for i in range(3)}
    with FakeClusterDNS() as cluster, HttpPods(cluster, ca, cert_names=names) as pods:

        async def body(svc, session, base) -> None:
            assert all(ep.hostname is None for ep in svc.endpoints)
            replies = await texts(session, f"https://web.prod:{pods.port}/", 3, ssl=context)
            assert sorted(replies) == ["web-0", "web-1", "web-2"]

        run(cluster, body, name="web.prod", port=pods.port)


def test_arguments_are_checked(cluster) -> None:
    """Bad arguments raise the library's documented errors, naming the value."""
    with HeadlessService("api.prod", port="http", resolver=cluster.resolver()) as sync, \
            pytest.raises(InvalidArgument, match="AsyncHeadlessService"):
        HeadlessMiddleware(sync)

    async def body(svc, session, base) -> None:
        with pytest.raises(InvalidName):
            HeadlessMiddleware(svc, key=lambda r: 1, header="X")
        with pytest.raises(InvalidName, match="retries"):
            HeadlessMiddleware(svc, retries=-1)
        with pytest.raises(InvalidName, match="server_name"):
            HeadlessMiddleware(svc, server_name="url")
        with pytest.raises(InvalidName, match="other_hosts"):
            HeadlessMiddleware(svc, other_hosts="maybe")
        with pytest.raises(InvalidArgument, match="key"):
            HeadlessMiddleware(svc, key="x")

    run(cluster, body)


def test_import_without_aiohttp_names_the_extra() -> None:
    """Importing the module without aiohttp says which extra to install."""
    code = (
        "import sys; sys.modules['aiohttp'] = None\n"
        "try:\n"
        "    import headless_client.contrib.aiohttp\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install 'headless-client[aiohttp]'" in proc.stdout
