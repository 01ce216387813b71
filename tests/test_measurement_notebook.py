"""The measurement notebook: committed clean, one parameters cell with the documented defaults, the params
file matches it, and it runs end to end on simulator data recording every headline number."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import pytest

from cxresearch.studies.params import notebook_parameters
from test_measurement_data import family_z, simulated, within

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "measurement.ipynb"


def test_notebook_is_committed_without_outputs_and_has_one_parameters_cell() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None
    declared = notebook_parameters(NOTEBOOK)
    defaults = {name: info["default"] for name, info in declared.items()}
    assert defaults["dataset"] == '"../data/demo/dataset.yaml"'
    assert defaults["segment"] == '"all"' and defaults["market"] == '"all"' and defaults["seed"] == "1"
    for name in ("target_nps", "pooling", "draws", "level", "benchmark_threshold", "touchpoint_targets"):
        assert name in declared, name


@pytest.mark.slow
def test_notebook_runs_on_simulator_data_and_records_the_headline_numbers(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    if "cxresearch" not in KernelSpecManager().find_kernel_specs():
        pytest.skip("the 'cxresearch' Jupyter kernel is not installed (make setup installs it)")
    import papermill

    sim = simulated(tmp_path_factory)
    results_path = tmp_path / "results.json"
    monkeypatch.setenv("CXRESEARCH_RESULTS", str(results_path))
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "out.ipynb"),
        kernel_name="cxresearch",
        cwd=str(NOTEBOOK.parent),
        parameters={
            "dataset": str(sim["folder"] / "dataset.yaml"),
            "market": "NO",
            "draws": 1000,
            "touchpoint_targets": {"mobile_app": 0.3},
        },
        progress_bar=False,
    )
    results = json.loads(results_path.read_text())
    truth = sim["truth"]["population"]
    assert results["n"] > 500
    low, high = results["nps"]["interval"]
    assert low < results["nps"]["mean"] < high and results["nps"]["level"] == 0.9
    assert results["nps"]["wave"] == "2"
    # the headline wave-2 NPS of market NO agrees with the truth (99% band: one check)
    true_no = truth["shares_by_market_wave"]["NO"]["2"]["nps"]
    se_no = truth["se"]["shares_by_market_wave"]["NO"]["2"]["nps"]
    assert within(results["nps"]["mean"], true_no, (high - low) / (2 * 1.6449), se_no, family_z(1))
    assert math.isclose(sum(results["shares"][k] for k in ("detractor", "passive", "promoter")), 1.0, abs_tol=1e-9)
    assert 0.0 <= results["nps"]["p_meets_target"] <= 1.0
    assert set(results["touchpoints"]) == set(sim["data"].spec.survey.touchpoints)
    for key, block in results["touchpoints"].items():
        for field in ("mean", "top_box", "n", "mean_interval", "top_box_interval", "bottom_box"):
            assert field in block, (key, field)
        assert 1.0 <= block["mean"] <= 5.0 and 0.0 <= block["top_box"] <= 1.0 and block["n"] > 0
    assert results["diagnostics"]["passed"] is True
    assert "by_segment" in results and "by_market" not in results  # one market: segments are compared
    assert results["league"]["units"] >= 2
    assert "mobile_app_wave2" in results["touchpoint_targets"]
