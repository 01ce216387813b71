"""From a declared path model and survey rows to a PyMC model.

:func:`prepare_data` turns the survey frame into the arrays the model needs (touchpoint states, group
cells, composite scores, outcome codes), and :func:`build_model` writes the PyMC model:

- **touchpoints** (exogenous): each contributes, to every construct it has a path into,
  ``used + (slope + group deviation) x (rating - scale midpoint) / half range + penalty x [bottom box] +
  reward x [top box]`` where used, 0 where not used. Stored as a lookup table per segment x market cell
  (see :mod:`.kernels`), so the likelihood costs O(rows).
- **composite constructs**: the weighted mean of the items' z-scores, standardised (an observed score).
- **latent constructs**: a score per respondent, ``eta = structural part + residual`` with the residual
  variance fixed to 1 (or the first loading fixed to 1), measured by its items (Gaussian on z-scores,
  or ordered logistic).
- **endogenous observed constructs**: ordered logistic (cutpoints), Bernoulli (logit) or Gaussian.
- **groups** (segment, market, ...): touchpoint slopes vary by level, ``sd_dim x z``. A grouping with few
  levels (``fixed_scale_levels``, default 5) has a fixed sd (``slope_offset_sd``, else ``group_offset_sd``:
  regularised offsets, no variance to learn from 2-5 levels, no funnel); one with more levels learns its sd
  (one per grouping and equation, non-centred). With ``asymmetric``, the bottom-box penalty and top-box
  reward vary too (``varying``) by the groupings with few levels (fixed-scale offsets, ``group_offset_sd``),
  so each segment and market has its own, partially pooled, Kano classes; by a grouping with dozens of
  levels they are shared. Intercepts vary too (``group_intercept_sd x z``); an ``intercept_only`` grouping
  (e.g. wave) shifts the intercepts alone, and so does a grouping of many levels whose median level has fewer
  than ``group_slopes_min_answers`` answers (``PreparedData.shared_slopes``). Deviations are centred on
  their (user-)weighted mean so the common coefficient is the population average; ``<eq>__<term>_dev``
  keeps the level deviations (group_level x touchpoint) of each varying term whatever the parametrisation.

Design columns are centred (their mean contribution is subtracted), which leaves every coefficient and
every effect unchanged but decorrelates them from the cutpoints / intercepts: far fewer leapfrog steps.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from cxresearch.drivers.spec import (
    ConstructSpec,
    DriverModelSpec,
    ModelSpecError,
    ResolvedModel,
    ScaleSpec,
    resolve_model_spec,
)

TERMS = ("used", "slope", "penalty", "reward")


@dataclass
class PreparedData:
    """Arrays for one fit. ``states[:, t]`` is 0 for not used and 1..points for the rating."""

    resolved: ResolvedModel
    n: int
    index: pd.Index  # labels of the input frame's rows that were kept
    frame: pd.DataFrame  # the kept rows (group columns, wave, touchpoints, items)
    group_dims: list[str]
    levels: dict[str, list[str]]
    level_idx: dict[str, np.ndarray]
    cell: np.ndarray  # (N,) int32, mixed radix of the level indices
    cell_levels: np.ndarray  # (C, D) level index of each cell per dimension
    touchpoints: list[str]
    scales: dict[str, ScaleSpec]
    states: np.ndarray  # (N, T + 1) int32; the last column is the intercept slot (always 0)
    n_states: int  # S: 1 + the largest number of scale points
    features: dict[str, np.ndarray]  # term -> (T, S) value of the term's column at each state
    freq: np.ndarray  # (C, T + 1, S) counts of rows by cell, touchpoint, state
    scores: dict[str, np.ndarray]  # observed construct scores (standardised), (N,)
    score_moments: dict[str, tuple[float, float]]  # raw mean and sd before standardising
    outcomes: dict[str, np.ndarray]  # endogenous observed: int32 codes or float64 standardised values
    n_categories: dict[str, int]
    category_values: dict[str, np.ndarray]  # answer value of each category code
    items: dict[str, dict[str, np.ndarray]]  # latent constructs: item -> values (NaN = missing)
    item_categories: dict[str, dict[str, int]]  # latent ordinal items: number of categories
    weights: dict[str, np.ndarray]  # composite item weights used
    dropped_rows: dict[str, int] = field(default_factory=dict)
    dropped_touchpoints: dict[str, str] = field(default_factory=dict)
    boxes: dict[str, tuple[int, int]] = field(default_factory=dict)  # (bottom, top) box points per touchpoint
    # groupings whose levels have too few answers to vary the touchpoint slopes (DriverModelSpec.
    # group_slopes_min_answers): grouping -> median answers per level; they shift the intercepts alone
    shared_slopes: dict[str, float] = field(default_factory=dict)

    @property
    def n_cells(self) -> int:
        return int(self.cell_levels.shape[0])

    @property
    def intercept_only(self) -> list[str]:
        """Groupings that shift the intercepts alone: the spec's ``intercept_only`` and :attr:`shared_slopes`."""
        declared = [g for g in self.resolved.spec.intercept_only if g in self.group_dims]
        return declared + [g for g in self.shared_slopes if g not in declared]

    @property
    def slope_groupings(self) -> list[str]:
        """Groupings whose levels have their own touchpoint slopes (deviations from the average)."""
        if "slope" not in self.resolved.spec.varying:
            return []
        return [g for g in self.group_dims if g not in self.intercept_only]

    @property
    def outcome(self) -> str:
        return self.resolved.outcome

    def likelihood(self, construct: str) -> str:
        """'latent', 'ordered_logistic', 'bernoulli' or 'gaussian' for an endogenous construct."""
        c = self.resolved.constructs[construct]
        if c.mode == "latent":
            return "latent"
        return c.likelihood or "gaussian"

    def touchpoint_columns(self, construct: str) -> np.ndarray:
        """The columns of ``states`` of the touchpoints that drive ``construct`` (in its sources' order)."""
        return np.array(
            [self.touchpoints.index(s) for s in self.resolved.sources(construct) if s in self.touchpoints],
            dtype=np.int64,
        )

    def structure_key(self) -> tuple:
        """What a compiled model depends on besides its shared data (for reusing compiled models).

        Everything that enters the graph as a constant is here: the model, touchpoints, groupings and their
        levels, answer points and the touchpoint feature tables (scales and boxes). The data that differ between
        data sets of one structure (rows, frequencies, counts, and the group deviations' zero-mean bases, which
        are weighted by each level's share) are shared variables that :func:`.fit.compile_driver_model` swaps in.
        """
        from cxresearch.runtime import arrays_hash

        return (
            self.resolved.model_dump_json(),
            tuple(self.touchpoints),
            tuple(self.group_dims),
            tuple(tuple(v) for v in self.levels.values()),
            self.n_states,
            tuple(sorted(self.n_categories.items())),
            arrays_hash(self.features),
            tuple(self.intercept_only),
        )


