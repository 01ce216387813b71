"""The O(rows) likelihoods against PyMC's own distributions and pure-PyTensor references."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest

from cxresearch.drivers.draws import build_tables
from cxresearch.drivers.kernels import (
    bernoulli_kernel,
    build_table,
    equation_loglik,
    gaussian_kernel,
    gaussian_sufficient_statistics,
    gaussian_suffstat_loglik,
    ordinal_kernel,
    row_offsets,
)
from cxresearch.drivers.likelihoods import ordered_logistic_logp, ordered_logistic_logp_terms, ordered_logistic_probs


def _random_ordinal(seed: int, n: int = 400, k: int = 11):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    y[:7], y[7:14] = 0, k - 1  # the extreme categories, always present
    eta = rng.normal(0.0, 2.5, n)
    eta[:3], eta[7:10] = 6.0, -6.0  # extremes where the category is unlikely
    cuts = np.sort(rng.normal(0.0, 2.5, k - 1))
    return y, eta, cuts


@pytest.mark.parametrize("seed,k", [(0, 11), (1, 5), (2, 2), (3, 7)])
def test_ordered_logistic_matches_pymc_to_1e8(seed, k):
    """Per-row log p equals pm.OrderedLogistic's (N x K probability matrix) to 1e-8, extremes included."""
    y, eta, cuts = _random_ordinal(seed, k=k)
    reference = pm.logp(pm.OrderedLogistic.dist(eta=eta, cutpoints=cuts), y).eval()
    e, c = pt.dvector("eta"), pt.dvector("cuts")
    ours = pytensor.function([e, c], ordered_logistic_logp_terms(y, e, c, k))(eta, cuts)
    total = pytensor.function([e, c], ordered_logistic_logp(y, e, c, k))(eta, cuts)
    # PyMC differences sigmoids in probability space (error ~1e-16 / p), ours works in log space: agree to 1e-8
    np.testing.assert_allclose(ours, reference, atol=1e-8, rtol=0)
    assert abs(total - reference.sum()) < 1e-8 * len(y)
    assert set(y[:14]) == {0, k - 1}


def test_ordered_logistic_gradient_matches_pymc():
    y, eta, cuts = _random_ordinal(5)
    e, c = pt.dvector("eta"), pt.dvector("cuts")
    ref = pm.logp(pm.OrderedLogistic.dist(eta=e, cutpoints=c), y).sum()
    ours = ordered_logistic_logp(y, e, c, 11)
    g_ref = pytensor.function([e, c], pt.grad(ref, [e, c]))(eta, cuts)
    g_ours = pytensor.function([e, c], pt.grad(ours, [e, c]))(eta, cuts)
    for a, b in zip(g_ours, g_ref):
        np.testing.assert_allclose(a, b, atol=1e-8)


def test_ordered_logistic_is_stable_far_in_the_tails():
    """eta 40 logits away: PyMC's probability matrix underflows to log(0), ours stays finite and exact."""
    y = np.array([0, 10, 5])
    eta = np.array([40.0, -40.0, 0.0])
    cuts = np.linspace(-3, 3, 10)
    out = pytensor.function([], ordered_logistic_logp_terms(y, pt.as_tensor(eta), pt.as_tensor(cuts), 11))()
    # log p(y=0 | eta=40) = log(1 - sigmoid(40 - c0)) = -softplus(40 - c0) ~ -(43)
    assert out[0] == pytest.approx(-np.logaddexp(0, 40 - cuts[0]), rel=1e-12)
    assert out[1] == pytest.approx(-np.logaddexp(0, cuts[-1] + 40), rel=1e-12)
    assert np.isfinite(out).all()


def test_ordered_logistic_rejects_out_of_range_categories():
    with pytest.raises(ValueError, match=r"0\.\.4.*\[7\]"):
        ordered_logistic_logp(np.array([0, 7, 2]), pt.zeros(3), pt.as_tensor(np.arange(4.0)), 5)


def test_probabilities_sum_to_one():
    probs = ordered_logistic_probs(np.array([-2.0, 0.0, 3.0]), np.linspace(-2, 2, 4))
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0)
    assert (probs >= 0).all()


# ---------------------------------------------------------------------------------- fused kernels
def _kernel_case(seed: int = 0):
    rng = np.random.default_rng(seed)
    n, cells, n_tp, n_states, k = 300, 3, 4, 6, 5
    states = rng.integers(0, n_states, (n, n_tp + 1)).astype("int32")
    states[:, -1] = 0  # intercept slot
    cell = rng.integers(0, cells, n).astype("int32")
    y_ord = rng.integers(0, k, n).astype("int32")
    return rng, n, cells, n_tp, n_states, k, states, cell, y_ord


