"""Recovery of initiative values across repeated simulated data sets (issue 23): fitted vs the simulator's truth.

    python benchmarks/initiatives_recovery.py --replications 20 --workers 2 \\
        --out benchmarks/out/recovery.json --markdown benchmarks/out/recovery.md

Per replication (one simulator seed): simulate a data set into a temporary folder
(:func:`cxresearch.data.simulator.simulate_dataset`, optionally on mixed scales or with another emotion
form), load it, fit the study's models (:func:`cxresearch.initiatives.study.fitted_models` with the fit
settings), and value every initiative of the study's catalogue (``params/initiatives.yaml``) twice: with
the fitted models and with the simulator's true models (:mod:`cxresearch.initiatives.truth`), with the same
baseline survey rows, customers, horizon, discount rate, draws and seed. The engines draw the effect sizes
from the seed and the initiative's name, so draw ``d`` has the same effect size in both.

Recorded per initiative (:func:`compare_initiative`):

- ``ratio``: fitted / true mean discounted benefit (``benefit_pv``; costs are the same in both);
- ``covered``: the true mean net value lies inside the fitted 90% interval of the net value (the issue's
  coverage). That interval holds the effect-size uncertainty, which the true chain has too, so an unbiased
  model over-covers (docs/notes/issue-23/REPORT.md, "Coverage caveat");
- the *paired* check, with the effect size held at its draw: ``paired_pit`` is the share of draws in which
  the fitted benefit exceeds the true benefit at the same effect draw (ties count one half), and
  ``paired_covered`` is ``0.05 <= paired_pit <= 0.95``: the truth lies inside the fitted 90% interval
  conditional on the effect. For a calibrated model the PIT is uniform over replications and the paired
  coverage is about 90%. The per-draw ratio fitted / true benefit (draws with a positive true benefit) is
  summarised too (``draw_ratio_q05/q50/q95``);
- the NPS shift among the customers in scope, fitted vs true.

And per replication: the pooled ratio (sum of the fitted benefits / sum of the true ones), the plan chosen
under the budget from the fitted values (:func:`cxresearch.initiatives.roadmap.build_roadmap`) against the
true best plan (the same with the true engine): ``plan_value_ratio`` = the true value of the fitted plan /
the true value of the true best plan; the diagnostics gate of each fit and the seconds of each stage.

A replication whose fit failed its diagnostics gate is kept, marked ``gate_failed``, and reported apart: it
does not enter the recovery figures (``aggregate(..., include_gate_failed=False)``). One that raised is
marked ``error`` with the message.

Aggregate (:func:`aggregate`): per initiative, the median ratio with a distribution-free (order-statistic)
90% interval of the median, coverage and paired coverage; the pooled ratio likewise; the plan-value ratio's
median and the share of replications at or above 0.95; stage timings. :func:`check_recovery` turns the
issue's targets into a list of failures (empty = pass); :func:`markdown_report` writes the tables.

Fit settings: by default the study's (``settings`` of ``params/initiatives.yaml``, the keys that
``fitted_models`` accepts), overridden by ``--set key=value`` (typed like the key's default in
``fitted_models``; unknown keys are refused with the list of known ones). ``--settings package`` uses the
package defaults instead of the params file.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import inspect
import json
import math
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PARAMS = REPO / "params" / "initiatives.yaml"

#: the simulator's default touchpoint scale is 1-5: 4 points wide (the catalogue's uplifts are stated on it)
DEFAULT_SCALE_WIDTH = 4.0
#: ``--scales mixed``: the mixed scales of the drivers' mixed-scale tests
MIXED_SCALES = "mobile_app=0-10,online_payment=1-100"
#: customers of the demo data set, whose decision problem (costs, budget) the params file describes
DEMO_CUSTOMERS = 20_000
#: the action plan ``make demo`` plants (the demo data set has it)
DEMO_INTERVENTION = "touchpoint=branch_visit,effect=0.5,treated_share=0.5"
#: the issue's targets
RATIO_BAND = (0.9, 1.1)
COVERAGE_BAND = (0.80, 0.97)
PLAN_RATIO_MIN = 0.95
#: "most replications": more than half of them (at least 11 of 20)
PLAN_SHARE_MOST = 0.51
#: thread settings of a worker process (one replication per process, one thread each)
ONE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1",  # nutpie's thread pool
    "CXRESEARCH_THREADS": "1",  # nutpie cores (cxresearch.runtime.run_threads)
}


# ------------------------------------------------------------------------------------------------ settings
@dataclass
class RecoveryConfig:
    """What every replication shares (JSON-native, so it can cross to a worker process and into results)."""

    customers: int = 20_000
    scales: str = "default"  # "default", "mixed" or touchpoint=min-max,...
    emotion_form: str | None = None  # None: the simulator's default (not passed)
    intervention: str = DEMO_INTERVENTION  # "" = none
    population_samples: int = 100_000  # the simulator's Monte-Carlo population truth (not used by the engines)
    fit_settings: dict[str, Any] = field(default_factory=dict)
    engine_draws: int = 200
    engine_seed: int = 1
    fit_seed: int = 1
    rescale_uplifts: bool = True  # uplifts (stated on 1-5) kept at the same share of range on other scales
    cost_scale: float | None = None  # costs and budget x this; None: customers / 20,000 (the demo's decision)
    params: str = str(PARAMS)
    keep_data: str | None = None  # folder to keep the simulated data sets in (default: a temporary folder)


def fit_setting_defaults() -> dict[str, Any]:
    """The keyword settings :func:`~cxresearch.initiatives.study.fitted_models` accepts, with their defaults."""
    from cxresearch.initiatives.study import fitted_models

    return {
        name: p.default
        for name, p in inspect.signature(fitted_models).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def parse_setting(key: str, text: str, defaults: Mapping[str, Any] | None = None) -> Any:
    """``text`` as the type of ``key``'s default: a string default keeps text (``driver_wave=1`` is "1"),
    anything else is read as YAML (numbers, ``null``, ``{...}``). Unknown keys raise with the known ones."""
    import yaml

    defaults = fit_setting_defaults() if defaults is None else defaults
    if key not in defaults:
        raise ValueError(f"--set {key}: not a fit setting of fitted_models; known: {', '.join(sorted(defaults))}")
    if isinstance(defaults[key], str):
        return text
    return yaml.safe_load(text)


def parse_sets(items: Iterable[str], defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``["driver_draws=300", "driver_wave=all"]`` -> ``{"driver_draws": 300, "driver_wave": "all"}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: use key=value")
        out[key.strip()] = parse_setting(key.strip(), value.strip(), defaults)
    return out


def study_params(path: str | Path = PARAMS) -> dict[str, Any]:
    """The study's settings: ``catalogue`` (list of dicts), ``budget``, ``horizon_months``,
    ``discount_rate_annual`` and ``fit`` (the settings ``fitted_models`` accepts)."""
    from cxresearch.yamlio import load_yaml

    settings = dict(load_yaml(path)["settings"])
    keys = fit_setting_defaults()
    return {
        "catalogue": list(settings["catalogue"]),
        "budget": float(settings["budget"]),
        "horizon_months": int(settings.get("horizon_months", 60)),
        "discount_rate_annual": float(settings.get("discount_rate_annual", 0.08)),
        "fit": {k: v for k, v in settings.items() if k in keys},
    }


def resolve_fit_settings(source: str, overrides: Mapping[str, Any], params: str | Path = PARAMS) -> dict[str, Any]:
    """Fit settings: the params file's (``source="params"``) or none (``"package"``: fitted_models' defaults),
    updated by ``overrides``."""
    if source not in ("params", "package"):
        raise ValueError(f"settings source must be 'params' or 'package', got {source!r}")
    base = study_params(params)["fit"] if source == "params" else {}
    return {**base, **dict(overrides)}


def scales_option(text: str) -> dict[str, tuple[int, int]]:
    """``default`` -> {}, ``mixed`` -> :data:`MIXED_SCALES`, else ``touchpoint=min-max,...``."""
    from cxresearch.data.simulator import parse_scales

    if text in ("", "default"):
        return {}
    return parse_scales(MIXED_SCALES if text == "mixed" else text)


def scale_costs(
    catalogue: Sequence[Mapping[str, Any]], budget: float, factor: float
) -> tuple[list[dict[str, Any]], float]:
    """Costs (one-off and recurring) and the budget multiplied by ``factor``: benefits grow with the number of
    customers, so a data set of ``n`` customers keeps the demo's decision problem with factor n / 20,000."""
    out = []
    for item in catalogue:
        item = dict(item)
        cost = dict(item.get("cost") or {})
        item["cost"] = {k: float(v) * factor if isinstance(v, (int, float)) else v for k, v in cost.items()}
        out.append(item)
    return out, float(budget) * factor


