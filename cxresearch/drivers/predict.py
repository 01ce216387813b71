"""The driver model's one forward pass, and predictions for any survey rows.

:func:`forward_pass` computes the linear predictor of every endogenous construct, in the model's
topological order (touchpoint states -> emotion / mediators -> outcome), per posterior draw and row:

    eta_j[draw, row] = sum_t table_j[draw, cell_row, t, state_row,t] + sum_s path_js[draw] x score_s[row]

with the per-cell lookup tables of :mod:`.kernels` (touchpoint terms, group deviations, intercepts) and
the structural paths from other constructs. It is the same computation the fused likelihood kernels do
(``_gather`` in :mod:`.kernels`), so on the fitted rows it reproduces the sampled model exactly; every
effect (:mod:`.effects`: impacts, root causes, the posterior predictive check), :func:`predict`, the
per-row log-likelihood (:func:`pointwise_log_likelihood`) and the initiatives engine's scenario model use it.

The scores of construct sources come in two modes:

- ``mediators="observed"``: each row's observed scores (composites standardised with the *fitted* data's
  moments; latent constructs: their sampled scores, fitted rows only). This is what the likelihood
  conditions on: in-sample linear predictors and log-likelihoods.
- ``mediators="predicted"``: endogenous constructs enter with their model prediction (the mean of a
  Gaussian / latent score; the expected standardised answer of an ordinal / binary one). This is the
  prediction for respondents whose emotion is not known (or is to change with their ratings).
  Probabilities then integrate out the Gaussian / latent mediators' residuals (Gauss-Hermite): the
  outcome's linear predictor is ``mean + s z``, ``z ~ N(0, 1)``, ``s^2`` the sum of each mediator's
  residual variance times the square of its total path into the outcome.

New respondents: their touchpoint ratings become states on the fitted scales; a known segment / market
level uses that level's deviations; a level the model never saw gets the population value (deviation 0)
and :func:`predict` warns, naming the column and levels (also listed in the result's attrs).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cxresearch.drivers.draws import EquationDraws, Posterior, build_tables, dev_features, posterior
from cxresearch.drivers.kernels import gather_over_draws, row_offsets
from cxresearch.drivers.likelihoods import ordered_logistic_probs
from cxresearch.drivers.model import _numeric_column

if TYPE_CHECKING:  # pragma: no cover
    from cxresearch.drivers.fit import DriverFit

KINDS = ("probability", "expected", "linear_predictor")
MEDIATOR_MODES = ("observed", "predicted")
#: Gauss-Hermite nodes for the mediators' residual (32 nodes: error far below 1e-6 in a probability for
#: residual sds up to ~3 on the logit scale)
QUADRATURE_NODES = 32
#: values held at once by the chunked computations (draws x rows x classes x nodes): ~64 MB of float64
CHUNK_VALUES = 8_000_000
#: log_likelihood="auto" stores it when rows x kept draws x observed equations is at most this (200 MB)
LOG_LIKELIHOOD_MAX_VALUES = 25_000_000


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)), stable for any x."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _log1mexp(x: np.ndarray) -> np.ndarray:
    """log(1 - exp(x)) for x < 0 (the same branches as the model's graph)."""
    return np.where(
        x > -0.693147180559945, np.log(-np.expm1(np.minimum(x, -1e-300))), np.log1p(-np.exp(np.minimum(x, 0.0)))
    )


# --------------------------------------------------------------------------------------------------------
# rows -> the model's inputs
# --------------------------------------------------------------------------------------------------------
@dataclass
class RowInputs:
    """The model's inputs for some rows.

    ``cell`` indexes the fitted cells (0..C-1) or, for rows with a group level the model never saw, the
    pseudo-cells C, C+1, ... whose level membership is ``pseudo_levels`` (P, L) (zero on the unseen
    dimension: population value). ``scores``: observed construct scores, (n,) or per draw (draws, n) for
    latent scores (``score_draws`` says which draws of the posterior the rows of those arrays are).
    """

    states: np.ndarray  # (n, T + 1) int; the last column is the intercept slot (0)
    cell: np.ndarray  # (n,) int
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    pseudo_levels: np.ndarray | None = None  # (P, L)
    unseen: dict[str, list[str]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.states.shape[0])


def fitted_rows(p: Posterior, rows: np.ndarray | None = None) -> RowInputs:
    """The fitted rows (indices ``rows``, default all) as model inputs, with their observed scores and the
    sampled latent scores of the posterior's draws."""
    prep = p.fit.prep
    rows = np.arange(prep.n) if rows is None else np.asarray(rows)
    scores = {k: v[rows] for k, v in prep.scores.items()}
    scores.update({k: v[:, rows] for k, v in p.latent_eta.items()})
    return RowInputs(states=prep.states[rows], cell=prep.cell[rows], scores=scores)


def touchpoint_states(prep: Any, frame: pd.DataFrame, touchpoints: list[str] | None = None) -> np.ndarray:
    """(n, T + 1) states of new rows on the fitted scales (0 = not used, 1..points = rating); whole points
    only (a ValueError names the column and the offending values)."""
    touchpoints = prep.touchpoints if touchpoints is None else touchpoints
    missing = [
        prep.resolved.constructs[t].items[0]
        for t in touchpoints
        if prep.resolved.constructs[t].items[0] not in frame.columns
    ]
    if missing:
        raise ValueError(f"new rows: touchpoint column(s) {missing} used by the driver model are missing")
    states = np.zeros((len(frame), len(prep.touchpoints) + 1), dtype=np.int64)
    for t, name in enumerate(touchpoints):
        column = prep.resolved.constructs[name].items[0]
        try:
            r = pd.to_numeric(frame[column], errors="raise").to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError):
            raise ValueError(f"new rows: touchpoint column {column!r} must be numeric") from None
        scale = prep.scales[name]
        used = np.isfinite(r)
        off = used & ((r < scale.min) | (r > scale.max) | (np.abs(r - np.round(r)) > 1e-9))
        if off.any():
            raise ValueError(
                f"new rows.{column}: ratings must be whole points on {scale.min:g}-{scale.max:g}; "
                f"got {sorted(set(r[off].tolist()))[:5]}"
            )
        states[:, t] = np.where(used, np.round(np.nan_to_num(r) - scale.min) + 1, 0)
    return states


