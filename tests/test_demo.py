"""The demo tells its whole story on a fake cluster, by itself, quickly, and exits 0."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time

from headless_client.demo import main


def test_demo_story() -> None:
    out = io.StringIO()
    start = time.monotonic()
    assert main(out, fast=True) == 0
    took = time.monotonic() - start
    text = out.getvalue()
    assert took < 20, text
    # 1. resolve: three pods with ordinals, on loopback
    assert re.search(r"^ +0 +web-0 +127\.42\.0\.1 +\d+$", text, re.M), text
    assert re.search(r"^ +2 +web-2 +127\.42\.0\.3 +\d+$", text, re.M), text
    assert "3 pods with their StatefulSet ordinals" in text
    # 2. round robin: 9 answers, 3 per pod, in rotation
    rr = re.search(r"Round robin.*\n +((?:web-\d ?){9})$", text, re.M)
    assert rr, text
    answers = rr.group(1).split()
    assert sorted(answers) == ["web-0"] * 3 + ["web-1"] * 3 + ["web-2"] * 3
    assert answers[:3] == answers[3:6] == answers[6:9]
    # 3. sticky: each key always on one pod
    assert len(re.findall(r"user-\d -> web-\d +\(3 of 3 connections\)", text)) == 6, text
    # 4. scale up and down, noticed by the refresher; sticky keys move only to new pods
    assert re.search(r"the refresher saw it after \d+\.\d+ s: \+ web-3, \+ web-4", text), text
    assert re.search(r"the refresher saw it after \d+\.\d+ s: - web-4", text), text
    moved = re.search(r"sticky keys that moved: (\d+) of 100 .*all to web-3 and web-4", text)
    assert moved and 15 <= int(moved.group(1)) <= 65, text
    # 5. a crashed pod is routed around and ejected
    crash = re.search(r"connect\(\): web-1 refused -> retried on another pod: (web-\d) answered", text)
    assert crash and crash.group(1) != "web-1", text
    assert "web-1 is ejected" in text
    after = re.search(r"next 6 connections: (.*)$", text, re.M)
    assert after and "web-1" not in after.group(1).split(), text
    assert "web-1 restarts and is ready again" in text
    # 6. partition leaders and a leader change with a NOT_LEADER hint
    assert "produce to partition 2 -> web-2: OK" in text
    assert "produce to partition 2 -> web-2: NOT_LEADER (hint: web-0), so svc.not_leader(2, hint=0)" in text
    assert text.count("produce to partition 2 -> web-0: OK") == 2
    assert re.search(r"^Done in \d+\.\d s\.", text, re.M)


def test_demo_as_a_program() -> None:
    """Run as a module in a fresh interpreter (what `headless-client demo` does), not fast."""
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "headless_client.demo"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Done in" in proc.stdout
    assert proc.stderr == ""
