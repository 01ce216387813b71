"""Where a driver fit's time goes (issue 20, deliverable 1): compile, warm-up, draws, summary.

    python benchmarks/profile_fit.py [--only small_wide,demo] [--cold] [--markdown FILE]

For each workload the phases are timed separately:

- **compile, cold**: a fresh process with empty PyTensor and numba caches (``--cold``; what a first-ever fit
  on a new machine pays): the PyTensor graph is rewritten and compiled to machine code by numba.
- **compile, warm**: the same in this process after one compilation (PyTensor's numba cache holds the
  per-operation functions; the whole-graph function nutpie calls is compiled again every time).
- **reuse**: another data set of the same structure (``compile_driver_model`` swaps the data into the
  compiled model: no compilation).
- **warm-up / draws**: nutpie's own phases, 2 chains on the study's default settings; each draw's leapfrog
  steps (``n_steps``) are counted, so time = gradient evaluations x cost per evaluation.
- **gradient**: milliseconds per log-density + gradient evaluation, median of repeated calls of the compiled
  function (what one leapfrog step costs).
- **summary**: ``summarize_drivers`` (impacts, ranks, Kano, group differences) with the report's settings.

Workloads:

- ``small_wide``: 1,000 respondents x 25 touchpoints rated 1-100, four segments, recommend 0-10 (the shape of
  the real 1,065-row survey in issue 20).
- ``demo``: the simulator at the demo's size (20,000 customers; wave 2, about 10,000 answers), default model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKLOADS = ("small_wide", "demo")


def small_wide_survey(n: int = 1000, touchpoints: int = 25, seed: int = 0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``n`` answers, ``touchpoints`` ratings on 1-100 (about 30% not used), 4 segments, recommend 0-10."""
    rng = np.random.default_rng(seed)
    used = rng.random((n, touchpoints)) < rng.uniform(0.5, 0.95, touchpoints)
    quality = rng.normal(0.5, 0.3, touchpoints) + rng.normal(0, 1, (n, touchpoints))
    rating = np.clip(np.round(60 + 18 * quality), 1, 100)
    beta = rng.normal(0.25, 0.15, touchpoints)
    segment = rng.integers(0, 4, n)
    eta = (used * beta * (rating - 60) / 25).sum(axis=1) + 0.2 * segment + rng.normal(0, 1, n)
    cuts = np.array([-4.6, -4.1, -3.6, -3.1, -2.6, -1.8, -1.1, 0.0, 1.5, 3.0])
    recommend = ((1.2 * eta)[:, None] + rng.logistic(size=(n, 1)) > cuts).sum(axis=1)
    frame = pd.DataFrame({f"tp{t:02d}": np.where(used[:, t], rating[:, t], np.nan) for t in range(touchpoints)})
    frame["segment"] = [f"s{s}" for s in segment]
    frame["recommend"] = recommend.astype(float)
    constructs: dict[str, Any] = {
        f"tp{t:02d}": {"items": [f"tp{t:02d}"], "kind": "touchpoint", "scale": [1, 100]} for t in range(touchpoints)
    }
    constructs["recommend"] = {"items": ["recommend"], "likelihood": "ordered_logistic", "scale": [0, 10]}
    model = {"constructs": constructs, "paths": ["touchpoints -> recommend"], "group_by": ["segment"]}
    return frame, model


def demo_survey(seed: int = 20261122) -> tuple[pd.DataFrame, Any]:
    """The demo's simulated survey, wave 2 (the drivers report's default wave), and its dataset spec."""
    from cxresearch.data import load_dataset
    from cxresearch.data.simulator import simulate_dataset

    folder = Path(tempfile.mkdtemp(prefix="profile_demo_"))
    simulate_dataset(folder, 20_000, seed, population_samples=1000)
    data = load_dataset(folder / "dataset.yaml")
    return data.survey[data.survey["wave"].astype(str) == "2"], data.spec


def prepared(workload: str, seed: int = 0) -> Any:
    """PreparedData of a workload (``seed`` gives another data set of the same structure)."""
    from cxresearch.drivers.fit import resolve_model
    from cxresearch.drivers.model import prepare_data

    if workload == "small_wide":
        frame, model = small_wide_survey(seed=seed)
        return prepare_data(frame, resolve_model(model))
    survey, spec = demo_survey(20261122 + seed)
    return prepare_data(survey, resolve_model(None, spec), dataset_spec=spec)


def empty_cache_env(folder: str | Path) -> dict[str, str]:
    """This process's environment with PyTensor's compile folder and numba's cache directory under ``folder``
    (new and empty: a child process started with it compiles as on a new machine)."""
    return dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={folder}/pytensor", NUMBA_CACHE_DIR=f"{folder}/numba")


def _cold_compile_seconds(workload: str) -> float:
    """Compile time in a fresh process with empty PyTensor and numba caches."""
    with tempfile.TemporaryDirectory() as tmp:
        env = empty_cache_env(tmp)
        code = (
            "import sys, time, warnings; warnings.simplefilter('ignore'); "
            f"sys.path.insert(0, {str(HERE)!r}); import profile_fit as pf; "
            "from cxresearch.drivers.fit import compile_driver_model; "
            f"prep = pf.prepared({workload!r}); t = time.perf_counter(); "
            "compile_driver_model(prep, reuse=False); print(time.perf_counter() - t)"
        )
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])


