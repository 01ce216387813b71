"""The posterior of a driver fit per (thinned) draw, as the lookup tables every effect is computed from.

:func:`posterior` thins the draws and rebuilds, for each equation, the per-cell tables the fused kernels
use (touchpoint terms, group deviations, intercepts; :func:`build_tables` is the NumPy twin of
:func:`cxresearch.drivers.kernels.build_table`). :mod:`.predict` (the one forward pass) and :mod:`.effects`
(impacts, ranks, Kano, root causes) both read these; this module imports neither, so the three form no cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cxresearch.drivers.model import EquationLayout, intercept_deviations

if TYPE_CHECKING:  # pragma: no cover
    from cxresearch.drivers.fit import DriverFit


# --------------------------------------------------------------------------------------------------------
# per-draw parameters of each equation
# --------------------------------------------------------------------------------------------------------
@dataclass
class EquationDraws:
    """One equation's parameters per (thinned) draw, and its lookup tables."""

    layout: EquationLayout
    coef: np.ndarray  # (S, terms, T_j)
    level_dev: np.ndarray | None  # (S, L, T_j) slope deviations by level
    cell_dev: np.ndarray  # (S, V, C, T_j): deviations of the V group-varying terms (layout.dev_terms) per cell
    intercept_cell: np.ndarray  # (S, C)
    paths: np.ndarray  # (S, K_j)
    theta: np.ndarray  # cutpoints (S, K-1) or sigma (S, 1) or zeros
    table: np.ndarray  # (S, C, T_j + 1, n_states); last slot = intercept at state 0
    cols: np.ndarray  # touchpoint columns in prep.states
    sd_eta: np.ndarray | None = None  # latent: (S,) sd of the latent score
    intercept_common: np.ndarray | None = None  # (S,) the population intercept (0 without one)
    intercept_level_dev: np.ndarray | None = None  # (S, L) intercept deviations by level, None without
    level_devs: dict[str, np.ndarray] = field(default_factory=dict)  # term -> (S, L, T_j), every varying term


@dataclass
class Posterior:
    """Thinned per-draw parameters of all equations, and the data they apply to."""

    fit: DriverFit
    index: np.ndarray  # which draws were kept
    equations: dict[str, EquationDraws]
    latent_eta: dict[str, np.ndarray] = field(default_factory=dict)  # (S, N)

    @property
    def n(self) -> int:
        return len(self.index)


def _term_values(fit: DriverFit, name: str, index: np.ndarray) -> np.ndarray:
    return fit.draws(name)[index]


def posterior(fit: DriverFit, max_draws: int = 1000, seed: int = 0) -> Posterior:
    """Thin the draws to at most ``max_draws`` (evenly spaced) and rebuild every equation's tables."""
    total = fit.n_draws
    index = np.unique(np.linspace(0, total - 1, min(max_draws, total)).round().astype(int))
    prep = fit.prep
    post = fit.idata.posterior
    equations: dict[str, EquationDraws] = {}
    n_s = len(index)
    for j, eq in fit.layout.equations.items():
        n_tj = len(eq.tp_index)
        coef = _term_values(fit, eq.name("coef"), index) if n_tj else np.zeros((n_s, 1, 0))
        dev_terms = list(getattr(eq, "dev_terms", ["slope"]))
        level_dev, level_devs = None, {}
        cell_dev = np.zeros((n_s, len(dev_terms), prep.n_cells, n_tj))
        if eq.slope_dims:
            for v, term in enumerate(dev_terms):  # kept as deterministics whatever the parametrisation
                level_devs[term] = _term_values(fit, eq.name(f"{term}_dev"), index)  # (S, L, T_j)
                cell_dev[:, v] = np.einsum("cl,slt->sct", eq.cell_of_level, level_devs[term])
            level_dev = level_devs["slope"]
        icpt = np.zeros((n_s, prep.n_cells))
        common = np.zeros(n_s)
        dev_i = None
        if eq.has_intercept:
            common = _term_values(fit, eq.name("intercept"), index)
            icpt = icpt + common[:, None]
        if eq.intercept_dims and len(eq.dim_of_level):
            dev_i = intercept_deviations(
                eq, fit.prep.resolved.spec.priors.group_intercept_sd, _term_values(fit, eq.name("z_intercept"), index)
            )
            icpt = icpt + np.einsum("cl,sl->sc", eq.cell_of_level, dev_i)
        paths = _term_values(fit, eq.name("path"), index) if eq.construct_sources else np.zeros((n_s, 0))
        if eq.likelihood == "ordered_logistic":
            theta = _term_values(fit, eq.name("cutpoints"), index)
        elif eq.likelihood == "gaussian":
            theta = _term_values(fit, eq.name("sigma"), index)[:, None]
        else:
            theta = np.zeros((n_s, 1))
        cols = eq.tp_index
        features = np.stack([prep.features[t][cols] for t in eq.terms]) if n_tj else np.zeros((1, 0, prep.n_states))
        table = build_tables(coef, cell_dev, icpt, features, dev_features(prep, eq), cols, prep.freq)
        equations[j] = EquationDraws(
            layout=eq,
            coef=coef,
            level_dev=level_dev,
            cell_dev=cell_dev,
            intercept_cell=icpt,
            paths=paths,
            theta=theta,
            table=table,
            cols=cols,
            intercept_common=common,
            intercept_level_dev=dev_i,
            level_devs=level_devs,
        )
    latent_eta = {k: _term_values(fit, f"{k}__eta", index) for k in fit.layout.latent if f"{k}__eta" in post}
    return Posterior(fit=fit, index=index, equations=equations, latent_eta=latent_eta)


def dev_features(prep: Any, eq: EquationLayout) -> np.ndarray:
    """(V, T_j, S) the columns of the equation's group-varying terms (``eq.dev_terms``) at each state."""
    terms = list(getattr(eq, "dev_terms", ["slope"]))
    return np.stack([prep.features[t][eq.tp_index] for t in terms])


def build_tables(
    coef: np.ndarray,
    cell_dev: np.ndarray,
    intercept_cell: np.ndarray,
    features: np.ndarray,
    slope_feature: np.ndarray,
    cols: np.ndarray,
    freq: np.ndarray,
    xp: Any = np,
) -> np.ndarray:
    """NumPy twin of :func:`cxresearch.drivers.kernels.build_table`, vectorised over draws: ``cell_dev``
    (S, V, C, T_j) and ``slope_feature`` (V, T_j, S) for the V group-varying terms. ``xp``: the array module
    (``jax.numpy`` for the JAX backend's likelihood, :mod:`.kernels_jax`); no in-place writes, so it traces."""
    n_s = coef.shape[0]
    _, n_tj, n_states = slope_feature.shape
    base = xp.einsum("nkt,ktq->ntq", coef, features) if n_tj else xp.zeros((n_s, 0, n_states))
    table_tp = base[:, None, :, :] + xp.einsum("svct,vtq->sctq", cell_dev, slope_feature)
    n_rows = freq[:, -1, :].sum()
    if n_tj:
        mean = xp.einsum("ctq,nctq->nt", freq[:, cols, :], table_tp) / n_rows
        table_tp = table_tp - mean[:, None, :, None]
    # the intercept slot: the cell intercept at state 0, zeros elsewhere
    slot = intercept_cell[:, :, None, None] * (xp.arange(n_states) == 0)[None, None, None, :]
    return xp.concatenate([table_tp, slot], axis=2)
