"""The initiatives study in a few calls (what ``notebooks/initiatives.ipynb`` runs).

    models = choose_models(dataset, use_truth, data, draws, seed, **fit_settings)  # fitted (default) or truth
    study = run_study(data, catalogue, models, budget=..., ...)          # values, ranking, roadmap
    plan_headline_markdown(study.roadmap, study.singles, study.catalogue, discount_rate_annual)
    fitted_vs_truth(data, study, truth_beside(dataset))                  # validation on simulated data

The fitted models come from :func:`fitted_models`: the drivers posterior adapted to ``class_mix`` and the
economics survival posterior turned into cash flows by NPS class (:mod:`cxresearch.initiatives.fitted`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cxresearch.diagnostics import Diagnostics, as_diagnostics, as_dict, combine
from cxresearch.initiatives.catalogue import (
    Catalogue,
    TouchpointInfo,
    check_catalogue,
    load_catalogue,
    touchpoint_info_from_spec,
)
from cxresearch.initiatives.roadmap import Roadmap, build_roadmap, rank_initiatives
from cxresearch.initiatives.value import (
    INTERVAL,
    DriverScenarioModel,
    InitiativeEngine,
    ValueModel,
    ValueResult,
    summarise_draws,
)
from cxresearch.reports.display import format_money_exact

#: Fit settings of the fitted models (the params keys) and their defaults; see :func:`fitted_models`.
FIT_DEFAULTS: dict[str, Any] = {
    "driver_method": "nuts",
    "driver_draws": 1000,
    "driver_tune": 700,
    "driver_chains": 2,
    "driver_max_draws": 500,
    "driver_wave": "all",
    "driver_slope_offset_sd": 0.3,
    "survival_draws": 1000,
    "survival_tune": 1000,
    "survival_chains": 4,
    "value_nps_wave": "1",
    "word_of_mouth": {"referrals_per_promoter": 0.0, "prospects_lost_per_detractor": 0.0, "value_per_referral": 0.0},
}


@dataclass
class Models:
    """The driver and value models used, a sentence saying which they are, and their fits' diagnostics.

    ``diagnostics`` is ``{"driver": Diagnostics, "value": Diagnostics}`` for fitted models (the one gate of
    :mod:`cxresearch.diagnostics`; dicts are accepted and converted) and empty for the simulator's true models.
    """

    driver: DriverScenarioModel
    value: ValueModel
    source: str
    diagnostics: dict[str, Diagnostics] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.diagnostics = {name: as_diagnostics(d) for name, d in self.diagnostics.items()}

    @property
    def fitted(self) -> bool:
        """Whether these are fitted models (with diagnostics), not the simulator's truth."""
        return bool(self.diagnostics)

    @property
    def gate(self) -> Diagnostics:
        """One verdict over the fits (:func:`cxresearch.diagnostics.combine`; closed form for the truth)."""
        return combine(self.diagnostics)

    @property
    def passed(self) -> bool:
        """Every fit passed its diagnostics gate (True for the truth, which has none)."""
        return self.gate.passed

    def failed(self) -> list[str]:
        """Names of the fits that failed their diagnostics gate."""
        return [k for k, d in self.diagnostics.items() if not d.passed]

    def results(self) -> dict[str, Any]:
        """What results.json records under ``models``: the source and each fit's diagnostics block."""
        out: dict[str, Any] = {"source": self.source, "fitted": self.fitted}
        for name, d in self.diagnostics.items():
            out[name] = {"diagnostics": as_dict(d)}
        return out

    def warning_markdown(self) -> str:
        """A bold warning naming the fits that failed their gate ('' when all passed): the report's top line."""
        failed = self.failed()
        if not failed:
            return ""
        names = {"driver": "driver model", "value": "survival (value) model"}
        parts = []
        for k in failed:
            d = self.diagnostics[k]
            reasons = "; ".join(d.reasons or d.extra.get("failures") or []) or "gate not met"
            parts.append(f"the {names.get(k, k)} ({reasons})")
        return (
            "**Warning: " + " and ".join(parts) + " did not pass the diagnostics gate. The values below are "
            "not reliable for decisions until the models are re-run with more draws and pass.**\n\n"
        )


