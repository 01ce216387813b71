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
from cxresearch.measurement.touchpoints import (
    DEFAULT_BOTTOM_BOX,
    DEFAULT_PRIOR_WEIGHT,
    DEFAULT_TOP_BOX,
    box_points,
    rating_draws,
    touchpoint_ratings,
    touchpoint_specs,
)


def _change(diff: np.ndarray, previous: str | None, level: float) -> dict[str, Any]:
    """The change columns of a tracking row from the draws of (this wave - the previous wave)."""
    low, high = interval(diff, level)
    return {
        "change_from": previous,
        "change_mean": float(diff.mean()),
        "change_low": float(low),
        "change_high": float(high),
        "p_increase": prob_greater(diff, 0.0),
    }


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
    min_answers: int = 1,
) -> pd.DataFrame:
    """One row per (group and) wave: NPS with interval, change from the previous wave with interval and
    P(increase), and P(NPS >= target) when a target is given. A wave with fewer than ``min_answers``
    answers keeps its count and has no estimates (NaN, ``enough`` False), and no change is computed to or
    from it."""
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
        # the posterior mean in closed form (the Dirichlet's exact mean, not a Monte-Carlo estimate): the same
        # figure wherever a group's NPS from its own answers is shown
        by_wave = class_counts(frame.assign(wave=frame["wave"].astype(str)), "wave").set_index("wave")
        exact = {
            str(w): 100.0 * (r["promoter"] - r["detractor"]) / (r["n"] + 3.0 * prior) for w, r in by_wave.iterrows()
        }
        previous: str | None = None
        for w in waves:
            if n[w] == 0:
                continue
            enough = n[w] >= max(min_answers, 1)
            if not enough:
                d[w] = np.full_like(d[w], np.nan)
            lo, hi = interval(d[w], level)
            row: dict[str, Any] = dict(zip(by, key))
            row.update(
                {
                    "kpi": "NPS",
                    "wave": w,
                    "n": n[w],
                    "enough": enough,
                    "mean": float(exact[w]) if enough else float("nan"),
                    "low": float(lo),
                    "high": float(hi),
                }
            )
            if previous is not None and enough and not np.isnan(d[previous]).any():
                row.update(_change(d[w] - d[previous], previous, level))
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
                p_meets = target_probability(d[w], target_nps) if enough else float("nan")
                row.update({"target": float(target_nps), "p_meets_target": p_meets})
            rows.append(row)
            previous = w
    return pd.DataFrame(rows)


def touchpoint_tracking(
    survey: pd.DataFrame,
    spec: DatasetSpec,
    targets: Mapping[str, float] | None = None,
    metric: str = "top_box",
    top_box: float = DEFAULT_TOP_BOX,
    bottom_box: float = DEFAULT_BOTTOM_BOX,
    level: float = DEFAULT_LEVEL,
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
    prior: float = DEFAULT_PRIOR_WEIGHT,
    boxes: Mapping[str, Any] | None = None,
    min_answers: int = 1,
) -> pd.DataFrame:
    """Per touchpoint and wave: ``metric`` ('top_box', 'mean' or 'bottom_box') with interval, change from
    the previous wave and, for touchpoints listed in ``targets``, P(metric >= target). Boxes as in
    :func:`~cxresearch.measurement.touchpoints.box_points`. A wave with fewer than ``min_answers`` answers
    of a touchpoint (none included) keeps its row and its count, with no estimates (NaN, ``enough`` False):
    it cannot support a share with an honest interval, and no change is computed to or from it (the next
    wave is never compared with an earlier wave across it)."""
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
    box = box_points(tps, bottom_box=bottom_box, top_box=top_box, boxes=boxes)
    waves = wave_order(survey["wave"].dropna().unique())
    wave = survey["wave"].astype(str)
    rows = []
    for k, tp in tps.items():
        values = touchpoint_ratings(survey, k, tp)
        previous: str | None = None
        prev_draws: np.ndarray | None = None
        for w in waves:
            v = values[wave == w]
            n = int(v.notna().sum())
            enough = n >= max(min_answers, 1)
            row: dict[str, Any] = {
                "touchpoint": k,
                "label": tp.label or k,
                "kpi": metric,
                "wave": w,
                "n": n,
                "enough": enough,
                "mean": np.nan,
                "low": np.nan,
                "high": np.nan,
                "change_from": None,
                "change_mean": np.nan,
                "change_low": np.nan,
                "change_high": np.nan,
                "p_increase": np.nan,
            }
            d: np.ndarray | None = None
            if enough:
                d = rating_draws(
                    v.to_numpy(),
                    tp.scale,
                    draws=draws,
                    seed=rng,
                    prior=prior,
                    top_box_points=box[k][1],
                    bottom_box_points=box[k][0],
                )[metric]
                lo, hi = interval(d, level)
                row.update({"mean": float(d.mean()), "low": float(lo), "high": float(hi)})
                if prev_draws is not None:  # the previous wave, and only when it had enough answers too
                    row.update(_change(d - prev_draws, previous, level))
            if k in targets:
                p_meets = target_probability(d, targets[k]) if d is not None else float("nan")
                row.update({"target": float(targets[k]), "p_meets_target": p_meets})
            rows.append(row)
            previous, prev_draws = w, d
    return pd.DataFrame(rows)