def _scale_distribution(value: Any, factor: float, where: str) -> Any:
    """An effect-size spec with every location / width multiplied by ``factor`` (linear forms only)."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: cannot rescale {value!r}")
    if isinstance(value, (int, float)):
        return float(value) * factor
    if isinstance(value, (list, tuple)):
        return [float(v) * factor for v in value]
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, body),) = value.items()
        if kind in ("uniform", "triangular", "normal"):
            if isinstance(body, Mapping):
                return {kind: {k: float(v) * factor for k, v in body.items()}}
            return {kind: [float(v) * factor for v in body]}
    raise ValueError(
        f"{where}: only point, range, uniform, triangular and normal uplifts can be rescaled; got {value!r}"
    )


def rescale_uplifts(catalogue: Sequence[Mapping[str, Any]], widths: Mapping[str, float]) -> list[dict[str, Any]]:
    """The catalogue with each uplift (rating points stated on the default 1-5 scale) multiplied by
    ``width / 4`` of its touchpoints' scale, so it is the same share of the range on a wider scale.
    ``remove_bad`` effects are shares and stay as they are. Raises when one uplift targets touchpoints of
    different widths."""
    out = []
    for item in catalogue:
        item = dict(item)
        effect = item.get("effect") or {}
        if "uplift" in effect:
            found = {float(widths[t]) for t in item["touchpoints"] if t in widths}
            if len(found) > 1:
                raise ValueError(f"catalogue[{item['name']}]: an uplift on touchpoints of different widths {found}")
            width = found.pop() if found else DEFAULT_SCALE_WIDTH
            if width != DEFAULT_SCALE_WIDTH:
                factor = width / DEFAULT_SCALE_WIDTH
                where = f"catalogue[{item['name']}].effect.uplift"
                item["effect"] = {**effect, "uplift": _scale_distribution(effect["uplift"], factor, where)}
        out.append(item)
    return out


# ------------------------------------------------------------------------------------ one replication
def paired_pit(fitted: np.ndarray, true: np.ndarray) -> float:
    """Share of draws where ``fitted > true`` (ties count one half): where the truth falls in the fitted
    draws when both are taken at the same effect draw. Uniform over replications for a calibrated model."""
    f, t = np.asarray(fitted, dtype=float), np.asarray(true, dtype=float)
    scale = max(1.0, float(np.max(np.abs(t))) if len(t) else 1.0)
    tie = np.abs(f - t) <= 1e-9 * scale
    return float(np.mean(np.where(tie, 0.5, (f > t).astype(float))))


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b and math.isfinite(a) and math.isfinite(b) else None


def compare_initiative(
    fitted_benefit: np.ndarray,
    true_benefit: np.ndarray,
    fitted_net: np.ndarray,
    true_net: np.ndarray,
    fitted_nps: np.ndarray | None = None,
    true_nps: np.ndarray | None = None,
    interval: tuple[float, float] = (0.05, 0.95),
) -> dict[str, Any]:
    """One initiative, fitted vs true, from per-draw arrays of equal length (draw ``d`` = effect draw ``d``).

    Keys: fitted/true ``benefit`` (means), ``ratio``; ``fitted_net``, ``fitted_net_low``, ``fitted_net_high``
    (the fitted 90% interval), ``true_net``, ``true_net_low``, ``true_net_high``, ``covered`` (true mean net
    inside the fitted interval); ``paired_pit``, ``paired_covered``; ``draw_ratio_q05/q50/q95`` (per-draw
    fitted / true benefit over draws with a positive true benefit); fitted/true ``nps_shift``, ``nps_ratio``.
    """
    fb, tb = np.asarray(fitted_benefit, float), np.asarray(true_benefit, float)
    fn, tn = np.asarray(fitted_net, float), np.asarray(true_net, float)
    if not (fb.shape == tb.shape == fn.shape == tn.shape):
        raise ValueError(f"draw arrays differ in shape: {fb.shape}, {tb.shape}, {fn.shape}, {tn.shape}")
    f_lo, f_hi = (float(v) for v in np.quantile(fn, interval))
    t_lo, t_hi = (float(v) for v in np.quantile(tn, interval))
    pit = paired_pit(fb, tb)
    positive = tb > 1e-9 * max(1.0, float(np.max(np.abs(tb))))
    if positive.any():
        q = np.quantile(fb[positive] / tb[positive], [0.05, 0.5, 0.95])
        draw_q: list[float | None] = [float(v) for v in q]
    else:
        draw_q = [None, None, None]
    out = {
        "fitted_benefit": float(fb.mean()),
        "true_benefit": float(tb.mean()),
        "ratio": _ratio(float(fb.mean()), float(tb.mean())),
        "fitted_net": float(fn.mean()),
        "fitted_net_low": f_lo,
        "fitted_net_high": f_hi,
        "true_net": float(tn.mean()),
        "true_net_low": t_lo,
        "true_net_high": t_hi,
        "covered": bool(f_lo <= float(tn.mean()) <= f_hi),
        "paired_pit": pit,
        "paired_covered": bool(interval[0] <= pit <= interval[1]),
        "draw_ratio_q05": draw_q[0],
        "draw_ratio_q50": draw_q[1],
        "draw_ratio_q95": draw_q[2],
    }
    if fitted_nps is not None and true_nps is not None:
        fs, ts = float(np.mean(fitted_nps)), float(np.mean(true_nps))
        out.update({"fitted_nps_shift": fs, "true_nps_shift": ts, "nps_ratio": _ratio(fs, ts)})
    return out


def plan_comparison(
    fitted_engine: Any,
    true_engine: Any,
    catalogue: Any,
    budget: float,
    fitted_singles: Mapping[str, Any] | None = None,
    true_singles: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The plan chosen from the fitted values vs the true best plan (both by ``build_roadmap``).

    ``plan_value_ratio`` = true value of the fitted plan / true value of the true best plan (1.0 when both
    plans are empty; None when the true best plan is worth nothing but the fitted plan is not empty).
    """
    from cxresearch.initiatives.roadmap import build_roadmap

    fitted_map = build_roadmap(fitted_engine, catalogue, budget, singles=fitted_singles)
    true_map = build_roadmap(true_engine, catalogue, budget, singles=true_singles)
    chosen = [catalogue[n] for n in fitted_map.plan]
    true_of_fitted = float(true_engine.evaluate(chosen).net_value.mean()) if chosen else 0.0
    best = float(true_map.value.net_value.mean()) if true_map.plan else 0.0
    if best > 0:
        ratio: float | None = true_of_fitted / best
    else:
        ratio = 1.0 if not chosen else None
    return {
        "fitted_plan": sorted(fitted_map.plan),
        "true_plan": sorted(true_map.plan),
        "same_plan": sorted(fitted_map.plan) == sorted(true_map.plan),
        "fitted_plan_fitted_value": float(fitted_map.value.net_value.mean()) if fitted_map.plan else 0.0,
        "fitted_plan_true_value": true_of_fitted,
        "true_plan_true_value": best,
        "plan_value_ratio": ratio,
        "regret": best - true_of_fitted,
    }