def row_cells(prep: Any, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None, dict[str, list[str]]]:
    """(cell (n,), pseudo-cell level membership (P, L) or None, unseen levels by column) of new rows.

    A row whose levels were all fitted gets its fitted cell; a row with a level the model never saw gets a
    pseudo-cell whose membership is zero on that dimension (population value, no deviation)."""
    missing = [g for g in prep.group_dims if g not in frame.columns]
    if missing:
        raise ValueError(f"new rows: missing group column(s) {missing} that the driver model is grouped by")
    n = len(frame)
    level_index = np.zeros((n, len(prep.group_dims)), dtype=np.int64)
    unseen: dict[str, list[str]] = {}
    for d_i, g in enumerate(prep.group_dims):
        values = frame[g].astype("string")
        if values.isna().any():
            raise ValueError(f"new rows: {int(values.isna().sum())} missing value(s) in group column {g!r}")
        values = values.to_numpy(dtype=object)
        lookup = {v: i for i, v in enumerate(prep.levels[g])}
        level_index[:, d_i] = [lookup.get(v, -1) for v in values]
        new = sorted({v for v in values.tolist() if v not in lookup})
        if new:
            unseen[g] = new
    sizes = [len(prep.levels[g]) for g in prep.group_dims]
    known = (level_index >= 0).all(axis=1)
    cell = np.zeros(n, dtype=np.int64)
    for d_i, size in enumerate(sizes):  # mixed radix, as in prepare_data
        cell = cell * size + np.maximum(level_index[:, d_i], 0)
    if known.all():
        return cell, None, unseen
    offsets = np.cumsum([0] + sizes)[:-1]
    combos, inverse = np.unique(level_index[~known], axis=0, return_inverse=True)
    pseudo = np.zeros((len(combos), int(sum(sizes))))
    for k, combo in enumerate(combos):
        for d_i, level in enumerate(combo):
            if level >= 0:
                pseudo[k, offsets[d_i] + level] = 1.0
    cell[~known] = prep.n_cells + inverse.ravel()
    return cell, pseudo, unseen


