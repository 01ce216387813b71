"""Fit a driver model: nutpie NUTS by default, ADVI as the labelled approximate mode, and the gate.

The diagnostics gate (``GATE``): every free parameter has R-hat <= 1.01 and bulk and tail ESS at least
400 (Vehtari et al. 2021), or 20% of the kept draws when fewer than 2,000 draws are kept (quick runs,
tests); divergent transitions zero or under 0.1% of the draws. A fit that fails says so in
``diagnostics["passed"] = False`` (shown by :func:`cxresearch.reports.diagnostics_banner`). The
approximate mode (ADVI; Pathfinder needs pymc-extras, not installed) has no R-hat / ESS: it passes
only when the optimisation converged, and its method name says "approximate".

Compiled models are cached by model structure, so refitting the same model to new data of the same
shape kind (bootstrap, simulation studies, segments with the same levels) skips the compilation.
"""
from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.drivers.model import (ModelLayout, PreparedData, build_model, equation_offsets, gaussian_statistics,
                                      prepare_data)
from cxresearch.drivers.spec import DriverModelSpec, default_model_spec, parse_model_spec

#: the diagnostics gate (see the module docstring)
GATE = {"rhat_max": 1.01, "ess_min": 400.0, "ess_share_min": 0.2, "divergence_share_max": 0.001}

METHODS = ("nuts", "approx")


@dataclass
class DriverFit:
    """A fitted driver model: data arrays, model layout, posterior draws and diagnostics."""

    prep: PreparedData
    layout: ModelLayout
    idata: Any  # arviz.InferenceData
    diagnostics: dict[str, Any]
    method: str
    timings: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def approximate(self) -> bool:
        return self.method != "nuts"

    def draws(self, name: str) -> np.ndarray:
        """Posterior draws of one variable stacked as (sample, ...)."""
        values = self.idata.posterior[name].values
        return values.reshape((-1,) + values.shape[2:])

    @property
    def n_draws(self) -> int:
        post = self.idata.posterior
        return int(post.sizes["chain"] * post.sizes["draw"])


_COMPILED: dict[tuple, tuple[Any, ModelLayout, Any]] = {}


def _data_values(prep: PreparedData, layout: ModelLayout) -> dict[str, np.ndarray]:
    values = {"states": prep.states, "cell": prep.cell, "freq": prep.freq, **equation_offsets(prep)}
    for eq in layout.equations.values():
        if eq.sufficient_statistics:
            values.update(gaussian_statistics(prep, eq))
    for k, v in prep.outcomes.items():
        values[f"y__{k}"] = v
    for k, v in prep.scores.items():
        values[f"score__{k}"] = v
    for k in prep.n_categories:
        if prep.likelihood(k) == "ordered_logistic":
            values[f"counts__{k}"] = np.bincount(prep.outcomes[k], minlength=prep.n_categories[k]).astype(float)
    return values


def compile_driver_model(prep: PreparedData, reuse: bool = True) -> tuple[Any, ModelLayout, Any]:
    """``(pymc_model, layout, nutpie_compiled)`` for prepared data; cached by model structure."""
    import nutpie

    key = prep.structure_key() + ((prep.n,) if prep.resolved.constructs and any(
        c.mode == "latent" for c in prep.resolved.constructs.values()) else ())
    if reuse and key in _COMPILED:
        model, layout, compiled = _COMPILED[key]
        shared = set(compiled.shared_data) if hasattr(compiled, "shared_data") else set()
        values = {k: v for k, v in _data_values(prep, layout).items() if k in shared}
        return model, layout, compiled.with_data(**values)
    model, layout = build_model(prep)
    compiled = nutpie.compile_pymc_model(model)
    if reuse:
        _COMPILED[key] = (model, layout, compiled)
    return model, layout, compiled


def resolve_model(model: DriverModelSpec | Mapping[str, Any] | None, dataset_spec: Any = None) -> DriverModelSpec:
    """The path model to fit: ``model`` parsed, or (None / empty) the dataset's standard chain."""
    if model is None or (isinstance(model, Mapping) and not model):
        if dataset_spec is None:
            raise ValueError("no model given and no dataset spec to build the default model from")
        return default_model_spec(dataset_spec)
    return parse_model_spec(model)


LOW_RANK_MAX_DIM = 1000