# --------------------------------------------------------------------------------------------------------
# data preparation
# --------------------------------------------------------------------------------------------------------
def prepare_data(
    frame: pd.DataFrame,
    model: DriverModelSpec | Mapping[str, Any] | ResolvedModel,
    dataset_spec: Any | None = None,
    where: str = "survey",
) -> PreparedData:
    """Validate the survey rows against the model and build the model's arrays.

    Rows whose endogenous observed outcome (e.g. recommend) is missing, or whose composite items are all
    missing, are dropped and counted in ``dropped_rows``; a not-applicable touchpoint never drops a row.
    Touchpoints with fewer than ``min_users`` users are left out and listed in ``dropped_touchpoints``.
    """
    if isinstance(model, ResolvedModel):
        resolved = model
    else:
        resolved = resolve_model_spec(model, dataset_spec, list(frame.columns))
    missing = sorted(
        {i for c in resolved.constructs.values() for i in c.items if i not in frame.columns}
        | {g for g in resolved.spec.group_by if g not in frame.columns}
    )
    if missing:
        raise ModelSpecError(f"{where}: columns {missing} are not in the data (available: {sorted(frame.columns)})")
    spec = resolved.spec
    keep = np.ones(len(frame), dtype=bool)
    dropped_rows: dict[str, int] = {}
    targets = {p.target for p in resolved.paths}

    # rows: drop missing endogenous observed outcomes and empty composites
    numeric: dict[str, np.ndarray] = {}
    for name, c in resolved.constructs.items():
        for item in c.items:
            if item not in numeric:
                numeric[item] = _numeric_column(frame, item, where)
        if c.kind == "touchpoint" or c.mode == "latent":
            continue
        values = np.column_stack([numeric[i] for i in c.items])
        if c.is_observed_single and (name in targets or c.likelihood is not None):
            bad = np.isnan(values[:, 0])
        else:
            bad = np.isnan(values).all(axis=1)
        if bad.any():
            dropped_rows[f"{name}: no answer"] = int((bad & keep).sum())
            keep &= ~bad
    for g in spec.group_by:
        bad = frame[g].isna().to_numpy()
        if bad.any():
            dropped_rows[f"{g}: missing"] = int((bad & keep).sum())
            keep &= ~bad
    if not keep.any():
        raise ValueError(f"{where}: no rows left for the driver model after dropping missing answers ({dropped_rows})")
    kept = frame.loc[keep].reset_index(drop=True)
    index = frame.index[keep]
    numeric = {k: v[keep] for k, v in numeric.items()}
    n = len(kept)

    # groups: dimensions with at least two levels; cells = full grid of their levels
    group_dims, levels, level_idx = [], {}, {}
    for g in spec.group_by:
        values = kept[g].astype("string").to_numpy(dtype=object)
        lv = sorted(set(values.tolist()))
        if len(lv) >= 2:
            group_dims.append(g)
            levels[g] = lv
            lookup = {v: i for i, v in enumerate(lv)}
            level_idx[g] = np.array([lookup[v] for v in values], dtype=np.int32)
    sizes = [len(levels[g]) for g in group_dims]
    cell_levels = (
        np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=np.int32)
        if sizes
        else np.zeros((1, 0), dtype=np.int32)
    )
    cell = np.zeros(n, dtype=np.int64)
    for g, size in zip(group_dims, sizes):
        cell = cell * size + level_idx[g]
    cell = cell.astype(np.int32)
    n_cells = int(np.prod(sizes)) if sizes else 1

    # touchpoints: integer states on their scale
    touchpoints, scales, dropped_tp = [], {}, {}
    tp_states = []
    for name in resolved.touchpoints:
        c = resolved.constructs[name]
        r = numeric[c.items[0]]
        scale = c.scale or _observed_scale(r, f"{where}.{c.items[0]}")
        used = ~np.isnan(r)
        if used.any():
            vals = r[used]
            off = vals[(vals < scale.min) | (vals > scale.max) | (np.abs(vals - np.round(vals)) > 1e-9)]
            if len(off):
                raise ValueError(
                    f"{where}.{c.items[0]}: touchpoint ratings must be whole points on the scale "
                    f"{scale.min:g}-{scale.max:g}; got {sorted(set(off.tolist()))[:5]}"
                )
        if used.sum() < spec.min_users:
            dropped_tp[name] = f"{int(used.sum())} users (< min_users = {spec.min_users})"
            continue
        touchpoints.append(name)
        scales[name] = scale
        tp_states.append(np.where(used, np.round(np.nan_to_num(r) - scale.min) + 1, 0).astype(np.int32))
    n_states = 1 + max([scales[t].points for t in touchpoints], default=0)
    n_states = max(n_states, 1)
    states = (
        np.column_stack(tp_states + [np.zeros(n, dtype=np.int32)]).astype(np.int32)
        if tp_states
        else np.zeros((n, 1), dtype=np.int32)
    )
    boxes = box_points(spec, touchpoints, scales, where, declared=resolved.touchpoints)
    features = _touchpoint_features(touchpoints, scales, n_states, boxes)
    freq = np.zeros((n_cells, len(touchpoints) + 1, n_states))
    np.add.at(freq, (cell[:, None], np.arange(len(touchpoints) + 1)[None, :], states), 1.0)

    # constructs: composite scores, outcomes, latent items
    scores, moments, n_categories, category_values, weights = {}, {}, {}, {}, {}
    outcomes: dict[str, np.ndarray] = {}  # int32 codes (ordinal / binary) or float64 scores (composite)
    items: dict[str, dict[str, np.ndarray]] = {}
    item_categories: dict[str, dict[str, int]] = {}
    for name in resolved.order:
        c = resolved.constructs[name]
        if c.kind == "touchpoint":
            continue
        if c.mode == "latent":
            items[name] = {}
            item_categories[name] = {}
            for item in c.items:
                x = numeric[item]
                if c.item_likelihood == "ordered_logistic":
                    scale = c.scale or _observed_scale(x, f"{where}.{item}")
                    codes = np.where(np.isnan(x), -1, np.round(np.nan_to_num(x) - scale.min)).astype(np.int32)
                    items[name][item] = codes
                    item_categories[name][item] = scale.points
                else:
                    mu, sd = np.nanmean(x), np.nanstd(x)
                    items[name][item] = (x - mu) / (sd if sd > 0 else 1.0)
            continue
        if c.is_observed_single and name in targets and c.likelihood in ("ordered_logistic", "bernoulli"):
            x = numeric[c.items[0]]
            if c.likelihood == "bernoulli":
                bad = x[(x != 0) & (x != 1)]
                if len(bad):
                    raise ValueError(
                        f"{where}.{c.items[0]}: a bernoulli outcome takes 0/1, got {sorted(set(bad.tolist()))[:5]}"
                    )
                outcomes[name] = x.astype(np.int32)
                n_categories[name] = 2
                category_values[name] = np.array([0.0, 1.0])
            else:
                scale = c.scale or _observed_scale(x, f"{where}.{c.items[0]}")
                off = x[(x < scale.min) | (x > scale.max) | (np.abs(x - np.round(x)) > 1e-9)]
                if len(off):
                    raise ValueError(
                        f"{where}.{c.items[0]}: ordinal answers must be whole points on "
                        f"{scale.min:g}-{scale.max:g}; got {sorted(set(off.tolist()))[:5]}"
                    )
                outcomes[name] = np.round(x - scale.min).astype(np.int32)
                n_categories[name] = scale.points
                category_values[name] = scale.min + np.arange(scale.points, dtype=float)
            # its standardised value, for paths out of it
            mu, sd = float(np.mean(x)), float(np.std(x))
            scores[name] = (x - mu) / (sd if sd > 0 else 1.0)
            moments[name] = (mu, sd)
            continue
        w = _composite_weights(c, name)
        weights[name] = w
        score_raw = _weighted_item_mean(np.column_stack([numeric[i] for i in c.items]), w)
        mu, sd = float(np.mean(score_raw)), float(np.std(score_raw))
        if not sd > 0:
            raise ValueError(f"{where}: construct {name!r} has no variation (items {c.items})")
        scores[name] = (score_raw - mu) / sd
        moments[name] = (mu, sd)
        if name in targets:
            outcomes[name] = scores[name]
    pls = [
        n_
        for n_, c in resolved.constructs.items()
        if c.weights == "pls" and c.mode == "composite" and c.kind != "touchpoint"
    ]
    if pls:
        lv_touch = {
            t: _standardise(np.where(states[:, i] > 0, states[:, i] - 1 - (scales[t].points - 1) / 2, 0.0))
            for i, t in enumerate(touchpoints)
        }
        pls_w = pls_outer_weights(
            resolved,
            {
                name: {i: numeric[i] for i in resolved.constructs[name].items}
                for name in resolved.constructs
                if resolved.constructs[name].kind != "touchpoint" and resolved.constructs[name].mode == "composite"
            },
            lv_touch,
        )
        for name in pls:
            c = resolved.constructs[name]
            z_items = np.column_stack([_standardise(numeric[i]) for i in c.items])
            score_raw = _weighted_item_mean(z_items, pls_w[name], standardise_items=False)
            mu, sd = float(np.mean(score_raw)), float(np.std(score_raw))
            scores[name] = (score_raw - mu) / sd
            moments[name] = (mu, sd)
            weights[name] = pls_w[name]
            if name in outcomes:
                outcomes[name] = scores[name]

    shared_slopes = _groupings_too_sparse_for_slopes(spec, levels, level_idx)
    return PreparedData(
        resolved=resolved,
        n=n,
        index=index,
        frame=kept,
        group_dims=group_dims,
        levels=levels,
        level_idx=level_idx,
        cell=cell,
        cell_levels=cell_levels,
        touchpoints=touchpoints,
        scales=scales,
        states=states,
        n_states=n_states,
        features=features,
        freq=freq,
        scores=scores,
        score_moments=moments,
        outcomes=outcomes,
        n_categories=n_categories,
        category_values=category_values,
        items=items,
        item_categories=item_categories,
        weights=weights,
        dropped_rows=dropped_rows,
        dropped_touchpoints=dropped_tp,
        boxes=boxes,
        shared_slopes=shared_slopes,
    )


