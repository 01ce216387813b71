"""One section that cannot be computed never takes a report down (cxresearch.reports.section).

A real papermill run of tests/notebooks/partial.ipynb: its "Kano classes" section divides by zero, the next
section needs that result, the last one is independent. The run completes, is marked `partial` (manifest,
CLI line, index, report header), the failed sections show red boxes with the reason, and the rest renders.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import study_fixtures as F
from cxresearch.studies.commands import run_command

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def partial_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("partial")
    spec, _ = F.make_dataset(root / "data", ["mass"], ["NO"], n_per_cell=10)
    params = F.write_params(root / "params" / "partial.yaml", F.params_text("partial", "partial.ipynb", spec, "{}"))
    out = root / "out"
    result = CliRunner().invoke(run_command, [str(params), "--out", str(out), "--no-progress"], catch_exceptions=False)
    return {"out": out, "result": result, "run_dir": out / "partial" / "all--all"}


def test_the_run_completes_and_is_marked_partial(partial_run):
    result = partial_run["result"]
    assert result.exit_code == 0, result.output  # partial is not a failure: the report exists and says what is missing
    assert "[part]" in result.output and "SECTIONS NOT COMPUTED: Kano classes, Uses the Kano result" in result.output
    assert "1 runs: 0 succeeded, 1 partial (sections not computed), 0 failed" in result.output
    manifest = json.loads((partial_run["run_dir"] / "manifest.json").read_text())
    assert manifest["status"] == "partial"
    failed = {e["section"]: e["error"] for e in manifest["sections_failed"]}
    assert failed["Kano classes"] == "ZeroDivisionError: division by zero"
    assert (
        "NameError" in failed["Uses the Kano result"]
        and "needs the result of a section" in failed["Uses the Kano result"]
    )
    results = json.loads((partial_run["run_dir"] / "results.json").read_text())
    assert results["after"] == 2  # the independent section after the failures ran


def test_the_report_shows_the_boxes_and_the_rest(partial_run):
    page = (partial_run["run_dir"] / "report.html").read_text()
    assert "PART OF THIS REPORT COULD NOT BE COMPUTED" in page and 'class="cx-status-partial"' in page
    assert "Kano classes: not computed" in page and "This section could not be computed: ZeroDivisionError" in page
    assert "LATER SECTION RAN" in page
    assert "Traceback" not in page


def test_the_index_shows_the_partial_run(partial_run):
    index = (partial_run["out"] / "index.html").read_text()
    assert "status-partial" in index


def test_a_partial_run_is_rerun_not_skipped(partial_run):
    from cxresearch.studies.manifest import can_skip

    manifest = json.loads((partial_run["run_dir"] / "manifest.json").read_text())
    assert not can_skip(partial_run["run_dir"], manifest["inputs_fingerprint"])
