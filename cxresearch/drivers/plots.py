"""Figures of a driver study (matplotlib / seaborn, the cxresearch theme). Each returns the Figure."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cxresearch.reports.display import NPS_COLORS, PALETTE, error_bars

_KANO_COLORS = {"must-be": "#c0504d", "performance": "#1f4e79", "delighter": "#2c7c5b", "indifferent": "#7f7f7f"}


def _fig(width: float = 8.0, height: float = 4.5):
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def impact_bars(
    impacts: pd.DataFrame,
    column: str,
    top3: list[str],
    ax: Any = None,
    title: str | None = None,
    unit: str = "NPS points",
    improvement: str = "10% of the scale range",
    higher_is_better: bool = True,
) -> Any:
    """Bars of each touchpoint's impact (``column``, with ``<column>_low`` / ``_high``) on ``ax`` (a new
    figure when None), the largest benefit on top, the top three highlighted; returns the Axes."""
    t = impacts.sort_values(column, ascending=higher_is_better)
    if ax is None:
        _, ax = _fig(8, 0.45 * len(t) + 1.5)
    y = np.arange(len(t))
    colors = [PALETTE[0] if tp in top3 else "#9fb6cd" for tp in t.touchpoint]
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
    ax.set_yticks(y, t.label)
    ax.axvline(0, color="#555555", lw=0.8)
    ax.set_xlabel(f"Change in {unit} if users' ratings rose by {improvement.split(' (')[0]} (90% interval)")
    ax.set_title(title or "Impact of each touchpoint")
    return ax


def plot_impacts(summary: Any, title: str | None = None):
    """Impact of each touchpoint in the outcome's unit, with 90% intervals, the largest benefit on top."""
    words = summary.words
    return impact_bars(
        summary.impacts,
        summary.impact_column,
        summary.top3,
        title=title,
        unit=words.unit,
        improvement=summary.improvement,
        higher_is_better=words.higher_is_better,
    ).figure


def plot_rank_probabilities(summary: Any, title: str | None = None):
    """Heat map of P(rank = r) per touchpoint (rank 1 = strongest driver)."""
    import seaborn as sns

    r = summary.ranking.set_index("touchpoint")
    labels = summary.impacts.set_index("touchpoint").loc[r.index, "label"]
    probs = r[[c for c in r.columns if c.startswith("p_rank_")]]
    probs.columns = [c.replace("p_rank_", "") for c in probs.columns]
    probs.index = labels
    fig, ax = _fig(8, 0.4 * len(probs) + 1.5)
    sns.heatmap(probs, annot=True, fmt=".0%", cmap="Blues", vmin=0, vmax=1, cbar=False, ax=ax, annot_kws={"size": 8})
    ax.set_xlabel("Rank (1 = strongest driver)")
    ax.set_ylabel("")
    ax.set_title(title or "How sure is the ranking? Probability of each rank")
    return fig


def plot_importance_performance(summary: Any, title: str | None = None):
    """Importance (impact) vs performance (mean rating), each touchpoint labelled with P(fix first)."""
    ipa = summary.importance_performance
    fig, ax = _fig(8, 6)
    ax.errorbar(
        ipa.performance,
        ipa.importance,
        yerr=error_bars(ipa.importance, ipa.importance_low, ipa.importance_high),
        fmt="none",
        ecolor="#bbbbbb",
        lw=1,
    )
    sc = ax.scatter(
        ipa.performance,
        ipa.importance,
        c=ipa.p_fix_first,
        cmap="Reds",
        vmin=0,
        vmax=1,
        s=80,
        edgecolor="#333333",
        zorder=3,
    )
    for _, r in ipa.iterrows():
        ax.annotate(
            f"{r.label}\nP(fix first) {100 * r.p_fix_first:.0f}%",
            (r.performance, r.importance),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
        )
    ax.axvline(np.median(ipa.performance), color="#777777", ls="--", lw=0.8)
    ax.axhline(np.median(ipa.importance), color="#777777", ls="--", lw=0.8)
    ax.text(
        0.01,
        0.99,
        "FIX FIRST\n(important, poorly rated)",
        transform=ax.transAxes,
        va="top",
        fontsize=9,
        color="#b71c1c",
        weight="bold",
    )
    ax.text(0.99, 0.99, "MAINTAIN", transform=ax.transAxes, va="top", ha="right", fontsize=9, color="#1b5e20")
    ax.set_xlabel("Performance: users' mean rating (0 = scale bottom, 1 = top)")
    words = summary.words
    ax.set_ylabel(f"Importance: {words.unit_short} gained ({words.measure} {words.good}) from a better rating")
    ax.set_title(title or "Importance vs performance")
    fig.colorbar(sc, ax=ax, label="P(fix first)")
    return fig


