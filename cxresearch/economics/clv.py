"""Customer lifetime value from a survival model, conditional on each customer's current tenure.

    CLV_i = margin_i * sum_{k=1..H} d^k * S(t_i + k) / S(t_i),   d = (1 + annual_rate)^(-1/12)

Convention: the monthly margin is earned at the end of each of the next ``H`` months that the customer is
still active (the customer is active now, at tenure ``t_i``); cash flows are discounted monthly at the rate
equivalent to the annual one. For a constant monthly hazard h this is the geometric series
``margin * x (1 - x^H) / (1 - x)`` with ``x = d e^{-h}`` (:func:`constant_hazard_clv`).

Any model with ``covariates``, ``max_observed_tenure`` and ``cumulative_hazard_draws(profile, times)``
(returning draws x rows x times) works: the Bayesian piecewise-exponential fit (posterior draws), the
lifelines parametric fit (draws from the asymptotic normal of its parameters) or :class:`ConstantHazardModel`.

Profiles are customers grouped by covariates and tenure (see
:func:`cxresearch.economics.exposure.customer_profile`) with columns ``n``, ``margin_mean``, ``margin_sd``.
Group CLV is the customer-weighted mean. With ``sampling_uncertainty`` the interval also covers the finite
sample of customers: per draw, Bayesian-bootstrap weights Gamma(n_g, 1) per profile row and a normal draw of
each row's mean margin (sd / sqrt(n)).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from cxresearch.protocol import DEFAULT_LEVEL, check_level, interval


class SurvivalModel(Protocol):
    """What CLV needs from a fitted survival model."""

    @property
    def covariates(self) -> list[str]: ...

    @property
    def max_observed_tenure(self) -> float: ...

    def cumulative_hazard_draws(self, profile: pd.DataFrame, times: np.ndarray) -> np.ndarray: ...


class ExtrapolationWarning(UserWarning):
    """The CLV horizon reaches far beyond the longest tenure in the data: the tail is model extrapolation."""


def monthly_discount_factor(discount_rate_annual: float) -> float:
    """Monthly discount factor equivalent to an annual rate: (1 + r)^(-1/12)."""
    if not discount_rate_annual > -1:
        raise ValueError(f"discount_rate_annual must be > -1, got {discount_rate_annual}")
    return float((1.0 + discount_rate_annual) ** (-1.0 / 12.0))


def constant_hazard_clv(
    margin: float, monthly_hazard: float, horizon_months: int, discount_rate_annual: float
) -> float:
    """Closed-form CLV for a constant monthly hazard (geometric series; the reference for tests)."""
    x = monthly_discount_factor(discount_rate_annual) * math.exp(-monthly_hazard)
    if abs(1 - x) < 1e-15:
        return float(margin * horizon_months)
    return float(margin * x * (1 - x**horizon_months) / (1 - x))


@dataclass
class ConstantHazardModel:
    """Exponential survival with a monthly hazard (a number, or an array of draws)."""

    monthly_hazard: float | Sequence[float] | np.ndarray
    max_observed_tenure: float = math.inf
    covariates: list[str] = field(default_factory=list)

    def cumulative_hazard_draws(self, profile: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        h = np.atleast_1d(np.asarray(self.monthly_hazard, dtype=float))
        times = np.asarray(times, dtype=float)
        if times.ndim == 1:
            times = np.broadcast_to(times, (len(profile), len(times)))
        return h[:, None, None] * times[None]


def _check_horizon(horizon_months: int) -> int:
    if int(horizon_months) != horizon_months or horizon_months < 1:
        raise ValueError(f"horizon_months must be a positive whole number of months, got {horizon_months}")
    return int(horizon_months)


def extrapolation_check(
    model: SurvivalModel, tenure: np.ndarray, weights: np.ndarray, horizon_months: int, tolerance: float = 0.25
) -> dict[str, Any]:
    """How far the horizon reaches past the longest observed tenure.

    ``share_months_beyond`` is the customer-weighted share of the months in the horizon that lie beyond
    ``max_observed_tenure``; ``extrapolated`` is True when it exceeds ``tolerance``.
    """
    t_max = float(model.max_observed_tenure)
    k = np.arange(1, horizon_months + 1)
    beyond = ((tenure[:, None] + k[None, :]) > t_max).mean(axis=1)
    share = float(np.average(beyond, weights=weights)) if weights.sum() > 0 else 0.0
    return {
        "max_observed_tenure": t_max,
        "horizon_months": horizon_months,
        "horizon_end_max": float(tenure.max() + horizon_months) if len(tenure) else float(horizon_months),
        "share_months_beyond": share,
        "tolerance": tolerance,
        "extrapolated": bool(share > tolerance),
    }


def _warn_extrapolation(info: dict[str, Any]) -> None:
    if info["extrapolated"]:
        warnings.warn(
            f"CLV horizon extrapolates: {100 * info['share_months_beyond']:.0f}% of the customer-months in the "
            f"{info['horizon_months']}-month horizon lie beyond the longest observed tenure "
            f"({info['max_observed_tenure']:g} months; horizon reaches {info['horizon_end_max']:g}). "
            f"Those months rest on the model's tail, not on data.",
            ExtrapolationWarning,
            stacklevel=3,
        )


def discounted_lifetime_draws(
    model: SurvivalModel,
    profile: pd.DataFrame,
    *,
    horizon_months: int,
    discount_rate_annual: float,
    tenure_col: str = "tenure",
    override: Mapping[str, str] | None = None,
    max_chunk_values: int = 4_000_000,
) -> np.ndarray:
    """Expected discounted months as a customer over the horizon, per draw and profile row: (draws, rows).

    ``sum_{k=1..H} d^k S(t + k) / S(t)``; multiply by the monthly margin for CLV. ``override`` sets
    covariates for a counterfactual (e.g. ``{"nps_class": "promoter"}``).
    """
    horizon = _check_horizon(horizon_months)
    if tenure_col not in profile.columns:
        raise KeyError(f"profile lacks the tenure column {tenure_col!r}; it has {list(profile.columns)}")
    tenure = pd.to_numeric(profile[tenure_col], errors="raise").to_numpy(dtype=float)
    if (tenure < 0).any() or np.isnan(tenure).any():
        raise ValueError(f"profile column {tenure_col!r} has negative or missing tenures")
    frame = profile.reset_index(drop=True)
    if override:
        frame = frame.assign(**{k: str(v) for k, v in override.items()})
    d = monthly_discount_factor(discount_rate_annual)
    fast = getattr(model, "discounted_lifetime_draws", None)
    if callable(fast):  # e.g. the piecewise-exponential fit: one matrix product per chunk of rows
        return fast(frame, tenure, horizon, d)
    k = np.arange(0, horizon + 1, dtype=float)
    weights = d ** k[1:]
    out: list[np.ndarray] = []
    probe = model.cumulative_hazard_draws(frame.iloc[:1], tenure[:1, None] + k[None, :])
    n_draws = probe.shape[0]
    chunk = max(1, int(max_chunk_values // (n_draws * (horizon + 1))))
    for lo in range(0, len(frame), chunk):
        hi = min(lo + chunk, len(frame))
        times = tenure[lo:hi, None] + k[None, :]
        cum = model.cumulative_hazard_draws(frame.iloc[lo:hi], times)  # (S, c, H+1)
        cond = np.exp(-(cum[:, :, 1:] - cum[:, :, :1]))
        out.append(cond @ weights)
    return np.concatenate(out, axis=1) if out else np.zeros((n_draws, 0))


def _profile_arrays(
    profile: pd.DataFrame, margin_col: str, count_col: str | None, margin_sd_col: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    for col in [margin_col] + [c for c in (count_col, margin_sd_col) if c]:
        if col not in profile.columns:
            raise KeyError(f"profile lacks column {col!r}; it has {list(profile.columns)}")
    margin = pd.to_numeric(profile[margin_col], errors="raise").to_numpy(dtype=float)
    if np.isnan(margin).any():
        raise ValueError(f"profile column {margin_col!r} has missing margins")
    n = profile[count_col].to_numpy(dtype=float) if count_col else np.ones(len(profile))
    sd = profile[margin_sd_col].fillna(0).to_numpy(dtype=float) if margin_sd_col else np.zeros(len(profile))
    return margin, n, sd


def resampling_weights(
    n: np.ndarray, margin: np.ndarray, margin_sd: np.ndarray, n_draws: int, seed: int, sampling_uncertainty: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Per-draw row weights and mean margins: Bayesian bootstrap (Gamma(n, 1)) and N(mean, sd / sqrt(n))."""
    if not sampling_uncertainty:
        return np.broadcast_to(n, (n_draws, len(n))), np.broadcast_to(margin, (n_draws, len(n)))
    rng = np.random.default_rng(seed)
    w = rng.gamma(shape=np.maximum(n, 1e-12), size=(n_draws, len(n)))
    m = margin + rng.standard_normal((n_draws, len(n))) * (margin_sd / np.sqrt(np.maximum(n, 1)))
    return w, m


