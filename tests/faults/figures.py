"""The figures the fault suite measures, and the CI/soak switch.

Tests call :func:`record`; each fault test module prints its figures as a table when it
finishes (visible with ``pytest -s``), and appends them as JSON lines to the file named by
``HEADLESS_FIGURES`` when that is set (``scripts/soak`` does, and prints the table).
``HEADLESS_SOAK=1`` selects the long variants (:func:`size`).
"""

from __future__ import annotations

import json
import os
import platform
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TypeVar

__all__ = ["FIGURES", "SOAK", "Figure", "record", "size", "table", "write"]

T = TypeVar("T")

SOAK: bool = os.environ.get("HEADLESS_SOAK", "") not in ("", "0")
"""True when the long (soak) variants are wanted."""


def size(ci: T, soak: T) -> T:
    """*soak* under ``HEADLESS_SOAK=1``, else *ci*."""
    return soak if SOAK else ci


@dataclass(frozen=True)
class Figure:
    scenario: str
    metric: str
    value: float | int | str
    unit: str = ""
    bound: str = ""
    """The bound the test asserted, in words (empty: reported only)."""

    def text(self) -> str:
        if isinstance(self.value, float):
            shown = f"{self.value:.3g}" if abs(self.value) < 1000 else f"{self.value:,.0f}"
        elif isinstance(self.value, int):
            shown = f"{self.value:,}"
        else:
            shown = self.value
        return f"{shown} {self.unit}".strip()


FIGURES: list[Figure] = []
_lock = threading.Lock()


def record(scenario: str, metric: str, value: float | int | str, unit: str = "", bound: str = "") -> None:
    """Note one measured figure (thread-safe)."""
    with _lock:
        FIGURES.append(Figure(scenario, metric, value, unit, bound))


def table(figures: Iterable[Figure], title: str = "") -> str:
    """A Markdown table of *figures*."""
    rows = list(figures)
    if not rows:
        return ""
    lines = [f"\n{title}" if title else "", "| scenario | metric | value | asserted |", "|---|---|---|---|"]
    lines += [f"| {f.scenario} | {f.metric} | {f.text()} | {f.bound} |" for f in rows]
    return "\n".join(lines) + "\n"


def write(figures: Iterable[Figure]) -> None:
    """Append *figures* as JSON lines to ``$HEADLESS_FIGURES`` (if set)."""
    path = os.environ.get("HEADLESS_FIGURES")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        for f in figures:
            out.write(json.dumps({**asdict(f), "soak": SOAK, "python": platform.python_version()}) + "\n")