def _groupings_too_sparse_for_slopes(
    spec: DriverModelSpec, levels: dict[str, list[str]], level_idx: dict[str, np.ndarray]
) -> dict[str, float]:
    """Groupings with a learned sd (more than ``fixed_scale_levels`` levels) whose median level has fewer than
    ``group_slopes_min_answers`` answers: grouping -> that median. Their levels shift the intercepts alone."""
    if not spec.group_slopes_min_answers or "slope" not in spec.varying or "intercept" not in spec.varying:
        return {}
    out = {}
    for g, lv in levels.items():
        if len(lv) <= spec.fixed_scale_levels or g in spec.intercept_only:
            continue
        median = float(np.median(np.bincount(level_idx[g], minlength=len(lv))))
        if median < spec.group_slopes_min_answers:
            out[g] = median
    return out


def _numeric_column(frame: pd.DataFrame, column: str, where: str) -> np.ndarray:
    try:
        return pd.to_numeric(frame[column], errors="raise").astype("float64").to_numpy()
    except (TypeError, ValueError):
        bad = frame[column][pd.to_numeric(frame[column], errors="coerce").isna() & frame[column].notna()]
        raise ValueError(
            f"{where}.{column}: values must be numeric, got {sorted(map(str, bad.unique()))[:5]}"
        ) from None


def _observed_scale(values: np.ndarray, where: str) -> ScaleSpec:
    v = values[~np.isnan(values)]
    if not len(v):
        raise ValueError(f"{where}: no answers, and no scale declared")
    lo, hi = float(np.floor(v.min())), float(np.ceil(v.max()))
    if hi <= lo:
        hi = lo + 1
    return ScaleSpec(min=lo, max=hi)


def _standardise(x: np.ndarray) -> np.ndarray:
    mu, sd = np.nanmean(x), np.nanstd(x)
    return (x - mu) / (sd if sd > 0 else 1.0)