def _diagnostics_record(models: Any) -> dict[str, Any]:
    out = {}
    for name, d in models.diagnostics.items():
        out[name] = {
            "passed": bool(d.passed),
            "rhat_max": d.rhat_max,
            "ess_bulk_min": d.ess_bulk_min,
            "ess_tail_min": d.ess_tail_min,
            "divergences": getattr(d, "divergences", None),
            "reasons": list(d.reasons or []),
        }
    return out


def _fit_seconds(models: Any) -> dict[str, float]:
    """Driver and survival fit seconds as the fits report them (absent when they do not)."""
    out = {}
    timings = getattr(getattr(models.driver, "fit", None), "timings", None)
    if isinstance(timings, Mapping) and timings:
        numbers = {k: float(v) for k, v in timings.items() if isinstance(v, (int, float))}
        out["driver_fit"] = numbers.get("total_s", sum(numbers.values()))
        for key in ("compile_s", "sample_s"):
            if key in numbers:
                out[f"driver_{key[:-2]}"] = numbers[key]
    seconds = getattr(getattr(models.value, "survival", None), "fit_seconds", None)
    if isinstance(seconds, (int, float)):
        out["value_fit"] = float(seconds)
    return out


def simulate(config: RecoveryConfig, seed: int, out: str | Path) -> Path:
    """Simulate replication ``seed`` into ``out``; returns the dataset.yaml path."""
    from cxresearch.data.simulator import parse_intervention, simulate_dataset

    options: dict[str, Any] = {"population_samples": int(config.population_samples)}
    scales = scales_option(config.scales)
    if scales:
        options["scales"] = scales
    if config.emotion_form:
        if "emotion_form" not in inspect.signature(simulate_dataset).parameters:
            raise ValueError("--emotion-form: this simulator has no emotion_form option")
        options["emotion_form"] = config.emotion_form
    intervention = parse_intervention(config.intervention) if config.intervention else None
    simulate_dataset(out, customers=int(config.customers), seed=int(seed), intervention=intervention, **options)
    return Path(out) / "dataset.yaml"


