"""Data validation: each bad input gives one clear message naming file, column, row count and values."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from cxresearch.data import DataValidationError, load_dataset, validate_dataset
from cxresearch.data.commands import validate_command
from data_factory import file_hashes, raw_frames, write_dataset


def _frames(n: int = 24) -> dict[str, pd.DataFrame]:
    return raw_frames(n)


def _problems(tmp_path: Path, frames=None, kind: str = "parquet", edit_spec=None) -> list[str]:
    """Write the dataset, load it, return every problem message (the load must fail)."""
    path = write_dataset(tmp_path, kind, frames=frames if frames is not None else _frames(), edit_spec=edit_spec)
    before = file_hashes(tmp_path)
    with pytest.raises(DataValidationError) as err:
        load_dataset(path)
    assert file_hashes(tmp_path) == before  # sources untouched
    assert isinstance(err.value, ValueError)
    text = str(err.value)
    messages = [str(p) for p in err.value.problems]
    for message in messages:  # str() lists every problem
        assert message in text
    return messages


def _set(frame: pd.DataFrame, col: str, rows: list[int], values: list) -> None:
    frame[col] = frame[col].astype(object)
    for row, value in zip(rows, values):
        frame.at[row, col] = value


# ----------------------------------------------------------------------------------------- columns
def test_misnamed_column_suggests_the_closest_name(tmp_path: Path) -> None:
    frames = _frames()
    frames["survey"] = frames["survey"].rename(columns={"tp_branch": "tp_brnch"})
    [message] = _problems(tmp_path, frames)
    assert message.startswith("survey.parquet: column tp_branch: not found; did you mean 'tp_brnch' or 'branch'?")
    assert "(columns: resp_id, seg, country" in message


def test_missing_column_in_a_csv_customers_table(tmp_path: Path) -> None:
    frames = _frames()
    frames["customers"] = frames["customers"].drop(columns=["churned"])
    [message] = _problems(tmp_path, frames, kind="csv")
    assert message.startswith("customers.csv: column churned: not found (columns: cust_id, seg, country")


# ----------------------------------------------------------------------------------------- ratings
def test_ratings_outside_their_scale(tmp_path: Path) -> None:
    frames = _frames()
    _set(frames["survey"], "tp_branch", [1, 5, 9, 12], [7, 8, -1, 0])  # 0 is the not-applicable code: fine
    assert _problems(tmp_path, frames) == [
        "survey.parquet: column tp_branch: 3 rows outside the scale 1-5 (not-applicable codes: 0): 7, 8, -1"
    ]


def test_a_code_of_another_touchpoint_is_not_applicable_here(tmp_path: Path) -> None:
    frames = _frames()
    _set(frames["survey"], "tp_call", [2, 3], [0, 0])  # call centre's code is 99, so 0 is out of scale
    assert _problems(tmp_path, frames) == [
        "survey.parquet: column tp_call: 2 rows outside the scale 1-5 (not-applicable codes: 99): 0"
    ]


def test_emotion_item_outside_scale(tmp_path: Path) -> None:
    frames = _frames()
    _set(frames["survey"], "emo_angry", [0], [9])
    assert _problems(tmp_path, frames) == ["survey.parquet: column emo_angry: 1 row outside the scale 1-7: 9"]


def test_nps_outside_0_10_after_recoding(tmp_path: Path) -> None:
    frames = _frames()
    _set(frames["survey"], "nps_raw", [0, 1, 2], [12, 0, 12])
    assert _problems(tmp_path, frames) == [
        "survey.parquet: column nps_raw: 3 rows outside 0-10 after recoding 1-11 to 0-10: 12, 0"
    ]


def test_nps_without_recode_must_be_whole_numbers_0_to_10(tmp_path: Path) -> None:
    frames = _frames()
    frames["survey"]["nps_raw"] = frames["survey"]["nps_raw"].astype(float) - 1
    _set(frames["survey"], "nps_raw", [0, 1], [11.0, 6.5])

    def edit(spec):
        spec["survey"]["outcome"].pop("recode")

    assert _problems(tmp_path, frames, edit_spec=edit) == [
        "survey.parquet: column nps_raw: 1 row outside the scale 0-10 of likelihood to recommend: 11",
        "survey.parquet: column nps_raw: 1 row not a whole number on the scale 0-10: 6.5",
    ]


def test_non_numeric_values_in_a_numeric_column(tmp_path: Path) -> None:
    frames = _frames()
    _set(frames["survey"], "tp_web", [0, 1, 2], ["good", "NA", "3,5"])
    _set(frames["customers"], "revenue", [4], ["12,50"])
    assert _problems(tmp_path, frames, kind="csv") == [
        "survey.csv: column tp_web: 3 rows not a number (not-applicable codes: blank): 'good', 'NA', '3,5'",
        "customers.csv: column revenue: 1 row not a number (declare text codes such as 'NA' under not_applicable):"
        " '12,50'",
    ]


def test_declared_text_code_is_not_applicable(tmp_path: Path) -> None:
    frames = _frames()
    _set(frames["survey"], "tp_web", [0, 1], ["NA", " n/a "])

    def edit(spec):
        spec["survey"]["touchpoints"]["website"]["not_applicable"] = ["blank", "NA", "N/A"]

    data = load_dataset(write_dataset(tmp_path, "csv", frames=frames, edit_spec=edit))
    assert data.survey["website"].iloc[:2].isna().all()


# ----------------------------------------------------------------------------------------- ids and codes
def test_duplicated_customer_ids(tmp_path: Path) -> None:
    frames = _frames()
    _set(frames["customers"], "cust_id", [3, 7, 8], ["C0001", "C0002", "C0002"])
    assert _problems(tmp_path, frames) == [
        "customers.parquet: column cust_id: 5 rows with a duplicated customer id (one row per customer expected): "
        "'C0001', 'C0002'"
    ]


def test_duplicated_survey_answers_per_wave(tmp_path: Path) -> None:
    frames = _frames()
    s = frames["survey"]
    frames["survey"] = pd.concat([s, s.iloc[[0, 30]]], ignore_index=True)  # C0001 wave 1, C0013 wave 2 twice
    assert _problems(tmp_path, frames) == [
        "survey.parquet: column resp_id x wave: 4 rows with a duplicated (customer id, wave) pair "
        "(one answer per customer and wave expected): 'C0001' in wave 1, 'C0013' in wave 2"
    ]


def test_empty_or_missing_segment_and_market(tmp_path: Path) -> None:
    frames = _frames()
    _set(frames["survey"], "seg", [0, 1], ["", "  "])
    _set(frames["survey"], "country", [2], [None])
    _set(frames["customers"], "country", [5], [""])
    assert _problems(tmp_path, frames, kind="csv") == [
        "survey.csv: column seg: 2 rows with no segment (every row needs one)",
        "survey.csv: column country: 1 row with no market (every row needs one)",
        "customers.csv: column country: 1 row with no market (every row needs one)",
    ]


def test_unknown_outcome_labels(tmp_path: Path) -> None:
    frames = _frames()
    frames["survey"]["rebuy"] = (["yes", "no", "Yes ", "maybe", "DK", "perhaps"] * 10)[: len(frames["survey"])]

    def edit(spec):
        spec["survey"]["outcome"] = {
            "kind": "binary",
            "column": "rebuy",
            "labels": {"Yes": 1, "No": 0},
            "not_applicable": ["DK"],
        }

    [message] = _problems(tmp_path, frames, edit_spec=edit)
    assert message == (
        "survey.parquet: column rebuy: 12 rows with unknown labels (known: No, Yes) "
        "(not-applicable codes: 'DK'): 'maybe', 'perhaps'"
    )


def test_own_brand_missing_from_benchmark(tmp_path: Path) -> None:
    frames = _frames()
    frames["benchmark"]["brand"] = frames["benchmark"]["brand"].replace("OurBank", "Our Bank")
    assert _problems(tmp_path, frames) == ["benchmark.parquet: column brand: own_brand 'OurBank' does not occur"]


# ----------------------------------------------------------------------------------------- durations and churn
def test_negative_and_missing_tenure(tmp_path: Path) -> None:
    frames = _frames()
    frames["customers"]["months"] = [float(i) for i in range(len(frames["customers"]))]
    _set(frames["customers"], "months", [1, 2, 3], [-2.0, None, -0.5])

    def edit(spec):
        c = spec["customers"]
        c.pop("start"), c.pop("end")
        c["tenure"] = "months"

    assert _problems(tmp_path, frames, edit_spec=edit) == [
        "customers.parquet: column months: 1 row with no tenure (every row needs one)",
        "customers.parquet: column months: 2 rows with a negative duration: -2, -0.5",
    ]


def test_dates_out_of_order_missing_or_unparseable(tmp_path: Path) -> None:
    frames = _frames()
    c = frames["customers"]
    _set(c, "end_date", [1], [date(2010, 1, 1)])  # before its start
    _set(c, "start_date", [2, 3], [date(2025, 1, 1), None])  # after as_of while active; missing
    _set(c, "end_date", [4], [None])  # churned (Yes) without an end date
    c.at[4, "churned"] = "Yes"
    c["start_date"] = c["start_date"].astype(str).replace("None", "")
    c.at[6, "start_date"] = "31/12/2020"
    messages = _problems(tmp_path, frames, kind="csv")
    assert messages == [
        "customers.csv: column start_date: 1 row with no start date (every row needs one)",
        "customers.csv: column start_date: 1 row not a date (expected ISO 8601, YYYY-MM-DD; declare date_format "
        "for other formats, e.g. '%d.%m.%Y'): '31/12/2020'",
        f"customers.csv: column start_date/end_date: 1 row with an end date before the start date (negative "
        f"duration): {c.at[1, 'start_date']} -> 2010-01-01",
        "customers.csv: column start_date: 1 row with a start date after as_of 2024-06-30 and no end date "
        "(negative duration): 2025-01-01",
        "customers.csv: column churned/end_date: 1 row with churn = 1 but no end date: 'C0005'",
    ]


def test_date_format_from_the_spec(tmp_path: Path) -> None:
    frames = _frames()
    for col in ("start_date", "end_date"):
        frames["customers"][col] = pd.to_datetime(frames["customers"][col]).dt.strftime("%d/%m/%Y")

    def edit(spec):
        spec["date_format"] = "%d/%m/%Y"
        spec["survey"].pop("date")

    data = load_dataset(write_dataset(tmp_path, "csv", frames=frames, edit_spec=edit))
    assert data.customers["start_date"].dt.year.between(2020, 2024).all()


def test_churn_flags_that_are_not_0_or_1(tmp_path: Path) -> None:
    frames = _frames()
    frames["customers"]["churned"] = (frames["customers"]["churned"] == "Yes").astype(int).astype(object)
    _set(frames["customers"], "churned", [1, 2, 3], [2, "x", None])

    def edit(spec):
        spec["customers"].pop("churn_labels")
        spec["customers"].pop("end")
        spec["customers"]["end"] = "end_date"

    assert _problems(tmp_path, frames, kind="csv", edit_spec=edit) == [
        "customers.csv: column churned: 1 row with no churn flag (every row needs one)",
        "customers.csv: column churned: 2 rows not a 0/1 churn flag (map text values with churn_labels, "
        "e.g. {Yes: 1, No: 0}): 2, 'x'",
    ]


def test_unknown_churn_labels(tmp_path: Path) -> None:
    frames = _frames()
    _set(frames["customers"], "churned", [1, 2], ["Maybe", "si"])
    assert _problems(tmp_path, frames) == [
        "customers.parquet: column churned: 2 rows with unknown churn labels (known: No, Yes): 'Maybe', 'si'"
    ]


# ----------------------------------------------------------------------------------------- sources
def test_missing_files_and_folders(tmp_path: Path) -> None:
    def edit(spec):
        spec["tables"]["survey"] = {"path": "exports/survey.parquet"}
        spec["tables"]["benchmark"] = {"path": "bench_folder"}

    messages = _problems(tmp_path, edit_spec=edit)
    assert messages[0].startswith("exports/survey.parquet: file or folder not found (looked for ")
    assert messages[1].startswith("bench_folder: file or folder not found")
    assert len(messages) == 2  # customers (which has its own segment/market) still validated


def test_empty_folder_and_unknown_format(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "bench.dat").write_text("brand\nA\n")

    def edit(spec):
        spec["tables"]["survey"] = {"path": "empty"}
        spec["tables"]["benchmark"] = {"path": "bench.dat"}

    assert _problems(tmp_path, edit_spec=edit) == [
        "empty: no CSV or Parquet files in this folder",
        "bench.dat: cannot tell the format from the file name; add 'format: csv' or 'format: parquet' to the table",
    ]


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = write_dataset(tmp_path, "parquet", frames=_frames())
    (tmp_path / "benchmark.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(DataValidationError, match=r"benchmark\.parquet: cannot read: .*"):
        load_dataset(path)


def test_duckdb_missing_table_bad_query_and_missing_database(tmp_path: Path) -> None:
    def edit(spec):
        spec["tables"]["survey"] = {"database": "cx.duckdb", "table": "surveys"}
        spec["tables"]["customers"] = {"database": "cx.duckdb", "query": "SELECT * FROM nowhere"}
        spec["tables"]["benchmark"] = {"database": "other.duckdb", "table": "benchmark"}

    messages = _problems(tmp_path, kind="duckdb_table", edit_spec=edit)
    assert messages[0] == (
        "cx.duckdb (table surveys): table 'surveys' not found; did you mean 'survey'? "
        "(tables: benchmark, customers, survey)"
    )
    assert messages[1].startswith("cx.duckdb (query): cannot read: Catalog Error: Table with name nowhere")
    assert messages[2].startswith("other.duckdb (table benchmark): DuckDB database not found")


def test_not_a_duckdb_file(tmp_path: Path) -> None:
    (tmp_path / "fake.duckdb").write_text("hello")

    def edit(spec):
        spec["tables"]["benchmark"] = {"database": "fake.duckdb", "table": "benchmark"}

    [message] = _problems(tmp_path, edit_spec=edit)
    assert message.startswith("fake.duckdb (table benchmark): cannot open as a DuckDB database")


def test_problem_in_a_folder_names_the_file(tmp_path: Path) -> None:
    frames = _frames()
    s = frames["survey"]
    _set(s, "tp_branch", [int(s.index[s["wave"] == 2][0])], [6])  # a wave-2 row: in survey/later/waves.parquet
    _set(s, "tp_call", [0], [7])  # a wave-1 row: in survey/wave-1.csv
    assert _problems(tmp_path, frames, kind="folder") == [
        "survey/later/waves.parquet: column tp_branch: 1 row outside the scale 1-5 (not-applicable codes: 0): 6",
        "survey/wave-1.csv: column tp_call: 1 row outside the scale 1-5 (not-applicable codes: 99): 7",
    ]


def test_every_problem_is_collected_before_raising(tmp_path: Path) -> None:
    frames = _frames()
    _set(frames["survey"], "tp_branch", [1], [9])
    _set(frames["survey"], "seg", [2], [""])
    _set(frames["customers"], "churned", [0], ["?"])
    frames["benchmark"] = frames["benchmark"].rename(columns={"price": "prices"})
    path = write_dataset(tmp_path, "parquet", frames=frames)
    with pytest.raises(DataValidationError) as err:
        load_dataset(path)
    assert len(err.value.problems) == 4
    assert str(err.value).startswith("4 problems in the data:\n  - survey.parquet: column seg")
    assert {p.source for p in err.value.problems} == {"survey.parquet", "customers.parquet", "benchmark.parquet"}


# ----------------------------------------------------------------------------------------- report and CLI
def test_validate_dataset_report(tmp_path: Path) -> None:
    path = write_dataset(tmp_path, "parquet", frames=_frames())
    report = validate_dataset(path)
    assert report.ok and report.problems == [] and report.data is not None
    summary = report.summary()
    for line in (
        "survey: 36 rows (survey.parquet)",
        "customers: 24 rows",
        "segments: affluent, mass, private",
        "markets: ES, NO, PT",
        "waves: 1, 2",
        "touchpoint usage: branch 67%",
        "churn rate: 25.0% (6 of 24",
    ):
        assert line in summary

    bad = write_dataset(
        tmp_path / "bad", "parquet", frames=_frames(), edit_spec=lambda s: s["survey"].update(segmnt="seg")
    )
    report = validate_dataset(bad)
    assert not report.ok
    assert [str(p) for p in report.problems] == [
        f"{bad}: survey.segmnt: unknown key (not part of the spec; check its spelling)"
    ]


def test_validate_command(tmp_path: Path) -> None:
    path = write_dataset(tmp_path, "csv", frames=_frames())
    runner = CliRunner()
    result = runner.invoke(validate_command, [str(path), "--market", "NO", "--market", "PT"])
    assert result.exit_code == 0, result.output
    assert "markets: NO, PT" in result.output and "churn rate:" in result.output

    frames = _frames()
    _set(frames["survey"], "tp_branch", [1], [9])
    bad = write_dataset(tmp_path / "bad", "csv", frames=frames)
    result = runner.invoke(validate_command, [str(bad)])
    assert result.exit_code == 1
    assert "survey.csv: column tp_branch: 1 row outside the scale 1-5 (not-applicable codes: 0): 9" in result.output

    result = runner.invoke(validate_command, [str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1 and "file not found" in result.output


def test_error_survives_pickling(tmp_path: Path) -> None:
    import pickle

    frames = _frames()
    _set(frames["survey"], "tp_branch", [1], [9])
    with pytest.raises(DataValidationError) as err:
        load_dataset(write_dataset(tmp_path, "parquet", frames=frames))
    again = pickle.loads(pickle.dumps(err.value))
    assert again.problems == err.value.problems and str(again) == str(err.value)
