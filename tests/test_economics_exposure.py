"""Exposure tables, customer profiles and summaries built with DuckDB, checked against brute force."""

from __future__ import annotations

import math
import warnings

import duckdb
import numpy as np
import pandas as pd
import pytest

from cxresearch.economics import (
    build_exposure_table,
    customer_cx_features,
    customer_profile,
    group_summary,
    join_nps_class,
    margin_per_product,
)
from cxresearch.economics.exposure import bin_labels, nps_class_sql

BREAKS = [0.0, 3.0, 6.0, 12.0]


@pytest.fixture()
def customers() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 600
    tenure = rng.uniform(0, 30, n).round(1)
    tenure[:5] = [0.0, 3.0, 6.0, 12.0, 0.0]  # zero durations and values exactly on the cut points
    churn = rng.integers(0, 2, n)
    churn[[0, 4]] = 0  # zero durations censored (a churn at 0 is tested separately)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "tenure": tenure,
            "churn": churn,
            "segment": rng.choice(["mass", "affluent"], n),
            "market": rng.choice(["ES", "NO", "MX"], n),
            "score": rng.uniform(0, 10, n),
            "margin": rng.gamma(4, 5, n),
            "n_products": rng.integers(1, 5, n),
        }
    )


def brute_force(
    frame: pd.DataFrame, covariates: list[str], breaks: list[float], zero_tenure: float | None = 0.5
) -> pd.DataFrame:
    """Per customer and period: months at risk in (a, b] and an event when the churn time falls there.

    ``zero_tenure``: the tenure a recorded 0 stands for (half a month by default); None drops those rows."""
    ends = breaks[1:] + [math.inf]
    rows = []
    for _, r in frame.iterrows():
        tenure = r["tenure"] if r["tenure"] > 0 or zero_tenure is None else zero_tenure
        for j, (a, b) in enumerate(zip(breaks, ends)):
            if tenure > a:
                rows.append(
                    {
                        "period": j,
                        **{c: str(r[c]) for c in covariates},
                        "exposure": min(tenure, b) - a,
                        "events": int(r["churn"] == 1 and tenure <= b),
                        "at_risk": 1,
                    }
                )
    return pd.DataFrame(rows).groupby(["period", *covariates], as_index=False)[["events", "exposure", "at_risk"]].sum()


