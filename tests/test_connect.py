"""ConnectPlan (sans-I/O: which endpoint to dial, when to back off, when to give up),
ConnectPolicy, and kafka_bootstrap_servers; no network."""

from __future__ import annotations

import math
import ssl

import pytest

from headless_client import (
    ConnectError,
    Endpoint,
    EndpointNotFound,
    EndpointSet,
    HeadlessClientError,
    InvalidArgument,
    InvalidName,
    LeaderNotAvailable,
    NoEndpointsAvailable,
    PartitionLeader,
    PrimaryReplica,
    Request,
    Resolver,
    RoundRobin,
    ServiceClosed,
    ServiceNotFound,
)
from headless_client.connect import (
    DEFAULT_ATTEMPTS,
    DEFAULT_CONNECT_TIMEOUT,
    Action,
    Backoff,
    ConnectPlan,
    ConnectPolicy,
    Dial,
    GiveUp,
    Reresolve,
    fresh_endpoint,
    is_retryable,
)
from headless_client.core import ServiceCore
from headless_client.errors import ConnectAborted
from headless_client.health import HealthPolicy
from headless_client.kafka_helpers import kafka_bootstrap_servers
from headless_client.refresh import RefreshPolicy

NAME = "web.prod.svc.cluster.local"
T0 = 100.0


def ep(n: int, address: str | None = None, *, hostname: bool = True) -> Endpoint:
    return Endpoint(
        address or f"10.0.0.{n + 1}",
        8080,
        f"web-{n}.{NAME}" if hostname else None,
        n if hostname else None,
    )


def make_core(endpoints: list[Endpoint], strategy: object = None, *, max_ejected: float = 0.5) -> ServiceCore:
    """A started core whose view is *endpoints*."""
    core = ServiceCore(
        NAME,
        "http",
        strategy=strategy or RoundRobin(),
        refresh=RefreshPolicy(),
        health=HealthPolicy(base_ejection=30.0, max_ejected=max_ejected),
        connect=ConnectPolicy(),
    )
    core.begin_start()
    core.begin_resolve()
    core.resolved(T0, EndpointSet(endpoints, name=NAME), None)
    core.start_done()
    return core


def make_plan(
    core: ServiceCore,
    request: Request | None = None,
    *,
    resolve_timeout: float = 1.0,
    now: float = T0,
    **policy: float,
) -> ConnectPlan:
    return core.connect_plan(request or Request(), ConnectPolicy(**policy), now, resolve_timeout)  # type: ignore[arg-type]


def dial(plan: ConnectPlan, now: float = T0) -> Endpoint:
    """The endpoint the plan dials next (after any re-resolve and back-off it asks for first)."""
    action = until_dial(plan, now)
    assert isinstance(action, Dial), action
    return action.endpoint


def until_dial(plan: ConnectPlan, now: float = T0) -> Action:
    """The plan's next Dial or GiveUp; re-resolves find nothing and back-offs are skipped."""
    for _ in range(10):
        action = plan.next(now)
        if isinstance(action, Reresolve):
            plan.reresolved(action.endpoint, None)
        elif not isinstance(action, Backoff):
            return action
    raise AssertionError("the plan never dials")


def give_up(plan: ConnectPlan, now: float = T0) -> BaseException:
    action = until_dial(plan, now)
    assert isinstance(action, GiveUp), action
    return action.error


@pytest.fixture
def three() -> ServiceCore:
    return make_core([ep(0), ep(1), ep(2)])


# -- ConnectPolicy -------------------------------------------------------------------------


def test_policy_defaults_and_budget() -> None:
    """The default policy dials 3 times within 2 s each; the budget is timeout * attempts unless set."""
    policy = ConnectPolicy()
    assert (policy.timeout, policy.attempts, policy.total_timeout) == (DEFAULT_CONNECT_TIMEOUT, DEFAULT_ATTEMPTS, None)
    assert policy.budget == DEFAULT_CONNECT_TIMEOUT * DEFAULT_ATTEMPTS
    assert ConnectPolicy(timeout=0.5, attempts=4).budget == 2.0
    assert ConnectPolicy(timeout=0.5, attempts=4, total_timeout=1).budget == 1.0
    assert isinstance(ConnectPolicy(timeout=1).timeout, float)


