"""One feature's drift as a PNG: the reference's and the current sample's share of each bin, side by side
(matplotlib's Agg backend: no screen, no GUI toolkit; safe in the API's threads)."""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from scoring.drift import FeatureDrift


def drift_png(drift: FeatureDrift, title: str = "", rows: str = "leads scored") -> bytes:
    """Bars per bin (reference vs current, as shares), the PSI and its level in the title; `rows` says what the
    current sample is ("leads scored", "deals created")."""
    labels = [b.bin for b in drift.bins]
    # A Figure of its own (not pyplot): no global state, so concurrent requests cannot draw on each other's plot.
    figure = Figure(figsize=(max(6.0, 0.55 * len(labels) + 2), 4.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = range(len(labels))
    width = 0.4
    axes.bar([p - width / 2 for p in positions], [b.reference for b in drift.bins], width,
             label=f"training data (n={drift.n_reference:,})", color="#7a8fa6")
    axes.bar([p + width / 2 for p in positions], [b.current for b in drift.bins], width,
             label=f"{rows} in the window (n={drift.n_current:,})", color="#d9822b")
    axes.set_xticks(list(positions), labels, rotation=35 if len(labels) > 5 else 0, ha="right" if len(labels) > 5
                    else "center", fontsize=8)
    axes.set_ylabel(f"share of {rows.split()[0]}")
    axes.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    axes.set_title(f"{title or drift.feature}: PSI {drift.psi:.3f} ({drift.level})", fontsize=11)
    axes.legend(fontsize=8, frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
