"""The watch loop's handling of events: resource versions, bookmarks, deletions, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from headless_client.contrib.kubernetes import KubernetesConfig
from headless_client.contrib.kubernetes.watch import Gone, KubeAPI, SliceWatch
from headless_client.errors import KubernetesAPIError, KubernetesForbidden


def event(kind: str, name: str = "web-ipv4", rv: str = "10", **extra: Any) -> bytes:
    obj: dict[str, Any] = {"metadata": {"name": name, "resourceVersion": rv}}
    if kind in ("ADDED", "MODIFIED"):
        obj.update({"addressType": "IPv4", "ports": [{"name": "http", "port": 80}],
                    "endpoints": [{"addresses": ["10.0.0.1"], "hostname": "web-0"}]})
    obj.update(extra)
    return json.dumps({"type": kind, "object": obj}).encode()


@pytest.fixture(name="watch")
def _watch() -> tuple[SliceWatch, list[bool]]:
    calls: list[bool] = []
    api = KubeAPI(KubernetesConfig(server="http://127.0.0.1:1"), 1.0)
    return SliceWatch(api, "web", "prod", calls.append), calls


def test_events_update_the_slices_and_the_version(watch: tuple[SliceWatch, list[bool]]) -> None:
    """ADDED/MODIFIED store the slice, DELETED drops it; each moves the resource version."""
    w, calls = watch
    assert w._event(event("ADDED", rv="5"), {}) == 1
    assert w.view is not None and [s.name for s in w.view] == ["web-ipv4"] and w._rv == "5"
    w._event(event("ADDED", name="web-ipv4-2", rv="6"), {})
    w._event(event("DELETED", rv="7"), {})
    assert [s.name for s in w.view] == ["web-ipv4-2"] and w._rv == "7"
    assert calls == [True, True, True]


def test_bookmarks_move_the_version_only(watch: tuple[SliceWatch, list[bool]]) -> None:
    """A BOOKMARK changes nothing but the version the next watch starts from."""
    w, calls = watch
    assert w._event(event("BOOKMARK", rv="42"), {}) == 0
    assert w._rv == "42" and w.view is None and calls == []


def test_error_events_raise_gone_or_api_errors(watch: tuple[SliceWatch, list[bool]]) -> None:
    """ERROR 410 raises Gone (list again); 403 and others raise the API errors."""
    w, _ = watch
    gone = json.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                                   "message": "too old resource version: 1 (5)"}}).encode()
    with pytest.raises(Gone, match="too old"):
        w._event(gone, {"watch": "true"})
    with pytest.raises(KubernetesForbidden):
        w._event(json.dumps({"type": "ERROR", "object": {"code": 403}}).encode(), {"watch": "true"})
    with pytest.raises(KubernetesAPIError, match="500"):
        w._event(json.dumps({"type": "ERROR", "object": {"code": 500}}).encode(), {"watch": "true"})


def test_malformed_slices_are_dropped_not_fatal(watch: tuple[SliceWatch, list[bool]]) -> None:
    """A malformed slice in an event is logged and left out; the watch goes on."""
    w, _ = watch
    w._event(event("ADDED"), {})
    w._event(event("MODIFIED", addressType="IPX"), {})
    assert w.view == ()
