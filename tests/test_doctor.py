"""``headless-client doctor``: the pure checks over hand-made facts, and the command run
against :class:`~headless_client.testing.FakeClusterDNS` (a ClusterIP Service, a
non-governing Service, zero pods, a missing namespace, a healthy StatefulSet, a service
too big for UDP). Real CoreDNS: tests/integration/test_doctor.py."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import headless_client as hc
from headless_client.cli import main
from headless_client.doctor import (
    Answer,
    Environment,
    Facts,
    Finding,
    check_all,
    check_environment,
    check_size,
    check_transport,
    check_ttl,
    detect_environment,
    healthy,
)
from headless_client.testing import FakeClusterDNS

NAME = "web.prod.svc.cluster.local"


def srv_records(*labels: str, port: int = 8080, service: str = NAME) -> tuple[str, ...]:
    return tuple(f"0 33 {port} {label}.{service}." for label in labels)


def facts(**changes: object) -> Facts:
    """A healthy 3-pod StatefulSet behind its governing Service, as gathered."""
    pods = [hc.Endpoint(f"10.0.0.{i + 1}", 8080, hostname=f"web-{i}.{NAME}", ordinal=i) for i in range(3)]
    base = Facts(
        service=NAME,
        namespace="prod",
        cluster_domain="cluster.local",
        port="http",
        protocol="tcp",
        nameserver="10.96.0.10:53",
        environment=Environment("/etc/resolv.conf", ("prod.svc.cluster.local", "svc.cluster.local"),
                                "prod", "resolv.conf search list", "cluster.local"),
        namespace_answer=Answer("prod.svc.cluster.local", "A", "NOERROR"),
        a=Answer(NAME, "A", "NOERROR", ("10.0.0.1", "10.0.0.2", "10.0.0.3"), 5, 120),
        aaaa=Answer(NAME, "AAAA", "NOERROR"),
        srv=Answer(NAME, "SRV", "NOERROR", srv_records("web-0", "web-1", "web-2"), 5, 300),
        port_srv=Answer(f"_http._tcp.{NAME}", "SRV", "NOERROR", srv_records("web-0", "web-1", "web-2"), 5, 320),
        endpoints=hc.EndpointSet(pods, name=NAME),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def statuses(findings: list[Finding]) -> dict[str, str]:
    return {f.check: f.status for f in findings}


# -- pure checks ------------------------------------------------------------------------------------


def test_a_healthy_statefulset_has_no_finding() -> None:
    """Every check passes (or informs) for the governing Service of a StatefulSet."""
    findings = check_all(facts())
    assert healthy(findings)
    assert statuses(findings) == {
        "environment": "ok", "exists": "ok", "headless": "ok", "srv": "ok", "pod_names": "ok",
        "ttl": "ok", "screening": "ok", "size": "ok",
    }
    assert all("\n" not in f.message for f in findings)


def test_a_clusterip_service_fails_headless_and_skips_pod_checks() -> None:
    """NotHeadless from the library is a failure naming the virtual IP and the fix."""
    findings = check_all(facts(a=Answer(NAME, "A", "NOERROR", ("10.96.4.4",), 5, 60), endpoints=None,
                               library_error_type="NotHeadless", library_error="NotHeadless: ..."))
    headless = next(f for f in findings if f.check == "headless")
    assert headless.status == "fail" and "10.96.4.4" in headless.message and "clusterIP: None" in headless.message
    assert "pod_names" not in statuses(findings) and "srv" not in statuses(findings)
    assert not healthy(findings)


def test_generated_names_point_to_the_governing_service() -> None:
    """A second Service over StatefulSet pods: a warning naming the Service whose PTR gives
    the pods' own names."""
    peers = "peers.prod.svc.cluster.local"
    dashed = srv_records("10-0-0-1", "10-0-0-2", service=peers)
    ptr = (Answer("1.0.0.10.in-addr.arpa", "PTR", "NOERROR", (f"web-0.{NAME}.", f"10-0-0-1.{peers}.")),)
    findings = check_all(facts(service=peers, srv=Answer(peers, "SRV", "NOERROR", dashed, 5, 200),
                               port_srv=Answer(f"_http._tcp.{peers}", "SRV", "NOERROR", dashed, 5, 200),
                               ptr=ptr, endpoints=hc.EndpointSet(
                                   [hc.Endpoint("10.0.0.1", 8080, hostname=f"10-0-0-1.{peers}"),
                                    hc.Endpoint("10.0.0.2", 8080, hostname=f"10-0-0-2.{peers}"),
                                    hc.Endpoint("10.0.0.3", 8080)])))
    names = next(f for f in findings if f.check == "pod_names")
    assert names.status == "warn" and "'web'" in names.message and "governing" in names.message


