"""Bar charts as geometry for the dashboard's inline SVG (console/templates/_charts.html.j2 draws them): no
JavaScript, no charting library. A chart is rows of (label, value, shown text); each bar's length is its value
over the chart's largest (a negative value, a loss, is drawn as long as its size and marked)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

WIDTH = 340  # the viewBox: the SVG is as wide as its card (width 100%), so these are not pixels
LABEL = 118  # room for the labels on the left
BAR = 126  # the longest bar; its value is written after it
ROW = 26


@dataclass(frozen=True)
class Bar:
    label: str
    shown: str
    y: int
    length: float
    negative: bool


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    height: int
    width: int = WIDTH
    label_width: int = LABEL


def bar_chart(rows: list[tuple[str, float | int | Decimal | None, str]]) -> Chart:
    top = max((abs(float(value or 0)) for _, value, _ in rows), default=0.0)
    bars = []
    for i, (label, value, shown) in enumerate(rows):
        size = abs(float(value or 0))
        # (a value above zero gets a sliver, so that "1" is not drawn as nothing)
        length = 0.0 if not top or not size else max(2.0, BAR * size / top)
        bars.append(Bar(label=label, shown=shown, y=i * ROW, length=round(length, 1),
                        negative=float(value or 0) < 0))
    return Chart(bars=bars, height=max(ROW, len(rows) * ROW))
