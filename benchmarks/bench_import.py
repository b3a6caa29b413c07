"""What ``import headless_client`` costs, beside 0.1.0 (92 to 104 ms) and an empty interpreter.

Run from the repository root::

    python benchmarks/bench_import.py [--runs 20] [--no-ir]

**Method.** Each row is a statement run in a fresh interpreter (``python -c``), so nothing
is cached in the process; the OS file cache and the bytecode caches are warm (one untimed
run of every row first, with ``PYTHONDONTWRITEBYTECODE`` unset, as for an installed
package).
The rows take turns run after run, so a burst of load on a shared machine hits them all
alike; each row's figure is its wall time minus the same run's empty interpreter
(``pass``): what the statement adds. min, median and max over ``--runs`` runs. The
``import headless_client`` row also gives Python's own ``-X importtime`` figure (the
package's cumulative microseconds), and, unless ``--no-ir``, callgrind's instruction
count (Ir) of each row minus the empty interpreter's: it repeats exactly where wall
times do not.

Since the lazy exports, ``import headless_client`` loads no submodule, nor logging nor
typing; a name is loaded on first use, with what it needs: ``HeadlessService`` loads dnspython and the sync service
(not asyncio nor tenacity); ``from headless_client import *`` loads every export, the
asyncio twins included (more than 0.1.0's eager import did).

Target (issue 14): ``import headless_client`` <= 40 ms. Exits 1 if its median misses it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 40.0
RELEASE_0_1_0 = "92 to 104 ms"

ROWS: dict[str, str] = {
    "empty interpreter (pass)": "pass",
    "import headless_client": "import headless_client",
    "from headless_client import HeadlessService, RoundRobin": (
        "from headless_client import HeadlessService, RoundRobin"
    ),
    "from headless_client import AsyncHeadlessService": "from headless_client import AsyncHeadlessService",
    "from headless_client import * (every export)": "from headless_client import *",
}
FLOOR = "empty interpreter (pass)"
PACKAGE = "import headless_client"


def environment() -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTHONSTARTUP", None)
    # As installed (pip writes the bytecode caches): the warm-up run writes them.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def wall_ms(statement: str, env: dict[str, str]) -> float:
    """Wall time of one fresh interpreter running *statement*, in ms."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], env=env, check=True, timeout=120)
    return (time.perf_counter() - start) * 1000


def importtime_ms(env: dict[str, str]) -> float:
    """The package's cumulative time as ``python -X importtime`` reports it, in ms."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import headless_client"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found = re.search(r"^import time:\s*\d+\s*\|\s*(\d+)\s*\|\s?headless_client$", done.stderr, re.MULTILINE)
    if not found:
        raise RuntimeError(f"no headless_client line in -X importtime output:\n{done.stderr[-2000:]}")
    return int(found.group(1)) / 1000


def callgrind_ir(statement: str, env: dict[str, str]) -> int:
    """Total instructions of one fresh interpreter running *statement*."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", statement],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"callgrind run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def spread(values: list[float]) -> str:
    return f"{min(values):>7.1f} {statistics.median(values):>7.1f} {max(values):>7.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="fresh interpreters per row")
    parser.add_argument("--no-ir", action="store_true", help="skip the callgrind column")
    args = parser.parse_args(argv)
    env = environment()
    for statement in ROWS.values():  # warm the file cache and the bytecode caches
        wall_ms(statement, env)

    walls: dict[str, list[float]] = {label: [] for label in ROWS}
    importtimes: list[float] = []
    for _ in range(args.runs):
        floor = wall_ms(ROWS[FLOOR], env)
        walls[FLOOR].append(floor)
        for label, statement in ROWS.items():
            if label != FLOOR:
                walls[label].append(wall_ms(statement, env) - floor)
        importtimes.append(importtime_ms(env))

    irs: dict[str, int] = {}
    if not args.no_ir and shutil.which("valgrind"):
        irs = {label: callgrind_ir(statement, env) for label, statement in ROWS.items()}

    print(f"Python {sys.version.split()[0]}; {args.runs} fresh interpreters per row, taking turns")
    print(f"\n  {'statement':<64} {'min':>7} {'median':>7} {'max':>7} (ms){'   Ir (M)' if irs else ''}")
    for label in ROWS:
        added = "" if label == FLOOR else " (added)"
        ir = ""
        if irs:
            value = irs[label] if label == FLOOR else irs[label] - irs[FLOOR]
            ir = f" {value / 1e6:>8.1f}"
        print(f"  {label + added:<64} {spread(walls[label])}     {ir}")
    print(f"  {'import headless_client, -X importtime cumulative':<64} {spread(importtimes)}")

    median = statistics.median(walls[PACKAGE])
    ok = median <= TARGET_MS
    print(
        f"\nimport headless_client: {median:.1f} ms median (target <= {TARGET_MS:.0f}: "
        f"{'ok' if ok else 'MISSED'}); 0.1.0: {RELEASE_0_1_0} (asyncio and tenacity loaded eagerly)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