def plot_kano(summary: Any, title: str | None = None):
    """Penalty (hurt of a worst vs neutral experience) vs reward (lift of a best vs neutral), by Kano class."""
    k = summary.kano.merge(summary.impacts[["touchpoint", "label"]], on="touchpoint")
    fig, ax = _fig(7, 6)
    for _, r in k.iterrows():
        color = _KANO_COLORS[r.kano]
        ax.errorbar(
            r.penalty,
            r.reward,
            xerr=error_bars(r.penalty, r.penalty_low, r.penalty_high),
            yerr=error_bars(r.reward, r.reward_low, r.reward_high),
            fmt="o",
            color=color,
            ecolor=color,
            alpha=0.9,
            capsize=2,
        )
        ax.annotate(
            f"{r.label} ({r.kano}, {100 * r.p_kano:.0f}%)",
            (r.penalty, r.reward),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=8,
        )
    lim = max(k.penalty_high.max(), k.reward_high.max(), 0.5) * 1.1
    xs = np.linspace(0, lim, 50)
    ax.plot(xs, xs, color="#999999", lw=0.8, ls=":")
    ax.plot(xs, xs / 2, color="#cccccc", lw=0.8, ls="--")
    ax.plot(xs / 2, xs, color="#cccccc", lw=0.8, ls="--")
    ax.set_xlim(0, lim)
    ax.set_ylim(0, lim)
    ax.set_xlabel(f"Penalty: how much a bad experience hurts (logit of {summary.words.label})")
    ax.set_ylabel("Reward: how much a great experience helps")
    ax.set_title(title or "Asymmetric effects and Kano classes")
    handles = [ax.scatter([], [], color=c, label=n) for n, c in _KANO_COLORS.items()]
    ax.legend(handles=handles, loc="lower right", fontsize=8)
    return fig


def plot_root_causes(summary: Any, title: str | None = None, top: int = 10):
    """Excess detractor risk of a bad experience per touchpoint, and the share of detractors it explains."""
    rc = summary.root_causes.head(top).iloc[::-1]
    fig, ax = _fig(8, 0.45 * len(rc) + 1.5)
    y = np.arange(len(rc))
    ax.barh(y, 100 * rc.share_of_detractors_explained, color=NPS_COLORS["detractor"])
    ax.errorbar(
        100 * rc.share_of_detractors_explained,
        y,
        xerr=100 * error_bars(rc.share_of_detractors_explained, rc.explained_low, rc.explained_high),
        fmt="none",
        ecolor="#333333",
        capsize=3,
        lw=1,
    )
    ax.set_yticks(y, [f"{r.label} (+{r.excess_detractor_risk_pts:.0f} pts risk)" for r in rc.itertuples()])
    ax.set_xlabel("% of detractors explained by bad experiences of this touchpoint (90% interval)")
    ax.set_title(title or "Root causes of detractors")
    return fig


def plot_group_differences(summary: Any, dimension: str, title: str | None = None):
    """Each level's slope deviation from the average, per touchpoint, with 90% intervals."""
    g = summary.group_differences
    g = g[g.dimension == dimension]
    if g.empty:
        raise ValueError(
            f"no group differences for {dimension!r} (group dimensions with 2+ levels: "
            f"{sorted(summary.group_differences.dimension.unique())})"
        )
    levels = list(dict.fromkeys(g.level))
    tps = list(dict.fromkeys(g.touchpoint))
    fig, ax = _fig(9, 0.4 * len(tps) + 1.8)
    width = 0.8 / len(levels)
    for i, lv in enumerate(levels):
        s = g[g.level == lv].set_index("touchpoint").loc[tps]
        y = np.arange(len(tps)) + (i - (len(levels) - 1) / 2) * width
        ax.errorbar(
            s["mean"],
            y,
            xerr=error_bars(s["mean"], s["low"], s["high"]),
            fmt="o",
            ms=4,
            color=PALETTE[i % len(PALETTE)],
            label=lv,
            capsize=2,
        )
    ax.axvline(0, color="#555555", lw=0.8)
    ax.set_yticks(np.arange(len(tps)), tps)
    ax.set_xlabel("Slope vs the average (logit per 10% of the scale range, 90% interval)")
    ax.set_title(title or f"Do drivers differ by {dimension}?")
    ax.legend(fontsize=8)
    return fig


