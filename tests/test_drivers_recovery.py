"""Recovery of the simulator's truth (docs/SIMULATOR.md): coverage, signs, ranking, Kano, group differences.

The data come from the real simulator (``cxresearch.data.simulator``); the truth is its ``truth.json``.
Estimand for coverage: ``impact_nps`` per touchpoint, the change in wave-1 NPS if users' ratings rose one
step (25% of the 1-5 range: ``improvement_share=0.25``), which the simulator computes from its generative
model (population Monte Carlo) and we compute through the fitted model. All fits share one compiled model
(same structure, new data), so the compilation is paid once per test session.
"""

from __future__ import annotations

import json
import warnings

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


@pytest.mark.slow
def test_impact_intervals_cover_the_truth_over_14_datasets(tmp_path_factory):
    """90% intervals of impact_nps cover the simulator's truth in 80-97% of 14 x 10 cases.

    CI-sized: ~800 answers per dataset, 2 chains x 250 draws (the gate is not the point here; coverage
    is). Measured when written (20 data sets): 87.5% (175 / 200). With 140 intervals a calibrated 90% falls
    outside 80-97% with probability below 1% (binomial sd 2.5 points). tests/test_drivers_mixed_scales.py
    checks the same on mixed scales.
    """
    hits, first_fit = [], None
    for k in range(14):
        data, truth = _simulate(tmp_path_factory, 800, 1000 + k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_driver_model(data, None, draws=250, tune=250, chains=2, seed=k, escalate=False)
        first_fit = first_fit or fit
        summary = summarize_drivers(fit, rows=_wave1(fit), max_draws=500, seed=k, improvement_share=0.25)
        imp = summary.impacts.set_index("touchpoint")
        true = np.array([truth["population"]["impact_nps"][t] for t in imp.index])
        hits.append((imp["impact_nps_low"].to_numpy() <= true) & (true <= imp["impact_nps_high"].to_numpy()))
    coverage = float(np.mean(hits))
    assert 0.80 <= coverage <= 0.97, f"coverage {coverage:.3f}"
    # the short runs are honest about themselves: diagnostics are reported for every parameter
    d = first_fit.diagnostics()
    assert d.method == "nuts (nutpie)" and d.draws == 500 and d.chains == 2
    assert np.isfinite([d.rhat_max, d.ess_bulk_min, d.ess_tail_min]).all()
    assert d.passed == (not d.reasons)
    # the one gate asks for bulk and tail ESS >= 400: 500 draws rarely give it on every parameter, and a miss
    # must be reported with its reason (no share-of-draws allowance any more)
    if d.ess_bulk_min < 400:
        assert not d.passed and any("bulk ESS" in r for r in d.reasons)


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
def test_compiled_model_is_reused_across_datasets(demo_fit, tmp_path_factory):
    """A second dataset of the same structure (any size) skips the compilation."""
    data, _ = _simulate(tmp_path_factory, 600, 77)
    fit = fit_driver_model(data, None, draws=100, tune=100, chains=2, seed=3, escalate=False)
    assert fit.timings["compile_s"] < 1.0
    assert fit.prep.n != demo_fit[2].prep.n
