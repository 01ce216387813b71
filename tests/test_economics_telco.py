"""IBM telco churn data: our lifelines wrappers equal lifelines called directly; the Bayesian
piecewise-exponential hazard ratios agree with the Cox model's.

Tenure 0 rows (11 customers who joined this month, all censored, TotalCharges blank): tenure 0 means less
than one month, so by default the wrappers count them as at risk for half a month (and say so); the direct
lifelines calls get the same rows with tenure 0.5. ``zero_duration="drop"``, the former default, leaves them
out and counts them.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxresearch.economics import (
    build_exposure_table,
    customer_lifetime_value,
    customer_profile,
    fit_cox,
    fit_parametric,
    fit_piecewise_exponential,
    kaplan_meier,
)

TELCO = Path(__file__).resolve().parents[2] / "shared" / "data" / "telco" / "telco_customer_churn.csv"
CHARGE_EDGES = [0.0, 35.0, 70.0, 90.0, 200.0]


@pytest.fixture(scope="module")
def telco() -> pd.DataFrame:
    if not TELCO.exists():
        pytest.skip(f"telco data not found at {TELCO}")
    df = pd.read_csv(TELCO)
    # "event", not "churn": DuckDB column names are case-insensitive and the file already has "Churn"
    df["event"] = (df["Churn"] == "Yes").astype(int)
    df["charges_band"] = pd.cut(df["MonthlyCharges"], CHARGE_EDGES, right=False).astype(str)
    return df


@pytest.fixture(scope="module")
def positive(telco: pd.DataFrame) -> pd.DataFrame:
    """The rows the lifelines fits see: tenure 0 (less than one month) as half a month."""
    return telco.assign(tenure=telco["tenure"].where(telco["tenure"] > 0, 0.5).astype(float))


def dummies(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return pd.get_dummies(frame[column], prefix=column, prefix_sep="=", drop_first=True, dtype=float)


def test_zero_tenure_rows_count_as_half_a_month(telco: pd.DataFrame) -> None:
    assert int((telco["tenure"] == 0).sum()) == 11
    km = kaplan_meier(telco, event_col="event")
    assert km.n_zero_half_unit == 11 and km.n_dropped_zero == 0 and km.medians["n"].iloc[0] == len(telco)
    assert km.fitters["all"].durations.min() == 0.5
    assert km.notes == [
        "11 customers with tenure 0 (less than one month) counted as at risk for half a month (0.5 months)"
    ]
    # tenure in whole months over 72 months: no resolution note
    cox = fit_cox(telco, covariates=["Contract"], event_col="event", check_ph=False)
    assert cox.n_zero_half_unit == 11 and cox.n == len(telco) and cox.penalized_reason is None
    with pytest.raises(ValueError, match="11 rows with duration 0"):
        fit_cox(telco, covariates=["Contract"], event_col="event", zero_duration="error")


def test_zero_tenure_rows_can_still_be_dropped(telco: pd.DataFrame) -> None:
    """The former default: no time at risk, so left out and counted."""
    km = kaplan_meier(telco, event_col="event", zero_duration="drop")
    assert km.n_dropped_zero == 11 and km.n_zero_half_unit == 0 and km.medians["n"].iloc[0] == len(telco) - 11
    assert km.notes == ["11 customers with tenure 0 (less than one month) left out: no time at risk counted for them"]
    kept = telco[telco["tenure"] > 0]
    cox = fit_cox(telco, covariates=["Contract"], event_col="event", zero_duration="drop", check_ph=False)
    model = fit_parametric(telco, event_col="event", models=["weibull"], zero_duration="drop")
    assert cox.n_dropped_zero == model.n_dropped_zero == 11 and cox.n == model.n == len(kept)
    table = build_exposure_table(telco, event_col="event", zero_duration="drop")
    assert table.total_exposure == pytest.approx(kept["tenure"].sum()) and table.n_zero_duration == 11


def test_exposure_counts_the_time_lifelines_sees(telco: pd.DataFrame, positive: pd.DataFrame) -> None:
    cox = fit_cox(telco, covariates=["Contract"], event_col="event", check_ph=False)
    table = build_exposure_table(telco, covariates=["Contract"], event_col="event")
    assert table.total_exposure == pytest.approx(float(cox.fitter.durations.sum()), rel=1e-12)
    assert table.total_exposure == pytest.approx(float(positive["tenure"].sum()), rel=1e-12)
    assert table.n_events == cox.events == int(telco["event"].sum()) and table.n_zero_half_unit == 11


def test_no_separation_in_the_telco_contracts(telco: pd.DataFrame) -> None:
    """Every contract, internet-service and payment level has churners and customers still active, overall
    and within each contract: plain (unpenalised) fits, nothing flagged."""
    covariates = ["Contract", "InternetService", "PaymentMethod"]
    result = fit_cox(telco, covariates=covariates, event_col="event", check_ph=False)
    assert result.separation.empty and result.penalized_reason is None and result.penalizer == 0.0
    assert result.hazard_ratios["estimable"].all() and (result.hazard_ratios["note"] == "").all()
    for _, rows in telco.groupby("Contract"):
        split = fit_cox(rows, covariates=covariates[1:], event_col="event", check_ph=False)
        assert split.separation.empty and split.penalized_reason is None and split.diagnostics().passed


def test_kaplan_meier_matches_lifelines(telco: pd.DataFrame, positive: pd.DataFrame) -> None:
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test

    km = kaplan_meier(telco, by="Contract", event_col="event", level=0.9)
    for contract, rows in positive.groupby("Contract"):
        direct = KaplanMeierFitter(alpha=0.1).fit(rows["tenure"], rows["event"])
        ours = km.curves[km.curves["group"] == contract]
        np.testing.assert_allclose(ours["survival"], direct.survival_function_.iloc[:, 0], atol=1e-12)
        np.testing.assert_allclose(ours["low"], direct.confidence_interval_.iloc[:, 0], atol=1e-12)
        np.testing.assert_allclose(ours["at_risk"], direct.event_table["at_risk"], atol=0)
        at_risk_24 = km.at_risk.set_index("group").loc[contract, "24"]
        assert at_risk_24 == int((rows["tenure"] >= 24).sum())
    direct_test = multivariate_logrank_test(positive["tenure"], positive["Contract"], positive["event"])
    assert km.logrank["test_statistic"] == pytest.approx(direct_test.test_statistic, abs=1e-6)
    assert km.logrank["p_value"] == pytest.approx(direct_test.p_value, abs=1e-12)


def test_cox_matches_lifelines(telco: pd.DataFrame, positive: pd.DataFrame) -> None:
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    result = fit_cox(telco, covariates=["Contract", "PaymentMethod", "MonthlyCharges"], event_col="event")
    X = pd.concat(
        [
            dummies(positive, "Contract"),
            dummies(positive, "PaymentMethod"),
            positive[["MonthlyCharges", "tenure", "event"]],
        ],
        axis=1,
    )
    direct = CoxPHFitter(alpha=0.1).fit(X, duration_col="tenure", event_col="event")
    ours = result.hazard_ratios.set_index("term")
    for term, coef in direct.params_.items():
        assert ours.loc[term, "coef"] == pytest.approx(coef, abs=1e-6)
        assert ours.loc[term, "se"] == pytest.approx(direct.standard_errors_[term], abs=1e-6)
        assert ours.loc[term, "low"] == pytest.approx(
            math.exp(direct.confidence_intervals_.loc[term].iloc[0]), rel=1e-6
        )
    ph = proportional_hazard_test(direct, X, time_transform="rank").summary
    np.testing.assert_allclose(
        result.ph_test.set_index("term").loc[ph.index, "test_statistic"], ph["test_statistic"], rtol=1e-6
    )
    # telco contracts are a known proportional-hazards violation (early churn of month-to-month customers)
    assert not result.ph_ok
    two_year = result.hazard_ratio("Contract=Two year")
    assert two_year["mean"] == pytest.approx(math.exp(direct.params_["Contract=Two year"]))


@pytest.mark.parametrize(
    "name, fitter_name",
    [("weibull", "WeibullAFTFitter"), ("lognormal", "LogNormalAFTFitter"), ("loglogistic", "LogLogisticAFTFitter")],
)
def test_parametric_models_match_lifelines(
    telco: pd.DataFrame, positive: pd.DataFrame, name: str, fitter_name: str
) -> None:
    import lifelines

    model = fit_parametric(telco, covariates=["Contract", "MonthlyCharges"], event_col="event", models=[name])
    X = pd.concat([dummies(positive, "Contract"), positive[["MonthlyCharges", "tenure", "event"]]], axis=1)
    direct = getattr(lifelines, fitter_name)(alpha=0.1).fit(X, duration_col="tenure", event_col="event")
    pd.testing.assert_index_equal(model.fitter.params_.index, direct.params_.index)
    np.testing.assert_allclose(model.fitter.params_, direct.params_, atol=1e-6)
    assert model.fitter.AIC_ == pytest.approx(direct.AIC_, abs=1e-6)
    # our cumulative hazard (used for CLV draws) equals lifelines' prediction at the estimate
    rows = positive.iloc[[0, 5, 17]]
    times = np.tile(np.arange(1.0, 61.0), (3, 1))
    ours = model.cumulative_hazard(rows, times)
    expected = direct.predict_cumulative_hazard(X.iloc[[0, 5, 17]], times=times[0]).to_numpy().T
    np.testing.assert_allclose(ours, expected, rtol=1e-9)


def test_model_chosen_by_aic_and_clv_interval(telco: pd.DataFrame) -> None:
    model = fit_parametric(telco, covariates=["Contract"], event_col="event", n_draws=1000)
    assert model.name == model.aic_table["model"].iloc[0]
    assert model.aic_table["aic"].is_monotonic_increasing
    profile = customer_profile(telco, covariates=["Contract"], event_col="event", margin_col="MonthlyCharges")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # long-tenure customers reach past 72 months
        clv = customer_lifetime_value(
            model,
            profile,
            horizon_months=24,
            discount_rate_annual=0.1,
            group_by=["Contract"],
            sampling_uncertainty=False,
        )
    # point-estimate CLV by brute force from lifelines' survival function, per profile row
    point = {}
    for contract, rows in profile.groupby("Contract"):
        values = []
        for _, row in rows.iterrows():
            t = row["tenure"] + np.arange(0, 25)
            s = np.exp(-model.cumulative_hazard(rows.loc[[_]], t[None, :])[0])
            values.append(row["margin_mean"] * sum(1.1 ** (-k / 12) * s[k] / s[0] for k in range(1, 25)))
        point[contract] = np.average(values, weights=rows["n"])
    for _, row in clv.summary.iterrows():
        assert row["low"] < point[row["Contract"]] < row["high"]
        assert row["clv"] == pytest.approx(point[row["Contract"]], rel=0.01)  # mean over draws ~ plug-in


def test_intercept_only_weibull_equals_the_univariate_fitter(telco: pd.DataFrame, positive: pd.DataFrame) -> None:
    from lifelines import WeibullFitter

    model = fit_parametric(telco, event_col="event", models=["weibull"])
    direct = WeibullFitter().fit(positive["tenure"], positive["event"])
    times = np.arange(1.0, 121.0)[None, :]
    ours = model.cumulative_hazard(pd.DataFrame(index=[0]), times)[0]
    # two optimisers of the same likelihood (AFT regression vs univariate): equal to their convergence tolerance
    np.testing.assert_allclose(ours, direct.cumulative_hazard_at_times(times[0]).to_numpy(), rtol=1e-4)


@pytest.mark.slow
def test_bayesian_hazard_ratios_agree_with_cox(telco: pd.DataFrame) -> None:
    """Monthly periods (telco tenure is whole months), so the piecewise model is the Cox model with a
    Breslow-type baseline; wide priors because contract effects are far larger than CX effects."""
    covariates = ["Contract", "charges_band"]
    cox = fit_cox(telco, covariates=covariates, event_col="event", level=0.9)
    table = build_exposure_table(telco, covariates=covariates, event_col="event", period_breaks=list(range(0, 72)))
    fit = fit_piecewise_exponential(
        table, fixed=covariates, prior_sd_log_hr=3.0, draws=1000, tune=1000, chains=2, seed=3
    )
    assert fit.diagnostics().passed, fit.diagnostics().reasons
    bayes = fit.hazard_ratios(level=0.9)
    merged = bayes.merge(cox.hazard_ratios, on="term", suffixes=("_bayes", "_cox"))
    assert len(merged) == 2 + 3
    for _, row in merged.iterrows():
        assert row["low_cox"] <= row["hr_median"] <= row["high_cox"], row["term"]
        assert row["low_bayes"] <= row["hr_cox"] <= row["high_bayes"], row["term"]
