"""``headless-client watch`` as a live view: the pure frame (:func:`render`), the in-place
redraw (:class:`Screen`), the choice between the live view and plain lines, and a real
terminal (tmux: ``new-session``, ``capture-pane``) watching a fake cluster change."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

import headless_client as hc
from headless_client.cli import main
from headless_client.events import ServiceEvent
from headless_client.stats import PodStats, ServiceStats
from headless_client.testing import FakeClusterDNS
from headless_client.watch_view import PodLog, Screen, ago, render

NAME = "web.prod.svc.cluster.local"
DEADLINE = 20.0


def pod(i: int, **fields: object) -> PodStats:
    ep = hc.Endpoint(f"10.0.0.{i + 1}", 8080, hostname=f"web-{i}.{NAME}", ordinal=i)
    values: dict[str, object] = {"endpoint": ep, "picks": 0, "in_flight": 0, "failures": 0, "ejections": 0,
                                 "ejected": False, "latency": None}
    values.update(fields)
    return PodStats(**values)  # type: ignore[arg-type]


def stats(*pods: PodStats, panic: bool = False) -> ServiceStats:
    usable = sum(1 for p in pods if not p.ejected) if not panic else len(pods)
    return ServiceStats(NAME, "running", len(pods), usable, panic, 7, 1, 0.25, 0, tuple(pods))


# -- the frame ------------------------------------------------------------------------------------------


def test_render_a_table_row_per_pod_with_state_picks_and_last_change() -> None:
    """Header with counts and staleness; a row per pod with its state, counters, latency
    and last change (from events, else "present" since the view started)."""
    log = PodLog(started=100.0)
    victim = pod(1).endpoint
    log.record(ServiceEvent("ejected", NAME, 110.0, endpoint=victim, detail=f"{victim} ejected"),
               "2026-01-01T12:00:10.000Z")
    lines = render(stats(pod(0, picks=5, latency=0.0042), pod(1, picks=2, failures=1, ejections=1, ejected=True)),
                   log, now=112.5, wall="2026-01-01T12:00:12.500Z")
    assert lines[0].startswith(f"{NAME}  2 endpoints, 1 usable  refreshes 7 (1 failed)  last answer 0.2s ago")
    header, row0, row1 = lines[2], lines[3], lines[4]
    assert header.split() == ["POD", "ADDRESS", "PORT", "STATE", "PICKS", "ACTIVE", "FAILS", "EJECTIONS",
                              "LATENCY", "LAST", "CHANGE"]
    assert row0.split() == ["web-0", "10.0.0.1", "8080", "usable", "5", "0", "0", "0", "4.2ms", "present",
                            "12s", "ago"]
    assert row1.split() == ["web-1", "10.0.0.2", "8080", "ejected", "2", "0", "1", "1", "-", "ejected",
                            "2.5s", "ago"]
    assert lines[-2] == "recent events:"
    assert lines[-1].startswith("  12:00:10.000 ejected") and "web-1" in lines[-1]


def test_render_panic_empty_and_failing() -> None:
    """Panic marks ejected pods with a star; an empty view says so; a failing refresh is
    shown with the view kept."""
    lines = render(stats(pod(0, ejected=True), panic=True), PodLog(0.0), 1.0, "t")
    assert "PANIC" in lines[0] and "ejected*" in lines[3]
    lines = render(stats(), PodLog(0.0), 1.0, "t", error="SERVFAIL")
    assert any("no endpoints" in line for line in lines)
    assert lines[-1] == "last refresh failed: SERVFAIL (keeping the last good view)"


def test_removed_pods_leave_the_log() -> None:
    """A removed pod's last change is forgotten; "changed" events are not listed."""
    log = PodLog(0.0)
    ep = pod(0).endpoint
    log.record(ServiceEvent("added", NAME, 1.0, endpoint=ep, detail="added"), "T1")
    log.record(ServiceEvent("changed", NAME, 1.0), "T1")
    log.record(ServiceEvent("removed", NAME, 2.0, endpoint=ep, detail="removed"), "T2")
    assert log.last == {} and [text.split()[1] for _, text in log.recent] == ["added", "removed"]


@pytest.mark.parametrize(("seconds", "text"), [(0.25, "0.2s"), (12, "12s"), (185, "3m05s"), (7380, "2h03m"),
                                               (-1, "0.0s")])
def test_ages(seconds: float, text: str) -> None:
    """Ages read short."""
    assert ago(seconds) == text


