"""Transactional measurement: a scorecard per touchpoint and the journey map.

For each touchpoint the answers of the customers who used it are modelled as one multinomial over the
points of the rating scale. The prior is a Dirichlet whose *total* concentration is ``prior`` (default 1),
spread evenly over the K points (``prior / K`` each): it weighs as much as one answer whatever the scale,
so a 1-100 scale is not pulled toward its midpoint by 100 pseudo-answers (the posterior mean is
``(sum of answers + prior x midpoint) / (n + prior)``: within 0.2 points of the sample mean at n = 187 on
1-100). The exact posterior Dirichlet(prior / K + counts) gives, from the same draws:

- the mean rating (sum of point x share),
- the top-box share (the highest points of the scale), and
- the bottom-box share (the lowest points).

Boxes (:func:`box_points`) are shares of each scale's points like the driver models' (``bottom_box: 0.4``,
``top_box: 0.2``: 1-2 and 5 on 1-5, 0-3 and 9-10 on 0-10, 1-40 and 81-100 on 1-100), whole numbers of
points when every touchpoint has the same scale, or points per touchpoint (``boxes``).

Not applicable / did not use is missing: the canonical survey frame holds NaN there, and any declared
not-applicable code that still appears is turned into NaN before anything is counted. A value outside
the scale raises an error naming the column, so a stray code can never be counted as a low score.
A touchpoint nobody answered has no estimate (NaN), and one with fewer than ``min_answers`` answers gets
its counts only. Scales with more than 101 points or non-integer answers use a t posterior for the mean
and Beta posteriors with the same one-answer prior for the box shares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.data.spec import DatasetSpec, Scale, Touchpoint
from cxresearch.measurement.posterior import (
    DEFAULT_LEVEL,
    as_by,
    check_columns,
    interval,
    prob_greater,
    rng_for,
    wave_order,
)
from cxresearch.reports.small_n import enough_answers

#: Largest integer scale modelled exactly as a multinomial over its points.
MAX_EXACT_POINTS = 101
#: default boxes as shares of each scale's points (the driver models' defaults): 1-2 and 5 on 1-5
DEFAULT_BOTTOM_BOX, DEFAULT_TOP_BOX = 0.4, 0.2
#: the prior's weight, in answers (total Dirichlet concentration, spread over the scale points)
DEFAULT_PRIOR_WEIGHT = 1.0
NO_STAGE = "(no stage)"
NO_CHANNEL = "(no channel)"


def touchpoint_specs(spec: DatasetSpec | Mapping[str, Touchpoint]) -> dict[str, Touchpoint]:
    """The touchpoints of a dataset spec (or pass a mapping through), in spec order."""
    if isinstance(spec, DatasetSpec):
        return dict(spec.require_survey("the measurement study").touchpoints)
    return dict(spec)


def journey_stages(spec: DatasetSpec | Mapping[str, Touchpoint]) -> list[str]:
    """Journey stages in the order they first appear among the spec's touchpoints."""
    stages: list[str] = []
    for tp in touchpoint_specs(spec).values():
        stage = tp.stage or NO_STAGE
        if stage not in stages:
            stages.append(stage)
    return stages


def _numeric_na_codes(tp: Touchpoint) -> list[float]:
    out = []
    for code in tp.not_applicable:
        if isinstance(code, (int, float)) and not isinstance(code, bool):
            out.append(float(code))
    return out


