"""The one recoding engine (cxresearch.data.recode): each rule checked on tricky values against
hand-computed results, both as bare SQL over a DuckDB column and end to end through load_dataset
(which recodes with the same SQL)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
import yaml

from cxresearch.data import DataValidationError, load_dataset, load_spec
from cxresearch.data.recode import (
    blank_sql,
    canonical_sql,
    churn_sql,
    date_sql,
    label_sql,
    number_sql,
    parsed_sql,
    recommend_sql,
    tenure_from_dates_sql,
    text_sql,
)
from cxresearch.data.rules import DAYS_PER_MONTH, FieldRule
from cxresearch.data.spec import Recode, Scale, SpecError


def run(values: list[Any], duckdb_type: str, *exprs: str) -> list[tuple[Any, ...]]:
    """Evaluate SQL expressions over a one-column table ``t(x <duckdb_type>)`` holding ``values`` in order."""
    conn = duckdb.connect(":memory:")
    conn.execute(f"CREATE TABLE src (i INTEGER, x {duckdb_type})")
    conn.executemany("INSERT INTO src VALUES (?, ?)", list(enumerate(values)))
    return conn.execute(f"SELECT {', '.join(exprs)} FROM src AS t ORDER BY i").fetchall()


def column(values: list[Any], duckdb_type: str, expr: str) -> list[Any]:
    return [row[0] for row in run(values, duckdb_type, expr)]


# ----------------------------------------------------------------------------------------- text
def test_text_strips_keeps_leading_zeros_and_blanks_are_null() -> None:
    assert column([" 007 ", "NO", "", "  \t", None, "a b"], "VARCHAR", text_sql("x", "VARCHAR")) == [
        "007",
        "NO",
        None,
        None,
        None,
        "a b",
    ]


def test_text_of_typed_columns() -> None:
    assert column([1.0, 1.5, float("nan"), None, -3.0], "DOUBLE", text_sql("x", "DOUBLE")) == [
        "1",
        "1.5",
        None,
        None,
        "-3",
    ]
    assert column([True, False, None], "BOOLEAN", text_sql("x", "BOOLEAN")) == ["true", "false", None]
    assert column([dt.date(2024, 1, 5)], "DATE", text_sql("x", "DATE")) == ["2024-01-05"]
    assert column([" ", "x"], "VARCHAR", blank_sql("x", "VARCHAR")) == [True, False]


# ----------------------------------------------------------------------------------------- numbers
def test_numbers_with_not_applicable_codes() -> None:
    value, bad = number_sql("x", "VARCHAR", [99, "NA", "blank"])
    rows = run([" 3 ", "99", "na", "N/A", "", "4.5", "nan", "1e1", "99.0"], "VARCHAR", value, bad)
    assert [r[0] for r in rows] == [3.0, None, None, None, None, 4.5, None, 10.0, None]
    # "N/A" is not a declared code and "nan" is no number: reported, not silently missing
    assert [r[1] for r in rows] == [False, False, False, True, False, False, True, False, False]


def test_typed_numbers_nan_is_missing_not_bad() -> None:
    value, bad = number_sql("x", "DOUBLE", [0])
    assert run([2.0, float("nan"), None, 0.0], "DOUBLE", value, bad) == [
        (2.0, False),
        (None, False),
        (None, False),
        (None, False),
    ]


def test_reverse_keyed_item_on_its_scale() -> None:
    rule = FieldRule(
        "angry", "x", "rating", "emotion item angry", scale=Scale(min=1, max=7), na_codes=(0,), reverse=True
    )
    assert column(["1", "7", "3", "0", ""], "VARCHAR", canonical_sql(rule, "VARCHAR")) == [7.0, 1.0, 5.0, None, None]
    plain = FieldRule("happy", "x", "rating", "emotion item happy", scale=Scale(min=1, max=7))
    assert column(["1", "7"], "VARCHAR", canonical_sql(plain, "VARCHAR")) == [1.0, 7.0]


def test_duration_in_months() -> None:
    rule = FieldRule("tenure", "x", "duration", "tenure", time_unit="weeks")
    (months,) = column([4], "INTEGER", canonical_sql(rule, "INTEGER"))
    assert months == pytest.approx(4 * 7 / 30.4375, rel=1e-15)
    years = FieldRule("tenure", "x", "duration", "tenure", time_unit="years")
    assert column(["2"], "VARCHAR", canonical_sql(years, "VARCHAR")) == [24.0]


# ----------------------------------------------------------------------------------------- recommend
def test_recommend_recode_1_11_onto_0_10() -> None:
    rule = FieldRule(
        "recommend",
        "x",
        "recommend",
        "likelihood to recommend",
        scale=Scale(min=1, max=11),
        recode=Recode.model_validate({"from": [1, 11], "to": [0, 10]}),
        na_codes=(99,),
    )
    value, bad = recommend_sql(rule, "VARCHAR")
    rows = run(["1", "11", "6", "99", "", "x"], "VARCHAR", value, bad)
    assert rows == [(0, False), (10, False), (5, False), (None, False), (None, False), (None, True)]
    # validation reads the answer before recoding (the 1-11 scale check needs it)
    assert column(["11"], "VARCHAR", parsed_sql(rule, "VARCHAR")[0]) == [11.0]


def test_recommend_rounds_half_to_even() -> None:
    rule = FieldRule("recommend", "x", "recommend", "likelihood to recommend", scale=Scale(min=0, max=10))
    got = column([2.5, 3.5, 8.5, 9.5, 6.49, 0.5], "DOUBLE", canonical_sql(rule, "DOUBLE"))
    assert got == [2, 4, 8, 10, 6, 0]
    shifted = FieldRule(
        "recommend",
        "x",
        "recommend",
        "likelihood to recommend",
        scale=Scale(min=1, max=11),
        recode=Recode.model_validate({"from": [1, 11], "to": [0, 10]}),
    )
    assert column([3.5, 4.5], "DOUBLE", canonical_sql(shifted, "DOUBLE")) == [2, 4]  # 2.5 -> 2, 3.5 -> 4


@pytest.mark.parametrize("source", [[1, 5], [0, 100]])
def test_recommend_recode_must_be_a_shift_onto_0_10(tmp_path: Path, source: list[int]) -> None:
    """A 1-5 or 0-100 export cannot be stretched onto 0-10: the spec refuses it, naming both scales."""
    (tmp_path / "survey.csv").write_text("id,seg,mkt,tp,rec\n1,a,b,3,4\n")
    spec = {
        "name": "x",
        "tables": {"survey": {"path": "survey.csv"}},
        "survey": {
            "id": "id",
            "segment": "seg",
            "market": "mkt",
            "touchpoints": {"app": {"column": "tp", "scale": [1, 5]}},
            "outcome": {"column": "rec", "recode": {"from": source, "to": [0, 10]}},
        },
    }
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match=f"recode from {source[0]}-{source[1]} to 0-10"):
        load_spec(tmp_path / "dataset.yaml")


# ----------------------------------------------------------------------------------------- dates
def test_dates_with_a_format() -> None:
    value, bad = date_sql("x", "VARCHAR", "%d/%m/%Y")
    rows = run(["05/01/2024", " 31/12/2023 ", "2024-01-05", "31/02/2024", ""], "VARCHAR", value, bad)
    assert rows == [
        (dt.datetime(2024, 1, 5), False),
        (dt.datetime(2023, 12, 31), False),
        (None, True),
        (None, True),
        (None, False),
    ]


def test_iso_dates_by_default_and_typed_dates() -> None:
    value, bad = date_sql("x", "VARCHAR", None)
    rows = run(["2024-01-05", "2024-01-05 10:30:00", "05/01/2024"], "VARCHAR", value, bad)
    assert rows == [(dt.datetime(2024, 1, 5), False), (dt.datetime(2024, 1, 5, 10, 30), False), (None, True)]
    value, bad = date_sql("x", "DATE", "%d/%m/%Y")  # a typed date ignores the text format
    assert run([dt.date(2024, 2, 29)], "DATE", value, bad) == [(dt.datetime(2024, 2, 29), False)]


def test_tenure_from_dates_censored_at_as_of() -> None:
    start = date_sql("x", "VARCHAR", None)[0]
    conn = duckdb.connect(":memory:")
    expr = tenure_from_dates_sql(start, "TRY_CAST(e AS TIMESTAMP)", dt.date(2024, 3, 1))
    rows = conn.execute(
        f"SELECT {expr} FROM (VALUES ('2024-01-01', NULL), ('2024-01-01', '2024-01-31')) AS t(x, e)"
    ).fetchall()
    assert rows[0][0] == pytest.approx(60 / DAYS_PER_MONTH, rel=1e-15)  # open spell: to as_of (leap year)
    assert rows[1][0] == pytest.approx(30 / DAYS_PER_MONTH, rel=1e-15)


# ----------------------------------------------------------------------------------------- labels / churn
def test_churn_labels_ignore_case_and_spaces() -> None:
    value, bad = churn_sql("x", "VARCHAR", {"Yes": 1, "No": 0})
    rows = run([" yes ", "NO", "maybe", "", None], "VARCHAR", value, bad)
    assert rows == [(1, False), (0, False), (None, True), (None, False), (None, False)]


def test_churn_flags_without_labels() -> None:
    value, bad = churn_sql("x", "VARCHAR", None)
    rows = run(["1", "0", "1.0", "2", "x", ""], "VARCHAR", value, bad)
    assert rows == [(1, False), (0, False), (1, False), (None, True), (None, True), (None, False)]
    value, bad = churn_sql("x", "BOOLEAN", None)
    assert run([True, False], "BOOLEAN", value, bad) == [(1, False), (0, False)]


def test_labels_with_numeric_not_applicable_code() -> None:
    value, bad = label_sql("x", "VARCHAR", {"Satisfied": 2, "neutral": 1, "Unhappy": 0}, [9, "DK"])
    rows = run(["satisfied", "NEUTRAL", "9", "dk", "happy"], "VARCHAR", value, bad)
    assert rows == [(2, False), (1, False), (None, False), (None, False), (None, True)]


def test_identifiers_and_literals_are_quoted() -> None:
    """Column names and codes come from a spec: never trusted as SQL."""
    conn = duckdb.connect(":memory:")
    conn.execute('CREATE TABLE src ("we""ird col" VARCHAR)')
    conn.execute("INSERT INTO src VALUES ('o''brien'), ('x')")
    value, bad = number_sql('we"ird col', "VARCHAR", ["o'brien"])
    assert conn.execute(f"SELECT {value}, {bad} FROM src AS t").fetchall() == [(None, False), (None, True)]


# ----------------------------------------------------------------------------------------- end to end
def _tiny_dataset(folder: Path, survey: str, customers: str, **spec_extra: Any) -> Path:
    (folder / "survey.csv").write_text(survey)
    (folder / "customers.csv").write_text(customers)
    spec = {
        "name": "tricky",
        "as_of": "2024-03-01",
        "date_format": "%d/%m/%Y",
        "tables": {"survey": {"path": "survey.csv"}, "customers": {"path": "customers.csv"}},
        "survey": {
            "id": "id",
            "segment": "seg",
            "market": "mkt",
            "wave": "wave",
            "date": "when",
            "touchpoints": {"app": {"column": "tp_app", "scale": [1, 5], "not_applicable": [0, "NA"]}},
            "emotion": {
                "scale": [1, 7],
                "items": {"happy": {"column": "emo_h"}, "angry": {"column": "emo_a", "reverse": True}},
            },
            "outcome": {"column": "rec", "recode": {"from": [1, 11], "to": [0, 10]}, "not_applicable": [99]},
        },
        "customers": {
            "id": "cid",
            "start": "start",
            "end": "end",
            "churn": "left",
            "churn_labels": {"Yes": 1, "No": 0},
            "revenue": "rev",
        },
        **spec_extra,
    }
    (folder / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder / "dataset.yaml"


SURVEY = (
    "id,seg,mkt,wave,when,tp_app,emo_h,emo_a,rec\n"
    "007, mass ,NO,1,05/01/2024,5,7,1,11\n"
    "8,mass,NO,1,06/01/2024,0,1,7,1\n"
    "9,affluent,SE,2,,NA,4,4,99\n"
    "10,affluent,SE,2,31/12/2023,,2,6,6\n"
)
CUSTOMERS = (
    "cid,start,end,left,rev\n"
    "007,01/01/2024,,no,10.5\n"
    "8,01/01/2024,31/01/2024, YES ,\n"
    "9,01/12/2023,,No,3\n"
    "10,01/02/2024,01/03/2024,yes,0\n"
)


def test_load_dataset_recodes_with_the_engine(tmp_path: Path) -> None:
    data = load_dataset(_tiny_dataset(tmp_path, SURVEY, CUSTOMERS))
    s, c = data.survey, data.customers
    assert s["customer_id"].tolist() == ["007", "8", "9", "10"]
    assert s["segment"].tolist() == ["mass", "mass", "affluent", "affluent"]
    assert str(s["customer_id"].dtype) == "string"
    assert s["survey_date"].tolist()[:2] == [pd.Timestamp("2024-01-05"), pd.Timestamp("2024-01-06")]
    assert pd.isna(s["survey_date"].iloc[2]) and s["survey_date"].dtype == "datetime64[ns]"
    app = s["app"].tolist()
    assert app[0] == 5.0 and all(math.isnan(v) for v in app[1:])  # 0 and NA codes, blank: missing
    assert s["happy"].tolist() == [7.0, 1.0, 4.0, 2.0]
    assert s["angry"].tolist() == [7.0, 1.0, 4.0, 2.0]  # reverse-keyed on 1-7: 8 - value
    assert s["recommend"].dtype == "Int64"
    assert s["recommend"].tolist()[:2] == [10, 0] and s["recommend"].tolist()[3] == 5
    assert s["recommend"].isna().tolist() == [False, False, True, False]  # 99: not applicable
    assert c["churn"].tolist() == [0, 1, 0, 1] and c["churn"].dtype == "int64"
    assert c["tenure"].tolist() == pytest.approx(
        [60 / DAYS_PER_MONTH, 30 / DAYS_PER_MONTH, 91 / DAYS_PER_MONTH, 29 / DAYS_PER_MONTH], rel=1e-15
    )
    assert c["margin"].tolist()[0] == 10.5 and math.isnan(c["margin"].tolist()[1])
    # membership (no segment / market in the customer table) comes from the survey
    assert c.set_index("customer_id")["segment"].to_dict() == {
        "007": "mass",
        "8": "mass",
        "9": "affluent",
        "10": "affluent",
    }


def test_load_dataset_reports_what_the_engine_cannot_read(tmp_path: Path) -> None:
    survey = SURVEY.replace("05/01/2024", "2024-01-05").replace(",NA,4,4,99", ",N/A,4,4,12")
    with pytest.raises(DataValidationError) as info:
        load_dataset(_tiny_dataset(tmp_path, survey, CUSTOMERS))
    text = str(info.value)
    assert text.startswith("3 problems in the data:")
    assert "survey.csv: column when: 1 row not a date (expected the spec's date_format %d/%m/%Y): 2024-01-05" in text
    assert "survey.csv: column tp_app: 1 row not a number (not-applicable codes: 0, 'NA'): 'N/A'" in text
    assert "survey.csv: column rec: 1 row outside 0-10 after recoding 1-11 to 0-10" in text
    customers = CUSTOMERS.replace(" YES ", "maybe").replace("01/02/2024", "2024-02-01")
    with pytest.raises(DataValidationError) as info:
        load_dataset(_tiny_dataset(tmp_path, SURVEY, customers))
    assert [str(p) for p in info.value.problems] == [
        "customers.csv: column start: 1 row not a date (expected the spec's date_format %d/%m/%Y): 2024-02-01",
        "customers.csv: column left: 1 row with unknown churn labels (known: No, Yes): 'maybe'",
    ]
