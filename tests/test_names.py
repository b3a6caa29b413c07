"""names.py: validation, qualification, StatefulSet pod names, resolv.conf."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import headless_client as hc
from headless_client.errors import InvalidName
from headless_client.names import (
    is_generated_hostname,
    parse_pod_fqdn,
    parse_resolv_conf,
    pod_ordinal,
    srv_name,
    try_parse_pod_fqdn,
    validate_label,
)


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (("web", "prod"), {}, "web.prod.svc.cluster.local"),
        (("web.prod",), {}, "web.prod.svc.cluster.local"),
        (("web.prod", "other"), {}, "web.prod.svc.cluster.local"),
        (("web.prod.svc",), {}, "web.prod.svc.cluster.local"),
        (("web.prod.svc.cluster.local",), {}, "web.prod.svc.cluster.local"),
        (("web.prod.svc.cluster.local.",), {}, "web.prod.svc.cluster.local"),
        (("web", "prod"), {"cluster_domain": "k8s.example"}, "web.prod.svc.k8s.example"),
        (("web", "prod"), {"cluster_domain": "k8s.example."}, "web.prod.svc.k8s.example"),
        (("web-0.web.prod",), {}, "web-0.web.prod.svc.cluster.local"),
        (("db.example.com.",), {}, "db.example.com"),
    ],
)
def test_service_fqdn(args, kwargs, expected):
    """Names are qualified the way the kubelet's search list would, into one absolute name."""
    assert hc.service_fqdn(*args, **kwargs) == expected


@pytest.mark.parametrize(
    "bad",
    ["", "Web.prod", "web_1.prod", "-web.prod", "web-.prod", "a" * 64 + ".prod", "web..prod", "svc",
     "a.b.c.d.e", ".", "web.prod " ],
)
def test_service_fqdn_rejects(bad):
    """Bad service names raise InvalidName quoting the value."""
    with pytest.raises(InvalidName) as info:
        hc.service_fqdn(bad, "prod")
    assert repr(bad) in str(info.value) or repr(bad.split(".")[0]) in str(info.value) or "label" in str(
        info.value
    )


def test_service_fqdn_needs_namespace():
    """A one-label name without a namespace is an error naming the service."""
    with pytest.raises(InvalidName, match="'web'"):
        hc.service_fqdn("web")


def test_service_fqdn_total_length():
    """A name over 253 characters is refused."""
    long = ".".join(["a" * 60] * 4) + ".svc"
    with pytest.raises(InvalidName, match="longer than 253"):
        hc.service_fqdn(long)


def test_service_fqdn_non_str():
    """A non-str service is an InvalidName naming its type."""
    with pytest.raises(InvalidName, match="int"):
        hc.service_fqdn(3)  # type: ignore[arg-type]


def test_pod_fqdn():
    """Pod FQDNs follow <sts>-<n>.<service>.<ns>.svc.<domain>."""
    assert hc.pod_fqdn("web", 2, namespace="prod") == "web-2.web.prod.svc.cluster.local"
    assert (
        hc.pod_fqdn("kafka", 0, service="kafka-headless", namespace="prod")
        == "kafka-0.kafka-headless.prod.svc.cluster.local"
    )
    assert hc.pod_fqdn("web", 0, namespace="prod", cluster_domain="k8s.example") == (
        "web-0.web.prod.svc.k8s.example"
    )


@pytest.mark.parametrize("ordinal", [-1, True, False, 1.0, "1", None])
def test_pod_fqdn_rejects_bad_ordinals(ordinal):
    """Negative and non-int ordinals (bool included) are refused, naming the value."""
    with pytest.raises(InvalidName, match=repr(ordinal).replace("(", r"\(").replace(".", r"\.")):
        hc.pod_fqdn("web", ordinal, namespace="prod")


def test_pod_fqdn_requires_namespace():
    """Without a namespace, the pod name cannot be built."""
    with pytest.raises(InvalidName, match="namespace"):
        hc.pod_fqdn("web", 0)


def test_pod_hostname_length():
    """A StatefulSet name whose pod hostname exceeds 63 characters is refused."""
    with pytest.raises(InvalidName, match="63"):
        hc.pod_fqdn("a" * 62, 10, namespace="prod")


def test_ordinal_hostnames():
    """ordinal_hostnames lists every pod FQDN from start."""
    assert hc.ordinal_hostnames("web", 3, namespace="prod") == [
        f"web-{i}.web.prod.svc.cluster.local" for i in range(3)
    ]
    assert hc.ordinal_hostnames("web", 2, namespace="prod", start=5) == [
        "web-5.web.prod.svc.cluster.local",
        "web-6.web.prod.svc.cluster.local",
    ]
    assert hc.ordinal_hostnames("web", 0, namespace="prod") == []
    with pytest.raises(InvalidName, match="-1"):
        hc.ordinal_hostnames("web", -1, namespace="prod")


def test_parse_pod_fqdn():
    """parse_pod_fqdn splits a StatefulSet pod FQDN into its parts, case-insensitively."""
    pod = hc.parse_pod_fqdn("web-2.web.prod.svc.cluster.local")
    assert pod == hc.PodName("web", 2, "web", "prod", "cluster.local")
    assert pod.fqdn == "web-2.web.prod.svc.cluster.local"
    assert hc.parse_pod_fqdn("WEB-12.Web.PROD.svc.k8s.example.") == hc.PodName(
        "web", 12, "web", "prod", "k8s.example"
    )
    assert hc.parse_pod_fqdn("my-db-3.my-db-hl.ns.svc.cluster.local").statefulset == "my-db"


