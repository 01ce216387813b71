"""Study runner benchmark: per-run overhead and parallel speed-up.

- overhead: wall time of one run of a trivial notebook (``tests/notebooks/trivial.ipynb``: parameters
  cell + ``record_result``), i.e. kernel start, ``import cxresearch``, papermill bookkeeping, nbconvert
  rendering and the atomic writes; split into planning (validation, hashing) and execution.
- throughput: wall time of ``n_runs`` small runs (``tests/notebooks/nps.ipynb`` on a tiny survey)
  with 1 and with 2 workers (``--force`` so nothing is skipped).

Run: ``.venv/bin/python benchmarks/bench_runner.py [--runs 8]`` (prints JSON).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _fixtures() -> Any:
    path = REPO / "tests" / "study_fixtures.py"
    spec = importlib.util.spec_from_file_location("study_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("study_fixtures", module)
    spec.loader.exec_module(module)
    return module


def bench_runner(n_runs: int = 8, repeats: int = 3) -> dict[str, Any]:
    """Measure runner overhead per run (trivial notebook) and the wall time of ``n_runs`` small runs
    with 1 vs 2 workers. Returns seconds; ``speedup`` = wall(1 worker) / wall(2 workers)."""
    from cxresearch.studies.runner import available_cores, execute_run, plan_runs, run_studies

    fx = _fixtures()
    segments = [f"s{i:02d}" for i in range(n_runs)]
    with tempfile.TemporaryDirectory(prefix="cx-bench-runner-") as tmp:
        root = Path(tmp)
        spec, _ = fx.make_dataset(root / "data", segments, ["NO"], n_per_cell=50)
        trivial = fx.write_params(
            root / "trivial.yaml", fx.params_text("trivial", "trivial.ipynb", spec, "{segment: [s00], market: all}")
        )
        small = fx.write_params(
            root / "small.yaml", fx.params_text("small", "nps.ipynb", spec, "{segment: each, market: all}")
        )

        # overhead: planning once, then `repeats` executions of the trivial notebook (first one warms caches)
        t0 = time.perf_counter()
        plan = plan_runs([trivial], out=root / "out")
        planning = time.perf_counter() - t0
        execs = []
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            outcome = execute_run(plan.runs[0])
            execs.append(time.perf_counter() - t0)
            assert outcome["status"] == "succeeded", outcome
        kernel_only = outcome["duration_s"]  # papermill time of the last run (kernel start + cells)

        walls = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            summary = run_studies(
                [small],
                out=root / f"out{workers}",
                workers=workers,
                force=True,
                progress=False,
                echo=lambda _line: None,
            )
            walls[workers] = time.perf_counter() - t0
            assert summary.exit_code == 0 and len(summary.outcomes) == n_runs
    warm = execs[1:]
    return {
        "cores": available_cores(),
        "n_runs": n_runs,
        "planning_s": round(planning, 3),
        "overhead_per_run_s": round(sorted(warm)[len(warm) // 2], 3),  # median of warm runs
        "overhead_first_run_s": round(execs[0], 3),
        "kernel_start_and_cells_s": round(kernel_only, 3),
        "wall_1_worker_s": round(walls[1], 2),
        "wall_2_workers_s": round(walls[2], 2),
        "per_run_1_worker_s": round(walls[1] / n_runs, 2),
        "speedup_2_vs_1": round(walls[1] / walls[2], 2),
    }


def rows(quick: bool = False) -> list[dict]:
    """Rows for benchmarks/run.py: overhead per run (target < 3 s) and 8 runs on 2 vs 1 workers (>= 1.6x)."""
    r = bench_runner(n_runs=8, repeats=3 if quick else 5)
    return [
        {
            "workload": "runner overhead per run (kernel start + imports + render)",
            "size": "trivial notebook",
            "ours": f"{r['overhead_per_run_s']:.2f} s",
            "baseline": "",
            "ratio": "",
            "target": "< 3 s",
            "met": r["overhead_per_run_s"] < 3.0,
            "diagnostics": (
                f"median of warm runs; first run {r['overhead_first_run_s']:.2f} s; planning {r['planning_s']:.2f} s"
            ),
        },
        {
            "workload": "runner: 8 small runs, 2 workers vs 1",
            "size": f"{r['n_runs']} runs, {r['cores']} cores",
            "ours": f"{r['wall_2_workers_s']:.1f} s",
            "baseline": f"{r['wall_1_worker_s']:.1f} s",
            "ratio": r["speedup_2_vs_1"],
            "target": ">= 1.6x",
            "met": r["speedup_2_vs_1"] >= 1.6,
            "diagnostics": "baseline = the same runs on 1 worker",
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(bench_runner(args.runs, args.repeats), indent=2))


if __name__ == "__main__":
    main()
