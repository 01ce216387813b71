"""Competitive benchmark: our position against each competitor on NPS and on each attribute.

Each brand's NPS shares get the exact Dirichlet posterior of its 0-10 answers (as in
:mod:`cxresearch.measurement.nps`) and each attribute's mean the exact Dirichlet posterior over the
scale points (as in :mod:`cxresearch.measurement.touchpoints`). Brands are treated as independent
samples; when the same respondents rate several brands their answers are positively correlated, so the
intervals of the differences are, if anything, conservative (wider than a paired analysis).

**Strengths and weaknesses.** A difference is named only where the posterior supports it:
a *strength* where P(ours > theirs) >= ``threshold`` (default 0.9), a *weakness* where
P(ours > theirs) <= 1 - ``threshold``; everything in between is reported as "no clear difference".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.data.nps import NPS_CLASSES
from cxresearch.data.spec import DatasetSpec, Touchpoint
from cxresearch.measurement.nps import class_counts
from cxresearch.measurement.posterior import (
    DEFAULT_LEVEL,
    as_by,
    check_columns,
    interval,
    prob_greater,
    rng_for,
)
from cxresearch.measurement.touchpoints import rating_draws, touchpoint_ratings

#: Default posterior probability needed before a difference is called a strength (or, mirrored, a weakness).
DEFAULT_THRESHOLD = 0.9
NPS_METRIC = "nps"

STRENGTH, WEAKNESS, UNCLEAR = "strength", "weakness", "no clear difference"


def verdict(p_ours_better: float, threshold: float = DEFAULT_THRESHOLD) -> str:
    """'strength' if P(ours > theirs) >= threshold, 'weakness' if <= 1 - threshold, else 'no clear difference'."""
    if not 0.5 < threshold < 1.0:
        raise ValueError(f"benchmark threshold must lie strictly between 0.5 and 1, got {threshold!r}")
    if p_ours_better >= threshold:
        return STRENGTH
    if p_ours_better <= 1.0 - threshold:
        return WEAKNESS
    return UNCLEAR


def _own_flag(benchmark: pd.DataFrame, spec: DatasetSpec | None) -> pd.Series:
    if "is_own" in benchmark.columns:
        return benchmark["is_own"].astype(bool)
    if spec is None or spec.benchmark is None:
        raise KeyError("benchmark: no 'is_own' column and no dataset spec naming the own brand")
    return benchmark["brand"].astype(str) == spec.benchmark.own_brand


def _metric_draws(
    frame: pd.DataFrame, metric: str, spec: DatasetSpec | None, draws: int, rng: np.random.Generator, prior: float
) -> tuple[np.ndarray, int]:
    """Posterior draws of one metric for one brand's rows, and the number of answers."""
    if metric == NPS_METRIC:
        counts = class_counts(frame, None, column="recommend")
        alpha = counts[list(NPS_CLASSES)].to_numpy(dtype=float)[0] + prior
        p = rng.dirichlet(alpha, size=int(draws))
        return 100.0 * (p[:, 2] - p[:, 0]), int(counts["n"].iloc[0])
    if spec is None or spec.benchmark is None or spec.benchmark.scale is None:
        raise KeyError(f"benchmark attribute {metric!r}: the dataset spec declares no benchmark scale")
    fake_tp = Touchpoint(
        column=spec.benchmark.attributes.get(metric, metric),
        scale=spec.benchmark.scale,
        not_applicable=list(spec.benchmark.not_applicable),
    )
    values = touchpoint_ratings(frame, metric, fake_tp)
    d = rating_draws(values.to_numpy(), spec.benchmark.scale, draws=draws, seed=rng, prior=prior)
    return d["mean"], int(values.notna().sum())


def benchmark_metrics(benchmark: pd.DataFrame, spec: DatasetSpec | None) -> list[str]:
    """Metrics available in a canonical benchmark frame: 'nps' (when recommend is present) and attributes."""
    metrics = [NPS_METRIC] if "recommend" in benchmark.columns else []
    attrs = list(spec.benchmark.attributes) if spec is not None and spec.benchmark is not None else []
    metrics += [a for a in attrs if a in benchmark.columns]
    if not metrics:
        raise KeyError(
            f"benchmark: no 'recommend' column and no declared attribute columns "
            f"(columns present: {list(benchmark.columns)})"
        )
    return metrics


