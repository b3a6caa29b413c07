"""headless_client.contrib._http_routing: the HTTP integrations' shared routing arguments."""

from __future__ import annotations

import pytest

import headless_client as hc
from headless_client.contrib._http_routing import IDEMPOTENT_METHODS, HttpRouting
from headless_client.errors import InvalidArgument, InvalidName


def routing(**changes):
    arguments = {"key": None, "header": None, "retries": 2, "server_name": "pod", "host_header": "url",
                 "failure_statuses": (), "retry_methods": IDEMPOTENT_METHODS}
    arguments.update(changes)
    return HttpRouting.checked(**arguments)


@pytest.mark.parametrize(
    ("changes", "error", "named"),
    [
        ({"key": len, "header": "X-User"}, InvalidName, "key= or header="),
        ({"key": "X-User"}, InvalidArgument, "'X-User'"),
        ({"retries": -1}, InvalidName, "-1"),
        ({"retries": True}, InvalidName, "True"),
        ({"server_name": "url"}, InvalidName, "'url'"),
        ({"host_header": "pods"}, InvalidName, "'pods'"),
    ],
)
def test_bad_arguments_are_refused_naming_the_value(changes, error, named):
    """Each bad argument raises the documented error whose message names the value."""
    with pytest.raises(error, match=named):
        routing(**changes)


def test_the_key_comes_from_the_function_else_the_header():
    """key= is asked first, header= otherwise, and with neither there is no key."""
    assert routing(key=lambda request: f"k-{request}").key_of("r", {}) == "k-r"
    assert routing(header="X-User").key_of("r", {"X-User": "42"}) == "42"
    assert routing().key_of("r", {"X-User": "42"}) is None


def test_names_for_tls_and_host_fall_back_to_the_service():
    """A pod's FQDN is used when asked for and known; otherwise the service's name."""
    named = hc.Endpoint("10.0.0.1", 80, hostname="web-0.web.prod.svc.cluster.local")
    anonymous = hc.Endpoint("10.0.0.2", 80)
    assert routing().tls_name(named, "web.prod") == "web-0.web.prod.svc.cluster.local"
    assert routing().tls_name(anonymous, "web.prod") == "web.prod"
    assert routing(server_name="service").tls_name(named, "web.prod") == "web.prod"
    assert routing(host_header="pod").host_name(named, "web.prod") == "web-0.web.prod.svc.cluster.local"
    assert routing(host_header="service").host_name(named, "web.prod") == "web.prod"


def test_only_the_retry_methods_may_be_resent_whatever_their_case():
    """Methods are compared in upper case against retry_methods."""
    assert routing().may_resend("get")
    assert not routing().may_resend("POST")
    assert routing(retry_methods=["post"]).may_resend("POST")
