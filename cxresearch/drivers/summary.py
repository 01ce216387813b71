"""One call from a fitted driver model to every table the report shows, the results.json keys, and the
first-screen text for a business reader ("fix these three first, and why")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.diagnostics import Diagnostics, as_dict
from cxresearch.drivers import effects as fx
from cxresearch.drivers.fit import DriverFit
from cxresearch.drivers.outcome import OutcomeWords, outcome_words


@dataclass
class DriverSummary:
    """All outputs of a driver study, each with 90% intervals or probabilities."""

    fit: DriverFit
    posterior: fx.Posterior
    impact_draws: dict[str, np.ndarray]
    impacts: pd.DataFrame
    ranking: pd.DataFrame
    importance_performance: pd.DataFrame
    kano: pd.DataFrame
    effects: pd.DataFrame
    paths: pd.DataFrame
    root_causes: pd.DataFrame | None
    group_differences: pd.DataFrame
    pairwise_differences: pd.DataFrame
    ppc: pd.DataFrame
    top3: list[str]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def words(self) -> OutcomeWords:
        """How the outcome is spoken of (kind, unit, direction: :mod:`cxresearch.drivers.outcome`)."""
        return outcome_words(self.fit.prep)

    @property
    def improvement(self) -> str:
        """The improvement impacts are read for, in words (e.g. '10% of the scale range (0.4 points on 1-5)')."""
        prep = self.fit.prep
        return fx.improvement_text(
            [prep.scales[t] for t in prep.touchpoints], self.settings.get("improvement_share", fx.IMPROVEMENT_SHARE)
        )

    @property
    def diagnostics(self) -> Diagnostics:
        """The fit's gate verdict (:meth:`cxresearch.drivers.fit.DriverFit.diagnostics`)."""
        return self.fit.diagnostics()

    @property
    def impact_column(self) -> str:
        return self.words.column

    def touchpoint_table(self) -> pd.DataFrame:
        """One row per touchpoint: impact, rank, performance, P(fix first), Kano class."""
        col = self.impact_column
        out = (
            self.impacts[["touchpoint", "label", "users", col, f"{col}_low", f"{col}_high"]]
            .merge(self.ranking[["touchpoint", "expected_rank", "p_top3"]], on="touchpoint")
            .merge(
                self.importance_performance[["touchpoint", "mean_rating", "p_fix_first", "quadrant"]], on="touchpoint"
            )
            .merge(self.kano[["touchpoint", "kano", "p_kano"]], on="touchpoint")
        )
        return out.sort_values("expected_rank").reset_index(drop=True)


