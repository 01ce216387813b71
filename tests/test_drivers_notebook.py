"""The drivers notebook and its params file: thin, parameterised, committed clean, runnable."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "drivers.ipynb"
PARAMS = REPO / "params" / "drivers.yaml"


def test_notebook_is_committed_without_outputs_and_has_one_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None
    src = tagged[0].source
    for name in ("dataset", "segment", "market", "seed", "method", "draws", "tune", "chains", "target_accept", "model"):
        assert f"\n{name} = " in "\n" + src, name


def test_first_screen_is_the_banner_then_the_fix_first_text():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    first = code[1].source  # right after the parameters cell
    assert first.rstrip().endswith("display(Markdown(too_few or fix_first_markdown(summary)))")
    assert first.index("diagnostics_banner(fit.diagnostics())") < first.index("fix_first_markdown(summary)))")
    assert "record_driver_results(summary, too_few=too_few, fit=fit)" in first


def test_params_file_settings_exist_in_the_notebook():
    """Checked without the demo data (a fresh clone has none; tests/test_params_files.py runs the full
    runner checks against a small simulated dataset)."""
    from cxresearch.studies.params import check_parameters
    from cxresearch.yamlio import load_yaml

    raw = load_yaml(PARAMS)
    assert raw["study"] == "drivers"
    assert [m["segment"] for m in raw["matrix"]] == ["each", "all"]
    check_parameters(NOTEBOOK, raw["settings"], str(PARAMS))


@pytest.mark.slow
def test_notebook_runs_and_records_results(tmp_path):
    """A quick end-to-end run (approximate mode, small data) records the results.json keys."""
    import json
    import os
    import re

    import papermill as pm

    from cxresearch.data.simulator import simulate_dataset

    simulate_dataset(tmp_path / "data", 1500, 3, population_samples=1000)
    cache = tmp_path / "_fits"

    def run(market: str) -> dict:
        results = tmp_path / f"results-{market}.json"
        os.environ["CXRESEARCH_RESULTS"] = str(results)
        try:
            pm.execute_notebook(
                str(NOTEBOOK),
                str(tmp_path / f"out-{market}.ipynb"),
                kernel_name="cxresearch",
                cwd=str(NOTEBOOK.parent),
                progress_bar=False,
                parameters={
                    "dataset": str(tmp_path / "data" / "dataset.yaml"),
                    "method": "approx",
                    "advi_iterations": 4000,
                    "draws": 200,
                    "max_draws": 200,
                    "reference_check": False,
                    "market": market,
                    "fit_cache": str(cache),
                },
            )
        finally:
            os.environ.pop("CXRESEARCH_RESULTS", None)
        return json.loads(results.read_text())

    payload = run("ES")
    assert payload["diagnostics"]["method"].startswith("advi (approximate")
    # what loading used and left out, in the report (the pooled fit's data: every answer of the data set)
    assert re.search(r"\*\*Data\*\*: [\d,]+ answers from [\d,]+ rows: ", (tmp_path / "out-ES.ipynb").read_text())
    assert len(payload["top3"]) == 3
    tp = payload["touchpoints"]["mobile_app"]
    assert {"impact_nps", "p_fix_first", "kano"} <= set(tp)
    assert "emotion__recommend" in payload["paths"]
    # the index headline: diagnostics verdict, then the top-3 drivers in NPS points
    labels = [h["label"] for h in payload["headline"]]
    assert labels[0] == "Model diagnostics" and len(labels) == 4 and labels[1].startswith("Driver #1: ")
    assert payload["headline"][1]["unit"] == "NPS pts" and len(payload["headline"][1]["interval"]) == 2
    # one pooled fit of every market, fitted by the first run and loaded by the next
    assert payload["fit"]["scope"] == "pooled" and payload["fit"]["shared"]["reused"] is False
    # held-out accuracy beside the baselines, computed once (holdout of 20% of respondents) and shared
    validation = payload["validation"]
    assert validation["scheme"] == "holdout: 20% of respondents" and validation["main_event"] == "promoter"
    assert 0.5 < validation["auc"] <= 1 and validation["log_loss"] > 0 and 0 < validation["brier"] < 1
    assert set(validation["baselines"]) == {"logistic", "one-hot logistic", "gradient boosting"}
    assert not payload.get("sections_failed"), payload.get("sections_failed")  # the section ran to its end
    other = run("all")
    assert other["fit"]["shared"] == {"key": payload["fit"]["shared"]["key"], "reused": True}
    assert other["validation"]["answers"] > validation["answers"]  # every held-out answer, not only ES's
    assert other["fit"]["answers_fitted"] == payload["fit"]["answers_fitted"]
    assert other["touchpoints"]["mobile_app"]["impact_nps"] != tp["impact_nps"]  # averaged over other answers
