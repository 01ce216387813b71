"""Economics workload: survival + CLV at scale, end to end, from Parquet files to CLV by NPS class.

    python benchmarks/bench_economics.py [--customers 1000000] [--data DIR] [--cox-customers 1000000]

``bench_economics(customers)`` simulates a dataset (``cxresearch.data.simulator``; kept under
``benchmarks/out/`` and reused), then in a fresh subprocess (so the peak RSS is the workload's alone):

1. builds the per-customer analysis relation from the dataset spec inside DuckDB
   (``cxresearch.economics.scale.customer_relation_from_spec``: column mapping, not-applicable codes, the
   1-11 -> 0-10 recode, tenure from dates censored at as_of, wave-1 NPS class) into a DuckDB temp table:
   no pandas frame of customers is ever made;
2. aggregates the exposure table (events and months at risk per period x class x segment x market), the
   customer profile for CLV (active customers by cell and tenure month), product counts and the margin
   per product, all in DuckDB SQL;
3. fits the hierarchical piecewise-exponential model (PyMC, nutpie: 4 chains x 1000 draws);
4. computes CLV by NPS class and the Net Promoter Economics tables from the aggregated profile (1000 of
   the posterior draws).

Wall time of each step and the child's peak RSS are reported. Target: 10M customers in under 5 minutes
and under 6 GB on 2 cores. The reference is lifelines' CoxPH on 1M customers (its own subprocess, pandas
frame of the customers with an NPS answer; the fit alone, without the proportional-hazards test), which
scales with customers, not cells. The row's ratio is our seconds / the baseline's seconds: not like for like
(ours is a full Bayesian fit with 4 chains plus CLV, on up to 10x the customers), so read it as context.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
TARGET_SECONDS, TARGET_RSS_MB = 300.0, 6144.0

#: Python run in the child: the spec's tables -> the per-customer analysis relation (DuckDB, following the
#: dataset spec: column mapping, codes, recodes, tenure from dates) -> a DuckDB temp table, never pandas.
PREPARE = """
from cxresearch.economics.scale import customer_relation_from_spec
con = duckdb.connect(config={"threads": 2, "memory_limit": "3GB"})
customer_relation_from_spec(spec_path, connection=con).create("prepared")
"""

_CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import duckdb
from cxresearch.economics import (WordOfMouthAssumptions, build_exposure_table, customer_lifetime_value,
                                  customer_profile, fit_piecewise_exponential, group_summary, margin_per_product,
                                  net_promoter_economics)
sys.path.insert(0, sys.argv[2])
from bench_economics import PREPARE
from cxresearch.diagnostics import as_dict
from peak_memory import peak_rss_mb

spec_path = sys.argv[1]
timings = {}
started = time.perf_counter()
exec(PREPARE)
timings["prepare_s"] = time.perf_counter() - started
t = time.perf_counter()
known = con.table("prepared").filter("nps_class IS NOT NULL")
covariates = ["nps_class", "segment", "market"]
exposure = build_exposure_table(known, covariates=covariates)
profile = customer_profile(known, covariates=covariates, products_col="products")
products = group_summary(known, by=["segment", "nps_class"], value_col="products")
mpp = margin_per_product(known, products_col="products")
timings["aggregate_s"] = time.perf_counter() - t
t = time.perf_counter()
fit = fit_piecewise_exponential(exposure, fixed=["nps_class"], hierarchical=["segment", "market"],
                                reference={"nps_class": "promoter"}, draws=1000, tune=1000, chains=4, seed=1)
timings["fit_s"] = time.perf_counter() - t
t = time.perf_counter()
value_model = fit.thinned(1000)  # 1000 of the 4000 posterior draws carry the CLV intervals
clv = customer_lifetime_value(value_model, profile, horizon_months=36, discount_rate_annual=0.1,
                              group_by=["nps_class"])
npe = net_promoter_economics(value_model, profile, products=products, margin_per_product=mpp,
                             word_of_mouth=WordOfMouthAssumptions(0.2, 0.3, 200.0), horizon_months=36,
                             discount_rate_annual=0.1)
timings["clv_npe_s"] = time.perf_counter() - t
timings["total_s"] = time.perf_counter() - started
print(json.dumps({**timings, "peak_rss_mb": peak_rss_mb(), "customers_modelled": exposure.n_customers,
                  "cells": exposure.n_cells, "profile_rows": len(profile),
                  "hazard_ratio_detractor": fit.hazard_ratio("nps_class", "detractor"),
                  "diagnostics": as_dict(fit.diagnostics()),
                  "clv": clv.to_results("nps_class")}))
"""

_COX_CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import duckdb
from cxresearch.economics import fit_cox
sys.path.insert(0, sys.argv[2])
from bench_economics import PREPARE
from peak_memory import peak_rss_mb