def _gradient_ms(compiled: Any, evals: int = 200) -> float:
    """Median milliseconds of one log-density + gradient evaluation of the compiled model, at its initial point."""
    x = compiled.initial_point_func(1)
    logp = compiled.logp_func  # PyTensor function: (logp, gradient) of the flat unconstrained vector
    times = []
    for _ in range(evals):
        t0 = time.perf_counter()
        logp(x)
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def profile(workload: str, cold: bool = False) -> dict[str, Any]:
    """The phases of one workload (seconds unless named otherwise)."""
    import nutpie

    from cxresearch.drivers.fit import DriverFit, compile_driver_model
    from cxresearch.drivers.summary import summarize_drivers
    from cxresearch.yamlio import load_yaml

    settings = load_yaml(REPO / "params" / "drivers.yaml")["settings"]
    prep = prepared(workload)
    row: dict[str, Any] = {"workload": workload, "rows": prep.n, "touchpoints": len(prep.touchpoints)}
    row["states"] = prep.n_states
    if cold:
        row["compile_cold_s"] = _cold_compile_seconds(workload)
    t0 = time.perf_counter()
    compile_driver_model(prep, reuse=True)
    row["compile_first_in_process_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, layout, compiled = compile_driver_model(prep, reuse=False)
    row["compile_warm_s"] = time.perf_counter() - t0
    other = prepared(workload, seed=1)
    t0 = time.perf_counter()
    compile_driver_model(other, reuse=True)
    row["reuse_s"] = time.perf_counter() - t0
    row["parameters"] = int(compiled.n_dim)
    row["gradient_ms"] = _gradient_ms(compiled)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        idata = nutpie.sample(
            compiled,
            draws=settings["draws"],
            tune=settings["tune"],
            chains=settings["chains"],
            cores=settings["chains"],
            seed=1,
            target_accept=settings["target_accept"],
            progress_bar=False,
            low_rank_modified_mass_matrix=True,
            save_warmup=True,
        )
        row["sampling_s"] = time.perf_counter() - t0
    warm = idata.warmup_sample_stats["n_steps"].values.sum()
    main = idata.sample_stats["n_steps"].values.sum()
    per_step = row["sampling_s"] / (warm + main)
    row.update(
        warmup_steps=int(warm),
        draw_steps=int(main),
        steps_per_draw=float(idata.sample_stats["n_steps"].values.mean()),
        warmup_s=float(per_step * warm),
        draws_s=float(per_step * main),
        ms_per_step_in_sampler=1000.0 * per_step,
        divergences=int(idata.sample_stats["diverging"].values.sum()),
    )
    # the report's summary on a fit of these draws (the gate is computed as in fit_driver_model)
    from cxresearch.diagnostics import check_mcmc
    from cxresearch.drivers.fit import free_variable_names

    posterior_only = idata.copy()
    for group in ("warmup_posterior", "warmup_sample_stats"):
        if group in posterior_only.groups():
            del posterior_only[group]
    gate = check_mcmc(posterior_only, free_variable_names(model), method="nuts (nutpie)")
    row["gate"] = "passed" if gate.passed else "failed: " + "; ".join(gate.reasons[:2])
    fit = DriverFit(
        prep=prep, layout=layout, idata=posterior_only, gate=gate, method="nuts", timings={}, settings=dict(settings)
    )
    t0 = time.perf_counter()
    summarize_drivers(fit, max_draws=settings.get("max_draws", 1000))
    row["summary_s"] = time.perf_counter() - t0
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    cols = [
        ("workload", "workload"),
        ("rows", "rows"),
        ("touchpoints", "touchpoints"),
        ("states", "answer points"),
        ("parameters", "parameters"),
        ("compile_cold_s", "compile, cold (s)"),
        ("compile_warm_s", "compile, warm (s)"),
        ("reuse_s", "reuse (s)"),
        ("gradient_ms", "gradient (ms)"),
        ("warmup_steps", "warm-up steps"),
        ("warmup_s", "warm-up (s)"),
        ("draw_steps", "draw steps"),
        ("steps_per_draw", "steps / draw"),
        ("draws_s", "draws (s)"),
        ("summary_s", "summary (s)"),
        ("gate", "gate"),
    ]
    lines = ["| " + " | ".join(c for _, c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for key, _ in cols:
            v = r.get(key, "")
            cells.append(f"{v:,.1f}" if isinstance(v, float) else (f"{v:,}" if isinstance(v, int) else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(WORKLOADS))
    parser.add_argument("--cold", action="store_true", help="also time a compile with empty caches (a subprocess)")
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    for workload in [w for w in args.only.split(",") if w]:
        rows.append(profile(workload, cold=args.cold))
        print(json.dumps(rows[-1], default=float), flush=True)
    table = markdown(rows)
    print(table)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table + "\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
