"""Shared posterior helpers for the measurement study: intervals, probabilities, MCMC runs and diagnostics.

Every interval in the measurement study is an equal-tailed posterior interval (90 % by default: the
5th and 95th percentiles of the posterior draws). Probabilities such as P(ours > theirs) are the share
of posterior draws where the statement holds.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Default posterior interval level used throughout the study (90 %).
DEFAULT_LEVEL = 0.9

#: Diagnostics gate for MCMC fits: every R-hat at most this, ...
RHAT_MAX = 1.01
#: ... every bulk and tail effective sample size at least this, and no divergent transitions.
ESS_MIN = 400


def check_level(level: float) -> float:
    """Validate an interval level in (0, 1) and return it as float."""
    if not isinstance(level, (int, float)) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"interval level must lie strictly between 0 and 1, got {level!r}")
    return float(level)


def interval(draws: np.ndarray, level: float = DEFAULT_LEVEL, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed posterior interval of ``draws`` along ``axis``: (low, high)."""
    level = check_level(level)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail], axis=axis)
    return low, high


def summarise(draws: np.ndarray, level: float = DEFAULT_LEVEL) -> dict[str, float]:
    """Posterior mean and equal-tailed interval of a 1-D array of draws."""
    draws = np.asarray(draws, dtype=float)
    low, high = interval(draws, level)
    return {"mean": float(draws.mean()), "low": float(low), "high": float(high)}


def prob_greater(a: np.ndarray, b: np.ndarray | float = 0.0) -> float:
    """P(a > b) from posterior draws (ties count half)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return float(np.mean(a > b) + 0.5 * np.mean(a == b))


def rng_for(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A NumPy generator from a seed (or pass one through)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def check_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise naming the missing columns and the ones present."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"{what}: missing column(s) {missing}; columns present: {list(frame.columns)}")


def as_by(by: str | Sequence[str] | None) -> tuple[str, ...]:
    """Normalise a grouping argument (None, one column name, or several) to a tuple."""
    if by is None:
        return ()
    if isinstance(by, str):
        return (by,)
    return tuple(by)


def sample_model(model: Any, draws: int, tune: int, chains: int, seed: int | None,
                 target_accept: float = 0.95, cores: int = 1) -> Any:
    """Run NUTS (PyMC's sampler) on ``model`` and return the InferenceData (quietly, seeded)."""
    import pymc as pm

    if draws < 100 or tune < 100 or chains < 1:
        raise ValueError(f"MCMC needs draws >= 100, tune >= 100 and chains >= 1; got draws={draws}, "
                         f"tune={tune}, chains={chains}")
    with model:
        return pm.sample(draws=int(draws), tune=int(tune), chains=int(chains), cores=int(cores),
                         random_seed=seed, target_accept=float(target_accept), progressbar=False,
                         compute_convergence_checks=False)


def mcmc_diagnostics(idata: Any, var_names: Sequence[str] | None = None, method: str = "NUTS (PyMC)",
                     rhat_max: float = RHAT_MAX, ess_min: float = ESS_MIN) -> dict[str, Any]:
    """R-hat (max), bulk / tail ESS (min), divergences and the pass / fail gate of an MCMC fit."""
    import arviz as az

    posterior = idata.posterior
    names = list(var_names) if var_names is not None else list(posterior.data_vars)
    rhat = az.rhat(posterior, var_names=names)
    ess_bulk = az.ess(posterior, var_names=names, method="bulk")
    ess_tail = az.ess(posterior, var_names=names, method="tail")

    def extreme(ds: Any, fn: Any) -> float:
        values = [np.asarray(ds[v]).ravel() for v in ds.data_vars]
        values = [v[np.isfinite(v)] for v in values if v.size]
        flat = np.concatenate(values) if values else np.array([np.nan])
        return float(fn(flat)) if flat.size else float("nan")

    divergences = int(np.asarray(idata.sample_stats["diverging"]).sum())
    out = {
        "method": method,
        "chains": int(posterior.sizes["chain"]),
        "draws": int(posterior.sizes["draw"]),
        "rhat_max": extreme(rhat, np.max),
        "ess_bulk_min": extreme(ess_bulk, np.min),
        "ess_tail_min": extreme(ess_tail, np.min),
        "divergences": divergences,
        "gate": {"rhat_max": rhat_max, "ess_min": ess_min, "divergences": 0},
    }
    out["passed"] = bool(out["rhat_max"] <= rhat_max and out["ess_bulk_min"] >= ess_min
                         and out["ess_tail_min"] >= ess_min and divergences == 0)
    return out


def combine_diagnostics(parts: Mapping[str, Mapping[str, Any] | None]) -> dict[str, Any]:
    """One verdict over several fits (for one banner and ``results.json``): passed only if every fit passed;
    the worst R-hat / ESS / divergences of the MCMC fits and the largest grid-edge mass of the exact ones."""
    fits = {name: dict(d) for name, d in parts.items() if d}
    out: dict[str, Any] = {"passed": all(bool(d.get("passed")) for d in fits.values()),
                           "method": "; ".join(sorted({str(d.get("method")) for d in fits.values()}))
                           or "closed form (no model to check)"}
    mcmc = [d for d in fits.values() if "rhat_max" in d]
    if mcmc:
        out.update({"rhat_max": max(d["rhat_max"] for d in mcmc),
                    "ess_bulk_min": min(d["ess_bulk_min"] for d in mcmc),
                    "ess_tail_min": min(d["ess_tail_min"] for d in mcmc),
                    "divergences": int(sum(d["divergences"] for d in mcmc))})
    exact = [d for d in fits.values() if "edge_mass" in d]
    if exact:
        out["edge_mass_max"] = max(float(d["edge_mass"]) for d in exact)
    out["fits"] = fits
    return out


def wave_order(waves: Iterable[Any]) -> list[str]:
    """Waves in time order: numerically when every wave code is a number, otherwise as text."""
    unique = sorted({str(w) for w in waves if not pd.isna(w)})
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique
