"""Shared posterior helpers for the measurement study: intervals, probabilities and MCMC runs.

Every interval in the measurement study is an equal-tailed posterior interval at ``level``
(:data:`cxresearch.protocol.DEFAULT_LEVEL`, 90 %, by default: the 5th and 95th percentiles of the
posterior draws). Probabilities such as P(ours > theirs) are the share of posterior draws where the
statement holds. MCMC fits are judged by the one gate, :func:`cxresearch.diagnostics.check_mcmc`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

# the one interval convention of the package (re-exported here for the measurement modules)
from cxresearch.protocol import DEFAULT_LEVEL, check_level, interval

__all__ = [
    "DEFAULT_LEVEL",
    "as_by",
    "check_columns",
    "check_level",
    "interval",
    "prob_greater",
    "rng_for",
    "sample_model",
    "summarise",
    "wave_order",
]


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


def sample_model(
    model: Any, draws: int, tune: int, chains: int, seed: int | None, target_accept: float = 0.95, cores: int = 1
) -> Any:
    """Run NUTS (PyMC's sampler) on ``model`` and return the InferenceData (quietly, seeded)."""
    import pymc as pm

    if draws < 100 or tune < 100 or chains < 1:
        raise ValueError(
            f"MCMC needs draws >= 100, tune >= 100 and chains >= 1; got draws={draws}, tune={tune}, chains={chains}"
        )
    with model:
        return pm.sample(
            draws=int(draws),
            tune=int(tune),
            chains=int(chains),
            cores=int(cores),
            random_seed=seed,
            target_accept=float(target_accept),
            progressbar=False,
            compute_convergence_checks=False,
        )


def wave_order(waves: Iterable[Any]) -> list[str]:
    """Waves in time order: numerically when every wave code is a number, otherwise as text."""
    unique = sorted({str(w) for w in waves if not pd.isna(w)})
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique
