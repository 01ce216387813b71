"""Recovery of the simulator's truth (docs/SIMULATOR.md): signs, ranking, Kano, group differences. Coverage of
the impact intervals over repeated data sets (default and mixed scales) is in tests/test_drivers_mixed_scales.py.

The data come from the real simulator (``cxresearch.data.simulator``); the truth is its ``truth.json``
(``impact_nps`` per touchpoint: the change in wave-1 NPS if users' ratings rose one step, 25% of the 1-5
range, computed by the simulator from its generative model by population Monte Carlo). All fits share one
compiled model (same structure, new data), so the compilation is paid once per test session.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from cxresearch.drivers.fit import fit_driver_model
from cxresearch.drivers.summary import summarize_drivers

pytestmark = pytest.mark.filterwarnings("ignore")


def _simulate(tmp_path_factory, customers: int, seed: int):
    from cxresearch.data import load_dataset
    from cxresearch.data.simulator import simulate_dataset

    out = tmp_path_factory.mktemp(f"sim{seed}")
    simulate_dataset(out, customers, seed, population_samples=100_000)
    return load_dataset(out / "dataset.yaml"), json.loads((out / "truth.json").read_text())


def _wave1(fit):
    return (fit.prep.frame["wave"].astype("string") == "1").to_numpy()


@pytest.fixture(scope="module")
def demo_fit(tmp_path_factory):
    """The default demo size: 20,000 customers, response rate 0.5 (about 20,000 answers over two waves)."""
    data, truth = _simulate(tmp_path_factory, 20_000, 20261122)
    fit = fit_driver_model(data, None, draws=300, tune=300, chains=2, seed=1, escalate=False)
    summary = summarize_drivers(fit, rows=_wave1(fit), max_draws=600, improvement_share=0.25)
    return data, truth, fit, summary


@pytest.mark.slow
def test_demo_size_recovers_signs_top3_and_kano(demo_fit):
    data, truth, fit, summary = demo_fit
    imp = summary.impacts.set_index("touchpoint")
    true_impact = truth["population"]["impact_nps"]
    # signs: every touchpoint with a clear true impact (> 1 NPS point) is estimated clearly positive
    for tp, value in true_impact.items():
        if value > 1.0:
            assert imp.loc[tp, "impact_nps_low"] > 0, tp
    true_top3 = sorted(true_impact, key=true_impact.get, reverse=True)[:3]
    assert summary.top3 == true_top3
    kano = summary.kano.set_index("touchpoint")["kano"]
    truth_kano = {tp: truth["touchpoints"][tp]["kano"] for tp in kano.index}
    assert kano.to_dict() == truth_kano
    # the posterior predictive check reproduces the observed 0-10 answers
    assert summary.ppc["inside_interval"].mean() >= 0.8


@pytest.mark.slow
def test_demo_size_finds_planted_group_differences_and_no_false_ones(demo_fit):
    """Planted slope differences (private x branch_visit, MX x mobile_app) are found (P >= 0.99 in their
    direction) and are the two largest; every other difference we call clear (P >= 0.95 or <= 0.05) has the
    sign of the truth (the simulator's other deviations are small, N(0, 0.03), but not zero)."""
    data, truth, fit, summary = demo_fit
    g = summary.group_differences.set_index(["dimension", "level", "touchpoint"])
    planted = {
        (p["dimension"], p["level"], p["touchpoint"]): p["delta"] for p in truth["drivers"]["planted_differences"]
    }
    for key, delta in planted.items():
        p_dir = g.loc[key, "p_positive"] if delta > 0 else 1 - g.loc[key, "p_positive"]
        assert p_dir >= 0.99, (key, g.loc[key].to_dict())
    largest = g["mean"].abs().sort_values(ascending=False).index[: len(planted)]
    assert set(largest) == set(planted)
    survey = data.survey
    for (dim, level, tp), row in g.iterrows():
        if (dim, level, tp) in planted or 0.05 < row["p_positive"] < 0.95:
            continue
        devs = truth["drivers"]["dev_seg" if dim == "segment" else "dev_mkt"]
        users = survey[survey[tp].notna()].groupby(dim).size()
        weights = users / users.sum()
        true_dev = devs[level][tp] - sum(weights[lv] * devs[lv][tp] for lv in weights.index)
        assert np.sign(true_dev) == np.sign(row["mean"]), ((dim, level, tp), row.to_dict(), true_dev)


@pytest.mark.slow
def test_compiled_model_is_reused_on_other_data_and_samples_as_a_fresh_compilation(demo_fit, tmp_path_factory):
    """A refit of the same answers (another seed) skips the compilation, and so does a fit of other data of the
    same structure (same model, touchpoints, levels and scales, other level shares); the fit records whether it
    reused a compiled model (its compile time is no test of that: a reuse took 2.15 s once on a busy CI machine).
    The reused model must be the other data's model: its rows, its group bases (weighted by its level shares;
    constants of the graph until issue 20, when reuse centred the deviations on the first data's mix) and its
    initial point. So with the same seed it gives exactly the draws of a fresh compilation, and its saved fit,
    rebuilt from its own data on loading, predicts the same."""
    from cxresearch.drivers.fit import _with_initial_point, compile_driver_model

    data, _, first, _ = demo_fit
    again = fit_driver_model(data, None, draws=100, tune=100, chains=2, seed=3, escalate=False)
    assert again.settings["compiled_model_reused"]
    # other data of the same structure: the demo's first wave (other level shares; about 10,000 answers, enough for
    # the same likelihood form, the emotion equation on sufficient statistics)
    other = data.survey[data.survey["wave"].astype(str) == "1"]
    fit = fit_driver_model(other, None, dataset_spec=data.spec, draws=100, tune=100, chains=2, seed=3, escalate=False)
    assert fit.settings["compiled_model_reused"], fit.settings
    fresh = fit_driver_model(
        other, None, dataset_spec=data.spec, draws=100, tune=100, chains=2, seed=3, escalate=False, reuse_compiled=False
    )
    assert not fresh.settings["compiled_model_reused"]
    varying = [j for j, eq in fit.layout.equations.items() if eq.slope_basis.size]
    assert varying and not any(
        np.allclose(fit.layout.equations[j].slope_basis, first.layout.equations[j].slope_basis) for j in varying
    )
    assert {f"{j}__slope_dev" for j in varying} <= set(fresh.idata.posterior.data_vars)
    for name, values in fresh.idata.posterior.data_vars.items():
        np.testing.assert_allclose(fit.idata.posterior[name].values, values.values, rtol=1e-9, err_msg=name)
    rows = other.iloc[:50]
    path = fit.save(tmp_path_factory.mktemp("refit") / "fit")
    back = type(fit).load(path, model_config=fit.model_config, data_hash=fit.data_hash)
    np.testing.assert_array_equal(back.predict(rows).values, fit.predict(rows).values)
    # the initial point is nutpie's own layout: for the model it was compiled from, the same values as nutpie's
    # function (compiled here: the process's cache may hold this structure compiled from another test's data,
    # whose cutpoints start at that data's class shares)
    model, _, compiled = compile_driver_model(first.prep, reuse=False)
    ours = _with_initial_point(compiled, model).initial_point_func(5)
    np.testing.assert_array_equal(ours, compiled.initial_point_func(5))
