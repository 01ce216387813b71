"""Failures never hide: a cell error, a cell timeout and a dead kernel each mark their run failed with
a red banner at the top of its report; the other runs complete; the command lists the failures and
exits non-zero; a rerun skips the successes and reruns the failures."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from cxresearch.studies.commands import run_command

pytestmark = pytest.mark.timeout(300)

TIMEOUT_S = 6  # execution_timeout of the sleeping notebook: well above its quick first cells


import study_fixtures as F  # noqa: E402  (tests/ is on sys.path under pytest)


def _invoke(*args: str):
    return CliRunner().invoke(run_command, [*args, "--no-progress"], catch_exceptions=False)


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("failures")
    spec, frame = F.make_dataset(root / "data", ["mass", "affluent"], ["NO"], n_per_cell=20)
    files = []
    for study, notebook, matrix, timeout in [
        ("good", "nps.ipynb", "{segment: each, market: all}", 120),
        ("raises", "raises.ipynb", "{segment: [mass]}", 120),
        ("sleeps", "sleeps.ipynb", "{segment: [mass]}", TIMEOUT_S),
        ("kills", "kills.ipynb", "{segment: [mass]}", 120),
    ]:
        files.append(
            str(
                F.write_params(
                    root / "params" / f"{study}.yaml",
                    F.params_text(study, notebook, spec, matrix, execution_timeout=timeout),
                )
            )
        )
    out = root / "out"
    result = _invoke(*files, "--workers", "2", "--out", str(out))
    return {"out": out, "files": files, "frame": frame, "result": result}


def _manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def test_failures_listed_and_exit_code(failing_run):
    result = failing_run["result"]
    assert result.exit_code == 1
    assert "5 runs: 2 succeeded, 3 failed" in result.output
    listing = result.output.split("failed runs:")[1]
    for study, kind in (("raises", "cell_error"), ("sleeps", "timeout"), ("kills", "dead_kernel")):
        assert f"{study} segment=mass market=all: {kind}:" in listing
    assert "good" not in listing


def test_other_runs_complete(failing_run):
    out, frame = failing_run["out"], failing_run["frame"]
    for segment in ("mass", "affluent"):
        run_dir = out / "good" / f"{segment}--all"
        assert _manifest(run_dir)["status"] == "succeeded"
        results = json.loads((run_dir / "results.json").read_text())
        assert results["nps"]["mean"] == pytest.approx(F.nps_truth(frame, segment, "all")[0], abs=1e-9)


@pytest.mark.parametrize(
    "study, kind, title, stop_anchor",
    [
        ("raises", "cell_error", "RUN FAILED: a notebook cell raised an error", "papermill-error-cell"),
        ("sleeps", "timeout", "RUN FAILED: a notebook cell timed out", "cx-stopped-here"),
        ("kills", "dead_kernel", "RUN FAILED: the kernel died", "cx-stopped-here"),
    ],
)
def test_failed_run_has_banner_partial_report_and_manifest(failing_run, study, kind, title, stop_anchor):
    run_dir = failing_run["out"] / study / "mass--all"
    manifest = _manifest(run_dir)
    assert manifest["status"] == "failed" and manifest["error"]["kind"] == kind
    assert manifest["inputs_fingerprint"] and manifest["finished_at"]
    page = (run_dir / "report.html").read_text()
    banner = page.index('id="cx-failure-banner"')
    assert title in page and banner < page.index("before the")  # banner above the partial notebook
    assert f'href="#{stop_anchor}"' in page and f'id="{stop_anchor}"' in page  # link to where it stopped
    assert "never printed" not in page
    assert json.loads((run_dir / "results.json").read_text()) == {"progress": 1}  # recorded before failing
    executed = nbformat.read(run_dir / f"{study}.ipynb", as_version=4)
    assert executed.metadata["cxresearch"]["status"] == "failed"
    if kind == "timeout":
        assert TIMEOUT_S <= manifest["duration_s"] < TIMEOUT_S + 60
        assert f"execution_timeout = {TIMEOUT_S} s" in manifest["error"]["message"]
    if kind == "cell_error":
        assert manifest["error"]["message"] == "ValueError: planned failure in the raises fixture"


def test_index_shows_every_run(failing_run):
    index = (failing_run["out"] / "index.html").read_text()
    assert index.count('class="run ') == 5
    assert index.count('data-status="failed"') == 3 and index.count('data-status="succeeded"') == 2
    for study in ("good", "raises", "sleeps", "kills"):
        assert f'href="{study}/mass--all/report.html"' in index


def test_rerun_skips_successes_and_reruns_failures(failing_run):
    out = failing_run["out"]
    good, raises = out / "good" / "mass--all", out / "raises" / "mass--all"
    good_before, raises_before = _manifest(good), _manifest(raises)
    result = _invoke(failing_run["files"][0], failing_run["files"][1], "--out", str(out))
    assert result.exit_code == 1  # the notebook still raises
    assert _manifest(raises)["run_id"] != raises_before["run_id"]  # failed runs are always rerun
    good_after = _manifest(good)
    if good_after["package_source_sha256"] == good_before["package_source_sha256"]:
        assert good_after["run_id"] == good_before["run_id"] and result.output.count("[skip]") == 2
    # else: someone edited cxresearch/ meanwhile (a shared checkout); a rerun is then correct
    assert "[FAIL]  raises" in result.output


def test_a_kernel_that_dies_while_starting_is_started_once_more(tmp_path, monkeypatch):
    """A kernel that dies before answering its first request ran no cell (e.g. two kernels raced for one
    port): the runner starts it once more and says so in the kernel log; one that dies again fails the run."""
    import dataclasses
    import sys

    from cxresearch.studies.runner import execute_run, plan_runs

    kernels = tmp_path / "jupyter" / "kernels" / "dies-starting"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(
        json.dumps(
            {"argv": [sys.executable, "-c", "import sys; sys.exit(3)"], "display_name": "dies", "language": "python"}
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    spec, _ = F.make_dataset(tmp_path / "data", ["mass"], ["NO"], n_per_cell=20)
    params = F.write_params(
        tmp_path / "params" / "good.yaml", F.params_text("good", "nps.ipynb", spec, "{segment: [mass]}")
    )
    plan = dataclasses.replace(plan_runs([params], out=tmp_path / "out").runs[0], kernel_name="dies-starting")
    outcome = execute_run(plan)
    assert outcome["status"] == "failed" and "before replying to kernel_info" in outcome["error"]["message"]
    log = (Path(outcome["report"]).parent / "kernel.log").read_text()
    assert log.count("kernel died while starting") == 1 and "started once more" in log