def _composite_weights(c: ConstructSpec, name: str) -> np.ndarray:
    if isinstance(c.weights, list):
        w = np.asarray(c.weights, dtype=float)
    else:
        w = np.ones(len(c.items))
    return w / w.sum()


def _weighted_item_mean(x: np.ndarray, w: np.ndarray, standardise_items: bool = True) -> np.ndarray:
    """Weighted mean of the items' z-scores over the items each row answered."""
    z = np.column_stack([_standardise(x[:, k]) for k in range(x.shape[1])]) if standardise_items else x
    present = ~np.isnan(z)
    num = np.where(present, z, 0.0) @ w
    den = present.astype(float) @ w
    return num / den


def box_points(
    spec: DriverModelSpec,
    touchpoints: list[str],
    scales: Mapping[str, ScaleSpec],
    where: str = "model",
    declared: list[str] | None = None,
) -> dict[str, tuple[int, int]]:
    """(bottom, top) box of each touchpoint in answer points.

    ``boxes`` in the spec names them per touchpoint; otherwise ``bottom_box`` / ``top_box`` below 1 are
    shares of each scale's points (rounded, at least one point, the two boxes never meeting), and whole
    numbers are points, accepted only when every touchpoint has the same scale: 2 points are 40% of a
    1-5 scale, 18% of 0-10 and 2% of 1-100.
    """
    unknown = sorted(set(spec.boxes) - set(declared or touchpoints))
    if unknown:
        raise ModelSpecError(
            f"{where}.boxes: {unknown} are not touchpoints of the model (have {declared or touchpoints})"
        )
    points_used = {scales[t].points for t in touchpoints if t not in spec.boxes}
    for name, value in (("bottom_box", spec.bottom_box), ("top_box", spec.top_box)):
        if value >= 1 and len(points_used) > 1:
            scales_seen = sorted({f"{scales[t].min:g}-{scales[t].max:g}" for t in touchpoints if t not in spec.boxes})
            raise ModelSpecError(
                f"{where}.{name}: {value:g} points mean different things on the scales {scales_seen}; give a share of "
                f"the scale (e.g. {name}: {0.4 if name == 'bottom_box' else 0.2}) or set 'boxes' per touchpoint"
            )
    out: dict[str, tuple[int, int]] = {}
    for t in touchpoints:
        points = scales[t].points
        if t in spec.boxes:
            bottom, top = spec.boxes[t].bottom, spec.boxes[t].top
        else:
            bottom, top = (
                int(v) if v >= 1 else max(1, int(np.floor(v * points + 0.5))) for v in (spec.bottom_box, spec.top_box)
            )
        if bottom + top > points:
            raise ModelSpecError(
                f"{where}: the bottom box ({bottom} points) and top box ({top}) of {t!r} overlap on its "
                f"{points}-point scale {scales[t].min:g}-{scales[t].max:g}"
            )
        out[t] = (bottom, top)
    return out


def _touchpoint_features(
    touchpoints: list[str], scales: dict[str, ScaleSpec], n_states: int, boxes: Mapping[str, tuple[int, int]]
) -> dict[str, np.ndarray]:
    """(T, S) value of each term's column at each state (state 0 = not used: all zero).

    The slope's column is the rating's distance from the scale midpoint in half ranges (-1 at the bottom,
    +1 at the top), so a slope and its prior mean the same on every scale.
    """
    n_tp = len(touchpoints)
    out = {term: np.zeros((n_tp, n_states)) for term in TERMS}
    for t, name in enumerate(touchpoints):
        sc = scales[name]
        points = sc.points
        bottom, top = boxes[name]
        s = np.arange(1, points + 1)
        value = sc.min + (s - 1)
        out["used"][t, s] = 1.0
        out["slope"][t, s] = (value - sc.midpoint) / half_range(sc)
        out["penalty"][t, s] = (s <= bottom).astype(float)
        out["reward"][t, s] = (s >= points - top + 1).astype(float)
    return out


def half_range(scale: ScaleSpec) -> float:
    """Half the scale's range: the unit of a touchpoint slope (midpoint -> top)."""
    return max((scale.max - scale.min) / 2.0, 0.5)


def pls_outer_weights(
    resolved: ResolvedModel,
    blocks: Mapping[str, Mapping[str, np.ndarray]],
    touchpoint_scores: Mapping[str, np.ndarray] | None = None,
    tol: float = 1e-10,
    max_iter: int = 500,
) -> dict[str, np.ndarray]:
    """PLS-PM outer weights (Mode A, path weighting scheme; Lohmoeller 1989), for composite scores.

    Items are standardised (missing values mean-imputed). Inner estimation: for construct k, the
    regression coefficients of k on its predecessors and the correlations with its followers. Outer:
    Mode A weights = covariances of the items with the inner estimate. Returns weights that give each
    block's standardised score as a weighted mean of the item z-scores (weights sum to 1).
    """
    names = list(blocks)
    x = {k: np.column_stack([np.nan_to_num(_standardise(v)) for v in blocks[k].values()]) for k in names}
    lv = {k: _standardise(x[k].sum(axis=1)) for k in names}
    fixed = dict(touchpoint_scores or {})
    w = {k: np.ones(x[k].shape[1]) for k in names}
    for _ in range(max_iter):
        allv = {**fixed, **lv}
        inner = {}
        for k in names:
            z = np.zeros_like(lv[k])
            preds = [p.source for p in resolved.paths if p.target == k and p.source in allv]
            if preds:
                design = np.column_stack([allv[p] for p in preds])
                coef, *_ = np.linalg.lstsq(design, lv[k], rcond=None)
                z += design @ coef
            for p in resolved.paths:
                if p.source == k and p.target in allv:
                    z += np.corrcoef(lv[k], allv[p.target])[0, 1] * allv[p.target]
            inner[k] = _standardise(z) if np.std(z) > 0 else lv[k]
        change = 0.0
        for k in names:
            new_w = x[k].T @ inner[k] / len(inner[k])
            score = x[k] @ new_w
            new_w = new_w / np.std(score)
            change = max(change, float(np.max(np.abs(new_w - w[k]))))
            w[k] = new_w
            lv[k] = _standardise(x[k] @ new_w)
        if change < tol:
            break
    return {k: w[k] / w[k].sum() for k in names}