def summarize_drivers(
    fit: DriverFit,
    rows: Any = None,
    max_draws: int = 1000,
    population: bool = True,
    kano_threshold: float = 0.25,
    seed: int = 0,
    max_rows: int = 50_000,
    improvement_share: float = fx.IMPROVEMENT_SHARE,
) -> DriverSummary:
    """Compute every output of the driver study from a fit.

    Impacts are read for a rise of ``improvement_share`` of each touchpoint's scale range (default 10%: the
    same meaning on 1-5, 0-10 and 1-100 scales; 0.25 on a 1-5 scale is one step).

    ``rows``: the model rows to average impacts over (mask or indices; default all). Above ``max_rows``
    rows a random subsample of that size is used for the averages (the Bayesian bootstrap then reflects a
    sample of ``max_rows`` customers: intervals a little wider, never narrower, than with every row).
    """
    sel = fx._selection(fit, rows)
    # Kano classes are the group's own when the run covers part of the answers (a segment or a market)
    group_rows = None if len(sel) == fit.prep.n else sel
    if len(sel) > max_rows:
        sel = np.sort(np.random.default_rng(seed).choice(sel, size=max_rows, replace=False))
    rows = sel
    post = fx.posterior(fit, max_draws=max_draws, seed=seed)
    draws = fx.impact_draws(post, rows=rows, population=population, seed=seed, share=improvement_share)
    impacts = fx.impact_table(post, draws, rows=rows)
    ranking = fx.driver_ranking(post, draws)
    ipa = fx.importance_performance(post, draws, seed=seed, rows=rows)
    kano = fx.kano_classes(post, threshold=kano_threshold, rows=group_rows)
    effects = pd.concat(
        [
            fx.touchpoint_effects(post, term)
            for term in ("slope", "penalty", "reward")
            if term in fx.touchpoint_total_terms(post)[fit.prep.outcome]
        ],
        ignore_index=True,
    )
    paths = fx.path_coefficients(post, rows=rows)
    root = None
    if fx._outcome_kind(fit.prep) == "nps" and fit.prep.touchpoints:
        root = fx.detractor_root_causes(post, rows=rows, population=population, seed=seed)
    groups = fx.group_differences(post)
    pairwise = fx.pairwise_group_differences(post)
    ppc = fx.posterior_predictive_check(post, seed=seed, rows=rows)
    top3 = ranking["touchpoint"].head(3).tolist()
    return DriverSummary(
        fit=fit,
        posterior=post,
        impact_draws=draws,
        impacts=impacts,
        ranking=ranking,
        importance_performance=ipa,
        kano=kano,
        effects=effects,
        paths=paths,
        root_causes=root,
        group_differences=groups,
        pairwise_differences=pairwise,
        ppc=ppc,
        top3=top3,
        settings={
            "max_draws": max_draws,
            "population": population,
            "kano_threshold": kano_threshold,
            "rows_averaged": int(len(rows)),
            "improvement_share": improvement_share,
        },
    )


def results_dict(summary: DriverSummary) -> dict[str, Any]:
    """The results.json payload: diagnostics, per-touchpoint impact / P(fix first) / Kano, paths, top3."""
    out: dict[str, Any] = {"diagnostics": as_dict(summary.diagnostics)}
    words = summary.words
    out["outcome"] = {
        "construct": words.construct,
        "kind": words.kind,
        "unit": words.unit,
        "higher_is_better": words.higher_is_better,
        "improvement": summary.improvement,
        "improvement_share": summary.settings.get("improvement_share", fx.IMPROVEMENT_SHARE),
    }
    col = summary.impact_column
    tps: dict[str, Any] = {}
    ipa = summary.importance_performance.set_index("touchpoint")
    kano = summary.kano.set_index("touchpoint")
    rank = summary.ranking.set_index("touchpoint")
    for _, row in summary.impacts.iterrows():
        tp = row["touchpoint"]
        entry = {
            col: {"mean": row[col], "interval": [row[f"{col}_low"], row[f"{col}_high"]]},
            "p_fix_first": ipa.loc[tp, "p_fix_first"],
            "kano": kano.loc[tp, "kano"],
            "p_kano": kano.loc[tp, "p_kano"],
            "p_top3": rank.loc[tp, "p_top3"],
            "expected_rank": rank.loc[tp, "expected_rank"],
            "p_good_direction": rank.loc[tp, "p_good_direction"],
        }
        if "impact_top_box" in row:
            entry["impact_top_box_pts"] = {
                "mean": row["impact_top_box"],
                "interval": [row["impact_top_box_low"], row["impact_top_box_high"]],
            }
        for share in ("promoter", "detractor"):
            if f"impact_{share}" in row:
                entry[f"impact_{share}_pts"] = {
                    "mean": row[f"impact_{share}"],
                    "interval": [row[f"impact_{share}_low"], row[f"impact_{share}_high"]],
                }
        tps[tp] = entry
    out["touchpoints"] = tps
    paths: dict[str, Any] = {}
    for _, row in summary.paths.iterrows():
        entry = {"mean": row["mean"], "interval": [row["low"], row["high"]]}
        if not pd.isna(row.get("std_mean", np.nan)):
            entry["standardised"] = {"mean": row["std_mean"], "interval": [row["std_low"], row["std_high"]]}
        paths[f"{row['source']}__{row['target']}"] = entry
    out["paths"] = paths
    out["top3"] = list(summary.top3)
    prep = summary.fit.prep
    # groupings whose levels had too few answers for their own driver strengths (median answers per level)
    out["shared_slopes"] = {g: {"median_answers_per_level": m} for g, m in prep.shared_slopes.items()}
    return out


