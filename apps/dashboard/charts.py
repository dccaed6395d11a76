"""Small server-rendered charts: inline SVG with a title, axis labels, a summary
for screen readers and the same numbers in a visually hidden table.

Each function takes plain series and returns safe HTML (a `<figure>`); a chart
without any data is an empty-state paragraph instead of an empty frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Series colours, by tone; a tone is a key here, never free text in the markup.
TONES = {
    "primary": "#4f46e5",
    "error": "#c62828",
    "ok": "#2e7d32",
    "warn": "#b7791f",
    "muted": "#64748b",
}

WIDTH = 920
HEIGHT = 240
MARGIN_LEFT = 64
MARGIN_RIGHT = 16
MARGIN_TOP = 12
MARGIN_BOTTOM = 48
MAX_X_LABELS = 8
BAR_ROW = 26
BAR_LABEL_WIDTH = 160
BAR_LABEL_CHARS = 24

Formatter = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    tone: str = "primary"

    def __post_init__(self) -> None:
        if self.tone not in TONES:
            raise ValueError(f"unknown tone {self.tone!r}")

    @property
    def color(self) -> str:
        return TONES[self.tone]


def format_number(value: float) -> str:
    """A compact number for axis ticks and summaries: 950, 1.5k, 2.3M, 0.25."""
    magnitude = abs(value)
    if magnitude >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if magnitude >= 10_000:
        return f"{value / 1_000:.3g}k"
    if magnitude >= 1_000:
        return f"{value / 1_000:.2g}k" if value % 100 == 0 else f"{value:,.0f}"
    if value == int(value):
        return f"{int(value)}"
    return f"{value:.3g}"


def nice_ticks(maximum: float, ticks: int = 4) -> list[float]:
    """Axis ticks from 0 to the first round number (1, 2, 2.5 or 5 times a power of ten
    per step) at or above `maximum`."""
    if not maximum or maximum <= 0 or not math.isfinite(maximum):
        return [0.0, 1.0]
    raw = maximum / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    steps = math.ceil(maximum / step - 1e-9)
    return [round(step * i, 12) for i in range(steps + 1)]


def _has_data(series: Sequence[Series]) -> bool:
    return any(v for s in series for v in s.values if v is not None)


def _figure(title: str, body: str, *, legend: Sequence[Series] = (), table: str = "") -> SafeString:
    items = "".join(
        f'<li><svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" rx="2" '
        f'fill="{s.color}"/></svg> {escape(s.name)}</li>'
        for s in legend
    )
    legend_html = f'<ul class="chart-legend">{items}</ul>' if items else ""
    return mark_safe(  # noqa: S308 - every piece of text is escaped above or by the callers
        f'<figure class="chart"><figcaption class="chart-title">{escape(title)}</figcaption>'
        f"{legend_html}{body}{table}</figure>"
    )


def empty_chart(title: str, message: str) -> SafeString:
    return _figure(title, f'<p class="empty chart-empty">{escape(message)}</p>')


def _table(caption: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = "".join(
        "<tr>"
        + f'<th scope="row">{escape(row[0])}</th>'
        + "".join(f"<td>{escape(c)}</td>" for c in row[1:])
        + "</tr>"
        for row in rows
    )
    return (
        f'<table class="chart-data"><caption>{escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _summary(
    title: str, labels: Sequence[str], series: Sequence[Series], fmt: Formatter, totals: bool
) -> str:
    parts = [f"{title}, {len(labels)} points from {labels[0]} to {labels[-1]}."]
    for s in series:
        points = [(v, labels[i]) for i, v in enumerate(s.values) if v is not None]
        if not points:
            parts.append(f"{s.name}: no data.")
            continue
        peak, at = max(points, key=lambda p: p[0])
        total = f"total {fmt(sum(v for v, _ in points))}, " if totals else ""
        parts.append(f"{s.name}: {total}highest {fmt(peak)} at {at}.")
    return " ".join(parts)


def _svg_open(title: str, summary: str, height: int, width: int = WIDTH) -> str:
    return (
        f'<svg class="chart-svg" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(summary)}" '
        f'preserveAspectRatio="xMidYMid meet"><title>{escape(summary)}</title>'
    )


def _axes(
    *,
    ticks: list[float],
    labels: Sequence[str],
    xs: Sequence[float],
    x_label: str,
    y_label: str,
    fmt: Formatter,
) -> str:
    """Horizontal grid lines with y tick labels, x tick labels (thinned) and both axis titles."""
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    bottom = MARGIN_TOP + plot_h
    out = []
    for tick in ticks:
        y = bottom - plot_h * tick / ticks[-1]
        out.append(
            f'<line class="chart-grid" x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" '
            f'y1="{y:.1f}" y2="{y:.1f}" stroke="#e1e4e8"/>'
            f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#6a737d">'
            f"{escape(fmt(tick))}</text>"
        )
    every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    for i, (label, x) in enumerate(zip(labels, xs, strict=True)):
        if i % every and i != len(labels) - 1:
            continue
        if i != len(labels) - 1 and len(labels) - 1 - i < every:  # keep the last label clear of this one
            continue
        out.append(
            f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" font-size="11" fill="#6a737d">'
            f"{escape(label)}</text>"
        )
    out.append(
        f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{bottom}" y2="{bottom}" stroke="#6a737d"/>'
        f'<text class="chart-axis-label" x="{(MARGIN_LEFT + WIDTH - MARGIN_RIGHT) / 2:.1f}" y="{HEIGHT - 6}" '
        f'text-anchor="middle" font-size="12" fill="#1b1f24">{escape(x_label)}</text>'
        f'<text class="chart-axis-label" transform="translate(14 {MARGIN_TOP + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle" font-size="12" fill="#1b1f24">{escape(y_label)}</text>'
    )
    return "".join(out)


def _data_table(
    title: str, x_label: str, labels: Sequence[str], series: Sequence[Series], fmt: Formatter
) -> str:
    rows = [
        [label, *("–" if s.values[i] is None else fmt(s.values[i]) for s in series)]
        for i, label in enumerate(labels)
    ]
    return _table(title, [x_label, *(s.name for s in series)], rows)


def _check_lengths(labels: Sequence[str], series: Sequence[Series]) -> None:
    for s in series:
        if len(s.values) != len(labels):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(labels)} labels")


def line_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    empty: str,
    fmt: Formatter = format_number,
    totals: bool = False,
) -> SafeString:
    """One line per series over `labels`; a missing value (None) breaks the line.
    Every point is also a dot, so a single point or an isolated one shows."""
    _check_lengths(labels, series)
    if not labels or not _has_data(series):
        return empty_chart(title, empty)
    ticks = nice_ticks(max(v for s in series for v in s.values if v is not None))
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    n = len(labels)
    xs = [MARGIN_LEFT + plot_w / 2] if n == 1 else [MARGIN_LEFT + plot_w * i / (n - 1) for i in range(n)]

    def y_of(value: float) -> float:
        return MARGIN_TOP + plot_h - plot_h * value / ticks[-1]

    summary = _summary(title, labels, series, fmt, totals)
    out = [
        _svg_open(title, summary, HEIGHT),
        _axes(ticks=ticks, labels=labels, xs=xs, x_label=x_label, y_label=y_label, fmt=fmt),
    ]
    for s in series:
        path, pen_down = [], False
        for x, value in zip(xs, s.values, strict=True):
            if value is None:
                pen_down = False
                continue
            path.append(f"{'L' if pen_down else 'M'}{x:.1f} {y_of(value):.1f}")
            pen_down = True
        out.append(
            f'<path class="chart-line" d="{" ".join(path)}" fill="none" stroke="{s.color}" stroke-width="2" '
            f'stroke-linejoin="round"/>'
        )
        for x, value, label in zip(xs, s.values, labels, strict=True):
            if value is not None:
                out.append(
                    f'<circle cx="{x:.1f}" cy="{y_of(value):.1f}" r="3" fill="{s.color}">'
                    f"<title>{escape(f'{s.name} at {label}: {fmt(value)}')}</title></circle>"
                )
    out.append("</svg>")
    return _figure(title, "".join(out), legend=series, table=_data_table(title, x_label, labels, series, fmt))


def stacked_column_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    empty: str,
    fmt: Formatter = format_number,
) -> SafeString:
    """One column per label, the series stacked bottom-up in the order given."""
    _check_lengths(labels, series)
    if not labels or not _has_data(series):
        return empty_chart(title, empty)
    stacks = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    ticks = nice_ticks(max(stacks))
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    band = plot_w / len(labels)
    xs = [MARGIN_LEFT + band * (i + 0.5) for i in range(len(labels))]
    bar_w = max(1.0, band * 0.7)
    summary = _summary(title, labels, series, fmt, totals=True)
    out = [
        _svg_open(title, summary, HEIGHT),
        _axes(ticks=ticks, labels=labels, xs=xs, x_label=x_label, y_label=y_label, fmt=fmt),
    ]
    for i, (x, label) in enumerate(zip(xs, labels, strict=True)):
        base = 0.0
        for s in series:
            value = s.values[i] or 0
            if not value:
                continue
            top = base + value
            y = MARGIN_TOP + plot_h - plot_h * top / ticks[-1]
            h = plot_h * value / ticks[-1]
            out.append(
                f'<rect class="chart-bar" x="{x - bar_w / 2:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{s.color}"><title>{escape(f"{s.name} at {label}: {fmt(value)}")}'
                f"</title></rect>"
            )
            base = top
    out.append("</svg>")
    return _figure(title, "".join(out), legend=series, table=_data_table(title, x_label, labels, series, fmt))


def bar_chart(
    *,
    title: str,
    rows: Sequence[tuple[str, float]],
    x_label: str,
    y_label: str,
    empty: str,
    fmt: Formatter = format_number,
    tone: str = "primary",
    width: int = WIDTH,
) -> SafeString:
    """Horizontal bars, one per (label, value) row, largest first; each bar carries its value."""
    color = Series(y_label, [], tone).color
    rows = sorted(((label, value) for label, value in rows if value), key=lambda r: -r[1])
    if not rows:
        return empty_chart(title, empty)
    ticks = nice_ticks(max(value for _, value in rows))
    top = MARGIN_TOP + 14  # room for the category axis title
    height = top + BAR_ROW * len(rows) + 40
    left, right = BAR_LABEL_WIDTH, width - MARGIN_RIGHT - 72  # room for the value after the longest bar
    bottom = top + BAR_ROW * len(rows)
    summary = f"{title}, largest first: " + "; ".join(f"{label} {fmt(value)}" for label, value in rows)
    out = [_svg_open(title, summary, height, width)]
    for tick in ticks:
        x = left + (right - left) * tick / ticks[-1]
        out.append(
            f'<line class="chart-grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="#e1e4e8"/>'
            f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle" font-size="11" fill="#6a737d">'
            f"{escape(fmt(tick))}</text>"
        )
    for i, (label, value) in enumerate(rows):
        y = top + BAR_ROW * i
        w = (right - left) * value / ticks[-1]
        shown = label if len(label) <= BAR_LABEL_CHARS else label[: BAR_LABEL_CHARS - 1] + "…"
        out.append(
            f'<text x="{left - 8}" y="{y + BAR_ROW / 2 + 4:.1f}" text-anchor="end" font-size="12" '
            f'fill="#1b1f24">'
            f"{escape(shown)}</text>"
            f'<rect class="chart-bar" x="{left}" y="{y + 4}" width="{max(w, 1):.1f}" height="{BAR_ROW - 8}" '
            f'fill="{color}"><title>{escape(f"{label}: {fmt(value)}")}</title></rect>'
            f'<text x="{left + max(w, 1) + 6:.1f}" y="{y + BAR_ROW / 2 + 4:.1f}" font-size="11" '
            f'fill="#1b1f24">'
            f"{escape(fmt(value))}</text>"
        )
    out.append(
        f'<text class="chart-axis-label" x="{(left + right) / 2:.1f}" y="{height - 6}" text-anchor="middle" '
        f'font-size="12" fill="#1b1f24">{escape(x_label)}</text>'
        f'<text class="chart-axis-label" x="{left - 8}" y="{top - 6}" text-anchor="end" '
        f'font-size="11" fill="#6a737d">{escape(y_label)}</text>'
    )
    out.append("</svg>")
    table = _table(title, [y_label, x_label], [[label, fmt(value)] for label, value in rows])
    return _figure(title, "".join(out), table=table)