@dataclass
class StudyResult:
    """Everything the notebook shows."""

    catalogue: Catalogue
    engine: InitiativeEngine
    singles: dict[str, ValueResult]
    ranking: pd.DataFrame
    roadmap: Roadmap
    baseline_wave: str
    notes: list[str] = field(default_factory=list)


def truth_beside(dataset: str | Path) -> Path | None:
    """``truth.json`` next to a dataset spec (simulated data), or None."""
    path = Path(dataset).expanduser().resolve().parent / "truth.json"
    return path if path.is_file() else None


def fitted_models(
    data: Any,
    draws: int,
    seed: int,
    *,
    driver_method: str = "nuts",
    driver_draws: int = 1000,
    driver_tune: int = 700,
    driver_chains: int = 2,
    driver_max_draws: int = 500,
    driver_wave: str = "all",
    driver_slope_offset_sd: float | None = 0.3,
    survival_draws: int = 1000,
    survival_tune: int = 1000,
    survival_chains: int = 4,
    value_nps_wave: str = "1",
    word_of_mouth: Mapping[str, float] | None = None,
    driver_model: Mapping[str, Any] | None = None,
    baseline_wave: str = "latest",
) -> Models:
    """Fit the driver model and the survival model to ``data`` (a CXData) and wrap them for the engine.

    Driver: :func:`cxresearch.drivers.fit_driver_model` (``driver_method`` nuts or approx) on the survey
    rows of ``driver_wave`` ("all" (default): every wave, with a wave intercept, so the links use every
    answer; "latest": the baseline wave the initiatives start from; or a wave), the model of
    :func:`~cxresearch.initiatives.fitted.scenario_model_spec` (segment and market slope offsets with the
    fixed prior sd ``driver_slope_offset_sd``) unless ``driver_model`` gives one, adapted by
    :class:`~cxresearch.initiatives.fitted.FittedDriverModel` with ``driver_max_draws`` posterior draws.
    Value: the economics piecewise-exponential survival model on the customers with an NPS class in
    ``value_nps_wave`` (:func:`~cxresearch.initiatives.fitted.fit_value_model`). ``draws`` (the engine's
    draws) bounds the posterior draws used. The returned ``source`` names both models with their
    diagnostics (R-hat max, ESS min, divergences) and says when a gate failed.
    """
    from cxresearch.initiatives.fitted import fit_driver_scenario_model, fit_value_model

    wave = driver_wave
    if wave == "latest":
        wave = baseline_survey(data.survey, baseline_wave)[1]
    driver = fit_driver_scenario_model(
        data,
        wave=wave,
        model=driver_model,
        method=driver_method,
        draws=driver_draws,
        tune=driver_tune,
        chains=driver_chains,
        seed=seed,
        max_draws=min(int(driver_max_draws), int(draws)),
        slope_offset_sd=driver_slope_offset_sd,
    )
    value = fit_value_model(
        data,
        nps_wave=value_nps_wave,
        draws=survival_draws,
        tune=survival_tune,
        chains=survival_chains,
        seed=seed,
        clv_draws=int(draws),
        word_of_mouth=word_of_mouth,
    )
    diagnostics = {"driver": as_diagnostics(driver.diagnostics), "value": as_diagnostics(value.diagnostics)}
    n_waves = data.survey["wave"].astype(str).nunique()
    if wave not in ("all", "", None):
        where = f"survey wave {wave}"
    else:
        where = f"all {n_waves} survey waves (a wave intercept)" if n_waves > 1 else "the survey's one wave"
    source = f"fitted models: {driver.describe()} on {where}; {value.describe()}"
    failed = [k for k, d in diagnostics.items() if not d.passed]
    if failed:
        source = (
            f"fitted models, NOT PASSING the diagnostics gate ({', '.join(failed)}): "
            + source[len("fitted models: ") :]
        )
    return Models(driver, value, source, diagnostics)


