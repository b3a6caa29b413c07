"""headless_client.contrib.requests: a Session adapter that sends each request to a pod,
against real HTTP(S) servers on loopback pod addresses, named by a fake cluster DNS."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

requests = pytest.importorskip("requests")
trustme = pytest.importorskip("trustme")

from headless_client import (  # noqa: E402
    ForeignHost,
    HeadlessService,
    InvalidArgument,
    InvalidName,
    NoEndpointsAvailable,
    RoundRobin,
    Sticky,
)
from headless_client.contrib.requests import HeadlessAdapter  # noqa: E402
from headless_client.testing import FakeClusterDNS, StaticResolver  # noqa: E402
from tests.contrib.http_pods import HttpPods  # noqa: E402

FAST = {"min_refresh": 0.05, "max_refresh": 0.2, "empty_grace": 0.0}


@pytest.fixture
def cluster() -> Iterator[FakeClusterDNS]:
    with FakeClusterDNS() as c:
        c.add_statefulset("api", "prod", 3, serve="http")
        yield c


def service(cluster: FakeClusterDNS, name: str = "api.prod", port: int | str = "http",
            strategy: object = None) -> HeadlessService:
    return HeadlessService(name, port=port, resolver=cluster.resolver(), strategy=strategy or RoundRobin(),
                           **FAST)


def url(cluster: FakeClusterDNS, path: str = "/", host: str = "api.prod") -> str:
    return f"http://{host}:{cluster.pods('api', 'prod')[0].port}{path}"


# --------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------


def test_requests_are_spread_and_the_url_is_kept(cluster) -> None:
    """Round-robin per request; Host header and response URL are the URL's; the endpoint
    that answered is on the response."""
    with service(cluster) as svc, requests.Session() as session:
        session.mount("http://api.prod", HeadlessAdapter(svc))
        replies = [session.get(url(cluster, "/a?b=1")) for _ in range(6)]
        assert [r.text for r in replies] == ["api-0", "api-1", "api-2"] * 2
        first = replies[0]
        port = svc.endpoints[0].port
        assert first.headers["X-Request-Host"] == f"api.prod:{port}"
        assert first.url == f"http://api.prod:{port}/a?b=1"
        assert first.headless_endpoint == svc.endpoint(0)


def test_keep_alive_does_not_pin_a_pod(cluster) -> None:
    """Pooled connections are per pod: reused, yet every request is balanced."""
    with service(cluster) as svc, requests.Session() as session:
        adapter = HeadlessAdapter(svc)
        session.mount("http://api.prod", adapter)
        for _ in range(9):
            session.get(url(cluster))
        connections = {p.name: p.connections for p in cluster.pods("api", "prod")}
        assert connections == {"api-0": 1, "api-1": 1, "api-2": 1}
        assert len(adapter.registry.clients()) == 3


def test_host_header_choices(cluster) -> None:
    """host_header="service" / "pod" send the service's or the pod's FQDN."""
    with service(cluster) as svc, requests.Session() as session:
        session.mount("http://api.prod", HeadlessAdapter(svc, host_header="pod"))
        reply = session.get(url(cluster))
        assert reply.headers["X-Request-Host"].startswith("api-0.api.prod.svc.cluster.local:")
        session.mount("http://api.prod", HeadlessAdapter(svc, host_header="service"))
        reply = session.get(url(cluster))
        assert reply.headers["X-Request-Host"].startswith("api.prod.svc.cluster.local:")


def test_sticky_by_header_and_by_key_function(cluster) -> None:
    """header= and key= give Sticky its key: one user, one pod."""
    with service(cluster, strategy=Sticky()) as svc, requests.Session() as session:
        session.mount("http://api.prod", HeadlessAdapter(svc, header="X-User"))
        assert len({session.get(url(cluster), headers={"X-User": "alice"}).text for _ in range(5)}) == 1
        session.mount("http://api.prod", HeadlessAdapter(svc, key=lambda r: r.path_url))
        assert len({session.get(url(cluster, "/cart/9")).text for _ in range(5)}) == 1


# --------------------------------------------------------------------------------------------
# Host scoping
# --------------------------------------------------------------------------------------------


def test_another_host_never_reaches_a_pod(cluster) -> None:
    """A mount prefix also matches other hosts (api.production...): refused, nothing sent."""
    with service(cluster) as svc, requests.Session() as session:
        session.mount("http://api.prod", HeadlessAdapter(svc))
        with pytest.raises(ForeignHost, match="api.production.example"):
            session.get("http://api.production.example/token", headers={"Authorization": "Bearer s3cret"})
        assert sum(p.requests for p in cluster.pods("api", "prod")) == 0


@pytest.mark.parametrize("host", ["api.prod", "API.PROD", "api.prod.svc", "api.prod.svc.cluster.local",
                                  "api.prod.svc.cluster.local."])
def test_every_spelling_of_the_service_is_routed(cluster, host: str) -> None:
    """Every name the resolver maps to the service goes to a pod."""
    with service(cluster) as svc, requests.Session() as session:
        session.mount("http://", HeadlessAdapter(svc))
        assert session.get(url(cluster, host=host)).text == "api-0"


def test_other_hosts_go_to_the_fallback(cluster) -> None:
    """fallback= receives the requests for other hosts, untouched."""

    class Recorder(requests.adapters.BaseAdapter):
        def __init__(self) -> None:
            super().__init__()
            self.sent: list[str] = []

        def send(self, request, **kwargs):
            self.sent.append(request.url)
            response = requests.Response()
            response.status_code = 204
            response.request = request
            return response

        def close(self) -> None:
            pass

    fallback = Recorder()
    with service(cluster) as svc, requests.Session() as session:
        session.mount("http://", HeadlessAdapter(svc, fallback=fallback))
        assert session.get("http://auth.example.com/token").status_code == 204
        assert session.get(url(cluster)).text == "api-0"
    assert fallback.sent == ["http://auth.example.com/token"]


# --------------------------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------------------------


def test_a_killed_pod_is_retried_elsewhere_and_ejected(cluster) -> None:
    """A refused connection (nothing sent) moves the request, POST included, to another
    pod, and ejects the pod."""
    with service(cluster) as svc, requests.Session() as session:
        session.mount("http://api.prod", HeadlessAdapter(svc))
        cluster.kill_pod("api", "prod", 1)
        assert session.get(url(cluster)).text == "api-0"
        assert session.post(url(cluster), data=b"x").text in ("api-0", "api-2")  # api-1 refused
        assert [ep.ordinal for ep in svc.healthy_endpoints] == [0, 2]


def test_no_retries_surfaces_the_connection_error(cluster) -> None:
    """retries=0: the refused connection is raised as requests' ConnectionError."""
    with service(cluster) as svc, requests.Session() as session:
        session.mount("http://api.prod", HeadlessAdapter(svc, retries=0))
        cluster.kill_pod("api", "prod", 0)
        with pytest.raises(requests.ConnectionError):
            session.get(url(cluster))