def choose_low_rank(low_rank: bool | str | None, prep: PreparedData, n_dim: int) -> bool:
    """Resolve ``low_rank="auto"`` (or None): the low-rank mass matrix for models of touchpoint terms, the diagonal one
    for models with latent constructs (one score per respondent and construct) or above
    :data:`LOW_RANK_MAX_DIM` parameters. nutpie refits the low-rank correction on its stored warm-up draws,
    a cost that grows with parameters x window^2: on the ECSI latent model (250 rows, 1,583 parameters)
    2 x 1,000 warm-up draws took over 4 minutes against 8 s diagonal, with a worse R-hat.
    """
    if isinstance(low_rank, bool):
        return low_rank
    if low_rank not in (None, "auto"):
        raise ValueError(f"low_rank must be true, false or 'auto', got {low_rank!r}")
    latent = any(c.mode == "latent" for c in prep.resolved.constructs.values())
    return bool(not latent and n_dim <= LOW_RANK_MAX_DIM)


def fit_driver_model(survey: Any, model: DriverModelSpec | Mapping[str, Any] | None = None, *,
                     dataset_spec: Any | None = None, method: str = "nuts", draws: int = 1000,
                     tune: int = 1000, chains: int = 2, cores: int | None = None, target_accept: float = 0.8,
                     seed: int = 1, advi_iterations: int = 30000, minibatch: int | str | None = "auto",
                     low_rank: bool | str | None = "auto", progress: bool = False,
                     reuse_compiled: bool = True) -> DriverFit:
    """Fit the path model to survey rows (a canonical survey frame or a ``CXData``).

    ``method``: ``"nuts"`` (nutpie, default) or ``"approx"`` (mean-field ADVI; minibatches of 10,000 rows
    above 50,000 rows when ``minibatch="auto"``). ``low_rank``: True uses nutpie's low-rank modified mass
    matrix, which learns the correlations of the touchpoint terms: about half the leapfrog steps per draw of
    the diagonal one on the demo survey (15 vs 31, same ESS) and a quarter on 130k answers
    (``benchmarks/bench_drivers.py``); False gives the diagonal mass matrix; ``"auto"`` (default) picks the
    low-rank one unless the model has latent constructs or more than :data:`LOW_RANK_MAX_DIM` parameters
    (see :func:`choose_low_rank`). ``model``: a :class:`DriverModelSpec` or its mapping;
    None gives the standard chain touchpoints -> emotion -> outcome (+ direct) from the dataset spec.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    frame = survey
    if hasattr(survey, "survey") and hasattr(survey, "spec"):
        frame, dataset_spec = survey.survey, dataset_spec or survey.spec
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"survey must be a DataFrame or CXData, got {type(survey).__name__}")
    spec = resolve_model(model, dataset_spec)
    started = time.perf_counter()
    prep = prepare_data(frame, spec, dataset_spec)
    timings = {"prepare_s": time.perf_counter() - started}
    settings = {"method": method, "draws": draws, "tune": tune, "chains": chains, "target_accept": target_accept,
                "seed": seed}
    if method == "nuts":
        import nutpie

        from cxresearch.runtime import run_threads

        t0 = time.perf_counter()
        pm_model, layout, compiled = compile_driver_model(prep, reuse=reuse_compiled)
        timings["compile_s"] = time.perf_counter() - t0
        low_rank = choose_low_rank(low_rank, prep, compiled.n_dim)
        settings["low_rank"] = low_rank
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains,
                                  cores=cores or min(chains, run_threads()), seed=seed,
                                  target_accept=target_accept, progress_bar=progress,
                                  low_rank_modified_mass_matrix=low_rank, save_warmup=False)
        timings["sample_s"] = time.perf_counter() - t0
        diagnostics = compute_diagnostics(idata, free_variable_names(pm_model), method="nuts (nutpie)")
    else:
        batch = minibatch
        if batch == "auto":
            batch = 10000 if prep.n > 50000 else None
        t0 = time.perf_counter()
        idata, converged, loss = fit_advi(prep, iterations=advi_iterations, draws=draws, seed=seed,
                                          minibatch=batch)
        timings["sample_s"] = time.perf_counter() - t0
        layout = idata.attrs.pop("_layout")
        diagnostics = approximate_diagnostics(idata, converged, batch, loss)
        settings.update({"advi_iterations": advi_iterations, "minibatch": batch})
    timings["total_s"] = time.perf_counter() - started
    return DriverFit(prep=prep, layout=layout, idata=idata, diagnostics=diagnostics, method=method,
                     timings=timings, settings=settings)


def fit_advi(prep: PreparedData, iterations: int = 30000, draws: int = 1000, seed: int = 1,
             minibatch: int | None = None) -> tuple[Any, bool, np.ndarray]:
    """Mean-field ADVI: returns (InferenceData of ``draws`` from the approximation, converged, loss history)."""
    import pymc as pm

    model, layout = build_model(prep, minibatch=minibatch, seed=seed)
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        approx = pm.fit(n=iterations, method="advi", random_seed=seed, progressbar=False,
                        obj_optimizer=pm.adam(learning_rate=0.01 if minibatch else 0.02))
        idata = approx.sample(draws, random_seed=seed)
    loss = np.asarray(approx.hist, dtype=float)
    converged = advi_converged(loss)
    idata.attrs["_layout"] = layout
    return idata, converged, loss


def advi_converged(loss: np.ndarray, window: float = 0.1, tolerance: float = 0.01) -> bool:
    """The ELBO has flattened: the mean loss of the last ``window`` of iterations differs from the window
    before it by less than ``tolerance`` of the loss's spread in the last window (plus a sane scale)."""
    loss = loss[np.isfinite(loss)]
    if len(loss) < 200:
        return False
    w = max(20, int(len(loss) * window))
    last, before = loss[-w:], loss[-2 * w:-w]
    spread = np.std(last)
    return bool(abs(np.mean(last) - np.mean(before)) <= max(tolerance * abs(np.mean(last)) * 0.01, 0.5 * spread))


