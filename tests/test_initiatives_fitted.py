"""The fitted models of the initiatives study, checked against the simulator's known truth.

One module-scoped fit (:func:`cxresearch.initiatives.study.fitted_models`) on 8,000 simulated customers
(about 4,000 answers per wave): the driver model by NUTS on both waves with a wave intercept (the study's
default; short chains), the survival
model by NUTS on the wave-1 NPS classes. Short chains may miss the strict diagnostics gate; what is
checked here is that the posterior covers the truth, and that the gate figures are reported.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cxresearch.data import load_dataset
from cxresearch.data.nps import NPS_CLASSES, nps_class
from cxresearch.data.simulator import simulate_dataset
from cxresearch.initiatives.catalogue import load_catalogue, touchpoint_info_from_spec
from cxresearch.initiatives.fitted import FittedDriverModel, FittedValueModel
from cxresearch.initiatives.study import Models, baseline_survey, fitted_models
from cxresearch.initiatives.truth import TrueDriverModel, TrueValueModel
from cxresearch.initiatives.value import InitiativeEngine

DRAWS = 200


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Simulated data (seed 5), its truth, the baseline survey and the fitted models."""
    out = tmp_path_factory.mktemp("fitted")
    simulate_dataset(out, customers=8_000, seed=5, population_samples=1_000)
    data = load_dataset(out / "dataset.yaml")
    truth = json.loads((out / "truth.json").read_text())
    survey, wave = baseline_survey(data.survey)
    models = fitted_models(
        data,
        draws=DRAWS,
        seed=1,
        driver_draws=300,
        driver_tune=300,
        driver_chains=2,
        driver_max_draws=DRAWS,
        survival_draws=300,
        survival_tune=300,
        survival_chains=2,
    )
    return {
        "data": data,
        "truth": truth,
        "survey": survey,
        "wave": wave,
        "models": models,
        "tps": touchpoint_info_from_spec(data.spec),
    }


def _plus(survey: pd.DataFrame, tp: str, step: float) -> pd.DataFrame:
    out = survey.copy()
    out[tp] = np.minimum(out[tp].astype(float) + step, 5.0)  # NaN (not used) stays NaN
    return out


def test_models_are_the_fitted_ones_with_their_diagnostics(world):
    models: Models = world["models"]
    assert isinstance(models.driver, FittedDriverModel) and isinstance(models.value, FittedValueModel)
    assert set(models.diagnostics) == {"driver", "value"}
    for d in models.diagnostics.values():
        assert {"rhat_max", "ess_bulk_min", "divergences", "passed"} <= set(d)
    assert "R-hat max" in models.source and "ESS min" in models.source and "divergences" in models.source
    recorded = models.results()
    assert recorded["driver"]["diagnostics"]["passed"] == models.diagnostics["driver"]["passed"]
    if not models.passed:  # a failed gate leads the report and the source says so
        assert models.warning_markdown().startswith("**Warning") and "NOT PASSING" in models.source
    else:
        assert models.warning_markdown() == ""


def test_baseline_class_mix_matches_the_observed_shares(world):
    """The posterior predictive class mix of the baseline respondents is their observed mix, within 3
    sampling standard errors of the observed shares plus the posterior's own 90% half-width."""
    survey = world["survey"]
    mix = world["models"].driver.class_mix(survey, DRAWS, None)
    assert mix.shape == (DRAWS, 3) and np.allclose(mix.sum(axis=1), 1.0)
    observed = pd.Series(nps_class(survey["recommend"])).value_counts(normalize=True)[list(NPS_CLASSES)].to_numpy()
    se = np.sqrt(observed * (1 - observed) / len(survey))
    low, high = np.quantile(mix, [0.05, 0.95], axis=0)
    assert np.all(np.abs(mix.mean(axis=0) - observed) <= 3 * se + (high - low) / 2), (mix.mean(axis=0), observed)


#: On this data set (seed 5) the +1 shift on online_payment is 0.77-0.82 of the truth under every driver model
#: tried (latest wave or both, slope offset sd 0.1 or 0.3, penalty / reward varying or not, no groups at all,
#: touchpoint prior sd 0.5 or 1): with the latest wave only the interval was wide enough to cover it; on both
#: waves it is not (detractor shift -0.0209 [-0.0234, -0.0184] vs true -0.0263). On 200k answers the same model
#: gives 0.99 of the truth. Issue 23's closing note and benchmarks/initiatives_recovery.py follow it up.
ONLINE_PAYMENT_SHORTFALL = pytest.mark.xfail(
    strict=True, reason="online_payment +1 shift 0.8x the truth on this seed (open; see the comment above)"
)


