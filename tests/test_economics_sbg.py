"""The shifted-beta-geometric model against Fader & Hardie (2007), and the piecewise-exponential projection.

Data: ``../shared/data/sbg_cohorts/retention_counts.csv`` (two cohorts of 1,000 customers, 7 years; skipped
when ../shared is absent). Published maximum-likelihood sBG: high end alpha 0.668, beta 3.806, LL -1611.16;
regular alpha 0.704, beta 1.182, LL -1680.27. Reference values are computed here independently of the
module (survival as the product of the retention rates, not the beta-function ratio it uses).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from cxresearch.diagnostics import Diagnostics
from cxresearch.economics import (
    ShiftedBetaGeometricFit,
    cohort_to_customers,
    compare_sbg_pwe,
    fit_sbg,
)
from cxresearch.protocol import SUMMARY_COLUMNS, DifferentModelError

PUBLISHED = {
    "highend": {"alpha": 0.668, "beta": 3.806, "ll": -1611.16},
    "regular": {"alpha": 0.704, "beta": 1.182, "ll": -1680.27},
}
COHORTS = list(PUBLISHED)
PROJECTED = np.arange(8, 13)


def closed_form_survival(alpha: float, beta: float, periods: np.ndarray) -> np.ndarray:
    """S(t) as the product of the sBG retention rates (beta + i - 1) / (alpha + beta + i - 1), i = 1..t."""
    out = []
    for t in periods:
        i = np.arange(1, int(t) + 1)
        out.append(float(np.prod((beta + i - 1) / (alpha + beta + i - 1))))
    return np.array(out)


@pytest.fixture(scope="module")
def alive(shared_data: Path) -> dict[str, np.ndarray]:
    path = shared_data / "sbg_cohorts" / "retention_counts.csv"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    frame = pd.read_csv(path)
    return {c: frame[f"{c}_alive"].to_numpy() for c in COHORTS}


@pytest.fixture(scope="module")
def fits(alive: dict[str, np.ndarray]) -> dict[str, ShiftedBetaGeometricFit]:
    return {c: fit_sbg(alive[c], n_draws=500) for c in COHORTS}


@pytest.fixture(scope="module")
def comparisons(alive: dict[str, np.ndarray]) -> dict[str, object]:
    out = {}
    for c in COHORTS:
        p = PUBLISHED[c]
        out[c] = compare_sbg_pwe(alive[c], horizon=12, published=(p["alpha"], p["beta"]), draws=1000, tune=500)
    return out


@pytest.mark.parametrize("cohort", COHORTS)
def test_mle_reproduces_published_estimates(fits: dict, cohort: str) -> None:
    fit, ref = fits[cohort], PUBLISHED[cohort]
    assert fit.alpha == pytest.approx(ref["alpha"], abs=0.005)
    assert fit.beta == pytest.approx(ref["beta"], abs=0.005)
    assert fit.log_likelihood == pytest.approx(ref["ll"], abs=0.05)
    assert fit.diagnostics().passed


@pytest.mark.parametrize("cohort", COHORTS)
def test_projection_years_8_to_12_matches_closed_form(fits: dict, cohort: str) -> None:
    ref = PUBLISHED[cohort]
    expected = closed_form_survival(ref["alpha"], ref["beta"], PROJECTED)
    got = fits[cohort].predict(PROJECTED, "survival").values
    np.testing.assert_allclose(100 * got, 100 * expected, atol=0.5)
    # retention rates rise with tenure (heterogeneity): the sBG's defining property
    rates = fits[cohort].predict(np.arange(1, 13), "retention_rate").values
    assert np.all(np.diff(rates) > 0)


# Fader & Hardie's two-parameter curve misses the high-end cohort's first years by up to 1.8 points: its
# observed churn RISES from year 1 (13.1%) to year 2 (14.5%), and an sBG's churn rate can only fall, so the
# fit splits the difference (1.8 points low in year 1, 1.7 high in years 3-4). The regular cohort is within
# 0.6 points. Tolerances: 2.0 and 1.0 points.
FIT_TOLERANCE_PP = {"highend": 2.0, "regular": 1.0}


@pytest.mark.parametrize("cohort", COHORTS)
def test_fit_matches_observed_years_1_to_7(fits: dict, alive: dict, cohort: str) -> None:
    table = fits[cohort].fit_table()
    counts = alive[cohort]
    np.testing.assert_allclose(table["observed_survival"], counts[1:] / counts[0])
    assert table["diff_pp"].abs().max() < FIT_TOLERANCE_PP[cohort]


def test_customer_rows_give_the_same_fit(alive: dict, fits: dict) -> None:
    customers = cohort_to_customers(alive["regular"])
    assert len(customers) == 1000 and customers["churn"].sum() == 1000 - alive["regular"][-1]
    fit = fit_sbg(customers=customers, churn_col="churn")
    assert fit.alpha == pytest.approx(fits["regular"].alpha, rel=1e-6)
    assert fit.data_hash == fits["regular"].data_hash
    with pytest.raises(ValueError, match="exactly one"):
        fit_sbg(alive["regular"], customers=customers)
    with pytest.raises(ValueError, match="must not rise"):
        fit_sbg([100, 80, 90])


def test_protocol_surface(fits: dict, tmp_path: Path) -> None:
    fit = fits["highend"]
    table = fit.summary(0.95)
    assert list(table.columns[:4]) == list(SUMMARY_COLUMNS)
    assert list(table.index) == ["alpha", "beta", "mean_churn"] and table.attrs["level"] == 0.95
    narrow = fit.summary(0.8)
    assert (narrow["low"] > table["low"]).all() and (narrow["high"] < table["high"]).all()
    assert table.loc["mean_churn", "mean"] == pytest.approx(fit.alpha / (fit.alpha + fit.beta))
    assert isinstance(fit.diagnostics(), Diagnostics)
    assert fit.model_type == "shifted_beta_geometric" and fit.data_hash

    point = fit.predict(PROJECTED)
    assert point.dims == ("period",) and list(point["period"].values) == list(PROJECTED)
    draws = fit.predict(PROJECTED, "retention_rate", draws=True)
    assert draws.dims == ("sample", "period") and draws.sizes["sample"] == 500
    with pytest.raises(ValueError, match="kind"):
        fit.predict(PROJECTED, "hazard")
    with pytest.raises(ValueError, match=">= 1"):
        fit.predict([0, 1], "retention_rate")

    ax = fit.plot_retention()
    assert ax.get_ylabel() == "Share still a customer"

    folder = fit.save(tmp_path / "sbg")
    back = ShiftedBetaGeometricFit.load(folder, model_config=fit.model_config, data_hash=fit.data_hash)
    np.testing.assert_allclose(back.predict(PROJECTED).values, point.values)
    np.testing.assert_allclose(back.predict(PROJECTED, draws=True).values, fit.predict(PROJECTED, draws=True).values)
    with pytest.raises(DifferentModelError):
        ShiftedBetaGeometricFit.load(folder, data_hash=fits["regular"].data_hash)
    with pytest.raises(DifferentModelError):
        ShiftedBetaGeometricFit.load(folder, model_config={**fit.model_config, "data": "other"})


@pytest.mark.parametrize("cohort", COHORTS)
def test_pwe_projection_against_sbg(comparisons: dict, cohort: str) -> None:
    """What the numbers show: within the fitted years the PWE model follows the data (mid-year churn rule);
    beyond year 7 it carries year 7's churn forward, so once the sBG's falling churn drops below that rate
    the PWE projection loses ground every year. Year 7's observed churn is below the sBG's fitted one for both
    cohorts, so over years 8-12 the PWE starts above the sBG and stays within 1 point of it (the issue's
    2-point target for both cohorts); the regular cohort crosses below from year 10."""
    comp = comparisons[cohort]
    assert comp.diagnostics().passed, comp.pwe.diagnostics().reasons
    table = comp.table
    fitted, proj = table[table["fitted"]], comp.projection()
    assert list(proj["period"]) == list(PROJECTED)
    assert (fitted["pwe"] - fitted["observed"]).abs().max() < 0.01
    # constant churn beyond year 7 vs the sBG's falling churn
    assert np.ptp(proj["pwe_churn"]) < 1e-3
    assert np.all(np.diff(proj["sbg_churn"]) < 0)
    falling = proj[proj["sbg_churn"] < proj["pwe_churn"]]
    assert np.all(np.diff(falling["gap_pp"]) < 0)
    assert proj["gap_pp"].iloc[-1] < proj["gap_pp"].iloc[0]
    # the target: within 2 points of the published sBG curve
    assert proj["gap_published_pp"].abs().max() < 2.0
    assert proj["gap_pp"].iloc[0] > 0
    if cohort == "regular":
        assert proj["gap_pp"].iloc[-1] < 0
    assert any("churn rate" in note for note in comp.notes)


def test_comparison_refuses_bad_horizon(alive: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="horizon"):
            compare_sbg_pwe(alive["regular"], horizon=7)