def choose_models(
    dataset: str | Path, use_truth: bool, data: Any, draws: int, seed: int, **fit_settings: Any
) -> Models:
    """The simulator's true models when ``use_truth`` (validation / demo; needs truth.json beside the
    dataset); else the fitted ones (:func:`fitted_models`, which receives ``fit_settings``)."""
    from cxresearch.initiatives.truth import TrueDriverModel, TrueValueModel

    truth = truth_beside(dataset)
    if use_truth and truth is not None:
        return Models(
            TrueDriverModel(truth),
            TrueValueModel(truth),
            f"the simulator's true parameters ({truth.name}): values are what the simulated "
            "world really gives, with effect-size uncertainty only",
        )
    if use_truth:
        raise FileNotFoundError(
            f"use_truth is true but there is no truth.json beside {dataset}; "
            "set use_truth = false to use the fitted models"
        )
    return fitted_models(data, draws, seed, **fit_settings)


def baseline_survey(survey: pd.DataFrame, wave: str = "latest") -> tuple[pd.DataFrame, str]:
    """The survey rows describing today's experience: the latest wave (or the one named)."""
    waves = sorted(survey["wave"].astype(str).unique().tolist(), key=lambda w: (len(w), w))
    if not waves:
        raise ValueError("survey: no rows")
    chosen = waves[-1] if wave == "latest" else str(wave)
    if chosen not in waves:
        raise ValueError(f"baseline_wave {wave!r} is not in the survey (waves: {waves})")
    return survey[survey["wave"].astype(str) == chosen].reset_index(drop=True), chosen


def run_study(
    data: Any,
    catalogue: Any,
    models: Models,
    budget: float,
    discount_rate_annual: float = 0.08,
    horizon_months: int = 60,
    draws: int = 1000,
    seed: int = 1,
    baseline_wave: str = "latest",
    touchpoints: Mapping[str, TouchpointInfo] | None = None,
) -> StudyResult:
    """Value every initiative, rank them, choose and order the plan under ``budget``.

    ``data`` is a CXData (survey, customers, spec). The catalogue is validated against the data first.
    """
    cat = load_catalogue(catalogue)
    tps = dict(touchpoints) if touchpoints is not None else touchpoint_info_from_spec(data.spec)
    survey, wave = baseline_survey(data.survey, baseline_wave)
    check_catalogue(cat, tps, segments=data.survey["segment"].unique(), markets=data.survey["market"].unique())
    engine = InitiativeEngine(
        survey,
        tps,
        models.driver,
        models.value,
        customers=data.customers,
        draws=draws,
        horizon_months=horizon_months,
        discount_rate_annual=discount_rate_annual,
        seed=seed,
    )
    singles = engine.evaluate_each(cat, decompose=True)
    ranking = rank_initiatives(singles, cat, tps)
    roadmap = build_roadmap(engine, cat, budget, singles=singles)
    notes = sorted({n for r in singles.values() for n in r.notes})
    return StudyResult(
        catalogue=cat, engine=engine, singles=singles, ranking=ranking, roadmap=roadmap, baseline_wave=wave, notes=notes
    )


