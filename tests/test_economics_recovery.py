"""Recovery on simulator data: true hazard ratios and true CLV per NPS class inside the 90% intervals.

The truth is computed here, independently of the package, from truth.json: Weibull baseline by segment
x class and market hazard ratios (docs/SIMULATOR.md), and the expected monthly margin per segment and class
(lognormal base margin mean + product margin x expected extra products). The estimates use only the data.
One fixed seed: with a different seed a single 90% interval misses now and then, by design.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from cxresearch.economics import (
    WordOfMouthAssumptions,
    build_exposure_table,
    customer_lifetime_value,
    customer_profile,
    fit_cox,
    fit_piecewise_exponential,
    group_summary,
    join_nps_class,
    margin_per_product,
    net_promoter_economics,
)

SEED, CUSTOMERS, HORIZON, RATE = 1, 30_000, 24, 0.10
COVARIATES = ["nps_class", "segment", "market"]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> tuple[pd.DataFrame, dict]:
    from cxresearch.data import load_dataset
    from cxresearch.data.simulator import simulate_dataset

    out = tmp_path_factory.mktemp("economics_sim")
    simulate_dataset(out, customers=CUSTOMERS, seed=SEED, population_samples=1000)
    data = load_dataset(out / "dataset.yaml")
    truth = json.loads((out / "truth.json").read_text())
    customers = join_nps_class(data.customers, data.survey, wave="1")  # wave-1 class drives churn
    known = customers[customers["nps_class"].notna()].copy()
    known["nps_class"] = known["nps_class"].astype(str)
    return known, truth


def true_lifetime(active: pd.DataFrame, churn: dict, nps_class: pd.Series) -> np.ndarray:
    """sum_k d^k S(t+k)/S(t) with S = exp(-(t/scale_seg)^shape * HR_class * HR_market)."""
    log_hr = nps_class.map(churn["log_hr_class"]).to_numpy() + active["market"].map(churn["log_hr_market"]).to_numpy()
    scale = active["segment"].map(churn["scale_by_segment"]).to_numpy(dtype=float)[:, None]
    t0 = active["tenure"].to_numpy()[:, None]
    k = np.arange(1, HORIZON + 1)

    def cum_hazard(t: np.ndarray) -> np.ndarray:
        return (t / scale) ** churn["shape"] * np.exp(log_hr)[:, None]

    return ((1 + RATE) ** (-k / 12) * np.exp(-(cum_hazard(t0 + k) - cum_hazard(t0)))).sum(axis=1)


def expected_margin(active: pd.DataFrame, value: dict, nps_class: pd.Series) -> np.ndarray:
    base = {s: math.exp(p["meanlog"] + p["sdlog"] ** 2 / 2) for s, p in value["base_margin_by_segment"].items()}
    extra = (
        active["segment"].map(value["product_rate_by_segment"]).to_numpy()
        * nps_class.map(value["product_multiplier_by_class"]).to_numpy()
    )
    return active["segment"].map(base).to_numpy() + value["product_margin"] * extra


def inside(value: float, draws: np.ndarray) -> bool:
    lo, hi = np.quantile(draws, [0.05, 0.95])
    return bool(lo <= value <= hi)


@pytest.mark.slow
def test_bayesian_model_recovers_hazard_ratios_and_clv(simulated) -> None:
    known, truth = simulated
    churn, value = truth["churn"], truth["value"]
    table = build_exposure_table(known, covariates=COVARIATES)
    assert table.n_cells <= 12 * 3 * 3 * 4  # cost grows with cells, not customers
    fit = fit_piecewise_exponential(
        table,
        fixed=["nps_class"],
        hierarchical=["segment", "market"],
        reference={"nps_class": "promoter"},
        draws=1000,
        tune=1000,
        chains=2,
        seed=SEED,
    )
    assert fit.diagnostics().passed, fit.diagnostics().reasons

    for cls in ("detractor", "passive"):
        assert inside(churn["log_hr_class"][cls], fit.contrast("nps_class", cls)), cls
    for market in ("PT", "MX", "NO"):
        true = churn["log_hr_market"][market] - churn["log_hr_market"]["ES"]
        assert inside(true, fit.contrast("market", market, "ES")), market
    scales = churn["scale_by_segment"]
    for segment in ("affluent", "private"):  # Weibull with a common shape: log HR = shape * log(scale ratio)
        true = churn["shape"] * (math.log(scales["mass"]) - math.log(scales[segment]))
        assert inside(true, fit.contrast("segment", segment, "mass")), segment

    profile = customer_profile(known, covariates=COVARIATES, products_col="n_products")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a 24-month horizon stays mostly inside the 72 observed months
        clv = customer_lifetime_value(
            fit,
            profile,
            horizon_months=HORIZON,
            discount_rate_annual=RATE,
            group_by=["nps_class"],
            level=0.9,
            seed=SEED,
        )
    active = known[known["churn"] == 0]
    classes = active["nps_class"]
    true_clv = (
        pd.Series(expected_margin(active, value, classes) * true_lifetime(active, churn, classes))
        .groupby(classes.to_numpy())
        .mean()
    )
    for _, row in clv.summary.iterrows():
        assert row["low"] <= true_clv[row["nps_class"]] <= row["high"], (row.to_dict(), true_clv.to_dict())
        assert abs(row["clv"] / true_clv[row["nps_class"]] - 1) < 0.05

    # Net Promoter Economics: its CLV equals the CLV above (same draws and weights), and the value of
    # moving a detractor to promoter (retention + cross-sell, no word of mouth) covers the truth
    npe = net_promoter_economics(
        fit,
        profile,
        products=group_summary(known, by=["segment", "nps_class"], value_col="n_products"),
        margin_per_product=margin_per_product(known, products_col="n_products"),
        word_of_mouth=WordOfMouthAssumptions(),
        horizon_months=HORIZON,
        discount_rate_annual=RATE,
        seed=SEED,
    )
    for cls, summary in npe.to_results()["clv"].items():
        assert summary["mean"] == pytest.approx(clv.to_results("nps_class")[cls]["mean"], rel=1e-9)
    detractors = active[classes == "detractor"]
    det_classes = detractors["nps_class"]
    as_promoter = pd.Series("promoter", index=detractors.index)
    life_d = true_lifetime(detractors, churn, det_classes)
    life_p = true_lifetime(detractors, churn, as_promoter)
    extra_products = detractors["segment"].map(value["product_rate_by_segment"]).to_numpy() * (
        value["product_multiplier_by_class"]["promoter"] - value["product_multiplier_by_class"]["detractor"]
    )
    true_move = np.mean(
        expected_margin(detractors, value, det_classes) * (life_p - life_d)
        + value["product_margin"] * extra_products * life_p
    )
    assert inside(true_move, npe.draws["detractor->promoter:clv"])


def test_cox_model_recovers_class_and_market_hazard_ratios(simulated) -> None:
    known, truth = simulated
    cox = fit_cox(known, covariates=COVARIATES, reference={"nps_class": "promoter", "market": "ES"}, level=0.9)
    hr = cox.hazard_ratios.set_index("term")
    for cls in ("detractor", "passive"):
        assert (
            hr.loc[f"nps_class={cls}", "low"]
            <= math.exp(truth["churn"]["log_hr_class"][cls])
            <= hr.loc[f"nps_class={cls}", "high"]
        ), cls
    for market in ("PT", "MX", "NO"):
        assert (
            hr.loc[f"market={market}", "low"]
            <= math.exp(truth["churn"]["log_hr_market"][market])
            <= hr.loc[f"market={market}", "high"]
        ), market
    assert cox.ph_ok  # the simulator's hazards are proportional
