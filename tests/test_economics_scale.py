"""The spec-driven, DuckDB-only customer relation and exposure table (cxresearch.economics.scale).

Truth: the pandas path (load_dataset + study.analysis_frame + build_exposure_table on the frame), which
the package's other tests check against the simulator. The SQL path must reproduce it exactly: ids,
classes, churn and products are compared for equality; tenure and margin to 1e-9 (both are the same
float arithmetic, days / 30.4375 or a copied number, so any larger gap would be a recoding difference).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from cxresearch.data import load_dataset
from cxresearch.data.simulator import simulate_dataset
from cxresearch.data.validation import DataValidationError
from cxresearch.economics.exposure import build_exposure_table
from cxresearch.economics.scale import CUSTOMER_COLUMNS, customer_relation_from_spec, exposure_from_spec
from cxresearch.economics.study import analysis_frame

EXACT = ["customer_id", "segment", "market", "churn", "products", "nps_class", "recommend"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scale") / "sim"
    simulate_dataset(out, customers=3000, seed=11, population_samples=20000)
    return out


def _reference(spec: Path | str, **filters: object) -> pd.DataFrame:
    frame = analysis_frame(load_dataset(spec, tables=("survey", "customers"), **filters))
    return frame.sort_values("customer_id").reset_index(drop=True)


def _assert_same(rel: duckdb.DuckDBPyRelation, ref: pd.DataFrame) -> None:
    assert isinstance(rel, duckdb.DuckDBPyRelation)
    assert tuple(rel.columns) == CUSTOMER_COLUMNS
    ours = rel.df().sort_values("customer_id").reset_index(drop=True)
    assert len(ours) == len(ref) > 0
    for col in EXACT:
        a = ours[col].astype(object).where(ours[col].notna(), None).map(lambda v: None if v is None else str(v))
        b = ref[col].astype(object).where(ref[col].notna(), None).map(lambda v: None if v is None else str(v))
        assert a.tolist() == b.tolist(), col
    for col in ("tenure", "margin"):
        np.testing.assert_allclose(ours[col].to_numpy(float), ref[col].to_numpy(float), rtol=0, atol=1e-9)


def test_same_customers_as_the_pandas_path(sim: Path) -> None:
    spec = sim / "dataset.yaml"
    _assert_same(customer_relation_from_spec(spec), _reference(spec))
    segment = str(_reference(spec)["segment"].iloc[0])
    _assert_same(customer_relation_from_spec(spec, segment=segment), _reference(spec, segment=segment))


def test_exposure_from_spec_matches_the_frame_path(sim: Path) -> None:
    spec = sim / "dataset.yaml"
    ref = _reference(spec)
    known = ref[ref["nps_class"].notna()]
    covariates = ["nps_class", "segment", "market"]
    expected = build_exposure_table(known[["tenure", "churn", *covariates]], covariates=covariates)
    got = exposure_from_spec(spec, covariates=covariates)
    assert got.n_customers == expected.n_customers == len(known)
    assert got.n_events == expected.n_events and got.breaks == expected.breaks
    pd.testing.assert_frame_equal(
        got.frame[["period", *covariates, "events", "at_risk"]],
        expected.frame[["period", *covariates, "events", "at_risk"]],
    )
    np.testing.assert_allclose(got.frame["exposure"], expected.frame["exposure"], rtol=1e-12)


def _recoded_copy(sim: Path, dest: Path) -> Path:
    """The simulated data re-exported in other codings: CSV customers with churn labels, tenure in days,
    revenue, no segment / market (placed from the survey); the survey in a DuckDB database read by a query."""
    dest.mkdir()
    con = duckdb.connect()
    cust = con.sql(f"SELECT * FROM read_parquet('{sim / 'customers.parquet'}')").df()
    as_of = pd.Timestamp(yaml.safe_load((sim / "dataset.yaml").read_text())["as_of"])
    days = (cust["end_date"].fillna(as_of) - cust["start_date"]).dt.days
    out = pd.DataFrame(
        {
            "CustID": "  " + cust["customer_id"].astype(str),
            "days_active": days,
            "Left": np.where(cust["churned"].astype(int) == 1, "YES", "no"),
            "rev": cust["monthly_margin"].round(2),
            "n_products": cust["n_products"],
        }
    )
    out.to_csv(dest / "crm.csv", index=False)
    db = duckdb.connect(str(dest / "survey.duckdb"))
    db.execute(f"CREATE TABLE answers AS SELECT * FROM read_parquet('{sim / 'survey.parquet'}')")
    db.close()
    spec = yaml.safe_load((sim / "dataset.yaml").read_text())
    spec["tables"] = {
        "survey": {"database": "survey.duckdb", "query": "SELECT * FROM answers WHERE wave IS NOT NULL"},
        "customers": {"path": "crm.csv"},
    }
    spec.pop("benchmark")
    spec["customers"] = {
        "table": "customers",
        "id": "CustID",
        "tenure": "days_active",
        "tenure_unit": "days",
        "churn": "Left",
        "churn_labels": {"yes": 1, "No": 0},
        "revenue": "rev",
        "cross_sell": ["n_products"],
    }
    path = dest / "dataset.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_csv_and_duckdb_query_sources_with_labels_units_and_membership(sim: Path, tmp_path: Path) -> None:
    spec = _recoded_copy(sim, tmp_path / "recoded")
    ref = _reference(spec)
    _assert_same(customer_relation_from_spec(spec), ref)
    market = str(ref["market"].iloc[0])
    _assert_same(customer_relation_from_spec(spec, market=market), _reference(spec, market=market))


def test_a_relation_not_a_frame_and_bad_values_named(sim: Path, tmp_path: Path) -> None:
    spec = sim / "dataset.yaml"
    rel = customer_relation_from_spec(spec)
    assert isinstance(rel, duckdb.DuckDBPyRelation)  # lazy: nothing fetched into pandas
    counts = rel.aggregate("count(*) AS n, sum(churn) AS d, count(nps_class) AS k").fetchall()[0]
    ref = _reference(spec)
    assert counts == (len(ref), int(ref["churn"].sum()), int(ref["nps_class"].notna().sum()))
    # a churn code outside 0/1 is reported with its file, column and value
    bad = tmp_path / "bad"
    shutil.copytree(sim, bad)
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * REPLACE (CASE WHEN customer_id = (SELECT min(customer_id) FROM "
        f"read_parquet('{sim / 'customers.parquet'}')) THEN 7 ELSE CAST(churned AS INTEGER) END AS churned) "
        f"FROM read_parquet('{sim / 'customers.parquet'}')) TO '{bad / 'customers.parquet'}' (FORMAT parquet)"
    )
    with pytest.raises(DataValidationError, match=r"customers\.parquet.*churned.*'7'"):
        customer_relation_from_spec(bad / "dataset.yaml")
    with pytest.raises(ValueError, match="no customers"):
        customer_relation_from_spec(spec, segment="no-such-segment")
