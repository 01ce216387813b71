"""Held-out accuracy of the driver model against the baselines a user would pick instead (issue 17).

    python benchmarks/bench_validation.py [--quick] [--only lounge,seat,simulated] [--folds 5]

Workloads (5-fold by respondent; every model fitted on the same folds, see cxresearch.drivers.evaluate):

- ``skytrax lounge`` / ``skytrax seat`` (``../shared/data/skytrax``, ``recommended`` as the outcome, 0 / blank
  = not rated; the spec of tests/test_drivers_skytrax.py: lounge type or cabin as segment, airline as
  market): our binary driver model beside logistic regression on the ratings, the one-hot (per-level)
  logistic with the same groups, and HistGradientBoosting.
- ``simulated``: the package simulator (asymmetric penalties and rewards, segment x market slopes), wave 1,
  with the simulator's true model's AUC on the same held-out answers (the ceiling for these inputs).

Targets (issue 17): AUC at least the one-hot logistic's and within 0.01 of gradient boosting's, calibration
slope 0.9-1.1, every driver-model fit passing the diagnostics gate (a row whose fits failed it is not met).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SKYTRAX = REPO.parent / "shared" / "data" / "skytrax"
WORKLOADS = ("lounge", "seat", "simulated")


def _settings() -> dict[str, Any]:
    """The drivers study's default sampler settings (params/drivers.yaml), draws as for evaluation fits."""
    from cxresearch.yamlio import load_yaml

    s = load_yaml(REPO / "params" / "drivers.yaml")["settings"]
    return {
        "draws": s.get("validation_draws", 1000),
        "tune": s["tune"],
        "chains": s["chains"],
        "target_accept": s["target_accept"],
    }


def evaluate_skytrax(which: str, folds: int, quick: bool) -> dict[str, Any]:
    """The evaluation on Skytrax lounge or seat reviews (None when ../shared is absent)."""
    from cxresearch.data import load_dataset
    from cxresearch.drivers.evaluate import evaluate_drivers

    sys.path.insert(0, str(REPO / "tests"))
    from test_drivers_skytrax import MODEL, skytrax_spec

    with tempfile.TemporaryDirectory() as tmp:
        data = load_dataset(skytrax_spec(Path(tmp), which))
        started = time.perf_counter()
        settings = _settings()
        if quick:
            settings.update(draws=300, tune=300)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ev = evaluate_drivers(data, MODEL, folds=folds, seed=1, **settings)
        return {"evaluation": ev, "wall_s": time.perf_counter() - started, "answers": len(data.survey)}


def evaluate_simulated(folds: int, quick: bool, customers: int = 8000) -> dict[str, Any]:
    """The evaluation on simulated data, with the true model's held-out AUC."""
    from sklearn.metrics import roc_auc_score

    from cxresearch.data import load_dataset
    from cxresearch.data.simulator import simulate_dataset
    from cxresearch.drivers.evaluate import evaluate_drivers
    from cxresearch.initiatives.truth import TrueDriverModel

    with tempfile.TemporaryDirectory() as tmp:
        simulate_dataset(tmp, 2000 if quick else customers, 11, population_samples=2000)
        data = load_dataset(Path(tmp) / "dataset.yaml")
        survey = data.survey[data.survey["wave"].astype(str) == "1"]
        settings = _settings()
        if quick:
            settings.update(draws=300, tune=300)
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ev = evaluate_drivers(survey, dataset_spec=data.spec, folds=folds, seed=1, **settings)
        truth = TrueDriverModel(Path(tmp) / "truth.json")
        held = survey.loc[ev.rows.index].drop(columns=["unit"])
        true_auc = float(roc_auc_score(ev.rows["y"].to_numpy() >= 9, truth.class_probabilities(held)[:, 2]))
        return {"evaluation": ev, "wall_s": time.perf_counter() - started, "answers": len(survey), "true": true_auc}


