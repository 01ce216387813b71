"""Held-out validation of the survival models (issue 17, part 3): the Bayesian piecewise-exponential model
beside lifelines Cox on held-out customers (Harrell's C, integrated Brier score, retention at 12 / 24 / 36
months against Kaplan-Meier), on simulated data with known hazard ratios, the demo data and telco
(``../shared/data/telco``). The figures are in benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/survival_validation.py [--out benchmarks/out/survival_validation.json]
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from cxresearch.data import load_dataset  # noqa: E402
from cxresearch.economics import evaluate_survival, harrell_c, study, tenure_unit_months  # noqa: E402
from test_economics_validation import cohort  # noqa: E402  the tests' simulator: constant hazards, HR 1 / 1.3 / 2.0

FIT = {"draws": 1000, "tune": 1000, "chains": 4}
out = {}


def record(name, ev, extra=None):
    r = ev.retention.set_index("horizon")
    row = {
        "method": ev.method,
        "folds": len(ev.folds),
        "n": int(ev.folds["n_test"].sum()),
        "c_bayes": ev.c_index["bayes"],
        "c_cox": ev.c_index["cox"],
        "c_diff": ev.c_index["difference"],
        "c_diff_max_fold": float((ev.folds["c_bayes"] - ev.folds["c_cox"]).abs().max()),
        "ibs_bayes": ev.ibs["bayes"],
        "ibs_cox": ev.ibs["cox"],
        "ibs_null": ev.ibs["null"],
        "retention": {
            f"{h:g}": {
                k: (None if pd.isna(r.loc[h, k]) else r.loc[h, k])
                for k in (
                    "observed",
                    "observed_low",
                    "observed_high",
                    "predicted",
                    "predicted_low",
                    "predicted_high",
                    "cox",
                    "inside",
                    "consistent",
                    "within",
                    "within_low",
                    "within_high",
                    "within_consistent",
                )
            }
            for h in r.index
        },
        "gates": list(ev.folds["gate"]),
        "fit_seconds": list(ev.folds["fit_seconds"].round(1)),
        "seconds": ev.seconds,
        "sentence": ev.sentence(),
        **(extra or {}),
    }
    out[name] = row
    print(name, json.dumps(row, default=float, indent=1), flush=True)


# 1. simulated, known hazard ratios (20,000 customers)
frame = cohort(20000, seed=3)
ev = evaluate_survival(
    frame,
    fixed=["nps_class"],
    hierarchical=["segment"],
    reference={"nps_class": "promoter"},
    method="kfold",
    folds=5,
    seed=1,
    fit_settings=FIT,
)
truth = {f"{h:g}": float(np.exp(-frame["true_hazard"] * h).mean()) for h in (12, 24, 36)}
record(
    "simulated_20k_kfold5",
    ev,
    {"c_true_model": harrell_c(frame["tenure"], frame["churn"], frame["true_hazard"]), "retention_truth": truth},
)

# 2. the package's demo data (simulator), the economics notebook's model
data = load_dataset(REPO / "data" / "demo" / "dataset.yaml")
f, scheme = study.customer_classes(study.analysis_frame(data, wave="1"), "nps", data.spec)
known = f[f[scheme.column].notna()].copy()
for method in ("holdout", "kfold"):
    ev = evaluate_survival(
        known,
        fixed=[scheme.column],
        hierarchical=["segment", "market"],
        reference={scheme.column: scheme.reference},
        method=method,
        folds=5,
        holdout_share=0.2,
        seed=1,
        tenure_unit_months=tenure_unit_months(data.spec),
        fit_settings=FIT,
    )
    record(f"demo_{method}", ev)

# 3. telco (real): Contract + monthly-charges band; and a richer model
telco = pd.read_csv(REPO.parent / "shared" / "data" / "telco" / "telco_customer_churn.csv")
telco["event"] = (telco["Churn"] == "Yes").astype(int)
bins = {"MonthlyCharges": [0.0, 35.0, 70.0, 90.0, 200.0]}
for label, fixed in (
    ("contract_charges", ["Contract", "MonthlyCharges"]),
    ("contract_charges_internet_payment", ["Contract", "MonthlyCharges", "InternetService", "PaymentMethod"]),
):
    for method in ("holdout", "kfold"):
        ev = evaluate_survival(
            telco,
            fixed=fixed,
            bins=bins,
            event_col="event",
            id_col="customerID",
            method=method,
            folds=5,
            holdout_share=0.2,
            seed=1,
            fit_settings={**FIT, "prior_sd_log_hr": 3.0},
        )
        record(f"telco_{label}_{method}", ev)

OUT = (
    Path(sys.argv[sys.argv.index("--out") + 1])
    if "--out" in sys.argv
    else REPO / "benchmarks" / "out" / "survival_validation.json"
)
OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps(out, default=float, indent=1))