def free_variable_names(model: Any) -> list[str]:
    """Names of the model's free parameters (the gate is checked on these, not on deterministics)."""
    return [rv.name for rv in model.free_RVs]


def ess_threshold(n_draws_total: int) -> float:
    """400, or 20% of the kept draws when fewer than 2,000 are kept (documented in the module)."""
    return float(min(GATE["ess_min"], GATE["ess_share_min"] * n_draws_total))


def compute_diagnostics(idata: Any, var_names: list[str], method: str) -> dict[str, Any]:
    """R-hat, bulk / tail ESS (worst parameter), divergences and the gate verdict."""
    import arviz as az

    post = idata.posterior
    n_total = int(post.sizes["chain"] * post.sizes["draw"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rhat = az.rhat(idata, var_names=var_names)
        ess_bulk = az.ess(idata, var_names=var_names, method="bulk")
        ess_tail = az.ess(idata, var_names=var_names, method="tail")

    def extreme(ds, fn):
        best_name, best = None, None
        for name, arr in ds.data_vars.items():
            vals = np.asarray(arr.values, dtype=float).ravel()
            vals = vals[np.isfinite(vals)]
            if not len(vals):
                continue
            v = fn(vals)
            if best is None or (fn is np.max and v > best) or (fn is np.min and v < best):
                best_name, best = name, float(v)
        return best_name, (float("nan") if best is None else best)

    rhat_name, rhat_max = extreme(rhat, np.max)
    bulk_name, bulk_min = extreme(ess_bulk, np.min)
    tail_name, tail_min = extreme(ess_tail, np.min)
    divergences = int(idata.sample_stats["diverging"].values.sum()) if "diverging" in idata.sample_stats else 0
    threshold = ess_threshold(n_total)
    reasons = []
    if post.sizes["chain"] < 2:
        reasons.append("R-hat needs at least 2 chains")
    if not (rhat_max <= GATE["rhat_max"]):
        reasons.append(f"R-hat {rhat_max:.3f} > {GATE['rhat_max']} ({rhat_name})")
    if not (bulk_min >= threshold):
        reasons.append(f"bulk ESS {bulk_min:.0f} < {threshold:.0f} ({bulk_name})")
    if not (tail_min >= threshold):
        reasons.append(f"tail ESS {tail_min:.0f} < {threshold:.0f} ({tail_name})")
    if divergences > 0 and divergences / n_total >= GATE["divergence_share_max"]:
        reasons.append(f"{divergences} divergent transitions ({100 * divergences / n_total:.2f}% of draws)")
    return {"rhat_max": rhat_max, "ess_bulk_min": bulk_min, "ess_tail_min": tail_min, "divergences": divergences,
            "passed": not reasons, "method": method, "draws": n_total, "chains": int(post.sizes["chain"]),
            "ess_threshold": threshold, "reasons": reasons,
            "worst": {"rhat": rhat_name, "ess_bulk": bulk_name, "ess_tail": tail_name}}


def approximate_diagnostics(idata: Any, converged: bool, minibatch: int | None, loss: np.ndarray) -> dict[str, Any]:
    """Diagnostics of an ADVI fit: no R-hat / ESS exist; the gate is the optimisation's convergence."""
    post = idata.posterior
    n_total = int(post.sizes["chain"] * post.sizes["draw"])
    method = "advi (approximate" + (f", minibatch {minibatch}" if minibatch else "") + ")"
    reasons = [] if converged else ["ADVI did not converge (the loss was still falling): raise advi_iterations"]
    return {"rhat_max": float("nan"), "ess_bulk_min": float(n_total), "ess_tail_min": float(n_total),
            "divergences": 0, "passed": converged, "method": method, "draws": n_total, "chains": 1,
            "ess_threshold": float("nan"), "reasons": reasons, "worst": {},
            "final_loss": float(np.mean(loss[-max(1, len(loss) // 20):])) if len(loss) else float("nan")}