@pytest.mark.parametrize("declared_cells", [None, 20_000], ids=["uint16-offsets", "int32-offsets"])
@pytest.mark.parametrize("likelihood", ["ordered_logistic", "bernoulli", "gaussian"])
def test_row_kernels_match_pytensor_reference(likelihood, declared_cells):
    """Log-likelihood and gradients of the lookup-table row kernels equal a plain PyTensor graph (1e-10),
    with the compact (uint16) row offsets and with the int32 ones used for tables above 65,536 entries."""
    rng, n, cells, n_tp, n_states, k, states, cell, y_ord = _kernel_case()
    offsets = row_offsets(states, cell, np.arange(n_tp), declared_cells or cells, n_states)
    assert offsets.dtype == (np.uint16 if declared_cells is None else np.int32)
    y = {"ordered_logistic": y_ord, "bernoulli": (y_ord > 2).astype("int32"), "gaussian": rng.normal(size=n)}[
        likelihood
    ]
    kernel = {"ordered_logistic": ordinal_kernel, "bernoulli": bernoulli_kernel, "gaussian": gaussian_kernel}[
        likelihood
    ]
    tab, ex, th = pt.dtensor3("table"), pt.dvector("extra"), pt.dvector("theta")
    eta = ex + tab[cell[:, None], np.arange(n_tp + 1)[None, :], states].sum(axis=1)
    if likelihood == "ordered_logistic":
        ref = ordered_logistic_logp_terms(y_ord, eta, th, k).sum()
        ref = (
            ref
            - pt.dot(
                np.bincount(y_ord, minlength=k)[1:-1].astype(float),  # the kernel leaves the gap
                pt.log(-pt.expm1(th[:-1] - th[1:])),
            )
        )  # term (counts only) outside
        theta = np.sort(rng.normal(size=k - 1))
    elif likelihood == "bernoulli":
        ref, theta = (y * eta - pt.softplus(eta)).sum() + 0 * th.sum(), np.zeros(1)
    else:
        ref, theta = pm.logp(pm.Normal.dist(eta, th[0]), y).sum(), np.array([1.3])
    table, extra = rng.normal(size=(cells, n_tp + 1, n_states)), rng.normal(size=n)
    g = pytensor.function([tab, ex, th], [ref, *pt.grad(ref, [tab, ex, th])])
    for a, b in zip(kernel(table, extra, theta, offsets, y), g(table, extra, theta)):
        np.testing.assert_allclose(a, b, atol=1e-10)