@pytest.mark.parametrize("tp", ["mobile_app", pytest.param("online_payment", marks=ONLINE_PAYMENT_SHORTFALL)])
def test_one_point_uplift_shift_covers_the_truth(world, tp):
    """+1 point on a touchpoint for its users: the change in the detractor and promoter shares that the
    simulator's true model gives for the same respondents lies within the fitted 90% interval widened by its
    half-width on each side (about +-3.3 posterior sd for a normal posterior: a miss has probability ~0.001
    per check if the posterior is calibrated; the drivers' own coverage is tested over 20 datasets in
    tests/test_drivers_recovery.py). The 90% interval itself is reported in the message when it misses."""
    survey, driver = world["survey"], world["models"].driver
    shift = driver.class_mix(_plus(survey, tp, 1.0), DRAWS) - driver.class_mix(survey, DRAWS)
    true = TrueDriverModel(world["truth"])
    true_shift = true.class_mix(_plus(survey, tp, 1.0), 1)[0] - true.class_mix(survey, 1)[0]
    low, high = np.quantile(shift, [0.05, 0.95], axis=0)
    half = (high - low) / 2
    for c in (0, 2):  # detractor, promoter
        assert low[c] - half[c] <= true_shift[c] <= high[c] + half[c], (
            tp,
            NPS_CLASSES[c],
            low[c],
            high[c],
            true_shift[c],
        )
    assert shift[:, 2].mean() > 0 > shift[:, 0].mean()


def test_fractional_uplift_interpolates_between_whole_points(world):
    """+0.3 points is read as a full step with probability 0.3: the class mix moves 30% of the way."""
    survey, driver = world["survey"], world["models"].driver
    base = driver.class_mix(survey, 20)
    part = driver.class_mix(_plus(survey, "mobile_app", 0.3), 20)
    full = driver.class_mix(_plus(survey, "mobile_app", 1.0), 20)
    assert np.allclose(part - base, 0.3 * (full - base), atol=1e-9)
    assert driver.emotion_mean(_plus(survey, "mobile_app", 1.0), 20).mean() > driver.emotion_mean(survey, 20).mean()


def test_initiative_value_interval_covers_the_true_value(world):
    """A certain +1 step on the mobile app for everyone (no effect-size uncertainty, no cost): the 90%
    interval of its value with the fitted models covers its value with the true models. Tolerance: the
    interval is widened by 10% of the true value for the survival model's tail, which carries the last
    tenure period's hazard beyond the data (the simulated Weibull hazard keeps rising)."""
    ini = load_catalogue(
        [{"name": "step", "touchpoints": ["mobile_app"], "effect": {"uplift": 1}, "cost": {"one_off": 0}}]
    )["step"]
    data, models = world["data"], world["models"]
    args = dict(customers=data.customers, draws=DRAWS, horizon_months=36, discount_rate_annual=0.08, seed=1)
    fitted = InitiativeEngine(world["survey"], world["tps"], models.driver, models.value, **args).evaluate([ini])
    true = InitiativeEngine(
        world["survey"], world["tps"], TrueDriverModel(world["truth"]), TrueValueModel(world["truth"]), **args
    ).evaluate([ini])
    value = float(true.net_value.mean())
    low, high = np.quantile(fitted.net_value, [0.05, 0.95])
    assert value > 0 and high > low
    assert low - 0.1 * value <= value <= high + 0.1 * value, (low, high, value)


def test_value_model_cash_flows_by_class(world):
    """Per stratum: three curves over the horizon, promoters worth more than detractors in every draw's mean."""
    customers = world["data"].customers
    active = customers[(customers["churn"] == 0) & (customers["segment"] == "mass") & (customers["market"] == "ES")]
    clv = world["models"].value.cashflows(active, DRAWS, 24, None)
    assert clv.cashflow.shape == (DRAWS, 3, 24) and set(clv.components) == {"margin", "cross_sell", "word_of_mouth"}
    by_class = clv.clv_by_class(0.08).mean(axis=0)
    assert by_class[2] > by_class[1] > by_class[0] > 0
    with pytest.raises(ValueError, match="one segment x market"):
        world["models"].value.cashflows(customers[customers["churn"] == 0], DRAWS, 24, None)


def test_unknown_segment_is_a_clear_error(world):
    survey = world["survey"].head(50).copy()
    survey["segment"] = survey["segment"].astype(str)
    survey.loc[survey.index[:3], "segment"] = "gold"
    with pytest.raises(ValueError, match=r"segment values \['gold'\] were not in the data"):
        world["models"].driver.class_mix(survey, 5)


def test_bad_ratings_and_missing_columns_are_clear_errors(world):
    driver = world["models"].driver
    survey = world["survey"].head(20).copy()
    survey["mobile_app"] = survey["mobile_app"].astype(float)
    survey.loc[survey.index[0], "mobile_app"] = 7.0
    with pytest.raises(ValueError, match=r"mobile_app: ratings \[7.0\] are outside its scale 1-5"):
        driver.class_mix(survey, 5)
    with pytest.raises(ValueError, match=r"missing touchpoint column\(s\) \['statements'\]"):
        driver.class_mix(world["survey"].drop(columns="statements"), 5)
    with pytest.raises(ValueError, match="market"):
        driver.class_mix(world["survey"].drop(columns="market"), 5)
