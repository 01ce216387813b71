"""Set-up workload: `make demo` and `make test` on a fresh clone, as on a new machine (issue 20's targets).

Each command runs in a fresh clone of this repository with **empty compile caches** (PyTensor's compile folder and
numba's cache directory pointed at new empty folders), because that is what a new user, and CI, pay: every
PyTensor operation and every compiled kernel is built once. The clone shares this machine's pip cache, as a user's
second clone would; the first install on a machine with an empty pip cache also downloads the wheels (about 1 GB).

Targets: `make demo` under 5 minutes with every run succeeded and 0 failed diagnostics gates (read from each run's
``manifest.json``); `make test` under 15 minutes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from profile_fit import empty_cache_env

REPO = Path(__file__).resolve().parents[1]
TARGET_MIN = {"demo": 5, "test": 15}


def time_make(target: str, clone: Path, timeout_s: int, env: dict[str, str]) -> tuple[float, int, str]:
    """Run `make <target>` in ``clone``; return (seconds, exit code, its output)."""
    start = time.perf_counter()
    proc = subprocess.run(
        ["make", target],
        cwd=clone,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout_s,
        env=env,
        check=False,
    )
    return time.perf_counter() - start, proc.returncode, proc.stdout


def pytest_summary(output: str) -> str:
    """pytest's last summary line (``817 passed, 37 skipped, ... in 778.01s``), or what the output ends with."""
    found = re.findall(r"^=*\s*(\d+ (?:passed|failed).*? in [\d.]+s.*?)\s*=*$", output, flags=re.MULTILINE)
    if found:
        return found[-1]
    lines = output.strip().splitlines()
    return lines[-1] if lines else "no output"


def demo_runs(reports: Path) -> tuple[int, int, list[str]]:
    """(runs, runs succeeded, runs whose model failed its diagnostics gate) from the demo's run manifests."""
    runs = succeeded = 0
    failed_gates: list[str] = []
    for manifest in sorted(reports.rglob("manifest.json")):
        data = json.loads(manifest.read_text(encoding="utf-8"))
        runs += 1
        succeeded += data.get("status") == "succeeded"
        if data.get("diagnostics_failed"):
            failed_gates.append(f"{manifest.parent.relative_to(reports)}: {', '.join(data['diagnostics_failed'])}")
    return runs, succeeded, failed_gates


def rows(quick: bool = False) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory(prefix="cx-fresh-") as tmp:
        clone = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        shared = REPO.parent / "shared"
        if shared.is_dir():  # tests on the public data look for ../shared beside the checkout
            (Path(tmp) / "shared").symlink_to(shared)
        for target in ("demo", "test"):
            env = empty_cache_env(Path(tmp) / f"caches-{target}")  # empty: a new machine (module docstring)
            seconds, code, tail = time_make(target, clone, timeout_s=3600, env=env)
            limit = TARGET_MIN[target]
            met = code == 0 and seconds < limit * 60
            diagnostics = f"exit {code}"
            if target == "demo":
                runs, ok, failed_gates = demo_runs(clone / "reports")
                met = met and runs > 0 and ok == runs and not failed_gates
                diagnostics += f"; {ok} of {runs} runs succeeded, {len(failed_gates)} failed gates"
                diagnostics += "".join(f"; {g}" for g in failed_gates[:5])
            else:
                diagnostics += f"; {pytest_summary(tail)}"
            out.append(
                {
                    "workload": f"make {target} (fresh clone, empty compile caches)",
                    "size": "demo data" if target == "demo" else "suite",
                    "ours": f"{seconds / 60:.1f} min",
                    "baseline": "",
                    "ratio": "",
                    "target": f"< {limit} min" + (", 0 failed gates" if target == "demo" else ""),
                    "met": met,
                    "diagnostics": diagnostics,
                }
            )
        shutil.rmtree(clone / ".venv", ignore_errors=True)
    return out
