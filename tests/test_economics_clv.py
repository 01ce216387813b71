"""CLV against closed forms: constant hazard = geometric series; piecewise hazards = direct integration."""

from __future__ import annotations

import math
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest

from cxresearch.economics import (
    ConstantHazardModel,
    ExtrapolationWarning,
    PiecewiseExponentialFit,
    constant_hazard_clv,
    customer_lifetime_value,
    median_survival,
    monthly_discount_factor,
)
from cxresearch.economics.exposure import ExposureTable


def posterior_fit(
    log_h0: np.ndarray, breaks: list[float], class_log_hr: np.ndarray | None = None, max_duration: float = 120.0
) -> PiecewiseExponentialFit:
    """A piecewise-exponential fit whose posterior draws are given (1 chain): hazards known exactly."""
    posterior = {"log_h0": log_h0[None]}
    levels: dict[str, list[str]] = {}
    fixed: list[str] = []
    if class_log_hr is not None:
        posterior["log_hr_nps_class"] = class_log_hr[None]
        levels["nps_class"] = ["promoter", "detractor", "passive"]
        fixed = ["nps_class"]
    idata = az.from_dict(posterior=posterior)
    exposure = ExposureTable(
        frame=pd.DataFrame(),
        breaks=list(breaks),
        covariates=fixed,
        levels=levels,
        duration_col="tenure",
        event_col="churn",
        n_customers=0,
        n_events=0,
        max_duration=max_duration,
    )
    return PiecewiseExponentialFit(idata=idata, exposure=exposure, fixed=fixed, hierarchical=[], levels=levels)


def geometric(margin: float, hazard: float, horizon: int, rate: float) -> float:
    """Independent reference: sum_{k=1..H} margin * ((1+r)^(-1/12) e^{-h})^k, written out."""
    return sum(margin * ((1 + rate) ** (-k / 12)) * math.exp(-hazard * k) for k in range(1, horizon + 1))


def test_discount_factor_compounds_to_the_annual_rate() -> None:
    assert monthly_discount_factor(0.12) ** 12 == pytest.approx(1 / 1.12, abs=1e-15)
    with pytest.raises(ValueError, match="discount_rate_annual"):
        monthly_discount_factor(-1.5)


@pytest.mark.parametrize("hazard, horizon, rate", [(0.02, 36, 0.10), (0.005, 120, 0.0), (0.3, 12, 0.25)])
def test_constant_hazard_clv_matches_geometric_series(hazard: float, horizon: int, rate: float) -> None:
    profile = pd.DataFrame(
        {
            "tenure": [0.0, 7.5, 40.0],
            "n": [1, 3, 2],
            "margin_mean": [10.0, 20.0, 35.0],
            "margin_sd": [0.0, 0.0, 0.0],
            "group": ["a", "a", "b"],
        }
    )
    result = customer_lifetime_value(
        ConstantHazardModel(hazard),
        profile,
        horizon_months=horizon,
        discount_rate_annual=rate,
        group_by=["group"],
        sampling_uncertainty=False,
    )
    g = geometric(1.0, hazard, horizon, rate)
    expected = {"a": (10 * 1 + 20 * 3) / 4 * g, "b": 35 * g}  # memoryless: tenure does not matter
    for _, row in result.summary.iterrows():
        assert row["clv"] == pytest.approx(expected[row["group"]], abs=1e-6)
        assert row["low"] == pytest.approx(row["high"], abs=1e-9)  # no uncertainty given
    assert constant_hazard_clv(1.0, hazard, horizon, rate) == pytest.approx(g, abs=1e-9)


def test_piecewise_model_with_equal_rates_matches_geometric_series() -> None:
    breaks = [0.0, 6.0, 12.0, 24.0]
    h, log_hr = 0.015, np.array([[0.8, 0.3]])
    fit = posterior_fit(np.full((1, 4), math.log(h)), breaks, log_hr)
    profile = pd.DataFrame(
        {
            "nps_class": ["promoter", "detractor", "passive"],
            "tenure": [3.0, 10.0, 30.0],
            "n": [1, 1, 1],
            "margin_mean": [20.0, 20.0, 20.0],
            "margin_sd": [0.0, 0.0, 0.0],
        }
    )
    result = customer_lifetime_value(
        fit, profile, horizon_months=48, discount_rate_annual=0.08, group_by=["nps_class"], sampling_uncertainty=False
    )
    hr = {"promoter": 1.0, "detractor": math.exp(0.8), "passive": math.exp(0.3)}
    for _, row in result.summary.iterrows():
        assert row["clv"] == pytest.approx(geometric(20.0, h * hr[row["nps_class"]], 48, 0.08), abs=1e-6)


