"""ConnectPlan (sans-I/O target selection and errors) and kafka_bootstrap_servers, no network."""

from __future__ import annotations

import ssl

import pytest
from headless_client.view import ServiceView

from headless_client import (
    ConnectError,
    Endpoint,
    EndpointNotFound,
    EndpointSet,
    HeadlessClientError,
    InvalidName,
    LeaderNotAvailable,
    NoEndpointsAvailable,
    PartitionLeader,
    PrimaryReplica,
    Resolver,
    RoundRobin,
    ServiceNotFound,
)
from headless_client.connect import DEFAULT_ATTEMPTS, DEFAULT_CONNECT_TIMEOUT, ConnectPlan, is_retryable
from headless_client.kafka_helpers import kafka_bootstrap_servers

NAME = "web.prod.svc.cluster.local"


def ep(n: int, address: str | None = None, *, hostname: bool = True) -> Endpoint:
    return Endpoint(
        address or f"10.0.0.{n + 1}",
        8080,
        f"web-{n}.{NAME}" if hostname else None,
        n if hostname else None,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_view(endpoints: list[Endpoint], strategy: object = None) -> ServiceView:
    view = ServiceView("web.prod", "http", strategy=strategy, clock=Clock())  # type: ignore[arg-type]
    view._set_name(NAME)
    view._apply(view._publish_result(EndpointSet(endpoints, name=NAME), None))
    return view


@pytest.fixture
def three() -> ServiceView:
    return make_view([ep(0), ep(1), ep(2)])


# -- arguments -----------------------------------------------------------------------------


def test_defaults(three):
    plan = ConnectPlan(three)
    assert (plan.timeout, plan.attempts) == (DEFAULT_CONNECT_TIMEOUT, DEFAULT_ATTEMPTS)
    assert plan.total_timeout == DEFAULT_CONNECT_TIMEOUT * DEFAULT_ATTEMPTS
    assert not plan.pinned
    assert ConnectPlan(three, timeout=0.5, attempts=4).total_timeout == 2.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": "2"}, "timeout"),
        ({"attempts": 0}, "attempts"),
        ({"attempts": 1.5}, "attempts"),
        ({"attempts": True}, "attempts"),
        ({"total_timeout": 0}, "total_timeout"),
        ({"ordinal": 0, "partition": 1}, "not both"),
    ],
)
def test_bad_arguments(three, kwargs, match):
    with pytest.raises(InvalidName, match=match):
        ConnectPlan(three, **kwargs)


# -- targets -------------------------------------------------------------------------------


def test_unpinned_tries_each_endpoint_once_then_gives_up(three):
    plan = ConnectPlan(three, attempts=5)
    seen = []
    for _ in range(3):
        target = plan.target()
        assert target not in seen
        seen.append(target)
        plan.record(target, ConnectionRefusedError(111, "refused"))
    assert sorted(seen, key=lambda e: e.ordinal) == list(three.endpoints)
    with pytest.raises(ConnectError, match="no endpoint left to try") as info:
        plan.target()
    assert [where for where, _ in info.value.attempts] == [str(e) for e in seen]


def test_unpinned_prefers_healthy_then_falls_back_to_ejected(three):
    e2 = three.endpoints[2]
    three.report_failure(e2)  # one of three may be ejected
    assert e2 not in three.healthy_endpoints
    plan = ConnectPlan(three)
    first = plan.target()
    assert first != e2
    plan.record(first, TimeoutError("timed out"))
    second = plan.target()
    assert second not in (first, e2)
    plan.record(second, TimeoutError("timed out"))
    # Only the ejected one is left: better than giving up.
    assert plan.target() == e2


def test_unpinned_empty_view():
    plan = ConnectPlan(make_view([]))
    with pytest.raises(NoEndpointsAvailable):
        plan.target()


def test_ordinal_pins_and_override_wins(three):
    plan = ConnectPlan(three, ordinal=1)
    assert plan.pinned
    assert plan.target() == three.endpoint(ordinal=1)
    plan.record(plan.target(), ConnectionRefusedError())
    assert plan.target() == three.endpoint(ordinal=1)  # again the same pod
    moved = Endpoint("10.9.9.9", 8080, f"web-1.{NAME}", 1)
    plan.override = moved
    assert plan.target() == moved


def test_ordinal_missing(three):
    with pytest.raises(EndpointNotFound, match="ordinal 7"):
        ConnectPlan(three, ordinal=7).target()


