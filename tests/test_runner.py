"""The study runner end to end: real kernels (the `cxresearch` Jupyter kernel), papermill, nbconvert.

The fixture notebook tests/notebooks/nps.ipynb computes the NPS of its segment x market from the
tiny survey; the truth is the same formula applied with pandas to the frame the test wrote, so the
numbers must agree exactly (up to float rounding, 1e-9).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from click.testing import CliRunner

from cxresearch.studies.commands import run_command
from cxresearch.studies.manifest import canonical_json, package_versions, sha256_file
from cxresearch.studies.runner import available_cores, plan_runs, threads_per_run

pytestmark = pytest.mark.timeout(300)


import study_fixtures as F  # noqa: E402  (tests/ is on sys.path under pytest)

RUNS = [("007", "NO"), ("007", "SE"), ("mass", "NO"), ("mass", "SE")]


def _invoke(*args: str):
    result = CliRunner().invoke(run_command, [*args, "--no-progress"], catch_exceptions=False)
    return result


def _manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def _stream_text(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.fixture(scope="module")
def matrix_run(tmp_path_factory):
    """One 2 x 2 run with 2 workers through the CLI; `segment: [007, mass]`, `market: [NO, SE]` unquoted."""
    root = tmp_path_factory.mktemp("runner")
    spec, frame = F.make_dataset(root / "data", ["007", "mass"], ["NO", "SE"], n_per_cell=40, seed=3)
    notebook = root / "nb" / "nps.ipynb"
    notebook.parent.mkdir()
    shutil.copy(F.NOTEBOOKS / "nps.ipynb", notebook)  # a copy the rerun test may edit
    params = F.write_params(
        root / "params" / "nps.yaml",
        (
            f'study: nps\ntitle: "NPS <b>tiny</b>"\nnotebook: ../nb/nps.ipynb\ndataset: {spec}\nout: ../ignored\n'
            "matrix: {segment: [007, mass], market: [NO, SE]}\nseed: 7\nexecution_timeout: 120\n"
            "settings: {plot: true, draws: 50, label: '<i>tiny</i>'}\n"
        ),
    )
    out = root / "out"
    result = _invoke(str(params), "--workers", "2", "--out", str(out))
    return {
        "root": root,
        "spec": spec,
        "frame": frame,
        "notebook": notebook,
        "params": params,
        "out": out,
        "result": result,
    }


def test_matrix_run_outputs_and_numbers(matrix_run):
    result, out, frame = matrix_run["result"], matrix_run["out"], matrix_run["frame"]
    assert result.exit_code == 0, result.output
    assert result.output.count("[ok]") == 4 and "4 runs: 4 succeeded, 0 failed" in result.output
    assert not (matrix_run["root"] / "ignored").exists()  # --out overrides the params file's out
    for segment, market in RUNS:
        run_dir = out / "nps" / f"{segment}--{market}"
        assert sorted(p.name for p in run_dir.iterdir()) == [
            "kernel.log",
            "manifest.json",
            "nps.ipynb",
            "report.html",
            "results.json",
        ]  # no temp files left
        results = json.loads((run_dir / "results.json").read_text())
        truth, n = F.nps_truth(frame, segment, market)
        assert results["n"] == n == 40
        assert results["nps"]["mean"] == pytest.approx(truth, abs=1e-9)
        assert results["settings"] == {"draws": 50, "scale": 1.0, "seed": 7}
        executed = nbformat.read(run_dir / "nps.ipynb", as_version=4)
        injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and f'segment = "{segment}"' in injected[0].source
        threads = threads_per_run(2)
        text = _stream_text(executed)
        assert f"OMP_NUM_THREADS={threads} CXRESEARCH_THREADS={threads}" in text
        assert f"cwd={run_dir}" in text  # the kernel runs in its run folder
        assert "<i>tiny</i>: segment=" in text


def test_manifest_contents(matrix_run):
    out, spec = matrix_run["out"], matrix_run["spec"]
    manifest = _manifest(out / "nps" / "007--NO")
    assert manifest["status"] == "succeeded" and manifest["error"] is None
    assert manifest["study"] == "nps" and manifest["segment"] == "007" and manifest["market"] == "NO"
    params = manifest["parameters"]
    assert params == {
        "dataset": str(spec),
        "segment": "007",
        "market": "NO",
        "seed": 7,
        "plot": True,
        "draws": 50,
        "label": "<i>tiny</i>",
    }
    assert manifest["parameters_json"] == canonical_json(params)
    assert manifest["parameters_sha256"] == hashlib.sha256(manifest["parameters_json"].encode()).hexdigest()
    assert manifest["notebook"]["sha256"] == sha256_file(matrix_run["notebook"])
    assert manifest["data"]["spec"]["sha256"] == sha256_file(spec)
    assert manifest["data"]["tables"]["survey"]["files"]["survey.parquet"] == sha256_file(
        spec.parent / "survey.parquet"
    )
    assert manifest["data"]["as_of"] == "2026-10-31"
    assert manifest["seed"] == 7 and manifest["execution_timeout"] == 120
    assert manifest["duration_s"] > 0 and manifest["started_at"] <= manifest["finished_at"]
    assert manifest["packages"]["papermill"] == package_versions()["papermill"]
    git = manifest["git"]
    assert git is None or (len(git["commit"]) == 40 and isinstance(git["dirty"], bool))
    assert len(manifest["inputs_fingerprint"]) == 64 and len(manifest["package_source_sha256"]) == 64


def test_report_header_and_offline(matrix_run):
    page = (matrix_run["out"] / "nps" / "mass--SE" / "report.html").read_text()
    assert 'data-field="segment">mass<' in page and 'data-field="market">SE<' in page
    assert "NPS &lt;b&gt;tiny&lt;/b&gt;" in page and "<b>tiny</b>" not in page
    assert "injected-parameters" not in page and "data:image/png;base64," in page
    assert "cx-failure-banner" not in page and "cx-diagnostics-banner" not in page
    for attr in ('src="http', "src='http", 'href="http', 'src="//', 'href="//'):
        assert attr not in page
    index = (matrix_run["out"] / "index.html").read_text()
    for segment, market in RUNS:
        assert f'href="nps/{segment}--{market}/report.html"' in index


def assert_skipped_unless_package_changed(out: Path, before: dict, package_before: str, output: str) -> None:
    """Every run with unchanged inputs is skipped (same run id). The package source is an input, and
    while other people edit cxresearch/ (a shared checkout) a run may legitimately rerun: then its
    manifest must show a different package hash. On CI nothing edits, so all runs are skipped."""
    reran = 0
    for (segment, market), run_id in before.items():
        manifest = _manifest(out / "nps" / f"{segment}--{market}")
        if manifest["run_id"] != run_id:
            reran += 1
            assert manifest["package_source_sha256"] != package_before
    assert output.count("[skip]") == len(before) - reran and output.count("[ok]") == reran


def test_rerun_skips_unchanged_and_reruns_changed(matrix_run):
    out, params, notebook = matrix_run["out"], str(matrix_run["params"]), matrix_run["notebook"]
    before = {run: _manifest(out / "nps" / f"{run[0]}--{run[1]}")["run_id"] for run in RUNS}
    package_before = _manifest(out / "nps" / "007--NO")["package_source_sha256"]
    again = _invoke(params, "--out", str(out))
    assert again.exit_code == 0
    assert_skipped_unless_package_changed(out, before, package_before, again.output)

    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("An edit: the notebook changed."))
    nbformat.write(nb, notebook)
    before = {run: _manifest(out / "nps" / f"{run[0]}--{run[1]}")["run_id"] for run in RUNS}
    changed = _invoke(params, "--out", str(out), "--only", "segment=mass", "--workers", "2")
    assert changed.exit_code == 0 and changed.output.count("[ok]") == 2, changed.output
    after = {run: _manifest(out / "nps" / f"{run[0]}--{run[1]}")["run_id"] for run in RUNS}
    for run in RUNS:
        assert (after[run] != before[run]) == (run[0] == "mass")
    assert "An edit" in (out / "nps" / "mass--NO" / "report.html").read_text()

    forced = _invoke(params, "--out", str(out), "--only", "segment=007", "--only", "market=NO", "--force")
    assert forced.exit_code == 0 and forced.output.count("[ok]") == 1
    assert _manifest(out / "nps" / "007--NO")["run_id"] != before[("007", "NO")]
    index = (out / "index.html").read_text()
    assert index.count('class="run ') == 4  # the index still lists the whole matrix


def test_fingerprint_follows_data_not_unrelated_files(matrix_run, tmp_path):
    spec = matrix_run["spec"]
    data = tmp_path / "data"
    shutil.copytree(spec.parent, data)
    params = F.write_params(
        tmp_path / "p.yaml", F.params_text("nps", "nps.ipynb", data / "dataset.yaml", "{segment: each}")
    )
    first = {p.folder: p.fingerprint for p in plan_runs([params], out=tmp_path / "o").runs}
    (data / "notes.md").write_text("unrelated")
    assert {p.folder: p.fingerprint for p in plan_runs([params], out=tmp_path / "o").runs} == first
    frame = pd.read_parquet(data / "survey.parquet")
    frame.loc[0, "recommend"] = 10 - frame.loc[0, "recommend"] if frame.loc[0, "recommend"] != 5 else 0
    frame.to_parquet(data / "survey.parquet", index=False)
    second = {p.folder: p.fingerprint for p in plan_runs([params], out=tmp_path / "o").runs}
    assert second.keys() == first.keys() and all(second[k] != first[k] for k in first)


def test_unsafe_segment_names_stay_inside_out(tmp_path):
    weird = ["../../etc", "Zürich <b>Øst</b>"]  # more unsafe names: test_params.py::test_safe_names_*
    spec, frame = F.make_dataset(tmp_path / "data", weird, ["NO"], n_per_cell=12)
    params = F.write_params(tmp_path / "p.yaml", F.params_text("nps", "nps.ipynb", spec, "{segment: each}"))
    out = tmp_path / "deep" / "out"
    result = _invoke(str(params), "--out", str(out), "--workers", "2")
    assert result.exit_code == 0, result.output
    created = [
        p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(tmp_path / "data") and p.name != "p.yaml"
    ]
    assert len(created) >= 2 * 5 and all(p.resolve().is_relative_to(out.resolve()) for p in created)
    assert not (tmp_path / "etc").exists() and not (tmp_path / "deep" / "etc").exists()
    folders = sorted(p.name for p in (out / "nps").iterdir())
    assert len(folders) == 2 and all("/" not in f and not f.startswith(".") for f in folders)
    assert any(f.startswith("Zürich _b_Øst_b_~") for f in folders)  # unicode kept readable
    for segment in weird:
        manifests = [json.loads(p.read_text()) for p in out.glob("nps/*/manifest.json")]
        manifest = next(m for m in manifests if m["segment"] == segment)
        run_dir = out / manifest["folder"]
        results = json.loads((run_dir / "results.json").read_text())
        assert results["nps"]["mean"] == pytest.approx(F.nps_truth(frame, segment, "all")[0], abs=1e-9)
        page = (run_dir / "report.html").read_text()
        assert "<b>Øst</b>" not in page
        if segment == weird[1]:
            assert 'data-field="segment">Zürich &lt;b&gt;Øst&lt;/b&gt;<' in page


def test_prepare_only_writes_parameterised_notebook(tmp_path):
    spec, _ = F.make_dataset(tmp_path / "data", ["007"], ["NO"], n_per_cell=3)
    params = F.write_params(
        tmp_path / "params" / "p.yaml",
        F.params_text("nps", "nps.ipynb", spec, "{segment: each, market: each}") + "out: ../reports\n",
    )
    result = _invoke(str(params), "--prepare-only")
    assert result.exit_code == 0 and "[prep]" in result.output
    run_dir = tmp_path / "reports" / "nps" / "007--NO"  # 'out' resolved against the params file
    assert sorted(p.name for p in run_dir.iterdir()) == ["nps.prepared.ipynb"]
    nb = nbformat.read(run_dir / "nps.prepared.ipynb", as_version=4)
    # the run's values are the parameters cell's defaults (a later papermill -p overrides only what it passes;
    # tests/test_bad_inputs.py runs papermill on one)
    assert not [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    defaults = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", [])).source
    assert defaults.index('segment = "all"') < defaults.index('segment = "007"')  # after the notebook's own
    assert 'market = "NO"' in defaults and f'dataset = "{spec}"' in defaults
    assert nb.metadata.kernelspec.name == "cxresearch" and nb.metadata.cxresearch["prepared"] is True
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
def test_dask_cluster_via_scheduler(tmp_path):
    distributed = pytest.importorskip("distributed")
    spec, frame = F.make_dataset(tmp_path / "data", ["mass", "affluent"], ["NO"], n_per_cell=20)
    params = F.write_params(tmp_path / "p.yaml", F.params_text("nps", "nps.ipynb", spec, "{segment: each}"))
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = _invoke(str(params), "--scheduler", cluster.scheduler_address, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.count("[ok]") == 2
    for segment in ("mass", "affluent"):
        run_dir = out / "nps" / f"{segment}--all"
        manifest = _manifest(run_dir)
        assert manifest["status"] == "succeeded"
        assert manifest["threads"] == max(1, available_cores() // 2)  # 2 worker threads on this host
        results = json.loads((run_dir / "results.json").read_text())
        assert results["nps"]["mean"] == pytest.approx(F.nps_truth(frame, segment, "all")[0], abs=1e-9)
    assert (out / "index.html").is_file()


def test_record_result_nests_converts_and_writes(tmp_path, monkeypatch):
    """The notebook helper: dotted keys nest, numpy / pandas scalars become JSON, NaN -> null, and the
    file named by CXRESEARCH_RESULTS is rewritten (atomically) on every call."""
    import numpy as np

    from cxresearch import results

    target = tmp_path / "run" / "results.json"
    monkeypatch.setattr(results, "_RESULTS", {})
    monkeypatch.setenv(results.RESULTS_ENV, str(target))
    assert results.record_result("nps.mean", np.float64(31.5)) == 31.5
    results.record_result("nps.n", np.int64(420))
    results.record_result("diagnostics", {"passed": np.bool_(False), "rhat": np.array([1.0, np.nan])})
    results.record_result("missing", pd.NA)
    assert json.loads(target.read_text()) == {
        "nps": {"mean": 31.5, "n": 420},
        "diagnostics": {"passed": False, "rhat": [1.0, None]},
        "missing": None,
    }
    assert [p.name for p in target.parent.iterdir()] == ["results.json"]  # no temp files left
    with pytest.raises(TypeError, match="nps.bad: cannot record a object"):
        results.record_result("nps.bad", object())
    with pytest.raises(ValueError, match="empty part"):
        results.record_result("nps..x", 1)


def test_runs_are_interleaved_across_studies_keeping_each_studys_order():
    """The second worker starts another study's run instead of waiting for the first study's shared fit."""
    from types import SimpleNamespace

    from cxresearch.studies.runner import interleave_studies

    plans = [SimpleNamespace(study=s, n=i) for i, s in enumerate(["drivers"] * 3 + ["economics"] * 2 + ["nps"])]
    order = [(p.study, p.n) for p in interleave_studies(plans)]
    assert order == [("drivers", 0), ("economics", 3), ("nps", 5), ("drivers", 1), ("economics", 4), ("drivers", 2)]
    assert interleave_studies([]) == []
