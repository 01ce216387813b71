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

from cxresearch.data.check import loading_line
from cxresearch.measurement.posterior import DEFAULT_LEVEL, check_level
from cxresearch.reports.display import scope_text  # noqa: F401  (re-exported for the notebooks)
from cxresearch.reports.small_n import enough_answers, run_scope, too_few_answers, too_few_line

#: how the two NPS figures of a group are named wherever both can be seen (a market's own report and the
#: all-markets report): its own answers only, or estimated together with the other groups
ALONE, POOLED = "alone", "with partial pooling"


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


def alone_nps(summary: pd.DataFrame, prior: float = 1.0) -> pd.Series:
    """The NPS of each group of an NPS table from its own answers only: the posterior mean of the
    closed-form Dirichlet(prior, prior, prior) model of its class counts, ``100 (promoters - detractors) /
    (n + 3 prior)`` (from the table's ``n`` and sample NPS). The group's own report shows this figure."""
    n = summary["n"].astype(float)
    return summary["nps_observed"].astype(float) * n / (n + 3.0 * prior)


def nps_table(
    summary: pd.DataFrame,
    label: str = "Group",
    level: float = DEFAULT_LEVEL,
    pooled: bool = False,
    min_answers: int = 1,
) -> pd.DataFrame:
    """Business table of an NPS summary: group, answers, NPS, interval, the three shares.

    ``pooled``: the NPS column is named "NPS with partial pooling" and a column "NPS, this <group> alone"
    (:func:`alone_nps`, the figure the group's own report shows) stands beside it, so a reader who sees
    both figures knows why they differ. A group with fewer than ``min_answers`` answers shows its count
    and "too few answers" instead of estimates."""
    lv = level_text(level)
    enough = [enough_answers(n, min_answers) for n in summary["n"]]
    few = [too_few_line(n) for n in summary["n"]]

    def cells(values: Sequence[str]) -> list[str]:
        return [v if ok else "" for v, ok in zip(values, enough)]

    name = f"NPS {POOLED}" if pooled else "NPS"
    out = pd.DataFrame(
        {
            label: summary["label"],
            "Answers": summary["n"].map("{:,}".format),
            name: [v if ok else f for v, ok, f in zip(summary["nps_mean"].map(signed), enough, few)],
            f"NPS {lv} interval": cells([span(lo, hi) for lo, hi in zip(summary["nps_low"], summary["nps_high"])]),
        }
    )
    if pooled:
        group_word = label.lower()
        out[f"NPS, this {group_word} {ALONE}"] = cells(alone_nps(summary).map(signed))
    out["Detractors (0-6)"] = cells(summary["detractor_mean"].map(pct))
    out["Passives (7-8)"] = cells(summary["passive_mean"].map(pct))
    out["Promoters (9-10)"] = cells(summary["promoter_mean"].map(pct))
    out["NPS in the sample"] = cells(summary["nps_observed"].map(signed))
    return out


def pooled_note(dim: str, pooled: bool) -> str:
    """One sentence under a pooled group table: why its NPS differs from the group's own report."""
    if not pooled:
        return f"Each {dim} is estimated from its own answers alone (no pooling)."
    return (
        f"Two NPS figures per {dim}, both labelled: **{POOLED}** (estimated together with the other {dim}s, so a "
        f"small {dim} is pulled toward the typical one) and **this {dim} {ALONE}** (its own answers only: the "
        f"figure the {dim}'s own report shows in its headline). They differ most for small {dim}s."
    )


