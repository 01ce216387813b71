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
    def diagnostics(self) -> Diagnostics:
        """The fit's gate verdict (:meth:`cxresearch.drivers.fit.DriverFit.diagnostics`)."""
        return self.fit.diagnostics()

    @property
    def impact_column(self) -> str:
        return "impact_nps" if "impact_nps" in self.impacts.columns else "impact_outcome"

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
) -> DriverSummary:
    """Compute every output of the driver study from a fit.

    ``rows``: the model rows to average impacts over (mask or indices; default all). Above ``max_rows``
    rows a random subsample of that size is used for the averages (the Bayesian bootstrap then reflects a
    sample of ``max_rows`` customers: intervals a little wider, never narrower, than with every row).
    """
    sel = fx._selection(fit, rows)
    if len(sel) > max_rows:
        sel = np.sort(np.random.default_rng(seed).choice(sel, size=max_rows, replace=False))
    rows = sel
    post = fx.posterior(fit, max_draws=max_draws, seed=seed)
    draws = fx.impact_draws(post, rows=rows, population=population, seed=seed)
    impacts = fx.impact_table(post, draws)
    ranking = fx.driver_ranking(post, draws)
    ipa = fx.importance_performance(post, draws, seed=seed)
    kano = fx.kano_classes(post, threshold=kano_threshold)
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
        },
    )


def results_dict(summary: DriverSummary) -> dict[str, Any]:
    """The results.json payload: diagnostics, per-touchpoint impact / P(fix first) / Kano, paths, top3."""
    out: dict[str, Any] = {"diagnostics": as_dict(summary.diagnostics)}
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
    return out


def record_driver_results(summary: DriverSummary, prefix: str = "") -> dict[str, Any]:
    """Record the results.json keys through :func:`cxresearch.record_result`; returns the payload."""
    from cxresearch import record_result
    from cxresearch.results import record_headline

    payload = results_dict(summary)
    for key, value in payload.items():
        record_result(f"{prefix}{key}", value)
    for label, value, unit, interval in headline_rows(summary):
        record_headline(label, value, unit, interval)
    return payload


def headline_rows(summary: DriverSummary) -> list[tuple[str, Any, str, list[float] | None]]:
    """The index's headline: the diagnostics verdict, then the top-3 drivers with their impact.

    (label, value, unit, interval) rows; the impact is in NPS points for a 0-10 recommend outcome.
    """
    d = summary.diagnostics
    verdict = "passed" if d.get("passed") else "FAILED: do not use"
    if summary.fit.approximate:
        verdict += " (approximate method)"
    rows: list[tuple[str, Any, str, list[float] | None]] = [("Model diagnostics", verdict, "", None)]
    col = summary.impact_column
    unit = "points" if col == "impact_nps" else ""
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


_KANO_WORDS = {
    "must-be": "a must-be: a bad experience hurts much more than a great one helps, so fix the failures",
    "performance": "a performance driver: every step up in the rating counts",
    "delighter": "a moment of truth (delighter): a great experience lifts recommendation much more than a poor "
    "one hurts, so invest in making it excellent",
    "indifferent": "indifferent: its rating barely moves recommendation",
}


def fix_first_markdown(summary: DriverSummary) -> str:
    """First-screen text: which 3 touchpoints to fix first and why, with uncertainty in plain words."""
    fit = summary.fit
    table = summary.touchpoint_table().set_index("touchpoint")
    col = summary.impact_column
    unit = "NPS points" if col == "impact_nps" else "points of the outcome"
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
    names = [table.loc[t, "label"] for t in summary.top3]
    lines.append(
        f"### Fix first: {', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else f"### Fix first: {names[0]}"
    )
    lines.append("")
    lines.append(
        "Ranked by how much NPS would rise if the touchpoint's rating went up one step for the customers "
        "who use it (computed through the fitted model, with 90% intervals):"
    )
    lines.append("")
    scale_note = {}
    for i, tp in enumerate(summary.top3, start=1):
        r = table.loc[tp]
        sc = fit.prep.scales[tp]
        scale_note[tp] = f"{r['mean_rating']:.1f} out of {sc.max:g}"
        rank1 = summary.ranking.set_index("touchpoint").loc[tp, "p_rank_1"]
        why = (
            f"{i}. **{r['label']}**: +{r[col]:.1f} {unit} (90% interval {r[f'{col}_low']:.1f} to "
            f"{r[f'{col}_high']:.1f}) if its {100 * r['users']:.0f}% of users rated it one step higher. "
            f"It is {_likelihood_words(r['p_top3'])} among the three strongest drivers "
            f"(probability {100 * r['p_top3']:.0f}%"
        )
        why += f"; the strongest with probability {100 * rank1:.0f}%)." if i == 1 else ")."
        why += f" Its users rate it {scale_note[tp]}"
        why += (
            ", below most touchpoints: a clear *fix first* (important and poorly rated, probability "
            f"{100 * r['p_fix_first']:.0f}%)."
            if r["quadrant"] == "fix first"
            else f" (probability {100 * r['p_fix_first']:.0f}% of being both important and poorly rated)."
        )
        why += f" It behaves as {_KANO_WORDS[r['kano']]} ({100 * r['p_kano']:.0f}% sure)."
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
    key = fx.impact_main_key(summary.impact_draws)
    imp = summary.impact_draws[key]
    tps = summary.fit.prep.touchpoints
    idx = sorted(tps.index(t) for t in summary.top3)
    top = np.sort(np.argsort(-imp, axis=1)[:, :3], axis=1)
    return float((top == np.array(idx)[None, :]).all(axis=1).mean())
