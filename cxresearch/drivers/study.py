"""The drivers notebook's steps: which fit a run reports on (:func:`fit_for_run`) and on which answers
(:func:`run_rows`), then business-readable tables and sentences. The modelling itself lives in fit / effects."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cxresearch.drivers.outcome import outcome_words
from cxresearch.reports.display import format_interval, format_pct


def wave_rows(fit: Any, wave: str) -> np.ndarray | None:
    """Mask of the model rows in ``wave`` (None for "all"); raises naming the waves present."""
    if wave in (None, "all", ""):
        return None
    frame = fit.prep.frame
    if "wave" not in frame.columns:
        raise ValueError("impact_wave: the data has no wave column; use 'all'")
    waves = sorted(frame["wave"].astype("string").unique().tolist())
    if str(wave) not in waves:
        raise ValueError(f"impact_wave {wave!r} is not in the data (waves: {waves})")
    return (frame["wave"].astype("string") == str(wave)).to_numpy()


def fit_for_run(
    data: Any, model: Any, *, pooled: bool, cache_dir: str | None = None, **settings: Any
) -> tuple[Any, dict[str, Any] | None]:
    """The fit a run reports on, and its provenance (None for a fit of this run's answers only).

    ``pooled``: ``data`` holds every segment and market; the hierarchical model of all of them is fitted
    once and, with ``cache_dir``, shared by every run of the study (:func:`cxresearch.drivers.store.shared_fit`).
    Otherwise ``data`` is this run's answers and the model is fitted to them.
    """
    from cxresearch import record_result
    from cxresearch.drivers.fit import fit_driver_model

    shared: dict[str, Any] | None
    if pooled and cache_dir:
        from cxresearch.drivers.store import shared_fit

        fit, shared = shared_fit(data.survey, model, cache_dir, dataset_spec=data.spec, **settings)
    else:
        fit = fit_driver_model(data, model, **settings)
        shared = {"key": None, "path": None, "reused": False, "waited_s": 0.0} if pooled else None
    record_result(
        "fit",
        {
            "scope": "pooled" if pooled else "run",
            "answers_fitted": int(fit.prep.n),
            "shared": None if shared is None else {k: shared[k] for k in ("key", "reused")},
            "timings_s": {k: round(float(v), 1) for k, v in fit.timings.items()},
        },
    )
    return fit, shared


def run_rows(fit: Any, segment: Any = "all", market: Any = "all", wave: str = "all") -> np.ndarray | None:
    """Mask of the model rows a run reports on: its segment, market and wave (None: every row).

    Used when one hierarchical fit of every answer is shared by the runs of a study: each run averages
    impacts over its own customers, with their own segment and market coefficients. Raises when the run's
    segment or market has no answers in the fit, naming the values present.
    """
    frame = fit.prep.frame
    mask = np.ones(fit.prep.n, dtype=bool)
    for dim, value in (("segment", segment), ("market", market)):
        if value in (None, "all", ""):
            continue
        if dim not in frame.columns:
            raise ValueError(f"{dim} {value!r}: the fitted data has no {dim} column")
        wanted = [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        present = frame[dim].astype("string")
        missing = sorted(set(wanted) - set(present.dropna().unique().tolist()))
        if missing:
            raise ValueError(
                f"{dim} {missing} has no answers in the fitted data "
                f"({dim}s: {sorted(present.dropna().unique().tolist())})"
            )
        mask &= present.isin(wanted).fillna(False).to_numpy()
    waves = wave_rows(fit, wave)
    if waves is not None:
        mask &= waves
    if not mask.any():
        raise ValueError(f"no answers for segment {segment!r}, market {market!r}, wave {wave!r} in the fitted data")
    return None if mask.all() else mask


def scope_line(
    fit: Any, segment: Any, market: Any, wave: str, rows: np.ndarray | None = None, shared: dict[str, Any] | None = None
) -> Any:
    """One Markdown line: which customers this report covers and which answers the model was fitted to.

    ``rows``: the mask of this run's answers (see :func:`run_rows`); ``shared``: the provenance of a fit
    shared by the runs of a study (:func:`cxresearch.drivers.store.shared_fit`), None for a fit of this
    run's answers only.
    """
    from IPython.display import Markdown

    prep = fit.prep
    scope = []
    scope.append("all segments" if segment in (None, "all") else f"segment {segment}")
    scope.append("all markets" if market in (None, "all") else f"market {market}")
    n_rows = prep.n if rows is None else int(np.count_nonzero(rows))
    dropped = "; ".join(f"{k} ({v} rows)" for k, v in prep.dropped_rows.items())
    left_out = "; ".join(f"{k}: {v}" for k, v in prep.dropped_touchpoints.items())
    text = (
        f"**Scope:** {', '.join(scope)}; impacts averaged over its {n_rows:,} answers "
        f"({'every wave' if wave in (None, 'all') else f'wave {wave}'}); method: {fit.diagnostics().method}."
    )
    if shared is not None:
        text += (
            f" The model is one hierarchical fit of all {prep.n:,} answers (every segment and market, "
            f"partial pooling){', shared by every report of this study' if shared.get('path') else ''}"
            f"{' (fitted by an earlier run, loaded)' if shared.get('reused') else ''}."
        )
    if dropped:
        text += f" Rows left out: {dropped}."
    if left_out:
        text += f" Touchpoints left out (too few users): {left_out}."
    return Markdown(text)


def impact_table(summary: Any) -> pd.DataFrame:
    """Impact per touchpoint in the outcome's unit, ranked by benefit (the good direction)."""
    t = summary.touchpoint_table()
    words = summary.words
    col = summary.impact_column
    imp = summary.impacts.set_index("touchpoint")
    out = pd.DataFrame(
        {
            "Rank": [f"{r:.1f}" for r in t.expected_rank],
            "Touchpoint": t.label,
            "Users": [format_pct(u) for u in t.users],
            f"Impact ({words.unit})": [
                format_interval(r[col], r[f"{col}_low"], r[f"{col}_high"], words.decimals) for _, r in t.iterrows()
            ],
            "P(top 3)": [format_pct(p) for p in t.p_top3],
            f"P(improving it moves {words.measure} {words.good})": [
                format_pct(p) for p in summary.ranking.set_index("touchpoint").loc[t.touchpoint, "p_good_direction"]
            ],
            "Rank by size": [
                f"{r:.1f}" for r in summary.ranking.set_index("touchpoint").loc[t.touchpoint, "rank_by_size"]
            ],
        }
    )
    extra = {"impact_promoter": "Promoters (pts)", "impact_detractor": "Detractors (pts)"}
    extra["impact_top_box"] = f"Top answer {words.label} (share pts)"
    for column, header in extra.items():
        if column in imp.columns:
            out[header] = [
                format_interval(imp.loc[tp, column], imp.loc[tp, f"{column}_low"], imp.loc[tp, f"{column}_high"])
                for tp in t.touchpoint
            ]
    return out


def ipa_table(summary: Any) -> pd.DataFrame:
    words = summary.words
    ipa = summary.importance_performance.sort_values("p_fix_first", ascending=False)
    return pd.DataFrame(
        {
            "Touchpoint": ipa.label,
            f"Importance ({words.unit_short} gained)": [
                format_interval(r.importance, r.importance_low, r.importance_high, words.decimals)
                for r in ipa.itertuples()
            ],
            "Mean rating": [f"{m:.2f}" for m in ipa.mean_rating],
            "Quadrant": ipa.quadrant,
            "P(fix first)": [format_pct(p) for p in ipa.p_fix_first],
        }
    )


def kano_table(summary: Any) -> pd.DataFrame:
    k = summary.kano.merge(summary.impacts[["touchpoint", "label"]], on="touchpoint")
    return pd.DataFrame(
        {
            "Touchpoint": k.label,
            "Penalty (bad vs neutral)": [
                format_interval(r.penalty, r.penalty_low, r.penalty_high, 2) for r in k.itertuples()
            ],
            "Reward (great vs neutral)": [
                format_interval(r.reward, r.reward_low, r.reward_high, 2) for r in k.itertuples()
            ],
            "Kano class": k.kano,
            "P(class)": [format_pct(p) for p in k.p_kano],
        }
    )


def root_cause_table(summary: Any) -> pd.DataFrame:
    rc = summary.root_causes
    return pd.DataFrame(
        {
            "Touchpoint": rc.label,
            "Customers with a bad experience": [format_pct(s, 1) for s in rc.share_bad_experience],
            "Extra detractor risk (pts)": [
                format_interval(r.excess_detractor_risk_pts, r.excess_low, r.excess_high) for r in rc.itertuples()
            ],
            "Share of detractors explained": [
                f"{format_pct(r.share_of_detractors_explained, 1)} "
                f"({format_pct(r.explained_low, 1)} to "
                f"{format_pct(r.explained_high, 1)})"
                for r in rc.itertuples()
            ],
        }
    )


def effects_table(summary: Any) -> pd.DataFrame:
    e = summary.effects[summary.effects.term == "slope"]
    wide = e.pivot(index="touchpoint", columns="effect", values=["mean", "low", "high"])
    labels = summary.impacts.set_index("touchpoint")["label"]
    order = summary.ranking.touchpoint
    return pd.DataFrame(
        {
            "Touchpoint": [labels[t] for t in order],
            **{
                name.capitalize(): [
                    format_interval(
                        wide.loc[t, ("mean", name)], wide.loc[t, ("low", name)], wide.loc[t, ("high", name)], 2
                    )
                    for t in order
                ]
                for name in ("direct", "indirect", "total")
            },
        }
    )


def paths_table(summary: Any) -> pd.DataFrame:
    p = summary.paths
    return pd.DataFrame(
        {
            "Path": p.source + " -> " + p.target,
            "Kind": p.kind,
            "Coefficient": [format_interval(r.mean, r.low, r.high, 2) for r in p.itertuples()],
            "Standardised": [
                format_interval(r.std_mean, r.std_low, r.std_high, 2) if not pd.isna(r.std_mean) else ""
                for r in p.itertuples()
            ],
            "P(> 0)": [format_pct(v) for v in p.p_positive],
        }
    )


def shared_slopes_text(prep: Any) -> str | None:
    """Words for the groupings whose levels have too few answers for their own touchpoint slopes (their levels
    shift the baseline only; ``DriverModelSpec.group_slopes_min_answers``), or None when there are none."""
    if not prep.shared_slopes:
        return None
    need = prep.resolved.spec.group_slopes_min_answers
    parts = [
        f"**{g}** ({len(prep.levels[g])} levels, a median of {median:g} answers per level)"
        for g, median in prep.shared_slopes.items()
    ]
    return (
        f"Too few answers to estimate driver strengths per level of {', '.join(parts)}: at least {need:g} per "
        "level on the median are needed. Those levels share the drivers' strengths and shift only the baseline, "
        "so no differences between them are shown."
    )


def group_table(summary: Any, threshold: float = 0.95) -> pd.DataFrame:
    pw = summary.pairwise_differences
    if pw.empty:
        return pd.DataFrame()
    clear = pw[(pw.p_positive >= threshold) | (pw.p_positive <= 1 - threshold)]
    labels = summary.impacts.set_index("touchpoint")["label"]
    return pd.DataFrame(
        {
            "Dimension": clear.dimension,
            "Comparison": clear.level_a + " vs " + clear.level_b,
            "Touchpoint": [labels[t] for t in clear.touchpoint],
            "Slope difference (per 10% of the range)": [
                format_interval(r.mean, r.low, r.high, 2) for r in clear.itertuples()
            ],
            "P(difference > 0)": [format_pct(v) for v in clear.p_positive],
        }
    )


def diagnostics_table(fit: Any) -> pd.DataFrame:
    """The gate's figures for the report (:func:`cxresearch.reports.gate_table`) with the fit's time."""
    from cxresearch.reports import gate_table

    return gate_table(fit.diagnostics(), {"Time (s)": f"{fit.timings.get('total_s', float('nan')):.0f}"})


def model_description(fit: Any) -> str:
    """A plain description of the fitted path model (constructs, paths, groups)."""
    prep = fit.prep
    r = prep.resolved
    lines = ["**The model.** "]
    others = [n for n, c in r.constructs.items() if c.kind != "touchpoint"]
    parts = []
    for n in others:
        c = r.constructs[n]
        how = (
            "latent (measurement model)"
            if c.mode == "latent" and len(c.items) > 1
            else f"composite of {len(c.items)} item(s)"
            if n not in prep.outcomes or prep.likelihood(n) == "gaussian"
            else f"{prep.likelihood(n).replace('_', ' ')} outcome"
        )
        parts.append(f"{n} ({how})")
    lines.append(f"{len(prep.touchpoints)} touchpoint experiences; " + "; ".join(parts) + ". ")
    paths = sorted({f"{'touchpoints' if p.source in prep.touchpoints else p.source} -> {p.target}" for p in r.paths})
    lines.append("Paths: " + ", ".join(paths) + ". ")
    varying = prep.resolved.spec.varying
    if prep.slope_groupings:
        what = "Slopes and intercepts" if "intercept" in varying else "Slopes"
        lines.append(f"{what} vary by {' and '.join(prep.slope_groupings)} (partial pooling). ")
    shifted = [g for g in prep.group_dims if g not in prep.slope_groupings] if "intercept" in varying else []
    if shifted:
        sparse = " (too few answers per level for its own slopes)"
        named = [g + sparse if g in prep.shared_slopes else g for g in shifted]
        lines.append(f"Intercepts alone vary by {' and '.join(named)}. ")
    lines.append(
        "A not-used touchpoint keeps the respondent (a used / not-used term); bottom-box and top-box "
        "terms capture asymmetric effects."
    )
    return "".join(lines)


def ecsi_table(table: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"Path": table.source + " -> " + table.target, "SmartPLS": table.smartpls.map("{:.3f}".format)})
    for mode in ("composite", "latent"):
        if mode in table:
            out[f"Ours, {mode}"] = [
                format_interval(r[mode], r[f"{mode}_low"], r[f"{mode}_high"], 3) for _, r in table.iterrows()
            ]
            out[f"Difference ({mode})"] = table[f"{mode}_diff"].map("{:+.3f}".format)
    return out


