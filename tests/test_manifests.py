"""examples/kubernetes: the manifests are consistent, and the client script in the
ConfigMap works (against the fake cluster)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

from headless_client.testing import FakeClusterDNS  # noqa: E402

DIR = Path(__file__).resolve().parent.parent / "examples" / "kubernetes"


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(DIR.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d is not None)
    return docs


def one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def test_kinds_and_api_versions() -> None:
    kinds = sorted((d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in documents())
    assert kinds == [
        ("apps/v1", "Deployment", "web-client"),
        ("apps/v1", "StatefulSet", "web"),
        ("rbac.authorization.k8s.io/v1", "Role", "headless-client-endpointslices"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding", "headless-client-endpointslices"),
        ("v1", "ConfigMap", "web-client"),
        ("v1", "Service", "web"),
        ("v1", "ServiceAccount", "headless-client"),
    ]
    for d in documents():
        assert "namespace" not in d["metadata"]  # applies to the namespace of your choice


def test_cluster_ip_is_the_string_none() -> None:
    # `clusterIP: None` in YAML is the *string* "None" (what Kubernetes expects), not null.
    assert one("Service", "web")["spec"]["clusterIP"] == "None"


def test_statefulset_matches_service() -> None:
    service = one("Service", "web")
    sts = one("StatefulSet", "web")
    assert sts["spec"]["serviceName"] == service["metadata"]["name"]
    template = sts["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    # Every Service port is named (SRV records need names) and targets a named container port.
    container_ports = {
        p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])
    }
    for port in service["spec"]["ports"]:
        assert port.get("name"), f"unnamed Service port {port}: no SRV record"
        assert port["targetPort"] in container_ports, port
        assert port.get("protocol", "TCP") == "TCP"
    for c in template["spec"]["containers"]:
        probe = c.get("readinessProbe", {}).get("httpGet")
        if probe:
            assert probe["port"] in container_ports


def test_client_uses_the_service_and_its_named_port() -> None:
    service = one("Service", "web")
    port_names = {p["name"] for p in service["spec"]["ports"]}
    deploy = one("Deployment", "web-client")
    spec = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["selector"]["matchLabels"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
    containers = {c["name"]: c for c in spec["containers"]}
    client = containers["client"]
    assert env(client)["SERVICE"] == service["metadata"]["name"]
    assert env(client)["PORT_NAME"] in port_names
    watch = containers["watch"]
    cmd = watch["command"]
    assert cmd[:4] == ["python", "-m", "headless_client", "watch"]
    assert cmd[4] == service["metadata"]["name"]
    assert cmd[cmd.index("--port") + 1] in port_names
    # The script comes from the ConfigMap, mounted where the command looks for it.
    configmap = one("ConfigMap", "web-client")
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in client["volumeMounts"]}
    app = next(name for name, v in volumes.items() if v.get("configMap", {}).get("name") == "web-client")
    script = client["command"][-1]
    assert script.startswith(mounts[app] + "/")
    assert script.rsplit("/", 1)[1] in configmap["data"]
    # The library is installed by the init container into a volume both containers import from.
    install = spec["initContainers"][0]
    target = install["command"][install["command"].index("--target") + 1]
    for c in (client, watch):
        assert env(c)["PYTHONPATH"] == target
        assert {m["mountPath"] for m in c["volumeMounts"]} >= {target}


def test_configmap_script_runs_against_the_fake_cluster(tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(one("ConfigMap", "web-client")["data"]["client.py"])
    with FakeClusterDNS() as cluster:
        cluster.add_statefulset("web", "demo", 3, serve="http")
        proc = subprocess.run(
            [sys.executable, "-W", "error", str(script)],
            env={"PATH": "/usr/bin:/bin", "SERVICE": "web", "PORT_NAME": "http", "NAMESPACE": "demo",
                 "NAMESERVER": cluster.nameserver, "ITERATIONS": "3", "INTERVAL": "0"},
            capture_output=True, text=True, timeout=60, check=False,
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == [f"3 pods, asked web-{i}.web.demo.svc.cluster.local: web-{i}" for i in range(3)]


def test_rbac_for_the_endpointslice_source() -> None:
    """rbac-endpointslices.yaml grants exactly get, list, watch on endpointslices, bound to
    the headless-client service account."""
    role = one("Role", "headless-client-endpointslices")
    assert role["rules"] == [
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]}
    ]
    binding = one("RoleBinding", "headless-client-endpointslices")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": one("ServiceAccount", "headless-client")["metadata"]["name"]}]