def touchpoint_ratings(survey: pd.DataFrame, key: str, tp: Touchpoint) -> pd.Series:
    """Ratings of one touchpoint as float with NaN for not applicable; raises on values off the scale."""
    check_columns(survey, (key,), f"survey (touchpoint {key!r})")
    column = survey[key]
    if pd.api.types.is_numeric_dtype(column.dtype):
        values = column.astype("float64")
    else:  # text left in the frame: only declared string codes ("NA", "n/a") may fail to parse
        values = pd.to_numeric(column, errors="coerce").astype("float64")
        raw_text = column.astype("string").str.strip()
        unparsable = column.notna() & values.isna() & (raw_text != "")
        for code in tp.not_applicable:
            if isinstance(code, str):
                unparsable &= raw_text.str.casefold() != code.strip().casefold()
        if unparsable.any():
            bad = sorted(set(raw_text[unparsable].tolist()))[:5]
            raise ValueError(
                f"survey column {key!r} (touchpoint {key!r}, export column {tp.column!r}): non-numeric values {bad}"
            )
    na_codes = _numeric_na_codes(tp)
    if na_codes:
        values = values.mask(values.isin(na_codes))
    off = values.notna() & ((values < tp.scale.min) | (values > tp.scale.max))
    if off.any():
        bad = sorted(set(values[off].tolist()))[:5]
        raise ValueError(
            f"survey column {key!r} (touchpoint {key!r}, export column {tp.column!r}): values {bad} "
            f"lie outside the scale {tp.scale}; declare them under not_applicable if they mean "
            "'not applicable', they will not be counted as scores"
        )
    return values


def _is_exact(values: np.ndarray, scale: Scale) -> bool:
    integer_scale = float(scale.min).is_integer() and float(scale.max).is_integer()
    return bool(integer_scale and scale.points <= MAX_EXACT_POINTS and np.all(np.mod(values, 1.0) == 0.0))


def rating_draws(
    values: np.ndarray | pd.Series,
    scale: Scale,
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
    prior: float = DEFAULT_PRIOR_WEIGHT,
    top_box_points: int = 1,
    bottom_box_points: int = 2,
) -> dict[str, np.ndarray]:
    """Posterior draws of the mean rating, the top-box and the bottom-box shares of one set of answers.

    ``prior`` is the prior's total weight in answers, spread evenly over the scale's points, so the prior
    means the same on 1-5, 0-10 and 1-100. NaN answers are ignored; with no answer at all every draw is NaN
    (nothing to estimate). Returns ``{"mean", "top_box", "bottom_box"}`` arrays of length ``draws``.
    """
    if top_box_points < 1 or bottom_box_points < 1:
        raise ValueError(
            f"top_box_points and bottom_box_points must be at least 1, got {top_box_points}, {bottom_box_points}"
        )
    if not prior > 0:
        raise ValueError(f"prior (the prior's weight in answers) must be positive, got {prior!r}")
    rng = rng_for(seed)
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    draws = int(draws)
    if x.size == 0:
        return {name: np.full(draws, np.nan) for name in ("mean", "top_box", "bottom_box")}
    top_cut = scale.max - (top_box_points - 1)
    bottom_cut = scale.min + (bottom_box_points - 1)
    if _is_exact(x, scale):
        points = np.arange(scale.min, scale.max + 1.0)
        counts = np.bincount((x - scale.min).astype(np.int64), minlength=len(points)).astype(float)
        # the exact posterior Dirichlet(prior / K + counts); the prior's points weigh 1 / K answer each (a gamma
        # of such a tiny shape may underflow to 0 in a draw: its expected mass is prior / (K (n + prior)))
        p = rng.dirichlet(counts + prior / len(points), size=draws)
        return {
            "mean": p @ points,
            "top_box": p[:, points >= top_cut].sum(axis=1),
            "bottom_box": p[:, points <= bottom_cut].sum(axis=1),
        }
    n = x.size
    top = float((x >= top_cut).sum())
    bottom = float((x <= bottom_cut).sum())
    k = max(scale.points, 2)
    if n >= 2:
        # flat prior on (mean, log sd): mean | data ~ t_{n-1}(xbar, s / sqrt(n))
        mean = x.mean() + x.std(ddof=1) / np.sqrt(n) * rng.standard_t(n - 1, size=draws)
    else:
        mean = np.full(draws, np.nan)
    top_share, bottom_share = min(top_box_points / k, 1.0), min(bottom_box_points / k, 1.0)
    return {
        "mean": mean,
        "top_box": rng.beta(prior * top_share + top, prior * (1 - top_share) + n - top, size=draws),
        "bottom_box": rng.beta(prior * bottom_share + bottom, prior * (1 - bottom_share) + n - bottom, size=draws),
    }


