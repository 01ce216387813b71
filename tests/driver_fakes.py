"""A DriverFit with a small, known posterior (random draws of every parameter), for tests of what is computed
from a fit (effects, predict, log-likelihood) without sampling. Other test modules may import this."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import arviz as az
import numpy as np

from cxresearch.drivers.draws import dev_features
from cxresearch.drivers.fit import DriverFit
from cxresearch.drivers.kernels import equation_kernel, row_offsets
from cxresearch.drivers.model import build_model, slope_deviations

#: a passed NUTS verdict for fakes (the figures of a comfortably converged fit)
PASSED = {
    "passed": True,
    "method": "nuts (nutpie)",
    "rhat_max": 1.0,
    "ess_bulk_min": 1000.0,
    "ess_tail_min": 1000.0,
    "divergences": 0,
    "reasons": [],
}


def known_draws(prep: Any, n_draws: int, seed: int = 0) -> tuple[Any, dict[str, np.ndarray]]:
    """(layout, draws by parameter name) with ``n_draws`` random draws of every free parameter of the model."""
    rng = np.random.default_rng(seed)
    _, layout = build_model(prep)
    post: dict[str, np.ndarray] = {}
    for j, eq in layout.equations.items():
        n_tj, n_free = len(eq.tp_index), len(eq.dim_of_free)
        if n_tj:
            post[eq.name("coef")] = rng.normal(0, 0.2, (n_draws, len(eq.terms), n_tj))
        if eq.slope_dims:
            sd = np.abs(rng.normal(0, 0.1, (n_draws, len(prep.group_dims))))
            z = rng.normal(0, 1, (n_draws, n_free, n_tj))
            post[eq.name("z_slope")] = z
            for term in eq.dev_terms:  # what the model stores as deterministics (slope, penalty, reward)
                post[eq.name(f"{term}_dev")] = slope_deviations(
                    eq, sd, rng.normal(0, 1, z.shape) if term != "slope" else z
                )
        if eq.intercept_dims:
            post[eq.name("z_intercept")] = rng.normal(0, 1, (n_draws, n_free))
        if eq.has_intercept:
            post[eq.name("intercept")] = rng.normal(0, 0.1, n_draws)
        if eq.construct_sources:
            post[eq.name("path")] = rng.normal(1.0, 0.1, (n_draws, len(eq.construct_sources)))
        if eq.likelihood == "ordered_logistic":
            post[eq.name("cutpoints")] = np.sort(rng.normal(0, 2, (n_draws, prep.n_categories[j] - 1)), axis=1)
        if eq.likelihood == "gaussian":
            post[eq.name("sigma")] = np.abs(rng.normal(0.8, 0.05, n_draws))
    return layout, post


def fake_fit(
    prep: Any, post: Mapping[str, np.ndarray], layout: Any, gate: Any = None, method: str = "nuts"
) -> DriverFit:
    """The DriverFit of those draws (one chain) with a passed verdict unless ``gate`` says otherwise."""
    idata = az.from_dict(posterior={k: np.asarray(v)[None] for k, v in post.items()})
    return DriverFit(prep=prep, layout=layout, idata=idata, gate=gate or PASSED, method=method)


#: the likelihood kernel's code for each outcome likelihood
KERNEL_KIND = {"ordered_logistic": 0, "bernoulli": 1, "gaussian": 2}


def kernel_loglik(prep: Any, eq: Any, s: int, extra: np.ndarray, j: str) -> float:
    """The equation's log-likelihood at draw s as the model sums it (kernel + the ordinal gap term)."""
    features = np.stack([prep.features[t][eq.cols] for t in eq.layout.terms])
    logp = equation_kernel(
        KERNEL_KIND[eq.layout.likelihood],
        eq.coef[s],
        eq.cell_dev[s],
        eq.intercept_cell[s],
        np.ascontiguousarray(extra, dtype=float),
        eq.theta[s],
        features,
        dev_features(prep, eq.layout),
        eq.cols,
        prep.freq,
        row_offsets(prep.states, prep.cell, eq.cols, prep.n_cells, prep.n_states),
        prep.outcomes[j],
    )[0]
    if eq.layout.likelihood == "ordered_logistic":
        cuts = eq.theta[s]
        counts = np.bincount(prep.outcomes[j], minlength=prep.n_categories[j])
        logp += (counts[1:-1] * np.log(-np.expm1(cuts[:-1] - cuts[1:]))).sum()
    return float(logp)