def test_equation_kernel_gradient_matches_finite_differences_in_numba():
    """The fused equation Op (table built inside) in the Numba backend nutpie uses: exact gradients."""
    rng, n, cells, n_tp, n_states, k, states, cell, y_ord = _kernel_case(1)
    n_terms = 4
    features = rng.normal(size=(n_terms, n_tp, n_states))
    features[:, :, 0] = 0.0
    slope = features[1:]  # slope, penalty and reward vary by cell: (3, T, S)
    cols = np.arange(n_tp, dtype=np.int64)
    freq = np.zeros((cells, n_tp + 1, n_states))
    np.add.at(freq, (cell[:, None], np.arange(n_tp + 1)[None, :], states), 1.0)
    coef, dev, icpt, extra = pt.dmatrix("coef"), pt.dtensor3("dev"), pt.dvector("icpt"), pt.dvector("extra")
    cuts = pt.dvector("cuts")
    ll = equation_loglik(
        "ordered_logistic",
        coef,
        dev,
        icpt,
        extra,
        cuts,
        features,
        slope,
        cols,
        freq,
        row_offsets(states, cell, cols, cells, n_states),
        y_ord,
    )
    f = pytensor.function(
        [coef, dev, icpt, extra, cuts], [ll, *pt.grad(ll, [coef, dev, icpt, extra, cuts])], mode="NUMBA"
    )
    point = [
        rng.normal(size=(n_terms, n_tp)) * 0.3,
        rng.normal(size=(3, cells, n_tp)) * 0.1,
        np.zeros(cells),
        rng.normal(size=n) * 0.2,
        np.linspace(-2, 2, k - 1),
    ]
    value, *grads = f(*point)
    # the table the kernel builds equals the NumPy twin used for effects
    table, _ = build_table(point[0], point[1], point[2], features, slope, cols, freq)
    twin = build_tables(point[0][None], point[1][None], point[2][None], features, slope, cols, freq)[0]
    np.testing.assert_allclose(table, twin, atol=1e-12)
    h = 1e-6
    for arg in (0, 1, 3, 4):
        indices = list(np.ndindex(point[arg].shape))
        for idx in indices[:3] + indices[-3:]:  # the first and the last entries (for dev: slope and reward)
            up = [p.copy() for p in point]
            dn = [p.copy() for p in point]
            up[arg][idx] += h
            dn[arg][idx] -= h
            numeric = (f(*up)[0] - f(*dn)[0]) / (2 * h)
            assert grads[arg][idx] == pytest.approx(numeric, rel=1e-5, abs=1e-6)
    assert np.isfinite(value)


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_RUN"])
def test_gaussian_on_sufficient_statistics_equals_the_row_kernel(mode):
    """The Gaussian equation on per-cell statistics: the same log-likelihood and gradients as the O(rows)
    kernel with no row-level predictors (1e-8), in the Numba backend (nutpie) and the C one (ADVI)."""
    rng, n, cells, n_tp, n_states, k, states, cell, _ = _kernel_case(2)
    n_terms = 4
    features = rng.normal(size=(n_terms, n_tp, n_states))
    features[:, :, 0] = 0.0
    slope = features[1:]  # slope, penalty and reward vary by cell
    cols = np.array([0, 2, 3], dtype=np.int64)  # an equation on a subset of the touchpoints
    freq = np.zeros((cells, n_tp + 1, n_states))
    np.add.at(freq, (cell[:, None], np.arange(n_tp + 1)[None, :], states), 1.0)
    y = rng.normal(size=n) * 1.5 + 0.3
    m, yv, yy_n = gaussian_sufficient_statistics(states, cell, y, cols, cells, n_states)
    assert m.shape == (cells, (len(cols) + 1) * n_states, (len(cols) + 1) * n_states)
    assert yy_n[1] == n and m.sum() == n * (len(cols) + 1) ** 2  # every row counted once per slot pair
    coef, dev, icpt, sigma = pt.dmatrix("coef"), pt.dtensor3("dev"), pt.dvector("icpt"), pt.dvector("sigma")
    rows = equation_loglik(
        "gaussian",
        coef,
        dev,
        icpt,
        np.zeros(n),
        sigma,
        features[:, cols],
        slope[:, cols],
        cols,
        freq,
        row_offsets(states, cell, cols, cells, n_states),
        y,
    )
    stats = gaussian_suffstat_loglik(coef, dev, icpt, sigma, features[:, cols], slope[:, cols], cols, freq, m, yv, yy_n)
    args = [coef, dev, icpt, sigma]
    f = pytensor.function(args, [rows, *pt.grad(rows, args)], mode=mode)
    g = pytensor.function(args, [stats, *pt.grad(stats, args)], mode=mode)
    for _ in range(3):
        point = [
            rng.normal(size=(n_terms, len(cols))) * 0.5,
            rng.normal(size=(3, cells, len(cols))) * 0.3,
            rng.normal(size=cells),
            np.array([rng.uniform(0.5, 2.0)]),
        ]
        for a, b in zip(f(*point), g(*point)):
            np.testing.assert_allclose(b, a, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("n_cells", [6, 400])  # 6 x 8 x 12 entries: uint16 offsets; 400 x 8 x 12 > 65,536: int32
def test_gather_over_draws_equals_the_per_draw_lookup(n_cells):
    """Predictions' lookup over posterior draws: eta[d, i] = sum_t table[d, cell_i, t, state_it], the sum the
    likelihood kernels compute for one draw (checked entry by entry against numpy's indexing)."""
    from cxresearch.drivers.predict import _gather_tables

    rng = np.random.default_rng(3)
    n_draws, n_slots, n_states, n = 7, 8, 12, 500
    table = rng.normal(size=(n_draws, n_cells, n_slots, n_states))
    states = rng.integers(0, n_states, size=(n, n_slots)).astype(np.int32)
    cell = rng.integers(0, n_cells, size=n).astype(np.int32)
    offsets = row_offsets(states, cell, np.arange(n_slots - 1), n_cells, n_states)
    assert offsets.dtype == (np.uint16 if n_cells * n_slots * n_states <= 65536 else np.int32)
    expected = table[:, cell[:, None], np.arange(n_slots)[None, :], states].sum(axis=-1)
    np.testing.assert_allclose(_gather_tables(table, states, cell), expected, rtol=0, atol=1e-12)
    # a non-contiguous table (a slice of draws) gives the same numbers
    np.testing.assert_allclose(_gather_tables(table[::2], states, cell), expected[::2], rtol=0, atol=1e-12)
