"""Glue for the economics study notebook: the analysis frame, tables for business readers and the
``results.json`` blocks.

The notebook stays thin: every table and every recorded result comes from one call here or in the
modelling modules of this package. Intervals are at one ``level`` (columns ``low`` / ``high``); results.json
keeps its ``{"mean", "interval": [low, high]}`` shape and diagnostics blocks are
:func:`cxresearch.diagnostics.as_dict` (the same keys as every other study).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.data.nps import NPS_CLASSES
from cxresearch.diagnostics import as_dict
from cxresearch.protocol import DEFAULT_LEVEL, check_level
from cxresearch.reports.display import (
    format_money_exact,
    scope_text,  # noqa: F401  (re-exported for the notebooks)
)

#: Bins that turn the continuous CX covariates into categories for the piecewise-exponential model.
CX_BINS: dict[str, list[float]] = {
    "emotion": [-np.inf, -1.0, 0.0, 1.0, np.inf],
    "bad_experiences": [0.0, 1.0, 2.0, np.inf],
}


def analysis_frame(data: Any, wave: str | None = "1") -> pd.DataFrame:
    """Customers joined with their CX covariates from the survey, plus ``products`` (sum of cross-sell columns,
    1 when the spec declares none). ``nps_class`` is text (missing for customers without an answer, and for
    every customer when the outcome is not a 0-10 recommend answer); ``outcome`` and the survey's groups
    come along for :func:`customer_classes`."""
    from cxresearch.economics.features import customer_cx_features, emotion_items, touchpoint_scales

    if data.customers is None:
        raise ValueError(
            "the dataset has no customer table (spec 'customers:'): tenure, churn and margin "
            "are needed for the economics study"
        )
    if data.survey is None or data.spec.survey is None:  # a customers table alone: classes from its groupings
        frame = data.customers.copy()
        frame["nps_class"] = pd.Series(pd.NA, index=frame.index, dtype="string")
    else:
        survey_spec = data.spec.survey
        carry = [c for c in ("outcome", *survey_spec.groups, *survey_spec.covariates) if c in data.survey.columns]
        frame = customer_cx_features(
            data.customers,
            data.survey,
            touchpoints=touchpoint_scales(data.spec),
            emotion=emotion_items(data.spec),
            wave=wave,
            carry=carry,
        )
    cross_sell = list(data.spec.customers.cross_sell) if data.spec.customers is not None else []
    if cross_sell:
        missing = int(frame[cross_sell].isna().any(axis=1).sum())
        if missing:
            raise ValueError(f"customers: {missing} rows with missing cross-sell counts in {cross_sell}")
        frame["products"] = frame[cross_sell].sum(axis=1).astype(float)
    else:
        frame["products"] = 1.0
    frame["nps_class"] = frame["nps_class"].astype(object).where(frame["nps_class"].notna(), None)
    return frame


def varying(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """The columns that take more than one value (a filtered run has a single segment or market)."""
    return [c for c in columns if c in frame.columns and frame[c].nunique(dropna=True) > 1]


def counts_table(frame: pd.DataFrame, class_col: str = "nps_class", class_label: str = "an NPS answer") -> pd.DataFrame:
    """Customers, churned, active and with a known class (the survival models use the latter)."""
    known = frame[class_col].notna()
    return pd.DataFrame(
        [
            {
                "group": "All customers",
                "customers": len(frame),
                "churned": int(frame["churn"].sum()),
                "active": int((frame["churn"] == 0).sum()),
                "tenure 0 (under one unit)": int((frame["tenure"] == 0).sum()),
            },
            {
                "group": f"With {class_label} (modelled)",
                "customers": int(known.sum()),
                "churned": int(frame.loc[known, "churn"].sum()),
                "active": int((frame.loc[known, "churn"] == 0).sum()),
                "tenure 0 (under one unit)": int((frame.loc[known, "tenure"] == 0).sum()),
            },
        ]
    )


def constant_terms(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the columns that vary, the ones left out because they are constant or absent): a term that takes
    one value in the data cannot enter a model."""
    kept = varying(frame, columns)
    return kept, [c for c in columns if c not in kept]