def plot_ppc(summary: Any, title: str | None = None):
    """Posterior predictive check: observed vs predicted share of each outcome answer."""
    ppc = summary.ppc
    fig, ax = _fig(8, 4)
    x = np.arange(len(ppc))
    ax.bar(x, ppc.observed, color="#bfbfbf", label="observed")
    ax.errorbar(
        x,
        ppc.predicted,
        yerr=error_bars(ppc.predicted, ppc.low, ppc.high),
        fmt="o",
        color=PALETTE[0],
        capsize=3,
        label="model (90% predictive interval)",
    )
    ax.set_xticks(x, [f"{c:g}" for c in ppc.category])
    ax.set_xlabel("Answer")
    ax.set_ylabel("Share of answers")
    ax.set_title(title or "Posterior predictive check: does the model reproduce the answers?")
    ax.legend(fontsize=8)
    return fig


def plot_paths(summary: Any, title: str | None = None):
    """Construct -> construct paths (standardised) with 90% intervals."""
    p = summary.paths[summary.paths.kind == "construct"].copy()
    if p.empty:
        raise ValueError("the model has no construct -> construct paths")
    p["path"] = p.source + " -> " + p.target
    p = p.iloc[::-1]
    fig, ax = _fig(7, 0.45 * len(p) + 1.5)
    y = np.arange(len(p))
    ax.errorbar(p.std_mean, y, xerr=error_bars(p.std_mean, p.std_low, p.std_high), fmt="o", color=PALETTE[0], capsize=3)
    ax.set_yticks(y, p.path)
    ax.axvline(0, color="#555555", lw=0.8)
    ax.set_xlabel("Standardised path coefficient (90% interval)")
    ax.set_title(title or "Structural paths")
    return fig


def comparison_table_plot(table: pd.DataFrame, title: str = "Ours vs SmartPLS"):
    """Scatter of our standardised paths vs reference values (the ECSI check)."""
    fig, ax = _fig(5.5, 5)
    for col, marker in (("composite", "o"), ("latent", "s")):
        if col in table:
            ax.scatter(table["smartpls"], table[col], marker=marker, label=f"ours ({col})")
    lim = [
        min(-0.1, table.filter(regex="smartpls|composite|latent").min().min()) - 0.05,
        max(table.filter(regex="smartpls|composite|latent").max().max(), 0.7) + 0.05,
    ]
    ax.plot(lim, lim, color="#999999", lw=0.8)
    ax.fill_between(lim, [v - 0.1 for v in lim], [v + 0.1 for v in lim], color="#e8f1fb", zorder=0, label="within 0.10")
    ax.set_xlabel("SmartPLS (path weighting scheme)")
    ax.set_ylabel("Ours (posterior mean)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def plot_calibration(evaluation: Any, rows: Any = None, title: str | None = None):
    """Predicted vs observed share of the main event in deciles of predicted probability (90% intervals of the
    observed share), for our model; the diagonal is perfect calibration."""
    if evaluation.events.likelihood == "gaussian":
        return None  # a continuous outcome has no probability to calibrate (its table gives RMSE and R^2)
    event = evaluation.events.main
    table = evaluation.calibration(evaluation.models[0], event, rows)  # our model comes first
    fig, ax = _fig(5.5, 5.0)
    lims = [0.0, float(max(table["high"].max(), table["predicted"].max(), 0.05)) * 1.05]
    ax.plot(lims, lims, color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    ax.errorbar(
        table["predicted"],
        table["observed"],
        yerr=[table["observed"] - table["low"], table["high"] - table["observed"]],
        fmt="o",
        capsize=3,
        label="observed share (90% interval)",
    )
    ax.set_xlim(lims)
    ax.set_ylim(lims)
    ax.set_xlabel(f"predicted P({event})")
    ax.set_ylabel(f"observed share {event}")
    ax.set_title(title or f"Held-out calibration: P({event}) in deciles")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig
