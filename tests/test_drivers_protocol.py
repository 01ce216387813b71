"""The driver fit as a FittedModel: summary, predict, diagnostics, save / load, log-likelihood, plot.

One short NUTS fit (1,200 simulated customers, 2 chains x 200 draws): the gate is not the point here (a run
this short usually misses ESS >= 400, and must say so); the surface and its round trips are.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest

from cxresearch.diagnostics import Diagnostics
from cxresearch.drivers.fit import DriverFit, fit_driver_model
from cxresearch.protocol import DifferentModelError, FittedModel
from cxresearch.runtime import frame_hash


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from cxresearch.data import load_dataset
    from cxresearch.data.simulator import simulate_dataset

    out = tmp_path_factory.mktemp("protocol")
    simulate_dataset(out, 1200, 4, population_samples=1000)
    return load_dataset(out / "dataset.yaml", tables=["survey"])


@pytest.fixture(scope="module")
def fit(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_driver_model(data, None, draws=200, tune=200, chains=2, seed=1, escalate=False)


def test_fit_is_a_fitted_model_with_its_configs(fit, data):
    assert isinstance(fit, FittedModel) and fit.model_type == "driver_model"
    assert fit.data_hash == frame_hash(data.survey)
    assert fit.model_config["group_by"] == ["segment", "market"] and "paths" in fit.model_config
    assert {"method", "draws", "tune", "chains", "seed", "target_accept"} <= set(fit.sampler_config)
    assert fit.sampler_config["log_likelihood_stored"] == "stored"


def test_summary_has_the_standard_columns_and_level(fit):
    table = fit.summary(level=0.8)
    assert list(table.columns) == ["mean", "sd", "low", "high"] and table.attrs["level"] == 0.8
    assert {
        "emotion -> recommend",
        "mobile_app -> emotion [slope]",
        "recommend cut-point 6|7",
        "emotion residual sd",
    } <= set(table.index)
    # segment and market have at most 5 levels: regularised offsets with a fixed sd, no sd to report
    assert not any("sd of slopes" in name for name in table.index)
    assert (table["low"] <= table["mean"]).all() and (table["mean"] <= table["high"]).all()
    wider = fit.summary(level=0.95)
    assert (wider["high"] - wider["low"] >= table["high"] - table["low"]).all()
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        fit.summary(level=90)


def test_diagnostics_is_the_one_gate(fit):
    d = fit.diagnostics()
    assert isinstance(d, Diagnostics) and d.method == "nuts (nutpie)" and d.chains == 2 and d.draws == 400
    assert d.passed == (not d.reasons) and d.bfmi_min is not None
    if d.ess_bulk_min < 400:  # 400 draws rarely give bulk ESS >= 400 on every parameter: said, not waived
        assert any(r.startswith("bulk ESS") for r in d.reasons)


def test_save_load_predict_round_trip_and_refusals(fit, data, tmp_path):
    rows = data.survey.iloc[:80]
    before = fit.predict(rows, kind="probability")
    path = fit.save(tmp_path / "fit")
    back = DriverFit.load(path, model_config=fit.model_config, data_hash=fit.data_hash)
    np.testing.assert_array_equal(back.predict(rows, kind="probability").values, before.values)
    assert back.diagnostics() == fit.diagnostics() and back.sampler_config == fit.sampler_config
    changed = {**fit.model_config, "bottom_box": 1}
    with pytest.raises(DifferentModelError, match=r"different model config \(differs in \['bottom_box'\]\)"):
        DriverFit.load(path, model_config=changed)
    with pytest.raises(DifferentModelError, match="fitted to other data"):
        DriverFit.load(path, data_hash=frame_hash(data.survey.iloc[1:]))


def test_log_likelihood_is_stored_and_matches_the_models_own_graph(fit):
    """The stored per-row log-likelihood, summed, is the model's likelihood terms (its pm.Potential) at a draw:
    compiled from the PyMC graph the sampler ran, fed the draw's (transformed) parameter values."""
    import pytensor.tensor as pt

    from cxresearch.drivers.model import build_model

    loglik = fit.idata.log_likelihood
    assert set(loglik.data_vars) == {"emotion", "recommend"}
    assert loglik["recommend"].dims == ("chain", "draw", "respondent")
    assert loglik.sizes["respondent"] == fit.prep.n
    loo = az.loo(fit.idata, var_name="recommend")
    assert np.isfinite(loo.elpd_loo)
    model, _ = build_model(fit.prep)
    potentials = {p.name: p for p in model.potentials}
    # the potentials are written on the random variables: evaluate them at the value variables (the sampler's
    # unconstrained coordinates, mapped back through the transforms)
    graphs = model.replace_rvs_by_values([potentials["emotion__loglik"], potentials["recommend__loglik"]])
    fn = model.compile_fn(graphs, inputs=model.value_vars, on_unused_input="ignore", point_fn=True)
    for chain, draw in ((0, 0), (1, 57)):
        point = {}
        for rv in model.free_RVs:
            value = fit.idata.posterior[rv.name].values[chain, draw]
            transform = model.rvs_to_transforms.get(rv)
            if transform is not None:
                value = transform.forward(pt.as_tensor(value), *rv.owner.inputs).eval()
            point[model.rvs_to_values[rv].name] = value
        emotion, recommend = fn(point)
        assert float(loglik["emotion"].values[chain, draw].sum()) == pytest.approx(float(emotion), abs=1e-7)
        assert float(loglik["recommend"].values[chain, draw].sum()) == pytest.approx(float(recommend), abs=1e-7)


def test_plot_impacts_draws_on_the_given_axes(fit):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert fit.plot_impacts(ax=ax, max_draws=50) is ax
    assert len(ax.patches) == len(fit.prep.touchpoints)
    assert fit.plot_impacts(max_draws=50) is not ax
    plt.close("all")


def test_advi_pareto_k_tells_a_good_approximation_from_a_bad_one():
    """On a model whose posterior is nearly Gaussian in ADVI's coordinates, a converged mean-field fit gives
    k < 0.7 (usable) and one stopped after 30 steps gives k far above it: the check has power both ways."""
    import pymc as pm

    from cxresearch.drivers.fit import advi_pareto_k

    y = np.random.default_rng(0).normal([1.0, -1.0, 0.5], 2.0, size=(400, 3))
    with pm.Model() as model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mu = pm.Normal("mu", 0, 5, shape=3)
        sigma = pm.HalfNormal("sigma", 5)
        pm.Normal("y", mu, sigma, observed=y)
        good = pm.fit(10000, method="advi", random_seed=1, progressbar=False)
        bad = pm.fit(30, method="advi", random_seed=1, progressbar=False)
    assert advi_pareto_k(good, model, 1000, 1) < 0.7
    assert advi_pareto_k(bad, model, 1000, 1) > 0.7