spec_path, limit = sys.argv[1], int(sys.argv[3])
exec(PREPARE)
frame = con.execute(f"SELECT * FROM prepared WHERE nps_class IS NOT NULL LIMIT {limit}").df()
started = time.perf_counter()
cox = fit_cox(frame, covariates=["nps_class", "segment", "market"], reference={"nps_class": "promoter"},
              check_ph=False)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "rows": len(frame),
                  "hazard_ratio_detractor": cox.hazard_ratio("nps_class=detractor")}))
"""


def simulated_dataset(customers: int, seed: int = 1, out_root: Path = OUT) -> Path:
    """A simulator dataset of ``customers`` under ``out_root`` (made once, reused)."""
    folder = Path(out_root) / f"economics-sim-{customers}-seed{seed}"
    if not (folder / "truth.json").exists():
        code = (
            "import sys; from cxresearch.data.simulator import simulate_dataset; "
            "simulate_dataset(sys.argv[1], customers=int(sys.argv[2]), seed=int(sys.argv[3]))"
        )
        subprocess.run([sys.executable, "-c", code, str(folder), str(customers), str(seed)], cwd=REPO, check=True)
    return folder


def _child(script: str, *args: str, timeout_s: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"economics benchmark child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_economics(customers: int, data: str | Path | None = None, seed: int = 1, timeout_s: int = 1800) -> dict:
    """Aggregate (DuckDB over Parquet) + Bayesian fit + CLV for ``customers``: wall times and peak RSS.

    ``data``: an existing simulator dataset folder (default: simulate one under benchmarks/out/).
    """
    generated = time.perf_counter()
    folder = Path(data) if data is not None else simulated_dataset(customers, seed)
    generate_s = time.perf_counter() - generated
    result = _child(_CHILD, str(folder / "dataset.yaml"), str(REPO / "benchmarks"), timeout_s=timeout_s)
    result.update(
        customers=customers,
        data=str(folder),
        generate_s=generate_s,
        target_s=TARGET_SECONDS,
        target_rss_mb=TARGET_RSS_MB,
        met=bool(result["total_s"] < TARGET_SECONDS and result["peak_rss_mb"] < TARGET_RSS_MB),
    )
    return result


def bench_cox_reference(
    customers: int = 1_000_000, data: str | Path | None = None, seed: int = 1, timeout_s: int = 1800
) -> dict:
    """lifelines CoxPH (class + segment + market) on up to ``customers`` rows with an NPS answer."""
    folder = Path(data) if data is not None else simulated_dataset(max(customers * 2, 1000), seed)
    result = _child(
        _COX_CHILD, str(folder / "dataset.yaml"), str(REPO / "benchmarks"), str(customers), timeout_s=timeout_s
    )
    result["customers"] = customers
    return result


def rows(quick: bool = False) -> list[dict]:
    """Rows for benchmarks/run.py: 1M customers (quick) or 10M (full), against lifelines CoxPH on 1M."""
    customers = 1_000_000 if quick else 10_000_000
    ours = bench_economics(customers)
    cox = bench_cox_reference(1_000_000, data=ours["data"])  # its first 1M customers with an NPS answer
    return [
        {
            "workload": "economics: DuckDB aggregate + piecewise-exponential fit (nutpie) + CLV/NPE",
            "size": f"{customers:,} customers ({ours['customers_modelled']:,} with NPS class, {ours['cells']} cells)",
            "ours": f"{ours['total_s']:.0f} s, {ours['peak_rss_mb']:,.0f} MB",
            "baseline": (
                f"lifelines CoxPH point fit on {cox['rows']:,} rows: {cox['seconds']:.0f} s, "
                f"{cox['peak_rss_mb']:,.0f} MB"
            ),
            "ratio": ours["total_s"] / cox["seconds"],  # our seconds per baseline second (not like for like)
            "target": f"< {TARGET_SECONDS:.0f} s and < {TARGET_RSS_MB / 1024:.0f} GB",
            "met": ours["met"],
            "diagnostics": (
                f"R-hat {ours['diagnostics']['rhat_max']:.3f}, ESS {ours['diagnostics']['ess_bulk_min']:.0f}, "
                f"divergences {ours['diagnostics']['divergences']}, passed {ours['diagnostics']['passed']}"
            ),
        }
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--data", default=None, help="existing simulator dataset folder")
    parser.add_argument("--cox-customers", type=int, default=0, help="also time lifelines CoxPH on this many rows")
    args = parser.parse_args(argv)
    print(json.dumps(bench_economics(args.customers, data=args.data), indent=2))
    if args.cox_customers:
        print(json.dumps(bench_cox_reference(args.cox_customers, data=args.data), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
