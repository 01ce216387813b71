"""The economics study: settings checks, params file against the notebook, and one small end-to-end run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from cxresearch.economics import study

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "economics.ipynb"
PARAMS = REPO / "params" / "economics.yaml"


def test_the_notebook_checks_its_settings_with_the_one_settings_model() -> None:
    """No hand-written range checks left in the economics package or notebook: one call to the studies'
    settings model (which names the key and the value)."""
    assert not hasattr(study, "validate_settings") and not hasattr(study, "SETTING_RANGES")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert code.count('check_notebook_settings("economics", globals())') == 1


def test_params_file_matches_the_notebook_parameters() -> None:
    from cxresearch.studies.params import check_parameters
    from cxresearch.yamlio import load_yaml

    params = load_yaml(PARAMS)
    assert params["study"] == "economics" and params["matrix"] == [
        {"segment": "all", "market": "all"},
        {"segment": "each", "market": "all"},
        {"segment": "all", "market": "each"},
    ]
    check_parameters(NOTEBOOK, params["settings"], str(PARAMS))  # names exist, values of the default's kind
    check_study_settings = pytest.importorskip("cxresearch.studies.settings").check_study_settings
    check_study_settings("economics", params["settings"], source=str(PARAMS), prefix="settings.")


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
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "out.ipynb"),
        kernel_name="cxresearch",
        cwd=str(NOTEBOOK.parent),
        progress_bar=False,
        parameters={
            "dataset": str(tmp_path / "data" / "dataset.yaml"),
            "market": "ES",
            "draws": 300,
            "tune": 300,
            "chains": 2,
            "clv_draws": 300,
            "prior_sensitivity": False,  # exercised by tests/test_economics_real.py
        },
    )
    recorded = json.loads(results.read_text())
    assert re.search(r"\*\*Survey\*\*: [\d,]+ answers from [\d,]+ rows: ", (tmp_path / "out.ipynb").read_text())
    for key in ("hazard_ratio", "median_survival", "clv", "value_detractor_to_promoter", "diagnostics", "validation"):
        assert key in recorded, key
    assert "sections_failed" not in recorded, recorded.get("sections_failed")
    assert set(recorded["validation"]["retention"]) == {"12", "24", "36"} and recorded["validation"]["c_index"]["bayes"]
    assert set(recorded["clv"]) == {"detractor", "passive", "promoter"}
    from cxresearch.diagnostics import RESULT_KEYS

    assert set(RESULT_KEYS) <= set(recorded["diagnostics"])  # the same block as every other study
    assert set(recorded["cox"]["diagnostics"]) >= set(RESULT_KEYS) and recorded["cox"]["diagnostics"]["passed"]
    hr = recorded["hazard_ratio"]["detractor_vs_promoter"]
    assert hr["interval"][0] < hr["mean"] < hr["interval"][1]


def test_headline_names_the_numbers_and_leads_with_a_failed_gate():
    import pandas as pd

    from cxresearch.economics.study import headline_markdown

    summary = pd.DataFrame(
        {
            "nps_class": ["detractor", "passive", "promoter"],
            "clv": [586.0, 608.0, 689.0],
            "low": [477.0, 537.0, 602.0],
            "high": [721.0, 682.0, 790.0],
        }
    )
    args = dict(
        hazard_ratio={"mean": 2.14, "interval": [1.6, 2.6]},
        clv_summary=summary,
        move={"mean": 333.0, "interval": [295.0, 375.0]},
        horizon_months=36,
        level=0.9,
        scope="customers in market NO",
    )
    ok = headline_markdown(diagnostics={"passed": True}, **args)
    assert "**2.1 times**" in ok and "a promoter **€689** (€602 to €790)" in ok and "**€333**" in ok
    assert "did not pass" not in ok
    failed = headline_markdown(diagnostics={"passed": False}, **args)
    assert failed.split("\n\n", 1)[1].startswith("**Warning: the Bayesian survival model did not pass")


# ---------------------------------------------------------------------------------------------------
# the results.json blocks the notebook records (one package call each)
# ---------------------------------------------------------------------------------------------------
def _fake_fit(seed: int = 0):
    """A piecewise-exponential fit with a given 2-chain posterior (no sampling): hazards known exactly."""
    import arviz as az
    import numpy as np
    import pandas as pd

    from cxresearch.economics import PiecewiseExponentialFit
    from cxresearch.economics.exposure import ExposureTable

    rng = np.random.default_rng(seed)
    log_hr = np.stack([rng.normal(0.7, 0.05, (2, 400)), rng.normal(0.3, 0.05, (2, 400))], axis=-1)
    idata = az.from_dict(posterior={"log_h0": rng.normal(np.log(0.02), 0.02, (2, 400, 1)), "log_hr_nps_class": log_hr})
    levels = {"nps_class": ["promoter", "detractor", "passive"]}
    exposure = ExposureTable(
        frame=pd.DataFrame(),
        breaks=[0.0],
        covariates=["nps_class"],
        levels=levels,
        duration_col="tenure",
        event_col="churn",
        n_customers=0,
        n_events=0,
        max_duration=60.0,
    )
    return PiecewiseExponentialFit(idata=idata, exposure=exposure, fixed=["nps_class"], hierarchical=[], levels=levels)


def _cohort():
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(4)
    n = 600
    classes = rng.choice(["promoter", "passive", "detractor"], size=n)
    hazard = 0.03 * pd.Series(classes).map({"promoter": 1.0, "passive": 1.4, "detractor": 2.0}).to_numpy()
    t, c = rng.exponential(1 / hazard), rng.uniform(1, 40, n)
    return pd.DataFrame(
        {
            "tenure": np.minimum(t, c),
            "churn": (t <= c).astype(int),
            "nps_class": classes,
            "segment": rng.choice(["mass", "private"], n),
            "market": rng.choice(["ES", "NO"], n),
            "margin": rng.gamma(5.0, 6.0, n),
            "products": rng.integers(1, 4, n).astype(float),
        }
    )


def test_results_blocks_carry_the_models_numbers() -> None:
    import math
    import warnings

    import numpy as np

    from cxresearch.diagnostics import RESULT_KEYS, as_dict
    from cxresearch.economics import (
        WordOfMouthAssumptions,
        customer_lifetime_value,
        customer_profile,
        fit_cox,
        fit_parametric,
        group_summary,
        kaplan_meier,
        median_survival,
        net_promoter_economics,
    )

    cohort = _cohort()
    km = kaplan_meier(cohort, by="nps_class", level=0.8)
    assert study.km_results(km) == {"km.logrank_p.nps_class": km.logrank["p_value"]}
    assert "degrees of freedom" in study.logrank_text(km)
    assert list(study.median_table(km, "nps_class", 0.8).columns[-2:]) == ["80% low", "80% high"]

    cox = fit_cox(cohort, covariates=["nps_class"], reference={"nps_class": "promoter"}, level=0.8)
    block = study.cox_results(cox)
    row = cox.hazard_ratios.set_index("term").loc["nps_class=detractor"]
    assert block["cox.hazard_ratio_detractor_vs_promoter"]["mean"] == pytest.approx(row["hr"], rel=1e-12)
    assert block["cox.hazard_ratio_detractor_vs_promoter"]["interval"] == pytest.approx([row["low"], row["high"]])
    assert set(RESULT_KEYS) <= set(block["cox.diagnostics"]) and block["cox.diagnostics"]["passed"]

    fit = _fake_fit()
    profile = customer_profile(cohort, covariates=["nps_class", "segment", "market"], products_col="products")
    medians = median_survival(fit, profile, group_by=["nps_class"], level=0.8)
    bayes = study.bayes_results(fit, medians, level=0.8)
    assert bayes["diagnostics"] == as_dict(fit.diagnostics()) and set(RESULT_KEYS) <= set(bayes["diagnostics"])
    hr = np.exp(fit.draws("log_hr_nps_class")[:, 0])
    assert bayes["hazard_ratio.detractor_vs_promoter"]["mean"] == pytest.approx(hr.mean(), rel=1e-12)
    assert bayes["hazard_ratio.detractor_vs_promoter"]["interval"] == pytest.approx(np.quantile(hr, [0.1, 0.9]))
    assert set(bayes["median_survival"]) == {"detractor", "passive", "promoter"}
    # constant hazard 0.02 * HR: a new customer's median lifetime is log 2 / hazard
    assert bayes["median_survival"]["promoter"]["mean"] == pytest.approx(math.log(2) / 0.02, rel=0.02)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clv = customer_lifetime_value(
            fit, profile, horizon_months=24, discount_rate_annual=0.1, group_by=["nps_class"], level=0.8
        )
        clv_by = {
            "segment": customer_lifetime_value(
                fit, profile, horizon_months=24, discount_rate_annual=0.1, group_by=["segment"], level=0.8
            )
        }
    out = study.clv_results(clv, clv_by)
    assert out["clv"] == clv.to_results("nps_class")
    assert out["clv_by_segment"] == clv_by["segment"].to_results("segment")
    assert out["clv_assumptions"]["level"] == 0.8 and "extrapolated" in out["clv_assumptions"]

    wom = WordOfMouthAssumptions(0.2, 0.3, 200.0)
    npe = net_promoter_economics(
        fit,
        profile,
        products=group_summary(cohort, by=["segment", "nps_class"], value_col="products"),
        margin_per_product={"estimate": 4.0, "se": 0.5},
        word_of_mouth=wom,
        horizon_months=24,
        discount_rate_annual=0.1,
        level=0.8,
    )
    block = study.npe_results(npe, wom, {"estimate": 4.0, "se": 0.5})
    assert block["value_detractor_to_promoter"] == npe.move("detractor", "promoter")
    risk = npe.value_at_risk.set_index(["dimension", "level"]).loc[("market", "ES")]
    assert block["value_at_risk"]["market"]["ES"] == {
        "mean": risk["value_at_risk"],
        "interval": [risk["low"], risk["high"]],
    }
    assert block["npe.assumptions"]["margin_per_product"] == 4.0
    wide = npe.clv_wide().set_index("nps_class")
    assert block["npe.components"]["promoter"]["total"] == pytest.approx(wide.loc["promoter", "total"])
    moves = study.moves_table(npe)
    assert list(moves.columns[-2:]) == ["Total 80% low", "Total 80% high"]

    parametric = fit_parametric(cohort, covariates=["nps_class"], models=["weibull"], n_draws=100)
    block = study.parametric_results(parametric, clv)
    assert block["parametric.model"] == "weibull" and block["parametric.diagnostics"]["passed"]
