"""Real churn data: the IBM telco file (``../shared/data/telco``) with churn as a binary drivers outcome.

Six optional services (Yes / No, "No internet service" = not applicable) stand where touchpoints would, the
contract as segment, the payment method as market, tenure and monthly charges as controls (the dataset
spec's ``covariates``). Churn is an outcome where lower is better. With the study's default sampler settings
the fit passes the gate, the drivers that lower churn rank first (tech support and online security, as
every analysis of this file finds), and longer tenure lowers churn. Skipped when ``../shared`` is absent.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import duckdb
import pytest

from cxresearch.yamlio import load_yaml

REPO = Path(__file__).resolve().parents[1]
TELCO = REPO.parent / "shared" / "data" / "telco" / "telco_customer_churn.csv"
SERVICES = {
    "online_security": "OnlineSecurity",
    "online_backup": "OnlineBackup",
    "device_protection": "DeviceProtection",
    "tech_support": "TechSupport",
    "streaming_tv": "StreamingTV",
    "streaming_movies": "StreamingMovies",
}

pytestmark = [
    pytest.mark.skipif(not TELCO.is_file(), reason="../shared/data/telco is not beside the clone"),
    pytest.mark.slow,
    pytest.mark.timeout(900),
]


def telco_spec(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    duckdb.connect(str(folder / "telco.duckdb")).close()
    cases = ",\n".join(
        f"        case {column} when 'Yes' then 1 when 'No' then 0 end as {key}" for key, column in SERVICES.items()
    )
    touchpoints = "\n".join(f"    {key}: {{column: {key}, scale: [0, 1]}}" for key in SERVICES)
    spec = folder / "dataset.yaml"
    spec.write_text(
        "version: 1\nname: telco-churn\ntables:\n  survey:\n    database: telco.duckdb\n    query: >-\n"
        "      select customerID, Contract, PaymentMethod, tenure, MonthlyCharges, Churn,\n"
        f"{cases}\n"
        f"      from read_csv('{TELCO}', header = true, all_varchar = true)\n"
        "survey:\n  table: survey\n  id: customerID\n  segment: Contract\n  market: PaymentMethod\n"
        "  covariates: {tenure_months: tenure, monthly_charges: MonthlyCharges}\n"
        f"  touchpoints:\n{touchpoints}\n"
        '  outcome: {kind: binary, column: Churn, labels: {"Yes": 1, "No": 0}}\n',
        encoding="utf-8",
    )
    return spec


def test_telco_churn_as_a_binary_drivers_outcome(tmp_path: Path) -> None:
    from cxresearch.data import load_dataset
    from cxresearch.drivers.fit import fit_driver_model
    from cxresearch.drivers.summary import results_dict, summarize_drivers

    data = load_dataset(telco_spec(tmp_path))
    model = {
        "touchpoints": "all",
        "constructs": {"churned": {"items": ["outcome"], "likelihood": "bernoulli", "label": "churned"}},
        "paths": ["touchpoints -> churned"],
        "group_by": ["segment", "market"],
        "controls": ["tenure_months", "monthly_charges"],
        "asymmetric": False,  # two answer points: a slope and a used term, no boxes
        "higher_is_better": False,
    }
    settings = load_yaml(REPO / "params" / "drivers.yaml")["settings"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_driver_model(
            data, model, draws=settings["draws"], tune=settings["tune"], target_accept=settings["target_accept"], seed=1
        )
    assert fit.diagnostics().passed, fit.diagnostics().reasons
    assert fit.prep.n == 7043 and not fit.prep.dropped_rows
    payload = results_dict(summarize_drivers(fit, max_draws=500))
    assert payload["outcome"] == {**payload["outcome"], "kind": "binary", "higher_is_better": False}
    assert set(payload["top3"][:2]) == {"tech_support", "online_security"}
    for key in ("tech_support", "online_security"):  # having the service clearly lowers P(churned)
        assert payload["touchpoints"][key]["impact_pp"]["interval"][1] < 0
    assert payload["paths"]["tenure_months__churned"]["interval"][1] < 0
