"""The live view of ``headless-client watch`` on a terminal: a table of pods redrawn in place.

:class:`PodLog` remembers, per pod, its last change as events report it (added, moved,
ejected, returned) and the latest events; :func:`render` turns a service's
:class:`~headless_client.stats.ServiceStats` and that log into lines (pure); :class:`Screen`
redraws them in place with ANSI cursor movement (no curses): up to the first line of the
previous frame, clear to the end of the screen, write the new frame.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Final, TextIO

from .endpoints import Endpoint
from .events import ServiceEvent
from .stats import PodStats, ServiceStats

__all__ = ["PodLog", "Screen", "render"]

#: Events listed under the table.
RECENT: Final = 5
_CLEAR_TO_END: Final = "\x1b[J"


def _up(lines: int) -> str:
    # Cursor to the start of the line *lines* above (CPL).
    return f"\x1b[{lines}F" if lines else "\r"


def pod_name(endpoint: Endpoint) -> str:
    """``web-0`` for a pod with a name, else its address."""
    if endpoint.hostname:
        return endpoint.hostname.split(".", 1)[0]
    return endpoint.address


def ago(seconds: float) -> str:
    """``0.4s``, ``12s``, ``3m05s``, ``2h03m``."""
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


class PodLog:
    """Each pod's last change, and the latest events (fed from the events thread's
    deliveries, read by the drawing thread: one thread at a time in the CLI)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.last: dict[str, tuple[str, float]] = {}
        self.recent: collections.deque[tuple[float, str]] = collections.deque(maxlen=RECENT)

    def seen(self, endpoints: Sequence[Endpoint], at: float) -> None:
        """Pods already there when the view started."""
        for ep in endpoints:
            self.last.setdefault(ep.identity, ("present", at))

    def record(self, event: ServiceEvent, wall: str) -> None:
        """Take one event (*wall*: its wall-clock time, ISO 8601; the list shows the time of day)."""
        ep = event.endpoint
        if event.kind in ("added", "moved", "ejected", "returned") and ep is not None:
            self.last[ep.identity] = (event.kind, event.at)
        elif event.kind == "removed" and ep is not None:
            self.last.pop(ep.identity, None)
        if event.kind != "changed":
            clock = wall.split("T")[-1].rstrip("Z")
            self.recent.append((event.at, f"{clock} {event.kind:<17} {event.detail}"))


def _state(pod: PodStats, stats: ServiceStats) -> str:
    if pod.ejected:
        return "ejected*" if stats.panic else "ejected"
    if pod.endpoint.terminating:
        return "terminating"
    return "usable"


def render(stats: ServiceStats, log: PodLog, now: float, wall: str, *, error: str | None = None) -> list[str]:
    """The frame's lines: a header, the pod table, the latest events."""
    staleness = "-" if stats.staleness is None else ago(stats.staleness)
    header = (
        f"{stats.service}  {stats.endpoints} endpoints, {stats.usable} usable"
        f"{', PANIC: all used' if stats.panic else ''}  refreshes {stats.refreshes} "
        f"({stats.refresh_failures} failed)  last answer {staleness} ago  {wall}"
    )
    columns = (
        "POD", "ADDRESS", "PORT", "STATE", "PICKS", "ACTIVE", "FAILS", "EJECTIONS", "LATENCY", "LAST CHANGE",
    )
    rows = []
    for pod in stats.pods:
        kind, at = log.last.get(pod.endpoint.identity, ("present", log.started))
        rows.append((
            pod_name(pod.endpoint),
            pod.endpoint.address,
            str(pod.endpoint.port or "-"),
            _state(pod, stats),
            str(pod.picks),
            str(pod.in_flight),
            str(pod.failures),
            str(pod.ejections),
            "-" if pod.latency is None else f"{pod.latency * 1000:.1f}ms",
            f"{kind} {ago(now - at)} ago",
        ))
    widths = [max(len(r[i]) for r in [columns, *rows]) for i in range(len(columns))]
    lines = [header, ""]
    for row in [columns, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if not rows:
        lines.append("(no endpoints: NXDOMAIN or an empty answer; waiting for pods)")
    if error:
        lines += ["", f"last refresh failed: {error} (keeping the last good view)"]
    if log.recent:
        lines += ["", "recent events:"]
        lines += [f"  {text}" for _, text in log.recent]
    return lines


class Screen:
    """Draws frames in place on a terminal."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.height = 0

    def draw(self, lines: Sequence[str], width: int = 0) -> None:
        """Replace the previous frame with *lines*, each cut to *width* columns (0: not
        cut) so that none wraps and the next frame starts where this one did."""
        if width > 1:
            lines = [line[: width - 1] for line in lines]
        up = _up(self.height) if self.height else ""
        self.out.write(up + _CLEAR_TO_END + "\n".join(lines) + "\n")
        self.out.flush()
        self.height = len(lines)
