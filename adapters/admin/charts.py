"""Charts drawn on the server as inline SVG: no script, no library, nothing from the network.

`bars` draws labelled horizontal bars (categories: channels, reasons, ratings) and
`columns` vertical ones over an ordered axis (days, confidence bins). Each chart is a
<figure> with a caption, an SVG with role="img" and an aria-label that reads out every
value, so a screen reader gets the figures, not a picture; colours come from admin.css.
"""
from __future__ import annotations

from typing import Sequence

from adapters.admin.html import esc, h, join, tag

WIDTH = 360
ROW = 22  # px per bar in `bars`
HEIGHT = 160  # px of the plot in `columns`


def _fmt(value: float) -> str:
    return f"{value:g}" if isinstance(value, int) or value == int(value) else f"{value:.2f}"


def _figure(title: str, body: h) -> h:
    return tag("figure", join([tag("figcaption", title), body]))


def _svg(title: str, pairs: Sequence[tuple[str, float]], height: float, shapes: list[str]) -> h:
    """The chart as an SVG whose label reads out every value (for screen readers)."""
    summary = "; ".join(f"{label}: {_fmt(value)}" for label, value in pairs)
    return _figure(title, h(f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
                            f'aria-label="{esc(title)}: {esc(summary)}">{"".join(shapes)}</svg>'))


def bars(title: str, pairs: Sequence[tuple[str, float]], empty: str = "No data in this period.") -> h:
    """Horizontal bars, one per (label, value), longest first as given."""
    if not pairs or not any(value for _, value in pairs):
        return _figure(title, tag("p", empty, class_="empty"))
    top, label_w = max(value for _, value in pairs) or 1, 110
    shapes = []
    for row, (label, value) in enumerate(pairs):
        y, width = row * ROW, (WIDTH - label_w - 50) * value / top
        shapes.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{esc(str(label)[:18])}</text>'
                      f'<rect class="bar{row % 6}" x="{label_w}" y="{y + 3}" width="{width:.1f}" height="{ROW - 6}"/>'
                      f'<text x="{label_w + width + 4:.1f}" y="{y + 15}">{esc(_fmt(value))}</text>')
    return _svg(title, pairs, len(pairs) * ROW, shapes)


def columns(title: str, pairs: Sequence[tuple[str, float]], empty: str = "No data in this period.") -> h:
    """Vertical columns over an ordered axis; the first and last labels written under it."""
    if not pairs or not any(value for _, value in pairs):
        return _figure(title, tag("p", empty, class_="empty"))
    top, gap = max(value for _, value in pairs) or 1, 2
    step = WIDTH / len(pairs)
    shapes = []
    for n, (label, value) in enumerate(pairs):
        height = (HEIGHT - 16) * value / top
        shapes.append(f'<rect class="bar0" x="{n * step + gap / 2:.1f}" y="{HEIGHT - height:.1f}" '
                      f'width="{max(1.0, step - gap):.1f}" height="{height:.1f}"><title>{esc(label)}: '
                      f'{esc(_fmt(value))}</title></rect>')
    shapes.append(f'<text x="0" y="{HEIGHT + 14}">{esc(pairs[0][0])}</text>'
                  f'<text x="{WIDTH}" y="{HEIGHT + 14}" text-anchor="end">{esc(pairs[-1][0])}</text>'
                  f'<text x="0" y="10">max {esc(_fmt(top))}</text>')
    return _svg(title, pairs, HEIGHT + 18, shapes)