# --------------------------------------------------------------------------------------------------------
# the PyMC model
# --------------------------------------------------------------------------------------------------------
@dataclass
class EquationLayout:
    """Which parameters one endogenous construct's equation has (names in the PyMC model), and the
    constant matrices that map group parameters to cells (so effects can be recomputed per draw)."""

    target: str
    likelihood: str  # latent | ordered_logistic | bernoulli | gaussian
    tp_index: np.ndarray  # indices into PreparedData.touchpoints
    terms: list[str]
    construct_sources: list[str]
    has_intercept: bool
    intercept_dims: list[str]
    slope_dims: list[str]
    # group structure: the levels of all dimensions stacked (L = sum of levels); each dimension's
    # deviations live in the subspace where their (user-)weighted mean is zero, spanned by an orthonormal
    # basis (L_d - 1 free values per dimension): no direction of the parameters is left to the prior alone
    dim_of_level: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # (L,)
    dim_of_free: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # (L - D,)
    cell_of_level: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (C, L) cell has level
    slope_basis: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))  # (T_j, L, L - D)
    intercept_basis: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (L, L - D)
    # Gaussian equation evaluated on per-cell sufficient statistics (exact; see gaussian_statistics)
    sufficient_statistics: bool = False
    # groupings whose slope deviations have a learned sd (the others: fixed-scale regularised offsets)
    learned_dims: list[str] = field(default_factory=list)
    # the touchpoint terms that vary by group (slope first; penalty and reward when they vary)
    dev_terms: list[str] = field(default_factory=lambda: ["slope"])

    def name(self, what: str) -> str:
        return f"{self.target}__{what}"

    @property
    def touchpoints_dim(self) -> str:
        return f"{self.target}__touchpoint"

    def level_slices(self, prep: PreparedData, dims: list[str]) -> dict[str, slice]:
        out, start = {}, 0
        for d in prep.group_dims:
            n = len(prep.levels[d])
            if d in dims:
                out[d] = slice(start, start + n)
            start += n
        return out


@dataclass
class ModelLayout:
    equations: dict[str, EquationLayout]
    latent: list[str]
    minibatch: int | None = None
    stored: list[str] = field(default_factory=list)  # variables kept in the trace


def equation_terms(spec: DriverModelSpec) -> list[str]:
    """Touchpoint terms in every equation a touchpoint feeds."""
    terms = ["slope"]
    if spec.used_indicator:
        terms.insert(0, "used")
    if spec.asymmetric:
        terms += ["penalty", "reward"]
    return terms


def _zero_mean_basis(weights: np.ndarray) -> np.ndarray:
    """Orthonormal basis (L, L-1) of the vectors d with weights . d = 0."""
    w = np.asarray(weights, dtype=float)
    if not w.sum() > 0:
        w = np.ones_like(w)
    q, _ = np.linalg.qr(np.column_stack([w, np.eye(len(w))[:, :-1]]))
    return q[:, 1:]


class _GroupMatrices(TypedDict):
    """The constant group matrices of one equation: the :class:`EquationLayout` fields of the same names."""

    dim_of_level: np.ndarray
    dim_of_free: np.ndarray
    cell_of_level: np.ndarray
    slope_basis: np.ndarray
    intercept_basis: np.ndarray


def _group_matrices(prep: PreparedData, tp_index: np.ndarray) -> _GroupMatrices:
    """Constant matrices for the stacked group levels of all dimensions (see EquationLayout)."""
    dims = prep.group_dims
    sizes = [len(prep.levels[d]) for d in dims]
    n_levels, n_free = sum(sizes), sum(sizes) - len(sizes)
    dim_of_level = np.concatenate([np.full(n, i) for i, n in enumerate(sizes)]) if dims else np.zeros(0, int)
    dim_of_free = np.concatenate([np.full(n - 1, i) for i, n in enumerate(sizes)]) if dims else np.zeros(0, int)
    offsets = np.cumsum([0] + sizes)
    free_offsets = np.cumsum([0] + [n - 1 for n in sizes])
    cell_of_level = np.zeros((prep.n_cells, n_levels))
    for i in range(len(dims)):
        cell_of_level[np.arange(prep.n_cells), offsets[i] + prep.cell_levels[:, i]] = 1.0
    slope_basis = np.zeros((len(tp_index), n_levels, n_free))
    intercept_basis = np.zeros((n_levels, n_free))
    for i, d in enumerate(dims):
        rows = slice(offsets[i], offsets[i + 1])
        cols = slice(free_offsets[i], free_offsets[i + 1])
        intercept_basis[rows, cols] = _zero_mean_basis(level_weights(prep, d, None))
        if len(tp_index):
            w = level_weights(prep, d, tp_index)
            for t in range(len(tp_index)):
                slope_basis[t, rows, cols] = _zero_mean_basis(w[:, t])
    return {
        "dim_of_level": dim_of_level,
        "dim_of_free": dim_of_free,
        "cell_of_level": cell_of_level,
        "slope_basis": slope_basis,
        "intercept_basis": intercept_basis,
    }


