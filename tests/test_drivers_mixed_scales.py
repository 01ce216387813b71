"""Mixed scales in one survey: the simulator records mobile_app on 0-10, online_payment on 1-100 and the rest
on 1-5, and tech_support's bottom box is its lowest point only (the default is the lowest 40%).

The drivers model reads each touchpoint on its own scale (slopes per half range, boxes as shares or declared
per touchpoint) and reports impacts for a rise of 10% of each scale range; the simulator computes the same
estimand from its generative model (``truth.population.impact_nps_range``). Checked: the 90% intervals cover
the truth at a calibrated rate over repeated data sets (with data sets on the default scales, in one test),
and at demo size the top three and the Kano classes
are the simulator's.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from cxresearch.drivers.fit import fit_driver_model
from cxresearch.drivers.spec import default_model_spec
from cxresearch.drivers.summary import summarize_drivers

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.slow]

SCALES = {"mobile_app": (0, 10), "online_payment": (1, 100)}
BOXES = {"tech_support": (1, 1)}


def _simulate(tmp_path_factory, customers: int, seed: int, scales: bool = True):
    """A simulated data set on the mixed scales (``scales``) or on the simulator's default 1-5 scales."""
    from cxresearch.data import load_dataset
    from cxresearch.data.simulator import simulate_dataset

    out = tmp_path_factory.mktemp(f"mixed{seed}" if scales else f"sim{seed}")
    mixed = {"scales": SCALES, "boxes": BOXES} if scales else {}
    simulate_dataset(out, customers, seed, population_samples=100_000, **mixed)
    return load_dataset(out / "dataset.yaml"), json.loads((out / "truth.json").read_text())


def _model(data) -> dict:
    """The default model with tech_support's box declared, as a user who knows her questionnaire would."""
    spec = default_model_spec(data.spec).model_dump(exclude_defaults=True)
    spec["boxes"] = {t: {"bottom": b, "top": top} for t, (b, top) in BOXES.items()}
    return spec


def _wave1(fit):
    return (fit.prep.frame["wave"].astype("string") == "1").to_numpy()


def test_scales_and_boxes_reach_the_model(tmp_path_factory):
    data, truth = _simulate(tmp_path_factory, 600, 5)
    assert truth["touchpoints"]["online_payment"]["scale"] == [1, 100]
    assert truth["touchpoints"]["mobile_app"]["na_code"] == "blank"  # 0 is an answer on 0-10
    from cxresearch.drivers.model import prepare_data

    prep = prepare_data(data.survey, _model(data), data.spec)
    assert prep.scales["online_payment"].points == 100 and prep.scales["mobile_app"].points == 11
    assert prep.boxes["online_payment"] == (40, 20) and prep.boxes["mobile_app"] == (4, 2)
    assert prep.boxes["tech_support"] == (1, 1) and prep.boxes["branch_visit"] == (2, 1)
    # the slope's column spans -1..1 on every scale
    for t, tp in enumerate(prep.touchpoints):
        points = prep.scales[tp].points
        assert prep.features["slope"][t, 1] == -1.0 and prep.features["slope"][t, points] == 1.0


def test_impact_intervals_cover_the_truth_on_default_and_mixed_scales(tmp_path_factory):
    """90% intervals of touchpoint impacts cover the simulator's truth in 80-97% of 14 x 10 cases: 7 data sets
    on the default 1-5 scales (``impact_nps``: a rise of one step, 25% of the range) and 7 on mixed scales
    (``impact_nps_range``: a rise of 10% of each range), ~800 answers each, 2 chains x 250 draws (the gate is
    not the point here; coverage is). With 140 intervals a calibrated 90% falls outside 80-97% with
    probability below 1% (binomial sd 2.5 points); each form alone must reach 75% of its 70 intervals (a
    calibrated 90% falls below with probability ~1e-5), so one form cannot hide behind the other.
    One test for both forms keeps CI within its time: the two used to be separate tests of 14 and 10 data
    sets (87.5% over 20 default data sets and 15 mixed ones passed when written).
    """
    from cxresearch.drivers.effects import IMPROVEMENT_SHARE

    hits: dict[str, list[np.ndarray]] = {"default": [], "mixed": []}
    first_fit = None
    for k in range(7):
        for form, found in hits.items():
            mixed = form == "mixed"
            data, truth = _simulate(tmp_path_factory, 800, (2000 if mixed else 1000) + k, scales=mixed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = fit_driver_model(
                    data, _model(data) if mixed else None, draws=250, tune=250, chains=2, seed=k, escalate=False
                )
            first_fit = first_fit or fit
            share = IMPROVEMENT_SHARE if mixed else 0.25
            summary = summarize_drivers(fit, rows=_wave1(fit), max_draws=500, seed=k, improvement_share=share)
            imp = summary.impacts.set_index("touchpoint")
            key = "impact_nps_range" if mixed else "impact_nps"
            true = np.array([truth["population"][key][t] for t in imp.index])
            found.append((imp["impact_nps_low"].to_numpy() <= true) & (true <= imp["impact_nps_high"].to_numpy()))
    by_form = {form: float(np.mean(found)) for form, found in hits.items()}
    coverage = float(np.mean(hits["default"] + hits["mixed"]))
    assert 0.80 <= coverage <= 0.97, f"coverage {coverage:.3f}; by form {by_form}"
    assert min(by_form.values()) >= 0.75, by_form
    # the short runs are honest about themselves: diagnostics are reported for every parameter
    d = first_fit.diagnostics()
    assert d.method == "nuts (nutpie)" and d.draws == 500 and d.chains == 2
    assert np.isfinite([d.rhat_max, d.ess_bulk_min, d.ess_tail_min]).all()
    assert d.passed == (not d.reasons)
    # the one gate asks for bulk and tail ESS >= 400: 500 draws rarely give it on every parameter, and a miss
    # must be reported with its reason (no share-of-draws allowance any more)
    if d.ess_bulk_min < 400:
        assert not d.passed and any("bulk ESS" in r for r in d.reasons)


def test_demo_size_mixed_scales_recovers_top3_and_kano(tmp_path_factory):
    data, truth = _simulate(tmp_path_factory, 20_000, 20261122)
    fit = fit_driver_model(data, _model(data), draws=400, tune=400, chains=2, seed=1, escalate=False)
    summary = summarize_drivers(fit, rows=_wave1(fit), max_draws=600)
    true_impact = truth["population"]["impact_nps_range"]
    true_top3 = sorted(true_impact, key=true_impact.get, reverse=True)[:3]
    assert set(summary.top3) == set(true_top3)
    imp = summary.impacts.set_index("touchpoint")
    for tp, value in true_impact.items():  # every clear true impact (> 1 NPS point) is estimated clearly positive
        if value > 1.0:
            assert imp.loc[tp, "impact_nps_low"] > 0, tp
    kano = summary.kano.set_index("touchpoint")["kano"]
    assert kano.to_dict() == {tp: truth["touchpoints"][tp]["kano"] for tp in kano.index}