def replicate(
    seed: int,
    config: RecoveryConfig | Mapping[str, Any],
    models_factory: Callable[[Any, Path, RecoveryConfig], Any] | None = None,
) -> dict[str, Any]:
    """One replication -> a JSON-native dict (see the module docstring); never raises: an exception is
    recorded as ``status="error"`` with the message and traceback.

    ``models_factory(data, folder, config) -> Models`` replaces the fit (tests: the truth itself, or a
    deliberately broken model); default :func:`~cxresearch.initiatives.study.fitted_models` with
    ``config.fit_settings``.
    """
    if not isinstance(config, RecoveryConfig):
        config = RecoveryConfig(**dict(config))
    record: dict[str, Any] = {"seed": int(seed), "status": "error", "timings": {}}
    timings = record["timings"]
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix=f"recovery{seed}_") as tmp:
            folder = Path(config.keep_data) / f"seed{seed}" if config.keep_data else Path(tmp)
            _replicate_into(record, timings, seed, config, folder, models_factory)
    except Exception as exc:  # one broken replication is recorded, the others still run
        record["status"] = "error"
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc(limit=8)
    timings["total"] = time.perf_counter() - started
    return record


def _replicate_into(
    record: dict[str, Any],
    timings: dict[str, float],
    seed: int,
    config: RecoveryConfig,
    folder: Path,
    models_factory: Callable[[Any, Path, RecoveryConfig], Any] | None,
) -> None:
    from cxresearch.data import load_dataset
    from cxresearch.initiatives.catalogue import check_catalogue, load_catalogue, touchpoint_info_from_spec
    from cxresearch.initiatives.study import baseline_survey, fitted_models
    from cxresearch.initiatives.truth import TrueDriverModel, TrueValueModel
    from cxresearch.initiatives.value import InitiativeEngine

    warnings.filterwarnings("ignore")
    t = time.perf_counter()
    spec_path = simulate(config, seed, folder)
    timings["simulate"] = time.perf_counter() - t

    t = time.perf_counter()
    data = load_dataset(spec_path)
    truth = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
    timings["load"] = time.perf_counter() - t
    record["truth_emotion_form"] = truth.get("drivers", {}).get("emotion_form", "linear")
    record["truth_scales"] = {k: v.get("scale") for k, v in truth.get("touchpoints", {}).items() if "scale" in v}

    params = study_params(config.params)
    tps = touchpoint_info_from_spec(data.spec)
    items = params["catalogue"]
    if config.rescale_uplifts:
        items = rescale_uplifts(items, {k: v.scale_max - v.scale_min for k, v in tps.items()})
    factor = config.cost_scale if config.cost_scale is not None else config.customers / DEMO_CUSTOMERS
    items, budget = scale_costs(items, params["budget"], factor)
    record["cost_scale"] = factor
    catalogue = load_catalogue(items)
    check_catalogue(catalogue, tps, segments=data.survey["segment"].unique(), markets=data.survey["market"].unique())

    t = time.perf_counter()
    if models_factory is None:
        models = fitted_models(data, int(config.engine_draws), int(config.fit_seed), **config.fit_settings)
    else:
        models = models_factory(data, folder, config)
    timings["fit"] = time.perf_counter() - t
    timings.update(_fit_seconds(models))
    record["source"] = models.source
    record["diagnostics"] = _diagnostics_record(models)
    record["gate_failed"] = models.failed()

    survey, wave = baseline_survey(data.survey, config.fit_settings.get("baseline_wave", "latest"))
    common = {
        "customers": data.customers,
        "draws": int(config.engine_draws),
        "horizon_months": params["horizon_months"],
        "discount_rate_annual": params["discount_rate_annual"],
        "seed": int(config.engine_seed),
    }
    t = time.perf_counter()
    f_engine = InitiativeEngine(survey, tps, models.driver, models.value, **common)
    f_singles = f_engine.evaluate_each(catalogue)
    timings["engine_fitted"] = time.perf_counter() - t
    t = time.perf_counter()
    t_engine = InitiativeEngine(survey, tps, TrueDriverModel(truth), TrueValueModel(truth), **common)
    t_singles = t_engine.evaluate_each(catalogue)
    timings["engine_true"] = time.perf_counter() - t

    initiatives = {}
    for ini in catalogue:
        f, tr = f_singles[ini.name], t_singles[ini.name]
        row = compare_initiative(f.benefit_pv, tr.benefit_pv, f.net_value, tr.net_value, f.nps_shift, tr.nps_shift)
        row["same_effect_draws"] = bool(np.array_equal(f_engine.effect_draws(ini), t_engine.effect_draws(ini)))
        row["cost_pv"] = float(f.cost_pv)
        initiatives[ini.name] = row
    record["initiatives"] = initiatives
    fb = sum(r["fitted_benefit"] for r in initiatives.values())
    tb = sum(r["true_benefit"] for r in initiatives.values())
    record["pooled_ratio"] = _ratio(fb, tb)

    t = time.perf_counter()
    record["plan"] = plan_comparison(f_engine, t_engine, catalogue, budget, f_singles, t_singles)
    timings["plan"] = time.perf_counter() - t
    record["baseline_wave"] = wave
    record["status"] = "gate_failed" if record["gate_failed"] else "ok"