class First:
    """A strategy that always picks the first endpoint offered: makes retries predictable."""

    def pick(self, endpoints, key=None):
        if not endpoints:
            raise NoEndpointsAvailable("empty")
        return endpoints[0]


def test_broken_connections_retry_only_idempotent_replayable_requests() -> None:
    """A connection dropped after the request was sent is retried for GET and PUT with a
    body in memory, never for POST or a streamed body."""
    with FakeClusterDNS() as cluster, HttpPods(cluster, broken=(0,)) as pods, \
            service(cluster, "web.prod", strategy=First()) as svc, requests.Session() as session:
        session.mount("http://web.prod", HeadlessAdapter(svc))
        target = f"http://web.prod:{pods.port}/"

        def first_pod_again() -> None:
            for ep in svc.endpoints:  # forget the ejections: web-0 is first again
                svc.report_success(ep)

        first_pod_again()
        assert session.get(target).text == "web-1"
        first_pod_again()
        assert session.put(target, data=b"x").text == "web-1"
        first_pod_again()
        with pytest.raises(requests.ConnectionError):
            session.post(target, data=b"x")
        first_pod_again()
        with pytest.raises(requests.ConnectionError):
            session.put(target, data=iter([b"streamed"]))


def test_timeouts_are_not_retried(cluster) -> None:
    """A read timeout is raised at once, not retried on another pod."""
    with service(cluster) as svc, requests.Session() as session:
        session.mount("http://api.prod", HeadlessAdapter(svc))
        cluster.hang_pod("api", "prod", 0)
        with pytest.raises(requests.ReadTimeout):
            session.get(url(cluster), timeout=0.3)
        assert [p.requests for p in cluster.pods("api", "prod")][1:] == [0, 0]


def test_failure_statuses_eject(cluster) -> None:
    """A status in failure_statuses reports the pod as failed (the response is returned)."""
    cluster.set_handler(lambda pod, request: (503, "busy") if pod.ordinal == 0 else None)
    with service(cluster) as svc, requests.Session() as session:
        session.mount("http://api.prod", HeadlessAdapter(svc, failure_statuses={503}))
        assert session.get(url(cluster)).status_code == 503
        assert [ep.ordinal for ep in svc.healthy_endpoints] == [1, 2]


