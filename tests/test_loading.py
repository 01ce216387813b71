"""load_dataset: every source kind, canonical frames, recoding, filters pushed down to DuckDB."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from cxresearch.data import CXData, DataValidationError, explain_load, load_dataset, load_spec, nps_score
from cxresearch.data.loading import source_hash
from cxresearch.yamlio import dump_yaml
from data_factory import AS_OF, KINDS, file_hashes, raw_frames, spec_dict, write_dataset

DAYS_PER_MONTH = 365.25 / 12


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return raw_frames()


@pytest.fixture(scope="module")
def parquet_data(tmp_path_factory, frames) -> CXData:
    return load_dataset(write_dataset(tmp_path_factory.mktemp("pq"), "parquet", frames=frames))


# ----------------------------------------------------------------------------------------- source kinds
@pytest.mark.parametrize("kind", KINDS)
def test_every_source_kind_gives_the_same_canonical_frames(
    tmp_path: Path, kind: str, frames, parquet_data: CXData
) -> None:
    spec_path = write_dataset(tmp_path, kind, frames=frames)
    before = file_hashes(tmp_path)
    data = load_dataset(spec_path)
    assert file_hashes(tmp_path) == before, "the loader must never write to its sources"
    for role in ("survey", "customers", "benchmark"):
        got = getattr(data, role).sort_values(list(getattr(data, role).columns[:4])).reset_index(drop=True)
        want = getattr(parquet_data, role).sort_values(list(got.columns[:4])).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=True)
    assert set(data.hashes) == {"survey", "customers", "benchmark"}
    assert all(len(h) == 64 for h in data.hashes.values())


def test_hashes_and_sources_name_the_files(tmp_path: Path, frames) -> None:
    import hashlib

    data = load_dataset(write_dataset(tmp_path, "csv", frames=frames))
    assert data.hashes["survey"] == hashlib.sha256((tmp_path / "survey.csv").read_bytes()).hexdigest()
    assert data.sources["customers"] == [str(tmp_path.resolve() / "customers.csv")]
    folder = load_dataset(write_dataset(tmp_path / "f", "folder", frames=frames))
    files = sorted((tmp_path / "f" / "survey").rglob("*.*"))
    assert len(folder.sources["survey"]) == 2  # the _SUCCESS marker is ignored
    assert folder.hashes["survey"] == source_hash(
        [f for f in files if f.suffix in (".csv", ".parquet")], tmp_path / "f" / "survey"
    )


def test_csv_codes_keep_leading_zeros(tmp_path: Path) -> None:
    frames = raw_frames(12)
    frames["survey"]["resp_id"] = [f"{i:03d}" for i in range(1, 13)] + [f"{i:03d}" for i in range(1, 13, 2)]
    frames["customers"]["cust_id"] = [f"{i:03d}" for i in range(1, 13)]
    data = load_dataset(write_dataset(tmp_path, "csv", frames=frames))
    assert data.survey["customer_id"].iloc[0] == "001"
    assert set(data.customers["customer_id"]) == {f"{i:03d}" for i in range(1, 13)}
    assert "NO" in set(data.survey["market"])


# ----------------------------------------------------------------------------------------- canonical frames
def test_survey_columns_and_dtypes(parquet_data: CXData) -> None:
    s = parquet_data.survey
    assert list(s.columns) == [
        "customer_id",
        "segment",
        "market",
        "wave",
        "survey_date",
        "unit",
        "branch",
        "call_centre",
        "website",
        "happy",
        "angry",
        "recommend",
    ]
    for col in ("customer_id", "segment", "market", "wave", "unit"):
        assert s[col].dtype == "string", col
    assert s["survey_date"].dtype == "datetime64[ns]"
    for col in ("branch", "call_centre", "website", "happy", "angry"):
        assert s[col].dtype == "float64", col
    assert s["recommend"].dtype == "Int64"
    assert set(s["wave"]) == {"1", "2"}


def test_not_applicable_codes_are_missing_never_the_lowest_score(parquet_data: CXData, frames) -> None:
    raw = frames["survey"]
    s = parquet_data.survey
    for key, col, code in (("branch", "tp_branch", 0), ("call_centre", "tp_call", 99), ("website", "tp_web", None)):
        is_na = raw[col].isna() if code is None else raw[col].eq(code).fillna(False)
        assert is_na.sum() > 5, "the factory plants not-applicable answers"
        assert s[key].isna().to_numpy().tolist() == is_na.to_numpy().tolist()
        assert s[key].min() == 1.0  # the scale's real lowest answer, never the code
        # mean over users only: equals the raw mean with codes excluded (closed form)
        assert s[key].mean() == pytest.approx(raw.loc[~is_na, col].astype(float).mean(), abs=1e-12)
        assert not s[key].isin([0.0, 99.0]).any()


def test_recode_reverse_and_nps(parquet_data: CXData, frames) -> None:
    raw = frames["survey"]
    s = parquet_data.survey
    assert (s["recommend"].astype(int) == raw["nps_raw"].astype(int) - 1).all()  # 1-11 -> 0-10
    assert s["recommend"].min() >= 0 and s["recommend"].max() <= 10
    assert (s["angry"] == 8 - raw["emo_angry"].astype(float)).all()  # 1-7 reversed: max + min - x
    assert (s["happy"] == raw["emo_happy"].astype(float)).all()
    recoded = raw["nps_raw"].astype(int) - 1
    want = 100 * ((recoded >= 9).mean() - (recoded <= 6).mean())
    assert nps_score(s["recommend"]) == pytest.approx(want)


def test_customers_tenure_churn_margin(parquet_data: CXData, frames) -> None:
    raw = frames["customers"]
    c = parquet_data.customers
    assert list(c.columns) == [
        "customer_id",
        "segment",
        "market",
        "tenure",
        "churn",
        "margin",
        "start_date",
        "end_date",
        "products",
    ]
    assert c["churn"].dtype == "int64" and c["tenure"].dtype == "float64" and c["margin"].dtype == "float64"
    assert c["churn"].tolist() == [1 if v == "Yes" else 0 for v in raw["churned"]]
    end = pd.to_datetime(raw["end_date"]).fillna(pd.Timestamp(AS_OF))  # active: censored at as_of
    want = (end - pd.to_datetime(raw["start_date"])).dt.days / DAYS_PER_MONTH
    np.testing.assert_allclose(c["tenure"].to_numpy(), want.to_numpy(), rtol=0, atol=1e-12)
    assert (c.loc[c["churn"] == 0, "end_date"].isna()).all()
    np.testing.assert_allclose(c["margin"], raw["revenue"])  # revenue stands in for margin
    assert c["products"].tolist() == raw["products"].astype(float).tolist()


def test_benchmark(parquet_data: CXData, frames) -> None:
    b = parquet_data.benchmark
    raw = frames["benchmark"]
    assert list(b.columns) == ["brand", "is_own", "market", "wave", "recommend", "price", "service"]
    assert b["is_own"].dtype == bool and b.loc[b["is_own"], "brand"].eq("OurBank").all()
    assert b["service"].isna().sum() == (raw["service"] == 0).sum() > 0  # 0 = not applicable on 1-10
    assert b["recommend"].min() == raw["rec"].min()  # 0 is a real answer on 0-10


@pytest.mark.parametrize(
    ("unit", "factor"), [("days", 1 / DAYS_PER_MONTH), ("weeks", 7 / DAYS_PER_MONTH), ("months", 1.0), ("years", 12.0)]
)
def test_tenure_column_units_become_months(tmp_path: Path, unit: str, factor: float) -> None:
    frames = raw_frames(20)
    frames["customers"]["tenure_raw"] = np.arange(20) * 3.0

    def edit(spec):
        c = spec["customers"]
        c.pop("start"), c.pop("end")
        c.update(tenure="tenure_raw", tenure_unit=unit, churn_labels={"yes": 1, "NO": 0})  # labels ignore case

    data = load_dataset(write_dataset(tmp_path, "parquet", frames=frames, edit_spec=edit))
    np.testing.assert_allclose(data.customers["tenure"], np.arange(20) * 3.0 * factor)
    assert "start_date" not in data.customers


def test_binary_and_ordinal_outcomes_with_labels(tmp_path: Path) -> None:
    frames = raw_frames(10)
    frames["survey"]["csat"] = (["Very satisfied", "satisfied ", "Neutral", "Unhappy", "DK"] * 3)[:15]

    def edit(spec):
        spec["survey"]["outcome"] = {
            "kind": "ordinal",
            "column": "csat",
            "not_applicable": ["DK"],
            "labels": {"Unhappy": 0, "Neutral": 1, "Satisfied": 2, "Very satisfied": 3},
        }

    data = load_dataset(write_dataset(tmp_path, "csv", frames=frames, edit_spec=edit))
    assert "recommend" not in data.survey
    assert data.survey["outcome"].dtype == "Int64"
    assert data.survey["outcome"].tolist()[:5] == [3, 2, 1, 0, pd.NA]


def test_blank_string_and_text_na_codes(tmp_path: Path) -> None:
    frames = raw_frames(10)
    s = frames["survey"]
    s["tp_web"] = s["tp_web"].astype(object)
    s.loc[[0, 1, 2, 3], "tp_web"] = ["", "  ", "NA", "n/a"]

    def edit(spec):
        spec["survey"]["touchpoints"]["website"]["not_applicable"] = ["blank", "NA", "N/A"]

    data = load_dataset(write_dataset(tmp_path, "parquet", frames=frames, edit_spec=edit))
    assert data.survey["website"].iloc[:4].isna().all()


# ----------------------------------------------------------------------------------------- filters
def test_segment_and_market_filters(tmp_path: Path, frames) -> None:
    path = write_dataset(tmp_path, "parquet", frames=frames)
    data = load_dataset(path, segment="private", market=["NO", "PT"])
    raw = frames["survey"]
    want = raw[(raw["seg"] == "private") & raw["country"].isin(["NO", "PT"])]
    assert len(data.survey) == len(want) > 0
    assert set(data.survey["segment"]) == {"private"} and set(data.survey["market"]) == {"NO", "PT"}
    assert set(data.customers["segment"]) == {"private"}
    assert set(data.benchmark["market"]) == {"NO", "PT"}  # benchmark has no segment: market filter only
    everything = load_dataset(path, segment="all", market=None)
    assert len(everything.survey) == len(raw)


def test_filter_that_matches_nothing_suggests_values(tmp_path: Path, frames) -> None:
    path = write_dataset(tmp_path, "parquet", frames=frames)
    with pytest.raises(
        DataValidationError,
        match=r"survey\.parquet: column seg: no rows for segment 'mas'; "
        r"did you mean 'mass'\? \(values: affluent, mass, private\)",
    ):
        load_dataset(path, segment="mas")


def test_filter_on_integer_codes(tmp_path: Path) -> None:
    frames = raw_frames(30)
    for role in ("survey", "customers"):
        frames[role]["seg"] = frames[role]["seg"].map({"mass": 1, "affluent": 2, "private": 3})
    data = load_dataset(write_dataset(tmp_path, "parquet", frames=frames), segment=2)
    assert set(data.survey["segment"]) == {"2"} and set(data.customers["segment"]) == {"2"}


def test_customers_without_segment_take_it_from_the_survey(tmp_path: Path) -> None:
    frames = raw_frames(40)
    frames["customers"] = frames["customers"].drop(columns=["seg", "country"])
    frames["survey"] = frames["survey"][frames["survey"]["resp_id"] != "C0040"]  # one customer never answered

    def edit(spec):
        spec["customers"].pop("segment"), spec["customers"].pop("market")

    path = write_dataset(tmp_path, "csv", frames=frames, edit_spec=edit)
    data = load_dataset(path)
    assert len(data.customers) == 39
    assert any("1 customers not in the survey were left out" in note for note in data.notes)
    merged = data.customers.merge(data.survey[data.survey["wave"] == "1"], on="customer_id")
    assert (merged["segment_x"] == merged["segment_y"]).all() and (merged["market_x"] == merged["market_y"]).all()
    only = load_dataset(path, market="NO", tables=("customers",))
    assert only.survey is None and set(only.customers["market"]) == {"NO"}
    assert len(only.customers) == frames["survey"].query("country == 'NO' and wave == 1")["resp_id"].nunique()


def test_survey_unit_from_customers(tmp_path: Path) -> None:
    frames = raw_frames(20)
    frames["customers"]["branch"] = [f"B{i % 3}" for i in range(20)]

    def edit(spec):
        spec["survey"].pop("unit")
        spec["customers"]["unit"] = "branch"

    path = write_dataset(tmp_path, "parquet", frames=frames, edit_spec=edit)
    for tables in (("survey", "customers"), ("survey",)):
        data = load_dataset(path, tables=tables)
        want = data.survey["customer_id"].map(lambda cid: f"B{(int(cid[1:]) - 1) % 3}")
        assert (data.survey["unit"] == want).all()
        assert data.survey["unit"].dtype == "string"


def test_tables_argument_and_unknown_role(tmp_path: Path, frames) -> None:
    path = write_dataset(tmp_path, "parquet", frames=frames)
    data = load_dataset(path, tables=("benchmark",))
    assert data.survey is None and data.customers is None and len(data.benchmark) == len(frames["benchmark"])
    assert set(data.hashes) == {"benchmark"}
    assert load_dataset(path, tables="customers").customers is not None  # one role as a plain string
    with pytest.raises(ValueError, match="unknown table role"):
        load_dataset(path, tables=("survey", "crm"))


def test_spec_object_and_dataset_without_wave_or_optional_tables(tmp_path: Path, frames) -> None:
    def edit(spec):
        spec["survey"].pop("wave")
        spec.pop("customers"), spec.pop("benchmark")

    frames = dict(frames, survey=frames["survey"][frames["survey"]["wave"] == 1])
    spec = load_spec(write_dataset(tmp_path, "parquet", frames=frames, edit_spec=edit))
    data = load_dataset(spec)
    assert data.customers is None and data.benchmark is None
    assert set(data.survey["wave"]) == {"1"}


# ----------------------------------------------------------------------------------------- push-down
@pytest.fixture(scope="module")
def big_parquet(tmp_path_factory) -> Path:
    """~1M survey rows written by DuckDB itself (no pandas), with its spec."""
    folder = tmp_path_factory.mktemp("big")
    with duckdb.connect() as conn:
        conn.execute(f"""
            COPY (SELECT 'C' || lpad(i::VARCHAR, 7, '0') AS resp_id,
                         ['mass', 'mass', 'mass', 'affluent', 'affluent', 'private'][1 + i % 6] AS seg,
                         ['ES', 'PT', 'MX', 'NO'][1 + (i // 7) % 4] AS country,
                         1 + (i % 5) AS tp_branch, CASE WHEN i % 3 = 0 THEN 0 ELSE 1 + (i % 4) END AS tp_call,
                         1 + (i % 11) AS nps_raw
                  FROM range(1000000) t(i)) TO '{folder / "survey.parquet"}' (FORMAT parquet, ROW_GROUP_SIZE 100000)
        """)
    spec = {
        "version": 1,
        "name": "big",
        "tables": {"survey": {"path": "survey.parquet"}},
        "survey": {
            "id": "resp_id",
            "segment": "seg",
            "market": "country",
            "touchpoints": {
                "branch": {"column": "tp_branch", "scale": [1, 5]},
                "call_centre": {"column": "tp_call", "scale": [1, 5], "not_applicable": [0]},
            },
            "outcome": {"column": "nps_raw", "recode": {"from": [1, 11], "to": [0, 10]}},
        },
    }
    (folder / "dataset.yaml").write_text(dump_yaml(spec), encoding="utf-8")
    return folder / "dataset.yaml"


def test_filters_sit_in_the_parquet_scan(big_parquet: Path) -> None:
    plan = explain_load(big_parquet, "survey", segment="private", market=["NO", "ES"])
    scan = plan[plan.index("READ_PARQUET") :]
    assert "Filters:" in scan and "seg='private'" in scan.replace(" ", "")
    assert "country" in scan[scan.index("Filters:") :]
    projections = scan[scan.index("Projections:") : scan.index("Filters:")]
    for col in ("resp_id", "tp_branch", "tp_call", "nps_raw"):
        assert col in projections


def test_filtered_load_of_a_million_rows(big_parquet: Path) -> None:
    with duckdb.connect() as conn:
        want = conn.execute(
            f"SELECT count(*), avg(nps_raw - 1), avg(CASE WHEN tp_call = 0 THEN NULL ELSE tp_call END)"
            f" FROM '{big_parquet.parent / 'survey.parquet'}'"
            " WHERE seg = 'private' AND country = 'NO'"
        ).fetchone()
    start = time.perf_counter()
    data = load_dataset(big_parquet, segment="private", market="NO")
    elapsed = time.perf_counter() - start
    i = np.arange(1_000_000)
    planted = (i % 6 == 5) & ((i // 7) % 4 == 3)  # seg == 'private' and country == 'NO' as generated
    assert len(data.survey) == want[0] == planted.sum()
    assert data.survey["recommend"].astype(float).mean() == pytest.approx(want[1], rel=1e-12)
    assert data.survey["call_centre"].mean() == pytest.approx(want[2], rel=1e-12)
    assert elapsed < 20, f"filtered load took {elapsed:.1f} s"


def test_sources_are_not_modified_by_a_failing_load(tmp_path: Path, frames) -> None:
    bad = dict(frames, survey=frames["survey"].assign(tp_branch=9))
    for kind in ("csv", "duckdb_table"):
        folder = tmp_path / kind
        path = write_dataset(folder, kind, frames=bad)
        before = file_hashes(folder)
        with pytest.raises(DataValidationError):
            load_dataset(path)
        assert file_hashes(folder) == before


def test_validate_false_skips_range_checks_but_not_parsing(tmp_path: Path) -> None:
    frames = raw_frames(10)
    frames["survey"].loc[0, "tp_branch"] = 7
    path = write_dataset(tmp_path, "parquet", frames=frames)
    with pytest.raises(DataValidationError, match="outside the scale 1-5"):
        load_dataset(path)
    assert load_dataset(path, validate=False).survey["branch"].iloc[0] == 7.0
    frames["survey"]["tp_call"] = frames["survey"]["tp_call"].astype(object)
    frames["survey"].loc[1, "tp_call"] = "x"
    path = write_dataset(tmp_path / "b", "parquet", frames=frames)
    with pytest.raises(DataValidationError, match="column tp_call: 1 row not a number"):
        load_dataset(path, validate=False)


def test_as_of_needed_for_active_customers(tmp_path: Path) -> None:
    spec = spec_dict()
    spec.pop("as_of")
    with pytest.raises(ValueError, match="need 'as_of'"):
        load_dataset(write_dataset(tmp_path, "parquet", spec=spec))


def test_hive_partitioned_folder_keeps_codes_as_text(tmp_path: Path) -> None:
    frames = raw_frames(30)
    survey = frames["survey"]
    survey["country"] = survey["country"].replace({"PT": "007"})  # a code that must not become 7
    for market, part in survey.groupby("country"):
        folder = tmp_path / "survey" / f"country={market}"
        folder.mkdir(parents=True)
        part.drop(columns=["country"]).to_parquet(folder / "part-0.parquet", index=False)
    frames["customers"]["country"] = frames["customers"]["country"].replace({"PT": "007"})
    path = write_dataset(
        tmp_path / "rest",
        "parquet",
        frames=frames,
        edit_spec=lambda s: s.update(tables={**s["tables"], "survey": {"path": "../survey"}}),
    )
    data = load_dataset(path, market=["007", "NO"])
    assert set(data.survey["market"]) == {"007", "NO"}
    assert len(data.survey) == survey["country"].isin(["007", "NO"]).sum()


@pytest.mark.parametrize(("delimiter", "name", "declared"), [(";", "survey.csv", ";"), ("\t", "survey.tsv", None)])
def test_csv_delimiters(tmp_path: Path, delimiter: str, name: str, declared: str | None) -> None:
    frames = raw_frames(12)
    write_dataset(tmp_path, "parquet", frames=frames)
    frames["survey"].to_csv(tmp_path / name, sep=delimiter, index=False)

    def edit(spec):
        spec["tables"]["survey"] = {"path": name, **({"csv_delimiter": declared} if declared else {})}

    data = load_dataset(write_dataset(tmp_path, "parquet", frames=frames, edit_spec=edit))
    assert len(data.survey) == len(frames["survey"]) and data.survey["branch"].notna().any()
