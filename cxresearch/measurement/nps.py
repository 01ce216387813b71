"""Relational NPS with a proper posterior: the three shares come from one multinomial.

Each answer falls in one of three classes (detractor 0-6, passive 7-8, promoter 9-10), so the class
counts of a group are multinomial with shares ``p = (p_detractor, p_passive, p_promoter)``.

- **Pooling off** (or one group): a Dirichlet(prior, prior, prior) prior (default 1, the uniform prior
  on the simplex) gives the exact closed-form posterior Dirichlet(prior + counts). No MCMC.
- **Pooling on** (several segments / markets / units): a hierarchical Dirichlet-multinomial,
  ``p[g] ~ Dirichlet(kappa * m)``, integrated exactly over its three hyperparameters (see
  :mod:`cxresearch.measurement.pooling`): small groups borrow strength from the rest, large groups keep
  their own data, and no MCMC is needed. With several grouping columns the groups are their observed
  combinations (cells), and :meth:`SharePosterior.collapse` gives segment or market totals.
  Alternative (``method="nuts"``): a hierarchical logistic-normal multinomial with one crossed,
  non-centred effect per grouping column, sampled with NUTS (PyMC), diagnostics attached::

      eta[g, k] = mu[k] + sum_f sigma_f[k] * z_f[level_f(g), k]  (+ sigma_cell[k] * z_cell[g, k])
      p[g]      = softmax(0, eta[g, passive], eta[g, promoter])

NPS draws are ``100 * (p_promoter - p_detractor)``; intervals are equal-tailed (90 % by default).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.data.nps import NPS_CLASSES, nps_class
from cxresearch.measurement.pooling import HETEROGENEITY_PRIOR_SCALE, hierarchical_dirichlet
from cxresearch.measurement.posterior import (
    DEFAULT_LEVEL,
    as_by,
    check_columns,
    interval,
    mcmc_diagnostics,
    prob_greater,
    rng_for,
    sample_model,
    wave_order,
)

#: label used for the single group when there is no grouping
ALL_LABEL = "All customers"


def class_counts(survey: pd.DataFrame, by: str | Sequence[str] | None = None,
                 column: str = "recommend") -> pd.DataFrame:
    """Detractor / passive / promoter counts (and ``n``) per group of the 0-10 ``column``.

    Missing answers are left out. Groups are the observed combinations of ``by``, sorted.
    """
    by = as_by(by)
    check_columns(survey, (column, *by), "survey (NPS)")
    classes = pd.Series(nps_class(survey[column]), index=survey.index, name="nps_class")
    frame = pd.DataFrame({c: survey[c].astype("string") for c in by}, index=survey.index)
    frame["nps_class"] = classes
    frame = frame[classes.notna()]
    if by:
        empty = [c for c in by if frame[c].isna().any()]
        if empty:
            raise ValueError(f"survey: grouping column(s) {empty} have missing values; every answer needs a group")
        counts = (frame.groupby(list(by), observed=True)["nps_class"].value_counts().unstack(fill_value=0)
                  .reindex(columns=list(NPS_CLASSES), fill_value=0).reset_index())
        counts.columns.name = None
    else:
        vc = frame["nps_class"].value_counts()
        counts = pd.DataFrame([{k: int(vc.get(k, 0)) for k in NPS_CLASSES}])
    for k in NPS_CLASSES:
        counts[k] = counts[k].astype("int64")
    counts["n"] = counts[list(NPS_CLASSES)].sum(axis=1).astype("int64")
    return counts.sort_values(list(by)).reset_index(drop=True) if by else counts


def _labels(groups: pd.DataFrame, by: tuple[str, ...]) -> list[str]:
    if not by:
        return [ALL_LABEL] * len(groups)
    return [" / ".join(str(v) for v in row) for row in groups[list(by)].itertuples(index=False)]


@dataclass
class SharePosterior:
    """Posterior draws of the three NPS shares for each group.

    ``groups`` has one row per group (the ``by`` columns, the class counts, ``n`` and ``label``);
    ``draws`` has shape (groups, draws, 3) in the order detractor, passive, promoter.
    """

    groups: pd.DataFrame
    by: tuple[str, ...]
    draws: np.ndarray
    method: str
    diagnostics: dict[str, Any] | None = None
    prior: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.draws.ndim != 3 or self.draws.shape[0] != len(self.groups) or self.draws.shape[2] != 3:
            raise ValueError(f"share draws must have shape (groups={len(self.groups)}, draws, 3), "
                             f"got {self.draws.shape}")
        if "label" not in self.groups:
            self.groups = self.groups.assign(label=_labels(self.groups, self.by))

    @property
    def labels(self) -> list[str]:
        """One readable label per group ('mass / ES'; 'All customers' without grouping)."""
        return list(self.groups["label"])

    def nps(self) -> np.ndarray:
        """NPS draws in points, shape (groups, draws)."""
        return 100.0 * (self.draws[..., 2] - self.draws[..., 0])

    def index_of(self, key: Any) -> int:
        """Row of a group given its label, its value (one grouping column) or a {column: value} mapping."""
        if isinstance(key, Mapping):
            mask = np.ones(len(self.groups), dtype=bool)
            for col, value in key.items():
                if col not in self.by:
                    raise KeyError(f"group key column {col!r} is not one of the grouping columns {list(self.by)}")
                mask &= (self.groups[col].astype(str) == str(value)).to_numpy()
            hits = np.flatnonzero(mask)
        else:
            hits = np.flatnonzero(self.groups["label"].astype(str).to_numpy() == str(key))
            if not len(hits) and len(self.by) == 1:
                hits = np.flatnonzero(self.groups[self.by[0]].astype(str).to_numpy() == str(key))
        if len(hits) != 1:
            raise KeyError(f"group {key!r} not found (or not unique); groups: {self.labels}")
        return int(hits[0])

    def group_draws(self, key: Any) -> np.ndarray:
        """Share draws (draws, 3) of one group."""
        return self.draws[self.index_of(key)]

    def summary(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """One row per group: n, observed NPS, posterior NPS and shares with intervals."""
        nps = self.nps()
        low, high = interval(nps, level, axis=1)
        out = self.groups[[*self.by, "label", "n"]].copy()
        n = self.groups["n"].to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            out["nps_observed"] = np.where(n > 0, 100.0 * (self.groups["promoter"] - self.groups["detractor"]) / n,
                                           np.nan)
        out["nps_mean"] = nps.mean(axis=1)
        out["nps_low"], out["nps_high"] = low, high
        for k, name in enumerate(NPS_CLASSES):
            d = self.draws[..., k]
            lo, hi = interval(d, level, axis=1)
            out[f"{name}_mean"], out[f"{name}_low"], out[f"{name}_high"] = d.mean(axis=1), lo, hi
        return out.reset_index(drop=True)

    def collapse(self, by: str | Sequence[str] | None = None) -> "SharePosterior":
        """Shares of coarser groups (a subset of ``by``; none = overall): the cells' shares averaged with the
        cells' answer counts as weights (the sample's own composition)."""
        new_by = as_by(by)
        extra = [c for c in new_by if c not in self.by]
        if extra:
            raise KeyError(f"cannot collapse to {list(new_by)}: {extra} not among the grouping columns {list(self.by)}")
        counts_cols = [*NPS_CLASSES, "n"]
        if new_by:
            keys = self.groups[list(new_by)].astype(str).agg(" / ".join, axis=1)
            groups = self.groups.groupby(list(new_by), sort=True, observed=True)[counts_cols].sum().reset_index()
            gkeys = groups[list(new_by)].astype(str).agg(" / ".join, axis=1)
        else:
            keys = pd.Series([ALL_LABEL] * len(self.groups))
            groups = self.groups[counts_cols].sum().to_frame().T.astype("int64")
            gkeys = pd.Series([ALL_LABEL])
        draws = np.empty((len(groups), self.draws.shape[1], 3))
        n = self.groups["n"].to_numpy(dtype=float)
        for i, key in enumerate(gkeys):
            members = np.flatnonzero(keys.to_numpy() == key)
            w = n[members] / n[members].sum()
            draws[i] = np.tensordot(w, self.draws[members], axes=(0, 0))
        return SharePosterior(groups=groups, by=new_by, draws=draws, method=self.method + " (collapsed)",
                              diagnostics=self.diagnostics, prior=self.prior)


def dirichlet_shares(counts: pd.DataFrame, by: str | Sequence[str] | None = None, draws: int = 4000,
                     seed: int | np.random.Generator | None = None, prior: float = 1.0) -> SharePosterior:
    """Exact posterior of each group's shares with no pooling: Dirichlet(prior + counts), sampled."""
    by = as_by(by)
    check_columns(counts, (*by, *NPS_CLASSES, "n"), "class counts")
    if not prior > 0:
        raise ValueError(f"Dirichlet prior concentration must be positive, got {prior!r}")
    if draws < 1:
        raise ValueError(f"draws must be positive, got {draws!r}")
    rng = rng_for(seed)
    alpha = counts[list(NPS_CLASSES)].to_numpy(dtype=float) + prior
    out = np.stack([rng.dirichlet(a, size=int(draws)) for a in alpha]) if len(alpha) else np.empty((0, draws, 3))
    return SharePosterior(groups=counts.reset_index(drop=True), by=by, draws=out,
                          method=f"Dirichlet-multinomial, closed form (prior Dirichlet({prior:g}, {prior:g}, {prior:g}))",
                          prior=float(prior))


