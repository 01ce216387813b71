"""Net Promoter Economics against closed forms (constant hazards per class, no uncertainty)."""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pandas as pd
import pytest

from cxresearch.economics import (
    ConstantHazardModel,
    PiecewiseExponentialFit,
    WordOfMouthAssumptions,
    net_promoter_economics,
)
from cxresearch.economics.exposure import ExposureTable

H0, LOG_HR = 0.01, {"detractor": 0.9, "passive": 0.4, "promoter": 0.0}
HORIZON, RATE, B = 36, 0.1, 5.0  # months, annual discount rate, margin per extra product
WOM = WordOfMouthAssumptions(referrals_per_promoter=0.5, prospects_lost_per_detractor=0.8, value_per_referral=200)


def class_fit() -> PiecewiseExponentialFit:
    idata = az.from_dict(
        posterior={
            "log_h0": np.full((1, 1, 1), math.log(H0)),
            "log_hr_nps_class": np.array([[[LOG_HR["detractor"], LOG_HR["passive"]]]]),
        }
    )
    levels = {"nps_class": ["promoter", "detractor", "passive"]}
    exposure = ExposureTable(
        frame=pd.DataFrame(),
        breaks=[0.0],
        covariates=["nps_class"],
        levels=levels,
        duration_col="tenure",
        event_col="churn",
        n_customers=0,
        n_events=0,
        max_duration=200.0,
    )
    return PiecewiseExponentialFit(idata=idata, exposure=exposure, fixed=["nps_class"], hierarchical=[], levels=levels)


def lifetime(nps_class: str) -> float:
    """Expected discounted months over the horizon with a constant hazard (geometric series)."""
    x = (1 + RATE) ** (-1 / 12) * math.exp(-H0 * math.exp(LOG_HR[nps_class]))
    return x * (1 - x**HORIZON) / (1 - x)


@pytest.fixture()
def profile() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "nps_class": ["detractor", "detractor", "passive", "promoter", "promoter"],
            "segment": ["mass", "private", "mass", "mass", "private"],
            "market": ["ES", "NO", "ES", "NO", "ES"],
            "tenure": [2.0, 20.0, 5.0, 40.0, 1.0],
            "n": [10, 5, 20, 15, 5],
            "margin_mean": [20.0, 50.0, 25.0, 30.0, 60.0],
            "margin_sd": 0.0,
            "products_mean": [1.2, 2.0, 1.5, 1.8, 3.0],
        }
    )


@pytest.fixture()
def products() -> pd.DataFrame:
    rows = [
        ("mass", "detractor", 1.2),
        ("mass", "passive", 1.5),
        ("mass", "promoter", 1.8),
        ("private", "detractor", 2.0),
        ("private", "passive", 2.4),
        ("private", "promoter", 3.0),
    ]
    return pd.DataFrame([{"segment": s, "nps_class": c, "n": 100, "mean": m, "sd": 0.0} for s, c, m in rows])


def run(profile: pd.DataFrame, products: pd.DataFrame):
    return net_promoter_economics(
        class_fit(),
        profile,
        products=products,
        margin_per_product={"estimate": B, "se": 0.0},
        word_of_mouth=WOM,
        horizon_months=HORIZON,
        discount_rate_annual=RATE,
        sampling_uncertainty=False,
    )


def test_clv_components_by_class_match_closed_form(profile: pd.DataFrame, products: pd.DataFrame) -> None:
    result = run(profile, products)
    table = result.clv_by_class.set_index(["nps_class", "component"])["mean"]
    wom_rate = {"promoter": 0.5, "passive": 0.0, "detractor": -0.8}
    for cls, rows in profile.groupby("nps_class"):
        w, L = rows["n"].to_numpy(float), lifetime(cls)
        extra = rows["products_mean"].to_numpy() - 1
        retention = np.average((rows["margin_mean"].to_numpy() - B * extra) * L, weights=w)
        cross = np.average(B * extra * L, weights=w)
        assert table[(cls, "retention")] == pytest.approx(retention, abs=1e-6)
        assert table[(cls, "cross_sell")] == pytest.approx(cross, abs=1e-6)
        assert table[(cls, "clv")] == pytest.approx(np.average(rows["margin_mean"] * L, weights=w), abs=1e-6)
        assert table[(cls, "word_of_mouth")] == pytest.approx(wom_rate[cls] / 12 * L * 200, abs=1e-6)
        assert table[(cls, "total")] == pytest.approx(table[(cls, "clv")] + table[(cls, "word_of_mouth")], abs=1e-9)


