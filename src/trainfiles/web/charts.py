"""Charts as inline SVG, drawn on the server: pure functions from numbers to markup, so the
pages need no chart library and work from file:// with scripts off. Colours come from the
page's stylesheet (classes `bar`, `axis`, `label`); each chart scales to its container."""

import math
from bisect import bisect_right
from collections.abc import Sequence
from html import escape

WIDTH = 640
ROW = 22  # a horizontal bar and its gap
MOST_BARS = 30  # beyond this a bar chart says how many it leaves out


def edges(low: float, high: float, count: int) -> list[float]:
    """`count` bins of equal width from `low` to `high`: their count + 1 edges."""
    step = (high - low) / count
    return [round(low + i * step, 6) for i in range(count + 1)]


def spread(values: Sequence[float], count: int = 10) -> list[float]:
    """Edges of `count` bins from 0 that hold every value, each a whole number wide."""
    width = max(1, math.ceil(max(values, default=0) / count)) if values else 1
    return [float(i * width) for i in range(count + 1)]


def counts(values: Sequence[float], bins: Sequence[float]) -> list[int]:
    """How many values fall in each bin: [edge, next edge), the last bin closed; values
    outside the edges go to the nearest end bin."""
    tally = [0] * (len(bins) - 1)
    for value in values:
        tally[min(max(bisect_right(bins, value) - 1, 0), len(tally) - 1)] += 1
    return tally


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


TITLE = 26  # the height of the title line above a chart


def _svg(title: str, height: int, body: list[str]) -> str:
    """The chart's markup under its title, which is also its accessible name."""
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height + TITLE}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<text class="title" x="4" y="17">{escape(title)}</text>'
        f'<g transform="translate(0 {TITLE})">{"".join(body)}</g></svg>'
    )


def histogram(values: Sequence[float], bins: Sequence[float], *, title: str, x_label: str, y_label: str) -> str:
    """Columns of how many values fall in each bin, the bins' edges under them, the axes named."""
    tally = counts(values, bins)
    top = max(tally, default=0) or 1
    left, right, base, height = 48, 12, 200, 250
    width = (WIDTH - left - right) / len(tally)
    body = [
        f'<line class="axis" x1="{left}" y1="{base}" x2="{WIDTH - right}" y2="{base}"/>',
        f'<text class="label" x="{left - 6}" y="{base}" text-anchor="end">0</text>',
        f'<text class="label" x="{left - 6}" y="24" text-anchor="end">{top}</text>',
        f'<text class="label" x="{left + (WIDTH - left - right) / 2}" y="{height - 8}" text-anchor="middle">{escape(x_label)}</text>',
        f'<text class="label" x="12" y="{base / 2}" text-anchor="middle" transform="rotate(-90 12 {base / 2})">{escape(y_label)}</text>',
    ]
    every = max(1, math.ceil(len(bins) / 11))  # edge labels that do not overlap
    for i, n in enumerate(tally):
        x = left + i * width
        h = (base - 20) * n / top
        tip = f"{_number(bins[i])} to {_number(bins[i + 1])}: {n}"
        body.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{base - h:.1f}" width="{max(width - 2, 1):.1f}" height="{h:.1f}">'
            f"<title>{tip}</title></rect>"
        )
    for i in range(0, len(bins), every):
        x = left + i * width
        body.append(f'<text class="label" x="{x:.1f}" y="{base + 16}" text-anchor="middle">{_number(bins[i])}</text>')
    return _svg(title, height, body)


def bars(
    items: Sequence[tuple[str, float]], *, title: str, unit: str, digits: int = 0, scale: float | None = None
) -> str:
    """One horizontal bar per (label, value), the value written at its end; at most MOST_BARS,
    then a line saying how many more there are. `scale` fixes the value of a full bar."""
    shown = list(items[:MOST_BARS])
    top = scale or max((v for _, v in shown), default=0) or 1
    label_width, value_width = 220, 80
    span = WIDTH - label_width - value_width
    height = ROW * (len(shown) + (len(items) > MOST_BARS)) + 8
    body = []
    for i, (label, value) in enumerate(shown):
        y = 4 + i * ROW
        w = span * value / top
        text = f"{value:.{digits}f} {unit}".strip()
        short = label if len(label) <= 30 else label[:29] + "…"
        body.append(
            f'<text class="label" x="{label_width - 8}" y="{y + 15}" text-anchor="end">{escape(short)}'
            f"<title>{escape(label)}</title></text>"
            f'<rect class="bar" x="{label_width}" y="{y + 2}" width="{max(w, 1):.1f}" height="{ROW - 6}">'
            f"<title>{escape(label)}: {escape(text)}</title></rect>"
            f'<text class="label" x="{label_width + w + 6:.1f}" y="{y + 15}">{escape(text)}</text>'
        )
    if len(items) > MOST_BARS:
        body.append(
            f'<text class="label" x="{label_width}" y="{4 + len(shown) * ROW + 15}">'
            f"and {len(items) - MOST_BARS} more</text>"
        )
    return _svg(title, height, body)
