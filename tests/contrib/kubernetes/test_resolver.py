"""EndpointSliceResolver against the fake Kubernetes API: a real HTTP server on loopback."""

from __future__ import annotations

import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

import headless_client as hc
from headless_client import HeadlessService
from headless_client.contrib.kubernetes import EndpointSliceResolver, KubernetesConfig
from headless_client.errors import (
    InvalidName,
    KubernetesAPIError,
    KubernetesForbidden,
    ServiceNotFound,
)
from headless_client.testing import FakeClusterDNS
from headless_client.testing.kube_api import FakeKubeAPI
from headless_client.testing.model import ClusterModel

from .conftest import Views, config_for, wait_until

SLICES = "/apis/discovery.k8s.io/v1/namespaces/prod/endpointslices"
#: Refresh periods far longer than any test: a change seen at once came through the watch.
SLOW = {"min_refresh": 30.0, "max_refresh": 60.0}


def lists(api: FakeKubeAPI) -> int:
    """List requests of the EndpointSlices of prod so far."""
    return sum(1 for _, path, _ in list(api.requests) if path.startswith(SLICES + "?") and "watch=" not in path)


def test_resolve_gives_identities_ports_zones_nodes_and_pods(resolver: EndpointSliceResolver) -> None:
    """Hostnames, ordinals, the named port, zone, node and pod come from the slices."""
    eps = resolver.resolve("web", "http")
    assert eps.name == "web.prod.svc.cluster.local"
    assert [(e.ordinal, e.port, e.zone, e.node, e.pod) for e in eps] == [
        (0, 8080, "zone-a", "node-a", "web-0"),
        (1, 8080, "zone-b", "node-b", "web-1"),
        (2, 8080, "zone-a", "node-a", "web-2"),
    ]
    assert eps.by_ordinal(1) is not None and eps.by_ordinal(1).hostname == "web-1.web.prod.svc.cluster.local"


def test_ordinals_are_known_without_srv(resolver: EndpointSliceResolver) -> None:
    """With a port number (DNS would answer A records only) the pods keep names and ordinals."""
    eps = resolver.resolve("web.prod", 9000)
    assert eps.ordinals == (0, 1, 2) and {e.port for e in eps} == {9000}


def test_150_endpoints_over_two_slices_are_all_seen(model: ClusterModel, api: FakeKubeAPI,
                                                    resolver: EndpointSliceResolver) -> None:
    """150 pods are split 100 + 50 over two slices; the view has all 150, and keeps them
    when only the second slice changes (kuberesolver #66 saw only the newest slice)."""
    model.scale("web", "prod", 150)
    status_slices = [o for o in model.snapshot("endpointslices")[0] if o["metadata"]["namespace"] == "prod"]
    assert sorted(len(s["endpoints"]) for s in status_slices) == [50, 100]
    with HeadlessService("web.prod", port="http", resolver=resolver, **SLOW) as svc:
        views = Views(svc)
        views.wait(lambda eps: len(eps) == 150)
        model.update_pod("web-149", "prod", ready=False)   # only the second slice changes
        eps = views.wait(lambda eps: len(eps) == 149)
        assert eps.ordinals == tuple(range(149))


def test_scale_up_and_down_are_seen_at_once(model: ClusterModel, resolver: EndpointSliceResolver) -> None:
    """Scaling is seen through the watch, long before the service's next refresh."""
    with HeadlessService("web.prod", port="http", resolver=resolver, empty_grace=0, **SLOW) as svc:
        views = Views(svc)
        model.scale("web", "prod", 5)
        assert views.wait(lambda eps: len(eps) == 5).ordinals == (0, 1, 2, 3, 4)
        model.scale("web", "prod", 2)
        assert views.wait(lambda eps: len(eps) == 2).ordinals == (0, 1)
        model.scale("web", "prod", 0)
        views.wait(lambda eps: len(eps) == 0)
        with pytest.raises(hc.NoEndpointsAvailable):
            svc.pick()


@pytest.fixture(name="pod_servers")
def _pod_servers(model: ClusterModel) -> Iterator[dict[str, socket.socket]]:
    """A listening TCP socket on each pod's address (one port for all), the Service's port
    set to it; connections are accepted by the test."""
    listeners: dict[str, socket.socket] = {}
    port = 0
    try:
        for pod in model.statefulset_pods("web", "prod"):
            sock = socket.socket()
            sock.bind((pod.addresses[0], port))
            sock.listen(8)
            port = sock.getsockname()[1]
            listeners[pod.name] = sock
        model.update_service("web", "prod", ports=[("http", port)])
        yield listeners
    finally:
        for sock in listeners.values():
            sock.close()


