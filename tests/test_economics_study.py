"""The economics study: settings checks, params file against the notebook, and one small end-to-end run."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from cxresearch.economics import study

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "economics.ipynb"
PARAMS = REPO / "params" / "economics.yaml"


def test_validate_settings_names_every_bad_key() -> None:
    study.validate_settings({"discount_rate_annual": 0.1, "horizon_months": 36, "period_breaks": [0, 6, 12]})
    with pytest.raises(ValueError) as err:
        study.validate_settings({"horizon_months": 12.5, "draws": 5, "period_breaks": [1, 2],
                                 "sampler": "metropolis", "bayesian_cx_covariates": ["mood"]})
    message = str(err.value)
    for key in ("horizon_months", "draws", "period_breaks", "sampler", "bayesian_cx_covariates"):
        assert f"settings.{key}" in message


def test_params_file_matches_the_notebook_parameters() -> None:
    from cxresearch.studies.params import check_parameters
    from cxresearch.yamlio import load_yaml

    params = load_yaml(PARAMS)
    assert params["study"] == "economics" and params["matrix"] == [{"segment": "all", "market": "all"},
                                                                   {"segment": "each", "market": "all"},
                                                                   {"segment": "all", "market": "each"}]
    check_parameters(NOTEBOOK, params["settings"], str(PARAMS))  # names exist, values of the default's kind
    study.validate_settings(params["settings"], source=str(PARAMS))


def test_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ('dataset = "../data/demo/dataset.yaml"', 'segment = "all"', 'market = "all"', "seed = 1"):
        assert name in tagged[0].source
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
def test_notebook_runs_on_simulated_data_and_records_results(tmp_path, monkeypatch) -> None:
    import papermill

    from cxresearch.data.simulator import simulate_dataset

    simulate_dataset(tmp_path / "data", customers=6000, seed=5, population_samples=1000)
    results = tmp_path / "results.json"
    monkeypatch.setenv("CXRESEARCH_RESULTS", str(results))
    papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "out.ipynb"), kernel_name="cxresearch",
                               cwd=str(NOTEBOOK.parent), progress_bar=False,
                               parameters={"dataset": str(tmp_path / "data" / "dataset.yaml"), "market": "ES",
                                           "draws": 300, "tune": 300, "chains": 2, "clv_draws": 300})
    recorded = json.loads(results.read_text())
    for key in ("hazard_ratio", "median_survival", "clv", "value_detractor_to_promoter", "diagnostics"):
        assert key in recorded, key
    assert set(recorded["clv"]) == {"detractor", "passive", "promoter"}
    assert set(recorded["diagnostics"]) == {"rhat_max", "ess_bulk_min", "ess_tail_min", "divergences", "passed"}
    hr = recorded["hazard_ratio"]["detractor_vs_promoter"]
    assert hr["interval"][0] < hr["mean"] < hr["interval"][1]


def test_headline_names_the_numbers_and_leads_with_a_failed_gate():
    import pandas as pd

    from cxresearch.economics.study import headline_markdown

    summary = pd.DataFrame({"nps_class": ["detractor", "passive", "promoter"], "clv": [586.0, 608.0, 689.0],
                            "lower": [477.0, 537.0, 602.0], "upper": [721.0, 682.0, 790.0]})
    args = dict(hazard_ratio={"mean": 2.14, "interval": [1.6, 2.6]}, clv_summary=summary,
                move={"mean": 333.0, "interval": [295.0, 375.0]}, horizon_months=36, interval=0.9,
                scope="customers in market NO")
    ok = headline_markdown(diagnostics={"passed": True}, **args)
    assert "**2.1 times**" in ok and "a promoter **€689** (€602 to €790)" in ok and "**€333**" in ok
    assert "did not pass" not in ok
    failed = headline_markdown(diagnostics={"passed": False}, **args)
    assert failed.split("\n\n", 1)[1].startswith("**Warning: the Bayesian survival model did not pass")