def test_policy_override_replaces_only_given_fields() -> None:
    """override() keeps the fields passed as None, and an empty override returns the policy itself."""
    policy = ConnectPolicy(timeout=1.0, attempts=5, total_timeout=3.0)
    assert policy.override() is policy
    assert policy.override(attempts=2) == ConnectPolicy(timeout=1.0, attempts=2, total_timeout=3.0)
    assert policy.override(timeout=0.5).budget == 3.0
    assert ConnectPolicy(timeout=1.0, attempts=4).override(timeout=0.5).budget == 2.0  # budget follows
    with pytest.raises(InvalidName, match="timeout"):
        policy.override(timeout=-1)


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"timeout": 0}, InvalidName, "timeout must be > 0 seconds: 0"),
        ({"timeout": -1.0}, InvalidName, "timeout must be > 0 seconds: -1.0"),
        ({"timeout": math.nan}, InvalidName, "timeout must be a finite number of seconds: nan"),
        ({"timeout": math.inf}, InvalidName, "timeout must be a finite number of seconds: inf"),
        ({"timeout": 86_401}, InvalidName, "timeout must be at most 86400 seconds: 86401"),
        ({"timeout": True}, InvalidArgument, "timeout must be a number of seconds, not bool: True"),
        ({"timeout": "2"}, InvalidArgument, "timeout must be a number of seconds, not str: '2'"),
        ({"attempts": 0}, InvalidName, "attempts must be an int >= 1 and <= 1000: 0"),
        ({"attempts": 1001}, InvalidName, "attempts must be an int >= 1 and <= 1000: 1001"),
        ({"attempts": 1.5}, InvalidArgument, "attempts must be an int, not float: 1.5"),
        ({"attempts": True}, InvalidArgument, "attempts must be an int, not bool: True"),
        ({"total_timeout": 0}, InvalidName, "total_timeout must be > 0 seconds: 0"),
        ({"total_timeout": math.nan}, InvalidName, "total_timeout must be a finite"),
        ({"total_timeout": 2 * 86_400}, InvalidName, "total_timeout must be at most 86400"),
        ({"total_timeout": "6"}, InvalidArgument, "total_timeout"),
    ],
)
def test_bad_policy_values_raise_naming_them(kwargs: dict[str, object], error: type[Exception], needle: str) -> None:
    """A non-finite, non-positive, over-a-day or wrongly typed value raises naming the field and value."""
    with pytest.raises(error, match=needle):
        ConnectPolicy(**kwargs)  # type: ignore[arg-type]


# -- targets -------------------------------------------------------------------------------


def test_unpinned_tries_each_endpoint_once_then_gives_up(three: ServiceCore) -> None:
    """Unpinned retries go to pods not tried yet, with no back-off; when none is left the plan gives up."""
    plan = make_plan(three, attempts=5)
    assert not plan.pinned
    seen = []
    for _ in range(3):
        action = plan.next(T0)
        assert isinstance(action, Dial)  # never a back-off between pods
        assert action.endpoint not in seen
        seen.append(action.endpoint)
        plan.failed(action.endpoint, ConnectionRefusedError(111, "refused"), T0)
    assert sorted(seen, key=lambda e: e.ordinal or 0) == list(three.view.snapshot)
    error = give_up(plan)
    assert isinstance(error, ConnectError)
    assert "no endpoint left to try" in str(error)
    assert [where for where, _ in error.attempts] == [str(e) for e in seen]
    assert isinstance(error.__cause__, ConnectionRefusedError)


def test_unpinned_gives_up_after_the_attempts(three: ServiceCore) -> None:
    """With fewer attempts than pods the plan stops after the last attempt, chained to its error."""
    plan = make_plan(three, attempts=2)
    for _ in range(2):
        target = dial(plan)
        plan.failed(target, TimeoutError("timed out"), T0)
    error = give_up(plan)
    assert str(error).startswith(f"could not connect to a pod of {NAME} after 2 attempts (tried ")
    assert "total timeout" not in str(error)
    assert isinstance(error.__cause__, TimeoutError)


def test_unpinned_prefers_usable_then_falls_back_to_ejected(three: ServiceCore) -> None:
    """Ejected pods are dialled only once every usable one failed: better than giving up."""
    e2 = three.endpoint(2)
    three.report_failure(e2, T0)  # one of three may be ejected
    assert e2 not in three.view.usable
    plan = make_plan(three)
    first = dial(plan)
    assert first != e2
    plan.failed(first, TimeoutError("timed out"), T0)
    second = dial(plan)
    assert second not in (first, e2)
    plan.failed(second, TimeoutError("timed out"), T0)
    assert dial(plan) == e2


def test_unpinned_empty_view() -> None:
    """An empty view gives up at once with NoEndpointsAvailable naming the service."""
    error = give_up(make_plan(make_core([])))
    assert isinstance(error, NoEndpointsAvailable)
    assert NAME in str(error)


