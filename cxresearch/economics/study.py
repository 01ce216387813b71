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
from cxresearch.reports.display import scope_text  # noqa: F401  (re-exported for the notebooks)

#: Bins that turn the continuous CX covariates into categories for the piecewise-exponential model.
CX_BINS: dict[str, list[float]] = {
    "emotion": [-np.inf, -1.0, 0.0, 1.0, np.inf],
    "bad_experiences": [0.0, 1.0, 2.0, np.inf],
}


def analysis_frame(data: Any, wave: str | None = "1") -> pd.DataFrame:
    """Customers joined with their CX covariates from the survey, plus ``products`` (sum of cross-sell columns,
    1 when the spec declares none). ``nps_class`` is text (missing for customers without an answer)."""
    from cxresearch.economics.features import customer_cx_features, emotion_items, touchpoint_scales

    if data.customers is None:
        raise ValueError(
            "the dataset has no customer table (spec 'customers:'): tenure, churn and margin "
            "are needed for the economics study"
        )
    frame = customer_cx_features(
        data.customers,
        data.survey,
        touchpoints=touchpoint_scales(data.spec),
        emotion=emotion_items(data.spec),
        wave=wave,
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


def counts_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Customers, churned, active and with a known NPS class (the survival models use the latter)."""
    known = frame["nps_class"].notna()
    return pd.DataFrame(
        [
            {
                "group": "All customers",
                "customers": len(frame),
                "churned": int(frame["churn"].sum()),
                "active": int((frame["churn"] == 0).sum()),
                "tenure 0 (no time at risk)": int((frame["tenure"] == 0).sum()),
            },
            {
                "group": "With an NPS answer (modelled)",
                "customers": int(known.sum()),
                "churned": int(frame.loc[known, "churn"].sum()),
                "active": int((frame.loc[known, "churn"] == 0).sum()),
                "tenure 0 (no time at risk)": int((frame.loc[known, "tenure"] == 0).sum()),
            },
        ]
    )


def _pct(level: float) -> str:
    return f"{round(100 * check_level(level))}%"


def hazard_ratio_table(table: pd.DataFrame, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Hazard ratios for readers (from ``columns covariate, level, reference, hr, low, high``): what is
    compared, the ratio and its ``level`` interval, and a plain reading."""
    lv = _pct(level)

    def compared(r: Any) -> str:
        if r.level is None or (isinstance(r.level, float) and np.isnan(r.level)):
            return f"{r.covariate} (one unit more)"
        return f"{r.covariate} = {r.level} vs {r.reference}"

    out = pd.DataFrame(
        {
            "Compared": [compared(r) for r in table.itertuples(index=False)],
            "Hazard ratio": table["hr"].to_numpy(),
            f"{lv} low": table["low"].to_numpy(),
            f"{lv} high": table["high"].to_numpy(),
        }
    )
    out["Reading"] = [
        ("churns faster" if lo > 1 else "churns slower" if hi < 1 else "no clear difference")
        for lo, hi in zip(table["low"], table["high"], strict=True)
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


def clv_table(summary: pd.DataFrame, group_col: str, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """CLV per group with its ``level`` interval, customers, mean margin and expected discounted months."""
    lv = _pct(level)
    out = summary[[group_col, "n_customers", "margin_mean", "discounted_months", "clv", "low", "high"]].copy()
    out.columns = [
        group_col.replace("_", " ").capitalize(),
        "Active customers",
        "Monthly margin",
        "Discounted months",
        "CLV",
        f"{lv} low",
        f"{lv} high",
    ]
    return out


def order_classes(frame: pd.DataFrame, column: str = "nps_class") -> pd.DataFrame:
    """Rows in detractor, passive, promoter order."""
    rank = {c: i for i, c in enumerate(NPS_CLASSES)}
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
    """Value of moving one customer between classes, by component, wide (means) plus the total interval
    (at the level of ``npe`` unless given: the table only renames, it does not recompute)."""
    lv = _pct(npe.level if level is None else level)
    moves = npe.value_of_moves
    wide = moves.pivot_table(index=["from_class", "to_class"], columns="component", values="mean", sort=False)
    total = moves[moves["component"] == "total"].set_index(["from_class", "to_class"])[["low", "high"]]
    out = wide.join(total).reset_index()
    out.insert(0, "Move", out["from_class"] + " -> " + out["to_class"])
    cols = ["Move", "retention", "cross_sell", "word_of_mouth", "total", "low", "high"]
    out = out[cols]
    out.columns = [
        "Move one customer",
        "Retention",
        "Cross-sell / upsell",
        "Word of mouth",
        "Total",
        f"Total {lv} low",
        f"Total {lv} high",
    ]
    return out


def value_at_risk_table(npe: Any, dimension: str, level: float | None = None) -> pd.DataFrame:
    """Value at risk by one dimension (segment or market), at the level of ``npe``."""
    lv = _pct(npe.level if level is None else level)
    rows = (
        npe.value_at_risk[npe.value_at_risk["dimension"] == dimension]
        if len(npe.value_at_risk)
        else pd.DataFrame(
            columns=[
                "level",
                "n_customers",
                "n_detractors",
                "value_at_risk",
                "low",
                "high",
                "per_detractor",
                "per_customer",
            ]
        )
    )
    out = rows[
        ["level", "n_customers", "n_detractors", "value_at_risk", "low", "high", "per_detractor", "per_customer"]
    ].copy()
    out.columns = [
        dimension.capitalize(),
        "Active customers",
        "Detractors",
        "Value at risk",
        f"{lv} low",
        f"{lv} high",
        "Per detractor",
        "Per customer",
    ]
    return out


# ---------------------------------------------------------------------------------------------------
# results.json blocks (dotted keys, as record_result takes them)
# ---------------------------------------------------------------------------------------------------
def record_results(results: Mapping[str, Any]) -> dict[str, Any]:
    """Record every ``{dotted key: value}`` in results.json (``cxresearch.record_result``); returns them."""
    from cxresearch.results import record_result

    return {key: record_result(key, value) for key, value in results.items()}


def km_results(km: Any) -> dict[str, Any]:
    """The log-rank p-value of one Kaplan-Meier comparison: ``{"km.logrank_p.<by>": p}``."""
    return {f"km.logrank_p.{km.by or 'all'}": km.logrank["p_value"]}


def cox_results(cox: Any, term: str = "nps_class=detractor", level: float | None = None) -> dict[str, Any]:
    """The Cox model's hazard ratio of ``term`` (at ``level``, default the fit's), concordance, the
    proportional-hazards verdict and the fit's diagnostics block."""
    return {
        "cox.hazard_ratio_detractor_vs_promoter": cox.hazard_ratio(term, level),
        "cox.concordance": float(cox.concordance),
        "cox.proportional_hazards_ok": bool(cox.ph_ok),
        "cox.diagnostics": as_dict(cox.diagnostics()),
    }


def parametric_results(parametric: Any, clv: Any) -> dict[str, Any]:
    """The parametric model chosen by AIC, its diagnostics block and its CLV by NPS class."""
    return {
        "parametric.model": parametric.name,
        "parametric.diagnostics": as_dict(parametric.diagnostics()),
        "parametric.clv": clv.to_results("nps_class"),
    }


def bayes_results(fit: Any, medians: pd.DataFrame, level: float = DEFAULT_LEVEL) -> dict[str, Any]:
    """The piecewise-exponential model's diagnostics block (the study's headline gate), the class hazard
    ratios against promoters (at ``level``) and the median lifetimes by class."""
    out: dict[str, Any] = {"diagnostics": as_dict(fit.diagnostics())}
    for cls in fit.levels.get("nps_class", [])[1:]:
        out[f"hazard_ratio.{cls}_vs_{fit.levels['nps_class'][0]}"] = fit.hazard_ratio("nps_class", cls, level=level)
    out["median_survival"] = median_results(medians)
    return out


def clv_results(clv: Any, clv_by: Mapping[str, Any]) -> dict[str, Any]:
    """CLV by NPS class and by each other dimension, and the assumptions with the extrapolation flag."""
    info = clv.extrapolation
    return {
        "clv": clv.to_results("nps_class"),
        **{f"clv_by_{d}": result.to_results(d) for d, result in clv_by.items()},
        "clv_assumptions": {
            **clv.assumptions,
            "extrapolated": info["extrapolated"],
            "share_months_beyond_observed": info["share_months_beyond"],
        },
    }


def npe_results(npe: Any, word_of_mouth: Any, margin_per_product: Mapping[str, Any]) -> dict[str, Any]:
    """Net Promoter Economics for results.json: the value of moves, the components per class, the
    assumptions used and value at risk by segment and market."""
    moves = npe.to_results()
    wide = npe.clv_wide()
    risk = npe.value_at_risk
    return {
        "value_detractor_to_promoter": moves.get("value_detractor_to_promoter"),
        "value_detractor_to_passive": moves.get("value_detractor_to_passive"),
        "npe.components": {
            r["nps_class"]: {k: float(r[k]) for k in ("retention", "cross_sell", "word_of_mouth", "total")}
            for _, r in wide.iterrows()
        },
        "npe.assumptions": {
            "referrals_per_promoter": word_of_mouth.referrals_per_promoter,
            "prospects_lost_per_detractor": word_of_mouth.prospects_lost_per_detractor,
            "value_per_referral": word_of_mouth.value_per_referral,
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
) -> str:
    """The first-screen summary for business readers: churn risk, CLV by class, value of a fixed detractor.

    ``clv_summary`` is :class:`ClvResult.summary` by ``nps_class`` (columns clv, low, high);
    ``move`` and ``hazard_ratio`` are ``{"mean", "interval"}`` dicts. A failed diagnostics gate leads.
    """
    lv = _pct(level)
    rows = {str(r["nps_class"]): r for _, r in clv_summary.iterrows()}

    def money(value: float) -> str:
        return f"{currency}{value:,.0f}"

    lines = []
    if not diagnostics.get("passed", False):
        lines.append(
            "**Warning: the Bayesian survival model did not pass its diagnostics; the figures below are "
            "not reliable until it is re-run and passes.**"
        )
    low, high = hazard_ratio["interval"]
    lines.append(
        f"- **Churn:** detractors leave **{hazard_ratio['mean']:.1f} times** as fast as promoters "
        f"({lv} interval {low:.1f} to {high:.1f})."
    )
    parts = []
    for cls in ("promoter", "passive", "detractor"):
        if cls in rows:
            r = rows[cls]
            parts.append(f"a {cls} **{money(r['clv'])}** ({money(r['low'])} to {money(r['high'])})")
    if parts:
        lines.append(
            f"- **Customer value over the next {horizon_months} months** (discounted margin): " + ", ".join(parts) + "."
        )
    m_low, m_high = move["interval"]
    lines.append(
        f"- **Turning one detractor into a promoter** is worth **{money(move['mean'])}** ({lv} interval "
        f"{money(m_low)} to {money(m_high)}), word-of-mouth assumptions included."
    )
    return f"### Headline ({scope})\n\n" + "\n".join(lines)