def test_piecewise_cumulative_hazard_and_conditional_clv_by_direct_sum() -> None:
    breaks = [0.0, 3.0, 12.0, 24.0]
    rates = np.array([0.05, 0.02, 0.01, 0.03])
    fit = posterior_fit(np.log(rates)[None], breaks)
    times = np.array([[0.0, 1.5, 3.0, 7.0, 12.0, 30.0, 100.0]])
    cum = fit.cumulative_hazard_draws(pd.DataFrame(index=[0]), times)[0, 0]
    grid = np.linspace(0, 100, 1_000_001)  # midpoint integration of the step hazard
    mids = (grid[1:] + grid[:-1]) / 2
    step = rates[np.searchsorted(breaks, mids, side="right") - 1] * np.diff(grid)
    integral = np.concatenate([[0.0], np.cumsum(step)])
    np.testing.assert_allclose(cum, np.interp(times[0], grid, integral), atol=1e-6)
    # conditional CLV of a customer at tenure 10 over 24 months: S(10+k)/S(10) by the same integral
    profile = pd.DataFrame({"tenure": [10.0], "n": [1], "margin_mean": [1.0], "margin_sd": [0.0]})
    clv = (
        customer_lifetime_value(fit, profile, horizon_months=24, discount_rate_annual=0.1, sampling_uncertainty=False)
        .summary["clv"]
        .iloc[0]
    )
    cond = [math.exp(-(np.interp(10 + k, grid, integral) - np.interp(10, grid, integral))) for k in range(1, 25)]
    assert clv == pytest.approx(sum(1.1 ** (-k / 12) * s for k, s in zip(range(1, 25), cond)), abs=1e-6)


def test_interval_reflects_hazard_draws_and_margin_sampling() -> None:
    draws = np.random.default_rng(5).normal(0.02, 0.002, 4000)
    profile = pd.DataFrame({"tenure": [0.0], "n": [1], "margin_mean": [10.0], "margin_sd": [0.0]})
    result = customer_lifetime_value(
        ConstantHazardModel(draws), profile, horizon_months=24, discount_rate_annual=0.1, sampling_uncertainty=False
    )
    exact = np.array([geometric(10.0, h, 24, 0.1) for h in np.quantile(draws, [0.95, 0.05])])
    # CLV decreases in the hazard, so its 5% / 95% quantiles are those of the hazard reversed
    np.testing.assert_allclose(result.summary[["low", "high"]].to_numpy()[0], exact, rtol=1e-3)

    # margin sampling: mean CLV of n customers with margin sd s has sd G * s / sqrt(n)
    rng = np.random.default_rng(3)
    n, margins = 2000, rng.gamma(4.0, 5.0, 2000)
    per_customer = pd.DataFrame({"tenure": 0.0, "n": 1, "margin_mean": margins, "margin_sd": 0.0})
    model = ConstantHazardModel(np.full(4000, 0.02))
    res = customer_lifetime_value(model, per_customer, horizon_months=24, discount_rate_annual=0.1, seed=2)
    g = geometric(1.0, 0.02, 24, 0.1)
    expected_width = 2 * 1.6449 * g * margins.std(ddof=1) / math.sqrt(n)
    width = float(res.summary["high"].iloc[0] - res.summary["low"].iloc[0])
    assert width == pytest.approx(expected_width, rel=0.1)  # 4000 bootstrap draws: ~3% Monte-Carlo error
    grouped = pd.DataFrame(
        {"tenure": [0.0], "n": [n], "margin_mean": [margins.mean()], "margin_sd": [margins.std(ddof=1)]}
    )
    res_grouped = customer_lifetime_value(model, grouped, horizon_months=24, discount_rate_annual=0.1, seed=2)
    width_grouped = float(res_grouped.summary["high"].iloc[0] - res_grouped.summary["low"].iloc[0])
    assert width_grouped == pytest.approx(expected_width, rel=0.1)


