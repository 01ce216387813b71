"""Params files: validation before any kernel starts, YAML codes, matrix expansion, safe names, threads."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import pytest
from click.testing import CliRunner

import study_fixtures as F  # noqa: E402  (tests/ is on sys.path under pytest)
from cxresearch.studies.commands import run_command
from cxresearch.studies.params import (
    MatrixEntry,
    ParamsError,
    check_parameters,
    expand_matrix,
    load_params,
    run_folder_names,
    safe_name,
    segment_market_pairs,
)
from cxresearch.studies.runner import (
    RunnerError,
    default_workers,
    parse_only,
    plan_runs,
    thread_env,
    threads_per_run,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    spec, _ = F.make_dataset(tmp_path_factory.mktemp("data"), ["007", "mass", "affluent"], ["NO", "SE"], n_per_cell=5)
    return spec


def _params(tmp_path: Path, dataset: Path, body: str, notebook: str = "nps.ipynb") -> Path:
    study = "" if body.startswith("study:") else "study: nps\n"
    text = f"{study}notebook: {F.NOTEBOOKS / notebook}\ndataset: {dataset}\n" + body
    return F.write_params(tmp_path / "params.yaml", text)


def test_codes_stay_strings_in_params_and_data(tmp_path, dataset):
    """`market: NO` stays 'NO' (not False) and `segment: 007` stays '007' (not 7), in the params
    file and when DuckDB reads the data, so the run matches the data's rows."""
    path = _params(tmp_path, dataset, "matrix: {segment: 007, market: NO}\nsettings: {label: NO}\n")
    loaded = load_params(path)
    entry = loaded.params.matrix[0]
    assert entry.segment == ["007"] and entry.market == ["NO"]
    assert loaded.params.settings == {"label": "NO"}
    pairs = segment_market_pairs(dataset)
    assert ("007", "NO") in pairs
    runs, empty = expand_matrix(loaded.params.matrix, pairs)
    assert runs == [("007", "NO")] and empty == []
    plan = plan_runs([path], out=tmp_path / "out")
    assert [(p.parameters["segment"], p.parameters["market"]) for p in plan.runs] == [("007", "NO")]
    assert plan.runs[0].folder == "nps/007--NO"


def test_csv_codes_keep_leading_zeros(tmp_path):
    """A CSV export with branch code 007: DuckDB must not read it as the number 7."""
    folder = tmp_path / "csvdata"
    folder.mkdir()
    pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "segment": ["007", "010", "007"],
            "market": ["NO", "NO", "SE"],
            "tp_app": [1, 2, 3],
            "recommend": [9, 5, 10],
        }
    ).to_csv(folder / "survey.csv", index=False)
    (folder / "dataset.yaml").write_text(
        "version: 1\nname: csv\ntables:\n  survey: {path: survey.csv}\n"
        "survey:\n  id: customer_id\n  segment: segment\n  market: market\n"
        "  touchpoints:\n    app: {column: tp_app, scale: [1, 5]}\n  outcome: {column: recommend}\n"
    )
    assert segment_market_pairs(folder / "dataset.yaml") == {("007", "NO"), ("010", "NO"), ("007", "SE")}


def test_unknown_keys_rejected_with_their_path(tmp_path, dataset):
    path = _params(tmp_path, dataset, "matrix:\n  - {segment: each, markt: all}\nsetings: {draws: 10}\n")
    with pytest.raises(ParamsError) as info:
        load_params(path)
    message = str(info.value)
    assert f"{path}: matrix.0.markt: unknown key 'markt'" in message
    assert f"{path}: setings: unknown key 'setings'" in message