def test_an_empty_service_raises_a_connection_error_caused_by_ours() -> None:
    """No pod: requests' ConnectionError whose cause is the library's error."""
    with HeadlessService("api.prod", port="http", resolver=StaticResolver({}), **FAST) as svc, \
            requests.Session() as session:
        session.mount("http://api.prod", HeadlessAdapter(svc))
        with pytest.raises(requests.ConnectionError) as info:
            session.get("http://api.prod/")
        assert isinstance(info.value.__cause__, NoEndpointsAvailable)


# --------------------------------------------------------------------------------------------
# Pods leaving
# --------------------------------------------------------------------------------------------


def test_a_departed_pods_pool_is_closed(cluster) -> None:
    """Scaling down closes the removed pod's pool; requests go to the others only."""
    with service(cluster) as svc, requests.Session() as session:
        adapter = HeadlessAdapter(svc)
        session.mount("http://api.prod", adapter)
        for _ in range(3):
            session.get(url(cluster))
        gone = svc.endpoint(2)
        pools = adapter.registry.clients()[gone]
        assert len(pools.manager.pools) == 1
        cluster.remove_pod("api", "prod", 2)
        svc.refresh()
        svc.wait_for(2)
        deadline = time.monotonic() + 5
        while gone in adapter.registry.clients():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert len(pools.manager.pools) == 0
        assert {session.get(url(cluster)).text for _ in range(4)} == {"api-0", "api-1"}


# --------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------


def test_tls_checks_each_pods_own_name() -> None:
    """Each pod's certificate is checked against its own FQDN while its address is dialled;
    a certificate for another name fails with SSLError."""
    ca = trustme.CA()
    wrong = {1: ("web-0.web.prod.svc.cluster.local",)}
    with FakeClusterDNS() as cluster, HttpPods(cluster, ca, cert_names=wrong) as pods, \
            ca.cert_pem.tempfile() as cafile, service(cluster, "web.prod") as svc, \
            requests.Session() as session:
        session.mount("https://web.prod", HeadlessAdapter(svc, retries=0))
        target = f"https://web.prod:{pods.port}/"
        assert session.get(target, verify=cafile).text == "web-0"
        with pytest.raises(requests.exceptions.SSLError):
            session.get(target, verify=cafile)
        assert [ep.ordinal for ep in svc.healthy_endpoints] == [0, 2]  # web-1 failed, ejected
        assert {session.get(target, verify=cafile).text for _ in range(2)} == {"web-0", "web-2"}
        session.mount("https://web.prod", HeadlessAdapter(svc, server_name="service"))
        with pytest.raises(requests.exceptions.SSLError):  # pods prove their own names only
            session.get(target, verify=cafile)


def test_tls_on_the_a_path_checks_the_service_name() -> None:
    """With a numeric port (A records: pods without names) the service's FQDN is checked."""
    ca = trustme.CA()
    fqdn = "web.prod.svc.cluster.local"
    names = {i: (fqdn,) for i in range(3)}
    with FakeClusterDNS() as cluster, HttpPods(cluster, ca, cert_names=names) as pods, \
            ca.cert_pem.tempfile() as cafile, service(cluster, "web.prod", port=pods.port) as svc, \
            requests.Session() as session:
        assert all(ep.hostname is None for ep in svc.endpoints)
        session.mount("https://web.prod", HeadlessAdapter(svc))
        replies = {session.get(f"https://web.prod:{pods.port}/", verify=cafile).text for _ in range(3)}
        assert replies == {"web-0", "web-1", "web-2"}


# --------------------------------------------------------------------------------------------
# Arguments, import
# --------------------------------------------------------------------------------------------


def test_arguments_are_checked(cluster) -> None:
    """Bad arguments raise the library's documented errors, naming the value."""
    with service(cluster) as svc:
        with pytest.raises(InvalidArgument, match="HeadlessService"):
            HeadlessAdapter("api.prod")
        with pytest.raises(InvalidName):
            HeadlessAdapter(svc, key=lambda r: 1, header="X")
        with pytest.raises(InvalidName, match="retries"):
            HeadlessAdapter(svc, retries=-1)
        with pytest.raises(InvalidName, match="server_name"):
            HeadlessAdapter(svc, server_name="url")  # type: ignore[arg-type]
        with pytest.raises(InvalidName, match="host_header"):
            HeadlessAdapter(svc, host_header="x")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="fallback"):
            HeadlessAdapter(svc, fallback="x")  # type: ignore[arg-type]
        adapter = HeadlessAdapter(svc)
        assert adapter.service is svc
        adapter.close()


def test_import_without_requests_names_the_extra() -> None:
    """Importing the module without requests says which extra to install."""
    code = (
        "import sys; sys.modules['requests'] = None\n"
        "try:\n"
        "    import headless_client.contrib.requests\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install 'headless-client[requests]'" in proc.stdout
