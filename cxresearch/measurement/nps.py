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

NPS draws are ``100 * (p_promoter - p_detractor)``; intervals are equal-tailed at ``level`` (90 % by default).

Every fit is a :class:`SharePosterior`, which follows :class:`cxresearch.protocol.FittedModel`:
``summary(level)`` (one row per group and quantity: ``mean, sd, low, high``), ``predict(groups, kind)``
(an ``xarray.DataArray``; unseen groups from the population level of a hierarchical model),
``diagnostics()`` (the one gate), ``plot_nps`` / ``plot_shares``, ``save`` / ``load``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from cxresearch.data.nps import NPS_CLASSES, nps_class
from cxresearch.diagnostics import Diagnostics, as_diagnostics, check_mcmc, exact
from cxresearch.measurement.pooling import HETEROGENEITY_PRIOR_SCALE, hierarchical_dirichlet
from cxresearch.measurement.posterior import (
    DEFAULT_LEVEL,
    as_by,
    check_columns,
    interval,
    prob_greater,
    rng_for,
    sample_model,
    wave_order,
)
from cxresearch.protocol import FittedModel, check_level, load_idata, save_idata, standard_summary
from cxresearch.runtime import frame_hash, json_default

#: label used for the single group when there is no grouping
ALL_LABEL = "All customers"
#: separator of the grouping values in a group label ('mass / ES')
LABEL_SEPARATOR = " / "
#: the quantities of :meth:`SharePosterior.summary`, per group
QUANTITIES = ("nps", *NPS_CLASSES)
#: prior scales of the logistic-normal model (:func:`build_hierarchical_model`)
LOGISTIC_NORMAL_PRIOR = {"mu_sd": 2.0, "sigma_sd": 1.0}


def class_counts(
    survey: pd.DataFrame, by: str | Sequence[str] | None = None, column: str = "recommend"
) -> pd.DataFrame:
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
        counts = (
            frame.groupby(list(by), observed=True)["nps_class"]
            .value_counts()
            .unstack(fill_value=0)
            .reindex(columns=list(NPS_CLASSES), fill_value=0)
            .reset_index()
        )
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
    return [LABEL_SEPARATOR.join(str(v) for v in row) for row in groups[list(by)].itertuples(index=False)]


def counts_hash(counts: pd.DataFrame, by: Sequence[str]) -> str:
    """SHA-256 of the class counts a share model is fitted to (grouping values and the three counts)."""
    frame = counts[[*as_by(by), *NPS_CLASSES]].reset_index(drop=True)
    return frame_hash(frame.astype({c: "string" for c in as_by(by)}).astype({k: "int64" for k in NPS_CLASSES}))


def _seed_config(seed: Any) -> int | str | None:
    """A seed as it can be written to JSON (a Generator passed in is named, it cannot be replayed)."""
    if seed is None or isinstance(seed, (int, np.integer)):
        return None if seed is None else int(seed)
    return "numpy Generator (shared stream)"


