"""Tenure units and ties: a bank file with tenure in whole years (0-10, times 12 as the loader gives), the
half-unit rule for tenure 0, the resolution note on Kaplan-Meier results, and the exposure table counting
the same time at risk as the lifelines fits.
"""

from __future__ import annotations

import gc
import math
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from cxresearch.economics import build_exposure_table, fit_cox, fit_parametric, kaplan_meier
from cxresearch.economics.survival import survival_frame, tenure_resolution_note, unit_name


@pytest.fixture(autouse=True)
def no_warnings() -> Iterator[None]:
    # objects other tests left behind in this worker (an unclosed event loop, say) are collected first: freed
    # inside the block, their ResourceWarning would fail a test whose code raised nothing
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.fixture(scope="module")
def bank() -> pd.DataFrame:
    """3,000 customers, tenure recorded in completed years (0-10), converted to months (x 12) at load."""
    rng = np.random.default_rng(21)
    n = 3000
    segment = rng.choice(["mass", "affluent"], n)
    years = rng.exponential(np.where(segment == "mass", 6.0, 9.0))
    censor = rng.uniform(0, 11, n)
    churn = (years <= censor).astype(int)
    recorded = np.minimum(np.floor(np.minimum(years, censor)), 10)
    return pd.DataFrame({"tenure": recorded * 12.0, "churn": churn, "segment": segment})


def test_tenure_zero_counts_as_half_a_year(bank: pd.DataFrame) -> None:
    n_zero = int((bank["tenure"] == 0).sum())
    assert n_zero > 100
    km = kaplan_meier(bank, by="segment", tenure_unit_months=12)
    assert km.n_zero_half_unit == n_zero and km.n_dropped_zero == 0
    assert km.medians["n"].sum() == len(bank)  # nobody dropped
    durations = np.concatenate([kmf.durations for kmf in km.fitters.values()])
    assert durations.min() == 6.0 and int((durations == 6.0).sum()) == n_zero
    assert km.notes[0] == (
        f"{n_zero:,} customers with tenure 0 (less than one year) counted as at risk for half a year (6 months)"
    )
    assert km.model_config["tenure_unit_months"] == 12.0
    cox = fit_cox(bank, covariates=["segment"], tenure_unit_months=12, check_ph=False)
    model = fit_parametric(bank, covariates=["segment"], models=["weibull"], tenure_unit_months=12, n_draws=50)
    assert cox.n_zero_half_unit == model.n_zero_half_unit == n_zero and cox.n == model.n == len(bank)
    assert float(cox.fitter.durations.min()) == 6.0
    assert cox.notes[0] == km.notes[0] and model.notes[0] == km.notes[0]
    # the former rule still works: left out and counted
    dropped = kaplan_meier(bank, tenure_unit_months=12, zero_duration="drop")
    assert dropped.n_dropped_zero == n_zero and dropped.medians["n"].iloc[0] == len(bank) - n_zero


def test_whole_years_get_a_resolution_note(bank: pd.DataFrame) -> None:
    km = kaplan_meier(bank, by="segment", tenure_unit_months=12)
    medians = km.medians.set_index("group")
    finite = medians["median"][np.isfinite(medians["median"])]
    assert len(finite) and (finite % 12 == 0).all()  # medians are whole years
    # the example is the group whose interval collapsed onto its median: the reading the note is for
    assert medians.loc["mass", ["median", "low", "high"]].tolist() == [48.0, 48.0, 48.0]
    note = km.notes[1]
    assert note.startswith("Tenure is recorded in whole years: survival only changes at whole years")
    assert "E.g. 48.0 (48.0-48.0) months does not mean the median is known to the month" in note
    assert note.endswith("the median lies between 4 and 5 years (48-60 months).")
    # without the unit, the years are still seen, and the note says how to count tenure 0 as half a year
    plain = kaplan_meier(bank)
    assert plain.n_zero_half_unit == km.n_zero_half_unit and "half a month (0.5 months)" in plain.notes[0]
    assert plain.notes[1].startswith("Tenure is recorded in whole years")
    assert plain.notes[1].endswith("pass tenure_unit_months=12 to count it as half a year.")


def test_monthly_tenure_without_heavy_ties_has_no_note() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    churn_time, censor = rng.exponential(30, n), rng.uniform(1, 72, n)
    frame = pd.DataFrame({"tenure": np.ceil(np.minimum(churn_time, censor)), "churn": (churn_time <= censor) * 1})
    assert frame["tenure"].nunique() > 60
    km = kaplan_meier(frame)
    assert km.notes == [] and km.n_zero_half_unit == 0
    assert tenure_resolution_note(frame["tenure"]) is None
    assert tenure_resolution_note(np.minimum(churn_time, censor)) is None  # continuous (dates) tenure