def record_driver_results(
    summary: DriverSummary | None, prefix: str = "", too_few: str | None = None, fit: DriverFit | None = None
) -> dict[str, Any]:
    """Record the results.json keys through :func:`cxresearch.record_result`; returns the payload.

    ``summary`` None (a run with too few answers): records ``too_few_answers`` (the statement) and a headline
    saying so, and no driver numbers."""
    from cxresearch import record_result
    from cxresearch.results import record_headline

    if summary is None:
        payload: dict[str, Any] = {"too_few_answers": too_few or "no driver numbers for this run"}
        if fit is not None:
            payload["diagnostics"] = as_dict(fit.diagnostics())
        for key, value in payload.items():
            record_result(f"{prefix}{key}", value)
        record_headline("Driver estimates", "too few answers", "", None)
        return payload
    payload = results_dict(summary)
    for key, value in payload.items():
        record_result(f"{prefix}{key}", value)
    for label, value, unit, interval in headline_rows(summary):
        record_headline(label, value, unit, interval)
    return payload


def headline_rows(summary: DriverSummary) -> list[tuple[str, Any, str, list[float] | None]]:
    """The index's headline: the diagnostics verdict, then the top-3 drivers with their impact.

    (label, value, unit, interval) rows; the impact is in the outcome's unit (:mod:`.outcome`).
    """
    d = summary.diagnostics
    verdict = "passed" if d.get("passed") else "FAILED: do not use"
    if summary.fit.approximate:
        verdict += " (approximate method)"
    rows: list[tuple[str, Any, str, list[float] | None]] = [("Model diagnostics", verdict, "", None)]
    col = summary.impact_column
    unit = summary.words.unit_short
    impacts = summary.impacts.set_index("touchpoint")
    for rank, tp in enumerate(summary.top3, start=1):
        r = impacts.loc[tp]
        rows.append(
            (
                f"Driver #{rank}: {r.get('label', tp)}",
                float(r[col]),
                unit,
                [float(r[f"{col}_low"]), float(r[f"{col}_high"])],
            )
        )
    return rows


def _likelihood_words(p: float) -> str:
    if p >= 0.95:
        return "almost certainly"
    if p >= 0.8:
        return "very likely"
    if p >= 0.6:
        return "likely"
    if p >= 0.4:
        return "about as likely as not"
    return "unlikely"


def kano_words(kind: str, measure: str) -> str:
    """One sentence per Kano class, naming what the outcome is (e.g. 'recommendation', 'P(churned)')."""
    return {
        "must-be": f"a must-be: a bad experience hurts {measure} much more than a great one helps, so fix the failures",
        "performance": "a performance driver: every step up in the rating counts",
        "delighter": f"a moment of truth (delighter): a great experience helps {measure} much more than a poor "
        "one hurts, so invest in making it excellent",
        "indifferent": f"indifferent: its rating barely moves {measure}",
    }[kind]