def observed_scores(prep: Any, frame: pd.DataFrame, constructs: list[str]) -> dict[str, np.ndarray]:
    """Observed scores of ``constructs`` for new rows, standardised as in the fit: each item's z-score with
    the fitted rows' mean and sd, the construct's (fitted) weighted mean over the items answered, then the
    fitted score's mean and sd (see :func:`cxresearch.drivers.model.prepare_data`)."""

    out = {}
    for name in constructs:
        c = prep.resolved.constructs[name]
        missing = [i for i in c.items if i not in frame.columns]
        if missing:
            raise ValueError(
                f"new rows: construct {name!r} needs item column(s) {missing} with "
                "mediators='observed'; pass mediators='predicted' to predict it from the ratings"
            )
        mu, sd = prep.score_moments[name]
        sd = sd if sd > 0 else 1.0
        if name in prep.outcomes and prep.likelihood(name) in ("ordered_logistic", "bernoulli"):
            x = _numeric_column(frame, c.items[0], "new rows")
            score = (x - mu) / sd
        else:
            z_items = []
            for item in c.items:
                fitted = _numeric_column(prep.frame, item, "fitted rows")
                m, s = np.nanmean(fitted), np.nanstd(fitted)
                z_items.append((_numeric_column(frame, item, "new rows") - m) / (s if s > 0 else 1.0))
            z = np.column_stack(z_items)
            w = prep.weights[name]
            present = ~np.isnan(z)
            score = ((np.where(present, z, 0.0) @ w) / (present.astype(float) @ w) - mu) / sd
        bad = ~np.isfinite(score)
        if bad.any():
            raise ValueError(
                f"new rows: {int(bad.sum())} row(s) have no answer to construct {name!r} "
                f"(items {c.items}); pass mediators='predicted' or drop them"
            )
        out[name] = score
    return out


def new_rows(fit: DriverFit, frame: pd.DataFrame, mediators: str) -> RowInputs:
    """Model inputs for any survey rows (see the module docstring)."""
    prep = fit.prep
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"new_survey must be a DataFrame, got {type(frame).__name__}")
    states = touchpoint_states(prep, frame)
    cell, pseudo, unseen = row_cells(prep, frame)
    resolved = prep.resolved
    sources = {
        s for j in resolved.endogenous for s in resolved.sources(j) if resolved.constructs[s].kind != "touchpoint"
    }
    needed = sorted(s for s in sources if mediators == "observed" or s not in resolved.endogenous)
    latent = [s for s in needed if resolved.constructs[s].mode == "latent"]
    if latent:
        endogenous = [s for s in latent if s in resolved.endogenous]
        raise ValueError(
            f"latent construct(s) {latent} have sampled scores only for the fitted rows; "
            + (
                "pass mediators='predicted' to predict them from the ratings"
                if endogenous == latent
                else "an exogenous latent construct cannot be scored for new rows (use composite mode)"
            )
        )
    return RowInputs(
        states=states, cell=cell, scores=observed_scores(prep, frame, needed), pseudo_levels=pseudo, unseen=unseen
    )


# --------------------------------------------------------------------------------------------------------
# the forward pass
# --------------------------------------------------------------------------------------------------------
def equation_tables(p: Posterior, eq: EquationDraws, pseudo_levels: np.ndarray | None, draws: slice) -> np.ndarray:
    """The equation's lookup tables (draws, cells, T_j + 1, S): the fitted cells, then one per pseudo-cell.

    A pseudo-cell's table is built like a fitted cell's (:func:`cxresearch.drivers.draws.build_tables`)
    from its levels' deviations; its frequency is zero, so the centring constant (each touchpoint's mean
    contribution over the fitted rows, a constant of the fitted model) is unchanged."""

    if pseudo_levels is None:
        return eq.table[draws]
    prep = p.fit.prep
    coef = eq.coef[draws]
    n_s, n_tj = coef.shape[0], len(eq.cols)
    n_vary = eq.cell_dev.shape[1]
    new_dev = np.zeros((n_s, n_vary, len(pseudo_levels), n_tj))
    for v, term in enumerate(getattr(eq.layout, "dev_terms", ["slope"])):
        if term in eq.level_devs:
            new_dev[:, v] = np.einsum("pl,slt->spt", pseudo_levels, eq.level_devs[term][draws])
    # posterior() always sets intercept_common (zeros for an equation without an intercept)
    assert eq.intercept_common is not None
    new_icpt = np.repeat(eq.intercept_common[draws][:, None], len(pseudo_levels), axis=1)
    if eq.intercept_level_dev is not None:
        new_icpt = new_icpt + np.einsum("pl,sl->sp", pseudo_levels, eq.intercept_level_dev[draws])
    features = (
        np.stack([prep.features[t][eq.cols] for t in eq.layout.terms]) if n_tj else np.zeros((1, 0, prep.n_states))
    )
    freq = np.concatenate([prep.freq, np.zeros((len(pseudo_levels),) + prep.freq.shape[1:])])
    tables = build_tables(
        coef,
        np.concatenate([eq.cell_dev[draws], new_dev], axis=2),
        np.concatenate([eq.intercept_cell[draws], new_icpt], axis=1),
        features,
        dev_features(prep, eq.layout),
        eq.cols,
        freq,
    )
    return np.concatenate([eq.table[draws], tables[:, prep.n_cells :]], axis=1)


