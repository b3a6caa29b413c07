"""Structured logs: every record the library emits carries ``service``, ``pod``,
``address`` and ``reason`` (None where one does not apply), and none carries a secret.

One scenario-rich run against :class:`~headless_client.testing.FakeClusterDNS` (membership
changes, refresh failures and recovery, NXDOMAIN, ejections, addresses dropped by
``allowed_networks``, a ClusterIP Service, a failing nameserver, a raising subscriber, an
unusable resolv.conf entry) captures every record; a source scan checks that no logging
call in ``headless_client/`` lacks those fields.
"""

from __future__ import annotations

import ast
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import headless_client as hc
from headless_client.environment import kubernetes_context
from headless_client.testing import FakeClusterDNS

FIELDS = ("service", "pod", "address", "reason")
PACKAGE = Path(hc.__file__).parent
SECRET = "hunter2-s3cr3t-token"
DEADLINE = 10.0


class Capture(logging.Handler):
    """Keeps every record that reaches it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(name="captured")
def _captured() -> Iterator[Capture]:
    handler = Capture()
    logger = logging.getLogger("headless_client")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"not within {DEADLINE}s: {what}")
        time.sleep(0.005)


def reasons(capture: Capture) -> set[str]:
    return {getattr(r, "reason", None) or "" for r in capture.records}


def run_scenario(cluster: FakeClusterDNS, tmp_path: Path) -> None:
    """Everything that makes the library log, once."""
    cluster.add_statefulset("web", "prod", 3)
    web = cluster.service_fqdn("web", "prod")
    pods = cluster.pods("web", "prod")
    # A closed port first: that nameserver fails (DEBUG), the fake answers.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    resolver = hc.Resolver([dead, cluster.nameserver], timeout=0.5, namespace="prod")
    with hc.HeadlessService("web.prod", "http", resolver=resolver, min_refresh=0.05, max_refresh=0.2,
                            empty_grace=0.1) as svc:

        def bad(event: hc.ServiceEvent) -> None:
            raise RuntimeError(f"subscriber bug {SECRET[:0]}")

        svc.subscribe(bad, events={"ejected"})
        # Picks and keys the user passes may hold secrets: none may reach a record.
        svc.pick(f"user token={SECRET}")
        svc.report_failure(svc.pick(f"Authorization: Bearer {SECRET}"))
        cluster.scale("web", "prod", 4)
        svc.wait_for(4, timeout=DEADLINE)
        cluster.fault = "servfail"
        wait_until(lambda: svc.stats().refresh_failures >= 1, "a failed refresh")
        cluster.fault = None
        wait_until(lambda: svc.last_error is None, "the recovery")
        cluster.delete_service("web", "prod")
        wait_until(lambda: len(svc.endpoints) == 0, "the confirmed empty view")
    # Addresses outside allowed_networks are dropped and logged.
    cluster.add_statefulset("db", "prod", 2)
    narrow = hc.Resolver([cluster.nameserver], namespace="prod", allowed_networks=["192.0.2.0/24"])
    narrow.resolve("db.prod", "http")
    # A ClusterIP Service, allowed with a warning.
    cluster.add_service("api", "prod", type="ClusterIP")
    cluster.add_statefulset("api", "prod", 1, service="api")
    hc.Resolver([cluster.nameserver], namespace="prod", cluster_ip="warn").resolve("api.prod", 8080)
    # An unusable nameserver in resolv.conf.
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver not-an-address\nsearch prod.svc.cluster.local svc.cluster.local\n")
    kubernetes_context(conf, tmp_path / "missing-namespace")
    assert web and pods


def test_every_record_of_a_scenario_carries_the_fields(captured: Capture, tmp_path: Path) -> None:
    """Each record has service, pod, address and reason; the reasons cover the scenario;
    records about a service name it; ejections name the pod and its address."""
    with FakeClusterDNS() as cluster:
        run_scenario(cluster, tmp_path)
    records = captured.records
    assert records
    for record in records:
        for field in FIELDS:
            assert hasattr(record, field), (field, record.getMessage())
        assert isinstance(record.reason, str) and record.reason, record.getMessage()  # type: ignore[attr-defined]
    seen = reasons(captured)
    for reason in ("membership", "refresh", "ejected", "subscriber_error", "address_dropped",
                   "not_headless", "resolv_conf"):
        assert reason in seen, (reason, seen)
    web = "web.prod.svc.cluster.local"
    for record in records:
        if record.reason in ("membership", "refresh", "ejected", "subscriber_error"):  # type: ignore[attr-defined]
            assert record.service == web, record.getMessage()  # type: ignore[attr-defined]
    ejected = [r for r in records if r.reason == "ejected"]  # type: ignore[attr-defined]
    assert ejected and all(r.pod and r.pod.startswith("web-") for r in ejected)  # type: ignore[attr-defined]
    assert all(r.address and r.address in r.getMessage() for r in ejected)  # type: ignore[attr-defined]
    dropped = [r for r in records if r.reason == "address_dropped"]  # type: ignore[attr-defined]
    assert dropped[0].service == "db.prod.svc.cluster.local"  # type: ignore[attr-defined]
    assert dropped[0].address.count(".") >= 3  # type: ignore[attr-defined]


def test_no_secret_reaches_a_record(captured: Capture, tmp_path: Path) -> None:
    """Keys holding a token or an Authorization header never appear in a message, its
    arguments, its fields or its traceback."""
    with FakeClusterDNS() as cluster:
        run_scenario(cluster, tmp_path)
    formatter = logging.Formatter()
    for record in captured.records:
        text = " ".join([
            record.getMessage(),
            repr(record.args),
            repr({f: getattr(record, f, None) for f in FIELDS}),
            formatter.formatException(record.exc_info) if record.exc_info else "",
        ])
        assert SECRET not in text, text


# -- the source scan --------------------------------------------------------------------------------

LEVELS = {"debug", "info", "warning", "error", "exception", "critical", "log"}
#: A comment on the call's first line that exempts it, with the reason after the colon.
EXEMPT = "# log-fields: exempt"


def logger_names(tree: ast.Module) -> set[str]:
    """Module-level names bound to ``logging.getLogger(...)``."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Attribute) and func.attr == "getLogger":
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def logging_calls(source: str, where: str) -> Iterator[tuple[str, ast.Call]]:
    """The logging calls of one module's *source*, as ``(file:line, call)``."""
    tree = ast.parse(source)
    names = logger_names(tree)
    lines = source.splitlines()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LEVELS
            and isinstance(node.func.value, ast.Name)
            and (node.func.value.id in names or node.func.value.id == "logging")
            and EXEMPT not in lines[node.lineno - 1]
        ):
            yield f"{where}:{node.lineno}", node


