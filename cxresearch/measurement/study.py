"""Plain-language sentences, business-reader tables and the results.json blocks of the measurement notebook.

The notebook computes with the other measurement modules and calls these helpers to say the result in
words (with the interval and the probability that matters), to turn result frames into tables with
readable column names and formatted numbers, ready for :func:`cxresearch.reports.show_table`, and to
build every block it records in results.json (``*_results`` functions, recorded with :func:`record`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.measurement.posterior import DEFAULT_LEVEL, check_level
from cxresearch.reports.display import scope_text  # noqa: F401  (re-exported for the notebooks)


def signed(value: float, digits: int = 1) -> str:
    """+12.3 / -4.0 / n/a."""
    return "n/a" if value is None or pd.isna(value) else f"{value:+.{digits}f}"


def pct(value: float, digits: int = 0) -> str:
    """0.314 -> '31%'."""
    return "n/a" if value is None or pd.isna(value) else f"{100 * value:.{digits}f}%"


def span(low: float, high: float, fmt: str = "signed", digits: int = 1) -> str:
    """'+10.9 to +13.5' (fmt 'signed'), '27% to 31%' (fmt 'pct') or '3.21 to 3.30' (fmt 'plain')."""
    if fmt == "pct":
        return f"{pct(low, digits)} to {pct(high, digits)}"
    if fmt == "plain":
        return f"{low:.{digits}f} to {high:.{digits}f}"
    return f"{signed(low, digits)} to {signed(high, digits)}"


def level_text(level: float = DEFAULT_LEVEL) -> str:
    """'90%'."""
    return f"{100 * level:.0f}%"


def likelihood_words(p: float) -> str:
    """A verbal scale for a probability (used next to the number, never instead of it)."""
    if p >= 0.99:
        return "virtually certain"
    if p >= 0.9:
        return "very likely"
    if p >= 0.67:
        return "likely"
    if p > 0.33:
        return "about as likely as not"
    if p > 0.1:
        return "unlikely"
    if p > 0.01:
        return "very unlikely"
    return "virtually ruled out"


def describe_nps(
    mean: float, low: float, high: float, n: int, wave: str, level: float = DEFAULT_LEVEL, scope: str = "all customers"
) -> str:
    """One sentence: the NPS with its interval, for whom and from how many answers."""
    when = "across all survey waves" if wave == "all" else f"in survey wave {wave}"
    return (
        f"The Net Promoter Score of {scope} {when} is {signed(mean)} "
        f"(we are {level_text(level)} sure the true value lies between {signed(low)} and {signed(high)}), "
        f"based on {n:,} answers."
    )


def describe_change(change: Mapping[str, Any], level: float = DEFAULT_LEVEL) -> str:
    """One sentence: the wave-over-wave change, its interval and P(it truly rose)."""
    direction = "rose" if change["change_mean"] > 0 else "fell"
    p_up = float(change["p_increase"])
    return (
        f"From wave {change['from_wave']} to wave {change['to_wave']} the NPS {direction} by "
        f"{abs(change['change_mean']):.1f} points ({level_text(level)} interval "
        f"{span(change['change_low'], change['change_high'])}). The probability that it truly rose is "
        f"{pct(p_up)} ({likelihood_words(p_up)})."
    )


def describe_target(p_meets: float, target: float, wave: str) -> str:
    """One sentence: P(the true NPS meets the target)."""
    when = "across all waves" if wave == "all" else f"in wave {wave}"
    return (
        f"The probability that the true NPS {when} meets the target of {target:+g} is {pct(p_meets)} "
        f"({likelihood_words(p_meets)})."
    )


def nps_table(summary: pd.DataFrame, label: str = "Group", level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Business table of an NPS summary: group, answers, NPS, interval, the three shares."""
    lv = level_text(level)
    return pd.DataFrame(
        {
            label: summary["label"],
            "Answers": summary["n"].map("{:,}".format),
            "NPS": summary["nps_mean"].map(signed),
            f"NPS {lv} interval": [span(lo, hi) for lo, hi in zip(summary["nps_low"], summary["nps_high"])],
            "Detractors (0-6)": summary["detractor_mean"].map(pct),
            "Passives (7-8)": summary["passive_mean"].map(pct),
            "Promoters (9-10)": summary["promoter_mean"].map(pct),
            "NPS in the sample": summary["nps_observed"].map(signed),
        }
    )


