#!/usr/bin/env python3
"""Generate the blocking twins of the asyncio sources (the httpcore way).

Only the asyncio side of each pair below is written by hand; this script rewrites it,
line by line, with the pair's substitutions into its blocking twin, which is committed,
then lets ruff tidy what the renaming leaves untidy (imports that sort elsewhere or are
needed no more, a ``for`` loop that only yields). ``--check`` writes nothing and fails
when a committed twin differs from what its source gives (``tests/test_unasync.py`` runs
it), or when a substitution is never used (so dead rules cannot pile up).

    scripts/unasync.py           regenerate the blocking twins
    scripts/unasync.py --check   exit 1 when a twin drifted from its source
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (pattern, replacement), applied in order to every line of every source.
COMMON: tuple[tuple[str, str], ...] = (
    (r"\basync def\b", "def"),
    (r"\basync (with|for)\b", r"\1"),
    (r"\bawait ", ""),
    (r"\basynccontextmanager\b", "contextmanager"),
    (r"(?<![A-Za-z0-9])Async(?=[A-Z])", ""),
    (r"\b([Aa])n (awaited|asyncio)\b", r"\1 blocking"),
    (r"\bawaits\b", "runs"),
)

#: A source in ``aio/`` whose twin is one package up.
UP_ONE: tuple[tuple[str, str], ...] = ((r"^(\s*)from \.\.", r"\1from ."),)

#: httpx's asyncio names that the common rules do not turn into the blocking ones.
HTTPX: tuple[tuple[str, str], ...] = (
    (r"\bAsyncByteStream\b", "SyncByteStream"),
    (r"\bhandle_async_request\b", "handle_request"),
    (r"\baclose\b", "close"),
    (r"\b__aiter__\b", "__iter__"),
    (r"^from \.\.aio import AsyncHeadlessService$", "from ..service import HeadlessService"),
    (r"^from \.\.aio\.registry import", "from ..registry import"),
)

#: (asyncio source, blocking twin, substitutions), paths relative to the repository root.
PAIRS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("headless_client/aio/_resolve_methods.py", "headless_client/_resolve_methods.py", UP_ONE + COMMON),
    ("headless_client/aio/_registry_calls.py", "headless_client/_registry_calls.py", UP_ONE + COMMON),
    ("headless_client/contrib/_httpx_async.py", "headless_client/contrib/_httpx_sync.py", HTTPX + COMMON),
)

HEADER = "# GENERATED from {source} by scripts/unasync.py: do not edit.\n"


def generate(source: str, target: str, substitutions: tuple[tuple[str, str], ...], used: set[str]) -> str:
    """The blocking twin (at *target*) of *source*'s text; the patterns that matched go
    into *used*."""
    lines = [HEADER.format(source=source)]
    for line in (ROOT / source).read_text(encoding="utf-8").splitlines(keepends=True):
        for pattern, replacement in substitutions:
            line, count = re.subn(pattern, replacement, line)
            if count:
                used.add(pattern)
        lines.append(line)
    return _tidy_imports("".join(lines), target)


def _tidy_imports(text: str, target: str) -> str:
    """*text* with its imports sorted, the unused ones dropped and loops that only yield
    made ``yield from``, as ruff would have them."""
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--quiet", "--fix-only", "--unsafe-fixes",
         "--select", "I,F401,UP028", "--stdin-filename", str(ROOT / target), "-"],
        input=text, capture_output=True, text=True, check=False, cwd=ROOT,
    )
    if done.returncode not in (0, 1):
        raise RuntimeError(f"ruff failed on {target}: {done.stderr}")
    return done.stdout


def main(argv: list[str]) -> int:
    check = "--check" in argv
    used: set[str] = set()
    drifted: list[str] = []
    for source, target, substitutions in PAIRS:
        text = generate(source, target, substitutions, used)
        path = ROOT / target
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if check:
            drifted.append(f"{target} differs from what {source} gives")
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {target}")
    rules = {pattern for _, _, substitutions in PAIRS for pattern, _ in substitutions}
    unused = sorted(rules - used)
    for message in [*drifted, *(f"substitution never used: {p!r}" for p in unused)]:
        print(message, file=sys.stderr)
    if drifted:
        print("run scripts/unasync.py to regenerate the blocking twins", file=sys.stderr)
    return 1 if drifted or unused else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