def slope_deviations(layout_eq: EquationLayout, sd: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Level deviations of the slopes, (..., L, T_j), from sd (..., D) and free values z (..., L - D, T_j)."""
    scaled = z * np.asarray(sd)[..., layout_eq.dim_of_free][..., :, None]
    return np.einsum("tlk,...kt->...lt", layout_eq.slope_basis, scaled)


def intercept_deviations(layout_eq: EquationLayout, scale: float, z: np.ndarray) -> np.ndarray:
    """Level deviations of the intercepts, (..., L), from the free values z (..., L - D)."""
    return np.einsum("lk,...k->...l", layout_eq.intercept_basis, scale * np.asarray(z))


def equation_offsets(prep: PreparedData) -> dict[str, np.ndarray]:
    """``offsets__<target>``: each row's positions in the lookup table of every observed equation (row data,
    drawn together with the other row arrays in minibatch mode; see :func:`.kernels.row_offsets`)."""
    from cxresearch.drivers.kernels import row_offsets

    out = {}
    for j in prep.resolved.endogenous:
        if prep.likelihood(j) == "latent":
            continue
        out[f"offsets__{j}"] = row_offsets(
            prep.states, prep.cell, prep.touchpoint_columns(j), prep.n_cells, prep.n_states
        )
    return out


def gaussian_statistics(prep: PreparedData, eq: EquationLayout) -> dict[str, np.ndarray]:
    """The shared data of a Gaussian equation on sufficient statistics: co-occurrence counts of the
    (touchpoint, state) slots per cell, per-slot sums of the outcome, and [sum y^2, n]."""
    from cxresearch.drivers.kernels import gaussian_sufficient_statistics

    m, yv, yy_n = gaussian_sufficient_statistics(
        prep.states, prep.cell, prep.outcomes[eq.target], eq.tp_index, prep.n_cells, prep.n_states
    )
    return {eq.name("suffstat_m"): m, eq.name("suffstat_y"): yv, eq.name("suffstat_yy_n"): yy_n}


def build_model(prep: PreparedData, minibatch: int | None = None, seed: int = 1):
    """Write the PyMC model; returns ``(model, layout)``.

    With ``minibatch`` (rows per batch, for ADVI on very large samples) the rows are drawn at random each
    step and the row terms of the log-likelihood are scaled by N / batch.
    """
    import pymc as pm
    import pytensor.tensor as pt

    from cxresearch.drivers.kernels import equation_loglik, gaussian_suffstat_loglik
    from cxresearch.drivers.likelihoods import ordered_logistic_logp

    resolved, spec = prep.resolved, prep.resolved.spec
    priors = spec.priors
    tps = prep.touchpoints
    n_cells = prep.n_cells
    endogenous = resolved.endogenous
    latent = [
        n for n, c in resolved.constructs.items() if c.mode == "latent" and c.kind != "touchpoint" and len(c.items) > 1
    ]
    if latent and minibatch:
        raise ModelSpecError("minibatch ADVI supports composite models only (latent scores are per row)")
    if latent and prep.n > 20000:
        warnings.warn(
            f"latent mode with {prep.n} rows samples one score per row and construct; "
            "composite mode is much faster for large samples",
            stacklevel=2,
        )

    coords: dict[str, list] = {g: prep.levels[g] for g in prep.group_dims}
    if latent:
        coords["row"] = list(range(prep.n))
    if prep.group_dims:
        coords["group_level"] = [f"{d}={lv}" for d in prep.group_dims for lv in prep.levels[d]]
        coords["group_free"] = [f"{d}#{k}" for d in prep.group_dims for k in range(len(prep.levels[d]) - 1)]
        coords["group_dim"] = list(prep.group_dims)
    layout = ModelLayout(equations={}, latent=latent, minibatch=minibatch)
    terms = equation_terms(spec)
    with pm.Model(coords=coords) as model:
        # ---- data (shared variables: a compiled model is re-used with new data of the same structure)
        row_data = {"states": prep.states, "cell": prep.cell}
        row_data.update(equation_offsets(prep))
        for k, v in prep.outcomes.items():
            row_data[f"y__{k}"] = v
        for k, v in prep.scores.items():
            row_data[f"score__{k}"] = v
        if minibatch:
            names = list(row_data)
            batches = pm.Minibatch(*[pt.as_tensor_variable(row_data[k]) for k in names], batch_size=minibatch)
            data = dict(zip(names, batches if isinstance(batches, (list, tuple)) else [batches]))
            scale = prep.n / minibatch
        else:
            data = {k: pm.Data(k, v) for k, v in row_data.items()}
            scale = 1.0
        freq = pm.Data("freq", prep.freq)
        states, cell = data["states"], data["cell"]

        # ---- latent constructs (exogenous here; endogenous get their structural mean below)
        eta: dict[str, Any] = {}
        for k in latent:
            if k not in endogenous:
                c = resolved.constructs[k]
                # latent scores are centred: with several items per construct the data pin each score down,
                # and a non-centred score would be strongly correlated with the structural parameters
                sd = 1.0 if c.identification == "variance" else pm.HalfNormal(f"{k}__sd", priors.residual_sd)
                eta[k] = pm.Normal(f"{k}__score", 0.0, sd, dims="row")

        for j in endogenous:
            c = resolved.constructs[j]
            likelihood = prep.likelihood(j)
            sources = resolved.sources(j)
            tp_sources = [s for s in sources if s in tps]
            tp_index = prep.touchpoint_columns(j)
            construct_sources = [s for s in sources if resolved.constructs[s].kind != "touchpoint"]
            has_intercept = likelihood in ("gaussian", "bernoulli")  # latent: mean fixed by item intercepts
            vary = spec.varying
            mats = _group_matrices(prep, tp_index)
            eq = EquationLayout(
                target=j,
                likelihood=likelihood,
                tp_index=tp_index,
                terms=terms if len(tp_index) else [],
                construct_sources=construct_sources,
                has_intercept=has_intercept,
                intercept_dims=list(prep.group_dims) if "intercept" in vary else [],
                slope_dims=list(prep.group_dims) if ("slope" in vary and len(tp_index)) else [],
                **mats,
            )
            layout.equations[j] = eq
            n_tj = len(tp_index)
            features = (
                np.stack([prep.features[t][tp_index] for t in eq.terms]) if n_tj else np.zeros((1, 0, prep.n_states))
            )
            if n_tj:
                model.add_coord(eq.touchpoints_dim, tp_sources)
                model.add_coord(eq.name("term"), eq.terms)
                # slopes per half scale range get slope_sd, the indicator terms touchpoint_sd
                prior_sd = np.array([[priors.slope_sd if t == "slope" else priors.touchpoint_sd] for t in eq.terms])
                coef = pm.Normal(eq.name("coef"), 0.0, prior_sd, dims=(eq.name("term"), eq.touchpoints_dim))
            else:
                coef = pt.zeros((1, 0))
            n_levels = len(eq.dim_of_level)
            # the touchpoint terms that vary by group: the slope, and the bottom-box penalty and top-box
            # reward when they are in the model and in ``varying`` (a segment's Kano class is its own)
            # the touchpoint terms that vary by group: the slope by every grouping; the bottom-box penalty and
            # top-box reward (when in the model and in ``varying``) by the groupings with few levels (segments,
            # markets: each gets its own Kano classes), where fixed-scale offsets cost few parameters; with
            # dozens of levels (airlines, branches) they are shared, which keeps the fit fast and converged
            # intercept-only groupings (e.g. wave) shift the intercepts alone: their touchpoint deviations are 0
            intercept_only = set(prep.intercept_only)  # declared, and groupings with too few answers per level
            eq.learned_dims = [
                d for d in prep.group_dims if len(prep.levels[d]) > spec.fixed_scale_levels and d not in intercept_only
            ]
            offset_free = np.flatnonzero(
                [
                    prep.group_dims[d] not in eq.learned_dims and prep.group_dims[d] not in intercept_only
                    for d in eq.dim_of_free
                ]
            )
            slope_on = np.array([0.0 if d in intercept_only else 1.0 for d in prep.group_dims])
            eq.dev_terms = ["slope"] + [
                t for t in ("penalty", "reward") if t in eq.terms and t in vary and eq.slope_dims and len(offset_free)
            ]
            dev_feature = (
                np.stack([prep.features[t][tp_index] for t in eq.dev_terms])
                if n_tj
                else np.zeros((1, 0, prep.n_states))
            )
            cell_devs: list[Any] = [pt.zeros((n_cells, n_tj)) for _ in eq.dev_terms]
            if eq.slope_dims:
                # the sd of each grouping's slope deviations: fixed (regularised offsets) for groupings with few
                # levels, learned (one per grouping, shared by the touchpoints) for the others
                if eq.learned_dims:
                    model.add_coord(eq.name("learned_dim"), eq.learned_dims)
                # slopes may get a wider fixed sd than the penalty / reward offsets (PriorSpec.slope_offset_sd);
                # an intercept-only grouping keeps a unit-sd placeholder and is switched off by ``slope_on``
                slope_fixed_sd = priors.slope_offset_sd or priors.group_offset_sd
                sd_parts: list[Any] = [1.0 if d in intercept_only else float(slope_fixed_sd) for d in prep.group_dims]
                if eq.learned_dims:
                    learned_sd = pm.HalfNormal(eq.name("sd_slope"), priors.group_sd, dims=eq.name("learned_dim"))
                    for k_d, d in enumerate(eq.learned_dims):
                        sd_parts[prep.group_dims.index(d)] = learned_sd[k_d]
                sd = pt.stack([pt.as_tensor_variable(float(x)) if isinstance(x, float) else x for x in sd_parts])
                # free values only for the groupings whose slopes vary (intercept-only ones stay at 0)
                slope_free = np.flatnonzero(slope_on[eq.dim_of_free] > 0)
                free_dim = "group_free"
                if len(slope_free) < len(eq.dim_of_free):
                    free_dim = eq.name("slope_free")
                    if len(slope_free):
                        model.add_coord(free_dim, [coords["group_free"][i] for i in slope_free])
                sd_free = sd[eq.dim_of_free[slope_free]][:, None]
                if not len(slope_free):
                    part = pt.zeros((0, n_tj))
                elif spec.parametrization == "centred" and eq.learned_dims:
                    part = pm.Normal(eq.name("raw_slope"), 0.0, sd_free, dims=(free_dim, eq.touchpoints_dim))
                else:
                    # non-centred: with a fixed sd this is the centred model on a unit scale (no funnel)
                    z = pm.Normal(eq.name("z_slope"), 0.0, 1.0, dims=(free_dim, eq.touchpoints_dim))
                    part = z * sd_free
                if len(slope_free) < len(eq.dim_of_free):
                    scaled = pt.set_subtensor(pt.zeros((len(eq.dim_of_free), n_tj))[slope_free], part)
                else:
                    scaled = part
                scaled_by_term = {"slope": scaled}
                if len(eq.dev_terms) > 1:
                    model.add_coord(eq.name("offset_free"), [coords["group_free"][i] for i in offset_free])
                for term in eq.dev_terms[1:]:
                    z_t = pm.Normal(eq.name(f"z_{term}"), 0.0, 1.0, dims=(eq.name("offset_free"), eq.touchpoints_dim))
                    full = pt.zeros((len(eq.dim_of_free), n_tj))
                    scaled_by_term[term] = pt.set_subtensor(full[offset_free], z_t * priors.group_offset_sd)
                # the zero-mean bases depend on the level shares: shared data, so a compiled model is reused on
                # other data of the same structure with that data's own centring
                slope_basis = pm.Data(eq.name("slope_basis"), eq.slope_basis)
                for v_i, term in enumerate(eq.dev_terms):
                    # deviations with a zero users'-weighted mean: the common term is the population average
                    dev = (slope_basis * scaled_by_term[term].T[:, None, :]).sum(axis=2).T  # (L, T_j)
                    pm.Deterministic(eq.name(f"{term}_dev"), dev, dims=("group_level", eq.touchpoints_dim))
                    cell_devs[v_i] = pt.dot(eq.cell_of_level, dev)
            cell_dev = pt.stack(cell_devs)  # (V, C, T_j)
            intercept_cell = pt.zeros((n_cells,))
            if has_intercept:
                intercept_cell = intercept_cell + pm.Normal(eq.name("intercept"), 0.0, priors.coefficient_sd)
            if eq.intercept_dims and n_levels:
                # level intercepts: N(0, group_intercept_sd) deviations with a fixed scale (with 3-4 levels a
                # learned scale is barely identified and makes a funnel), centred on the rows' mean
                z_i = pm.Normal(eq.name("z_intercept"), 0.0, 1.0, dims="group_free")
                intercept_basis = pm.Data(eq.name("intercept_basis"), eq.intercept_basis)  # shared, as the slopes'
                dev_i = pt.dot(intercept_basis, z_i * priors.group_intercept_sd)
                intercept_cell = intercept_cell + pt.dot(eq.cell_of_level, dev_i)

            extra = pt.zeros_like(cell, dtype="float64")
            if construct_sources:
                model.add_coord(eq.name("source"), construct_sources)
                paths = pm.Normal(eq.name("path"), 0.0, priors.coefficient_sd, dims=eq.name("source"))
                for s_i, s in enumerate(construct_sources):
                    extra = extra + paths[s_i] * (eta[s] if s in eta else data[f"score__{s}"])

            if likelihood == "latent":
                eta_lin = extra + intercept_cell[cell]
                if n_tj:
                    base = (coef[:, :, None] * features).sum(axis=0)
                    table = base[None, :, :] + (cell_dev[:, :, :, None] * dev_feature[:, None, :, :]).sum(axis=0)
                    tp_freq = freq[:, tp_index, :]
                    table = table - ((tp_freq * table).sum(axis=(0, 2)) / freq[:, -1, :].sum())[None, :, None]
                    eta_lin = eta_lin + table[cell[:, None], np.arange(n_tj)[None, :], states[:, tp_index]].sum(axis=1)
                sd = 1.0 if c.identification == "variance" else pm.HalfNormal(f"{j}__sd", priors.residual_sd)
                eta[j] = pm.Normal(f"{j}__score", eta_lin, sd, dims="row")
                continue
            y = data[f"y__{j}"]
            common = (coef, cell_dev, intercept_cell, extra)
            rest = (features, dev_feature, tp_index, freq, data[f"offsets__{j}"], y)
            if likelihood == "ordered_logistic":
                k_cat = prep.n_categories[j]
                model.add_coord(eq.name("cut"), list(range(k_cat - 1)))
                cuts = pm.Normal(
                    eq.name("cutpoints"),
                    0.0,
                    priors.cutpoint_sd,
                    dims=eq.name("cut"),
                    transform=pm.distributions.transforms.ordered,
                    initval=_initial_cutpoints(prep.outcomes[j], k_cat),
                )
                counts = pm.Data(f"counts__{j}", np.bincount(prep.outcomes[j], minlength=k_cat).astype(float))
                gap = cuts[:-1] - cuts[1:]
                log_gaps = pt.switch(gap > -0.693147180559945, pt.log(-pt.expm1(gap)), pt.log1p(-pt.exp(gap)))
                loglik = scale * equation_loglik("ordered_logistic", *common, cuts, *rest) + pt.dot(
                    counts[1:-1], log_gaps
                )
            elif likelihood == "bernoulli":
                loglik = scale * equation_loglik("bernoulli", *common, pt.zeros(1), *rest)
            else:
                sigma = pm.HalfNormal(eq.name("sigma"), priors.residual_sd)
                n_a = (n_tj + 1) * prep.n_states
                # no row-level predictors: the likelihood needs only per-cell statistics (exact), cheaper
                # than a pass over the rows when cells x (slots x states)^2 < rows x slots
                eq.sufficient_statistics = (
                    not minibatch and not construct_sources and n_cells * n_a * n_a < prep.n * (n_tj + 1)
                )
                if eq.sufficient_statistics:
                    stats = [pm.Data(k, v) for k, v in gaussian_statistics(prep, eq).items()]
                    loglik = gaussian_suffstat_loglik(
                        coef, cell_dev, intercept_cell, sigma[None], features, dev_feature, tp_index, freq, *stats
                    )
                else:
                    loglik = scale * equation_loglik("gaussian", *common, sigma[None], *rest)
            pm.Potential(eq.name("loglik"), loglik)

        # ---- measurement models of latent constructs
        for k in latent:
            c = resolved.constructs[k]
            item_names = list(prep.items[k])
            model.add_coord(f"{k}__item", item_names)
            if c.identification == "loading":
                free = pm.HalfNormal(f"{k}__loading_free", 1.0, shape=len(item_names) - 1)
                loadings = pm.Deterministic(f"{k}__loading", pt.concatenate([pt.ones(1), free]), dims=f"{k}__item")
            else:
                loadings = pm.HalfNormal(f"{k}__loading", 1.0, dims=f"{k}__item")
            if c.item_likelihood == "gaussian":
                # items are z-scores: intercepts near 0; residual sds kept away from 0 (no Heywood cases)
                intercepts = pm.Normal(f"{k}__item_intercept", 0.0, 0.5, dims=f"{k}__item")
                item_sd = pm.Gamma(f"{k}__item_sd", alpha=4.0, beta=8.0, dims=f"{k}__item")
                x = np.column_stack([prep.items[k][i] for i in item_names])
                present = ~np.isnan(x)
                x0 = np.where(present, x, 0.0)
                mu = intercepts[None, :] + eta[k][:, None] * loadings[None, :]
                resid = (x0 - mu) / item_sd[None, :]
                pm.Potential(
                    f"{k}__items",
                    (present * (-0.5 * resid**2)).sum()
                    - (present.sum(axis=0) * pt.log(item_sd)).sum()
                    - 0.5 * present.sum() * np.log(2 * np.pi),
                )
            else:
                for i_i, item in enumerate(item_names):
                    values = prep.items[k][item]
                    rows = np.flatnonzero(values >= 0)
                    k_cat = prep.item_categories[k][item]
                    model.add_coord(f"{k}__cut__{item}", list(range(k_cat - 1)))
                    cuts = pm.Normal(
                        f"{k}__cutpoints__{item}",
                        0.0,
                        priors.cutpoint_sd,
                        dims=f"{k}__cut__{item}",
                        transform=pm.distributions.transforms.ordered,
                        initval=_initial_cutpoints(values[rows], k_cat),
                    )
                    pm.Potential(
                        f"{k}__items__{item}",
                        ordered_logistic_logp(values[rows], loadings[i_i] * eta[k][rows], cuts, k_cat),
                    )
            pm.Deterministic(f"{k}__eta", eta[k], dims="row")
    layout.stored = [rv.name for rv in model.free_RVs] + [d.name for d in model.deterministics]
    return model, layout


def level_weights(prep: PreparedData, dim: str, tp_index: np.ndarray | None) -> np.ndarray:
    """Share of the rows (or of each touchpoint's users) in each level of ``dim``: (L,) or (L, T_j).

    Group deviations are centred on this weighted mean, so they are identified against the common
    coefficient (and the cutpoints) instead of trading off with it: much better sampling geometry.
    """
    d_i = prep.group_dims.index(dim)
    n_levels = len(prep.levels[dim])
    if tp_index is None:
        rows = prep.freq[:, -1, :].sum(axis=1)  # rows per cell (intercept slot: every row)
        out = np.array([rows[prep.cell_levels[:, d_i] == lv].sum() for lv in range(n_levels)])
        return out / max(out.sum(), 1.0)
    users = prep.freq[:, tp_index, 1:].sum(axis=2)  # (C, T_j)
    out = np.stack([users[prep.cell_levels[:, d_i] == lv].sum(axis=0) for lv in range(n_levels)])
    return out / np.maximum(out.sum(axis=0, keepdims=True), 1.0)


def _initial_cutpoints(codes: np.ndarray, n_categories: int) -> np.ndarray:
    """Empirical cumulative logits (smoothed), strictly increasing: a starting point for the sampler."""
    counts = np.bincount(np.asarray(codes, dtype=int), minlength=n_categories).astype(float) + 0.5
    cum = np.cumsum(counts)[:-1] / counts.sum()
    init = np.log(cum / (1 - cum))
    return init + np.arange(n_categories - 1) * 1e-3
