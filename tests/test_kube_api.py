"""The fake Kubernetes API server and the cluster model behind it, with a plain HTTP client."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from headless_client.errors import InvalidName
from headless_client.testing.kube_api import INITIAL_EVENTS_END, FakeKubeAPI, FieldSelector, LabelSelector
from headless_client.testing.model import ClusterModel, TooOld

SLICES = "/apis/discovery.k8s.io/v1/endpointslices"


@pytest.fixture
def model() -> ClusterModel:
    model = ClusterModel()
    model.add_service("web", "prod", ports=[("http", 8080)])
    model.add_statefulset("web", "prod", 2)
    return model


@pytest.fixture
def api(model: ClusterModel) -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI(model, bookmark_interval=0.2) as server:
        yield server


def get(api: FakeKubeAPI, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=5)
    try:
        conn.request("GET", path, headers={"Accept": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


class Watch:
    """One watch request; :meth:`next` reads one event (bounded by the socket timeout)."""

    def __init__(self, api: FakeKubeAPI, path: str) -> None:
        self.conn = http.client.HTTPConnection(api.host, api.port, timeout=5)
        self.conn.request("GET", path)
        self.resp = self.conn.getresponse()

    def next(self) -> dict[str, Any]:
        line = self.resp.readline()
        assert line, "the watch ended"
        return json.loads(line)  # type: ignore[no-any-return]

    def until(self, kind: str, limit: int = 50) -> dict[str, Any]:
        for _ in range(limit):
            event = self.next()
            if event["type"] == kind:
                return event
        raise AssertionError(f"no {kind} event in {limit}")

    def close(self) -> None:
        self.conn.close()


def test_list_has_kind_resource_versions_and_objects(api: FakeKubeAPI, model: ClusterModel) -> None:
    """Lists carry kind, apiVersion and resourceVersion; objects carry theirs."""
    status, body = get(api, "/api/v1/services")
    assert status == 200 and body["kind"] == "ServiceList" and body["apiVersion"] == "v1"
    assert int(body["metadata"]["resourceVersion"]) == model.resource_version
    (svc,) = body["items"]
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["ports"][0]["name"] == "http"
    status, body = get(api, SLICES)
    (eps,) = body["items"]
    assert eps["kind"] == "EndpointSlice" and eps["addressType"] == "IPv4"
    assert [e["hostname"] for e in eps["endpoints"]] == ["web-0", "web-1"]
    assert all(e["conditions"]["ready"] for e in eps["endpoints"])
    assert get(api, "/api/v1/namespaces")[1]["items"][0]["metadata"]["name"] == "prod"


def test_label_and_field_selectors_namespaces_and_get_one(api: FakeKubeAPI, model: ClusterModel) -> None:
    """labelSelector and fieldSelector filter lists; a namespaced path and get-by-name work."""
    model.add_service("other", "dev", ports=[("http", 80)])
    _, body = get(api, f"{SLICES}?labelSelector=kubernetes.io/service-name%3Dweb")
    assert [i["metadata"]["name"] for i in body["items"]] == ["web-ipv4"]
    _, body = get(api, f"{SLICES}?labelSelector=kubernetes.io/service-name%20in%20(other,nope)")
    assert [i["metadata"]["namespace"] for i in body["items"]] == ["dev"]
    _, body = get(api, "/api/v1/pods?fieldSelector=status.phase!%3DSucceeded,metadata.name%3Dweb-1")
    assert [i["metadata"]["name"] for i in body["items"]] == ["web-1"]
    _, body = get(api, "/api/v1/namespaces/dev/services")
    assert [i["metadata"]["name"] for i in body["items"]] == ["other"]
    status, body = get(api, "/api/v1/namespaces/prod/services/web")
    assert status == 200 and body["kind"] == "Service"
    assert get(api, "/api/v1/namespaces/prod/services/nope")[0] == 404
    assert get(api, "/api/v1/namespaces/dev")[1]["metadata"]["name"] == "dev"
    status, body = get(api, f"{SLICES}?labelSelector=a%3D(b")
    assert status == 400 and body["kind"] == "Status" and body["code"] == 400
    assert get(api, "/apis/apps/v1/statefulsets")[0] == 404


def test_watch_streams_changes_from_a_resource_version(api: FakeKubeAPI, model: ClusterModel) -> None:
    """A watch from a resource version gets ADDED, MODIFIED and DELETED in order."""
    _, body = get(api, SLICES)
    rv = body["metadata"]["resourceVersion"]
    watch = Watch(api, f"{SLICES}?watch=true&resourceVersion={rv}&timeoutSeconds=10")
    try:
        model.scale("web", "prod", 3)
        event = watch.next()
        assert event["type"] == "MODIFIED" and len(event["object"]["endpoints"]) == 3
        assert int(event["object"]["metadata"]["resourceVersion"]) > int(rv)
        model.update_pod("web-0", "prod", ready=False)
        event = watch.next()
        assert [e["conditions"]["ready"] for e in event["object"]["endpoints"]] == [False, True, True]
        model.delete_service("web", "prod")
        assert watch.next()["type"] == "DELETED"
    finally:
        watch.close()


def test_watch_from_zero_starts_with_the_current_objects_and_sends_bookmarks(api: FakeKubeAPI) -> None:
    """resourceVersion 0 gives ADDED for what exists; allowWatchBookmarks gives BOOKMARKs while idle."""
    watch = Watch(api, "/api/v1/services?watch=1&resourceVersion=0&allowWatchBookmarks=true&timeoutSeconds=10")
    try:
        first = watch.next()
        assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "web"
        bookmark = watch.until("BOOKMARK")
        assert bookmark["object"]["kind"] == "Service" and bookmark["object"]["metadata"]["resourceVersion"]
    finally:
        watch.close()


def test_watch_list_initial_events_end_with_an_annotated_bookmark(api: FakeKubeAPI) -> None:
    """sendInitialEvents=true: current objects, then a bookmark marked as the end of them."""
    path = (f"{SLICES}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
            "&resourceVersionMatch=NotOlderThan&timeoutSeconds=10")
    watch = Watch(api, path)
    try:
        assert watch.next()["type"] == "ADDED"
        bookmark = watch.next()
        assert bookmark["type"] == "BOOKMARK"
        assert bookmark["object"]["metadata"]["annotations"] == {INITIAL_EVENTS_END: "true"}
    finally:
        watch.close()
    api.watch_list = False
    status, body = get(api, path)
    assert status == 400 and "sendInitialEvents" in body["message"]


def test_too_old_resource_version_gets_410(api: FakeKubeAPI, model: ClusterModel) -> None:
    """After compaction a watch from an old version gets an ERROR event with 410 Gone."""
    old = model.resource_version
    model.scale("web", "prod", 3)
    model.compact()
    with pytest.raises(TooOld):
        model.events_since(old)
    watch = Watch(api, f"/api/v1/pods?watch=true&resourceVersion={old}&timeoutSeconds=10")
    try:
        event = watch.next()
        assert event["type"] == "ERROR" and event["object"]["code"] == 410
        assert event["object"]["reason"] == "Expired"
    finally:
        watch.close()
    assert get(api, f"/api/v1/pods?resourceVersion={old}&resourceVersionMatch=Exact")[0] == 410


def test_expire_watches_sends_410_to_open_watches(api: FakeKubeAPI, model: ClusterModel) -> None:
    """expire_watches() ends every open watch with 410, so clients list again."""
    watch = Watch(api, f"/api/v1/services?watch=true&resourceVersion={model.resource_version}&timeoutSeconds=10")
    try:
        api.expire_watches()
        assert watch.until("ERROR")["object"]["code"] == 410
    finally:
        watch.close()


def test_label_selected_watch_sees_objects_leave_the_selection(api: FakeKubeAPI, model: ClusterModel) -> None:
    """An object whose labels stop matching a watch's selector is DELETED for that watch."""
    selector = "headless-client.test/service%3Dweb"
    watch = Watch(api, f"/api/v1/pods?watch=true&labelSelector={selector}&timeoutSeconds=10")
    try:
        assert {watch.next()["object"]["metadata"]["name"] for _ in range(2)} == {"web-0", "web-1"}
        model.update_pod("web-1", "prod", labels=(("app", "moved"),))
        event = watch.next()
        assert event["type"] == "DELETED" and event["object"]["metadata"]["name"] == "web-1"
    finally:
        watch.close()


