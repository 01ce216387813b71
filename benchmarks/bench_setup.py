"""Set-up workload: `make demo` and `make test` on a fresh clone, wall time (targets 10 and 20 minutes).

The clone shares this machine's pip cache, as a user's second clone would; the first install on a
machine with an empty cache also downloads the wheels (about 1 GB).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def time_make(target: str, clone: Path, timeout_s: int) -> tuple[float, int]:
    """Run `make <target>` in ``clone``; return (seconds, exit code)."""
    start = time.perf_counter()
    proc = subprocess.run(
        ["make", target], cwd=clone, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=timeout_s
    )
    return time.perf_counter() - start, proc.returncode


def rows(quick: bool = False) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory(prefix="cx-fresh-") as tmp:
        clone = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        shared = REPO.parent / "shared"
        if shared.is_dir():  # tests on the public data look for ../shared beside the checkout
            (Path(tmp) / "shared").symlink_to(shared)
        for target, limit_min in (("demo", 10), ("test", 20)):
            seconds, code = time_make(target, clone, timeout_s=3600)
            out.append(
                {
                    "workload": f"make {target} (fresh clone)",
                    "size": "demo data" if target == "demo" else "suite",
                    "ours": f"{seconds / 60:.1f} min",
                    "baseline": "",
                    "ratio": "",
                    "target": f"< {limit_min} min",
                    "met": code == 0 and seconds < limit_min * 60,
                    "diagnostics": f"exit {code}",
                }
            )
        shutil.rmtree(clone / ".venv", ignore_errors=True)
    return out