def ecsi_verdict(table: pd.DataFrame, fits: dict[str, Any]) -> str:
    lines = []
    if "composite" in table:
        worst = table.composite_diff.abs().max()
        same = bool(table.composite_same_sign.all())
        lines.append(
            f"Composite mode: largest difference from SmartPLS {worst:.3f} "
            f"({'within' if worst <= 0.10 else 'OUTSIDE'} 0.10), signs "
            f"{'all the same' if same else 'NOT all the same'}."
        )
    if "latent" in table:
        top = table.latent.abs().max()
        lines.append(f"Latent mode: largest standardised path {top:.2f} ({'none above 1' if top <= 1 else 'ABOVE 1'}).")
    for mode, fit in fits.items():
        d = fit.diagnostics()
        lines.append(
            f"{mode.capitalize()} fit diagnostics: {'passed' if d.passed else 'NOT passed: ' + '; '.join(d.reasons)}."
        )
    return " ".join(lines)


# --------------------------------------------------------------------------------------------------------
# words that follow the outcome (kind and direction) and the run's number of answers
# --------------------------------------------------------------------------------------------------------
def report_intro(fit: Any) -> Any:
    """The report's opening paragraph, naming the outcome and its unit (:mod:`cxresearch.drivers.outcome`)."""
    from IPython.display import Markdown

    words = outcome_words(fit.prep)
    through = f" through {', '.join(words.mediators)}" if words.mediators else ""
    text = (
        f"Which customer experiences (touchpoints) move **{words.label}**{through}, how sure we are, and which to "
        f"fix first. Impacts are in {words.unit}. Every number comes with a **90% interval**: we are 90% sure "
        "the true value lies inside it."
    )
    if words.direction_note():
        text += " " + words.direction_note()
    return Markdown(text)