def test_faults_forbidden_unavailable_and_down(api: FakeKubeAPI) -> None:
    """RBAC's 403, a 503, and a port that refuses connections, then service again."""
    api.fault = "forbidden"
    status, body = get(api, "/api/v1/services")
    assert status == 403 and body["reason"] == "Forbidden"
    api.fault = "unavailable"
    assert get(api, "/api/v1/services")[0] == 503
    api.fault = None
    port = api.port
    with api.down(), pytest.raises(ConnectionRefusedError):
        socket.create_connection((api.host, port), timeout=2).close()
    assert api.port == port and get(api, "/api/v1/services")[0] == 200
    assert any(status == 403 for _, _, status in api.requests)


def test_read_only_and_bad_arguments(api: FakeKubeAPI) -> None:
    """Writes are refused with 405; bad settings raise InvalidName."""
    conn = http.client.HTTPConnection(api.host, api.port, timeout=5)
    try:
        conn.request("POST", "/api/v1/services", body=b"{}")
        assert conn.getresponse().status == 405
    finally:
        conn.close()
    with pytest.raises(InvalidName):
        FakeKubeAPI(bookmark_interval=0)


def test_selector_parsers() -> None:
    """Label selectors support =, ==, !=, in, notin, exists and !exists; field selectors dotted paths."""
    sel = LabelSelector.parse("a=1, b!=2, c in (x, y), d notin (z), e, !f")
    assert sel.matches({"a": "1", "b": "3", "c": "y", "e": ""})
    assert not sel.matches({"a": "1", "b": "3", "c": "y", "e": "", "f": "1"})
    assert not sel.matches({"a": "1", "c": "q", "e": ""})
    with pytest.raises(InvalidName):
        LabelSelector.parse("a in (b")
    fields = FieldSelector("metadata.name=web,status.phase!=Failed")
    assert fields.matches({"metadata": {"name": "web"}, "status": {"phase": "Running"}})
    assert not fields.matches({"metadata": {"name": "web"}, "status": {"phase": "Failed"}})
    with pytest.raises(InvalidName):
        FieldSelector("no operator")