def differences_table(pairs: pd.DataFrame, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Business table of pairwise NPS differences with P(first > second)."""
    return pd.DataFrame(
        {
            "Higher group": pairs["group_a"],
            "Compared with": pairs["group_b"],
            "NPS difference (points)": pairs["mean"].map(signed),
            f"{level_text(level)} interval": [span(lo, hi) for lo, hi in zip(pairs["low"], pairs["high"])],
            "Probability the difference is real (> 0)": pairs["p_greater"].map(pct),
        }
    )


def scorecard_table(card: pd.DataFrame, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Business table of the touchpoint scorecard."""
    lv = level_text(level)
    top_def = card["top_box_definition"].iloc[0] if card["top_box_definition"].nunique() == 1 else "top"
    bottom_def = card["bottom_box_definition"].iloc[0] if card["bottom_box_definition"].nunique() == 1 else "bottom"
    return pd.DataFrame(
        {
            "Journey stage": card["stage"].str.capitalize(),
            "Touchpoint": card["label"],
            "Channel": card["channel"],
            "Customers who used it": card["n_customers"].map("{:,}".format),
            "Used by": card["usage"].map(pct),
            "Mean rating": card["mean"].map("{:.2f}".format),
            f"Mean {lv} interval": [span(lo, hi, "plain", 2) for lo, hi in zip(card["mean_low"], card["mean_high"])],
            f"Top box ({top_def})": card["top_box"].map(pct),
            f"Top box {lv} interval": [
                span(lo, hi, "pct") for lo, hi in zip(card["top_box_low"], card["top_box_high"])
            ],
            f"Bottom box ({bottom_def})": card["bottom_box"].map(pct),
            f"Bottom box {lv} interval": [
                span(lo, hi, "pct") for lo, hi in zip(card["bottom_box_low"], card["bottom_box_high"])
            ],
        }
    )


def touchpoint_change_table(changes: pd.DataFrame, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Business table of wave-over-wave touchpoint changes."""
    lv = level_text(level)
    return pd.DataFrame(
        {
            "Touchpoint": changes["label"],
            f"Mean, wave {changes['from_wave'].iloc[0]}": changes["mean_from"].map("{:.2f}".format),
            f"Mean, wave {changes['to_wave'].iloc[0]}": changes["mean_to"].map("{:.2f}".format),
            "Change in mean": changes["mean_change"].map(lambda v: signed(v, 2)),
            f"{lv} interval": [
                span(lo, hi, digits=2) for lo, hi in zip(changes["mean_change_low"], changes["mean_change_high"])
            ],
            "Probability it rose": changes["mean_p_increase"].map(pct),
            "Top box change (points)": (100 * changes["top_box_change"]).map(signed),
        }
    )


def benchmark_table(position: pd.DataFrame, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Business table of our position against each competitor."""
    lv = level_text(level)
    nps = position["metric"] == "nps"

    def value(v: float, is_nps: bool) -> str:
        return signed(v) if is_nps else f"{v:.2f}"

    return pd.DataFrame(
        {
            "Measure": position["metric_label"],
            "Competitor": position["competitor"],
            "Us": [value(v, f) for v, f in zip(position["ours_mean"], nps)],
            "Them": [value(v, f) for v, f in zip(position["theirs_mean"], nps)],
            "Difference (us - them)": [signed(v, 1 if f else 2) for v, f in zip(position["diff_mean"], nps)],
            f"{lv} interval": [
                span(lo, hi, digits=1 if f else 2)
                for lo, hi, f in zip(position["diff_low"], position["diff_high"], nps)
            ],
            "Probability we are ahead": position["p_ours_better"].map(pct),
            "Verdict": position["verdict"].str.capitalize(),
        }
    )


def league_display(
    table: pd.DataFrame, metric_label: str, level: float = DEFAULT_LEVEL, rows: int | None = None
) -> pd.DataFrame:
    """Business table of a league table (optionally only the first ``rows``)."""
    lv = level_text(level)
    nps = metric_label == "NPS"
    fmt = signed if nps else (lambda v: f"{v:.2f}")
    frame = table if rows is None else table.head(rows)
    return pd.DataFrame(
        {
            "Position": frame["rank"],
            "Unit": frame["unit"],
            "Answers": frame["n"].map("{:,}".format),
            "Raw score": frame["observed"].map(fmt),
            "Fair score (shrunk)": frame["estimate"].map(fmt),
            f"Score {lv} interval": [
                span(lo, hi, digits=1 if nps else 2) if nps else span(lo, hi, "plain", 2)
                for lo, hi in zip(frame["low"], frame["high"])
            ],
            f"Rank {lv} interval": [f"{lo} to {hi}" for lo, hi in zip(frame["rank_low"], frame["rank_high"])],
            f"Probability of a top-{table.attrs.get('top_k', 3)} place": frame["p_top"].map(pct),
        }
    )


def kpi_table(tracking: pd.DataFrame, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Business table of NPS tracking per wave."""
    lv = level_text(level)
    out = pd.DataFrame(
        {
            "Wave": tracking["wave"],
            "Answers": tracking["n"].map("{:,}".format),
            "NPS": tracking["mean"].map(signed),
            f"{lv} interval": [span(lo, hi) for lo, hi in zip(tracking["low"], tracking["high"])],
            "Change from previous wave": tracking["change_mean"].map(signed),
            f"Change {lv} interval": [
                span(lo, hi) if not pd.isna(lo) else ""
                for lo, hi in zip(tracking["change_low"], tracking["change_high"])
            ],
            "Probability it rose": tracking["p_increase"].map(lambda p: "" if pd.isna(p) else pct(p)),
        }
    )
    if "p_meets_target" in tracking:
        out[f"Probability of meeting the target ({tracking['target'].iloc[0]:+g})"] = tracking["p_meets_target"].map(
            pct
        )
    return out


def interval_pair(low: float, high: float) -> list[float]:
    """[low, high] as plain floats (for results.json)."""
    return [float(low), float(high)]


def breakdown_dimensions(survey: pd.DataFrame, candidates: Sequence[str] = ("segment", "market")) -> list[str]:
    """The grouping columns that still vary after the run's filters (a run for one segment compares markets)."""
    return [c for c in candidates if c in survey.columns and survey[c].nunique(dropna=True) > 1]


def summary_results(summary: pd.DataFrame, key_col: str) -> dict[str, dict[str, Any]]:
    """{group: {mean, interval, n}} of an NPS summary, for results.json."""
    return {
        str(row[key_col]): {
            "mean": float(row["nps_mean"]),
            "interval": interval_pair(row["nps_low"], row["nps_high"]),
            "n": int(row["n"]),
        }
        for _, row in summary.iterrows()
    }


def finite(value: Any) -> float | None:
    """A float, or None when missing (JSON null)."""
    return None if value is None or pd.isna(value) or not np.isfinite(float(value)) else float(value)


def fit_check_banner(diagnostics: Mapping[str, Any] | None, what: str) -> Any:
    """Show whether a pooled fit can be trusted: the one gate's banner for sampled (NUTS) fits, or the grid
    check of the exact computation (posterior mass at the grid edges must be negligible). Nothing for a
    closed-form posterior (``cxresearch.diagnostics.exact``) or no diagnostics."""
    from cxresearch.diagnostics import as_diagnostics
    from cxresearch.measurement.pooling import EDGE_MASS_MAX
    from cxresearch.reports import banner, diagnostics_banner

    if not diagnostics:
        return None
    d = as_diagnostics(diagnostics)
    edge_mass = d.extra.get("edge_mass")
    if edge_mass is None and d.passed and d.chains is None and not d.approximate:
        return None  # a closed-form posterior: nothing was sampled or integrated, nothing to check
    if edge_mass is None:
        return diagnostics_banner(d)
    if d.passed:
        return banner(
            f"{what}: computed exactly, without sampling (numerical integration over the pooling "
            f"parameters; posterior mass at the grid edges {edge_mass:.1e}, below the {EDGE_MASS_MAX:.0e} "
            "limit).",
            level="ok",
            title="Model check passed",
        )
    return banner(
        f"{what}: the numerical integration did not hold the whole posterior (mass at the grid "
        f"edges {edge_mass:.1e}). Do not use these numbers for decisions.",
        level="error",
        title="MODEL CHECK FAILED",
    )


def touchpoint_target_table(tracking: pd.DataFrame, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Business table of touchpoint top-box targets per wave: share, interval, target, P(meeting it)."""
    lv = level_text(level)
    return pd.DataFrame(
        {
            "Touchpoint": tracking["label"],
            "Wave": tracking["wave"],
            "Customers who used it": tracking["n"].map("{:,}".format),
            "Top-box share": tracking["mean"].map(pct),
            f"{lv} interval": [span(lo, hi, "pct") for lo, hi in zip(tracking["low"], tracking["high"])],
            "Target": tracking["target"].map(pct),
            "Probability of meeting the target": tracking["p_meets_target"].map(pct),
        }
    )


def tracked_wave(tracking: pd.DataFrame, wave: str) -> pd.Series | None:
    """The overall (ungrouped) row of :func:`~cxresearch.measurement.nps_tracking` for ``wave``, or None
    (``wave`` is "all" or not tracked). The headline quotes this row, so the banner and the KPI table
    show the same numbers from the same posterior draws instead of two Monte-Carlo estimates."""
    rows = tracking[tracking["wave"].astype(str) == str(wave)]
    return None if rows.empty else rows.iloc[-1]


def latest_change(tracking: pd.DataFrame) -> dict[str, Any] | None:
    """The last wave's change from the previous wave, from the tracking table (same draws as the KPI
    table), in the shape :func:`describe_change` reads; None with fewer than two waves."""
    rows = tracking.dropna(subset=["change_mean"])
    if rows.empty:
        return None
    last = rows.iloc[-1]
    return {
        "from_wave": str(last["change_from"]),
        "to_wave": str(last["wave"]),
        "change_mean": float(last["change_mean"]),
        "change_low": float(last["change_low"]),
        "change_high": float(last["change_high"]),
        "p_increase": float(last["p_increase"]),
    }


# --------------------------------------------------------------------------------------------------------
# results.json blocks: every number the notebook records comes from one of these functions (tested), so the
# notebook only calls them and the keys / shapes are defined in one place.


def record(results: Mapping[str, Any]) -> dict[str, Any]:
    """Record each top-level key of ``results`` in results.json (:func:`cxresearch.results.record_result`)."""
    from cxresearch.results import record_result

    for key, value in results.items():
        record_result(key, value)
    return dict(results)


@dataclass
class Headline:
    """The headline NPS of a run, from the same posterior draws as the KPI table.

    ``tracking`` is :func:`~cxresearch.measurement.nps_tracking` over every wave; ``posterior`` the exact
    Dirichlet posterior of the headline rows. When the headline wave is a tracked wave, the NPS, its
    interval and P(meets target) are quoted from ``tracking`` (same draws as the KPI table).
    """

    tracking: pd.DataFrame
    posterior: Any
    wave: str
    n: int
    mean: float
    low: float
    high: float
    p_target: float
    target: float
    level: float
    shares: dict[str, float]
    shares_interval: dict[str, list[float]]
    change: dict[str, Any] | None


def headline(
    survey: pd.DataFrame,
    rows: pd.DataFrame,
    wave: str,
    target_nps: float,
    level: float = DEFAULT_LEVEL,
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
) -> Headline:
    """Track the NPS over the waves of ``survey`` and take the headline of ``rows`` (the headline wave)."""
    from cxresearch.measurement.kpi import nps_tracking, target_probability
    from cxresearch.measurement.nps import nps_posterior
    from cxresearch.measurement.posterior import rng_for, wave_order

    level = check_level(level)
    rng = rng_for(seed)
    tracking = nps_tracking(survey, target_nps=target_nps, level=level, draws=draws, seed=rng)
    posterior = nps_posterior(rows, draws=draws, seed=rng)
    head = posterior.table(level).iloc[0]
    mean, low, high = float(head["nps_mean"]), float(head["nps_low"]), float(head["nps_high"])
    p_target = target_probability(posterior.nps()[0], target_nps)
    tracked = tracked_wave(tracking, wave)
    if tracked is not None:
        mean, low, high = float(tracked["mean"]), float(tracked["low"]), float(tracked["high"])
        p_target = float(tracked["p_meets_target"])
    classes = ("detractor", "passive", "promoter")
    many_waves = len(wave_order(survey["wave"].unique())) >= 2 if "wave" in survey.columns else False
    return Headline(
        tracking=tracking,
        posterior=posterior,
        wave=str(wave),
        n=int(head["n"]),
        mean=mean,
        low=low,
        high=high,
        p_target=float(p_target),
        target=float(target_nps),
        level=level,
        shares={k: float(head[f"{k}_mean"]) for k in classes},
        shares_interval={k: interval_pair(head[f"{k}_low"], head[f"{k}_high"]) for k in classes},
        change=latest_change(tracking) if many_waves else None,
    )


def headline_sentences(h: Headline, scope: str) -> tuple[str, str]:
    """(banner title, banner text) of the headline: the NPS, its change and P(meeting the target)."""
    sentences = [describe_nps(h.mean, h.low, h.high, h.n, h.wave, h.level, scope)]
    if h.change is not None:
        sentences.append(describe_change(h.change, h.level))
    sentences.append(describe_target(h.p_target, h.target, h.wave))
    title = f"NPS {signed(h.mean)} ({level_text(h.level)} interval {span(h.low, h.high)})"
    return title, " ".join(sentences)


def headline_results(h: Headline) -> dict[str, Any]:
    """results.json: ``n``, ``nps`` {mean, interval, level, wave, target, p_meets_target[, change]},
    ``shares`` and ``shares_interval``."""
    nps: dict[str, Any] = {
        "mean": h.mean,
        "p_meets_target": h.p_target,
        "interval": [h.low, h.high],
        "level": h.level,
        "wave": h.wave,
        "target": h.target,
    }
    if h.change is not None:
        c = h.change
        nps["change"] = {
            "from_wave": c["from_wave"],
            "to_wave": c["to_wave"],
            "mean": c["change_mean"],
            "interval": [c["change_low"], c["change_high"]],
            "p_increase": c["p_increase"],
        }
    return {"n": h.n, "nps": nps, "shares": dict(h.shares), "shares_interval": dict(h.shares_interval)}


def record_headline_numbers(h: Headline) -> dict[str, Any]:
    """The index page's headline figures (NPS with interval, P(meets target), answers) and
    :func:`headline_results` in results.json."""
    from cxresearch.results import record_headline

    record_headline("NPS", h.mean, "points", [h.low, h.high])
    record_headline(f"P(NPS meets {h.target:+g})", 100 * h.p_target, "%")
    record_headline("Answers", h.n)
    return record(headline_results(h))


def kpi_results(tracking: pd.DataFrame, target_nps: float) -> dict[str, Any]:
    """results.json ``kpi``: the target and, per wave, the NPS, its interval, answers and P(meets target)."""
    by_wave = {
        str(r["wave"]): {
            "mean": float(r["mean"]),
            "interval": interval_pair(r["low"], r["high"]),
            "n": int(r["n"]),
            "p_meets_target": float(r["p_meets_target"]),
        }
        for _, r in tracking.iterrows()
    }
    return {"kpi": {"target_nps": float(target_nps), "by_wave": by_wave}}


def group_results(table: pd.DataFrame, dim: str) -> dict[str, Any]:
    """results.json ``by_<dim>``: {group: {mean, interval, n}} of :meth:`SharePosterior.table`."""
    return {f"by_{dim}": summary_results(table, dim)}


def touchpoint_results(card: pd.DataFrame) -> dict[str, Any]:
    """results.json ``touchpoints``: per touchpoint the mean, top / bottom box with intervals, n and usage."""
    return {
        "touchpoints": {
            str(r.touchpoint): {
                "mean": float(r.mean),
                "mean_interval": interval_pair(r.mean_low, r.mean_high),
                "top_box": float(r.top_box),
                "top_box_interval": interval_pair(r.top_box_low, r.top_box_high),
                "bottom_box": float(r.bottom_box),
                "bottom_box_interval": interval_pair(r.bottom_box_low, r.bottom_box_high),
                "n": int(r.n_customers),
                "usage": finite(r.usage),
            }
            for r in card.itertuples(index=False)
        }
    }


def touchpoint_change_results(changes: pd.DataFrame) -> dict[str, Any]:
    """results.json ``touchpoint_changes``: change of each touchpoint's mean rating, interval, P(increase)."""
    return {
        "touchpoint_changes": {
            str(r.touchpoint): {
                "mean_change": float(r.mean_change),
                "interval": interval_pair(r.mean_change_low, r.mean_change_high),
                "p_increase": float(r.mean_p_increase),
            }
            for r in changes.itertuples(index=False)
        }
    }


def touchpoint_target_results(tracking: pd.DataFrame) -> dict[str, Any]:
    """results.json ``touchpoint_targets``: P(top box meets its target) per touchpoint and wave."""
    return {
        "touchpoint_targets": {
            f"{r.touchpoint}_wave{r.wave}": float(r.p_meets_target) for r in tracking.itertuples(index=False)
        }
    }


def benchmark_results(position: pd.DataFrame, named: Mapping[str, Sequence[str]], threshold: float) -> dict[str, Any]:
    """results.json ``benchmark`` (difference, interval, P(ours better), verdict per metric and competitor)
    and ``benchmark_summary`` (numbers of strengths and weaknesses, the threshold)."""
    return {
        "benchmark": {
            f"{r.metric}.{r.competitor}": {
                "difference": float(r.diff_mean),
                "interval": interval_pair(r.diff_low, r.diff_high),
                "p_ours_better": float(r.p_ours_better),
                "verdict": r.verdict,
            }
            for r in position.itertuples(index=False)
        },
        "benchmark_summary": {
            "strengths": len(named["strength"]),
            "weaknesses": len(named["weakness"]),
            "threshold": float(threshold),
        },
    }


def league_results(league: Any) -> dict[str, Any]:
    """results.json ``league``: metric, number of ranked units, the top unit with its score and rank interval,
    and the median shrinkage."""
    table = league.table
    top = table.iloc[0]
    return {
        "league": {
            "metric": league.metric,
            "units": int(len(table)),
            "top_unit": str(top["unit"]),
            "top_unit_score": float(top["estimate"]),
            "top_unit_rank_interval": [int(top["rank_low"]), int(top["rank_high"])],
            "median_shrinkage": float(table["shrinkage"].median()),
        }
    }


def diagnostics_results(fits: Mapping[str, Any]) -> dict[str, Any]:
    """results.json ``diagnostics``: the one gate over every pooled fit of the run
    (:func:`cxresearch.diagnostics.combine`, as :func:`cxresearch.diagnostics.as_dict`); with no pooled fit,
    the closed-form verdict."""
    from cxresearch.diagnostics import as_dict, combine

    return {"diagnostics": as_dict(combine(fits))}