def evaluation_setup(
    dataset: str | Path, touchpoint: str, treated_units: list[str], post_waves: list[str]
) -> dict[str, Any] | None:
    """What the difference-in-differences section evaluates, or None when nothing is configured.

    Given ``touchpoint`` and ``treated_units`` they are used as they are. Otherwise, on a simulated dataset
    whose truth.json records a planted intervention, that intervention (its touchpoint, treated units and
    wave) is evaluated and its true effects are returned under ``truth`` for comparison (the evaluation
    itself uses only the survey data, whichever models value the initiatives).
    """
    if touchpoint and treated_units:
        return {
            "touchpoint": touchpoint,
            "treated_units": [str(u) for u in treated_units],
            "post_waves": [str(w) for w in post_waves],
            "truth": None,
        }
    if touchpoint or treated_units:
        raise ValueError(
            "evaluation: give both evaluation_touchpoint and evaluation_treated_units "
            f"(got touchpoint={touchpoint!r}, {len(treated_units)} treated units)"
        )
    truth_path = truth_beside(dataset)
    if truth_path is None:
        return None
    import json

    intervention = json.loads(truth_path.read_text(encoding="utf-8")).get("intervention")
    if not intervention:
        return None
    return {
        "touchpoint": intervention["touchpoint"],
        "treated_units": list(intervention["treated_units"]),
        "post_waves": [str(intervention.get("wave", "2"))],
        "truth": {"rating": intervention.get("true_effect_rating"), "nps": intervention.get("true_effect_nps")},
    }


# --------------------------------------------------------------------------------------------------------
# validation against the simulator's truth
# --------------------------------------------------------------------------------------------------------
@dataclass
class TruthCheck:
    """Fitted models against the simulator's truth: per initiative, link by link, and for the plan.

    ``comparison``: one row per initiative (see :func:`check_against_truth`). ``plan``: the plan chosen from the
    fitted values and the true best plan under the same budget, both valued with the true models.
    """

    comparison: pd.DataFrame
    plan: dict[str, Any]

    @property
    def met(self) -> bool:
        """Every initiative meets the bar (benefit within 10% or the truth in the middle half of the fitted
        interval) and the plan is the true best one or worth at least 95% of it."""
        return bool(self.comparison["meets"].all()) and bool(self.plan["meets"])


#: a fitted benefit within this share of the truth is "right" (the issue-23 bar)
BENEFIT_TOLERANCE = 0.10
#: the fitted plan's true value must reach this share of the true best plan's
PLAN_VALUE_SHARE = 0.95