def _codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    cat = pd.Categorical(values.astype(str))
    return cat.codes.astype("int64"), [str(c) for c in cat.categories]


def build_hierarchical_model(counts: pd.DataFrame, by: Sequence[str]) -> Any:
    """The PyMC model of the hierarchical logistic-normal multinomial (see the module docstring)."""
    import pymc as pm
    import pytensor.tensor as pt

    by = as_by(by)
    y = counts[list(NPS_CLASSES)].to_numpy(dtype="int64")
    n_groups = len(counts)
    coords: dict[str, Any] = {"group": list(_labels(counts, by)), "logit": ["passive", "promoter"],
                              "share": list(NPS_CLASSES)}
    with pm.Model(coords=coords) as model:
        mu = pm.Normal("mu", 0.0, 2.0, dims="logit")
        eta = pt.zeros((n_groups, 2)) + mu
        for col in by:
            codes, levels = _codes(counts[col])
            dim = f"{col}_level"
            model.add_coord(dim, levels)
            sigma = pm.HalfNormal(f"sigma_{col}", 1.0, dims="logit")
            z = pm.Normal(f"z_{col}", 0.0, 1.0, dims=(dim, "logit"))
            eta = eta + (z * sigma)[codes]
        if len(by) > 1:
            sigma_cell = pm.HalfNormal("sigma_cell", 1.0, dims="logit")
            z_cell = pm.Normal("z_cell", 0.0, 1.0, dims=("group", "logit"))
            eta = eta + z_cell * sigma_cell
        logits = pt.concatenate([pt.zeros((n_groups, 1)), eta], axis=1)
        p = pm.Deterministic("p", pt.special.softmax(logits, axis=1), dims=("group", "share"))
        pm.Multinomial("counts", n=y.sum(axis=1), p=p, observed=y, dims=("group", "share"))
    return model


