"""The CLI against BIND9: resolve, watch (in-process and as a real process with Ctrl-C),
pick, and ``python -m headless_client``."""

from __future__ import annotations

import _thread
import io
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from headless_client.cli import main
from tests.integration.dnsground import BindServer, FreshService

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


class Lines(io.TextIOBase):
    """A text sink another thread can wait on."""

    def __init__(self) -> None:
        super().__init__()
        self._text = ""
        self._cond = threading.Condition()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        with self._cond:
            self._text += s
            self._cond.notify_all()
        return len(s)

    @property
    def lines(self) -> list[str]:
        with self._cond:
            return self._text.splitlines()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float) -> str:
        with self._cond:
            found: list[str] = []

            def seen() -> bool:
                found[:] = [line for line in self._text.splitlines() if predicate(line)]
                return bool(found)

            if not self._cond.wait_for(seen, timeout):
                raise AssertionError(f"no matching line within {timeout}s in:\n{self._text}")
            return found[0]


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def parse_time(stamp: str) -> datetime:
    assert stamp.endswith("Z"), stamp
    return datetime.fromisoformat(stamp[:-1] + "+00:00")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


# -- resolve and pick ----------------------------------------------------------------------


def test_resolve_table_and_json(bind: BindServer, fresh_service: FreshService) -> None:
    ns = ["--nameserver", bind.nameserver]
    code, out, err = run(["resolve", fresh_service.short, "-p", "http", *ns])
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == fresh_service.fqdn.rstrip(".")
    assert lines[-1] == "3 endpoints"
    for ordinal in range(3):
        assert fresh_service.pod_fqdn(ordinal).rstrip(".") in out
    code, out, _ = run(["resolve", fresh_service.short, "-p", "8080", "--json", *ns])
    assert code == 0
    rows = json.loads(out)
    assert sorted(r["address"] for r in rows) == sorted(fresh_service.ipv4)


def test_pick_strategies(bind: BindServer, fresh_service: FreshService) -> None:
    ns = ["--nameserver", bind.nameserver]
    hosts = [fresh_service.pod_fqdn(i).rstrip(".") for i in range(3)]
    code, out, err = run(["pick", fresh_service.short, "-p", "http", "-c", "6", *ns])
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 6
    assert [next(i for i, h in enumerate(hosts) if line.startswith(h)) for line in lines] == [
        0,
        1,
        2,
        0,
        1,
        2,
    ]
    code, out, _ = run(
        ["pick", fresh_service.short, "-p", "http", "-s", "sticky", "-k", "user-42", "-c", "5", "--json", *ns]
    )
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 5
    assert len({r["hostname"] for r in rows}) == 1
    assert rows[0]["hostname"] in hosts
    assert rows[0]["port"] == fresh_service.port
    for strategy in ("random", "least-loaded"):
        code, out, _ = run(["pick", fresh_service.short, "-p", "http", "-s", strategy, "-c", "20", *ns])
        assert code == 0
        assert all(any(line.startswith(h) for h in hosts) for line in out.splitlines())


def test_pick_on_a_missing_service_exits_1(
    bind: BindServer, new_service: Callable[..., FreshService]
) -> None:
    fresh = new_service(0)
    code, out, err = run(["pick", fresh.short, "-p", "http", "--nameserver", bind.nameserver])
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "ServiceNotFound" in err
    assert fresh.name in err


# -- watch -------------------------------------------------------------------------------------


def test_watch_prints_changes_until_ctrl_c(
    bind: BindServer, new_service: Callable[..., FreshService]
) -> None:
    """The current set, then one timestamped line per added/removed pod; Ctrl-C exits 0."""
    fresh = new_service(2)
    out = Lines()
    steps: list[str] = []
    failure: list[BaseException] = []

    def drive() -> None:
        try:
            out.wait_for(lambda line: line == "2 endpoints", 10)
            steps.append("snapshot")
            fresh.add()
            out.wait_for(lambda line: " + " in line and fresh.pod_fqdn(2).rstrip(".") in line, 10)
            steps.append("added")
            fresh.remove(0)
            out.wait_for(lambda line: " - " in line and fresh.pod_fqdn(0).rstrip(".") in line, 10)
            steps.append("removed")
            _thread.interrupt_main()  # what Ctrl-C does
        except BaseException as exc:
            failure.append(exc)

    driver = threading.Thread(target=drive, name="watch-driver")
    argv = [
        "watch",
        fresh.short,
        "-p",
        "http",
        "--nameserver",
        bind.nameserver,
        "--min-refresh",
        "0.2",
        "--max-refresh",
        "0.5",
        "--duration",
        "30",
    ]
    started = time.monotonic()
    driver.start()
    try:
        code = main(argv, out=out, err=io.StringIO())
    finally:
        driver.join(15)
    assert not failure, failure
    assert steps == ["snapshot", "added", "removed"]
    assert code == 0
    assert time.monotonic() - started < 30  # ended by the interrupt, not the duration
    lines = out.lines
    stamp, name = lines[0].split(" ", 1)
    assert name == fresh.fqdn.rstrip(".")
    assert lines[1].split()[:3] == ["ORDINAL", "HOSTNAME", "ADDRESS"]
    changes = [line for line in lines if " + " in line or " - " in line]
    # Exactly the two changes: the first resolution prints no "+" lines of its own.
    assert len(changes) == 2, lines
    added, removed = changes
    assert added.split(" ", 2)[1] == "+"
    assert fresh.addresses[2][0] in added
    assert removed.split(" ", 2)[1] == "-"
    t0, t1, t2 = parse_time(stamp), parse_time(added.split()[0]), parse_time(removed.split()[0])
    assert t0 <= t1 <= t2


