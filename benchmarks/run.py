"""Performance suite: each workload runs ours and its baseline in one run, prints a table of ratios.

    python benchmarks/run.py [--quick] [--only drivers,economics] [--no-record]

Each ``benchmarks/bench_<area>.py`` exposes ``rows(quick: bool) -> list[dict]`` where a row has
``workload, size, ours, baseline, ratio, target, met, diagnostics`` (strings or numbers; ``met`` is
True / False / None for "report only"). The table is printed and appended, with the date and the machine,
to ``benchmarks/RESULTS.md``. Timings are medians of repeated runs where a run is cheap (see each module).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
AREAS = ["runner", "simulator", "drivers", "economics", "validation", "setup"]
# ``make bench`` is the speed and memory suite. Held-out accuracy (``validation``, about an hour of 5-fold fits)
# has its own target, ``make bench-validation``, and runs here only when named: ``--only validation``.
DEFAULT_AREAS = [a for a in AREAS if a != "validation"]
COLUMNS = ["workload", "size", "ours", "baseline", "ratio", "target", "met", "diagnostics"]


def machine() -> str:
    """One line describing this machine (cores, memory, CPU, Python)."""
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gb = float("nan")
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {mem_gb:.0f} GiB, {cpu}, Python {platform.python_version()}"


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def markdown_table(rows: list[dict]) -> str:
    """Rows as a markdown table with the standard columns."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)).replace("|", "/") for c in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes that finish in a few minutes")
    parser.add_argument("--only", default="", help="comma-separated areas: " + ",".join(AREAS))
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE))
    areas = [a for a in (args.only.split(",") if args.only else DEFAULT_AREAS) if a]
    unknown = sorted(set(areas) - set(AREAS))
    if unknown:
        parser.error(f"--only names unknown areas {unknown}; known: {', '.join(AREAS)}")
    if not args.quick and "setup" not in areas and not args.only:
        areas.append("setup")
    rows: list[dict] = []
    failed = []
    started = time.perf_counter()
    for area in areas:
        if args.quick and area == "setup":
            continue  # a fresh-clone set-up takes many minutes: full suite only
        print(f"== {area}", flush=True)
        try:
            module = importlib.import_module(f"bench_{area}")
            area_rows = module.rows(quick=args.quick)
        except Exception as exc:  # a broken workload is reported, the others still run
            traceback.print_exc()
            failed.append(area)
            area_rows = [{"workload": area, "diagnostics": f"FAILED: {type(exc).__name__}: {exc}"[:200]}]
        for row in area_rows:
            print("   " + ", ".join(f"{k}={_fmt(v)}" for k, v in row.items() if k in COLUMNS), flush=True)
        rows.extend(area_rows)

    table = markdown_table(rows)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = f"## {stamp} ({'quick' if args.quick else 'full'}), {machine()}"
    print()
    print(header)
    print(table)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if not args.no_record:
        results = HERE / "RESULTS.md"
        if not results.exists():
            results.write_text("# Benchmark results\n\nAppended by `make bench` / `make bench-quick`.\n")
        with results.open("a", encoding="utf-8") as fh:
            fh.write(f"\n{header}\n\n{table}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