def section_text(summary: Any, name: str) -> Any:
    """The explanation under a report section's heading, in the outcome's words."""
    from IPython.display import Markdown

    words = summary.words
    measure = "recommendation" if words.kind == "nps" else words.measure
    chain = f"better experience -> {' -> '.join(words.mediators)} -> {measure}" if words.mediators else f"-> {measure}"
    texts = {
        "impacts": (
            f"For each touchpoint: how much {words.measure} would change ({words.unit}) if every customer who used "
            f"it rated it higher by {summary.improvement}. The number is computed through the fitted model, "
            f"customer by customer ({chain}). The three darker bars are the ones to fix first."
        ),
        "ranking": (
            "The model is not certain of the order. Each cell is the probability that the touchpoint holds that "
            "rank (1 = the largest benefit"
            + ("" if words.higher_is_better else f", i.e. the largest fall in {words.measure}")
            + "). A touchpoint whose probability is spread over several ranks is close to its neighbours; one with "
            "a dark cell is clearly placed."
        ),
        "ipa": (
            f"Importance: the benefit ({words.unit_short}) of a better experience. Performance: how its users rate it "
            "today (0 = bottom of the scale, 1 = top). **Fix first** = more important than the median touchpoint "
            "*and* rated below the median touchpoint. Because both are uncertain, each touchpoint carries the "
            "probability of being in the fix-first quadrant."
        ),
        "kano": (
            "Some touchpoints only hurt when they fail (**must-be**: fix the failures), some only help when "
            "excellent (**delighter**, a *moment of truth*: make them outstanding), some count at every step "
            f"(**performance**), and some barely matter (**indifferent**). Penalty = how much a worst experience "
            f"hurts {measure} compared with a neutral one; reward = how much a best one helps. Classes are this "
            "report's customers' own: their segment's and market's slopes, penalties and rewards (partially "
            "pooled with the other groups) enter."
        ),
        "effects": (
            f"A touchpoint acts on {measure} *indirectly*, through {', '.join(words.mediators)}, and *directly*. "
            if words.mediators
            else f"Each touchpoint acts on {measure} directly (the model has no mediator). "
        )
        + f"Effects are per 10% of the scale range, on the log-odds (or standardised value) of {words.label}.",
        "segments": (
            "Driver strengths are estimated for every group together (*partial pooling*): small groups borrow "
            "strength from the others. Below: where a group's driver differs from the average, with the "
            "probability that the difference is real (P > 0.95 or < 0.05 is a clear difference)."
        ),
        "checks": (
            "The model must reproduce the answers it was fitted to (posterior predictive check: bars = observed "
            "shares, dots = what the model predicts, with 90% intervals), and the sampler must have converged "
            "(R-hat, effective sample sizes, divergences: see the banner at the top)."
        ),
    }
    if name == "root_causes":
        if words.kind == "nps":
            return Markdown(
                "Which bad experiences (the bottom box of each scale) create detractors: how much more likely a "
                "customer with a bad experience is to be a detractor than had it been just above the bottom box, "
                "and the share of all detractors it explains."
            )
        return Markdown(
            f"Left out: this section needs a 0-10 outcome split into classes; the outcome here is {words.kind} "
            f"({words.measure}). The impacts and Kano penalties above show which bad experiences matter."
        )
    return Markdown(texts[name])