def check_against_truth(
    data: Any, study: StudyResult, truth: str | Path | Mapping[str, Any], links: bool = True
) -> TruthCheck:
    """Each initiative valued with the study's (fitted) models, with the simulator's true models, and (with
    ``links``) with one fitted and one true model, so a difference can be traced to its link.

    Same survey rows, customers, effect draws (same seed), horizon and discount rate; the truth carries
    effect-size uncertainty only. Per initiative: fitted / truth net value (mean, 5%, 95%), fitted 25% / 75%,
    NPS shifts, the discounted benefit (before costs) of each and ``benefit_ratio`` = fitted / true,
    ``driver_link`` = benefit with the fitted driver and the true value model / true (the touchpoint ->
    recommend link), ``value_link`` = true driver and fitted value model / true (recommend class -> survival
    and margin); ``covered`` (the true mean inside the fitted 90% interval), ``in_middle_half`` (inside the
    fitted 25%-75% range) and ``meets`` (benefit within :data:`BENEFIT_TOLERANCE` of the truth, or
    ``in_middle_half``). The driver and value factors multiply to about the whole ratio (interactions under
    1% on the demo), and one value-model estimate feeds every initiative, so a shared ``value_link`` is one
    piece of evidence, not six.
    """
    import numpy as np

    from cxresearch.initiatives.truth import TrueDriverModel, TrueValueModel

    engine = study.engine
    survey, _ = baseline_survey(data.survey, study.baseline_wave)
    true_driver, true_value = TrueDriverModel(truth), TrueValueModel(truth)

    def engine_with(driver: DriverScenarioModel, value: ValueModel) -> InitiativeEngine:
        return InitiativeEngine(
            survey,
            engine.touchpoints,
            driver,
            value,
            customers=data.customers,
            draws=engine.draws,
            horizon_months=engine.horizon,
            discount_rate_annual=engine.discount_rate_annual,
            seed=engine.seed,
        )

    true_engine = engine_with(true_driver, true_value)
    mixed = {"driver": engine_with(engine.driver, true_value), "value": engine_with(true_driver, engine.value)}

    def ratio(a: np.ndarray, b: np.ndarray) -> float:
        top, bottom = float(np.mean(a)), float(np.mean(b))
        return top / bottom if bottom != 0 else float("nan")

    rows = []
    for ini in study.catalogue:
        fitted = study.singles[ini.name]
        true = true_engine.evaluate([ini])
        f, t = summarise_draws(fitted.net_value), summarise_draws(true.net_value)
        q25, q75 = (float(x) for x in np.quantile(fitted.net_value, [0.25, 0.75]))
        benefit_ratio = ratio(fitted.benefit_pv, true.benefit_pv)
        row = {
            "initiative": ini.name,
            "label": ini.title,
            "fitted_mean": f["mean"],
            "fitted_low": f["interval"][0],
            "fitted_high": f["interval"][1],
            "fitted_q25": q25,
            "fitted_q75": q75,
            "truth_mean": t["mean"],
            "truth_low": t["interval"][0],
            "truth_high": t["interval"][1],
            "fitted_nps_shift": summarise_draws(fitted.nps_shift)["mean"],
            "truth_nps_shift": summarise_draws(true.nps_shift)["mean"],
            "fitted_benefit": float(np.mean(fitted.benefit_pv)),
            "truth_benefit": float(np.mean(true.benefit_pv)),
            "benefit_ratio": benefit_ratio,
            "driver_link": ratio(mixed["driver"].evaluate([ini]).benefit_pv, true.benefit_pv) if links else None,
            "value_link": ratio(mixed["value"].evaluate([ini]).benefit_pv, true.benefit_pv) if links else None,
            "covered": bool(f["interval"][0] <= t["mean"] <= f["interval"][1]),
            "in_middle_half": bool(q25 <= t["mean"] <= q75),
        }
        row["meets"] = bool(abs(benefit_ratio - 1.0) <= BENEFIT_TOLERANCE or row["in_middle_half"])
        rows.append(row)
    comparison = pd.DataFrame(rows)

    # the plan: chosen from the fitted values vs the true best plan, both valued with the true models
    budget = study.roadmap.selection.budget
    best = build_roadmap(true_engine, study.catalogue, budget)
    chosen = list(study.roadmap.plan)
    chosen_value = (
        float(np.mean(true_engine.evaluate([study.catalogue[n] for n in chosen]).net_value)) if chosen else 0.0
    )
    best_value = float(np.mean(best.value.net_value)) if best.plan else 0.0
    share = chosen_value / best_value if best_value > 0 else (1.0 if chosen_value >= best_value else 0.0)
    plan = {
        "fitted_plan": chosen,
        "true_best_plan": list(best.plan),
        "fitted_plan_true_value": chosen_value,
        "true_best_value": best_value,
        "share_of_best": share,
        "same_plan": sorted(chosen) == sorted(best.plan),
    }
    plan["meets"] = bool(plan["same_plan"] or share >= PLAN_VALUE_SHARE)
    return TruthCheck(comparison, plan)


def fitted_vs_truth(data: Any, study: StudyResult, truth: str | Path | Mapping[str, Any]) -> pd.DataFrame:
    """Per-initiative comparison of :func:`check_against_truth` without the link decomposition."""
    return check_against_truth(data, study, truth, links=False).comparison