@pytest.mark.parametrize(
    "bad",
    [
        "web.prod.svc.cluster.local",
        "web-01.web.prod.svc.cluster.local",
        "web-x.web.prod.svc.cluster.local",
        "10-244-1-20.web.prod.svc.cluster.local",
        "web-0.web.prod.pod.cluster.local",
        "web-0",
        "",
    ],
)
def test_parse_pod_fqdn_rejects(bad):
    """Names that are not StatefulSet pods are refused, quoting the name."""
    with pytest.raises(InvalidName, match="not|no "):
        hc.parse_pod_fqdn(bad)
    assert try_parse_pod_fqdn(bad) is None


@pytest.mark.parametrize(
    ("label", "generated"),
    [
        ("10-244-1-20", True),
        ("fd00-10-244-1--a", True),
        ("5678-abcd--0", True),
        ("web-0", False),
        ("web-1-2-3", False),
        ("300-1-1-1", False),
        ("kafka-10", False),
    ],
)
def test_generated_hostnames(label, generated):
    """Dashed IPv4/IPv6 names are recognised as generated (no ordinal)."""
    assert is_generated_hostname(label) is generated


def test_srv_name():
    """SRV owner names are built only from valid port names and protocols."""
    assert srv_name("http", "tcp", "web.prod.svc.cluster.local") == "_http._tcp.web.prod.svc.cluster.local"
    for bad in ["", "HTTP", "1234", "a--b", "x" * 16, "-http"]:
        with pytest.raises(InvalidName, match=repr(bad)):
            srv_name(bad, "tcp", "web.prod.svc.cluster.local")
    with pytest.raises(InvalidName, match="'icmp'"):
        srv_name("http", "icmp", "web.prod.svc.cluster.local")


def test_parse_resolv_conf_kubelet():
    """The kubelet's search list gives the namespace and cluster domain."""
    conf = parse_resolv_conf(
        "search prod.svc.k8s.example svc.k8s.example k8s.example ec2.internal\n"
        "nameserver 10.96.0.10\noptions ndots:5\n"
    )
    assert conf.namespace == "prod"
    assert conf.cluster_domain == "k8s.example"
    assert conf.nameservers == ("10.96.0.10",)
    assert conf.ndots == 5


def test_parse_resolv_conf_plain():
    """A non-Kubernetes resolv.conf yields no namespace or domain; the last search line wins."""
    conf = parse_resolv_conf("# comment\nsearch a.example\nsearch b.example\nnameserver 1.1.1.1\n")
    assert conf.namespace is None
    assert conf.cluster_domain is None
    assert conf.search == ("b.example",)
    assert parse_resolv_conf("").nameservers == ()


@given(st.text(max_size=80))
def test_validate_label_only_raises_invalid_name(text):
    """Any text is either a valid label or an InvalidName naming it."""
    try:
        assert validate_label(text) == text
    except InvalidName as exc:
        assert repr(text) in str(exc)


@given(st.text(max_size=300), st.one_of(st.none(), st.text(max_size=70)))
def test_service_fqdn_fuzz(name, namespace):
    """service_fqdn either returns a name of at most 253 chars or raises InvalidName."""
    try:
        result = hc.service_fqdn(name, namespace)
    except InvalidName:
        return
    assert len(result) <= 253
    assert not result.endswith(".")


def _full_rules(name):
    """:func:`parse_pod_fqdn` as a value: the PodName, or None where it raises."""
    try:
        return parse_pod_fqdn(name)
    except InvalidName:
        return None


_PIECES = ["web", "web-0", "web-12", "Web-3", "db-007", "10-1-2-3", "10-1-2-300", "fd00--1", "a" * 61 + "-1",
           "a" * 62 + "-1", "svc", "prod", "cluster", "local", "x", "-a", "a-", "a_b", "", "0", "web-0-1", "é-1"]


@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=8), st.booleans())
def test_quick_pod_name_reading_agrees_with_the_full_rules(labels, dot):
    """try_parse_pod_fqdn and pod_ordinal (one match, remembered) give what the full rules
    give, for names of every shape, asked twice."""
    name = ".".join(labels) + ("." if dot else "")
    for _ in range(2):
        expected = _full_rules(name)
        assert try_parse_pod_fqdn(name) == expected
        assert pod_ordinal(name) == (None if expected is None else expected.ordinal)


@pytest.mark.parametrize("name", [
    "web-3.web.prod.svc.cluster.local", "WEB-3.Web.Prod.SVC.cluster.local.", "web-3.web.prod.svc.a.b.c",
    "10-1-2-3.web.prod.svc.cluster.local", "10-1-2-300.web.prod.svc.cluster.local",
    "web-3.web.prod.cluster.local", "web-3.web.prod.svc", "web.web.prod.svc.cluster.local",
    "web-3." + "a" * 63 + ".prod.svc.cluster.local", "web-3.web.prod.svc." + ".".join(["a" * 60] * 4),
])
def test_quick_pod_name_reading_on_the_usual_and_edge_shapes(name):
    """Case, trailing dot, long domains, dashed-IP hostnames, names past 253 octets."""
    expected = _full_rules(name)
    assert try_parse_pod_fqdn(name) == expected
    assert pod_ordinal(name) == (None if expected is None else expected.ordinal)
