"""The JAX backend of the driver models (issue 20's accelerator path), checked against the numba backend.

The numba kernels are the reference (they are checked against plain PyTensor graphs and finite differences in
``test_drivers_likelihood.py``). Here the same Ops, the same models and the same fits run through XLA:

- each fused Op (ordered logistic, Bernoulli, Gaussian rows; Gaussian on sufficient statistics) gives the same
  log-likelihood and gradients as numba to 1e-9 at random points;
- a whole driver model's log-density and gradient (priors, transforms, group deviations) agree, also after a
  second data set is swapped into the compiled JAX model;
- a fit passes the gate, and its posterior means agree with the numba fit's within Monte Carlo error.

Skipped when JAX is not installed (it is an optional dependency; ``pip install 'cxresearch[jax]'``).
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

pytest.importorskip("jax")
pytest.importorskip("cxresearch.drivers.kernels_jax")  # registers the Ops with PyTensor's JAX linker

from cxresearch.drivers.fit import compile_driver_model, fit_driver_model, resolve_model  # noqa: E402
from cxresearch.drivers.kernels import (  # noqa: E402
    equation_loglik,
    gaussian_sufficient_statistics,
    gaussian_suffstat_loglik,
    row_offsets,
)
from cxresearch.drivers.model import prepare_data  # noqa: E402


def _case(seed: int):
    rng = np.random.default_rng(seed)
    n, cells, n_tp, n_states, k = 300, 3, 4, 6, 5
    states = rng.integers(0, n_states, (n, n_tp + 1)).astype("int32")
    states[:, -1] = 0  # intercept slot
    cell = rng.integers(0, cells, n).astype("int32")
    features = rng.normal(size=(4, n_tp, n_states))
    features[:, :, 0] = 0.0
    freq = np.zeros((cells, n_tp + 1, n_states))
    np.add.at(freq, (cell[:, None], np.arange(n_tp + 1)[None, :], states), 1.0)
    return rng, n, cells, n_tp, n_states, k, states, cell, features, freq


def _both_modes(inputs, output):
    args = list(inputs)
    outs = [output, *pt.grad(output, args)]
    return pytensor.function(args, outs, mode="NUMBA"), pytensor.function(args, outs, mode="JAX")


@pytest.mark.parametrize(
    "likelihood,declared_cells",
    [("ordered_logistic", None), ("bernoulli", None), ("gaussian", None), ("ordered_logistic", 20_000)],
    ids=["ordinal", "bernoulli", "gaussian", "ordinal-int32-offsets"],
)
def test_equation_op_in_jax_equals_numba(likelihood, declared_cells):
    rng, n, cells, n_tp, n_states, k, states, cell, features, freq = _case(3)
    slope = features[1:]  # slope, penalty and reward vary by cell
    cols = np.arange(n_tp, dtype=np.int64)
    offsets = row_offsets(states, cell, cols, declared_cells or cells, n_states)
    if declared_cells:  # a table declared larger than it is: offsets index the first cells only
        freq = np.concatenate([freq, np.zeros((declared_cells - cells, n_tp + 1, n_states))])
    y = {
        "ordered_logistic": rng.integers(0, k, n),
        "bernoulli": rng.integers(0, 2, n),
        "gaussian": rng.normal(size=n),
    }[likelihood]
    coef, dev, icpt, extra, theta = (
        pt.dmatrix("coef"),
        pt.dtensor3("dev"),
        pt.dvector("icpt"),
        pt.dvector("extra"),
        pt.dvector("theta"),
    )
    ll = equation_loglik(likelihood, coef, dev, icpt, extra, theta, features, slope, cols, freq, offsets, y)
    numba_f, jax_f = _both_modes([coef, dev, icpt, extra, theta], ll)
    total_cells = freq.shape[0]
    for _ in range(3):
        point = [
            rng.normal(size=(4, n_tp)) * 0.4,
            rng.normal(size=(3, total_cells, n_tp)) * 0.2,
            rng.normal(size=total_cells) * 0.5,
            rng.normal(size=n) * 0.3,
            np.sort(rng.normal(size=k - 1)) if likelihood == "ordered_logistic" else np.array([rng.uniform(0.5, 2)]),
        ]
        for a, b in zip(jax_f(*point), numba_f(*point)):
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-9, atol=1e-9)


def test_sufficient_statistics_op_in_jax_equals_numba():
    rng, n, cells, n_tp, n_states, k, states, cell, features, freq = _case(4)
    cols = np.array([0, 2, 3], dtype=np.int64)
    slope = features[1:]
    y = rng.normal(size=n) * 1.5 + 0.3
    m, yv, yy_n = gaussian_sufficient_statistics(states, cell, y, cols, cells, n_states)
    coef, dev, icpt, sigma = pt.dmatrix("coef"), pt.dtensor3("dev"), pt.dvector("icpt"), pt.dvector("sigma")
    ll = gaussian_suffstat_loglik(coef, dev, icpt, sigma, features[:, cols], slope[:, cols], cols, freq, m, yv, yy_n)
    numba_f, jax_f = _both_modes([coef, dev, icpt, sigma], ll)
    for _ in range(3):
        point = [
            rng.normal(size=(4, len(cols))) * 0.5,
            rng.normal(size=(3, cells, len(cols))) * 0.3,
            rng.normal(size=cells),
            np.array([rng.uniform(0.5, 2.0)]),
        ]
        for a, b in zip(jax_f(*point), numba_f(*point)):
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def surveys(tmp_path_factory):
    """Two simulated surveys of one structure (the demo's model: composite emotion, ordinal recommend,
    segments and markets)."""
    from cxresearch.data import load_dataset
    from cxresearch.data.simulator import simulate_dataset

    out = []
    for seed in (4, 5):
        folder = tmp_path_factory.mktemp(f"jax{seed}")
        simulate_dataset(folder, 1200, seed, population_samples=1000)
        out.append(load_dataset(folder / "dataset.yaml", tables=["survey"]))
    return out


def _logp_and_grad(compiled, x):
    if hasattr(compiled, "logp_func"):  # numba: the PyTensor function nutpie wraps
        value, grad = compiled.logp_func(x)
    else:  # JAX: nutpie's Python log-density with the model's data
        value, grad = compiled._make_logp_func()(x, **compiled._shared_data)
    return float(value), np.asarray(grad)


def test_whole_model_log_density_and_gradient_agree_and_survive_a_data_swap(surveys):
    first, second = (prepare_data(d.survey, resolve_model(None, d.spec), d.spec) for d in surveys)
    # a fresh numba compilation: its PyTensor function (the reference evaluated here) holds this data, where a
    # cached model would hold the data it was compiled with (nutpie's numba function gets the swapped data)
    _, _, numba_model = compile_driver_model(first, reuse=False)
    _, _, jax_model = compile_driver_model(first, backend="jax")
    rng = np.random.default_rng(0)
    start = jax_model._make_initial_points(1)
    np.testing.assert_allclose(start, numba_model.initial_point_func(1))  # the same initial point
    for _ in range(3):
        x = start + rng.normal(size=start.shape) * 0.3
        v_n, g_n = _logp_and_grad(numba_model, x)
        v_j, g_j = _logp_and_grad(jax_model, x)
        assert v_j == pytest.approx(v_n, rel=1e-10)
        np.testing.assert_allclose(g_j, g_n, rtol=1e-8, atol=1e-8)
    # the second survey swapped into the cached JAX model (no compilation) equals a fresh compilation of it
    _, _, swapped = compile_driver_model(second, backend="jax")
    _, _, fresh = compile_driver_model(second, reuse=False, backend="jax")
    assert swapped is not jax_model
    x = fresh._make_initial_points(2)
    np.testing.assert_allclose(swapped._make_initial_points(2), x)
    v_s, g_s = _logp_and_grad(swapped, x)
    v_f, g_f = _logp_and_grad(fresh, x)
    assert v_s == pytest.approx(v_f, rel=1e-12) and v_s != pytest.approx(_logp_and_grad(jax_model, x)[0], rel=1e-6)
    np.testing.assert_allclose(g_s, g_f, rtol=1e-10, atol=1e-10)


def test_unknown_backend_is_refused(surveys):
    with pytest.raises(ValueError, match="backend must be one of"):
        fit_driver_model(surveys[0], None, backend="torch")


def _small_survey(n: int = 600, seed: int = 0):
    """``n`` answers, 5 touchpoints on 1-5 (some not used), 2 segments, an overall rating 1-5 from a known linear
    predictor: a model that samples in seconds on either backend."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rating = rng.integers(1, 6, (n, 5)).astype(float)
    rating[rng.random((n, 5)) < 0.2] = np.nan
    segment = rng.integers(0, 2, n)
    beta = np.array([0.6, 0.4, 0.3, 0.1, 0.0])
    eta = np.nansum((rating - 3) * beta, axis=1) + 0.3 * segment + rng.logistic(size=n)
    recommend = 1 + np.searchsorted([-1.5, -0.5, 0.5, 1.5], eta)  # 1-5, every answer point used
    frame = pd.DataFrame({f"tp{t}": rating[:, t] for t in range(5)})
    frame["segment"] = np.where(segment == 1, "b", "a")
    frame["recommend"] = recommend
    constructs: dict = {f"tp{t}": {"items": [f"tp{t}"], "kind": "touchpoint", "scale": [1, 5]} for t in range(5)}
    constructs["recommend"] = {"items": ["recommend"], "likelihood": "ordered_logistic", "scale": [1, 5]}
    return frame, {"constructs": constructs, "paths": ["touchpoints -> recommend"], "group_by": ["segment"]}