def answers_in_scope(fit: Any, rows: np.ndarray | None) -> int:
    """The number of answers a run reports on (its rows of the fit; all when ``rows`` is None)."""
    return int(fit.prep.n if rows is None else np.count_nonzero(rows) if np.asarray(rows).dtype == bool else len(rows))


def too_few_answers(n_answers: int, min_answers: int, segment: Any = "all", market: Any = "all") -> str | None:
    """The statement a report shows instead of driver numbers when its group has fewer than ``min_answers``
    answers (None when there are enough); the wording every study shares (:mod:`cxresearch.reports.small_n`)."""
    from cxresearch.reports.small_n import too_few_answers as statement

    return statement(n_answers, min_answers, segment, market)


def has_estimates(summary: Any, statement: str | None = None) -> bool:
    """True when the run has driver numbers; otherwise shows the reason (too few answers) and returns False."""
    from IPython.display import Markdown, display

    if summary is not None:
        return True
    # the full statement is at the top of the report; each section says why it is empty in one line
    display(
        Markdown(
            "*No driver numbers: too few answers (see the top of the report).*"
            if statement
            else "*No driver numbers for this run.*"
        )
    )
    return False


# --------------------------------------------------------------------------------------------------------
# how well the model predicts answers it did not see (cxresearch.drivers.evaluate)
# --------------------------------------------------------------------------------------------------------
def validation_for_run(
    data: Any,
    model: Any,
    fit: Any,
    *,
    validation: str,
    folds: int = 5,
    share: float = 0.2,
    wave: str = "",
    split: str = "",
    draws: int = 1000,
    cache_dir: str | None = None,
    **fit_settings: Any,
) -> Any:
    """The held-out evaluation a run reports (None when ``validation`` is "none").

    The driver model is refitted on each training part with the run's sampler settings (``draws`` per chain)
    and scored with the baselines on the held-out answers. With ``cache_dir`` it is computed once and shared
    by every run of the study (each report reads its own customers' rows of it); PSIS-LOO of ``fit`` is added.
    """
    from cxresearch.drivers.evaluate import evaluate_drivers, loo_summary, shared_evaluation

    if validation == "none":
        return None
    settings = dict(fit_settings, draws=draws)
    split_settings: dict[str, Any] = {
        "scheme": validation,
        "folds": folds,
        "holdout_share": share,
        "holdout_wave": wave or None,
        "split_column": split or None,
    }
    if cache_dir:
        evaluation, reused = shared_evaluation(data, model, cache_dir, **split_settings, **settings, fitted=fit)
        evaluation.reused = reused
        return evaluation
    evaluation = evaluate_drivers(data, model, **split_settings, **settings)
    evaluation.loo = loo_summary(fit)
    return evaluation


