"""Simulator workload: wall time and peak memory of `simulate_dataset` at 1M (and 10M) customers.

    python benchmarks/bench_simulator.py [--customers 1000000] [--out DIR] [--keep]

Each run is a fresh subprocess, so the peak resident set size (``VmHWM``, see ``peak_memory.py``) is that
of the simulation alone. Targets: 10M customers in under 5 minutes with peak RSS under 3 GB on a 2-core machine.
There is no baseline implementation to compare with: rows report against the targets only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, time
from cxresearch.data.simulator import simulate_dataset
customers, out, seed = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
sys.path.insert(0, sys.argv[4])
from peak_memory import peak_rss_mb
started = time.perf_counter()
summary = simulate_dataset(out, customers=customers, seed=seed)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "survey_rows": summary.survey_rows,
                  "customer_rows": summary.customer_rows, "units": summary.units}))
"""

#: (customers, seconds target, peak RSS MB target)
TARGETS = {1_000_000: (60.0, 3072.0), 10_000_000: (300.0, 3072.0)}


def bench_simulate(customers: int, out_dir: Path, seed: int = 1, timeout_s: int = 1800) -> dict:
    """Simulate ``customers`` into ``out_dir`` in a fresh Python process.

    Returns seconds (wall time inside the child, imports excluded), peak_rss_mb of the child, rows written
    and bytes on disk.
    """
    out_dir = Path(out_dir)
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(customers), str(out_dir), str(seed), str(Path(__file__).resolve().parent)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"simulate {customers} customers into {out_dir} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["customers"] = customers
    result["disk_mb"] = sum(p.stat().st_size for p in out_dir.iterdir() if p.is_file()) / 2**20
    return result


def rows(quick: bool = False) -> list[dict]:
    """Rows for benchmarks/run.py: 1M customers (quick) and also 10M (full)."""
    sizes = [1_000_000] if quick else [1_000_000, 10_000_000]
    out = []
    for customers in sizes:
        with tempfile.TemporaryDirectory(prefix="cx-sim-bench-") as tmp:
            r = bench_simulate(customers, Path(tmp) / "data")
        max_s, max_mb = TARGETS[customers]
        out.append(
            {
                "workload": "simulate_dataset",
                "size": f"{customers:,} customers",
                "ours": f"{r['seconds']:.1f} s, {r['peak_rss_mb']:.0f} MB peak",
                "baseline": "",
                "ratio": "",
                "target": f"< {max_s:.0f} s, < {max_mb / 1024:.0f} GB",
                "met": r["seconds"] < max_s and r["peak_rss_mb"] < max_mb,
                "diagnostics": f"{r['survey_rows']:,} survey rows, {r['disk_mb']:.0f} MB on disk",
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder, kept (default: a temporary folder, deleted afterwards)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    tmp = None
    out_dir = args.out
    if out_dir is None:
        tmp = tempfile.mkdtemp(prefix="cx-sim-bench-")
        out_dir = Path(tmp) / "data"
    try:
        result = bench_simulate(args.customers, out_dir, seed=args.seed)
        print(json.dumps(result, indent=1))
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