# ------------------------------------------------------------------------------------------ aggregation
def median_interval(values: Sequence[float], level: float = 0.9) -> dict[str, Any]:
    """Median with a distribution-free interval from order statistics: ``[x_(j), x_(n+1-j)]`` with the
    largest ``j`` whose coverage ``1 - 2 P(Binomial(n, 1/2) <= j - 1)`` is at least ``level``; when even the
    range (j = 1) covers less (n < 5 at 90%), the range and its actual coverage are given.

    Returns ``{n, median, low, high, level}`` (``level``: the interval's actual coverage; None when n = 0).
    """
    from scipy.stats import binom

    x = np.sort(np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float))
    n = len(x)
    if n == 0:
        return {"n": 0, "median": None, "low": None, "high": None, "level": None}
    best_j = 1
    for j in range(1, n // 2 + 1):
        if 1 - 2 * binom.cdf(j - 1, n, 0.5) >= level:
            best_j = j
    achieved = float(1 - 2 * binom.cdf(best_j - 1, n, 0.5)) if n > 1 else 0.0
    return {
        "n": n,
        "median": float(np.median(x)),
        "low": float(x[best_j - 1]),
        "high": float(x[n - best_j]),
        "level": achieved,
    }


def _share(flags: Sequence[bool]) -> float | None:
    return float(np.mean(flags)) if len(flags) else None


def _sd(values: Sequence[float]) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.std(v, ddof=1)) if len(v) > 1 else None


def aggregate(
    records: Sequence[Mapping[str, Any]],
    include_gate_failed: bool = False,
    plan_ratio_min: float = PLAN_RATIO_MIN,
    level: float = 0.9,
) -> dict[str, Any]:
    """Summary over replications (records from :func:`replicate`).

    Only ``status == "ok"`` replications enter the figures (plus ``gate_failed`` ones when
    ``include_gate_failed``); the others are listed under ``gate_failed`` / ``errors`` with their pooled ratio.
    """
    used_status = {"ok", "gate_failed"} if include_gate_failed else {"ok"}
    used = [r for r in records if r.get("status") in used_status]
    out: dict[str, Any] = {
        "replications": len(records),
        "used": len(used),
        "seeds_used": [r["seed"] for r in used],
        "include_gate_failed": include_gate_failed,
        "gate_failed": [
            {"seed": r["seed"], "fits": list(r.get("gate_failed", [])), "pooled_ratio": r.get("pooled_ratio")}
            for r in records
            if r.get("status") == "gate_failed"
        ],
        "errors": [{"seed": r["seed"], "error": r.get("error", "")} for r in records if r.get("status") == "error"],
    }
    names: list[str] = []
    for r in used:
        for name in r.get("initiatives", {}):
            if name not in names:
                names.append(name)
    per: dict[str, Any] = {}
    for name in names:
        rows = [r["initiatives"][name] for r in used if name in r.get("initiatives", {})]
        ratios = [x["ratio"] for x in rows]
        per[name] = {
            "ratio": median_interval(ratios, level),
            "ratio_mean": float(np.mean([v for v in ratios if v is not None]))
            if any(v is not None for v in ratios)
            else None,
            "ratio_sd": _sd(ratios),
            "coverage": _share([bool(x["covered"]) for x in rows]),
            "paired_coverage": _share([bool(x["paired_covered"]) for x in rows]),
            "paired_pit_mean": float(np.mean([x["paired_pit"] for x in rows])) if rows else None,
            "nps_ratio": median_interval([x.get("nps_ratio") for x in rows], level),
            "true_benefit_mean": float(np.mean([x["true_benefit"] for x in rows])) if rows else None,
        }
    out["initiatives"] = per
    pooled = [r.get("pooled_ratio") for r in used]
    out["pooled_ratio"] = {**median_interval(pooled, level), "sd": _sd(pooled)}
    all_rows = [x for r in used for x in r.get("initiatives", {}).values()]
    out["coverage"] = _share([bool(x["covered"]) for x in all_rows])
    out["paired_coverage"] = _share([bool(x["paired_covered"]) for x in all_rows])
    plans = [r["plan"] for r in used if r.get("plan")]
    plan_ratios = [p.get("plan_value_ratio") for p in plans]
    known = [v for v in plan_ratios if v is not None]
    out["plan"] = {
        "ratio": median_interval(plan_ratios, level),
        "ratio_min": float(min(known)) if known else None,
        "share_at_least": _share([v >= plan_ratio_min for v in known]),
        "threshold": plan_ratio_min,
        "same_plan_share": _share([bool(p.get("same_plan")) for p in plans]),
        "undefined": sum(v is None for v in plan_ratios),
    }
    stages: dict[str, list[float]] = {}
    for r in records:
        for k, v in r.get("timings", {}).items():
            stages.setdefault(k, []).append(float(v))
    out["timings"] = {
        k: {"median": float(np.median(v)), "max": float(np.max(v)), "n": len(v)} for k, v in stages.items()
    }
    return out


