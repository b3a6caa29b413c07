"""A small SVG canvas for the docs' figures: boxes, text, arrows, arcs; stdlib only.

Every figure is a self-contained SVG file (no external fonts, images or scripts), drawn
on a white background so it reads the same in any viewer. Text is sized with an estimate
of DejaVu Sans / Helvetica advance widths; a label wider than the room it was given fails
the build (:class:`TextDoesNotFit`) instead of spilling out of its box. Each text element
also carries that room as ``data-fit`` so a browser can check the estimate
(``tests/test_docs_browser.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"

INK = "#1f2430"  # text and lines
MUTED = "#5b6172"  # secondary text
RULE = "#c9cdd6"  # light lines, group outlines
PAPER = "#ffffff"
SHADE = "#f3f4f8"  # group backgrounds
ACCENT = "#3f51b5"  # the site's indigo
GOOD = "#1b7f4b"
BAD = "#c62828"
WARN = "#b26a00"

# Okabe-Ito colours (distinguishable with the common colour-vision deficiencies), one per
# pod ordinal; light tints of the same for fills.
POD_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9")
POD_TINTS = ("#d6e7f3", "#fbecc9", "#cdeee2", "#f3e0ea", "#f6dccb", "#ddeefa")

# Advance widths in em, DejaVu Sans (the widest of the fonts named in FONT): a label that
# fits with these fits with Helvetica or Arial too.
_NARROW = set("ijl.,:;'!|()[]{}` ")
_WIDE = set("mwMW@%")
_MONO_EM = 0.602


class TextDoesNotFit(ValueError):
    """A label is wider than the room the figure gave it."""


def text_width(text: str, size: float, *, mono: bool = False, bold: bool = False) -> float:
    """Estimated advance width of *text* in px at *size* px."""
    if mono:
        return len(text) * _MONO_EM * size
    em = 0.0
    for ch in text:
        if ch in _NARROW:
            em += 0.32
        elif ch in _WIDE:
            em += 0.92
        elif ch.isupper() or ch.isdigit() or ch in "_-=+<>~#&*?/":
            em += 0.70 if ch.isupper() else 0.64
        else:
            em += 0.60
    return em * size * (1.07 if bold else 1.0)


def _num(value: float) -> str:
    """Coordinates with at most two decimals and no trailing zeros: stable, short output."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