def test_ordinal_pins_and_the_re_resolved_address_wins(three: ServiceCore) -> None:
    """A pinned ordinal is dialled on every attempt, at its re-resolved address once known."""
    plan = make_plan(three, Request(ordinal=1), timeout=1.0, attempts=3)
    assert plan.pinned
    assert dial(plan) == three.endpoint(1)
    plan.failed(three.endpoint(1), ConnectionRefusedError(), T0)
    action = plan.next(T0)
    assert action == Reresolve(three.endpoint(1))
    plan.reresolved(three.endpoint(1), None)  # the lookup failed: keep the address
    assert plan.override is None
    assert plan.next(T0) == Backoff(0.05)
    assert dial(plan, T0 + 0.05) == three.endpoint(1)  # again the same pod
    plan.failed(three.endpoint(1), ConnectionRefusedError(), T0 + 0.1)
    action = plan.next(T0 + 0.1)
    assert isinstance(action, Reresolve)
    plan.reresolved(action.endpoint, [Endpoint("fd00::9", 1), Endpoint("10.9.9.9", 1)])
    moved = dial(plan, T0 + 0.3)
    assert moved == Endpoint("10.9.9.9", 8080, f"web-1.{NAME}", 1)  # same family, pod's port


def test_fresh_endpoint_keeps_family_port_and_identity() -> None:
    """fresh_endpoint() takes the first new address of the pod's family, keeping its port and name."""
    old = ep(1)
    assert fresh_endpoint(old, [Endpoint("fd00::2", 53), Endpoint("10.7.7.7", 53)]) == Endpoint(
        "10.7.7.7", 8080, f"web-1.{NAME}", 1
    )
    assert fresh_endpoint(old, [Endpoint("fd00::2", 53)]) is None
    assert fresh_endpoint(old, []) is None


def test_ordinal_missing(three: ServiceCore) -> None:
    """A pinned ordinal that is not in the view gives up at once with EndpointNotFound, dialling nothing."""
    plan = make_plan(three, Request(ordinal=7))
    error = give_up(plan)
    assert isinstance(error, EndpointNotFound)
    assert "ordinal 7" in str(error)
    assert plan.tried == []


def test_hostname_pins(three: ServiceCore) -> None:
    """A pinned hostname is dialled even while ejected."""
    three.report_failure(2, T0)
    plan = make_plan(three, Request(hostname="web-2"))
    assert plan.pinned
    assert dial(plan) == three.endpoint(2)
    assert plan.describe() == "pod 'web-2'"


def test_partition_goes_to_the_leader() -> None:
    """A partition call dials its leader; a re-resolved address is used only while that pod still leads."""
    strategy: PartitionLeader[str] = PartitionLeader({"a": 1, "b": "web-0"})
    core = make_core([ep(0), ep(1)], strategy)
    plan = make_plan(core, Request(partition="a"), attempts=5)
    assert plan.pinned
    assert dial(plan) == core.endpoint(1)
    plan.failed(core.endpoint(1), ConnectionRefusedError(), T0)
    action = plan.next(T0)
    assert isinstance(action, Reresolve)
    plan.reresolved(action.endpoint, [Endpoint("10.9.9.8", 8080)])
    assert dial(plan).address == "10.9.9.8"
    core.not_leader("a", 0)  # the leader moved meanwhile: the fresh address is not its
    assert dial(plan) == core.endpoint(0)
    assert dial(make_plan(core, Request(partition="b"))) == core.endpoint(0)
    error = give_up(make_plan(core, Request(partition="c")))
    assert isinstance(error, LeaderNotAvailable)
    assert "'c'" in str(error)


def test_partition_needs_a_partition_leader(three: ServiceCore) -> None:
    """A partition call to a strategy that routes none gives up with InvalidArgument naming PartitionLeader."""
    error = give_up(make_plan(three, Request(partition=3)))
    assert isinstance(error, InvalidArgument)
    assert isinstance(error, TypeError)
    assert "PartitionLeader" in str(error)


@pytest.mark.parametrize(
    "request_",
    [Request(key="write"), Request(key=PrimaryReplica.WRITE), Request(role="write")],
    ids=["write-key", "WRITE", "role"],
)
def test_writes_pin_the_primary_even_while_ejected(request_: Request) -> None:
    """Every attempt of a write dials the primary, ejected or not, and never a replica."""
    # max_ejected=1: the primary, alone in its health pool, can really leave the usable set.
    core = make_core([ep(0), ep(1), ep(2)], PrimaryReplica(), max_ejected=1.0)
    primary = core.endpoint(0)
    plan = make_plan(core, request_, attempts=4)
    assert plan.pinned
    assert dial(plan) == primary
    plan.failed(primary, ConnectionRefusedError(), T0)
    assert dial(plan) == primary  # never a replica
    core.report_failure(primary, T0)
    assert primary not in core.view.usable
    assert dial(make_plan(core, request_)) == primary
    assert "could not connect to the primary of" in str(plan.error())


