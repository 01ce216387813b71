"""Fair league tables of units (branches, agents, teams): hierarchical shrinkage and rank intervals.

Ranking units on their raw scores rewards noise: a branch with 8 answers, all promoters, has a raw NPS
of +100 and would top the table. Here every unit's score is partially pooled toward the typical unit:

- ``metric="nps"``: the hierarchical Dirichlet-multinomial of :mod:`cxresearch.measurement.pooling`
  (shares of detractors / passives / promoters of every unit pooled toward the typical unit, then NPS).
- ``metric=<touchpoint key>`` or ``"recommend"``: a hierarchical normal model of the mean rating,
  ``theta_u ~ Normal(mu, tau)``, answers ~ Normal(theta_u, sigma), from each unit's sufficient
  statistics (n, mean, sum of squares) so it costs O(units).

Both are computed exactly (numerical integration over the hyperparameters, no MCMC) by default;
``method="nuts"`` samples the logistic-normal / non-centred normal versions with PyMC instead.

Small units are pulled strongly toward the centre, large units barely move. Ranks are computed in every
posterior draw (1 = best), which gives each unit a rank interval: a wide interval says the data cannot
tell where the unit stands. The table is ordered by the posterior expected rank (the Bayes ranking under
squared-error loss on ranks), so an uncertain unit does not jump ahead of units that are surely good.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.data.spec import DatasetSpec
from cxresearch.diagnostics import Diagnostics, check_mcmc, combine
from cxresearch.measurement.nps import class_counts, dirichlet_shares, hierarchical_shares
from cxresearch.measurement.pooling import hierarchical_normal
from cxresearch.measurement.posterior import (
    DEFAULT_LEVEL,
    check_columns,
    interval,
    rng_for,
    sample_model,
)
from cxresearch.measurement.touchpoints import touchpoint_ratings, touchpoint_specs


@dataclass
class LeagueTable:
    """A league table: ``table`` (one row per unit, best first) plus the posterior draws behind it."""

    table: pd.DataFrame
    estimate_draws: np.ndarray  # (units, draws), rows in table order
    rank_draws: np.ndarray  # (units, draws)
    metric: str
    metric_label: str
    overall_observed: float
    diagnostics: Diagnostics | None  # the one gate's verdict over the pooled fits (None: nothing pooled)
    method: str
    pooling: bool


def rank_draws(estimates: np.ndarray) -> np.ndarray:
    """Rank of every unit in every draw (1 = highest value), shape as ``estimates`` (units, draws)."""
    order = np.argsort(-estimates, axis=0, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, estimates.shape[0] + 1)[:, None], axis=0)
    return ranks


def build_rating_model(n: np.ndarray, means: np.ndarray, sum_squares: np.ndarray) -> Any:
    """Hierarchical normal model of unit mean ratings from sufficient statistics (see module docstring)."""
    import pymc as pm
    import pytensor.tensor as pt

    n = np.asarray(n, dtype=float)
    total = float(n.sum())
    grand = float(np.sum(n * means) / total)
    total_sd = float(np.sqrt((np.sum(sum_squares) + np.sum(n * (means - grand) ** 2)) / max(total - 1.0, 1.0)))
    total_sd = total_sd if total_sd > 0 else 1.0
    with pm.Model(coords={"unit": np.arange(len(n))}) as model:
        mu = pm.Normal("mu", grand, 2.0 * total_sd)
        tau = pm.HalfNormal("tau", total_sd)
        sigma = pm.HalfNormal("sigma", 2.0 * total_sd)
        z = pm.Normal("z", 0.0, 1.0, dims="unit")
        theta = pm.Deterministic("theta", mu + tau * z, dims="unit")
        pm.Normal("unit_mean", theta, sigma / np.sqrt(n), observed=means, dims="unit")
        # within-unit spread: the rest of the normal likelihood of the individual answers
        pm.Potential(
            "within_units", -float(np.sum(n - 1.0)) * pt.log(sigma) - float(np.sum(sum_squares)) / (2 * sigma**2)
        )
    return model


def _unit_data(
    survey: pd.DataFrame, metric: str, unit: str, spec: DatasetSpec | None, min_answers: int
) -> tuple[pd.DataFrame, str, int]:
    """Per-unit sufficient statistics: for NPS the class counts, for ratings n / mean / within sum of squares."""
    if metric == "nps":
        stats = class_counts(survey, unit).rename(columns={unit: "unit"})
        stats["unit"] = stats["unit"].astype(str)
        stats["score_sum"] = 100.0 * (stats["promoter"] - stats["detractor"])
        label = "NPS"
    else:
        if metric == "recommend":
            check_columns(survey, ("recommend",), "survey (league table)")
            values = pd.to_numeric(survey["recommend"], errors="raise").astype("float64")
            label = "Likelihood to recommend (0-10)"
        else:
            if spec is None:
                raise ValueError(f"league table of touchpoint {metric!r} needs the dataset spec (its scale)")
            tps = touchpoint_specs(spec)
            if metric not in tps:
                raise KeyError(
                    f"league metric {metric!r} is neither 'nps', 'recommend' nor a touchpoint "
                    f"(touchpoints: {list(tps)})"
                )
            values = touchpoint_ratings(survey, metric, tps[metric])
            label = f"{tps[metric].label or metric} (mean rating)"
        frame = pd.DataFrame({"unit": survey[unit].astype(str), "y": values}).dropna()
        stats = frame.groupby("unit", sort=True)["y"].agg(n="count", mean="mean", var="var").reset_index()
        stats["ss"] = stats["var"].fillna(0.0) * (stats["n"] - 1)
        stats["score_sum"] = stats["mean"] * stats["n"]
    dropped = int((stats["n"] < min_answers).sum())
    stats = stats[stats["n"] >= max(min_answers, 1)].reset_index(drop=True)
    stats["observed"] = stats["score_sum"] / stats["n"]
    return stats, label, dropped


def _fit_units(
    stats: pd.DataFrame,
    metric: str,
    pooling: bool,
    method: str,
    draws: int,
    rng: np.random.Generator,
    seed: Any,
    nuts: dict[str, Any],
) -> tuple[np.ndarray, Diagnostics | None, str]:
    """Posterior draws (units, draws) of the units in ``stats``, with diagnostics and a method text."""
    if method not in ("exact", "nuts"):
        raise ValueError(f"pooling method must be 'exact' or 'nuts', got {method!r}")
    n = stats["n"].to_numpy()
    total_draws = draws * (nuts.get("chains", 2) if pooling and method == "nuts" else 1)
    if metric == "nps":
        counts = stats[["unit", "detractor", "passive", "promoter", "n"]]
        if pooling and len(stats) >= 2:
            post = hierarchical_shares(
                counts, "unit", draws=draws, seed=seed if method == "nuts" else rng, method=method, **nuts
            )
            return post.nps(), post.diagnostics(), post.method
        post = dirichlet_shares(counts, "unit", draws=total_draws, seed=rng)
        return post.nps(), None, post.method + ", no pooling"
    observed = stats["mean"].to_numpy()
    ss = stats["ss"].to_numpy()
    if pooling and len(stats) >= 2 and method == "nuts":
        model = build_rating_model(n, observed, ss)
        idata = sample_model(
            model,
            draws=draws,
            tune=nuts.get("tune", 1000),
            chains=nuts.get("chains", 2),
            seed=seed,
            target_accept=nuts.get("target_accept", 0.95),
            cores=nuts.get("cores", 1),
        )
        theta = idata.posterior["theta"].to_numpy()
        diag = check_mcmc(
            idata,
            var_names=["mu", "tau", "sigma", "z", "theta"],
            method="hierarchical normal (partial pooling), NUTS (PyMC)",
        )
        return (
            theta.reshape(-1, theta.shape[-1]).T,
            diag,
            "hierarchical normal model of unit means (partial pooling), NUTS",
        )
    if pooling and len(stats) >= 2:
        fit = hierarchical_normal(n, observed, ss, draws=draws, seed=rng)
        return fit["theta"], fit["diagnostics"], "hierarchical normal model of unit means (partial pooling), exact"
    sd = np.sqrt(np.where(n > 1, ss / np.maximum(n - 1, 1), np.nan))
    fallback = np.nanmean(sd) if np.isfinite(sd).any() else 1.0
    sd = np.where(np.isnan(sd), fallback, sd)
    df = np.maximum(n - 1, 1)
    est = observed[:, None] + (sd / np.sqrt(n))[:, None] * rng.standard_t(df[:, None], size=(len(n), total_draws))
    return est, None, "unit means, no pooling (t posterior)"


def rankable_units(
    survey: pd.DataFrame, metric: str = "nps", unit: str = "unit", spec: DatasetSpec | None = None, min_answers: int = 1
) -> list[str]:
    """The units :func:`league_table` would rank: those with at least ``min_answers`` answers on ``metric``
    (a league needs two; a notebook checks first and says why there is no table)."""
    if unit not in survey.columns or survey.empty:
        return []
    stats, _, _ = _unit_data(survey, metric, unit, spec, min_answers)
    return stats["unit"].astype(str).tolist()


def league_table(
    survey: pd.DataFrame,
    metric: str = "nps",
    unit: str = "unit",
    spec: DatasetSpec | None = None,
    pooling: bool = True,
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
    level: float = DEFAULT_LEVEL,
    top_k: int = 3,
    method: str = "exact",
    min_answers: int = 1,
    within: str | None = None,
    **nuts: Any,
) -> LeagueTable:
    """League table of ``unit`` on ``metric`` ('nps', 'recommend' or a touchpoint key), shrunk when pooling.

    ``within`` (e.g. "market"): units are pooled toward the typical unit *of their own group* (one
    hierarchical model per group), so branches in a market that scores high overall are not pulled down
    toward the other markets; the ranking is still across all units. Every unit must belong to one group.

    ``method="exact"`` (default) integrates the hierarchical model numerically (no MCMC);
    ``method="nuts"`` samples it with PyMC (``nuts``: tune, chains, target_accept, cores; ``draws`` per chain).

    Units with fewer than ``min_answers`` answers are left out (and counted in ``table.attrs``).
    Columns: rank (position by expected rank), unit, n, observed, estimate, low, high, rank_low,
    rank_high, p_top (P(rank <= top_k)), shrinkage (share of the unit's distance from the centre it is
    pooled toward that pooling removes), expected_rank, and the ``within`` group when given.
    """
    check_columns(survey, (unit,) + ((within,) if within else ()), f"survey (league table of {unit!r})")
    rng = rng_for(seed)
    stats, label, dropped = _unit_data(survey, metric, unit, spec, min_answers)
    if len(stats) < 2:
        raise ValueError(f"survey: a league table needs at least two units of {unit!r} with answers, got {len(stats)}")
    if within:
        pairs = survey[[unit, within]].astype(str).drop_duplicates()
        multi = pairs[unit][pairs[unit].duplicated()].unique().tolist()
        if multi:
            raise ValueError(
                f"survey: units {multi[:5]} of {unit!r} appear in several {within!r} groups; "
                f"a unit must belong to one group to be pooled within it"
            )
        stats["group"] = stats["unit"].map(pairs.set_index(unit)[within])
    else:
        stats["group"] = "all"
    parts, fits, methods = [], {}, set()
    centre = np.empty(len(stats))
    for group, idx in stats.groupby("group", sort=True).groups.items():
        sub = stats.loc[idx]
        draws_g, diag, text = _fit_units(sub, metric, pooling, method, draws, rng, seed, nuts)
        parts.append((np.asarray(idx), draws_g))
        fits[str(group)] = diag
        methods.add(text)
        centre[np.asarray(idx)] = float(sub["score_sum"].sum() / sub["n"].sum())
    est = np.empty((len(stats), parts[0][1].shape[1]))
    for idx, draws_g in parts:
        est[idx] = draws_g
    diagnostics: Diagnostics | None = None
    if any(fits.values()):
        diagnostics = next(iter(fits.values())) if len(fits) == 1 else combine(fits)
    method_text = "; ".join(sorted(methods)) + (f"; pooled within each {within}" if within else "")
    units = stats["unit"].to_numpy()
    n = stats["n"].to_numpy()
    observed = stats["observed"].to_numpy()
    overall = float(stats["score_sum"].sum() / stats["n"].sum())
    ranks = rank_draws(est)
    mean = est.mean(axis=1)
    low, high = interval(est, level, axis=1)
    tail = (1 - level) / 2
    r_low, r_high = np.quantile(ranks, [tail, 1 - tail], axis=1, method="inverted_cdf")
    with np.errstate(invalid="ignore", divide="ignore"):
        shrink = np.where(np.abs(observed - centre) > 1e-12, 1.0 - (mean - centre) / (observed - centre), 0.0)
    table = pd.DataFrame(
        {
            "unit": units,
            "n": n.astype(int),
            "observed": observed,
            "estimate": mean,
            "low": low,
            "high": high,
            "rank_low": r_low.astype(int),
            "rank_high": r_high.astype(int),
            "p_top": (ranks <= top_k).mean(axis=1),
            "shrinkage": shrink,
        }
    )
    if within:
        table[within] = stats["group"].to_numpy()
    # order by the posterior expected rank (the Bayes ranking under squared-error loss on ranks): a unit
    # whose high estimate is uncertain does not jump ahead of units that are surely good
    expected_rank = ranks.mean(axis=1)
    table["expected_rank"] = expected_rank
    order = np.lexsort((-mean, expected_rank))
    table = table.iloc[order].reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table.attrs.update(
        {"units_left_out": dropped, "min_answers": min_answers, "top_k": top_k, "level": level, "within": within}
    )
    return LeagueTable(
        table=table,
        estimate_draws=est[order],
        rank_draws=ranks[order],
        metric=metric,
        metric_label=label,
        overall_observed=overall,
        diagnostics=diagnostics,
        method=method_text,
        pooling=pooling,
    )