def logistic_normal_shares(counts: pd.DataFrame, by: str | Sequence[str], draws: int = 1000, tune: int = 1000,
                           chains: int = 2, seed: int | None = None, target_accept: float = 0.95,
                           cores: int = 1) -> SharePosterior:
    """Partially pooled shares from the hierarchical logistic-normal multinomial, sampled with NUTS (PyMC).

    An alternative to the exact Dirichlet-multinomial pooling: one crossed effect per grouping column.
    ``draws`` is per chain; R-hat, ESS and divergences are in ``diagnostics``.
    """
    by = as_by(by)
    check_columns(counts, (*by, *NPS_CLASSES, "n"), "class counts")
    if len(counts) < 2:
        raise ValueError(f"partial pooling needs at least two groups of {list(by)}, got {len(counts)}")
    model = build_hierarchical_model(counts, by)
    idata = sample_model(model, draws=draws, tune=tune, chains=chains, seed=seed,
                         target_accept=target_accept, cores=cores)
    p = idata.posterior["p"].to_numpy()  # (chain, draw, group, share)
    stacked = p.reshape(-1, p.shape[2], 3).transpose(1, 0, 2)
    free = [v for v in idata.posterior.data_vars if v != "p"]
    diag = mcmc_diagnostics(idata, var_names=[*free, "p"],
                            method="hierarchical logistic-normal multinomial, NUTS (PyMC)")
    sigmas = {v: idata.posterior[v].mean(("chain", "draw")).to_numpy().tolist()
              for v in free if v.startswith("sigma")}
    return SharePosterior(groups=counts.reset_index(drop=True), by=by, draws=stacked,
                          method="hierarchical logistic-normal multinomial (partial pooling), NUTS",
                          diagnostics=diag, notes={"sigma_posterior_mean": sigmas})