def test_reads_and_write_keys() -> None:
    """Only this strategy's write keys (or role="write") pin the primary; an ordinal decides on its own."""
    core = make_core([ep(0), ep(1), ep(2)], PrimaryReplica(write_keys=("w", "insert")))
    assert make_plan(core, Request(key="insert")).pinned
    assert make_plan(core, Request(role="write")).pinned
    assert not make_plan(core, Request(key="write")).pinned  # not one of this strategy's keys
    assert not make_plan(core, Request()).pinned
    assert not make_plan(core, Request(key=["unhashable"])).pinned
    by_ordinal = make_plan(core, Request(key="w", ordinal=2))
    assert by_ordinal.pinned
    assert dial(by_ordinal) == core.endpoint(2)
    assert by_ordinal.describe() == "ordinal 2"
    read = make_plan(core, Request(role="read"))
    assert not read.pinned
    assert dial(read).ordinal in (1, 2)


def test_write_key_with_another_strategy_is_just_a_key(three: ServiceCore) -> None:
    """Without PrimaryReplica a "write" key pins nothing."""
    plan = make_plan(three, Request(key="write"))
    assert not plan.pinned
    assert plan.describe() == "a pod"


# -- back-off, re-resolve, deadline, close -------------------------------------------------------


def test_pinned_retries_back_off_from_50ms_doubling_capped_at_1s(three: ServiceCore) -> None:
    """Between pinned attempts the plan waits 50 ms, doubling, at most 1 s."""
    plan = make_plan(three, Request(ordinal=0), timeout=1.0, attempts=9, total_timeout=60.0, resolve_timeout=math.inf)
    now = T0
    waits = []
    for _ in range(8):
        target = dial(plan, now)
        plan.failed(target, ConnectionRefusedError(), now)
        action = plan.next(now)
        assert isinstance(action, Backoff)  # no re-resolve: its timeout never fits
        waits.append(action.seconds)
        now += action.seconds
    assert waits == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


def test_a_back_off_never_runs_past_the_deadline(three: ServiceCore) -> None:
    """When the next back-off would end at or after the deadline the plan gives up instead."""
    plan = make_plan(three, Request(ordinal=0), timeout=1.0, attempts=5, total_timeout=1.0, resolve_timeout=math.inf)
    target = dial(plan)
    plan.failed(target, TimeoutError("timed out"), T0 + 0.97)
    error = give_up(plan, T0 + 0.97)
    assert isinstance(error, ConnectError)
    assert "total timeout of 1s reached" in str(error)
    assert isinstance(error.__cause__, TimeoutError)


def test_dial_timeout_is_cut_to_the_time_left(three: ServiceCore) -> None:
    """Each dial gets the per-dial timeout or what is left of the budget, whichever is less."""
    plan = make_plan(three, timeout=2.0, attempts=3, total_timeout=3.0)
    first = plan.next(T0)
    assert isinstance(first, Dial) and first.timeout == 2.0
    plan.failed(first.endpoint, TimeoutError("timed out"), T0 + 2.0)
    second = plan.next(T0 + 2.0)
    assert isinstance(second, Dial) and second.timeout == pytest.approx(1.0)
    plan.failed(second.endpoint, TimeoutError("timed out"), T0 + 3.0)
    error = give_up(plan, T0 + 3.0)
    assert "after 2 attempts: total timeout of 3s reached" in str(error)


def test_re_resolve_only_when_the_resolver_timeout_fits(three: ServiceCore) -> None:
    """A pinned retry re-resolves the pod's name only while the time left covers the resolver's timeout."""
    plan = make_plan(three, Request(ordinal=1), timeout=1.0, attempts=5, total_timeout=3.0, resolve_timeout=2.0)
    target = dial(plan)
    plan.failed(target, ConnectionRefusedError(), T0 + 0.5)  # 2.5 s left
    assert plan.next(T0 + 0.5) == Reresolve(target)
    assert plan.next(T0 + 0.5) == Backoff(0.05)
    target = dial(plan, T0 + 0.55)
    plan.failed(target, ConnectionRefusedError(), T0 + 1.5)  # 1.5 s left
    assert plan.next(T0 + 1.5) == Backoff(0.1)