def _assert_matches(table, expected: pd.DataFrame, covariates: list[str]) -> None:
    got = table.frame.sort_values(["period", *covariates]).reset_index(drop=True)
    expected = expected.sort_values(["period", *covariates]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[["period", *covariates]], expected[["period", *covariates]])
    np.testing.assert_allclose(got["exposure"], expected["exposure"], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(got["events"], expected["events"])
    np.testing.assert_array_equal(got["at_risk"], expected["at_risk"])


def test_exposure_table_matches_brute_force(customers: pd.DataFrame) -> None:
    table = build_exposure_table(customers, covariates=["segment", "market"], period_breaks=BREAKS)
    _assert_matches(table, brute_force(customers, ["segment", "market"], BREAKS), ["segment", "market"])
    # totals: every month of tenure is at risk once, tenure 0 (less than a month) as half a month
    zero = customers["tenure"] == 0
    assert table.total_exposure == pytest.approx(customers["tenure"].sum() + 0.5 * zero.sum(), abs=1e-9)
    assert table.n_events == int(customers["churn"].sum())
    assert table.n_zero_duration == table.n_zero_half_unit == int(zero.sum()) == 2
    assert table.zero_duration == "half_unit" and table.tenure_unit_months == 1.0
    assert (
        table.zero_duration_note
        == "2 customers with tenure 0 (less than one month) counted as at risk for half a month (0.5 months)"
    )
    assert table.levels == {"segment": ["affluent", "mass"], "market": ["ES", "MX", "NO"]}


def test_zero_tenure_rules(customers: pd.DataFrame) -> None:
    """ "drop" is the former rule (no time at risk); a coarser unit gives them half of it; "error" refuses."""
    zero = customers["tenure"] == 0
    dropped = build_exposure_table(customers, covariates=["market"], period_breaks=BREAKS, zero_duration="drop")
    _assert_matches(dropped, brute_force(customers, ["market"], BREAKS, zero_tenure=None), ["market"])
    assert dropped.total_exposure == pytest.approx(customers["tenure"].sum(), abs=1e-9)
    assert dropped.n_zero_duration == 2 and dropped.n_zero_half_unit == 0
    assert "left out" in dropped.zero_duration_note
    years = build_exposure_table(customers, covariates=["market"], period_breaks=BREAKS, tenure_unit_months=12)
    _assert_matches(years, brute_force(customers, ["market"], BREAKS, zero_tenure=6.0), ["market"])
    assert years.total_exposure == pytest.approx(customers["tenure"].sum() + 6.0 * zero.sum(), abs=1e-9)
    assert "less than one year" in years.zero_duration_note and "6 months" in years.zero_duration_note
    with pytest.raises(ValueError, match="2 rows with duration 0"):
        build_exposure_table(customers, period_breaks=BREAKS, zero_duration="error")
    with pytest.raises(ValueError, match="zero_duration must be one of"):
        build_exposure_table(customers, period_breaks=BREAKS, zero_duration="keep")
    with pytest.raises(ValueError, match="tenure_unit_months"):
        build_exposure_table(customers, period_breaks=BREAKS, tenure_unit_months=0)


def test_parquet_relation_and_frame_sources_agree(customers: pd.DataFrame, tmp_path) -> None:
    path = tmp_path / "customers.parquet"
    customers.to_parquet(path)
    con = duckdb.connect()
    relation = con.read_parquet(str(path)).filter("tenure >= 0")
    tables = [
        build_exposure_table(src, covariates=["market"], period_breaks=BREAKS)
        for src in (customers, path, str(path), relation)
    ]
    for other in tables[1:]:
        pd.testing.assert_frame_equal(tables[0].frame, other.frame)


def test_bins_make_categorical_cells(customers: pd.DataFrame) -> None:
    edges = [0, 2.5, 5, 10.0001]
    table = build_exposure_table(customers, covariates=["score"], bins={"score": edges}, period_breaks=BREAKS)
    assert table.levels["score"] == bin_labels(edges)
    binned = customers.assign(score=pd.cut(customers["score"], edges, right=False, labels=bin_labels(edges)))
    expected = brute_force(binned, ["score"], BREAKS)
    got = table.frame.sort_values(["period", "score"]).reset_index(drop=True)
    np.testing.assert_allclose(got["exposure"], expected.sort_values(["period", "score"])["exposure"], atol=1e-9)


def test_default_breaks_stay_inside_the_data(customers: pd.DataFrame) -> None:
    table = build_exposure_table(customers)
    assert table.breaks[0] == 0 and max(table.breaks) < customers["tenure"].max()
    assert table.frame["period"].nunique() == len(table.breaks)


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda d: d.drop(columns="churn"), KeyError, "churn"),
        (lambda d: d.assign(churn=d["churn"].replace({1: 2})), ValueError, "must be 0/1"),
        (lambda d: d.assign(tenure=d["tenure"].where(d.index != 7, -1.0)), ValueError, "negative"),
        (lambda d: d.assign(market=d["market"].where(d.index != 3, None)), ValueError, "'market' has 1 missing"),
    ],
)
def test_bad_input_names_the_column(customers: pd.DataFrame, change, error, message) -> None:
    with pytest.raises(error, match=message):
        build_exposure_table(change(customers), covariates=["market"], period_breaks=BREAKS)


def test_missing_covariates_can_be_dropped_and_are_counted(customers: pd.DataFrame) -> None:
    data = customers.assign(market=customers["market"].where(customers.index >= 10, None))
    table = build_exposure_table(data, covariates=["market"], period_breaks=BREAKS, missing="drop")
    assert table.n_dropped_missing == 10 and table.n_customers == len(data) - 10


def test_numeric_covariate_without_bins_is_refused(customers: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="give bins for it"):
        build_exposure_table(customers, covariates=["score"], period_breaks=BREAKS)
    with pytest.raises(ValueError, match="outside the bins"):
        build_exposure_table(customers, covariates=["score"], bins={"score": [0, 5]}, period_breaks=BREAKS)


def test_breaks_beyond_the_data_are_refused(customers: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="no time at risk"):
        build_exposure_table(customers, period_breaks=[0, 10, 100, 200])


def test_churn_at_time_zero(customers: pd.DataFrame) -> None:
    data = customers.copy()
    data.loc[0, "churn"] = 1  # tenure 0
    # default: churned within its first month, an event at half a month in the first period
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = build_exposure_table(data, period_breaks=BREAKS)
    assert table.n_zero_duration_events == 1 and table.n_events == int(data["churn"].sum())
    # the former rule: no time at risk, so the churn cannot be used, and a warning says so
    with pytest.warns(UserWarning, match="churned at tenure = 0"):
        dropped = build_exposure_table(data, period_breaks=BREAKS, zero_duration="drop")
    assert dropped.n_zero_duration_events == 1 and dropped.n_events == int(data["churn"].sum()) - 1