def box_points(
    spec: DatasetSpec | Mapping[str, Touchpoint],
    bottom_box: float = DEFAULT_BOTTOM_BOX,
    top_box: float = DEFAULT_TOP_BOX,
    boxes: Mapping[str, Any] | None = None,
    touchpoints: Sequence[str] | None = None,
) -> dict[str, tuple[int, int]]:
    """(bottom, top) box of each touchpoint in answer points, defined as in the driver models.

    ``boxes`` names them per touchpoint (``{"mobile_app": {"bottom": 40, "top": 20}}`` or a pair
    ``(bottom, top)``); otherwise ``bottom_box`` / ``top_box`` below 1 are shares of each scale's points
    (rounded, at least one point), and whole numbers are points, accepted only when every touchpoint has
    the same scale (2 points are 40% of 1-5 but 2% of 1-100). The two boxes never meet.
    """
    tps = touchpoint_specs(spec)
    keys = list(touchpoints) if touchpoints is not None else list(tps)
    boxes = dict(boxes or {})
    unknown = sorted(set(boxes) - set(tps))
    if unknown:
        raise ValueError(f"boxes: {unknown} are not touchpoints of the dataset spec (touchpoints: {list(tps)})")
    for name, value in (("bottom_box", bottom_box), ("top_box", top_box)):
        if not value > 0 or (value >= 1 and float(value) != int(value)):
            raise ValueError(f"{name}: a share of the scale below 1 (0.4) or a whole number of points (2), got {value}")
    free = [k for k in keys if k not in boxes]
    scales_seen = sorted({str(tps[k].scale) for k in free})
    for name, value in (("bottom_box", bottom_box), ("top_box", top_box)):
        if value >= 1 and len(scales_seen) > 1:
            raise ValueError(
                f"{name}: {value:g} points mean different things on the scales {scales_seen}; give a share of the "
                f"scale (e.g. {name}: {DEFAULT_BOTTOM_BOX if name == 'bottom_box' else DEFAULT_TOP_BOX}) or set "
                "'boxes' per touchpoint"
            )
    out: dict[str, tuple[int, int]] = {}
    for k in keys:
        points = tps[k].scale.points
        if k in boxes:
            given = boxes[k]
            if isinstance(given, Mapping):
                missing = [f for f in ("bottom", "top") if f not in given]
                if missing:
                    raise ValueError(f"boxes.{k}: needs 'bottom' and 'top' (points), missing {missing}")
                bottom, top = given["bottom"], given["top"]
            else:
                bottom, top = given
            if any(isinstance(v, bool) or float(v) != int(v) or int(v) < 1 for v in (bottom, top)):
                raise ValueError(f"boxes.{k}: bottom and top are whole numbers of points (at least 1), got {given!r}")
            bottom, top = int(bottom), int(top)
        else:
            bottom, top = (int(v) if v >= 1 else max(1, int(np.floor(v * points + 0.5))) for v in (bottom_box, top_box))
        if bottom + top > points:
            raise ValueError(
                f"the bottom box ({bottom} points) and top box ({top}) of touchpoint {k!r} overlap on its "
                f"{points}-point scale {tps[k].scale}"
            )
        out[k] = (bottom, top)
    return out


def box_labels(scale: Scale, top_box_points: int = 1, bottom_box_points: int = 2) -> dict[str, str]:
    """Readable definitions of the boxes, e.g. {'top_box': '5', 'bottom_box': '1-2'}."""

    def span(a: float, b: float) -> str:
        return f"{a:g}" if a == b else f"{a:g}-{b:g}"

    return {
        "top_box": span(scale.max - (top_box_points - 1), scale.max),
        "bottom_box": span(scale.min, scale.min + (bottom_box_points - 1)),
    }