def fix_first_markdown(summary: DriverSummary) -> str:
    """First-screen text: which 3 touchpoints to fix first and why, with uncertainty in plain words."""
    fit = summary.fit
    words = summary.words
    table = summary.touchpoint_table().set_index("touchpoint")
    col = summary.impact_column
    lines = []
    d = summary.diagnostics
    if not d.get("passed"):
        lines.append(
            "> **Provisional:** the model did not pass its diagnostics "
            f"({'; '.join(d.reasons) or 'see the banner'}); re-run it before acting on these "
            "numbers.\n"
        )
    if fit.approximate:
        lines.append(
            "> **Approximate fit** (ADVI): good for iterating; intervals may be too narrow. Confirm with "
            "the full (NUTS) run before deciding.\n"
        )
    escalated = fit.settings.get("escalated")
    if escalated:
        lines.append(f"> **Sampler settings raised once:** {escalated}\n")
    if not summary.top3:
        lines.append("No touchpoint had enough users to estimate its impact.")
        return "\n".join(lines)
    names = [table.loc[t, "label"] for t in summary.top3]
    lines.append(
        f"### Fix first: {', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else f"### Fix first: {names[0]}"
    )
    lines.append("")
    good = "rise" if words.higher_is_better else "fall"
    lines.append(
        f"Ranked by how much {words.measure} would {good} if the touchpoint's rating rose by {summary.improvement} "
        "for the customers who use it (computed through the fitted model, with 90% intervals)."
    )
    if words.direction_note():
        lines.append(words.direction_note())
    lines.append("")
    ranking = summary.ranking.set_index("touchpoint")
    kano_measure = "recommendation" if words.kind == "nps" else words.measure
    for i, tp in enumerate(summary.top3, start=1):
        r = table.loc[tp]
        sc = fit.prep.scales[tp]
        rank1 = ranking.loc[tp, "p_rank_1"]
        why = (
            f"{i}. **{r['label']}**: {words.amount(r[col])} {words.unit} (90% interval "
            f"{words.amount(r[f'{col}_low'], False)} to {words.amount(r[f'{col}_high'], False)}) for its "
            f"{100 * r['users']:.0f}% of users. "
            f"It is {_likelihood_words(r['p_top3'])} among the three strongest drivers "
            f"(probability {100 * r['p_top3']:.0f}%"
        )
        why += f"; the strongest with probability {100 * rank1:.0f}%)." if i == 1 else ")."
        if ranking.loc[tp, "p_good_direction"] < 0.9:
            why += (
                f" Whether improving it moves {words.measure} the right way at all is uncertain (probability "
                f"{100 * ranking.loc[tp, 'p_good_direction']:.0f}%)."
            )
        why += f" Its users rate it {r['mean_rating']:.1f} out of {sc.max:g}"
        why += (
            ", below most touchpoints: a clear *fix first* (important and poorly rated, probability "
            f"{100 * r['p_fix_first']:.0f}%)."
            if r["quadrant"] == "fix first"
            else f" (probability {100 * r['p_fix_first']:.0f}% of being both important and poorly rated)."
        )
        why += f" It behaves as {kano_words(r['kano'], kano_measure)} ({100 * r['p_kano']:.0f}% sure)."
        lines.append(why)
    joint = _joint_top3_probability(summary)
    lines.append("")
    lines.append(
        f"**How sure are we?** These three are the top three together in {100 * joint:.0f}% of the "
        f"model's plausible scenarios ({_likelihood_words(joint)} the right three)."
    )
    if summary.root_causes is not None and len(summary.root_causes):
        rc = summary.root_causes.iloc[0]
        lines.append(
            f"The bad experience that creates most detractors is **{rc['label']}**: customers with a "
            f"poor {rc['label'].lower()} experience are {rc['excess_detractor_risk_pts']:.0f} points more "
            f"likely to be detractors ({rc['excess_low']:.0f} to {rc['excess_high']:.0f})."
        )
    return "\n".join(lines)


def _joint_top3_probability(summary: DriverSummary) -> float:
    imp = fx.benefit_draws(summary.posterior, summary.impact_draws)
    tps = summary.fit.prep.touchpoints
    idx = sorted(tps.index(t) for t in summary.top3)
    top = np.sort(np.argsort(-imp, axis=1)[:, :3], axis=1)
    return float((top == np.array(idx)[None, :]).all(axis=1).mean())
