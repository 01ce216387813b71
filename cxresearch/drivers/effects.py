"""What the fitted driver model says, in the units a business reads, with 90% intervals.

Everything is computed per posterior draw and summarised at the end (mean, 5% and 95% quantiles,
probabilities), so every number carries its uncertainty:

- :func:`path_coefficients`: each structural path (touchpoint paths: per rating step).
- :func:`touchpoint_effects`: direct, indirect (through the mediators, e.g. emotion) and total effects of
  each touchpoint's terms (slope per step, bottom-box penalty, top-box reward) on the outcome's linear
  predictor.
- :func:`impact_nps`: the change in NPS points (and promoter / detractor shares) if the touchpoint's
  rating rose one step (capped at the scale top) for the customers who used it. It is *pushed through
  the fitted model*: for each draw, each user's ratings change, every downstream construct moves by the
  model's equations (each respondent's residual held fixed, as in a structural counterfactual), and the
  outcome's category probabilities are recomputed. With ``population=True`` the rows are re-weighted per
  draw by a Bayesian bootstrap, so the interval covers the customers the respondents represent.
- :func:`driver_ranking`: rank of each touchpoint by impact per draw -> P(rank = r), P(top 3).
- :func:`importance_performance`: importance = impact on NPS; performance = mean rating of its users on
  a 0-1 scale (min -> 0, max -> 1), uncertain by its standard error. A touchpoint is in the *fix first*
  quadrant in a draw when its impact is above the median impact of all touchpoints and its performance is
  below the median performance; P(fix first) is the share of draws where that holds.
- :func:`kano_classes`: from the total effect curve f on the outcome scale, D = f(mid) - f(min) (how
  much a bad experience hurts) and S = f(max) - f(mid) (how much a great one helps), clipped at 0. Per
  draw: *indifferent* if max(D, S) is below ``threshold`` (default 0.25) times the largest max(D, S) of
  all touchpoints (it barely matters next to the strongest driver; a relative rule works on any outcome
  scale); else with asymmetry a = (S - D) / (S + D):
  *must-be* if a < -1/3 (a bad experience hurts at least twice what a great one helps), *delighter*
  (moment of truth) if a > 1/3, else *performance*. The class is the most probable one.
- :func:`detractor_root_causes`: for the customers with a bottom-box experience, how much more likely
  they are to be detractors than had it been the first rating above the bottom box; and the share of
  all detractors that this explains.
- :func:`group_differences`: slope deviations of each segment / market from the average (total effect
  on the outcome per rating step) with P(> 0), and pairwise level differences; :func:`impact_by_group`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
import pandas as pd

# the posterior per draw lives in .draws (read by .predict too); re-exported here, where effects are computed
from cxresearch.drivers.draws import EquationDraws as EquationDraws
from cxresearch.drivers.draws import Posterior as Posterior
from cxresearch.drivers.draws import build_tables as build_tables
from cxresearch.drivers.draws import posterior as posterior
from cxresearch.drivers.model import half_range
from cxresearch.drivers.outcome import outcome_kind, outcome_words
from cxresearch.drivers.predict import fitted_rows, forward_pass

if TYPE_CHECKING:  # pragma: no cover
    from cxresearch.drivers.fit import DriverFit

INTERVAL = (0.05, 0.95)
#: slopes are reported per 10% of the scale range: the model's slope is per half range (5 x 10%)
SLOPE_UNIT = 0.2
SLOPE_UNIT_TEXT = "per 10% of the scale range"
KANO_CLASSES = ("must-be", "performance", "delighter", "indifferent")
DETRACTOR_MAX, PROMOTER_MIN = 6, 9  # NPS classes on 0-10


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def summarise(draws: np.ndarray, axis: int = 0) -> dict[str, np.ndarray]:
    """Mean, 5% and 95% quantiles and P(> 0) over ``axis``."""
    draws = np.asarray(draws, dtype=float)
    lo, hi = np.quantile(draws, INTERVAL, axis=axis)
    return {"mean": draws.mean(axis=axis), "low": lo, "high": hi, "p_positive": (draws > 0).mean(axis=axis)}


def linear_predictors(
    p: Posterior, rows: np.ndarray | None = None, draws: slice = slice(None)
) -> dict[str, np.ndarray]:
    """eta of every endogenous construct (draws, rows) on fitted rows: the model's linear predictor (latent: its
    sampled score), from the one forward pass (:func:`cxresearch.drivers.predict.forward_pass`)."""

    return forward_pass(p, fitted_rows(p, rows), draws, mediators="observed")


# --------------------------------------------------------------------------------------------------------
# effects along the paths
# --------------------------------------------------------------------------------------------------------
def _mediator_gain(p: Posterior, k: str) -> np.ndarray:
    """d score_k / d eta_k per draw: 1 for composite / Gaussian / latent constructs; for an ordinal or
    binary outcome used as a predictor, the average slope of its expected (standardised) value."""
    prep = p.fit.prep
    like = prep.likelihood(k)
    if like in ("gaussian", "latent"):
        return np.ones(p.n)
    rows = np.arange(prep.n)
    if prep.n > 50_000:
        rows = np.sort(np.random.default_rng(0).choice(prep.n, 50_000, replace=False))
    eta = linear_predictors(p, rows)[k]
    sd = prep.score_moments[k][1] or 1.0
    if like == "bernoulli":
        s = _sigmoid(eta)
        return (s * (1 - s)).mean(axis=1) / sd
    cuts = p.equations[k].theta
    cdf = _sigmoid(cuts[:, None, :] - eta[:, :, None])
    return (cdf * (1 - cdf)).sum(axis=2).mean(axis=1) / sd  # d E[y] / d eta = sum_k pdf of the cutpoints


def touchpoint_total_terms(p: Posterior) -> dict[str, dict[str, np.ndarray]]:
    """Per construct: {term: (S, T) total effect of each touchpoint's term on that construct's eta}."""
    prep = p.fit.prep
    n_tp = len(prep.touchpoints)
    terms = ("used", "slope", "penalty", "reward")
    total: dict[str, dict[str, np.ndarray]] = {}
    gains: dict[str, np.ndarray] = {}
    for j in prep.resolved.endogenous:
        eq = p.equations[j]
        cur = {t: np.zeros((p.n, n_tp)) for t in terms}
        for k_i, term in enumerate(eq.layout.terms):
            cur[term][:, eq.cols] += eq.coef[:, k_i, :]
        for s_i, s in enumerate(eq.layout.construct_sources):
            if s in total:
                if s not in gains:
                    gains[s] = _mediator_gain(p, s)
                for term in terms:
                    cur[term] += (eq.paths[:, s_i] * gains[s])[:, None] * total[s][term]
        total[j] = cur
    return total


def touchpoint_effects(p: Posterior, term: str = "slope") -> pd.DataFrame:
    """Direct, indirect and total effects of each touchpoint's ``term`` on the outcome (its eta units; the
    slope per 10% of the scale range, :data:`SLOPE_UNIT`)."""
    prep = p.fit.prep
    outcome = prep.outcome
    total = touchpoint_total_terms(p)[outcome][term]
    eq = p.equations[outcome]
    direct = np.zeros_like(total)
    if term in eq.layout.terms:
        direct[:, eq.cols] = eq.coef[:, eq.layout.terms.index(term), :]
    rows = []
    for kind, arr in (("direct", direct), ("indirect", total - direct), ("total", total)):
        s = summarise(arr * (SLOPE_UNIT if term == "slope" else 1.0))
        for t_i, tp in enumerate(prep.touchpoints):
            rows.append(
                {
                    "touchpoint": tp,
                    "effect": kind,
                    "term": term,
                    "mean": s["mean"][t_i],
                    "low": s["low"][t_i],
                    "high": s["high"][t_i],
                    "p_positive": s["p_positive"][t_i],
                }
            )
    return pd.DataFrame(rows)


def touchpoint_effects_xarray(p: Posterior):
    """Draws of the direct / indirect / total effects as an xarray DataArray
    with dims (sample, effect, term, touchpoint)."""
    import xarray as xr

    prep = p.fit.prep
    tot = touchpoint_total_terms(p)[prep.outcome]
    eq = p.equations[prep.outcome]
    terms = [t for t in ("used", "slope", "penalty", "reward") if t in tot]
    data = np.zeros((p.n, 3, len(terms), len(prep.touchpoints)))
    for k, term in enumerate(terms):
        direct = np.zeros_like(tot[term])
        if term in eq.layout.terms:
            direct[:, eq.cols] = eq.coef[:, eq.layout.terms.index(term), :]
        data[:, 0, k], data[:, 1, k], data[:, 2, k] = direct, tot[term] - direct, tot[term]
    return xr.DataArray(
        data,
        dims=("sample", "effect", "term", "touchpoint"),
        coords={"effect": ["direct", "indirect", "total"], "term": terms, "touchpoint": prep.touchpoints},
        name="effect",
    )


def _standardising_sd(p: Posterior, construct: str, eta: dict[str, np.ndarray] | None) -> np.ndarray:
    """Per-draw sd of a construct's (latent) score: 1 for standardised composites; for an ordinal /
    binary outcome the sd of its latent response (var(eta) + pi^2/3); for latent constructs the sd of
    the sampled scores."""
    prep = p.fit.prep
    if construct in p.latent_eta:
        return p.latent_eta[construct].std(axis=1)
    like = prep.likelihood(construct) if construct in prep.resolved.endogenous else "gaussian"
    if like in ("ordered_logistic", "bernoulli"):
        if eta is None:
            raise ValueError(f"the sd of ordinal / binary construct {construct!r} needs its linear predictor (eta)")
        return np.sqrt(eta[construct].var(axis=1) + np.pi**2 / 3)
    return np.ones(p.n)


def path_coefficients(p: Posterior, rows: Any = None) -> pd.DataFrame:
    """Every structural path: the coefficient (touchpoint sources: slope per 10% of the scale range) and, for
    construct -> construct paths, the standardised coefficient, with 90% intervals. ``rows``: the rows
    whose spread standardises ordinal / binary outcomes (default all)."""
    prep = p.fit.prep
    need_eta = any(prep.likelihood(j) in ("ordered_logistic", "bernoulli") for j in prep.resolved.endogenous)
    eta = linear_predictors(p, _selection(p.fit, rows)) if need_eta else None
    rows = []
    for j in prep.resolved.endogenous:
        eq = p.equations[j]
        if "slope" in eq.layout.terms:
            k = eq.layout.terms.index("slope")
            s = summarise(SLOPE_UNIT * eq.coef[:, k, :])
            for t_i, t in enumerate(eq.cols):
                rows.append(
                    {
                        "source": prep.touchpoints[t],
                        "target": j,
                        "kind": f"touchpoint ({SLOPE_UNIT_TEXT})",
                        "mean": s["mean"][t_i],
                        "low": s["low"][t_i],
                        "high": s["high"][t_i],
                        "p_positive": s["p_positive"][t_i],
                        "std_mean": np.nan,
                        "std_low": np.nan,
                        "std_high": np.nan,
                    }
                )
        sd_target = _standardising_sd(p, j, eta)
        for s_i, src in enumerate(eq.layout.construct_sources):
            raw = eq.paths[:, s_i]
            std = raw * _standardising_sd(p, src, eta) / sd_target
            s, ss = summarise(raw), summarise(std)
            rows.append(
                {
                    "source": src,
                    "target": j,
                    "kind": "construct",
                    "mean": s["mean"],
                    "low": s["low"],
                    "high": s["high"],
                    "p_positive": s["p_positive"],
                    "std_mean": ss["mean"],
                    "std_low": ss["low"],
                    "std_high": ss["high"],
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------
# counterfactuals pushed through the model
# --------------------------------------------------------------------------------------------------------
def _outcome_kind(prep) -> str:
    """'nps' for a 0-10 ordered outcome, else the outcome's likelihood (the impact keys follow it)."""
    kind = outcome_kind(prep)
    return "nps" if kind == "nps" else prep.likelihood(prep.outcome)


