"""The initiatives study in a few calls (what ``notebooks/initiatives.ipynb`` runs).

    models = choose_models(dataset, use_truth, data, draws, seed)      # truth (demo) or fitted models
    study = run_study(data, catalogue, models, budget=..., ...)          # values, ranking, roadmap
    plan_headline_markdown(study.roadmap, study.singles, study.catalogue, discount_rate_annual)

The fitted models plug in at :func:`fitted_models`: it must return a DriverScenarioModel and a ValueModel
(see :mod:`cxresearch.initiatives.value`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cxresearch.initiatives.catalogue import (
    Catalogue,
    CatalogueError,
    TouchpointInfo,
    check_catalogue,
    load_catalogue,
    touchpoint_info_from_spec,
)
from cxresearch.initiatives.roadmap import Roadmap, build_roadmap, rank_initiatives
from cxresearch.initiatives.value import DriverScenarioModel, InitiativeEngine, ValueModel, ValueResult


@dataclass
class Models:
    """The driver and value models used, and a sentence saying which they are."""

    driver: DriverScenarioModel
    value: ValueModel
    source: str


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


def validate_settings(settings: Mapping[str, Any], source: str = "settings") -> None:
    """Check the initiatives study settings before a run (catalogue, budget, horizon, draws, rate).

    Raises ValueError naming ``source`` and the key path.
    """
    problems = []
    if "catalogue" in settings:
        try:
            load_catalogue(settings["catalogue"], where=f"{source}.catalogue")
        except CatalogueError as exc:
            problems.append(str(exc))
    checks = {"budget": (0, None), "horizon_months": (1, 600), "draws": (10, 100_000),
              "discount_rate_annual": (-0.99, 1.0)}
    for key, (low, high) in checks.items():
        if key in settings:
            v = settings[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                problems.append(f"{source}.{key}: expected a number, got {v!r}")
            elif v < low or (high is not None and v > high):
                problems.append(f"{source}.{key}: {v!r} is outside {low} to {high if high is not None else 'inf'}")
    for key in ("horizon_months", "draws"):
        if key in settings and isinstance(settings[key], float) and not settings[key].is_integer():
            problems.append(f"{source}.{key}: must be a whole number, got {settings[key]!r}")
    if problems:
        raise ValueError("\n".join(problems))


def truth_beside(dataset: str | Path) -> Path | None:
    """``truth.json`` next to a dataset spec (simulated data), or None."""
    path = Path(dataset).expanduser().resolve().parent / "truth.json"
    return path if path.is_file() else None


def fitted_models(data: Any, draws: int, seed: int) -> Models:
    """HOOK for the fitted models: a driver model adapted to ``class_mix`` and the economics CLV draws.

    Not wired yet: the drivers and economics modules provide the posteriors; an adapter must expose
    ``class_mix(survey, draws, rng) -> [draws, 3]`` (driver) and ``cashflows(customers, draws,
    horizon_months, rng) -> ClvDraws`` (value). See :mod:`cxresearch.initiatives.value`.
    """
    raise NotImplementedError(
        "The fitted driver and economics models are not connected to the initiatives study yet. "
        "Run on simulated data with use_truth = true (truth.json beside the dataset), or wire "
        "cxresearch.initiatives.study.fitted_models to the drivers / economics posteriors.")


def choose_models(dataset: str | Path, use_truth: bool, data: Any, draws: int, seed: int) -> Models:
    """The simulator's true models when ``use_truth`` and a truth.json sits beside the dataset; else the
    fitted ones (:func:`fitted_models`)."""
    from cxresearch.initiatives.truth import TrueDriverModel, TrueValueModel

    truth = truth_beside(dataset)
    if use_truth and truth is not None:
        return Models(TrueDriverModel(truth), TrueValueModel(truth),
                      f"the simulator's true parameters ({truth.name}): values are what the simulated "
                      "world really gives, with effect-size uncertainty only")
    if use_truth:
        raise FileNotFoundError(f"use_truth is true but there is no truth.json beside {dataset}; "
                                "set use_truth = false to use the fitted models")
    return fitted_models(data, draws, seed)


def baseline_survey(survey: pd.DataFrame, wave: str = "latest") -> tuple[pd.DataFrame, str]:
    """The survey rows describing today's experience: the latest wave (or the one named)."""
    waves = sorted(survey["wave"].astype(str).unique().tolist(), key=lambda w: (len(w), w))
    if not waves:
        raise ValueError("survey: no rows")
    chosen = waves[-1] if wave == "latest" else str(wave)
    if chosen not in waves:
        raise ValueError(f"baseline_wave {wave!r} is not in the survey (waves: {waves})")
    return survey[survey["wave"].astype(str) == chosen].reset_index(drop=True), chosen


def run_study(data: Any, catalogue: Any, models: Models, budget: float, discount_rate_annual: float = 0.08,
              horizon_months: int = 60, draws: int = 1000, seed: int = 1, baseline_wave: str = "latest",
              touchpoints: Mapping[str, TouchpointInfo] | None = None) -> StudyResult:
    """Value every initiative, rank them, choose and order the plan under ``budget``.

    ``data`` is a CXData (survey, customers, spec). The catalogue is validated against the data first.
    """
    cat = load_catalogue(catalogue)
    tps = dict(touchpoints) if touchpoints is not None else touchpoint_info_from_spec(data.spec)
    survey, wave = baseline_survey(data.survey, baseline_wave)
    check_catalogue(cat, tps, segments=data.survey["segment"].unique(), markets=data.survey["market"].unique())
    engine = InitiativeEngine(survey, tps, models.driver, models.value, customers=data.customers, draws=draws,
                              horizon_months=horizon_months, discount_rate_annual=discount_rate_annual, seed=seed)
    singles = engine.evaluate_each(cat, decompose=True)
    ranking = rank_initiatives(singles, cat, tps)
    roadmap = build_roadmap(engine, cat, budget, singles=singles)
    notes = sorted({n for r in singles.values() for n in r.notes})
    return StudyResult(catalogue=cat, engine=engine, singles=singles, ranking=ranking, roadmap=roadmap,
                       baseline_wave=wave, notes=notes)


def evaluation_setup(dataset: str | Path, use_truth: bool, touchpoint: str, treated_units: list[str],
                     post_waves: list[str]) -> dict[str, Any] | None:
    """What the difference-in-differences section evaluates, or None when nothing is configured.

    Given ``touchpoint`` and ``treated_units`` they are used as they are. Otherwise, with ``use_truth`` and
    a simulated dataset whose truth.json records a planted intervention, that intervention (its touchpoint,
    treated units and wave) is evaluated and its true effects are returned under ``truth`` for comparison.
    """
    if touchpoint and treated_units:
        return {"touchpoint": touchpoint, "treated_units": [str(u) for u in treated_units],
                "post_waves": [str(w) for w in post_waves], "truth": None}
    if touchpoint or treated_units:
        raise ValueError("evaluation: give both evaluation_touchpoint and evaluation_treated_units "
                         f"(got touchpoint={touchpoint!r}, {len(treated_units)} treated units)")
    truth_path = truth_beside(dataset)
    if not (use_truth and truth_path is not None):
        return None
    import json

    intervention = json.loads(truth_path.read_text(encoding="utf-8")).get("intervention")
    if not intervention:
        return None
    return {"touchpoint": intervention["touchpoint"], "treated_units": list(intervention["treated_units"]),
            "post_waves": [str(intervention.get("wave", "2"))],
            "truth": {"rating": intervention.get("true_effect_rating"), "nps": intervention.get("true_effect_nps")}}