def test_customer_profile_half_unit_tenure(customers: pd.DataFrame) -> None:
    """Active customers with tenure 0 conditioned on the tenure the survival models saw (half a unit)."""
    kept = customer_profile(customers, covariates=["segment"], tenure_step=None)
    assert kept["tenure"].min() == 0.0
    half = customer_profile(
        customers, covariates=["segment"], tenure_step=None, zero_duration="half_unit", tenure_unit_months=12
    )
    assert kept.loc[kept["tenure"] == 0, "n"].sum() == 2 and not (half["tenure"] == 0).any()
    at_six = kept.loc[kept["tenure"].isin([0.0, 6.0]), "n"].sum()
    assert half.loc[half["tenure"] == 6.0, "n"].sum() == at_six and half["n"].sum() == kept["n"].sum()
    with pytest.raises(ValueError, match="zero_duration must be 'keep' or 'half_unit'"):
        customer_profile(customers, covariates=["segment"], zero_duration="drop")


def test_customer_profile_matches_pandas(customers: pd.DataFrame) -> None:
    prof = customer_profile(customers, covariates=["segment"], products_col="n_products")
    active = customers[customers["churn"] == 0].assign(key=lambda d: np.floor(d["tenure"]))
    expected = (
        active.groupby(["segment", "key"])
        .agg(
            n=("tenure", "size"),
            tenure=("tenure", "mean"),
            margin_mean=("margin", "mean"),
            margin_sd=("margin", "std"),
            products_mean=("n_products", "mean"),
        )
        .reset_index()
    )
    expected["margin_sd"] = expected["margin_sd"].fillna(0.0)
    assert len(prof) == len(expected) and prof["n"].sum() == len(active)
    for col in ("n", "tenure", "margin_mean", "margin_sd", "products_mean"):
        np.testing.assert_allclose(
            prof[col].to_numpy(dtype=float), expected[col].to_numpy(dtype=float), rtol=1e-9, atol=1e-9
        )


def test_margin_per_product_is_the_within_segment_ols_slope(customers: pd.DataFrame) -> None:
    est = margin_per_product(customers, products_col="n_products", within=["segment"])
    X = np.column_stack(
        [pd.get_dummies(customers["segment"], dtype=float).to_numpy(), customers["n_products"].to_numpy(dtype=float)]
    )
    y = customers["margin"].to_numpy()
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    cov = resid @ resid / (len(y) - X.shape[1]) * np.linalg.inv(X.T @ X)
    assert est["estimate"] == pytest.approx(beta[-1], abs=1e-9)
    assert est["se"] == pytest.approx(math.sqrt(cov[-1, -1]), rel=1e-9)


def test_group_summary(customers: pd.DataFrame) -> None:
    got = group_summary(customers, by=["segment"], value_col="n_products")
    expected = customers.groupby("segment")["n_products"].agg(["size", "mean", "std"])
    np.testing.assert_allclose(got["mean"], expected["mean"], rtol=1e-12)
    np.testing.assert_allclose(got["sd"], expected["std"], rtol=1e-12)
    assert got["n"].tolist() == expected["size"].tolist()


def test_join_nps_class_uses_the_wave_and_latest_answer() -> None:
    cust = pd.DataFrame({"customer_id": ["a", "b", "c"], "tenure": [1.0, 2.0, 3.0]})
    survey = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "b"],
            "wave": ["1", "1", "1", "2"],
            "survey_date": pd.to_datetime(["2024-01-02", "2024-01-01", "2024-01-01", "2024-06-01"]),
            "recommend": [9, 3, 7, 0],
        }
    )
    out = join_nps_class(cust, survey, wave="1")
    assert out["nps_class"].tolist()[:2] == ["promoter", "passive"] and pd.isna(out["nps_class"].iloc[2])
    with pytest.raises(ValueError, match="no answers in wave '3'"):
        join_nps_class(cust, survey, wave="3")


def test_nps_class_sql_matches_python() -> None:
    values = pd.DataFrame({"r": [0, 6, 7, 8, 9, 10, None]})
    got = duckdb.connect().from_df(values).query("src", f"SELECT {nps_class_sql('r')} AS c FROM src").df()["c"]
    assert got.tolist()[:6] == ["detractor", "detractor", "passive", "passive", "promoter", "promoter"]
    assert pd.isna(got.iloc[6])


def test_customer_cx_features_counts_bad_experiences() -> None:
    cust = pd.DataFrame({"customer_id": ["a", "b"], "tenure": [1.0, 2.0]})
    survey = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "wave": ["1", "1"],
            "recommend": [10, 2],
            "tp1": [5.0, 1.0],
            "tp2": [np.nan, 2.0],
            "emo1": [7.0, 1.0],
            "emo2": [6.0, 2.0],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = customer_cx_features(cust, survey, touchpoints={"tp1": (1, 5), "tp2": (1, 5)}, emotion=["emo1", "emo2"])
    assert out["bad_experiences"].tolist() == [0, 2]  # NaN (not used) is not a bad experience
    assert out["touchpoints_used"].tolist() == [1, 2]
    assert out["experience"].tolist() == pytest.approx([1.0, 0.125])
    assert out["emotion"].iloc[0] > 0 > out["emotion"].iloc[1]
    assert out["nps_class"].tolist() == ["promoter", "detractor"]
