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
    ("headless_client/aio/_registry_calls.py", "headless_client/_registry_calls.py"),
)

#: (pattern, replacement), applied in order to every line of every source.
SUBSTITUTIONS: tuple[tuple[str, str], ...] = (
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\bawait ", ""),
    (r"\basynccontextmanager\b", "contextmanager"),
    (r"\bAsync(?=[A-Z])", ""),
    (r"^(\s*)from \.\.", r"\1from ."),
    (r"\ban (awaited|asyncio)\b", "a blocking"),
    (r"\bawaits\b", "runs"),
)

#: A one-line ``from x import a, b`` whose names a substitution renamed: sorted again as
#: ruff's isort wants them (constants, then classes, then the rest; case-insensitive).
_FROM_IMPORT = re.compile(r"^(\s*from \S+ import )([\w, ]+)$")

HEADER = "# GENERATED from {source} by scripts/unasync.py: do not edit.\n"


def generate(source: str, used: set[str]) -> str:
    """The blocking twin of *source*'s text; the patterns that matched go into *used*."""
    lines = [HEADER.format(source=source)]
    for original in (ROOT / source).read_text(encoding="utf-8").splitlines():
        line = original
        for pattern, replacement in SUBSTITUTIONS:
            line, count = re.subn(pattern, replacement, line)
            if count:
                used.add(pattern)
        imported = _FROM_IMPORT.match(line)
        if imported and line != original:
            names = sorted(imported[2].split(", "), key=_isort_key)
            line = imported[1] + ", ".join(names)
        lines.append(line + "\n")
    return "".join(lines)


def _isort_key(name: str) -> tuple[int, str]:
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return kind, name.lower()


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
