"""Bayesian hierarchical piecewise-exponential survival model (PyMC, sampled with nutpie by default).

The hazard is constant within tenure periods and proportional across covariate cells:

    log h(t | cell) = log_h0[period(t)] + sum_fixed beta_f[level] + sum_hier effect_g[level]

In the sampler the fixed effects enter centred, ``beta_f . (dummy - mean dummy)`` with the event-weighted
mean dummy (``centering``), and the hierarchical ones likewise, ``effect_g[level] - weights . effect_g``: the
baseline then sits at the average covariate mix, nearly uncorrelated with the hazard ratios and level
effects, which a diagonal mass matrix samples far better (with segments of unequal size the uncentred
baseline trades off with the large segments' effects: half the ESS). Hazards reported here undo the shift.
Events are the right weights (the Poisson likelihood's information): a level with no events gets weight 0,
so its log hazard ratio does not move the baseline; its posterior is its prior cut off above by the months
at risk it survived (one-sided and smooth: it samples cleanly), i.e. the data give an upper bound on its
hazard ratio and ``prior_sd_log_hr`` sets the lower tail. A *reference* level with no events is warned
about: every hazard ratio against it is then mostly prior.

- ``fixed`` covariates (e.g. NPS class, contract type, a binned CX score) are reference-coded log hazard
  ratios with Normal(0, ``prior_sd_log_hr``) priors;
- ``hierarchical`` covariates (segment, market) are partially pooled: level effects are zero-sum normal
  (deviations from their average, so they do not trade off with the baseline). A covariate with at most
  ``fixed_scale_levels`` levels (default 5: segments, markets) gets offsets with a *fixed* prior sd,
  ``effect_g ~ ZeroSumNormal(group_offset_sd)`` ("fixed-scale"): from 2-5 levels a between-level sd is barely
  identified, and learning it makes a funnel (sd near zero, offsets squeezed) that NUTS only crosses at
  target_accept 0.99, and not always then. ``group_offset_sd`` = 0.5 on the log-hazard scale says a level
  two prior sds from the average churns exp(2 x 0.5) = 2.7 times as fast (or slow) as the average (the
  zero-sum constraint trims each level's marginal sd to 0.5 x sqrt(1 - 1/levels), 0.41 with 3 levels):
  plausible a priori between segments or markets, wide against the 0.03-0.07 posterior sds of levels with
  hundreds of events (which the prior then barely moves), and it pulls a level with few events towards the
  average. It is a prior, not an estimate: a covariate whose levels truly differ by far more belongs in
  ``fixed``, where nothing pools it (a telco's contract type: month-to-month customers churn about 37 times
  as fast as two-year ones; as fixed-scale offsets that log hazard ratio of -3.6 is pulled in by 0.14).
  A covariate with more levels learns its scale, ``sigma_g ~ HalfNormal(prior_scale_group_sd)``: non-centred
  (``sigma_g * z_g``, ``z_g`` standard zero-sum normal) when levels have few events, centred when every
  level has many (``parametrization="auto"``).

The likelihood is Poisson on the aggregated exposure table (events per period x cell, offset log months
at risk), which is exactly the piecewise-exponential likelihood for categorical covariates. Its cost grows
with the number of cells, not of customers. Beyond the last cut point the hazard of the last (open)
period is carried forward: that is an extrapolation, flagged by CLV when a horizon goes far past the data.

The fit (:class:`PiecewiseExponentialFit`) is a :class:`cxresearch.protocol.FittedModel`: ``summary(level)``,
``predict(new_customers, kind, times)`` with dims (sample, customer, time), ``diagnostics()`` (the one gate,
:func:`cxresearch.diagnostics.check_mcmc`, over the free parameters), ``plot_survival`` /
``plot_baseline_hazard``, and ``save`` / ``load`` (posterior NetCDF + exposure table Parquet; ``load``
refuses another model config or exposure table).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from cxresearch.diagnostics import Diagnostics, check_mcmc
from cxresearch.economics.exposure import ExposureTable
from cxresearch.protocol import (
    DEFAULT_LEVEL,
    FittedModel,
    check_level,
    interval,
    load_idata,
    save_idata,
    standard_summary,
    summary_frame,
)
from cxresearch.runtime import canonical_json, combine_hashes, frame_hash, json_default, sha256_text

PREDICT_KINDS = ("survival", "hazard", "cumulative_hazard")
#: The parametrisation of a hierarchical covariate with few levels: zero-sum offsets with a fixed prior sd.
FIXED_SCALE = "fixed-scale"
PARAMETRIZATIONS = ("auto", FIXED_SCALE, "centred", "non-centred")


def exposure_hash(exposure: ExposureTable) -> str:
    """SHA-256 of an exposure table: its cells (events, months at risk) and its period cut points."""
    return combine_hashes(
        {
            "frame": frame_hash(exposure.frame.reset_index(drop=True)),
            "breaks": sha256_text(canonical_json([float(b) for b in exposure.breaks])),
        }
    )


def _exposure_state(exposure: ExposureTable) -> dict[str, Any]:
    state = asdict(exposure)
    state.pop("frame")
    return state


@dataclass
class PiecewiseExponentialFit(FittedModel):
    """Posterior of the piecewise-exponential model: the standard fitted-model surface
    (:class:`cxresearch.protocol.FittedModel`) plus hazards for any customer profile (CLV uses these).

    ``summary(level)`` rows, index ``quantity``, with a ``scale`` column saying what each row measures:

    - ``log_hazard_ratio[<covariate>=<level>]`` and ``hazard_ratio[...]``: fixed covariates against their
      reference level, hierarchical ones against the average of their levels (column ``reference``);
    - ``group_sd[<covariate>]``: between-level sd of a hierarchical covariate that learns it (log-hazard
      scale); a "fixed-scale" covariate (few levels) has no such row: its sd is the prior's
      ``group_offset_sd``, not estimated (:meth:`group_sd` lists it with ``kind`` "fixed");
    - ``baseline_hazard[<start>-<end>]``: monthly hazard per tenure period of the reference cell (fixed
      covariates at their reference, hierarchical at their average).
    """

    model_type: ClassVar[str] = "piecewise_exponential"

    idata: Any = field(repr=False)
    exposure: ExposureTable = field(repr=False)
    fixed: list[str]
    hierarchical: list[str]
    levels: dict[str, list[str]]  # fixed: reference first; hierarchical: all levels
    fit_seconds: float = 0.0
    dropped_covariates: list[str] = field(default_factory=list)
    # hierarchical covariate -> "fixed-scale" (few levels: fixed prior sd), "centred" or "non-centred" (learned sd)
    parametrization: dict[str, str] = field(default_factory=dict)
    # the sampler's centring: fixed covariate -> event-weighted mean dummy (non-reference levels); hierarchical
    # covariate -> event weights of its levels (fits saved by earlier versions have fixed ones only)
    centering: dict[str, np.ndarray] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)
    sampler_config: dict[str, Any] = field(default_factory=dict)
    data_hash: str | None = None
    method: str = "NUTS"
    _diagnostics: Diagnostics | None = field(default=None, repr=False, compare=False)
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    # --- posterior access --------------------------------------------------------------------------------
    def _log_h0_reference(self) -> np.ndarray:
        """Baseline log hazard per period of the reference cell (fixed covariates at their reference level,
        hierarchical ones at the average of their levels): (draws, J). Undoes the sampler's centring."""
        base = self.draws("log_h0")
        for c, weights in self.centering.items():
            w = np.asarray(weights, dtype=float)
            shift = self.draws(f"log_hr_{c}") @ w if c in self.fixed else self.effect_draws(c) @ w
            base = base - shift[:, None]
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

    @property
    def free_parameters(self) -> list[str]:
        """The sampled (free) parameters the diagnostics gate checks."""
        names = ["log_h0", *[f"log_hr_{c}" for c in self.fixed]]
        for c in self.hierarchical:
            form = self.parametrization.get(c)
            if form == FIXED_SCALE:
                names.append(f"effect_{c}")
            else:
                names += [f"sigma_{c}", f"effect_{c}" if form == "centred" else f"z_{c}"]
        return names

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

    def thinned(self, max_draws: int) -> PiecewiseExponentialFit:
        """The same fit keeping at most ``max_draws`` posterior draws, evenly spaced over each chain
        (CLV over thousands of profile rows needs far fewer draws than the diagnostics). The thinned fit
        keeps the full fit's diagnostics."""
        post = self.idata.posterior
        per_chain = max(1, int(max_draws) // int(post.sizes["chain"]))
        if per_chain >= post.sizes["draw"]:
            return self
        keep = np.linspace(0, post.sizes["draw"] - 1, per_chain).round().astype(int)
        import arviz as az

        idata = az.InferenceData(posterior=post.isel(draw=keep))
        return replace(self, idata=idata, _diagnostics=self.diagnostics(), _cache={})

    # --- the standard surface --------------------------------------------------------------------------
    def diagnostics(self) -> Diagnostics:
        """The one gate (:func:`cxresearch.diagnostics.check_mcmc`) over the free parameters (cached)."""
        if self._diagnostics is None:
            self._diagnostics = check_mcmc(self.idata, self.free_parameters, method=self.method)
        return self._diagnostics

    def summary(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """Log hazard ratios, hazard ratios, group sds and baseline hazards: ``mean, sd, low, high`` at
        ``level`` (equal-tailed), plus ``scale`` and ``reference`` columns; ``attrs["level"]``."""
        level = check_level(level)
        draws: dict[str, np.ndarray] = {}
        scale: dict[str, str] = {}
        reference: dict[str, str | None] = {}
        for c, category, ref in self._comparisons():
            log_hr = self.contrast(c, category, ref)
            for name, values, what in (
                (f"log_hazard_ratio[{c}={category}]", log_hr, "log hazard ratio"),
                (f"hazard_ratio[{c}={category}]", np.exp(log_hr), "hazard ratio"),
            ):
                draws[name], scale[name], reference[name] = values, what, ref if ref is not None else "average"
        for c in self._learned_scale():
            name = f"group_sd[{c}]"
            draws[name], scale[name], reference[name] = self.draws(f"sigma_{c}"), "sd of log hazard", None
        rate = np.exp(self._log_h0_reference())
        for j, (start, end) in enumerate(self._periods()):
            name = f"baseline_hazard[{start:g}-{end:g}]"
            draws[name], scale[name], reference[name] = rate[:, j], "monthly hazard", self._reference_cell()
        frame = summary_frame(draws, level)
        frame["scale"] = [scale[k] for k in frame.index]
        frame["reference"] = [reference[k] for k in frame.index]
        return standard_summary(frame, level)

    def predict(self, new_customers: pd.DataFrame, kind: str = "survival", times: Any = None) -> Any:
        """Posterior predictions for customer profiles at tenures ``times`` (months; default 0, 1, ... up to
        the longest observed tenure): ``xarray.DataArray`` dims (sample, customer, time).

        ``kind``: "survival" S(t), "hazard" h(t) (monthly, piecewise constant: the hazard of the period
        that contains t, periods being (a_j, a_{j+1}]) or "cumulative_hazard" H(t). ``new_customers`` needs
        a column per covariate with levels seen in the fit; its index labels the ``customer`` dim.
        """
        import xarray as xr

        if kind not in PREDICT_KINDS:
            raise ValueError(f"kind must be one of {PREDICT_KINDS}, got {kind!r}")
        times = self._times(times)
        if kind == "hazard":
            log_rate = self.log_rate_draws(new_customers)  # (S, n, J)
            period = np.clip(np.searchsorted(self.breaks, times, side="left") - 1, 0, len(self.breaks) - 1)
            values = np.exp(log_rate[:, :, period])
        else:
            values = self.cumulative_hazard_draws(new_customers, times)
            if kind == "survival":
                values = np.exp(-values)
        return xr.DataArray(
            values,
            dims=("sample", "customer", "time"),
            name=kind,
            coords={"sample": np.arange(values.shape[0]), "customer": new_customers.index.to_numpy(), "time": times},
        )

    def plot_survival(
        self, new_customers: pd.DataFrame | None = None, times: Any = None, level: float = DEFAULT_LEVEL, ax: Any = None
    ) -> Any:
        """Posterior mean survival with its ``level`` band, one curve per row of ``new_customers`` (default:
        one per level of the first fixed covariate, other fixed covariates at their reference and
        hierarchical ones at the first level). Returns the Axes."""
        import matplotlib.pyplot as plt

        from cxresearch.reports.display import NPS_COLORS, PALETTE

        if new_customers is None:
            new_customers = self._default_profiles()
        surv = self.predict(new_customers, kind="survival", times=times)
        if ax is None:
            _, ax = plt.subplots()
        low, high = interval(surv.values, level, axis=0)
        label_col = self.fixed[0] if self.fixed else None
        for i, customer in enumerate(surv["customer"].values):
            label = str(new_customers[label_col].iloc[i]) if label_col else str(customer)
            color = NPS_COLORS.get(label, PALETTE[i % len(PALETTE)])
            ax.plot(surv["time"], surv.values[:, i, :].mean(axis=0), color=color, lw=2, label=label)
            ax.fill_between(surv["time"], low[i], high[i], color=color, alpha=0.2, lw=0)
        ax.set_xlabel("Tenure (months)")
        ax.set_ylabel("Share still a customer")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
        return ax

    def plot_baseline_hazard(self, level: float = DEFAULT_LEVEL, ax: Any = None, title: str | None = None) -> Any:
        """Step plot of the monthly baseline hazard of the reference cell with its ``level`` band (the last
        period is open: drawn up to the longest observed tenure). Returns the Axes."""
        import matplotlib.pyplot as plt

        from cxresearch.reports.display import PALETTE

        base = self.baseline_hazard(level)
        ends = base["end"].replace(np.inf, max(self.max_observed_tenure, float(base["start"].iloc[-1]) + 1.0))
        if ax is None:
            _, ax = plt.subplots()
        for row, end in zip(base.itertuples(index=False), ends.to_numpy(), strict=True):
            ax.fill_between([row.start, end], row.low, row.high, color=PALETTE[0], alpha=0.2, lw=0)
            ax.hlines(row.hazard, row.start, end, color=PALETTE[0], lw=2)
        ax.set_xlabel("Tenure (months)")
        ax.set_ylabel("Monthly hazard")
        ax.set_title(title or f"Monthly churn hazard by tenure ({self._reference_cell() or 'overall'})")
        return ax

    # --- save / load -------------------------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        save_idata(self.idata, folder)
        self.exposure.frame.to_parquet(folder / "exposure.parquet", index=False)
        state = {
            "exposure": _exposure_state(self.exposure),
            "fixed": self.fixed,
            "hierarchical": self.hierarchical,
            "levels": self.levels,
            "fit_seconds": self.fit_seconds,
            "dropped_covariates": self.dropped_covariates,
            "parametrization": self.parametrization,
            "method": self.method,
            "centering": {c: np.asarray(v, dtype=float).tolist() for c, v in self.centering.items()},
            "diagnostics": self.diagnostics().to_dict(),
        }
        (folder / "state.json").write_text(json.dumps(state, default=json_default))

    @classmethod
    def _load_state(cls, folder: Path, meta: Mapping[str, Any]) -> PiecewiseExponentialFit:
        state = json.loads((folder / "state.json").read_text())
        exposure = ExposureTable(frame=pd.read_parquet(folder / "exposure.parquet"), **state["exposure"])
        return cls(
            idata=load_idata(folder),
            exposure=exposure,
            fixed=state["fixed"],
            hierarchical=state["hierarchical"],
            levels=state["levels"],
            fit_seconds=state["fit_seconds"],
            dropped_covariates=state["dropped_covariates"],
            parametrization=state["parametrization"],
            centering={c: np.asarray(v, dtype=float) for c, v in state["centering"].items()},
            model_config=dict(meta["model_config"]),
            sampler_config=dict(meta["sampler_config"]),
            data_hash=meta.get("data_hash"),
            method=state["method"],
            _diagnostics=Diagnostics.from_dict(state["diagnostics"]),
        )

    # --- helpers -----------------------------------------------------------------------------------------
    def _times(self, times: Any) -> np.ndarray:
        if times is None:
            return np.arange(0.0, np.floor(self.max_observed_tenure) + 1.0)
        times = np.atleast_1d(np.asarray(times, dtype=float))
        if times.ndim != 1 or (times < 0).any() or np.isnan(times).any():
            raise ValueError(f"times must be a 1-D list of tenures >= 0 (months), got {times!r}")
        return times

    def _periods(self) -> list[tuple[float, float]]:
        starts = [float(b) for b in self.exposure.breaks]
        return list(zip(starts, [*starts[1:], np.inf], strict=True))

    def _comparisons(self) -> list[tuple[str, str, str | None]]:
        """(covariate, level, reference) per reported hazard ratio; reference None = the levels' average."""
        out: list[tuple[str, str, str | None]] = []
        for c in self.covariates:
            lv = self.levels[c]
            out += [(c, x, lv[0]) for x in lv[1:]] if c in self.fixed else [(c, x, None) for x in lv]
        return out

    def _learned_scale(self) -> list[str]:
        """The hierarchical covariates whose between-level sd is a parameter (not fixed-scale)."""
        return [c for c in self.hierarchical if self.parametrization.get(c) != FIXED_SCALE]

    def _reference_cell(self) -> str:
        parts = [f"{c} {self.levels[c][0]}" for c in self.fixed] + [f"average {c}" for c in self.hierarchical]
        return ", ".join(parts)

    def _default_profiles(self) -> pd.DataFrame:
        base = {c: self.levels[c][0] for c in self.covariates}
        if not self.fixed:
            return pd.DataFrame([base], index=["reference"])
        first = self.fixed[0]
        rows = [{**base, first: x} for x in self.levels[first]]
        return pd.DataFrame(rows, index=pd.Index(self.levels[first], name="customer"))

    # --- hazards for profiles (CLV, NPE) -------------------------------------------------------------------
    def effect_draws(self, covariate: str) -> np.ndarray:
        """Log-hazard effect per level (n_draws, n_levels): 0 for a fixed covariate's reference level."""
        if covariate in self.fixed:
            beta = self.draws(f"log_hr_{covariate}")
            return np.concatenate([np.zeros((beta.shape[0], 1)), beta], axis=1)
        if covariate in self.hierarchical:
            if self.parametrization.get(covariate) in ("centred", FIXED_SCALE):
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

    def discounted_lifetime_draws(
        self,
        profile: pd.DataFrame,
        tenure: np.ndarray,
        horizon_months: int,
        discount_factor: float,
        max_chunk_values: int = 8_000_000,
    ) -> np.ndarray:
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

    def contrast(self, covariate: str, category: str, reference: str | None = None) -> np.ndarray:
        """Draws of the log hazard ratio of level ``category`` vs ``reference`` (default: the fixed
        reference level, or the average of a hierarchical covariate's levels)."""
        lv = self.levels.get(covariate)
        if lv is None:
            raise KeyError(f"{covariate!r} is not a covariate of this model ({self.covariates})")
        for x in (category, reference):
            if x is not None and x not in lv:
                raise ValueError(f"level {x!r} of {covariate!r} not in the model ({lv})")
        eff = self.effect_draws(covariate)
        out = eff[:, lv.index(category)]
        if reference is not None:
            out = out - eff[:, lv.index(reference)]
        elif covariate in self.hierarchical:
            out = out - eff.mean(axis=1)
        return out

    def hazard_ratio(
        self, covariate: str, category: str, reference: str | None = None, level: float = DEFAULT_LEVEL
    ) -> dict[str, Any]:
        """``{"mean", "interval": [low, high]}`` of one hazard ratio at ``level`` (the results.json shape)."""
        hr = np.exp(self.contrast(covariate, category, reference))
        low, high = interval(hr, level)
        return {"mean": float(hr.mean()), "interval": [float(low), float(high)]}

    def hazard_ratios(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """Hazard ratios with equal-tailed ``level`` intervals (columns ``hr, low, high``): fixed covariates
        vs their reference, hierarchical vs the average of their levels (one row per comparison)."""
        rows = []
        for c, category, ref in self._comparisons():
            log_hr = self.contrast(c, category, ref)
            hr = np.exp(log_hr)
            low, high = interval(hr, level)
            rows.append(
                {
                    "term": f"{c}={category}",
                    "covariate": c,
                    "level": category,
                    "reference": ref if ref is not None else "average",
                    "kind": "fixed" if c in self.fixed else "hierarchical",
                    "hr": float(hr.mean()),
                    "hr_median": float(np.median(hr)),
                    "low": float(low),
                    "high": float(high),
                    "log_hr": float(log_hr.mean()),
                    "log_hr_sd": float(log_hr.std()),
                    "prob_hr_above_1": float((log_hr > 0).mean()),
                }
            )
        frame = pd.DataFrame(rows)
        frame.attrs["level"] = check_level(level)
        return frame

    def group_sd(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """The between-level standard deviation of each hierarchical covariate (log-hazard scale), column
        ``kind``: "learned" (posterior mean and ``level`` interval of its sd) or "fixed" (a fixed-scale
        covariate: the prior sd of its offsets, ``group_offset_sd``, not estimated: ``low`` = ``high`` = ``sd``).
        """
        rows = []
        fixed_sd = float(self.model_config.get("group_offset_sd", np.nan))
        for c in self.hierarchical:
            if self.parametrization.get(c) == FIXED_SCALE:
                rows.append({"covariate": c, "sd": fixed_sd, "low": fixed_sd, "high": fixed_sd, "kind": "fixed"})
                continue
            s = self.draws(f"sigma_{c}")
            low, high = interval(s, level)
            rows.append(
                {"covariate": c, "sd": float(s.mean()), "low": float(low), "high": float(high), "kind": "learned"}
            )
        frame = pd.DataFrame(rows, columns=["covariate", "sd", "low", "high", "kind"])
        frame.attrs["level"] = check_level(level)
        return frame

    def baseline_hazard(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """Monthly hazard per period for the reference cell (fixed at reference, hierarchical at average)."""
        rate = np.exp(self._log_h0_reference())
        low, high = interval(rate, level)
        ends = list(self.exposure.breaks[1:]) + [np.inf]
        frame = pd.DataFrame(
            {
                "period": np.arange(len(self.exposure.breaks)),
                "start": self.exposure.breaks,
                "end": ends,
                "hazard": rate.mean(axis=0),
                "low": low,
                "high": high,
            }
        )
        frame.attrs["level"] = check_level(level)
        return frame


def _collapse(exposure: ExposureTable, covariates: list[str]) -> pd.DataFrame:
    keys = ["period", *covariates]
    return exposure.frame.groupby(keys, as_index=False, sort=True)[["events", "exposure", "at_risk"]].sum()


def build_model(
    exposure: ExposureTable,
    *,
    fixed: Sequence[str] = (),
    hierarchical: Sequence[str] = (),
    reference: Mapping[str, str] | None = None,
    prior_sd_log_hr: float = 2.0,
    prior_sd_baseline: float = 2.0,
    prior_scale_group_sd: float = 0.5,
    parametrization: str | Mapping[str, str] = "auto",
    centred_min_events: int = 100,
    fixed_scale_levels: int = 5,
    group_offset_sd: float = 0.5,
) -> tuple[Any, dict[str, Any]]:
    """The PyMC model on ``exposure`` and what was decided building it.

    Returns (model, info) with info keys levels, fixed, hierarchical, dropped (covariates with a single level
    in the data, e.g. segment when the study is filtered to one segment), parametrization, centering.
    ``parametrization`` per hierarchical covariate (one string for all, or a mapping): "fixed-scale"
    (zero-sum offsets with the fixed prior sd ``group_offset_sd``: no sd to learn, so no funnel),
    "non-centred" (learned sd, ``sigma * z``, for weakly informed levels), "centred" (learned sd, for levels
    with many events, where the non-centred form leaves a ridge between sigma and z that NUTS samples
    badly), or "auto": fixed-scale when the covariate has at most ``fixed_scale_levels`` levels (0: never),
    else centred when every level has at least ``centred_min_events`` events, else non-centred.
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
    if isinstance(fixed_scale_levels, bool) or not isinstance(fixed_scale_levels, (int, np.integer)):
        raise TypeError(f"fixed_scale_levels must be an integer, got {fixed_scale_levels!r}")
    if fixed_scale_levels < 0:
        raise ValueError(f"fixed_scale_levels must be >= 0, got {fixed_scale_levels}")
    if not (np.isfinite(group_offset_sd) and group_offset_sd > 0):
        raise ValueError(f"group_offset_sd must be a positive number, got {group_offset_sd!r}")
    if not isinstance(parametrization, str):
        unknown_p = sorted(set(parametrization) - set(hierarchical) - set(dropped))
        if unknown_p:
            raise KeyError(f"parametrization given for {unknown_p}, which are not hierarchical covariates")
    chosen: dict[str, str] = {}
    for c in hierarchical:
        choice = parametrization if isinstance(parametrization, str) else parametrization.get(c, "auto")
        if choice not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization for {c!r} must be one of {PARAMETRIZATIONS}, got {choice!r}")
        if choice == "auto":
            if len(levels[c]) <= fixed_scale_levels:
                choice = FIXED_SCALE
            else:
                min_events = int(data.groupby(c)["events"].sum().min())
                choice = "centred" if min_events >= centred_min_events else "non-centred"
        chosen[c] = choice

    events_total = float(data["events"].sum())
    for c in fixed:
        if events_total > 0 and float(data.loc[data[c] == levels[c][0], "events"].sum()) == 0:
            warnings.warn(
                f"reference level {levels[c][0]!r} of {c!r} has no events: its hazard is bounded only by the "
                f"prior, so every hazard ratio against it is mostly prior (and they move together, which "
                f"samples slowly); choose a reference level with events",
                UserWarning,
                stacklevel=2,
            )

    n_periods = len(exposure.breaks)
    weights = data["events"].to_numpy(dtype=float)
    if weights.sum() == 0:
        weights = data["exposure"].to_numpy(dtype=float)
    centering = {}
    for c in fixed:
        idx = pd.Categorical(data[c], categories=levels[c]).codes
        centering[c] = np.array([np.average(idx == k, weights=weights) for k in range(1, len(levels[c]))])
    for c in hierarchical:
        idx = pd.Categorical(data[c], categories=levels[c]).codes
        centering[c] = np.array([np.average(idx == k, weights=weights) for k in range(len(levels[c]))])
    crude = max(float(data["events"].sum()), 0.5) / float(data["exposure"].sum())
    coords: dict[str, np.ndarray | list[str]] = {"period": np.arange(n_periods)}
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
            idx = pd.Categorical(data[c], categories=levels[c]).codes
            if chosen[c] == FIXED_SCALE:  # no variance parameter: nothing to make a funnel with
                effect = pm.ZeroSumNormal(f"effect_{c}", sigma=float(group_offset_sd), dims=c)
            elif chosen[c] == "non-centred":
                sigma = pm.HalfNormal(f"sigma_{c}", sigma=prior_scale_group_sd)
                effect = sigma * pm.ZeroSumNormal(f"z_{c}", sigma=1.0, dims=c)
            else:
                sigma = pm.HalfNormal(f"sigma_{c}", sigma=prior_scale_group_sd)
                effect = pm.ZeroSumNormal(f"effect_{c}", sigma=sigma, dims=c)
            # centred at the event-weighted level mix, as the fixed effects: with levels of unequal size the
            # baseline (at the unweighted average) would otherwise trade off with the large levels' effects
            eta = eta + effect[idx] - pm.math.dot(effect, centering[c])
        pm.Poisson(
            "events", mu=pm.math.exp(eta + np.log(data["exposure"].to_numpy())), observed=data["events"].to_numpy()
        )
    return model, {
        "levels": levels,
        "fixed": fixed,
        "hierarchical": hierarchical,
        "dropped": dropped,
        "parametrization": chosen,
        "centering": centering,
    }


def fit_piecewise_exponential(
    exposure: ExposureTable,
    *,
    fixed: Sequence[str] = (),
    hierarchical: Sequence[str] = (),
    reference: Mapping[str, str] | None = None,
    prior_sd_log_hr: float = 2.0,
    prior_sd_baseline: float = 2.0,
    prior_scale_group_sd: float = 0.5,
    parametrization: str | Mapping[str, str] = "auto",
    centred_min_events: int = 100,
    fixed_scale_levels: int = 5,
    group_offset_sd: float = 0.5,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    seed: int = 1,
    sampler: str = "nutpie",
    target_accept: float = 0.9,
) -> PiecewiseExponentialFit:
    """Fit the hierarchical piecewise-exponential model by NUTS; ``fit.diagnostics()`` applies the gate.

    ``sampler``: "nutpie" (default; compiles the model with numba, then samples fast) or "pymc".
    ``fixed`` covariates get reference-coded log hazard ratios (``reference`` per column, e.g.
    ``{"nps_class": "promoter"}``); ``hierarchical`` ones are partially pooled: with at most
    ``fixed_scale_levels`` levels by offsets with the fixed prior sd ``group_offset_sd`` (see the module
    docstring), with more by a learned sd (see :func:`build_model`). Other covariates of the exposure table
    are summed over. The fit's ``model_config`` records the breaks, covariates, references, priors,
    ``fixed_scale_levels``, ``group_offset_sd`` and the parametrisation chosen per hierarchical covariate
    ("fixed-scale", "centred" or "non-centred"); ``sampler_config`` the NUTS settings.

    ``target_accept`` 0.9 passes the gate on the simulator's demo study, on filtered (one-segment,
    one-market) runs and on a zero-event level; raise it only when the gate reports divergences.
    """
    import pymc as pm

    if sampler not in ("nutpie", "pymc"):
        raise ValueError(f"sampler must be 'nutpie' or 'pymc', got {sampler!r}")
    start = time.perf_counter()
    model, info = build_model(
        exposure,
        fixed=fixed,
        hierarchical=hierarchical,
        reference=reference,
        prior_sd_log_hr=prior_sd_log_hr,
        prior_sd_baseline=prior_sd_baseline,
        prior_scale_group_sd=prior_scale_group_sd,
        parametrization=parametrization,
        centred_min_events=centred_min_events,
        fixed_scale_levels=fixed_scale_levels,
        group_offset_sd=group_offset_sd,
    )
    # the covariates the model kept (build_model drops those with a single level in the data)
    kept_fixed: list[str] = info["fixed"]
    kept_hierarchical: list[str] = info["hierarchical"]
    chosen = info["parametrization"]
    if cores is None:  # the runner's share of the machine (all cores outside the runner)
        from cxresearch.runtime import run_threads

        cores = min(chains, run_threads())
    from cxresearch.runtime import one_blas_thread

    if sampler == "nutpie":
        import nutpie

        from cxresearch.compile_cache import compile_pymc_model

        compiled = compile_pymc_model(model)  # nutpie's, with its C callbacks cached on disk
        with one_blas_thread():
            idata = nutpie.sample(
                compiled,
                draws=draws,
                tune=tune,
                chains=chains,
                cores=cores,
                seed=seed,
                progress_bar=False,
                target_accept=target_accept,
            )
    else:
        with model:
            idata = pm.sample(
                draws=draws,
                tune=tune,
                chains=chains,
                cores=cores,
                random_seed=seed,
                target_accept=target_accept,
                progressbar=False,
                nuts_sampler="pymc",
                compute_convergence_checks=False,
            )
    model_config = {
        "breaks": [float(b) for b in exposure.breaks],
        "fixed": kept_fixed,
        "hierarchical": kept_hierarchical,
        "reference": {c: info["levels"][c][0] for c in kept_fixed},
        "dropped": info["dropped"],
        "priors": {
            "sd_log_hr": float(prior_sd_log_hr),
            "sd_baseline": float(prior_sd_baseline),
            "scale_group_sd": float(prior_scale_group_sd),
        },
        "parametrization": chosen,
        "centred_min_events": int(centred_min_events),
        "fixed_scale_levels": int(fixed_scale_levels),
        "group_offset_sd": float(group_offset_sd),
    }
    sampler_config = {
        "sampler": sampler,
        "draws": int(draws),
        "tune": int(tune),
        "chains": int(chains),
        "seed": int(seed),
        "target_accept": float(target_accept),
    }
    fit = PiecewiseExponentialFit(
        idata=idata,
        exposure=exposure,
        fixed=kept_fixed,
        hierarchical=kept_hierarchical,
        levels=info["levels"],
        fit_seconds=time.perf_counter() - start,
        dropped_covariates=info["dropped"],
        parametrization=chosen,
        centering=info["centering"],
        model_config=model_config,
        sampler_config=sampler_config,
        data_hash=exposure_hash(exposure),
        method=f"NUTS ({sampler})",
    )
    fit.diagnostics()  # computed once now, kept by thinned copies and saves
    return fit
