"""resolver.py without I/O: settings, lookup builders, the loopback rule and the drop log."""

from __future__ import annotations

import logging
import math

import pytest

import headless_client as hc
from headless_client.exchange import ExchangeConfig, ExchangePolicy, Lookup
from headless_client.wire import Nameserver
from tests.fakezone import FakeZone, statefulset

LOOPBACK_PODS = statefulset("web", "prod", ["127.10.0.1", "10.0.0.2"])


@pytest.mark.parametrize("timeout", [math.inf, math.nan, -1, 0, 10**9, "2", True])
def test_bad_timeouts_are_refused_by_name(timeout):
    with pytest.raises(hc.InvalidName, match="timeout"):
        hc.Resolver(["127.0.0.1"], timeout=timeout)


def test_exchange_policy_is_taken_and_checked():
    policy = ExchangePolicy(tcp_max_questions=64)
    r = hc.Resolver(["127.0.0.1:5353", "127.0.0.2"], timeout=3, exchange=policy)
    assert r.exchange_config == ExchangeConfig(
        (Nameserver("127.0.0.1", 5353), Nameserver("127.0.0.2")), 3.0, policy
    )
    assert hc.Resolver(["127.0.0.1"]).exchange_policy == ExchangePolicy()
    with pytest.raises(hc.InvalidName, match="exchange"):
        hc.Resolver(["127.0.0.1"], exchange={"tcp_max_questions": 64})  # type: ignore[arg-type]


def test_exchange_config_follows_the_resolvers_settings_now():
    """Lookups built after a change of nameservers use the new ones."""
    r = hc.Resolver(["127.0.0.1"])
    r.nameservers = (Nameserver("127.0.0.9"),)
    assert r.service_lookup("web.prod", 80).config.nameservers == (Nameserver("127.0.0.9"),)


def test_lookup_builders_check_their_arguments_at_once():
    """Bad input is refused when the lookup is built, before any driver runs it."""
    r = hc.Resolver(["127.0.0.1"], namespace="prod")
    for build in (
        lambda: r.service_lookup("web", 70000),
        lambda: r.service_lookup("Bad_Name!", 80),
        lambda: r.pod_lookup("web", -1),
        lambda: r.host_lookup("web-0.web.prod.svc.cluster.local", port=-2),
        lambda: r.statefulset_lookup("web", replicas=-1),
    ):
        with pytest.raises(hc.InvalidName):
            build()
    lookup = r.service_lookup("web", "http", previous=hc.EndpointSet([]))
    assert isinstance(lookup, Lookup) and lookup.name == "web.prod.svc.cluster.local"
    lookup.plan.close()


def test_loopback_answers_are_kept_only_when_every_nameserver_is_on_loopback():
    """Tests and local development (DNS on loopback) keep loopback pods; otherwise they are dropped."""
    zone = FakeZone(LOOPBACK_PODS)
    local = hc.Resolver(["127.0.0.1:5353", "[::1]:53"], namespace="prod")
    assert len(zone.run(local.service_lookup("web", 80).plan)) == 2
    remote = hc.Resolver(["10.96.0.10"], namespace="prod")
    assert [e.address for e in zone.run(remote.service_lookup("web", 80).plan)] == ["10.0.0.2"]
    mixed = hc.Resolver(["127.0.0.1", "10.96.0.10"], namespace="prod")
    assert len(zone.run(mixed.service_lookup("web", 80).plan)) == 1
    off = hc.Resolver(["10.96.0.10"], namespace="prod", screen_addresses=False)
    assert len(zone.run(off.service_lookup("web", 80).plan)) == 2


def test_metadata_address_is_dropped_and_logged_once_per_change(caplog):
    """The same drop on every refresh is logged once; a change is logged again, naming the service."""
    caplog.set_level(logging.WARNING, logger="headless_client")
    records = statefulset("web", "prod", ["10.0.0.1", "169.254.169.254"])
    r = hc.Resolver(["10.96.0.10"], namespace="prod")

    def refresh():
        return FakeZone(records).run(r.service_lookup("web", "http").plan)

    for _ in range(3):
        assert [e.address for e in refresh()] == ["10.0.0.1"]
    lines = [rec.getMessage() for rec in caplog.records]
    assert len(lines) == 1
    assert "169.254.169.254 (link-local" in lines[0] and "web.prod.svc.cluster.local" in lines[0]
    records[("web-0.web.prod.svc.cluster.local.", "A")] = ["0.0.0.0"]
    records[("web.prod.svc.cluster.local.", "A")][0] = "0.0.0.0"
    caplog.clear()
    refresh()
    refresh()
    assert len(caplog.records) == 1 and "0.0.0.0 (unspecified" in caplog.records[0].getMessage()


def test_a_drop_that_went_away_is_logged_again_when_it_returns(caplog):
    caplog.set_level(logging.WARNING, logger="headless_client")
    r = hc.Resolver(["10.96.0.10"], namespace="prod")
    bad = statefulset("web", "prod", ["10.0.0.1", "224.0.0.1"])
    good = statefulset("web", "prod", ["10.0.0.1"])
    for records in (bad, good, bad):
        FakeZone(records).run(r.service_lookup("web", 80).plan)
    assert [rec.getMessage().count("224.0.0.1 (multicast") for rec in caplog.records] == [1, 1]
