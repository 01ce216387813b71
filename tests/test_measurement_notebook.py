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


def _tiny_dataset(folder: Path) -> Path:
    """One wave; a 1-100 and a 1-5 touchpoint; markets NO (76), ES (50) and XX (1 respondent); segment 'tiny'
    (6 answers) has a single unit."""
    import numpy as np
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    p = np.linspace(1, 4, 11) / np.linspace(1, 4, 11).sum()
    rows = []
    for seg, mkt, n, units in (
        ("mass", "NO", 70, 4),
        ("mass", "ES", 50, 3),
        ("tiny", "NO", 6, 1),
        ("mass", "XX", 1, 1),
    ):
        for i in range(n):
            rows.append(
                {
                    "customer_id": f"c{len(rows)}",
                    "segment": seg,
                    "market": mkt,
                    "unit": f"{mkt}-{seg}-{i % units}",
                    "tp_app": int(np.clip(rng.normal(74, 18), 1, 100)),
                    "tp_call": int(rng.integers(1, 6)) if rng.random() < 0.7 else 0,
                    "recommend": int(rng.choice(11, p=p)),
                }
            )
    pd.DataFrame(rows).to_parquet(folder / "survey.parquet", index=False)
    spec = folder / "dataset.yaml"
    spec.write_text(
        "version: 1\nname: tiny-measurement\nas_of: 2026-10-31\ntables:\n  survey: {path: survey.parquet}\n"
        "survey:\n  table: survey\n  id: customer_id\n  segment: segment\n  market: market\n  unit: unit\n"
        "  touchpoints:\n"
        "    app: {column: tp_app, label: Mobile app, stage: usage, scale: [1, 100]}\n"
        "    call: {column: tp_call, label: Call centre, stage: service, scale: [1, 5], not_applicable: [0]}\n"
        "  outcome: {kind: recommend, column: recommend}\n",
        encoding="utf-8",
    )
    return spec


@pytest.mark.timeout(240)
def test_small_groups_one_wave_and_a_failing_section_on_a_tiny_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real runs: everyone (the league section is given a metric that does not exist, so it fails inside
    its own section and the rest renders), and the market with one respondent (counts only, 'too few
    answers' in the report and the index headline). Neither prints anything to stderr (no warning boxes)."""
    from jupyter_client.kernelspec import KernelSpecManager

    if "cxresearch" not in KernelSpecManager().find_kernel_specs():
        pytest.skip("the 'cxresearch' Jupyter kernel is not installed (make setup installs it)")
    import papermill

    from cxresearch.studies.index import headline_entries

    spec = _tiny_dataset(tmp_path / "data")
    runs = {"all": {"league_metric": "nope"}, "XX": {}}
    results, outputs = {}, {}
    for market, extra in runs.items():
        path = tmp_path / f"results-{market}.json"
        monkeypatch.setenv("CXRESEARCH_RESULTS", str(path))
        nb = papermill.execute_notebook(
            str(NOTEBOOK),
            str(tmp_path / f"out-{market}.ipynb"),
            kernel_name="cxresearch",
            cwd=str(NOTEBOOK.parent),
            parameters={"dataset": str(spec), "market": market, "draws": 500, **extra},
            progress_bar=False,
        )
        results[market] = json.loads(path.read_text())
        outputs[market] = nb
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                assert out.get("name") != "stderr", (market, out.get("text"))  # no warning printed into the report

    def text_of(nb) -> str:
        parts = []
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                data = out.get("data", {})
                parts.append(str(data.get("text/markdown", "")) + str(data.get("text/html", "")) + out.get("text", ""))
        return "\n".join(parts)

    everyone, one = results["all"], results["XX"]
    # the failing league section is isolated: recorded, shown, and the sections after it ran
    assert [e["section"] for e in everyone["sections_failed"]] == ["League table of units"]
    assert "KeyError" in everyone["sections_failed"][0]["error"] and "diagnostics" in everyone
    page = text_of(outputs["all"])
    assert "League table of units: not computed" in page and "One survey wave (1): no change over time" in page
    assert "What changed since the previous wave" not in page  # one wave: no heading for an empty section
    assert "answers from" in page and "rows: none left out." in page  # the data line: what loading left out
    assert "NPS wave by wave" not in page and "NPS with partial pooling" in page and "NPS, this market alone" in page
    assert "too few answers (n=1)" in page  # market XX in the pooled table: counts only
    assert everyone["by_market"]["XX"] == {"n": 1, "too_few_answers": True, "min_answers": 30}
    assert everyone["by_market"]["NO"]["estimate"] == "with partial pooling" and "alone" in everyone["by_market"]["NO"]
    assert everyone["by_segment"]["tiny"]["too_few_answers"] is True and "touchpoint_changes" not in everyone
    app = everyone["touchpoints"]["app"]
    assert app["top_box_definition"] == "81-100" and 60 < app["mean"] < 90  # 1-100: not pulled to the midpoint
    # the one-respondent market: counts only, in the report and the index
    assert one["n"] == 1 and one["nps"]["mean"] is None and one["too_few_answers"].startswith("**Too few answers")
    assert headline_entries(one)[0] == ("NPS (this market alone)", "too few answers (n=1)")
    assert all(block.get("too_few_answers") for block in one["touchpoints"].values())
    assert not one.get("sections_failed") and "league" not in one and "by_segment" not in one
    page = text_of(outputs["XX"])
    assert "Too few answers for an NPS (market XX: n=1)" in page and "No league table" in page