def _gather_tables(table: np.ndarray, states: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """eta (draws, n) = sum_t table[draw, cell_i, t, states_it] (the kernels' ``_gather``, over draws)."""
    n_draws, n_cells, n_slots, n_states = table.shape
    # flat positions as in the likelihood kernels (uint16 where the table allows: less memory traffic per draw)
    offsets = row_offsets(states, cell, np.arange(n_slots - 1), n_cells, n_states)
    return gather_over_draws(np.ascontiguousarray(table, dtype=np.float64).reshape(n_draws, -1), offsets)


def expected_score(p: Posterior, construct: str, eta: np.ndarray, draws: slice) -> np.ndarray:
    """The model's prediction of a construct's (standardised) score from its linear predictor: the linear
    predictor itself for Gaussian / latent constructs; (E[answer] - mean) / sd for ordinal / binary ones."""
    prep = p.fit.prep
    like = prep.likelihood(construct)
    if like in ("gaussian", "latent"):
        return eta
    mu, sd = prep.score_moments[construct]
    sd = sd if sd > 0 else 1.0
    if like == "bernoulli":
        return (_sigmoid(eta) - mu) / sd

    probs = ordered_logistic_probs(eta, p.equations[construct].theta[draws])
    return (probs @ prep.category_values[construct] - mu) / sd


def forward_pass(
    p: Posterior, rows: RowInputs, draws: slice = slice(None), mediators: str = "observed"
) -> dict[str, np.ndarray]:
    """Linear predictor (draws, rows) of every endogenous construct (see the module docstring).

    ``mediators="observed"`` takes construct sources from ``rows.scores`` (latent constructs: their sampled
    score is returned as their eta, as the likelihood conditions on it); ``"predicted"`` takes endogenous
    sources from their prediction in this pass."""
    if mediators not in MEDIATOR_MODES:
        raise ValueError(f"mediators must be one of {MEDIATOR_MODES}, got {mediators!r}")
    prep = p.fit.prep
    endogenous = prep.resolved.endogenous
    out: dict[str, np.ndarray] = {}
    score_of: dict[str, np.ndarray] = {}
    for j in endogenous:
        eq = p.equations[j]
        if mediators == "observed" and j in rows.scores and np.ndim(rows.scores[j]) == 2:
            out[j] = rows.scores[j][draws]  # a latent construct's sampled scores
            continue
        table = equation_tables(p, eq, rows.pseudo_levels, draws)
        slots = np.append(eq.cols, prep.states.shape[1] - 1)
        eta = _gather_tables(table, rows.states[:, slots], rows.cell)
        for s_i, s in enumerate(eq.layout.construct_sources):
            if mediators == "predicted" and s in endogenous:
                if s not in score_of:
                    score_of[s] = expected_score(p, s, out[s], draws)
                score = score_of[s]
            else:
                if s not in rows.scores:
                    raise ValueError(f"the score of construct {s!r} (a source of {j!r}) is not in the rows' inputs")
                score = rows.scores[s]
                score = score[draws] if np.ndim(score) == 2 else score[None, :]
            eta = eta + eq.paths[draws][:, s_i : s_i + 1] * score
        out[j] = eta
    return out


# --------------------------------------------------------------------------------------------------------
# outcome probabilities
# --------------------------------------------------------------------------------------------------------
def outcome_residual_sd(p: Posterior, outcome: str | None = None) -> np.ndarray:
    """(draws,) sd of the outcome's linear predictor that the mediators' residuals add when they are
    predicted: sqrt(sum_m (total path of m into the outcome x residual sd of m)^2), over the Gaussian /
    latent mediators. A ValueError names a mediator of another likelihood (no Gaussian residual)."""
    fit = p.fit
    prep = fit.prep
    outcome = outcome or prep.outcome
    # load[j][m]: d eta_j / d residual_m through the structural paths (topological order)
    load: dict[str, dict[str, np.ndarray]] = {}
    for j in prep.resolved.endogenous:
        eq = p.equations[j]
        loads: dict[str, np.ndarray] = {}
        for s_i, s in enumerate(eq.layout.construct_sources):
            if s not in load:
                continue
            like = prep.likelihood(s)
            if like not in ("gaussian", "latent"):
                raise ValueError(
                    f"mediator {s!r} has a {like} likelihood: its residual is not Gaussian, so "
                    "predicted probabilities cannot integrate it; predict with mediators='observed'"
                )
            for m, coef in load[s].items():
                loads[m] = loads.get(m, 0.0) + eq.paths[:, s_i] * coef
        if j != outcome:
            loads[j] = loads.get(j, 0.0) + np.ones(p.n)
        load[j] = loads
    var = np.zeros(p.n)
    for m, coef in load[outcome].items():
        var = var + (coef * residual_sd(p, m)) ** 2
    return np.sqrt(var)


def residual_sd(p: Posterior, construct: str) -> np.ndarray:
    """(draws,) residual sd of a Gaussian or latent construct."""
    fit = p.fit
    if fit.prep.likelihood(construct) == "gaussian":
        return p.equations[construct].theta[:, 0]
    c = fit.prep.resolved.constructs[construct]
    if c.identification == "variance":
        return np.ones(p.n)
    return fit.draws(f"{construct}__sd")[p.index]


def outcome_probabilities(
    eta: np.ndarray,
    theta: np.ndarray,
    likelihood: str,
    residual: np.ndarray | None = None,
    nodes: int = QUADRATURE_NODES,
) -> np.ndarray:
    """Class probabilities (draws, n, K) of an ordered-logistic outcome, or P(1) (draws, n) of a Bernoulli
    one, at linear predictor ``eta``; with ``residual`` (draws,) the probabilities are averaged over
    eta + residual x z, z ~ N(0, 1) (Gauss-Hermite, ``nodes`` nodes)."""

    if residual is None or not np.any(residual > 0):
        if likelihood == "bernoulli":
            return _sigmoid(eta)
        return ordered_logistic_probs(eta, theta)
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()  # probabilists' Hermite weights: E[f(z)] = sum_q w_q f(z_q) for z ~ N(0, 1)
    n_s, n = eta.shape
    k = 1 if likelihood == "bernoulli" else theta.shape[1]
    out = np.empty((n_s, n) if likelihood == "bernoulli" else (n_s, n, k + 1))
    step = max(1, CHUNK_VALUES // max(1, n * k * nodes))
    for start in range(0, n_s, step):
        sl = slice(start, start + step)
        shifted = eta[sl, :, None] + residual[sl, None, None] * z[None, None, :]  # (s, n, Q)
        if likelihood == "bernoulli":
            out[sl] = _sigmoid(shifted) @ w
            continue
        # P(y <= k) = E_z[sigmoid(c_k - eta - s z)], then differences of the cumulative probabilities
        cdf = _sigmoid(theta[sl, None, :, None] - shifted[:, :, None, :]) @ w  # (s, n, K - 1)
        zeros = np.zeros(cdf.shape[:-1] + (1,))
        out[sl] = np.diff(np.concatenate([zeros, cdf, zeros + 1.0], axis=-1), axis=-1)
    return out


def predict(
    fit: DriverFit,
    new_survey: pd.DataFrame,
    kind: str = "probability",
    mediators: str = "predicted",
    max_draws: int | None = None,
) -> Any:
    """Predictions of the outcome for any survey rows: ``xarray.DataArray`` (sample, respondent[, class]).

    ``kind``: ``"probability"`` (ordered logistic: P(class) with a ``class`` dim of answer values;
    Bernoulli: P(1); a Gaussian outcome has no probability: ValueError), ``"expected"`` (the mean answer;
    Bernoulli: P(1); Gaussian: the mean standardised score) or ``"linear_predictor"``. ``mediators``: see
    the module docstring (``"predicted"`` integrates the mediators' residuals out of probabilities and
    expectations; ``"observed"`` conditions on the rows' observed mediator scores). ``max_draws``: thin the
    posterior evenly (default: every draw). The respondent coordinate is ``new_survey``'s index.
    """
    import xarray as xr

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if mediators not in MEDIATOR_MODES:
        raise ValueError(f"mediators must be one of {MEDIATOR_MODES}, got {mediators!r}")
    prep = fit.prep
    outcome = prep.outcome
    likelihood = prep.likelihood(outcome)
    if likelihood == "gaussian" and kind == "probability":
        raise ValueError(
            f"outcome {outcome!r} is gaussian: it has no class probabilities; use kind='expected' or 'linear_predictor'"
        )
    rows = new_rows(fit, new_survey, mediators)
    if rows.unseen:
        listed = "; ".join(f"{g}: {v}" for g, v in rows.unseen.items())
        warnings.warn(
            f"predict: group level(s) the driver model never saw ({listed}) get the population value "
            "(no segment / market deviation)",
            UserWarning,
            stacklevel=3,
        )
    p = fit.posterior(max_draws)
    eta = forward_pass(p, rows, mediators=mediators)[outcome]
    theta = p.equations[outcome].theta
    residual = outcome_residual_sd(p) if (mediators == "predicted" and kind != "linear_predictor") else None
    dims: tuple[str, ...] = ("sample", "respondent")
    coords: dict[str, Any] = {"sample": p.index, "respondent": new_survey.index}
    if kind == "linear_predictor" or likelihood == "gaussian":
        values = eta
    elif likelihood == "bernoulli":
        values = outcome_probabilities(eta, theta, likelihood, residual)
    else:
        probs = outcome_probabilities(eta, theta, likelihood, residual)
        if kind == "probability":
            values = probs
            dims = dims + ("class",)
            coords["class"] = prep.category_values[outcome]
        else:
            values = probs @ prep.category_values[outcome]
    attrs = {
        "outcome": outcome,
        "likelihood": likelihood,
        "kind": kind,
        "mediators": mediators,
        "unseen_levels": [f"{g}={v}" for g, vs in rows.unseen.items() for v in vs],
        "units": (
            "standardised score"
            if likelihood == "gaussian" and kind != "linear_predictor"
            else "logit"
            if kind == "linear_predictor"
            else "probability"
            if kind == "probability" or likelihood == "bernoulli"
            else "answer scale"
        ),
    }
    return xr.DataArray(values, dims=dims, coords=coords, name=f"{outcome}_{kind}", attrs=attrs)


# --------------------------------------------------------------------------------------------------------
# per-row log-likelihood
# --------------------------------------------------------------------------------------------------------
def observed_equations(prep: Any) -> list[str]:
    """Endogenous constructs with an observed outcome (ordered logistic, Bernoulli or Gaussian)."""
    return [j for j in prep.resolved.endogenous if prep.likelihood(j) != "latent"]


def row_log_likelihood(y: np.ndarray, eta: np.ndarray, theta: np.ndarray, likelihood: str) -> np.ndarray:
    """log p(y_i | eta_i) (draws, n), term by term as in the model's likelihood (:mod:`.likelihoods`)."""
    if likelihood == "bernoulli":
        return y[None, :] * eta - _softplus(eta)
    if likelihood == "gaussian":
        sigma = theta[:, :1]
        return -np.log(sigma) - 0.5 * math.log(2 * math.pi) - 0.5 * ((y[None, :] - eta) / sigma) ** 2
    # ordered logistic: -softplus(c[k-1] - eta) - softplus(eta - c[k]) + log(1 - exp(c[k-1] - c[k]));
    # the extreme categories drop the missing side (their terms are exactly zero)
    k_cut = theta.shape[1]
    y = y.astype(np.int64)
    lower = np.clip(y - 1, 0, k_cut - 1)
    upper = np.clip(y, 0, k_cut - 1)
    out = np.where(y > 0, -_softplus(theta[:, lower] - eta), 0.0)
    out = out + np.where(y < k_cut, -_softplus(eta - theta[:, upper]), 0.0)
    gaps = _log1mexp(theta[:, :-1] - theta[:, 1:])  # (draws, K - 2): categories 1..K-2
    gap_by_category = np.concatenate([np.zeros((theta.shape[0], 1)), gaps, np.zeros((theta.shape[0], 1))], axis=1)
    return out + gap_by_category[:, y]


def log_likelihood_values(prep: Any, n_draws: int) -> int:
    """How many values the per-row log-likelihood holds: rows x draws x observed equations."""
    return int(prep.n) * int(n_draws) * len(observed_equations(prep))


def pointwise_log_likelihood(fit: DriverFit, chunk_values: int = CHUNK_VALUES) -> Any:
    """The per-row log-likelihood of every observed equation, as an ``xarray.Dataset`` (chain, draw,
    respondent), from the forward pass over every posterior draw (in chunks of draws, bounding memory).

    The respondent coordinate is the fitted rows' index. Latent models: conditional on the sampled latent
    scores (the measurement items' likelihood is not included)."""
    import xarray as xr

    prep = fit.prep
    post = fit.idata.posterior
    n_chain, n_draw = int(post.sizes["chain"]), int(post.sizes["draw"])
    p = posterior(fit, max_draws=fit.n_draws)
    if p.n != n_chain * n_draw:
        raise RuntimeError(f"posterior thinning kept {p.n} of {n_chain * n_draw} draws")
    rows = fitted_rows(p)
    names = observed_equations(prep)
    out = {j: np.empty((p.n, prep.n)) for j in names}
    step = max(1, chunk_values // max(1, prep.n * max(1, prep.states.shape[1])))
    for start in range(0, p.n, step):
        sl = slice(start, min(start + step, p.n))
        eta = forward_pass(p, rows, sl, mediators="observed")
        for j in names:
            out[j][sl] = row_log_likelihood(prep.outcomes[j], eta[j], p.equations[j].theta[sl], prep.likelihood(j))
    coords = {
        "chain": post.coords["chain"].values,
        "draw": post.coords["draw"].values,
        "respondent": np.asarray(prep.index),
    }
    return xr.Dataset(
        {j: (("chain", "draw", "respondent"), v.reshape(n_chain, n_draw, prep.n)) for j, v in out.items()},
        coords=coords,
    )


def attach_log_likelihood(fit: DriverFit, setting: bool | None = None) -> str:
    """Add ``idata.log_likelihood`` (see :func:`pointwise_log_likelihood`) by the ``log_likelihood`` setting:
    True always, False never, None ("auto") when rows x draws x observed equations <=
    :data:`LOG_LIKELIHOOD_MAX_VALUES`. Returns what was done, for the fit's settings."""
    values = log_likelihood_values(fit.prep, fit.n_draws)
    if setting is False:
        return "not stored (log_likelihood=False)"
    if setting is None and values > LOG_LIKELIHOOD_MAX_VALUES:
        return f"not stored: {values:,} values > {LOG_LIKELIHOOD_MAX_VALUES:,} (pass log_likelihood=True to store it)"
    if not observed_equations(fit.prep):
        return "not stored: no observed outcome equation"
    dataset = pointwise_log_likelihood(fit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "log_likelihood" in fit.idata.groups():
            del fit.idata.log_likelihood
        fit.idata.add_groups(log_likelihood=dataset)
    return "stored"


__all__ = [
    "KINDS",
    "LOG_LIKELIHOOD_MAX_VALUES",
    "MEDIATOR_MODES",
    "RowInputs",
    "attach_log_likelihood",
    "expected_score",
    "fitted_rows",
    "forward_pass",
    "new_rows",
    "observed_scores",
    "outcome_probabilities",
    "outcome_residual_sd",
    "pointwise_log_likelihood",
    "predict",
    "row_cells",
    "row_log_likelihood",
    "touchpoint_states",
]
