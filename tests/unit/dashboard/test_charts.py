"""The inline SVG charts: scales, empty and single-point series, escaping, accessible text."""

from __future__ import annotations

import re

import pytest

from apps.dashboard.charts import (
    HEIGHT,
    MARGIN_BOTTOM,
    MARGIN_TOP,
    Series,
    bar_chart,
    format_number,
    line_chart,
    nice_ticks,
    stacked_column_chart,
)

BOTTOM = HEIGHT - MARGIN_BOTTOM
PLOT_H = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM


def line(labels, *series, **kwargs) -> str:
    return str(
        line_chart(
            title="Volume",
            labels=labels,
            series=list(series),
            x_label="Hour",
            y_label="Spans",
            empty="Nothing yet.",
            **kwargs,
        )
    )


@pytest.mark.parametrize(
    ("maximum", "ticks"),
    [
        (10, [0, 2.5, 5, 7.5, 10]),
        (7, [0, 2, 4, 6, 8]),
        (1, [0, 0.25, 0.5, 0.75, 1]),
        (0.3, [0, 0.1, 0.2, 0.3]),
        (1234, [0, 500, 1000, 1500]),
        (0, [0, 1]),
    ],
)
def test_nice_ticks_reach_a_round_number_at_or_above_the_maximum(maximum, ticks):
    assert nice_ticks(maximum) == ticks


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (950, "950"),
        (1500, "1.5k"),
        (1234, "1,234"),
        (25_000, "25k"),
        (2_300_000, "2.3M"),
        (0.25, "0.25"),
    ],
)
def test_format_number(value, text):
    assert format_number(value) == text


def test_points_are_scaled_to_the_top_tick():
    svg = line(["a", "b", "c"], Series("Spans", [0, 5, 10]))
    ys = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)]
    assert ys == [BOTTOM, BOTTOM - PLOT_H / 2, MARGIN_TOP]
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', svg)]
    assert xs[0] < xs[1] < xs[2] and xs[1] - xs[0] == pytest.approx(xs[2] - xs[1], abs=0.1)


def test_empty_series_render_the_empty_state():
    for svg in (
        line([], Series("Spans", [])),
        line(["a", "b"], Series("Spans", [0, 0]), Series("Errors", [None, None])),
    ):
        assert "<svg" not in svg
        assert '<p class="empty chart-empty">Nothing yet.</p>' in svg and "Volume" in svg
    assert "<svg" not in str(
        bar_chart(title="Cost", rows=[("gpt-4o", 0)], x_label="USD", y_label="Model", empty="No cost.")
    )
    assert "<svg" not in str(
        stacked_column_chart(
            title="D",
            labels=["a"],
            series=[Series("x", [0])],
            x_label="Hour",
            y_label="Deliveries",
            empty="None.",
        )
    )


def test_a_single_point_is_a_dot_in_the_middle():
    svg = line(["09:00"], Series("Spans", [4]))
    assert len(re.findall("<circle", svg)) == 1
    assert re.search(r'<path class="chart-line" d="M\d+\.\d \d+\.\d"', svg)
    assert "09:00" in svg


def test_missing_values_break_the_line():
    svg = line(["a", "b", "c", "d"], Series("p95", [1, None, 3, 4]))
    path = re.search(r'<path class="chart-line" d="([^"]*)"', svg).group(1)
    assert path.count("M") == 2 and path.count("L") == 1
    assert "<td>–</td>" in svg  # the hidden table says the value is missing


def test_labels_and_names_are_escaped():
    svg = line(['<script>alert("x")</script>'], Series("A & <B>", [1]))
    assert "<script>" not in svg
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in svg and "A &amp; &lt;B&gt;" in svg
    bars = str(
        bar_chart(
            title="Cost <by> model",
            rows=[('<img src=x onerror="1">', 2.0)],
            x_label="USD",
            y_label="Model",
            empty="-",
        )
    )
    assert "<img" not in bars and "&lt;img src=x onerror=&quot;1&quot;&gt;" in bars
    assert "Cost &lt;by&gt; model" in bars


def test_accessible_text_summarises_the_data():
    svg = line(["08:00", "09:00"], Series("Spans", [3, 7]), Series("Errors", [0, 1]), totals=True)
    label = re.search(r'role="img" aria-label="([^"]*)"', svg).group(1)
    assert label == (
        "Volume, 2 points from 08:00 to 09:00. Spans: total 10, highest 7 at 09:00. "
        "Errors: total 1, highest 1 at 09:00."
    )
    assert f"<title>{label}</title>" in svg
    table = re.search(r'<table class="chart-data">.*</table>', svg).group(0)
    assert "<caption>Volume</caption>" in table
    assert '<th scope="col">Hour</th><th scope="col">Spans</th><th scope="col">Errors</th>' in table
    assert '<tr><th scope="row">09:00</th><td>7</td><td>1</td></tr>' in table
    assert ">Hour</text>" in svg and ">Spans</text>" in svg  # both axis titles
    assert '<figcaption class="chart-title">Volume</figcaption>' in svg


def test_stacked_columns_stack_the_series():
    svg = str(
        stacked_column_chart(
            title="Deliveries",
            labels=["a"],
            series=[Series("ok", [6], "ok"), Series("dead", [2], "error")],
            x_label="Hour",
            y_label="Deliveries",
            empty="-",
        )
    )
    rects = re.findall(
        r'<rect class="chart-bar" x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"', svg
    )
    (ok_y, ok_h), (dead_y, dead_h) = [(float(y), float(h)) for y, h in rects]
    assert ok_y + ok_h == pytest.approx(BOTTOM, abs=0.2)  # the first series sits on the axis
    assert dead_y + dead_h == pytest.approx(ok_y, abs=0.2)  # the next one on top of it
    assert ok_h == pytest.approx(3 * dead_h, abs=0.2)
    assert "ok: total 6, highest 6 at a." in svg


def test_bars_are_sorted_largest_first_and_long_labels_shortened():
    long = "a-very-long-model-name-that-goes-on-and-on"
    svg = str(
        bar_chart(
            title="Tokens", rows=[("small", 10), (long, 40)], x_label="Tokens", y_label="Model", empty="-"
        )
    )
    widths = [
        float(w) for w in re.findall(r'<rect class="chart-bar" x="[\d.]+" y="[\d.]+" width="([\d.]+)"', svg)
    ]
    assert widths[0] == pytest.approx(4 * widths[1], abs=0.5)
    assert "a-very-long-model-name-…</text>" in svg and f"<title>{long}: 40</title>" in svg
    assert svg.index(long) < svg.index("small")


def test_series_and_labels_must_line_up():
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        line(["a", "b", "c"], Series("Spans", [1, 2]))
    with pytest.raises(ValueError, match="unknown tone"):
        Series("Spans", [1], "url(javascript:1)")