def touchpoint_scorecard(
    survey: pd.DataFrame,
    spec: DatasetSpec | Mapping[str, Touchpoint],
    by: str | Sequence[str] | None = None,
    top_box: float = DEFAULT_TOP_BOX,
    bottom_box: float = DEFAULT_BOTTOM_BOX,
    level: float = DEFAULT_LEVEL,
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
    prior: float = DEFAULT_PRIOR_WEIGHT,
    touchpoints: Sequence[str] | None = None,
    boxes: Mapping[str, Any] | None = None,
    min_answers: int = 1,
) -> pd.DataFrame:
    """One row per touchpoint (and group): users, mean, top-box and bottom-box shares with intervals.

    ``n_answers`` counts answers that are not 'not applicable'; ``n_customers`` counts distinct
    customers among them (a customer answering in two waves counts once); ``usage`` is the share of
    answers (rows) in which the touchpoint was used. Boxes: see :func:`box_points` (``top_box_points`` /
    ``bottom_box_points`` columns say how many points each box holds). A row with fewer than
    ``min_answers`` answers (``enough`` False) keeps its counts and has no estimates (NaN): a handful of
    answers cannot support a mean or a share with an honest interval.
    """
    by = as_by(by)
    check_columns(survey, by, "survey (scorecard)")
    tps = touchpoint_specs(spec)
    keys = list(touchpoints) if touchpoints is not None else list(tps)
    unknown = [k for k in keys if k not in tps]
    if unknown:
        raise KeyError(f"touchpoints {unknown} are not declared in the dataset spec (declared: {list(tps)})")
    box = box_points(tps, bottom_box=bottom_box, top_box=top_box, boxes=boxes, touchpoints=keys)
    rng = rng_for(seed)
    ratings = {k: touchpoint_ratings(survey, k, tps[k]) for k in keys}
    groups = (
        [((), survey.index)]
        if not by
        else [
            ((key if isinstance(key, tuple) else (key,)), idx)
            for key, idx in survey.groupby(list(by), sort=True, observed=True).groups.items()
        ]
    )
    ids = survey["customer_id"] if "customer_id" in survey.columns else None
    rows = []
    for key, idx in groups:
        for k in keys:
            tp = tps[k]
            bottom_points, top_points = box[k]
            values = ratings[k].loc[idx]
            used = values.notna()
            x = values[used].to_numpy()
            enough = enough_answers(x.size, min_answers)
            d = rating_draws(
                x if enough else x[:0],
                tp.scale,
                draws=draws,
                seed=rng,
                prior=prior,
                top_box_points=top_points,
                bottom_box_points=bottom_points,
            )
            row: dict[str, Any] = dict(zip(by, key))
            top_cut, bottom_cut = tp.scale.max - (top_points - 1), tp.scale.min + (bottom_points - 1)
            row.update(
                {
                    "touchpoint": k,
                    "label": tp.label or k,
                    "channel": tp.channel or NO_CHANNEL,
                    "stage": tp.stage or NO_STAGE,
                    "scale": str(tp.scale),
                    "scale_min": float(tp.scale.min),
                    "scale_max": float(tp.scale.max),
                    "n_answers": int(used.sum()),
                    "n_customers": int(ids.loc[idx][used].nunique()) if ids is not None else int(used.sum()),
                    "usage": float(used.mean()) if len(values) else float("nan"),
                    "enough": enough,
                    "observed_mean": float(x.mean()) if x.size else float("nan"),
                    "observed_top_box": float(np.mean(x >= top_cut)) if x.size else float("nan"),
                    "observed_bottom_box": float(np.mean(x <= bottom_cut)) if x.size else float("nan"),
                }
            )
            for metric in ("mean", "top_box", "bottom_box"):
                lo, hi = interval(d[metric], level)
                row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = (
                    float(np.mean(d[metric])),
                    float(lo),
                    float(hi),
                )
            row.update(
                {f"{name}_definition": text for name, text in box_labels(tp.scale, top_points, bottom_points).items()}
            )
            row["top_box_points"], row["bottom_box_points"] = top_points, bottom_points
            rows.append(row)
    return pd.DataFrame(rows)