def test_partition_goes_to_the_leader():
    view = make_view([ep(0), ep(1)], PartitionLeader({"a": 1, "b": "web-0"}))
    plan = ConnectPlan(view, partition="a")
    assert plan.pinned
    assert plan.target() == view.endpoint(ordinal=1)
    # An override of another pod (the leader moved meanwhile) is ignored.
    plan.override = Endpoint("10.9.9.9", 8080, f"web-0.{NAME}", 0)
    assert plan.target() == view.endpoint(ordinal=1)
    plan.override = Endpoint("10.9.9.8", 8080, f"web-1.{NAME}", 1)
    assert plan.target().address == "10.9.9.8"
    assert ConnectPlan(view, partition="b").target() == view.endpoint(ordinal=0)
    with pytest.raises(LeaderNotAvailable, match="'c'"):
        ConnectPlan(view, partition="c").target()


def test_partition_needs_a_partition_leader(three):
    with pytest.raises(TypeError, match="PartitionLeader"):
        ConnectPlan(three, partition=3).target()


@pytest.mark.parametrize("key", ["write", PrimaryReplica.WRITE])
def test_writes_pin_the_primary_even_while_ejected(key):
    view = make_view([ep(0), ep(1), ep(2)], PrimaryReplica())
    primary = view.endpoint(ordinal=0)
    plan = ConnectPlan(view, key)
    assert plan.pinned and plan.primary_of is view.strategy
    assert plan.target() == primary
    plan.record(primary, ConnectionRefusedError())
    assert plan.target() == primary  # never a replica
    view.report_failure(primary)
    assert view.pick("write") == primary  # the view pins writes too, ejected or not
    assert ConnectPlan(view, key).target() == primary
    assert "the primary" in str(plan.error())


def test_reads_and_other_write_keys():
    view = make_view([ep(0), ep(1), ep(2)], PrimaryReplica(write_keys=("w", "insert")))
    assert ConnectPlan(view, "insert").primary_of is not None
    assert ConnectPlan(view, "write").primary_of is None  # not one of this strategy's keys
    assert ConnectPlan(view).primary_of is None
    assert ConnectPlan(view, ["unhashable"]).primary_of is None
    assert ConnectPlan(view, "w", ordinal=2).primary_of is None  # the ordinal decides
    read = ConnectPlan(view, "read")
    assert not read.pinned
    assert read.target().ordinal in (1, 2)


def test_write_key_with_another_strategy_is_just_a_key(three):
    assert ConnectPlan(three, "write").primary_of is None
    assert isinstance(three.strategy, RoundRobin)


# -- TLS name and retryability ------------------------------------------------------------------


def test_server_hostname(three):
    plan = ConnectPlan(three)
    assert plan.server_hostname(ep(0)) == f"web-0.{NAME}"
    assert plan.server_hostname(ep(0, hostname=False)) == NAME


def test_is_retryable():
    assert not is_retryable(ssl.SSLCertVerificationError(1, "certificate verify failed"))
    assert is_retryable(ConnectionRefusedError(111, "refused"))
    assert is_retryable(TimeoutError("timed out"))
    assert is_retryable(ssl.SSLError(1, "wrong version number"))


# -- errors -------------------------------------------------------------------------------------


def test_error_lists_every_attempt_in_order(three):
    plan = ConnectPlan(three, ordinal=2)
    v6 = Endpoint("fd00::2", 8080, f"web-2.{NAME}", 2)
    plan.record(ep(2), ConnectionRefusedError(111, "Connection refused"))
    plan.record(v6, TimeoutError("timed out"))
    err = plan.error("total timeout of 1s reached")
    assert isinstance(err, ConnectError) and isinstance(err, OSError)
    assert isinstance(err, HeadlessClientError)
    assert [where for where, _ in err.attempts] == [str(ep(2)), str(v6)]
    assert [type(e) for _, e in err.attempts] == [ConnectionRefusedError, TimeoutError]
    text = str(err)
    assert text.startswith(f"could not connect to ordinal 2 of {NAME} after 2 attempts: total timeout")
    assert f"web-2.{NAME} (10.0.0.3:8080): ConnectionRefusedError: [Errno 111] Connection refused" in text
    assert f"web-2.{NAME} ([fd00::2]:8080): TimeoutError: timed out" in text
    assert text.index("10.0.0.3") < text.index("fd00::2")


@pytest.mark.parametrize(
    ("kwargs", "what"),
    [
        ({}, "a pod"),
        ({"ordinal": 1}, "ordinal 1"),
        ({"partition": ("orders", 3)}, "the leader of partition ('orders', 3)"),
    ],
)
def test_error_names_the_target(three, kwargs, what):
    err = ConnectPlan(three, **kwargs).error()
    assert str(err) == f"could not connect to {what} of {NAME} after 0 attempts"
    assert err.attempts == ()