def differences_table(pairs: pd.DataFrame, level: float = DEFAULT_LEVEL, leave_out: Sequence[str] = ()) -> pd.DataFrame:
    """Business table of pairwise NPS differences with P(first > second); pairs with a group in
    ``leave_out`` (too few answers) are not shown."""
    if len(leave_out):
        pairs = pairs[~(pairs["group_a"].isin(list(leave_out)) | pairs["group_b"].isin(list(leave_out)))]
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
    """Business table of the touchpoint scorecard. Box definitions go in the column names when every
    touchpoint has the same ones, else in their own columns; a touchpoint with too few answers (``enough``
    False) shows its counts and "too few answers" instead of estimates."""
    lv = level_text(level)
    enough = card["enough"].tolist() if "enough" in card else [True] * len(card)
    same_boxes = card["top_box_definition"].nunique() == 1 and card["bottom_box_definition"].nunique() == 1
    top_name = f"Top box ({card['top_box_definition'].iloc[0]})" if same_boxes else "Top box"
    bottom_name = f"Bottom box ({card['bottom_box_definition'].iloc[0]})" if same_boxes else "Bottom box"

    def cells(values: Sequence[str], fill: str | Sequence[str] = "") -> list[str]:
        fills = [fill] * len(values) if isinstance(fill, str) else list(fill)
        return [v if ok else f for v, ok, f in zip(values, enough, fills)]

    no_answer = [("no answers" if n == 0 else too_few_line(n)) for n in card["n_answers"]]
    out = pd.DataFrame(
        {
            "Journey stage": card["stage"].str.capitalize(),
            "Touchpoint": card["label"],
            "Channel": card["channel"],
            "Customers who used it": card["n_customers"].map("{:,}".format),
            "Used by": card["usage"].map(pct),
        }
    )
    if not same_boxes:
        out["Scale"] = card["scale"]
        out["Top box is"] = card["top_box_definition"]
        out["Bottom box is"] = card["bottom_box_definition"]
    out["Mean rating"] = cells([f"{v:.2f}" for v in card["mean"]], no_answer)
    out[f"Mean {lv} interval"] = cells(
        [span(lo, hi, "plain", 2) for lo, hi in zip(card["mean_low"], card["mean_high"])]
    )
    out[top_name] = cells(card["top_box"].map(pct).tolist())
    out[f"Top box {lv} interval"] = cells(
        [span(lo, hi, "pct") for lo, hi in zip(card["top_box_low"], card["top_box_high"])]
    )
    out[bottom_name] = cells(card["bottom_box"].map(pct).tolist())
    out[f"Bottom box {lv} interval"] = cells(
        [span(lo, hi, "pct") for lo, hi in zip(card["bottom_box_low"], card["bottom_box_high"])]
    )
    if not any(enough):  # counts only: the estimate columns would be empty
        out = out.drop(columns=[c for c in out.columns[out.columns.get_loc("Mean rating") + 1 :]])
    return out