def test_rolling_restart_new_work_avoids_terminating_pods(model: ClusterModel, resolver: EndpointSliceResolver,
                                                          pod_servers: dict[str, socket.socket]) -> None:
    """A terminating pod stays in the view (marked), gets no new picks, and the call already
    open to it goes on; once deleted and recreated, it is picked again."""
    with HeadlessService("web.prod", port="http", resolver=resolver, **SLOW) as svc:
        views = Views(svc)
        views.wait(lambda eps: len(eps) == 3)
        with svc.connection(ordinal=2, timeout=2) as in_flight:
            server_side, _ = pod_servers["web-2"].accept()
            with server_side:
                model.terminate_pod("web-2", "prod")
                eps = views.wait(lambda eps: eps.by_ordinal(2) is not None and eps.by_ordinal(2).terminating)
                assert len(eps) == 3
                assert 2 not in {svc.pick().ordinal for _ in range(30)}
                in_flight.sendall(b"still here")
                assert server_side.recv(16) == b"still here"
        model.delete_pod("web-2", "prod")
        views.wait(lambda eps: eps.ordinals == (0, 1))
        model.add_statefulset_pod("web", "prod", 2, pod_servers["web-2"].getsockname()[:1], ready=False)
        model.update_pod("web-2", "prod", ready=True)
        eps = views.wait(lambda eps: eps.ordinals == (0, 1, 2))
        assert not any(e.terminating for e in eps)
        assert Counter(svc.pick().ordinal for _ in range(30)) == {0: 10, 1: 10, 2: 10}


def test_every_pod_terminating_still_serves(model: ClusterModel, resolver: EndpointSliceResolver) -> None:
    """When every pod is terminating there is nothing better: they keep getting calls."""
    with HeadlessService("web.prod", port="http", resolver=resolver, **SLOW) as svc:
        views = Views(svc)
        with model.batch():
            for n in range(3):
                model.terminate_pod(f"web-{n}", "prod")
        views.wait(lambda eps: all(e.terminating for e in eps) and len(eps) == 3)
        assert svc.pick().terminating


def test_410_gone_lists_again_and_catches_up(model: ClusterModel, api: FakeKubeAPI,
                                             resolver: EndpointSliceResolver) -> None:
    """Expired watches (410 Gone) make the source list again; changes made meanwhile arrive."""
    with HeadlessService("web.prod", port="http", resolver=resolver, empty_grace=0, **SLOW) as svc:
        views = Views(svc)
        listed = lists(api)
        with api.down():
            model.scale("web", "prod", 4)
            model.compact()                       # the watch's version is gone now
        views.wait(lambda eps: len(eps) == 4)
        assert lists(api) > listed
        listed = lists(api)
        wait_until(lambda: api.open_watches == 1)
        api.expire_watches()                      # an ERROR event with code 410 on the open watch
        model.scale("web", "prod", 1)
        views.wait(lambda eps: eps.ordinals == (0,))
        assert lists(api) > listed


def test_watch_resumes_from_its_resource_version(model: ClusterModel, api: FakeKubeAPI) -> None:
    """A watch the server ends is renewed from the last version, without listing again."""
    config = config_for(api)
    with EndpointSliceResolver(config, watch_timeout=1.0, backoff_min=0.05, backoff_max=0.2) as resolver, \
            HeadlessService("web.prod", port="http", resolver=resolver, **SLOW) as svc:
        views = Views(svc)
        for replicas in (4, 5):
            watches = api.watches_of("endpointslices")
            wait_until(lambda w=watches: api.watches_of("endpointslices") > w)   # the last one ended
            model.scale("web", "prod", replicas)
            views.wait(lambda eps, n=replicas: len(eps) == n)
        renewed = [p for _, p, _ in list(api.requests) if "watch=true" in p and "resourceVersion=" in p]
        assert renewed and lists(api) == 1


def test_api_down_keeps_the_last_view_then_catches_up(model: ClusterModel, api: FakeKubeAPI,
                                                     resolver: EndpointSliceResolver) -> None:
    """While the API is down the service keeps serving the last pods (resolve answers them
    too); when it is back, the changes made meanwhile are seen."""
    with HeadlessService("web.prod", port="http", resolver=resolver, **SLOW) as svc:
        views = Views(svc)
        with api.down():
            model.scale("web", "prod", 4)
            assert len(resolver.resolve("web", "http")) == 3
            assert len(svc.refresh()) == 3
            assert svc.pick() in svc.endpoints
        views.wait(lambda eps: len(eps) == 4)