def journey_map(
    scorecard: pd.DataFrame,
    spec: DatasetSpec | Mapping[str, Touchpoint],
    by: str | None = "segment",
    metric: str = "top_box",
) -> pd.DataFrame:
    """Heatmap data: rows = touchpoints in journey-stage order ('Stage: touchpoint'), columns = groups of
    ``by`` (one column 'All' when ``by`` is None), values = ``metric`` of the scorecard."""
    check_columns(scorecard, ("touchpoint", "label", "stage", metric), "scorecard (journey map)")
    stages = journey_stages(spec)
    order = {k: i for i, k in enumerate(touchpoint_specs(spec))}
    frame = scorecard.copy()
    frame["row"] = frame["stage"].str.capitalize() + ": " + frame["label"]
    frame["stage_rank"] = frame["stage"].map({s: i for i, s in enumerate(stages)}).fillna(len(stages))
    frame["tp_rank"] = frame["touchpoint"].map(order).fillna(len(order))
    rows = frame.sort_values(["stage_rank", "tp_rank"])["row"].drop_duplicates().tolist()
    if by is None:
        frame["group"] = "All"
        col = "group"
    else:
        check_columns(frame, (by,), "scorecard (journey map)")
        col = by
    # dropna=False: a group whose every cell lacks an estimate (too few answers) keeps its (blank) column
    table = frame.pivot_table(index="row", columns=col, values=metric, aggfunc="first", observed=True, dropna=False)
    table = table.reindex(rows)
    table.columns.name = by or ""
    table.index.name = "Journey stage: touchpoint"
    return table


def touchpoint_wave_change(
    survey: pd.DataFrame,
    spec: DatasetSpec | Mapping[str, Touchpoint],
    from_wave: str | None = None,
    to_wave: str | None = None,
    top_box: float = DEFAULT_TOP_BOX,
    bottom_box: float = DEFAULT_BOTTOM_BOX,
    level: float = DEFAULT_LEVEL,
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
    prior: float = DEFAULT_PRIOR_WEIGHT,
    boxes: Mapping[str, Any] | None = None,
    min_answers: int = 1,
) -> pd.DataFrame:
    """Per touchpoint: change of the mean rating and the top-box share between two waves (default the
    last two), with intervals and P(increase). Waves are independent samples (exact posteriors each).
    Boxes as in :func:`box_points`; a touchpoint with fewer than ``min_answers`` answers in either wave
    keeps its counts and gets no change (NaN, ``enough`` False)."""
    check_columns(survey, ("wave",), "survey (touchpoint wave change)")
    waves = wave_order(survey["wave"].dropna().unique())
    if len(waves) < 2:
        raise ValueError(f"survey: a wave change needs at least two waves, found {waves}")
    to_wave = str(to_wave) if to_wave is not None else waves[-1]
    from_wave = str(from_wave) if from_wave is not None else waves[waves.index(to_wave) - 1]
    for w in (from_wave, to_wave):
        if w not in waves:
            raise ValueError(f"survey: wave {w!r} not found; waves present: {waves}")
    rng = rng_for(seed)
    tps = touchpoint_specs(spec)
    box = box_points(tps, bottom_box=bottom_box, top_box=top_box, boxes=boxes)
    wave = survey["wave"].astype(str)
    rows = []
    for k, tp in tps.items():
        values = touchpoint_ratings(survey, k, tp)
        answers = {w: values[wave == w].dropna().to_numpy() for w in (from_wave, to_wave)}
        enough = all(enough_answers(a.size, min_answers) for a in answers.values())
        d = {
            w: rating_draws(
                a if enough else a[:0],
                tp.scale,
                draws=draws,
                seed=rng,
                prior=prior,
                top_box_points=box[k][1],
                bottom_box_points=box[k][0],
            )
            for w, a in answers.items()
        }
        row: dict[str, Any] = {
            "touchpoint": k,
            "label": tp.label or k,
            "from_wave": from_wave,
            "to_wave": to_wave,
            "n_from": int(values[wave == from_wave].notna().sum()),
            "n_to": int(values[wave == to_wave].notna().sum()),
            "enough": enough,
        }
        for metric in ("mean", "top_box"):
            diff = d[to_wave][metric] - d[from_wave][metric]
            lo, hi = interval(diff, level)
            row.update(
                {
                    f"{metric}_from": float(d[from_wave][metric].mean()),
                    f"{metric}_to": float(d[to_wave][metric].mean()),
                    f"{metric}_change": float(diff.mean()),
                    f"{metric}_change_low": float(lo),
                    f"{metric}_change_high": float(hi),
                    f"{metric}_p_increase": prob_greater(diff, 0.0) if enough else float("nan"),
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)
