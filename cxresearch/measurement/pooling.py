"""Exact partial pooling without MCMC: hierarchical models integrated numerically over their few hyperparameters.

Both models here are conjugate given their hyperparameters, so the group-level posterior is exact once
the hyperparameters are drawn; the hyperparameters (three for the shares, two for the means) are
integrated on a deterministic grid that follows the posterior. No chains, no divergences, seconds.
Each result carries a check that the grid held the posterior (``edge_mass``: posterior mass in the
outermost grid cells, which must be negligible).

**Hierarchical Dirichlet-multinomial** (the NPS shares of groups)::

    counts[g] ~ Multinomial(n[g], p[g])
    p[g]      ~ Dirichlet(kappa * m)              m ~ Dirichlet(1, 1, 1)
    s = 1 / sqrt(1 + kappa) ~ HalfNormal(0.2)

``m`` is the typical group's shares and ``s`` the heterogeneity: the square root of the intra-class
correlation, so the between-group sd of a share is ``s * sqrt(m_k (1 - m_k))``. The prior scale 0.2
allows between-group sds of a share up to about 0.1 (20 NPS points) and makes larger ones unlikely.
Given (m, kappa) each ``p[g]`` is exactly Dirichlet(kappa * m + counts[g]).

**Hierarchical normal** (the mean rating of units), from sufficient statistics::

    y[u, i] ~ Normal(theta[u], sigma)     theta[u] ~ Normal(mu, tau)
    mu flat, tau ~ HalfNormal(sd of all answers), sigma ~ HalfNormal(2 x sd of all answers)

``mu`` and ``theta`` are integrated analytically (Gelman et al., BDA3 section 5.4); (tau, sigma) on a grid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import digamma, gammaln, polygamma
from scipy.stats import norm

from cxresearch.diagnostics import GATE, Diagnostics
from cxresearch.measurement.posterior import rng_for

#: prior scale of the heterogeneity s = 1 / sqrt(1 + kappa) (half-normal)
HETEROGENEITY_PRIOR_SCALE = 0.2
#: grid bounds of s: below S_MIN pooling is complete for any realistic group size, above S_MAX the
#: prior mass is ~1e-6
S_MIN, S_MAX = 1e-4, 0.95
S_POINTS_COARSE, S_POINTS = 24, 40  # values of s in the coarse (locating) and fine grids
M_POINTS_COARSE, M_POINTS = 9, 21  # per axis of the local grid of the typical shares (additive log-ratios)
M_HALF_WIDTH = 5.0  # local grid spans +/- this many posterior sds along each principal axis
EDGE_MASS_MAX = GATE["edge_mass_max"]  # defined with the other thresholds, in cxresearch.diagnostics
CENTRAL_TAIL = 1e-4  # coarse mass left to each side of the finely gridded range of s
_GROUP_CHUNK_CELLS = 4_000_000  # grid points x groups evaluated at once (bounds memory)


def grid_check(
    method: str, edge_mass: float, grid_points: int, effective_grid_points: float, **extra: Any
) -> Diagnostics:
    """The check of a numerically integrated posterior, in the one :class:`~cxresearch.diagnostics.Diagnostics`
    form: it passes when the grid held the posterior (mass in the outermost cells below ``EDGE_MASS_MAX``).

    There are no chains, so R-hat / ESS / divergences are absent (None); ``edge_mass`` and the grid sizes
    are extra figures (``d["edge_mass"]``)."""
    passed = bool(edge_mass < EDGE_MASS_MAX)
    reasons = (
        ()
        if passed
        else (
            f"posterior mass at the grid edges {edge_mass:.1e} >= {EDGE_MASS_MAX:.0e}: the numerical integration did "
            "not hold the whole posterior; use method='nuts' or report the problem",
        )
    )
    return Diagnostics(
        passed=passed,
        method=method,
        draws=None,
        reasons=reasons,
        extra={
            "edge_mass": float(edge_mass),
            "grid_points": int(grid_points),
            "effective_grid_points": float(effective_grid_points),
            **extra,
        },
    )


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=1, keepdims=True)
    return top + np.log(np.exp(x - top).sum(axis=1, keepdims=True))


def _alr_inverse(u: np.ndarray) -> np.ndarray:
    """Additive log-ratio coordinates (K-1, baseline = first category) -> simplex (K)."""
    u = np.atleast_2d(u)
    logits = np.concatenate([np.zeros((u.shape[0], 1)), u], axis=1)
    return np.exp(logits - _logsumexp_rows(logits))


def _log_post_m_derivatives(
    u: np.ndarray, kappa: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Value, gradient and Hessian in ``u`` of log p(u | kappa, data) (up to a constant in u), for many
    (u, kappa) rows at once: u (S, K-1), kappa (S,). Analytic (digamma / trigamma)."""
    m = _alr_inverse(u)  # (S, K)
    s_rows, k = m.shape
    alpha = kappa[:, None] * m
    f = np.log(m).sum(axis=1)
    a = 1.0 / m
    b = -1.0 / m**2
    step = max(1, _GROUP_CHUNK_CELLS // max(s_rows, 1))
    for start in range(0, counts.shape[0], step):
        c = counts[None, start : start + step, :]
        shifted = alpha[:, None, :] + c
        f += (gammaln(shifted) - gammaln(alpha)[:, None, :]).sum(axis=(1, 2))
        a += kappa[:, None] * (digamma(shifted) - digamma(alpha)[:, None, :]).sum(axis=1)
        b += kappa[:, None] ** 2 * (polygamma(1, shifted) - polygamma(1, alpha)[:, None, :]).sum(axis=1)
    eye_k = np.eye(k)[:, 1:]  # delta(k, j + 1)
    eye_j = np.eye(k - 1)
    m_tail = m[:, 1:]  # m_{j+1}
    jac = m[:, :, None] * (eye_k[None] - m_tail[:, None, :])  # (S, K, K-1)
    grad = np.einsum("sk,skj->sj", a, jac)
    second = jac[:, :, None, :] * (eye_k[None, :, :, None] - m_tail[:, None, :, None]) - m[:, :, None, None] * m_tail[
        :, None, :, None
    ] * (eye_j[None, None] - m_tail[:, None, None, :])
    hess = np.einsum("sk,ski,skj->sij", b, jac, jac) + np.einsum("sk,skij->sij", a, second)
    return f, grad, hess


def _conditional_modes(
    kappa: np.ndarray, counts: np.ndarray, u_start: np.ndarray, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Mode of u given each kappa (damped Newton, all kappas at once) and the Hessian there."""
    u = np.tile(u_start, (len(kappa), 1))
    f, g, h = _log_post_m_derivatives(u, kappa, counts)
    for _ in range(max_iter):
        try:
            step = np.linalg.solve(h, g[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = -g * 1e-3
        concave = np.all(np.linalg.eigvalsh(h) < 0, axis=1)
        step = np.where(concave[:, None], -step, 1e-3 * g)  # Newton where concave, else a small ascent step
        scale = np.ones(len(kappa))
        for _ in range(30):  # backtracking: never accept a step that lowers the log posterior
            u_new = u + scale[:, None] * step
            f_new = _log_post_m_rows(u_new, kappa, counts)
            worse = f_new < f - 1e-10 * np.abs(f)
            if not worse.any():
                break
            scale = np.where(worse, scale / 2, scale)
        u_new = np.where(worse[:, None], u, u_new)
        done = np.max(np.abs(u_new - u)) < 1e-9
        u = u_new
        f, g, h = _log_post_m_derivatives(u, kappa, counts)
        if done:
            break
    return u, h


def _log_post_m_rows(u: np.ndarray, kappa: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """log p(u | kappa, data) up to a constant in u, one (u, kappa) pair per row."""
    m = _alr_inverse(u)
    alpha = kappa[:, None] * m
    out = np.log(m).sum(axis=1)
    step = max(1, _GROUP_CHUNK_CELLS // max(len(u), 1))
    for start in range(0, counts.shape[0], step):
        c = counts[None, start : start + step, :]
        out += (gammaln(alpha[:, None, :] + c) - gammaln(alpha)[:, None, :]).sum(axis=(1, 2))
    return out


def _s_slices(
    log_s: np.ndarray, points: int, counts: np.ndarray, u_start: np.ndarray, prior_scale: float, d_log_s: float
) -> dict[str, np.ndarray]:
    """Grid nodes of (m, kappa) for each value of log s: a local grid of m around its conditional mode,
    along the principal axes of its conditional posterior. Returns nodes and their log weights."""
    k = counts.shape[1]
    offsets = np.linspace(-M_HALF_WIDTH, M_HALF_WIDTH, points)
    spacing = offsets[1] - offsets[0]
    grid = np.stack(np.meshgrid(*([offsets] * (k - 1)), indexing="ij"), axis=-1).reshape(-1, k - 1)
    # np.asarray: numpy's stubs type .any(axis=...) as a scalar or an array; on this 2-D grid it is an array
    edge = np.asarray((np.abs(grid) >= M_HALF_WIDTH - 1e-9).any(axis=1))
    s_values = np.exp(log_s)
    kappas = 1.0 / s_values**2 - 1.0
    modes, hessians = _conditional_modes(kappas, counts, u_start)
    out: dict[str, list[np.ndarray]] = {"u": [], "kappa": [], "logw": [], "edge": [], "slice": []}
    for i, (ls, s, kappa) in enumerate(zip(log_s, s_values, kappas)):
        evals, evecs = np.linalg.eigh(-hessians[i])
        scales = 1.0 / np.sqrt(np.maximum(evals, 1e-8))  # conditional posterior sds along the principal axes
        u_nodes = modes[i] + (grid * scales) @ evecs.T
        log_cell = float(np.sum(np.log(scales * spacing))) + np.log(d_log_s)
        log_prior_s = -0.5 * (s / prior_scale) ** 2 + ls  # half-normal on s, expressed on log s
        kappa_nodes = np.full(len(u_nodes), kappa)
        const = counts.shape[0] * gammaln(kappa) - gammaln(kappa + counts.sum(axis=1)).sum()
        out["u"].append(u_nodes)
        out["kappa"].append(kappa_nodes)
        out["logw"].append(_log_post_m_rows(u_nodes, kappa_nodes, counts) + const + log_prior_s + log_cell)
        out["edge"].append(edge)
        out["slice"].append(np.full(len(u_nodes), i))
    return {key: np.concatenate(value) for key, value in out.items()}


def _normalise(logw: np.ndarray) -> np.ndarray:
    w = np.exp(logw - logw.max())
    return w / w.sum()


def hierarchical_dirichlet(
    counts: np.ndarray,
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
    prior_scale: float = HETEROGENEITY_PRIOR_SCALE,
) -> dict[str, Any]:
    """Posterior draws of every group's shares under the hierarchical Dirichlet-multinomial.

    ``counts`` is (groups, K). Returns ``{"shares": (groups, draws, K), "m": (draws, K),
    "kappa": (draws,), "s": (draws,), "diagnostics": Diagnostics}`` (see :func:`grid_check`).

    Two passes: a coarse grid over the whole range of s locates the posterior; a fine grid replaces the
    coarse cells that hold all but ``2 * CENTRAL_TAIL`` of the mass (widened by one cell on each side).
    """
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2 or counts.shape[0] < 2 or counts.shape[1] < 2:
        raise ValueError(
            f"hierarchical Dirichlet-multinomial needs counts of shape (groups >= 2, K >= 2), got {counts.shape}"
        )
    if (counts < 0).any() or not np.isfinite(counts).all():
        raise ValueError("counts must be finite and non-negative")
    if not 0 < prior_scale <= 0.5:
        raise ValueError(f"prior_scale of the heterogeneity must lie in (0, 0.5], got {prior_scale!r}")
    rng = rng_for(seed)
    total = counts.sum(axis=0) + 0.5
    u_start = np.log(total[1:] / total[0])

    # cell midpoints: the cells tile [log S_MIN, log S_MAX] exactly, so s stays below 1 (kappa > 0)
    step = (np.log(S_MAX) - np.log(S_MIN)) / S_POINTS_COARSE
    coarse_s = np.log(S_MIN) + (np.arange(S_POINTS_COARSE) + 0.5) * step
    coarse = _s_slices(coarse_s, M_POINTS_COARSE, counts, u_start, prior_scale, step)
    w = _normalise(coarse["logw"])
    slice_mass = np.bincount(coarse["slice"], weights=w, minlength=len(coarse_s))
    cum = np.cumsum(slice_mass)
    lo = max(int(np.searchsorted(cum, CENTRAL_TAIL)) - 1, 0)
    hi = min(int(np.searchsorted(cum, 1.0 - CENTRAL_TAIL)) + 1, len(coarse_s) - 1)
    # fine cells tile exactly the coarse cells lo..hi; the coarse slices outside keep their coarse cells
    fine_step = (hi - lo + 1) * step / S_POINTS
    fine_s = coarse_s[lo] - step / 2 + (np.arange(S_POINTS) + 0.5) * fine_step
    fine = _s_slices(fine_s, M_POINTS, counts, u_start, prior_scale, fine_step)
    tails = np.flatnonzero((coarse["slice"] < lo) | (coarse["slice"] > hi))
    nodes = {key: np.concatenate([fine[key], coarse[key][tails]]) for key in ("u", "kappa", "logw", "edge")}
    w = _normalise(nodes["logw"])
    # mass the grids may have cut off: the edges of the local grids of m, plus the prior mass of s above
    # S_MAX (the likelihood is bounded, so the posterior beyond cannot be larger than a multiple of it;
    # below S_MIN pooling is already complete, so nothing is lost there)
    edge_mass = float(w[nodes["edge"]].sum()) + 2.0 * float(norm.sf(S_MAX / prior_scale))
    pick = rng.choice(len(w), size=int(draws), p=w)
    m = _alr_inverse(nodes["u"][pick])
    kappa = nodes["kappa"][pick]
    alpha = kappa[None, :, None] * m[None, :, :] + counts[:, None, :]
    gam = rng.standard_gamma(alpha)
    shares = gam / gam.sum(axis=2, keepdims=True)
    diagnostics = grid_check(
        "exact hierarchical Dirichlet-multinomial (numerical integration over the hyperparameters)",
        edge_mass,
        len(w),
        1.0 / np.sum(w**2),
        fine_heterogeneity_range=[float(np.exp(fine_s[0] - fine_step / 2)), float(np.exp(fine_s[-1] + fine_step / 2))],
    )
    return {"shares": shares, "m": m, "kappa": kappa, "s": 1.0 / np.sqrt(1.0 + kappa), "diagnostics": diagnostics}


def hierarchical_normal(
    n: np.ndarray,
    means: np.ndarray,
    sum_squares: np.ndarray,
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
) -> dict[str, Any]:
    """Posterior draws of every unit's mean under the hierarchical normal model (see module docstring).

    ``n``, ``means``, ``sum_squares`` (within-unit sums of squared deviations) have one entry per unit.
    Returns ``{"theta": (units, draws), "mu", "tau", "sigma": (draws,), "diagnostics": Diagnostics}``.
    """
    n = np.asarray(n, dtype=float)
    ybar = np.asarray(means, dtype=float)
    ss = np.asarray(sum_squares, dtype=float)
    if not (n.shape == ybar.shape == ss.shape) or n.ndim != 1 or len(n) < 2:
        raise ValueError(
            "hierarchical normal: n, means and sum_squares must be 1-D with one entry per unit (>= 2 units)"
        )
    if (n < 1).any():
        raise ValueError("hierarchical normal: every unit needs at least one answer")
    rng = rng_for(seed)
    total_n = n.sum()
    grand = float(np.sum(n * ybar) / total_n)
    total_ss = float(ss.sum() + np.sum(n * (ybar - grand) ** 2))
    total_sd = np.sqrt(total_ss / max(total_n - 1.0, 1.0))
    if not total_sd > 0:
        total_sd = 1.0
    df_within = total_n - len(n)
    within_sd = np.sqrt(ss.sum() / df_within) if df_within > 0 and ss.sum() > 0 else total_sd
    ss_total = float(ss.sum())

    def log_weights(log_tau: np.ndarray, log_sigma: np.ndarray) -> dict[str, np.ndarray]:
        lt, lsig = np.meshgrid(log_tau, log_sigma, indexing="ij")
        tau, sigma = np.exp(lt).ravel(), np.exp(lsig).ravel()
        sum_prec = np.zeros_like(tau)
        sum_prec_y = np.zeros_like(tau)
        sum_prec_y2 = np.zeros_like(tau)
        sum_log_v = np.zeros_like(tau)
        step = max(1, _GROUP_CHUNK_CELLS // len(tau))
        for start in range(0, len(n), step):  # sums over units, chunked to bound memory
            v = tau[:, None] ** 2 + sigma[:, None] ** 2 / n[None, start : start + step]
            prec = 1.0 / v
            y = ybar[None, start : start + step]
            sum_prec += prec.sum(axis=1)
            sum_prec_y += (prec * y).sum(axis=1)
            sum_prec_y2 += (prec * y * y).sum(axis=1)
            sum_log_v += np.log(v).sum(axis=1)
        v_mu = 1.0 / sum_prec
        mu_hat = sum_prec_y * v_mu
        quad = sum_prec_y2 - 2 * mu_hat * sum_prec_y + mu_hat**2 * sum_prec
        logw = (
            -0.5 * (tau / total_sd) ** 2
            - 0.5 * (sigma / (2 * total_sd)) ** 2  # half-normal priors
            + lt.ravel()
            + lsig.ravel()  # log-scale grid Jacobian (cells are equal in log tau, log sigma)
            - df_within * np.log(sigma)
            - ss_total / (2 * sigma**2)  # within-unit part of the likelihood
            + 0.5 * np.log(v_mu)
            - 0.5 * sum_log_v
            - 0.5 * quad
        )
        i_tau, i_sig = np.unravel_index(np.arange(len(tau)), lt.shape)
        return {
            "tau": tau,
            "sigma": sigma,
            "mu_hat": mu_hat,
            "v_mu": v_mu,
            "logw": logw,
            "i_tau": i_tau,
            "i_sig": i_sig,
        }

    def central(mass: np.ndarray) -> tuple[int, int]:
        cum = np.cumsum(mass)
        return (
            max(int(np.searchsorted(cum, CENTRAL_TAIL)) - 1, 0),
            min(int(np.searchsorted(cum, 1.0 - CENTRAL_TAIL)) + 1, len(mass) - 1),
        )

    half = min(3.0, 10.0 / np.sqrt(2.0 * max(df_within, 1.0)))
    log_sigma = np.log(within_sd) + np.linspace(-half, half, 25)
    log_tau = np.log(total_sd) + np.linspace(np.log(1e-4), np.log(3.0), 60)
    coarse = log_weights(log_tau, log_sigma)
    w = _normalise(coarse["logw"])
    t_lo, t_hi = central(np.bincount(coarse["i_tau"], weights=w, minlength=len(log_tau)))
    s_lo, s_hi = central(np.bincount(coarse["i_sig"], weights=w, minlength=len(log_sigma)))
    fine = log_weights(np.linspace(log_tau[t_lo], log_tau[t_hi], 80), np.linspace(log_sigma[s_lo], log_sigma[s_hi], 41))
    w = _normalise(fine["logw"])
    edge = (fine["i_sig"] == 0) | (fine["i_sig"] == 40)
    if t_hi == len(log_tau) - 1:
        edge |= fine["i_tau"] == 79
    tau, sigma, mu_hat, v_mu = fine["tau"], fine["sigma"], fine["mu_hat"], fine["v_mu"]
    edge_mass = float(w[edge].sum()) + float(
        np.bincount(coarse["i_tau"], weights=_normalise(coarse["logw"]), minlength=len(log_tau))[-1]
    )
    pick = rng.choice(len(w), size=int(draws), p=w)
    tau_d, sigma_d = tau[pick], sigma[pick]
    mu_d = mu_hat[pick] + np.sqrt(v_mu[pick]) * rng.standard_normal(int(draws))
    data_prec = n[:, None] / sigma_d[None, :] ** 2
    prior_prec = 1.0 / tau_d[None, :] ** 2
    post_var = 1.0 / (data_prec + prior_prec)
    post_mean = post_var * (data_prec * ybar[:, None] + prior_prec * mu_d[None, :])
    theta = post_mean + np.sqrt(post_var) * rng.standard_normal(post_mean.shape)
    diagnostics = grid_check(
        "exact hierarchical normal (analytic in the means, numerical over tau and sigma)",
        edge_mass,
        len(w),
        1.0 / np.sum(w**2),
    )
    return {"theta": theta, "mu": mu_d, "tau": tau_d, "sigma": sigma_d, "diagnostics": diagnostics}
