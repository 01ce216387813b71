"""The economics study on a real churn file, through the runner, with the committed params' sampler settings.

``../shared/data/telco`` (IBM telco sample, 7,043 customers) as a customers table alone (no survey): classes
from the internet service, the contract as segment. The pooled run and one run per contract succeed and pass
the gate, and the Cox model agrees with lifelines called directly.

Then the case that used to crash: a 1-5 satisfaction answer where 1-2 always churn and 4-5 never churn (the
IBM file's extended version has such a score; here it is built from the churn flag, so the separation is
exact). The report must name what the data cannot support (zero events among satisfied customers, nobody
dissatisfied still active), show no hazard ratio or CLV for them, render every section and pass the gate.
Skipped when ``../shared`` is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from cxresearch.studies.runner import run_studies
from cxresearch.yamlio import dump_yaml, load_yaml

REPO = Path(__file__).resolve().parents[1]
TELCO = REPO.parent / "shared" / "data" / "telco" / "telco_customer_churn.csv"
INTERNET = ["Fiber optic", "DSL", "No"]  # worst to best: fibre customers churn most in this file

pytestmark = [
    pytest.mark.skipif(not TELCO.is_file(), reason="../shared/data/telco is not beside the clone"),
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

CUSTOMERS = """
customers:
  id: customerID
  segment: Contract
  tenure: tenure
  churn: Churn
  churn_labels: {"Yes": 1, "No": 0}
  revenue: MonthlyCharges
  groups: {internet: InternetService, payment: PaymentMethod}
  covariates: {charges: MonthlyCharges}