def test_extrapolation_warns_and_flags() -> None:
    profile = pd.DataFrame({"tenure": [50.0, 55.0], "n": [1, 1], "margin_mean": [1.0, 1.0], "margin_sd": [0, 0]})
    model = ConstantHazardModel(0.01, max_observed_tenure=60.0)
    with pytest.warns(ExtrapolationWarning, match="beyond the longest observed tenure"):
        result = customer_lifetime_value(model, profile, horizon_months=36, discount_rate_annual=0.1)
    assert result.extrapolation["extrapolated"] is True
    assert result.extrapolation["horizon_end_max"] == 91.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = customer_lifetime_value(
            model, profile.assign(tenure=[1.0, 2.0]), horizon_months=36, discount_rate_annual=0.1
        )
    assert ok.extrapolation["extrapolated"] is False


def test_bad_arguments_raise() -> None:
    profile = pd.DataFrame({"tenure": [1.0], "n": [1], "margin_mean": [1.0], "margin_sd": [0.0]})
    with pytest.raises(ValueError, match="horizon_months"):
        customer_lifetime_value(ConstantHazardModel(0.01), profile, horizon_months=0, discount_rate_annual=0.1)
    with pytest.raises(KeyError, match="margin"):
        customer_lifetime_value(
            ConstantHazardModel(0.01), profile.drop(columns="margin_mean"), horizon_months=12, discount_rate_annual=0.1
        )
    with pytest.raises(ValueError, match="negative or missing tenures"):
        customer_lifetime_value(
            ConstantHazardModel(0.01), profile.assign(tenure=-1.0), horizon_months=12, discount_rate_annual=0.1
        )


def test_median_survival_of_exponential_is_log2_over_hazard() -> None:
    fit = posterior_fit(
        np.log(np.array([[0.02, 0.02]])), [0.0, 12.0], np.array([[math.log(2.0), 0.0]]), max_duration=60.0
    )
    profile = pd.DataFrame({"nps_class": ["promoter", "detractor"], "n": [1, 1]})
    med = median_survival(fit, profile, group_by=["nps_class"], step=0.01).set_index("nps_class")
    assert med.loc["promoter", "median"] == pytest.approx(math.log(2) / 0.02, abs=1e-3)
    assert med.loc["detractor", "median"] == pytest.approx(math.log(2) / 0.04, abs=1e-3)
    assert bool(med.loc["promoter", "extrapolated"]) is False  # 34.7 < 60 months observed


def test_centred_fixed_effects_are_undone_for_reported_hazards() -> None:
    """The sampler centres dummies at their event-weighted mean; hazards for a profile must not depend on it."""
    log_hr = np.array([[0.8, 0.3]])
    plain = posterior_fit(np.log(np.array([[0.02, 0.01]])), [0.0, 12.0], log_hr)
    shift = 0.3 * 0.8 + 0.2 * 0.3
    centred = posterior_fit(np.log(np.array([[0.02, 0.01]])) + shift, [0.0, 12.0], log_hr)
    centred.centering = {"nps_class": np.array([0.3, 0.2])}
    profile = pd.DataFrame({"nps_class": ["promoter", "detractor", "passive"]})
    np.testing.assert_allclose(centred.log_rate_draws(profile), plain.log_rate_draws(profile), atol=1e-12)
    np.testing.assert_allclose(centred.baseline_hazard()["hazard"], [0.02, 0.01], rtol=1e-12)


def test_thinned_fit_keeps_evenly_spaced_draws() -> None:
    draws = np.log(np.linspace(0.01, 0.05, 400))[:, None] * np.ones((1, 2))
    fit = posterior_fit(draws, [0.0, 12.0])
    thin = fit.thinned(100)
    assert thin.n_draws == 100 and fit.n_draws == 400
    np.testing.assert_allclose(thin.draws("log_h0")[[0, -1], 0], np.log([0.01, 0.05]))
    assert fit.thinned(1000) is fit