@pytest.mark.slow
def test_jax_fit_passes_the_gate_and_matches_the_numba_posterior():
    """Same data, model and settings through both backends: both pass the gate, and every posterior variable's
    mean agrees within 4.5 combined Monte Carlo standard errors (a few dozen values: a false alarm well below
    1%; the draws themselves differ, since the two backends' gradients differ in the last digits)."""
    import arviz as az

    frame, model = _small_survey()
    settings = dict(draws=1000, tune=700, chains=2, seed=7, escalate=False)
    fits = {b: fit_driver_model(frame, model, backend=b, **settings) for b in ("numba", "jax")}
    for backend, fit in fits.items():
        assert fit.gate.passed, (backend, fit.gate.reasons)
        assert fit.settings["backend"] == backend
    names = list(fits["numba"].idata.posterior.data_vars)
    assert names == list(fits["jax"].idata.posterior.data_vars)
    worst = 0.0
    for name in names:
        means = {b: fits[b].idata.posterior[name].mean(("chain", "draw")).values for b in fits}
        se = np.sqrt(sum(az.mcse(fits[b].idata, var_names=[name])[name].values ** 2 for b in fits))
        worst = max(worst, float(np.max(np.abs(means["jax"] - means["numba"]) / se)))
    assert worst < 4.5, worst