# -- the model ------------------------------------------------------------------------------------


def _slice(model: ClusterModel, name: str) -> dict[str, Any]:
    items, _ = model.snapshot("endpointslices")
    return next(i for i in items if i["metadata"]["name"] == name)


def test_model_hostname_only_under_the_governing_service() -> None:
    """Endpoints get hostname only for the Service named by the pods' subdomain (ShouldSetHostname)."""
    model = ClusterModel()
    model.add_service("web", "prod", ports=[("http", 80)])
    model.add_statefulset("web", "prod", 2)
    model.add_service("peers", "prod", ports=[("http", 80)], selector={"headless-client.test/statefulset": "web"})
    assert [e.get("hostname") for e in _slice(model, "web-ipv4")["endpoints"]] == ["web-0", "web-1"]
    assert [e.get("hostname") for e in _slice(model, "peers-ipv4")["endpoints"]] == [None, None]


def test_model_readiness_publish_not_ready_and_dual_stack() -> None:
    """ready is publishNotReadyAddresses or pod ready; dual-stack Services get one slice per family."""
    model = ClusterModel()
    model.add_service("db", "prod", ports=[("pg", 5432)], ip_families=("IPv4", "IPv6"))
    model.add_statefulset("db", "prod", 2)
    assert {p.addresses[1][:4] for p in model.statefulset_pods("db", "prod")} == {"fd00"}
    model.update_pod("db-1", "prod", ready=False)
    assert [e["conditions"]["ready"] for e in _slice(model, "db-ipv6")["endpoints"]] == [True, False]
    model.update_service("db", "prod", publish_not_ready=True)
    assert [e["conditions"]["ready"] for e in _slice(model, "db-ipv4")["endpoints"]] == [True, True]


def test_model_events_versions_batches_and_errors() -> None:
    """Each commit gives ordered events with growing versions; a batch is one commit; bad input is refused."""
    model = ClusterModel()
    seen: list[str] = []
    unsubscribe = model.subscribe(lambda events: seen.extend(f"{e.kind}:{e.type}" for e in events))
    before = model.resource_version
    with model.batch():
        model.add_service("web", "prod", ports=[("http", 80)])
        model.add_statefulset("web", "prod", 1)
    assert "endpointslices:ADDED" in seen and "services:ADDED" in seen and "namespaces:ADDED" in seen
    events = model.events_since(before)
    assert [e.resource_version for e in events] == sorted(e.resource_version for e in events)
    seen.clear()
    model.update_pod("web-0", "prod", ready=True)  # no change: no event
    assert seen == []
    unsubscribe()
    with pytest.raises(InvalidName):
        model.add_service("web", "prod")
    with pytest.raises(InvalidName):
        model.add_service("x", "prod", type="ExternalName")
    with pytest.raises(InvalidName):
        model.add_pod("p", "prod", ["127.10.0.1"])  # web-0's address
    with pytest.raises(LookupError):
        model.scale("nope", "prod", 1)
    with pytest.raises(InvalidName):
        model.snapshot("deployments")  # type: ignore[arg-type]