def hierarchical_shares(counts: pd.DataFrame, by: str | Sequence[str], draws: int = 4000,
                        seed: int | np.random.Generator | None = None, method: str = "exact",
                        prior_scale: float = HETEROGENEITY_PRIOR_SCALE, **nuts: Any) -> SharePosterior:
    """Partially pooled posterior of each group's shares.

    ``method="exact"`` (default): the hierarchical Dirichlet-multinomial of
    :mod:`cxresearch.measurement.pooling`, integrated numerically (no MCMC; the groups are the observed
    combinations of ``by``, all pooled toward one typical group). ``method="nuts"``:
    :func:`logistic_normal_shares` (``nuts`` keywords: tune, chains, target_accept, cores; ``draws`` is
    then per chain).
    """
    by = as_by(by)
    if not by:
        raise ValueError("hierarchical_shares needs at least one grouping column (by=...)")
    check_columns(counts, (*by, *NPS_CLASSES, "n"), "class counts")
    if len(counts) < 2:
        raise ValueError(f"partial pooling needs at least two groups of {list(by)}, got {len(counts)}")
    if method == "nuts":
        seed_int = seed if seed is None or isinstance(seed, int) else int(rng_for(seed).integers(2**31))
        return logistic_normal_shares(counts, by, draws=draws, seed=seed_int, **nuts)
    if method != "exact":
        raise ValueError(f"pooling method must be 'exact' or 'nuts', got {method!r}")
    fit = hierarchical_dirichlet(counts[list(NPS_CLASSES)].to_numpy(dtype=float), draws=draws, seed=seed,
                                 prior_scale=prior_scale)
    s = fit["s"]
    return SharePosterior(groups=counts.reset_index(drop=True), by=by, draws=fit["shares"],
                          method="hierarchical Dirichlet-multinomial (partial pooling), exact",
                          diagnostics=fit["diagnostics"],
                          notes={"heterogeneity_median": float(np.median(s)),
                                 "heterogeneity_interval": [float(np.quantile(s, 0.05)), float(np.quantile(s, 0.95))],
                                 "typical_shares": fit["m"].mean(axis=0).tolist()})


def nps_posterior(survey: pd.DataFrame, by: str | Sequence[str] | None = None, pooling: bool = False,
                  draws: int = 4000, seed: int | np.random.Generator | None = None, prior: float = 1.0,
                  method: str = "exact", column: str = "recommend", **nuts: Any) -> SharePosterior:
    """NPS shares posterior overall (``by=None``) or per group, pooled or not.

    Pooling applies only with two or more groups; otherwise the exact Dirichlet posterior is used.
    ``method`` chooses the pooled model ('exact' Dirichlet-multinomial or 'nuts' logistic-normal).
    """
    counts = class_counts(survey, by, column=column)
    if counts["n"].sum() == 0:
        raise ValueError(f"survey: no answers in column {column!r} (after filters); cannot estimate NPS")
    if pooling and as_by(by) and len(counts) >= 2:
        return hierarchical_shares(counts, by, draws=draws, seed=seed, method=method, **nuts)
    return dirichlet_shares(counts, by, draws=draws, seed=seed, prior=prior)