def estimable(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a scorecard (or change / tracking table) that have estimates (``enough``), for plots."""
    return frame[frame["enough"].astype(bool)] if "enough" in frame else frame


def too_few_note(card: pd.DataFrame, min_answers: int, what: str = "touchpoints") -> str | None:
    """'2 touchpoints have fewer than 30 answers: counts only (…)' or None when every row has estimates."""
    if "enough" not in card or card["enough"].all():
        return None
    few = card[~card["enough"].astype(bool)]
    if len(few) == len(card):
        singular = what[:-1] if what.endswith("s") else what
        return f"No {singular} has the {min_answers} answers it needs (min_answers): counts only."
    names = ", ".join(f"{lab} (n={n:,})" for lab, n in zip(few["label"], few["n_answers"]))
    return (
        f"{len(few)} {what} with fewer than min_answers = {min_answers} answers show counts only, no estimates: "
        f"{names}."
    )


def touchpoint_change_table(changes: pd.DataFrame, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Business table of wave-over-wave touchpoint changes."""
    lv = level_text(level)
    enough = changes["enough"].tolist() if "enough" in changes else [True] * len(changes)
    few = [f"too few answers (n={a:,} and {b:,})" for a, b in zip(changes["n_from"], changes["n_to"])]

    def cells(values: Sequence[str], fill: Sequence[str] | None = None) -> list[str]:
        return [v if ok else (fill[i] if fill else "") for i, (v, ok) in enumerate(zip(values, enough))]

    return pd.DataFrame(
        {
            "Touchpoint": changes["label"],
            f"Mean, wave {changes['from_wave'].iloc[0]}": cells(changes["mean_from"].map("{:.2f}".format), few),
            f"Mean, wave {changes['to_wave'].iloc[0]}": cells(changes["mean_to"].map("{:.2f}".format)),
            "Change in mean": cells(changes["mean_change"].map(lambda v: signed(v, 2))),
            f"{lv} interval": cells(
                [span(lo, hi, digits=2) for lo, hi in zip(changes["mean_change_low"], changes["mean_change_high"])]
            ),
            "Probability it rose": cells(changes["mean_p_increase"].map(pct)),
            "Top box change (points)": cells((100 * changes["top_box_change"]).map(signed)),
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
    enough = tracking["enough"].tolist() if "enough" in tracking else [True] * len(tracking)
    out = pd.DataFrame(
        {
            "Wave": tracking["wave"],
            "Answers": tracking["n"].map("{:,}".format),
            "NPS": [signed(v) if ok else too_few_line(n) for v, ok, n in zip(tracking["mean"], enough, tracking["n"])],
            f"{lv} interval": [
                span(lo, hi) if ok else "" for lo, hi, ok in zip(tracking["low"], tracking["high"], enough)
            ],
            "Change from previous wave": tracking["change_mean"].map(signed),
            f"Change {lv} interval": [
                span(lo, hi) if not pd.isna(lo) else ""
                for lo, hi in zip(tracking["change_low"], tracking["change_high"])
            ],
            "Probability it rose": tracking["p_increase"].map(lambda p: "" if pd.isna(p) else pct(p)),
        }
    )
    if tracking["change_mean"].isna().all():  # one wave (or no two consecutive waves with estimates): no change
        out = out.drop(columns=[c for c in out.columns if c.startswith("Change") or c == "Probability it rose"])
    if "p_meets_target" in tracking:
        out[f"Probability of meeting the target ({tracking['target'].iloc[0]:+g})"] = tracking["p_meets_target"].map(
            lambda p: "" if pd.isna(p) else pct(p)
        )
    return out


def interval_pair(low: float, high: float) -> list[float]:
    """[low, high] as plain floats (for results.json)."""
    return [float(low), float(high)]


def breakdown_dimensions(survey: pd.DataFrame, candidates: Sequence[str] = ("segment", "market")) -> list[str]:
    """The grouping columns that still vary after the run's filters (a run for one segment compares markets)."""
    return [c for c in candidates if c in survey.columns and survey[c].nunique(dropna=True) > 1]


def summary_results(
    summary: pd.DataFrame, key_col: str, min_answers: int = 1, pooled: bool | None = None
) -> dict[str, dict[str, Any]]:
    """{group: {mean, interval, n}} of an NPS summary, for results.json. ``pooled`` (True / False) adds
    ``estimate`` ("with partial pooling" / "alone") and, when pooled, ``alone``: the group's NPS from its own
    answers (the figure its own report shows). A group under ``min_answers`` gets ``n``, its class counts
    and ``too_few_answers: true`` only."""
    out: dict[str, dict[str, Any]] = {}
    for _, row in summary.iterrows():
        n = int(row["n"])
        if not enough_answers(n, min_answers):
            entry: dict[str, Any] = {"n": n, "too_few_answers": True, "min_answers": int(min_answers)}
        else:
            entry = {"mean": float(row["nps_mean"]), "interval": interval_pair(row["nps_low"], row["nps_high"]), "n": n}
            if pooled is not None:
                entry["estimate"] = POOLED if pooled else ALONE
            if pooled:
                entry[ALONE] = float(row["nps_observed"]) * n / (n + 3.0)
        out[str(row[key_col])] = entry
    return out


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
    """Business table of touchpoint top-box targets per wave: share, interval, target, P(meeting it). A wave
    with too few answers of a touchpoint (``enough`` False) shows its count and "too few answers" ("no
    answers" when nobody answered) instead of estimates."""
    lv = level_text(level)
    enough = tracking["enough"].astype(bool).tolist() if "enough" in tracking else [True] * len(tracking)
    few = [("no answers" if n == 0 else too_few_line(n)) for n in tracking["n"]]

    def cells(values: Sequence[str], fill: Sequence[str] | None = None) -> list[str]:
        return [v if ok else (fill[i] if fill else "") for i, (v, ok) in enumerate(zip(values, enough))]

    return pd.DataFrame(
        {
            "Touchpoint": tracking["label"],
            "Wave": tracking["wave"],
            "Customers who used it": tracking["n"].map("{:,}".format),
            "Top-box share": cells(tracking["mean"].map(pct).tolist(), few),
            f"{lv} interval": cells([span(lo, hi, "pct") for lo, hi in zip(tracking["low"], tracking["high"])]),
            "Target": tracking["target"].map(pct),
            "Probability of meeting the target": cells(tracking["p_meets_target"].map(pct).tolist()),
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
    counts: dict[str, int] | None = None
    min_answers: int = 1
    many_waves: bool = False

    @property
    def enough(self) -> bool:
        """Whether the headline rows have at least ``min_answers`` answers (else: counts only)."""
        return enough_answers(self.n, self.min_answers)


def headline(
    survey: pd.DataFrame,
    rows: pd.DataFrame,
    wave: str,
    target_nps: float,
    level: float = DEFAULT_LEVEL,
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
    min_answers: int = 1,
) -> Headline:
    """Track the NPS over the waves of ``survey`` and take the headline of ``rows`` (the headline wave).

    With fewer than ``min_answers`` answers in ``rows`` the headline has counts only: NPS, interval,
    shares and P(meets target) are NaN (:attr:`Headline.enough` is False)."""
    from cxresearch.measurement.kpi import nps_tracking, target_probability
    from cxresearch.measurement.nps import nps_posterior
    from cxresearch.measurement.posterior import rng_for, wave_order

    level = check_level(level)
    rng = rng_for(seed)
    tracking = nps_tracking(survey, target_nps=target_nps, level=level, draws=draws, seed=rng, min_answers=min_answers)
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
    counts = {k: int(posterior.groups[k].iloc[0]) for k in classes}
    enough = enough_answers(int(head["n"]), min_answers)
    if enough:
        shares = {k: float(head[f"{k}_mean"]) for k in classes}
        shares_interval = {k: interval_pair(head[f"{k}_low"], head[f"{k}_high"]) for k in classes}
    else:  # counts only: no estimate is shown for too few answers
        mean = low = high = p_target = float("nan")
        shares, shares_interval = {k: float("nan") for k in classes}, {k: [float("nan")] * 2 for k in classes}
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
        shares=shares,
        shares_interval=shares_interval,
        change=latest_change(tracking) if enough and many_waves else None,
        counts=counts,
        min_answers=int(min_answers),
        many_waves=many_waves,
    )


def counts_sentence(h: Headline) -> str:
    """'1 answer: 0 detractors, 0 passives, 1 promoter.' (what a report shows when it has too few answers)."""
    c = h.counts or {}
    parts = ", ".join(
        f"{c.get(k, 0):,} {k}{'' if c.get(k, 0) == 1 else 's'}" for k in ("detractor", "passive", "promoter")
    )
    return f"{h.n:,} answer{'' if h.n == 1 else 's'}: {parts}."


def alone_words(segment: Any = "all", market: Any = "all") -> str:
    """'this market alone' / 'this segment alone' / 'this segment and market alone' / '' (every customer)."""
    which = [name for name, value in (("segment", segment), ("market", market)) if value not in (None, "all")]
    return f"this {' and '.join(which)} {ALONE}" if which else ""


def too_few_statement(h: Headline, segment: Any = "all", market: Any = "all") -> str | None:
    """The report's 'too few answers' statement (Markdown; the drivers study's wording), or None."""
    return too_few_answers(
        h.n,
        h.min_answers,
        segment,
        market,
        what="an NPS, touchpoint scores or any other estimate",
        shown="Only counts are shown for this group",
    )


def headline_sentences(h: Headline, scope: str, segment: Any = "all", market: Any = "all") -> tuple[str, str]:
    """(banner title, banner text) of the headline: the NPS, its change and P(meeting the target).

    A run for one segment or market says that its NPS is from that group's own answers ("this market
    alone"): the all-markets report shows the same market with partial pooling, a different figure. With
    too few answers: the counts only."""
    if not h.enough:
        title = f"Too few answers for an NPS ({run_scope(segment, market)}: n={h.n:,})"
        text = (
            f"{counts_sentence(h)} Fewer than min_answers = {h.min_answers} answers: no NPS, interval or "
            "probability is shown, only counts."
        )
        return title, text
    sentences = [describe_nps(h.mean, h.low, h.high, h.n, h.wave, h.level, scope)]
    alone = alone_words(segment, market)
    if alone:
        group = alone.removeprefix("this ").removesuffix(" " + ALONE)
        group = "group" if " and " in group else group
        sentences.append(
            f"This is the NPS of {alone}, from its own answers. A report that compares several {group}s shows "
            f"each {group} {POOLED} (estimated together with the others, which moves a small {group} toward the "
            "typical one), so its figure there can differ; both are labelled."
        )
    if h.change is not None:
        sentences.append(describe_change(h.change, h.level))
    sentences.append(describe_target(h.p_target, h.target, h.wave))
    title = f"NPS {signed(h.mean)} ({level_text(h.level)} interval {span(h.low, h.high)})"
    if alone:
        title += f", {alone}"
    return title, " ".join(sentences)


def headline_results(h: Headline, segment: Any = "all", market: Any = "all") -> dict[str, Any]:
    """results.json: ``n``, ``counts``, ``nps`` {mean, interval, level, wave, target, p_meets_target[, change],
    estimate}, ``shares`` and ``shares_interval``; with too few answers ``too_few_answers`` (the statement)
    and nulls for every estimate."""
    estimate = alone_words(segment, market) or "all customers"
    if not h.enough:
        return {
            "n": h.n,
            "counts": dict(h.counts or {}),
            "too_few_answers": too_few_statement(h, segment, market),
            "nps": {
                "mean": None,
                "interval": None,
                "p_meets_target": None,
                "level": h.level,
                "wave": h.wave,
                "target": h.target,
                "min_answers": h.min_answers,
                "estimate": estimate,
            },
        }
    nps: dict[str, Any] = {
        "mean": h.mean,
        "p_meets_target": h.p_target,
        "interval": [h.low, h.high],
        "level": h.level,
        "wave": h.wave,
        "target": h.target,
        "estimate": estimate,
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
    return {
        "n": h.n,
        "counts": dict(h.counts or {}),
        "nps": nps,
        "shares": dict(h.shares),
        "shares_interval": dict(h.shares_interval),
    }


def record_headline_numbers(h: Headline, segment: Any = "all", market: Any = "all") -> dict[str, Any]:
    """The index page's headline figures (NPS with interval, P(meets target), answers) and
    :func:`headline_results` in results.json. A run for one segment or market labels its NPS "(this market
    alone)"; with too few answers the index reads "too few answers (n=1)" instead of a number."""
    from cxresearch.results import record_headline

    alone = alone_words(segment, market)
    label = f"NPS ({alone})" if alone else "NPS"
    if not h.enough:
        record_headline(label, too_few_line(h.n))
        record_headline("Answers", h.n)
        return record(headline_results(h, segment, market))
    record_headline(label, h.mean, "points", [h.low, h.high])
    record_headline(f"P(NPS meets {h.target:+g})", 100 * h.p_target, "%")
    record_headline("Answers", h.n)
    return record(headline_results(h, segment, market))


def kpi_results(tracking: pd.DataFrame, target_nps: float) -> dict[str, Any]:
    """results.json ``kpi``: the target and, per wave, the NPS, its interval, answers and P(meets target)."""
    by_wave = {
        str(r["wave"]): (
            {
                "mean": float(r["mean"]),
                "interval": interval_pair(r["low"], r["high"]),
                "n": int(r["n"]),
                "p_meets_target": float(r["p_meets_target"]),
            }
            if bool(r.get("enough", True))
            else {"n": int(r["n"]), "too_few_answers": True}
        )
        for _, r in tracking.iterrows()
    }
    return {"kpi": {"target_nps": float(target_nps), "by_wave": by_wave}}


def group_results(table: pd.DataFrame, dim: str, min_answers: int = 1, pooled: bool | None = None) -> dict[str, Any]:
    """results.json ``by_<dim>``: {group: {mean, interval, n[, estimate, alone]}} of
    :meth:`SharePosterior.table` (see :func:`summary_results`)."""
    return {f"by_{dim}": summary_results(table, dim, min_answers, pooled)}


def small_groups(table: pd.DataFrame, min_answers: int) -> list[str]:
    """Labels of the groups of an NPS table with fewer than ``min_answers`` answers."""
    return [str(lab) for lab, n in zip(table["label"], table["n"]) if not enough_answers(n, min_answers)]


def touchpoint_results(card: pd.DataFrame) -> dict[str, Any]:
    """results.json ``touchpoints``: per touchpoint the mean, top / bottom box with intervals, n and usage."""
    out: dict[str, Any] = {}
    for r in card.itertuples(index=False):
        entry: dict[str, Any] = {"n": int(r.n_customers), "n_answers": int(r.n_answers), "usage": finite(r.usage)}
        if getattr(r, "enough", True):
            entry.update(
                {
                    "mean": float(r.mean),
                    "mean_interval": interval_pair(r.mean_low, r.mean_high),
                    "top_box": float(r.top_box),
                    "top_box_interval": interval_pair(r.top_box_low, r.top_box_high),
                    "bottom_box": float(r.bottom_box),
                    "bottom_box_interval": interval_pair(r.bottom_box_low, r.bottom_box_high),
                }
            )
        else:
            entry["too_few_answers"] = True
        entry["top_box_definition"] = str(r.top_box_definition)
        entry["bottom_box_definition"] = str(r.bottom_box_definition)
        out[str(r.touchpoint)] = entry
    return {"touchpoints": out}


def touchpoint_change_results(changes: pd.DataFrame) -> dict[str, Any]:
    """results.json ``touchpoint_changes``: change of each touchpoint's mean rating, interval, P(increase)."""
    return {
        "touchpoint_changes": {
            str(r.touchpoint): (
                {
                    "mean_change": float(r.mean_change),
                    "interval": interval_pair(r.mean_change_low, r.mean_change_high),
                    "p_increase": float(r.mean_p_increase),
                }
                if getattr(r, "enough", True)
                else {"too_few_answers": True, "n_from": int(r.n_from), "n_to": int(r.n_to)}
            )
            for r in changes.itertuples(index=False)
        }
    }


def touchpoint_target_results(tracking: pd.DataFrame, min_answers: int | None = None) -> dict[str, Any]:
    """results.json ``touchpoint_targets``: P(top box meets its target) per touchpoint and wave
    (``<touchpoint>_wave<wave>``); a wave with too few answers of the touchpoint (``enough`` False) gets
    ``{n, too_few_answers: true[, min_answers]}`` instead of a probability."""
    out: dict[str, Any] = {}
    for r in tracking.itertuples(index=False):
        key = f"{r.touchpoint}_wave{r.wave}"
        if getattr(r, "enough", True):
            out[key] = float(r.p_meets_target)
        else:
            entry: dict[str, Any] = {"n": int(r.n), "too_few_answers": True}
            if min_answers is not None:
                entry["min_answers"] = int(min_answers)
            out[key] = entry
    return {"touchpoint_targets": out}


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


# --------------------------------------------------------------------------------------------------------
# what a section shows when it has nothing to estimate (the notebook calls these; each says why in one line)


def show_headline(h: Headline, scope: str, segment: Any = "all", market: Any = "all") -> None:
    """The headline banner; with too few answers the shared 'too few answers' statement and the counts."""
    from IPython.display import Markdown, display

    from cxresearch.reports import banner

    title, text = headline_sentences(h, scope, segment, market)
    if h.enough:
        banner(text, level="info", title=title)
        return
    banner(text, level="warning", title=title)
    statement = too_few_statement(h, segment, market)
    if statement:
        display(Markdown(statement))


def counts_only(h: Headline, what: str) -> bool:
    """True (after one line saying so) when the run has too few answers for ``what``: the section then shows
    nothing more."""
    if h.enough:
        return False
    from IPython.display import Markdown, display

    display(
        Markdown(
            f"{what}: {too_few_line(h.n)}, fewer than min_answers = {h.min_answers}; counts only (see the headline)."
        )
    )
    return True


def one_wave_text(waves: Sequence[str]) -> str | None:
    """'One survey wave (1): no change over time to show.' or None with two or more waves."""
    if len(waves) >= 2:
        return None
    which = f" ({waves[0]})" if waves else ""
    return f"One survey wave{which}: no change over time to show."


#: how the data layer's reasons for leaving a survey row out are said (CXData.left_out keys)
def data_text(data: Any, waves: Sequence[str]) -> str:
    """The report's data line: what loading used and left out (:func:`loading_line`) and the survey waves;
    with one wave it says why the report shows no change over time (:func:`one_wave_text`)."""
    parts = [loading_line(data) or ""]
    one = one_wave_text(waves)
    if one:
        parts.append(one)
    elif waves:
        parts.append(f"{len(waves)} survey waves ({', '.join(map(str, waves))}).")
    return "**Data**: " + " ".join(p for p in parts if p)


def league_note(league_min_answers: int, min_answers: int, units_left_out: int, pooled: bool = True) -> str:
    """One sentence under the league table: why a unit needs only ``league_min_answers`` answers there
    (fewer than the ``min_answers`` of the other sections), and how many units had fewer and are left out."""
    why = (
        "partial pooling shrinks a small unit's fair score toward the typical unit, so a few lucky answers cannot "
        "put it at the top"
        if pooled
        else "without partial pooling (setting pooling = false) a small unit's score rests on its own answers "
        "alone, so read its interval before its position"
    )
    left = f"{int(units_left_out):,} unit{'' if units_left_out == 1 else 's'}"
    return (
        f"Units need only league_min_answers = {int(league_min_answers)} answers to be ranked, not min_answers = "
        f"{int(min_answers)} as elsewhere in this report: {why}; units with fewer answers are left out and "
        f"counted ({left} in this run)."
    )
