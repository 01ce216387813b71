"""Figures of the measurement study (seaborn / matplotlib, the cxresearch theme).

Every function takes a frame produced by the measurement functions and returns a matplotlib Figure (the
two NPS plots also draw into a given ``ax``, for :meth:`SharePosterior.plot_nps`). Intervals are drawn at
the level the frame was made with (``level``, default :data:`cxresearch.protocol.DEFAULT_LEVEL`).
Labels go on axes (never inside crowded plot areas), figure heights grow with the number of rows, and
long labels are wrapped so that no text overlaps. Call :func:`cxresearch.reports.set_theme` first.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cxresearch.protocol import DEFAULT_LEVEL
from cxresearch.reports.display import NPS_COLORS, PALETTE, error_bars

if TYPE_CHECKING:
    from matplotlib.figure import Figure

VERDICT_COLORS = {"strength": "#2c7c5b", "weakness": "#c0504d", "no clear difference": "#7f7f7f"}
OURS_COLOR, THEIRS_COLOR = PALETTE[0], "#9e9e9e"


def _wrap(text: Any, width: int = 30) -> str:
    return "\n".join(textwrap.wrap(str(text), width)) or str(text)


def _height(rows: int, per_row: float = 0.42, base: float = 1.6, minimum: float = 2.6) -> float:
    return max(minimum, base + per_row * rows)


def _new_figure(width: float, height: float, ncols: int = 1, nrows: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", **kwargs)


def _legend_below(
    fig: Any,
    handles: Sequence[Any] | None = None,
    labels: Sequence[str] | None = None,
    ncol: int = 4,
    source: Any = None,
) -> None:
    """One legend under the whole figure, outside every axes (constrained layout makes room for it)."""
    if handles is None:
        handles, labels = (source or fig.axes[0]).get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(ncol, len(handles)), frameon=False, fontsize=9)


def _pct_axis(ax: Any, axis: str = "x") -> None:
    from matplotlib.ticker import PercentFormatter

    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(PercentFormatter(1.0, decimals=0))


def plot_nps_intervals(
    summary: pd.DataFrame,
    title: str | None = None,
    overall: float | None = None,
    label_col: str = "label",
    level: float | None = None,
    ax: Any = None,
) -> Any:
    """Forest plot: posterior NPS (dot) with its interval (line) per group; hollow dot = observed NPS.

    ``summary``: :meth:`SharePosterior.table`; ``level`` defaults to its ``attrs["level"]``. Draws into
    ``ax`` when given (legend inside it), else into a new figure (legend below). Returns the Figure."""
    frame = summary.reset_index(drop=True)
    level = float(level if level is not None else summary.attrs.get("level", DEFAULT_LEVEL))
    title = title or f"NPS with {level:.0%} intervals"
    labels = [_wrap(f"{lab} (n={n:,})") for lab, n in zip(frame[label_col], frame["n"])]
    own_figure = ax is None
    fig, ax = _new_figure(8, _height(len(frame))) if own_figure else (ax.figure, ax)
    y = np.arange(len(frame))[::-1]
    ax.hlines(y, frame["nps_low"], frame["nps_high"], color=PALETTE[0], linewidth=2.5, label=f"{level:.0%} interval")
    ax.plot(frame["nps_mean"], y, "o", color=PALETTE[0], markersize=7, label="Estimate")
    if "nps_observed" in frame:
        ax.plot(frame["nps_observed"], y, "o", mfc="none", color="#333333", markersize=7, label="Observed in sample")
    if overall is not None:
        ax.axvline(overall, color="#999999", linestyle="--", linewidth=1, label=f"Overall ({overall:+.1f})")
    ax.set_yticks(y, labels)
    ax.set_xlabel("NPS (points, -100 to +100)")
    ax.set_title(title, loc="left")
    if own_figure:
        _legend_below(fig, source=ax, ncol=4)
    else:
        ax.legend(fontsize=8, frameon=False)
    return fig


def plot_nps_shares(
    summary: pd.DataFrame, title: str = "Detractors, passives and promoters", label_col: str = "label", ax: Any = None
) -> Any:
    """100 % stacked bars of the three shares per group, with the NPS in the row label (into ``ax`` when
    given). Returns the Figure."""
    frame = summary.reset_index(drop=True)
    labels = [_wrap(f"{lab}\nNPS {nps:+.1f}", 34) for lab, nps in zip(frame[label_col], frame["nps_mean"])]
    own_figure = ax is None
    fig, ax = _new_figure(8, _height(len(frame), per_row=0.55)) if own_figure else (ax.figure, ax)
    y = np.arange(len(frame))[::-1]
    left = np.zeros(len(frame))
    for name in ("detractor", "passive", "promoter"):
        width = frame[f"{name}_mean"].to_numpy()
        ax.barh(y, width, left=left, color=NPS_COLORS[name], label=f"{name.capitalize()}s", height=0.7)
        for yi, start, w in zip(y, left, width):
            if w >= 0.08:  # only label segments wide enough to hold the text
                ax.text(
                    start + w / 2,
                    yi,
                    f"{100 * w:.0f}%",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if name != "passive" else "#222222",
                )
        left += width
    ax.set_yticks(y, labels)
    ax.set_xlim(0, 1)
    _pct_axis(ax)
    ax.set_xlabel("Share of answers (posterior mean)")
    ax.set_title(title, loc="left")
    ax.grid(axis="y", visible=False)
    if own_figure:
        _legend_below(fig, source=ax, ncol=3)
    else:
        ax.legend(fontsize=8, frameon=False)
    return fig


def plot_kpi_trend(
    tracking: pd.DataFrame,
    target: float | None = None,
    title: str = "NPS by survey wave",
    unit: str = "points",
    level: float = DEFAULT_LEVEL,
) -> Any:
    """NPS per wave with its intervals (at ``level``), the target line and P(meeting the target) under each wave."""
    frame = tracking.reset_index(drop=True)
    x = np.arange(len(frame))
    fig, ax = _new_figure(max(5.5, 1.6 * len(frame) + 2.5), 4.2)
    ax.errorbar(
        x,
        frame["mean"],
        yerr=error_bars(frame["mean"], frame["low"], frame["high"]),
        fmt="o-",
        color=PALETTE[0],
        capsize=6,
        linewidth=2,
        markersize=8,
        label=f"NPS ({level:.0%} interval)",
    )
    if target is not None:
        ax.axhline(target, color=PALETTE[1], linestyle="--", linewidth=1.5, label=f"Target ({target:g})")
    ticks = []
    for row in frame.itertuples(index=False):
        text = f"Wave {row.wave}\n(n={row.n:,})"
        if target is not None and "p_meets_target" in frame and not pd.isna(row.p_meets_target):
            text += f"\nChance target met: {100 * row.p_meets_target:.0f}%"
        ticks.append(text)
    ax.set_xticks(x, ticks)
    ax.set_xlim(-0.6, len(frame) - 0.4)
    values = [*frame["low"], *frame["high"], *([target] if target is not None else [])]
    pad = 0.12 * max(max(values) - min(values), 1.0)
    ax.set_ylim(min(values) - pad, max(values) + pad)  # the target line stays inside the frame
    ax.set_ylabel(f"NPS ({unit})")
    ax.set_title(title, loc="left")
    _legend_below(fig, source=ax, ncol=2)
    return fig


def plot_scorecard(scorecard: pd.DataFrame, title: str = "Touchpoint scorecard") -> Any:
    """Two panels sharing the touchpoint axis: mean rating, and top-box / bottom-box shares (with intervals).

    Touchpoints on different scales (1-5 beside 1-100) share no rating axis: the mean is then drawn as its
    position on its own scale (0% = the lowest answer, 100% = the highest), and each label names its scale."""
    frame = scorecard.reset_index(drop=True)
    mixed = frame["scale"].nunique() > 1
    labels = [
        _wrap(f"{lab} ({scale}, n={n:,})" if mixed else f"{lab} (n={n:,})", 32)
        for lab, scale, n in zip(frame["label"], frame["scale"], frame["n_customers"])
    ]
    y = np.arange(len(frame))[::-1]
    fig, (ax1, ax2) = _new_figure(
        11, _height(len(frame), per_row=0.5), ncols=2, sharey=True, gridspec_kw={"width_ratios": [1, 1.2]}
    )
    mean, low, high = (frame[c].to_numpy(dtype=float) for c in ("mean", "mean_low", "mean_high"))
    if mixed:
        lo = frame["scale_min"].to_numpy(dtype=float)
        width = frame["scale_max"].to_numpy(dtype=float) - lo
        mean, low, high = ((v - lo) / width for v in (mean, low, high))
    ax1.hlines(y, low, high, color=PALETTE[0], linewidth=2.5)
    ax1.plot(mean, y, "o", color=PALETTE[0], markersize=7)
    ax1.set_yticks(y, labels)
    if mixed:
        _pct_axis(ax1)
        ax1.set_xlabel("Mean rating: position on its own scale (0% lowest, 100% highest answer)")
    else:
        ax1.set_xlabel(f"Mean rating (scale {frame['scale'].iloc[0]})")
    ax1.set_title("Mean rating", loc="left")
    top_def = frame["top_box_definition"].iloc[0] if frame["top_box_definition"].nunique() == 1 else None
    bottom_def = frame["bottom_box_definition"].iloc[0] if frame["bottom_box_definition"].nunique() == 1 else None
    for metric, color, offset, name in (
        ("top_box", NPS_COLORS["promoter"], 0.15, f"Top box ({top_def})" if top_def else "Top box (highest answers)"),
        (
            "bottom_box",
            NPS_COLORS["detractor"],
            -0.15,
            f"Bottom box ({bottom_def})" if bottom_def else "Bottom box (lowest answers)",
        ),
    ):
        ax2.hlines(y + offset, frame[f"{metric}_low"], frame[f"{metric}_high"], color=color, linewidth=2.5)
        ax2.plot(frame[metric], y + offset, "o", color=color, markersize=6, label=name)
    _pct_axis(ax2)
    ax2.set_xlabel("Share of users")
    ax2.set_title("Top box and bottom box", loc="left")
    _legend_below(fig, source=ax2, ncol=2)
    fig.suptitle(title, x=0.01, ha="left", fontweight="bold")
    return fig


def plot_journey_map(
    table: pd.DataFrame,
    title: str = "Journey map: top-box share by stage and touchpoint",
    percent: bool = True,
    center: float | None = None,
) -> Any:
    """Heatmap: rows = journey stage: touchpoint (in journey order), columns = groups; cells annotated."""
    import seaborn as sns

    fig, ax = _new_figure(max(6.0, 2.2 + 1.3 * table.shape[1]), _height(table.shape[0], per_row=0.45))
    annot = table.map(lambda v: "" if pd.isna(v) else (f"{100 * v:.0f}%" if percent else f"{v:.2f}"))
    sns.heatmap(
        table,
        annot=annot,
        fmt="",
        cmap="RdYlGn",
        center=center,
        linewidths=0.5,
        linecolor="white",
        cbar_kws={"label": "Top-box share" if percent else "Mean rating", "shrink": 0.7},
        ax=ax,
    )
    if percent:
        cbar = ax.collections[0].colorbar
        _pct_axis(cbar.ax, axis="y")
    ax.set_yticks(np.arange(table.shape[0]) + 0.5, [_wrap(r, 40) for r in table.index], rotation=0)
    ax.set_xticks(np.arange(table.shape[1]) + 0.5, [_wrap(c, 14) for c in table.columns], rotation=0)
    ax.set_xlabel(str(table.columns.name or ""))
    ax.set_ylabel("")
    ax.set_title(title, loc="left")
    return fig


def plot_benchmark(position: pd.DataFrame, title: str = "Our position versus each competitor") -> Any:
    """Differences ours - theirs (with intervals), coloured by verdict; NPS and attributes in separate panels."""
    from matplotlib.lines import Line2D

    frame = position.reset_index(drop=True)
    panels = [
        ("NPS difference (points)", frame[frame["metric"] == "nps"]),
        ("Attribute difference (rating points)", frame[frame["metric"] != "nps"]),
    ]
    panels = [(t, p) for t, p in panels if len(p)]
    heights = [max(len(p), 2) for _, p in panels]
    fig, axes = _new_figure(
        9,
        _height(sum(heights), per_row=0.36, base=2.0),
        nrows=len(panels),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for ax, (xlabel, part) in zip(axes[:, 0], panels):
        part = part.reset_index(drop=True)
        y = np.arange(len(part))[::-1]
        colors = [VERDICT_COLORS.get(v, "#7f7f7f") for v in part["verdict"]]
        ax.hlines(y, part["diff_low"], part["diff_high"], colors=colors, linewidth=2.5)
        ax.scatter(part["diff_mean"], y, c=colors, s=45, zorder=3)
        ax.axvline(0, color="#333333", linewidth=1)
        labels = [f"{m} vs {c}" for m, c in zip(part["metric_label"], part["competitor"])]
        ax.set_yticks(y, labels)
        ax.set_xlabel(xlabel + ": positive = we are ahead")
    axes[0, 0].set_title(title, loc="left")
    handles = [
        Line2D([0], [0], color=c, marker="o", linewidth=2.5, label=v.capitalize()) for v, c in VERDICT_COLORS.items()
    ]
    _legend_below(fig, handles, [str(h.get_label()) for h in handles], ncol=3)
    return fig


def plot_brand_positions(summary: pd.DataFrame, title: str = "Brands on each benchmark metric") -> Any:
    """Small multiples: every brand's estimate and interval per metric; our brand highlighted."""

    metrics = list(dict.fromkeys(summary["metric"]))
    ncols = min(3, len(metrics))
    nrows = int(np.ceil(len(metrics) / ncols))
    brands = sorted(summary["brand"].unique())
    fig, axes = _new_figure(
        4.0 * ncols, _height(len(brands), per_row=0.35) * nrows, ncols=ncols, nrows=nrows, squeeze=False, sharey=True
    )
    for i, metric in enumerate(metrics):
        ax = axes[i // ncols, i % ncols]
        part = summary[summary["metric"] == metric].set_index("brand").reindex(brands)
        y = np.arange(len(brands))[::-1]
        colors = [OURS_COLOR if own else THEIRS_COLOR for own in part["is_own"].fillna(False)]
        ax.hlines(y, part["low"], part["high"], colors=colors, linewidth=3)
        ax.scatter(part["mean"], y, c=colors, s=40, zorder=3)
        ax.set_yticks(y, brands)
        ax.set_title(str(part["metric_label"].dropna().iloc[0]), loc="left", fontsize=11)
        ax.set_xlabel("NPS (points)" if metric == "nps" else "Mean rating")
    for j in range(len(metrics), nrows * ncols):
        axes[j // ncols, j % ncols].set_visible(False)
    fig.suptitle(title + " (blue = our brand)", x=0.01, ha="left", fontweight="bold")
    return fig


def plot_league(league: Any, max_units: int | None = 60, title: str | None = None) -> Any:
    """League table plot: shrunk estimate with interval (dot + line), raw score (hollow), and the rank interval.

    With more than ``max_units`` units only the top and bottom halves of that number are drawn.
    """
    table = league.table.reset_index(drop=True)
    level = float(league.table.attrs.get("level", DEFAULT_LEVEL))
    note = ""
    labels = [f"{u} (n={n:,})" for u, n in zip(table["unit"], table["n"])]
    y = np.arange(len(table))[::-1].astype(float)
    gap_label: list[tuple[float, str]] = []
    if max_units is not None and len(table) > max_units:
        half = max_units // 2
        hidden = len(table) - 2 * half
        table = pd.concat([table.head(half), table.tail(half)]).reset_index(drop=True)
        labels = [f"{u} (n={n:,})" for u, n in zip(table["unit"], table["n"])]
        # top half, one empty row naming the units not drawn, bottom half
        y = np.concatenate([np.arange(2 * half, half, -1), np.arange(half - 1, -1, -1)]).astype(float)
        gap_label = [(float(half), f"... {hidden} units not shown ...")]
        note = f" (top {half} and bottom {half} of {len(league.table)})"
    fig, (ax1, ax2) = _new_figure(
        11,
        _height(len(y) + len(gap_label), per_row=0.24, base=2.0),
        ncols=2,
        sharey=True,
        gridspec_kw={"width_ratios": [1.4, 1]},
    )
    ax1.hlines(y, table["low"], table["high"], color=PALETTE[0], linewidth=2)
    ax1.plot(
        table["estimate"], y, "o", color=PALETTE[0], markersize=5, label=f"Fair (shrunk) score, {level:.0%} interval"
    )
    ax1.plot(table["observed"], y, "o", mfc="none", color="#555555", markersize=5, label="Raw score")
    ax1.axvline(league.overall_observed, color="#999999", linestyle="--", linewidth=1, label="Overall")
    ticks = list(y) + [g[0] for g in gap_label]
    ax1.set_yticks(ticks, labels + [g[1] for g in gap_label], fontsize=8 if len(table) > 30 else 10)
    ax1.set_xlabel(league.metric_label)
    ax1.set_title("Score", loc="left")
    _legend_below(fig, source=ax1, ncol=3)
    ax2.hlines(y, table["rank_low"], table["rank_high"], color=PALETTE[3], linewidth=2)
    ax2.plot(table["rank"], y, "|", color="#222222", markersize=10)
    ax2.set_xlim(0.5, len(league.table) + 0.5)
    ax2.invert_xaxis()
    ax2.set_xlabel(f"Rank ({level:.0%} interval; 1 = best, at the right)")
    ax2.set_title("Rank", loc="left")
    fig.suptitle(title or f"League table: {league.metric_label}{note}", x=0.01, ha="left", fontweight="bold")
    return fig


def plot_touchpoint_changes(changes: pd.DataFrame, metric: str = "top_box", title: str | None = None) -> Any:
    """Wave-over-wave change per touchpoint (with its interval), with P(increase) in the row label."""
    frame = changes.reset_index(drop=True)
    y = np.arange(len(frame))[::-1]
    labels = [
        _wrap(f"{lab} ({100 * p:.0f}% likely it rose)", 40)
        for lab, p in zip(frame["label"], frame[f"{metric}_p_increase"])
    ]
    fig, ax = _new_figure(8.5, _height(len(frame)))
    mean, low, high = frame[f"{metric}_change"], frame[f"{metric}_change_low"], frame[f"{metric}_change_high"]
    colors = np.where(low > 0, VERDICT_COLORS["strength"], np.where(high < 0, VERDICT_COLORS["weakness"], "#7f7f7f"))
    ax.hlines(y, low, high, colors=colors, linewidth=2.5)
    ax.scatter(mean, y, c=colors, s=40, zorder=3)
    ax.axvline(0, color="#333333", linewidth=1)
    ax.set_yticks(y, labels)
    if metric in ("top_box", "bottom_box"):
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:+.0f} pts"))
        ax.set_xlabel("Change in share (percentage points)")
    else:
        ax.set_xlabel("Change in mean rating")
    w0, w1 = frame["from_wave"].iloc[0], frame["to_wave"].iloc[0]
    metric_name = {"top_box": "top-box share", "mean": "mean rating", "bottom_box": "bottom-box share"}[metric]
    ax.set_title(title or f"Change in {metric_name}, wave {w0} to wave {w1}", loc="left")
    return fig


def close(figures: Figure | list[Figure] | tuple[Figure, ...]) -> None:
    """Close a figure, or a list / tuple of figures, after display (keeps notebook memory flat)."""
    import matplotlib.pyplot as plt

    for fig in figures if isinstance(figures, (list, tuple)) else [figures]:
        plt.close(fig)


def show(fig: Any) -> None:
    """Display a figure at this point of the notebook output (not at the end of the cell), then close it."""
    import matplotlib.pyplot as plt

    try:
        from IPython.display import display

        display(fig)
    finally:
        plt.close(fig)