def test_rbac_refused_is_a_clear_error(api: FakeKubeAPI) -> None:
    """403: starting a service raises KubernetesForbidden naming the resource, the namespace
    and the RBAC to grant."""
    api.fault = "forbidden"
    with EndpointSliceResolver(config_for(api), timeout=2.0) as resolver:
        with pytest.raises(KubernetesForbidden) as info:
            HeadlessService("web.prod", port="http", resolver=resolver).start()
        message = str(info.value)
        assert "endpointslices.discovery.k8s.io" in message and "namespace 'prod'" in message
        assert "get, list and watch" in message and "rbac-endpointslices.yaml" in message
        assert info.value.status == 403 and info.value.permanent
        with pytest.raises(KubernetesForbidden):
            resolver.resolve("web", "http")


def test_unreachable_api_first_resolve_fails_clearly() -> None:
    """Nothing listening: the first resolve fails within its timeout, naming the server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = KubernetesConfig(server=f"http://127.0.0.1:{port}", namespace="prod")
    with EndpointSliceResolver(config, timeout=1.0) as resolver, \
            pytest.raises(KubernetesAPIError, match=f"127.0.0.1:{port}"):
        resolver.resolve("web", "http")


def test_unknown_service_and_port_name(resolver: EndpointSliceResolver) -> None:
    """No slices: ServiceNotFound; a port name the Service lacks: the message lists its ports."""
    with pytest.raises(ServiceNotFound, match="no EndpointSlices for nope.prod"):
        resolver.resolve("nope", "http")
    with pytest.raises(ServiceNotFound, match="no port named 'grpc'"):
        resolver.resolve("web", "grpc")


def test_resolve_host_finds_one_pod(resolver: EndpointSliceResolver) -> None:
    """A pod FQDN gives that pod's endpoint; an unknown one is not found; a bad one invalid."""
    (ep,) = resolver.resolve_host("web-1.web.prod.svc.cluster.local.", 8080)
    assert ep.ordinal == 1 and ep.port == 8080
    with pytest.raises(ServiceNotFound):
        resolver.resolve_host("web-7.web.prod.svc.cluster.local", 8080)
    with pytest.raises(InvalidName):
        resolver.resolve_host("web-1.example.com", 8080)


def test_watch_service_calls_back_on_changes(model: ClusterModel, resolver: EndpointSliceResolver) -> None:
    """watch_service's callback runs after a change; stop() ends the calls."""
    first, second = threading.Event(), threading.Event()
    stop = resolver.watch_service("web", "prod", first.set)
    resolver.watch_service("web", "prod", second.set)
    resolver.resolve("web", "http")
    first.clear()
    model.scale("web", "prod", 4)
    assert first.wait(5)
    stop()
    first.clear()
    second.clear()
    model.scale("web", "prod", 3)
    assert second.wait(5)          # callbacks run in order: the stopped one would have run first
    assert not first.is_set()


def test_same_endpoints_as_dns(fake_cluster: FakeClusterDNS) -> None:
    """Over one cluster model, DNS (SRV) and the API give the same addresses, ports, names
    and ordinals, for the governing Service and for a second headless one (dashed names)."""
    fake_cluster.add_statefulset("db", "prod", replicas=3)
    fake_cluster.model.add_service("db-read", "prod", ports=[("http", 8080)],
                                   selector={"headless-client.test/statefulset": "db"})
    dns = fake_cluster.resolver()
    with FakeKubeAPI(fake_cluster.model) as api, EndpointSliceResolver(config_for(api), timeout=3) as resolver:
        for name in ("db", "db-read"):
            by_dns = {(e.address, e.port, e.hostname, e.ordinal) for e in dns.resolve(name, "http", namespace="prod")}
            by_api = {(e.address, e.port, e.hostname, e.ordinal) for e in resolver.resolve(name, "http")}
            assert by_api == by_dns and len(by_api) == 3