def test_screen_redraws_in_place_and_cuts_long_lines() -> None:
    """The first frame is written as is; the next moves up over it and clears first;
    lines longer than the terminal are cut so none wraps."""
    out = io.StringIO()
    screen = Screen(out)
    screen.draw(["a", "b", "c"])
    assert out.getvalue() == "\x1b[Ja\nb\nc\n"
    out.truncate(0)
    out.seek(0)
    screen.draw(["x" * 50, "y"], width=10)
    assert out.getvalue() == "\x1b[3F\x1b[J" + "x" * 9 + "\ny\n"


# -- live or plain ---------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    """A StringIO that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def cluster() -> Iterator[FakeClusterDNS]:
    with FakeClusterDNS() as made:
        made.add_statefulset("web", "prod", 3)
        yield made


def test_a_terminal_gets_frames_and_plain_gets_lines(cluster: FakeClusterDNS) -> None:
    """On a terminal the output is frames redrawn in place; --plain (or a pipe) keeps
    0.1.0's snapshot-then-changes lines."""
    args = ["watch", "web.prod", "-p", "http", "--nameserver", cluster.nameserver, "--duration", "0.6"]
    term = Terminal()
    assert main(args, out=term) == 0
    text = term.getvalue()
    assert text.startswith("\x1b[J" + NAME) and re.search(r"\x1b\[\d+F\x1b\[J" + NAME, text)
    assert "POD" in text and "web-2" in text
    plain = Terminal()
    assert main([*args, "--plain"], out=plain) == 0
    assert "\x1b" not in plain.getvalue() and "ORDINAL" in plain.getvalue()


def test_bad_probe_is_a_usage_error(cluster: FakeClusterDNS) -> None:
    """--probe must be a positive number of seconds."""
    err = io.StringIO()
    assert main(["watch", "web.prod", "--nameserver", cluster.nameserver, "--probe", "0"], out=io.StringIO(),
                err=err) == 2
    assert "--probe" in err.getvalue()


# -- a real terminal -------------------------------------------------------------------------------------


class Tmux:
    """A private tmux server (its own socket), killed at the end."""

    def __init__(self) -> None:
        self.socket = f"hc-test-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "watch")

    def wait_for(self, predicate: Callable[[str], bool], what: str) -> str:
        end = time.monotonic() + DEADLINE
        while True:
            text = self.screen()
            if predicate(text):
                return text
            if time.monotonic() > end:
                raise AssertionError(f"not on screen within {DEADLINE}s: {what}\n{text}")
            time.sleep(0.1)  # polling another process's screen under the deadline above

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.mark.tmux
def test_live_view_in_a_real_terminal() -> None:
    """In tmux: the table shows the pods, is redrawn in place (one header on screen) as a
    pod is added and another fails its probes (ejected), and the command exits 0 at
    --duration."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux not found: run scripts/install/tmux.sh", pytrace=False)
    tmux = Tmux()
    with FakeClusterDNS(ttl=1) as cluster:
        cluster.add_statefulset("web", "prod", 3, serve="tcp")
        command = (
            f"env PYTHONPATH={os.pathsep.join(sys.path)} {sys.executable} -m headless_client watch web.prod "
            f"-p http --nameserver {cluster.nameserver} --min-refresh 0.2 --max-refresh 0.5 --probe 0.2 "
            f"--duration 12; echo EXIT=$?; sleep 60"
        )
        tmux.run("new-session", "-d", "-s", "watch", "-x", "160", "-y", "40", command)
        try:
            tmux.wait_for(lambda s: all(f"web-{i} " in s for i in range(3)), "three pods")
            cluster.scale("web", "prod", 4)
            tmux.wait_for(lambda s: "web-3 " in s and "4 endpoints" in s, "the fourth pod")
            cluster.kill_pod("web", "prod", 1)
            screen = tmux.wait_for(lambda s: any(line.startswith("web-1 ") and " ejected" in line
                                                 for line in s.splitlines()), "web-1 ejected")
            assert screen.count(NAME + "  ") == 1, screen  # redrawn in place, not scrolled
            assert screen.count("POD ") == 1
            row = next(line for line in screen.splitlines() if line.startswith("web-1 "))
            assert int(row.split()[7]) >= 1  # EJECTIONS
            final = tmux.wait_for(lambda s: "EXIT=" in s, "the command's exit")
            assert "EXIT=0" in final
        finally:
            tmux.close()
