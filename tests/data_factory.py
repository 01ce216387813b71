"""Small, fully known datasets + specs written into a folder, valid or deliberately broken, for tests.

``raw_frames()`` builds the export tables exactly as a client would hand them over (raw column names,
not-applicable codes 0 / 99 / blank, NPS coded 1-11, churn as Yes/No, dates as dates); ``spec_dict()``
is the dataset spec that maps them; ``write_dataset()`` writes both in one of the source kinds the loader
reads. Tests change a frame or the spec first to plant a problem. Other test modules may import this.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxresearch.yamlio import dump_yaml

KINDS = ("parquet", "csv", "folder", "duckdb_table", "duckdb_query")
AS_OF = date(2024, 6, 30)
SEGMENTS = ("mass", "affluent", "private")
MARKETS = ("ES", "PT", "NO")
BRANDS = ("OurBank", "RivalA", "RivalB")


def raw_frames(n_customers: int = 60, seed: int = 7) -> dict[str, pd.DataFrame]:
    """Raw export frames: survey (2 waves, every customer answers wave 1, every other one wave 2),
    customers (one row each) and benchmark. Deterministic per seed."""
    rng = np.random.default_rng(seed)
    ids = [f"C{i:04d}" for i in range(1, n_customers + 1)]
    seg = [SEGMENTS[i % 3] for i in range(n_customers)]
    mkt = [MARKETS[(i // 3) % 3] for i in range(n_customers)]
    rows = []
    for wave in (1, 2):
        for i, cid in enumerate(ids):
            if wave == 2 and i % 2:
                continue
            rows.append(
                {
                    "resp_id": cid,
                    "seg": seg[i],
                    "country": mkt[i],
                    "wave": wave,
                    "visit_date": date(2024, 1 if wave == 1 else 5, 1 + i % 28),
                    "branch": f"{mkt[i]}-{1 + i % 4:03d}",
                    # touchpoint ratings 1-5; not applicable: 0 (branch), 99 (call centre), blank (web)
                    "tp_branch": int(rng.integers(1, 6)) if i % 4 else 0,
                    "tp_call": int(rng.integers(1, 6)) if i % 5 else 99,
                    "tp_web": int(rng.integers(1, 6)) if i % 3 else None,
                    "emo_happy": int(rng.integers(1, 8)),
                    "emo_angry": int(rng.integers(1, 8)),  # reverse-keyed
                    "nps_raw": int(rng.integers(1, 12)),  # 1-11 -> 0-10
                }
            )
    survey = pd.DataFrame(rows)
    for col in ("tp_branch", "tp_call", "tp_web", "emo_happy", "emo_angry", "nps_raw", "wave"):
        survey[col] = survey[col].astype("Int64")

    start = [AS_OF - timedelta(days=int(d)) for d in rng.integers(30, 1500, n_customers)]
    churned = [i % 4 == 0 for i in range(n_customers)]
    end = [s + timedelta(days=int(rng.integers(1, (AS_OF - s).days))) if c else None for s, c in zip(start, churned)]
    customers = pd.DataFrame(
        {
            "cust_id": ids,
            "seg": seg,
            "country": mkt,
            "start_date": start,
            "end_date": end,
            "churned": ["Yes" if c else "No" for c in churned],
            "revenue": np.round(rng.uniform(5, 80, n_customers), 2),
            "products": pd.array(rng.integers(1, 5, n_customers), dtype="Int64"),
        }
    )

    brows = []
    for m in MARKETS:
        for wave in (1, 2):
            for r in range(4):
                for b in BRANDS:
                    brows.append(
                        {
                            "brand": b,
                            "country": m,
                            "wave": wave,
                            "rec": int(rng.integers(0, 11)),
                            "price": int(rng.integers(1, 11)),
                            "service": int(rng.integers(1, 11)) if r else 0,
                        }
                    )
    benchmark = pd.DataFrame(brows)
    for col in ("wave", "rec", "price", "service"):
        benchmark[col] = benchmark[col].astype("Int64")
    return {"survey": survey, "customers": customers, "benchmark": benchmark}


def spec_dict() -> dict[str, Any]:
    """The dataset spec (as plain data) that maps :func:`raw_frames` (tables filled in by write_dataset)."""
    return {
        "version": 1,
        "name": "factory",
        "as_of": AS_OF,
        "tables": {},
        "survey": {
            "id": "resp_id",
            "segment": "seg",
            "market": "country",
            "wave": "wave",
            "date": "visit_date",
            "unit": "branch",
            "touchpoints": {
                "branch": {"column": "tp_branch", "scale": [1, 5], "not_applicable": [0], "channel": "branch"},
                "call_centre": {"column": "tp_call", "scale": [1, 5], "not_applicable": [99], "channel": "phone"},
                "website": {"column": "tp_web", "scale": [1, 5], "not_applicable": ["blank"], "channel": "digital"},
            },
            "emotion": {
                "scale": [1, 7],
                "items": {"happy": {"column": "emo_happy"}, "angry": {"column": "emo_angry", "reverse": True}},
            },
            "outcome": {"kind": "recommend", "column": "nps_raw", "recode": {"from": [1, 11], "to": [0, 10]}},
        },
        "customers": {
            "id": "cust_id",
            "segment": "seg",
            "market": "country",
            "start": "start_date",
            "end": "end_date",
            "churn": "churned",
            "churn_labels": {"Yes": 1, "No": 0},
            "revenue": "revenue",
            "cross_sell": ["products"],
        },
        "benchmark": {
            "brand": "brand",
            "own_brand": "OurBank",
            "market": "country",
            "wave": "wave",
            "recommend": "rec",
            "attributes": {"price": "price", "service": "service"},
            "scale": [1, 10],
            "not_applicable": [0],
        },
    }


def _write_frame(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.to_csv(path, index=False)
        return
    frame = frame.copy()
    for col in frame.columns:  # a column mixing numbers and text is a text column in Parquet
        values = frame[col]
        if values.dtype == object and len({type(v) for v in values.dropna()}) > 1:
            frame[col] = values.map(lambda v: None if pd.isna(v) else str(v))
    frame.to_parquet(path, index=False)


def write_dataset(
    folder: str | Path,
    kind: str = "parquet",
    frames: dict[str, pd.DataFrame] | None = None,
    spec: dict[str, Any] | None = None,
    edit_spec: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Write frames + spec into ``folder`` as one source kind; returns the spec path (dataset.yaml).

    kinds: ``parquet`` / ``csv`` (one file per table), ``folder`` (survey split into a CSV per wave
    plus a Parquet file under ``survey/``), ``duckdb_table`` / ``duckdb_query`` (one ``cx.duckdb``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = raw_frames() if frames is None else frames
    spec = copy.deepcopy(spec_dict() if spec is None else spec)
    tables: dict[str, Any] = {}
    if kind in ("parquet", "csv"):
        ext = "parquet" if kind == "parquet" else "csv"
        for role, frame in frames.items():
            _write_frame(frame, folder / f"{role}.{ext}", ext)
            tables[role] = {"path": f"{role}.{ext}"}
    elif kind == "folder":
        survey = frames["survey"]
        waves = survey["wave"].astype(str)
        first = sorted(waves.unique())[0]
        _write_frame(survey[waves == first], folder / "survey" / f"wave-{first}.csv", "csv")
        _write_frame(survey[waves != first], folder / "survey" / "later" / "waves.parquet", "parquet")
        (folder / "survey" / "_SUCCESS").write_text("")  # marker files are ignored
        tables["survey"] = {"path": "survey"}
        for role in ("customers", "benchmark"):
            _write_frame(frames[role], folder / f"{role}.csv", "csv")
            tables[role] = {"path": f"{role}.csv"}
    elif kind in ("duckdb_table", "duckdb_query"):
        import duckdb

        db = folder / "cx.duckdb"
        with duckdb.connect(str(db)) as conn:
            for role, frame in frames.items():
                name = f"raw_{role}" if kind == "duckdb_query" else role
                conn.register("frame", frame)
                conn.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM frame')
                conn.unregister("frame")
                tables[role] = (
                    {"database": "cx.duckdb", "table": name}
                    if kind == "duckdb_table"
                    else {"database": "cx.duckdb", "query": f"SELECT * FROM {name};"}
                )
    else:
        raise ValueError(f"unknown kind {kind!r}; choose from {KINDS}")
    spec["tables"] = tables
    if edit_spec is not None:
        edit_spec(spec)
    path = folder / "dataset.yaml"
    path.write_text(dump_yaml(spec), encoding="utf-8")
    return path


def file_hashes(folder: str | Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (to prove the loader never writes to its sources)."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
