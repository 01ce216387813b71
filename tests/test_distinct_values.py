"""distinct_values() reads sources the way load_dataset does, so the runner's matrix expansion
(segment_market_pairs) accepts exactly what `cxresearch run` can load."""

from __future__ import annotations

import gzip
import shutil

import pandas as pd
import pytest

import data_factory as DF  # tests/ is on sys.path under pytest
from cxresearch.data import load_dataset
from cxresearch.data.loading import distinct_values
from cxresearch.data.validation import DataValidationError
from cxresearch.studies.params import ParamsError, segment_market_pairs


def _expected_pairs(spec_path) -> set[tuple[str, str]]:
    survey = load_dataset(spec_path, tables=["survey"]).survey
    return {(s, m) for s, m in survey[["segment", "market"]].drop_duplicates().itertuples(index=False)}


def test_folder_of_csv_gz_files(tmp_path):
    spec = DF.write_dataset(tmp_path, "csv")
    folder = tmp_path / "survey_parts"
    folder.mkdir()
    survey = pd.read_csv(tmp_path / "survey.csv", dtype=str)
    for i, (_wave, part) in enumerate(survey.groupby("wave")):
        with gzip.open(folder / f"wave-{i}.csv.gz", "wt", encoding="utf-8") as handle:
            part.to_csv(handle, index=False)
    (tmp_path / "survey.csv").unlink()
    spec.write_text(spec.read_text(encoding="utf-8").replace("survey.csv", "survey_parts"), encoding="utf-8")

    expected = _expected_pairs(spec)  # the loader reads the .csv.gz folder
    assert len(expected) >= 2
    pairs = distinct_values(spec, "survey", ["segment", "market"])
    assert list(pairs.columns) == ["segment", "market"] and len(pairs) == len(expected)
    assert set(pairs.itertuples(index=False, name=None)) == expected
    assert segment_market_pairs(spec) == expected


def test_duckdb_query_source(tmp_path):
    spec = DF.write_dataset(tmp_path, "duckdb_query")
    expected = _expected_pairs(spec)
    assert segment_market_pairs(spec) == expected
    waves = distinct_values(spec, "survey", ["wave"])
    assert waves["wave"].tolist() == sorted(
        load_dataset(spec, tables=["survey"]).survey["wave"].unique(), key=lambda w: int(w)
    )


def test_errors_name_the_source_and_the_field(tmp_path):
    spec = DF.write_dataset(tmp_path, "parquet")
    with pytest.raises(ValueError, match="colour"):
        distinct_values(spec, "survey", ["colour"])
    shutil.move(tmp_path / "survey.parquet", tmp_path / "moved.parquet")
    with pytest.raises(DataValidationError, match="survey.parquet"):
        distinct_values(spec, "survey", ["segment", "market"])
    with pytest.raises(ParamsError, match="survey.parquet"):
        segment_market_pairs(spec)
