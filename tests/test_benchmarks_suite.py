"""The performance suite's own bookkeeping (``benchmarks/``): a benchmark row must not say "met" when a run
failed or a model failed its gate, and an area that is not named is not run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_drivers  # noqa: E402
import bench_setup  # noqa: E402
import run as bench_run  # noqa: E402


def _manifest(folder: Path, status: str, failed: list[str]) -> None:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"status": status, "diagnostics_failed": failed}))


def test_demo_runs_counts_failed_runs_and_failed_gates(tmp_path: Path) -> None:
    _manifest(tmp_path / "drivers" / "all", "succeeded", [])
    _manifest(tmp_path / "drivers" / "segment=young", "succeeded", ["drivers model"])
    _manifest(tmp_path / "economics" / "all", "failed", [])
    runs, ok, failed_gates = bench_setup.demo_runs(tmp_path)
    assert (runs, ok) == (3, 2)
    assert failed_gates == [str(Path("drivers") / "segment=young") + ": drivers model"]


def test_a_workload_that_raises_gives_a_failed_row_and_the_others_still_run(monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("no memory left")

    monkeypatch.setattr(bench_drivers, "bench_gradient", boom)
    rows = bench_drivers.run(quick=True, only=["gradient"])
    assert len(rows) == 1 and rows[0]["met"] is False
    assert rows[0]["diagnostics"].startswith("FAILED: RuntimeError: no memory left")
    monkeypatch.setattr(bench_drivers, "run", lambda quick: rows)
    table_row = bench_drivers.rows(quick=True)[0]
    assert table_row["ours"] == "failed" and table_row["met"] is False


def test_make_bench_runs_the_speed_suite_and_refuses_unknown_areas(capsys) -> None:
    assert "validation" not in bench_run.DEFAULT_AREAS and "setup" in bench_run.DEFAULT_AREAS
    with pytest.raises(SystemExit):
        bench_run.main(["--only", "drivrs", "--no-record"])
    assert "drivrs" in capsys.readouterr().err


def test_the_test_row_names_pytests_summary_not_makes_last_line() -> None:
    output = (
        "tests/test_x.py::test_y 12.0s call\n"
        "= 817 passed, 37 skipped, 1 xfailed, 3 warnings in 778.01s (0:12:58) =\n"
        "make[1]: Leaving directory '/tmp/repo'\n"
    )
    assert bench_setup.pytest_summary(output) == "817 passed, 37 skipped, 1 xfailed, 3 warnings in 778.01s (0:12:58)"
    assert bench_setup.pytest_summary("1 failed, 2 passed in 3.50s\n") == "1 failed, 2 passed in 3.50s"
    assert bench_setup.pytest_summary("make: *** [test] Error 2\n") == "make: *** [test] Error 2"