def _class_probs(eta: np.ndarray, cuts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(detractor), P(promoter) of 0-10 answers; eta (S, n), cuts (S, 10)."""
    p_det = _sigmoid(cuts[:, DETRACTOR_MAX][:, None] - eta)
    p_prom = 1.0 - _sigmoid(cuts[:, PROMOTER_MIN - 1][:, None] - eta)
    return p_det, p_prom


def _expected_outcome(eta: np.ndarray, theta: np.ndarray, like: str, values: np.ndarray | None) -> np.ndarray:
    if like == "bernoulli":
        return _sigmoid(eta)
    if like == "ordered_logistic":
        cdf = _sigmoid(theta[:, None, :] - eta[:, :, None])
        zeros = np.zeros(cdf.shape[:-1] + (1,))
        probs = np.diff(np.concatenate([zeros, cdf, zeros + 1.0], axis=-1), axis=-1)
        return probs @ values
    return eta


def _propagate(
    p: Posterior, rows: np.ndarray, t: int, new_states: np.ndarray, draws: slice, base: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Change of every endogenous eta (draws, rows) when touchpoint ``t`` moves to ``new_states`` on ``rows``."""
    fit = p.fit
    prep = fit.prep
    delta: dict[str, np.ndarray] = {}
    old_states = prep.states[rows, t]
    cells = prep.cell[rows]
    for j in prep.resolved.endogenous:
        eq = p.equations[j]
        d = np.zeros((p.index[draws].shape[0], len(rows)))
        pos = np.flatnonzero(eq.cols == t)
        if len(pos):
            tab = eq.table[draws][:, :, pos[0], :]  # (S, C, n_states)
            d = d + tab[:, cells, new_states] - tab[:, cells, old_states]
        for s_i, s in enumerate(eq.layout.construct_sources):
            if s not in delta:
                continue
            like = prep.likelihood(s)
            if like in ("gaussian", "latent"):
                ds = delta[s]
            else:
                ex0 = _expected_outcome(base[s], p.equations[s].theta[draws], like, prep.category_values.get(s))
                ex1 = _expected_outcome(
                    base[s] + delta[s], p.equations[s].theta[draws], like, prep.category_values.get(s)
                )
                ds = (ex1 - ex0) / (prep.score_moments[s][1] or 1.0)
            d = d + eq.paths[draws][:, s_i : s_i + 1] * ds
        delta[j] = d
    return delta


def _bootstrap_weights(rng: np.random.Generator, n_draws: int, n_rows: int, population: bool) -> np.ndarray:
    if not population:
        return np.full((n_draws, n_rows), 1.0 / n_rows)
    w = rng.standard_exponential((n_draws, n_rows))
    return w / w.sum(axis=1, keepdims=True)


def _selection(fit: DriverFit, rows: Any) -> np.ndarray:
    if rows is None:
        return np.arange(fit.prep.n)
    rows = np.asarray(rows)
    if rows.dtype == bool:
        if len(rows) != fit.prep.n:
            raise ValueError(f"row mask has {len(rows)} entries for {fit.prep.n} model rows")
        return np.flatnonzero(rows)
    return rows.astype(int)


#: the default improvement an impact is read for: 10% of each touchpoint's scale range
IMPROVEMENT_SHARE = 0.1


def improvement_steps(scale: Any, share: float = IMPROVEMENT_SHARE) -> tuple[int, float]:
    """A rise of ``share`` of the scale range as (k, f): k whole points for every user and one more point
    for a share f of them (a mean rise of exactly ``share`` x range on any scale: 0.4 points on 1-5 is
    one point for 40% of the users, 1 point on 0-10, 9.9 points on 1-100)."""
    d = share * float(scale.max - scale.min)
    k = int(np.floor(d + 1e-9))
    return k, max(d - k, 0.0)


def improvement_text(scales: Any, share: float = IMPROVEMENT_SHARE) -> str:
    """How the report names the improvement, e.g. '10% of the scale range (0.4 points on 1-5)'."""
    seen: dict[str, float] = {}
    for sc in scales:
        seen.setdefault(f"{sc.min:g}-{sc.max:g}", share * float(sc.max - sc.min))
    parts = ", ".join(f"{d:.3g} point{'s' if d != 1 else ''} on {name}" for name, d in seen.items())
    return f"{100 * share:g}% of the scale range ({parts}; capped at the top)"


#: outcome measures the impact kernel computes (codes of :func:`_impact_kernel`'s ``kind``)
_KIND_CODE = {"nps": 0, "ordered_logistic": 1, "bernoulli": 2, "gaussian": 3}


@numba.njit(inline="always")
def _logistic(x: float) -> float:
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    q = math.exp(x)
    return q / (1.0 + q)


@numba.njit(inline="always")
def _measures(eta, cuts, values, kind):  # pragma: no cover - compiled
    """(first, second) outcome measure at linear predictor ``eta``: nps -> (P(promoter), P(detractor));
    ordinal -> (E[answer], P(top category)); bernoulli -> (P(yes), 0); gaussian -> (eta, 0)."""
    if kind == 0:
        return 1.0 - _logistic(cuts[PROMOTER_MIN - 1] - eta), _logistic(cuts[DETRACTOR_MAX] - eta)
    if kind == 1:
        below, expected = 0.0, 0.0
        for k in range(cuts.shape[0]):
            cdf = _logistic(cuts[k] - eta)
            expected += values[k] * (cdf - below)
            below = cdf
        expected += values[cuts.shape[0]] * (1.0 - below)
        return expected, 1.0 - below
    if kind == 2:
        return _logistic(eta), 0.0
    return eta, 0.0


@numba.njit(cache=True, nogil=True)
def _impact_kernel(total, eta0, cell, states, weights, steps, frac, top, cuts, values, kind):  # pragma: no cover
    """out[m, d, t] = sum_i w[d, i] (measure_m(eta0 + change) - measure_m(eta0)) over the users i of touchpoint
    t, where the rating rises ``steps[t]`` points for a share 1 - frac[t] of the users and one more for the
    rest (capped at ``top[t]``) and the outcome's linear predictor changes by total[d, cell, t, new] -
    total[d, cell, t, old] (every path to the outcome, mediators linear: :func:`_total_tables`).

    The same numbers as pushing each change through the equations with numpy (:func:`_propagate`), in one
    pass: each row's baseline measures once per draw, no (draws, rows) temporaries."""
    n_draws, n = eta0.shape
    n_tp = states.shape[1]
    out = np.zeros((2, n_draws, n_tp))
    for d in range(n_draws):
        tab = total[d]
        cut = cuts[d]
        for i in range(n):
            e0 = eta0[d, i]
            w = weights[d, i]
            c = cell[i]
            b0, b1 = _measures(e0, cut, values, kind)
            for t in range(n_tp):
                old = states[i, t]
                if old == 0:
                    continue
                for extra in range(2):
                    share = frac[t] if extra else 1.0 - frac[t]
                    if share <= 0.0:
                        continue
                    new = min(old + steps[t] + extra, top[t])
                    if new == old:
                        continue
                    a0, a1 = _measures(e0 + tab[c, t, new] - tab[c, t, old], cut, values, kind)
                    out[0, d, t] += share * w * (a0 - b0)
                    out[1, d, t] += share * w * (a1 - b1)
    return out


def _linear_mediators(p: Posterior) -> bool:
    """Whether every construct that feeds another is Gaussian or latent: then a rating's change reaches the
    outcome's linear predictor additively, through one table of total contributions (:func:`_total_tables`)."""
    prep = p.fit.prep
    endogenous = set(prep.resolved.endogenous)
    return all(
        prep.likelihood(s) in ("gaussian", "latent")
        for j in endogenous
        for s in p.equations[j].layout.construct_sources
        if s in endogenous
    )


def _total_tables(p: Posterior, draws: slice) -> np.ndarray:
    """(S, C, T, n_states): each touchpoint state's contribution to the outcome's linear predictor in each
    cell, directly and through the (linear) mediators' paths; a rating change moves the outcome by the
    difference of two entries."""
    prep = p.fit.prep
    n_tp = len(prep.touchpoints)
    totals: dict[str, np.ndarray] = {}
    for j in prep.resolved.endogenous:
        eq = p.equations[j]
        tab = eq.table[draws]  # (S, C, T_j + 1, n_states): slot k is touchpoint eq.cols[k]
        cur = np.zeros((tab.shape[0], tab.shape[1], n_tp, tab.shape[3]))
        cur[:, :, eq.cols, :] = tab[:, :, : len(eq.cols), :]
        for s_i, s in enumerate(eq.layout.construct_sources):
            if s in totals:
                cur += eq.paths[draws][:, s_i][:, None, None, None] * totals[s]
        totals[j] = cur
    return totals[prep.outcome]


def impact_draws(
    p: Posterior,
    rows: Any = None,
    population: bool = True,
    seed: int = 0,
    chunk: int = 50,
    share: float = IMPROVEMENT_SHARE,
) -> dict[str, np.ndarray]:
    """Per-draw impact of raising each user's rating by ``share`` of the scale range (capped at the top).

    The rise means the same on every scale (:func:`improvement_steps`). Returns arrays (S, T): ``nps``
    (points), ``promoter`` and ``detractor`` (share changes, 0-1) for a 0-10 recommend outcome; otherwise
    ``outcome`` (change of the mean outcome / P(yes)) and, for an ordinal outcome, ``top_box`` (change of
    the share in the outcome's top category). ``rows``: the model rows to average over (mask or indices;
    default all).
    """
    fit = p.fit
    prep = fit.prep
    sel = _selection(fit, rows)
    kind = _outcome_kind(prep)
    outcome = prep.outcome
    like = prep.likelihood(outcome)
    n_tp = len(prep.touchpoints)
    rng = np.random.default_rng(seed)
    if kind == "nps":
        keys: tuple[str, ...] = ("nps", "promoter", "detractor")
    elif like == "ordered_logistic":
        keys = ("outcome", "top_box")
    else:
        keys = ("outcome",)
    out = {k: np.zeros((p.n, n_tp)) for k in keys}
    values = prep.category_values.get(outcome)

    def measures(eta: np.ndarray, theta: np.ndarray) -> dict[str, np.ndarray]:
        if kind == "nps":
            det, prom = _class_probs(eta, theta)
            return {"promoter": prom, "detractor": det}
        m = {"outcome": _expected_outcome(eta, theta, like, values)}
        if like == "ordered_logistic":
            m["top_box"] = 1.0 - _sigmoid(theta[:, -1][:, None] - eta)
        return m

    fast = _linear_mediators(p) and (kind == "nps" or like in _KIND_CODE)
    if fast:
        steps_frac = [improvement_steps(prep.scales[name], share) for name in prep.touchpoints]
        whole_steps = np.array([k for k, _ in steps_frac], dtype=np.int64)
        one_more = np.array([f for _, f in steps_frac], dtype=np.float64)
        tops = np.array([prep.scales[name].points for name in prep.touchpoints], dtype=np.int64)
        states = np.ascontiguousarray(prep.states[sel, :n_tp], dtype=np.int64)
        cells = np.ascontiguousarray(prep.cell[sel], dtype=np.int64)
        cat_values = np.asarray(values if values is not None else np.zeros(1), dtype=np.float64)
    for start in range(0, p.n, chunk):
        draws = slice(start, min(start + chunk, p.n))
        n_s = draws.stop - draws.start
        weights = _bootstrap_weights(rng, n_s, len(sel), population)
        base = linear_predictors(p, sel, draws)
        theta = p.equations[outcome].theta[draws]
        if fast:
            change = _impact_kernel(
                _total_tables(p, draws),
                np.ascontiguousarray(base[outcome]),
                cells,
                states,
                weights,
                whole_steps,
                one_more,
                tops,
                np.ascontiguousarray(theta, dtype=np.float64),
                cat_values,
                _KIND_CODE["nps" if kind == "nps" else like],
            )
            for m_i, key in enumerate(keys[1:] if kind == "nps" else keys):
                out[key][draws] = change[m_i]
            if kind == "nps":
                out["nps"][draws] = 100.0 * (out["promoter"][draws] - out["detractor"][draws])
            continue
        before_all = measures(base[outcome], theta)  # once per chunk: the same for every touchpoint's users
        for t in range(n_tp):
            used = prep.states[sel, t] > 0
            if not used.any():
                continue
            users = sel[used]
            top = prep.scales[prep.touchpoints[t]].points
            k, f = improvement_steps(prep.scales[prep.touchpoints[t]], share)
            base_u = {key: v[:, used] for key, v in base.items()}
            eta0 = base_u[outcome]
            before = {key: v[:, used] for key, v in before_all.items()}
            after = {key: np.zeros_like(v) for key, v in before.items()}
            for steps, weight in ((k, 1.0 - f), (k + 1, f)):
                if weight <= 0:
                    continue
                if steps == 0:
                    moved = before
                else:
                    new = np.minimum(prep.states[users, t] + steps, top)
                    delta = _propagate(p, users, t, new, draws, base_u)
                    moved = measures(eta0 + delta[outcome], theta)
                for key in after:
                    after[key] += weight * moved[key]
            w = weights[:, used]
            for key in before:
                out[key][draws, t] = ((after[key] - before[key]) * w).sum(axis=1)
            if kind == "nps":
                out["nps"][draws, t] = 100.0 * (out["promoter"][draws, t] - out["detractor"][draws, t])
    return out


def impact_table(p: Posterior, draws: dict[str, np.ndarray] | None = None, **kwargs: Any) -> pd.DataFrame:
    """Impact per touchpoint with 90% intervals, in the outcome's unit (:mod:`.outcome`): ``impact_nps`` (NPS
    points; ``impact_promoter`` / ``impact_detractor`` in share points), ``impact_pp`` (percentage points of
    P(yes)) or ``impact_mean`` (+ ``impact_top_box`` in share points for an ordinal outcome)."""
    prep = p.fit.prep
    words = outcome_words(prep)
    draws = draws or impact_draws(p, **kwargs)
    sel = _selection(p.fit, kwargs.get("rows"))  # usage among the answers the run reports on
    frame = pd.DataFrame(
        {
            "touchpoint": prep.touchpoints,
            "label": [prep.resolved.constructs[t].label or t for t in prep.touchpoints],
            "users": [(prep.states[sel, t] > 0).mean() for t in range(len(prep.touchpoints))],
        }
    )
    for key, arr in draws.items():
        scale = 100.0 if key in ("promoter", "detractor", "top_box") else 1.0
        name = f"impact_{key}"
        if key in ("nps", "outcome"):
            name = words.column
            scale = 100.0 if words.kind == "binary" else 1.0
        s = summarise(arr * scale)
        frame[name] = s["mean"]
        frame[f"{name}_low"] = s["low"]
        frame[f"{name}_high"] = s["high"]
        frame[f"{name}_p_positive"] = s["p_positive"]
    return frame


def impact_main_key(draws: dict[str, np.ndarray]) -> str:
    return "nps" if "nps" in draws else "outcome"


def direction(prep: Any) -> float:
    """+1 when a higher outcome is better (recommend, satisfied), -1 when lower is (churn, effort)."""
    return 1.0 if prep.resolved.spec.higher_is_better else -1.0


def benefit_draws(p: Posterior, draws: dict[str, np.ndarray]) -> np.ndarray:
    """(S, T) impact in the good direction: what ranks drivers and picks what to fix first (a touchpoint whose
    improvement lowers churn has a positive benefit)."""
    prep = p.fit.prep
    unit = 100.0 if outcome_kind(prep) == "binary" else 1.0  # P(yes) in percentage points, as reported
    return unit * direction(prep) * draws[impact_main_key(draws)]


def driver_ranking(p: Posterior, draws: dict[str, np.ndarray]) -> pd.DataFrame:
    """P(rank = r) per touchpoint (rank 1 = largest benefit: the impact in the outcome's good direction),
    expected rank and P(top 3); ``rank_by_size``: the rank by the impact's magnitude, whatever its sign."""
    prep = p.fit.prep
    imp = benefit_draws(p, draws)
    ranks = (-imp).argsort(axis=1).argsort(axis=1) + 1  # (S, T)
    size_ranks = (-np.abs(imp)).argsort(axis=1).argsort(axis=1) + 1
    n_tp = imp.shape[1]
    frame = pd.DataFrame(
        {
            "touchpoint": prep.touchpoints,
            "expected_rank": ranks.mean(axis=0),
            "p_top3": (ranks <= 3).mean(axis=0),
            "rank_by_size": size_ranks.mean(axis=0),
            "p_good_direction": (imp > 0).mean(axis=0),
        }
    )
    for r in range(1, n_tp + 1):
        frame[f"p_rank_{r}"] = (ranks == r).mean(axis=0)
    return frame.sort_values("expected_rank").reset_index(drop=True)


def importance_performance(p: Posterior, draws: dict[str, np.ndarray], seed: int = 0, rows: Any = None) -> pd.DataFrame:
    """Importance (benefit: the impact in the good direction) vs performance (users' mean rating, 0-1) with
    P(fix first) (see module doc)."""
    prep = p.fit.prep
    imp = benefit_draws(p, draws)
    rng = np.random.default_rng(seed)
    sel = _selection(p.fit, rows)  # performance as the run's own customers rate it
    means, ses = [], []
    for t, tp in enumerate(prep.touchpoints):
        sc = prep.scales[tp]
        st = prep.states[sel, t]
        vals = (st[st > 0] - 1) / (sc.points - 1)
        means.append(vals.mean())
        ses.append(vals.std(ddof=1) / np.sqrt(len(vals)) if len(vals) > 1 else 0.0)
    perf_mean, perf_se = np.array(means), np.array(ses)
    perf = perf_mean[None, :] + perf_se[None, :] * rng.standard_normal(imp.shape)
    important = imp > np.median(imp, axis=1, keepdims=True)
    poor = perf < np.median(perf, axis=1, keepdims=True)
    s = summarise(imp)
    frame = pd.DataFrame(
        {
            "touchpoint": prep.touchpoints,
            "label": [prep.resolved.constructs[t].label or t for t in prep.touchpoints],
            "importance": s["mean"],
            "importance_low": s["low"],
            "importance_high": s["high"],
            "performance": perf_mean,
            "mean_rating": [
                prep.scales[tp].min + m * (prep.scales[tp].points - 1) for tp, m in zip(prep.touchpoints, perf_mean)
            ],
            "p_important": important.mean(axis=0),
            "p_poor": poor.mean(axis=0),
            "p_fix_first": (important & poor).mean(axis=0),
        }
    )
    imp_med, perf_med = np.median(s["mean"]), np.median(perf_mean)
    frame["quadrant"] = np.select(
        [
            (frame.importance > imp_med) & (frame.performance < perf_med),
            frame.importance > imp_med,
            frame.performance < perf_med,
        ],
        ["fix first", "maintain", "monitor"],
        default="lower priority",
    )
    return frame


def rows_term_deviation(p: Posterior, rows: Any = None, term: str = "slope") -> np.ndarray | float:
    """(S, T) the total deviation of ``term`` (on the outcome) for the run's answers from the average: each
    grouping's level deviations weighted by the run's share of answers in each level (0 without groups or
    rows)."""
    prep = p.fit.prep
    if rows is None or not prep.group_dims:
        return 0.0
    sel = _selection(p.fit, rows)
    if not len(sel):
        return 0.0
    dev = level_slope_deviations(p, term)[prep.outcome]  # (S, L, T)
    out = np.zeros((p.n, len(prep.touchpoints)))
    start = 0
    for d in prep.group_dims:
        n_levels = len(prep.levels[d])
        share = np.bincount(prep.level_idx[d][sel], minlength=n_levels) / len(sel)
        out += np.einsum("l,slt->st", share, dev[:, start : start + n_levels, :])
        start += n_levels
    return out


def kano_draws(p: Posterior, rows: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(D, S): per draw and touchpoint, the hurt of a worst vs a neutral experience and the lift of a best
    vs a neutral one, on the outcome's linear predictor (see the module docstring). With ``rows`` (a segment's
    or market's answers) the slope, penalty and reward include that group's partially pooled deviations, so its
    classes are its own."""
    prep = p.fit.prep
    tot = dict(touchpoint_total_terms(p)[prep.outcome])
    for term in ("slope", "penalty", "reward"):  # the group's own (partially pooled) terms
        tot[term] = tot[term] + rows_term_deviation(p, rows, term)
    # the slope's column is in half ranges: from the minimum to the midpoint is 1, and so is midpoint -> top
    mid_gap = np.array(
        [(prep.scales[t].midpoint - prep.scales[t].min) / half_range(prep.scales[t]) for t in prep.touchpoints]
    )
    top_gap = np.array(
        [(prep.scales[t].max - prep.scales[t].midpoint) / half_range(prep.scales[t]) for t in prep.touchpoints]
    )
    # bottom box holds the minimum; the midpoint lies above the bottom box on the scales we accept. In the
    # outcome's good direction: for churn a bad experience hurts by raising the linear predictor
    sign = direction(prep)
    hurt = sign * (tot["slope"] * mid_gap - tot["penalty"])
    lift = sign * (tot["slope"] * top_gap + tot["reward"])
    return np.clip(hurt, 0, None), np.clip(lift, 0, None)


def kano_classes(p: Posterior, threshold: float = 0.25, asymmetry: float = 1 / 3, rows: Any = None) -> pd.DataFrame:
    """Kano class per touchpoint with the probability of each class (rules in the module docstring); ``rows``:
    the group's answers, whose own slope deviations enter (:func:`kano_draws`)."""
    prep = p.fit.prep
    hurt, lift = kano_draws(p, rows)
    a = (lift - hurt) / np.maximum(lift + hurt, 1e-12)
    swing = np.maximum(hurt, lift)
    small = swing < threshold * swing.max(axis=1, keepdims=True)
    cls = np.where(small, 3, np.where(a < -asymmetry, 0, np.where(a > asymmetry, 2, 1)))
    frame = pd.DataFrame({"touchpoint": prep.touchpoints})
    sh, sl = summarise(hurt), summarise(lift)
    frame["penalty"], frame["penalty_low"], frame["penalty_high"] = sh["mean"], sh["low"], sh["high"]
    frame["reward"], frame["reward_low"], frame["reward_high"] = sl["mean"], sl["low"], sl["high"]
    for k, name in enumerate(KANO_CLASSES):
        frame[f"p_{name}"] = (cls == k).mean(axis=0)
    probs = frame[[f"p_{c}" for c in KANO_CLASSES]].to_numpy()
    frame["kano"] = [KANO_CLASSES[i] for i in probs.argmax(axis=1)]
    frame["p_kano"] = probs.max(axis=1)
    return frame


def detractor_root_causes(
    p: Posterior, rows: Any = None, population: bool = True, seed: int = 0, chunk: int = 50
) -> pd.DataFrame:
    """Which bad experiences raise P(detractor) most (0-10 recommend outcome only).

    For each touchpoint: the share of respondents with a bottom-box experience; their excess detractor
    risk (P(detractor) now minus P(detractor) had the experience been the first rating above the bottom
    box), and the share of all expected detractors this explains. Sorted by the latter.
    """
    fit = p.fit
    prep = fit.prep
    if _outcome_kind(prep) != "nps":
        raise ValueError(
            f"root causes of detractors need a 0-10 recommend outcome; {prep.outcome!r} is "
            f"{prep.likelihood(prep.outcome)}"
        )
    sel = _selection(fit, rows)
    rng = np.random.default_rng(seed)
    n_tp = len(prep.touchpoints)
    excess = np.zeros((p.n, n_tp))
    explained = np.zeros((p.n, n_tp))
    share_bad = np.zeros(n_tp)
    for start in range(0, p.n, chunk):
        draws = slice(start, min(start + chunk, p.n))
        weights = _bootstrap_weights(rng, draws.stop - draws.start, len(sel), population)
        base = linear_predictors(p, sel, draws)
        theta = p.equations[prep.outcome].theta[draws]
        p_det_all, _ = _class_probs(base[prep.outcome], theta)
        det_total = (p_det_all * weights).sum(axis=1)
        for t in range(n_tp):
            bottom = prep.boxes[prep.touchpoints[t]][0]  # the touchpoint's bottom box, in points
            st = prep.states[sel, t]
            bad = (st > 0) & (st <= bottom)
            share_bad[t] = bad.mean()
            if not bad.any():
                continue
            rows_bad = sel[bad]
            new = np.full(len(rows_bad), bottom + 1)
            base_b = {k: v[:, bad] for k, v in base.items()}
            delta = _propagate(p, rows_bad, t, new, draws, base_b)
            d_now = p_det_all[:, bad]
            d_fixed, _ = _class_probs(base_b[prep.outcome] + delta[prep.outcome], theta)
            w = weights[:, bad]
            diff = d_now - d_fixed
            excess[draws, t] = (diff * w).sum(axis=1) / w.sum(axis=1)
            explained[draws, t] = (diff * w).sum(axis=1) / det_total
    se, sx = summarise(100 * excess), summarise(explained)
    frame = pd.DataFrame(
        {
            "touchpoint": prep.touchpoints,
            "label": [prep.resolved.constructs[t].label or t for t in prep.touchpoints],
            "share_bad_experience": share_bad,
            "excess_detractor_risk_pts": se["mean"],
            "excess_low": se["low"],
            "excess_high": se["high"],
            "share_of_detractors_explained": sx["mean"],
            "explained_low": sx["low"],
            "explained_high": sx["high"],
            "p_raises_detractors": se["p_positive"],
        }
    )
    return frame.sort_values("share_of_detractors_explained", ascending=False).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------
# segments and markets
# --------------------------------------------------------------------------------------------------------
def level_slope_deviations(p: Posterior, term: str = "slope") -> dict[str, np.ndarray]:
    """(S, L, T) deviation of each group level's total ``term`` (slope, penalty or reward; on each construct,
    through the mediators) from the average."""
    prep = p.fit.prep
    n_tp = len(prep.touchpoints)
    n_levels = sum(len(prep.levels[d]) for d in prep.group_dims)
    total: dict[str, np.ndarray] = {}
    gains: dict[str, np.ndarray] = {}
    for j in prep.resolved.endogenous:
        eq = p.equations[j]
        cur = np.zeros((p.n, n_levels, n_tp))
        if term in eq.level_devs:
            cur[:, :, eq.cols] += eq.level_devs[term]
        for s_i, s in enumerate(eq.layout.construct_sources):
            if s in total:
                if s not in gains:
                    gains[s] = _mediator_gain(p, s)
                cur += (eq.paths[:, s_i] * gains[s])[:, None, None] * total[s]
        total[j] = cur
    return total


def _slope_grouping_offsets(prep: Any) -> list[tuple[str, int]]:
    """(grouping, position of its first level among the stacked levels) for the groupings whose slopes vary;
    intercept-only ones (declared, or too few answers per level) have no slope differences to show."""
    sizes = {d: len(prep.levels[d]) for d in prep.group_dims}
    starts = dict(zip(prep.group_dims, np.cumsum([0] + list(sizes.values()))[:-1].tolist()))
    return [(d, starts[d]) for d in prep.slope_groupings]


def group_differences(p: Posterior) -> pd.DataFrame:
    """Each level's slope deviation from the average (total effect on the outcome per 10% of the scale range),
    with its 90% interval and P(deviation > 0); rows for every group dimension, level and touchpoint."""
    prep = p.fit.prep
    if not prep.group_dims:
        return pd.DataFrame(columns=["dimension", "level", "touchpoint", "mean", "low", "high", "p_positive"])
    dev = level_slope_deviations(p)[prep.outcome]
    rows = []
    for d, offset in _slope_grouping_offsets(prep):
        for l_i, level in enumerate(prep.levels[d]):
            s = summarise(SLOPE_UNIT * dev[:, offset + l_i, :])
            for t_i, tp in enumerate(prep.touchpoints):
                rows.append(
                    {
                        "dimension": d,
                        "level": level,
                        "touchpoint": tp,
                        "mean": s["mean"][t_i],
                        "low": s["low"][t_i],
                        "high": s["high"][t_i],
                        "p_positive": s["p_positive"][t_i],
                    }
                )
    return pd.DataFrame(rows, columns=["dimension", "level", "touchpoint", "mean", "low", "high", "p_positive"])


def pairwise_group_differences(p: Posterior) -> pd.DataFrame:
    """Slope (total, per 10% of the range) of level a minus level b for every pair within a dimension, P(diff > 0)."""
    prep = p.fit.prep
    if not prep.group_dims:
        return pd.DataFrame(
            columns=["dimension", "level_a", "level_b", "touchpoint", "mean", "low", "high", "p_positive"]
        )
    dev = level_slope_deviations(p)[prep.outcome]
    rows = []
    for d, offset in _slope_grouping_offsets(prep):
        lv = prep.levels[d]
        for a in range(len(lv)):
            for b in range(a + 1, len(lv)):
                s = summarise(SLOPE_UNIT * (dev[:, offset + a, :] - dev[:, offset + b, :]))
                for t_i, tp in enumerate(prep.touchpoints):
                    rows.append(
                        {
                            "dimension": d,
                            "level_a": lv[a],
                            "level_b": lv[b],
                            "touchpoint": tp,
                            "mean": s["mean"][t_i],
                            "low": s["low"][t_i],
                            "high": s["high"][t_i],
                            "p_positive": s["p_positive"][t_i],
                        }
                    )
    return pd.DataFrame(
        rows, columns=["dimension", "level_a", "level_b", "touchpoint", "mean", "low", "high", "p_positive"]
    )


def impact_by_group(p: Posterior, dimension: str, population: bool = True, seed: int = 0) -> pd.DataFrame:
    """Impact on NPS per touchpoint within each level of ``dimension``, pushed through the model with the
    level's own slopes, plus P(this level's impact > the average level's)."""
    fit = p.fit
    prep = fit.prep
    frame = prep.frame
    if dimension not in frame.columns:
        raise ValueError(
            f"impact_by_group: {dimension!r} is not a column of the data (group columns: {prep.resolved.spec.group_by})"
        )
    levels = sorted(frame[dimension].astype("string").dropna().unique().tolist())
    draws_by_level = {}
    for lv in levels:
        mask = (frame[dimension].astype("string") == lv).to_numpy()
        draws_by_level[lv] = impact_draws(p, rows=mask, population=population, seed=seed)
    key = impact_main_key(next(iter(draws_by_level.values())))
    avg = np.mean([d[key] for d in draws_by_level.values()], axis=0)
    rows = []
    for lv, d in draws_by_level.items():
        s = summarise(d[key])
        above = (d[key] > avg).mean(axis=0)
        for t_i, tp in enumerate(prep.touchpoints):
            rows.append(
                {
                    "dimension": dimension,
                    "level": lv,
                    "touchpoint": tp,
                    "impact": s["mean"][t_i],
                    "low": s["low"][t_i],
                    "high": s["high"][t_i],
                    "p_above_average": above[t_i],
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------
# posterior predictive check
# --------------------------------------------------------------------------------------------------------
def posterior_predictive_check(p: Posterior, seed: int = 0, rows: Any = None) -> pd.DataFrame:
    """Observed vs posterior-predicted share of each outcome category (ordinal / binary outcomes), or
    observed vs predicted deciles of a Gaussian outcome, with 90% predictive intervals (on ``rows``)."""
    fit = p.fit
    prep = fit.prep
    outcome = prep.outcome
    like = prep.likelihood(outcome)
    rng = np.random.default_rng(seed)
    sel = _selection(fit, rows)
    eta = linear_predictors(p, sel)[outcome]
    observed = prep.outcomes[outcome][sel]
    theta = p.equations[outcome].theta
    if like == "ordered_logistic":
        k = prep.n_categories[outcome]
        pred = np.empty((eta.shape[0], k))
        for start in range(0, eta.shape[0], 20):  # draw chunks bound the temporaries
            part = slice(start, start + 20)
            # a category draw is the number of cutpoints with u > logistic(theta_k - eta), i.e. with
            # theta_k < eta + logit(u): one logit per answer and a search in the sorted cutpoints instead of
            # K logistic functions per answer
            u = rng.random(eta[part].shape)
            z = eta[part] + (np.log(u) - np.log1p(-u))
            for d_i, d in enumerate(range(part.start, min(part.stop, eta.shape[0]))):
                sims = np.searchsorted(theta[d], z[d_i], side="left")
                pred[d] = np.bincount(sims, minlength=k) / len(sel)
        obs = np.bincount(observed, minlength=k) / len(sel)
        cats = prep.category_values[outcome]
    elif like == "bernoulli":
        sims = rng.random(eta.shape) < _sigmoid(eta)
        pred = np.stack([1 - sims.mean(axis=1), sims.mean(axis=1)], axis=1)
        obs = np.bincount(observed, minlength=2) / len(sel)
        cats = np.array([0.0, 1.0])
    else:
        sims = eta + theta[:, :1] * rng.standard_normal(eta.shape)
        qs = np.linspace(0.1, 0.9, 9)
        pred = np.quantile(sims, qs, axis=1).T
        obs = np.quantile(observed, qs)
        cats = qs
    lo, hi = np.quantile(pred, INTERVAL, axis=0)
    return pd.DataFrame(
        {
            "category": cats,
            "observed": obs,
            "predicted": pred.mean(axis=0),
            "low": lo,
            "high": hi,
            "inside_interval": (obs >= lo) & (obs <= hi),
        }
    )
