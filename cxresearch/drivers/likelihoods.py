"""Likelihoods that cost O(rows): ordered logistic by gathered cutpoints (the Gaussian equation on
sufficient statistics lives with the fused kernels in :mod:`.kernels`).

``pm.OrderedLogistic`` builds an N x K matrix of category probabilities (K sigmoids per row, then a
difference and a log), so a 0-10 answer costs eleven sigmoids per respondent. The log-probability of
one observed category needs only the two cutpoints around it:

    log p(y = k) = log( sigmoid(eta - c[k-1]) - sigmoid(eta - c[k]) )

and with the identity  sigmoid(a) - sigmoid(b) = sigmoid(a) * sigmoid(-b) * (1 - exp(b - a))  (a > b)

    log p(y = k) = -softplus(c[k-1] - eta) - softplus(eta - c[k]) + log1mexp(c[k-1] - c[k])

Each row needs two softplus terms (numerically stable for any eta); the last term depends on the
category only, so it is summed once per category with the category counts. The extreme categories
drop the missing side (c[-1] = -inf, c[K-1] = +inf): their term is exactly zero.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.tensor.variable import TensorVariable


def ordered_logistic_logp_terms(
    y: np.ndarray, eta: TensorVariable, cutpoints: TensorVariable, n_categories: int
) -> TensorVariable:
    """Per-row log p(y | eta, cutpoints) of an ordered logistic, O(rows) (see the module docstring).

    ``y`` holds integer categories 0..K-1 (a NumPy array: the masks are built once, outside the graph);
    ``eta`` has one entry per row; ``cutpoints`` has K-1 increasing entries.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"ordered logistic: y must be one-dimensional, got shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() > n_categories - 1):
        bad = sorted(set(y[(y < 0) | (y > n_categories - 1)].tolist()))[:5]
        raise ValueError(f"ordered logistic: categories must lie in 0..{n_categories - 1}, got {bad}")
    y = y.astype("int64")
    has_lower = y > 0  # category above the first: a lower cutpoint exists
    has_upper = y < n_categories - 1
    lower_idx = np.clip(y - 1, 0, n_categories - 2)
    upper_idx = np.clip(y, 0, n_categories - 2)
    lower = -pt.softplus(cutpoints[lower_idx] - eta)  # log sigmoid(eta - c[k-1])
    upper = -pt.softplus(eta - cutpoints[upper_idx])  # log sigmoid(c[k] - eta)
    gaps = _log1mexp(cutpoints[:-1] - cutpoints[1:])  # log(1 - exp(c[k-1] - c[k])), k = 1..K-2
    gap_by_category = pt.concatenate([pt.zeros(1), gaps, pt.zeros(1)])
    return pt.switch(has_lower, lower, 0.0) + pt.switch(has_upper, upper, 0.0) + gap_by_category[y]


def ordered_logistic_logp(
    y: np.ndarray, eta: TensorVariable, cutpoints: TensorVariable, n_categories: int
) -> TensorVariable:
    """Summed log-likelihood of an ordered logistic; the category-only term uses category counts."""
    y = np.asarray(y).astype("int64")
    if y.ndim != 1:
        raise ValueError(f"ordered logistic: y must be one-dimensional, got shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() > n_categories - 1):
        bad = sorted(set(y[(y < 0) | (y > n_categories - 1)].tolist()))[:5]
        raise ValueError(f"ordered logistic: categories must lie in 0..{n_categories - 1}, got {bad}")
    counts = np.bincount(y, minlength=n_categories).astype("float64")
    lower_rows = np.flatnonzero(y > 0)
    upper_rows = np.flatnonzero(y < n_categories - 1)
    total = pt.zeros(())
    if len(lower_rows):
        eta_l = eta[lower_rows] if len(lower_rows) < len(y) else eta
        total = total - pt.softplus(cutpoints[y[lower_rows] - 1] - eta_l).sum()
    if len(upper_rows):
        eta_u = eta[upper_rows] if len(upper_rows) < len(y) else eta
        total = total - pt.softplus(eta_u - cutpoints[y[upper_rows]]).sum()
    if n_categories > 2:
        gaps = _log1mexp(cutpoints[:-1] - cutpoints[1:])
        total = total + pt.dot(counts[1:-1], gaps)
    return total


def _log1mexp(x: TensorVariable) -> TensorVariable:
    """log(1 - exp(x)) for x < 0, accurate near 0 and for large negative x."""
    return pt.switch(x > -0.693147180559945, pt.log(-pt.expm1(x)), pt.log1p(-pt.exp(x)))


def ordered_logistic_probs(eta: np.ndarray, cutpoints: np.ndarray) -> np.ndarray:
    """Category probabilities (NumPy), shape eta.shape + (K,): for prediction, not for the likelihood."""
    eta = np.asarray(eta, dtype="float64")
    cum = (
        _np_sigmoid(np.asarray(cutpoints)[..., None, :] - eta[..., None])
        if eta.ndim
        else _np_sigmoid(np.asarray(cutpoints) - eta)
    )
    zeros = np.zeros(cum.shape[:-1] + (1,))
    cum = np.concatenate([zeros, cum, zeros + 1.0], axis=-1)
    return np.diff(cum, axis=-1)


def _np_sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x, dtype="float64")
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out