# -- additions for the EndpointSlice source: nodes, terminating pods, hints, slice size ------


def test_terminating_pod_conditions_follow_the_controller() -> None:
    """A terminating pod: ready false, serving its readiness, terminating true; with
    publishNotReadyAddresses ready stays true. Its Pod has a deletionTimestamp."""
    model = ClusterModel()
    model.add_service("web", "prod", ports=[("http", 8080)])
    model.add_service("web-all", "prod", ports=[("http", 8080)], publish_not_ready=True,
                      selector={"headless-client.test/statefulset": "web"})
    model.add_statefulset("web", "prod", 1)
    model.terminate_pod("web-0", "prod")
    slices = {s["metadata"]["name"]: s for s in model.snapshot("endpointslices")[0]}
    assert slices["web-ipv4"]["endpoints"][0]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert slices["web-all-ipv4"]["endpoints"][0]["conditions"]["ready"] is True
    (pod,) = model.snapshot("pods")[0]
    assert "deletionTimestamp" in pod["metadata"]


def test_nodes_zones_and_topology_hints() -> None:
    """Pods on nodes get nodeName and zone; a Service with topology hints gets forZones
    (the pod's own zone unless hint_zones says otherwise); nodes are served by the API."""
    model = ClusterModel()
    model.add_node("n1", zone="a", region="r")
    model.add_node("n2", zone="b")
    model.add_service("web", "prod", ports=[("http", 8080)], topology_hints=True)
    model.add_statefulset("web", "prod", 2, nodes=["n1", "n2"])
    model.update_pod("web-1", "prod", hint_zones=("a",))
    (eps,) = model.snapshot("endpointslices")[0]
    first, second = eps["endpoints"]
    assert (first["nodeName"], first["zone"], first["hints"]) == ("n1", "a", {"forZones": [{"name": "a"}]})
    assert (second["zone"], second["hints"]) == ("b", {"forZones": [{"name": "a"}]})
    with FakeKubeAPI(model) as api:
        status, node = get(api, "/api/v1/nodes/n1")
        assert status == 200 and node["metadata"]["labels"]["topology.kubernetes.io/zone"] == "a"
        assert len(get(api, "/api/v1/nodes")[1]["items"]) == 2


def test_max_endpoints_per_slice_splits_slices() -> None:
    """150 endpoints with at most 100 per slice: two slices (web-ipv4, web-ipv4-2)."""
    model = ClusterModel(max_endpoints_per_slice=100)
    model.add_service("web", "prod", ports=[("http", 8080)])
    model.add_statefulset("web", "prod", 150)
    sizes = {s["metadata"]["name"]: len(s["endpoints"]) for s in model.snapshot("endpointslices")[0]}
    assert sizes == {"web-ipv4": 100, "web-ipv4-2": 50}
    with pytest.raises(InvalidName):
        ClusterModel(max_endpoints_per_slice=0)


def test_forbidden_names_verb_resource_and_namespace(api: FakeKubeAPI) -> None:
    """The 403 message reads like the API server's RBAC refusal."""
    api.fault = "forbidden"
    status, body = get(api, SLICES.replace("/endpointslices", "/namespaces/prod/endpointslices") + "?watch=true")
    assert status == 403
    assert body["message"].startswith('endpointslices.discovery.k8s.io is forbidden: User "system:serviceaccount:prod:default"')
    assert 'cannot watch resource "endpointslices" in API group "discovery.k8s.io" in the namespace "prod"' in body["message"]


def test_bearer_token_required(model: ClusterModel) -> None:
    """With token= every request needs it: 401 without."""
    with FakeKubeAPI(model, token="s3cret") as api:
        assert get(api, "/api/v1/services")[0] == 401
        conn = http.client.HTTPConnection(api.host, api.port, timeout=5)
        try:
            conn.request("GET", "/api/v1/services", headers={"Authorization": "Bearer s3cret"})
            assert conn.getresponse().status == 200
        finally:
            conn.close()