def test_nxdomain_says_zero_pods_or_missing_and_how_to_tell() -> None:
    """NXDOMAIN in an existing namespace names both causes and the kubectl command."""
    nx = {"a": Answer(NAME, "A", "NXDOMAIN"), "aaaa": Answer(NAME, "AAAA", "NXDOMAIN"),
          "srv": Answer(NAME, "SRV", "NXDOMAIN"), "port_srv": Answer(NAME, "SRV", "NXDOMAIN"),
          "endpoints": hc.EndpointSet(name=NAME), "library_error_type": "ServiceNotFound"}
    (exists,) = [f for f in check_all(facts(**nx)) if f.status == "fail"]
    assert "zero ready pods" in exists.message and "does not exist" in exists.message
    assert "endpointslices" in exists.message
    gone = facts(**nx, namespace_answer=Answer("prod.svc.cluster.local", "A", "NXDOMAIN"))
    (exists,) = [f for f in check_all(gone) if f.status == "fail"]
    assert "namespace 'prod'" in exists.message


def test_a_dns_server_failure_is_named() -> None:
    """A timeout is a failure naming the server."""
    down = facts(a=Answer(NAME, "A", "TIMEOUT", error="Timeout"), aaaa=Answer(NAME, "AAAA", "TIMEOUT"),
                 endpoints=None)
    fail = next(f for f in check_all(down) if f.check == "exists")
    assert fail.status == "fail" and "10.96.0.10:53" in fail.message


def test_a_missing_named_port_lists_the_ports_there_are() -> None:
    """A port name with no SRV record fails, listing the Service's ports."""
    findings = check_all(facts(port="grpc", port_srv=Answer(f"_grpc._tcp.{NAME}", "SRV", "NXDOMAIN")))
    srv = next(f for f in findings if f.check == "srv")
    assert srv.status == "fail" and "'grpc'" in srv.message and "8080" in srv.message


@pytest.mark.parametrize(("ttl", "status", "needle"), [(5, "ok", "5.5 s"), (10, "info", "11 s"),
                                                        (30, "warn", "33 s")])
def test_ttl_says_how_late_changes_arrive(ttl: int, status: str, needle: str) -> None:
    """TTL 5 is fine; 30 (kubeadm) is a finding with max_refresh=5 as the fix."""
    aged = facts(a=replace(facts().a, ttl=ttl), srv=replace(facts().srv, ttl=ttl),
                 port_srv=replace(facts().port_srv, ttl=ttl))  # type: ignore[arg-type]
    (finding,) = check_ttl(aged)
    assert finding.status == status and needle in finding.message
    if status == "warn":
        assert "max_refresh=5" in finding.message


def test_truncated_answers_need_tcp_and_big_ones_warn() -> None:
    """TC with TCP working is information; TCP failing is a failure; an answer over 75 %
    of 64 KiB warns."""
    big = replace(facts().port_srv, size=52_000, truncated=True, tcp="ok")  # type: ignore[type-var]
    assert check_transport(facts(port_srv=big))[0].status == "info"
    assert check_size(facts(port_srv=big))[0].status == "warn"
    refused = replace(big, tcp="ConnectionRefusedError: refused")
    (finding,) = check_transport(facts(port_srv=refused))
    assert finding.status == "fail" and "TCP port 53" in finding.message


def test_dropped_addresses_are_named() -> None:
    """An address DNS gave that the library's screening dropped is a warning naming it."""
    kept = hc.EndpointSet([ep for ep in facts().endpoints or () if ep.address != "10.0.0.3"], name=NAME)
    screening = next(f for f in check_all(facts(endpoints=kept)) if f.check == "screening")
    assert screening.status == "warn" and "10.0.0.3" in screening.message


def test_environment_from_resolv_conf_and_the_service_account(tmp_path: Path) -> None:
    """The namespace comes from the service-account file over the search list; the
    cluster domain from the svc. entry; a mismatch with the domain used warns."""
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 10.96.0.10\nsearch prod.svc.k8s.example svc.k8s.example k8s.example\n")
    account = tmp_path / "namespace"
    env = detect_environment(str(conf), str(account))
    assert (env.namespace, env.namespace_source, env.cluster_domain) == ("prod", "resolv.conf search list",
                                                                         "k8s.example")
    account.write_text("billing\n")
    env = detect_environment(str(conf), str(account))
    assert (env.namespace, env.namespace_source) == ("billing", "service account")
    (finding,) = check_environment(facts(environment=env))
    assert finding.status == "warn" and "k8s.example" in finding.message and "billing" in finding.message


