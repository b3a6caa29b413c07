"""kafka_bootstrap_servers given a live service (the name forms are in tests/test_connect.py)."""

from __future__ import annotations

import pytest

from headless_client import Endpoint, HeadlessService, InvalidArgument, NoEndpointsAvailable
from headless_client.kafka_helpers import kafka_bootstrap_servers
from headless_client.testing import FakeClusterDNS, StaticResolver


def test_a_live_service_gives_its_view_by_pod_names() -> None:
    """SRV discovery: one host:port per pod, in ordinal order, no new DNS query."""
    with FakeClusterDNS() as cluster:
        cluster.add_statefulset("kafka", "data", 3, service="kafka-headless", port_name="tcp-client", port=9092)
        with HeadlessService("kafka-headless.data", port="tcp-client", resolver=cluster.resolver()) as svc:
            cluster.clear_queries()
            servers = kafka_bootstrap_servers(svc)
            assert cluster.queries == []
    assert servers == ",".join(f"kafka-{i}.kafka-headless.data.svc.cluster.local:9092" for i in range(3))


def test_a_service_without_names_gives_addresses() -> None:
    """A/AAAA discovery: addresses, IPv6 in brackets."""
    resolver = StaticResolver({"kafka.data": [Endpoint("10.0.0.2", 9092), Endpoint("fd00::1", 9092)]})
    with HeadlessService("kafka.data", port=9092, resolver=resolver) as svc:
        assert kafka_bootstrap_servers(svc) == "10.0.0.2:9092,[fd00::1]:9092"


def test_an_empty_view_and_a_wrong_argument() -> None:
    """No broker in the view, or something that is not a service: clear errors."""
    # NXDOMAIN at start: an empty view.
    with HeadlessService("kafka.data", port=9092, resolver=StaticResolver({})) as svc, \
            pytest.raises(NoEndpointsAvailable, match="kafka.data"):
        kafka_bootstrap_servers(svc)
    with pytest.raises(InvalidArgument, match="42"):
        kafka_bootstrap_servers(42)
