"""Helpers shared by the runner tests and benchmarks/bench_runner.py: a tiny dataset and params files.

Loaded by path (``load_fixtures()`` in each test), so the tests folder needs no package structure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"


def make_dataset(
    folder: Path,
    segments: list[str],
    markets: list[str],
    n_per_cell: int = 30,
    seed: int = 0,
    as_of: str = "2026-10-31",
    name: str = "tiny-test",
) -> tuple[Path, pd.DataFrame]:
    """Write ``survey.parquet`` and a valid ``dataset.yaml`` (cxresearch.data.spec) into ``folder``.

    Every segment x market cell gets ``n_per_cell`` answers; recommend scores 0-10 are drawn from a
    per-cell distribution so cells differ. Returns the spec path and the survey frame (the truth).
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i, seg in enumerate(segments):
        for j, mkt in enumerate(markets):
            tilt = 0.5 + 0.25 * ((i + 2 * j) % 4)
            probs = np.linspace(1.0, 1.0 + 3 * tilt, 11)
            probs /= probs.sum()
            scores = rng.choice(11, size=n_per_cell, p=probs)
            for k, score in enumerate(scores):
                rows.append(
                    {
                        "customer_id": f"c{i}-{j}-{k}",
                        "segment": seg,
                        "market": mkt,
                        "tp_app": int(rng.integers(1, 6)),
                        "recommend": int(score),
                    }
                )
    frame = pd.DataFrame(rows).astype({"customer_id": "string", "segment": "string", "market": "string"})
    frame.to_parquet(folder / "survey.parquet", index=False)
    spec = folder / "dataset.yaml"
    spec.write_text(
        f"version: 1\nname: {name}\nas_of: {as_of}\n"
        "tables:\n  survey: {path: survey.parquet}\n"
        "survey:\n  table: survey\n  id: customer_id\n  segment: segment\n  market: market\n"
        "  touchpoints:\n    app: {column: tp_app, scale: [1, 5], not_applicable: [0]}\n"
        "  outcome: {kind: recommend, column: recommend}\n",
        encoding="utf-8",
    )
    return spec, frame


def nps_truth(frame: pd.DataFrame, segment: str, market: str) -> tuple[float, int]:
    """NPS (points) and n of the answers in a segment x market cell ('all' pools)."""
    mask = pd.Series(True, index=frame.index)
    if segment != "all":
        mask &= frame["segment"] == segment
    if market != "all":
        mask &= frame["market"] == market
    answers = frame.loc[mask, "recommend"]
    return float(100 * ((answers >= 9).mean() - (answers <= 6).mean())), int(mask.sum())


def write_params(path: Path, text: str) -> Path:
    """Write a params YAML file (given as text, so tests control quoting exactly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def params_text(
    study: str,
    notebook: str,
    dataset: Path,
    matrix: str,
    settings: dict[str, Any] | None = None,
    execution_timeout: float = 120,
    title: str | None = None,
    out: Path | None = None,
) -> str:
    """Params YAML with ``matrix`` given as literal YAML (e.g. ``"{segment: each, market: all}"``)."""
    lines = [f"study: {study}"]
    if title:
        lines.append(f'title: "{title}"')
    lines += [
        f"notebook: {NOTEBOOKS / notebook}",
        f"dataset: {dataset}",
        f"matrix: {matrix}",
        "seed: 7",
        f"execution_timeout: {execution_timeout}",
    ]
    if out:
        lines.append(f"out: {out}")
    if settings:
        lines.append("settings:")
        lines += [f"  {k}: {v}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"