def benchmark_position(
    benchmark: pd.DataFrame,
    spec: DatasetSpec | None = None,
    by: str | Sequence[str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    level: float = DEFAULT_LEVEL,
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
    prior: float = 1.0,
) -> pd.DataFrame:
    """Ours versus each competitor on every metric (and group of ``by``, e.g. market).

    Columns: metric, competitor, ours / theirs (mean, low, high, n), the difference ours - theirs
    (mean, low, high), ``p_ours_better`` = P(ours > theirs) and ``verdict``.
    """
    by = as_by(by)
    check_columns(benchmark, ("brand", *by), "benchmark")
    verdict(0.75, threshold)  # validates the threshold early
    metrics = benchmark_metrics(benchmark, spec)
    own = _own_flag(benchmark, spec)
    if not own.any():
        raise ValueError(
            f"benchmark: no rows of the own brand (brands present: {sorted(benchmark['brand'].astype(str).unique())})"
        )
    rng = rng_for(seed)
    groups = (
        [((), benchmark.index)]
        if not by
        else [
            ((key if isinstance(key, tuple) else (key,)), idx)
            for key, idx in benchmark.groupby(list(by), sort=True, observed=True).groups.items()
        ]
    )
    rows = []
    for key, idx in groups:
        frame = benchmark.loc[idx]
        own_rows = frame[own.loc[idx].to_numpy()]
        own_brand = str(own_rows["brand"].iloc[0]) if len(own_rows) else None
        competitors = sorted(set(frame.loc[~own.loc[idx].to_numpy(), "brand"].astype(str)))
        if own_brand is None or not competitors:
            continue
        for metric in metrics:
            ours, n_ours = _metric_draws(own_rows, metric, spec, draws, rng, prior)
            if n_ours == 0:
                continue
            o_lo, o_hi = interval(ours, level)
            for brand in competitors:
                theirs, n_theirs = _metric_draws(
                    frame[frame["brand"].astype(str) == brand], metric, spec, draws, rng, prior
                )
                if n_theirs == 0:
                    continue
                t_lo, t_hi = interval(theirs, level)
                diff = ours - theirs
                d_lo, d_hi = interval(diff, level)
                p = prob_greater(diff, 0.0)
                row: dict[str, Any] = dict(zip(by, key))
                row.update(
                    {
                        "metric": metric,
                        "metric_label": "NPS" if metric == NPS_METRIC else metric.replace("_", " ").capitalize(),
                        "own_brand": own_brand,
                        "competitor": brand,
                        "ours_mean": float(ours.mean()),
                        "ours_low": float(o_lo),
                        "ours_high": float(o_hi),
                        "n_ours": n_ours,
                        "theirs_mean": float(theirs.mean()),
                        "theirs_low": float(t_lo),
                        "theirs_high": float(t_hi),
                        "n_theirs": n_theirs,
                        "diff_mean": float(diff.mean()),
                        "diff_low": float(d_lo),
                        "diff_high": float(d_hi),
                        "p_ours_better": p,
                        "verdict": verdict(p, threshold),
                    }
                )
                rows.append(row)
    return pd.DataFrame(rows)


def brand_summary(
    benchmark: pd.DataFrame,
    spec: DatasetSpec | None = None,
    level: float = DEFAULT_LEVEL,
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
    prior: float = 1.0,
) -> pd.DataFrame:
    """Every brand's posterior mean and interval on every metric (NPS in points, attributes on their scale)."""
    check_columns(benchmark, ("brand",), "benchmark")
    metrics = benchmark_metrics(benchmark, spec)
    own = _own_flag(benchmark, spec)
    rng = rng_for(seed)
    rows = []
    for brand in sorted(benchmark["brand"].astype(str).unique()):
        mask = (benchmark["brand"].astype(str) == brand).to_numpy()
        for metric in metrics:
            d, n = _metric_draws(benchmark[mask], metric, spec, draws, rng, prior)
            if n == 0:
                continue
            lo, hi = interval(d, level)
            rows.append(
                {
                    "brand": brand,
                    "is_own": bool(own[mask].any()),
                    "metric": metric,
                    "metric_label": "NPS" if metric == NPS_METRIC else metric.replace("_", " ").capitalize(),
                    "mean": float(d.mean()),
                    "low": float(lo),
                    "high": float(hi),
                    "n": n,
                }
            )
    return pd.DataFrame(rows)


def strengths_and_weaknesses(position: pd.DataFrame, level: float = DEFAULT_LEVEL) -> dict[str, list[str]]:
    """Plain sentences for the differences the posterior supports, split into strengths and weaknesses."""
    out: dict[str, list[str]] = {STRENGTH: [], WEAKNESS: []}
    if position.empty:
        return out
    for row in position.itertuples(index=False):
        if row.verdict not in out:
            continue
        nps = row.metric == NPS_METRIC
        unit, digits = (" NPS points", 1) if nps else (" rating points", 2)
        where = ""
        for col in ("market", "wave"):
            if col in position.columns:
                where += f" in {col} {getattr(row, col)}"
        sign = "ahead of" if row.verdict == STRENGTH else "behind"
        out[row.verdict].append(
            f"{row.metric_label}: {abs(row.diff_mean):.{digits}f}{unit} {sign} {row.competitor}{where} "
            f"({level:.0%} interval {row.diff_low:+.{digits}f} to {row.diff_high:+.{digits}f}; "
            f"probability that we are ahead: {100 * row.p_ours_better:.0f}%)"
        )
    return out