# -- the command against the fake cluster ----------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[FakeClusterDNS]:
    with FakeClusterDNS(ttl=5) as made:
        made.add_statefulset("web", "prod", 3)
        made.add_service("peers", "prod", statefulset="web")
        made.add_service("api", "prod", type="ClusterIP")
        made.add_statefulset("api", "prod", 2, service="api")
        made.add_service("empty", "prod")
        made.add_statefulset("wide", "prod", 40)
        yield made


def doctor(cluster: FakeClusterDNS, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["doctor", *args, "--nameserver", cluster.nameserver, "--resolv-conf", "/dev/null"],
                out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def report(cluster: FakeClusterDNS, service: str, *args: str) -> tuple[int, dict[str, dict[str, str]]]:
    code, out, err = doctor(cluster, service, "--json", *args)
    assert err == ""
    data = json.loads(out)
    assert data["healthy"] == (code == 0)
    return code, {f["check"]: f for f in data["findings"]}


def test_cli_healthy_statefulset_exits_0(cluster: FakeClusterDNS) -> None:
    """The governing Service of a StatefulSet with a named port: exit 0, every line ok."""
    code, found = report(cluster, "web.prod", "-p", "http")
    assert code == 0
    assert {found[c]["status"] for c in ("exists", "headless", "srv", "pod_names", "ttl", "size")} == {"ok"}


def test_cli_text_report_has_one_line_per_finding(cluster: FakeClusterDNS) -> None:
    """The text report: a header, one line per finding (status, check, message), a verdict."""
    code, out, _ = doctor(cluster, "peers.prod", "-p", "http")
    lines = out.splitlines()
    assert code == 1
    assert lines[0].startswith("peers.prod.svc.cluster.local (asking 127.0.0.1:")
    assert any(line.startswith("WARN  pod_names") for line in lines)
    assert lines[-1] == "1 finding to act on"


def test_cli_clusterip_service_exits_1(cluster: FakeClusterDNS) -> None:
    """A ClusterIP Service is a failed headless check."""
    code, found = report(cluster, "api.prod", "-p", "http")
    assert code == 1 and found["headless"]["status"] == "fail"


def test_cli_non_governing_service_names_the_governing_one(cluster: FakeClusterDNS) -> None:
    """A second Service over a StatefulSet's pods: generated names; the governing Service named."""
    code, found = report(cluster, "peers.prod", "-p", "http")
    assert code == 1 and found["pod_names"]["status"] == "warn" and "'web'" in found["pod_names"]["message"]


def test_cli_zero_pods_and_missing_service(cluster: FakeClusterDNS) -> None:
    """A Service with no pods and one that does not exist both fail exists, saying so."""
    for service in ("empty.prod", "nothere.prod"):
        code, found = report(cluster, service, "-p", "http")
        assert code == 1 and found["exists"]["status"] == "fail" and "zero ready pods" in found["exists"]["message"]
    code, found = report(cluster, "web.elsewhere")
    assert code == 1 and "namespace 'elsewhere'" in found["exists"]["message"]


def test_cli_big_answers_need_tcp(cluster: FakeClusterDNS) -> None:
    """40 pods' SRV answer does not fit in UDP: the transport line says TCP is used."""
    code, found = report(cluster, "wide.prod", "-p", "http")
    assert code == 0 and found["transport"]["status"] == "info" and "TCP" in found["transport"]["message"]


def test_cli_screening_with_allowed_networks(cluster: FakeClusterDNS) -> None:
    """--allowed-network that excludes the pods: every address is reported dropped."""
    code, found = report(cluster, "web.prod", "--allowed-network", "192.0.2.0/24")
    assert code == 1 and found["screening"]["status"] == "warn" and "3 address(es)" in found["screening"]["message"]


def test_cli_detects_namespace_from_resolv_conf(cluster: FakeClusterDNS, tmp_path: Path) -> None:
    """A one-label name is qualified with the namespace of --resolv-conf's search list."""
    conf = tmp_path / "resolv.conf"
    conf.write_text("search prod.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n")
    out = io.StringIO()
    code = main(["doctor", "web", "--json", "--nameserver", cluster.nameserver, "--resolv-conf", str(conf)],
                out=out, err=io.StringIO())
    data = json.loads(out.getvalue())
    assert code == 0 and data["service"] == NAME
    assert "prod" in data["findings"][0]["message"] and data["findings"][0]["status"] == "ok"


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["Bad_Name.prod"], "Bad_Name"), (["web.prod", "--port", "99999"], "99999"),
     (["web.prod", "--allowed-network", "not-a-cidr"], "not-a-cidr"), ([], "service")],
)
def test_cli_usage_errors_exit_2(cluster: FakeClusterDNS, args: list[str], needle: str) -> None:
    """Bad input: one line on stderr naming it, exit 2."""
    code, out, err = doctor(cluster, *args)
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err