@dataclass(eq=False)
class SharePosterior(FittedModel):
    """Posterior draws of the three NPS shares for each group: the fitted NPS share model.

    ``groups`` has one row per group (the ``by`` columns, the class counts, ``n`` and ``label``);
    ``draws`` has shape (groups, draws, 3) in the order detractor, passive, promoter. ``fit_check`` is the
    verdict of the one gate (None: closed form, :meth:`diagnostics` then says so). ``population`` holds the
    population-level draws of a hierarchical model (what an unseen group is predicted from): for the exact
    model ``{"m": (draws, 3), "kappa": (draws,)}``, for the logistic-normal model ``mu``, ``sigma_<col>``,
    ``z_<col>`` (and ``sigma_cell``), with the level names in ``notes["levels"]``. ``alpha`` (groups, 3) holds the
    parameters of a closed-form Dirichlet posterior: the summaries then use its exact moments and quantiles
    instead of Monte-Carlo estimates from the draws.

    Follows :class:`cxresearch.protocol.FittedModel` (summary / predict / diagnostics / plot_nps / save / load).
    """

    model_type: ClassVar[str] = "nps_shares"

    groups: pd.DataFrame
    by: tuple[str, ...]
    draws: np.ndarray
    method: str
    fit_check: Diagnostics | None = None
    prior: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    population: dict[str, np.ndarray] | None = None
    idata: Any = None
    alpha: np.ndarray | None = None
    model_config: dict[str, Any] = field(default_factory=dict)
    sampler_config: dict[str, Any] = field(default_factory=dict)
    data_hash: str | None = None

    def __post_init__(self) -> None:
        self.by = as_by(self.by)
        if self.draws.ndim != 3 or self.draws.shape[0] != len(self.groups) or self.draws.shape[2] != 3:
            raise ValueError(
                f"share draws must have shape (groups={len(self.groups)}, draws, 3), got {self.draws.shape}"
            )
        if "label" not in self.groups:
            self.groups = self.groups.assign(label=_labels(self.groups, self.by))
        if self.fit_check is not None:
            self.fit_check = as_diagnostics(self.fit_check)

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

    # --- the protocol ---------------------------------------------------------------------------------
    def _statistics(self, level: float) -> dict[str, dict[str, np.ndarray]]:
        """Per quantity ('nps' and the shares): mean, sd, low, high over the groups (arrays of length groups).

        From the draws; for a closed-form Dirichlet(alpha) posterior exactly instead: a share's margin is
        Beta(alpha_k, alpha_0 - alpha_k) (mean, sd and equal-tailed quantiles exact), and the NPS
        100 (p_promoter - p_detractor) has mean 100 (alpha_pro - alpha_det) / alpha_0 and variance
        1e4 [Var p_pro + Var p_det + 2 alpha_pro alpha_det / (alpha_0^2 (alpha_0 + 1))] (its interval, which
        has no closed form, comes from the draws)."""
        from scipy.stats import beta

        tail = (1.0 - check_level(level)) / 2.0
        out: dict[str, dict[str, np.ndarray]] = {}
        nps = self.nps()
        low, high = interval(nps, level, axis=1)
        out["nps"] = {"mean": nps.mean(axis=1), "sd": nps.std(axis=1, ddof=1), "low": low, "high": high}
        for k, name in enumerate(NPS_CLASSES):
            d = self.draws[..., k]
            lo, hi = interval(d, level, axis=1)
            out[name] = {"mean": d.mean(axis=1), "sd": d.std(axis=1, ddof=1), "low": lo, "high": hi}
        if self.alpha is not None:
            a = np.asarray(self.alpha, dtype=float)
            a0 = a.sum(axis=1)
            var = a * (a0[:, None] - a) / (a0[:, None] ** 2 * (a0[:, None] + 1.0))
            for k, name in enumerate(NPS_CLASSES):
                margin = beta(a[:, k], a0 - a[:, k])
                out[name] = {
                    "mean": a[:, k] / a0,
                    "sd": np.sqrt(var[:, k]),
                    "low": margin.ppf(tail),
                    "high": margin.ppf(1.0 - tail),
                }
            cov = -a[:, 0] * a[:, 2] / (a0**2 * (a0 + 1.0))
            out["nps"]["mean"] = 100.0 * (a[:, 2] - a[:, 0]) / a0
            out["nps"]["sd"] = 100.0 * np.sqrt(var[:, 2] + var[:, 0] - 2.0 * cov)
        return out

    def summary(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """One row per group and quantity (``nps`` in points, then the three shares): ``mean, sd, low, high``
        (equal-tailed interval at ``level``, in ``attrs["level"]``), then ``n`` (answers) and ``observed``
        (the sample's value). Index: (group label, quantity). Exact for a closed-form posterior (see
        :meth:`_statistics`), else from the posterior draws."""
        level = check_level(level)
        stats = self._statistics(level)
        n = self.groups["n"].to_numpy(dtype=float)
        counts = self.groups[list(NPS_CLASSES)].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            observed = np.where(n[:, None] > 0, counts / n[:, None], np.nan)
        seen = {
            "nps": 100.0 * (observed[:, 2] - observed[:, 0]),
            **{name: observed[:, k] for k, name in enumerate(NPS_CLASSES)},
        }
        rows, index = [], []
        for g, label in enumerate(self.labels):
            for quantity in QUANTITIES:
                q = stats[quantity]
                rows.append(
                    {
                        "mean": float(q["mean"][g]),
                        "sd": float(q["sd"][g]),
                        "low": float(q["low"][g]),
                        "high": float(q["high"][g]),
                        "n": int(n[g]),
                        "observed": float(seen[quantity][g]),
                    }
                )
                index.append((label, quantity))
        frame = pd.DataFrame(
            rows,
            index=pd.MultiIndex.from_tuples(index, names=["group", "quantity"]),
            columns=["mean", "sd", "low", "high", "n", "observed"],
        )
        return standard_summary(frame, level)

    def table(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """One row per group (wide, for business tables and plots): the ``by`` columns, label, n, observed
        NPS, and the posterior NPS and shares as ``<quantity>_mean``, ``_low``, ``_high`` at ``level``
        (the same figures as :meth:`summary`; ``attrs["level"]``)."""
        level = check_level(level)
        stats = self._statistics(level)
        out = self.groups[[*self.by, "label", "n"]].copy()
        n = self.groups["n"].to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            out["nps_observed"] = np.where(
                n > 0, 100.0 * (self.groups["promoter"] - self.groups["detractor"]) / n, np.nan
            )
        for quantity in QUANTITIES:
            for stat in ("mean", "low", "high"):
                out[f"{quantity}_{stat}"] = stats[quantity][stat]
        out = out.reset_index(drop=True)
        out.attrs["level"] = level
        return out

    def diagnostics(self) -> Diagnostics:
        """The one gate's verdict: ``check_mcmc`` of the NUTS fit, the grid check of the exact hierarchical
        model, or ``exact`` for the closed-form Dirichlet posterior (nothing to diagnose)."""
        if self.fit_check is not None:
            return self.fit_check
        if self.idata is not None:
            return check_mcmc(self.idata, method=self.method)
        return exact(self.method)

    def _requested(self, new_data: Any) -> list[tuple[str, dict[str, str]]]:
        """(label, {column: value}) of every group asked for by ``new_data`` (see :meth:`predict`)."""
        if new_data is None:
            return [(label, {c: str(self.groups[c].iloc[i]) for c in self.by}) for i, label in enumerate(self.labels)]
        if isinstance(new_data, pd.DataFrame):
            check_columns(new_data, self.by, "predict: new_data")
            if not self.by:
                return [(ALL_LABEL, {})] * max(len(new_data), 1)
            values = new_data[list(self.by)].astype(str)
            return [(LABEL_SEPARATOR.join(row), dict(zip(self.by, row))) for row in values.itertuples(index=False)]
        items = [new_data] if isinstance(new_data, (str, Mapping)) else list(new_data)
        out = []
        for item in items:
            if isinstance(item, Mapping):
                missing = [c for c in self.by if c not in item]
                if missing:
                    raise KeyError(
                        f"predict: group {dict(item)!r} lacks the grouping column(s) {missing} "
                        f"(grouping columns: {list(self.by)})"
                    )
                values = {c: str(item[c]) for c in self.by}
                out.append((LABEL_SEPARATOR.join(values.values()) if self.by else ALL_LABEL, values))
                continue
            label = str(item)
            parts = label.split(LABEL_SEPARATOR) if self.by else []
            if self.by and len(parts) != len(self.by):
                raise ValueError(
                    f"predict: group label {label!r} does not give one value per grouping column "
                    f"{list(self.by)} (join them with {LABEL_SEPARATOR!r}, or pass a mapping)"
                )
            out.append((label, dict(zip(self.by, parts))))
        return out

    def predict(self, new_data: Any = None, kind: str = "shares", seed: int = 0) -> Any:
        """Share (or NPS) draws of the groups in ``new_data``, as an ``xarray.DataArray``.

        ``new_data``: None (every fitted group), a frame with the ``by`` columns (one row per group), a group
        label ('mass / ES'), a {column: value} mapping, or a list of labels / mappings. ``kind="shares"``
        gives dims (sample, group, class); ``kind="nps"`` gives (sample, group), in points.

        A fitted group returns its posterior draws. A group the model never saw: a hierarchical model
        predicts it from the population level (a new draw from the fitted group distribution; the
        logistic-normal model keeps the effects of the grouping values it did see) and says so with a
        warning and ``attrs["population_level"]``; the closed-form Dirichlet model has no population level
        and raises a KeyError naming the unknown group(s). ``seed`` fixes the population-level draws.
        """
        import xarray as xr

        if kind not in ("shares", "nps"):
            raise ValueError(f"predict: kind must be 'shares' or 'nps', got {kind!r}")
        requested = self._requested(new_data)
        known = {label: i for i, label in enumerate(self.labels)}
        unseen = list(dict.fromkeys(label for label, _ in requested if label not in known))
        if unseen and self.population is None:
            raise KeyError(
                f"predict: group(s) {unseen} were not in the data of this {self.method!r} fit, which has "
                f"no population level to predict them from; fitted groups: {self.labels}"
            )
        rng = np.random.default_rng(seed)
        new_draws = {label: self._population_draws(values, rng) for label, values in requested if label in unseen}
        shares = np.stack(
            [self.draws[known[label]] if label in known else new_draws[label] for label, _ in requested], axis=1
        )  # (sample, group, class)
        labels = [label for label, _ in requested]
        attrs = {"model_type": self.model_type, "method": self.method, "population_level": unseen, "kind": kind}
        if unseen:
            warnings.warn(
                f"predict: group(s) {unseen} were not in the data; predicted from the population level "
                "of the hierarchical model (a new group drawn from the fitted group distribution)",
                UserWarning,
                stacklevel=2,
            )
        if kind == "nps":
            return xr.DataArray(
                100.0 * (shares[..., 2] - shares[..., 0]),
                dims=("sample", "group"),
                coords={"group": labels},
                name="nps",
                attrs={**attrs, "unit": "points"},
            )
        return xr.DataArray(
            shares,
            dims=("sample", "group", "class"),
            coords={"group": labels, "class": list(NPS_CLASSES)},
            name="shares",
            attrs=attrs,
        )

    def _population_draws(self, values: Mapping[str, str], rng: np.random.Generator) -> np.ndarray:
        """Share draws (draws, 3) of an unseen group from the population level."""
        pop = self.population or {}
        if "m" in pop:  # exact hierarchical Dirichlet-multinomial: p_new ~ Dirichlet(kappa * m), per draw
            alpha = pop["kappa"][:, None] * pop["m"]
            gam = rng.standard_gamma(alpha)
            return gam / gam.sum(axis=1, keepdims=True)
        # logistic-normal: eta = mu + sum_f sigma_f z_f[level] (+ sigma_cell z_cell); an unseen level (and
        # the cell effect of an unseen combination) gets a fresh z ~ Normal(0, 1)
        eta = np.array(pop["mu"], dtype=float)
        levels = self.notes.get("levels", {})
        for col in self.by:
            z_all = pop[f"z_{col}"]
            known = list(levels.get(col, []))
            value = str(values.get(col))
            z = z_all[:, known.index(value), :] if value in known else rng.standard_normal(eta.shape)
            eta = eta + pop[f"sigma_{col}"] * z
        if "sigma_cell" in pop:
            eta = eta + pop["sigma_cell"] * rng.standard_normal(eta.shape)
        logits = np.concatenate([np.zeros((eta.shape[0], 1)), eta], axis=1)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def plot_nps(
        self, ax: Any = None, level: float = DEFAULT_LEVEL, title: str | None = None, overall: float | None = None
    ) -> Any:
        """Forest plot of each group's NPS with its interval (:func:`plots.plot_nps_intervals`); the Axes."""
        from cxresearch.measurement import plots

        level = check_level(level)
        title = title or f"NPS with {100 * level:.0f}% intervals"
        fig = plots.plot_nps_intervals(self.table(level), title=title, overall=overall, level=level, ax=ax)
        return ax if ax is not None else fig.axes[0]

    def plot_shares(self, ax: Any = None, title: str = "Detractors, passives and promoters") -> Any:
        """100% stacked bars of the three shares per group (:func:`plots.plot_nps_shares`); the Axes."""
        from cxresearch.measurement import plots

        fig = plots.plot_nps_shares(self.table(), title=title, ax=ax)
        return ax if ax is not None else fig.axes[0]

    # --- save / load ----------------------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        groups = self.groups.astype({c: str for c in self.by}).to_dict(orient="list")
        state = {
            "by": list(self.by),
            "method": self.method,
            "prior": self.prior,
            "notes": self.notes,
            "fit_check": None if self.fit_check is None else self.fit_check.to_dict(),
            "groups": groups,
            "population": sorted(self.population) if self.population is not None else None,
            "idata": self.idata is not None,
        }
        (folder / "state.json").write_text(json.dumps(state, indent=1, default=json_default))
        arrays = {"draws": self.draws, **{f"pop__{k}": np.asarray(v) for k, v in (self.population or {}).items()}}
        if self.alpha is not None:
            arrays["alpha"] = np.asarray(self.alpha, dtype=float)
        # numpy's stub gives savez a bool keyword allow_pickle, which mypy matches against **arrays
        np.savez(folder / "draws.npz", **arrays)  # type: ignore[arg-type]
        if self.idata is not None:
            save_idata(self.idata, folder)

    @classmethod
    def _load_state(cls, folder: Path, meta: Mapping[str, Any]) -> SharePosterior:
        state = json.loads((folder / "state.json").read_text())
        by = tuple(state["by"])
        groups = pd.DataFrame(state["groups"])
        groups = groups.astype({**{c: "string" for c in by}, **{k: "int64" for k in (*NPS_CLASSES, "n")}})
        with np.load(folder / "draws.npz") as arrays:
            draws = arrays["draws"]
            alpha = arrays["alpha"] if "alpha" in arrays else None
            population = None if state["population"] is None else {k: arrays[f"pop__{k}"] for k in state["population"]}
        return cls(
            groups=groups,
            by=by,
            draws=draws,
            method=state["method"],
            fit_check=None if state["fit_check"] is None else Diagnostics.from_dict(state["fit_check"]),
            prior=state["prior"],
            notes=state["notes"],
            population=population,
            alpha=alpha,
            idata=load_idata(folder) if state["idata"] else None,
            model_config=dict(meta["model_config"]),
            sampler_config=dict(meta["sampler_config"]),
            data_hash=meta.get("data_hash"),
        )

    def collapse(self, by: str | Sequence[str] | None = None) -> SharePosterior:
        """Shares of coarser groups (a subset of ``by``; none = overall): the cells' shares averaged with the
        cells' answer counts as weights (the sample's own composition). The result has no population level
        (it cannot predict unseen groups)."""
        new_by = as_by(by)
        extra = [c for c in new_by if c not in self.by]
        if extra:
            raise KeyError(f"cannot collapse to {list(new_by)}: {extra} not among the grouping columns {list(self.by)}")
        counts_cols = [*NPS_CLASSES, "n"]
        if new_by:
            keys = self.groups[list(new_by)].astype(str).agg(LABEL_SEPARATOR.join, axis=1)
            groups = self.groups.groupby(list(new_by), sort=True, observed=True)[counts_cols].sum().reset_index()
            gkeys = groups[list(new_by)].astype(str).agg(LABEL_SEPARATOR.join, axis=1)
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
        return SharePosterior(
            groups=groups,
            by=new_by,
            draws=draws,
            method=self.method + " (collapsed)",
            fit_check=self.fit_check,
            prior=self.prior,
            model_config={**self.model_config, "collapsed_to": list(new_by)},
            sampler_config=dict(self.sampler_config),
            data_hash=self.data_hash,
        )


def dirichlet_shares(
    counts: pd.DataFrame,
    by: str | Sequence[str] | None = None,
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
    prior: float = 1.0,
) -> SharePosterior:
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
    method = f"Dirichlet-multinomial, closed form (prior Dirichlet({prior:g}, {prior:g}, {prior:g}))"
    return SharePosterior(
        groups=counts.reset_index(drop=True),
        by=by,
        draws=out,
        method=method,
        prior=float(prior),
        fit_check=exact(method),
        alpha=alpha,
        model_config={
            "by": list(by),
            "pooling": False,
            "method": "dirichlet",
            "prior": {"concentration": float(prior)},
        },
        sampler_config={"draws": int(draws), "seed": _seed_config(seed)},
        data_hash=counts_hash(counts, by),
    )


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
    coords: dict[str, Any] = {
        "group": list(_labels(counts, by)),
        "logit": ["passive", "promoter"],
        "share": list(NPS_CLASSES),
    }
    with pm.Model(coords=coords) as model:
        mu = pm.Normal("mu", 0.0, LOGISTIC_NORMAL_PRIOR["mu_sd"], dims="logit")
        eta = pt.zeros((n_groups, 2)) + mu
        for col in by:
            codes, levels = _codes(counts[col])
            dim = f"{col}_level"
            model.add_coord(dim, levels)
            sigma = pm.HalfNormal(f"sigma_{col}", LOGISTIC_NORMAL_PRIOR["sigma_sd"], dims="logit")
            z = pm.Normal(f"z_{col}", 0.0, 1.0, dims=(dim, "logit"))
            eta = eta + (z * sigma)[codes]
        if len(by) > 1:
            sigma_cell = pm.HalfNormal("sigma_cell", LOGISTIC_NORMAL_PRIOR["sigma_sd"], dims="logit")
            z_cell = pm.Normal("z_cell", 0.0, 1.0, dims=("group", "logit"))
            eta = eta + z_cell * sigma_cell
        logits = pt.concatenate([pt.zeros((n_groups, 1)), eta], axis=1)
        p = pm.Deterministic("p", pt.special.softmax(logits, axis=1), dims=("group", "share"))
        pm.Multinomial("counts", n=y.sum(axis=1), p=p, observed=y, dims=("group", "share"))
    return model


def logistic_normal_shares(
    counts: pd.DataFrame,
    by: str | Sequence[str],
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    seed: int | None = None,
    target_accept: float = 0.95,
    cores: int = 1,
) -> SharePosterior:
    """Partially pooled shares from the hierarchical logistic-normal multinomial, sampled with NUTS (PyMC).

    An alternative to the exact Dirichlet-multinomial pooling: one crossed effect per grouping column.
    ``draws`` is per chain; the one gate (:func:`cxresearch.diagnostics.check_mcmc`) is in ``diagnostics()``.
    """
    by = as_by(by)
    check_columns(counts, (*by, *NPS_CLASSES, "n"), "class counts")
    if len(counts) < 2:
        raise ValueError(f"partial pooling needs at least two groups of {list(by)}, got {len(counts)}")
    model = build_hierarchical_model(counts, by)
    idata = sample_model(
        model, draws=draws, tune=tune, chains=chains, seed=seed, target_accept=target_accept, cores=cores
    )
    posterior = idata.posterior

    def stacked_draws(name: str) -> np.ndarray:
        x = posterior[name].to_numpy()  # (chain, draw, ...)
        return x.reshape(-1, *x.shape[2:])

    stacked = stacked_draws("p").transpose(1, 0, 2)  # (group, sample, share)
    free = [v for v in posterior.data_vars if v != "p"]
    method = "hierarchical logistic-normal multinomial (partial pooling), NUTS"
    diag = check_mcmc(idata, var_names=[*free, "p"], method=f"{method} (PyMC)")
    sigmas = {v: posterior[v].mean(("chain", "draw")).to_numpy().tolist() for v in free if v.startswith("sigma")}
    population = {v: stacked_draws(v) for v in free if v == "mu" or v.startswith(("sigma_", "z_")) and v != "z_cell"}
    levels = {col: _codes(counts[col])[1] for col in by}
    return SharePosterior(
        groups=counts.reset_index(drop=True),
        by=by,
        draws=stacked,
        method=method,
        fit_check=diag,
        notes={"sigma_posterior_mean": sigmas, "levels": levels},
        population=population,
        idata=idata,
        model_config={"by": list(by), "pooling": True, "method": "nuts", "prior": dict(LOGISTIC_NORMAL_PRIOR)},
        sampler_config={
            "draws": int(draws),
            "tune": int(tune),
            "chains": int(chains),
            "seed": _seed_config(seed),
            "target_accept": float(target_accept),
        },
        data_hash=counts_hash(counts, by),
    )


def hierarchical_shares(
    counts: pd.DataFrame,
    by: str | Sequence[str],
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
    method: str = "exact",
    prior_scale: float = HETEROGENEITY_PRIOR_SCALE,
    **nuts: Any,
) -> SharePosterior:
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
    fit = hierarchical_dirichlet(
        counts[list(NPS_CLASSES)].to_numpy(dtype=float), draws=draws, seed=seed, prior_scale=prior_scale
    )
    s = fit["s"]
    return SharePosterior(
        groups=counts.reset_index(drop=True),
        by=by,
        draws=fit["shares"],
        method="hierarchical Dirichlet-multinomial (partial pooling), exact",
        fit_check=fit["diagnostics"],
        population={"m": fit["m"], "kappa": fit["kappa"]},
        notes={
            "heterogeneity_median": float(np.median(s)),
            "heterogeneity_interval": [float(v) for v in interval(s, DEFAULT_LEVEL)],
            "typical_shares": fit["m"].mean(axis=0).tolist(),
        },
        model_config={
            "by": list(by),
            "pooling": True,
            "method": "exact",
            "prior": {"heterogeneity_scale": float(prior_scale)},
        },
        sampler_config={"draws": int(draws), "seed": _seed_config(seed)},
        data_hash=counts_hash(counts, by),
    )


def nps_posterior(
    survey: pd.DataFrame,
    by: str | Sequence[str] | None = None,
    pooling: bool = False,
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
    prior: float = 1.0,
    method: str = "exact",
    column: str = "recommend",
    **nuts: Any,
) -> SharePosterior:
    """NPS shares posterior overall (``by=None``) or per group, pooled or not.

    Pooling applies only with two or more groups; otherwise the exact Dirichlet posterior is used.
    ``method`` chooses the pooled model ('exact' Dirichlet-multinomial or 'nuts' logistic-normal).
    """
    counts = class_counts(survey, by, column=column)
    if counts["n"].sum() == 0:
        raise ValueError(f"survey: no answers in column {column!r} (after filters); cannot estimate NPS")
    if pooling and by is not None and as_by(by) and len(counts) >= 2:
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
        rows.append(
            {"group_a": posterior.labels[i], "group_b": posterior.labels[j], **difference(nps[i], nps[j], level)}
        )
    return pd.DataFrame(rows, columns=["group_a", "group_b", "mean", "low", "high", "p_greater"])


def wave_change(
    survey: pd.DataFrame,
    from_wave: str | None = None,
    to_wave: str | None = None,
    by: str | Sequence[str] | None = None,
    draws: int = 4000,
    seed: int | None = None,
    prior: float = 1.0,
    level: float = DEFAULT_LEVEL,
) -> pd.DataFrame:
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
    post = {
        w: dirichlet_shares(class_counts(survey[wave_str == w], by), by, draws=draws, seed=rng, prior=prior)
        for w in (from_wave, to_wave)
    }
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
        row.update(
            {
                "label": label,
                "from_wave": from_wave,
                "to_wave": to_wave,
                "n_from": int(post[from_wave].groups["n"].iloc[post[from_wave].index_of(label)]),
                "n_to": int(post[to_wave].groups["n"].iloc[post[to_wave].index_of(label)]),
                "nps_from": float(nps_b.mean()),
                "nps_to": float(nps_a.mean()),
                "change_mean": d["mean"],
                "change_low": d["low"],
                "change_high": d["high"],
                "p_increase": d["p_greater"],
            }
        )
        for k, name in enumerate(NPS_CLASSES):
            dk = difference(a[:, k], b[:, k], level)
            row.update(
                {f"{name}_change_mean": dk["mean"], f"{name}_change_low": dk["low"], f"{name}_change_high": dk["high"]}
            )
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
