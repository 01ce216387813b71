"""Bayesian hierarchical piecewise-exponential survival model (PyMC, sampled with nutpie by default).

The hazard is constant within tenure periods and proportional across covariate cells:

    log h(t | cell) = log_h0[period(t)] + sum_fixed beta_f[level] + sum_hier effect_g[level]

In the sampler the fixed effects enter centred, ``beta_f . (dummy - mean dummy)`` with the event-weighted
mean dummy (``centering``): the baseline then sits at the average covariate mix, nearly uncorrelated with the
hazard ratios, which a diagonal mass matrix samples far better. Hazards reported here undo the shift.

- ``fixed`` covariates (e.g. NPS class, contract type, a binned CX score) are reference-coded log hazard
  ratios with Normal(0, ``prior_sd_log_hr``) priors;
- ``hierarchical`` covariates (segment, market) are partially pooled: level effects are zero-sum normal
  (deviations from their average, so they do not trade off with the baseline) with scale
  ``sigma_g ~ HalfNormal(prior_scale_group_sd)``; non-centred (``sigma_g * z_g``, ``z_g`` standard zero-sum
  normal) when levels have few events, centred when every level has many (``parametrization="auto"``).

The likelihood is Poisson on the aggregated exposure table (events per period x cell, offset log months
at risk), which is exactly the piecewise-exponential likelihood for categorical covariates. Its cost grows
with the number of cells, not of customers. Beyond the last cut point the hazard of the last (open)
period is carried forward: that is an extrapolation, flagged by CLV when a horizon goes far past the data.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.economics.exposure import ExposureTable


@dataclass(frozen=True)
class DiagnosticsGate:
    """Pass/fail thresholds for a sampled posterior (Vehtari et al. 2021: R-hat < 1.01, ESS > 100 per chain)."""

    rhat_max: float = 1.01
    ess_bulk_min_per_chain: float = 100.0
    ess_tail_min_per_chain: float = 100.0
    max_divergences: int = 0


def sampling_diagnostics(idata: Any, var_names: Sequence[str] | None = None,
                         gate: DiagnosticsGate = DiagnosticsGate(), method: str = "NUTS") -> dict[str, Any]:
    """R-hat (max), bulk / tail ESS (min), divergences over ``var_names``, and whether the gate passes."""
    import arviz as az

    post = idata.posterior
    names = list(var_names) if var_names is not None else list(post.data_vars)
    chains, draws = int(post.sizes["chain"]), int(post.sizes["draw"])

    def _extreme(ds: Any, fn: Any) -> tuple[float, str]:
        values = {v: float(fn(ds[v].values)) for v in names}
        worst = (max if fn is np.nanmax else min)(values, key=values.get)
        return values[worst], worst

    rhat, rhat_at = _extreme(az.rhat(idata, var_names=names), np.nanmax)
    ess_bulk, bulk_at = _extreme(az.ess(idata, var_names=names, method="bulk"), np.nanmin)
    ess_tail, tail_at = _extreme(az.ess(idata, var_names=names, method="tail"), np.nanmin)
    divergences = int(idata.sample_stats["diverging"].values.sum()) if "diverging" in idata.sample_stats else 0
    thresholds = {"rhat_max": gate.rhat_max, "ess_bulk_min": gate.ess_bulk_min_per_chain * chains,
                  "ess_tail_min": gate.ess_tail_min_per_chain * chains, "max_divergences": gate.max_divergences}
    failures = []
    if not rhat <= gate.rhat_max:
        failures.append(f"R-hat {rhat:.3f} > {gate.rhat_max} ({rhat_at})")
    if not ess_bulk >= thresholds["ess_bulk_min"]:
        failures.append(f"bulk ESS {ess_bulk:.0f} < {thresholds['ess_bulk_min']:.0f} ({bulk_at})")
    if not ess_tail >= thresholds["ess_tail_min"]:
        failures.append(f"tail ESS {ess_tail:.0f} < {thresholds['ess_tail_min']:.0f} ({tail_at})")
    if divergences > gate.max_divergences:
        failures.append(f"{divergences} divergent transitions")
    return {"rhat_max": rhat, "ess_bulk_min": ess_bulk, "ess_tail_min": ess_tail, "divergences": divergences,
            "passed": not failures, "failures": failures, "method": method, "chains": chains,
            "draws": draws, "thresholds": thresholds}


def _quantiles(draws: np.ndarray, interval: float) -> tuple[np.ndarray, np.ndarray]:
    tail = (1 - interval) / 2
    return np.quantile(draws, tail, axis=0), np.quantile(draws, 1 - tail, axis=0)


@dataclass
class PiecewiseExponentialFit:
    """Posterior of the piecewise-exponential model, with diagnostics and hazards for any profile."""

    idata: Any = field(repr=False)
    exposure: ExposureTable = field(repr=False)
    fixed: list[str]
    hierarchical: list[str]
    levels: dict[str, list[str]]  # fixed: reference first; hierarchical: all levels
    diagnostics: dict[str, Any]
    interval: float
    fit_seconds: float
    dropped_covariates: list[str] = field(default_factory=list)
    parametrization: dict[str, str] = field(default_factory=dict)  # hierarchical covariate -> centred / non-centred
    centering: dict[str, np.ndarray] = field(default_factory=dict)  # fixed covariate -> mean dummy (non-ref levels)
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def _log_h0_reference(self) -> np.ndarray:
        """Baseline log hazard per period for the reference levels of the fixed covariates: (draws, J)."""
        base = self.draws("log_h0")
        for c, mean_dummy in self.centering.items():
            base = base - (self.draws(f"log_hr_{c}") @ np.asarray(mean_dummy, dtype=float))[:, None]
        return base

    @property
    def covariates(self) -> list[str]:
        return [*self.fixed, *self.hierarchical]

    @property
    def max_observed_tenure(self) -> float:
        return float(self.exposure.max_duration)

    @property
    def breaks(self) -> np.ndarray:
        return np.asarray(self.exposure.breaks, dtype=float)

    def draws(self, name: str) -> np.ndarray:
        """Posterior draws of a variable, chains stacked first: (n_draws, ...) (cached, read-only)."""
        if name not in self._cache:
            da = self.idata.posterior[name]
            values = np.ascontiguousarray(da.stack(sample=("chain", "draw")).transpose("sample", ...).values)
            values.setflags(write=False)
            self._cache[name] = values
        return self._cache[name]

    @property
    def n_draws(self) -> int:
        post = self.idata.posterior
        return int(post.sizes["chain"] * post.sizes["draw"])

    def thinned(self, max_draws: int) -> "PiecewiseExponentialFit":
        """The same fit keeping at most ``max_draws`` posterior draws, evenly spaced over each chain
        (CLV over thousands of profile rows needs far fewer draws than the diagnostics)."""
        post = self.idata.posterior
        per_chain = max(1, int(max_draws) // int(post.sizes["chain"]))
        if per_chain >= post.sizes["draw"]:
            return self
        keep = np.linspace(0, post.sizes["draw"] - 1, per_chain).round().astype(int)
        import arviz as az

        idata = az.InferenceData(posterior=post.isel(draw=keep))
        return replace(self, idata=idata, _cache={})

    def effect_draws(self, covariate: str) -> np.ndarray:
        """Log-hazard effect per level (n_draws, n_levels): 0 for a fixed covariate's reference level."""
        if covariate in self.fixed:
            beta = self.draws(f"log_hr_{covariate}")
            return np.concatenate([np.zeros((beta.shape[0], 1)), beta], axis=1)
        if covariate in self.hierarchical:
            if self.parametrization.get(covariate) == "centred":
                return self.draws(f"effect_{covariate}")
            return self.draws(f"sigma_{covariate}")[:, None] * self.draws(f"z_{covariate}")
        raise KeyError(f"{covariate!r} is not a covariate of this model ({self.covariates})")

    def log_effect_draws(self, profile: pd.DataFrame) -> np.ndarray:
        """Sum of the covariate effects (log hazard ratio vs the reference cell) per draw and row: (S, n)."""
        missing = [c for c in self.covariates if c not in profile.columns]
        if missing:
            raise KeyError(f"profile lacks covariate column(s) {missing}; it has {list(profile.columns)}")
        total = np.zeros((self.n_draws, len(profile)))
        for c in self.covariates:
            lv = self.levels[c]
            values = profile[c].astype(str).to_numpy()
            unknown = sorted(set(values) - set(lv))
            if unknown:
                raise ValueError(f"profile column {c!r}: levels {unknown[:5]} are not in the model ({lv})")
            idx = pd.Categorical(values, categories=lv).codes
            total += self.effect_draws(c)[:, idx]
        return total

    def log_rate_draws(self, profile: pd.DataFrame) -> np.ndarray:
        """Log monthly hazard per draw, profile row and period: (n_draws, n_rows, n_periods)."""
        return self._log_h0_reference()[:, None, :] + self.log_effect_draws(profile)[:, :, None]

    def _overlap(self, times: np.ndarray) -> np.ndarray:
        """Months spent in each period up to ``times``: (..., n_periods)."""
        starts = self.breaks
        widths = np.append(np.diff(starts), np.inf)
        return np.clip(times[..., None] - starts, 0.0, widths)

    def cumulative_hazard_draws(self, profile: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        """Cumulative hazard per draw at ``times`` (n_rows, n_times): (n_draws, n_rows, n_times)."""
        times = np.asarray(times, dtype=float)
        if times.ndim == 1:
            times = np.broadcast_to(times, (len(profile), len(times)))
        if (times < 0).any():
            raise ValueError("cumulative hazard: times must be >= 0")
        base = np.exp(self._log_h0_reference())  # (S, J): proportional hazards, so
        multiplier = np.exp(self.log_effect_draws(profile))  # H(t | row) = multiplier_row * base . overlap(t)
        n, n_times = times.shape
        cum = (base @ self._overlap(times).reshape(-1, base.shape[1]).T).reshape(-1, n, n_times)
        return cum * multiplier[:, :, None]

    def discounted_lifetime_draws(self, profile: pd.DataFrame, tenure: np.ndarray, horizon_months: int,
                                  discount_factor: float, max_chunk_values: int = 8_000_000) -> np.ndarray:
        """sum_{k=1..H} d^k S(t + k) / S(t) per draw and row, (n_draws, n_rows), by one matrix product per
        chunk of rows (the fast path :func:`cxresearch.economics.clv.discounted_lifetime_draws` uses)."""
        base = np.exp(self._log_h0_reference())  # (S, J)
        multiplier = np.exp(self.log_effect_draws(profile))  # (S, n)
        k = np.arange(horizon_months + 1, dtype=float)
        weights = discount_factor ** k[1:]
        n_draws, n_periods = base.shape
        out = np.empty((n_draws, len(tenure)))
        chunk = max(1, int(max_chunk_values // (n_draws * horizon_months)))
        for lo in range(0, len(tenure), chunk):
            hi = min(lo + chunk, len(tenure))
            overlap = self._overlap(tenure[lo:hi, None] + k[None, :])  # (c, H+1, J)
            delta = (overlap[:, 1:, :] - overlap[:, :1, :]).reshape(-1, n_periods)  # months at risk in (t, t+k]
            cum = (base @ delta.T).reshape(n_draws, hi - lo, horizon_months) * multiplier[:, lo:hi, None]
            out[:, lo:hi] = np.exp(-cum) @ weights
        return out

    def contrast(self, covariate: str, level: str, reference: str | None = None) -> np.ndarray:
        """Draws of the log hazard ratio of ``level`` vs ``reference`` (default: the fixed reference level,
        or the average of a hierarchical covariate's levels)."""
        lv = self.levels.get(covariate)
        if lv is None:
            raise KeyError(f"{covariate!r} is not a covariate of this model ({self.covariates})")
        for x in (level, reference):
            if x is not None and x not in lv:
                raise ValueError(f"level {x!r} of {covariate!r} not in the model ({lv})")
        eff = self.effect_draws(covariate)
        out = eff[:, lv.index(level)]
        if reference is not None:
            out = out - eff[:, lv.index(reference)]
        elif covariate in self.hierarchical:
            out = out - eff.mean(axis=1)
        return out

    def hazard_ratio(self, covariate: str, level: str, reference: str | None = None,
                     interval: float | None = None) -> dict[str, Any]:
        """``{"mean", "interval"}`` of one hazard ratio (for results.json)."""
        hr = np.exp(self.contrast(covariate, level, reference))
        lo, hi = _quantiles(hr, interval or self.interval)
        return {"mean": float(hr.mean()), "interval": [float(lo), float(hi)]}

    def hazard_ratios(self, interval: float | None = None) -> pd.DataFrame:
        """Hazard ratios with equal-tailed intervals: fixed vs their reference, hierarchical vs the average."""
        interval = interval or self.interval
        rows = []
        for c in self.covariates:
            lv = self.levels[c]
            comparisons = ([(x, lv[0]) for x in lv[1:]] if c in self.fixed else [(x, None) for x in lv])
            for level, ref in comparisons:
                log_hr = self.contrast(c, level, ref)
                hr = np.exp(log_hr)
                lo, hi = _quantiles(hr, interval)
                rows.append({"covariate": c, "level": level, "reference": ref if ref is not None else "average",
                             "kind": "fixed" if c in self.fixed else "hierarchical",
                             "hr": float(hr.mean()), "hr_median": float(np.median(hr)), "lower": float(lo),
                             "upper": float(hi), "log_hr": float(log_hr.mean()), "log_hr_sd": float(log_hr.std()),
                             "prob_hr_above_1": float((log_hr > 0).mean())})
        return pd.DataFrame(rows)

    def group_sd(self, interval: float | None = None) -> pd.DataFrame:
        """Posterior of the between-level standard deviation of each hierarchical covariate (log scale)."""
        rows = []
        for c in self.hierarchical:
            s = self.draws(f"sigma_{c}")
            lo, hi = _quantiles(s, interval or self.interval)
            rows.append({"covariate": c, "sd": float(s.mean()), "lower": float(lo), "upper": float(hi)})
        return pd.DataFrame(rows, columns=["covariate", "sd", "lower", "upper"])

    def baseline_hazard(self, interval: float | None = None) -> pd.DataFrame:
        """Monthly hazard per period for the reference cell (fixed at reference, hierarchical at average)."""
        rate = np.exp(self._log_h0_reference())
        lo, hi = _quantiles(rate, interval or self.interval)
        ends = list(self.exposure.breaks[1:]) + [np.inf]
        return pd.DataFrame({"period": np.arange(len(self.exposure.breaks)), "start": self.exposure.breaks,
                             "end": ends, "hazard": rate.mean(axis=0), "lower": lo, "upper": hi})


def _collapse(exposure: ExposureTable, covariates: list[str]) -> pd.DataFrame:
    keys = ["period", *covariates]
    return (exposure.frame.groupby(keys, as_index=False, sort=True)[["events", "exposure", "at_risk"]].sum())


def build_model(exposure: ExposureTable, *, fixed: Sequence[str] = (), hierarchical: Sequence[str] = (),
                reference: Mapping[str, str] | None = None, prior_sd_log_hr: float = 2.0,
                prior_sd_baseline: float = 2.0, prior_scale_group_sd: float = 0.5,
                parametrization: str | Mapping[str, str] = "auto", centred_min_events: int = 100,
                ) -> tuple[Any, dict[str, Any]]:
    """The PyMC model on ``exposure`` and what was decided building it.

    Returns (model, info) with info keys levels, fixed, hierarchical, dropped (covariates with a single level
    in the data, e.g. segment when the study is filtered to one segment), parametrization, centering.
    ``parametrization`` per hierarchical covariate: "non-centred" (``sigma * z``, for weakly informed
    levels), "centred" (for levels with many events, where the non-centred form leaves a ridge between
    sigma and z that NUTS samples badly), or "auto": centred when every level has at least
    ``centred_min_events`` events, else non-centred.
    """
    import pymc as pm

    reference = dict(reference or {})
    fixed, hierarchical = list(fixed), list(hierarchical)
    overlap = set(fixed) & set(hierarchical)
    if overlap:
        raise ValueError(f"covariate(s) {sorted(overlap)} given as both fixed and hierarchical")
    unknown = [c for c in [*fixed, *hierarchical] if c not in exposure.covariates]
    if unknown:
        raise KeyError(f"covariate(s) {unknown} are not in the exposure table ({exposure.covariates})")
    bad_ref = sorted(set(reference) - set(fixed))
    if bad_ref:
        raise KeyError(f"reference given for {bad_ref}, which are not fixed covariates {fixed}")
    dropped = [c for c in [*fixed, *hierarchical] if len(exposure.levels[c]) < 2]
    fixed = [c for c in fixed if c not in dropped]
    hierarchical = [c for c in hierarchical if c not in dropped]
    data = _collapse(exposure, [*fixed, *hierarchical])
    levels: dict[str, list[str]] = {}
    for c in fixed:
        lv = list(exposure.levels[c])
        ref = str(reference.get(c, lv[0]))
        if ref not in lv:
            raise ValueError(f"reference level {ref!r} for {c!r} is not among its levels {lv}")
        levels[c] = [ref] + [x for x in lv if x != ref]
    for c in hierarchical:
        levels[c] = list(exposure.levels[c])
    chosen: dict[str, str] = {}
    for c in hierarchical:
        choice = parametrization if isinstance(parametrization, str) else parametrization.get(c, "auto")
        if choice not in ("auto", "centred", "non-centred"):
            raise ValueError(f"parametrization for {c!r} must be 'auto', 'centred' or 'non-centred', got {choice!r}")
        if choice == "auto":
            min_events = int(data.groupby(c)["events"].sum().min())
            choice = "centred" if min_events >= centred_min_events else "non-centred"
        chosen[c] = choice

    n_periods = len(exposure.breaks)
    weights = data["events"].to_numpy(dtype=float)
    if weights.sum() == 0:
        weights = data["exposure"].to_numpy(dtype=float)
    centering = {}
    for c in fixed:
        idx = pd.Categorical(data[c], categories=levels[c]).codes
        centering[c] = np.array([np.average(idx == k, weights=weights) for k in range(1, len(levels[c]))])
    crude = max(float(data["events"].sum()), 0.5) / float(data["exposure"].sum())
    coords = {"period": np.arange(n_periods)}
    for c in fixed:
        coords[f"{c}_level"] = levels[c][1:]
    for c in hierarchical:
        coords[c] = levels[c]
    period_idx = data["period"].to_numpy(dtype=int)
    with pm.Model(coords=coords) as model:
        eta = pm.Normal("log_h0", mu=np.log(crude), sigma=prior_sd_baseline, dims="period")[period_idx]
        for c in fixed:
            beta = pm.Normal(f"log_hr_{c}", mu=0.0, sigma=prior_sd_log_hr, dims=f"{c}_level")
            idx = pd.Categorical(data[c], categories=levels[c]).codes
            dummies = (idx[:, None] == np.arange(1, len(levels[c]))[None, :]).astype(float)
            eta = eta + pm.math.dot(dummies - centering[c][None, :], beta)
        for c in hierarchical:
            sigma = pm.HalfNormal(f"sigma_{c}", sigma=prior_scale_group_sd)
            idx = pd.Categorical(data[c], categories=levels[c]).codes
            if chosen[c] == "non-centred":
                effect = sigma * pm.ZeroSumNormal(f"z_{c}", sigma=1.0, dims=c)
            else:
                effect = pm.ZeroSumNormal(f"effect_{c}", sigma=sigma, dims=c)
            eta = eta + effect[idx]
        pm.Poisson("events", mu=pm.math.exp(eta + np.log(data["exposure"].to_numpy())),
                   observed=data["events"].to_numpy())
    return model, {"levels": levels, "fixed": fixed, "hierarchical": hierarchical, "dropped": dropped,
                   "parametrization": chosen, "centering": centering}


def fit_piecewise_exponential(exposure: ExposureTable, *, fixed: Sequence[str] = (),
                              hierarchical: Sequence[str] = (), reference: Mapping[str, str] | None = None,
                              prior_sd_log_hr: float = 2.0, prior_sd_baseline: float = 2.0,
                              prior_scale_group_sd: float = 0.5, parametrization: str | Mapping[str, str] = "auto",
                              centred_min_events: int = 100, draws: int = 1000, tune: int = 1000,
                              chains: int = 4, cores: int | None = None, seed: int = 1,
                              sampler: str = "nutpie", target_accept: float = 0.95, interval: float = 0.9,
                              gate: DiagnosticsGate = DiagnosticsGate()) -> PiecewiseExponentialFit:
    """Fit the hierarchical piecewise-exponential model by NUTS and check the diagnostics gate.

    ``sampler``: "nutpie" (default; compiles the model with numba, then samples fast) or "pymc".
    ``fixed`` covariates get reference-coded log hazard ratios (``reference`` per column, e.g.
    ``{"nps_class": "promoter"}``); ``hierarchical`` ones are partially pooled. Other covariates of the
    exposure table are summed over.
    """
    import pymc as pm

    if sampler not in ("nutpie", "pymc"):
        raise ValueError(f"sampler must be 'nutpie' or 'pymc', got {sampler!r}")
    start = time.perf_counter()
    model, info = build_model(
        exposure, fixed=fixed, hierarchical=hierarchical, reference=reference, prior_sd_log_hr=prior_sd_log_hr,
        prior_sd_baseline=prior_sd_baseline, prior_scale_group_sd=prior_scale_group_sd,
        parametrization=parametrization, centred_min_events=centred_min_events)
    fixed, hierarchical, chosen = info["fixed"], info["hierarchical"], info["parametrization"]
    if cores is None:  # the runner's share of the machine (all cores outside the runner)
        from cxresearch.runtime import run_threads

        cores = min(chains, run_threads())
    if sampler == "nutpie":
        import nutpie

        compiled = nutpie.compile_pymc_model(model)
        idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed,
                              progress_bar=False, target_accept=target_accept)
    else:
        with model:
            idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=seed,
                              target_accept=target_accept, progressbar=False, nuts_sampler="pymc",
                              compute_convergence_checks=False)
    var_names = ["log_h0", *[f"log_hr_{c}" for c in fixed],
                 *[v for c in hierarchical
                   for v in (f"sigma_{c}", f"z_{c}" if chosen[c] == "non-centred" else f"effect_{c}")]]
    diagnostics = sampling_diagnostics(idata, var_names, gate, method=f"NUTS ({sampler})")
    return PiecewiseExponentialFit(idata=idata, exposure=exposure, fixed=fixed, hierarchical=hierarchical,
                                   levels=info["levels"], diagnostics=diagnostics, interval=interval,
                                   fit_seconds=time.perf_counter() - start, dropped_covariates=info["dropped"],
                                   parametrization=chosen, centering=info["centering"])