def summarise_draws(draws: np.ndarray, level: float = DEFAULT_LEVEL) -> dict[str, Any]:
    """``{"mean", "interval": [low, high]}`` (the results.json shape) with an equal-tailed ``level`` interval
    (NaN draws ignored)."""
    level = check_level(level)
    draws = np.asarray(draws, dtype=float)
    draws = draws[~np.isnan(draws)]
    if draws.size == 0:
        return {"mean": float("nan"), "interval": [float("nan"), float("nan")]}
    low, high = interval(draws, level)
    return {"mean": float(draws.mean()), "interval": [float(low), float(high)]}


def _group_keys(profile: pd.DataFrame, group_by: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    missing = [c for c in group_by if c not in profile.columns]
    if missing:
        raise KeyError(f"profile lacks group column(s) {missing}; it has {list(profile.columns)}")
    if not group_by:
        return pd.DataFrame({"group": ["all"]}), np.zeros(len(profile), dtype=int)
    keys = profile[list(group_by)].astype(str)
    uniq = keys.drop_duplicates().sort_values(list(group_by)).reset_index(drop=True)
    codes = keys.merge(uniq.reset_index(), on=list(group_by), how="left")["index"].to_numpy()
    return uniq, codes


def weighted_group_means(values: np.ndarray, weights: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-draw weighted means by group: values / weights (draws, rows) -> (draws, groups)."""
    onehot = np.zeros((len(codes), n_groups))
    onehot[np.arange(len(codes)), codes] = 1.0
    num = (values * weights) @ onehot
    den = weights @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


@dataclass
class ClvResult:
    """CLV per group with intervals, the per-draw values and how far the horizon extrapolates."""

    summary: pd.DataFrame  # group columns, n_customers, margin_mean, discounted_months, clv, low, high
    draws: Any  # xarray.DataArray (draw, group)
    lifetime_draws: np.ndarray = field(repr=False)  # (draws, profile rows): discounted months
    extrapolation: dict[str, Any] = field(default_factory=dict)
    assumptions: dict[str, Any] = field(default_factory=dict)

    def to_results(self, group_col: str) -> dict[str, dict[str, Any]]:
        """``{group: {"mean", "interval"}}`` for results.json."""
        return {
            str(r[group_col]): {"mean": float(r["clv"]), "interval": [float(r["low"]), float(r["high"])]}
            for _, r in self.summary.iterrows()
        }


def customer_lifetime_value(
    model: SurvivalModel,
    profile: pd.DataFrame,
    *,
    horizon_months: int,
    discount_rate_annual: float,
    group_by: Sequence[str] = (),
    margin_col: str = "margin_mean",
    count_col: str | None = "n",
    margin_sd_col: str | None = "margin_sd",
    tenure_col: str = "tenure",
    level: float = DEFAULT_LEVEL,
    sampling_uncertainty: bool = True,
    seed: int = 1,
    extrapolation_tolerance: float = 0.25,
    override: Mapping[str, str] | None = None,
) -> ClvResult:
    """Mean CLV per group (conditional on each customer's tenure) with ``level`` intervals (columns ``low``,
    ``high``) from the model's draws.

    Warns with :class:`ExtrapolationWarning` (and sets ``extrapolation["extrapolated"]``) when more than
    ``extrapolation_tolerance`` of the customer-months in the horizon lie beyond the longest observed tenure.
    """
    import xarray as xr

    horizon = _check_horizon(horizon_months)
    level = check_level(level)
    group_by = list(group_by)
    margin, n, sd = _profile_arrays(profile, margin_col, count_col, margin_sd_col)
    lifetime = discounted_lifetime_draws(
        model,
        profile,
        horizon_months=horizon,
        discount_rate_annual=discount_rate_annual,
        tenure_col=tenure_col,
        override=override,
    )
    n_draws = lifetime.shape[0]
    w, m = resampling_weights(n, margin, sd, n_draws, seed, sampling_uncertainty)
    keys, codes = _group_keys(profile, group_by)
    clv = weighted_group_means(m * lifetime, w, codes, len(keys))
    months = weighted_group_means(lifetime, np.broadcast_to(n, lifetime.shape), codes, len(keys))
    summary = keys.copy()
    summary["n_customers"] = np.bincount(codes, weights=n, minlength=len(keys)).astype("int64")
    summary["margin_mean"] = np.bincount(codes, weights=n * margin, minlength=len(keys)) / summary["n_customers"]
    summary["discounted_months"] = months.mean(axis=0)
    summary["clv"] = clv.mean(axis=0)
    summary["low"], summary["high"] = interval(clv, level, axis=0)
    summary.attrs["level"] = level
    labels = ["|".join(map(str, row)) for row in keys.itertuples(index=False)]
    coords: dict[str, Any] = {"group": labels}
    for c in keys.columns:
        coords[c] = ("group", keys[c].tolist())
    draws = xr.DataArray(clv, dims=("draw", "group"), coords=coords, name="clv")
    tenure = profile[tenure_col].to_numpy(dtype=float)
    info = extrapolation_check(model, tenure, n, horizon, extrapolation_tolerance)
    _warn_extrapolation(info)
    assumptions = {
        "horizon_months": horizon,
        "discount_rate_annual": discount_rate_annual,
        "monthly_discount_factor": monthly_discount_factor(discount_rate_annual),
        "timing": "margin earned at the end of each month the customer is still active",
        "level": level,
        "sampling_uncertainty": sampling_uncertainty,
    }
    return ClvResult(summary=summary, draws=draws, lifetime_draws=lifetime, extrapolation=info, assumptions=assumptions)


def median_survival(
    model: SurvivalModel,
    profile: pd.DataFrame,
    *,
    group_by: Sequence[str] = (),
    count_col: str | None = "n",
    level: float = DEFAULT_LEVEL,
    max_time: float | None = None,
    step: float = 0.25,
) -> pd.DataFrame:
    """Median lifetime (months) of a new customer per group, from the group's mix of covariate cells.

    The group's survival curve is the customer-weighted mean of the cells' curves. ``extrapolated`` is True
    when the median lies beyond the longest observed tenure; draws that never reach 0.5 before ``max_time``
    (default 10x the longest tenure) are counted in ``share_not_reached`` and left out of mean / interval
    (``low``, ``high`` at ``level``).
    """
    group_by = list(group_by)
    cols = [*model.covariates, *[g for g in group_by if g not in model.covariates]]
    missing = [c for c in cols if c not in profile.columns]
    if missing:
        raise KeyError(f"profile lacks column(s) {missing}; it has {list(profile.columns)}")
    n = profile[count_col].to_numpy(dtype=float) if count_col else np.ones(len(profile))
    cells = profile.assign(_n=n).astype({c: str for c in cols}).groupby(cols, as_index=False, sort=True)["_n"].sum()
    t_max = float(model.max_observed_tenure)
    end = max_time if max_time is not None else (10 * t_max if math.isfinite(t_max) else 1200.0)
    grid = np.arange(0.0, end + step, step)
    keys, codes = _group_keys(cells, group_by)
    rows = []
    for g in range(len(keys)):
        idx = np.flatnonzero(codes == g)
        acc = None
        for i in idx:
            s = np.exp(-model.cumulative_hazard_draws(cells.iloc[[i]], grid[None, :])[:, 0, :])
            acc = s * cells["_n"].iloc[i] if acc is None else acc + s * cells["_n"].iloc[i]
        surv = acc / cells["_n"].iloc[idx].sum()
        below = surv <= 0.5
        reached = below.any(axis=1)
        first = np.argmax(below, axis=1)
        med = np.full(surv.shape[0], np.nan)
        for s_i in np.flatnonzero(reached):
            j = first[s_i]
            if j == 0:
                med[s_i] = 0.0
                continue
            s0, s1 = surv[s_i, j - 1], surv[s_i, j]
            med[s_i] = grid[j - 1] + step * (s0 - 0.5) / (s0 - s1)
        summ = summarise_draws(med, level)
        rows.append(
            {
                **keys.iloc[g].to_dict(),
                "median": summ["mean"],
                "low": summ["interval"][0],
                "high": summ["interval"][1],
                "share_not_reached": float(1 - reached.mean()),
                "extrapolated": bool(summ["mean"] > t_max) if not math.isnan(summ["mean"]) else True,
            }
        )
    frame = pd.DataFrame(rows)
    frame.attrs["level"] = check_level(level)
    return frame