def control_terms(frame: pd.DataFrame, controls: Sequence[str]) -> tuple[list[str], dict[str, list[float]], list[str]]:
    """Split declared controls (columns of the analysis frame: customer or survey groups and covariates)
    into categorical ones, numeric ones with quartile bins for the piecewise-exponential model (the Cox model
    takes them as numbers), and notes on those left out (absent, constant, or missing for some customers).
    Raises naming a control that is not a column."""
    unknown = [c for c in controls if c not in frame.columns]
    if unknown:
        raise ValueError(
            f"setting 'controls': {unknown} are not columns of the customers / survey data; declare them under "
            "customers.groups / customers.covariates (or the survey's) in the dataset spec"
        )
    categorical: list[str] = []
    numeric: dict[str, list[float]] = {}
    notes: list[str] = []
    for c in controls:
        values = frame[c]
        if values.isna().any():
            notes.append(f"{c}: {int(values.isna().sum()):,} customers without a value (left out of the models)")
        if values.nunique(dropna=True) < 2:
            notes.append(f"{c}: one value in these data, left out")
            continue
        if pd.api.types.is_numeric_dtype(values) and values.nunique(dropna=True) > 5:
            edges = sorted(set(np.quantile(values.dropna(), [0.25, 0.5, 0.75]).tolist()))
            numeric[c] = [-np.inf, *edges, np.inf]
        else:
            categorical.append(c)
    return categorical, numeric, notes


