"""Figures for the economics study (cxresearch theme; call :func:`cxresearch.reports.set_theme` first)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.data.nps import NPS_CLASSES
from cxresearch.protocol import DEFAULT_LEVEL, interval
from cxresearch.reports.display import NPS_COLORS, PALETTE, error_bars


def show(fig: Any) -> None:
    """Display a figure here in the notebook output, then close it."""
    import matplotlib.pyplot as plt

    try:
        from IPython.display import display

        display(fig)
    finally:
        plt.close(fig)


def plot_kaplan_meier(km: Any, title: str | None = None) -> Any:
    """Kaplan-Meier curves with interval bands and the at-risk table under the axis."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    km.plot_survival(ax=ax, title=title)
    return fig


def plot_hazard_ratios(table: pd.DataFrame, title: str = "Hazard ratios") -> Any:
    """Dot-and-interval plot of hazard ratios (a table with ``covariate, level, reference, hr, low, high``, as
    ``CoxResult.hazard_ratios`` or ``PiecewiseExponentialFit.hazard_ratios()``) on a log axis; 1 = no difference."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker as mticker

    def label(r: Any) -> str:
        if r.level is None or (isinstance(r.level, float) and np.isnan(r.level)):
            return f"{r.covariate} (+1)"
        return f"{r.covariate} = {r.level}" + (f" vs {r.reference}" if r.reference else "")

    labels = [label(r) for r in table.itertuples(index=False)]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(table) + 1.5))
    y = np.arange(len(table))[::-1]
    colors = [NPS_COLORS.get(str(lv), PALETTE[0]) for lv in table["level"]]
    ax.hlines(y, table["low"].to_numpy(dtype=float), table["high"].to_numpy(dtype=float), color=colors, lw=3)
    ax.scatter(table["hr"].to_numpy(dtype=float), y, color=colors, zorder=3)
    ax.axvline(1.0, color="#7f7f7f", ls="--", lw=1)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(mticker.FormatStrFormatter("%.3g"))
    ax.xaxis.set_minor_formatter(mticker.FormatStrFormatter("%.3g"))
    ax.tick_params(axis="x", which="minor", labelsize=8)
    ax.set_yticks(y, labels)
    ax.set_xlabel("Hazard ratio (log scale): above 1 = leaves sooner")
    ax.set_title(title)
    return fig


def plot_baseline_hazard(fit: Any, title: str | None = None, level: float = DEFAULT_LEVEL) -> Any:
    """Step plot of the piecewise baseline hazard with its ``level`` interval; the last period is open
    (the figure of :meth:`PiecewiseExponentialFit.plot_baseline_hazard`)."""
    return fit.plot_baseline_hazard(level=level, title=title).figure


def plot_model_vs_km(
    km: Any,
    model: Any,
    profile: pd.DataFrame,
    group_col: str = "nps_class",
    max_time: float | None = None,
    title: str = "Model survival against Kaplan-Meier",
    level: float = DEFAULT_LEVEL,
) -> Any:
    """Each group's model survival (customer-weighted over its cells, ``level`` band) over its Kaplan-Meier curve.

    The model curve continues past the longest observed tenure (dashed): that part is extrapolation.
    """
    import matplotlib.pyplot as plt

    t_obs = float(model.max_observed_tenure)
    end = max_time or 1.5 * t_obs
    grid = np.linspace(0, end, 200)
    cols = list(dict.fromkeys([*model.covariates, group_col]))
    cells = profile.astype({c: str for c in cols}).groupby(cols, as_index=False)["n"].sum()
    fig, ax = plt.subplots()
    for i, (group, rows) in enumerate(cells.groupby(group_col, sort=False)):
        color = NPS_COLORS.get(str(group), PALETTE[i % len(PALETTE)])
        cum = model.cumulative_hazard_draws(rows, np.broadcast_to(grid, (len(rows), len(grid))))
        surv = (np.exp(-cum) * rows["n"].to_numpy()[None, :, None]).sum(axis=1) / rows["n"].sum()
        mean = surv.mean(axis=0)
        inside = grid <= t_obs
        ax.plot(grid[inside], mean[inside], color=color, lw=2, label=f"{group} (model)")
        ax.plot(grid[~inside], mean[~inside], color=color, lw=2, ls="--")
        ax.fill_between(grid, *interval(surv, level, axis=0), color=color, alpha=0.15, lw=0)
        curve = km.curves[km.curves["group"] == str(group)]
        if len(curve):
            ax.step(curve["time"], curve["survival"], where="post", color=color, lw=1, alpha=0.8)
    ax.axvline(t_obs, color="#7f7f7f", ls=":", lw=1)
    ax.text(t_obs, 0.98, " longest observed tenure", fontsize=8, va="top", color="#7f7f7f")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Tenure (months)")
    ax.set_ylabel("Share still a customer")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    return fig


def plot_clv(summary: pd.DataFrame, group_col: str, title: str) -> Any:
    """CLV per group with its interval (horizontal bars)."""
    import matplotlib.pyplot as plt

    rows = summary.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.5))
    y = np.arange(len(rows))[::-1]
    colors = [NPS_COLORS.get(str(g), PALETTE[0]) for g in rows[group_col]]
    clv, lo, hi = (rows[c].to_numpy(dtype=float) for c in ("clv", "low", "high"))
    ax.barh(y, clv, color=colors, alpha=0.8)
    ax.errorbar(clv, y, xerr=error_bars(clv, lo, hi), fmt="none", ecolor="#333333", capsize=4)
    ax.set_yticks(y, rows[group_col].astype(str).tolist())
    ax.set_xlabel("Customer lifetime value (discounted margin over the horizon)")
    ax.set_title(title)
    return fig


def plot_npe_components(npe: Any, title: str = "What a customer is worth, by class") -> Any:
    """Stacked bars: retention, cross-sell and word of mouth per class; the dot is the total."""
    import matplotlib.pyplot as plt

    wide = npe.clv_wide().set_index("nps_class")
    classes = [c for c in getattr(npe, "classes", NPS_CLASSES) if c in wide.index]
    parts = [
        ("retention", "Retention (core margin)", PALETTE[0]),
        ("cross_sell", "Cross-sell / upsell", PALETTE[2]),
        ("word_of_mouth", "Word of mouth (assumption)", PALETTE[5]),
    ]
    fig, ax = plt.subplots()
    x = np.arange(len(classes))
    pos = np.zeros(len(classes))
    neg = np.zeros(len(classes))
    for key, label, color in parts:
        values = wide.loc[classes, key].to_numpy()
        bottom = np.where(values >= 0, pos, neg)
        ax.bar(x, values, bottom=bottom, color=color, label=label, width=0.6)
        pos += np.clip(values, 0, None)
        neg += np.clip(values, None, 0)
    ax.scatter(x, wide.loc[classes, "total"], color="black", zorder=3, label="Total")
    ax.axhline(0, color="#333333", lw=0.8)
    ax.set_xticks(x, classes)
    ax.set_ylabel("Value per customer")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def plot_value_at_risk(npe: Any, dimensions: Sequence[str] = ("segment", "market"), title: str | None = None) -> Any:
    """Value at risk (the worst class not the best) per segment and market, from the data alone (bars, with
    intervals) and with the word-of-mouth assumptions (open marker)."""
    import matplotlib.pyplot as plt

    table = npe.value_at_risk[npe.value_at_risk["dimension"].isin(list(dimensions))]
    present = [d for d in dimensions if (table["dimension"] == d).any()]
    fig, axes = plt.subplots(1, max(len(present), 1), figsize=(4.5 * max(len(present), 1), 3.5), squeeze=False)
    for ax, dim in zip(axes[0], present):
        rows = table[table["dimension"] == dim]
        y = np.arange(len(rows))[::-1]
        value, lo, hi = (rows[c].to_numpy(dtype=float) for c in ("data_only", "data_low", "data_high"))
        ax.barh(y, value, color=NPS_COLORS["detractor"], alpha=0.8, label="from the data")
        ax.errorbar(value, y, xerr=error_bars(value, lo, hi), fmt="none", ecolor="#333333", capsize=3)
        ax.plot(
            rows["value_at_risk"].to_numpy(dtype=float),
            y,
            "o",
            mfc="none",
            mec="#333333",
            label="with word of mouth (assumed)",
        )
        ax.axvline(0, color="#7f7f7f", lw=0.8)
        ax.set_yticks(y, rows["level"].astype(str).tolist())
        ax.set_title(f"By {dim}")
        ax.set_xlabel("Value at risk")
    axes[0][0].legend(fontsize=7, loc="lower right")
    classes = getattr(npe, "classes", ["detractor", "passive", "promoter"])
    fig.suptitle(title or f"Value at risk: '{classes[0]}' customers not '{classes[-1]}'")
    return fig
