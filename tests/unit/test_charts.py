"""Report charts: static SVG, every text escaped, degenerate data handled."""

from __future__ import annotations

import math

from mercato.report.charts import LineChart, Series, _ticks


def test_svg_escapes_text_and_draws_every_series():
    chart = LineChart(
        "t<script>",
        "x & y",
        "<b>",
        [Series("a</svg>", [0, 1, 2], [1.0, 2.0, 3.0]), Series("b", [0, 1, 2], [3, 2, 1], True)],
        marker_x=1.0,
        marker_label="cal<end>",
    )
    svg = str(chart.svg())
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<script>" not in svg and "a&lt;/svg&gt;" in svg and "x &amp; y" in svg
    assert svg.count("<polyline") == 2 and 'stroke-dasharray="6 4"' in svg
    assert "cal&lt;end&gt;" in svg


def test_empty_and_flat_data():
    assert str(LineChart("t", "x", "y", [Series("a", [], [])]).svg()) == ""
    flat = str(LineChart("t", "x", "y", [Series("a", [1, 1], [0, 0])]).svg())
    assert "nan" not in flat.lower() and flat.count("<circle") == 2
    nan = str(LineChart("t", "x", "y", [Series("a", [0, 1, 2], [1, math.nan, 2])]).svg())
    assert nan.count("<circle") == 2
    none = str(LineChart("t", "x", "y", [Series("a", [0, 1, 2], [1, None, 2])]).svg())  # type: ignore[list-item]
    assert none.count("<circle") == 2


def test_ticks_are_round_and_cover_the_range():
    assert _ticks(0, 10) == [0, 2, 4, 6, 8, 10]
    t = _ticks(0.13, 0.87)
    assert t[0] >= 0.13 and t[-1] <= 0.87 and len(t) >= 3