"""


def economics_params(folder: Path, dataset: Path, matrix: list[dict], **settings: object) -> Path:
    """params/economics.yaml (its sampler settings) pointed at ``dataset`` with its own matrix."""
    params = load_yaml(REPO / "params" / "economics.yaml")
    params["notebook"] = str(REPO / "notebooks" / "economics.ipynb")
    params["dataset"] = str(dataset)
    params.pop("out", None)
    params["matrix"] = matrix
    params["settings"] = {**params["settings"], **settings}
    path = folder / "economics.yaml"
    path.write_text(dump_yaml(params), encoding="utf-8")
    return path


def results(summary, **where: str) -> dict:
    rows = [o for o in summary.outcomes if all(str(o.get(k)) == v for k, v in where.items())]
    assert len(rows) == 1, (where, [(o.get("segment"), o.get("market")) for o in summary.outcomes])
    return json.loads((Path(rows[0]["report"]).parent / "results.json").read_text())


def test_telco_customers_alone_pooled_and_by_contract(tmp_path: Path) -> None:
    spec = tmp_path / "dataset.yaml"
    spec.write_text(f"version: 1\nname: telco\ntables:\n  customers: {{path: {TELCO}}}\n{CUSTOMERS}", encoding="utf-8")
    params = economics_params(
        tmp_path,
        spec,
        [{"segment": "all", "market": "all"}, {"segment": "each", "market": "all"}],
        classes={"from": "internet", "order": INTERNET},
        controls=["payment"],
        prior_sensitivity=False,  # the refits are exercised by the separated case below (CI time)
    )
    summary = run_studies([params], out=tmp_path / "out", workers=2, progress=False, echo=lambda line: None)
    assert summary.exit_code == 0, [o.get("error") for o in summary.outcomes]
    assert len(summary.outcomes) == 4  # pooled + Month-to-month, One year, Two year
    for outcome in summary.outcomes:
        recorded = json.loads((Path(outcome["report"]).parent / "results.json").read_text())
        assert not recorded.get("sections_failed"), recorded.get("sections_failed")
        assert recorded["diagnostics"]["passed"], (outcome["segment"], recorded["diagnostics"])
    pooled = results(summary, segment="all")
    # the wrapper's Cox model is lifelines' (same rows: tenure 0 counts as half a month at risk; the same
    # control: payment method as dummies)
    from lifelines import CoxPHFitter

    raw = pd.read_csv(TELCO)
    frame = pd.DataFrame(
        {
            "tenure": raw["tenure"].where(raw["tenure"] > 0, 0.5).astype(float),
            "churn": (raw["Churn"] == "Yes").astype(int),
            "fibre": (raw["InternetService"] == "Fiber optic").astype(float),
            "dsl": (raw["InternetService"] == "DSL").astype(float),
            "one_year": (raw["Contract"] == "One year").astype(float),
            "two_year": (raw["Contract"] == "Two year").astype(float),
            **{
                method: (raw["PaymentMethod"] == method).astype(float)
                for method in sorted(raw["PaymentMethod"].unique())[1:]
            },
        }
    )
    direct = CoxPHFitter().fit(frame, duration_col="tenure", event_col="churn")
    ours = pooled["cox"]["hazard_ratio_Fiber optic_vs_No"]
    assert ours["mean"] == pytest.approx(float(np.exp(direct.params_["fibre"])), rel=1e-4)
    # the Bayesian piecewise-exponential ratio tells the same story as Cox (different baseline form)
    bayes = pooled["hazard_ratio"]["Fiber optic_vs_No"]
    assert bayes["estimable"] and bayes["interval"][0] > 1.5
    assert bayes["mean"] == pytest.approx(ours["mean"], rel=0.25)
    assert pooled["npe"]["not_estimable"] == {}


def test_separated_satisfaction_is_named_not_estimated(tmp_path: Path) -> None:
    duckdb.connect(str(tmp_path / "telco.duckdb")).close()
    # satisfaction 1-3 for churners, 3-5 for those who stay (a hash of the id picks the level): 1-2 always
    # churn, 4-5 never churn, 3 is mixed
    spec = tmp_path / "dataset.yaml"
    spec.write_text(
        "version: 1\nname: telco-satisfaction\ntables:\n"
        f"  customers: {{path: {TELCO}}}\n"
        "  survey:\n    database: telco.duckdb\n    query: >-\n"
        "      select customerID, Contract, 'all' as market,\n"
        "        case when Churn = 'Yes' then 1 + hash(customerID) % 3 else 3 + hash(customerID) % 3 end as csat\n"
        f"      from read_csv('{TELCO}', header = true, all_varchar = true)\n"
        "survey:\n  id: customerID\n  segment: Contract\n  market: market\n"
        "  outcome:\n    kind: ordinal\n    column: csat\n    label: satisfaction\n"
        "    labels: {'1': 0, '2': 1, '3': 2, '4': 3, '5': 4}\n" + CUSTOMERS,
        encoding="utf-8",
    )
    params = economics_params(
        tmp_path,
        spec,
        [{"segment": "all", "market": "all"}],
        classes={"from": "outcome", "levels": {"dissatisfied": [1, 2], "neutral": [3], "satisfied": [4, 5]}},
    )
    summary = run_studies([params], out=tmp_path / "out", workers=1, progress=False, echo=lambda line: None)
    assert summary.exit_code == 0, [o.get("error") for o in summary.outcomes]
    recorded = results(summary, segment="all")
    assert not recorded.get("sections_failed"), recorded["sections_failed"]
    assert recorded["diagnostics"]["passed"], recorded["diagnostics"]
    # no finite ratio against a reference class with zero events, and the reason with counts
    for key in ("dissatisfied_vs_satisfied", "neutral_vs_satisfied"):
        ratio = recorded["hazard_ratio"][key]
        assert ratio["estimable"] is False and ratio["mean"] is None
        assert "reference class 'satisfied' has zero churn events" in ratio["reason"]
    assert recorded["cox"]["hazard_ratio_dissatisfied_vs_satisfied"]["estimable"] is False
    assert recorded["cox"]["penalized_reason"]
    # CLV: nobody dissatisfied is still a customer, the satisfied never churn: neither is valued
    assert recorded["clv"]["dissatisfied"]["estimable"] is False and recorded["clv"]["satisfied"]["estimable"] is False
    assert recorded["clv"]["neutral"]["mean"] > 0
    for key in ("value_dissatisfied_to_satisfied", "value_worst_to_best_data_only"):
        assert recorded[key]["estimable"] is False and recorded[key]["mean"] is None, recorded[key]
    html = Path(summary.outcomes[0]["report"]).read_text()
    assert "Not estimable from these data" in html and "MODEL FAILED" not in html