def difference(a: np.ndarray, b: np.ndarray, level: float = DEFAULT_LEVEL) -> dict[str, float]:
    """Summary of the draws of ``a - b``: mean, interval and P(a - b > 0)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    low, high = interval(d, level)
    return {"mean": float(d.mean()), "low": float(low), "high": float(high), "p_greater": prob_greater(d, 0.0)}


def compare_groups(posterior: SharePosterior, a: Any, b: Any, level: float = DEFAULT_LEVEL) -> dict[str, Any]:
    """NPS of group ``a`` minus group ``b`` (same posterior): mean, interval, P(difference > 0)."""
    ia, ib = posterior.index_of(a), posterior.index_of(b)
    nps = posterior.nps()
    out = difference(nps[ia], nps[ib], level)
    return {"group_a": posterior.labels[ia], "group_b": posterior.labels[ib], **out}


def pairwise_differences(posterior: SharePosterior, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Every pair of groups: NPS difference (first minus second) with interval and P(difference > 0).

    Pairs are oriented so that the group with the higher posterior mean NPS comes first.
    """
    nps = posterior.nps()
    means = nps.mean(axis=1)
    rows = []
    for i, j in combinations(range(len(posterior.labels)), 2):
        if means[j] > means[i]:
            i, j = j, i
        rows.append({"group_a": posterior.labels[i], "group_b": posterior.labels[j],
                     **difference(nps[i], nps[j], level)})
    return pd.DataFrame(rows, columns=["group_a", "group_b", "mean", "low", "high", "p_greater"])


def wave_change(survey: pd.DataFrame, from_wave: str | None = None, to_wave: str | None = None,
                by: str | Sequence[str] | None = None, draws: int = 4000, seed: int | None = None,
                prior: float = 1.0, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Change in NPS and shares from one wave to another (default: the last two), per group.

    Waves are independent samples, so each wave's shares get their own exact Dirichlet posterior (no
    pooling across waves: pooling would shrink a real change toward zero).
    """
    by = as_by(by)
    check_columns(survey, ("wave",), "survey (wave change)")
    waves = wave_order(survey["wave"].dropna().unique())
    if len(waves) < 2:
        raise ValueError(f"survey: a wave change needs at least two waves, found {waves}")
    to_wave = str(to_wave) if to_wave is not None else waves[-1]
    from_wave = str(from_wave) if from_wave is not None else waves[waves.index(to_wave) - 1]
    for w in (from_wave, to_wave):
        if w not in waves:
            raise ValueError(f"survey: wave {w!r} not found; waves present: {waves}")
    rng = rng_for(seed)
    wave_str = survey["wave"].astype(str)
    post = {w: dirichlet_shares(class_counts(survey[wave_str == w], by), by, draws=draws, seed=rng, prior=prior)
            for w in (from_wave, to_wave)}
    rows = []
    for label in post[to_wave].labels:
        if label not in post[from_wave].labels:
            continue
        a = post[to_wave].group_draws(label)
        b = post[from_wave].group_draws(label)
        nps_a, nps_b = 100 * (a[:, 2] - a[:, 0]), 100 * (b[:, 2] - b[:, 0])
        row: dict[str, Any] = {}
        if by:
            i = post[to_wave].index_of(label)
            row.update({c: post[to_wave].groups[c].iloc[i] for c in by})
        d = difference(nps_a, nps_b, level)
        row.update({"label": label, "from_wave": from_wave, "to_wave": to_wave,
                    "n_from": int(post[from_wave].groups["n"].iloc[post[from_wave].index_of(label)]),
                    "n_to": int(post[to_wave].groups["n"].iloc[post[to_wave].index_of(label)]),
                    "nps_from": float(nps_b.mean()), "nps_to": float(nps_a.mean()),
                    "change_mean": d["mean"], "change_low": d["low"], "change_high": d["high"],
                    "p_increase": d["p_greater"]})
        for k, name in enumerate(NPS_CLASSES):
            dk = difference(a[:, k], b[:, k], level)
            row.update({f"{name}_change_mean": dk["mean"], f"{name}_change_low": dk["low"],
                        f"{name}_change_high": dk["high"]})
        rows.append(row)
    return pd.DataFrame(rows)


def select_wave(survey: pd.DataFrame, wave: str | None) -> tuple[pd.DataFrame, str]:
    """Rows of one wave: ``"latest"`` (or None) = the last wave in time order, ``"all"`` = every wave."""
    if "wave" not in survey.columns:
        return survey, "all"
    waves = wave_order(survey["wave"].dropna().unique())
    if not waves:
        raise ValueError("survey: no wave values (the survey is empty after filters?)")
    if wave is None or str(wave).lower() == "latest":
        wave = waves[-1]
    wave = str(wave)
    if wave.lower() == "all":
        return survey, "all"
    if wave not in waves:
        raise ValueError(f"survey: wave {wave!r} not found; waves present: {waves}")
    return survey[survey["wave"].astype(str) == wave], wave
