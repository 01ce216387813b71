"""Glue for the economics study notebook: settings checks, the analysis frame, tables for business readers.

The notebook stays thin: it calls these functions and the modelling functions of this package.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.reports.display import scope_text  # noqa: F401  (re-exported for the notebooks)

from cxresearch.data.nps import NPS_CLASSES

#: Settings of the economics notebook and their allowed ranges (inclusive); None = no bound.
SETTING_RANGES: dict[str, tuple[float | None, float | None]] = {
    "discount_rate_annual": (-0.99, 1.0), "horizon_months": (1, 600), "interval": (0.5, 0.99),
    "draws": (100, 100_000), "tune": (100, 100_000), "chains": (1, 16), "clv_draws": (100, 100_000),
    "referrals_per_promoter": (0, None), "prospects_lost_per_detractor": (0, None),
    "value_per_referral": (0, None), "base_products": (0, None), "extrapolation_tolerance": (0, 1),
}
_WHOLE = ("horizon_months", "draws", "tune", "chains", "clv_draws")
#: Bins that turn the continuous CX covariates into categories for the piecewise-exponential model.
CX_BINS: dict[str, list[float]] = {"emotion": [-np.inf, -1.0, 0.0, 1.0, np.inf],
                                   "bad_experiences": [0.0, 1.0, 2.0, np.inf]}


def validate_settings(settings: Mapping[str, Any], source: str = "settings") -> None:
    """Raise ValueError naming every bad setting (key, value and allowed range)."""
    problems = []
    for key, (low, high) in SETTING_RANGES.items():
        if key not in settings:
            continue
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{source}.{key}: expected a number, got {value!r}")
            continue
        if (low is not None and value < low) or (high is not None and value > high):
            problems.append(f"{source}.{key}: {value!r} is outside {low} to {high if high is not None else 'inf'}")
        if key in _WHOLE and float(value) != int(value):
            problems.append(f"{source}.{key}: must be a whole number, got {value!r}")
    breaks = settings.get("period_breaks")
    if breaks:
        if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in breaks) or breaks[0] != 0 \
                or any(b <= a for a, b in zip(breaks[:-1], breaks[1:])):
            problems.append(f"{source}.period_breaks: must start at 0 and increase, got {breaks!r}")
    unknown_cx = sorted(set(settings.get("bayesian_cx_covariates") or []) - set(CX_BINS))
    if unknown_cx:
        problems.append(f"{source}.bayesian_cx_covariates: {unknown_cx} unknown; choose from {sorted(CX_BINS)}")
    sampler = settings.get("sampler")
    if sampler is not None and sampler not in ("nutpie", "pymc"):
        problems.append(f"{source}.sampler: must be 'nutpie' or 'pymc', got {sampler!r}")
    if problems:
        raise ValueError("\n".join(problems))


def analysis_frame(data: Any, wave: str | None = "1") -> pd.DataFrame:
    """Customers joined with their CX covariates from the survey, plus ``products`` (sum of cross-sell columns,
    1 when the spec declares none). ``nps_class`` is text (missing for customers without an answer)."""
    from cxresearch.economics.features import customer_cx_features, emotion_items, touchpoint_scales

    if data.customers is None:
        raise ValueError("the dataset has no customer table (spec 'customers:'): tenure, churn and margin "
                         "are needed for the economics study")
    frame = customer_cx_features(data.customers, data.survey, touchpoints=touchpoint_scales(data.spec),
                                 emotion=emotion_items(data.spec), wave=wave)
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
    return pd.DataFrame([
        {"group": "All customers", "customers": len(frame), "churned": int(frame["churn"].sum()),
         "active": int((frame["churn"] == 0).sum()), "tenure 0 (no time at risk)": int((frame["tenure"] == 0).sum())},
        {"group": "With an NPS answer (modelled)", "customers": int(known.sum()),
         "churned": int(frame.loc[known, "churn"].sum()), "active": int((frame.loc[known, "churn"] == 0).sum()),
         "tenure 0 (no time at risk)": int((frame.loc[known, "tenure"] == 0).sum())}])


def hazard_ratio_table(table: pd.DataFrame, interval: float) -> pd.DataFrame:
    """Hazard ratios for readers: what is compared, the ratio and its interval, and a plain reading."""
    lv = f"{round(100 * interval)}%"
    def compared(r: Any) -> str:
        if r.level is None or (isinstance(r.level, float) and np.isnan(r.level)):
            return f"{r.covariate} (one unit more)"
        return f"{r.covariate} = {r.level} vs {r.reference}"

    out = pd.DataFrame({
        "Compared": [compared(r) for r in table.itertuples(index=False)],
        "Hazard ratio": table["hr"].to_numpy(), f"{lv} low": table["lower"].to_numpy(),
        f"{lv} high": table["upper"].to_numpy()})
    out["Reading"] = [("churns faster" if lo > 1 else "churns slower" if hi < 1 else "no clear difference")
                      for lo, hi in zip(table["lower"], table["upper"])]
    return out


def clv_table(summary: pd.DataFrame, group_col: str, interval: float) -> pd.DataFrame:
    """CLV per group with interval, customers, mean margin and expected discounted months."""
    lv = f"{round(100 * interval)}%"
    out = summary[[group_col, "n_customers", "margin_mean", "discounted_months", "clv", "lower", "upper"]].copy()
    out.columns = [group_col.replace("_", " ").capitalize(), "Active customers", "Monthly margin",
                   "Discounted months", "CLV", f"{lv} low", f"{lv} high"]
    return out


def order_classes(frame: pd.DataFrame, column: str = "nps_class") -> pd.DataFrame:
    """Rows in detractor, passive, promoter order."""
    rank = {c: i for i, c in enumerate(NPS_CLASSES)}
    return frame.sort_values(column, key=lambda s: s.map(rank)).reset_index(drop=True)


def interval_dict(mean: float, lower: float, upper: float) -> dict[str, Any]:
    """``{"mean", "interval"}`` for results.json."""
    return {"mean": float(mean), "interval": [float(lower), float(upper)]}


def diagnostics_result(diagnostics: Mapping[str, Any]) -> dict[str, Any]:
    """The diagnostics keys recorded in results.json."""
    return {k: diagnostics[k] for k in ("rhat_max", "ess_bulk_min", "ess_tail_min", "divergences", "passed")}


def median_results(table: pd.DataFrame) -> dict[str, Any]:
    """``{class: {"mean", "interval", "extrapolated"}}`` from :func:`median_survival`."""
    return {str(r["nps_class"]): {**interval_dict(r["median"], r["lower"], r["upper"]),
                                  "extrapolated": bool(r["extrapolated"])} for _, r in table.iterrows()}


def moves_table(npe: Any, interval: float) -> pd.DataFrame:
    """Value of moving one customer between classes, by component, wide (means) plus the total interval."""
    lv = f"{round(100 * interval)}%"
    moves = npe.value_of_moves
    wide = moves.pivot_table(index=["from_class", "to_class"], columns="component", values="mean", sort=False)
    total = moves[moves["component"] == "total"].set_index(["from_class", "to_class"])[["lower", "upper"]]
    out = wide.join(total).reset_index()
    out.insert(0, "Move", out["from_class"] + " -> " + out["to_class"])
    cols = ["Move", "retention", "cross_sell", "word_of_mouth", "total", "lower", "upper"]
    out = out[cols]
    out.columns = ["Move one customer", "Retention", "Cross-sell / upsell", "Word of mouth", "Total",
                   f"Total {lv} low", f"Total {lv} high"]
    return out


def value_at_risk_table(npe: Any, dimension: str, interval: float) -> pd.DataFrame:
    """Value at risk by one dimension (segment or market)."""
    lv = f"{round(100 * interval)}%"
    rows = npe.value_at_risk[npe.value_at_risk["dimension"] == dimension]
    out = rows[["level", "n_customers", "n_detractors", "value_at_risk", "lower", "upper", "per_detractor",
                "per_customer"]].copy()
    out.columns = [dimension.capitalize(), "Active customers", "Detractors", "Value at risk", f"{lv} low",
                   f"{lv} high", "Per detractor", "Per customer"]
    return out



def headline_markdown(hazard_ratio: Mapping[str, Any], clv_summary: pd.DataFrame, move: Mapping[str, Any],
                      diagnostics: Mapping[str, Any], *, horizon_months: int, interval: float,
                      scope: str, currency: str = "€") -> str:
    """The first-screen summary for business readers: churn risk, CLV by class, value of a fixed detractor.

    ``clv_summary`` is :class:`ClvResult.summary` by ``nps_class`` (columns clv, lower, upper);
    ``move`` and ``hazard_ratio`` are ``{"mean", "interval"}`` dicts. A failed diagnostics gate leads.
    """
    lv = f"{round(100 * interval)}%"
    rows = {str(r["nps_class"]): r for _, r in clv_summary.iterrows()}

    def money(value: float) -> str:
        return f"{currency}{value:,.0f}"

    lines = []
    if not diagnostics.get("passed", False):
        lines.append("**Warning: the Bayesian survival model did not pass its diagnostics; the figures below are "
                     "not reliable until it is re-run and passes.**")
    low, high = hazard_ratio["interval"]
    lines.append(f"- **Churn:** detractors leave **{hazard_ratio['mean']:.1f} times** as fast as promoters "
                 f"({lv} interval {low:.1f} to {high:.1f}).")
    parts = []
    for cls in ("promoter", "passive", "detractor"):
        if cls in rows:
            r = rows[cls]
            parts.append(f"a {cls} **{money(r['clv'])}** ({money(r['lower'])} to {money(r['upper'])})")
    if parts:
        lines.append(f"- **Customer value over the next {horizon_months} months** (discounted margin): "
                     + ", ".join(parts) + ".")
    m_low, m_high = move["interval"]
    lines.append(f"- **Turning one detractor into a promoter** is worth **{money(move['mean'])}** ({lv} interval "
                 f"{money(m_low)} to {money(m_high)}), word-of-mouth assumptions included.")
    return f"### Headline ({scope})\n\n" + "\n".join(lines)
