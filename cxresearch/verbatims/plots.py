"""Figures of the verbatims study (matplotlib, the cxresearch theme). Each takes ``ax=`` and returns the Axes."""

from __future__ import annotations

from typing import Any

import numpy as np

from cxresearch.reports.display import PALETTE, error_bars


def _axes(ax: Any, height: float) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(8, height))[1]


def plot_theme_shares(result: Any, ax: Any = None) -> Any:
    """Share of comments per theme, the most frequent on top."""
    if result.themes is None or result.themes.table.empty:
        raise ValueError("no themes to plot")
    t = result.themes.table.sort_values("share")
    ax = _axes(ax, 0.45 * len(t) + 1.5)
    colors = [PALETTE[1] if k == "codebook" else PALETTE[0] for k in t["kind"]]
    ax.barh(np.arange(len(t)), 100 * t["share"], color=colors)
    ax.set_yticks(np.arange(len(t)), t["theme"])
    ax.set_xlabel(f"Share of the {result.themes.n_comments:,} comments (%)")
    ax.set_title("What customers write about")
    return ax


def plot_theme_effects(result: Any, ax: Any = None, column: str = "impact") -> Any:
    """Each modelled theme's impact (or ``column="effect"``) on P(bad outcome), with its interval, largest on top.

    Themes whose interval covers zero are grey ("no evidence"); the rest are coloured.
    """
    e = result.effects
    if e is None:
        raise ValueError("no theme effects to plot (too few comments)")
    t = e.table.dropna(subset=[column]).sort_values(column)
    ax = _axes(ax, 0.45 * len(t) + 1.5)
    y = np.arange(len(t))
    colors = ["#b0b0b0" if v == "no evidence" else ("#c0504d" if v == "raises" else PALETTE[2]) for v in t["verdict"]]
    ax.barh(y, t[column], color=colors)
    ax.errorbar(
        t[column],
        y,
        xerr=error_bars(t[column], t[f"{column}_low"], t[f"{column}_high"]),
        fmt="none",
        ecolor="#333333",
        capsize=3,
        lw=1,
    )
    ax.set_yticks(y, t["theme"])
    ax.axvline(0, color="#555555", lw=0.8)
    pct = int(round(100 * e.level))
    what = "the overall rate" if column == "impact" else "answers with the theme"
    ax.set_xlabel(f"Points of P({e.target}) on {what} ({pct}% interval)")
    ax.set_title("Which complaints matter most" if column == "impact" else f"Effect of each theme on P({e.target})")
    return ax
