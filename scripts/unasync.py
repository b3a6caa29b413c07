#!/usr/bin/env python3
"""Generate the blocking twins of the asyncio sources (the httpcore way).

Only the asyncio side of each pair below is written by hand; this script rewrites it,
line by line, with the substitutions in ``SUBSTITUTIONS`` into its blocking twin, which
is committed. ``--check`` writes nothing and fails when a committed twin differs from
what the source gives (``tests/test_unasync.py`` runs it), or when a substitution is
never used (so dead rules cannot pile up).

    scripts/unasync.py           regenerate the blocking twins
    scripts/unasync.py --check   exit 1 when a twin drifted from its source
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (asyncio source, blocking twin), relative to the repository root.
PAIRS: tuple[tuple[str, str], ...] = (
    ("headless_client/aio/_resolve_methods.py", "headless_client/_resolve_methods.py"),
)

#: (pattern, replacement), applied in order to every line of every source.
SUBSTITUTIONS: tuple[tuple[str, str], ...] = (
    (r"\basync def\b", "def"),
    (r"\bawait ", ""),
    (r"\bAsync(?=[A-Z])", ""),
    (r"^from \.\.", "from ."),
    (r"\ban awaited\b", "a blocking"),
    (r"\bawaits\b", "runs"),
)

HEADER = "# GENERATED from {source} by scripts/unasync.py: do not edit.\n"


def generate(source: str, used: set[str]) -> str:
    """The blocking twin of *source*'s text; the patterns that matched go into *used*."""
    lines = [HEADER.format(source=source)]
    for line in (ROOT / source).read_text(encoding="utf-8").splitlines(keepends=True):
        for pattern, replacement in SUBSTITUTIONS:
            line, count = re.subn(pattern, replacement, line)
            if count:
                used.add(pattern)
        lines.append(line)
    return "".join(lines)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    used: set[str] = set()
    drifted: list[str] = []
    for source, target in PAIRS:
        text = generate(source, used)
        path = ROOT / target
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if check:
            drifted.append(f"{target} differs from what {source} gives")
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {target}")
    unused = [pattern for pattern, _ in SUBSTITUTIONS if pattern not in used]
    for message in [*drifted, *(f"substitution never used: {p!r}" for p in unused)]:
        print(message, file=sys.stderr)
    if drifted:
        print("run scripts/unasync.py to regenerate the blocking twins", file=sys.stderr)
    return 1 if drifted or unused else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
