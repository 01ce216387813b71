"""KPI tracking across survey waves: NPS (and touchpoint top-box shares) wave over wave, with
uncertainty, and the probability of meeting the targets set in the params file.

Each wave is an independent sample and gets its exact posterior (Dirichlet over the NPS classes or over
the rating-scale points). P(meeting the target) is the share of posterior draws at or above the target:
it answers "how sure are we that the true score (not just this sample) reached the target?".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.data.nps import NPS_CLASSES
from cxresearch.data.spec import DatasetSpec
from cxresearch.measurement.nps import class_counts
from cxresearch.measurement.posterior import (
    DEFAULT_LEVEL,
    as_by,
    check_columns,
    interval,
    prob_greater,
    rng_for,
    wave_order,
)
from cxresearch.measurement.touchpoints import rating_draws, touchpoint_ratings, touchpoint_specs


def target_probability(draws: np.ndarray, target: float) -> float:
    """P(true value >= target) from posterior draws."""
    if target is None or not np.isfinite(float(target)):
        raise ValueError(f"a KPI target must be a finite number, got {target!r}")
    return float(np.mean(np.asarray(draws, dtype=float) >= float(target)))


def nps_wave_draws(
    survey: pd.DataFrame, draws: int = 4000, seed: int | np.random.Generator | None = None, prior: float = 1.0
) -> tuple[list[str], dict[str, np.ndarray], dict[str, int]]:
    """NPS posterior draws per wave (exact Dirichlet): (waves in order, draws by wave, answers by wave)."""
    check_columns(survey, ("wave", "recommend"), "survey (KPI tracking)")
    rng = rng_for(seed)
    waves = wave_order(survey["wave"].dropna().unique())
    wave = survey["wave"].astype(str)
    out, n = {}, {}
    for w in waves:
        counts = class_counts(survey[wave == w], None)
        alpha = counts[list(NPS_CLASSES)].to_numpy(dtype=float)[0] + prior
        p = rng.dirichlet(alpha, size=int(draws))
        out[w] = 100.0 * (p[:, 2] - p[:, 0])
        n[w] = int(counts["n"].iloc[0])
    return waves, out, n


def nps_tracking(
    survey: pd.DataFrame,
    target_nps: float | None = None,
    by: str | Sequence[str] | None = None,
    level: float = DEFAULT_LEVEL,
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
    prior: float = 1.0,
) -> pd.DataFrame:
    """One row per (group and) wave: NPS with interval, change from the previous wave with interval and
    P(increase), and P(NPS >= target) when a target is given."""
    by = as_by(by)
    check_columns(survey, by, "survey (KPI tracking)")
    rng = rng_for(seed)
    groups = (
        [((), survey)]
        if not by
        else [
            ((key if isinstance(key, tuple) else (key,)), frame)
            for key, frame in survey.groupby(list(by), sort=True, observed=True)
        ]
    )
    rows = []
    for key, frame in groups:
        waves, d, n = nps_wave_draws(frame, draws=draws, seed=rng, prior=prior)
        previous: str | None = None
        for w in waves:
            if n[w] == 0:
                continue
            lo, hi = interval(d[w], level)
            row: dict[str, Any] = dict(zip(by, key))
            row.update(
                {"kpi": "NPS", "wave": w, "n": n[w], "mean": float(d[w].mean()), "low": float(lo), "high": float(hi)}
            )
            if previous is not None:
                diff = d[w] - d[previous]
                c_lo, c_hi = interval(diff, level)
                row.update(
                    {
                        "change_from": previous,
                        "change_mean": float(diff.mean()),
                        "change_low": float(c_lo),
                        "change_high": float(c_hi),
                        "p_increase": prob_greater(diff, 0.0),
                    }
                )
            else:
                row.update(
                    {
                        "change_from": None,
                        "change_mean": np.nan,
                        "change_low": np.nan,
                        "change_high": np.nan,
                        "p_increase": np.nan,
                    }
                )
            if target_nps is not None:
                row.update({"target": float(target_nps), "p_meets_target": target_probability(d[w], target_nps)})
            rows.append(row)
            previous = w
    return pd.DataFrame(rows)


def touchpoint_tracking(
    survey: pd.DataFrame,
    spec: DatasetSpec,
    targets: Mapping[str, float] | None = None,
    metric: str = "top_box",
    top_box_points: int = 1,
    bottom_box_points: int = 2,
    level: float = DEFAULT_LEVEL,
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
    prior: float = 1.0,
) -> pd.DataFrame:
    """Per touchpoint and wave: ``metric`` ('top_box', 'mean' or 'bottom_box') with interval, change from
    the previous wave and, for touchpoints listed in ``targets``, P(metric >= target)."""
    if metric not in ("top_box", "mean", "bottom_box"):
        raise ValueError(f"touchpoint KPI metric must be 'top_box', 'mean' or 'bottom_box', got {metric!r}")
    check_columns(survey, ("wave",), "survey (touchpoint KPI tracking)")
    tps = touchpoint_specs(spec)
    targets = dict(targets or {})
    unknown = [k for k in targets if k not in tps]
    if unknown:
        raise KeyError(
            f"touchpoint_targets names {unknown}, not touchpoints of the dataset spec (declared: {list(tps)})"
        )
    rng = rng_for(seed)
    waves = wave_order(survey["wave"].dropna().unique())
    wave = survey["wave"].astype(str)
    rows = []
    for k, tp in tps.items():
        values = touchpoint_ratings(survey, k, tp)
        previous = None
        prev_draws = None
        for w in waves:
            v = values[wave == w]
            n = int(v.notna().sum())
            if n == 0:
                continue
            d = rating_draws(
                v.to_numpy(),
                tp.scale,
                draws=draws,
                seed=rng,
                prior=prior,
                top_box_points=top_box_points,
                bottom_box_points=bottom_box_points,
            )[metric]
            lo, hi = interval(d, level)
            row: dict[str, Any] = {
                "touchpoint": k,
                "label": tp.label or k,
                "kpi": metric,
                "wave": w,
                "n": n,
                "mean": float(d.mean()),
                "low": float(lo),
                "high": float(hi),
            }
            if prev_draws is not None:
                diff = d - prev_draws
                c_lo, c_hi = interval(diff, level)
                row.update(
                    {
                        "change_from": previous,
                        "change_mean": float(diff.mean()),
                        "change_low": float(c_lo),
                        "change_high": float(c_hi),
                        "p_increase": prob_greater(diff, 0.0),
                    }
                )
            if k in targets:
                row.update({"target": float(targets[k]), "p_meets_target": target_probability(d, targets[k])})
            rows.append(row)
            previous, prev_draws = w, d
    return pd.DataFrame(rows)