def table_rows(name: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for benchmarks/run.py: our AUC against the one-hot logistic and against gradient boosting."""
    from cxresearch.drivers.evaluate import OURS

    ev = result["evaluation"]
    table = ev.table()
    auc = ev.headline_metric()
    ours = float(table.loc[OURS, auc])
    slope = float(table.loc[OURS, "calibration_slope"])
    passed, total, reasons = ev.gates()
    gate = f"gate {passed}/{total} passed" + (f" ({reasons[0][:80]})" if reasons else "")
    calibrated = 0.9 <= slope <= 1.1
    size = f"{result['answers']:,} answers, {ev.scheme}"
    times = ev.fit_times()
    rows = []
    for baseline, target, ok in (
        ("one-hot logistic", "AUC >= one-hot logistic", lambda b: ours >= b),
        ("gradient boosting", "AUC within 0.01 of gradient boosting", lambda b: ours >= b - 0.01),
    ):
        b = float(table.loc[baseline, auc])
        rows.append(
            {
                "workload": f"held-out {auc} {name} vs {baseline}",
                "size": size,
                "ours": round(ours, 3),
                "baseline": round(b, 3),
                "ratio": round(ours - b, 3),
                "target": target + "; calibration slope 0.9-1.1",
                "met": bool(ok(b) and calibrated and passed == total),
                "diagnostics": f"{gate}; slope {slope:.2f}; log-loss ours {table.loc[OURS, 'log_loss']:.3f} vs "
                f"{table.loc[baseline, 'log_loss']:.3f}; fit s ours {times[OURS]:.0f} vs {times[baseline]:.1f}",
            }
        )
    if "true" in result:
        rows.append(
            {
                "workload": f"held-out {auc} {name} vs the true model",
                "size": size,
                "ours": round(ours, 3),
                "baseline": round(result["true"], 3),
                "ratio": round(ours - result["true"], 3),
                "target": "within 0.02 of the true model's AUC",
                "met": bool(abs(ours - result["true"]) < 0.02 and passed == total),
                "diagnostics": gate,
            }
        )
    return rows


def markdown(name: str, result: dict[str, Any]) -> str:
    """The full metrics table of one workload (every model, every metric, fit time)."""
    ev = result["evaluation"]
    table = ev.table().round(3)
    lines = [f"### {name}: {result['answers']:,} answers, {ev.scheme}, {result['wall_s']:.0f} s in all", ""]
    lines.append("| model | " + " | ".join(table.columns) + " |")
    lines.append("|---|" + "---|" * len(table.columns))
    for model, row in table.iterrows():
        lines.append(f"| {model} | " + " | ".join(f"{v:g}" for v in row) + " |")
    if "true" in result:
        lines.append(f"\nThe simulator's true model on the same held-out answers: AUC {result['true']:.3f}.")
    passed, total, reasons = ev.gates()
    lines.append(f"\nDriver-model fits passing the gate: {passed} of {total}. " + "; ".join(reasons))
    return "\n".join(lines)


def run(only: list[str], folds: int, quick: bool, customers: int = 8000) -> tuple[list[dict[str, Any]], list[str]]:
    rows, texts = [], []
    for name in only:
        if name in ("lounge", "seat"):
            if not SKYTRAX.is_dir():
                rows.append({"workload": f"held-out AUC skytrax {name}", "diagnostics": "skipped: no ../shared"})
                continue
            result = evaluate_skytrax(name, folds, quick)
            label = f"skytrax {name}"
        else:
            result = evaluate_simulated(folds, quick, customers)
            label = "simulated"
        rows += table_rows(label, result)
        texts.append(markdown(label, result))
        print(texts[-1], flush=True)
    return rows, texts


def rows(quick: bool = False) -> list[dict[str, Any]]:
    """benchmarks/run.py's entry point."""
    return run(list(WORKLOADS), 3 if quick else 5, quick)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(WORKLOADS))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--customers", type=int, default=8000, help="simulated customers (wave 1 is evaluated)")
    parser.add_argument("--markdown", type=Path, default=None, help="write the tables here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from run import markdown_table

    table_rows_, texts = run([w for w in args.only.split(",") if w], args.folds, args.quick, args.customers)
    out = markdown_table(table_rows_) + "\n\n" + "\n\n".join(texts)
    print(out)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(out + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
