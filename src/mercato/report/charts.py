"""Static SVG charts for the report: no script, so the report's strict CSP stays as it is.

The report is one offline file whose Content-Security-Policy forbids scripts; a chart is plain
inline SVG built here, every text escaped. Interactive charts belong to the dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

__all__ = ["LineChart", "Series"]

PALETTE = ("#3451b2", "#e0672b", "#2f9e6e", "#b23488", "#8a8f9c")
WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 16, 44


@dataclass
class Series:
    name: str
    x: Sequence[float]
    y: Sequence[float]
    dashed: bool = False


@dataclass
class LineChart:
    """Lines (with points) over a numeric x axis; x may be labelled with ``x_labels``."""

    title: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    x_labels: dict[float, str] | None = None
    marker_x: float | None = None  # a vertical line, e.g. the end of the calibration period
    marker_label: str = ""

    def svg(self) -> Markup:
        xs = [float(v) for s in self.series for v in s.x if _finite(v)]
        ys = [float(v) for s in self.series for v in s.y if _finite(v)]
        if not xs or not ys:
            return Markup("")
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(0.0, min(ys)), max(ys)
        if x1 == x0:
            x1 = x0 + 1
        if y1 == y0:
            y1 = y0 + 1
        pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

        def px(v: float) -> float:
            return LEFT + (v - x0) / (x1 - x0) * pw

        def py(v: float) -> float:
            return TOP + ph - (v - y0) / (y1 - y0) * ph

        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'role="img" aria-label="{escape(self.title)}" style="max-width:{WIDTH}px;width:100%">',
            f'<line x1="{LEFT}" y1="{TOP + ph}" x2="{LEFT + pw}" y2="{TOP + ph}" stroke="#999"/>',
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + ph}" stroke="#999"/>',
        ]
        for t in _ticks(y0, y1):
            parts.append(
                f'<line x1="{LEFT}" y1="{py(t):.1f}" x2="{LEFT + pw}" y2="{py(t):.1f}" '
                'stroke="#eee"/>'
                f'<text x="{LEFT - 6}" y="{py(t) + 4:.1f}" font-size="11" text-anchor="end">'
                f"{escape(_num(t))}</text>"
            )
        labels = self.x_labels or {t: _num(t) for t in _ticks(x0, x1)}
        for v, text in labels.items():
            parts.append(
                f'<text x="{px(v):.1f}" y="{TOP + ph + 16}" font-size="11" '
                f'text-anchor="middle">{escape(text)}</text>'
            )
        if self.marker_x is not None and x0 <= self.marker_x <= x1:
            m = px(self.marker_x)
            parts.append(
                f'<line x1="{m:.1f}" y1="{TOP}" x2="{m:.1f}" y2="{TOP + ph}" stroke="#999" '
                f'stroke-dasharray="4 3"/><text x="{m + 4:.1f}" y="{TOP + 12}" font-size="11" '
                f'fill="#5b6478">{escape(self.marker_label)}</text>'
            )
        for i, s in enumerate(self.series):
            color = PALETTE[i % len(PALETTE)]
            pts = [
                (px(float(a)), py(float(b)))
                for a, b in zip(s.x, s.y, strict=True)
                if _finite(a) and _finite(b)
            ]
            if not pts:
                continue
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            path = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'
            )
            if len(pts) <= 40:
                parts.extend(
                    f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"/>' for a, b in pts
                )
            ly = TOP + 14 + 18 * i
            parts.append(
                f'<line x1="{LEFT + pw + 12}" y1="{ly - 4}" x2="{LEFT + pw + 32}" y2="{ly - 4}" '
                f'stroke="{color}" stroke-width="2"{dash}/>'
                f'<text x="{LEFT + pw + 38}" y="{ly}" font-size="11">{escape(s.name)}</text>'
            )
        parts.append(
            f'<text x="{LEFT + pw / 2:.0f}" y="{HEIGHT - 6}" font-size="12" '
            f'text-anchor="middle">{escape(self.x_label)}</text>'
            f'<text x="14" y="{TOP + ph / 2:.0f}" font-size="12" text-anchor="middle" '
            f'transform="rotate(-90 14 {TOP + ph / 2:.0f})">{escape(self.y_label)}</text>'
        )
        parts.append("</svg>")
        return Markup("".join(parts))


def _finite(v: object) -> bool:
    try:
        return math.isfinite(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    span = hi - lo
    raw = span / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    out = []
    v = first
    while v <= hi + 1e-9 * step:
        out.append(round(v, 10))
        v += step
    return out


def _num(v: float) -> str:
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:g}"