def validation_rows(evaluation: Any, segment: Any = "all", market: Any = "all") -> np.ndarray | None:
    """Mask of the held-out answers of this run's segment and market (None: every held-out answer)."""
    mask = np.ones(len(evaluation.rows), dtype=bool)
    for dim, value in (("segment", segment), ("market", market)):
        if value in (None, "all", "") or dim not in evaluation.rows.columns:
            continue
        wanted = [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        mask &= evaluation.rows[dim].astype("string").isin(wanted).fillna(False).to_numpy()
    return None if mask.all() else mask


def validation_scope(
    evaluation: Any, segment: Any = "all", market: Any = "all", min_answers: int = 30
) -> tuple[np.ndarray | None, str]:
    """(rows the report scores, a note): this run's held-out answers, or every held-out answer with a note
    when the run has fewer than ``min_answers`` of them (too few to score on their own)."""
    rows = validation_rows(evaluation, segment, market)
    if rows is None:
        return None, ""
    n = int(rows.sum())
    events = evaluation.events
    if events.likelihood != "gaussian":
        y = evaluation.rows["y"].to_numpy()[rows].astype(int)
        both = len(np.unique(events.events[events.main][y])) == 2 if n else False
    else:
        both = n > 2
    if n >= min_answers and both:
        return rows, f"Scored on this report's {n:,} held-out answers."
    return None, (
        f"This report's customers have {n:,} held-out answers: too few to score on their own "
        f"(fewer than {min_answers}, or all in one class); the figures below are the whole survey's."
    )


def validation_table(evaluation: Any, rows: np.ndarray | None = None) -> pd.DataFrame:
    """The analyst's table: one row per model (ours first), its held-out metrics and median fit time."""
    table = evaluation.table(rows)
    names = [
        "driver model (ours)" if m == "driver model" else f"{evaluation.display_name(m)} (baseline)"
        for m in table.index.astype(str)
    ]
    table = table.rename(columns=lambda c: c.replace("_", " ")).reset_index(drop=True)
    table.insert(0, "model", names)
    return table


def validation_formats(table: pd.DataFrame) -> dict[str, str]:
    """Number formats of :func:`validation_table` for :func:`cxresearch.reports.show_table`."""
    formats = {c: "{:.3f}" for c in table.columns if c not in ("model", "answers", "fit time (s)")}
    return {**formats, "answers": "{:,.0f}", "fit time (s)": "{:.1f}"}


def validation_markdown(evaluation: Any, rows: np.ndarray | None = None, note: str = "") -> Any:
    """The business sentence, the scheme and the evaluation fits' gate, and PSIS-LOO for the analyst."""
    from IPython.display import Markdown

    from cxresearch.drivers.evaluate import loo_text

    passed, total, reasons = evaluation.gates()
    gate = (
        f"All {total} evaluation fits passed the diagnostics gate."
        if passed == total
        else f"{total - passed} of {total} evaluation fits FAILED the diagnostics gate ({'; '.join(reasons[:2])})."
    )
    left = "; ".join(f"{v:,} {k}" for k, v in evaluation.left_out.items())
    mask = np.ones(len(evaluation.rows), dtype=bool) if rows is None else rows
    unseen = int(evaluation.rows["unseen_level"].to_numpy()[mask].sum())
    parts = [
        f"*For the analyst:* {evaluation.scheme}; the model is refitted on each training part and predicts the "
        "held-out respondents from their ratings and groups; the baselines are fitted on the same parts.",
        gate,
        note,
        f"Held-out answers left out: {left}." if left else "",
        f"{unseen:,} held-out answers are in a group level their training part did not have: predicted at the "
        "population level."
        if unseen
        else "",
    ]
    text = (
        f"{evaluation.summary_sentence(rows)}\n\n" + " ".join(p for p in parts if p) + f"\n\n{loo_text(evaluation.loo)}"
    )
    return Markdown(text)


def record_validation(evaluation: Any, rows: np.ndarray | None = None, note: str = "") -> dict[str, Any]:
    """Record ``validation`` in results.json: our metrics, the baselines', the scheme, the gates."""
    from cxresearch import record_result

    payload = evaluation.to_dict(rows)
    payload["scope"] = "this report's customers" if rows is not None else "every held-out answer"
    if note:
        payload["note"] = note
    return record_result("validation", payload)