@dataclass
class Canvas:
    """One SVG document being drawn; :meth:`svg` returns its text."""

    width: float
    height: float
    title: str
    description: str
    _items: list[str] = field(default_factory=list)
    _markers: set[str] = field(default_factory=set)

    # -- primitives ----------------------------------------------------------------------

    def rect(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        *,
        fill: str = PAPER,
        stroke: str = INK,
        radius: float = 6,
        dash: str | None = None,
        width: float = 1.2,
    ) -> None:
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self._items.append(
            f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" '
            f'rx="{_num(radius)}" fill="{fill}" stroke="{stroke}" stroke-width="{_num(width)}"{extra}/>'
        )

    def circle(
        self, cx: float, cy: float, r: float, *, fill: str, stroke: str = "none", width: float = 1
    ) -> None:
        self._items.append(
            f'<circle cx="{_num(cx)}" cy="{_num(cy)}" r="{_num(r)}" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{_num(width)}"/>'
        )

    def line(
        self,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        *,
        stroke: str = INK,
        width: float = 1.2,
        dash: str | None = None,
        arrow: bool = False,
    ) -> None:
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        if arrow:
            extra += f' marker-end="url(#{self._marker(stroke)})"'
        self._items.append(
            f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" '
            f'stroke="{stroke}" stroke-width="{_num(width)}"{extra}/>'
        )

    def path(
        self,
        points: Sequence[tuple[float, float]],
        *,
        stroke: str = INK,
        width: float = 1.2,
        dash: str | None = None,
        arrow: bool = False,
        fill: str = "none",
    ) -> None:
        """A polyline through *points*, with rounded corners."""
        d = "M" + " L".join(f"{_num(x)} {_num(y)}" for x, y in points)
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        if arrow:
            extra += f' marker-end="url(#{self._marker(stroke)})"'
        self._items.append(
            f'<path d="{d}" fill="{fill}" stroke="{stroke}" stroke-width="{_num(width)}" '
            f'stroke-linejoin="round"{extra}/>'
        )

    def wedge(
        self, cx: float, cy: float, r_in: float, r_out: float, start: float, end: float, fill: str
    ) -> None:
        """A ring segment between angles *start* and *end* (fractions of a turn, clockwise from 12)."""

        def at(radius: float, turn: float) -> tuple[float, float]:
            angle = 2 * math.pi * turn
            return cx + radius * math.sin(angle), cy - radius * math.cos(angle)

        large = 1 if end - start > 0.5 else 0
        (x1, y1), (x2, y2) = at(r_out, start), at(r_out, end)
        (x3, y3), (x4, y4) = at(r_in, end), at(r_in, start)
        self._items.append(
            f'<path d="M{_num(x1)} {_num(y1)} A{_num(r_out)} {_num(r_out)} 0 {large} 1 {_num(x2)} {_num(y2)} '
            f'L{_num(x3)} {_num(y3)} A{_num(r_in)} {_num(r_in)} 0 {large} 0 {_num(x4)} {_num(y4)} Z" '
            f'fill="{fill}"/>'
        )

    def text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        size: float = 13,
        anchor: str = "start",
        fill: str = INK,
        bold: bool = False,
        italic: bool = False,
        mono: bool = False,
        fit: float | None = None,
    ) -> None:
        """One line of text; *fit*: the width it must stay within (checked, and recorded)."""
        if fit is not None:
            needed = text_width(text, size, mono=mono, bold=bold)
            if needed > fit:
                raise TextDoesNotFit(
                    f"{self.title}: {text!r} needs about {needed:.0f}px at {size}px, has {fit:.0f}px"
                )
        attrs = [
            f'x="{_num(x)}"',
            f'y="{_num(y)}"',
            f"font-family={quoteattr(MONO if mono else FONT)}",
            f'font-size="{_num(size)}"',
            f'fill="{fill}"',
        ]
        if anchor != "start":
            attrs.append(f'text-anchor="{anchor}"')
        if bold:
            attrs.append('font-weight="bold"')
        if italic:
            attrs.append('font-style="italic"')
        if fit is not None:
            attrs.append(f'data-fit="{_num(fit)}"')
        self._items.append(f"<text {' '.join(attrs)}>{escape(text)}</text>")

    # -- composites ----------------------------------------------------------------------

    def box(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        lines: Iterable[str],
        *,
        fill: str = PAPER,
        stroke: str = INK,
        size: float = 13,
        first_bold: bool = True,
        mono_from: int | None = None,
        dash: str | None = None,
        padding: float = 8,
    ) -> None:
        """A rounded box with centred lines of text (the first one bold by default)."""
        self.rect(x, y, w, h, fill=fill, stroke=stroke, dash=dash)
        rows = list(lines)
        leading = size * 1.35
        top = y + h / 2 - leading * (len(rows) - 1) / 2 + size * 0.35
        for i, row in enumerate(rows):
            self.text(
                x + w / 2,
                top + i * leading,
                row,
                size=size if i == 0 or not first_bold else size - 1,
                anchor="middle",
                bold=first_bold and i == 0,
                mono=mono_from is not None and i >= mono_from,
                fill=INK if i == 0 or not first_bold else MUTED,
                fit=w - 2 * padding,
            )

    def arrow(
        self, x1: float, y1: float, x2: float, y2: float, *, stroke: str = INK, dash: str | None = None
    ) -> None:
        self.line(x1, y1, x2, y2, stroke=stroke, dash=dash, arrow=True, width=1.4)

    # -- output --------------------------------------------------------------------------

    def _marker(self, colour: str) -> str:
        """The id of an arrowhead of *colour* (``#rrggbb``), defined once per document."""
        self._markers.add(colour.lower())
        return "arrow-" + colour.lstrip("#").lower()

    def svg(self) -> str:
        size = f'width="{_num(self.width)}" height="{_num(self.height)}"'
        box = f'viewBox="0 0 {_num(self.width)} {_num(self.height)}"'
        markers = "".join(
            f'<marker id="arrow-{colour[1:]}" viewBox="0 0 10 10" refX="9" refY="5" '
            'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M0 0 L10 5 L0 10 z" fill="{colour}"/></marker>'
            for colour in sorted(self._markers)
        )
        body = "\n".join(self._items)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" {size} {box} role="img" aria-labelledby="title desc">\n'
            f'<title id="title">{escape(self.title)}</title>\n'
            f'<desc id="desc">{escape(self.description)}</desc>\n'
            f"<defs>{markers}</defs>\n"
            f'<rect width="100%" height="100%" fill="{PAPER}"/>\n'
            f"{body}\n</svg>\n"
        )