def test_unknown_key_stops_the_command_before_any_kernel(tmp_path, dataset):
    path = _params(tmp_path, dataset, "matrix: {segment: each}\nworkers: 3\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(run_command, [str(path), "--out", str(out)])
    assert result.exit_code == 1
    assert "workers: unknown key" in result.output and str(path) in result.output
    assert not out.exists()  # nothing was run or written


def test_settings_must_exist_in_the_parameters_cell(tmp_path, dataset):
    path = _params(tmp_path, dataset, "settings: {draws: 10, target_nps: 30}\n")
    with pytest.raises(ParamsError) as info:
        plan_runs([path], out=tmp_path / "out")
    message = str(info.value)
    assert "settings.target_nps" in message and "no parameter 'target_nps'" in message
    assert "nps.ipynb" in message and "draws" in message  # lists what the notebook declares
    assert "settings.draws" not in message  # draws exists and is an int, like its default


def test_setting_values_checked_against_defaults_and_json(tmp_path, dataset):
    path = _params(tmp_path, dataset, 'settings: {draws: "500", scale: 2}\n')
    with pytest.raises(ParamsError, match=r"settings\.draws: '500' is text, but the notebook default 100 is integer"):
        plan_runs([path], out=tmp_path / "out")
    # an int where the default is a float is fine (scale: 2 above was not reported)
    path = _params(tmp_path, dataset, "settings: {label: 2026-01-31}\n")
    with pytest.raises(ParamsError, match=r"settings: label: date value 2026-01-31 is not JSON-native \(quote it"):
        load_params(path)


@pytest.mark.parametrize(
    "settings, expected",
    [
        ('{"bad-name": 1}', "must be an identifier"),
        ("{class: 1}", "must be an identifier"),
        ("{segment: mass}", "set by the runner"),
        ("{x: .nan}", "not a finite number"),
    ],
)
def test_setting_names_and_values(tmp_path, dataset, settings, expected):
    path = _params(tmp_path, dataset, f"settings: {settings}\n")
    with pytest.raises(ParamsError, match=expected):
        load_params(path)


@pytest.mark.parametrize(
    "body, expected",
    [
        ("seed: true\n", "seed: seed must be a whole number"),
        ("execution_timeout: -5\n", "execution_timeout: Input should be greater than 0"),
        ("study: ../evil\n", "study: '../evil' must be a short identifier"),
        ("matrix: []\n", "matrix: the matrix needs at least one entry"),
        ("matrix: {segment: [mass, mass]}\n", "matrix.0.segment: repeated values"),
        ("matrix: {segment: [each, mass]}\n", "cannot appear inside a list"),
        ("matrix: {segment: false}\n", "values must be text"),
    ],
)
def test_bad_values_named_by_key(tmp_path, dataset, body, expected):
    path = _params(tmp_path, dataset, body)
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert expected in str(info.value) and str(path) in str(info.value)


def test_yaml_is_loaded_safely(tmp_path, dataset):
    path = _params(tmp_path, dataset, 'settings: !!python/object/apply:os.system ["echo pwned"]\n')
    with pytest.raises(ParamsError, match="invalid YAML"):
        load_params(path)


def test_missing_files_and_parameters_cell(tmp_path, dataset):
    path = F.write_params(tmp_path / "p.yaml", f"study: s\nnotebook: nope.ipynb\ndataset: {dataset}\n")
    with pytest.raises(ParamsError, match=r"notebook: file not found: .*nope\.ipynb"):
        load_params(path)
    bare = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("dataset = 'x'")])
    nbformat.write(bare, tmp_path / "bare.ipynb")
    with pytest.raises(ParamsError, match="no cell is tagged 'parameters'"):
        check_parameters(tmp_path / "bare.ipynb", {"dataset": "x"}, "p.yaml")


def test_matrix_expansion_each_all_lists_union(dataset):
    pairs = segment_market_pairs(dataset)
    entries = [
        MatrixEntry(segment="each", market="all"),
        MatrixEntry(segment="all", market="each"),
        MatrixEntry(segment="each", market="all"),
        MatrixEntry(segment=["mass"], market=["SE", "NO"]),
    ]
    runs, empty = expand_matrix(entries, pairs)
    assert runs == [
        ("007", "all"),
        ("affluent", "all"),
        ("mass", "all"),
        ("all", "NO"),
        ("all", "SE"),
        ("mass", "SE"),
        ("mass", "NO"),
    ]
    assert empty == []
    with pytest.raises(
        ParamsError, match=r"p\.yaml: matrix\.0\.market: \['DK'\] not found in the data \(found: NO, SE\)"
    ):
        expand_matrix([MatrixEntry(market=["DK"])], pairs, "p.yaml")


def test_each_by_each_skips_combinations_without_rows():
    pairs = {("mass", "NO"), ("mass", "SE"), ("affluent", "NO")}
    runs, empty = expand_matrix([MatrixEntry(segment="each", market="each")], pairs)
    assert runs == [("affluent", "NO"), ("mass", "NO"), ("mass", "SE")]
    assert empty == [("affluent", "SE")]