def test_exposure_total_is_the_time_lifelines_sees(bank: pd.DataFrame) -> None:
    for unit in (12.0, 1.0):
        cox = fit_cox(bank, covariates=["segment"], tenure_unit_months=unit, check_ph=False)
        km = kaplan_meier(bank, tenure_unit_months=unit)
        table = build_exposure_table(
            bank, covariates=["segment"], tenure_unit_months=unit, period_breaks=[0, 6, 12, 24, 60]
        )
        lifelines_time = float(cox.fitter.durations.sum())
        assert table.total_exposure == pytest.approx(lifelines_time, rel=1e-12)
        assert float(km.fitters["all"].durations.sum()) == pytest.approx(lifelines_time, rel=1e-12)
        assert table.n_events == cox.events == int(bank["churn"].sum())
        assert table.n_zero_half_unit == cox.n_zero_half_unit
        # churners at tenure 0 churned at half a unit: in the first period that covers it
        zero_churn = int(((bank["tenure"] == 0) & (bank["churn"] == 1)).sum())
        first = table.summary().set_index("period")
        in_first = int(((bank["tenure"] > 0) & (bank["tenure"] <= 6) & (bank["churn"] == 1)).sum())
        assert first.loc[0, "events"] == in_first + (zero_churn if unit * 0.5 <= 6 else 0)


def test_resolution_note_rules() -> None:
    years = np.array([0, 12, 24, 24, 36, 48, 120], dtype=float)
    note = tenure_resolution_note(years, 12, example_median=120.0, example_interval=(108.0, 132.0))
    assert note is not None and "E.g. 120.0 (108.0-132.0) months" in note
    assert "between 10 and 11 years (120-132 months), and each end of its interval is a whole year too." in note
    assert "tenure_unit_months" not in note  # the unit was given
    # quarters, given as the unit
    quarters = np.arange(0, 40) * 3.0
    assert tenure_resolution_note(quarters, 3).startswith("Tenure is recorded in whole quarters")
    # few distinct values (under 15), not whole years
    few = np.array([1, 2, 3, 5, 8, 13] * 20, dtype=float)
    note = tenure_resolution_note(few)
    assert note is not None and note.startswith("Tenure takes only 6 distinct values (1, 2, 3, 5, 8, 13 months)")
    # four customers whose tenures happen to be multiples of 12 are too few to call it years
    assert tenure_resolution_note([12.0, 24.0, 36.0, 48.0]).startswith("Tenure takes only 4 distinct values")
    assert tenure_resolution_note([]) is None and tenure_resolution_note([0.0, 0.0]) is None
    assert unit_name(12) == "year" and unit_name(7 / 30.4375, plural=True) == "weeks" and unit_name(1) == "month"
    assert unit_name(2) == "2-month unit"


def test_zero_duration_rule_and_unit_are_checked() -> None:
    frame = pd.DataFrame({"tenure": [0.0, 1.0, 2.0], "churn": [1, 0, 1]})
    out, n_zero = survival_frame(frame, duration_col="tenure", event_col="churn", tenure_unit_months=7 / 30.4375)
    assert n_zero == 1 and out["tenure"].iloc[0] == pytest.approx(3.5 / 30.4375)
    assert out["churn"].tolist() == [1, 0, 1]  # a churn at tenure 0 is an event at half a week
    with pytest.raises(ValueError, match="1 rows with duration 0 \\(less than one week\\)"):
        survival_frame(
            frame, duration_col="tenure", event_col="churn", zero_duration="error", tenure_unit_months=7 / 30.4375
        )
    with pytest.raises(ValueError, match="zero_duration must be one of"):
        survival_frame(frame, duration_col="tenure", event_col="churn", zero_duration="keep")
    for bad in (0, -12, math.nan, math.inf):
        with pytest.raises(ValueError, match="tenure_unit_months must be a positive number"):
            kaplan_meier(frame, tenure_unit_months=bad)


def test_yearly_tenure_gets_period_cuts_on_whole_years(bank: pd.DataFrame) -> None:
    """Whole-year tenure only changes at whole years: the piecewise model's default periods are whole years."""
    yearly = build_exposure_table(bank, covariates=[], tenure_unit_months=12)
    assert all(b % 12 == 0 for b in yearly.breaks) and len(yearly.breaks) >= 3
    monthly = build_exposure_table(bank, covariates=[])
    assert 1.0 in monthly.breaks and 3.0 in monthly.breaks  # the month-based default cuts