def test_watch_json_lines_for_a_duration(bind: BindServer, new_service: Callable[..., FreshService]) -> None:
    fresh = new_service(1)
    out = Lines()
    done = threading.Event()

    failure: list[BaseException] = []

    def drive() -> None:
        try:
            out.wait_for(lambda line: '"snapshot"' in line, 10)
            fresh.add()
            done.set()
        except BaseException as exc:
            failure.append(exc)

    driver = threading.Thread(target=drive, name="watch-driver")
    driver.start()
    started = time.monotonic()
    code = main(
        [
            "watch",
            fresh.short,
            "--port",
            "http",
            "--nameserver",
            bind.nameserver,
            "--json",
            "--min-refresh",
            "0.2",
            "--max-refresh",
            "0.3",
            "--duration",
            "2.5",
        ],
        out=out,
        err=io.StringIO(),
    )
    elapsed = time.monotonic() - started
    driver.join(10)
    assert not failure, failure
    assert done.is_set()
    assert code == 0
    assert 2.5 <= elapsed < 2.5 + 3
    events = [json.loads(line) for line in out.lines]
    assert events[0]["event"] == "snapshot"
    assert events[0]["service"] == fresh.fqdn.rstrip(".")
    assert [row["ordinal"] for row in events[0]["endpoints"]] == [0]
    assert [(e["event"], e["endpoint"]["ordinal"]) for e in events[1:]] == [("added", 1)]
    assert events[1]["endpoint"]["address"] == fresh.addresses[1][0]
    assert parse_time(events[0]["time"]) <= parse_time(events[1]["time"])


def test_watch_an_empty_service_then_its_first_pod(
    bind: BindServer, new_service: Callable[..., FreshService]
) -> None:
    """NXDOMAIN at the start is an empty view, not an error: the watch goes on."""
    fresh = new_service(0)
    out = Lines()
    failure: list[BaseException] = []

    def drive() -> None:
        try:
            out.wait_for(lambda line: line == "0 endpoints", 10)
            fresh.add()
        except BaseException as exc:
            failure.append(exc)

    driver = threading.Thread(target=drive, name="watch-driver")
    driver.start()
    code = main(
        [
            "watch",
            fresh.short,
            "-p",
            "http",
            "--nameserver",
            bind.nameserver,
            "--min-refresh",
            "0.2",
            "--max-refresh",
            "0.3",
            "--duration",
            "2.5",
        ],
        out=out,
        err=io.StringIO(),
    )
    driver.join(10)
    assert not failure, failure
    assert code == 0
    assert "0 endpoints" in out.lines
    assert next(line for line in out.lines if " + " in line).endswith(f"({fresh.addresses[0][0]}:8080)")


# -- as a real process ---------------------------------------------------------------------


def test_python_m_resolve(bind: BindServer, fresh_service: FreshService) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "headless_client",
            "resolve",
            fresh_service.short,
            "-p",
            "http",
            "--nameserver",
            bind.nameserver,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=child_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["ordinal"] for r in rows] == [0, 1, 2]
    assert [r["address"] for r in rows] == [fresh_service.addresses[i][0] for i in range(3)]
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "headless_client",
            "resolve",
            "web.prod",
            "-p",
            "99999",
            "--nameserver",
            bind.nameserver,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=child_env(),
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.count("\n") == 1
    assert "99999" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_watch_process_exits_0_on_sigint(bind: BindServer, fresh_service: FreshService) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "headless_client",
            "watch",
            fresh_service.short,
            "-p",
            "http",
            "--nameserver",
            bind.nameserver,
            "--json",
            "--duration",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=20), "watch printed nothing within 20 s"
        first = json.loads(proc.stdout.readline())
        assert first["event"] == "snapshot"
        assert len(first["endpoints"]) == 3
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert rest == ""