# -- kafka_bootstrap_servers ---------------------------------------------------------------------


class CannedResolver(Resolver):
    """Answers from a table; records what was asked. No network."""

    def __init__(self, answers: dict[tuple[str, object], EndpointSet]) -> None:
        super().__init__(["127.0.0.1:1"], namespace="data")
        self.answers = answers
        self.calls: list[tuple[object, ...]] = []

    def resolve(self, service, port, *, protocol="tcp", namespace=None):  # type: ignore[override]
        self.calls.append(("resolve", service, port, namespace))
        fqdn = self.qualify(service, namespace)
        if (fqdn, port) not in self.answers:
            raise ServiceNotFound(f"{fqdn} does not exist")
        return self.answers[fqdn, port]

    def resolve_statefulset(self, statefulset, *, namespace=None, service=None, port=None, **kw):  # type: ignore[override]
        self.calls.append(("statefulset", statefulset, namespace, service, port))
        return EndpointSet(
            Endpoint(f"10.1.0.{i + 1}", port, f"{statefulset}-{i}.{service}.{namespace}.svc.cluster.local", i)
            for i in range(2)
        )


KAFKA = "kafka-headless.data.svc.cluster.local"


def kafka_pod(i: int, address: str, port: int = 9092) -> Endpoint:
    return Endpoint(address, port, f"kafka-{i}.{KAFKA}", i)


@pytest.fixture
def canned() -> CannedResolver:
    return CannedResolver(
        {
            # Dual-stack pods: two SRV endpoints each, one bootstrap entry each.
            (KAFKA, "kafka"): EndpointSet(
                [
                    kafka_pod(1, "10.0.0.2"),
                    kafka_pod(0, "10.0.0.1"),
                    kafka_pod(0, "fd00::1"),
                    kafka_pod(1, "fd00::2"),
                ]
            ),
            (KAFKA, 9092): EndpointSet(
                [Endpoint("fd00::1", 9092), Endpoint("10.0.0.2", 9092), Endpoint("10.0.0.1", 9092)]
            ),
            (KAFKA, 9999): EndpointSet(),
        }
    )


def test_bootstrap_by_srv(canned):
    assert kafka_bootstrap_servers("kafka-headless", "kafka", resolver=canned) == (
        f"kafka-0.{KAFKA}:9092,kafka-1.{KAFKA}:9092"
    )
    assert canned.calls == [("resolve", "kafka-headless", "kafka", None)]


def test_bootstrap_by_addresses(canned):
    got = kafka_bootstrap_servers("kafka-headless.data", resolver=canned)
    assert got == "10.0.0.1:9092,10.0.0.2:9092,[fd00::1]:9092"


def test_bootstrap_by_statefulset(canned):
    got = kafka_bootstrap_servers("kafka-headless", 9093, resolver=canned, statefulset="kafka")
    assert got == f"kafka-0.{KAFKA}:9093,kafka-1.{KAFKA}:9093"
    assert canned.calls == [("statefulset", "kafka", "data", "kafka-headless", 9093)]
    canned.calls.clear()
    kafka_bootstrap_servers(f"{KAFKA}.", 9093, resolver=canned, statefulset="kafka")
    kafka_bootstrap_servers("kafka-headless.other", 9093, resolver=canned, statefulset="kafka")
    assert [c[2:4] for c in canned.calls] == [("data", "kafka-headless"), ("other", "kafka-headless")]


def test_bootstrap_errors(canned):
    with pytest.raises(NoEndpointsAvailable, match=KAFKA):
        kafka_bootstrap_servers("kafka-headless", 9999, resolver=canned)
    with pytest.raises(ServiceNotFound):
        kafka_bootstrap_servers("nope", "kafka", resolver=canned)
    with pytest.raises(InvalidName, match="needs a port number"):
        kafka_bootstrap_servers("kafka-headless", "kafka", resolver=canned, statefulset="kafka")
    with pytest.raises(InvalidName, match="not under"):
        kafka_bootstrap_servers("kafka.example.com.", 9092, resolver=canned, statefulset="kafka")
    with pytest.raises(InvalidName, match="service>.<namespace>"):
        kafka_bootstrap_servers(
            "a.b.svc.cluster.local.x.svc.cluster.local.", 9092, resolver=canned, statefulset="a"
        )
    with pytest.raises(InvalidName):
        kafka_bootstrap_servers("Bad_Name", "kafka", resolver=canned)
    assert not [c for c in canned.calls if c[0] == "statefulset"]