def check_recovery(
    summary: Mapping[str, Any],
    ratio_band: tuple[float, float] = RATIO_BAND,
    coverage_band: tuple[float, float] | None = COVERAGE_BAND,
    per_initiative: bool = True,
    pooled: bool = True,
    plan_share_min: float = PLAN_SHARE_MOST,
    require_gates: bool = True,
    min_used: int = 1,
) -> list[str]:
    """The issue's targets as a list of failures (empty: recovered).

    - ``pooled``: the pooled ratio's median in ``ratio_band``; ``per_initiative``: each initiative's median;
    - ``coverage_band`` (None: not checked): the share of (replication, initiative) cases whose fitted 90%
      interval holds the truth, read *paired* (the true benefit at the same effect-size draw, ``paired_coverage``):
      the fitted net value's interval also carries the effect-size uncertainty that the true chain shares, so its
      coverage of the true *mean* (``coverage``) is above 90% for a calibrated model by construction, and only
      its lower edge is checked on it;
    - the share of replications whose fitted plan is worth at least the threshold (0.95) of the true best
      plan is at least ``plan_share_min`` ("most replications": more than half by default);
    - ``require_gates``: no replication failed its diagnostics gate or raised.
    """
    failures = []
    low, high = ratio_band
    if summary.get("used", 0) < min_used:
        failures.append(f"only {summary.get('used', 0)} usable replications (need {min_used})")
    if require_gates:
        for g in summary.get("gate_failed", []):
            failures.append(f"seed {g['seed']}: the {' and '.join(g['fits'])} fit(s) failed the diagnostics gate")
    for e in summary.get("errors", []):
        failures.append(f"seed {e['seed']}: replication raised {e['error']}")
    if pooled:
        m = summary.get("pooled_ratio", {}).get("median")
        if m is None or not low <= m <= high:
            failures.append(f"pooled ratio fitted/true benefit: median {m} outside {low}-{high}")
    if per_initiative:
        for name, s in summary.get("initiatives", {}).items():
            m = s["ratio"]["median"]
            if m is None or not low <= m <= high:
                failures.append(f"{name}: median ratio fitted/true benefit {m} outside {low}-{high}")
    if coverage_band is not None:
        c = summary.get("paired_coverage")
        if c is None or not coverage_band[0] <= c <= coverage_band[1]:
            failures.append(
                f"paired coverage (the true benefit at the same effect draw inside the fitted 90% interval) {c} "
                f"outside {coverage_band[0]}-{coverage_band[1]}"
            )
        c = summary.get("coverage")
        if c is None or c < coverage_band[0]:
            failures.append(f"coverage of the true mean net value {c} below {coverage_band[0]}")
    share = summary.get("plan", {}).get("share_at_least")
    if share is None or share < plan_share_min:
        failures.append(
            f"plan: share of replications whose fitted plan is worth >= {summary.get('plan', {}).get('threshold')} "
            f"of the true best plan is {share} (need >= {plan_share_min})"
        )
    return failures


# -------------------------------------------------------------------------------------------- reports
def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.0f}%"


def _mi(s: Mapping[str, Any]) -> str:
    if s.get("median") is None:
        return ""
    return f"{s['median']:.3f} [{s['low']:.3f}, {s['high']:.3f}]"