def test_value_of_moving_a_detractor_matches_closed_form(profile: pd.DataFrame, products: pd.DataFrame) -> None:
    result = run(profile, products)
    det = profile[profile["nps_class"] == "detractor"]
    w = det["n"].to_numpy(float)
    delta_products = {"mass": 1.8 - 1.2, "private": 3.0 - 2.0}
    d_products = det["segment"].map(delta_products).to_numpy()
    ld, lp = lifetime("detractor"), lifetime("promoter")
    retention = np.average(det["margin_mean"] * (lp - ld), weights=w)
    cross = np.average(B * d_products * lp, weights=w)
    wom = 200 / 12 * (0.5 * lp + 0.8 * ld)
    moves = result.value_of_moves.set_index(["from_class", "to_class", "component"])["mean"]
    assert moves[("detractor", "promoter", "retention")] == pytest.approx(retention, abs=1e-6)
    assert moves[("detractor", "promoter", "cross_sell")] == pytest.approx(cross, abs=1e-6)
    assert moves[("detractor", "promoter", "word_of_mouth")] == pytest.approx(wom, abs=1e-6)
    assert result.move("detractor", "promoter")["mean"] == pytest.approx(retention + cross + wom, abs=1e-6)
    # value at risk = sum over detractors of the per-customer value of moving them to promoter
    per_customer = (det["margin_mean"] * (lp - ld) + B * d_products * lp + wom).to_numpy()
    var = result.value_at_risk.set_index(["dimension", "level"])
    assert var.loc[("segment", "mass"), "value_at_risk"] == pytest.approx(10 * per_customer[0], abs=1e-6)
    assert var.loc[("market", "NO"), "value_at_risk"] == pytest.approx(5 * per_customer[1], abs=1e-6)
    assert var.loc[("market", "NO"), "n_detractors"] == 5 and var.loc[("market", "NO"), "n_customers"] == 20
    assert result.to_results()["value_detractor_to_promoter"]["mean"] == pytest.approx(retention + cross + wom)


def test_assumptions_are_reported_as_assumptions(profile: pd.DataFrame, products: pd.DataFrame) -> None:
    table = run(profile, products).assumptions.set_index("assumption")
    assert table.loc["Referrals per promoter", "value"] == 0.5
    assert table.loc["Value per referral", "source"] == "assumption (params)"
    assert table.loc["Margin per extra product", "source"].startswith("estimated")


def test_bad_input_raises(profile: pd.DataFrame, products: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="referrals_per_promoter"):
        WordOfMouthAssumptions(referrals_per_promoter=-1)
    with pytest.raises(KeyError, match="products_mean"):
        run(profile.drop(columns="products_mean"), products)
    with pytest.raises(KeyError, match="no 'nps_class' covariate"):
        net_promoter_economics(
            ConstantHazardModel(0.01),
            profile,
            products=products,
            margin_per_product={"estimate": B, "se": 0.0},
            word_of_mouth=WOM,
            horizon_months=12,
            discount_rate_annual=0.1,
        )
    partial = run(profile, products[products["segment"] == "mass"])  # no product counts for other segments
    move = partial.move("detractor", "promoter")
    assert not move["estimable"] and "no product counts" in move["reason"] and np.isnan(move["mean"])


def test_class_cashflows_discount_to_the_class_clv(profile: pd.DataFrame, products: pd.DataFrame) -> None:
    from cxresearch.economics.npe import class_cashflows

    flows = class_cashflows(class_fit(), profile, horizon_months=HORIZON, margin_per_product=B)
    assert flows["margin"].shape == (1, 3, HORIZON)
    discount = (1 + RATE) ** (-np.arange(1, HORIZON + 1) / 12)
    table = run(profile, products).clv_by_class.set_index(["nps_class", "component"])["mean"]
    for i, cls in enumerate(("detractor", "passive", "promoter")):
        assert flows["margin"][0, i] @ discount == pytest.approx(table[(cls, "retention")], abs=1e-6)
        assert flows["cross_sell"][0, i] @ discount == pytest.approx(table[(cls, "cross_sell")], abs=1e-6)
    # month 1 of a promoter: mean core margin x one month's survival exp(-h)
    promoters = profile[profile["nps_class"] == "promoter"]
    core = np.average(promoters["margin_mean"] - B * (promoters["products_mean"] - 1), weights=promoters["n"])
    assert flows["margin"][0, 2, 0] == pytest.approx(core * math.exp(-H0), rel=1e-12)