def truth_comparison_display(frame: pd.DataFrame, currency: str = "€") -> pd.DataFrame:
    """The comparison for readers: one row per initiative, money in whole units, interval in words."""
    lv = f"{round(100 * (INTERVAL[1] - INTERVAL[0]))}%"

    def with_interval(mean: float, low: float, high: float) -> str:
        money = [format_money_exact(x, currency) for x in (mean, low, high)]
        return f"{money[0]} ({money[1]} to {money[2]})"

    return pd.DataFrame(
        {
            "Initiative": frame["label"],
            "Net value, fitted models": [
                with_interval(m, lo, hi) for m, lo, hi in zip(frame.fitted_mean, frame.fitted_low, frame.fitted_high)
            ],
            "Net value, true models": [
                with_interval(m, lo, hi) for m, lo, hi in zip(frame.truth_mean, frame.truth_low, frame.truth_high)
            ],
            "NPS shift (fitted / true)": [
                f"{a:+.1f} / {b:+.1f}" for a, b in zip(frame.fitted_nps_shift, frame.truth_nps_shift)
            ],
            f"True value inside the fitted {lv} interval": ["yes" if c else "NO" for c in frame.covered],
        }
    )


def truth_links_display(frame: pd.DataFrame) -> pd.DataFrame:
    """Where a fitted benefit departs from the truth, link by link (benefit before costs, fitted / true)."""
    lo, hi = 1 - BENEFIT_TOLERANCE, 1 + BENEFIT_TOLERANCE

    def fmt(x: Any) -> str:
        return "-" if x is None or pd.isna(x) else f"{x:.2f}"

    return pd.DataFrame(
        {
            "Initiative": frame["label"],
            "Benefit, fitted / true": [fmt(x) for x in frame.benefit_ratio],
            "Driver link (touchpoint -> recommend)": [fmt(x) for x in frame.driver_link],
            "Value link (class -> retention, margin)": [fmt(x) for x in frame.value_link],
            "True value in the fitted middle half (25-75%)": ["yes" if c else "no" for c in frame.in_middle_half],
            f"Right ({lo:.1f}-{hi:.1f}x, or middle half)": ["yes" if c else "NO" for c in frame.meets],
        }
    )


def plan_check_text(plan: Mapping[str, Any], labels: Mapping[str, str] | None = None, currency: str = "€") -> str:
    """One sentence on the plan chosen from the fitted values against the true best plan."""
    labels = labels or {}

    def names(plan_names: list[str]) -> str:
        return ", ".join(labels.get(n, n) for n in plan_names) or "nothing"

    if plan["same_plan"]:
        return (
            f"The plan chosen from the fitted values ({names(plan['fitted_plan'])}) is the true best plan under "
            f"the budget: true net value {format_money_exact(plan['true_best_value'], currency)}."
        )
    return (
        f"The plan chosen from the fitted values ({names(plan['fitted_plan'])}) is worth "
        f"{format_money_exact(plan['fitted_plan_true_value'], currency)} in the simulated world, "
        f"{100 * plan['share_of_best']:.0f}% of the true best plan ({names(plan['true_best_plan'])}: "
        f"{format_money_exact(plan['true_best_value'], currency)})."
    )


def truth_comparison_results(frame: pd.DataFrame, plan: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """results.json entries: per initiative ``{fitted: {mean, interval}, truth: {mean, interval}, covered,
    in_middle_half, benefit_ratio, driver_link, value_link, meets}``, plus ``plan`` when given."""

    def num(x: Any) -> float | None:
        return None if x is None or pd.isna(x) else float(x)

    out: dict[str, Any] = {
        r.initiative: {
            "fitted": {"mean": r.fitted_mean, "interval": [r.fitted_low, r.fitted_high]},
            "truth": {"mean": r.truth_mean, "interval": [r.truth_low, r.truth_high]},
            "covered": bool(r.covered),
            "in_middle_half": bool(r.in_middle_half),
            "benefit_ratio": num(r.benefit_ratio),
            "driver_link": num(r.driver_link),
            "value_link": num(r.value_link),
            "meets": bool(r.meets),
        }
        for r in frame.itertuples(index=False)
    }
    if plan is not None:
        out["plan"] = dict(plan)
    return out
