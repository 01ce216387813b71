"""JAX implementations of the fused likelihood Ops of :mod:`.kernels` (the optional accelerator path).

The numba kernels loop over rows; here the same quantities are array expressions that XLA compiles for
the CPU or a GPU:

- the lookup table is the NumPy twin's (:func:`.draws.build_tables` on jax.numpy): two contractions, centred on
  each touchpoint's mean contribution with the per-cell frequencies, as :func:`.kernels.build_table`;
- eta is a gather of the rows' table positions (``offsets``) summed over the touchpoints;
- the row log-likelihoods are the same softplus forms as the numba kernels (ordered logistic without the
  category-only term, which the model adds from the counts; Bernoulli; Gaussian);
- the gradients come from ``jax.value_and_grad`` of that function, so the scatter of d logp / d eta into the
  table and the chain back to the parameters are XLA's (a segment sum on a GPU), not hand-written.

Importing this module registers the Ops with PyTensor's JAX linker (``jax_funcify``); it is imported only
when a fit asks for ``backend: jax``, so JAX stays an optional dependency.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from pytensor.link.jax.dispatch import jax_funcify

from .draws import build_tables
from .kernels import _KIND, EquationLikelihood, GaussianSuffStatLikelihood


def build_table(coef, cell_dev, intercept_cell, features, slope_feature, cols, freq):
    """(C, T_j + 1, S) table of one equation: the NumPy twin :func:`.draws.build_tables` (one draw) in jax.numpy."""
    one_draw = (coef[None], cell_dev[None], intercept_cell[None])
    return build_tables(*one_draw, features, slope_feature, cols, freq, xp=jnp)[0]


def _row_loglik(kind: int, eta, theta, y):
    """Summed log-likelihood of the rows given their linear predictors (the numba kernels' forms)."""
    if kind == 0:  # ordered logistic: -softplus(c[k-1] - eta) - softplus(eta - c[k]), dropping absent ends
        k = y.astype(jnp.int32)
        n_cut = theta.shape[0]
        lower = jnp.where(k > 0, jax.nn.softplus(theta[jnp.clip(k - 1, 0, n_cut - 1)] - eta), 0.0)
        upper = jnp.where(k < n_cut, jax.nn.softplus(eta - theta[jnp.clip(k, 0, n_cut - 1)]), 0.0)
        return -(lower + upper).sum()
    if kind == 1:  # Bernoulli, logit link
        return (y * eta - jax.nn.softplus(eta)).sum()
    sigma = theta[0]  # Gaussian
    n = y.shape[0]
    r = y - eta
    return -n * jnp.log(sigma) - 0.5 * n * jnp.log(2 * jnp.pi) - 0.5 * (r @ r) / (sigma * sigma)


def equation_loglik(
    kind, coef, cell_dev, intercept_cell, extra, theta, features, slope_feature, cols, freq, offsets, y
):
    """log p(y | eta) of one equation; eta = extra + the rows' table entries summed."""
    table = build_table(coef, cell_dev, intercept_cell, features, slope_feature, cols, freq)
    eta = extra + table.ravel()[offsets.astype(jnp.int32)].sum(axis=1)
    return _row_loglik(kind, eta, theta, y)


def suffstat_loglik(coef, cell_dev, intercept_cell, theta, features, slope_feature, cols, freq, m, yv, yy_n):
    """Gaussian log-likelihood on the per-cell statistics; see :func:`.kernels.gaussian_suffstat_kernel`."""
    table = build_table(coef, cell_dev, intercept_cell, features, slope_feature, cols, freq)
    flat = table.reshape(table.shape[0], -1)
    ss = yy_n[0] + jnp.einsum("ca,cab,cb->", flat, m, flat) - 2.0 * (flat * yv).sum()
    n = yy_n[1]
    sigma = theta[0]
    return -n * jnp.log(sigma) - 0.5 * n * jnp.log(2 * jnp.pi) - 0.5 * ss / (sigma * sigma)


@jax_funcify.register(EquationLikelihood)
def _jax_equation(op, **kwargs):
    """The Op's outputs: log-likelihood, then its gradient for each differentiable input (coef, cell_dev,
    intercept_cell, extra, theta); the data inputs follow them, as in the numba implementation."""
    kind = _KIND[op.likelihood]
    value_and_grad = jax.value_and_grad(lambda *a: equation_loglik(kind, *a), argnums=(0, 1, 2, 3, 4))

    def equation_likelihood(*inputs):
        logp, grads = value_and_grad(*inputs)
        return (logp, *grads)

    return equation_likelihood


@jax_funcify.register(GaussianSuffStatLikelihood)
def _jax_suffstat(op, **kwargs):
    """Outputs: log-likelihood, then its gradient for coef, cell_dev, intercept_cell and theta."""
    value_and_grad = jax.value_and_grad(suffstat_loglik, argnums=(0, 1, 2, 3))

    def gaussian_suffstat_likelihood(*inputs):
        logp, grads = value_and_grad(*inputs)
        return (logp, *grads)

    return gaussian_suffstat_likelihood