def markdown_report(summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]], config: Mapping[str, Any]) -> str:
    """The summary, the per-replication ratios and the timings as markdown."""
    lines = [
        "# Initiative values: recovery across simulated data sets",
        "",
        f"{summary['used']} of {summary['replications']} replications used (seeds {summary['seeds_used']}); "
        f"{len(summary['gate_failed'])} failed a diagnostics gate, {len(summary['errors'])} raised. "
        f"Customers {config.get('customers')}, scales {config.get('scales')}, emotion form "
        f"{config.get('emotion_form') or 'simulator default'}, engine draws {config.get('engine_draws')}, "
        f"fit settings {json.dumps(config.get('fit_settings', {}), sort_keys=True)}.",
        "",
        "Ratio = fitted / true mean discounted benefit; [low, high] = order-statistic interval of the median "
        f"(actual level {_pct(summary['pooled_ratio'].get('level'))}). Coverage: the true mean net value inside "
        "the fitted 90% interval. Paired coverage: the true benefit inside the fitted 90% interval at the same "
        "effect draw (0.05 <= PIT <= 0.95).",
        "",
        "| initiative | median ratio [90% CI] | sd | coverage | paired coverage | mean PIT | median NPS-shift ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in summary["initiatives"].items():
        lines.append(
            f"| {name} | {_mi(s['ratio'])} | {_f(s['ratio_sd'])} | {_pct(s['coverage'])} | "
            f"{_pct(s['paired_coverage'])} | {_f(s['paired_pit_mean'], 2)} | {_f(s['nps_ratio']['median'])} |"
        )
    p = summary["pooled_ratio"]
    lines.append(
        f"| **pooled** | {_mi(p)} | {_f(p.get('sd'))} | {_pct(summary['coverage'])} | "
        f"{_pct(summary['paired_coverage'])} | | |"
    )
    plan = summary["plan"]
    lines += [
        "",
        f"Plan: true value of the plan chosen from the fitted values / true best plan: median "
        f"{_mi(plan['ratio'])}, minimum {_f(plan['ratio_min'])}; at least {plan['threshold']} in "
        f"{_pct(plan['share_at_least'])} of replications; the same plan in {_pct(plan['same_plan_share'])}"
        + (f"; undefined in {plan['undefined']}" if plan["undefined"] else "")
        + ".",
    ]
    if summary["gate_failed"] or summary["errors"]:
        lines += ["", "Not used:", ""]
        for g in summary["gate_failed"]:
            lines.append(
                f"- seed {g['seed']}: gate failed ({', '.join(g['fits'])}); pooled ratio {_f(g['pooled_ratio'])}"
            )
        for e in summary["errors"]:
            lines.append(f"- seed {e['seed']}: {e['error']}")
    names = list(summary["initiatives"])
    lines += [
        "",
        "## Per replication (ratio fitted / true benefit)",
        "",
        "| seed | status | " + " | ".join(names) + " | pooled | plan ratio | fitted plan | true plan |",
        "|---|---|" + "---|" * (len(names) + 4),
    ]
    for r in records:
        ini = r.get("initiatives", {})
        plan_r = r.get("plan") or {}
        lines.append(
            f"| {r['seed']} | {r.get('status')} | "
            + " | ".join(_f(ini.get(n, {}).get("ratio")) for n in names)
            + f" | {_f(r.get('pooled_ratio'))} | {_f(plan_r.get('plan_value_ratio'))} | "
            f"{', '.join(plan_r.get('fitted_plan', []))} | {', '.join(plan_r.get('true_plan', []))} |"
        )
    stages = summary["timings"]
    lines += [
        "",
        "## Seconds per stage (median / max over replications)",
        "",
        "| " + " | ".join(stages) + " |",
        "|" + "---|" * len(stages),
        "| " + " | ".join(f"{v['median']:.1f} / {v['max']:.1f}" for v in stages.values()) + " |",
    ]
    return "\n".join(lines) + "\n"


def long_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (replication, initiative) for CSV."""
    rows = []
    for r in records:
        plan = r.get("plan") or {}
        for name, x in r.get("initiatives", {}).items():
            rows.append(
                {
                    "seed": r["seed"],
                    "status": r.get("status"),
                    "initiative": name,
                    **x,
                    "pooled_ratio": r.get("pooled_ratio"),
                    "plan_value_ratio": plan.get("plan_value_ratio"),
                }
            )
    return rows


def write_outputs(
    paths: Sequence[str | Path],
    markdown: str | Path | None,
    config: RecoveryConfig,
    records: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Write JSON (config, records, summary) or CSV (long rows) by suffix, and the markdown; return the summary."""
    summary = aggregate(records)
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".csv":
            rows = long_rows(records)
            columns = list(dict.fromkeys(k for row in rows for k in row))
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)
        else:
            payload = {
                "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "config": asdict(config),
                "summary": summary,
                "records": list(records),
            }
            tmp = path.with_name(f".{path.name}.partial")
            tmp.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
            os.replace(tmp, path)
    if markdown:
        Path(markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(markdown).write_text(markdown_report(summary, records, asdict(config)), encoding="utf-8")
    return summary


# ------------------------------------------------------------------------------------------------ running
def run_replications(
    seeds: Sequence[int],
    config: RecoveryConfig,
    workers: int = 1,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """All replications, in ``workers`` processes (spawned, one thread each) or in this process when 1.
    ``on_record`` is called as each finishes (e.g. to write partial results). Returns records in seed order."""
    records: list[dict[str, Any]] = []
    if workers <= 1:
        for seed in seeds:
            record = replicate(seed, config)
            records.append(record)
            if on_record:
                on_record(record)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        saved = {k: os.environ.get(k) for k in ONE_THREAD_ENV}
        os.environ.update(ONE_THREAD_ENV)  # inherited by the spawned workers before they import numpy
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(replicate, seed, asdict(config)) for seed in seeds]
                for future in as_completed(futures):
                    record = future.result()
                    records.append(record)
                    if on_record:
                        on_record(record)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    order = {s: i for i, s in enumerate(seeds)}
    return sorted(records, key=lambda r: order[r["seed"]])


def _progress_line(record: Mapping[str, Any]) -> str:
    if record.get("status") == "error":
        return f"seed {record['seed']}: ERROR {record.get('error')}"
    ratios = ", ".join(f"{k} {_f(v['ratio'])}" for k, v in record.get("initiatives", {}).items())
    plan = record.get("plan") or {}
    gate = "" if record.get("status") == "ok" else f" GATE FAILED ({', '.join(record.get('gate_failed', []))})"
    times = ", ".join(f"{k} {v:.0f}s" for k, v in record.get("timings", {}).items())
    return (
        f"seed {record['seed']}{gate}: pooled {_f(record.get('pooled_ratio'))}; {ratios}; "
        f"plan ratio {_f(plan.get('plan_value_ratio'))}; {times}"
    )


def merge_results(paths: Sequence[str | Path]) -> tuple[RecoveryConfig, list[dict[str, Any]]]:
    """The config and records of several runs' JSON results (e.g. seeds 101-112 one day, 113-120 the next) as
    one run. Refuses runs with different configs (customers, scales, fit settings...) or a seed twice."""
    config: dict[str, Any] | None = None
    records: list[dict[str, Any]] = []
    for path in paths:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        if config is None:
            config, first = payload["config"], path
        elif payload["config"] != config:
            differ = sorted(
                k for k in set(config) | set(payload["config"]) if config.get(k) != payload["config"].get(k)
            )
            raise ValueError(f"--merge: {path} was run with other settings than {first}: {differ}")
        records.extend(payload["records"])
    if config is None:
        raise ValueError("--merge: no results files given")
    seeds = [r["seed"] for r in records]
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ValueError(f"--merge: seeds {twice} are in more than one results file")
    return RecoveryConfig(**config), sorted(records, key=lambda r: r["seed"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replications", type=int, default=20, help="number of simulated data sets (default 20)")
    parser.add_argument("--seeds", type=int, default=101, help="first simulator seed; seeds run consecutively")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--scales", default="default", help="default, mixed (" + MIXED_SCALES + ") or tp=min-max,...")
    parser.add_argument(
        "--emotion-form", default=None, help="simulator emotion form (e.g. saturating); default: its own"
    )
    parser.add_argument("--intervention", default=DEMO_INTERVENTION, help='planted action plan ("" = none)')
    parser.add_argument("--population-samples", type=int, default=100_000)
    parser.add_argument(
        "--settings",
        choices=["params", "package"],
        default="params",
        help="fit settings: the study's params file (default) or fitted_models' own defaults",
    )
    parser.add_argument("--params", default=str(PARAMS), help="params file with the catalogue, budget and settings")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="fit setting")
    parser.add_argument("--engine-draws", type=int, default=200)
    parser.add_argument(
        "--cost-scale",
        type=float,
        default=None,
        help="multiply costs and budget (default: customers / 20000, the demo's decision at any size)",
    )
    parser.add_argument("--no-rescale-uplifts", action="store_true", help="keep uplifts in points on every scale")
    parser.add_argument("--workers", type=int, default=1, help="replications in parallel (one thread each)")
    parser.add_argument("--keep-data", default=None, help="keep the simulated data sets under this folder")
    parser.add_argument("--out", action="append", default=[], help="results file, .json or .csv (repeatable)")
    parser.add_argument("--markdown", default=None, help="markdown report path")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target of the issue is missed")
    parser.add_argument(
        "--merge",
        action="append",
        default=[],
        metavar="RESULTS.json",
        help="summarise earlier runs' JSON results as one run (repeatable; nothing is fitted)",
    )
    args = parser.parse_args(argv)
    if args.merge:
        merged_config, merged = merge_results(args.merge)
        summary = write_outputs(args.out, args.markdown, merged_config, merged)
        print(markdown_report(summary, merged, asdict(merged_config)))
        failures = check_recovery(summary)
        if failures:
            print("targets missed:\n- " + "\n- ".join(failures))
        return 1 if (args.strict and failures) else 0

    config = RecoveryConfig(
        customers=args.customers,
        scales=args.scales,
        emotion_form=args.emotion_form,
        intervention=args.intervention,
        population_samples=args.population_samples,
        fit_settings=resolve_fit_settings(args.settings, parse_sets(args.sets), args.params),
        engine_draws=args.engine_draws,
        rescale_uplifts=not args.no_rescale_uplifts,
        cost_scale=args.cost_scale,
        params=args.params,
        keep_data=args.keep_data,
    )
    scales_option(config.scales)  # fail early on a bad --scales
    if args.settings == "params":
        package = fit_setting_defaults()
        differ = {k: (v, package[k]) for k, v in config.fit_settings.items() if k in package and package[k] != v}
        if differ:
            print(
                "note: these fit settings differ from fitted_models' defaults (params value, package default): "
                + ", ".join(f"{k}={a!r} ({b!r})" for k, (a, b) in sorted(differ.items())),
                flush=True,
            )
    seeds = list(range(args.seeds, args.seeds + args.replications))
    print(f"replications {len(seeds)} (seeds {seeds[0]}-{seeds[-1]}), workers {args.workers}", flush=True)
    print(f"config {json.dumps(asdict(config), default=str)}", flush=True)
    done: list[dict[str, Any]] = []
    started = time.perf_counter()

    def progress(record: dict[str, Any]) -> None:
        done.append(record)
        print(f"[{time.perf_counter() - started:.0f}s] " + _progress_line(record), flush=True)
        if args.out or args.markdown:
            write_outputs(args.out, args.markdown, config, sorted(done, key=lambda r: r["seed"]))

    records = run_replications(seeds, config, workers=args.workers, on_record=progress)
    summary = write_outputs(args.out, args.markdown, config, records)
    print()
    print(markdown_report(summary, records, asdict(config)))
    print(f"total {time.perf_counter() - started:.0f} s")
    failures = check_recovery(summary)
    if failures:
        print("targets missed:\n- " + "\n- ".join(failures))
    return 1 if (args.strict and failures) else 0


if __name__ == "__main__":
    sys.exit(main())