def test_no_re_resolve_when_the_plan_gives_up_anyway(three: ServiceCore) -> None:
    """When the back-off would reach the deadline the plan gives up at once, without a wasted lookup."""
    plan = make_plan(three, Request(ordinal=1), timeout=1.0, attempts=5, total_timeout=1.0, resolve_timeout=0.01)
    target = dial(plan)
    plan.failed(target, ConnectionRefusedError(), T0 + 0.97)  # 30 ms left: a lookup fits, the 50 ms back-off not
    action = plan.next(T0 + 0.97)
    assert isinstance(action, GiveUp), action
    assert "total timeout of 1s reached" in str(action.error)


def test_no_re_resolve_for_a_pod_without_a_hostname() -> None:
    """An endpoint without a hostname has no name to re-resolve: the plan only backs off."""
    core = make_core([ep(0, hostname=False), ep(1, hostname=False)], PrimaryReplica())
    plan = make_plan(core, Request(role="write"), attempts=3)
    target = dial(plan)
    assert target.hostname is None
    plan.failed(target, ConnectionRefusedError(), T0)
    assert isinstance(plan.next(T0), Backoff)


def test_give_up_with_connect_aborted_once_the_service_is_closed(three: ServiceCore) -> None:
    """After close() the next action is GiveUp(ConnectAborted), a ConnectError and a ServiceClosed listing the dials."""
    plan = make_plan(three, Request(ordinal=2), attempts=5)
    target = dial(plan)
    plan.failed(target, ConnectionRefusedError(111, "refused"), T0)
    three.close()
    action = plan.next(T0)  # a back-off was pending: close wins
    assert isinstance(action, GiveUp)
    error = action.error
    assert isinstance(error, ConnectAborted)
    assert isinstance(error, ConnectError)
    assert isinstance(error, ServiceClosed)
    assert str(error).startswith(f"{NAME}: the service was closed while connecting to ordinal 2 after 1 attempts")
    assert [where for where, _ in error.attempts] == [str(target)]
    assert isinstance(error.__cause__, ConnectionRefusedError)


def test_connect_aborted_before_any_dial(three: ServiceCore) -> None:
    """A plan whose service closes before its first dial gives up without attempts or cause."""
    plan = make_plan(three)
    three.close()
    error = give_up(plan)
    assert isinstance(error, ConnectAborted)
    assert error.attempts == ()
    assert error.__cause__ is None


# -- TLS name and retryability ------------------------------------------------------------------


def test_server_hostname(three: ServiceCore) -> None:
    """TLS verifies the pod's FQDN when it has one, else the service's name."""
    plan = make_plan(three)
    assert plan.server_hostname(ep(0)) == f"web-0.{NAME}"
    assert plan.server_hostname(ep(0, hostname=False)) == NAME
    action = plan.next(T0)
    assert isinstance(action, Dial)
    assert action.server_hostname == action.endpoint.hostname


def test_is_retryable() -> None:
    """Only a certificate that does not verify is not worth another attempt."""
    assert not is_retryable(ssl.SSLCertVerificationError(1, "certificate verify failed"))
    assert is_retryable(ConnectionRefusedError(111, "refused"))
    assert is_retryable(TimeoutError("timed out"))
    assert is_retryable(ssl.SSLError(1, "wrong version number"))


def test_a_certificate_failure_gives_up_at_once(three: ServiceCore) -> None:
    """A certificate that does not verify ends the call with attempts left, chained to the SSL error."""
    plan = make_plan(three, attempts=3)
    target = dial(plan)
    bad_cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    plan.failed(target, bad_cert, T0)
    error = give_up(plan)
    assert isinstance(error, ConnectError)
    assert "after 1 attempts: certificate verification failed" in str(error)
    assert error.__cause__ is bad_cert


# -- errors -------------------------------------------------------------------------------------


def test_error_lists_every_attempt_in_order(three: ServiceCore) -> None:
    """The ConnectError lists each endpoint tried and its error, in order, and is an OSError."""
    plan = make_plan(three, Request(ordinal=2), attempts=5)
    v6 = Endpoint("fd00::2", 8080, f"web-2.{NAME}", 2)
    plan.failed(ep(2), ConnectionRefusedError(111, "Connection refused"), T0)
    plan.failed(v6, TimeoutError("timed out"), T0)
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
    ("request_", "what"),
    [
        (Request(), "a pod"),
        (Request(ordinal=1), "ordinal 1"),
        (Request(hostname="web-1"), "pod 'web-1'"),
        (Request(partition=("orders", 3)), "the leader of partition ('orders', 3)"),
        (Request(role="write"), "the primary"),
    ],
)
def test_error_names_the_target(three: ServiceCore, request_: Request, what: str) -> None:
    """The error says what the call connected to, even before any attempt."""
    err = make_plan(three, request_).error()
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