def test_tls_with_a_trusted_ca_and_client_certificates(model: ClusterModel, tmp_path: Path) -> None:
    """HTTPS with the cluster CA verifies; a client certificate logs in; a wrong CA fails
    with a TLS error naming the server."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    server.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server)
    client = ca.issue_cert("client@prod")
    with FakeKubeAPI(model, ssl_context=server) as api:
        assert api.url.startswith("https://")
        config = config_for(api, ca_data=ca.cert_pem.bytes(), client_cert_data=client.cert_chain_pems[0].bytes(),
                            client_key_data=client.private_key_pem.bytes())
        with EndpointSliceResolver(config, timeout=3) as resolver:
            assert len(resolver.resolve("web", "http")) == 3
        wrong = config_for(api, ca_data=trustme.CA().cert_pem.bytes(),
                           client_cert_data=client.cert_chain_pems[0].bytes(),
                           client_key_data=client.private_key_pem.bytes())
        with EndpointSliceResolver(wrong, timeout=2) as resolver, pytest.raises(KubernetesAPIError, match="TLS"):
            resolver.resolve("web", "http")


def test_bearer_token_file_is_reread(model: ClusterModel, tmp_path: Path) -> None:
    """The token file is read per request: after rotation the watch logs in with the new
    token; without a valid token the API's 401 is a KubernetesForbidden."""
    token = tmp_path / "token"
    token.write_text("t1")
    with FakeKubeAPI(model, token="t1", bookmark_interval=0.2) as api:
        with EndpointSliceResolver(config_for(api, token_file=str(token)), timeout=3,
                                   backoff_min=0.05, backoff_max=0.2) as resolver, \
                HeadlessService("web.prod", port="http", resolver=resolver, **SLOW) as svc:
            views = Views(svc)
            token.write_text("t2")
            api.token = "t2"
            wait_until(lambda: api.open_watches == 1)
            api.expire_watches()
            model.scale("web", "prod", 4)
            views.wait(lambda eps: len(eps) == 4)
        with EndpointSliceResolver(config_for(api, token="wrong"), timeout=2) as resolver, \
                pytest.raises(KubernetesForbidden, match="401"):
            resolver.resolve("web", "http")


def test_zone_of_the_node_and_own_zone(model: ClusterModel, resolver: EndpointSliceResolver, tmp_path: Path) -> None:
    """The zone comes from $POD_ZONE, else a downward API file, else the node's label."""
    assert resolver.node_zone("node-b") == "zone-b"
    assert resolver.own_zone(environ={"POD_ZONE": "zone-x", "NODE_NAME": "node-b"}) == "zone-x"
    zone_file = tmp_path / "zone"
    zone_file.write_text("zone-f\n")
    assert resolver.own_zone(environ={}, zone_file=zone_file) == "zone-f"
    assert resolver.own_zone(environ={"NODE_NAME": "node-a"}) == "zone-a"
    assert resolver.own_zone(environ={}) is None
    with pytest.raises(KubernetesAPIError, match="404"):
        resolver.node_zone("node-z")


def test_prefer_zone_over_the_api(model: ClusterModel, resolver: EndpointSliceResolver) -> None:
    """PreferZone with the zones from the slices keeps calls in zone-b, then spreads when
    zone-b's only pod terminates."""
    strategy = hc.PreferZone(resolver.own_zone(environ={"NODE_NAME": "node-b"}))
    with HeadlessService("web.prod", port="http", resolver=resolver, strategy=strategy, **SLOW) as svc:
        views = Views(svc)
        assert {svc.pick().ordinal for _ in range(10)} == {1}
        model.terminate_pod("web-1", "prod")
        views.wait(lambda eps: eps.by_ordinal(1) is not None and eps.by_ordinal(1).terminating)
        assert {svc.pick().ordinal for _ in range(10)} == {0, 2}


def test_close_stops_the_watch_thread(api: FakeKubeAPI) -> None:
    """close() ends the watches and the thread; a closed resolver refuses new work."""
    resolver = EndpointSliceResolver(config_for(api), timeout=3)
    resolver.resolve("web", "http")
    assert any(t.name == "headless-client-kube" for t in threading.enumerate())
    resolver.close()
    assert not any(t.name == "headless-client-kube" and t.is_alive() for t in threading.enumerate())
    with pytest.raises(hc.ResolutionError, match="closed"):
        resolver.resolve("web", "http")
    resolver.close()


def test_bad_arguments_are_refused(api: FakeKubeAPI) -> None:
    """A config of the wrong type or a bad timeout are clear errors."""
    with pytest.raises(InvalidName, match="KubernetesConfig"):
        EndpointSliceResolver("http://127.0.0.1")  # type: ignore[arg-type]
    with pytest.raises(InvalidName, match="timeout"):
        EndpointSliceResolver(config_for(api), timeout=0)