def checked_margin_per_product(estimate: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The margin of an extra product to apply, and a note when it is implausible: a negative margin per
    extra product (cross-selling would lose money) is flagged and not applied (cross-sell component zero)."""
    est = dict(estimate)
    if float(est["estimate"]) < 0:
        note = (
            f"The estimated monthly margin of an extra product is negative ({float(est['estimate']):,.2f}, se "
            f"{float(est['se']):,.2f}): customers with more products earn less here, most likely through "
            "pricing or customer mix, not because products lose money. It is not applied: the cross-sell "
            "component is zero."
        )
        return {**est, "estimate": 0.0, "se": 0.0, "implausible_estimate": float(estimate["estimate"])}, note
    return est, None


def drop_classes(summary: pd.DataFrame, class_col: str, flagged: Mapping[str, str]) -> pd.DataFrame:
    """A per-class table without the classes the data cannot support (their reasons are shown apart)."""
    return summary[~summary[class_col].astype(str).isin(list(flagged))].reset_index(drop=True)


def _pct(level: float) -> str:
    return f"{round(100 * check_level(level))}%"


def hazard_ratio_table(
    table: pd.DataFrame, level: float = DEFAULT_LEVEL, labels: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Hazard ratios for readers (from ``columns covariate, level, reference, hr, low, high``): what is
    compared (covariates named by ``labels``, e.g. ``{"cx_class": "satisfaction"}``), the ratio and its
    ``level`` interval, and a plain reading ("not estimable from these data: why" where ``estimable`` is
    False)."""
    lv = _pct(level)
    names = dict(labels or {})

    def compared(r: Any) -> str:
        name = names.get(r.covariate, r.covariate)
        if r.level is None or (isinstance(r.level, float) and np.isnan(r.level)):
            return f"{name} (one unit more)"
        return f"{name} = {r.level} vs {r.reference}"

    out = pd.DataFrame(
        {
            "Compared": [compared(r) for r in table.itertuples(index=False)],
            "Hazard ratio": table["hr"].to_numpy(),
            f"{lv} low": table["low"].to_numpy(),
            f"{lv} high": table["high"].to_numpy(),
        }
    )
    notes = table["note"] if "note" in table.columns else pd.Series("", index=table.index)
    estimable = table["estimable"] if "estimable" in table.columns else pd.Series(True, index=table.index)
    out["Reading"] = [
        (note if str(note).startswith("not estimable") else f"not estimable from these data: {note}")
        if not ok
        else ("churns faster" if lo > 1 else "churns slower" if hi < 1 else "no clear difference")
        for lo, hi, ok, note in zip(table["low"], table["high"], estimable, notes, strict=True)
    ]
    return out


def median_table(km: Any, by: str, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Kaplan-Meier median tenure per group with its interval, columns named for readers."""
    lv = _pct(level)
    return km.medians.rename(
        columns={"group": by, "median": "median tenure (months)", "low": f"{lv} low", "high": f"{lv} high"}
    )


def logrank_text(km: Any) -> str:
    """'Log-rank test: statistic 12.3 on 2 degrees of freedom, p = 0.002.' (empty with a single group)."""
    p_value = km.logrank["p_value"]
    if p_value is None:
        return ""
    return (
        f"Log-rank test: statistic {km.logrank['test_statistic']:.1f} on {km.logrank['degrees_of_freedom']} "
        "degrees of freedom, " + ("p < 1e-16." if p_value < 1e-16 else f"p = {p_value:.2g}.")
    )


def clv_table(
    summary: pd.DataFrame, group_col: str, level: float = DEFAULT_LEVEL, label: str | None = None
) -> pd.DataFrame:
    """CLV per group with its ``level`` interval, customers, mean margin and expected discounted months."""
    lv = _pct(level)
    out = summary[[group_col, "n_customers", "margin_mean", "discounted_months", "clv", "low", "high"]].copy()
    out.columns = [
        label or group_col.replace("_", " ").capitalize(),
        "Active customers",
        "Monthly margin",
        "Discounted months",
        "CLV",
        f"{lv} low",
        f"{lv} high",
    ]
    return out


def order_classes(frame: pd.DataFrame, column: str = "nps_class", levels: Sequence[str] = NPS_CLASSES) -> pd.DataFrame:
    """Rows in class order, worst first (detractor, passive, promoter by default)."""
    rank = {c: i for i, c in enumerate(levels)}
    return frame.sort_values(column, key=lambda s: s.map(rank)).reset_index(drop=True)


def interval_dict(mean: float, low: float, high: float) -> dict[str, Any]:
    """``{"mean", "interval": [low, high]}`` for results.json."""
    return {"mean": float(mean), "interval": [float(low), float(high)]}


def diagnostics_result(diagnostics: Any) -> dict[str, Any] | None:
    """The diagnostics block recorded in results.json: :func:`cxresearch.diagnostics.as_dict`."""
    return as_dict(diagnostics)


def median_results(table: pd.DataFrame) -> dict[str, Any]:
    """``{class: {"mean", "interval", "extrapolated"}}`` from :func:`median_survival`."""
    return {
        str(r["nps_class"]): {
            **interval_dict(r["median"], r["low"], r["high"]),
            "extrapolated": bool(r["extrapolated"]),
        }
        for _, r in table.iterrows()
    }


def moves_table(npe: Any, level: float | None = None) -> pd.DataFrame:
    """Value of moving one customer to a better class, by component, wide (means) plus the interval of the
    data-only value (retention + cross-sell) and of the total with word of mouth (at the level of ``npe``
    unless given: the table only renames, it does not recompute). A move the data cannot support is a row
    saying why."""
    from cxresearch.economics.npe import class_moves

    lv = _pct(npe.level if level is None else level)
    moves = npe.value_of_moves
    rows = []
    for from_c, to_c in class_moves(npe.classes):
        key = f"{from_c}->{to_c}"
        row: dict[str, Any] = {"Move one customer": f"{from_c} -> {to_c}"}
        if key in npe.not_estimable or moves.empty:
            row["Not estimable because"] = npe.not_estimable.get(key, "no estimate")
            rows.append(row)
            continue
        sub = moves[(moves["from_class"] == from_c) & (moves["to_class"] == to_c)].set_index("component")
        if sub.empty:
            continue
        row.update(
            {
                "Retention": sub.loc["retention", "mean"],
                "Cross-sell / upsell": sub.loc["cross_sell", "mean"],
                "From the data": sub.loc["clv", "mean"],
                f"Data {lv} low": sub.loc["clv", "low"],
                f"Data {lv} high": sub.loc["clv", "high"],
                "Word of mouth (assumed)": sub.loc["word_of_mouth", "mean"],
                "Total": sub.loc["total", "mean"],
                f"Total {lv} low": sub.loc["total", "low"],
                f"Total {lv} high": sub.loc["total", "high"],
                "Not estimable because": "",
            }
        )
        rows.append(row)
    out = pd.DataFrame(rows)
    if "Not estimable because" in out.columns and not out["Not estimable because"].fillna("").astype(bool).any():
        out = out.drop(columns="Not estimable because")
    return out


def value_at_risk_table(npe: Any, dimension: str, level: float | None = None) -> pd.DataFrame:
    """Value at risk by one dimension (segment or market), at the level of ``npe``: what the worst class's
    active customers would add in the best class, from the data alone (retention + cross-sell) and with
    the word-of-mouth assumptions, with a reading of the data-only interval."""
    lv = _pct(npe.level if level is None else level)
    worst = npe.classes[0]
    cols = [
        "level",
        "n_customers",
        "n_detractors",
        "data_only",
        "data_low",
        "data_high",
        "value_at_risk",
        "low",
        "high",
        "per_detractor",
    ]
    risk = npe.value_at_risk
    rows = risk[risk["dimension"] == dimension] if len(risk) else pd.DataFrame(columns=cols)
    out = rows[cols].copy()
    out.columns = [
        dimension.capitalize(),
        "Active customers",
        f"'{worst}' customers",
        "From the data",
        f"Data {lv} low",
        f"Data {lv} high",
        "With word of mouth (assumed)",
        f"Total {lv} low",
        f"Total {lv} high",
        f"Per '{worst}' customer (total)",
    ]
    out["Reading"] = [
        "no evidence (data interval includes zero)" if no_evidence([lo, hi]) else ""
        for lo, hi in zip(out[f"Data {lv} low"], out[f"Data {lv} high"], strict=True)
    ]
    return out.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------
# results.json blocks (dotted keys, as record_result takes them)
# ---------------------------------------------------------------------------------------------------
def result_key(name: Any) -> str:
    """A class or level name as one part of a dotted results.json key (a "." would nest it)."""
    return str(name).replace(".", "_")


def record_results(results: Mapping[str, Any]) -> dict[str, Any]:
    """Record every ``{dotted key: value}`` in results.json (``cxresearch.record_result``); returns them."""
    from cxresearch.results import record_result

    return {key: record_result(key, value) for key, value in results.items()}


def km_results(km: Any) -> dict[str, Any]:
    """The log-rank p-value of one Kaplan-Meier comparison: ``{"km.logrank_p.<by>": p}``."""
    return {f"km.logrank_p.{km.by or 'all'}": km.logrank["p_value"]}


def cox_results(cox: Any, term: str = "nps_class=detractor", level: float | None = None) -> dict[str, Any]:
    """The Cox model's hazard ratio of ``term`` against its reference (at ``level``, default the fit's; not a
    number when the term is separated), concordance, the proportional-hazards verdict, whether the fit was
    penalised and why, and the fit's diagnostics block. Key: ``cox.hazard_ratio_<level>_vs_<reference>``."""
    table = cox.hazard_ratios.set_index("term")
    covariate, category = term.split("=", 1)
    reference = str(table.loc[term, "reference"]) if term in table.index else str(cox.design.reference.get(covariate))
    key = f"cox.hazard_ratio_{result_key(category)}_vs_{result_key(reference)}"
    if term not in table.index:
        value: dict[str, Any] = {
            "mean": None,
            "interval": [None, None],
            "estimable": False,
            "reason": f"no term {term!r} in the model (no customer of that level)",
        }
    elif "estimable" in table.columns and not bool(table.loc[term, "estimable"]):
        value = {"mean": None, "interval": [None, None], "estimable": False, "reason": str(table.loc[term, "note"])}
    else:
        value = {**cox.hazard_ratio(term, level), "estimable": True}
    return {
        key: value,
        "cox.concordance": float(cox.concordance),
        "cox.proportional_hazards_ok": bool(cox.ph_ok),
        "cox.penalized_reason": getattr(cox, "penalized_reason", None),
        "cox.diagnostics": as_dict(cox.diagnostics()),
    }


def parametric_results(
    parametric: Any, clv: Any, class_col: str = "nps_class", not_estimable: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The parametric model chosen by AIC, its diagnostics block and its CLV by class (classes the data
    cannot support left out)."""
    flagged = dict(not_estimable or {})
    by_class = {k: v for k, v in clv.to_results(class_col).items() if k not in flagged}
    by_class.update(
        {c: {"mean": None, "interval": [None, None], "estimable": False, "reason": r} for c, r in flagged.items()}
    )
    return {
        "parametric.model": parametric.name,
        "parametric.diagnostics": as_dict(parametric.diagnostics()),
        "parametric.clv": by_class,
    }


def bayes_results(
    fit: Any,
    medians: pd.DataFrame,
    level: float = DEFAULT_LEVEL,
    class_col: str = "nps_class",
    not_estimable: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The piecewise-exponential model's diagnostics block (the study's headline gate), the class hazard
    ratios against the best class (at ``level``) and the median lifetimes by class. A ratio in
    ``not_estimable`` (class -> reason) is recorded as ``{"mean": null, "interval": [null, null],
    "estimable": false, "reason": ...}``, never as the prior's number."""
    out: dict[str, Any] = {"diagnostics": as_dict(fit.diagnostics())}
    flagged = dict(not_estimable or {})
    levels = fit.levels.get(class_col, [])
    for cls in levels[1:]:
        key = f"hazard_ratio.{result_key(cls)}_vs_{result_key(levels[0])}"
        if cls in flagged:
            out[key] = {"mean": None, "interval": [None, None], "estimable": False, "reason": flagged[cls]}
        else:
            out[key] = {**fit.hazard_ratio(class_col, cls, level=level), "estimable": True}
    out["median_survival"] = median_results(medians.rename(columns={class_col: "nps_class"}))
    return out


def validation_results(evaluation: Any, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The held-out validation (:class:`~cxresearch.economics.validation.SurvivalEvaluation`) as
    ``validation.*`` keys of results.json (``labels`` name covariates in its sentence, as in the report)."""
    return {f"validation.{key}": value for key, value in evaluation.to_dict(labels).items()}


def validation_gate_markdown(evaluation: Any) -> str | None:
    """A line under the validation heading when the held-out fits failed the gate (None when they passed).

    Not the report's red banner: that one is for the model the report's numbers come from; a failed
    evaluation fit makes only the accuracy figures unreliable (e.g. a class with zero churners, whose
    hazard ratio the data cannot pin down, mixes slowly again on a smaller training part)."""
    diagnostics = evaluation.diagnostics
    if diagnostics is None or diagnostics.passed:
        return None
    reasons = "; ".join(diagnostics.reasons[:2])
    return (
        f"**The held-out evaluation's own fits did not pass the diagnostics gate** ({reasons}): read the accuracy "
        "figures below with care. The report's model above is not affected (its gate is in the banner at the top)."
    )


def validation_fold_table(evaluation: Any) -> pd.DataFrame:
    """One row per validation fold for the analyst: customers trained on and held out, Harrell's C and the
    integrated Brier score of both models (and of the no-covariate reference), the Bayesian fit's gate and
    time, and why a number is missing."""
    folds = evaluation.folds
    notes = [
        "; ".join(str(n) for n in (r.c_note, r.ibs_note, r.cox_note) if isinstance(n, str) and n)
        for r in folds.itertuples(index=False)
    ]
    return pd.DataFrame(
        {
            "Fold": folds["fold"],
            "Trained on": folds["n_train"],
            "Held out": folds["n_test"],
            "Churned (held out)": folds["events_test"],
            "C Bayesian": folds["c_bayes"],
            "C Cox": folds["c_cox"],
            "IBS Bayesian": folds["ibs_bayes"],
            "IBS Cox": folds["ibs_cox"],
            "IBS no covariates": folds["ibs_null"],
            "Gate": folds["gate"],
            "Fit (s)": folds["fit_seconds"],
            "Note": notes,
        }
    )


def clv_results(
    clv: Any, clv_by: Mapping[str, Any], class_col: str = "nps_class", not_estimable: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """CLV by class and by each other dimension, and the assumptions with the extrapolation flag; a class the
    data cannot support is recorded with ``estimable`` False and the reason, not a number."""
    info = clv.extrapolation
    flagged = dict(not_estimable or {})
    by_class = {k: v for k, v in clv.to_results(class_col).items() if k not in flagged}
    by_class.update(
        {c: {"mean": None, "interval": [None, None], "estimable": False, "reason": r} for c, r in flagged.items()}
    )
    return {
        "clv": by_class,
        **{f"clv_by_{d}": result.to_results(d) for d, result in clv_by.items()},
        "clv_assumptions": {
            **clv.assumptions,
            "extrapolated": info["extrapolated"],
            "share_months_beyond_observed": info["share_months_beyond"],
        },
    }


def npe_results(npe: Any, word_of_mouth: Any, margin_per_product: Mapping[str, Any]) -> dict[str, Any]:
    """Net Promoter Economics for results.json: the value of moves (total with word of mouth, and from the
    data alone), the components per class, the assumptions used (with their declared ranges), what is not
    estimable and why, and value at risk by segment and market."""
    moves = npe.to_results()
    wide = npe.clv_wide()
    risk = npe.value_at_risk
    worst, best = npe.classes[0], npe.classes[-1]  # the total of this move is value_<worst>_to_<best>
    return {
        **{result_key(key): value for key, value in moves.items() if key.startswith("value_")},
        "value_worst_to_best_data_only": npe.move(worst, best, "clv"),
        "npe.classes": list(npe.classes),
        "npe.not_estimable": dict(npe.not_estimable),
        "npe.components": {
            r["nps_class"]: {
                k: float(r[k]) for k in ("retention", "cross_sell", "word_of_mouth", "total") if k in wide.columns
            }
            for _, r in wide.iterrows()
        },
        "npe.assumptions": {
            "referrals_per_promoter": word_of_mouth.referrals_per_promoter,
            "prospects_lost_per_detractor": word_of_mouth.prospects_lost_per_detractor,
            "value_per_referral": word_of_mouth.value_per_referral,
            "ranges": {k: list(v) for k, v in word_of_mouth.ranges.items()},
            "margin_per_product": float(margin_per_product["estimate"]),
        },
        "value_at_risk": {
            d: {
                str(r["level"]): interval_dict(r["value_at_risk"], r["low"], r["high"])
                for _, r in risk[risk["dimension"] == d].iterrows()
            }
            if len(risk)
            else {}
            for d in ("segment", "market")
        },
    }


# ---------------------------------------------------------------------------------------------------
# classes, what the data can support, and the words for it
# ---------------------------------------------------------------------------------------------------
def customer_classes(frame: pd.DataFrame, setting: Any, spec: Any) -> tuple[pd.DataFrame, Any]:
    """The frame with its class column and the :class:`~cxresearch.economics.classes.ClassScheme`, from the
    ``classes`` setting and the dataset spec (the outcome's label and value labels)."""
    from cxresearch.economics.classes import assign_classes

    if spec.survey is None:
        return assign_classes(frame, setting)
    outcome = spec.survey.outcome
    value_labels = {int(v): str(k) for k, v in (outcome.labels or {}).items()}
    return assign_classes(
        frame, setting, outcome_label=outcome.label or outcome.column, value_labels=value_labels or None
    )


def present_classes(frame: pd.DataFrame, scheme: Any) -> tuple[Any, list[str]]:
    """The scheme restricted to the classes with customers in ``frame`` (a CSAT level nobody chose in one
    market, a segment's own classes), and a note naming the declared classes left out. Raises when fewer
    than two classes remain: there is nothing to compare."""
    counts = frame[scheme.column].astype(str).value_counts()
    present = [c for c in scheme.levels if counts.get(c, 0) > 0]
    if len(present) < 2:
        raise ValueError(
            f"classes ({scheme.source}): only {present or 'no class'} has customers in this run, so there is "
            "nothing to compare; pool the run (segment / market all) or declare classes that vary within it"
        )
    missing = [c for c in scheme.levels if c not in present]
    notes = [f"Declared classes without customers in this run, left out: {', '.join(missing)}."] if missing else []
    return scheme.restricted(present), notes


def evidence_table(evidence: Any) -> pd.DataFrame:
    """Customers, churned and active per class, and what the data cannot support, for readers."""
    out = evidence.table.rename(
        columns={
            "class": "Class",
            "customers": "Customers",
            "churned": "Churned",
            "active": "Still active",
            "churned_share": "Share churned",
            "note": "What the data cannot support",
        }
    )
    return out


def sensitivity_table(sensitivity: pd.DataFrame, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The prior-sensitivity refits for readers: one row per ratio (covariates named by ``labels``), each
    prior scale's median and interval in words, and whether the prior sets the number."""
    from cxresearch.economics.classes import sensitivity_text

    names = dict(labels or {})
    return pd.DataFrame(
        {
            "Compared": [
                f"{names.get(r['covariate'], r['covariate'])} = {r['level']} vs {r['reference']}"
                for _, r in sensitivity.iterrows()
            ],
            "Hazard ratio under each prior scale": [sensitivity_text(r) for _, r in sensitivity.iterrows()],
            "Reading": [
                "set by the prior, not the data" if r["prior_driven"] else "the data decide it"
                for _, r in sensitivity.iterrows()
            ],
        }
    )


def prior_driven_terms(sensitivity: pd.DataFrame | None) -> dict[tuple[str, str], str]:
    """``{(covariate, level): reason}`` for every ratio the prior moves by more than its own interval."""
    from cxresearch.economics.classes import sensitivity_text

    if sensitivity is None or not len(sensitivity):
        return {}
    return {
        (str(r["covariate"]), str(r["level"])): f"set by the prior, not the data ({sensitivity_text(r)})"
        for _, r in sensitivity[sensitivity["prior_driven"]].iterrows()
    }


def not_estimable_ratios(
    evidence: Any, sensitivity: pd.DataFrame | None = None, class_col: str = "cx_class"
) -> dict[str, str]:
    """Class -> why its hazard ratio against the best class is not estimable: zero events or no customer
    (counts), or a number the prior moves by more than its own interval (prior-sensitivity refits)."""
    out = dict(evidence.hazard_ratio)
    for (covariate, level), text in prior_driven_terms(sensitivity).items():
        if covariate == class_col:
            out[level] = f"{out[level]}; {text}" if level in out else text
    return out


def value_not_estimable(evidence: Any, ratio_flags: Mapping[str, str]) -> dict[str, str]:
    """Class -> why its own survival (and so its CLV and the moves to or from it) is not estimable: zero
    events or no customer; or, when the reference class has events, a ratio set by the prior (the class's
    hazard is then the prior's too). With a reference class without events every ratio is unbounded while
    each other class's own hazard is still identified by its events, so those classes keep their value."""
    out = dict(evidence.survival)
    if not evidence.reference_without_events:
        out.update({c: r for c, r in ratio_flags.items() if "set by the prior" in r and c not in out})
    return out


def bayes_hazard_ratio_table(
    fit: Any,
    not_estimable: Mapping[str, str],
    class_col: str,
    level: float = DEFAULT_LEVEL,
    other_terms: Mapping[tuple[str, str], str] | None = None,
) -> pd.DataFrame:
    """The Bayesian hazard ratios with ``estimable`` / ``note`` columns: a class ratio the data cannot
    support (``not_estimable``: class -> reason) and any other term in ``other_terms`` (``(covariate, level)``
    -> reason, e.g. a prior-driven control) show no number (NaN), only the reason."""
    table = fit.hazard_ratios(level=level)
    flagged_terms = {(class_col, str(k)): v for k, v in not_estimable.items()}
    flagged_terms.update({k: v for k, v in (other_terms or {}).items() if k[0] != class_col})
    keys = list(zip(table["covariate"].astype(str), table["level"].astype(str), strict=True))
    flagged = pd.Series([k in flagged_terms for k in keys], index=table.index)
    table["estimable"] = ~flagged
    table["note"] = [flagged_terms.get(k, "") for k in keys]
    for col in ("hr", "low", "high", "hr_median"):
        table.loc[flagged, col] = np.nan
    return table


def evidence_banner_text(diagnostics: Any, flagged: Mapping[str, str]) -> str | None:
    """The words shown under the gate when the sampler passed but some numbers come from the prior: the gate
    checks the sampler, not whether the data inform a number (None when nothing is flagged)."""
    if not flagged:
        return None
    verdict = "passed" if getattr(diagnostics, "passed", False) else "did not pass"
    items = "; ".join(f"{c}: {r}" for c, r in flagged.items())
    return (
        f"The sampler diagnostics {verdict}, but that only says the sampler explored the posterior: these "
        f"numbers are not estimable from these data and are not shown: {items}."
    )


def no_evidence(interval: Sequence[float]) -> bool:
    """True when an interval includes zero (or is missing)."""
    low, high = interval
    return not (np.isfinite(low) and np.isfinite(high)) or (low <= 0 <= high)


def headline_markdown(
    hazard_ratio: Mapping[str, Any],
    clv_summary: pd.DataFrame,
    move: Mapping[str, Any],
    diagnostics: Mapping[str, Any],
    *,
    horizon_months: int,
    level: float = DEFAULT_LEVEL,
    scope: str,
    currency: str = "€",
    move_data_only: Mapping[str, Any] | None = None,
    classes: Sequence[str] = NPS_CLASSES,
    class_col: str = "nps_class",
    not_estimable: Mapping[str, str] | None = None,
) -> str:
    """The first-screen summary for business readers: churn risk, CLV by class, value of a fixed customer.

    ``classes`` run worst to best (detractor, passive, promoter by default). ``clv_summary`` is
    :class:`ClvResult.summary` by class (columns clv, low, high); ``move`` (with word of mouth) and
    ``move_data_only`` (retention + cross-sell) and ``hazard_ratio`` are ``{"mean", "interval"}`` dicts,
    with ``estimable`` False and a ``reason`` when the data cannot support them. The data-only value comes
    first; an interval that includes zero reads "no evidence". A failed diagnostics gate leads; classes the
    data cannot support are named next, with the reason.
    """
    lv = _pct(level)
    worst, best = classes[0], classes[-1]
    flagged = dict(not_estimable or {})
    rows = {str(r[class_col]): r for _, r in clv_summary.iterrows()}
    nps = tuple(classes) == tuple(NPS_CLASSES)

    def many(cls: str) -> str:  # "detractors", or "'Fiber optic' customers" for any other class
        return f"{cls}s" if nps else f"'{cls}' customers"

    def one(cls: str) -> str:  # "a detractor", or "an 'Fiber optic' customer"
        return f"a {cls}" if nps else f"a customer in '{cls}'"

    def money(value: float) -> str:
        return format_money_exact(value, currency)

    lines = []
    if not diagnostics.get("passed", False):
        lines.append(
            "**Warning: the Bayesian survival model did not pass its diagnostics; the figures below are "
            "not reliable until it is re-run and passes.**"
        )
    if flagged:
        lines.append(
            "**Not estimable from these data:** "
            + "; ".join(f"{c}: {r}" for c, r in flagged.items())
            + ". Those numbers are left out below."
        )
    if hazard_ratio.get("estimable", True) and hazard_ratio.get("mean") is not None:
        low, high = hazard_ratio["interval"]
        lines.append(
            f"- **Churn:** {many(worst)} leave **{hazard_ratio['mean']:.1f} times** as fast as {many(best)} "
            f"({lv} interval {low:.1f} to {high:.1f})"
            + (": **no evidence** of a difference (the interval includes 1)." if low <= 1 <= high else ".")
        )
    else:
        lines.append(
            f"- **Churn, {worst} vs {best}:** not estimable from these data ({hazard_ratio.get('reason', '')})."
        )
    parts = []
    for cls in reversed(list(classes)):
        if cls in flagged:
            parts.append(f"{one(cls)}: not estimable")
        elif cls in rows:
            r = rows[cls]
            parts.append(f"{one(cls)} **{money(r['clv'])}** ({money(r['low'])} to {money(r['high'])})")
    if parts:
        lines.append(
            f"- **Customer value over the next {horizon_months} months** (discounted margin): " + ", ".join(parts) + "."
        )
    data_move = move_data_only
    turning = f"Turning one {worst} into a {best}" if nps else f"Moving one customer from '{worst}' to '{best}'"
    if not move.get("estimable", True) or move.get("mean") is None or not np.isfinite(move["mean"]):
        lines.append(f"- **{turning}:** not estimable from these data ({move.get('reason', '')}).")
    else:
        if data_move is not None:
            d_low, d_high = data_move["interval"]
            verdict = (
                " **No evidence** that it is worth anything: the interval includes zero."
                if no_evidence(data_move["interval"])
                else ""
            )
            lines.append(
                f"- **{turning}**, from the data alone (retention and cross-sell): "
                f"**{money(data_move['mean'])}** ({lv} interval {money(d_low)} to {money(d_high)}).{verdict}"
            )
            m_low, m_high = move["interval"]
            if abs(move["mean"] - data_move["mean"]) > 1e-9:
                lines.append(
                    f"  With the word-of-mouth **assumptions** (params, not data): {money(move['mean'])} "
                    f"({money(m_low)} to {money(m_high)})."
                )
        else:
            m_low, m_high = move["interval"]
            lines.append(
                f"- **{turning}** is worth **{money(move['mean'])}** ({lv} interval "
                f"{money(m_low)} to {money(m_high)}), word-of-mouth assumptions included."
            )
    return f"### Headline ({scope})\n\n" + "\n".join(lines)