@pytest.mark.parametrize(
    "value", ["../../etc", "..", ".hidden", "a/b", "a\\b", "x\x00y\x1b[31m", "CON", "  ", "a--b", "x" * 300]
)
def test_safe_names_stay_inside_and_readable(tmp_path, value):
    name = safe_name(value)
    assert "/" not in name and "\\" not in name and not name.startswith(".")
    assert all(ch.isprintable() for ch in name) and "--" not in name
    assert len(name.encode()) <= 60 + 7
    target = (tmp_path / "study" / f"{name}--all").resolve()
    assert target.parent == (tmp_path / "study").resolve()  # no escape from the study folder
    assert name.endswith(f"~{__import__('hashlib').sha256(value.encode()).hexdigest()[:6]}")


def test_safe_names_keep_unicode_and_disambiguate():
    assert safe_name("Zürich Øst") == "Zürich Øst"  # readable, unchanged: no hash
    assert safe_name("007") == "007" and safe_name("NO") == "NO"
    assert safe_name("a/b") != safe_name("a_b")
    names = run_folder_names([("Mass", "all"), ("mass", "all"), ("a/b", "x"), ("a_b", "x")])
    assert len({n.casefold() for n in names.values()}) == 4  # also distinct on case-insensitive disks


def test_thread_sizing():
    assert default_workers(8, cores=2) == 1 and default_workers(8, cores=16) == 8
    assert default_workers(3, cores=16) == 3 and default_workers(0, cores=1) == 1
    assert threads_per_run(2, cores=2) == 1 and threads_per_run(1, cores=2) == 2 and threads_per_run(3, cores=16) == 5
    env = thread_env(3, base={"PYTENSOR_FLAGS": "floatX=float64"})
    for name in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMBA_NUM_THREADS",
        "CXRESEARCH_THREADS",
    ):
        assert env[name] == "3"
    assert env["PYTENSOR_FLAGS"] == "floatX=float64,openmp=False"
    assert thread_env(1, base={"PYTENSOR_FLAGS": "openmp=True"})["PYTENSOR_FLAGS"] == "openmp=True"


def test_only_filter_syntax():
    assert parse_only(["segment=mass", "segment=007", "market=NO"]) == {"segment": {"mass", "007"}, "market": {"NO"}}
    for bad in ("segment", "colour=red", "market="):
        with pytest.raises(RunnerError, match="--only"):
            parse_only([bad])


def test_only_and_study_collisions(tmp_path, dataset):
    path = _params(tmp_path, dataset, "matrix: {segment: each, market: each}\n")
    plan = plan_runs([path], out=tmp_path / "out", only=["segment=mass", "market=SE", "market=NO"])
    assert sorted((p.segment, p.market) for p in plan.runs) == [("mass", "NO"), ("mass", "SE")]
    assert len(plan.all_runs) == 6  # the index still lists the whole matrix
    with pytest.raises(RunnerError, match="matched no run"):
        plan_runs([path], out=tmp_path / "out", only=["segment=nobody"])
    twin = F.write_params(tmp_path / "twin.yaml", path.read_text())
    with pytest.raises(RunnerError, match="also defined in"):
        plan_runs([path, twin], out=tmp_path / "out")


def test_each_reads_folder_and_duckdb_sources(tmp_path):
    """`each` works for every survey source kind: a folder of Parquet parts and a DuckDB table / query."""
    import duckdb

    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "segment": ["007", "mass", "mass", None],
            "market": ["NO", "NO", "SE", "SE"],
            "tp_app": [1, 2, 3, 4],
            "recommend": [9, 5, 10, 7],
        }
    )
    parts = tmp_path / "parts"
    parts.mkdir()
    frame.iloc[:2].to_parquet(parts / "part-1.parquet", index=False)
    frame.iloc[2:].to_parquet(parts / "part-2.parquet", index=False)
    with duckdb.connect(str(tmp_path / "cx.duckdb")) as con:
        con.register("frame", frame)
        con.execute("CREATE TABLE answers AS SELECT * FROM frame")
    survey = (
        "survey:\n  id: customer_id\n  segment: segment\n  market: market\n"
        "  touchpoints:\n    app: {column: tp_app, scale: [1, 5]}\n  outcome: {column: recommend}\n"
    )
    expected = {("007", "NO"), ("mass", "NO"), ("mass", "SE")}  # the NULL segment is not a run
    for name, source in (
        ("folder", "{path: parts}"),
        ("table", "{database: cx.duckdb, table: answers}"),
        ("query", "{database: cx.duckdb, query: 'SELECT * FROM answers WHERE tp_app > 0'}"),
    ):
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(f"version: 1\nname: {name}\ntables:\n  survey: {source}\n{survey}")
        assert segment_market_pairs(spec) == expected, name