def problems(calls: list[tuple[str, ast.Call]]) -> list[str]:
    """What each call lacks: ``extra=`` as a dict literal holding the four fields."""
    missing: list[str] = []
    for where, call in calls:
        extra = next((k.value for k in call.keywords if k.arg == "extra"), None)
        if not isinstance(extra, ast.Dict):
            missing.append(f"{where}: no extra={{...}}")
            continue
        keys = {k.value for k in extra.keys if isinstance(k, ast.Constant)}
        lacking = [f for f in FIELDS if f not in keys]
        if lacking:
            missing.append(f"{where}: extra lacks {lacking}")
    return missing


def test_no_logging_call_lacks_the_fields() -> None:
    """Every ``log.<level>(...)`` in the package passes ``extra=`` with service, pod,
    address and reason (or carries a ``# log-fields: exempt: why`` comment)."""
    found = [
        call
        for path in sorted(PACKAGE.rglob("*.py"))
        for call in logging_calls(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE.parent)))
    ]
    assert len(found) >= 15  # the scan sees the package's calls
    missing = problems(found)
    assert not missing, "\n".join(missing)


def test_the_scan_reports_calls_without_the_fields() -> None:
    """The scan itself: a call without extra=, and one missing a field, are reported; an
    exempt call and a complete one are not."""
    source = (
        "import logging\n"
        "log = logging.getLogger(__name__)\n"
        "log.warning('x %s', 1)\n"
        "log.info('y', extra={'service': 's', 'pod': None, 'reason': 'r'})\n"
        "log.debug('z')  # log-fields: exempt: a test\n"
        "log.error('w', extra={'service': 's', 'pod': None, 'address': None, 'reason': 'r'})\n"
    )
    found = list(logging_calls(source, "m.py"))
    assert [w for w, _ in found] == ["m.py:3", "m.py:4", "m.py:6"]
    assert problems(found) == ["m.py:3: no extra={...}", "m.py:4: extra lacks ['address']"]
